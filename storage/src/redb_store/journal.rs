//! The journal: where a commit's records land first, and how they move into the log.
//!
//! Writing each tenant's records of a commit straight into `log` costs a B-tree insert per
//! tenant, and every such insert rewrites a leaf page of its own, because tenants' chunks sit
//! far apart in the key order. Under many concurrent writers that made the pages a commit writes
//! (and the CPU to copy, checksum and write them) grow with the number of tenants in the commit,
//! not with its bytes. So a commit writes into `journal` instead, keyed by a commit number
//! first: all its entries go to the end of one small tree, a handful of pages.
//!
//! Once the journal holds [`COMMITS_MAX`] commits or [`BYTES_MAX`] bytes, the commit that
//! crosses the line also moves the whole journal into `log`, each tenant's journal chunks merged
//! into as few log chunks as [`CHUNK_BYTES_MAX`] allows, and empties the journal, in the same
//! write transaction. A reader's transaction therefore sees every record exactly once: in the
//! log, or in the journal after the tenant's last log chunk.

use redb::{Database, ReadableDatabase, ReadableTable, Table, WriteTransaction};

use crate::error::StoreError;
use crate::types::TenantId;

use super::tables::{JOURNAL, LOG};

/// The journal is moved into the log once it holds this many commits...
pub(super) const COMMITS_MAX: u64 = 64;
/// ...or this many bytes of records.
pub(super) const BYTES_MAX: usize = 8 * 1024 * 1024;
/// A log chunk made from journal chunks grows to about this many bytes (a journal chunk larger
/// than this stays one chunk).
pub(super) const CHUNK_BYTES_MAX: usize = 256 * 1024;

/// What the journal holds, as the committer tracks it between commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Fill {
    /// The commit number the next commit that writes records takes.
    pub(super) next_commit: u64,
    /// Commits with entries in the journal.
    pub(super) commits: u64,
    /// Bytes of records in the journal.
    pub(super) bytes: usize,
}

impl Fill {
    /// Reads the journal's fill as committed (a short walk: the journal is small).
    pub(super) fn load(db: &Database) -> Result<Fill, StoreError> {
        let context = "reading the journal";
        let txn = db.begin_read().map_err(|e| StoreError::backend(context, e))?;
        let journal = txn.open_table(JOURNAL).map_err(|e| StoreError::backend(context, e))?;
        let mut fill = Fill {
            next_commit: 0,
            commits: 0,
            bytes: 0,
        };
        let mut last_commit = None;
        for entry in journal.iter().map_err(|e| StoreError::backend(context, e))? {
            let (key, chunk) = entry.map_err(|e| StoreError::backend(context, e))?;
            let commit = key.value().0;
            if last_commit != Some(commit) {
                fill.commits += 1;
                last_commit = Some(commit);
            }
            fill.bytes += chunk.value().len();
            fill.next_commit = commit + 1;
        }
        Ok(fill)
    }

    /// The fill after a commit that wrote `bytes` of records (none: the commit used no number).
    pub(super) fn after_commit(self, bytes: usize) -> Fill {
        if bytes == 0 {
            return self;
        }
        Fill {
            next_commit: self.next_commit + 1,
            commits: self.commits + 1,
            bytes: self.bytes + bytes,
        }
    }

    /// Whether the journal is due to move into the log.
    pub(super) fn is_due(self) -> bool {
        self.commits >= COMMITS_MAX || self.bytes >= BYTES_MAX
    }

    /// The fill once the journal has moved into the log.
    pub(super) fn emptied(self) -> Fill {
        Fill {
            next_commit: self.next_commit,
            commits: 0,
            bytes: 0,
        }
    }
}

/// Writes one chunk of `tenant`'s records, starting at `first_seq`, into the journal under
/// commit number `commit`.
pub(super) fn insert(
    journal: &mut Table<(u64, &str, u64), &[u8]>,
    commit: u64,
    tenant: &TenantId,
    first_seq: u64,
    chunk: &[u8],
) -> Result<(), StoreError> {
    journal
        .insert((commit, tenant.as_str(), first_seq), chunk)
        .map_err(|e| StoreError::backend("writing the journal", e))?;
    Ok(())
}

/// Moves every journal entry into `log` and empties the journal, inside `txn`.
pub(super) fn move_into_log(txn: &WriteTransaction) -> Result<(), StoreError> {
    let context = "moving the journal into the log";
    // Each tenant's chunks in seq order: the journal's order is commit, then tenant, then seq,
    // and a tenant's later commits hold its later records.
    let mut merged: std::collections::BTreeMap<String, Vec<(u64, Vec<u8>)>> = std::collections::BTreeMap::new();
    {
        let journal = txn.open_table(JOURNAL).map_err(|e| StoreError::backend(context, e))?;
        for entry in journal.iter().map_err(|e| StoreError::backend(context, e))? {
            let (key, chunk) = entry.map_err(|e| StoreError::backend(context, e))?;
            let (_, tenant, first_seq) = key.value();
            let chunks = merged.entry(tenant.to_owned()).or_default();
            match chunks.last_mut() {
                Some((_, open)) if open.len() + chunk.value().len() <= CHUNK_BYTES_MAX => {
                    open.extend_from_slice(chunk.value());
                }
                _ => chunks.push((first_seq, chunk.value().to_vec())),
            }
        }
    }
    let mut log = txn.open_table(LOG).map_err(|e| StoreError::backend(context, e))?;
    for (tenant, chunks) in &merged {
        for (first_seq, chunk) in chunks {
            log.insert((tenant.as_str(), *first_seq), chunk.as_slice())
                .map_err(|e| StoreError::backend(context, e))?;
        }
    }
    drop(log);
    txn.delete_table(JOURNAL).map_err(|e| StoreError::backend(context, e))?;
    txn.open_table(JOURNAL).map_err(|e| StoreError::backend(context, e))?;
    Ok(())
}

/// A chunk in the journal: its first seq and its bytes.
pub(super) type StagedChunk = (u64, redb::AccessGuard<'static, &'static [u8]>);

/// The journal chunks of `tenant` as `(first seq, bytes)`, in seq order, from a read
/// transaction's view of the journal.
pub(super) fn chunks_of(
    journal: &redb::ReadOnlyTable<(u64, &'static str, u64), &'static [u8]>,
    tenant: &TenantId,
) -> Result<Vec<StagedChunk>, StoreError> {
    let context = "reading the journal";
    let (Some((first, _)), Some((last, _))) = (
        journal.first().map_err(|e| StoreError::backend(context, e))?,
        journal.last().map_err(|e| StoreError::backend(context, e))?,
    ) else {
        return Ok(Vec::new());
    };
    let name = tenant.as_str();
    let mut chunks = Vec::new();
    // The journal holds at most COMMITS_MAX commits: one short range lookup each.
    for commit in first.value().0..=last.value().0 {
        for entry in journal
            .range((commit, name, 0u64)..=(commit, name, u64::MAX))
            .map_err(|e| StoreError::backend(context, e))?
        {
            let (key, chunk) = entry.map_err(|e| StoreError::backend(context, e))?;
            chunks.push((key.value().2, chunk));
        }
    }
    Ok(chunks)
}
