//! Stored snapshots are thinned to the configured number, and the past stays answerable.

mod common;

use std::sync::Arc;

use common::{origin, provision};
use idpsync_engine::{Engine, TenantSettings};
use idpsync_storage::{LogStore, MemoryStore, Seq, TenantId};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_snapshots_are_thinned_and_the_past_is_still_answered() {
    let store = Arc::new(MemoryStore::default());
    let settings = TenantSettings {
        snapshot_every: 10,
        snapshots_kept: 3,
        ..TenantSettings::default()
    };
    let engine = Engine::open(store.clone(), settings.clone()).await.unwrap();
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    for n in 0..95 {
        tenant.execute(provision(&format!("user{n}")), origin()).await.unwrap();
    }
    engine.shutdown().await;

    let stored = store.snapshots(&TenantId::default_tenant()).await.unwrap();
    assert!(!stored.is_empty() && stored.len() <= 3, "{stored:?}");
    assert_eq!(stored.last().unwrap().seq, Seq(95), "the newest is kept");

    let engine = Engine::open(store.clone(), settings).await.unwrap();
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    assert_eq!(tenant.state().user_count(), 95);
    for seq in [1, 15, 42, 94] {
        let past = tenant.state_at(Seq(seq)).await.unwrap();
        assert_eq!(past.user_count() as u64, seq, "the state after record {seq}");
    }
    engine.shutdown().await;
}
