//! Leases: work that must run on one replica at a time (an integration's scheduled sync) runs
//! where the lease is held. A lease is a metadata entry of the log store, `holder \t expires at`
//! (microseconds since the Unix epoch), changed only by compare-and-set on its version: two
//! replicas that find it free or expired at once both try to take it, and the store lets one.
//! The holder renews it well before it expires; a holder that dies stops renewing, and another
//! replica takes it once it has expired.
//!
//! On a store only this process writes (the embedded ones) there is nobody to share with: the
//! lease is always held, and nothing is written.
//!
//! Expiry is compared with each replica's own clock: clocks must agree to well within
//! [`LEASE_TTL`] (NTP does), or a replica whose clock runs ahead takes leases early.

use std::sync::Arc;
use std::time::Duration;

use idpsync_storage::{LogStore, StoreError, Timestamp};

use super::Tenant;
use crate::error::EngineError;

/// How long a lease lasts after it is taken or renewed.
pub const LEASE_TTL: Duration = Duration::from_secs(15);
/// How often a holder renews its lease, and a replica without it tries to take it: a lease is
/// taken over at most `LEASE_TTL + LEASE_RENEW_EVERY` after its holder died.
pub const LEASE_RENEW_EVERY: Duration = Duration::from_secs(5);

/// The metadata namespace of leases.
const NAMESPACE: &str = idpsync_storage::meta::namespaces::LEASES;

/// Who holds leases: one per process (or per scheduler), never shared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseHolder(String);

impl LeaseHolder {
    /// A new holder, unlike any other.
    pub fn new() -> LeaseHolder {
        LeaseHolder(uuid::Uuid::now_v7().to_string())
    }

    /// Its id, as the lease records it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for LeaseHolder {
    fn default() -> LeaseHolder {
        LeaseHolder::new()
    }
}

/// One named lease of a tenant, as one holder sees it.
pub struct Lease {
    store: Arc<dyn LogStore>,
    key: String,
    holder: LeaseHolder,
    /// The entry's version when this holder last wrote it.
    held: Option<u64>,
}

impl Tenant {
    /// The tenant's lease `name` (an integration's name), for `holder`.
    pub fn lease(&self, name: &str, holder: LeaseHolder) -> Lease {
        Lease {
            store: Arc::clone(&self.store),
            key: format!("{}/{name}", self.id),
            holder,
            held: None,
        }
    }
}

impl Lease {
    /// Takes the lease if it is free, expired or already this holder's, for [`LEASE_TTL`] from
    /// now; returns whether this holder holds it. Call it every [`LEASE_RENEW_EVERY`] to keep
    /// it.
    pub async fn hold(&mut self) -> Result<bool, EngineError> {
        if !self.store.is_shared() {
            return Ok(true);
        }
        let now = Timestamp::now();
        let expected = match self.store.get_meta(NAMESPACE, &self.key).await? {
            None => None,
            Some(entry) => {
                let (holder, expires_at) = decode(&entry.value).ok_or_else(|| StoreError::InvalidMeta {
                    reason: format!("the lease {} does not decode", self.key),
                })?;
                if holder != self.holder.as_str() && expires_at > now.0 {
                    self.held = None;
                    return Ok(false);
                }
                Some(entry.version)
            }
        };
        let ttl = i64::try_from(LEASE_TTL.as_micros()).unwrap_or(i64::MAX);
        let value = encode(self.holder.as_str(), now.0.saturating_add(ttl));
        match self.store.put_meta(NAMESPACE, &self.key, expected, value).await {
            Ok(version) => {
                self.held = Some(version);
                Ok(true)
            }
            Err(StoreError::MetaConflict { .. }) => {
                self.held = None;
                Ok(false)
            }
            Err(error) => {
                self.held = None;
                Err(error.into())
            }
        }
    }

    /// Gives the lease up, if this holder holds it, so that another replica takes it at once.
    pub async fn release(&mut self) -> Result<(), EngineError> {
        let Some(version) = self.held.take() else {
            return Ok(());
        };
        match self.store.delete_meta(NAMESPACE, &self.key, version).await {
            // Taken over meanwhile: it is not this holder's to give up.
            Ok(()) | Err(StoreError::MetaConflict { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

fn encode(holder: &str, expires_at: i64) -> Vec<u8> {
    format!("{holder}\t{expires_at}").into_bytes()
}

fn decode(value: &[u8]) -> Option<(&str, i64)> {
    let (holder, expires_at) = std::str::from_utf8(value).ok()?.split_once('\t')?;
    Some((holder, expires_at.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_value_round_trips() {
        assert_eq!(decode(&encode("holder-1", 42)), Some(("holder-1", 42)));
        assert_eq!(decode(b"no tab"), None);
        assert_eq!(decode(b"holder\tsoon"), None);
    }
}
