//! Requests that filter or sort without an index: they run on a bounded pool beside the async
//! workers, within a budget of resources and time, and a sort orders at most
//! `filter.maxResults` resources. The router runs in process (tower `oneshot`) over an
//! in-memory engine, with small limits so that a few hundred users reach them.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use http_body_util::BodyExt as _;
use idpsync_engine::command::Command;
use idpsync_engine::ids::{TenantId, UserId};
use idpsync_engine::model::{Owner, UserProfile};
use idpsync_engine::{Cause, Engine, Origin, Outcome, Source, TenantSettings};
use idpsync_scim::Settings;
use serde_json::{Value, json};
use tower::ServiceExt as _;

mod common;

use common::{one_token, request};

/// A filter no index answers: every user is rendered to evaluate it, and none matches.
const UNINDEXED: &str = "/Users?filter=title%20eq%20%22Astronaut%22";

/// The router over a tenant of `users` users named `user<i>@example.com`, and their ids.
async fn tenant_of(users: usize, settings: Settings) -> (Router, Vec<UserId>) {
    let engine = Arc::new(
        Engine::open(Arc::new(idpsync_storage::MemoryStore::new()), TenantSettings::default())
            .await
            .unwrap(),
    );
    let tenant = engine.ensure_tenant(&TenantId::default_tenant()).await.unwrap();
    let origin = Origin {
        source: Source::Workload,
        cause: Cause::Unspecified,
    };
    let mut pending = Vec::with_capacity(users);
    for index in 0..users {
        let command = Command::ProvisionUser {
            owner: Owner::Scim,
            external_id: None,
            active: true,
            profile: UserProfile {
                user_name: format!("user{index}@example.com"),
                ..Default::default()
            },
        };
        pending.push(tenant.enqueue(command, origin.clone()).await.unwrap());
    }
    let mut ids = Vec::with_capacity(users);
    for commit in pending {
        let Outcome::UserProvisioned(id) = commit.committed().await.unwrap().outcome else {
            panic!("ProvisionUser provisions a user");
        };
        ids.push(id);
    }
    (idpsync_scim::router(engine, Arc::new(one_token()), settings), ids)
}

/// A response: status, `Retry-After`, JSON body (`Null` when empty).
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    body: Value,
}

async fn answer_of(response: axum::response::Response) -> Answer {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|value| value.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    Answer {
        status,
        retry_after,
        body,
    }
}

async fn send(router: &Router, method: &str, uri: &str, body: Option<&Value>) -> Answer {
    answer_of(router.clone().oneshot(request(method, uri, body)).await.unwrap()).await
}

fn assert_too_many(answer: &Answer, detail: &str) {
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{answer:?}");
    assert_eq!(answer.body["scimType"], "tooMany", "{answer:?}");
    let text = answer.body["detail"].as_str().unwrap();
    assert!(text.contains(detail), "{text:?} should say {detail:?}");
}

fn with_budget(resources_max: usize, time_max: Duration) -> Settings {
    Settings {
        scan_resources_max: resources_max,
        scan_time_max: time_max,
        ..Settings::default()
    }
}

/// Hardening issue, must-fix 8: an unindexed filter over more resources than the scan budget
/// allows is refused with 400 `tooMany` (on every list and search endpoint), instead of
/// rendering the whole tenant; indexed filters never count against the budget.
#[tokio::test]
async fn an_unindexed_filter_beyond_the_scan_budget_is_refused_as_too_many() {
    let (router, _) = tenant_of(150, with_budget(100, Duration::from_secs(3600))).await;
    let too_broad = send(&router, "GET", UNINDEXED, None).await;
    assert_too_many(&too_broad, "narrow the filter");
    let search = json!({"filter": "title eq \"Astronaut\""});
    for endpoint in ["/Users/.search", "/.search"] {
        assert_too_many(
            &send(&router, "POST", endpoint, Some(&search)).await,
            "more than 100 resources",
        );
    }
    let indexed = send(
        &router,
        "GET",
        "/Users?filter=userName%20eq%20%22user7@example.com%22",
        None,
    )
    .await;
    assert_eq!(indexed.status, StatusCode::OK, "{indexed:?}");
    assert_eq!(indexed.body["totalResults"], 1);

    let (router, _) = tenant_of(100, with_budget(100, Duration::from_secs(3600))).await;
    let within = send(&router, "GET", UNINDEXED, None).await;
    assert_eq!(within.status, StatusCode::OK, "{within:?}");
    assert_eq!(within.body["totalResults"], 0);
}

/// Hardening issue, must-fix 8: a scan that runs longer than its time budget stops and is
/// answered 400 `tooMany`; a lookup an index answers is not a scan and is never refused so.
#[tokio::test]
async fn a_scan_beyond_its_time_budget_is_refused_as_too_many() {
    let (router, ids) = tenant_of(20, with_budget(usize::MAX, Duration::ZERO)).await;
    assert_too_many(&send(&router, "GET", UNINDEXED, None).await, "took longer than 0 ms");
    assert_too_many(
        &send(&router, "GET", "/Users?sortBy=name.familyName", None).await,
        "took longer than",
    );
    let by_id = send(
        &router,
        "GET",
        &format!("/Users?filter=id%20eq%20%22{}%22", ids[3]),
        None,
    )
    .await;
    assert_eq!(by_id.body["totalResults"], 1, "{by_id:?}");
    let page = send(&router, "GET", "/Users?startIndex=11&count=5", None).await;
    assert_eq!(page.body["itemsPerPage"], 5, "{page:?}");
}

/// Hardening issue, must-fix 8: `sortBy` orders at most `filter.maxResults` resources, as
/// `/ServiceProviderConfig` advertises; a sort over more is refused with 400 `tooMany`
/// instead of ordering the whole tenant, and a filter that narrows it makes it work.
#[tokio::test]
async fn sort_by_orders_at_most_filter_max_results() {
    let settings = Settings {
        filter_results_max: 100,
        ..Settings::default()
    };
    let (router, _) = tenant_of(150, settings).await;
    let config = send(&router, "GET", "/ServiceProviderConfig", None).await;
    assert_eq!(config.body["filter"]["maxResults"], 100);

    assert_too_many(
        &send(&router, "GET", "/Users?sortBy=userName", None).await,
        "narrow the filter",
    );
    let search = json!({"sortBy": "userName", "sortOrder": "descending"});
    assert_too_many(&send(&router, "POST", "/.search", Some(&search)).await, "more than 100");

    // user1, user10 to user19 and user100 to user149: 61 users.
    let narrowed = send(
        &router,
        "GET",
        "/Users?sortBy=userName&sortOrder=descending&count=3&filter=userName%20sw%20%22user1%22",
        None,
    )
    .await;
    assert_eq!(narrowed.status, StatusCode::OK, "{narrowed:?}");
    assert_eq!(narrowed.body["totalResults"], 61);
    let names: Vec<&str> = narrowed.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|user| user["userName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["user1@example.com", "user19@example.com", "user18@example.com"]);
}

/// Hardening issue, must-fix 8: scans run on the scan pool, not on the async workers, and a
/// full pool refuses more with 503 and `Retry-After`: with one place and a flood of scans,
/// a scan is still running when a `GET /Users/{id}` sent after the whole flood has been
/// answered, and the scans that found the place taken were refused. On a single-threaded
/// runtime, a scan run on the async worker would finish before anything else is polled.
#[test]
fn a_flood_of_scans_never_holds_up_a_get_by_id() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let settings = Settings {
            scans_concurrent_max: 1,
            scan_queue_wait: Duration::ZERO,
            ..Settings::default()
        };
        // Enough users that a scan lasts far longer than refusing the rest of the flood.
        let (router, ids) = tenant_of(3_000, settings).await;
        let flood: Vec<_> = (0..8)
            .map(|_| tokio::spawn(router.clone().oneshot(request("GET", UNINDEXED, None))))
            .collect();
        // Every request of the flood is polled once: each takes the pool's place or is refused.
        tokio::task::yield_now().await;

        let user = send(&router, "GET", &format!("/Users/{}", ids[42]), None).await;
        assert_eq!(user.status, StatusCode::OK, "{user:?}");
        assert_eq!(user.body["userName"], "user42@example.com");
        assert!(
            flood.iter().any(|scan| !scan.is_finished()),
            "a scan still runs beside the async worker"
        );

        let (mut answered, mut refused) = (0, 0);
        for scan in flood {
            let answer = answer_of(scan.await.unwrap().unwrap()).await;
            match answer.status {
                StatusCode::OK => {
                    answered += 1;
                    assert_eq!(answer.body["totalResults"], 0);
                }
                StatusCode::SERVICE_UNAVAILABLE => {
                    refused += 1;
                    assert_eq!(answer.retry_after.as_deref(), Some("1"), "{answer:?}");
                    assert_eq!(answer.body["status"], "503");
                    assert!(answer.body["detail"].as_str().unwrap().contains("retry after"));
                }
                other => panic!("unexpected {other}: {answer:?}"),
            }
        }
        assert!(answered >= 1 && refused >= 1, "{answered} answered, {refused} refused");
    });
}
