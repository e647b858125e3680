//! The redb tables and the byte layout of their values.
//!
//! - `log`: key `(tenant, first seq of the chunk)`, value: records back to back, in the layout
//!   of [`crate::record`]. A chunk holds consecutive records of one tenant.
//! - `heads`: key `tenant`, value `seq u64 | recorded_at i64 | chain [32]` (little-endian). A
//!   tenant exists when it has a head; the head is updated in the same transaction as the chunks.
//! - `secrets`: key `(tenant, secret id as a big-endian u128)`, value: key material. Outside the
//!   log and its chain, so a secret can be destroyed; written in the same transaction as the
//!   records sealed with it.

use redb::{Database, TableDefinition};

use crate::error::StoreError;
use crate::store::Head;
use crate::types::{Hash32, Seq, TenantId, Timestamp};

pub(super) const LOG: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("log");
pub(super) const HEADS: TableDefinition<&str, &[u8]> = TableDefinition::new("heads");
pub(super) const SECRETS: TableDefinition<(&str, u128), &[u8]> = TableDefinition::new("secrets");

const HEAD_LEN: usize = 8 + 8 + 32;

/// Creates the tables if the database is new, so that read transactions always find them.
pub(super) fn create(db: &Database) -> Result<(), StoreError> {
    let context = "creating tables";
    let txn = db.begin_write().map_err(|e| StoreError::backend(context, e))?;
    txn.open_table(LOG).map_err(|e| StoreError::backend(context, e))?;
    txn.open_table(HEADS).map_err(|e| StoreError::backend(context, e))?;
    txn.open_table(SECRETS).map_err(|e| StoreError::backend(context, e))?;
    txn.commit().map_err(|e| StoreError::backend(context, e))
}

pub(super) fn encode_head(head: &Head) -> [u8; HEAD_LEN] {
    let mut bytes = [0u8; HEAD_LEN];
    bytes[..8].copy_from_slice(&head.seq.0.to_le_bytes());
    bytes[8..16].copy_from_slice(&head.recorded_at.0.to_le_bytes());
    bytes[16..].copy_from_slice(&head.chain.0);
    bytes
}

pub(super) fn decode_head(tenant: &TenantId, bytes: &[u8]) -> Result<Head, StoreError> {
    if bytes.len() != HEAD_LEN {
        return Err(StoreError::Corrupt {
            tenant: tenant.clone(),
            seq: Seq::ZERO,
            reason: format!("head record has {} bytes, expected {HEAD_LEN}", bytes.len()),
        });
    }
    let seq = Seq(u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")));
    let recorded_at = Timestamp(i64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")));
    let chain = Hash32(bytes[16..].try_into().expect("32 bytes"));
    Ok(Head {
        seq,
        recorded_at,
        chain,
    })
}
