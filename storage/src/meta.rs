//! Metadata: small named values kept beside the logs, outside any tenant's chain — what a
//! server persists besides identity events (leases of scheduled work, and other state several
//! replicas must share). Every backend keeps them where it keeps the log, so that replicas on
//! one database see the same values.
//!
//! An entry is addressed by a namespace and a key and carries a version: 1 when it is created,
//! one more at each replacement. Every change names the version it replaces (compare-and-set),
//! so two writers that read the same version cannot both replace it: the second gets
//! [`StoreError::MetaConflict`] and nothing changes.

use crate::error::StoreError;

/// The namespaces the server keeps, in one place: a backup copies the durable ones.
pub mod namespaces {
    /// API and SCIM tokens (hashes), on stores replicas share.
    pub const TOKENS: &str = "tokens";
    /// Each integration's cursor, on stores replicas share.
    pub const INTEGRATION_STATE: &str = "integration-state";
    /// Syncs the guard holds, waiting for an operator.
    pub const HOLDS: &str = "holds";
    /// Leases of scheduled work: whose replica runs which integration, for a few seconds.
    pub const LEASES: &str = "leases";
    /// The checkpoint signing key every replica signs with, on stores replicas share.
    pub const CHECKPOINT_KEY: &str = "checkpoint-key";
    /// What a backup carries and a restore puts back (leases are not: they expire).
    pub const DURABLE: &[&str] = &[TOKENS, INTEGRATION_STATE, HOLDS, CHECKPOINT_KEY];
}

/// The longest namespace, in bytes.
pub const META_NAMESPACE_LEN_MAX: usize = 64;
/// The longest key, in bytes.
pub const META_KEY_LEN_MAX: usize = 512;
/// The largest value, in bytes.
pub const META_VALUE_LEN_MAX: usize = 16 * 1024 * 1024;

/// One metadata entry as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaEntry {
    /// Its key within its namespace.
    pub key: String,
    /// 1 when created, one more at each replacement.
    pub version: u64,
    /// The value.
    pub value: Vec<u8>,
}

/// Checks a namespace and key: non-empty, within their limits, and free of control
/// characters (so that every backend stores and sorts them alike).
pub fn check_name(namespace: &str, key: &str) -> Result<(), StoreError> {
    check_namespace(namespace)?;
    check_part("key", key, META_KEY_LEN_MAX)
}

/// Checks a namespace alone, as [`check_name`] does.
pub fn check_namespace(namespace: &str) -> Result<(), StoreError> {
    check_part("namespace", namespace, META_NAMESPACE_LEN_MAX)
}

/// Checks a value's size.
pub fn check_value(value: &[u8]) -> Result<(), StoreError> {
    if value.len() > META_VALUE_LEN_MAX {
        return Err(StoreError::InvalidMeta {
            reason: format!("a value of {} bytes exceeds {META_VALUE_LEN_MAX}", value.len()),
        });
    }
    Ok(())
}

fn check_part(what: &str, text: &str, max: usize) -> Result<(), StoreError> {
    if text.is_empty() || text.len() > max || text.chars().any(char::is_control) {
        return Err(StoreError::InvalidMeta {
            reason: format!("a metadata {what} must be 1 to {max} bytes without control characters, not {text:?}"),
        });
    }
    Ok(())
}

/// The version a put leaves, or the conflict: `current` is the stored version (`None`: no
/// entry), `expected` the version the writer replaces (`None`: it creates the entry).
pub fn next_version(
    namespace: &str,
    key: &str,
    current: Option<u64>,
    expected: Option<u64>,
) -> Result<u64, StoreError> {
    if current != expected {
        return Err(conflict(namespace, key, current, expected));
    }
    Ok(current.map_or(1, |version| version + 1))
}

/// [`StoreError::MetaConflict`] for an entry.
pub fn conflict(namespace: &str, key: &str, current: Option<u64>, expected: Option<u64>) -> StoreError {
    StoreError::MetaConflict {
        namespace: namespace.to_owned(),
        key: key.to_owned(),
        current,
        expected,
    }
}

/// A stored value with its version in front (`version u64 LE | value`), for backends that keep
/// one byte string per entry.
pub fn encode_versioned(version: u64, value: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(8 + value.len());
    bytes.extend_from_slice(&version.to_le_bytes());
    bytes.extend_from_slice(value);
    bytes
}

/// The version and value of [`encode_versioned`] bytes.
pub fn decode_versioned(key: &str, bytes: &[u8]) -> Result<MetaEntry, StoreError> {
    let (version, value) = bytes.split_first_chunk::<8>().ok_or_else(|| StoreError::InvalidMeta {
        reason: format!(
            "the stored entry {key:?} is {} bytes, shorter than its version",
            bytes.len()
        ),
    })?;
    Ok(MetaEntry {
        key: key.to_owned(),
        version: u64::from_le_bytes(*version),
        value: value.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("leases", "acme/okta").is_ok());
        assert!(check_name("", "k").is_err());
        assert!(check_name("n", "").is_err());
        assert!(check_name("n", "a\nb").is_err());
        assert!(check_name(&"n".repeat(META_NAMESPACE_LEN_MAX + 1), "k").is_err());
        assert!(check_name("n", &"k".repeat(META_KEY_LEN_MAX + 1)).is_err());
        assert!(check_value(&vec![0; META_VALUE_LEN_MAX + 1]).is_err());
    }

    #[test]
    fn versions_move_only_from_the_expected_one() {
        assert_eq!(next_version("n", "k", None, None).unwrap(), 1);
        assert_eq!(next_version("n", "k", Some(3), Some(3)).unwrap(), 4);
        assert!(matches!(
            next_version("n", "k", Some(3), Some(2)),
            Err(StoreError::MetaConflict {
                current: Some(3),
                expected: Some(2),
                ..
            })
        ));
        assert!(next_version("n", "k", Some(1), None).is_err());
        assert!(next_version("n", "k", None, Some(1)).is_err());
    }

    #[test]
    fn versioned_bytes_round_trip() {
        let bytes = encode_versioned(7, b"value");
        assert_eq!(
            decode_versioned("k", &bytes).unwrap(),
            MetaEntry {
                key: "k".to_owned(),
                version: 7,
                value: b"value".to_vec()
            }
        );
        assert!(decode_versioned("k", &[1, 2]).is_err());
    }
}
