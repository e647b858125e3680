//! A tenant's events read back from its log: any stretch of them ([`Tenant::events`]), and a
//! user's or group's timeline, every event that touched it ([`Tenant::timeline`]).

use std::ops::RangeInclusive;

use idpsync_storage::{Hash32, Seq};

use super::Tenant;
use crate::error::EngineError;
use crate::event::LoggedEvent;
use crate::ids::Member;
use crate::reader::EventPages;

/// One entry of a timeline: the event as logged, with its chain link.
#[derive(Clone, Debug)]
pub struct TimelineEntry {
    /// The event, its position, time, source and cause.
    pub event: LoggedEvent,
    /// The record's chain link: the proof of its place in the log.
    pub chain: Hash32,
}

impl Tenant {
    /// The events of records `seqs`, a page at a time; the stretch must be within the log.
    pub fn events(&self, seqs: RangeInclusive<Seq>) -> EventPages {
        EventPages::new(&self.store, &self.id, seqs)
    }

    /// Every event up to the current state that touched `member`: its own changes and its
    /// memberships (joins and leaves, including those ended by deleting a group), in log order.
    pub async fn timeline(&self, member: Member) -> Result<Vec<TimelineEntry>, EngineError> {
        let seqs: Vec<Seq> = self
            .with_history(|history, head| history.member_events(member, head).to_vec())
            .await;
        let mut entries = Vec::with_capacity(seqs.len());
        // Runs of consecutive records are read in one go.
        for run in seqs.chunk_by(|before, after| after.0 == before.0 + 1) {
            let mut events = self.events(run[0]..=run[run.len() - 1]);
            while let Some(page) = events.next_page().await? {
                entries.extend(page.into_iter().map(|(event, chain)| TimelineEntry { event, chain }));
            }
        }
        Ok(entries)
    }
}
