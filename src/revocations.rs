//! The watch over revocations waiting for the consumer's acknowledgement, in `serve`: each
//! tenant, once loaded (tenants load on first use), reads back the revocations of the last
//! [`RECALL_WINDOW`] (as long as the engine watches one) that no acknowledgement answered (so
//! that a restart does not hide an overdue one), and every [`REFRESH_EVERY`] the
//! `idpsync_overdue_revocations` gauge of every loaded tenant is brought up to date: a
//! revocation becomes overdue with time alone, with no record to announce it. A tenant not
//! used since the start is not watched until its first use.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use idpsync_engine::Engine;
use idpsync_storage::{TenantId, Timestamp};
use tokio::task::JoinHandle;

/// How far back a tenant's first watch reads revocations waiting for their acknowledgement.
pub const RECALL_WINDOW: Duration = idpsync_engine::tenant::WATCHED_FOR;

/// How often the overdue gauge is refreshed and newly loaded tenants are recalled.
pub const REFRESH_EVERY: Duration = Duration::from_secs(15);

/// Starts the watch over `engine`'s loaded tenants; abort the handle to stop it.
pub fn watch(engine: Arc<Engine>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut recalled: BTreeSet<TenantId> = BTreeSet::new();
        let mut tick = tokio::time::interval(REFRESH_EVERY);
        loop {
            tick.tick().await;
            let now = Timestamp::now();
            for tenant in engine.loaded_tenants() {
                if recalled.insert(tenant.id().clone()) {
                    let since = Timestamp(now.0 - RECALL_WINDOW.as_micros() as i64);
                    if let Err(error) = tenant.recall_unacknowledged(since).await {
                        tracing::warn!(tenant = %tenant.id(), %error, "cannot read back the revocations waiting for an acknowledgement; only those from now on are watched");
                    }
                }
                tenant.overdue_revocations(now);
            }
        }
    })
}
