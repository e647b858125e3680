//! One tenant: its writer, the state it publishes, its change feed, and point-in-time reads.
//!
//! Every write goes through the tenant's single writer task: commands in, `decide`, fold and
//! project speculatively, one group-committed append, then publish. Readers call
//! [`Tenant::state`] and get the latest published state, an O(1) clone, without waiting for
//! the writer.
//!
//! One job per file:
//! - `writer.rs`: the queue, deciding, and the one-deep group-commit pipeline;
//! - `apply.rs`: logged events folded and projected into what is published ([`Applied`]);
//!   the writer's batches and the change stream's catch-up go through it, as a follower of
//!   another replica's log would;
//! - `publish.rs`: making a durable batch visible (history index, state, recent ring, feed,
//!   in-memory checkpoints); `snapshotter.rs` and `retention.rs`: stored snapshots;
//! - `erasure.rs`: an erased user's key destroyed and forgotten with what memory read with it,
//!   and erased users recognised by their integration's reconcile;
//! - `reconcile.rs`: sync runs planned or reconciled, and the holds of the guard;
//!   `held_store.rs`: the holds kept in the store, across restarts;
//! - `lease.rs`: leases of work that runs on one replica at a time; `integration_state.rs`:
//!   what an integration keeps between runs, in the store;
//! - `acks.rs`: the consumer's acknowledgements of revocations, and those still waited for;
//! - `stream.rs`: the change stream; reads of the past: `state_at.rs` (the whole state after a
//!   `seq`), `record_at.rs` (one user's or group's record from its own events), `events.rs`
//!   (stretches of the log, timelines).

mod acks;
mod apply;
mod erasure;
mod events;
mod held_store;
mod history_index;
mod hold_preview;
mod integration_state;
mod lease;
mod publish;
mod reconcile;
mod record_at;
mod retention;
mod roles;
mod snapshotter;
mod state_at;
mod stream;
mod turn;
mod writer;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use idpsync_storage::{LogStore, Seq, SnapshotInfo, TenantId};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::command::{Command, Origin};
use crate::decide::Outcome;
use crate::error::{EngineError, SubmitError};
use crate::history::History;
use crate::ids::{IntegrationName, SyncRunId};
use crate::reconcile::{Guard, ReconcilePolicy, SyncInput};
use crate::seal::Keyring;
use crate::state::{HistoryParts as _, State};

pub use acks::{AcknowledgeError, Acknowledgement, ChangeId, Overdue, WATCHED_FOR};
pub use apply::Applied;
pub(crate) use erasure::destroy_key;
pub use events::TimelineEntry;
pub use held_store::has_stored_holds;
use history_index::HistoryIndex;
pub(crate) use history_index::StartingHistory;
pub use hold_preview::{HoldPreview, LosingUser};
pub use lease::{LEASE_RENEW_EVERY, LEASE_TTL, Lease, LeaseHolder};
pub use reconcile::HeldReconcile;
pub(crate) use state_at::load_snapshot_with_history;
pub use state_at::{load_state_at, seq_at_time};
pub use stream::ChangeStream;
pub(crate) use writer::start;

/// Consecutive records of one commit, as the change feed carries them.
pub(crate) type FeedSlice = Arc<[Arc<Applied>]>;

/// The most records one feed message carries...
pub(crate) const FEED_SLICE_MAX: usize = 256;
/// ...and the most messages the feed keeps for consumers that fall behind: with the slices'
/// bound, at most as many records as the in-memory ring keeps by default. A consumer further
/// behind catches up from the ring or the log.
pub(crate) const FEED_SLICES: usize = 64;

/// How a tenant keeps its snapshots, checkpoints and feeds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantSettings {
    /// Store a snapshot after this many records since the last one (and at shutdown).
    pub snapshot_every: u64,
    /// Keep at most this many stored snapshots (at least 1): the newest, and the others spread
    /// over the log so that a question about any past moment replays about the same share of
    /// it. A snapshot is only a shortcut; thinning them never loses history.
    pub snapshots_kept: usize,
    /// Keep an in-memory checkpoint (an O(1) clone of the state) every this many records...
    pub checkpoint_every: u64,
    /// ...and at most this many of them, the most recent. A checkpoint shares structure with
    /// the live state, but under steady writes that sharing wears away: each one can grow to
    /// the size of a whole state, so keep few.
    pub checkpoints_max: usize,
    /// Applied events kept in memory for change-stream consumers that fall behind; older ones
    /// are replayed from the log.
    pub recent_max: usize,
    /// The most commands the writer takes into one append.
    pub commands_per_batch_max: usize,
    /// The most events of one sync run committed in one append. A run is planned and judged by
    /// the guard whole, then committed this many events at a time, each part durable and
    /// published before the next is sealed and encoded: the records, the fold and the change
    /// feed of a whole directory are never in memory at once.
    pub reconcile_events_per_batch: usize,
    /// Reconcile guard settings: the limit, its window, how long a hold can be confirmed.
    pub policy: ReconcilePolicy,
    /// Seal users' personal fields under per-user keys, so that they can be erased. Off only
    /// to measure what sealing costs.
    pub seal_personal: bool,
    /// A revocation the change stream's consumer has not acknowledged within this long is
    /// overdue: an alert ([`Tenant::overdue_revocations`]) and, in the leavers' report, a
    /// finding.
    pub revocation_ack_within: std::time::Duration,
}

impl Default for TenantSettings {
    fn default() -> Self {
        TenantSettings {
            snapshot_every: 100_000,
            snapshots_kept: 16,
            checkpoint_every: 100_000,
            checkpoints_max: 2,
            recent_max: 16_384,
            commands_per_batch_max: 4_096,
            reconcile_events_per_batch: 8_192,
            policy: ReconcilePolicy::default(),
            seal_personal: true,
            revocation_ack_within: std::time::Duration::from_secs(5 * 60),
        }
    }
}

/// A command that committed.
#[derive(Clone, Debug)]
pub struct Committed {
    /// Records appended for it (0 when there was nothing to change).
    pub events: u64,
    /// The log's head after it.
    pub head: Seq,
    /// What `decide` said besides the events.
    pub outcome: Outcome,
}

pub(crate) enum Job {
    Command {
        command: Box<Command>,
        origin: Origin,
        reply: oneshot::Sender<Result<Committed, SubmitError>>,
    },
    Reconcile {
        input: Box<SyncInput>,
        guard: Guard,
        reply: oneshot::Sender<Result<Committed, SubmitError>>,
    },
    ConfirmHeld {
        integration: IntegrationName,
        run: SyncRunId,
        reply: oneshot::Sender<Result<Committed, SubmitError>>,
    },
    Snapshot {
        reply: oneshot::Sender<Result<SnapshotInfo, SubmitError>>,
    },
    /// Fold in what other writers appended, up to `to` at least.
    CatchUp {
        to: Seq,
        reply: oneshot::Sender<Result<Seq, EngineError>>,
    },
    Shutdown {
        done: oneshot::Sender<()>,
    },
}

/// A handle on one tenant. Cheap to share: clone the `Arc`.
pub struct Tenant {
    id: TenantId,
    store: Arc<dyn LogStore>,
    settings: TenantSettings,
    published: ArcSwap<State>,
    /// The history index, always at or past the published state once it is loaded (the writer
    /// extends it before publishing). Questions to it are asked as of a state's `seq`.
    history: HistoryIndex,
    /// The users' keys, for sealing and opening personal fields.
    keyring: Arc<Keyring>,
    jobs: mpsc::Sender<Job>,
    /// Committed records for live consumers, in slices of at most [`FEED_SLICE_MAX`].
    feed: broadcast::Sender<FeedSlice>,
    // std mutexes: held for short, synchronous sections only, never across an await.
    recent: Mutex<VecDeque<Arc<Applied>>>,
    checkpoints: Mutex<BTreeMap<Seq, State>>,
    /// How many users' keys were destroyed; its watchers drop what they read before.
    erasures: tokio::sync::watch::Sender<u64>,
    holds: reconcile::Holds,
    /// The revocations waiting for the consumer's acknowledgement.
    acks: acks::Acks,
    /// How many of this replica's batches found their place in the log taken by another's.
    append_conflicts: std::sync::atomic::AtomicU64,
}

/// A command enqueued with [`Tenant::enqueue`]; await it for the commit.
pub struct PendingCommit {
    answer: oneshot::Receiver<Result<Committed, SubmitError>>,
    enqueued: std::time::Instant,
    tenant: TenantId,
}

impl PendingCommit {
    /// Waits until the command's records are durable (or it was refused).
    pub async fn committed(self) -> Result<Committed, SubmitError> {
        let result = self.answer.await.unwrap_or(Err(SubmitError::Closed));
        let outcome = match &result {
            Ok(_) => "committed",
            Err(SubmitError::Rejected(_)) => "rejected",
            Err(_) => "failed",
        };
        metrics::histogram!("idpsync_command_seconds", "tenant" => self.tenant.to_string(), "outcome" => outcome)
            .record(self.enqueued.elapsed());
        result
    }
}

impl Tenant {
    /// The tenant's name.
    pub fn id(&self) -> &TenantId {
        &self.id
    }

    /// The latest published state.
    pub fn state(&self) -> Arc<State> {
        self.published.load_full()
    }

    /// Asks the history index a question as of the latest published state: `f` gets the index
    /// and that state's `seq`. Keep `f` short: the writer waits for it before publishing. Just
    /// after a tenant loads from a snapshot, this waits for its index to decode (which the
    /// current state does not wait for: see `history_index.rs`).
    pub async fn with_history<R>(&self, f: impl FnOnce(&History, Seq) -> R) -> R {
        self.history.loaded().await;
        let head = self.state().seq();
        self.history.read(|history| f(history, head))
    }

    /// [`Tenant::with_history`] without waiting: `None` while the index is still loading.
    pub fn with_history_now<R>(&self, f: impl FnOnce(&History, Seq) -> R) -> Option<R> {
        let head = self.state().seq();
        self.history.read_if_loaded(|history| f(history, head))
    }

    /// Runs a command: decide, append (durable when this returns `Ok`), fold, publish. When it
    /// returns, [`Tenant::state`] includes the command's effects.
    pub async fn execute(&self, command: Command, origin: Origin) -> Result<Committed, SubmitError> {
        self.enqueue(command, origin).await?.committed().await
    }

    /// Queues a command without waiting for its commit, so that a caller can keep many in
    /// flight and let the writer commit them together. Waits only while the queue is full.
    pub async fn enqueue(&self, command: Command, origin: Origin) -> Result<PendingCommit, SubmitError> {
        self.submit(|reply| Job::Command {
            command: Box::new(command),
            origin,
            reply,
        })
        .await
    }

    /// Queues the job `job` makes around its reply channel; waits only while the queue is full.
    async fn submit(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<Committed, SubmitError>>) -> Job,
    ) -> Result<PendingCommit, SubmitError> {
        let (reply, answer) = oneshot::channel();
        let enqueued = std::time::Instant::now();
        self.jobs.send(job(reply)).await.map_err(|_| SubmitError::Closed)?;
        Ok(PendingCommit {
            answer,
            enqueued,
            tenant: self.id.clone(),
        })
    }

    /// The keys of the tenant's users.
    pub fn keyring(&self) -> &Arc<Keyring> {
        &self.keyring
    }

    /// The store the tenant's log is in.
    pub fn store(&self) -> &Arc<dyn LogStore> {
        &self.store
    }

    /// The tenant's settings.
    pub fn settings(&self) -> &TenantSettings {
        &self.settings
    }

    /// Stores a snapshot of the state at the current head (after the commands already queued),
    /// unless one exists there already, and returns its position and state hash: what a
    /// signed checkpoint covers.
    pub async fn snapshot_now(&self) -> Result<SnapshotInfo, SubmitError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Snapshot { reply })
            .await
            .map_err(|_| SubmitError::Closed)?;
        answer.await.unwrap_or(Err(SubmitError::Closed))
    }

    /// Folds into the published state what other writers of a shared log (replicas on the same
    /// database) appended, up to the log's head now; returns the `seq` the published state is
    /// at. A replica calls this before serving a read, so that a client that wrote through
    /// another replica reads its write.
    pub async fn catch_up(&self) -> Result<Seq, EngineError> {
        let head = self.store.head(&self.id).await?;
        self.catch_up_to(head.seq).await
    }

    /// Whether other processes (replicas) write the tenant's log store.
    pub fn store_is_shared(&self) -> bool {
        self.store.is_shared()
    }

    /// How many times, since the tenant loaded, a batch this replica's writer decided found
    /// its place in the log taken by another replica's append (and was decided again). Writers
    /// that take turns (see `turn`) meet none unless a turn could not be had.
    pub fn append_conflicts(&self) -> u64 {
        self.append_conflicts.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// [`Tenant::catch_up`] on a log other processes write (`LogStore::is_shared`), before a
    /// request is served: a client that wrote through another replica then reads its write.
    /// On a log only this process writes, the published state is the log's: returns its `seq`
    /// at once.
    pub async fn caught_up(&self) -> Result<Seq, EngineError> {
        match self.store_is_shared() {
            true => self.catch_up().await,
            false => Ok(self.state().seq()),
        }
    }

    /// Waits until the published state is at or past `seq`, folding in what other writers
    /// appended up to it (or beyond); returns the `seq` the published state is at.
    pub async fn catch_up_to(&self, seq: Seq) -> Result<Seq, EngineError> {
        let published = self.state().seq();
        if published >= seq {
            return Ok(published);
        }
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::CatchUp { to: seq, reply })
            .await
            .map_err(|_| EngineError::Closed)?;
        answer.await.unwrap_or(Err(EngineError::Closed))
    }

    /// Stops the writer after the jobs already queued, writing a final snapshot, and waits for
    /// the history index to be loaded, if it still was: after this, nothing of the tenant holds
    /// its store.
    pub(crate) async fn shutdown(&self) {
        let (done, finished) = oneshot::channel();
        if self.jobs.send(Job::Shutdown { done }).await.is_ok() {
            let _ = finished.await;
        }
        self.history.loader_finished().await;
    }
}
