//! The tenant's history index, which may still be loading while the tenant serves.
//!
//! A snapshot's history index is as large as its state (10M membership changes on the largest
//! benchmark tenant), and decoding it took a third of a large tenant's start. Nothing about
//! the current state needs it, so a tenant serves as soon as its state is loaded and the index
//! decodes on a thread of its own ([`load`]). The batches published meanwhile queue, in log
//! order, behind the tail the start replayed, and are recorded once the index is in place.
//! Questions to the index wait for that ([`HistoryIndex::loaded`]), so that they are never
//! answered from part of it.

use std::sync::{Arc, Mutex, RwLock};

use idpsync_storage::Seq;
use tokio::sync::watch;

use super::Tenant;
use crate::history::{EffectsBatch, History};
use crate::replay::replay_recording;
use crate::seal::WithoutKeys;
use crate::state::{HistoryParts, HistorySections, State};

/// The index, or the batches that wait for it while it loads.
pub(crate) struct HistoryIndex {
    index: RwLock<History>,
    /// While the index loads, the batches to record after it, in log order; `None` once it
    /// is in place.
    waiting: Mutex<Option<Vec<EffectsBatch>>>,
    is_loaded: watch::Sender<bool>,
    /// The task that loads it, until the tenant shuts down.
    loader: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl HistoryIndex {
    /// The index a tenant starts with, and the sections still to decode into it, if any (for
    /// [`start_loading`] once the tenant exists).
    pub(crate) fn starting(history: StartingHistory) -> (HistoryIndex, Option<HistorySections>) {
        match history {
            StartingHistory::Loaded(history) => (HistoryIndex::loaded_now(history), None),
            StartingHistory::Loading { sections, tail } => (HistoryIndex::loading(tail), Some(sections)),
        }
    }

    /// An index already in place.
    fn loaded_now(history: History) -> HistoryIndex {
        HistoryIndex {
            index: RwLock::new(history),
            waiting: Mutex::new(None),
            is_loaded: watch::Sender::new(true),
            loader: Mutex::new(None),
        }
    }

    /// An index still to load, followed by `tail`: the batches of the records after it that
    /// the tenant's state already includes.
    fn loading(tail: Vec<EffectsBatch>) -> HistoryIndex {
        HistoryIndex {
            index: RwLock::new(History::new()),
            waiting: Mutex::new(Some(tail)),
            is_loaded: watch::Sender::new(false),
            loader: Mutex::new(None),
        }
    }

    /// Records a published batch, the next in the log; while the index loads, queues it.
    pub(crate) fn record(&self, batch: EffectsBatch) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        match &mut *waiting {
            Some(queue) => queue.push(batch),
            None => {
                drop(waiting);
                self.index
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .record_batch(&batch);
            }
        }
    }

    /// Puts the loaded index in place after recording the batches that waited for it, and
    /// wakes whoever waits to ask it.
    fn put_in_place(&self, mut history: History) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        for batch in waiting.take().unwrap_or_default() {
            history.record_batch(&batch);
        }
        *self.index.write().unwrap_or_else(|p| p.into_inner()) = history;
        drop(waiting);
        self.is_loaded.send_replace(true);
    }

    /// Waits until the index is in place; at once if it is.
    pub(crate) async fn loaded(&self) {
        // The sender lives as long as `self`: waiting cannot fail.
        let _ = self.is_loaded.subscribe().wait_for(|loaded| *loaded).await;
    }

    /// Waits for the loading task to end, if there is one: a tenant that shuts down is done
    /// with its store only then.
    pub(crate) async fn loader_finished(&self) {
        let loader = self.loader.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(loader) = loader {
            // A panic in it was reported where it happened.
            let _ = loader.await;
        }
    }

    /// `f` with the index, if it is in place, without waiting.
    pub(crate) fn read_if_loaded<R>(&self, f: impl FnOnce(&History) -> R) -> Option<R> {
        if !*self.is_loaded.borrow() {
            return None;
        }
        Some(f(&self.index.read().unwrap_or_else(|p| p.into_inner())))
    }
}

/// A snapshot reads the index a part at a time, under its lock.
impl HistoryParts for HistoryIndex {
    /// `f` with the index. Only once it is in place: the snapshotter waits for
    /// [`HistoryIndex::loaded`] before it reads.
    fn read<R>(&self, f: impl FnOnce(&History) -> R) -> R {
        debug_assert!(
            *self.is_loaded.borrow(),
            "the history index is read before it is loaded"
        );
        f(&self.index.read().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The index a tenant starts with.
pub(crate) enum StartingHistory {
    /// In place: built by the start's replay.
    Loaded(History),
    /// To decode from a snapshot's `sections`, then extend with `tail`, the batches of the
    /// records the start replayed after the snapshot.
    Loading {
        sections: HistorySections,
        tail: Vec<EffectsBatch>,
    },
}

/// How long a failed rebuild of the index waits before it tries again.
const REBUILD_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

/// Starts loading `tenant`'s index from `sections` (see [`load`]).
pub(super) fn start_loading(tenant: &Arc<Tenant>, sections: HistorySections) {
    let loader = tokio::spawn(load(Arc::clone(tenant), sections));
    *tenant.history.loader.lock().unwrap_or_else(|p| p.into_inner()) = Some(loader);
}

/// Decodes `sections` into `tenant`'s index on a blocking thread and puts it in place. If they
/// do not decode (their bytes matched the snapshot's hash, so only a snapshot written wrong
/// could do this), the index is rebuilt from the log up to the snapshot instead, trying again
/// until the log can be read or the tenant stops: the past is never answered from a partial
/// index.
async fn load(tenant: Arc<Tenant>, sections: HistorySections) {
    let seq = sections.seq();
    let decoded = tokio::task::spawn_blocking(move || sections.decode())
        .await
        .unwrap_or_else(|_| {
            Err(crate::state::SnapshotDecodeError::Malformed(
                "decoding it panicked".to_owned(),
            ))
        });
    let history = match decoded {
        Ok(history) => history,
        Err(error) => {
            tracing::warn!(tenant = %tenant.id, %seq, %error, "the snapshot's history index does not decode; rebuilding it from the log");
            match rebuild(&tenant, seq).await {
                Some(history) => history,
                None => return,
            }
        }
    };
    let placing = Arc::clone(&tenant);
    // Recording the batches that waited can take a while after a long tail.
    if tokio::task::spawn_blocking(move || placing.history.put_in_place(history))
        .await
        .is_err()
    {
        tracing::error!(tenant = %tenant.id, "putting the history index in place panicked");
    }
}

/// The index up to `seq`, folded from the first record; `None` if the log cannot be read
/// before the tenant's writer stops.
async fn rebuild(tenant: &Tenant, seq: Seq) -> Option<History> {
    loop {
        let (mut state, mut history) = (State::new(), History::new());
        match replay_recording(&tenant.store, &tenant.id, &WithoutKeys, &mut state, &mut history, seq).await {
            Ok(()) => return Some(history),
            Err(error) if tenant.jobs.is_closed() => {
                tracing::error!(tenant = %tenant.id, %error, "cannot rebuild the history index from the log, and the tenant has stopped");
                return None;
            }
            Err(error) => {
                tracing::error!(tenant = %tenant.id, %error, "cannot rebuild the history index from the log; trying again");
                tokio::time::sleep(REBUILD_RETRY).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{GroupId, Member, Timestamp, UserId};
    use crate::state::Effects;

    /// A batch of one record at `seq` in which `user` joined `group`.
    fn joined(seq: u64, group: GroupId, user: UserId) -> EffectsBatch {
        let mut batch = EffectsBatch::default();
        let effects = Effects {
            memberships: vec![(group, Member::User(user), true)],
            touched: Vec::new(),
        };
        batch.push(Seq(seq), Timestamp(seq as i64 * 1_000), &effects);
        batch
    }

    #[test]
    fn batches_published_while_the_index_loads_are_recorded_after_it_in_log_order() {
        let (group, user) = (GroupId::new(), UserId::new());
        let index = HistoryIndex::loading(vec![joined(3, group, user)]);
        index.record(joined(4, group, user));
        assert_eq!(index.read_if_loaded(History::seq), None, "not asked while it loads");

        // The snapshot's part: records 1 and 2.
        let mut loaded = History::new();
        loaded.record_batch(&joined(1, group, user));
        loaded.record_batch(&joined(2, group, user));
        index.put_in_place(loaded);
        index.record(joined(5, group, user));

        let seqs = |history: &History| -> Vec<u64> {
            history
                .group_changes(group, Seq(9))
                .iter()
                .map(|change| change.seq.0)
                .collect()
        };
        assert_eq!(index.read_if_loaded(seqs), Some(vec![1, 2, 3, 4, 5]));
        assert_eq!(
            index.read_if_loaded(|history| history.recorded_at(Seq(4))),
            Some(Some(Timestamp(4_000)))
        );
    }

    #[tokio::test]
    async fn questions_wait_until_the_index_is_in_place() {
        let index = Arc::new(HistoryIndex::loading(Vec::new()));
        let waiting = tokio::spawn({
            let index = Arc::clone(&index);
            async move {
                index.loaded().await;
                index.read_if_loaded(History::seq)
            }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        let mut loaded = History::new();
        loaded.record(Seq(1), Timestamp(1), &Effects::default());
        index.put_in_place(loaded);
        assert_eq!(waiting.await.unwrap(), Some(Seq(1)));
        // Once in place, at once.
        HistoryIndex::loaded_now(History::new()).loaded().await;
    }
}
