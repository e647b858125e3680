//! Acknowledgements through the embedding API: a revocation acknowledged by its stream id is
//! recorded once; a grant or an unknown id is refused and writes nothing; the revocations
//! still waiting are overdue past the threshold, and a restart reads them back from the log.

use std::sync::Arc;
use std::time::Duration;

use idpsync_engine::ids::{GroupId, Member, ResourceId, UserId};
use idpsync_engine::model::{BindingGroups, Owner, ResourceKind, ResourceRef, UserProfile};
use idpsync_engine::tenant::WATCHED_FOR;
use idpsync_engine::{
    AcknowledgeError, Cause, ChangeId, Command, Engine, Origin, Outcome, Rejection, Source, SubmitError, Tenant,
    TenantSettings,
};
use idpsync_storage::{LogStore, MemoryStore, Seq, TenantId, Timestamp};

fn origin() -> Origin {
    Origin {
        source: Source::Operator,
        cause: Cause::Unspecified,
    }
}

async fn open(store: &Arc<dyn LogStore>) -> (Engine, Arc<Tenant>) {
    let settings = TenantSettings {
        // Every revocation not acknowledged at once is overdue.
        revocation_ack_within: Duration::ZERO,
        ..TenantSettings::default()
    };
    let engine = Engine::open(Arc::clone(store), settings).await.unwrap();
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    (engine, tenant)
}

async fn user(tenant: &Tenant, name: &str) -> UserId {
    let command = Command::ProvisionUser {
        owner: Owner::Operator,
        external_id: None,
        active: true,
        profile: UserProfile {
            user_name: name.into(),
            ..UserProfile::default()
        },
    };
    match tenant.execute(command, origin()).await.unwrap().outcome {
        Outcome::UserProvisioned(id) => id,
        other => panic!("{other:?}"),
    }
}

/// Alice and bob in a group bound to a route; returns them and the binding's record.
async fn setup(tenant: &Tenant) -> (UserId, UserId, Seq) {
    let alice = user(tenant, "alice@example.com").await;
    let bob = user(tenant, "bob@example.com").await;
    let created = tenant
        .execute(
            Command::CreateGroup {
                owner: Owner::Operator,
                external_id: None,
                display_name: "vpn".into(),
                members: vec![Member::User(alice), Member::User(bob)],
            },
            origin(),
        )
        .await
        .unwrap();
    let Outcome::GroupCreated(group) = created.outcome else {
        panic!("{:?}", created.outcome)
    };
    let bound = bind(tenant, group).await;
    (alice, bob, bound)
}

async fn bind(tenant: &Tenant, group: GroupId) -> Seq {
    let resource = ResourceRef {
        kind: ResourceKind::Route,
        id: ResourceId::new("office").unwrap(),
    };
    let command = Command::SetBinding {
        resource,
        groups: BindingGroups::Groups(vec![group]),
    };
    tenant.execute(command, origin()).await.unwrap().head
}

/// Deactivates `user`; returns the stream id of the one revocation it caused.
async fn deactivate(tenant: &Tenant, user: UserId) -> ChangeId {
    let committed = tenant
        .execute(Command::SetUserActive { user, active: false }, origin())
        .await
        .unwrap();
    ChangeId {
        seq: committed.head,
        index: 1,
    }
}

fn rejected(error: AcknowledgeError) -> Rejection {
    match error {
        AcknowledgeError::Submit(SubmitError::Rejected(rejection)) => rejection,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_revocation_is_acknowledged_once_and_the_others_wait_even_across_a_restart() {
    let store: Arc<dyn LogStore> = Arc::new(MemoryStore::new());
    let (engine, tenant) = open(&store).await;
    let (alice, bob, bound) = setup(&tenant).await;
    let head = tenant.state().seq();
    let grant = ChangeId { seq: bound, index: 1 };
    assert!(matches!(
        rejected(tenant.acknowledge(grant, origin()).await.unwrap_err()),
        Rejection::NotARevocation { .. }
    ));
    for unknown in [
        ChangeId { seq: bound, index: 0 },
        ChangeId { seq: bound, index: 9 },
        ChangeId {
            seq: Seq(head.0 + 1),
            index: 1,
        },
    ] {
        assert!(matches!(
            rejected(tenant.acknowledge(unknown, origin()).await.unwrap_err()),
            Rejection::ChangeNotFound { .. }
        ));
    }
    assert_eq!(tenant.state().seq(), head, "refusals write nothing");

    let alice_revoked = deactivate(&tenant, alice).await;
    let bob_revoked = deactivate(&tenant, bob).await;
    assert_eq!(tenant.unacknowledged_revocations().len(), 2);
    let first = tenant.acknowledge(alice_revoked, origin()).await.unwrap();
    assert!(first.recorded && first.user == alice);
    let head = tenant.state().seq();
    let again = tenant.acknowledge(alice_revoked, origin()).await.unwrap();
    assert!(!again.recorded);
    assert_eq!(tenant.state().seq(), head, "recorded once");
    let now = Timestamp::now();
    assert_eq!(tenant.overdue_revocations(now).count, 1);
    assert_eq!(tenant.unacknowledged_revocations()[0].0, bob_revoked);
    engine.shutdown().await;

    // A new process knows nothing waits until it reads the log back.
    let (engine, tenant) = open(&store).await;
    assert_eq!(tenant.overdue_revocations(Timestamp::now()).count, 0);
    tenant.recall_unacknowledged(Timestamp(0)).await.unwrap();
    let waiting = tenant.unacknowledged_revocations();
    assert_eq!(waiting.len(), 1);
    assert_eq!((waiting[0].0, waiting[0].1), (bob_revoked, bob));
    // Acknowledged before the restart: found in the log, not recorded again.
    assert!(!tenant.acknowledge(alice_revoked, origin()).await.unwrap().recorded);
    tenant.acknowledge(bob_revoked, origin()).await.unwrap();
    assert_eq!(tenant.overdue_revocations(Timestamp::now()).count, 0);

    // A revocation nobody acknowledges is watched for a day, then left to the leavers' report.
    let carol = user(&tenant, "carol@example.com").await;
    let group = tenant.state().groups().next().unwrap().id;
    tenant
        .execute(
            Command::AddMembers {
                group,
                members: vec![Member::User(carol)],
            },
            origin(),
        )
        .await
        .unwrap();
    deactivate(&tenant, carol).await;
    assert_eq!(tenant.overdue_revocations(Timestamp::now()).count, 1);
    let a_day_later = Timestamp(Timestamp::now().0 + WATCHED_FOR.as_micros() as i64 + 1_000_000);
    assert_eq!(tenant.overdue_revocations(a_day_later).count, 0);
    assert!(tenant.unacknowledged_revocations().is_empty());
    engine.shutdown().await;
}
