//! The mass-deactivation guard through a tenant's writer: removals add up over the window,
//! across restarts; a confirmed hold starts the window again; a hold is confirmed only as the
//! hold of the run reviewed, and only while it is fresh.

use std::sync::Arc;
use std::time::Duration;

use idpsync_engine::absence::AbsenceRules;
use idpsync_engine::ids::{IntegrationName, SyncRunId};
use idpsync_engine::model::UserProfile;
use idpsync_engine::reconcile::{
    ExternalMember, Guard, Listing, ListingScope, RecentRemovals, ReconcilePolicy, ReconcileReport, ScopeRules,
    SnapshotGroup, SnapshotUser, SyncInput,
};
use idpsync_engine::{Engine, Rejection, SubmitError, Tenant, TenantSettings};
use idpsync_storage::{LogStore, MemoryStore, RedbStore, TenantId};

fn okta() -> IntegrationName {
    IntegrationName::new("okta").unwrap()
}

/// A complete listing of users `u0`..`u{count - 1}`, all in group `vpn`.
fn directory(count: usize) -> Listing {
    let mut listing = Listing::new(ListingScope::Complete);
    listing.add_group(SnapshotGroup {
        external_id: "vpn".into(),
        display_name: "VPN".into(),
    });
    for n in 0..count {
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
    listing
}

fn input(listing: Listing) -> SyncInput {
    SyncInput {
        integration: okta(),
        run: SyncRunId::new(),
        listing,
        // The guard alone: absence takes effect at once (tests/absence.rs counts listings).
        rules: ScopeRules {
            absence: AbsenceRules::IMMEDIATE,
            ..ScopeRules::default()
        },
    }
}

async fn sync(tenant: &Tenant, users: usize) -> ReconcileReport {
    tenant.reconcile(input(directory(users)), Guard::Enforce).await.unwrap()
}

fn owned(tenant: &Tenant) -> usize {
    tenant.state().users_owned_by(&okta()).count()
}

async fn open(store: &Arc<dyn LogStore>, settings: TenantSettings) -> (Engine, Arc<Tenant>) {
    let engine = Engine::open(Arc::clone(store), settings).await.unwrap();
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    (engine, tenant)
}

/// Hardening issue, must-fix 6: each run was judged alone, so several runs under the limit
/// added up to a mass offboarding; and what they removed was forgotten at a restart.
#[tokio::test]
async fn runs_under_the_limit_that_add_up_past_it_are_held_even_across_a_restart() {
    let store: Arc<dyn LogStore> = Arc::new(MemoryStore::new());
    let (engine, tenant) = open(&store, TenantSettings::default()).await;
    sync(&tenant, 100).await;
    let first = sync(&tenant, 94).await;
    assert!(first.held.is_none(), "6 of 100 is under 10 %");
    assert_eq!(owned(&tenant), 94);
    engine.shutdown().await;

    let (engine, tenant) = open(&store, TenantSettings::default()).await;
    let second = sync(&tenant, 89).await;
    assert_eq!(
        second.guard.earlier,
        RecentRemovals {
            removals: 6,
            deletions: 6
        },
        "the run before the restart is remembered"
    );
    let held = second.held.expect("6 + 5 of 100 is over 10 %: held");
    assert_eq!(held.deletions, 5);
    assert_eq!(owned(&tenant), 94, "nothing of the held run was applied");
    assert!(tenant.held().contains_key(&okta()));
    engine.shutdown().await;
}

/// Hardening issue, must-fix 6: once an operator confirmed a hold, what it confirmed is not
/// counted against the next run, after a restart too.
#[tokio::test]
async fn a_confirmed_hold_starts_the_window_again() {
    let store: Arc<dyn LogStore> = Arc::new(MemoryStore::new());
    let (engine, tenant) = open(&store, TenantSettings::default()).await;
    sync(&tenant, 100).await;
    sync(&tenant, 94).await;
    let held = sync(&tenant, 89).await;
    assert!(held.held.is_some(), "6 + 5 of 100: held");
    let run = tenant.held()[&okta()].snapshot.run;
    tenant.confirm_held(okta(), run).await.unwrap();
    assert_eq!(owned(&tenant), 89);
    assert!(tenant.held().is_empty());
    let next = sync(&tenant, 87).await;
    assert_eq!(next.guard.earlier, RecentRemovals::default());
    assert!(next.held.is_none(), "2 of 89 after the confirmed run: applied");
    engine.shutdown().await;

    // Read back from the log, the confirmed run still starts the window.
    let (engine, tenant) = open(&store, TenantSettings::default()).await;
    let after_restart = sync(&tenant, 85).await;
    assert_eq!(
        after_restart.guard.earlier,
        RecentRemovals {
            removals: 2,
            deletions: 2
        }
    );
    assert!(after_restart.held.is_none());
    engine.shutdown().await;
}

/// Hardening issue, must-fix 9a: a held sync stayed confirmable after newer listings of the
/// same integration, so confirming applied a stale listing over what had been synced since.
#[tokio::test]
async fn a_newer_listing_supersedes_a_held_one() {
    let store: Arc<dyn LogStore> = Arc::new(MemoryStore::new());
    let (engine, tenant) = open(&store, TenantSettings::default()).await;
    sync(&tenant, 100).await;
    sync(&tenant, 50).await;
    let first = tenant.held()[&okta()].snapshot.run;
    // The IdP answers partly again: the newer listing is the hold to review.
    sync(&tenant, 40).await;
    let second = tenant.held()[&okta()].snapshot.run;
    assert_ne!(first, second);
    let stale = tenant.confirm_held(okta(), first).await.unwrap_err();
    assert!(
        matches!(&stale, SubmitError::Rejected(Rejection::HoldSuperseded { held, .. }) if *held == second),
        "{stale:?}"
    );
    assert_eq!(owned(&tenant), 100, "nothing was applied");
    // The IdP recovers: the listing that applies drops the hold.
    let recovered = sync(&tenant, 100).await;
    assert!(recovered.held.is_none());
    assert!(tenant.held().is_empty(), "the hold was superseded");
    let gone = tenant.confirm_held(okta(), second).await.unwrap_err();
    assert!(
        matches!(gone, SubmitError::Rejected(Rejection::Invalid { .. })),
        "{gone:?}"
    );
    assert_eq!(owned(&tenant), 100);
    engine.shutdown().await;
}

/// Hardening issue, must-fix 9a: a held sync could be confirmed however old it was.
#[tokio::test]
async fn an_expired_hold_cannot_be_confirmed() {
    let store: Arc<dyn LogStore> = Arc::new(MemoryStore::new());
    let settings = TenantSettings {
        policy: ReconcilePolicy {
            hold_expires_after: Duration::ZERO,
            ..ReconcilePolicy::default()
        },
        ..TenantSettings::default()
    };
    let (engine, tenant) = open(&store, settings).await;
    sync(&tenant, 100).await;
    sync(&tenant, 50).await;
    let run = tenant.held()[&okta()].snapshot.run;
    let expired = tenant.confirm_held(okta(), run).await.unwrap_err();
    assert!(
        matches!(expired, SubmitError::Rejected(Rejection::HoldExpired { .. })),
        "{expired:?}"
    );
    assert_eq!(owned(&tenant), 100, "nothing was applied");
    engine.shutdown().await;
}

/// Runs older than the window are forgotten.
#[tokio::test]
async fn runs_older_than_the_window_do_not_count() {
    let store: Arc<dyn LogStore> = Arc::new(MemoryStore::new());
    let settings = TenantSettings {
        policy: ReconcilePolicy {
            hold_window: Duration::from_micros(1),
            ..ReconcilePolicy::default()
        },
        ..TenantSettings::default()
    };
    let (engine, tenant) = open(&store, settings.clone()).await;
    sync(&tenant, 100).await;
    sync(&tenant, 94).await;
    tokio::time::sleep(Duration::from_millis(2)).await;
    let next = sync(&tenant, 89).await;
    assert_eq!(next.guard.earlier, RecentRemovals::default());
    assert!(next.held.is_none());
    engine.shutdown().await;
}

/// Issue 16: a held sync lived in memory only, so a restart dropped what waited for an
/// operator. It is kept in the store: after a restart (redb, a file on disk) it is the same
/// hold, with the same report, and confirming it applies it; a rejected one stays rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_sync_survives_a_restart_and_can_be_confirmed_or_rejected_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let reopen = || async {
        let store: Arc<dyn LogStore> = Arc::new(RedbStore::open(dir.path()).unwrap());
        open(&store, TenantSettings::default()).await
    };
    let (engine, tenant) = reopen().await;
    sync(&tenant, 100).await;
    let held = sync(&tenant, 50).await;
    assert!(held.held.is_some());
    let before = tenant.held()[&okta()].clone();
    engine.shutdown().await;
    drop((engine, tenant));

    let (engine, tenant) = reopen().await;
    let after = tenant.held().remove(&okta()).expect("the hold survives the restart");
    assert_eq!(after.snapshot, before.snapshot);
    assert_eq!((after.held_at, after.held_since), (before.held_at, before.held_since));
    assert_eq!(after.report, before.report, "the same report to review");
    // Rejected, it is gone for good.
    assert!(tenant.reject_held(&okta()).await.unwrap());
    engine.shutdown().await;
    drop((engine, tenant));
    let (engine, tenant) = reopen().await;
    assert!(tenant.held().is_empty(), "a rejected hold stays rejected");

    // Held again, restarted, confirmed: the reviewed listing applies.
    sync(&tenant, 50).await;
    let run = tenant.held()[&okta()].snapshot.run;
    engine.shutdown().await;
    drop((engine, tenant));
    let (engine, tenant) = reopen().await;
    tenant.confirm_held(okta(), run).await.unwrap();
    assert_eq!(owned(&tenant), 50);
    engine.shutdown().await;
    drop((engine, tenant));
    let (engine, tenant) = reopen().await;
    assert!(
        tenant.held().is_empty(),
        "a confirmed hold is not held again after a restart"
    );
    engine.shutdown().await;
}

/// Binds group `VPN` to route `route-1`.
async fn bind_vpn(tenant: &Tenant) {
    use idpsync_engine::ids::ResourceId;
    use idpsync_engine::model::{BindingGroups, ResourceKind, ResourceRef};
    use idpsync_engine::{Cause, Command, Origin, Source};
    let state = tenant.state();
    let vpn = state
        .groups()
        .find(|group| group.display_name == "VPN")
        .map(|group| group.id)
        .unwrap();
    let resource = ResourceRef {
        kind: ResourceKind::Route,
        id: ResourceId::new("route-1").unwrap(),
    };
    let origin = Origin {
        source: Source::Operator,
        cause: Cause::Unspecified,
    };
    let bind = Command::SetBinding {
        resource,
        groups: BindingGroups::Groups(vec![vpn]),
    };
    tenant.execute(bind, origin).await.unwrap();
}

/// The admin console's review of a held sync: the preview names every user the sync takes
/// from, what happens to the account, the groups left and the access lost, through the
/// projector; it writes nothing and leaves the hold as it was.
#[tokio::test]
async fn a_held_syncs_preview_names_who_loses_which_access_and_writes_nothing() {
    let store: Arc<dyn LogStore> = Arc::new(MemoryStore::new());
    let (engine, tenant) = open(&store, TenantSettings::default()).await;
    sync(&tenant, 20).await;
    bind_vpn(&tenant).await;
    // 17 of the 20 stay listed, only the first 15 in the group.
    let mut listing = Listing::new(ListingScope::Complete);
    listing.add_group(SnapshotGroup {
        external_id: "vpn".into(),
        display_name: "VPN".into(),
    });
    for n in 0..17 {
        listing.add_user(SnapshotUser {
            external_id: format!("u{n}"),
            active: true,
            profile: UserProfile {
                user_name: format!("user{n}@example.com"),
                ..UserProfile::default()
            },
        });
        if n < 15 {
            listing.add_member("vpn", ExternalMember::User(format!("u{n}")));
        }
    }
    let held = tenant.reconcile(input(listing), Guard::Enforce).await.unwrap();
    assert!(held.held.is_some(), "5 of 20 lose access: held");
    let head = tenant.state().seq();

    let preview = tenant.preview_held(&okta()).expect("a held sync");
    let names: Vec<&str> = preview.losers.iter().map(|loser| loser.user_name.as_str()).collect();
    assert_eq!(
        names,
        [
            "user15@example.com",
            "user16@example.com",
            "user17@example.com",
            "user18@example.com",
            "user19@example.com"
        ]
    );
    for loser in &preview.losers {
        let leaves_the_idp = loser.user_name.as_str() >= "user17@";
        assert_eq!(loser.deleted, leaves_the_idp, "{loser:?}");
        if !leaves_the_idp {
            assert_eq!(loser.groups_left, ["VPN"], "{loser:?}");
        }
        assert_eq!(loser.access_lost.len(), 1, "{loser:?}");
        assert_eq!(loser.access_lost[0].resource.to_string(), "route/route-1");
    }
    assert_eq!(preview.report.users_deleted, 3);
    assert_eq!(tenant.state().seq(), head, "a preview writes nothing");
    assert!(tenant.held().contains_key(&okta()), "and keeps the hold");
    assert!(tenant.preview_held(&IntegrationName::new("other").unwrap()).is_none());
    engine.shutdown().await;
}
