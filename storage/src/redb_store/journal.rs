//! The journal: where a commit's records land first, and how they move into the log.
//!
//! Writing each tenant's records of a commit straight into `log` costs a B-tree insert per
//! tenant, and every such insert rewrites a leaf page of its own, because tenants' chunks sit
//! far apart in the key order. Under many concurrent writers that made the pages a commit writes
//! (and the CPU to copy, checksum and write them) grow with the number of tenants in the commit,
//! not with its bytes. So a commit writes all its records as **one** `journal` value, keyed by
//! a commit number: one insert at the end of a small tree.
//!
//! A journal value is a run of segments, each a chunk of one tenant's consecutive records:
//!
//! ```text
//! tenant_len u16 | tenant | first_seq u64 | chunk_len u32 | chunk (records, as in `log`)
//! ```
//!
//! Once the journal holds [`COMMITS_MAX`] commits or [`BYTES_MAX`] bytes, the commit that
//! crosses the line also moves the whole journal into `log`, each tenant's segments merged into
//! as few log chunks as [`CHUNK_BYTES_MAX`] allows, and empties the journal, in the same write
//! transaction. A reader's transaction therefore sees every record exactly once: in the log, or
//! in the journal after the tenant's last log chunk.

use std::collections::BTreeMap;

use redb::{Database, ReadOnlyTable, ReadableDatabase, ReadableTable, WriteTransaction};

use crate::error::StoreError;
use crate::types::{Seq, TenantId};

use super::tables::{JOURNAL, LOG};

/// The journal is moved into the log once it holds this many commits...
pub(super) const COMMITS_MAX: u64 = 64;
/// ...or this many bytes.
pub(super) const BYTES_MAX: usize = 8 * 1024 * 1024;
/// A chunk of records, in a journal segment or in the log, grows to about this many bytes: a
/// segment stops at it, and segments are merged into a log chunk up to it (one larger segment
/// stays one chunk).
pub(super) const CHUNK_BYTES_MAX: usize = 256 * 1024;

const SEGMENT_HEADER_LEN: usize = 2 + 8 + 4;

/// A segment being written at the end of a commit's journal value; see [`Segment::finish`].
pub(super) struct Segment {
    /// Where the chunk-length field is.
    len_at: usize,
}

impl Segment {
    /// Starts a segment of `tenant`'s records from `first_seq`; the caller then encodes the
    /// records onto `value` and calls [`Segment::finish`].
    pub(super) fn start(value: &mut Vec<u8>, tenant: &TenantId, first_seq: Seq) -> Segment {
        let name = tenant.as_str().as_bytes();
        let name_len = u16::try_from(name.len()).expect("a tenant name is at most LENGTH_MAX bytes");
        value.reserve(SEGMENT_HEADER_LEN + name.len());
        value.extend_from_slice(&name_len.to_le_bytes());
        value.extend_from_slice(name);
        value.extend_from_slice(&first_seq.0.to_le_bytes());
        let len_at = value.len();
        value.extend_from_slice(&[0; 4]);
        Segment { len_at }
    }

    /// Bytes of records in the segment so far.
    pub(super) fn chunk_len(&self, value: &[u8]) -> usize {
        value.len() - self.len_at - 4
    }

    /// Writes the chunk length into the header.
    pub(super) fn finish(self, value: &mut [u8]) {
        // A segment holds at most one commit's records, which are bounded far below 4 GiB.
        let len = u32::try_from(self.chunk_len(value)).expect("a segment is smaller than 4 GiB");
        value[self.len_at..self.len_at + 4].copy_from_slice(&len.to_le_bytes());
    }
}

/// The segments of a journal value, in order: `(tenant, first seq, chunk)`.
fn segments(mut value: &[u8]) -> impl Iterator<Item = Result<(&str, u64, &[u8]), String>> {
    std::iter::from_fn(move || {
        if value.is_empty() {
            return None;
        }
        let segment = (|| {
            let (name_len, rest) = value.split_first_chunk::<2>().ok_or("truncated tenant length")?;
            let name_len = usize::from(u16::from_le_bytes(*name_len));
            let (name, rest) = rest.split_at_checked(name_len).ok_or("truncated tenant")?;
            let name = std::str::from_utf8(name).map_err(|_| "tenant is not UTF-8")?;
            let (first_seq, rest) = rest.split_first_chunk::<8>().ok_or("truncated seq")?;
            let (chunk_len, rest) = rest.split_first_chunk::<4>().ok_or("truncated length")?;
            let chunk_len = u32::from_le_bytes(*chunk_len) as usize;
            let (chunk, rest) = rest.split_at_checked(chunk_len).ok_or("truncated chunk")?;
            value = rest;
            Ok((name, u64::from_le_bytes(*first_seq), chunk))
        })();
        if segment.is_err() {
            // What follows a bad length is noise.
            value = &[];
        }
        Some(segment.map_err(|reason: &str| reason.to_owned()))
    })
}

fn malformed(context: &'static str, commit: u64, reason: String) -> StoreError {
    StoreError::Backend {
        context,
        source: format!("journal entry of commit {commit}: {reason}").into(),
    }
}

/// What the journal holds, as the committer tracks it between commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Fill {
    /// The commit number the next commit that writes records takes.
    pub(super) next_commit: u64,
    /// Commits in the journal.
    pub(super) commits: u64,
    /// Bytes in the journal.
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
        for entry in journal.iter().map_err(|e| StoreError::backend(context, e))? {
            let (commit, value) = entry.map_err(|e| StoreError::backend(context, e))?;
            fill = Fill {
                next_commit: commit.value() + 1,
                ..fill.after_commit(value.value().len())
            };
        }
        Ok(fill)
    }

    /// The fill after a commit that wrote a journal value of `bytes` (none: it used no number).
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

/// Moves every journal entry into `log` and empties the journal, inside `txn`.
pub(super) fn move_into_log(txn: &WriteTransaction) -> Result<(), StoreError> {
    let context = "moving the journal into the log";
    // Each tenant's chunks in seq order: the journal is in commit order, and a tenant's later
    // commits hold its later records.
    let mut merged: BTreeMap<String, Vec<(u64, Vec<u8>)>> = BTreeMap::new();
    {
        let journal = txn.open_table(JOURNAL).map_err(|e| StoreError::backend(context, e))?;
        for_each_segment(&journal, context, |tenant, first_seq, chunk| {
            let chunks = merged.entry(tenant.to_owned()).or_default();
            match chunks.last_mut() {
                Some((_, open)) if open.len() + chunk.len() <= CHUNK_BYTES_MAX => open.extend_from_slice(chunk),
                _ => chunks.push((first_seq, chunk.to_vec())),
            }
            Ok(false)
        })?;
    }
    let mut log = txn.open_table(LOG).map_err(|e| StoreError::backend(context, e))?;
    for (tenant, chunks) in &merged {
        for (first_seq, chunk) in chunks {
            log.insert((tenant.as_str(), *first_seq), chunk.as_slice())
                .map_err(|e| StoreError::backend(context, e))?;
        }
    }
    drop(log);
    // Emptied by deleting it and creating it again, so that read transactions always find it.
    txn.delete_table(JOURNAL).map_err(|e| StoreError::backend(context, e))?;
    txn.open_table(JOURNAL).map_err(|e| StoreError::backend(context, e))?;
    Ok(())
}

/// Calls `take(first seq, chunk)` for each journal chunk of `tenant`, in seq order, until it
/// returns `true`.
pub(super) fn for_each_chunk(
    journal: &ReadOnlyTable<u64, &'static [u8]>,
    tenant: &TenantId,
    mut take: impl FnMut(Seq, &[u8]) -> Result<bool, StoreError>,
) -> Result<(), StoreError> {
    for_each_segment(journal, "reading the journal", |name, first_seq, chunk| {
        if name == tenant.as_str() {
            take(Seq(first_seq), chunk)
        } else {
            Ok(false)
        }
    })
}

/// Calls `each(tenant, first seq, chunk)` for every segment of the journal, in commit order,
/// until it returns `true`.
fn for_each_segment(
    journal: &impl ReadableTable<u64, &'static [u8]>,
    context: &'static str,
    mut each: impl FnMut(&str, u64, &[u8]) -> Result<bool, StoreError>,
) -> Result<(), StoreError> {
    for entry in journal.iter().map_err(|e| StoreError::backend(context, e))? {
        let (commit, value) = entry.map_err(|e| StoreError::backend(context, e))?;
        for segment in segments(value.value()) {
            let (tenant, first_seq, chunk) = segment.map_err(|e| malformed(context, commit.value(), e))?;
            if each(tenant, first_seq, chunk)? {
                return Ok(());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_read_back_as_written_and_a_cut_value_is_an_error() {
        let (acme, globex) = (TenantId::new("acme").unwrap(), TenantId::new("globex").unwrap());
        let mut value = Vec::new();
        for (tenant, first_seq, chunk) in [(&acme, 1, &b"abc"[..]), (&globex, 7, b""), (&acme, 4, b"de")] {
            let segment = Segment::start(&mut value, tenant, Seq(first_seq));
            value.extend_from_slice(chunk);
            assert_eq!(segment.chunk_len(&value), chunk.len());
            segment.finish(&mut value);
        }
        let read: Vec<_> = segments(&value).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            read,
            vec![("acme", 1, &b"abc"[..]), ("globex", 7, b""), ("acme", 4, b"de")]
        );
        for cut in 1..value.len() {
            let read: Vec<_> = segments(&value[..cut]).collect();
            if read.iter().all(Result::is_ok) {
                // Only a cut at a segment boundary reads cleanly, and then it reads fewer.
                assert!(read.len() < 3, "cut at {cut}");
            } else {
                assert!(read.last().unwrap().is_err(), "an error ends the run (cut at {cut})");
            }
        }
    }
}
