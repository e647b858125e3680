//! The per-tenant writer task: the queue, deciding, and the group-commit pipeline.
//!
//! It takes every job waiting in its queue (up to a bound), decides each against the state as
//! the jobs before it left it, seals and stamps their events and applies them speculatively
//! (`apply.rs`: fold and project), then appends all records in one batch. Only after the append
//! is durable does it publish the batch (`publish.rs`: history index, state, change feed,
//! checkpoints), start a snapshot if one is due (`snapshotter.rs`), destroy the keys of erased
//! users, settle the holds, and answer the callers, in that order; if the append fails, it
//! drops the speculative state and every caller of the batch gets the error. A rejected command
//! is answered at once and leaves nothing in the batch.
//!
//! The writer is pipelined one batch deep: while a batch's append waits for the disk, it decides
//! the next batch on top of the first one's speculative state, and appends it as soon as the
//! first is durable. Deciding thus overlaps the flush instead of adding to it. The next batch is
//! answered and published only after its own append, so nothing is visible or acknowledged
//! before it is durable; if the first append fails, the next batch, decided on top of it, fails
//! with it. Jobs that depend on what a commit leaves outside the state (held syncs, destroyed
//! keys, snapshots, shutdown) wait until nothing is in flight.

use std::sync::Arc;

use idpsync_storage::{AppendBatch, Appended, EventId, NewRecord, Seq, StoreError, Timestamp};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::apply::{AppliedBatch, ToApply};
use super::erasure::{destroy_key, reconcile_view};
use super::publish::Publisher;
use super::reconcile::{DecidedAt, HoldChanges};
use super::snapshotter::Snapshotter;
use super::turn::Turn;
use super::{Committed, Job, Tenant};
use crate::command::{Command, Origin};
use crate::decide::{DecideContext, Decision, Outcome, decide};
use crate::error::{EngineError, SubmitError};
use crate::event::{Cause, ENVELOPE_VERSION, Envelope, Event, LoggedEvent, Personal, encode};
use crate::ids::{IntegrationName, SyncRunId, UserId};
use crate::reconcile::{Guard, GuardCount, GuardMemory, SyncInput};
use crate::rejection::Rejection;
use crate::replay::replay_with;
use crate::seal::{Keyring, LookupKey, PersonalFields, UserKey, seal};
use crate::state::State;

/// Builds a tenant around its loaded state and starts its writer.
pub(crate) fn start(
    id: idpsync_storage::TenantId,
    store: Arc<dyn idpsync_storage::LogStore>,
    settings: super::TenantSettings,
    state: State,
    history: super::StartingHistory,
    keyring: Arc<Keyring>,
    last_snapshot: Seq,
) -> Arc<Tenant> {
    let (history, sections) = super::HistoryIndex::starting(history);
    let (jobs, receiver) = mpsc::channel(settings.commands_per_batch_max * 4);
    let (feed, _) = tokio::sync::broadcast::channel(super::FEED_SLICES);
    let tenant = Arc::new(Tenant {
        id,
        store,
        settings,
        published: arc_swap::ArcSwap::from_pointee(state.clone()),
        history,
        keyring,
        jobs,
        feed,
        recent: Default::default(),
        checkpoints: Default::default(),
        erasures: tokio::sync::watch::channel(0).0,
        holds: Default::default(),
        acks: Default::default(),
        append_conflicts: Default::default(),
    });
    let writer = Writer {
        tenant: Arc::clone(&tenant),
        receiver,
        publisher: Publisher::new(Arc::clone(&tenant), state.seq()),
        snapshotter: Snapshotter::new(Arc::clone(&tenant), last_snapshot),
        state,
        in_flight: None,
        next: None,
        behind_the_log: false,
        failed: None,
        turn: Turn::default(),
    };
    if let Some(sections) = sections {
        super::history_index::start_loading(&tenant, sections);
    }
    tokio::spawn(async move {
        // Whoever asked for the shutdown hears of it only once the writer, and with it its hold
        // on the store, is gone: the log can be reopened at once.
        if let Some(done) = writer.run().await {
            let _ = done.send(());
        }
    });
    tenant
}

struct Writer {
    tenant: Arc<Tenant>,
    receiver: mpsc::Receiver<Job>,
    /// The state including every committed record, and during a batch the speculative ones.
    state: State,
    /// Makes durable batches visible.
    publisher: Publisher,
    /// Takes the snapshots.
    snapshotter: Snapshotter,
    /// The batch whose append is on its way to the disk.
    in_flight: Option<InFlight>,
    /// The batch being decided on top of it, appended once it is durable.
    next: Option<Batch>,
    /// The log may hold more than `state`: an append failed (a commit can reach the disk and
    /// still report an error), or the writer just took its turn after other replicas had
    /// theirs; the next round first reads what is there.
    behind_the_log: bool,
    /// The error of the last append that failed, for [`Writer::commit_now`].
    failed: Option<Arc<StoreError>>,
    /// Its turn to append, on a store other replicas append to.
    turn: Turn,
}

/// A batch whose append was handed to the store.
struct InFlight {
    batch: Batch,
    /// `None` when the batch has no records (every command in it was a no-op): it still waits
    /// its turn, so that its answers follow the commits they were decided on.
    append: Option<JoinHandle<Result<Appended, StoreError>>>,
}

/// Whether the writer goes on after a round of jobs.
enum Flow {
    Continue,
    /// Shut down; answer the sender once the writer is dropped.
    Stop(oneshot::Sender<()>),
}

/// What one round of the writer has decided and not yet committed.
struct Batch {
    /// The state the batch was decided on; restored if its append fails.
    base: State,
    /// The state after the batch: what is published once it is durable.
    after: State,
    records: Vec<NewRecord>,
    /// Its events applied, to be published once it is durable.
    applied: AppliedBatch,
    /// Keys generated for users first sealed in this batch; stored with its records.
    new_keys: foldhash::HashMap<UserId, UserKey>,
    /// The tenant's lookup key, when the batch's first erasure needed it; stored with its
    /// records.
    new_lookup_key: Option<LookupKey>,
    /// Users erased in this batch, whose keys are destroyed once it is durable.
    erased: Vec<UserId>,
    /// The commands decided into it, answered once it is durable.
    decided: Vec<Decided>,
    /// What its reconciles do to the holds.
    holds: HoldChanges,
}

/// A command decided into a batch: its answer once the batch is durable, and what it takes to
/// decide it again if another writer appended at the batch's place first.
struct Decided {
    reply: oneshot::Sender<Result<Committed, SubmitError>>,
    committed: Committed,
    /// `None` for the last part of a sync run committed in parts: its earlier parts are in
    /// the log, so it is not decided again; the integration's next run plans again.
    command: Option<Command>,
    origin: Origin,
    /// How many times it was decided before, each time on a log another writer had moved on.
    attempts: u32,
}

/// How many times a command is decided again after another writer took its place in the log
/// before it fails with the conflict: each time the writer first folds in what the other
/// appended, so only a tenant written to faster than it can catch up gets there.
const REDECIDE_MAX: u32 = 16;

impl Batch {
    fn new(base: State) -> Batch {
        Batch {
            after: base.clone(),
            base,
            records: Vec::new(),
            applied: AppliedBatch::default(),
            new_keys: foldhash::HashMap::default(),
            new_lookup_key: None,
            erased: Vec::new(),
            decided: Vec::new(),
            holds: HoldChanges::default(),
        }
    }
}

impl Job {
    /// Whether the job must see every earlier commit finished, not just its state: held syncs
    /// and destroyed keys change outside the state when a batch commits, a sync run's listing
    /// is compared with durable state; snapshots and shutdown write what is durable.
    fn needs_quiet(&self) -> bool {
        match self {
            Job::Command { command, .. } => command_needs_quiet(command),
            Job::Reconcile { .. }
            | Job::ConfirmHeld { .. }
            | Job::Snapshot { .. }
            | Job::CatchUp { .. }
            | Job::Shutdown { .. } => true,
        }
    }

    /// Whether the job may append to the log, and so needs the writer's turn.
    fn appends(&self) -> bool {
        match self {
            Job::Command { .. } | Job::Reconcile { .. } | Job::ConfirmHeld { .. } => true,
            Job::Snapshot { .. } | Job::CatchUp { .. } | Job::Shutdown { .. } => false,
        }
    }

    /// Whether the job reconciles, and so needs the guard's window.
    fn reconciles(&self) -> bool {
        match self {
            Job::Command { command, .. } => command_reconciles(command),
            Job::Reconcile { .. } | Job::ConfirmHeld { .. } => true,
            Job::Snapshot { .. } | Job::CatchUp { .. } | Job::Shutdown { .. } => false,
        }
    }
}

fn command_reconciles(command: &Command) -> bool {
    match command {
        Command::Reconcile { .. } => true,
        Command::Atomic(commands) => commands.iter().any(command_reconciles),
        _ => false,
    }
}

fn command_needs_quiet(command: &Command) -> bool {
    match command {
        Command::Reconcile { .. } | Command::EraseUser { .. } => true,
        Command::Atomic(commands) => commands.iter().any(command_needs_quiet),
        _ => false,
    }
}

impl Writer {
    /// Runs until the queue closes or a shutdown; returns the shutdown's answer, to be sent once
    /// the writer is dropped.
    async fn run(mut self) -> Option<oneshot::Sender<()>> {
        let batch_max = self.tenant.settings.commands_per_batch_max;
        let mut open = true;
        loop {
            // Nothing waits behind an empty pipeline.
            self.submit_next();
            let quiet = self.in_flight.is_none() && self.next.is_none();
            self.turn.tend(quiet).await;
            let room = self.next.as_ref().is_none_or(|next| next.decided.len() < batch_max) && self.turn.takes_jobs();
            let idle_wait = self.turn.idle_wait().filter(|_| quiet);
            if !open && self.in_flight.is_none() {
                break;
            }
            tokio::select! {
                biased;
                result = wait_for(&mut self.in_flight), if self.in_flight.is_some() => {
                    let batch = self.in_flight.take().expect("polled only when in flight").batch;
                    self.finish(batch, result).await;
                }
                job = self.receiver.recv(), if open && room => match job {
                    None => open = false,
                    Some(first) => {
                        let mut jobs = vec![first];
                        while jobs.len() < batch_max {
                            match self.receiver.try_recv() {
                                Ok(job) => jobs.push(job),
                                Err(_) => break,
                            }
                        }
                        if let Flow::Stop(done) = self.take(jobs).await {
                            self.turn.release().await;
                            return Some(done);
                        }
                    }
                },
                () = tokio::time::sleep(idle_wait.unwrap_or_default()), if idle_wait.is_some() => self.turn.idle().await,
            }
        }
        self.turn.release().await;
        self.snapshotter.finish(&self.state).await;
        None
    }

    /// Decides a round of jobs into the next batch.
    async fn take(&mut self, jobs: Vec<Job>) -> Flow {
        self.turn.busy();
        if self.turn.is_wanted(&self.tenant) && jobs.iter().any(Job::appends) {
            // What it decided without the turn is appended first, on the head it had.
            self.drain().await;
            if self.turn.take(&self.tenant).await {
                self.behind_the_log = true;
            }
        }
        if self.behind_the_log {
            self.drain().await;
            match self.catch_up().await {
                Ok(()) => self.behind_the_log = false,
                // The store is still failing: the round's appends will fail cleanly too, on
                // the head they were decided on, and the next round tries again.
                Err(error) => {
                    tracing::warn!(tenant = %self.tenant.id, %error, "cannot read the log's head after a failed append")
                }
            }
        }
        for job in jobs {
            if job.needs_quiet() {
                self.drain().await;
            }
            if job.reconciles() {
                // Nothing is in flight: the log holds every run the guard's window may need.
                self.tenant.recall_recent_runs().await;
            }
            match job {
                Job::Command { command, origin, reply } => match *command {
                    command @ Command::Reconcile { .. } => self.decide_reconcile(command, origin, reply).await,
                    command => self.decide_one(command, origin, reply, 0),
                },
                Job::Reconcile { input, guard, reply } => self.reconcile(*input, guard, reply).await,
                Job::ConfirmHeld {
                    integration,
                    run,
                    reply,
                } => match self.hold_is_still_kept(&integration, run).await {
                    Ok(()) => self.confirm_held(integration, run, reply).await,
                    Err(refusal) => {
                        let _ = reply.send(Err(refusal));
                    }
                },
                // Nothing is in flight: the state is durable.
                Job::Snapshot { reply } => self.snapshotter.now(self.state.clone(), reply),
                Job::CatchUp { to, reply } => {
                    let caught_up = match self.state.seq() >= to {
                        true => Ok(()),
                        false => self.catch_up().await,
                    };
                    let _ = reply.send(caught_up.map(|()| self.state.seq()));
                }
                Job::Shutdown { done } => {
                    self.snapshotter.finish(&self.state).await;
                    return Flow::Stop(done);
                }
            }
        }
        Flow::Continue
    }

    /// Decides a sync run: its listing becomes a snapshot against the writer's state, which
    /// (nothing being in flight) is the durable one.
    async fn reconcile(
        &mut self,
        input: SyncInput,
        guard: Guard,
        reply: oneshot::Sender<Result<Committed, SubmitError>>,
    ) {
        let origin = Origin::integration(input.integration.clone(), input.run);
        let view = reconcile_view(
            &self.state,
            &self.tenant.keyring,
            &input.integration,
            input.listing.named_user_ids(),
        );
        let snapshot = input.into_snapshot(&view);
        drop(view);
        let command = Command::Reconcile {
            snapshot: Box::new(snapshot),
            guard,
        };
        self.decide_reconcile(command, origin, reply).await;
    }

    async fn confirm_held(
        &mut self,
        integration: IntegrationName,
        run: SyncRunId,
        reply: oneshot::Sender<Result<Committed, SubmitError>>,
    ) {
        let policy = &self.tenant.settings.policy;
        match self
            .tenant
            .holds
            .confirmable(&integration, run, Timestamp::now(), policy)
        {
            Err(rejection) => {
                let _ = reply.send(Err(SubmitError::Rejected(rejection)));
            }
            Ok(held) => {
                let origin = Origin::integration(integration, held.snapshot.run);
                let command = Command::Reconcile {
                    snapshot: Box::new((*held.snapshot).clone()),
                    guard: Guard::Confirmed,
                };
                drop(held);
                self.decide_reconcile(command, origin, reply).await;
            }
        }
    }

    /// On a store replicas share, whether the store still keeps `integration`'s hold as the
    /// hold of `run`: another replica's newer run may have cleared or replaced it since this
    /// replica's memory was set. The refusal to answer with when not (or when the store cannot
    /// say).
    async fn hold_is_still_kept(&self, integration: &IntegrationName, run: SyncRunId) -> Result<(), SubmitError> {
        if !self.tenant.store_is_shared() {
            return Ok(());
        }
        let refusal = match self.tenant.stored_hold_run(integration).await {
            Ok(Some(kept)) if kept == run => return Ok(()),
            Ok(Some(kept)) => SubmitError::Rejected(Rejection::HoldSuperseded {
                integration: integration.clone(),
                run,
                held: kept,
            }),
            Ok(None) => SubmitError::Rejected(Rejection::Invalid {
                field: "integration".to_owned(),
                reason: format!("integration {integration} has no held sync"),
            }),
            Err(EngineError::Store(error)) => SubmitError::Storage(Arc::new(error)),
            Err(error) => SubmitError::Storage(Arc::new(StoreError::backend(
                "reading the held sync",
                std::io::Error::other(error.to_string()),
            ))),
        };
        tracing::info!(tenant = %self.tenant.id, %integration, %refusal, "a held sync is no longer the one to confirm");
        Err(refusal)
    }

    /// Commits everything decided so far and waits until nothing is in flight.
    async fn drain(&mut self) {
        loop {
            self.submit_next();
            let Some(mut in_flight) = self.in_flight.take() else {
                return;
            };
            let result = wait_for_batch(&mut in_flight).await;
            self.finish(in_flight.batch, result).await;
        }
    }

    /// Hands the next batch's records to the store, if there is a next batch and nothing else
    /// is in flight.
    fn submit_next(&mut self) {
        if self.in_flight.is_some() {
            return;
        }
        let Some(mut batch) = self.next.take() else {
            return;
        };
        batch.after = self.state.clone();
        let append = (!batch.records.is_empty()).then(|| {
            let append = AppendBatch {
                tenant: self.tenant.id.clone(),
                first_seq: batch.base.seq().next(),
                records: std::mem::take(&mut batch.records),
                secrets: batch
                    .new_keys
                    .iter()
                    .map(|(user, key)| key.to_secret(*user))
                    .chain(batch.new_lookup_key.as_ref().map(LookupKey::to_secret))
                    .collect(),
            };
            let store = Arc::clone(&self.tenant.store);
            let tenant_label = self.tenant.id.to_string();
            tokio::spawn(async move {
                let records = append.records.len() as u64;
                let started = std::time::Instant::now();
                let result = store.append(append).await;
                metrics::histogram!("idpsync_append_seconds", "tenant" => tenant_label.clone())
                    .record(started.elapsed());
                if let Ok(appended) = &result {
                    metrics::counter!("idpsync_events_appended_total", "tenant" => tenant_label.clone())
                        .increment(records);
                    metrics::gauge!("idpsync_log_head_seq", "tenant" => tenant_label).set(appended.head.seq.0 as f64);
                }
                result
            })
        });
        self.in_flight = Some(InFlight { batch, append });
    }

    /// Decides `command` into the next batch; a rejection is answered at once and adds nothing.
    /// `attempts` counts the times it was decided before, on a log another writer moved on.
    fn decide_one(
        &mut self,
        command: Command,
        origin: Origin,
        reply: oneshot::Sender<Result<Committed, SubmitError>>,
        attempts: u32,
    ) {
        let now = Timestamp::now();
        let decision = match self.decide_command(&command, &origin, now) {
            Ok(decision) => decision,
            Err(rejection) => {
                let _ = reply.send(Err(SubmitError::Rejected(rejection)));
                return;
            }
        };
        self.decide_decided(command, decision, origin, reply, attempts, now);
    }

    /// Decides a reconcile (nothing being in flight): planned and judged by the guard whole,
    /// like any command. A plan that applies more than
    /// [`TenantSettings::reconcile_events_per_batch`](super::TenantSettings) events is then
    /// committed in parts ([`Writer::apply_in_parts`]), the snapshot dropped first.
    async fn decide_reconcile(
        &mut self,
        command: Command,
        origin: Origin,
        reply: oneshot::Sender<Result<Committed, SubmitError>>,
    ) {
        let per_batch = self.tenant.settings.reconcile_events_per_batch.max(1);
        let now = Timestamp::now();
        let decision = match self.decide_command(&command, &origin, now) {
            Ok(decision) => decision,
            Err(rejection) => {
                let _ = reply.send(Err(SubmitError::Rejected(rejection)));
                return;
            }
        };
        let (Command::Reconcile { snapshot, .. }, Outcome::Reconciled(report)) = (&command, &decision.outcome) else {
            return self.decide_decided(command, decision, origin, reply, 0, now);
        };
        if decision.events.len() <= per_batch {
            return self.decide_decided(command, decision, origin, reply, 0, now);
        }
        let applied = AppliedRun {
            integration: snapshot.integration.clone(),
            guard: report.guard,
        };
        drop(command);
        self.apply_in_parts(decision, applied, origin, reply, now).await;
    }

    /// Adds `command`, decided on the writer's state at `now`, to the next batch, to be
    /// answered once the batch is durable.
    fn decide_decided(
        &mut self,
        command: Command,
        decision: Decision,
        origin: Origin,
        reply: oneshot::Sender<Result<Committed, SubmitError>>,
        attempts: u32,
        now: Timestamp,
    ) {
        let events = decision.events.len() as u64;
        let at = self.log_into_next(decision.events, now);
        let batch = self.next.as_mut().expect("the batch the events went into");
        if let Command::Reconcile { snapshot, .. } = &command {
            batch.holds.note(snapshot, &decision.outcome, at);
        }
        batch.decided.push(Decided {
            reply,
            committed: Committed {
                events,
                head: at.head,
                outcome: decision.outcome,
            },
            command: Some(command),
            origin,
            attempts,
        });
    }

    /// Commits a reconcile's events in parts of
    /// [`TenantSettings::reconcile_events_per_batch`](super::TenantSettings), in the plan's
    /// order: each part is sealed, encoded, folded, appended and published before the next,
    /// and the events of a part are dropped once logged. The guard judged the whole plan
    /// before the first part (a held plan writes only its hold), so parts never add up to more
    /// than it allowed. Each part continues the one before on the state it left, so if an
    /// append fails (or the process stops) between parts, the log holds a prefix of the plan:
    /// every record valid, the run answered with the error, and the integration's next run
    /// plans what is left against it. The last part joins the next batch like any command and
    /// is answered with the whole run's count; it is not decided again on a conflict.
    async fn apply_in_parts(
        &mut self,
        decision: Decision,
        applied: AppliedRun,
        origin: Origin,
        reply: oneshot::Sender<Result<Committed, SubmitError>>,
        now: Timestamp,
    ) {
        let per_batch = self.tenant.settings.reconcile_events_per_batch.max(1);
        let Decision { events, outcome } = decision;
        let total = events.len() as u64;
        let mut events = events.into_iter();
        while events.len() > per_batch {
            let part: Vec<Envelope> = events.by_ref().take(per_batch).collect();
            self.log_into_next(part, now);
            if let Err(error) = self.commit_now().await {
                tracing::warn!(tenant = %self.tenant.id, integration = %applied.integration, "a sync run's part failed to commit; the next run plans what is left");
                let _ = reply.send(Err(error));
                return;
            }
        }
        let at = self.log_into_next(events.collect(), now);
        let batch = self.next.as_mut().expect("the batch the events went into");
        batch.holds.note_applied(applied.integration, &applied.guard, &at);
        batch.decided.push(Decided {
            reply,
            committed: Committed {
                events: total,
                head: at.head,
                outcome,
            },
            command: None,
            origin,
            attempts: 0,
        });
    }

    /// What `command` decides on the writer's state at `now`.
    fn decide_command(&self, command: &Command, origin: &Origin, now: Timestamp) -> Result<Decision, Rejection> {
        // Only a reconcile asks the guard.
        let guard = if command_reconciles(command) {
            self.tenant.holds.memory(now, &self.tenant.settings.policy)
        } else {
            GuardMemory::default()
        };
        let mut new_id = uuid::Uuid::now_v7;
        let mut context = DecideContext {
            new_id: &mut new_id,
            policy: &self.tenant.settings.policy,
            guard: &guard,
            now,
        };
        // A reconcile is decided on the state with the erased users its listing names
        // recognisable; its events name users by their ids, and are folded into the state itself.
        match command {
            Command::Reconcile { snapshot, .. } => {
                let view = reconcile_view(
                    &self.state,
                    &self.tenant.keyring,
                    &snapshot.integration,
                    snapshot.named_user_ids(),
                );
                decide(&view, command, origin, &mut context)
            }
            _ => decide(&self.state, command, origin, &mut context),
        }
    }

    /// Seals, stamps and encodes `events` into the next batch and folds them into the state;
    /// returns where that leaves the log.
    fn log_into_next(&mut self, events: Vec<Envelope>, now: Timestamp) -> DecidedAt {
        let mut batch = self.next.take().unwrap_or_else(|| Batch::new(self.state.clone()));
        let logged = self.log_events(&mut batch, events);
        batch.applied.apply(&mut self.state, logged, &*self.tenant.keyring);
        self.next = Some(batch);
        DecidedAt {
            head: self.state.seq(),
            recorded_at: self.state.recorded_at(),
            now,
        }
    }

    /// Commits everything decided so far and waits until it is durable and published; the
    /// error if an append failed.
    async fn commit_now(&mut self) -> Result<(), SubmitError> {
        self.failed = None;
        self.drain().await;
        self.failed
            .take()
            .map_or(Ok(()), |error| Err(SubmitError::Storage(error)))
    }

    /// Seals what a user event logs of the person, in place: its cause, when an IdP object
    /// (for a user event, the user: its id is the user's externalId; the IdP's time of the
    /// change, if the cause has one, stays); an erasure's externalId, of which it logs only the
    /// keyed hash; and its profile and externalId. Returns the fields sealed, which the fold
    /// can use without decrypting what was just encrypted.
    fn seal(&self, batch: &mut Batch, envelope: &mut Envelope) -> Option<(UserId, PersonalFields)> {
        if !self.tenant.settings.seal_personal {
            return None;
        }
        if envelope.event.user().is_some() {
            match envelope.cause {
                Cause::IdpObject(_) => envelope.cause = Cause::IdpUser,
                Cause::IdpObjectChanged { at, .. } => envelope.cause = Cause::IdpUserChanged { at },
                _ => {}
            }
        }
        if let Event::UserErased { user } = envelope.event {
            envelope.event = self.erasure_with_lookup(batch, user);
            return None;
        }
        self.seal_fields(batch, &mut envelope.event)
    }

    /// The erasure of `user`, keeping the keyed hash of the externalId it has now (under the
    /// tenant's lookup key, made at the first erasure that needs one).
    fn erasure_with_lookup(&self, batch: &mut Batch, user: UserId) -> Event {
        let external_id = self.state.user(user).and_then(|record| record.external_id.as_deref());
        Event::UserErasedWithLookup {
            user,
            external_id_hash: external_id.map(|external_id| self.lookup_key(batch).hash(external_id)),
        }
    }

    /// Seals the profile and externalId of a user event under the user's key (generated for a
    /// user sealed for the first time).
    fn seal_fields(&self, batch: &mut Batch, event: &mut Event) -> Option<(UserId, PersonalFields)> {
        let (user, external_id, personal) = event.personal_mut()?;
        let Personal::Plain(profile) = personal else {
            return None;
        };
        // A user first sealed in the batch in flight has a key that is not in the keyring
        // until that batch is durable.
        let in_flight = || {
            self.in_flight
                .as_ref()
                .and_then(|f| f.batch.new_keys.get(&user))
                .cloned()
        };
        let key = match self.tenant.keyring.key(user).or_else(in_flight) {
            Some(key) => key,
            None => batch.new_keys.entry(user).or_insert_with(UserKey::generate).clone(),
        };
        let fields = PersonalFields {
            external_id: external_id.take(),
            profile: std::mem::take(&mut **profile),
        };
        *personal = Personal::Sealed(seal(&self.tenant.id, user, &key, &fields));
        Some((user, fields))
    }

    /// The tenant's lookup key: the keyring's, or the one this batch made (an erasure waits
    /// until nothing is in flight, so no batch in flight holds a new one).
    fn lookup_key(&self, batch: &mut Batch) -> LookupKey {
        if let Some(key) = self.tenant.keyring.lookup_key() {
            return key;
        }
        batch.new_lookup_key.get_or_insert_with(LookupKey::generate).clone()
    }

    /// Seals, stamps and encodes a decision's events into the batch: each gets the next `seq`
    /// and a time no earlier than the one before it.
    fn log_events(&self, batch: &mut Batch, envelopes: Vec<Envelope>) -> Vec<ToApply> {
        let mut seq = self.state.seq();
        let mut recorded_at = self.state.recorded_at();
        let mut logged = Vec::with_capacity(envelopes.len());
        for mut envelope in envelopes {
            seq = seq.next();
            recorded_at = Timestamp::now().max(recorded_at);
            let plaintext = self.seal(batch, &mut envelope);
            if let Event::UserErasedWithLookup { user, .. } | Event::UserErased { user } = &envelope.event {
                batch.erased.push(*user);
            }
            let event = LoggedEvent {
                seq,
                recorded_at,
                event_id: EventId::new(),
                envelope,
            };
            batch.records.push(NewRecord {
                recorded_at,
                event_id: event.event_id,
                version: ENVELOPE_VERSION,
                payload: encode(&event.envelope),
            });
            logged.push(ToApply::just_logged(event, plaintext));
        }
        logged
    }

    /// Completes a batch whose append has answered: on success makes it visible and answers its
    /// callers; on failure restores the state it was decided on and fails its callers, and the
    /// next batch's, which was decided on top of it.
    async fn finish(&mut self, mut batch: Batch, result: Result<Option<Appended>, StoreError>) {
        match result {
            Ok(appended) => {
                if let Some(appended) = appended {
                    batch.applied.set_chains(appended.chains);
                }
            }
            Err(error) => {
                let error = Arc::new(error);
                self.failed = Some(Arc::clone(&error));
                self.state = batch.base;
                let next = self.next.take();
                let decided = batch
                    .decided
                    .into_iter()
                    .chain(next.into_iter().flat_map(|next| next.decided));
                if matches!(*error, StoreError::SeqConflict { .. }) {
                    self.decide_again(decided, error).await;
                    return;
                }
                tracing::error!(tenant = %self.tenant.id, %error, "append failed; the batch is rejected");
                self.behind_the_log = true;
                for each in decided {
                    let _ = each.reply.send(Err(SubmitError::Storage(Arc::clone(&error))));
                }
                return;
            }
        }
        self.tenant.keyring.insert_all(batch.new_keys);
        if let Some(key) = batch.new_lookup_key {
            self.tenant.keyring.set_lookup_key(key);
        }
        if !batch.applied.is_empty() {
            self.publisher.publish(batch.applied, &batch.after);
            self.snapshotter.after_publish(&batch.after);
        }
        for user in batch.erased {
            destroy_key(&self.tenant, user).await;
        }
        let (held, cleared) = batch.holds.to_store();
        self.tenant
            .holds
            .settle(batch.holds, &self.tenant.id, &self.tenant.settings.policy);
        if !held.is_empty() || !cleared.is_empty() {
            self.tenant.store_holds(&held, &cleared).await;
        }
        for each in batch.decided {
            let _ = each.reply.send(Ok(each.committed));
        }
    }

    /// After another writer (a replica on the same database) appended at the place of the
    /// failed batch: folds in what it appended, then decides the batch's commands again, in
    /// their order, on the state that includes it, so that a command the other's records make
    /// invalid (a userName now taken) is refused as if both had gone through one writer. A
    /// command decided [`REDECIDE_MAX`] times fails with the conflict.
    async fn decide_again(&mut self, decided: impl Iterator<Item = Decided>, conflict: Arc<StoreError>) {
        tracing::info!(tenant = %self.tenant.id, %conflict, "another writer appended first; folding in its records and deciding again");
        self.tenant
            .append_conflicts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        metrics::counter!("idpsync_append_conflicts_total", "tenant" => self.tenant.id.to_string()).increment(1);
        // Decided again in its turn, the batch cannot lose its place to writers that take turns.
        self.turn.take(&self.tenant).await;
        let caught_up = self.catch_up().await;
        for each in decided {
            match (&caught_up, each.command) {
                (Ok(()), Some(command)) if each.attempts < REDECIDE_MAX => {
                    self.decide_one(command, each.origin, each.reply, each.attempts + 1);
                }
                _ => {
                    let _ = each.reply.send(Err(SubmitError::Storage(Arc::clone(&conflict))));
                }
            }
        }
        if let Err(error) = caught_up {
            tracing::warn!(tenant = %self.tenant.id, %error, "cannot read what another writer appended");
            self.behind_the_log = true;
        }
    }
}

impl Writer {
    /// Folds in the records the log holds beyond the writer's state: another writer's (a
    /// replica on the same database), or those of an append whose error did not say whether it
    /// reached the disk. What is found is published like the writer's own batches (history
    /// index, state, change feed), with the keys stored beside it; keys of users it erased are
    /// destroyed.
    async fn catch_up(&mut self) -> Result<(), EngineError> {
        let store = Arc::clone(&self.tenant.store);
        let head = store.head(&self.tenant.id).await?;
        if head.seq <= self.state.seq() {
            return Ok(());
        }
        tracing::debug!(tenant = %self.tenant.id, from = %self.state.seq(), to = %head.seq, "the log holds records this writer did not append; folding them in");
        self.tenant
            .keyring
            .insert_secrets(store.secrets(&self.tenant.id).await?);
        let keyring = Arc::clone(&self.tenant.keyring);
        let mut applied = AppliedBatch::default();
        let mut state = self.state.clone();
        replay_with(&store, &self.tenant.id, &mut state, head.seq, |state, event, chain| {
            applied.apply(state, std::iter::once(ToApply::committed(event, chain)), &*keyring);
        })
        .await?;
        self.publisher.publish(applied, &state);
        self.snapshotter.after_publish(&state);
        let erased: Vec<UserId> = state
            .users()
            .filter(|user| user.erased && keyring.has_key(user.id))
            .map(|user| user.id)
            .collect();
        self.state = state;
        for user in erased {
            destroy_key(&self.tenant, user).await;
        }
        Ok(())
    }
}

/// A reconcile that applies, as the guard's window notes it once its last part is durable.
struct AppliedRun {
    integration: IntegrationName,
    guard: GuardCount,
}

/// Waits for the in-flight batch's append; polled only while there is one.
async fn wait_for(in_flight: &mut Option<InFlight>) -> Result<Option<Appended>, StoreError> {
    match in_flight {
        Some(in_flight) => wait_for_batch(in_flight).await,
        None => std::future::pending().await,
    }
}

async fn wait_for_batch(in_flight: &mut InFlight) -> Result<Option<Appended>, StoreError> {
    match &mut in_flight.append {
        None => Ok(None),
        Some(append) => match append.await {
            Ok(result) => result.map(Some),
            Err(panicked) => Err(StoreError::backend("appending to the log", panicked)),
        },
    }
}
