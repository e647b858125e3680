//! SCIM: the filter grammar (parse; compile and evaluate), PATCH application (a user's
//! document in Entra's default dialect; a group PATCH of 1,000 member values planned against
//! a tenant of 100,000 users, and committed through the engine), reads through the whole
//! router in process (no socket): what one request costs the server besides the network, and
//! the bearer token check alone.
//!
//! Run: `cargo bench -p idpsync-benches --bench scim`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use idpsync_engine::command::Command;
use idpsync_engine::ids::{GroupId, UserId};
use idpsync_engine::model::{Owner, UserProfile};
use idpsync_engine::{Cause, Engine, Origin, Outcome, Source, TenantSettings};
use idpsync_scim::internals::{
    USER_TYPE, apply_to_document, base_url, compile_filter, filter_matches, parse_filter, parse_operations,
    plan_group_patch,
};
use idpsync_storage::{MemoryStore, TenantId};
use serde_json::{Value, json};

const FILTERS: [(&str, &str); 3] = [
    (
        "entra_match",
        r#"userName eq "Test_User_dfeef4c5-5681-4387-b016-bdf221e82081""#,
    ),
    (
        "value_path",
        r#"emails[type eq "work" and value co "@example.com"] or (name.familyName sw "O" and not (active eq false))"#,
    ),
    (
        "postman_unquoted",
        "name.FamilyName eq Employee and (emails.Value co example.com or emails.Value co example.org)",
    ),
];

fn grammar(c: &mut Criterion) {
    let mut group = c.benchmark_group("scim_filter");
    for (name, text) in FILTERS {
        group.bench_function(format!("parse/{name}"), |b| {
            b.iter(|| parse_filter(black_box(text)).unwrap())
        });
    }
    let user = json!({
        "userName": "bjensen@example.com", "active": true, "name": {"familyName": "O'Malley"},
        "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}, {"value": "b@home.org", "type": "home"}]
    });
    let user = user.as_object().unwrap();
    for (name, text) in FILTERS {
        let matcher = compile_filter(&USER_TYPE, &parse_filter(text).unwrap()).unwrap();
        group.bench_function(format!("evaluate/{name}"), |b| {
            b.iter(|| filter_matches(&matcher, black_box(user)))
        });
    }
    group.finish();
}

fn user_patch(c: &mut Criterion) {
    let body = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
        {"op":"Replace","path":"emails[type eq \"work\"].value","value":"updatedEmail@microsoft.com"},
        {"op":"Replace","path":"name.familyName","value":"updatedFamilyName"},
        {"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber","value":"Eqpj"},
        {"op":"Replace","path":"active","value":"False"}]});
    let document = json!({
        "userName": "bjensen@example.com", "active": true, "name": {"givenName": "B", "familyName": "J"},
        "emails": [{"value": "old@example.com", "type": "work", "primary": true}]
    });
    let document = document.as_object().unwrap().clone();
    c.bench_function("scim_patch/user_entra_default_dialect", |b| {
        b.iter_batched(
            || document.clone(),
            |mut document| {
                let operations = parse_operations(black_box(&body)).unwrap();
                apply_to_document(&USER_TYPE, &mut document, &operations).unwrap();
                document
            },
            BatchSize::SmallInput,
        )
    });
}

/// A tenant with `users` users and one empty group.
async fn tenant_with_users(users: usize) -> (Engine, Arc<idpsync_engine::Tenant>, Vec<UserId>, GroupId) {
    let engine = Engine::open(Arc::new(MemoryStore::new()), TenantSettings::default())
        .await
        .unwrap();
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    let origin = Origin {
        source: Source::Workload,
        cause: Cause::Unspecified,
    };
    let mut pending = Vec::new();
    for index in 0..users {
        let profile = UserProfile {
            user_name: format!("user{index}@example.com"),
            ..Default::default()
        };
        let command = Command::ProvisionUser {
            owner: Owner::Operator,
            external_id: None,
            active: true,
            profile,
        };
        pending.push(tenant.enqueue(command, origin.clone()).await.unwrap());
    }
    let mut ids = Vec::with_capacity(users);
    for commit in pending {
        if let Outcome::UserProvisioned(id) = commit.committed().await.unwrap().outcome {
            ids.push(id);
        }
    }
    let command = Command::CreateGroup {
        owner: Owner::Scim,
        external_id: None,
        display_name: "Everyone".to_owned(),
        members: Vec::new(),
    };
    let Outcome::GroupCreated(group) = tenant.execute(command, origin).await.unwrap().outcome else {
        unreachable!("CreateGroup creates a group")
    };
    (engine, tenant, ids, group)
}

fn group_patch(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (engine, tenant, users, group) = runtime.block_on(tenant_with_users(100_000));
    let base = base_url("http://localhost/scim/v2");
    let thousand: Vec<Value> = users[..1_000]
        .iter()
        .map(|id| json!({"value": id.to_string()}))
        .collect();
    let body = json!({"Operations":[{"op":"add","path":"members","value":thousand}]});
    let operations = parse_operations(&body).unwrap();
    let state = tenant.state();
    let current = state.group(group).unwrap().clone();
    c.bench_function("scim_patch/group_plan_add_1000_members", |b| {
        b.iter(|| plan_group_patch(&state, &current, black_box(&operations), None, &base).unwrap())
    });
    let origin = Origin {
        source: Source::Workload,
        cause: Cause::Unspecified,
    };
    // Add 1,000 members and take them out again, so every iteration starts from the same group.
    let remove = parse_operations(
        &json!({"Operations":[{"op":"remove","path":"members","value":body["Operations"][0]["value"]}]}),
    )
    .unwrap();
    c.bench_function("scim_patch/group_commit_add_then_remove_1000_members", |b| {
        b.to_async(&runtime).iter(|| async {
            for operations in [&operations, &remove] {
                let state = tenant.state();
                let current = state.group(group).unwrap().clone();
                let commands = plan_group_patch(&state, &current, operations, None, &base).unwrap();
                tenant.execute(Command::Atomic(commands), origin.clone()).await.unwrap();
            }
        })
    });
    runtime.block_on(engine.shutdown());
}

/// A token store in a temporary directory with one SCIM token, and its secret.
fn token(dir: &std::path::Path) -> (Arc<idpsync::tokens::TokenAuthenticator>, String) {
    let store = idpsync::tokens::TokenStore::new(dir);
    let (_, secret) = store
        .create(&TenantId::default_tenant(), "bench", idpsync::tokens::TokenKind::Scim)
        .unwrap();
    (
        Arc::new(idpsync::tokens::TokenAuthenticator::new(store).unwrap()),
        secret,
    )
}

fn router_reads(c: &mut Criterion) {
    use tower::ServiceExt;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (engine, _tenant, users, _group) = runtime.block_on(tenant_with_users(100_000));
    let engine = Arc::new(engine);
    let dir = tempfile::tempdir().unwrap();
    let (authenticator, secret) = token(dir.path());
    let service = idpsync::server::router(
        Arc::clone(&engine),
        authenticator.clone(),
        &idpsync::server::ServiceSettings::default(),
    );
    // The SCIM router alone, without the service's request metrics.
    let scim_alone = axum::Router::new().nest(
        idpsync::server::SCIM_MOUNT,
        idpsync::scim_router(Arc::clone(&engine), authenticator, idpsync::server::SCIM_MOUNT),
    );
    let user = users[50_000];
    let paths = [
        ("healthz", &service, "/healthz".to_owned()),
        ("get_user_by_id", &service, format!("/scim/v2/Users/{user}")),
        (
            "get_user_by_id_scim_alone",
            &scim_alone,
            format!("/scim/v2/Users/{user}"),
        ),
        (
            "filter_user_name",
            &service,
            "/scim/v2/Users?filter=userName%20eq%20%22user50000%40example.com%22".to_owned(),
        ),
    ];
    let mut group = c.benchmark_group("scim_router");
    for (name, router, path) in paths {
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| async {
                let request = axum::http::Request::get(path.as_str())
                    .header("authorization", format!("Bearer {secret}"))
                    .header("host", "localhost")
                    .body(axum::body::Body::empty())
                    .unwrap();
                let response = router.clone().oneshot(request).await.unwrap();
                assert!(response.status().is_success());
                axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap()
            })
        });
    }
    group.finish();
    runtime.block_on(engine.shutdown());
}

/// The bearer token check of every SCIM and API request: the secret hashed, compared with
/// every token of the kind (constant time), the expiry checked and the use noted in memory;
/// among 1 and 1,000 tokens.
fn token_check(c: &mut Criterion) {
    let mut group = c.benchmark_group("token_check");
    for tokens in [1usize, 1_000] {
        let dir = tempfile::tempdir().unwrap();
        let store = idpsync::tokens::TokenStore::new(dir.path());
        let expires = idpsync_engine::ids::Timestamp(idpsync_engine::ids::Timestamp::now().0 + 86_400_000_000);
        let mut secret = String::new();
        for n in 0..tokens {
            secret = store
                .create_expiring(
                    &TenantId::default_tenant(),
                    &format!("t{n}"),
                    idpsync::tokens::TokenKind::Scim,
                    Some(expires),
                )
                .unwrap()
                .1;
        }
        let door = idpsync::tokens::TokenAuthenticator::new(store).unwrap();
        group.bench_function(format!("authenticate/{tokens}_tokens"), |b| {
            b.iter(|| door.authenticate(black_box(&secret)).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, grammar, user_patch, group_patch, router_reads, token_check);
criterion_main!(benches);
