//! Metadata in the `meta` table: each change is a write transaction of its own, committed
//! durably before it answers. redb runs one write transaction at a time, so a change and the
//! committer's groups never interleave, and the compare-and-set reads the version it replaces
//! in the transaction that replaces it.

use redb::{Database, ReadableDatabase, ReadableTable};

use crate::error::StoreError;
use crate::meta::{self, MetaEntry};

use super::tables::META;

/// The entry `namespace`/`key`.
pub(super) fn get(db: &Database, namespace: &str, key: &str) -> Result<Option<MetaEntry>, StoreError> {
    let context = "reading metadata";
    let txn = db.begin_read().map_err(|e| StoreError::backend(context, e))?;
    let table = txn.open_table(META).map_err(|e| StoreError::backend(context, e))?;
    let stored = table
        .get((namespace, key))
        .map_err(|e| StoreError::backend(context, e))?;
    stored
        .map(|bytes| meta::decode_versioned(key, bytes.value()))
        .transpose()
}

/// Every entry of `namespace`, in key order.
pub(super) fn list(db: &Database, namespace: &str) -> Result<Vec<MetaEntry>, StoreError> {
    let context = "listing metadata";
    let txn = db.begin_read().map_err(|e| StoreError::backend(context, e))?;
    let table = txn.open_table(META).map_err(|e| StoreError::backend(context, e))?;
    let mut entries = Vec::new();
    for entry in table
        .range((namespace, "")..)
        .map_err(|e| StoreError::backend(context, e))?
    {
        let (name, bytes) = entry.map_err(|e| StoreError::backend(context, e))?;
        let (space, key) = name.value();
        if space != namespace {
            break;
        }
        entries.push(meta::decode_versioned(key, bytes.value())?);
    }
    Ok(entries)
}

/// Writes `value` over version `expected` (`None`: a new entry); returns the new version.
pub(super) fn put(
    db: &Database,
    namespace: &str,
    key: &str,
    expected: Option<u64>,
    value: &[u8],
) -> Result<u64, StoreError> {
    change(db, namespace, key, |table, current| {
        let version = meta::next_version(namespace, key, current, expected)?;
        table
            .insert((namespace, key), meta::encode_versioned(version, value).as_slice())
            .map_err(|e| StoreError::backend("writing metadata", e))?;
        Ok(version)
    })
}

/// Removes the entry if its version is `expected`.
pub(super) fn delete(db: &Database, namespace: &str, key: &str, expected: u64) -> Result<(), StoreError> {
    change(db, namespace, key, |table, current| {
        if current != Some(expected) {
            return Err(meta::conflict(namespace, key, current, Some(expected)));
        }
        table
            .remove((namespace, key))
            .map_err(|e| StoreError::backend("writing metadata", e))?;
        Ok(())
    })
}

/// Runs `write` on the table with the entry's current version, in one durable transaction;
/// commits only if `write` succeeds.
fn change<T>(
    db: &Database,
    namespace: &str,
    key: &str,
    write: impl FnOnce(&mut redb::Table<(&str, &str), &[u8]>, Option<u64>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let context = "writing metadata";
    let txn = db.begin_write().map_err(|e| StoreError::backend(context, e))?;
    let outcome = {
        let mut table = txn.open_table(META).map_err(|e| StoreError::backend(context, e))?;
        let current = table
            .get((namespace, key))
            .map_err(|e| StoreError::backend(context, e))?
            .map(|bytes| meta::decode_versioned(key, bytes.value()).map(|entry| entry.version))
            .transpose()?;
        write(&mut table, current)
    };
    match outcome {
        Ok(value) => {
            txn.commit().map_err(|e| StoreError::backend(context, e))?;
            Ok(value)
        }
        Err(error) => {
            txn.abort().map_err(|e| StoreError::backend(context, e))?;
            Err(error)
        }
    }
}
