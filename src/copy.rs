//! Copying logs from one store to another, record for record: `idpsync log copy`, the way a
//! deployment moves between backends (redb ⇄ PostgreSQL).
//!
//! A copy appends the source's records to the destination through the destination's own
//! `append`, so every record is chained again there, and the links must come out equal to the
//! source's. It is resumable: it continues from the destination's head after checking that the
//! destination is a prefix of the source (its head's chain link is the source's at that `seq`),
//! and never overwrites: a destination that is ahead or differs is refused before anything is
//! written. The users' keys go with the first records of a run (only those the destination
//! lacks), keys destroyed in the source since are destroyed in the destination, and the
//! snapshots the destination lacks are copied. At the end the destination's log is read back
//! and verified from its first record.

use idpsync_storage::verify::verify_log;
use idpsync_storage::{AppendBatch, Head, LogStore, NewRecord, NewSecret, Seq, StoreError, TenantId};

/// Records read from the source at a time.
const PAGE_RECORDS: usize = 4096;
/// Payload bytes appended to the destination at a time (a single larger record goes alone).
const BATCH_BYTES_MAX: usize = 8 * 1024 * 1024;

/// What a copy of one tenant did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyReport {
    /// The tenant.
    pub tenant: TenantId,
    /// Records appended to the destination by this run.
    pub records: u64,
    /// The destination's head after the copy: the source's head when the copy started.
    pub head: Head,
    /// Keys added to the destination.
    pub secrets_added: usize,
    /// Keys destroyed in the destination because the source no longer has them.
    pub secrets_destroyed: usize,
    /// Snapshots copied.
    pub snapshots: usize,
}

/// Why a copy stopped.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// A store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The destination has more records than the source.
    #[error(
        "tenant {tenant}: the destination is ahead of the source (seq {destination} against {source_head}); nothing was written"
    )]
    DestinationAhead {
        /// The tenant.
        tenant: TenantId,
        /// The destination's head.
        destination: Seq,
        /// The source's head.
        source_head: Seq,
    },
    /// The destination's records are not the source's.
    #[error("tenant {tenant}: the destination's log differs from the source's at seq {seq}; nothing was written")]
    Diverged {
        /// The tenant.
        tenant: TenantId,
        /// The first `seq` found to differ.
        seq: Seq,
    },
    /// A record chained differently in the destination (a bug in one of the stores).
    #[error("tenant {tenant}: seq {seq} chains differently in the destination than in the source")]
    ChainMismatch {
        /// The tenant.
        tenant: TenantId,
        /// The record.
        seq: Seq,
    },
    /// A key the destination lacks, with no record left to carry it.
    #[error("tenant {tenant}: {count} keys are missing in the destination and no record is left to copy with them")]
    SecretsWithoutRecords {
        /// The tenant.
        tenant: TenantId,
        /// How many keys.
        count: usize,
    },
}

/// How far a copy has come: records in the destination, and the source's head it copies up
/// to. Called once before the first record and after each appended batch.
pub type CopyProgress<'a> = &'a mut (dyn FnMut(Seq, Seq) + Send);

/// Copies `tenant`'s log from `from` to `to`, up to the source's head when it starts.
pub async fn copy_tenant(from: &dyn LogStore, to: &dyn LogStore, tenant: &TenantId) -> Result<CopyReport, CopyError> {
    copy_tenant_with_progress(from, to, tenant, &mut |_, _| {}).await
}

/// [`copy_tenant`], telling `progress` how far it has come.
pub async fn copy_tenant_with_progress(
    from: &dyn LogStore,
    to: &dyn LogStore,
    tenant: &TenantId,
    progress: CopyProgress<'_>,
) -> Result<CopyReport, CopyError> {
    let source_head = from.head(tenant).await?;
    let start = to.ensure_tenant(tenant).await?;
    progress(start.seq, source_head.seq);
    if start.seq > source_head.seq {
        return Err(CopyError::DestinationAhead {
            tenant: tenant.clone(),
            destination: start.seq,
            source_head: source_head.seq,
        });
    }
    if start.seq > Seq::ZERO {
        let at_head = from.read(tenant, start.seq, 1).await?;
        if at_head.first().map(|record| record.chain) != Some(start.chain) {
            return Err(CopyError::Diverged {
                tenant: tenant.clone(),
                seq: start.seq,
            });
        }
    }
    let destination_secrets: std::collections::BTreeMap<_, _> = to.secrets(tenant).await?.into_iter().collect();
    let source_secrets = from.secrets(tenant).await?;
    let mut missing: Vec<NewSecret> = Vec::new();
    for (id, material) in &source_secrets {
        match destination_secrets.get(id) {
            None => missing.push(NewSecret {
                id: *id,
                material: material.clone(),
            }),
            Some(stored) if stored != material => {
                return Err(CopyError::Diverged {
                    tenant: tenant.clone(),
                    seq: start.seq,
                });
            }
            Some(_) => {}
        }
    }
    let secrets_added = missing.len();
    let mut head = start;
    while head.seq < source_head.seq {
        let wanted = usize::try_from(source_head.seq.0 - head.seq.0).unwrap_or(usize::MAX);
        let page = from.read(tenant, head.seq.next(), wanted.min(PAGE_RECORDS)).await?;
        if page.is_empty() {
            return Err(StoreError::Corrupt {
                tenant: tenant.clone(),
                seq: head.seq.next(),
                reason: "the source's log ends before its head".to_owned(),
            }
            .into());
        }
        let mut rest = page.as_slice();
        while !rest.is_empty() {
            let mut bytes = 0;
            let take = rest
                .iter()
                .take_while(|record| {
                    bytes += record.payload.len();
                    bytes <= BATCH_BYTES_MAX
                })
                .count()
                .max(1);
            let (part, after) = rest.split_at(take);
            rest = after;
            let appended = to
                .append(AppendBatch {
                    tenant: tenant.clone(),
                    first_seq: head.seq.next(),
                    records: part
                        .iter()
                        .map(|record| NewRecord {
                            recorded_at: record.recorded_at,
                            event_id: record.event_id,
                            version: record.version,
                            payload: record.payload.clone(),
                        })
                        .collect(),
                    secrets: std::mem::take(&mut missing),
                })
                .await?;
            if let Some((record, _)) = part
                .iter()
                .zip(&appended.chains)
                .find(|(record, chain)| record.chain != **chain)
            {
                return Err(CopyError::ChainMismatch {
                    tenant: tenant.clone(),
                    seq: record.seq,
                });
            }
            head = appended.head;
            progress(head.seq, source_head.seq);
        }
    }
    if !missing.is_empty() {
        return Err(CopyError::SecretsWithoutRecords {
            tenant: tenant.clone(),
            count: missing.len(),
        });
    }
    let mut secrets_destroyed = 0;
    for id in destination_secrets.keys() {
        if !source_secrets.iter().any(|(source_id, _)| source_id == id) {
            to.destroy_secret(tenant, *id).await?;
            secrets_destroyed += 1;
        }
    }
    let snapshots = copy_snapshots(from, to, tenant, source_head.seq).await?;
    let verified = verify_log(to, tenant).await?;
    if verified != source_head {
        return Err(CopyError::Diverged {
            tenant: tenant.clone(),
            seq: verified.seq.min(source_head.seq),
        });
    }
    Ok(CopyReport {
        tenant: tenant.clone(),
        records: head.seq.0 - start.seq.0,
        head: verified,
        secrets_added,
        secrets_destroyed,
        snapshots,
    })
}

/// Copies the snapshots up to `up_to` that the destination lacks (or holds with another
/// hash); returns how many. Each is held in memory while it is copied.
async fn copy_snapshots(
    from: &dyn LogStore,
    to: &dyn LogStore,
    tenant: &TenantId,
    up_to: Seq,
) -> Result<usize, CopyError> {
    let held = to.snapshots(tenant).await?;
    let mut copied = 0;
    for info in from.snapshots(tenant).await? {
        if info.seq > up_to || held.contains(&info) {
            continue;
        }
        let Some(snapshot) = from.snapshot_at_or_before(tenant, info.seq).await? else {
            continue;
        };
        if snapshot.seq == info.seq {
            to.put_snapshot(tenant, snapshot).await?;
            copied += 1;
        }
    }
    Ok(copied)
}
