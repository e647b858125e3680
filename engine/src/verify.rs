//! Checking a tenant's log end to end: the chain, the absence of gaps, that every record
//! decodes, and the stored snapshots.
//!
//! Two depths. [`verify_log_and_snapshots`] (`log verify`) streams: records are read, checked
//! and dropped a page at a time, and each snapshot is read through once, so its memory does not
//! grow with the log; a snapshot is checked against its stored hash and its place in the log,
//! not re-folded. [`verify_tenant`] (`log verify --deep`) also re-folds the log to each
//! snapshot's `seq` and compares the state hashes, holding the whole state as it goes.
//!
//! A snapshot written in an older format (by an earlier version) cannot be compared with
//! what this version writes: its bytes are still checked against their hash, and it is
//! counted apart, with a warning. The engine skips such snapshots when it loads a tenant
//! too (a longer replay), and replaces them as it takes new ones.

use std::io::Read;
use std::sync::Arc;

use idpsync_storage::{
    Hash32, Head, LogStore, Seq, SnapshotInfo, SnapshotReader, StoreError, TenantId, Timestamp, state_hash,
};
use serde::Serialize;

use crate::error::EngineError;
use crate::history::History;
use crate::reader::EventPages;
use crate::replay::replay_recording;
use crate::seal::WithoutKeys;
use crate::state::{SNAPSHOT_FORMAT, SnapshotDecodeError, SnapshotOutline, State, encode_snapshot, read_outline};

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
        if format.is_none_or(|format| format < SNAPSHOT_FORMAT) {
            warn_older_format(tenant, snapshot.seq, format);
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
    // Owned, so that the future holds no closure over borrowed snapshots across its awaits
    // (it must be `Send` for a service that runs it on a spawned task).
    let snapshot_seqs: Vec<Seq> = snapshots.iter().map(|snapshot| snapshot.seq).collect();
    let mut at_snapshots = snapshot_seqs.into_iter().peekable();
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
    let mut older_formats = 0;
    for (snapshot, recorded_at) in snapshots.iter().zip(snapshot_times) {
        if !check_snapshot(store, tenant, snapshot, recorded_at).await? {
            older_formats += 1;
        }
    }
    Ok(VerifyReport {
        tenant: tenant.clone(),
        records: head.seq.0,
        chain_head: head.chain,
        snapshots: snapshots.len() as u64 - older_formats,
        snapshots_of_older_formats: older_formats,
    })
}

/// Reads `snapshot` through once: its bytes against its stored hash, its framing, and its own
/// account of its place in the log against the record at its `seq`, recorded at `recorded_at`.
/// `false` for a snapshot of an older format, whose bytes matched their hash but whose
/// sections this version does not read.
async fn check_snapshot(
    store: &Arc<dyn LogStore>,
    tenant: &TenantId,
    snapshot: &SnapshotInfo,
    recorded_at: Timestamp,
) -> Result<bool, EngineError> {
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
    .map_err(|_| EngineError::Closed)??;
    let outline = match outline {
        Ok(outline) => outline,
        Err(SnapshotDecodeError::UnknownFormat(format)) if format < SNAPSHOT_FORMAT => {
            warn_older_format(tenant, seq, Some(format));
            return Ok(false);
        }
        Err(error) => return Err(mismatch(tenant, seq, error.to_string())),
    };
    match place_in_log(&outline, seq, recorded_at) {
        Some(reason) => Err(mismatch(tenant, seq, reason)),
        None => Ok(true),
    }
}

/// The warning for a snapshot an older version wrote.
fn warn_older_format(tenant: &TenantId, seq: Seq, format: Option<u16>) {
    tracing::warn!(
        %tenant,
        %seq,
        format = ?format,
        current = SNAPSHOT_FORMAT,
        "a snapshot in another format than this version writes: its bytes match their hash, but it is not compared with the log (it is replaced by the next snapshot taken)"
    );
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
