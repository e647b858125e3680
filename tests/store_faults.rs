//! The log store failing under the running server: a full disk or a lost database answers
//! writes 503 with Retry-After and reports not ready, reads go on, and everything recovers
//! without a restart. Hardening issue, must-fix 5: before, a failed commit latched inside the
//! store answered 500 forever while `/healthz` said ok.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use common::TestServer;
use idpsync::server::HttpLimits;
use idpsync::storage::{
    AppendBatch, Appended, Head, LogStore, MemoryStore, Record, SecretId, Seq, SnapshotInfo, StoreError, StoreHealth,
    StoredSnapshot, TenantId, Timestamp,
};
use serde_json::json;

/// A store whose writes fail, as a full disk's would, while `failing` is set.
#[derive(Default)]
struct FillingStore {
    inner: MemoryStore,
    failing: AtomicBool,
}

impl FillingStore {
    fn refuse(&self) -> Result<(), StoreError> {
        match self.failing.load(Ordering::SeqCst) {
            true => Err(StoreError::Unavailable {
                reason: "no space left on device".to_owned(),
                retry_after: Duration::from_secs(3),
            }),
            false => Ok(()),
        }
    }
}

#[async_trait]
impl LogStore for FillingStore {
    async fn ensure_tenant(&self, tenant: &TenantId) -> Result<Head, StoreError> {
        self.inner.ensure_tenant(tenant).await
    }
    async fn tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        self.inner.tenants().await
    }
    async fn head(&self, tenant: &TenantId) -> Result<Head, StoreError> {
        self.inner.head(tenant).await
    }
    async fn append(&self, batch: AppendBatch) -> Result<Appended, StoreError> {
        self.refuse()?;
        self.inner.append(batch).await
    }
    async fn read(&self, tenant: &TenantId, from: Seq, limit: usize) -> Result<Vec<Record>, StoreError> {
        self.inner.read(tenant, from, limit).await
    }
    async fn put_snapshot(&self, tenant: &TenantId, snapshot: StoredSnapshot) -> Result<(), StoreError> {
        self.refuse()?;
        self.inner.put_snapshot(tenant, snapshot).await
    }
    async fn snapshot_at_or_before(&self, tenant: &TenantId, seq: Seq) -> Result<Option<StoredSnapshot>, StoreError> {
        self.inner.snapshot_at_or_before(tenant, seq).await
    }
    async fn snapshots(&self, tenant: &TenantId) -> Result<Vec<SnapshotInfo>, StoreError> {
        self.inner.snapshots(tenant).await
    }
    async fn remove_snapshot(&self, tenant: &TenantId, seq: Seq) -> Result<bool, StoreError> {
        self.inner.remove_snapshot(tenant, seq).await
    }
    async fn secrets(&self, tenant: &TenantId) -> Result<Vec<(SecretId, Vec<u8>)>, StoreError> {
        self.inner.secrets(tenant).await
    }
    async fn destroy_secret(&self, tenant: &TenantId, id: SecretId) -> Result<bool, StoreError> {
        self.refuse()?;
        self.inner.destroy_secret(tenant, id).await
    }
    fn health(&self) -> StoreHealth {
        match self.failing.load(Ordering::SeqCst) {
            true => StoreHealth::Unavailable {
                since: Timestamp::now(),
                reason: "no space left on device".to_owned(),
            },
            false => StoreHealth::Ready,
        }
    }
}

fn user(name: &str) -> serde_json::Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name})
}

#[tokio::test]
async fn a_failing_store_answers_503_with_retry_after_reports_not_ready_and_recovers() {
    let store = Arc::new(FillingStore::default());
    let server = TestServer::start_on(store.clone(), HttpLimits::default()).await;
    let client = server.client("acme");
    let alice = client.post("/Users", &user("alice")).await.expect(201).id();
    let health = common::Client::new(&server.origin, None);
    assert_eq!(health.get("/healthz").await.expect(200).body["status"], "ready");

    store.failing.store(true, Ordering::SeqCst);
    let refused = client.post("/Users", &user("bob")).await.expect(503);
    assert_eq!(refused.header("retry-after"), Some("3"));
    assert_eq!(refused.body["status"], "503");
    let not_ready = health.get("/healthz").await.expect(503);
    assert_eq!(not_ready.body["status"], "not-ready");
    assert_eq!(not_ready.body["reason"], "no space left on device");
    health.get("/livez").await.expect(200);
    // Reads are served from memory meanwhile.
    client.get(&format!("/Users/{alice}")).await.expect(200);
    client
        .get(&format!("/Users?{}", common::filter("userName eq \"bob\"")))
        .await
        .expect(200)
        .body["totalResults"]
        .as_u64()
        .filter(|found| *found == 0)
        .expect("nothing of the refused write is visible");

    store.failing.store(false, Ordering::SeqCst);
    client.post("/Users", &user("bob")).await.expect(201);
    assert_eq!(health.get("/readyz").await.expect(200).body["status"], "ready");
    assert_eq!(
        server.events("acme").await.len(),
        2,
        "alice and bob, nothing half-written"
    );
    server.stop().await;
}
