//! The whole state after any past `seq`, or at any moment, from the nearest in-memory
//! checkpoint or stored snapshot plus a replay of the records after it; and the loading of
//! snapshots that start-up shares. One user's or group's record alone is cheaper to get
//! (`record_at.rs`).

use std::sync::Arc;

use idpsync_storage::{LogStore, Seq, SnapshotReader, StoreError, TenantId, Timestamp};

use super::Tenant;
use crate::error::EngineError;
use crate::replay::replay;
use crate::seal::{Keyring, Opener};
use crate::state::{HistorySections, SnapshotDecodeError, State, read_snapshot, read_state};

impl Tenant {
    /// The state just after record `seq` (the current state if `seq` is at or past the head).
    pub async fn state_at(&self, seq: Seq) -> Result<State, EngineError> {
        let current = self.state();
        if seq >= current.seq() {
            return Ok((*current).clone());
        }
        let checkpoint = {
            let checkpoints = self.checkpoints.lock().unwrap_or_else(|p| p.into_inner());
            checkpoints.range(..=seq).next_back().map(|(_, state)| state.clone())
        };
        let checkpoint_seq = checkpoint.as_ref().map_or(Seq::ZERO, State::seq);
        let snapshots = self.store.snapshots(&self.id).await.unwrap_or_else(|error| {
            tracing::warn!(tenant = %self.id, %error, "cannot list snapshots; replaying from a checkpoint or the start");
            Vec::new()
        });
        let snapshot_seq = snapshots
            .into_iter()
            .map(|info| info.seq)
            .filter(|snapshot| *snapshot <= seq)
            .max()
            .unwrap_or(Seq::ZERO);
        match checkpoint {
            Some(mut state) if checkpoint_seq >= snapshot_seq => {
                replay(&self.store, &self.id, &*self.keyring, &mut state, seq).await?;
                Ok(state)
            }
            _ => load_state_at(&self.store, &self.id, &self.keyring, seq).await,
        }
    }

    /// The state as it was at `moment`: after the last record recorded at or before it.
    pub async fn state_at_time(&self, moment: Timestamp) -> Result<State, EngineError> {
        self.state_at(self.seq_at(moment).await).await
    }

    /// The last record at or before `moment`.
    pub async fn seq_at(&self, moment: Timestamp) -> Seq {
        self.with_history(|history, head| history.seq_at(moment, head)).await
    }
}

/// The state of `tenant` just after record `seq`, straight from the store: the latest snapshot
/// at or before `seq` plus a replay of the records after it. For readers that have no running
/// tenant (the command line).
pub async fn load_state_at(
    store: &Arc<dyn LogStore>,
    tenant: &TenantId,
    keyring: &Arc<Keyring>,
    seq: Seq,
) -> Result<State, EngineError> {
    let head = store.head(tenant).await?;
    let seq = seq.min(head.seq);
    let opener = Arc::clone(keyring);
    let mut state = load_snapshot(store, tenant, seq, move |reader| read_state(reader, &*opener))
        .await?
        .unwrap_or_default();
    replay(store, tenant, &**keyring, &mut state, seq).await?;
    Ok(state)
}

/// The last record of `tenant` recorded at or before `moment`, found by a binary search of the
/// log (times never go backwards), reading one record per step.
pub async fn seq_at_time(store: &Arc<dyn LogStore>, tenant: &TenantId, moment: Timestamp) -> Result<Seq, EngineError> {
    let head = store.head(tenant).await?;
    // Invariant: records 1..=low are at or before `moment`; records after high are after it.
    let (mut low, mut high) = (0u64, head.seq.0);
    while low < high {
        let middle = low + (high - low).div_ceil(2);
        let record = store.read(tenant, Seq(middle), 1).await?;
        let Some(record) = record.first() else {
            return Err(EngineError::Corrupt {
                tenant: tenant.clone(),
                seq: Seq(middle),
                reason: "record missing".to_owned(),
            });
        };
        if record.recorded_at <= moment {
            low = middle;
        } else {
            high = middle - 1;
        }
    }
    Ok(Seq(low))
}

/// The state at the latest snapshot at or before `seq`, its users' personal fields read by
/// `opener`, with the snapshot's history index read but not decoded.
pub(crate) async fn load_snapshot_with_history(
    store: &Arc<dyn LogStore>,
    tenant: &TenantId,
    opener: Arc<dyn Opener + Send + Sync>,
    seq: Seq,
) -> Result<Option<(State, HistorySections)>, EngineError> {
    load_snapshot(store, tenant, seq, move |reader| read_snapshot(reader, &*opener)).await
}

/// Something decoded from a snapshot that knows which `seq` it is at.
trait AtSeq {
    fn at(&self) -> Seq;
}

impl AtSeq for State {
    fn at(&self) -> Seq {
        self.seq()
    }
}

impl AtSeq for (State, HistorySections) {
    fn at(&self) -> Seq {
        self.0.seq()
    }
}

/// The latest stored snapshot at or before `seq`, decoded by `decode` as it is read. A
/// snapshot that is corrupt or does not decode is skipped with a warning in favour of an older
/// one: it costs a longer replay, never a wrong state. What is decoded is kept only once the
/// snapshot's bytes have matched their hash.
async fn load_snapshot<T: AtSeq + Send + 'static>(
    store: &Arc<dyn LogStore>,
    tenant: &TenantId,
    seq: Seq,
    decode: impl Fn(&mut SnapshotReader) -> Result<T, SnapshotDecodeError> + Clone + Send + 'static,
) -> Result<Option<T>, EngineError> {
    let mut limit = seq;
    loop {
        let mut reader = match store.open_snapshot_at_or_before(tenant, limit).await {
            Ok(Some(reader)) => reader,
            Ok(None) => return Ok(None),
            Err(error @ StoreError::SnapshotCorrupt { .. }) => {
                let StoreError::SnapshotCorrupt { seq: bad, .. } = &error else {
                    unreachable!()
                };
                tracing::warn!(%tenant, %error, "skipping a corrupt snapshot");
                if *bad == Seq::ZERO {
                    return Ok(None);
                }
                limit = Seq(bad.0 - 1);
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        let stored_seq = reader.seq();
        let decode = decode.clone();
        let outcome = tokio::task::spawn_blocking(move || -> Result<T, String> {
            let decoded = decode(&mut reader).map_err(|e| e.to_string());
            reader.finish().map_err(|e| e.to_string())?;
            decoded
        })
        .await
        .unwrap_or_else(|_| Err("decoding it panicked".to_owned()));
        match outcome {
            Ok(decoded) if decoded.at() == stored_seq => return Ok(Some(decoded)),
            Ok(_) => tracing::warn!(%tenant, seq = %stored_seq, "skipping a snapshot of another seq than its name's"),
            Err(reason) => {
                tracing::warn!(%tenant, seq = %stored_seq, %reason, "skipping a snapshot that is corrupt or does not decode")
            }
        }
        if stored_seq == Seq::ZERO {
            return Ok(None);
        }
        limit = Seq(stored_seq.0 - 1);
    }
}
