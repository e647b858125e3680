//! Point in time: the state after any `seq`, or at any moment, from the nearest in-memory
//! checkpoint or stored snapshot plus a replay of the records after it.

use std::sync::Arc;

use idpsync_storage::{LogStore, Seq, TenantId, Timestamp};

use super::Tenant;
use crate::error::EngineError;
use crate::replay::replay;
use crate::state::State;

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
        let mut base = match checkpoint {
            Some(state) if checkpoint_seq >= snapshot_seq => state,
            _ => load_snapshot(&self.store, &self.id, seq).await?.unwrap_or_default(),
        };
        replay(&self.store, &self.id, &mut base, seq).await?;
        Ok(base)
    }

    /// The state as it was at `moment`: after the last record recorded at or before it.
    pub async fn state_at_time(&self, moment: Timestamp) -> Result<State, EngineError> {
        self.state_at(self.seq_at(moment)).await
    }

    /// The last record at or before `moment`.
    pub fn seq_at(&self, moment: Timestamp) -> Seq {
        self.state().history().seq_at(moment)
    }
}

/// The latest stored snapshot at or before `seq`, decoded. A snapshot that does not decode is
/// skipped with a warning in favour of an older one: it costs a longer replay, never a wrong
/// state.
pub(crate) async fn load_snapshot(
    store: &Arc<dyn LogStore>,
    tenant: &TenantId,
    seq: Seq,
) -> Result<Option<State>, EngineError> {
    let mut limit = seq;
    loop {
        let stored = match store.snapshot_at_or_before(tenant, limit).await {
            Ok(Some(stored)) => stored,
            Ok(None) => return Ok(None),
            Err(error @ idpsync_storage::StoreError::SnapshotCorrupt { .. }) => {
                tracing::warn!(%tenant, %error, "skipping a corrupt snapshot");
                let Some(older) = older_snapshot(store, tenant, limit).await? else {
                    return Ok(None);
                };
                limit = older;
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        let stored_seq = stored.seq;
        match tokio::task::spawn_blocking(move || State::decode_snapshot(&stored.bytes)).await {
            Ok(Ok(state)) if state.seq() == stored_seq => return Ok(Some(state)),
            Ok(Ok(_)) | Ok(Err(_)) | Err(_) => {
                tracing::warn!(%tenant, seq = %stored_seq, "skipping a snapshot that does not decode");
                if stored_seq == Seq::ZERO {
                    return Ok(None);
                }
                limit = Seq(stored_seq.0 - 1);
            }
        }
    }
}

async fn older_snapshot(
    store: &Arc<dyn LogStore>,
    tenant: &TenantId,
    below_or_at: Seq,
) -> Result<Option<Seq>, EngineError> {
    // The corrupt one is the latest at or before `below_or_at`; take the one before it.
    let seqs: Vec<Seq> = store
        .snapshots(tenant)
        .await?
        .into_iter()
        .map(|info| info.seq)
        .filter(|s| *s <= below_or_at)
        .collect();
    Ok(seqs.iter().rev().nth(1).copied())
}
