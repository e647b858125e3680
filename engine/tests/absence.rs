//! Deletions that need two witnesses, through a tenant's writer: what a complete listing no
//! longer contains is removed only once enough consecutive complete listings agree (or it has
//! been absent long enough); a listing that drops part of a directory once changes nothing;
//! an incremental listing is no witness; the count survives a restart; positive signals stay
//! immediate; and pending absences do not count toward the mass-deactivation guard.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use idpsync_engine::absence::{AbsenceRules, Absent};
use idpsync_engine::ids::{IntegrationName, ResourceId, SyncRunId};
use idpsync_engine::model::{BindingGroups, ResourceKind, ResourceRef, UserProfile};
use idpsync_engine::reconcile::{
    ExternalMember, Guard, Listing, ListingScope, MissingUsers, ReconcilePolicy, ReconcileReport, ScopeRules,
    SnapshotGroup, SnapshotUser, SyncInput,
};
use idpsync_engine::{Cause, Command, Engine, Origin, Source, Tenant, TenantSettings};
use idpsync_storage::{LogStore, MemoryStore, TenantId};
use proptest::prelude::*;

fn okta() -> IntegrationName {
    IntegrationName::new("okta").unwrap()
}

fn user(n: usize, active: bool) -> SnapshotUser {
    SnapshotUser {
        external_id: format!("u{n}"),
        active,
        profile: UserProfile {
            user_name: format!("user{n}@example.com"),
            ..UserProfile::default()
        },
    }
}

/// A complete listing of the users `present` names, all in group `vpn`.
fn directory(present: impl IntoIterator<Item = usize>) -> Listing {
    let mut listing = Listing::new(ListingScope::Complete);
    listing.add_group(SnapshotGroup {
        external_id: "vpn".into(),
        display_name: "VPN".into(),
    });
    for n in present {
        listing.add_user(user(n, true));
        listing.add_member("vpn", ExternalMember::User(format!("u{n}")));
    }
    listing
}

fn input(listing: Listing, absence: AbsenceRules) -> SyncInput {
    SyncInput {
        integration: okta(),
        run: SyncRunId::new(),
        listing,
        rules: ScopeRules {
            absence,
            ..ScopeRules::default()
        },
    }
}

async fn sync(tenant: &Tenant, listing: Listing) -> ReconcileReport {
    tenant
        .reconcile(input(listing, AbsenceRules::default()), Guard::Enforce)
        .await
        .unwrap()
}

fn owned(tenant: &Tenant) -> usize {
    tenant.state().users_owned_by(&okta()).count()
}

fn vpn_members(tenant: &Tenant) -> usize {
    let state = tenant.state();
    let vpn = state.owned_group(&okta(), "vpn").unwrap();
    state.direct_members(vpn).count()
}

fn pending(tenant: &Tenant) -> usize {
    tenant.state().pending_absences(&okta()).count()
}

async fn open(store: &Arc<dyn LogStore>, settings: TenantSettings) -> (Engine, Arc<Tenant>) {
    let engine = Engine::open(Arc::clone(store), settings).await.unwrap();
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    (engine, tenant)
}

/// Binds group `vpn` to a network, so that membership is access and the guard counts it.
async fn bind_vpn(tenant: &Tenant) {
    let vpn = tenant.state().owned_group(&okta(), "vpn").unwrap();
    let command = Command::SetBinding {
        resource: ResourceRef {
            kind: ResourceKind::Route,
            id: ResourceId::new("office").unwrap(),
        },
        groups: BindingGroups::Groups(vec![vpn]),
    };
    let origin = Origin {
        source: Source::Operator,
        cause: Cause::Unspecified,
    };
    tenant.execute(command, origin).await.unwrap();
}

#[tokio::test]
async fn a_listing_that_drops_thirty_percent_once_then_recovers_changes_nothing() {
    let store: Arc<dyn LogStore> = Arc::new(MemoryStore::new());
    let (_engine, tenant) = open(&store, TenantSettings::default()).await;
    sync(&tenant, directory(0..100)).await;
    bind_vpn(&tenant).await;
    let before = tenant.state();

    let flaky = sync(&tenant, directory(30..100)).await;
    assert!(flaky.held.is_none(), "pending absences do not count toward the guard");
    assert!(flaky.changes.is_empty(), "{:?}", flaky.changes);
    assert_eq!(flaky.guard.removals, 0);
    // 30 users and their 30 memberships are pending, each seen once of the 2 needed.
    assert_eq!(flaky.pending.len(), 60);
    assert!(flaky.pending.iter().all(|line| line.listings == 1 && line.needed == 2));
    assert_eq!((owned(&tenant), vpn_members(&tenant), pending(&tenant)), (100, 100, 60));

    let recovered = sync(&tenant, directory(0..100)).await;
    assert!(recovered.changes.is_empty() && recovered.pending.is_empty());
    assert_eq!((owned(&tenant), vpn_members(&tenant), pending(&tenant)), (100, 100, 0));
    let after = tenant.state();
    for user in before.users() {
        assert_eq!(after.user(user.id).unwrap().active, user.active);
    }
    // Nobody lost access at any point.
    let mut stream = tenant.subscribe(before.seq().next());
    while stream.position() < after.seq() {
        let applied = stream.next().await.unwrap();
        assert!(applied.access.is_empty(), "no access changed: {:?}", applied.access);
    }
}

#[tokio::test]
async fn a_user_absent_from_two_consecutive_complete_listings_is_removed_at_the_second() {
    let store: Arc<dyn LogStore> = Arc::new(MemoryStore::new());
    let (_engine, tenant) = open(&store, TenantSettings::default()).await;
    sync(&tenant, directory(0..100)).await;

    let first = sync(&tenant, directory(1..100)).await;
    assert_eq!((first.users_deleted, first.memberships_removed), (0, 0));
    assert_eq!(owned(&tenant), 100);
    let second = sync(&tenant, directory(1..100)).await;
    assert_eq!(second.users_deleted, 1);
    assert!(second.pending.is_empty());
    assert_eq!((owned(&tenant), pending(&tenant)), (99, 0));
    assert!(tenant.state().owned_user(&okta(), "u0").is_none());
}

#[tokio::test]
async fn an_incremental_listing_is_no_witness_and_breaks_no_count() {
    let store: Arc<dyn LogStore> = Arc::new(MemoryStore::new());
    let (_engine, tenant) = open(&store, TenantSettings::default()).await;
    sync(&tenant, directory(0..10)).await;
    sync(&tenant, directory(1..10)).await;
    assert_eq!(pending(&tenant), 2);

    // A delta that does not mention u0 says nothing about it either way.
    let mut delta = Listing::new(ListingScope::Incremental);
    delta.add_user(user(5, true));
    let report = sync(&tenant, delta).await;
    assert!(report.pending.is_empty() && report.users_deleted == 0);
    assert_eq!((owned(&tenant), pending(&tenant)), (10, 2));

    let second = sync(&tenant, directory(1..10)).await;
    assert_eq!(
        second.users_deleted, 1,
        "the next complete listing is the second witness"
    );
}

#[tokio::test]
async fn a_restart_between_the_two_listings_still_counts_the_first() {
    let store: Arc<dyn LogStore> = Arc::new(MemoryStore::new());
    let (engine, tenant) = open(&store, TenantSettings::default()).await;
    sync(&tenant, directory(0..20)).await;
    sync(&tenant, directory(2..20)).await;
    // The pending absences are in the state a snapshot keeps, and in the log after it.
    tenant.snapshot_now().await.unwrap();
    engine.shutdown().await;

    let (engine, tenant) = open(&store, TenantSettings::default()).await;
    assert_eq!(pending(&tenant), 4, "2 users and their 2 memberships");
    let second = sync(&tenant, directory(2..20)).await;
    assert_eq!(second.users_deleted, 2);
    assert_eq!(owned(&tenant), 18);
    engine.shutdown().await;
}

#[tokio::test]
async fn an_absence_takes_effect_once_it_has_lasted_the_integrations_time() {
    let store: Arc<dyn LogStore> = Arc::new(MemoryStore::new());
    let (_engine, tenant) = open(&store, TenantSettings::default()).await;
    let rules = AbsenceRules {
        listings: NonZeroU32::new(10).unwrap(),
        after: Some(Duration::from_millis(200)),
    };
    let run = |listing| tenant.reconcile(input(listing, rules), Guard::Enforce);
    run(directory(0..10)).await.unwrap();
    let first = run(directory(1..10)).await.unwrap();
    assert_eq!(first.users_deleted, 0);
    assert!(first.pending.iter().all(|line| line.takes_effect_after.is_some()));
    let soon = run(directory(1..10)).await.unwrap();
    assert_eq!(soon.users_deleted, 0, "2 of 10 listings, well within the time");
    tokio::time::sleep(Duration::from_millis(250)).await;
    let later = run(directory(1..10)).await.unwrap();
    assert_eq!(later.users_deleted, 1);
}

#[tokio::test]
async fn positive_signals_take_effect_at_once() {
    let store: Arc<dyn LogStore> = Arc::new(MemoryStore::new());
    let (_engine, tenant) = open(&store, TenantSettings::default()).await;
    // Enough users that two leavers stay under the guard's limit.
    sync(&tenant, directory(0..30)).await;

    // The IdP lists u1 as suspended: deactivated now, not pending.
    let mut listing = directory(2..30);
    listing.add_user(user(0, true));
    listing.add_member("vpn", ExternalMember::User("u0".into()));
    listing.add_user(user(1, false));
    listing.add_member("vpn", ExternalMember::User("u1".into()));
    let report = sync(&tenant, listing).await;
    assert_eq!((report.users_deactivated, report.pending.len()), (1, 0));

    // A delta says the IdP deleted u2: deleted now.
    let mut delta = Listing::new(ListingScope::Incremental);
    delta.removed_user("u2".into());
    let report = sync(&tenant, delta).await;
    assert_eq!((report.users_deleted, report.pending.len()), (1, 0));
    assert!(tenant.state().owned_user(&okta(), "u2").is_none());
    assert_eq!(owned(&tenant), 29);
}

#[tokio::test]
async fn absences_that_take_effect_count_toward_the_guard() {
    let store: Arc<dyn LogStore> = Arc::new(MemoryStore::new());
    let (_engine, tenant) = open(&store, TenantSettings::default()).await;
    sync(&tenant, directory(0..100)).await;
    bind_vpn(&tenant).await;
    assert!(sync(&tenant, directory(30..100)).await.held.is_none());
    let second = sync(&tenant, directory(30..100)).await;
    assert!(second.held.is_some(), "30 of 100 leaving, witnessed twice, is held");
    assert_eq!(owned(&tenant), 100);
}

#[tokio::test]
async fn an_inactive_user_that_stays_absent_is_not_pending_for_ever() {
    let store: Arc<dyn LogStore> = Arc::new(MemoryStore::new());
    let settings = TenantSettings {
        policy: ReconcilePolicy {
            missing_users: MissingUsers::Deactivate,
            hold_above_permille: 1000,
            ..ReconcilePolicy::default()
        },
        ..TenantSettings::default()
    };
    let (_engine, tenant) = open(&store, settings).await;
    sync(&tenant, directory(0..5)).await;
    sync(&tenant, directory(1..5)).await;
    let deactivated = sync(&tenant, directory(1..5)).await;
    assert_eq!(deactivated.users_deactivated, 1);
    let head = tenant.state().seq();
    let quiet = sync(&tenant, directory(1..5)).await;
    assert!(quiet.pending.is_empty() && quiet.changes.is_empty());
    assert_eq!(tenant.state().seq(), head, "nothing to record");
}

/// One step of a sequence of syncs: a complete listing of the users in the mask, an
/// incremental listing that mentions nobody, or a restart.
#[derive(Clone, Debug)]
enum Step {
    Complete(u8),
    Incremental,
    Restart,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => any::<u8>().prop_map(Step::Complete),
        1 => Just(Step::Incremental),
        1 => Just(Step::Restart),
    ]
}

const POOL: usize = 8;

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// A user is removed exactly when `needed` consecutive complete listings have left it out,
    /// whatever incremental listings and restarts come between; until then it is pending with
    /// the count of those listings.
    #[test]
    fn absence_counts_consecutive_complete_listings(needed in 1u32..4, steps in proptest::collection::vec(step(), 1..10)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let settings = TenantSettings {
                // The guard is not what this checks.
                policy: ReconcilePolicy { hold_above_permille: 1000, ..ReconcilePolicy::default() },
                ..TenantSettings::default()
            };
            let rules = AbsenceRules { listings: NonZeroU32::new(needed).unwrap(), after: None };
            let store: Arc<dyn LogStore> = Arc::new(MemoryStore::new());
            let (mut engine, mut tenant) = open(&store, settings.clone()).await;
            tenant.reconcile(input(directory(0..POOL), rules), Guard::Enforce).await.unwrap();
            // The model: per user, whether it exists and how many consecutive complete
            // listings have left it out.
            let mut exists = [true; POOL];
            let mut absent_for = [0u32; POOL];
            for step in steps {
                match step {
                    Step::Complete(mask) => {
                        let present: Vec<usize> = (0..POOL).filter(|n| mask & (1 << n) != 0).collect();
                        tenant.reconcile(input(directory(present.iter().copied()), rules), Guard::Enforce).await.unwrap();
                        for n in 0..POOL {
                            if present.contains(&n) {
                                exists[n] = true;
                                absent_for[n] = 0;
                            } else if exists[n] {
                                absent_for[n] += 1;
                                if absent_for[n] >= needed {
                                    exists[n] = false;
                                    absent_for[n] = 0;
                                }
                            }
                        }
                    }
                    Step::Incremental => {
                        tenant.reconcile(input(Listing::new(ListingScope::Incremental), rules), Guard::Enforce).await.unwrap();
                    }
                    Step::Restart => {
                        engine.shutdown().await;
                        (engine, tenant) = open(&store, settings.clone()).await;
                    }
                }
                let state = tenant.state();
                for n in 0..POOL {
                    let id = state.owned_user(&okta(), &format!("u{n}"));
                    prop_assert_eq!(id.is_some(), exists[n], "user u{}", n);
                    let counted = id
                        .and_then(|id| state.pending_absences(&okta()).find(|(absent, _)| **absent == Absent::User(id)))
                        .map_or(0, |(_, absence)| absence.listings);
                    prop_assert_eq!(counted, absent_for[n], "user u{}", n);
                }
            }
            engine.shutdown().await;
            Ok(())
        })?;
    }
}
