//! [`Scheduler`]: runs every integration on its interval, with jitter, never two runs of one
//! integration at once (each has one task that runs, then sleeps), and keeps each one's status:
//! last outcome, last error and counts, for the service to show.
//!
//! After a failure the next try comes sooner than the interval (one minute, doubling, never
//! later than the interval), but never before the IdP's own `Retry-After`, which is honoured up
//! to an hour (or the interval, if longer): an IdP asking for days does not park the
//! integration for days. A [`SchedulerHandle`] shows the statuses and starts a run at once on
//! request.
//!
//! Each integration's task is supervised: if it panics (a bug, in this crate or below it), the
//! panic is logged, counted in the status (`restarts`, and as a failed run if one was going
//! on) and the task starts again after the same back-off as a failed run. One integration's
//! bug never stops the others, nor its own next runs.
//!
//! On a log store several replicas share, an integration runs only where its lease is held
//! (`Tenant::lease`, renewed every few seconds by a task of its own): the other replicas stand
//! by and take it over once the holder stops renewing it (it died, or shut down and gave it
//! up). A replica that takes a lease over starts the integration as at a start, after a random
//! part of a tenth of its interval. On a store only this process writes, the lease is always
//! held.
//!
//! Every finished run is counted in `idpsync_sync_runs_total{tenant, integration, outcome}`
//! and timed in `idpsync_sync_seconds{tenant, integration, outcome}`; every restart after a
//! panic in `idpsync_sync_task_restarts_total{tenant, integration}` (the `metrics` facade).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use idpsync_engine::Tenant;
use idpsync_engine::ids::{IntegrationName, TenantId};
use idpsync_engine::tenant::{LEASE_RENEW_EVERY, LeaseHolder};
use rand::RngExt;
use serde::Serialize;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::cursor_store::CursorStore;
use crate::driver::Driver;
use crate::sync::{Mode, Resync, SyncError, SyncOutcome, SyncResult, sync_once};

/// One integration to schedule.
pub struct Scheduled {
    /// The tenant it writes into.
    pub tenant: Arc<Tenant>,
    /// Its driver.
    pub driver: Arc<Driver>,
    /// Its tenant's state files.
    pub cursors: CursorStore,
}

/// What the scheduler knows of one integration.
#[derive(Clone, Debug, Serialize)]
pub struct IntegrationStatus {
    /// The tenant.
    pub tenant: TenantId,
    /// The integration.
    pub integration: IntegrationName,
    /// Its provider.
    pub provider: &'static str,
    /// Whether a run is going on.
    pub running: bool,
    /// Runs finished, failed ones included.
    pub runs: u64,
    /// Runs that failed.
    pub failures: u64,
    /// When the last run started.
    pub last_started: Option<SystemTime>,
    /// When the last run finished.
    pub last_finished: Option<SystemTime>,
    /// `applied`, `held` or `failed`.
    pub last_result: Option<&'static str>,
    /// The last failure's message, kept until a run succeeds.
    pub last_error: Option<String>,
    /// What the last successful run warned of without failing (a deletion feed left out for
    /// want of a permission, a listing read again…), kept until the next successful run.
    pub last_warnings: Vec<String>,
    /// Whether this replica holds the integration's lease (always, on a store only this
    /// process writes); only the holder runs it.
    pub lease_held: bool,
    /// How often the integration's task panicked and was started again.
    pub restarts: u64,
    /// What the last successful run changed.
    pub last_counts: Option<RunCounts>,
    /// When the next run is due.
    pub next_run: Option<SystemTime>,
}

/// The counts of one run.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct RunCounts {
    /// Users read.
    pub listed_users: usize,
    /// Groups read.
    pub listed_groups: usize,
    /// Memberships read.
    pub listed_memberships: usize,
    /// Users created, updated, deactivated, reactivated or deleted.
    pub user_changes: u32,
    /// Groups created, renamed or deleted.
    pub group_changes: u32,
    /// Membership edges added or removed.
    pub membership_changes: u32,
    /// HTTP requests sent.
    pub requests: u64,
    /// How long the run took, in milliseconds.
    pub elapsed_ms: u64,
}

impl RunCounts {
    fn of(outcome: &SyncOutcome) -> RunCounts {
        let report = &outcome.report;
        RunCounts {
            listed_users: outcome.listed.users,
            listed_groups: outcome.listed.groups,
            listed_memberships: outcome.listed.memberships,
            user_changes: report.users_created
                + report.users_updated
                + report.users_deactivated
                + report.users_reactivated
                + report.users_deleted,
            group_changes: report.groups_created + report.groups_renamed + report.groups_deleted,
            membership_changes: report.memberships_added + report.memberships_removed,
            requests: outcome.requests,
            elapsed_ms: outcome.elapsed.as_millis() as u64,
        }
    }
}

type Statuses = Arc<Mutex<BTreeMap<(TenantId, IntegrationName), IntegrationStatus>>>;
type Triggers = Arc<BTreeMap<(TenantId, IntegrationName), Arc<Notify>>>;

/// The running schedule. Dropping it without [`Scheduler::shutdown`] leaves the tasks running
/// until the runtime stops.
pub struct Scheduler {
    handle: SchedulerHandle,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// A cheap, cloneable view of a running [`Scheduler`]: statuses, and runs on request.
#[derive(Clone)]
pub struct SchedulerHandle {
    statuses: Statuses,
    triggers: Triggers,
}

/// Why [`SchedulerHandle::trigger`] could not start a run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tenant {tenant} has no scheduled integration {integration}")]
pub struct UnknownIntegration {
    /// The tenant asked for.
    pub tenant: TenantId,
    /// The integration asked for.
    pub integration: IntegrationName,
}

impl SchedulerHandle {
    /// Every integration's status, by tenant and name.
    pub fn status(&self) -> Vec<IntegrationStatus> {
        self.statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Starts a run of the integration now instead of at its next due time. A run already
    /// going on is not interrupted: the requested one follows it. Requests made while one is
    /// pending are one request.
    pub fn trigger(&self, tenant: &TenantId, integration: &IntegrationName) -> Result<(), UnknownIntegration> {
        match self.triggers.get(&(tenant.clone(), integration.clone())) {
            Some(notify) => {
                notify.notify_one();
                Ok(())
            }
            None => Err(UnknownIntegration {
                tenant: tenant.clone(),
                integration: integration.clone(),
            }),
        }
    }
}

impl Scheduler {
    /// Starts one task per integration. The first run of each comes after a random delay of
    /// up to a tenth of its interval, so that integrations do not all start at once.
    pub fn start(integrations: Vec<Scheduled>) -> Scheduler {
        let holder = LeaseHolder::new();
        let statuses: Statuses = Arc::default();
        let (stop, stopped) = watch::channel(false);
        let keyed: Vec<_> = integrations
            .into_iter()
            .map(|scheduled| {
                let key = (scheduled.tenant.id().clone(), scheduled.driver.config().name.clone());
                (key, scheduled, Arc::new(Notify::new()))
            })
            .collect();
        let triggers: Triggers = Arc::new(
            keyed
                .iter()
                .map(|(key, _, notify)| (key.clone(), Arc::clone(notify)))
                .collect(),
        );
        let mut tasks = Vec::new();
        for (key, scheduled, notify) in keyed {
            statuses.lock().unwrap_or_else(|p| p.into_inner()).insert(
                key.clone(),
                IntegrationStatus {
                    tenant: key.0.clone(),
                    integration: key.1.clone(),
                    provider: scheduled.driver.config().provider_name(),
                    running: false,
                    runs: 0,
                    failures: 0,
                    last_started: None,
                    last_finished: None,
                    last_result: None,
                    last_error: None,
                    last_warnings: Vec::new(),
                    lease_held: false,
                    restarts: 0,
                    last_counts: None,
                    next_run: None,
                },
            );
            let (held, lease) = watch::channel(false);
            tasks.push(tokio::spawn(keep_lease(
                scheduled.tenant.lease(key.1.as_str(), holder.clone()),
                held,
                Arc::clone(&statuses),
                key.clone(),
                stopped.clone(),
            )));
            let task = Task {
                scheduled: Arc::new(scheduled),
                key,
                statuses: Arc::clone(&statuses),
                triggered: notify,
                stopped: stopped.clone(),
                lease,
            };
            tasks.push(tokio::spawn(supervise(task)));
        }
        Scheduler {
            handle: SchedulerHandle { statuses, triggers },
            stop,
            tasks,
        }
    }

    /// Every integration's status, by tenant and name.
    pub fn status(&self) -> Vec<IntegrationStatus> {
        self.handle.status()
    }

    /// A handle for showing statuses and triggering runs while the schedule runs.
    pub fn handle(&self) -> SchedulerHandle {
        self.handle.clone()
    }

    /// Stops every task: a run in progress is abandoned (nothing of it is applied unless its
    /// snapshot already reached the writer, in which case it commits and the next run
    /// re-reads from the old cursor, which is safe).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Up to `fraction` of `base`, at random.
fn jitter(base: Duration, fraction: f64) -> Duration {
    base.mul_f64(rand::rng().random_range(0.0..=fraction))
}

/// The longest an IdP's `Retry-After` postpones the next run, unless the interval is longer.
const RETRY_AFTER_HONOURED_MAX: Duration = Duration::from_secs(3600);

/// The wait before the next try after `consecutive_failures` failures (at least one): a minute,
/// doubling, never longer than `interval`; but no shorter than what the IdP asked for, up to an
/// hour or the interval.
fn failure_wait(interval: Duration, consecutive_failures: u32, retry_after: Option<Duration>) -> Duration {
    let doublings = consecutive_failures.saturating_sub(1).min(10);
    let backoff = Duration::from_secs(60).saturating_mul(1 << doublings).min(interval);
    let asked = retry_after
        .unwrap_or_default()
        .min(RETRY_AFTER_HONOURED_MAX.max(interval));
    backoff.max(asked)
}

/// One integration's task: what it runs and what it reports to.
struct Task {
    scheduled: Arc<Scheduled>,
    key: (TenantId, IntegrationName),
    statuses: Statuses,
    triggered: Arc<Notify>,
    stopped: watch::Receiver<bool>,
    /// Whether this replica holds the integration's lease.
    lease: watch::Receiver<bool>,
}

impl Task {
    /// Changes the integration's status.
    fn update(&self, change: impl FnOnce(&mut IntegrationStatus)) {
        if let Some(status) = self
            .statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&self.key)
        {
            change(status);
        }
    }
}

/// Holds the integration's lease while the scheduler runs: takes or renews it every
/// [`LEASE_RENEW_EVERY`], tells the integration's task whether it is held, and gives it up when
/// the scheduler stops, so that another replica takes over at once. A store that cannot be
/// asked counts as the lease lost: two replicas never both run the integration on purpose.
async fn keep_lease(
    mut lease: idpsync_engine::tenant::Lease,
    held: watch::Sender<bool>,
    statuses: Statuses,
    key: (TenantId, IntegrationName),
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let holds = match lease.hold().await {
            Ok(holds) => holds,
            Err(error) => {
                tracing::warn!(tenant = %key.0, integration = %key.1, %error, "cannot renew the integration's lease; standing by");
                false
            }
        };
        let changed = held.send_if_modified(|was| std::mem::replace(was, holds) != holds);
        if changed {
            tracing::info!(tenant = %key.0, integration = %key.1, held = holds, "the integration's lease changed hands");
        }
        if let Some(status) = statuses.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&key) {
            status.lease_held = holds;
        }
        tokio::select! {
            _ = tokio::time::sleep(LEASE_RENEW_EVERY) => {}
            _ = stopped.changed() => break,
        }
    }
    if let Err(error) = lease.release().await {
        tracing::warn!(tenant = %key.0, integration = %key.1, %error, "cannot give up the integration's lease; another replica takes it once it expires");
    }
}

/// Runs the integration's task until the scheduler stops, starting it again whenever it
/// panics: the panic is a failed run for the status and the back-off, not the end of the
/// integration.
async fn supervise(task: Task) {
    let task = Arc::new(task);
    let interval = task.scheduled.driver.config().interval;
    let mut first_wait = jitter(interval, 0.1);
    let mut restarts: u32 = 0;
    loop {
        let panic = match tokio::spawn(run_forever(Arc::clone(&task), first_wait)).await {
            Ok(()) => return,
            Err(error) if error.is_panic() => error.to_string(),
            // Cancelled: the runtime is going away.
            Err(_) => return,
        };
        if *task.stopped.borrow() {
            return;
        }
        restarts = restarts.saturating_add(1);
        first_wait = failure_wait(interval, restarts, None);
        let (tenant, integration) = &task.key;
        tracing::error!(%tenant, %integration, %panic, restart_in_ms = first_wait.as_millis() as u64, "the integration's task panicked; nothing of the run in progress was applied unless it had reached the engine; it restarts");
        metrics::counter!("idpsync_sync_task_restarts_total", "tenant" => tenant.to_string(), "integration" => integration.to_string()).increment(1);
        let message = format!(
            "the integration's task panicked ({panic}); it restarts in {}",
            humantime::format_duration(Duration::from_secs(first_wait.as_secs()))
        );
        task.update(|status| {
            if status.running {
                status.running = false;
                status.runs += 1;
                status.failures += 1;
                status.last_finished = Some(SystemTime::now());
            }
            status.restarts += 1;
            status.last_result = Some("failed");
            status.last_error = Some(message);
        });
    }
}

/// Runs the integration on its schedule, the first time after `first_wait`, until the
/// scheduler stops.
async fn run_forever(task: Arc<Task>, first_wait: Duration) {
    let scheduled = &task.scheduled;
    let key = &task.key;
    let mut stopped = task.stopped.clone();
    let interval = scheduled.driver.config().interval;
    let mut wait = first_wait;
    let mut consecutive_failures: u32 = 0;
    let mut lease = task.lease.clone();
    loop {
        if !*lease.borrow_and_update() {
            // Another replica runs it: stand by until this one takes the lease over, then
            // start as at a start.
            task.update(|status| status.next_run = None);
            tokio::select! {
                _ = lease.changed() => {}
                _ = stopped.changed() => return,
            }
            wait = jitter(interval, 0.1);
            continue;
        }
        task.update(|status| status.next_run = SystemTime::now().checked_add(wait));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = task.triggered.notified() => {}
            _ = lease.changed() => continue,
            _ = stopped.changed() => return,
        }
        task.update(|status| {
            status.running = true;
            status.last_started = Some(SystemTime::now());
        });
        let run_started = std::time::Instant::now();
        let run = sync_once(
            &scheduled.driver,
            &scheduled.tenant,
            &scheduled.cursors,
            Mode::Apply,
            Resync::Auto,
        );
        let result = tokio::select! {
            result = run => result,
            _ = stopped.changed() => return,
        };
        let outcome_label = match &result {
            Ok(outcome) if outcome.result == SyncResult::Held => "held",
            Ok(_) => "applied",
            Err(_) => "failed",
        };
        let labels = [
            ("tenant", key.0.to_string()),
            ("integration", key.1.to_string()),
            ("outcome", outcome_label.to_owned()),
        ];
        metrics::counter!("idpsync_sync_runs_total", &labels).increment(1);
        metrics::histogram!("idpsync_sync_seconds", &labels).record(run_started.elapsed());
        if outcome_label == "applied" {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            metrics::gauge!("idpsync_sync_last_success_timestamp_seconds", &labels[..2]).set(now.as_secs_f64());
        }
        let retry_after = match &result {
            Err(SyncError::Driver(error)) => error.retry_after(),
            _ => None,
        };
        match &result {
            Ok(outcome) => {
                consecutive_failures = 0;
                let label = match outcome.result {
                    SyncResult::Held => "held",
                    SyncResult::Applied | SyncResult::Planned => "applied",
                };
                tracing::info!(tenant = %key.0, integration = %key.1, result = label, changes = outcome.report.changes.len(), requests = outcome.requests, elapsed_ms = outcome.elapsed.as_millis() as u64, "sync finished");
                let counts = RunCounts::of(outcome);
                let warnings = outcome.warnings.clone();
                task.update(|status| {
                    status.last_result = Some(label);
                    status.last_error = None;
                    status.last_warnings = warnings;
                    status.last_counts = Some(counts);
                });
            }
            Err(error) => {
                consecutive_failures = consecutive_failures.saturating_add(1);
                tracing::warn!(tenant = %key.0, integration = %key.1, %error, "sync failed; nothing was applied");
                let message = error.to_string();
                task.update(|status| {
                    status.failures += 1;
                    status.last_result = Some("failed");
                    status.last_error = Some(message);
                });
            }
        }
        task.update(|status| {
            status.running = false;
            status.runs += 1;
            status.last_finished = Some(SystemTime::now());
        });
        wait = if consecutive_failures == 0 {
            interval - jitter(interval, 0.1) + jitter(interval, 0.1)
        } else {
            failure_wait(interval, consecutive_failures, retry_after)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hardening issue, must-fix 7: the IdP's `Retry-After` was the wait, however long: ten
    /// days parked the integration for ten days, and a number beyond the clock panicked its
    /// task.
    #[test]
    fn a_retry_after_is_honoured_up_to_an_hour_or_the_interval() {
        let five_minutes = Duration::from_secs(300);
        let hour = Duration::from_secs(3600);
        let day = Duration::from_secs(24 * 3600);
        assert_eq!(failure_wait(five_minutes, 1, None), Duration::from_secs(60));
        assert_eq!(failure_wait(five_minutes, 3, None), Duration::from_secs(240));
        assert_eq!(failure_wait(five_minutes, 30, None), five_minutes);
        assert_eq!(
            failure_wait(five_minutes, 1, Some(Duration::from_secs(90))),
            Duration::from_secs(90)
        );
        assert_eq!(failure_wait(five_minutes, 1, Some(10 * day)), hour);
        assert_eq!(failure_wait(five_minutes, 1, Some(Duration::MAX)), hour);
        assert_eq!(failure_wait(day, 1, Some(10 * day)), day);
        assert!(
            SystemTime::now()
                .checked_add(failure_wait(five_minutes, u32::MAX, Some(Duration::MAX)))
                .is_some()
        );
    }
}
