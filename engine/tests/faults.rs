//! Faults: a failing disk, tampered records and snapshots. A failed append loses nothing that was
//! acknowledged and leaves the engine usable; tampering is found and named by tenant and seq.

mod common;

use std::sync::Arc;

use common::{origin, provision};
use std::sync::atomic::Ordering;

use idpsync_engine::ids::Member;
use idpsync_engine::model::Owner;
use idpsync_engine::verify::verify_tenant;
use idpsync_engine::{Command, Engine, EngineError, Outcome, SubmitError, TenantSettings};
use idpsync_storage::faults::FaultyStore;
use idpsync_storage::{LogStore, Seq, StoredSnapshot, TenantId};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_append_writes_nothing_and_the_engine_goes_on() {
    let store = Arc::new(FaultyStore::default());
    let engine = Engine::open(store.clone(), TenantSettings::default()).await.unwrap();
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    tenant.execute(provision("alice"), origin()).await.unwrap();

    store.refuse_writes.store(true, Ordering::SeqCst);
    let failed = tenant.execute(provision("bob"), origin()).await;
    assert!(matches!(failed, Err(SubmitError::Storage(_))), "{failed:?}");
    assert!(
        tenant.state().user_by_name("bob").is_none(),
        "nothing of the failed command is visible"
    );
    assert_eq!(tenant.state().seq(), Seq(1));

    store.refuse_writes.store(false, Ordering::SeqCst);
    // The name bob was never taken; the next append continues the log without a gap.
    tenant.execute(provision("bob"), origin()).await.unwrap();
    assert_eq!(tenant.state().seq(), Seq(2));
    let report = verify_tenant(&(store.clone() as Arc<dyn LogStore>), &TenantId::default_tenant())
        .await
        .unwrap();
    assert_eq!(report.records, 2);
    engine.shutdown().await;
}

/// Hardening issue, must-fix 5: an append that reached the log but answered with an error left
/// the writer a record behind the log, so every later write failed with a sequence conflict
/// until a restart. The writer now reads what the log holds beyond its state and goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_that_reached_the_log_but_failed_is_caught_up_and_writes_go_on() {
    let store = Arc::new(FaultyStore::default());
    let engine = Engine::open(store.clone(), TenantSettings::default()).await.unwrap();
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    tenant.execute(provision("alice"), origin()).await.unwrap();

    store.lose_answers.store(true, Ordering::SeqCst);
    let failed = tenant.execute(provision("bob"), origin()).await;
    assert!(matches!(failed, Err(SubmitError::Storage(_))), "{failed:?}");
    store.lose_answers.store(false, Ordering::SeqCst);

    tenant.execute(provision("carol"), origin()).await.unwrap();
    let state = tenant.state();
    assert_eq!(state.seq(), Seq(3));
    assert!(
        state.user_by_name("bob").is_some(),
        "what reached the log is in the state"
    );
    assert!(state.user_by_name("carol").is_some());
    let again = tenant.execute(provision("bob"), origin()).await;
    assert!(
        matches!(again, Err(SubmitError::Rejected(_))),
        "bob's name is taken: {again:?}"
    );
    let report = verify_tenant(&(store.clone() as Arc<dyn LogStore>), &TenantId::default_tenant())
        .await
        .unwrap();
    assert_eq!(report.records, 3);
    engine.shutdown().await;
}

/// The writer decides the next batch while one is in flight. When the one in flight fails, the
/// batch decided on top of it must fail too: nothing of either is visible or logged, and the log
/// goes on without a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_append_also_fails_the_batch_decided_on_top_of_it() {
    let store = Arc::new(FaultyStore::default());
    let engine = Engine::open(store.clone(), TenantSettings::default()).await.unwrap();
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    let Outcome::UserProvisioned(alice) = tenant.execute(provision("alice"), origin()).await.unwrap().outcome else {
        panic!("alice provisioned")
    };

    let gate = store.gate.lock().await;
    let create = Command::CreateGroup {
        owner: Owner::Scim,
        external_id: None,
        display_name: "vpn".into(),
        members: vec![],
    };
    let first = tenant.enqueue(create, origin()).await.unwrap();
    while store.waiting.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    assert_eq!(tenant.state().groups().count(), 0, "nothing in flight is published");
    // Decided against the state with the group, which is not durable yet.
    let bob = tenant.enqueue(provision("bob"), origin()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    store.refuse_writes.store(true, Ordering::SeqCst);
    drop(gate);

    let failed = first.committed().await;
    assert!(matches!(failed, Err(SubmitError::Storage(_))), "{failed:?}");
    let failed = bob.committed().await;
    assert!(matches!(failed, Err(SubmitError::Storage(_))), "{failed:?}");
    assert_eq!(tenant.state().seq(), Seq(1));
    assert!(tenant.state().user_by_name("bob").is_none());
    assert_eq!(tenant.state().groups().count(), 0);

    store.refuse_writes.store(false, Ordering::SeqCst);
    tenant.execute(provision("bob"), origin()).await.unwrap();
    let create = Command::CreateGroup {
        owner: Owner::Scim,
        external_id: None,
        display_name: "vpn".into(),
        members: vec![Member::User(alice)],
    };
    tenant.execute(create, origin()).await.unwrap();
    assert_eq!(tenant.state().seq(), Seq(4), "user, group, membership after alice");
    let report = verify_tenant(&(store.clone() as Arc<dyn LogStore>), &TenantId::default_tenant())
        .await
        .unwrap();
    assert_eq!(report.records, 4);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_record_is_named_by_tenant_and_seq() {
    let store = Arc::new(FaultyStore::default());
    let engine = Engine::open(store.clone(), TenantSettings::default()).await.unwrap();
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    for name in ["a", "b", "c", "d"] {
        tenant.execute(provision(name), origin()).await.unwrap();
    }
    engine.shutdown().await;
    *store.tamper_seq.lock().unwrap() = Some(Seq(3));
    let error = verify_tenant(&(store.clone() as Arc<dyn LogStore>), &TenantId::default_tenant())
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("tenant default") && message.contains("seq 3"),
        "{message}"
    );
    // Start-up that must replay through it refuses, rather than folding a forged event.
    store.hide_snapshots.store(true, Ordering::SeqCst);
    let Err(error) = Engine::open(store.clone(), TenantSettings::default()).await else {
        panic!("the engine opened on a tampered log");
    };
    assert!(error.to_string().contains("seq 3"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_that_does_not_match_the_log_is_named() {
    let store = Arc::new(FaultyStore::default());
    let engine = Engine::open(store.clone(), TenantSettings::default()).await.unwrap();
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    tenant.execute(provision("alice"), origin()).await.unwrap();
    tenant.execute(provision("bob"), origin()).await.unwrap();
    engine.shutdown().await;
    // A snapshot at seq 1 holding the state at seq 2: well-formed, hash intact, wrong.
    let wrong = store
        .inner
        .snapshot_at_or_before(&TenantId::default_tenant(), Seq(2))
        .await
        .unwrap()
        .unwrap();
    let mut bytes = wrong.bytes.clone();
    // Claim seq 1 in the header section (format u16, length u64, then postcard (seq, time)).
    bytes[10] = 1;
    store
        .put_snapshot(&TenantId::default_tenant(), StoredSnapshot::new(Seq(1), bytes))
        .await
        .unwrap();
    let error = verify_tenant(&(store.clone() as Arc<dyn LogStore>), &TenantId::default_tenant())
        .await
        .unwrap_err();
    assert!(
        matches!(error, EngineError::SnapshotMismatch { seq: Seq(1), .. }),
        "{error}"
    );
}
