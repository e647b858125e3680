//! The change stream: applied events and their access changes, in `seq` order, from any
//! position, with nothing missed and nothing twice.
//!
//! A consumer reads from the writer's broadcast while it keeps up. When it falls behind (the
//! broadcast overflowed, or it started in the past), it catches up from the in-memory ring of
//! recent events, and beyond that from the log, applying the records it reads as the writer
//! applied them (`apply.rs`): the projector is deterministic, so the access changes are the
//! ones the writer computed. A slow consumer never slows the
//! writer: the broadcast drops for it, it does not wait for it.

use std::collections::VecDeque;
use std::sync::Arc;

use idpsync_storage::Seq;
use tokio::sync::broadcast;

use super::apply::{Applied, AppliedBatch, ToApply};
use super::{FeedSlice, Tenant};
use crate::error::EngineError;
use crate::replay::replay_with;
use crate::state::State;

/// The most events one catch-up step loads.
const CATCH_UP_LEN_MAX: u64 = 4_096;

/// A consumer's position in a tenant's change stream.
pub struct ChangeStream {
    tenant: Arc<Tenant>,
    next: Seq,
    feed: broadcast::Receiver<FeedSlice>,
    backlog: VecDeque<Arc<Applied>>,
    /// While catching up from the log: the state just before `next`.
    replay_state: Option<State>,
    /// Erasures since `replay_state` was read: a state read before an erasure is read again.
    erasures: tokio::sync::watch::Receiver<u64>,
}

impl Tenant {
    /// Follows the tenant's applied events from `from` on (`Seq(1)` for everything).
    pub fn subscribe(self: &Arc<Self>, from: Seq) -> ChangeStream {
        ChangeStream {
            tenant: Arc::clone(self),
            next: Seq(from.0.max(1)),
            feed: self.feed.subscribe(),
            backlog: VecDeque::new(),
            replay_state: None,
            erasures: self.erasures(),
        }
    }

    /// How many change-stream consumers are attached.
    pub fn subscriber_count(&self) -> usize {
        self.feed.receiver_count()
    }
}

impl ChangeStream {
    /// The `seq` the next event will have.
    pub fn position(&self) -> Seq {
        self.next
    }

    /// The next applied event; waits for the writer when caught up.
    pub async fn next(&mut self) -> Result<Arc<Applied>, EngineError> {
        loop {
            if let Some(item) = self.backlog.pop_front() {
                if item.event.seq == self.next {
                    self.next = self.next.next();
                    return Ok(item);
                }
                continue;
            }
            let head = self.tenant.state().seq();
            if self.next <= head {
                self.catch_up(head).await?;
                continue;
            }
            self.replay_state = None;
            match self.feed.recv().await {
                // Records older than wanted were delivered already; if the slice starts after
                // the wanted one, something was missed and the loop catches up from the ring or
                // the log.
                Ok(slice) => self
                    .backlog
                    .extend(slice.iter().filter(|item| item.event.seq >= self.next).cloned()),
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return Err(EngineError::Closed),
            }
        }
    }

    async fn catch_up(&mut self, head: Seq) -> Result<(), EngineError> {
        // How far behind the head this consumer was when it had to catch up.
        metrics::histogram!("idpsync_change_stream_lag_events", "tenant" => self.tenant.id.to_string())
            .record((head.0 + 1 - self.next.0) as f64);
        let to = Seq(head.0.min(self.next.0 + CATCH_UP_LEN_MAX - 1));
        {
            let recent = self.tenant.recent.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(front) = recent.front()
                && front.event.seq <= self.next
            {
                let skip = (self.next.0 - front.event.seq.0) as usize;
                self.backlog.extend(
                    recent
                        .iter()
                        .skip(skip)
                        .take_while(|item| item.event.seq <= to)
                        .cloned(),
                );
                if !self.backlog.is_empty() {
                    return Ok(());
                }
            }
        }
        let before = Seq(self.next.0 - 1);
        // A closed sender means the tenant is gone; the replay below then fails on its own.
        let erased_since = self.erasures.has_changed().unwrap_or(false);
        self.erasures.mark_unchanged();
        let mut state = match self.replay_state.take() {
            Some(state) if state.seq() == before && !erased_since => state,
            _ => self.tenant.state_at(before).await?,
        };
        let mut applied = AppliedBatch::default();
        replay_with(
            &self.tenant.store,
            &self.tenant.id,
            &mut state,
            to,
            |state, event, chain| {
                applied.apply(state, [ToApply::committed(event, chain)], &*self.tenant.keyring);
            },
        )
        .await?;
        let (items, _) = applied.into_parts();
        self.backlog.extend(items.into_iter().map(Arc::new));
        self.replay_state = Some(state);
        Ok(())
    }
}
