//! [`Scheduler`]: runs every integration on its interval, with jitter, never two runs of one
//! integration at once (each has one task that runs, then sleeps), and keeps each one's status:
//! last outcome, last error and counts, for the service to show.
//!
//! After a failure the next try comes sooner than the interval (one minute, doubling, never
//! later than the interval), but never before the IdP's own `Retry-After`. A
//! [`SchedulerHandle`] shows the statuses and starts a run at once on request.
//!
//! Every finished run is counted in `idpsync_sync_runs_total{tenant, integration, outcome}`
//! and timed in `idpsync_sync_seconds{tenant, integration, outcome}` (the `metrics` facade).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use idpsync_engine::Tenant;
use idpsync_engine::ids::{IntegrationName, TenantId};
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
        let tasks = keyed
            .into_iter()
            .map(|(key, scheduled, notify)| {
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
                        last_counts: None,
                        next_run: None,
                    },
                );
                tokio::spawn(run_forever(
                    scheduled,
                    key,
                    Arc::clone(&statuses),
                    notify,
                    stopped.clone(),
                ))
            })
            .collect();
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

async fn run_forever(
    scheduled: Scheduled,
    key: (TenantId, IntegrationName),
    statuses: Statuses,
    triggered: Arc<Notify>,
    mut stopped: watch::Receiver<bool>,
) {
    let interval = scheduled.driver.config().interval;
    let update = |change: &dyn Fn(&mut IntegrationStatus)| {
        if let Some(status) = statuses.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&key) {
            change(status);
        }
    };
    let mut wait = jitter(interval, 0.1);
    let mut consecutive_failures: u32 = 0;
    loop {
        update(&|status| status.next_run = Some(SystemTime::now() + wait));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = triggered.notified() => {}
            _ = stopped.changed() => return,
        }
        update(&|status| {
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
                update(&|status| {
                    status.last_result = Some(label);
                    status.last_error = None;
                    status.last_counts = Some(counts);
                });
            }
            Err(error) => {
                consecutive_failures += 1;
                tracing::warn!(tenant = %key.0, integration = %key.1, %error, "sync failed; nothing was applied");
                let message = error.to_string();
                update(&|status| {
                    status.failures += 1;
                    status.last_result = Some("failed");
                    status.last_error = Some(message.clone());
                });
            }
        }
        update(&|status| {
            status.running = false;
            status.runs += 1;
            status.last_finished = Some(SystemTime::now());
        });
        wait = if consecutive_failures == 0 {
            interval - jitter(interval, 0.1) + jitter(interval, 0.1)
        } else {
            let backoff = Duration::from_secs(60).saturating_mul(1 << (consecutive_failures - 1).min(10));
            backoff.min(interval).max(retry_after.unwrap_or_default())
        };
    }
}
