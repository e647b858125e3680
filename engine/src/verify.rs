//! Checking a tenant's log end to end: the chain, the absence of gaps, that every record
//! decodes, and that every stored snapshot is exactly what the log folds to at its `seq`.
//!
//! A snapshot written in an older format (by an earlier version) cannot be compared with
//! what this version folds to: its bytes are still checked against their hash, and it is
//! counted as skipped, with a warning. The engine skips such snapshots when it loads a tenant
//! too (a longer replay), and replaces them as it takes new ones.

use std::io::Read;
use std::sync::Arc;

use idpsync_storage::{Hash32, LogStore, SnapshotReader, StoreError, TenantId, state_hash};
use serde::Serialize;

use crate::error::EngineError;
use crate::history::History;
use crate::replay::replay_recording;
use crate::seal::WithoutKeys;
use crate::state::{SNAPSHOT_FORMAT, State, encode_snapshot};

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
    /// Snapshots in an older format, whose bytes matched their hash but which this version
    /// cannot re-fold to compare.
    pub snapshots_of_older_formats: u64,
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
    let mut older_formats = 0;
    for snapshot in &snapshots {
        // The stored bytes must still match their hash: read through, never held whole.
        let format = match store.open_snapshot_at_or_before(tenant, snapshot.seq).await? {
            Some(reader) if reader.seq() == snapshot.seq => tokio::task::spawn_blocking(move || read_format(reader))
                .await
                .map_err(|_| EngineError::Closed)??,
            _ => {
                return Err(EngineError::SnapshotMismatch {
                    tenant: tenant.clone(),
                    seq: snapshot.seq,
                    reason: "listed but not readable".to_owned(),
                });
            }
        };
        if format != Some(SNAPSHOT_FORMAT) {
            tracing::warn!(
                %tenant,
                seq = %snapshot.seq,
                format = ?format,
                current = SNAPSHOT_FORMAT,
                "a snapshot in another format than this version writes: its bytes match their hash, but it is not compared with the log (it is replaced by the next snapshot taken)"
            );
            older_formats += 1;
            continue;
        }
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
        snapshots: snapshots.len() as u64 - older_formats,
        snapshots_of_older_formats: older_formats,
    })
}

/// The format a snapshot's bytes start with (`None` if too short to say), read through to
/// the end so that the bytes are checked against their hash.
fn read_format(mut reader: SnapshotReader) -> Result<Option<u16>, StoreError> {
    let mut format = [0u8; 2];
    let format = match reader.read_exact(&mut format) {
        Ok(()) => Some(u16::from_le_bytes(format)),
        Err(_) => None,
    };
    reader.finish()?;
    Ok(format)
}
