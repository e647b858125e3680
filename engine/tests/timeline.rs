//! A user's timeline, read back from the log through the history index.

use std::sync::Arc;

use idpsync_engine::ids::Member;
use idpsync_engine::model::{Owner, UserProfile};
use idpsync_engine::{Cause, Command, Engine, Origin, Outcome, Source, TenantSettings};
use idpsync_storage::{MemoryStore, TenantId};

fn provision(name: &str) -> Command {
    Command::ProvisionUser {
        owner: Owner::Scim,
        external_id: None,
        active: true,
        profile: UserProfile {
            user_name: name.to_owned(),
            ..UserProfile::default()
        },
    }
}

fn origin() -> Origin {
    Origin {
        source: Source::Operator,
        cause: Cause::Unspecified,
    }
}

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
