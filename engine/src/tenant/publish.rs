//! Publishing: what a tenant's readers see changes here, and only here, once a batch is
//! durable. In one order: the history index first, then the state, then the revocations
//! waiting for an acknowledgement, the recent ring and the change feed, then the in-memory
//! checkpoints; so whoever sees a state finds the history
//! up to it, and a consumer that hears of an event can already read the state that includes it.

use std::sync::Arc;

use idpsync_storage::Seq;

use super::apply::{Applied, AppliedBatch};
use super::{FEED_SLICE_MAX, Tenant};
use crate::state::State;

/// Publishes a tenant's durable batches, and keeps the in-memory checkpoints' schedule.
pub(super) struct Publisher {
    tenant: Arc<Tenant>,
    /// The `seq` of the last in-memory checkpoint (at first, the state the tenant started from).
    last_checkpoint: Seq,
}

impl Publisher {
    /// A publisher for `tenant`, whose published state is at `head`.
    pub(super) fn new(tenant: Arc<Tenant>, head: Seq) -> Publisher {
        Publisher {
            tenant,
            last_checkpoint: head,
        }
    }

    /// Makes `batch`, now durable, visible, with `after`: the state that includes it.
    pub(super) fn publish(&mut self, batch: AppliedBatch, after: &State) {
        let tenant = &*self.tenant;
        let settings = &tenant.settings;
        let (applied, effects) = batch.into_parts();
        tenant.history.record(effects);
        tenant.published.store(Arc::new(after.clone()));
        metrics::gauge!("idpsync_change_stream_subscribers", "tenant" => tenant.id.to_string())
            .set(tenant.feed.receiver_count() as f64);
        {
            let applied: Vec<Arc<Applied>> = applied.into_iter().map(Arc::new).collect();
            for item in &applied {
                tenant.acks.note(tenant, item);
            }
            let mut recent = tenant.recent.lock().unwrap_or_else(|p| p.into_inner());
            recent.extend(applied.iter().cloned());
            while recent.len() > settings.recent_max {
                recent.pop_front();
            }
            // One message per slice of the batch, not per record: a live consumer wakes once
            // per commit however many records it brings. No subscriber is not an error.
            for slice in applied.chunks(FEED_SLICE_MAX) {
                let _ = tenant.feed.send(slice.into());
            }
        }
        if after.seq().0 - self.last_checkpoint.0 >= settings.checkpoint_every {
            self.last_checkpoint = after.seq();
            let mut checkpoints = tenant.checkpoints.lock().unwrap_or_else(|p| p.into_inner());
            checkpoints.insert(after.seq(), after.clone());
            while checkpoints.len() > settings.checkpoints_max {
                checkpoints.pop_first();
            }
        }
    }
}
