//! The log store failing under the running server: a full disk or a lost database answers
//! writes 503 with Retry-After and reports not ready, reads go on, and everything recovers
//! without a restart. Hardening issue, must-fix 5: before, a failed commit latched inside the
//! store answered 500 forever while `/healthz` said ok.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::TestServer;
use idpsync::server::HttpLimits;
use idpsync::storage::faults::{FULL_DISK, FaultyStore};
use serde_json::json;

fn user(name: &str) -> serde_json::Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name})
}

#[tokio::test]
async fn a_failing_store_answers_503_with_retry_after_reports_not_ready_and_recovers() {
    let store = Arc::new(FaultyStore::default());
    let server = TestServer::start_on(store.clone(), HttpLimits::default()).await;
    let client = server.client("acme");
    let alice = client.post("/Users", &user("alice")).await.expect(201).id();
    let health = common::Client::new(&server.origin, None);
    assert_eq!(health.get("/healthz").await.expect(200).body["status"], "ready");

    store.refuse_writes.store(true, Ordering::SeqCst);
    let refused = client.post("/Users", &user("bob")).await.expect(503);
    assert_eq!(refused.header("retry-after"), Some("3"));
    assert_eq!(refused.body["status"], "503");
    let not_ready = health.get("/healthz").await.expect(503);
    assert_eq!(not_ready.body["status"], "not-ready");
    assert_eq!(not_ready.body["reason"], FULL_DISK);
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

    store.refuse_writes.store(false, Ordering::SeqCst);
    client.post("/Users", &user("bob")).await.expect(201);
    assert_eq!(health.get("/readyz").await.expect(200).body["status"], "ready");
    assert_eq!(
        server.events("acme").await.len(),
        2,
        "alice and bob, nothing half-written"
    );
    server.stop().await;
}
