//! The watch over revocations waiting for the consumer's acknowledgement, in `serve`: after a
//! start, each tenant reads back the revocations of the last [`RECALL_WINDOW`] (as long as the
//! engine watches one) that no acknowledgement answered (so that a restart does not hide an
//! overdue one), and every
//! [`REFRESH_EVERY`] the `idpsync_overdue_revocations` gauge is brought up to date: a
//! revocation becomes overdue with time alone, with no record to announce it.

use std::sync::Arc;
use std::time::Duration;

use idpsync_engine::Engine;
use idpsync_storage::Timestamp;
use tokio::task::JoinHandle;

/// How far back a start reads revocations waiting for their acknowledgement.
pub const RECALL_WINDOW: Duration = idpsync_engine::tenant::WATCHED_FOR;

/// How often the overdue gauge is refreshed.
pub const REFRESH_EVERY: Duration = Duration::from_secs(15);

/// Starts the watch over `engine`'s open tenants; abort the handle to stop it.
pub fn watch(engine: Arc<Engine>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let since = Timestamp(Timestamp::now().0 - RECALL_WINDOW.as_micros() as i64);
        for id in engine.tenant_ids() {
            let Some(tenant) = engine.tenant(&id) else { continue };
            if let Err(error) = tenant.recall_unacknowledged(since).await {
                tracing::warn!(tenant = %id, %error, "cannot read back the revocations waiting for an acknowledgement; only those from now on are watched");
            }
        }
        let mut tick = tokio::time::interval(REFRESH_EVERY);
        loop {
            tick.tick().await;
            let now = Timestamp::now();
            for id in engine.tenant_ids() {
                if let Some(tenant) = engine.tenant(&id) {
                    tenant.overdue_revocations(now);
                }
            }
        }
    })
}
