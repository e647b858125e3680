//! A user's or group's timeline: every event that touched it, read back from the log.

use idpsync_storage::{Hash32, Seq};

use super::Tenant;
use crate::error::EngineError;
use crate::event::{LoggedEvent, decode_record};
use crate::ids::Member;

/// One entry of a timeline: the event as logged, with its chain link.
#[derive(Clone, Debug)]
pub struct TimelineEntry {
    /// The event, its position, time, source and cause.
    pub event: LoggedEvent,
    /// The record's chain link: the proof of its place in the log.
    pub chain: Hash32,
}

impl Tenant {
    /// Every event up to the current state that touched `member`: its own changes and its
    /// memberships (joins and leaves, including those ended by deleting a group), in log order.
    pub async fn timeline(&self, member: Member) -> Result<Vec<TimelineEntry>, EngineError> {
        let seqs: Vec<Seq> = self.with_history(|history, head| history.member_events(member, head).to_vec());
        let mut entries = Vec::with_capacity(seqs.len());
        let mut index = 0;
        while index < seqs.len() {
            // Read runs of consecutive records in one go.
            let run_start = seqs[index];
            let mut run_len = 1;
            while index + run_len < seqs.len() && seqs[index + run_len].0 == run_start.0 + run_len as u64 {
                run_len += 1;
            }
            let records = self.store.read(&self.id, run_start, run_len).await?;
            if records.len() != run_len {
                return Err(EngineError::Corrupt {
                    tenant: self.id.clone(),
                    seq: run_start.plus(records.len() as u64),
                    reason: "a record the history index names is missing".to_owned(),
                });
            }
            for record in records {
                let event = decode_record(&record).map_err(|e| EngineError::Corrupt {
                    tenant: self.id.clone(),
                    seq: record.seq,
                    reason: e.to_string(),
                })?;
                entries.push(TimelineEntry {
                    event,
                    chain: record.chain,
                });
            }
            index += run_len;
        }
        Ok(entries)
    }
}
