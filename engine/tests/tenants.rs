//! Opening tenants: a tenant has exactly one writer, however many callers ask for it first.

mod common;

use std::sync::Arc;

use common::{origin, provision};
use idpsync_engine::{Engine, TenantSettings};
use idpsync_storage::{LogStore, RedbStore, Seq, TenantId};

/// Hardening issue, must-fix 1: two first requests for a new tenant at the same time started two
/// writers; the one replaced in the engine's map kept a stale head, so writes through it failed
/// with a sequence conflict until a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_first_requests_for_a_new_tenant_share_one_writer() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn LogStore> = Arc::new(RedbStore::open(dir.path()).unwrap());
    let engine = Arc::new(Engine::open(store, TenantSettings::default()).await.unwrap());
    let id = TenantId::new("new-tenant").unwrap();

    let openers: Vec<_> = (0..50)
        .map(|_| {
            let engine = Arc::clone(&engine);
            let id = id.clone();
            tokio::spawn(async move { engine.ensure_tenant(&id).await.unwrap() })
        })
        .collect();
    let mut tenants = Vec::new();
    for opener in openers {
        tenants.push(opener.await.unwrap());
    }
    // 1,000 writes, 20 through the handle each caller got, all at once.
    let writers: Vec<_> = tenants
        .iter()
        .cloned()
        .enumerate()
        .map(|(caller, tenant)| {
            tokio::spawn(async move {
                for n in 0..20 {
                    tenant
                        .execute(provision(&format!("caller{caller}-user{n}")), origin())
                        .await
                        .unwrap_or_else(|error| panic!("write {n} of caller {caller}: {error}"));
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let tenant = engine.require_tenant(&id).unwrap();
    assert!(
        tenants.iter().all(|handle| Arc::ptr_eq(handle, &tenant)),
        "every caller got the tenant the engine serves"
    );
    assert_eq!(tenant.state().user_count(), 1_000);
    assert_eq!(tenant.state().seq(), Seq(1_000));
    engine.shutdown().await;
}
