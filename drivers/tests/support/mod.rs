//! What the driver test files share: retries quick enough for tests, and a tenant on an
//! in-memory log.

use std::sync::Arc;
use std::time::Duration;

use idpsync_drivers::RetryPolicy;
use idpsync_engine::{Engine, Tenant, TenantSettings};
use idpsync_storage::{MemoryStore, TenantId};

/// Four tries, milliseconds apart; an IdP may ask for at most five seconds.
pub(crate) fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        attempts_max: 4,
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(50),
        retry_after_max: Duration::from_secs(5),
    }
}

/// An engine on an in-memory log, and its default tenant.
pub(crate) async fn open_tenant() -> (Engine, Arc<Tenant>) {
    let engine = Engine::open(Arc::new(MemoryStore::new()), TenantSettings::default())
        .await
        .unwrap();
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    (engine, tenant)
}
