//! Checking a tenant's log end to end: the chain, the absence of gaps, that every record
//! decodes, and that every stored snapshot is exactly what the log folds to at its `seq`.

use std::sync::Arc;

use idpsync_storage::{Hash32, LogStore, TenantId, state_hash};
use serde::Serialize;

use crate::error::EngineError;
use crate::history::History;
use crate::replay::replay_recording;
use crate::seal::WithoutKeys;
use crate::state::{State, encode_snapshot};

/// What [`verify_tenant`] checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// The tenant.
    pub tenant: TenantId,
    /// Records checked.
    pub records: u64,
    /// The chain head.
    pub chain_head: Hash32,
    /// Snapshots re-folded and matched.
    pub snapshots: u64,
}

/// Replays `tenant`'s whole log from the first record, checking the chain, that `seq` has no
/// gap, that every payload decodes, and that every snapshot's stored hash equals the hash of
/// the state the log folds to at that `seq`. The first problem is an error naming the tenant
/// and the `seq`.
pub async fn verify_tenant(store: &Arc<dyn LogStore>, tenant: &TenantId) -> Result<VerifyReport, EngineError> {
    let head = idpsync_storage::verify::verify_log(&**store, tenant).await?;
    let snapshots = store.snapshots(tenant).await?;
    let mut state = State::new();
    let mut history = History::new();
    for snapshot in &snapshots {
        replay_recording(store, tenant, &WithoutKeys, &mut state, &mut history, snapshot.seq).await?;
        let (folded, indexed) = (state.clone(), history.clone());
        let hash = tokio::task::spawn_blocking(move || state_hash(&encode_snapshot(&folded, &indexed)))
            .await
            .map_err(|_| EngineError::Closed)?;
        if hash != snapshot.state_hash {
            return Err(EngineError::SnapshotMismatch {
                tenant: tenant.clone(),
                seq: snapshot.seq,
                reason: format!("stored state hash {}, the log folds to {}", snapshot.state_hash, hash),
            });
        }
        // The stored bytes must also still match their hash: read through, never held whole.
        match store.open_snapshot_at_or_before(tenant, snapshot.seq).await? {
            Some(reader) if reader.seq() == snapshot.seq => {
                tokio::task::spawn_blocking(move || reader.finish())
                    .await
                    .map_err(|_| EngineError::Closed)??;
            }
            _ => {
                return Err(EngineError::SnapshotMismatch {
                    tenant: tenant.clone(),
                    seq: snapshot.seq,
                    reason: "listed but not readable".to_owned(),
                });
            }
        }
    }
    replay_recording(store, tenant, &WithoutKeys, &mut state, &mut history, head.seq).await?;
    if state.seq() != head.seq {
        return Err(EngineError::Corrupt {
            tenant: tenant.clone(),
            seq: state.seq().next(),
            reason: "log ends early".to_owned(),
        });
    }
    Ok(VerifyReport {
        tenant: tenant.clone(),
        records: head.seq.0,
        chain_head: head.chain,
        snapshots: snapshots.len() as u64,
    })
}
