//! Erasure by crypto-shredding: personal fields are sealed per user; destroying the key erases
//! them everywhere — now, in the past, after a restart — while the chain still verifies and the
//! user's memberships, access and history stay.

use std::sync::Arc;

use idpsync_engine::access::grants;
use idpsync_engine::ids::{Member, ResourceId, UserId};
use idpsync_engine::model::{BindingGroups, Name, Owner, ResourceKind, ResourceRef, UserProfile};
use idpsync_engine::seal::secret_id;
use idpsync_engine::verify::verify_tenant;
use idpsync_engine::{Cause, Command, Engine, Origin, Outcome, Rejection, Source, SubmitError, Tenant, TenantSettings};
use idpsync_storage::{LogStore, MemoryStore, Seq, TenantId};

fn origin() -> Origin {
    Origin {
        source: Source::Operator,
        cause: Cause::Unspecified,
    }
}

fn profile(user_name: &str) -> UserProfile {
    UserProfile {
        user_name: user_name.to_owned(),
        name: Some(Box::new(Name {
            given_name: Some("Alice".into()),
            family_name: Some("Liddell".into()),
            ..Name::default()
        })),
        ..UserProfile::default()
    }
}

async fn provision(tenant: &Tenant, user_name: &str) -> UserId {
    let command = Command::ProvisionUser {
        owner: Owner::Scim,
        external_id: None,
        active: true,
        profile: profile(user_name),
    };
    match tenant.execute(command, origin()).await.unwrap().outcome {
        Outcome::UserProvisioned(id) => id,
        other => panic!("{other:?}"),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_user_reads_as_erased_everywhere_and_keeps_its_history() {
    let store: Arc<dyn LogStore> = Arc::new(MemoryStore::new());
    let tenant_id = TenantId::default_tenant();
    let engine = Engine::open(Arc::clone(&store), TenantSettings::default())
        .await
        .unwrap();
    let tenant = engine.require_tenant(&tenant_id).unwrap();
    let alice = provision(&tenant, "alice@wonderland.example").await;
    provision(&tenant, "bob@example.com").await;
    let create = Command::CreateGroup {
        owner: Owner::Scim,
        external_id: None,
        display_name: "vpn".into(),
        members: vec![Member::User(alice)],
    };
    let Outcome::GroupCreated(group) = tenant.execute(create, origin()).await.unwrap().outcome else {
        unreachable!()
    };
    let resource = ResourceRef {
        kind: ResourceKind::Route,
        id: ResourceId::new("route-1").unwrap(),
    };
    tenant
        .execute(
            Command::SetBinding {
                resource,
                groups: BindingGroups::Groups(vec![group]),
            },
            origin(),
        )
        .await
        .unwrap();
    let before_erasure = tenant.state().seq();

    // Nothing personal is in the log in the clear.
    let records = store.read(&tenant_id, Seq(1), 100).await.unwrap();
    assert!(
        !records.iter().any(|r| contains(&r.payload, b"wonderland")),
        "a userName was logged in the clear"
    );
    assert!(!records.iter().any(|r| contains(&r.payload, b"Liddell")));
    assert_eq!(store.secrets(&tenant_id).await.unwrap().len(), 2, "one key per user");

    tenant
        .execute(Command::EraseUser { user: alice }, origin())
        .await
        .unwrap();
    let state = tenant.state();
    let erased = state.user(alice).unwrap();
    assert!(erased.is_erased());
    assert_eq!(erased.profile.user_name, format!("erased-{alice}"));
    assert!(erased.profile.name.is_none());
    assert!(state.user_by_name("alice@wonderland.example").is_none());
    assert!(state.is_direct_member(group, Member::User(alice)), "memberships stay");
    assert_eq!(
        grants(&state, alice).len(),
        1,
        "so does access: erasure is not offboarding"
    );
    assert!(
        !store
            .secrets(&tenant_id)
            .await
            .unwrap()
            .iter()
            .any(|(id, _)| *id == secret_id(alice)),
        "the key is destroyed"
    );

    // In the past too: the key that read her fields is gone.
    let past = tenant.state_at(before_erasure).await.unwrap();
    assert!(past.user(alice).unwrap().is_erased());
    assert_eq!(
        past.user_by_name("bob@example.com")
            .map(|u| u.profile.user_name.clone())
            .as_deref(),
        Some("bob@example.com")
    );

    // Her fields cannot be set again, and the timeline still reads.
    let restore = Command::ReplaceUser {
        user: alice,
        expected_version: None,
        external_id: None,
        active: None,
        profile: profile("alice@wonderland.example"),
    };
    assert!(matches!(
        tenant.execute(restore, origin()).await,
        Err(SubmitError::Rejected(Rejection::UserErased(_)))
    ));
    assert_eq!(
        tenant.timeline(Member::User(alice)).await.unwrap().len(),
        3,
        "provisioned, joined, erased"
    );

    // The chain and the snapshots still verify; a restart sees the same.
    engine.shutdown().await;
    verify_tenant(&store, &tenant_id).await.unwrap();
    let reopened = Engine::open(Arc::clone(&store), TenantSettings::default())
        .await
        .unwrap();
    let again = reopened.require_tenant(&tenant_id).unwrap();
    assert!(again.state().user(alice).unwrap().is_erased());
    assert_eq!(
        again
            .state()
            .user_by_name("bob@example.com")
            .unwrap()
            .profile
            .name
            .as_ref()
            .unwrap()
            .family_name
            .as_deref(),
        Some("Liddell")
    );
    reopened.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_sealing_profiles_are_logged_plain() {
    let store: Arc<dyn LogStore> = Arc::new(MemoryStore::new());
    let settings = TenantSettings {
        seal_personal: false,
        ..TenantSettings::default()
    };
    let engine = Engine::open(Arc::clone(&store), settings).await.unwrap();
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    provision(&tenant, "alice@wonderland.example").await;
    let records = store.read(&TenantId::default_tenant(), Seq(1), 10).await.unwrap();
    assert!(contains(&records[0].payload, b"wonderland"));
    assert!(store.secrets(&TenantId::default_tenant()).await.unwrap().is_empty());
    engine.shutdown().await;
}
