//! `idpsync status` through the real binary: what a tenant's log holds pending (an
//! integration's absences not yet taken effect) and waiting (revocations the management server
//! has not acknowledged), read from the data directory after the service that wrote it stopped.

mod binary;

use idpsync::engine::absence::AbsenceRules;
use idpsync::engine::ids::{IntegrationName, Member, ResourceId, SyncRunId};
use idpsync::engine::model::{BindingGroups, Owner, ResourceKind, ResourceRef, UserProfile};
use idpsync::engine::reconcile::{
    ExternalMember, Guard, Listing, ListingScope, ScopeRules, SnapshotGroup, SnapshotUser, SyncInput,
};
use idpsync::engine::{Cause, Command, Origin, Source, Tenant, TenantSettings};
use idpsync::storage::TenantId;

/// A complete listing of users `u{from}`..`u{to - 1}`, all in group `vpn`.
fn listing(users: std::ops::Range<usize>) -> SyncInput {
    let mut listing = Listing::new(ListingScope::Complete);
    listing.add_group(SnapshotGroup {
        external_id: "vpn".into(),
        display_name: "VPN".into(),
    });
    for n in users {
        listing.add_user(SnapshotUser {
            external_id: format!("u{n}"),
            active: true,
            profile: UserProfile {
                user_name: format!("user{n}@example.com"),
                ..UserProfile::default()
            },
        });
        listing.add_member("vpn", ExternalMember::User(format!("u{n}")));
    }
    SyncInput {
        integration: IntegrationName::new("okta").unwrap(),
        run: SyncRunId::new(),
        listing,
        rules: ScopeRules {
            absence: AbsenceRules::default(),
            ..ScopeRules::default()
        },
    }
}

fn operator() -> Origin {
    Origin {
        source: Source::Operator,
        cause: Cause::Unspecified,
    }
}

/// Binds a group of its own holding `user0` to a route, then deactivates `user0` by hand:
/// one revocation, never acknowledged.
async fn revoke_one(tenant: &Tenant) {
    let user = tenant.state().user_by_name("user0@example.com").unwrap().id;
    let created = tenant
        .execute(
            Command::CreateGroup {
                owner: Owner::Operator,
                external_id: None,
                display_name: "ops".into(),
                members: vec![Member::User(user)],
            },
            operator(),
        )
        .await
        .unwrap();
    let idpsync::engine::Outcome::GroupCreated(group) = created.outcome else {
        panic!("{:?}", created.outcome)
    };
    let resource = ResourceRef {
        kind: ResourceKind::Route,
        id: ResourceId::new("office").unwrap(),
    };
    let groups = BindingGroups::Groups(vec![group]);
    tenant
        .execute(Command::SetBinding { resource, groups }, operator())
        .await
        .unwrap();
    tenant
        .execute(Command::SetUserActive { user, active: false }, operator())
        .await
        .unwrap();
}

#[tokio::test]
async fn status_shows_pending_absences_and_revocations_waiting_for_their_acknowledgement() {
    let dir = tempfile::tempdir().unwrap();
    let engine = idpsync::open(dir.path(), TenantSettings::default()).await.unwrap();
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    tenant.reconcile(listing(0..20), Guard::Enforce).await.unwrap();
    revoke_one(&tenant).await;
    tenant.reconcile(listing(0..19), Guard::Enforce).await.unwrap();
    engine.shutdown().await;
    // The store is released with the last handle on it.
    drop((tenant, engine));

    let output = binary::run(dir.path(), &["status", "--tenant", "default"]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(text.contains("integration okta: 2 absence(s) pending"), "{text}");
    assert!(
        text.contains("user user19@example.com: absent from 1 consecutive complete listing(s)"),
        "{text}"
    );
    assert!(text.contains("membership VPN: user19@example.com"), "{text}");
    // Waiting, not yet overdue: the threshold is 5 minutes.
    assert!(
        text.contains("revocations waiting for the management server's acknowledgement: 1 (0 overdue)"),
        "{text}"
    );

    let unknown = binary::run(dir.path(), &["status", "--tenant", "nobody"]);
    assert!(!unknown.status.success());
}
