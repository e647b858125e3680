//! A large sync run is planned and judged by the guard whole, then committed in parts of
//! `reconcile_events_per_batch` events: it ends as one batch would, a hold still writes
//! nothing but the hold, the guard's window counts it as one run (also read back after a
//! restart), and a failure between parts leaves a valid prefix of the plan that the next run
//! completes.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use idpsync_engine::absence::AbsenceRules;
use idpsync_engine::ids::{IntegrationName, Member, SyncRunId};
use idpsync_engine::model::UserProfile;
use idpsync_engine::reconcile::{
    ExternalMember, Guard, Listing, ListingScope, RecentRemovals, ReconcileReport, ScopeRules, SnapshotGroup,
    SnapshotUser, SyncInput,
};
use idpsync_engine::verify::verify_tenant;
use idpsync_engine::{Engine, State, SubmitError, Tenant, TenantSettings};
use idpsync_storage::faults::FaultyStore;
use idpsync_storage::{LogStore, MemoryStore, Seq, TenantId};

fn okta() -> IntegrationName {
    IntegrationName::new("okta").unwrap()
}

/// A complete listing of users `u0`..`u{count - 1}` (every seventh inactive), all in `vpn`,
/// every third also in `eng`.
fn directory(count: usize) -> Listing {
    let mut listing = Listing::new(ListingScope::Complete);
    for (id, name) in [("vpn", "VPN"), ("eng", "Engineering")] {
        listing.add_group(SnapshotGroup {
            external_id: id.into(),
            display_name: name.into(),
        });
    }
    for n in 0..count {
        listing.add_user(SnapshotUser {
            external_id: format!("u{n}"),
            active: n % 7 != 6,
            profile: UserProfile {
                user_name: format!("user{n}@example.com"),
                ..UserProfile::default()
            },
        });
        listing.add_member("vpn", ExternalMember::User(format!("u{n}")));
        if n % 3 == 0 {
            listing.add_member("eng", ExternalMember::User(format!("u{n}")));
        }
    }
    listing
}

fn input(listing: Listing) -> SyncInput {
    SyncInput {
        integration: okta(),
        run: SyncRunId::new(),
        listing,
        rules: ScopeRules {
            absence: AbsenceRules::IMMEDIATE,
            ..ScopeRules::default()
        },
    }
}

async fn sync(tenant: &Tenant, users: usize) -> Result<ReconcileReport, SubmitError> {
    tenant.reconcile(input(directory(users)), Guard::Enforce).await
}

fn settings(per_batch: usize) -> TenantSettings {
    TenantSettings {
        reconcile_events_per_batch: per_batch,
        ..TenantSettings::default()
    }
}

async fn open(store: Arc<dyn LogStore>, settings: TenantSettings) -> (Engine, Arc<Tenant>) {
    let engine = Engine::open(store, settings).await.unwrap();
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    (engine, tenant)
}

/// What a state holds, without its ids: each user's name and whether active, each group's
/// name and its members' names.
#[derive(Debug, PartialEq)]
struct Contents {
    users: Vec<(String, bool)>,
    groups: Vec<(String, Vec<String>)>,
}

fn contents(state: &State) -> Contents {
    let mut users: Vec<(String, bool)> = state
        .users()
        .map(|user| (user.profile.user_name.clone(), user.active))
        .collect();
    users.sort();
    let mut groups: Vec<(String, Vec<String>)> = state
        .groups()
        .map(|group| {
            let mut members: Vec<String> = state
                .direct_members(group.id)
                .map(|member| match member {
                    Member::User(user) => state.user(user).unwrap().profile.user_name.clone(),
                    Member::Group(group) => state.group(group).unwrap().display_name.clone(),
                })
                .collect();
            members.sort();
            (group.display_name.clone(), members)
        })
        .collect();
    groups.sort();
    Contents { users, groups }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_committed_in_parts_ends_as_one_batch_would() {
    let whole_store: Arc<dyn LogStore> = Arc::new(MemoryStore::new());
    let parts_store: Arc<dyn LogStore> = Arc::new(MemoryStore::new());
    let (whole_engine, whole) = open(Arc::clone(&whole_store), settings(100_000)).await;
    let (parts_engine, parts) = open(Arc::clone(&parts_store), settings(7)).await;

    for users in [60, 58, 70] {
        let one = sync(&whole, users).await.unwrap();
        let split = sync(&parts, users).await.unwrap();
        // Reports name objects by name and external id, never by their new ids.
        assert_eq!(format!("{one:?}"), format!("{split:?}"));
        assert_eq!(contents(&whole.state()), contents(&parts.state()));
        assert_eq!(whole.state().seq(), parts.state().seq(), "the same events");
    }
    let again = sync(&parts, 70).await.unwrap();
    assert!(again.is_empty(), "in step after the parts: {:?}", again.changes);
    assert!(verify_tenant(&parts_store, &TenantId::default_tenant()).await.is_ok());
    whole_engine.shutdown().await;
    parts_engine.shutdown().await;
}

/// The guard judges the whole plan before any part is committed: a run past the limit writes
/// only its hold, however many parts it would take.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_run_applies_no_part() {
    let store: Arc<dyn LogStore> = Arc::new(MemoryStore::new());
    let (engine, tenant) = open(store, settings(3)).await;
    sync(&tenant, 100).await.unwrap();
    let head = tenant.state().seq();
    let held = sync(&tenant, 50).await.unwrap();
    assert!(held.held.is_some(), "50 of 100 is past the limit");
    assert_eq!(tenant.state().seq(), Seq(head.0 + 1), "only the hold was written");
    let state = tenant.state();
    let active = state.users().filter(|user| user.active).count();
    assert_eq!(
        active,
        100 - 14,
        "nobody was deactivated (u6, u13, … u97 never were active)"
    );
    engine.shutdown().await;
}

/// A run committed in parts is one run for the guard's window, in memory and read back from
/// the log after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_in_parts_counts_once_in_the_guards_window_even_after_a_restart() {
    let store: Arc<dyn LogStore> = Arc::new(MemoryStore::new());
    let (engine, tenant) = open(Arc::clone(&store), settings(2)).await;
    sync(&tenant, 100).await.unwrap();
    // u94..u99 leave and are deleted (the default): 6 events, 3 parts.
    let first = sync(&tenant, 94).await.unwrap();
    assert_eq!((first.guard.removals, first.guard.deletions), (6, 6));
    assert!(first.held.is_none(), "6 of 100");
    // Six more would make 12 of 100 within the window: held, if the parts count as one run.
    let in_memory = tenant.plan(input(directory(88)));
    let earlier = RecentRemovals {
        removals: 6,
        deletions: 6,
    };
    assert_eq!(in_memory.guard.earlier, earlier, "the parts are one run");
    assert!(in_memory.held.is_some());
    engine.shutdown().await;

    let (engine, tenant) = open(store, settings(2)).await;
    let head = tenant.state().seq();
    let read_back = sync(&tenant, 88).await.unwrap();
    assert_eq!(read_back.guard.earlier, earlier, "read back from the log as one run");
    assert!(read_back.held.is_some());
    assert_eq!(tenant.state().seq(), Seq(head.0 + 1), "only the hold was written");
    engine.shutdown().await;
}

/// A failure between parts (here the disk fills up after two of them) answers the run with
/// the error and leaves a valid prefix of its plan in the log, the same in memory as on disk;
/// once the disk has room again, the next run completes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_between_parts_leaves_a_prefix_the_next_run_completes() {
    let faulty = Arc::new(FaultyStore::default());
    let store: Arc<dyn LogStore> = faulty.clone();
    let (engine, tenant) = open(Arc::clone(&store), settings(10)).await;
    *faulty.appends_before_full.lock().unwrap() = Some(2);
    let failed = sync(&tenant, 45).await;
    assert!(matches!(failed, Err(SubmitError::Storage(_))), "{failed:?}");
    assert_eq!(tenant.state().seq(), Seq(20), "two parts of ten events");
    assert_eq!(
        verify_tenant(&store, &TenantId::default_tenant())
            .await
            .unwrap()
            .records,
        20
    );
    engine.shutdown().await;

    faulty.refuse_writes.store(false, Ordering::SeqCst);
    let (engine, tenant) = open(Arc::clone(&store), settings(10)).await;
    assert_eq!(
        tenant.state().seq(),
        Seq(20),
        "what was acknowledged by the store is what is read back"
    );
    let rest = sync(&tenant, 45).await.unwrap();
    assert_eq!(
        rest.users_created,
        45 - 20,
        "the users of the first two parts are there"
    );
    let (reference_engine, reference) = open(Arc::new(MemoryStore::new()), settings(100_000)).await;
    sync(&reference, 45).await.unwrap();
    assert_eq!(contents(&tenant.state()), contents(&reference.state()));
    assert!(sync(&tenant, 45).await.unwrap().is_empty());
    assert!(verify_tenant(&store, &TenantId::default_tenant()).await.is_ok());
    engine.shutdown().await;
    reference_engine.shutdown().await;
}
