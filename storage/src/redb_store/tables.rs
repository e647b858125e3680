//! The redb tables and the byte layout of their values.
//!
//! - `log`: key `(tenant, first seq of the chunk)`, value: records back to back, in the layout
//!   of [`crate::record`]. A chunk holds consecutive records of one tenant.
//! - `journal`: key commit number, value: that commit's records as segments, each a chunk of one
//!   tenant's records with its tenant and first seq (see `journal`). Where commits write their
//!   records; moved into `log` in bulk.
//! - `heads`: key `tenant`, value `seq u64 | recorded_at i64 | chain [32]` (little-endian). A
//!   tenant exists when it has a head; the head is updated in the same transaction as the chunks.
//! - `secret_rows`: key `(tenant, first seq of the append, part)`, value: the secrets the
//!   append brought, back to back, each `id [16] | length u16 (little-endian) | material`, at
//!   most [`SECRETS_PER_ROW`] to a row. Outside the log and its chain, so a secret can be
//!   destroyed (its row is rewritten without it); written in the same transaction as the
//!   records sealed with them. A row per append, not per secret: a commit that provisions a
//!   thousand sealed users makes one insert, not a thousand.
//! - `meta`: key `(namespace, key)`, value `version u64 (little-endian) | value`: metadata
//!   (see [`crate::meta`]), written in transactions of their own.
//! - `secrets`: key `(tenant, secret id as a big-endian u128)`, value: key material. The layout
//!   before `secret_rows`: still read and destroyed, no longer written.

use redb::{Database, TableDefinition};

use crate::error::StoreError;
use crate::store::{Head, NewSecret, SecretId};
use crate::types::{Hash32, Seq, TenantId, Timestamp};

pub(super) const LOG: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("log");
pub(super) const JOURNAL: TableDefinition<u64, &[u8]> = TableDefinition::new("journal");
pub(super) const HEADS: TableDefinition<&str, &[u8]> = TableDefinition::new("heads");
pub(super) const SECRET_ROWS: TableDefinition<(&str, u64, u32), &[u8]> = TableDefinition::new("secret_rows");
pub(super) const SECRETS: TableDefinition<(&str, u128), &[u8]> = TableDefinition::new("secrets");
pub(super) const META: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("meta");

/// The most secrets one `secret_rows` row holds (about 50 KiB of 32-byte keys).
pub(super) const SECRETS_PER_ROW: usize = 1024;

const HEAD_LEN: usize = 8 + 8 + 32;

/// Creates the tables if the database is new, so that read transactions always find them.
pub(super) fn create(db: &Database) -> Result<(), StoreError> {
    let context = "creating tables";
    let txn = db.begin_write().map_err(|e| StoreError::backend(context, e))?;
    txn.open_table(LOG).map_err(|e| StoreError::backend(context, e))?;
    txn.open_table(JOURNAL).map_err(|e| StoreError::backend(context, e))?;
    txn.open_table(HEADS).map_err(|e| StoreError::backend(context, e))?;
    txn.open_table(SECRET_ROWS)
        .map_err(|e| StoreError::backend(context, e))?;
    txn.open_table(SECRETS).map_err(|e| StoreError::backend(context, e))?;
    txn.open_table(META).map_err(|e| StoreError::backend(context, e))?;
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

/// Encodes secrets as a `secret_rows` value (at most [`SECRETS_PER_ROW`], each at most
/// [`crate::store::SECRET_LEN_MAX`] bytes: the append checked both).
pub(super) fn encode_secret_row<'a>(secrets: impl IntoIterator<Item = (SecretId, &'a [u8])>) -> Vec<u8> {
    let mut row = Vec::new();
    for (id, material) in secrets {
        row.extend_from_slice(&id.0);
        let len = u16::try_from(material.len()).expect("a secret is at most SECRET_LEN_MAX bytes");
        row.extend_from_slice(&len.to_le_bytes());
        row.extend_from_slice(material);
    }
    row
}

/// Encodes new secrets as a `secret_rows` value.
pub(super) fn encode_new_secrets(secrets: &[NewSecret]) -> Vec<u8> {
    encode_secret_row(secrets.iter().map(|secret| (secret.id, secret.material.as_slice())))
}

/// The secrets of a `secret_rows` value, in order.
pub(super) fn decode_secret_row<'a>(
    tenant: &TenantId,
    bytes: &'a [u8],
) -> Result<Vec<(SecretId, &'a [u8])>, StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt {
        tenant: tenant.clone(),
        seq: Seq::ZERO,
        reason: format!("secret row: {reason}"),
    };
    let mut secrets = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (id, after_id) = rest.split_first_chunk::<16>().ok_or_else(|| corrupt("truncated id"))?;
        let (len, after_len) = after_id
            .split_first_chunk::<2>()
            .ok_or_else(|| corrupt("truncated length"))?;
        let len = usize::from(u16::from_le_bytes(*len));
        if after_len.len() < len {
            return Err(corrupt("truncated material"));
        }
        let (material, after) = after_len.split_at(len);
        secrets.push((SecretId(*id), material));
        rest = after;
    }
    Ok(secrets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_row_decodes_to_what_was_encoded_and_a_cut_row_is_corrupt() {
        let tenant = TenantId::new("acme").unwrap();
        let secrets = [
            (SecretId([1; 16]), vec![1u8; 32]),
            (SecretId([2; 16]), Vec::new()),
            (SecretId([3; 16]), vec![3u8; crate::store::SECRET_LEN_MAX]),
        ];
        let row = encode_secret_row(secrets.iter().map(|(id, material)| (*id, material.as_slice())));
        let decoded = decode_secret_row(&tenant, &row).unwrap();
        assert_eq!(
            decoded,
            secrets
                .iter()
                .map(|(id, material)| (*id, material.as_slice()))
                .collect::<Vec<_>>()
        );
        for cut in [1, 17, 18 + 31] {
            assert!(
                matches!(decode_secret_row(&tenant, &row[..cut]), Err(StoreError::Corrupt { .. })),
                "cut at {cut}"
            );
        }
        assert!(decode_secret_row(&tenant, &[]).unwrap().is_empty());
    }
}
