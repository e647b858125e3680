//! SCIM requests end to end: an arbitrary method, endpoint, path segment, query string,
//! precondition and body go through the real router (a fresh in-memory engine holding two
//! users and a group, tower `oneshot`). The router never panics, and every answer is a valid
//! SCIM response: a success with a SCIM body (or none, for 204 and 304), or an error with the
//! RFC 7644 error body whose `status` is the response's. Bad input is never answered 500.
//!
//! Input: a method byte, an endpoint byte, a precondition byte, then the path segment, the
//! query string and the body, separated by the first two newlines.
//!
//! Run: `cargo +nightly fuzz run scim_request` in `fuzz/`.

#![no_main]

use std::sync::{Arc, LazyLock};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use idpsync_engine::command::Command;
use idpsync_engine::ids::{Member, TenantId, TokenId};
use idpsync_engine::model::{Owner, UserProfile};
use idpsync_engine::{Cause, Engine, Origin, Outcome, Source, TenantSettings};
use idpsync_scim::{Principal, Settings, SharedSecret};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tower::ServiceExt as _;

const TOKEN: &str = "fuzz";
const ERROR_URN: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const METHODS: [Method; 5] = [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];
/// `{user}` and `{group}` are ids of the tenant's resources, `{segment}` the fuzzed segment.
const ENDPOINTS: [&str; 18] = [
    "/Users",
    "/Users/{user}",
    "/Users/{segment}",
    "/Users/.search",
    "/Groups",
    "/Groups/{group}",
    "/Groups/{segment}",
    "/Groups/.search",
    "/.search",
    "/Bulk",
    "/ServiceProviderConfig",
    "/ResourceTypes",
    "/ResourceTypes/{segment}",
    "/Schemas",
    "/Schemas/{segment}",
    "/Me",
    "/Users/{group}",
    "/{segment}",
];

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
});

/// A fresh engine and router over a tenant with two users and a group holding both, and
/// their ids.
async fn tenant() -> (Arc<Engine>, axum::Router, String, String) {
    let store = Arc::new(idpsync_storage::MemoryStore::new());
    let engine = Arc::new(Engine::open(store, TenantSettings::default()).await.expect("an engine"));
    let tenant = engine
        .ensure_tenant(&TenantId::default_tenant())
        .await
        .expect("a tenant");
    let origin = Origin {
        source: Source::Workload,
        cause: Cause::Unspecified,
    };
    let mut members = Vec::new();
    for name in ["bjensen@example.com", "jsmith@example.com"] {
        let command = Command::ProvisionUser {
            owner: Owner::Scim,
            external_id: Some(name.to_owned()),
            active: true,
            profile: UserProfile {
                user_name: name.to_owned(),
                ..Default::default()
            },
        };
        let Outcome::UserProvisioned(id) = tenant.execute(command, origin.clone()).await.expect("a user").outcome
        else {
            unreachable!("ProvisionUser provisions a user")
        };
        members.push(Member::User(id));
    }
    let command = Command::CreateGroup {
        owner: Owner::Scim,
        external_id: None,
        display_name: "Engineering".to_owned(),
        members: members.clone(),
    };
    let Outcome::GroupCreated(group) = tenant.execute(command, origin).await.expect("a group").outcome else {
        unreachable!("CreateGroup creates a group")
    };
    let Member::User(user) = members[0] else {
        unreachable!("the members are users")
    };
    let router = idpsync_scim::router(
        Arc::clone(&engine),
        Arc::new(SharedSecret::new(
            TOKEN,
            Principal {
                tenant: TenantId::default_tenant(),
                token: TokenId::MIN,
            },
        )),
        Settings::default(),
    );
    (engine, router, user.to_string(), group.to_string())
}

/// `bytes` percent-encoded, keeping `keep` and the unreserved characters.
fn encode(bytes: &[u8], keep: &[u8]) -> String {
    let mut encoded = String::new();
    for &byte in bytes {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) || keep.contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

async fn check(method: Method, endpoint: &str, precondition: u8, segment: &[u8], query: &[u8], body: &[u8]) {
    let (engine, router, user, group) = tenant().await;
    let mut path = endpoint
        .replace("{user}", &user)
        .replace("{group}", &group)
        .replace("{segment}", &encode(segment, b""));
    if !query.is_empty() {
        path = format!("{path}?{}", encode(query, b"&=+"));
    }
    let mut request = Request::builder()
        .method(method.clone())
        .uri(&path)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "application/scim+json");
    request = match precondition % 5 {
        1 => request.header(header::IF_MATCH, "*"),
        2 => request.header(header::IF_MATCH, "W/\"3\""),
        3 => request.header(header::IF_NONE_MATCH, "W/\"3\""),
        4 => request.header(header::IF_MATCH, "\"seven\""),
        _ => request,
    };
    let request = request.body(Body::from(body.to_vec())).expect("a request");
    let response = router.oneshot(request).await.expect("the router never fails");
    // Each input has its own engine: stop its writers, or every input would leave them behind.
    engine.shutdown().await;
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    let bytes = response.into_body().collect().await.expect("a body").to_bytes();
    let context = || format!("{method} {path} -> {status}: {}", String::from_utf8_lossy(&bytes));
    if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        assert!(bytes.is_empty(), "{}", context());
        return;
    }
    assert_eq!(
        content_type.as_ref().and_then(|value| value.to_str().ok()),
        Some("application/scim+json"),
        "{}",
        context()
    );
    let answer: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("not JSON: {}", context()));
    if status.is_success() {
        assert!(
            answer["schemas"].as_array().is_some_and(|schemas| !schemas.is_empty()),
            "{}",
            context()
        );
        return;
    }
    assert!(
        status.is_client_error() || (status == StatusCode::NOT_IMPLEMENTED && endpoint == "/Me"),
        "{}",
        context()
    );
    assert_eq!(answer["schemas"], serde_json::json!([ERROR_URN]), "{}", context());
    assert_eq!(answer["status"], status.as_u16().to_string(), "{}", context());
    assert!(answer["detail"].is_string(), "{}", context());
}

fuzz_target!(|data: &[u8]| {
    let [method, endpoint, precondition, rest @ ..] = data else {
        return;
    };
    let mut parts = rest.splitn(3, |&byte| byte == b'\n');
    let segment = parts.next().unwrap_or_default();
    let query = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();
    let method = METHODS[usize::from(*method) % METHODS.len()].clone();
    let endpoint = ENDPOINTS[usize::from(*endpoint) % ENDPOINTS.len()];
    RUNTIME.block_on(check(method, endpoint, *precondition, segment, query, body));
});
