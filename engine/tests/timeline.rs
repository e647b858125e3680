//! A user's timeline, read back from the log through the history index.

mod common;

use std::sync::Arc;

use common::{origin, provision};

use idpsync_engine::ids::Member;
use idpsync_engine::model::Owner;
use idpsync_engine::{Command, Engine, Outcome, TenantSettings};
use idpsync_storage::{MemoryStore, TenantId};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeline_reads_every_event_that_touched_a_user() {
    let engine = Engine::open(Arc::new(MemoryStore::new()), TenantSettings::default())
        .await
        .unwrap();
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    let run = |command| {
        let tenant = Arc::clone(&tenant);
        async move { tenant.execute(command, origin()).await.unwrap().outcome }
    };
    let Outcome::UserProvisioned(alice) = run(provision("alice")).await else {
        unreachable!()
    };
    run(provision("bob")).await;
    let create = Command::CreateGroup {
        owner: Owner::Scim,
        external_id: None,
        display_name: "vpn".into(),
        members: vec![Member::User(alice)],
    };
    let Outcome::GroupCreated(group) = run(create).await else {
        unreachable!()
    };
    run(Command::SetUserActive {
        user: alice,
        active: false,
    })
    .await;
    run(Command::DeleteGroup {
        group,
        expected_version: None,
    })
    .await;
    let timeline = tenant.timeline(Member::User(alice)).await.unwrap();
    let kinds: Vec<String> = timeline
        .iter()
        .map(|entry| {
            format!("{:?}", entry.event.envelope.event)
                .split([' ', '{'])
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        kinds,
        ["UserProvisioned", "MembersAdded", "UserDeactivated", "GroupDeleted"]
    );
    assert_eq!(timeline.iter().map(|e| e.event.seq.0).collect::<Vec<_>>(), [1, 4, 5, 6]);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_on_demand_covers_the_head() {
    let store: Arc<dyn idpsync_storage::LogStore> = Arc::new(MemoryStore::new());
    let engine = Engine::open(Arc::clone(&store), TenantSettings::default())
        .await
        .unwrap();
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    tenant.execute(provision("alice"), origin()).await.unwrap();
    tenant.execute(provision("bob"), origin()).await.unwrap();
    let info = tenant.snapshot_now().await.unwrap();
    assert_eq!(info.seq, tenant.state().seq());
    let stored = store
        .snapshot_at_or_before(&TenantId::default_tenant(), info.seq)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.state_hash, info.state_hash);
    assert_eq!(
        tenant.snapshot_now().await.unwrap(),
        info,
        "the same head, the same snapshot"
    );
    tenant.execute(provision("carol"), origin()).await.unwrap();
    assert_eq!(tenant.snapshot_now().await.unwrap().seq, idpsync_storage::Seq(3));
    engine.shutdown().await;
}
