//! The per-tenant writer task.
//!
//! It takes every job waiting in its queue (up to a bound), decides each against the state as
//! the jobs before it left it, folds and projects their events speculatively, then appends all
//! records in one batch. Only after the append is durable does it publish the new state, feed
//! the change stream and answer the callers; if the append fails, it drops the speculative
//! state and every caller of the batch gets the error. A rejected command is answered at once
//! and leaves nothing in the batch.
//!
//! The writer is pipelined one batch deep: while a batch's append waits for the disk, it decides
//! the next batch on top of the first one's speculative state, and appends it as soon as the
//! first is durable. Deciding thus overlaps the flush instead of adding to it. The next batch is
//! answered and published only after its own append, so nothing is visible or acknowledged
//! before it is durable; if the first append fails, the next batch, decided on top of it, fails
//! with it. Jobs that depend on what a commit leaves outside the state (held syncs, destroyed
//! keys, snapshots, shutdown) wait until nothing is in flight.

use std::sync::Arc;

use idpsync_storage::{
    AppendBatch, Appended, EventId, Hash32, NewRecord, Seq, SnapshotInfo, StoreError, StoredSnapshot, Timestamp,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::reconcile::HoldChanges;
use super::{Applied, Committed, Job, Tenant};
use crate::command::{Command, Origin};
use crate::decide::{DecideContext, decide};
use crate::error::SubmitError;
use crate::event::{ENVELOPE_VERSION, Envelope, Event, LoggedEvent, Personal, encode};
use crate::history::History;
use crate::ids::{IntegrationName, UserId};
use crate::model::UserProfile;
use crate::projector;
use crate::reconcile::{Guard, SyncInput};
use crate::rejection::Rejection;
use crate::seal::{Keyring, Opener, UserKey, seal, secret_id};
use crate::state::{Effects, State, encode_snapshot};

/// Builds a tenant around its loaded state and starts its writer.
pub(crate) fn start(
    id: idpsync_storage::TenantId,
    store: Arc<dyn idpsync_storage::LogStore>,
    settings: super::TenantSettings,
    state: State,
    history: History,
    keyring: Arc<Keyring>,
    last_snapshot: Seq,
) -> Arc<Tenant> {
    let (jobs, receiver) = mpsc::channel(settings.commands_per_batch_max * 4);
    let (feed, _) = tokio::sync::broadcast::channel(super::FEED_SLICES);
    let tenant = Arc::new(Tenant {
        id,
        store,
        settings,
        published: arc_swap::ArcSwap::from_pointee(state.clone()),
        history: std::sync::RwLock::new(history),
        keyring,
        jobs,
        feed,
        recent: Default::default(),
        checkpoints: Default::default(),
        holds: Default::default(),
    });
    let writer = Writer {
        tenant: Arc::clone(&tenant),
        receiver,
        last_checkpoint: state.seq(),
        state,
        last_snapshot,
        snapshot_task: None,
        in_flight: None,
        next: None,
    };
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
    last_snapshot: Seq,
    last_checkpoint: Seq,
    snapshot_task: Option<JoinHandle<()>>,
    /// The batch whose append is on its way to the disk.
    in_flight: Option<InFlight>,
    /// The batch being decided on top of it, appended once it is durable.
    next: Option<Batch>,
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
    applied: Vec<Applied>,
    effects: Vec<Effects>,
    /// Keys generated for users first sealed in this batch; stored with its records.
    new_keys: foldhash::HashMap<UserId, UserKey>,
    /// Users erased in this batch, whose keys are destroyed once it is durable.
    erased: Vec<UserId>,
    replies: Vec<(oneshot::Sender<Result<Committed, SubmitError>>, Committed)>,
    /// What its reconciles do to the holds.
    holds: HoldChanges,
}

impl Batch {
    fn new(base: State) -> Batch {
        Batch {
            after: base.clone(),
            base,
            records: Vec::new(),
            applied: Vec::new(),
            effects: Vec::new(),
            new_keys: foldhash::HashMap::default(),
            erased: Vec::new(),
            replies: Vec::new(),
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
            Job::Reconcile { .. } | Job::ConfirmHeld { .. } | Job::Snapshot { .. } | Job::Shutdown { .. } => true,
        }
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
            let room = self.next.as_ref().is_none_or(|next| next.replies.len() < batch_max);
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
                            return Some(done);
                        }
                    }
                },
            }
        }
        self.write_final_snapshot().await;
        None
    }

    /// Decides a round of jobs into the next batch.
    async fn take(&mut self, jobs: Vec<Job>) -> Flow {
        for job in jobs {
            if job.needs_quiet() {
                self.drain().await;
            }
            match job {
                Job::Command { command, origin, reply } => self.decide_one(*command, &origin, reply),
                Job::Reconcile { input, guard, reply } => self.reconcile(*input, guard, reply),
                Job::ConfirmHeld { integration, reply } => self.confirm_held(integration, reply),
                Job::Snapshot { reply } => self.snapshot_now(reply),
                Job::Shutdown { done } => {
                    self.write_final_snapshot().await;
                    return Flow::Stop(done);
                }
            }
        }
        Flow::Continue
    }

    /// Decides a sync run: its listing becomes a snapshot against the writer's state, which
    /// (nothing being in flight) is the durable one.
    fn reconcile(&mut self, input: SyncInput, guard: Guard, reply: oneshot::Sender<Result<Committed, SubmitError>>) {
        let origin = Origin::integration(input.integration.clone(), input.run);
        let command = Command::Reconcile {
            snapshot: Box::new(input.into_snapshot(&self.state)),
            guard,
        };
        self.decide_one(command, &origin, reply);
    }

    fn confirm_held(&mut self, integration: IntegrationName, reply: oneshot::Sender<Result<Committed, SubmitError>>) {
        match self.tenant.holds.get(&integration) {
            None => {
                let _ = reply.send(Err(SubmitError::Rejected(Rejection::Invalid {
                    field: "integration".to_owned(),
                    reason: format!("integration {integration} has no held sync"),
                })));
            }
            Some(held) => {
                let origin = Origin::integration(integration, held.snapshot.run);
                let command = Command::Reconcile {
                    snapshot: Box::new((*held.snapshot).clone()),
                    guard: Guard::Confirmed,
                };
                self.decide_one(command, &origin, reply);
            }
        }
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
                secrets: batch.new_keys.iter().map(|(user, key)| key.to_secret(*user)).collect(),
            };
            let store = Arc::clone(&self.tenant.store);
            let tenant_label = self.tenant.id.to_string();
            tokio::spawn(async move {
                let records = append.records.len() as u64;
                let started = std::time::Instant::now();
                let result = store.append(append).await;
                metrics::histogram!("idpsync_append_seconds", "tenant" => tenant_label.clone())
                    .record(started.elapsed());
                if result.is_ok() {
                    metrics::counter!("idpsync_events_appended_total", "tenant" => tenant_label).increment(records);
                }
                result
            })
        });
        self.in_flight = Some(InFlight { batch, append });
    }

    /// Decides `command` into the next batch; a rejection is answered at once and adds nothing.
    fn decide_one(
        &mut self,
        command: Command,
        origin: &Origin,
        reply: oneshot::Sender<Result<Committed, SubmitError>>,
    ) {
        let holds = self.tenant.holds.summaries();
        let mut new_id = uuid::Uuid::now_v7;
        let mut context = DecideContext {
            new_id: &mut new_id,
            policy: &self.tenant.settings.policy,
            holds: &holds,
        };
        let decision = match decide(&self.state, &command, origin, &mut context) {
            Ok(decision) => decision,
            Err(rejection) => {
                let _ = reply.send(Err(SubmitError::Rejected(rejection)));
                return;
            }
        };
        let mut batch = self.next.take().unwrap_or_else(|| Batch::new(self.state.clone()));
        let events = decision.events.len() as u64;
        for envelope in decision.events {
            self.apply(&mut batch, envelope);
        }
        if let Command::Reconcile { snapshot, guard } = &command {
            batch.holds.note(snapshot, *guard, &decision.outcome, self.state.seq());
        }
        let committed = Committed {
            events,
            head: self.state.seq(),
            outcome: decision.outcome,
        };
        batch.replies.push((reply, committed));
        self.next = Some(batch);
    }

    /// Seals the personal part of a user event under the user's key (generating the key for a
    /// user sealed for the first time); returns the event to log and the plaintext the fold
    /// can use without decrypting what was just encrypted.
    fn seal(&self, batch: &mut Batch, envelope: Envelope) -> (Envelope, Option<(UserId, UserProfile)>) {
        if !self.tenant.settings.seal_personal {
            return (envelope, None);
        }
        let Envelope { source, cause, event } = envelope;
        let mut sealed_for = |user: UserId, profile: &UserProfile| {
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
            Personal::Sealed(seal(&self.tenant.id, user, &key, profile))
        };
        let (event, plaintext) = match event {
            Event::UserProvisioned {
                user,
                owner,
                external_id,
                active,
                personal: Personal::Plain(profile),
            } => {
                let personal = sealed_for(user, &profile);
                (
                    Event::UserProvisioned {
                        user,
                        owner,
                        external_id,
                        active,
                        personal,
                    },
                    Some((user, *profile)),
                )
            }
            Event::UserUpdated {
                user,
                external_id,
                personal: Personal::Plain(profile),
            } => {
                let personal = sealed_for(user, &profile);
                (
                    Event::UserUpdated {
                        user,
                        external_id,
                        personal,
                    },
                    Some((user, *profile)),
                )
            }
            other => (other, None),
        };
        (Envelope { source, cause, event }, plaintext)
    }

    fn apply(&mut self, batch: &mut Batch, envelope: Envelope) {
        let recorded_at = Timestamp::now().max(self.state.recorded_at());
        let (envelope, plaintext) = self.seal(batch, envelope);
        if let Event::UserErased { user } = &envelope.event {
            batch.erased.push(*user);
        }
        let event = LoggedEvent {
            seq: self.state.seq().next(),
            recorded_at,
            event_id: EventId::new(),
            envelope,
        };
        let (effects, access) = match &plaintext {
            Some((user, profile)) => {
                projector::fold_and_project(&mut self.state, &event, &JustSealed { user: *user, profile })
            }
            None => projector::fold_and_project(&mut self.state, &event, &*self.tenant.keyring),
        };
        batch.effects.push(effects);
        batch.records.push(NewRecord {
            recorded_at,
            event_id: event.event_id,
            version: ENVELOPE_VERSION,
            payload: encode(&event.envelope),
        });
        batch.applied.push(Applied {
            event,
            chain: Hash32::ZERO,
            access,
        });
    }

    /// Completes a batch whose append has answered: on success makes it visible and answers its
    /// callers; on failure restores the state it was decided on and fails its callers, and the
    /// next batch's, which was decided on top of it.
    async fn finish(&mut self, mut batch: Batch, result: Result<Option<Appended>, StoreError>) {
        match result {
            Ok(appended) => {
                if let Some(appended) = appended {
                    for (applied, chain) in batch.applied.iter_mut().zip(appended.chains) {
                        applied.chain = chain;
                    }
                }
            }
            Err(error) => {
                tracing::error!(tenant = %self.tenant.id, %error, "append failed; the batch is rejected");
                self.state = batch.base;
                let error = Arc::new(error);
                let next = self.next.take();
                let replies = batch
                    .replies
                    .into_iter()
                    .chain(next.into_iter().flat_map(|next| next.replies));
                for (reply, _) in replies {
                    let _ = reply.send(Err(SubmitError::Storage(Arc::clone(&error))));
                }
                return;
            }
        }
        self.tenant.keyring.insert_all(batch.new_keys);
        self.publish(batch.applied, batch.effects, batch.after);
        for user in batch.erased {
            destroy_key(&self.tenant, user).await;
        }
        self.tenant.holds.settle(batch.holds, &self.tenant.id);
        for (reply, committed) in batch.replies {
            let _ = reply.send(Ok(committed));
        }
    }

    /// Makes the committed state and events visible: the history index first, then the state,
    /// then the feed, so that whoever sees a state finds the history up to it, and a consumer
    /// that hears of an event can already read the state that includes it.
    fn publish(&mut self, applied: Vec<Applied>, effects: Vec<Effects>, after: State) {
        if applied.is_empty() {
            return;
        }
        let settings = &self.tenant.settings;
        {
            let mut history = self.tenant.history.write().unwrap_or_else(|p| p.into_inner());
            for (each, effects) in applied.iter().zip(&effects) {
                history.record(each.event.seq, each.event.recorded_at, effects);
            }
        }
        self.tenant.published.store(Arc::new(after.clone()));
        metrics::gauge!("idpsync_change_stream_subscribers", "tenant" => self.tenant.id.to_string())
            .set(self.tenant.feed.receiver_count() as f64);
        {
            let applied: Vec<Arc<Applied>> = applied.into_iter().map(Arc::new).collect();
            let mut recent = self.tenant.recent.lock().unwrap_or_else(|p| p.into_inner());
            recent.extend(applied.iter().cloned());
            while recent.len() > settings.recent_max {
                recent.pop_front();
            }
            // One message per slice of the batch, not per record: a live consumer wakes once
            // per commit however many records it brings. No subscriber is not an error.
            for slice in applied.chunks(super::FEED_SLICE_MAX) {
                let _ = self.tenant.feed.send(slice.into());
            }
        }
        if after.seq().0 - self.last_checkpoint.0 >= settings.checkpoint_every {
            self.last_checkpoint = after.seq();
            let mut checkpoints = self.tenant.checkpoints.lock().unwrap_or_else(|p| p.into_inner());
            checkpoints.insert(after.seq(), after.clone());
            while checkpoints.len() > settings.checkpoints_max {
                checkpoints.pop_first();
            }
        }
        let snapshot_running = self.snapshot_task.as_ref().is_some_and(|task| !task.is_finished());
        if after.seq().0 - self.last_snapshot.0 >= settings.snapshot_every && !snapshot_running {
            self.last_snapshot = after.seq();
            let state = after;
            let tenant = Arc::clone(&self.tenant);
            self.snapshot_task = Some(tokio::spawn(async move {
                if let Err(error) = write_snapshot(&tenant, state).await {
                    tracing::warn!(tenant = %tenant.id, %error, "snapshot failed; start-up will replay more of the log");
                }
            }));
        }
    }

    /// A snapshot at the current head (nothing is in flight: the head is durable): the one
    /// already stored there, or a new one. It is written in the background, after any snapshot
    /// still being written, so the writer goes on meanwhile; `reply` gets it once it is stored.
    fn snapshot_now(&mut self, reply: oneshot::Sender<Result<SnapshotInfo, SubmitError>>) {
        let state = self.state.clone();
        let seq = state.seq();
        self.last_snapshot = seq;
        let tenant = Arc::clone(&self.tenant);
        let previous = self.snapshot_task.take();
        self.snapshot_task = Some(tokio::spawn(async move {
            if let Some(previous) = previous {
                let _ = previous.await;
            }
            let stored = async {
                let existing = tenant.store.snapshots(&tenant.id).await?;
                match existing.into_iter().find(|info| info.seq == seq) {
                    Some(existing) => Ok(existing),
                    None => write_snapshot(&tenant, state).await,
                }
            };
            let _ = reply.send(stored.await.map_err(|e| SubmitError::Storage(Arc::new(e))));
        }));
    }

    async fn write_final_snapshot(&mut self) {
        if let Some(task) = self.snapshot_task.take() {
            let _ = task.await;
        }
        if self.state.seq() > self.last_snapshot {
            self.last_snapshot = self.state.seq();
            if let Err(error) = write_snapshot(&self.tenant, self.state.clone()).await {
                tracing::warn!(tenant = %self.tenant.id, %error, "final snapshot failed; start-up will replay more of the log");
            }
        }
    }
}

/// The plaintext of the profile the writer just sealed, so the fold need not decrypt it.
struct JustSealed<'a> {
    user: UserId,
    profile: &'a UserProfile,
}

impl Opener for JustSealed<'_> {
    fn open(&self, user: UserId, _personal: &Personal) -> Option<UserProfile> {
        (user == self.user).then(|| self.profile.clone())
    }
}

/// Destroys an erased user's key in the store, then forgets it. If the store fails, the key
/// stays until the next start, which destroys the keys of every erased user it finds.
pub(crate) async fn destroy_key(tenant: &Tenant, user: UserId) {
    match tenant.store.destroy_secret(&tenant.id, secret_id(user)).await {
        Ok(_) => tenant.keyring.forget(user),
        Err(error) => tracing::error!(tenant = %tenant.id, %user, %error, "cannot destroy an erased user's key yet"),
    }
}

async fn write_snapshot(tenant: &Arc<Tenant>, state: State) -> Result<SnapshotInfo, idpsync_storage::StoreError> {
    let seq = state.seq();
    let started = std::time::Instant::now();
    let shared = Arc::clone(tenant);
    let bytes = tokio::task::spawn_blocking(move || {
        // Copy the index under the lock, encode outside it: the writer waits only for the copy.
        let history = shared.history.read().unwrap_or_else(|p| p.into_inner()).clone();
        encode_snapshot(&state, &history)
    })
    .await
    .map_err(|e| idpsync_storage::StoreError::backend("encoding a snapshot", e))?;
    let len = bytes.len();
    let snapshot = StoredSnapshot::new(seq, bytes);
    let info = SnapshotInfo {
        seq,
        state_hash: snapshot.state_hash,
    };
    tenant.store.put_snapshot(&tenant.id, snapshot).await?;
    super::retention::prune_snapshots(tenant).await;
    tracing::info!(tenant = %tenant.id, %seq, bytes = len, elapsed_ms = started.elapsed().as_millis() as u64, "snapshot stored");
    Ok(info)
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
