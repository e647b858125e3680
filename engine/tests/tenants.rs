//! Loading tenants: a store's tenants load on first use, not at start, and a tenant has exactly
//! one writer, however many callers ask for it first.

mod common;

use std::sync::Arc;

use common::{origin, provision};
use idpsync_engine::{Engine, EngineError, Tenant, TenantSettings};
use idpsync_storage::{LogStore, MemoryStore, RedbStore, Seq, TenantId};

/// `tenant-<n>`.
fn tenant_id(n: usize) -> TenantId {
    TenantId::new(&format!("tenant-{n}")).unwrap()
}

/// A store holding `count` tenants besides `default`, tenant `n` with `n % 5 + 1` users,
/// written through an engine that is then shut down.
async fn store_with_tenants(count: usize) -> Arc<dyn LogStore> {
    let store: Arc<dyn LogStore> = Arc::new(MemoryStore::new());
    let engine = Engine::open(Arc::clone(&store), TenantSettings::default())
        .await
        .unwrap();
    for n in 0..count {
        let tenant = engine.ensure_tenant(&tenant_id(n)).await.unwrap();
        for user in 0..n % 5 + 1 {
            tenant
                .execute(provision(&format!("user{user}@tenant{n}.example")), origin())
                .await
                .unwrap();
        }
    }
    engine.shutdown().await;
    store
}

/// Spawns `count` first uses of `id` at once, each through `first_use`, and returns the
/// tenant each got.
async fn first_uses<F, Fut>(engine: &Arc<Engine>, id: &TenantId, count: usize, first_use: F) -> Vec<Arc<Tenant>>
where
    F: Fn(Arc<Engine>, TenantId, usize) -> Fut,
    Fut: std::future::Future<Output = Arc<Tenant>> + Send + 'static,
{
    let openers: Vec<_> = (0..count)
        .map(|caller| tokio::spawn(first_use(Arc::clone(engine), id.clone(), caller)))
        .collect();
    let mut tenants = Vec::new();
    for opener in openers {
        tenants.push(opener.await.unwrap());
    }
    tenants
}

/// Writes 20 users through each handle, all at once, and checks every handle is the one
/// tenant the engine serves and every write landed once.
async fn write_through_each(engine: &Engine, id: &TenantId, tenants: &[Arc<Tenant>], users_before: usize) {
    let writers: Vec<_> = tenants
        .iter()
        .cloned()
        .enumerate()
        .map(|(caller, tenant)| {
            tokio::spawn(async move {
                for n in 0..20 {
                    tenant
                        .execute(provision(&format!("caller{caller}-user{n}")), origin())
                        .await
                        .unwrap_or_else(|error| panic!("write {n} of caller {caller}: {error}"));
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let tenant = engine.require_tenant(id).unwrap();
    assert!(
        tenants.iter().all(|handle| Arc::ptr_eq(handle, &tenant)),
        "every caller got the tenant the engine serves"
    );
    let written = users_before + 20 * tenants.len();
    assert_eq!(tenant.state().user_count(), written);
    assert_eq!(tenant.state().seq(), Seq(written as u64));
}

/// Hardening issue, must-fix 1: two first requests for a new tenant at the same time started two
/// writers; the one replaced in the engine's map kept a stale head, so writes through it failed
/// with a sequence conflict until a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_first_requests_for_a_new_tenant_share_one_writer() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn LogStore> = Arc::new(RedbStore::open(dir.path()).unwrap());
    let engine = Arc::new(Engine::open(store, TenantSettings::default()).await.unwrap());
    let id = TenantId::new("new-tenant").unwrap();
    let tenants = first_uses(&engine, &id, 50, |engine, id, _| async move {
        engine.ensure_tenant(&id).await.unwrap()
    })
    .await;
    write_through_each(&engine, &id, &tenants, 0).await;
    engine.shutdown().await;
}

/// Start-up is independent of the number of tenants: of a store with 200 tenants, opening
/// loads only `default`; the others load on first use, with everything their log holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_a_store_of_many_tenants_loads_only_default_and_the_rest_on_first_use() {
    let store = store_with_tenants(200).await;
    assert_eq!(store.tenants().await.unwrap().len(), 201);
    let engine = Engine::open(Arc::clone(&store), TenantSettings::default())
        .await
        .unwrap();
    let loaded = |engine: &Engine| -> Vec<TenantId> {
        engine
            .loaded_tenants()
            .iter()
            .map(|tenant| tenant.id().clone())
            .collect()
    };
    assert_eq!(loaded(&engine), vec![TenantId::default_tenant()]);
    assert!(
        engine.tenant(&tenant_id(7)).is_none(),
        "not loaded before its first use"
    );

    let seven = engine
        .tenant_in_log(&tenant_id(7))
        .await
        .unwrap()
        .expect("the log has it");
    assert_eq!(seven.state().user_count(), 3);
    assert!(seven.state().user_by_name("user2@tenant7.example").is_some());
    let nine = engine.existing_tenant(&tenant_id(9)).await.unwrap();
    assert_eq!(nine.state().seq(), Seq(5));
    assert_eq!(
        loaded(&engine),
        vec![TenantId::default_tenant(), tenant_id(7), tenant_id(9)]
    );
    // A loaded tenant takes writes after what it loaded.
    nine.execute(provision("late@tenant9.example"), origin()).await.unwrap();
    assert_eq!(store.head(&tenant_id(9)).await.unwrap().seq, Seq(6));
    engine.shutdown().await;
}

/// A tenant the log does not have is not created by a lookup, and leaves nothing loaded.
#[tokio::test]
async fn a_tenant_the_log_does_not_have_is_not_found_and_not_created() {
    let store = store_with_tenants(1).await;
    let engine = Engine::open(Arc::clone(&store), TenantSettings::default())
        .await
        .unwrap();
    let missing = TenantId::new("missing").unwrap();
    assert!(engine.tenant_in_log(&missing).await.unwrap().is_none());
    assert!(matches!(
        engine.existing_tenant(&missing).await,
        Err(EngineError::UnknownTenant(id)) if id == missing
    ));
    assert_eq!(engine.loaded_tenants().len(), 1);
    assert_eq!(store.tenants().await.unwrap().len(), 2, "no tenant was created");
    engine.shutdown().await;
}

/// Fifty first uses of a tenant the log has, at once, through both lookups, load it once:
/// every caller gets the one writer, and a thousand writes through them all land.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_first_uses_of_a_stored_tenant_load_it_once() {
    let store = store_with_tenants(5).await;
    let engine = Arc::new(Engine::open(store, TenantSettings::default()).await.unwrap());
    let id = tenant_id(4);
    let tenants = first_uses(&engine, &id, 50, |engine, id, caller| async move {
        match caller % 2 {
            0 => engine.tenant_in_log(&id).await.unwrap().unwrap(),
            _ => engine.ensure_tenant(&id).await.unwrap(),
        }
    })
    .await;
    assert_eq!(engine.loaded_tenants().len(), 2);
    write_through_each(&engine, &id, &tenants, 5).await;
    engine.shutdown().await;
}
