//! [`DriverError`]: why a sync run could not read its IdP. Each variant names one cause, with
//! the data the scheduler needs to act on it (when to retry, whom to tell).

use std::time::Duration;

use crate::config::ConfigError;
use crate::keys::KeyError;

/// Why reading an IdP failed. Whatever the variant, nothing was applied: a failed or partial
/// listing never reaches the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// The IdP kept answering "too many requests" until the retry budget ran out.
    #[error("rate limited by the IdP at {url}{}", retry_hint(retry_after))]
    RateLimited {
        /// The request that was refused.
        url: String,
        /// When the IdP said to come back, if it said.
        retry_after: Option<Duration>,
    },
    /// The IdP refused the credentials (401) or the permissions (403).
    #[error("the IdP refused access to {url} (HTTP {status}): {message}")]
    Unauthorized {
        /// The request.
        url: String,
        /// 401 or 403.
        status: u16,
        /// The IdP's own words.
        message: String,
    },
    /// The token endpoint did not issue a token.
    #[error("no access token from {url}: {message}")]
    Token {
        /// The token endpoint.
        url: String,
        /// Why.
        message: String,
    },
    /// A listing stopped before its last page.
    #[error("the listing of {resource} stopped before its end: {reason}")]
    PartialListing {
        /// What was being listed.
        resource: String,
        /// Why it could not go on.
        reason: String,
    },
    /// Objects were created or deleted while a listing was read by offset or page number, so
    /// an object may have been skipped: the run reads the IdP again (see `sync`).
    #[error("the listing of {resource} shifted while it was read: {reason}")]
    Shifted {
        /// What was being listed.
        resource: String,
        /// What showed the shift.
        reason: String,
    },
    /// The IdP answered with a status the driver does not expect.
    #[error("unexpected HTTP {status} from {url}: {message}")]
    Status {
        /// The request.
        url: String,
        /// The status.
        status: u16,
        /// The IdP's own words, shortened.
        message: String,
    },
    /// The IdP could not be reached, or the connection broke, after every retry.
    #[error("cannot reach the IdP at {url}: {message}")]
    Transport {
        /// The request.
        url: String,
        /// The last failure.
        message: String,
    },
    /// A response that does not have the vendor's shape.
    #[error("unexpected response from {url}: {message}")]
    InvalidResponse {
        /// The request.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// An answer larger than the crate accepts from an IdP (64 MiB); it was refused as it
    /// streamed in.
    #[error(
        "the answer from {url} is larger than {} MiB, the most accepted from an IdP; a broken or hostile server, not a directory page",
        limit_bytes >> 20
    )]
    ResponseTooLarge {
        /// The request.
        url: String,
        /// The limit it passed, in bytes.
        limit_bytes: u64,
    },
    /// The sync ran out of its total time.
    #[error("the sync took longer than its limit of {}", humantime::format_duration(*limit))]
    Deadline {
        /// The configured limit.
        limit: Duration,
    },
    /// An incremental cursor the IdP no longer accepts; a full listing follows.
    #[error("the IdP no longer accepts the stored delta cursor: {0}")]
    CursorExpired(String),
    /// A credential that cannot be used (a key that does not parse).
    #[error("invalid credentials: {0}")]
    Credentials(String),
    /// A secret of the configuration that does not resolve when the driver is built (an unset
    /// environment variable, an unreadable file, a key file that does not parse), told like
    /// every configuration mistake: with the integration and the key.
    #[error("{0}")]
    Config(#[from] ConfigError),
}

/// A key of the integration that fails as the driver is built; [`crate::Driver`] adds the
/// integration's name.
impl From<KeyError> for DriverError {
    fn from(error: KeyError) -> DriverError {
        DriverError::Config(ConfigError::Key {
            integration: None,
            error,
        })
    }
}

fn retry_hint(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(after) => format!("; it asks to wait {}", humantime::format_duration(*after)),
        None => String::new(),
    }
}

impl DriverError {
    /// When the scheduler should try again at the earliest, if the IdP said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            DriverError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}
