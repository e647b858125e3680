//! The SCIM router on a replica that has not yet folded in another replica's append: every
//! request that reads the tenant before its command reads that append. Two engines share one
//! PostgreSQL schema and neither follows the other, so the only way the second sees the
//! first's writes is the catch-up a request makes before it reads.
//!
//! Runs in a schema of its own in the database `IDPSYNC_TEST_POSTGRES_URL` names; where it is
//! not set, it says so and passes.

use std::sync::Arc;

use axum::Router;
use http_body_util::BodyExt as _;
use idpsync_engine::ids::TenantId;
use idpsync_engine::{Engine, TenantSettings};
use idpsync_storage::{PostgresSettings, PostgresStore};
use serde_json::{Value, json};
use tower::ServiceExt as _;

mod common;

use common::{one_token, request};

fn user(user_name: &str) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user_name})
}

async fn send(router: &Router, method: &str, uri: &str, body: Option<Value>) -> (u16, Value) {
    let response = router
        .clone()
        .oneshot(request(method, uri, body.as_ref()))
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_reads_what_another_wrote_before_every_request_that_reads_first() {
    let Ok(url) = std::env::var("IDPSYNC_TEST_POSTGRES_URL") else {
        eprintln!("skipped: IDPSYNC_TEST_POSTGRES_URL is not set, so SCIM on replicas is not tested");
        return;
    };
    let first = PostgresStore::open_scratch(PostgresSettings::from_url(&url).unwrap(), "idpsync_scim_replicas")
        .await
        .unwrap();
    let second = PostgresStore::open(first.settings().clone()).await.unwrap();
    let writer = Arc::new(Engine::open(Arc::new(first), TenantSettings::default()).await.unwrap());
    let reader = Arc::new(Engine::open(Arc::new(second), TenantSettings::default()).await.unwrap());
    let default = TenantId::default_tenant();
    // Both load the tenant before anything is written: the reader's state is then the empty
    // one until a request catches it up.
    writer.ensure_tenant(&default).await.unwrap();
    let stale = reader.ensure_tenant(&default).await.unwrap();
    let written = idpsync_scim::router(writer, Arc::new(one_token()), idpsync_scim::Settings::default());
    let router = idpsync_scim::router(reader, Arc::new(one_token()), idpsync_scim::Settings::default());

    let mut ids = Vec::new();
    for user_name in [
        "alice@example.com",
        "bob@example.com",
        "carol@example.com",
        "dan@example.com",
    ] {
        let (status, created) = send(&written, "POST", "/Users", Some(user(user_name))).await;
        assert_eq!(status, 201, "{created}");
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    let [alice, bob, carol, dan] = &ids[..] else {
        unreachable!()
    };
    assert_eq!(stale.state().users().count(), 0, "the reader follows nobody");

    // A group created with members the other replica just made keeps them all.
    let (status, group) = send(
        &router,
        "POST",
        "/Groups",
        Some(json!({"displayName": "vpn", "members": [{"value": alice}]})),
    )
    .await;
    assert_eq!(status, 201, "{group}");
    assert_eq!(group["members"][0]["value"], json!(alice), "{group}");
    let group_id = group["id"].as_str().unwrap().to_owned();

    // Each request below reads before it writes; before each, the other replica writes again.
    let add = |member: &str| {
        json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": member}]}]
        })
    };
    let group_path = format!("/Groups/{group_id}");
    assert_eq!(send(&written, "PATCH", &group_path, Some(add(bob))).await.0, 200);
    let (status, read) = send(&router, "GET", &group_path, None).await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["members"].as_array().unwrap().len(), 2, "{read}");

    assert_eq!(send(&written, "PATCH", &group_path, Some(add(carol))).await.0, 200);
    let (status, patched) = send(&router, "PATCH", &group_path, Some(add(dan))).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["members"].as_array().unwrap().len(), 4, "{patched}");

    let (status, listed) = send(
        &router,
        "GET",
        "/Users?filter=userName%20eq%20%22dan@example.com%22",
        None,
    )
    .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["totalResults"], json!(1), "{listed}");

    // A create reads nothing first, and its writer folds the others' appends in before it
    // decides: a name the other replica holds is taken.
    let (status, taken) = send(&router, "POST", "/Users", Some(user("alice@example.com"))).await;
    assert_eq!((status, &taken["scimType"]), (409, &json!("uniqueness")), "{taken}");
}
