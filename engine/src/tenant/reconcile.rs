//! An integration's syncs on a tenant: planning a sync run (a dry run: nothing is written),
//! reconciling it through the writer, the reconciles the guard holds, and the recent runs the
//! guard adds up.
//!
//! A hold is set and cleared in one place, [`Holds::settle`], once the batch that decided it
//! is durable: a held reconcile sets its integration's hold (replacing an older one: the
//! newest listing is the one to review), and any reconcile of the integration that applied
//! clears it, confirmed or not: a newer listing supersedes what was held
//! ([`HoldChanges::note`] says which). An operator may also drop a hold
//! ([`Tenant::reject_held`]). A hold can be confirmed only as the hold of the run the operator
//! reviewed, and only until it is [`ReconcilePolicy::hold_expires_after`] old.
//!
//! The guard's window ([`ReconcilePolicy::hold_window`]) is the integration's applied runs that
//! took access away. The writer adds each one as it becomes durable; after a start, before the
//! first reconcile, it reads them back from the log: the records after the last one before the
//! window, folded from the nearest checkpoint or snapshot and counted run by run as the plan
//! counted them ([`Tenant::recall_recent_runs`]). So a restart forgets nothing the guard
//! counted. A run that the window says passed the limit was confirmed (the guard would have
//! held it otherwise), and starts the window again; read back after a restart, a run confirmed
//! only because of runs from before the window is not recognised as confirmed, which errs
//! towards holding.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use idpsync_storage::{Seq, TenantId, Timestamp};
use serde::Serialize;
use tokio::sync::oneshot;

use super::erasure::reconcile_view;
use super::{Committed, Job, Tenant};
use crate::decide::Outcome;
use crate::error::{EngineError, SubmitError};
use crate::event::Source;
use crate::ids::{IntegrationName, SyncRunId};
use crate::reconcile::{
    self, DirectorySnapshot, Guard, GuardCount, GuardMemory, RecentRemovals, ReconcilePolicy, ReconcileReport,
    Removals, SyncInput,
};
use crate::rejection::Rejection;
use crate::replay::replay_with;
use crate::state::State;

/// A reconcile the guard held, waiting for an operator.
#[derive(Clone, Debug, Serialize)]
pub struct HeldReconcile {
    /// What it would do.
    pub report: ReconcileReport,
    /// The snapshot, so that confirming applies exactly what was reviewed (re-planned against
    /// the state at confirmation).
    #[serde(skip)]
    pub snapshot: Arc<DirectorySnapshot>,
    /// The log's head when it was held.
    pub held_at: Seq,
    /// When it was held; it can be confirmed until [`ReconcilePolicy::hold_expires_after`]
    /// later.
    pub held_since: Timestamp,
}

impl HeldReconcile {
    /// When it can no longer be confirmed, under `policy`.
    pub fn expires_at(&self, policy: &ReconcilePolicy) -> Timestamp {
        Timestamp(self.held_since.0.saturating_add(micros(policy.hold_expires_after)))
    }
}

impl Tenant {
    /// Plans a sync run against the latest published state and writes nothing: what
    /// [`Tenant::reconcile`] with [`Guard::Enforce`] would do now. The report's `held` is set
    /// when the guard would hold it. The integration's recent runs are those the tenant has
    /// in memory: after a start, those the first reconcile read back from the log.
    pub fn plan(&self, input: SyncInput) -> ReconcileReport {
        let state = self.state();
        // As the writer does: the erased users the listing names are recognised.
        let view = reconcile_view(
            &state,
            &self.keyring,
            &input.integration,
            input.listing.named_user_ids(),
        );
        let snapshot = input.into_snapshot(&view);
        let now = Timestamp::now();
        let recent = self.holds.recent(&snapshot.integration, now, &self.settings.policy);
        let mut new_id = uuid::Uuid::now_v7;
        reconcile::plan(
            &view,
            &snapshot,
            Guard::Enforce,
            &self.settings.policy,
            recent,
            now,
            &mut new_id,
        )
        .into_report()
    }

    /// The users an incremental listing under `only_group_members` brings into scope
    /// without listing them, judged against the latest published state (see
    /// [`SyncInput::users_to_fetch`]): the driver reads them by id and adds them to the
    /// listing before [`Tenant::reconcile`].
    pub fn users_to_fetch(&self, input: &SyncInput) -> Vec<String> {
        let state = self.state();
        let view = reconcile_view(
            &state,
            &self.keyring,
            &input.integration,
            input.listing.named_user_ids(),
        );
        input.users_to_fetch(&view)
    }

    /// Reconciles a sync run through the writer, which turns the listing into a snapshot
    /// against its own state (after every earlier commit), then decides and commits it like any
    /// command. The report says what was applied; when its `held` is set the guard held the
    /// run, and only the hold was written.
    pub async fn reconcile(&self, input: SyncInput, guard: Guard) -> Result<ReconcileReport, SubmitError> {
        let pending = self
            .submit(|reply| Job::Reconcile {
                input: Box::new(input),
                guard,
                reply,
            })
            .await?;
        match pending.committed().await?.outcome {
            Outcome::Reconciled(report) | Outcome::Held(report) => Ok(report),
            other => unreachable!("a reconcile decides Reconciled or Held, not {other:?}"),
        }
    }

    /// The reconciles held by the guard, per integration.
    pub fn held(&self) -> BTreeMap<IntegrationName, HeldReconcile> {
        self.holds.lock().clone()
    }

    /// Applies an integration's held reconcile, re-planned against the current state, with the
    /// guard lifted: if it is still the hold of `run` (the one reviewed) and not older than
    /// [`ReconcilePolicy::hold_expires_after`]. Refused with [`Rejection::HoldSuperseded`] or
    /// [`Rejection::HoldExpired`] otherwise.
    pub async fn confirm_held(&self, integration: IntegrationName, run: SyncRunId) -> Result<Committed, SubmitError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::ConfirmHeld {
                integration,
                run,
                reply,
            })
            .await
            .map_err(|_| SubmitError::Closed)?;
        answer.await.unwrap_or(Err(SubmitError::Closed))
    }

    /// Drops an integration's held reconcile, in memory and in the store (durable when this
    /// returns); returns whether there was one.
    pub async fn reject_held(&self, integration: &IntegrationName) -> Result<bool, EngineError> {
        let rejected = {
            let mut holds = self.holds.lock();
            let rejected = holds.remove(integration).is_some();
            set_held_gauge(&self.id, holds.len());
            rejected
        };
        self.forget_stored_hold(integration).await?;
        Ok(rejected)
    }

    /// Reads the integrations' recent runs back from the log, once after a start (the writer
    /// calls it before the first reconcile, with nothing in flight, so that the log holds
    /// every run there is). If the log cannot be read, the guard judges with what it has and
    /// the next reconcile tries again.
    pub(super) async fn recall_recent_runs(&self) {
        if self.holds.runs().recalled {
            return;
        }
        let policy = &self.settings.policy;
        let window_start = Timestamp(Timestamp::now().0.saturating_sub(micros(policy.hold_window)));
        let before_window = self.seq_at(window_start).await;
        match self.runs_after(before_window, policy).await {
            Ok(runs) => *self.holds.runs() = runs,
            Err(error) => tracing::warn!(
                tenant = %self.id,
                %error,
                "cannot read the integrations' recent runs from the log; the guard counts only what it has seen since"
            ),
        }
    }

    /// The integrations' runs after `seq` that took access away, counted from the log.
    async fn runs_after(&self, seq: Seq, policy: &ReconcilePolicy) -> Result<Runs, EngineError> {
        let head = self.state().seq();
        let mut state = self.state_at(seq).await?;
        let mut runs = Runs {
            recalled: true,
            ..Runs::default()
        };
        let mut current: Option<RunReadBack> = None;
        // Opened with the tenant's keys: which users an integration owns is known by their
        // external ids, which are sealed with their profiles.
        let keyring = Arc::clone(&self.keyring);
        replay_with(&self.store, &self.id, &mut state, head, |state, event, _chain| {
            let run = match &event.envelope.source {
                Source::Integration { integration, run } => Some((integration, *run)),
                _ => None,
            };
            if current.as_ref().map(|read| (&read.integration, read.run)) != run {
                if let Some(done) = current.take() {
                    done.finish(state, policy, &mut runs);
                }
                current = run.map(|(integration, run)| RunReadBack::start(integration, run, state));
            }
            if let Some(read) = &mut current {
                read.removals.before(state, &event.envelope.event);
                read.at = event.recorded_at;
            }
            state.apply_mut(&event, &*keyring);
        })
        .await?;
        if let Some(done) = current.take() {
            done.finish(&state, policy, &mut runs);
        }
        Ok(runs)
    }
}

/// A run being read back from the log: its records so far.
struct RunReadBack {
    integration: IntegrationName,
    run: SyncRunId,
    /// Users the integration owned before the run.
    owned_users: u32,
    removals: Removals,
    /// When its last record so far was recorded.
    at: Timestamp,
}

impl RunReadBack {
    fn start(integration: &IntegrationName, run: SyncRunId, state: &State) -> RunReadBack {
        RunReadBack {
            integration: integration.clone(),
            run,
            owned_users: state.users_owned_by(integration).count() as u32,
            removals: Removals::default(),
            at: state.recorded_at(),
        }
    }

    /// Adds the run, read to its last record (`after` is the state then), to `runs`.
    fn finish(self, after: &State, policy: &ReconcilePolicy, runs: &mut Runs) {
        let (removals, deletions) = self.removals.count(after);
        let count = GuardCount {
            removals,
            deletions,
            owned_users: self.owned_users,
            earlier: runs.recent(&self.integration, self.at, policy),
            limit_permille: policy.hold_above_permille,
        };
        runs.add(self.integration, RunEntry::of(&count, self.at));
    }
}

/// An applied run that took access away, as the window remembers it.
#[derive(Clone, Copy, Debug)]
pub(super) struct RunEntry {
    /// When it was recorded.
    at: Timestamp,
    removals: u32,
    deletions: u32,
    /// It passed the limit and was applied: an operator confirmed it, and the window starts
    /// again after it (it is not kept).
    confirmed: bool,
}

impl RunEntry {
    fn of(count: &GuardCount, at: Timestamp) -> RunEntry {
        RunEntry {
            at,
            removals: count.removals,
            deletions: count.deletions,
            confirmed: count.over_limit(),
        }
    }
}

/// The integrations' recent runs that took access away, oldest first.
#[derive(Default)]
pub(super) struct Runs {
    /// Whether the runs from before the start were read back from the log.
    recalled: bool,
    by_integration: BTreeMap<IntegrationName, VecDeque<RunEntry>>,
}

impl Runs {
    /// What `integration`'s runs within the window before `now` removed, since the last
    /// confirmed one.
    fn recent(&self, integration: &IntegrationName, now: Timestamp, policy: &ReconcilePolicy) -> RecentRemovals {
        let window_start = now.0.saturating_sub(micros(policy.hold_window));
        let mut recent = RecentRemovals::default();
        let within = self.by_integration.get(integration).into_iter().flatten();
        for entry in within.filter(|entry| entry.at.0 > window_start) {
            recent.removals += entry.removals;
            recent.deletions += entry.deletions;
        }
        recent
    }

    /// Adds a run; a confirmed one instead forgets the integration's runs up to it, and one
    /// that removed nothing changes nothing.
    fn add(&mut self, integration: IntegrationName, entry: RunEntry) {
        if entry.confirmed {
            self.by_integration.remove(&integration);
        } else if entry.removals > 0 {
            self.by_integration.entry(integration).or_default().push_back(entry);
        }
    }

    /// Forgets runs recorded at or before `window_start`.
    fn forget_before(&mut self, window_start: i64) {
        for entries in self.by_integration.values_mut() {
            while entries.front().is_some_and(|entry| entry.at.0 <= window_start) {
                entries.pop_front();
            }
        }
        self.by_integration.retain(|_, entries| !entries.is_empty());
    }
}

/// A tenant's held reconciles, per integration, and the recent runs the guard adds up.
#[derive(Default)]
pub(super) struct Holds {
    held: Mutex<BTreeMap<IntegrationName, HeldReconcile>>,
    runs: Mutex<Runs>,
}

impl Holds {
    // std mutexes: held for short, synchronous sections only, never across an await.
    fn lock(&self) -> MutexGuard<'_, BTreeMap<IntegrationName, HeldReconcile>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn runs(&self) -> MutexGuard<'_, Runs> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What `integration`'s recent runs removed, as of `now`.
    fn recent(&self, integration: &IntegrationName, now: Timestamp, policy: &ReconcilePolicy) -> RecentRemovals {
        self.runs().recent(integration, now, policy)
    }

    /// The integration's hold, if it can be confirmed now: it is the hold of `run`, the one an
    /// operator reviewed, and it is not older than the policy allows.
    pub(super) fn confirmable(
        &self,
        integration: &IntegrationName,
        run: SyncRunId,
        now: Timestamp,
        policy: &ReconcilePolicy,
    ) -> Result<HeldReconcile, Rejection> {
        let held = self
            .lock()
            .get(integration)
            .cloned()
            .ok_or_else(|| Rejection::Invalid {
                field: "integration".to_owned(),
                reason: format!("integration {integration} has no held sync"),
            })?;
        if held.snapshot.run != run {
            return Err(Rejection::HoldSuperseded {
                integration: integration.clone(),
                run,
                held: held.snapshot.run,
            });
        }
        if now >= held.expires_at(policy) {
            return Err(Rejection::HoldExpired {
                integration: integration.clone(),
                held_since: held.held_since,
            });
        }
        Ok(held)
    }

    /// What `decide` needs to know as of `now`: each standing hold's summary (a hold that
    /// stands is not logged again on every poll) and each integration's recent removals.
    pub(super) fn memory(&self, now: Timestamp, policy: &ReconcilePolicy) -> GuardMemory {
        let holds = self
            .lock()
            .iter()
            .filter_map(|(name, held)| held.report.held.clone().map(|summary| (name.clone(), summary)))
            .collect();
        let runs = self.runs();
        let recent = runs
            .by_integration
            .keys()
            .map(|integration| (integration.clone(), runs.recent(integration, now, policy)))
            .collect();
        GuardMemory { holds, recent }
    }

    /// Makes `held` the integration's hold again, as read back from the store after a start.
    pub(super) fn restore(&self, tenant: &TenantId, integration: IntegrationName, held: HeldReconcile) {
        let mut holds = self.lock();
        holds.insert(integration, held);
        set_held_gauge(tenant, holds.len());
    }

    /// Applies what a durable batch did to the holds and the recent runs.
    pub(super) fn settle(&self, changes: HoldChanges, tenant: &TenantId, policy: &ReconcilePolicy) {
        let mut holds = self.lock();
        for integration in changes.cleared {
            holds.remove(&integration);
        }
        holds.extend(changes.set);
        set_held_gauge(tenant, holds.len());
        drop(holds);
        let mut runs = self.runs();
        runs.forget_before(Timestamp::now().0.saturating_sub(micros(policy.hold_window)));
        for (integration, entry) in changes.runs {
            runs.add(integration, entry);
        }
    }
}

/// Sets the gauge of held syncs, after every change to the holds.
fn set_held_gauge(tenant: &TenantId, holds: usize) {
    metrics::gauge!("idpsync_held_syncs", "tenant" => tenant.to_string()).set(holds as f64);
}

/// A duration in microseconds, as [`Timestamp`]s count.
fn micros(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// What a batch does to the holds and the recent runs once it is durable.
#[derive(Default)]
pub(super) struct HoldChanges {
    set: Vec<(IntegrationName, HeldReconcile)>,
    cleared: Vec<IntegrationName>,
    runs: Vec<(IntegrationName, RunEntry)>,
}

/// When a reconcile was decided, for [`HoldChanges::note`].
#[derive(Clone, Copy)]
pub(super) struct DecidedAt {
    /// The log's head with the reconcile's records.
    pub(super) head: Seq,
    /// When its last record was recorded.
    pub(super) recorded_at: Timestamp,
    /// The writer's clock.
    pub(super) now: Timestamp,
}

impl HoldChanges {
    /// The holds it sets and the integrations whose hold it clears, for the store.
    pub(super) fn to_store(&self) -> (Vec<(IntegrationName, HeldReconcile)>, Vec<IntegrationName>) {
        (self.set.clone(), self.cleared.clone())
    }

    /// Notes what a decided reconcile of `snapshot` does: a held one sets its integration's
    /// hold, and one that applied, confirmed or not, clears it (a newer listing supersedes a
    /// held one) and, if it took access away, joins the recent runs.
    pub(super) fn note(&mut self, snapshot: &DirectorySnapshot, outcome: &Outcome, at: DecidedAt) {
        let integration = snapshot.integration.clone();
        match outcome {
            Outcome::Held(report) => self.set.push((
                integration,
                HeldReconcile {
                    report: report.clone(),
                    snapshot: Arc::new(snapshot.clone()),
                    held_at: at.head,
                    held_since: at.now,
                },
            )),
            Outcome::Reconciled(report) => self.note_applied(integration, &report.guard, &at),
            _ => {}
        }
    }

    /// Notes a reconcile of `integration` that applied, with what the guard counted: it
    /// clears the integration's hold and, if it took access away, joins the recent runs.
    pub(super) fn note_applied(&mut self, integration: IntegrationName, guard: &GuardCount, at: &DecidedAt) {
        self.cleared.push(integration.clone());
        self.runs.push((integration, RunEntry::of(guard, at.recorded_at)));
    }
}
