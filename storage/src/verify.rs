//! Checking a log: dense `seq`, time that never goes back, and the hash chain.

use crate::error::StoreError;
use crate::record::Record;
use crate::store::{Head, LogStore};
use crate::types::{Seq, TenantId};

/// How many records [`verify_log`] reads at a time.
pub const VERIFY_PAGE_LEN: usize = 8192;

/// Checks records one after the other, from the first record of a log or from a trusted head.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    tenant: TenantId,
    last: Head,
}

impl ChainVerifier {
    /// Starts before the first record of `tenant`'s log.
    pub fn new(tenant: TenantId) -> ChainVerifier {
        ChainVerifier {
            tenant,
            last: Head::EMPTY,
        }
    }

    /// Starts after a head already known to be good.
    pub fn after(tenant: TenantId, trusted: Head) -> ChainVerifier {
        ChainVerifier { tenant, last: trusted }
    }

    /// The last record checked (or the starting head).
    pub fn head(&self) -> Head {
        self.last
    }

    /// Checks the next record: its `seq` follows, its time does not go back and its chain link
    /// is right. On error, names the tenant and the record's `seq`.
    pub fn check(&mut self, record: &Record) -> Result<(), StoreError> {
        let expected_seq = self.last.seq.next();
        if record.seq != expected_seq {
            return Err(self.corrupt(
                expected_seq,
                format!("expected seq {expected_seq}, found seq {}", record.seq),
            ));
        }
        if record.recorded_at < self.last.recorded_at {
            return Err(self.corrupt(
                record.seq,
                format!(
                    "recorded_at {} is before the previous record's {}",
                    record.recorded_at, self.last.recorded_at
                ),
            ));
        }
        let expected_chain = record.expected_chain(&self.last.chain);
        if record.chain != expected_chain {
            return Err(self.corrupt(
                record.seq,
                format!(
                    "chain hash mismatch: stored {}, computed {}",
                    record.chain, expected_chain
                ),
            ));
        }
        self.last = Head {
            seq: record.seq,
            recorded_at: record.recorded_at,
            chain: record.chain,
        };
        Ok(())
    }

    fn corrupt(&self, seq: Seq, reason: String) -> StoreError {
        StoreError::Corrupt {
            tenant: self.tenant.clone(),
            seq,
            reason,
        }
    }
}

/// Reads `tenant`'s whole log and checks it; also checks that it ends at the stored head.
/// Returns the verified head.
pub async fn verify_log(store: &dyn LogStore, tenant: &TenantId) -> Result<Head, StoreError> {
    let stored_head = store.head(tenant).await?;
    let mut verifier = ChainVerifier::new(tenant.clone());
    loop {
        let page = store.read(tenant, verifier.head().seq.next(), VERIFY_PAGE_LEN).await?;
        for record in &page {
            verifier.check(record)?;
        }
        if page.len() < VERIFY_PAGE_LEN {
            break;
        }
    }
    let verified = verifier.head();
    if verified != stored_head {
        return Err(StoreError::Corrupt {
            tenant: tenant.clone(),
            seq: verified.seq.next(),
            reason: format!(
                "the log ends at seq {} but its head says seq {} (chain {})",
                verified.seq, stored_head.seq, stored_head.chain
            ),
        });
    }
    Ok(verified)
}
