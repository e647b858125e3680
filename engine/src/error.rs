//! The engine's errors. A [`crate::Rejection`] (a domain answer: "that userName is taken") is
//! kept apart from failures (the disk, a corrupt log).

use std::sync::Arc;

use idpsync_storage::{Seq, StoreError, TenantId};

use crate::rejection::Rejection;

/// A failure of the engine: storage, corruption, or a tenant that does not exist.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The log store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A record that does not decode or does not fit the log.
    #[error("tenant {tenant}, seq {seq}: {reason}")]
    Corrupt {
        /// Whose log.
        tenant: TenantId,
        /// The bad record.
        seq: Seq,
        /// What is wrong.
        reason: String,
    },
    /// A snapshot whose state does not match what the log folds to.
    #[error("tenant {tenant}: snapshot at seq {seq} does not match the log: {reason}")]
    SnapshotMismatch {
        /// Whose snapshot.
        tenant: TenantId,
        /// Its position.
        seq: Seq,
        /// What differs.
        reason: String,
    },
    /// No such tenant.
    #[error("tenant {0} does not exist")]
    UnknownTenant(TenantId),
    /// The tenant's writer has stopped.
    #[error("the engine is shutting down")]
    Closed,
}

impl EngineError {
    /// When the log store cannot be reached or written for now (it recovers on its own), how
    /// long until it tries again; `None` for every other failure.
    pub fn unavailable_for(&self) -> Option<std::time::Duration> {
        match self {
            EngineError::Store(cause @ StoreError::Unavailable { .. }) => Some(cause.retry_after()),
            _ => None,
        }
    }
}

/// Why a submitted command did not commit.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SubmitError {
    /// `decide` refused it; nothing was written.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// The append failed; nothing of the command was written, and nothing acknowledged is lost.
    #[error("the log could not be written: {0}")]
    Storage(Arc<StoreError>),
    /// The tenant's writer has stopped.
    #[error("the engine is shutting down")]
    Closed,
}
