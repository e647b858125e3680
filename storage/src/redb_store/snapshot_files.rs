//! Snapshot files: `snapshots/<tenant>/<seq, 20 digits>.snap`.
//!
//! Layout: `magic "IDPSNAP1" | seq u64 | state hash [32] | len u64 | bytes` (little-endian).
//! A snapshot is written to a temporary file, flushed, renamed into place and the directory
//! flushed, so a crash leaves either the whole file or none.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::StoreError;
use crate::private_files;
use crate::store::{SnapshotInfo, SnapshotReader, StoredSnapshot};
use crate::types::{Hash32, Seq, TenantId};

const MAGIC: &[u8; 8] = b"IDPSNAP1";
const HEADER_LEN: usize = 8 + 8 + 32 + 8;

fn tenant_dir(dir: &Path, tenant: &TenantId) -> PathBuf {
    dir.join(tenant.as_str())
}

fn file_path(dir: &Path, tenant: &TenantId, seq: Seq) -> PathBuf {
    tenant_dir(dir, tenant).join(format!("{:020}.snap", seq.0))
}

fn corrupt(tenant: &TenantId, seq: Seq, reason: impl Into<String>) -> StoreError {
    StoreError::SnapshotCorrupt {
        tenant: tenant.clone(),
        seq,
        reason: reason.into(),
    }
}

/// How much of a snapshot is written between two flushes.
const FLUSH_BYTES: usize = 2 * 1024 * 1024;

pub(super) fn write(dir: &Path, tenant: &TenantId, snapshot: &StoredSnapshot) -> Result<(), StoreError> {
    let context = "writing a snapshot";
    let tenant_dir = tenant_dir(dir, tenant);
    private_files::create_dir_all(&tenant_dir).map_err(|e| StoreError::backend(context, e))?;
    let path = file_path(dir, tenant, snapshot.seq);
    let temporary = path.with_extension("snap.tmp");
    let mut file = private_files::create_file(&temporary).map_err(|e| StoreError::backend(context, e))?;
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&snapshot.seq.0.to_le_bytes());
    header.extend_from_slice(&snapshot.state_hash.0);
    header.extend_from_slice(&(snapshot.bytes.len() as u64).to_le_bytes());
    file.write_all(&header).map_err(|e| StoreError::backend(context, e))?;
    // Flushed a slice at a time: the log's commits share the file system's journal with this
    // file, and one flush of tens of megabytes would hold each of them back until it is done.
    for slice in snapshot.bytes.chunks(FLUSH_BYTES) {
        file.write_all(slice).map_err(|e| StoreError::backend(context, e))?;
        file.sync_data().map_err(|e| StoreError::backend(context, e))?;
    }
    file.sync_all().map_err(|e| StoreError::backend(context, e))?;
    drop(file);
    fs::rename(&temporary, &path).map_err(|e| StoreError::backend(context, e))?;
    File::open(&tenant_dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::backend(context, e))
}

/// Removes the snapshot at `seq`; whether there was one.
pub(super) fn remove(dir: &Path, tenant: &TenantId, seq: Seq) -> Result<bool, StoreError> {
    let context = "removing a snapshot";
    match fs::remove_file(file_path(dir, tenant, seq)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(StoreError::backend(context, e)),
    }
    File::open(tenant_dir(dir, tenant))
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::backend(context, e))?;
    Ok(true)
}

/// The seqs of the snapshots present, ascending. Temporary files of interrupted writes are
/// ignored.
pub(super) fn list(dir: &Path, tenant: &TenantId) -> Result<Vec<Seq>, StoreError> {
    let entries = match fs::read_dir(tenant_dir(dir, tenant)) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::backend("listing snapshots", e)),
    };
    let mut seqs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::backend("listing snapshots", e))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".snap")) else {
            continue;
        };
        if let Ok(seq) = stem.parse::<u64>() {
            seqs.push(Seq(seq));
        }
    }
    seqs.sort();
    Ok(seqs)
}

fn read_header(file: &mut File, tenant: &TenantId, seq: Seq) -> Result<(Hash32, u64), StoreError> {
    let mut header = [0u8; HEADER_LEN];
    file.read_exact(&mut header)
        .map_err(|e| corrupt(tenant, seq, format!("unreadable header: {e}")))?;
    if &header[..8] != MAGIC {
        return Err(corrupt(tenant, seq, "not a snapshot file (bad magic)"));
    }
    let stored_seq = Seq(u64::from_le_bytes(header[8..16].try_into().expect("8 bytes")));
    if stored_seq != seq {
        return Err(corrupt(tenant, seq, format!("file claims seq {stored_seq}")));
    }
    let hash = Hash32(header[16..48].try_into().expect("32 bytes"));
    let len = u64::from_le_bytes(header[48..56].try_into().expect("8 bytes"));
    Ok((hash, len))
}

pub(super) fn read_info(dir: &Path, tenant: &TenantId, seq: Seq) -> Result<SnapshotInfo, StoreError> {
    let mut file = File::open(file_path(dir, tenant, seq)).map_err(|e| corrupt(tenant, seq, e.to_string()))?;
    let (state_hash, _) = read_header(&mut file, tenant, seq)?;
    Ok(SnapshotInfo { seq, state_hash })
}

/// The `seq` of the latest snapshot of `tenant` at or before `seq`.
pub(super) fn latest_at_or_before(dir: &Path, tenant: &TenantId, seq: Seq) -> Result<Option<Seq>, StoreError> {
    Ok(list(dir, tenant)?.into_iter().rev().find(|s| *s <= seq))
}

/// Opens a snapshot for reading in pieces (its hash is checked when the reader finishes),
/// after checking its header and that the file holds as many bytes as the header says.
pub(super) fn open(dir: &Path, tenant: &TenantId, seq: Seq) -> Result<SnapshotReader, StoreError> {
    let mut file = File::open(file_path(dir, tenant, seq)).map_err(|e| corrupt(tenant, seq, e.to_string()))?;
    let (state_hash, len) = read_header(&mut file, tenant, seq)?;
    let file_len = file.metadata().map_err(|e| corrupt(tenant, seq, e.to_string()))?.len();
    if file_len != HEADER_LEN as u64 + len {
        return Err(corrupt(
            tenant,
            seq,
            format!(
                "file holds {} bytes of state, header says {len}",
                file_len.saturating_sub(HEADER_LEN as u64)
            ),
        ));
    }
    let source = Box::new(std::io::BufReader::with_capacity(READ_BUFFER, file));
    Ok(SnapshotReader::new(tenant.clone(), seq, state_hash, len, source))
}

/// The buffer between a snapshot file and its decoder.
const READ_BUFFER: usize = 256 * 1024;

/// Reads a snapshot whole, its hash checked.
pub(super) fn read(dir: &Path, tenant: &TenantId, seq: Seq) -> Result<StoredSnapshot, StoreError> {
    let mut reader = open(dir, tenant, seq)?;
    let mut bytes = Vec::with_capacity(usize::try_from(reader.remaining()).unwrap_or(0));
    reader
        .read_to_end(&mut bytes)
        .map_err(|e| corrupt(tenant, seq, e.to_string()))?;
    let state_hash = reader.state_hash();
    reader.finish()?;
    Ok(StoredSnapshot { seq, state_hash, bytes })
}
