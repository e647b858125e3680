//! Between the store's values and PostgreSQL's columns: `seq` and times as `bigint`, hashes as
//! 32-byte `bytea`, event ids as `uuid`, versions as `integer`. Values read back are checked,
//! so a row edited outside the store is an error naming tenant and `seq`, never a wrong value.

use tokio_postgres::Row;

use crate::error::StoreError;
use crate::record::Record;
use crate::store::Head;
use crate::types::{EventId, Hash32, SchemaVersion, Seq, TenantId, Timestamp};

/// A `seq` as stored. Positions beyond `i64::MAX` cannot be stored; no log gets there.
pub(super) fn db_seq(tenant: &TenantId, seq: Seq) -> Result<i64, StoreError> {
    i64::try_from(seq.0).map_err(|_| StoreError::Corrupt {
        tenant: tenant.clone(),
        seq,
        reason: "seq beyond what the database can store".to_owned(),
    })
}

/// A `seq` as a bound in a query: the largest storable position stands for any beyond it.
pub(super) fn bound_seq(seq: Seq) -> i64 {
    i64::try_from(seq.0).unwrap_or(i64::MAX)
}

/// A stored `seq`.
pub(super) fn seq_from(tenant: &TenantId, value: i64) -> Result<Seq, StoreError> {
    u64::try_from(value).map(Seq).map_err(|_| StoreError::Corrupt {
        tenant: tenant.clone(),
        seq: Seq::ZERO,
        reason: format!("negative seq {value} stored"),
    })
}

/// A stored 32-byte hash.
pub(super) fn hash_from(tenant: &TenantId, seq: Seq, bytes: &[u8]) -> Result<Hash32, StoreError> {
    <[u8; 32]>::try_from(bytes)
        .map(Hash32)
        .map_err(|_| StoreError::Corrupt {
            tenant: tenant.clone(),
            seq,
            reason: format!("a stored hash of {} bytes", bytes.len()),
        })
}

/// A stored head.
pub(super) fn head_from(tenant: &TenantId, seq: i64, recorded_at: i64, chain: &[u8]) -> Result<Head, StoreError> {
    let seq = seq_from(tenant, seq)?;
    Ok(Head {
        seq,
        recorded_at: Timestamp(recorded_at),
        chain: hash_from(tenant, seq, chain)?,
    })
}

/// A row of `records` (`seq, recorded_at, event_id, version, payload, chain`).
pub(super) fn record_from(tenant: &TenantId, row: &Row) -> Result<Record, StoreError> {
    let seq = seq_from(tenant, row.get(0))?;
    let version: i32 = row.get(3);
    let version = u16::try_from(version).map_err(|_| StoreError::Corrupt {
        tenant: tenant.clone(),
        seq,
        reason: format!("version {version} stored"),
    })?;
    Ok(Record {
        seq,
        recorded_at: Timestamp(row.get(1)),
        event_id: EventId(row.get(2)),
        version: SchemaVersion(version),
        payload: row.get(4),
        chain: hash_from(tenant, seq, row.get(5))?,
    })
}
