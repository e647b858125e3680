//! A tenant started from a snapshot serves while its history index decodes: the index it ends
//! with covers the snapshot, the tail replayed after it and what was written meanwhile, and a
//! snapshot whose index does not decode has it rebuilt from the log.

mod common;

use std::sync::Arc;

use common::{create_group, origin, provision};
use idpsync_engine::ids::{GroupId, Member, UserId};
use idpsync_engine::state::encode_snapshot;
use idpsync_engine::{Engine, Outcome, Tenant, TenantSettings};
use idpsync_storage::{LogStore, MemoryStore, Seq, StoredSnapshot, TenantId};

/// Users in nested groups, then more users: a log of `users + 4` records and then some.
async fn write(tenant: &Tenant, users: usize, prefix: &str) {
    let mut ids: Vec<UserId> = Vec::new();
    for n in 0..users {
        let Outcome::UserProvisioned(user) = tenant
            .execute(provision(&format!("{prefix}{n}")), origin())
            .await
            .unwrap()
            .outcome
        else {
            unreachable!()
        };
        ids.push(user);
    }
    let mut groups: Vec<GroupId> = Vec::new();
    for g in 0..4 {
        let mut members: Vec<Member> = ids.iter().step_by(g + 1).map(|user| Member::User(*user)).collect();
        members.extend(groups.last().map(|group| Member::Group(*group)));
        groups.push(create_group(tenant, &format!("{prefix}-group{g}"), members).await);
    }
}

/// The tenant's state and history index, encoded: equal for equal folds of the same log.
async fn encoded(tenant: &Tenant) -> Vec<u8> {
    tenant
        .with_history(|history, _| encode_snapshot(&tenant.state(), history))
        .await
}

fn default() -> TenantId {
    TenantId::default_tenant()
}

/// An engine on `store` and its default tenant, loaded.
async fn started(store: &Arc<MemoryStore>) -> (Engine, Arc<Tenant>) {
    let engine = Engine::open(store.clone(), TenantSettings::default()).await.unwrap();
    let tenant = engine.require_tenant(&default()).unwrap();
    (engine, tenant)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_from_a_snapshot_ends_with_the_index_of_the_snapshot_the_tail_and_its_own_writes() {
    let store = Arc::new(MemoryStore::default());
    let (engine, tenant) = started(&store).await;
    write(&tenant, 300, "before").await;
    let snapshot = tenant.snapshot_now().await.unwrap();
    // The tail: records after the snapshot the start replays.
    write(&tenant, 40, "tail").await;
    engine.shutdown().await;
    drop((tenant, engine));
    let head = store.head(&default()).await.unwrap().seq;
    for stored in store.snapshots(&default()).await.unwrap() {
        if stored.seq > snapshot.seq {
            store.remove_snapshot(&default(), stored.seq).await.unwrap();
        }
    }
    assert!(head > snapshot.seq);

    let (engine, tenant) = started(&store).await;
    // Written at once, while the index may still be decoding.
    write(&tenant, 25, "after").await;
    let reopened = encoded(&tenant).await;
    engine.shutdown().await;
    drop((tenant, engine));

    // The same log folded from its first record, without a snapshot.
    for stored in store.snapshots(&default()).await.unwrap() {
        store.remove_snapshot(&default(), stored.seq).await.unwrap();
    }
    let (engine, tenant) = started(&store).await;
    assert_eq!(encoded(&tenant).await, reopened);
    assert!(tenant.state().seq() > head);
    engine.shutdown().await;
}

/// The offset of a snapshot's last section's values: its format, then each section's length
/// and values.
fn last_section(bytes: &[u8]) -> std::ops::Range<usize> {
    let mut at = 2;
    loop {
        let len = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
        let values = at + 8..at + 8 + len;
        if values.end == bytes.len() {
            return values;
        }
        at = values.end;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_whose_history_index_does_not_decode_has_it_rebuilt_from_the_log() {
    let store = Arc::new(MemoryStore::default());
    let (engine, tenant) = started(&store).await;
    write(&tenant, 200, "user").await;
    let expected = encoded(&tenant).await;
    let snapshot = tenant.snapshot_now().await.unwrap();
    engine.shutdown().await;
    drop((tenant, engine));

    // The member events (the last section) made undecodable: a varint that never ends. The
    // bytes are stored with their own hash, as a build that wrote them wrong would have.
    let mut bytes = store
        .snapshot_at_or_before(&default(), snapshot.seq)
        .await
        .unwrap()
        .unwrap()
        .bytes;
    assert_eq!(bytes, expected);
    let section = last_section(&bytes);
    assert!(section.len() > 16);
    bytes[section].fill(0xff);
    for stored in store.snapshots(&default()).await.unwrap() {
        store.remove_snapshot(&default(), stored.seq).await.unwrap();
    }
    store
        .put_snapshot(&default(), StoredSnapshot::new(snapshot.seq, bytes))
        .await
        .unwrap();

    let (engine, tenant) = started(&store).await;
    assert_eq!(encoded(&tenant).await, expected);
    assert_eq!(tenant.state().seq(), Seq(snapshot.seq.0));
    engine.shutdown().await;
}

/// Shutting a tenant down waits for its history index to finish loading, so the log can be
/// opened again at once: before, the loading went on holding the store, and reopening the
/// log right after a shutdown found it in use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_shutdown_the_log_reopens_at_once_even_if_the_index_was_loading() {
    let dir = tempfile::tempdir().unwrap();
    let open = || async {
        let store: Arc<dyn LogStore> = Arc::new(idpsync_storage::RedbStore::open(dir.path()).unwrap());
        Engine::open(store, TenantSettings::default()).await.unwrap()
    };
    let engine = open().await;
    let tenant = engine.require_tenant(&default()).unwrap();
    write(&tenant, 2_000, "user").await;
    engine.shutdown().await;
    drop((tenant, engine));
    for _ in 0..5 {
        // Shut down as soon as the state is loaded, the index still decoding.
        let engine = open().await;
        engine.shutdown().await;
        drop(engine);
    }
    let engine = open().await;
    let tenant = engine.require_tenant(&default()).unwrap();
    assert_eq!(tenant.state().user_count(), 2_000);
    engine.shutdown().await;
}
