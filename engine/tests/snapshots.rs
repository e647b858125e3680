//! Stored snapshots are thinned to the configured number, and the past stays answerable; a
//! large snapshot reopens to the same state.

mod common;

use std::sync::Arc;

use common::{create_group, origin, provision};
use idpsync_engine::ids::{GroupId, Member};
use idpsync_engine::state::encode_snapshot;
use idpsync_engine::{Engine, Outcome, TenantSettings};
use idpsync_storage::{LogStore, MemoryStore, RedbStore, Seq, TenantId};

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

/// A tenant with more users than one chunk of snapshot decoding, in groups: reopening from its
/// snapshot gives the same state, and every member's groups agree with the groups' members.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_of_thousands_of_users_in_groups_reopens_to_the_same_state() {
    let store = Arc::new(MemoryStore::default());
    let engine = Engine::open(store.clone(), TenantSettings::default()).await.unwrap();
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    let mut users = Vec::new();
    for n in 0..2_500 {
        let committed = tenant.execute(provision(&format!("user{n}")), origin()).await.unwrap();
        let Outcome::UserProvisioned(user) = committed.outcome else {
            unreachable!()
        };
        users.push(user);
    }
    let mut groups = Vec::new();
    for g in 0..7 {
        // Group g holds every user whose number is divisible by g + 1, and the previous group.
        let mut members: Vec<Member> = users
            .iter()
            .enumerate()
            .filter(|(n, _)| n % (g + 1) == 0)
            .map(|(_, user)| Member::User(*user))
            .collect();
        members.extend(groups.last().map(|group| Member::Group(*group)));
        groups.push(create_group(&tenant, &format!("group{g}"), members).await);
    }
    let before = tenant
        .with_history(|history, _| encode_snapshot(&tenant.state(), history))
        .await;
    let expected: Vec<(Member, Vec<GroupId>)> = users
        .iter()
        .map(|user| Member::User(*user))
        .chain(groups.iter().map(|group| Member::Group(*group)))
        .map(|member| (member, tenant.state().groups_of(member).collect()))
        .collect();
    assert_eq!(expected[0].1.len(), 7, "user0 is in every group");
    engine.shutdown().await;

    let engine = Engine::open(store.clone(), TenantSettings::default()).await.unwrap();
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    let state = tenant.state();
    assert_eq!(state.user_count(), 2_500);
    assert_eq!(
        tenant.with_history(|history, _| encode_snapshot(&state, history)).await,
        before
    );
    for (member, groups) in &expected {
        assert_eq!(
            &state.groups_of(*member).collect::<Vec<_>>(),
            groups,
            "groups of {member:?}"
        );
        if let Member::User(user) = member {
            assert!(state.user(*user).unwrap().readable, "sealed profiles open again");
        }
    }
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_damaged_on_disk_is_skipped_and_the_state_comes_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let open = || async {
        let store: Arc<dyn LogStore> = Arc::new(RedbStore::open(dir.path()).unwrap());
        Engine::open(store, TenantSettings::default()).await.unwrap()
    };
    let engine = open().await;
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    for n in 0..300 {
        tenant.execute(provision(&format!("user{n}")), origin()).await.unwrap();
    }
    let before = tenant
        .with_history(|history, _| encode_snapshot(&tenant.state(), history))
        .await;
    engine.shutdown().await;
    drop((tenant, engine));

    let snapshots: Vec<_> = std::fs::read_dir(dir.path().join("snapshots").join("default"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert!(!snapshots.is_empty(), "shutting down wrote a snapshot");
    for path in &snapshots {
        // A byte in the middle of the state (the users section), behind an intact header.
        let mut bytes = std::fs::read(path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        std::fs::write(path, bytes).unwrap();
    }

    let engine = open().await;
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    assert_eq!(tenant.state().user_count(), 300);
    assert_eq!(
        tenant
            .with_history(|history, _| encode_snapshot(&tenant.state(), history))
            .await,
        before,
        "the same state and history, folded from the log"
    );
    engine.shutdown().await;
}

/// An earlier version's snapshot (an older format) made `log verify` fail: this version folds
/// the log to its own format, whose hash cannot match. It is skipped with a warning (its bytes
/// still checked against their hash), while a snapshot of the current format that does not
/// match the log is still an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_skips_a_snapshot_of_an_older_format_and_still_checks_the_current_ones() {
    use idpsync_engine::state::SNAPSHOT_FORMAT;
    use idpsync_engine::verify::{verify_log_and_snapshots, verify_tenant};
    use idpsync_storage::StoredSnapshot;

    let store = Arc::new(MemoryStore::default());
    let engine = Engine::open(store.clone(), TenantSettings::default()).await.unwrap();
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    for n in 0..20 {
        tenant.execute(provision(&format!("user{n}")), origin()).await.unwrap();
    }
    engine.shutdown().await;
    let dyn_store: Arc<dyn LogStore> = store.clone();
    let tenant_id = TenantId::default_tenant();

    // What an earlier version wrote at record 10: another format number, other bytes.
    let mut older = (SNAPSHOT_FORMAT - 1).to_le_bytes().to_vec();
    older.extend_from_slice(b"sections of an earlier layout");
    store
        .put_snapshot(&tenant_id, StoredSnapshot::new(Seq(10), older))
        .await
        .unwrap();
    for report in [
        verify_tenant(&dyn_store, &tenant_id).await.unwrap(),
        verify_log_and_snapshots(&dyn_store, &tenant_id).await.unwrap(),
    ] {
        assert_eq!(report.snapshots_of_older_formats, 1);
        assert_eq!(report.records, 20);
    }

    // A current-format snapshot at record 5 that is not what the log folds to.
    let mut wrong = SNAPSHOT_FORMAT.to_le_bytes().to_vec();
    wrong.extend_from_slice(b"not the state at 5");
    store
        .put_snapshot(&tenant_id, StoredSnapshot::new(Seq(5), wrong))
        .await
        .unwrap();
    let error = verify_tenant(&dyn_store, &tenant_id).await.unwrap_err();
    assert!(error.to_string().contains('5'), "{error}");
    let error = verify_log_and_snapshots(&dyn_store, &tenant_id).await.unwrap_err();
    assert!(error.to_string().contains('5'), "{error}");
}
