//! Reading the log back as events: a stretch of a tenant's records, decoded a page at a time,
//! each event with its record's chain link.
//!
//! Every reader of a stretch of the log goes through [`EventPages`]: replay (which also checks
//! that the records continue the chain), timelines, and the audit's scans. A reader holds one
//! page at a time, so a scan of the whole log takes the memory of a page, not of the log.
//! [`crate::Tenant::events`] reads a running tenant's log; [`EventPages::new`] reads a store
//! without one (the command line).

use std::ops::RangeInclusive;
use std::sync::Arc;

use idpsync_storage::verify::ChainVerifier;
use idpsync_storage::{Hash32, Head, LogStore, Record, Seq, TenantId};

use crate::error::EngineError;
use crate::event::{LoggedEvent, decode_record};

/// Records read per page.
pub const PAGE_LEN: usize = 8192;

/// Events in log order, each with its record's chain link: the proof of its place in the log.
pub type EventPage = Vec<(LoggedEvent, Hash32)>;

/// A tenant's events over a stretch of its log, read and decoded a page of at most
/// [`PAGE_LEN`] records at a time. The log must hold every record of the stretch: a record
/// missing or not decoding is an error naming it.
pub struct EventPages {
    store: Arc<dyn LogStore>,
    tenant: TenantId,
    /// The next record to read.
    next: Seq,
    /// The last record to read.
    last: Seq,
    chain: Chain,
}

/// Whether the records read are checked against the chain.
enum Chain {
    /// Not checked.
    Unchecked,
    /// Checked, starting at this record: trusted, read only to anchor the chain, not handed out.
    Anchor(Seq),
    /// Checked, continuing from the last record read.
    Checked(ChainVerifier),
}

impl EventPages {
    /// The events of `tenant`'s records `seqs` (`Seq::ZERO` counts as the first record), read
    /// from `store` without checking the chain.
    pub fn new(store: &Arc<dyn LogStore>, tenant: &TenantId, seqs: RangeInclusive<Seq>) -> EventPages {
        let (first, last) = seqs.into_inner();
        EventPages {
            store: Arc::clone(store),
            tenant: tenant.clone(),
            next: first.max(Seq(1)),
            last,
            chain: Chain::Unchecked,
        }
    }

    /// The events of `tenant`'s records after `anchor` up to `last`, checking that each
    /// continues the chain: from the first record when `anchor` is `Seq::ZERO`, else from the
    /// record at `anchor`, which is read again and trusted (a state folded up to it covers it).
    pub fn chained_after(store: &Arc<dyn LogStore>, tenant: &TenantId, anchor: Seq, last: Seq) -> EventPages {
        let chain = if anchor == Seq::ZERO {
            Chain::Checked(ChainVerifier::new(tenant.clone()))
        } else {
            Chain::Anchor(anchor)
        };
        EventPages {
            store: Arc::clone(store),
            tenant: tenant.clone(),
            next: anchor.max(Seq(1)),
            last,
            chain,
        }
    }

    /// The next page, or `None` once the stretch is read.
    pub async fn next_page(&mut self) -> Result<Option<EventPage>, EngineError> {
        if self.next > self.last {
            return Ok(None);
        }
        let want = usize::try_from(self.last.0 - self.next.0 + 1)
            .unwrap_or(usize::MAX)
            .min(PAGE_LEN);
        let records = self.store.read(&self.tenant, self.next, want).await?;
        let Some(read_last) = records.last() else {
            return Err(self.corrupt(self.next, "the log ends before its head"));
        };
        self.next = read_last.seq.next();
        self.decode(records).map(Some)
    }

    fn decode(&mut self, records: Vec<Record>) -> Result<EventPage, EngineError> {
        let mut events = Vec::with_capacity(records.len());
        for record in records {
            match &mut self.chain {
                Chain::Unchecked => {}
                Chain::Checked(verifier) => verifier.check(&record)?,
                Chain::Anchor(anchor) => {
                    let anchor = *anchor;
                    if record.seq != anchor {
                        return Err(self.corrupt(anchor, "the record the state was folded up to is missing"));
                    }
                    let head = Head {
                        seq: record.seq,
                        recorded_at: record.recorded_at,
                        chain: record.chain,
                    };
                    self.chain = Chain::Checked(ChainVerifier::after(self.tenant.clone(), head));
                    continue;
                }
            }
            let event = decode_record(&record).map_err(|error| self.corrupt(record.seq, &error.to_string()))?;
            events.push((event, record.chain));
        }
        Ok(events)
    }

    fn corrupt(&self, seq: Seq, reason: &str) -> EngineError {
        EngineError::Corrupt {
            tenant: self.tenant.clone(),
            seq,
            reason: reason.to_owned(),
        }
    }
}
