//! The storage layer's error type.

use crate::types::{Seq, TenantId, Timestamp};

/// Everything a [`crate::LogStore`] operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The tenant has no log; create it with `ensure_tenant`.
    #[error("tenant {0} does not exist")]
    UnknownTenant(TenantId),
    /// The append was built on a head the log has moved past (or not reached).
    #[error("tenant {tenant}: append expected to start at seq {got}, but the log continues at seq {expected}")]
    SeqConflict {
        /// Whose log.
        tenant: TenantId,
        /// The `seq` the log continues at.
        expected: Seq,
        /// The `seq` the batch asked for.
        got: Seq,
    },
    /// A record's `recorded_at` is earlier than the record before it.
    #[error("tenant {tenant}, seq {seq}: recorded_at {recorded_at} is earlier than the previous record's {previous}")]
    ClockWentBack {
        /// Whose log.
        tenant: TenantId,
        /// The offending record.
        seq: Seq,
        /// Its time.
        recorded_at: Timestamp,
        /// The time of the record before it.
        previous: Timestamp,
    },
    /// An append with no records.
    #[error("tenant {tenant}: an append needs at least one record")]
    EmptyBatch {
        /// Whose log.
        tenant: TenantId,
    },
    /// A payload over [`crate::record::PAYLOAD_LEN_MAX`].
    #[error("tenant {tenant}, seq {seq}: payload of {len} bytes exceeds the record limit")]
    PayloadTooLarge {
        /// Whose log.
        tenant: TenantId,
        /// The offending record.
        seq: Seq,
        /// Its payload length.
        len: usize,
    },
    /// Too many secrets in one append, or a secret over the size limit.
    #[error("tenant {tenant}: the append's secrets exceed the limits")]
    SecretTooLarge {
        /// Whose log.
        tenant: TenantId,
    },
    /// Stored bytes that do not decode, or break the log's invariants.
    #[error("tenant {tenant}, seq {seq}: corrupt record: {reason}")]
    Corrupt {
        /// Whose log.
        tenant: TenantId,
        /// The first record that is bad (or, for a missing record, the `seq` that is missing).
        seq: Seq,
        /// What is wrong.
        reason: String,
    },
    /// A snapshot whose bytes do not match its hash, or that cannot be read.
    #[error("tenant {tenant}: snapshot at seq {seq} is corrupt: {reason}")]
    SnapshotCorrupt {
        /// Whose snapshot.
        tenant: TenantId,
        /// Its position.
        seq: Seq,
        /// What is wrong.
        reason: String,
    },
    /// A snapshot beyond the log's head.
    #[error("tenant {tenant}: snapshot at seq {seq} is beyond the head at seq {head}")]
    SnapshotBeyondHead {
        /// Whose snapshot.
        tenant: TenantId,
        /// The snapshot's position.
        seq: Seq,
        /// The log's head.
        head: Seq,
    },
    /// The data directory is already opened for writing by another process.
    #[error("the data directory {path} is in use by another idpsync process; stop it or use another --data-dir")]
    InUse {
        /// The database file.
        path: String,
    },
    /// The store cannot write now (a full disk, an I/O error, an unreachable database); nothing
    /// of the request was written. The store tries again on its own; so may the caller, after
    /// `retry_after`.
    #[error("the log cannot be written now ({reason}); nothing was written: try again in {}s", retry_after.as_secs().max(1))]
    Unavailable {
        /// What failed.
        reason: String,
        /// When the store will try again.
        retry_after: std::time::Duration,
    },
    /// The data directory or the database can be read by other users.
    #[error(transparent)]
    NotPrivate(#[from] crate::private_files::NotPrivate),
    /// An I/O or database failure; nothing acknowledged is lost.
    #[error("storage failure while {context}: {source}")]
    Backend {
        /// What the store was doing.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A metadata change named a version the entry no longer has (or an entry that is not
    /// there, or one that already is): nothing changed.
    #[error("metadata {namespace}/{key}: expected version {}, found {}", version_text(*expected), version_text(*current))]
    MetaConflict {
        /// The entry's namespace.
        namespace: String,
        /// Its key.
        key: String,
        /// The stored version; `None` when there is no entry.
        current: Option<u64>,
        /// The version the change replaced; `None` when it created the entry.
        expected: Option<u64>,
    },
    /// A metadata namespace, key or value out of bounds, or a stored entry that does not decode.
    #[error("invalid metadata: {reason}")]
    InvalidMeta {
        /// What is wrong.
        reason: String,
    },
    /// The store has shut down.
    #[error("the log store is closed")]
    Closed,
    /// The store cannot be opened: a database that cannot be reached, refuses the
    /// credentials, or was migrated by a newer build.
    #[error("cannot use {store}: {reason}")]
    CannotOpen {
        /// The store, as its setting names it (any password redacted).
        store: String,
        /// What failed.
        reason: String,
    },
}

/// A metadata version for an error message: "none" for an absent entry.
fn version_text(version: Option<u64>) -> String {
    version.map_or_else(|| "none".to_owned(), |version| version.to_string())
}

impl StoreError {
    /// How long a caller should wait before trying the failed write again: what an unavailable
    /// store says, a second otherwise.
    pub fn retry_after(&self) -> std::time::Duration {
        match self {
            StoreError::Unavailable { retry_after, .. } => *retry_after,
            _ => std::time::Duration::from_secs(1),
        }
    }

    /// Wraps a backend error with what the store was doing.
    pub fn backend(context: &'static str, source: impl std::error::Error + Send + Sync + 'static) -> StoreError {
        StoreError::Backend {
            context,
            source: Box::new(source),
        }
    }
}
