//! Snapshots of a tenant's state and history index: periodic (every `snapshot_every`
//! records), on request, and a final one at shutdown. Each is encoded and written off the
//! writer, one at a time; after each, the stored snapshots are thinned (`retention.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use idpsync_storage::{Seq, SnapshotInfo, StoreError, StoredSnapshot};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::Tenant;
use super::retention::prune_snapshots;
use crate::error::SubmitError;
use crate::state::{State, encode_snapshot_sized};

/// Takes a tenant's snapshots and keeps their schedule.
pub(super) struct Snapshotter {
    tenant: Arc<Tenant>,
    /// The `seq` of the last snapshot taken (stored, or being written).
    last: Seq,
    /// The snapshot being written, if any.
    task: Option<JoinHandle<()>>,
    /// The length of the last snapshot encoded: the next is encoded into a buffer of about
    /// that size, not grown to it by doubling.
    last_len: Arc<AtomicUsize>,
}

impl Snapshotter {
    /// A snapshotter for `tenant`, whose last stored snapshot is at `last`.
    pub(super) fn new(tenant: Arc<Tenant>, last: Seq) -> Snapshotter {
        Snapshotter {
            tenant,
            last,
            task: None,
            last_len: Arc::default(),
        }
    }

    /// After `state` was published: starts a snapshot of it in the background if
    /// `snapshot_every` records have passed since the last one and none is being written.
    pub(super) fn after_publish(&mut self, state: &State) {
        let running = self.task.as_ref().is_some_and(|task| !task.is_finished());
        if state.seq().0 - self.last.0 < self.tenant.settings.snapshot_every || running {
            return;
        }
        self.last = state.seq();
        let state = state.clone();
        let tenant = Arc::clone(&self.tenant);
        let last_len = Arc::clone(&self.last_len);
        self.task = Some(tokio::spawn(async move {
            if let Err(error) = write_snapshot(&tenant, state, &last_len).await {
                tracing::warn!(tenant = %tenant.id, %error, "snapshot failed; start-up will replay more of the log");
            }
        }));
    }

    /// A snapshot at `state`, which must be durable: the one already stored there, or a new
    /// one. It is written in the background, after any snapshot still being written, so the
    /// writer goes on meanwhile; `reply` gets it once it is stored.
    pub(super) fn now(&mut self, state: State, reply: oneshot::Sender<Result<SnapshotInfo, SubmitError>>) {
        let seq = state.seq();
        self.last = seq;
        let tenant = Arc::clone(&self.tenant);
        let last_len = Arc::clone(&self.last_len);
        let previous = self.task.take();
        self.task = Some(tokio::spawn(async move {
            if let Some(previous) = previous {
                let _ = previous.await;
            }
            let stored = async {
                let existing = tenant.store.snapshots(&tenant.id).await?;
                match existing.into_iter().find(|info| info.seq == seq) {
                    Some(existing) => Ok(existing),
                    None => write_snapshot(&tenant, state, &last_len).await,
                }
            };
            let _ = reply.send(stored.await.map_err(|e| SubmitError::Storage(Arc::new(e))));
        }));
    }

    /// The final snapshot, at `state`: waits for the one being written, then writes one unless
    /// the last is already there.
    pub(super) async fn finish(&mut self, state: &State) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        if state.seq() > self.last {
            self.last = state.seq();
            if let Err(error) = write_snapshot(&self.tenant, state.clone(), &self.last_len).await {
                tracing::warn!(tenant = %self.tenant.id, %error, "final snapshot failed; start-up will replay more of the log");
            }
        }
    }
}

/// Encodes `state` with the history index and stores it, then thins the stored snapshots.
/// `last_len` is the length of the last snapshot encoded, and becomes this one's.
async fn write_snapshot(
    tenant: &Arc<Tenant>,
    state: State,
    last_len: &AtomicUsize,
) -> Result<SnapshotInfo, StoreError> {
    let seq = state.seq();
    tenant.history.loaded().await;
    let started = std::time::Instant::now();
    let shared = Arc::clone(tenant);
    // A state grows between snapshots: a little room over the last one's length.
    let expected_len = last_len.load(Ordering::Relaxed) / 16 * 17;
    let bytes = tokio::task::spawn_blocking(move || {
        // The index is read a part at a time under its lock: never copied whole, and the
        // writer waits for one part at most.
        encode_snapshot_sized(&state, &shared.history, expected_len)
    })
    .await
    .map_err(|e| StoreError::backend("encoding a snapshot", e))?;
    let len = bytes.len();
    last_len.store(len, Ordering::Relaxed);
    let snapshot = StoredSnapshot::new(seq, bytes);
    let info = SnapshotInfo {
        seq,
        state_hash: snapshot.state_hash,
    };
    tenant.store.put_snapshot(&tenant.id, snapshot).await?;
    prune_snapshots(tenant).await;
    tracing::info!(tenant = %tenant.id, %seq, bytes = len, elapsed_ms = started.elapsed().as_millis() as u64, "snapshot stored");
    Ok(info)
}
