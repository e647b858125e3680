//! The change stream across the feed's slices: a commit's records arrive together, a consumer
//! starts exactly where it asked, and a commit larger than one slice arrives whole and in order.

mod common;

use std::sync::Arc;

use common::{origin, provision};
use idpsync_engine::{Command, Engine, TenantSettings};
use idpsync_storage::{MemoryStore, Seq, TenantId};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_get_every_record_of_a_large_commit_once_and_in_order() {
    let engine = Engine::open(Arc::new(MemoryStore::default()), TenantSettings::default())
        .await
        .unwrap();
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    tenant.execute(provision("first"), origin()).await.unwrap();

    // From the start, and from the middle of the commit to come (seq 1 is taken, the commit
    // writes 2..=601).
    let mut everything = tenant.subscribe(Seq(1));
    let mut from_middle = tenant.subscribe(Seq(300));
    let users = (0..600).map(|n| provision(&format!("user{n}"))).collect();
    let committed = tenant.execute(Command::Atomic(users), origin()).await.unwrap();
    assert_eq!(
        (committed.events, committed.head),
        (600, Seq(601)),
        "one commit of 600 records"
    );

    for expected in 1..=601 {
        assert_eq!(everything.next().await.unwrap().event.seq, Seq(expected));
    }
    for expected in 300..=601 {
        assert_eq!(from_middle.next().await.unwrap().event.seq, Seq(expected));
    }
    engine.shutdown().await;
}
