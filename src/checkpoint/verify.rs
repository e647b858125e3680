//! Proving that a log extends exported checkpoints: for each one, the signature is the trusted
//! key's, the record at its `seq` carries its chain link, and the state there hashes to its
//! snapshot hash (the stored snapshot's, which `log verify --deep` re-folds and `log verify`
//! checks against its stored bytes and its place in the log; or, when that snapshot is gone,
//! the hash of the state re-folded from the log here).

use std::collections::BTreeMap;
use std::sync::Arc;

use ed25519_dalek::VerifyingKey;
use idpsync_engine::History;
use idpsync_engine::replay::replay_recording;
use idpsync_engine::seal::WithoutKeys;
use idpsync_engine::state::{State, encode_snapshot};
use idpsync_storage::{LogStore, Seq, StoreError, TenantId, state_hash};

use super::{Checkpoint, CheckpointError};

/// How one checkpoint was proven.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proven {
    /// The tenant.
    pub tenant: TenantId,
    /// The checkpoint's `seq`.
    pub seq: u64,
    /// Whether the state hash came from re-folding the log (no snapshot was stored there).
    pub refolded: bool,
}

/// Checks every checkpoint against `store`; the first that the log does not extend is an
/// error naming its tenant and `seq`.
pub async fn verify_all(
    store: &Arc<dyn LogStore>,
    checkpoints: &[Checkpoint],
    trusted: &VerifyingKey,
) -> Result<Vec<Proven>, CheckpointError> {
    let mut snapshot_hashes: BTreeMap<TenantId, BTreeMap<Seq, idpsync_storage::Hash32>> = BTreeMap::new();
    let mut proven = Vec::with_capacity(checkpoints.len());
    for checkpoint in checkpoints {
        checkpoint.check_signature(trusted)?;
        let tenant = &checkpoint.tenant;
        let seq = Seq(checkpoint.seq);
        let head = match store.head(tenant).await {
            Ok(head) => head,
            Err(StoreError::UnknownTenant(_)) => {
                return Err(checkpoint.mismatch("the tenant has no log here: history was removed"));
            }
            Err(error) => return Err(error.into()),
        };
        if head.seq < seq {
            return Err(checkpoint.mismatch(format!(
                "the log ends at seq {}, before the checkpoint: history was cut short",
                head.seq
            )));
        }
        let record = store.read(tenant, seq, 1).await?;
        let chain = record.first().map(|record| record.chain);
        if chain != Some(checkpoint.chain_hash()?) {
            return Err(checkpoint.mismatch(format!(
                "the record here has chain link {}, the checkpoint says {}: history was rewritten",
                chain.map_or_else(|| "(none)".to_owned(), |chain| chain.to_hex()),
                checkpoint.chain
            )));
        }
        if !snapshot_hashes.contains_key(tenant) {
            let listed = store.snapshots(tenant).await?;
            snapshot_hashes.insert(
                tenant.clone(),
                listed.into_iter().map(|info| (info.seq, info.state_hash)).collect(),
            );
        }
        let stored = snapshot_hashes.get(tenant).and_then(|hashes| hashes.get(&seq)).copied();
        let (hash, refolded) = match stored {
            Some(hash) => (hash, false),
            None => (refold(store, tenant, seq).await?, true),
        };
        if hash != checkpoint.state_hash()? {
            return Err(checkpoint.mismatch(format!(
                "the state here hashes to {hash}, the checkpoint says {}: history was rewritten",
                checkpoint.snapshot_hash
            )));
        }
        proven.push(Proven {
            tenant: tenant.clone(),
            seq: checkpoint.seq,
            refolded,
        });
    }
    Ok(proven)
}

/// The state hash of `tenant` at `seq`, folded from the first record.
async fn refold(
    store: &Arc<dyn LogStore>,
    tenant: &TenantId,
    seq: Seq,
) -> Result<idpsync_storage::Hash32, CheckpointError> {
    let mut state = State::new();
    let mut history = History::new();
    replay_recording(store, tenant, &WithoutKeys, &mut state, &mut history, seq).await?;
    let hash = tokio::task::spawn_blocking(move || state_hash(&encode_snapshot(&state, &history)))
        .await
        .map_err(|_| idpsync_engine::EngineError::Closed)?;
    Ok(hash)
}
