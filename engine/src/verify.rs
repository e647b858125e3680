//! Checking a tenant's log end to end: the chain, the absence of gaps, that every record
//! decodes, and the stored snapshots.
//!
//! Two depths. [`verify_log_and_snapshots`] (`log verify`) streams: records are read, checked
//! and dropped a page at a time, and each snapshot is read through once, so its memory does not
//! grow with the log; a snapshot is checked against its stored hash and its place in the log,
//! not re-folded. [`verify_tenant`] (`log verify --deep`) also re-folds the log to each
//! snapshot's `seq` and compares the state hashes, holding the whole state as it goes.

use std::sync::Arc;

use idpsync_storage::{Hash32, Head, LogStore, Seq, SnapshotInfo, TenantId, Timestamp, state_hash};
use serde::Serialize;

use crate::error::EngineError;
use crate::history::History;
use crate::reader::EventPages;
use crate::replay::replay_recording;
use crate::seal::WithoutKeys;
use crate::state::{SnapshotOutline, State, encode_snapshot, read_outline};

/// What [`verify_tenant`] checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// The tenant.
    pub tenant: TenantId,
    /// Records checked.
    pub records: u64,
    /// The chain head.
    pub chain_head: Hash32,
    /// Snapshots that matched: re-folded by [`verify_tenant`]; their hash and place in the log
    /// by [`verify_log_and_snapshots`].
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

/// Checks `tenant`'s log in memory that does not grow with it: every record from the first
/// continues the chain, `seq` has no gap, time never goes back, every payload decodes and the
/// log ends exactly at the stored head; then every stored snapshot: its bytes match its stored
/// hash, its sections are well framed, and it names the `seq` it is stored at, the time of the
/// record there and one record time per record up to it. Whether a snapshot's state is what the
/// log folds to is [`verify_tenant`]'s deeper check. The first problem is an error naming the
/// tenant and the `seq`.
pub async fn verify_log_and_snapshots(
    store: &Arc<dyn LogStore>,
    tenant: &TenantId,
) -> Result<VerifyReport, EngineError> {
    let stored_head = store.head(tenant).await?;
    let snapshots = store.snapshots(tenant).await?;
    if let Some(beyond) = snapshots.iter().find(|snapshot| snapshot.seq > stored_head.seq) {
        return Err(mismatch(
            tenant,
            beyond.seq,
            format!("the log ends at seq {}", stored_head.seq),
        ));
    }
    let mut at_snapshots = snapshots.iter().map(|snapshot| snapshot.seq).peekable();
    let mut snapshot_times = Vec::with_capacity(snapshots.len());
    let mut head = Head::EMPTY;
    let mut pages = EventPages::chained_after(store, tenant, Seq::ZERO, stored_head.seq);
    while let Some(page) = pages.next_page().await? {
        for (event, chain) in &page {
            while at_snapshots.next_if(|seq| *seq <= event.seq).is_some() {
                snapshot_times.push(event.recorded_at);
            }
            head = Head {
                seq: event.seq,
                recorded_at: event.recorded_at,
                chain: *chain,
            };
        }
    }
    if head != stored_head || !store.read(tenant, stored_head.seq.next(), 1).await?.is_empty() {
        return Err(EngineError::Corrupt {
            tenant: tenant.clone(),
            seq: head.seq.next(),
            reason: format!(
                "the log's records end at seq {} but its head says seq {} (chain {})",
                head.seq, stored_head.seq, stored_head.chain
            ),
        });
    }
    for (snapshot, recorded_at) in snapshots.iter().zip(snapshot_times) {
        check_snapshot(store, tenant, snapshot, recorded_at).await?;
    }
    Ok(VerifyReport {
        tenant: tenant.clone(),
        records: head.seq.0,
        chain_head: head.chain,
        snapshots: snapshots.len() as u64,
    })
}

/// Reads `snapshot` through once: its bytes against its stored hash, its framing, and its own
/// account of its place in the log against the record at its `seq`, recorded at `recorded_at`.
async fn check_snapshot(
    store: &Arc<dyn LogStore>,
    tenant: &TenantId,
    snapshot: &SnapshotInfo,
    recorded_at: Timestamp,
) -> Result<(), EngineError> {
    let seq = snapshot.seq;
    let mut reader = match store.open_snapshot_at_or_before(tenant, seq).await? {
        Some(reader) if reader.seq() == seq => reader,
        _ => return Err(mismatch(tenant, seq, "listed but not readable".to_owned())),
    };
    let outline = tokio::task::spawn_blocking(move || {
        let outline = read_outline(&mut reader);
        // Damaged bytes are reported as such, before what they failed to decode to.
        reader.finish().map(|()| outline)
    })
    .await
    .map_err(|_| EngineError::Closed)??
    .map_err(|error| mismatch(tenant, seq, error.to_string()))?;
    match place_in_log(&outline, seq, recorded_at) {
        Some(reason) => Err(mismatch(tenant, seq, reason)),
        None => Ok(()),
    }
}

/// What is wrong with a snapshot stored at `seq`, whose record was recorded at `recorded_at`,
/// that says `outline` of itself; `None` when it agrees with the log.
fn place_in_log(outline: &SnapshotOutline, seq: Seq, recorded_at: Timestamp) -> Option<String> {
    if outline.seq != seq {
        return Some(format!("it says it is the state at seq {}", outline.seq));
    }
    if outline.recorded_at != recorded_at {
        return Some(format!(
            "it says the record at its seq was recorded at {}, the log says {}",
            outline.recorded_at, recorded_at
        ));
    }
    if outline.times != seq.0 || outline.last_time != Some(recorded_at) {
        return Some(format!(
            "it holds {} record times ending at {} for {} records ending at {}",
            outline.times,
            outline
                .last_time
                .map_or_else(|| "none".to_owned(), |time| time.to_string()),
            seq.0,
            recorded_at
        ));
    }
    None
}

fn mismatch(tenant: &TenantId, seq: Seq, reason: String) -> EngineError {
    EngineError::SnapshotMismatch {
        tenant: tenant.clone(),
        seq,
        reason,
    }
}
