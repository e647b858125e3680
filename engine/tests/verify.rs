//! `log verify` without `--deep` ([`verify_log_and_snapshots`]): it reads the log a page at a
//! time and each snapshot through once, and must still find a tampered record, a snapshot whose
//! bytes were damaged, and a snapshot that claims a place in the log it does not have.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::{origin, provision};
use idpsync_engine::verify::{VerifyReport, verify_log_and_snapshots, verify_tenant};
use idpsync_engine::{Engine, EngineError, TenantSettings};
use idpsync_storage::faults::FaultyStore;
use idpsync_storage::{LogStore, Seq, StoredSnapshot, TenantId};

/// A tenant of `users` provisioned users, stopped (which writes a snapshot at its head).
async fn tenant_with_users(users: usize) -> Arc<FaultyStore> {
    let store = Arc::new(FaultyStore::default());
    add_users(&store, 0..users).await;
    store
}

/// Opens the engine on `store`, provisions `user{n}` for each `n`, and stops it (which writes a
/// snapshot at the head).
async fn add_users(store: &Arc<FaultyStore>, numbers: std::ops::Range<usize>) {
    let engine = Engine::open(store.clone(), TenantSettings::default()).await.unwrap();
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    for n in numbers {
        tenant.execute(provision(&format!("user{n}")), origin()).await.unwrap();
    }
    engine.shutdown().await;
}

fn dyn_store(store: &Arc<FaultyStore>) -> Arc<dyn LogStore> {
    store.clone() as Arc<dyn LogStore>
}

/// `log verify` (the streamed depth) of the default tenant.
async fn verify_default(store: &Arc<FaultyStore>) -> Result<VerifyReport, EngineError> {
    verify_log_and_snapshots(&dyn_store(store), &TenantId::default_tenant()).await
}

/// Asserts that verifying the default tenant fails naming the tenant and `seq`.
async fn assert_named(store: &Arc<FaultyStore>, seq: u64) {
    let message = verify_default(store).await.unwrap_err().to_string();
    assert!(
        message.contains("tenant default") && message.contains(&format!("seq {seq}")),
        "{message}"
    );
}

/// The stored snapshot at `seq`'s bytes.
async fn snapshot_bytes(store: &FaultyStore, seq: Seq) -> Vec<u8> {
    let snapshot = store
        .inner
        .snapshot_at_or_before(&TenantId::default_tenant(), seq)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(snapshot.seq, seq);
    snapshot.bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sound_log_passes_and_both_depths_agree_on_what_they_checked() {
    let store = tenant_with_users(3).await;
    add_users(&store, 3..5).await;
    assert_eq!(store.snapshots(&TenantId::default_tenant()).await.unwrap().len(), 2);
    let streamed = verify_default(&store).await.unwrap();
    let deep = verify_tenant(&dyn_store(&store), &TenantId::default_tenant())
        .await
        .unwrap();
    assert_eq!(streamed, deep);
    assert_eq!(streamed.records, 5);
    assert_eq!(streamed.snapshots, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_record_is_named_by_tenant_and_seq() {
    let store = tenant_with_users(4).await;
    *store.tamper_seq.lock().unwrap() = Some(Seq(3));
    assert_named(&store, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_whose_bytes_no_longer_match_its_hash_is_named() {
    let store = tenant_with_users(3).await;
    let good = store
        .inner
        .snapshot_at_or_before(&TenantId::default_tenant(), Seq(3))
        .await
        .unwrap()
        .unwrap();
    let mut damaged = good.clone();
    let last = damaged.bytes.len() - 1;
    damaged.bytes[last] ^= 0x40;
    store.put_snapshot(&TenantId::default_tenant(), damaged).await.unwrap();
    assert_named(&store, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_of_another_seq_is_named_even_with_its_hash_rewritten() {
    let store = tenant_with_users(2).await;
    // The state at seq 2, stored at seq 1 with a hash of its own: only its place in the log
    // gives it away.
    let mut bytes = snapshot_bytes(&store, Seq(2)).await;
    store
        .put_snapshot(&TenantId::default_tenant(), StoredSnapshot::new(Seq(1), bytes.clone()))
        .await
        .unwrap();
    let error = verify_default(&store).await.unwrap_err();
    assert!(
        matches!(&error, EngineError::SnapshotMismatch { seq: Seq(1), reason, .. } if reason.contains("seq 2")),
        "{error}"
    );
    // Its header edited to claim seq 1 too (format u16, length u64, then postcard (seq, time)):
    // the time and the count of record times still differ from the log's.
    bytes[10] = 1;
    store
        .put_snapshot(&TenantId::default_tenant(), StoredSnapshot::new(Seq(1), bytes))
        .await
        .unwrap();
    let error = verify_default(&store).await.unwrap_err();
    assert!(
        matches!(error, EngineError::SnapshotMismatch { seq: Seq(1), .. }),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_snapshot_is_named() {
    let store = tenant_with_users(2).await;
    let mut bytes = snapshot_bytes(&store, Seq(2)).await;
    bytes.truncate(bytes.len() - 3);
    store
        .put_snapshot(&TenantId::default_tenant(), StoredSnapshot::new(Seq(2), bytes))
        .await
        .unwrap();
    let error = verify_default(&store).await.unwrap_err();
    assert!(
        matches!(&error, EngineError::SnapshotMismatch { seq: Seq(2), reason, .. } if reason.contains("truncated")),
        "{error}"
    );
    store.hide_snapshots.store(true, Ordering::SeqCst);
    verify_default(&store).await.expect("the log itself is sound");
}
