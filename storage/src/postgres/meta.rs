//! Metadata in the `meta` table: each change is one statement that only matches the version it
//! replaces (an insert that does nothing if the entry exists, an update or delete `WHERE version
//! = expected`), so the database settles two replicas racing for one entry: one changes it, the
//! other matches nothing and gets [`StoreError::MetaConflict`].

use crate::error::StoreError;
use crate::meta::{self, MetaEntry};

use super::Shared;
use super::health::Failure;

/// The entry `namespace`/`key`.
pub(super) async fn get(shared: &Shared, namespace: &str, key: &str) -> Result<Option<MetaEntry>, Failure> {
    let client = shared.pool.get().await?;
    let statement = client.prepare_cached(&shared.sql.meta_get).await?;
    let row = client.query_opt(&statement, &[&namespace, &key]).await?;
    Ok(row
        .map(|row| entry(key.to_owned(), row.get(0), row.get(1)))
        .transpose()?)
}

/// Every entry of `namespace`, in key order.
pub(super) async fn list(shared: &Shared, namespace: &str) -> Result<Vec<MetaEntry>, Failure> {
    let client = shared.pool.get().await?;
    let statement = client.prepare_cached(&shared.sql.meta_list).await?;
    let rows = client.query(&statement, &[&namespace]).await?;
    Ok(rows
        .iter()
        .map(|row| entry(row.get(0), row.get(1), row.get(2)))
        .collect::<Result<_, _>>()?)
}

/// Creates or replaces the entry; returns its new version.
pub(super) async fn put(
    shared: &Shared,
    namespace: &str,
    key: &str,
    expected: Option<u64>,
    value: &[u8],
) -> Result<u64, Failure> {
    let client = shared.pool.get().await?;
    let changed = match expected {
        None => {
            let statement = client.prepare_cached(&shared.sql.meta_insert).await?;
            client.execute(&statement, &[&namespace, &key, &value]).await?
        }
        Some(version) => {
            let statement = client.prepare_cached(&shared.sql.meta_update).await?;
            client
                .execute(&statement, &[&namespace, &key, &db_version(version), &value])
                .await?
        }
    };
    if changed == 1 {
        return Ok(expected.map_or(1, |version| version + 1));
    }
    Err(conflict(shared, namespace, key, expected).await)
}

/// Removes the entry if its version is `expected`.
pub(super) async fn delete(shared: &Shared, namespace: &str, key: &str, expected: u64) -> Result<(), Failure> {
    let client = shared.pool.get().await?;
    let statement = client.prepare_cached(&shared.sql.meta_delete).await?;
    let deleted = client
        .execute(&statement, &[&namespace, &key, &db_version(expected)])
        .await?;
    if deleted == 1 {
        return Ok(());
    }
    Err(conflict(shared, namespace, key, Some(expected)).await)
}

/// The conflict of a change that matched nothing, naming the version stored now.
async fn conflict(shared: &Shared, namespace: &str, key: &str, expected: Option<u64>) -> Failure {
    match get(shared, namespace, key).await {
        Ok(current) => meta::conflict(namespace, key, current.map(|entry| entry.version), expected).into(),
        Err(failure) => failure,
    }
}

/// A version as the `bigint` column holds it (versions beyond `i64::MAX` never match).
fn db_version(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(i64::MAX)
}

fn entry(key: String, version: i64, value: Vec<u8>) -> Result<MetaEntry, StoreError> {
    let version = u64::try_from(version).map_err(|_| StoreError::InvalidMeta {
        reason: format!("the stored entry {key:?} has version {version}"),
    })?;
    Ok(MetaEntry { key, version, value })
}
