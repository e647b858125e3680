//! The management API over TCP, in-process: bindings, tokens and tenants, a leaver through
//! SCIM followed on the change stream and audited, consumers killed and resumed mid-stream,
//! the past answered from the history index, timelines and intervals, erasure, metrics.

mod common;
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use common::Client;
use idpsync::engine::Source;
use idpsync::storage::{Seq, TenantId};
use serde_json::{Value, json};
use support::{PATCH_OP, Service, SseClient, SseItem};

async fn user(scim: &Client, name: &str) -> String {
    scim.post("/Users", &json!({"userName": name, "active": true}))
        .await
        .expect(201)
        .id()
}

async fn group(scim: &Client, name: &str, members: &[&str]) -> String {
    let members: Vec<Value> = members.iter().map(|id| json!({"value": id})).collect();
    scim.post("/Groups", &json!({"displayName": name, "members": members}))
        .await
        .expect(201)
        .id()
}

async fn set_active(scim: &Client, user: &str, active: bool) -> common::Answer {
    scim.patch(
        &format!("/Users/{user}"),
        &json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": active}]}),
    )
    .await
    .expect(200)
}

async fn head(api: &Client) -> u64 {
    api.get("").await.expect(200).body["seq"].as_u64().unwrap()
}

#[tokio::test]
async fn bindings_round_trip_and_bad_input_changes_nothing() {
    let service = Service::start().await;
    let scim = service.scim("acme");
    let api = service.api("acme");
    let alice = user(&scim, "alice@acme.test").await;
    let bob = user(&scim, "bob@acme.test").await;
    let eng = group(&scim, "eng", &[&alice]).await;
    let ops = group(&scim, "ops", &[&bob]).await;

    let put = api
        .put("/bindings/policy/p1", &json!({"sources": [eng], "destinations": [ops]}))
        .await
        .expect(200);
    assert_eq!(put.body["changed"], true);
    assert_eq!(put.body["sources"], json!([eng]));
    let again = api
        .put("/bindings/policy/p1", &json!({"sources": [eng], "destinations": [ops]}))
        .await
        .expect(200);
    assert_eq!(again.body["changed"], false, "the same binding twice writes nothing");
    api.put("/bindings/route/r-1", &json!({"groups": [eng]}))
        .await
        .expect(200);
    let got = api.get("/bindings/policy/p1").await.expect(200);
    assert_eq!(
        got.body,
        json!({"kind": "policy", "id": "p1", "sources": [eng], "destinations": [ops]})
    );
    let listed = api.get("/bindings").await.expect(200);
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 2);

    let detail = api.get(&format!("/users/{alice}")).await.expect(200);
    let access: Vec<(String, String, String)> = detail.body["access"]
        .as_array()
        .unwrap()
        .iter()
        .map(|grant| {
            (
                format!(
                    "{}/{}",
                    grant["resource"]["kind"].as_str().unwrap(),
                    grant["resource"]["id"].as_str().unwrap()
                ),
                grant["role"].as_str().unwrap().to_owned(),
                grant["via"]["displayName"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        access,
        vec![
            ("policy/p1".into(), "source".into(), "eng".into()),
            ("route/r-1".into(), "member".into(), "eng".into())
        ]
    );

    let before = head(&api).await;
    let missing = "01940000-0000-7000-8000-000000000000";
    for (path, body, status, code) in [
        ("/bindings/policy/p2", json!({"groups": [eng]}), 422, "binding_shape"),
        (
            "/bindings/route/r2",
            json!({"sources": [eng], "destinations": []}),
            422,
            "binding_shape",
        ),
        (
            "/bindings/route/r2",
            json!({"groups": [missing]}),
            422,
            "group_not_found",
        ),
        (
            "/bindings/route/r2",
            json!({"groups": ["not-a-uuid"]}),
            400,
            "bad_request",
        ),
        (
            "/bindings/route/r2",
            json!({"groups": [eng], "extra": 1}),
            400,
            "bad_request",
        ),
        ("/bindings/printer/x", json!({"groups": [eng]}), 404, "not_found"),
    ] {
        let answer = api.put(path, &body).await.expect(status);
        assert_eq!(answer.body["error"]["code"], code, "{path} {body}");
        assert!(answer.body["error"]["message"].as_str().unwrap().len() > 10);
    }
    let plain = reqwest::Client::new()
        .put(format!("{}/api/v1/tenants/acme/bindings/route/r2", service.origin))
        .bearer_auth(service.admin_token("acme"))
        .body("{\"groups\": []}")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 415);
    assert_eq!(head(&api).await, before, "refused requests write nothing");

    api.delete("/bindings/policy/p1").await.expect(204);
    api.get("/bindings/policy/p1").await.expect(404);
    let gone = api.delete("/bindings/policy/p1").await.expect(404);
    assert_eq!(gone.body["error"]["code"], "binding_not_found");
    let detail = api.get(&format!("/users/{alice}")).await.expect(200);
    assert_eq!(detail.body["access"].as_array().unwrap().len(), 1);

    // Every binding event names the admin token that made it.
    let tenant = service.engine.require_tenant(&TenantId::new("acme").unwrap()).unwrap();
    let records = service.engine.store().read(tenant.id(), Seq(1), 1000).await.unwrap();
    let admin_events = records
        .iter()
        .map(|record| idpsync::engine::event::decode_record(record).unwrap())
        .filter(|event| matches!(event.envelope.source, Source::Admin { .. }))
        .count();
    assert_eq!(admin_events, 3, "two sets and one removal");
    service.stop().await;
}

#[tokio::test]
async fn tokens_open_one_tenant_only() {
    let service = Service::start().await;
    let acme_scim = service.scim("acme");
    user(&acme_scim, "ceo@acme.test").await;
    service.scim("globex");
    let globex_scim = service.scim("globex");
    user(&globex_scim, "ceo@globex.test").await;
    let acme_admin = service.admin_token("acme");
    let scim_secret = {
        let (_, secret) = service
            .tokens
            .create(
                &TenantId::new("acme").unwrap(),
                "scim",
                idpsync::tokens::TokenKind::Scim,
            )
            .unwrap();
        secret
    };
    let root = format!("{}/api/v1/tenants", service.origin);
    for token in [None, Some("idps_nope".to_owned()), Some(scim_secret)] {
        let answer = Client::new(&format!("{root}/acme"), token)
            .get("/users")
            .await
            .expect(401);
        assert_eq!(
            answer.header("www-authenticate"),
            Some("Bearer realm=\"idpsync\", error=\"invalid_token\"")
        );
        assert_eq!(answer.body["error"]["code"], "unauthorized");
    }
    // The same answer for another tenant that exists and one that does not.
    for tenant in ["globex", "initech"] {
        let probe = Client::new(&format!("{root}/{tenant}"), Some(acme_admin.clone()));
        for path in [
            "",
            "/users",
            "/groups",
            "/bindings",
            "/changes",
            "/integrations",
            "/audit/leavers?since=2020-01-01T00:00:00Z",
        ] {
            let answer = probe.get(path).await.expect(403);
            assert_eq!(answer.body["error"]["code"], "forbidden", "{tenant}{path}");
        }
        probe.put("/bindings/route/r", &json!({"groups": []})).await.expect(403);
        probe.post("/users/x/erase", &json!({})).await.expect(403);
    }
    let acme = Client::new(&format!("{root}/acme"), Some(acme_admin));
    let users = acme.get("/users").await.expect(200);
    assert_eq!(users.body["items"][0]["userName"], "ceo@acme.test");
    assert_eq!(users.body["items"].as_array().unwrap().len(), 1);
    // Operators issue: one date format everywhere, RFC 3339 or a plain date, as in the CLI.
    let before = acme.get("/users?at=2020-01-01").await.expect(200);
    assert_eq!(before.body["items"].as_array().unwrap().len(), 0);
    acme.get("/audit/leavers?since=2020-01-01").await.expect(200);
    acme.get("/users?at=yesterday").await.expect(400);
    // A tenant with a token but no log yet.
    service.api("hooli").get("/users").await.expect(404);
    let document = Client::new(&format!("{}/api/v1", service.origin), None)
        .get("/openapi.json")
        .await
        .expect(200);
    assert_eq!(document.body["openapi"], "3.1.0");
    // What the server serves is the committed document (which a unit test keeps equal to what
    // the code generates): a client generated from the file in the repository fits the server.
    let committed: Value = serde_json::from_str(include_str!("../src/api/openapi.json")).unwrap();
    assert!(
        document.body == committed,
        "GET /api/v1/openapi.json differs from src/api/openapi.json"
    );
    service.stop().await;
}

/// Hardening issue, must-fix 9: a change stream went on after its token was revoked, for as
/// long as the consumer stayed connected. It must close within a second (the design bound is
/// 0.75 s: a check every 250 ms of an authenticator that reloads every 500 ms; the test allows
/// for a loaded machine).
#[tokio::test]
async fn a_change_stream_closes_once_its_token_is_revoked() {
    let service = Service::start().await;
    let scim = service.scim("acme");
    user(&scim, "first@acme.test").await;
    let acme = TenantId::new("acme").unwrap();
    let (kept, kept_secret) = service
        .tokens
        .create(&acme, "kept-consumer", idpsync::tokens::TokenKind::Admin)
        .unwrap();
    let (_, revoked_secret) = service
        .tokens
        .create(&acme, "revoked-consumer", idpsync::tokens::TokenKind::Admin)
        .unwrap();
    let url = format!("{}/api/v1/tenants/acme/changes?from=1", service.origin);
    let mut kept_stream = SseClient::connect(&url, &kept_secret, None).await;
    let mut revoked_stream = SseClient::connect(&url, &revoked_secret, None).await;
    assert_eq!(kept_stream.next().await.id, "1");
    assert_eq!(revoked_stream.next().await.id, "1");
    assert!(
        !revoked_stream.ends_within(Duration::from_millis(1_500)).await,
        "a stream whose token is valid stays open"
    );

    service.tokens.revoke("revoked-consumer").unwrap();
    let revoked_at = std::time::Instant::now();
    assert!(
        revoked_stream.ends_within(Duration::from_millis(1_500)).await,
        "the stream of a revoked token must end within a second (and a half, for a loaded machine)"
    );
    eprintln!("the stream closed {:?} after the revocation", revoked_at.elapsed());

    // Other tokens' streams go on.
    user(&scim, "second@acme.test").await;
    let mut seen = Vec::new();
    while let Some(item) = kept_stream.next_within(Duration::from_secs(2)).await {
        seen.push(item.event);
    }
    assert!(
        seen.contains(&"event".to_owned()),
        "the kept token's stream still delivers: {seen:?}"
    );
    assert!(kept.is_active());
    service.stop().await;
}

/// An access change as (user, resource, group, direction).
type AccessLine = (String, String, String, String);
/// A stream item as (SSE id, event name, the access change of an access item).
type StreamLine = (String, String, Option<AccessLine>);

/// Splits an access item's data into (user, resource, group, direction).
fn access_of(item: &SseItem) -> AccessLine {
    let data = &item.data;
    (
        data["user"]["id"].as_str().unwrap().to_owned(),
        format!(
            "{}/{}",
            data["resource"]["kind"].as_str().unwrap(),
            data["resource"]["id"].as_str().unwrap()
        ),
        data["group"]["id"].as_str().unwrap().to_owned(),
        data["direction"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn a_leaver_through_scim_is_streamed_and_audited() {
    let service = Service::start().await;
    let scim = service.scim("acme");
    let api = service.api("acme");
    let alice = user(&scim, "alice@acme.test").await;
    let eng = group(&scim, "eng", &[&alice]).await;
    let vpn = group(&scim, "vpn", &[]).await;
    // Nested: alice reaches `vpn`'s route through `eng`.
    scim.patch(
        &format!("/Groups/{vpn}"),
        &json!({"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members", "value": [{"value": eng}]}]}),
    )
    .await
    .expect(200);
    api.put("/bindings/policy/p1", &json!({"sources": [eng], "destinations": [eng]}))
        .await
        .expect(200);
    api.put("/bindings/route/office", &json!({"groups": [vpn]}))
        .await
        .expect(200);
    let since = idpsync::storage::Timestamp::now().to_rfc3339();

    let token = service.admin_token("acme");
    let mut stream = SseClient::connect(&format!("{}/api/v1/tenants/acme/changes", service.origin), &token, None).await;
    let patched = set_active(&scim, &alice, false).await;
    let request_id = patched.header("x-request-id").unwrap().to_owned();

    let event = stream.next().await;
    assert_eq!(event.event, "event");
    assert_eq!(event.data["event"]["type"], "user.deactivated");
    assert_eq!(event.data["source"]["door"], "scim");
    assert_eq!(event.data["cause"]["request"], request_id);
    let seq = event.id.clone();
    let mut revoked = Vec::new();
    for index in 1..=3 {
        let item = stream.next().await;
        assert_eq!(item.event, "access.revoked");
        assert_eq!(item.id, format!("{seq}.{index}"));
        assert_eq!(item.data["user"]["userName"], "alice@acme.test");
        revoked.push(access_of(&item));
    }
    revoked.sort();
    let expected = vec![
        (alice.clone(), "policy/p1".to_owned(), eng.clone(), "revoked".to_owned()),
        (alice.clone(), "policy/p1".to_owned(), eng.clone(), "revoked".to_owned()),
        (
            alice.clone(),
            "route/office".to_owned(),
            vpn.clone(),
            "revoked".to_owned(),
        ),
    ];
    assert_eq!(
        revoked, expected,
        "source and destination of p1 through eng, the route through vpn"
    );

    // The audit names the door, the request and the token, and proves every step.
    let audit = api.get(&format!("/users/{alice}/audit")).await.expect(200).body;
    let leave = &audit["leave"];
    assert_eq!(leave["kind"], "deactivated");
    assert_eq!(leave["door"]["door"], "scim");
    assert_eq!(leave["door"]["request"], request_id);
    assert_eq!(leave["door"]["tokenName"], "test");
    assert_eq!(leave["seq"].to_string(), seq);
    let tenant = service.engine.require_tenant(&TenantId::new("acme").unwrap()).unwrap();
    let record = &service
        .engine
        .store()
        .read(tenant.id(), Seq(seq.parse().unwrap()), 1)
        .await
        .unwrap()[0];
    assert_eq!(leave["chain"], record.chain.to_hex());
    let steps = audit["steps"].as_array().unwrap();
    let revocations: Vec<&Value> = steps
        .iter()
        .filter(|step| step["kind"] == "access" && step["direction"] == "revoked")
        .collect();
    assert_eq!(revocations.len(), 3);
    for step in &revocations {
        assert_eq!(step["seq"].to_string(), seq);
        assert_eq!(step["chain"], record.chain.to_hex());
        assert!(step["latencyUs"].as_i64().unwrap() >= 0);
    }
    assert!(
        steps
            .iter()
            .any(|step| step["kind"] == "joined" && step["groupName"] == "eng")
    );
    assert_eq!(audit["standing"], "inactive");
    assert!(audit["stillHolds"].as_array().unwrap().is_empty());
    assert!(audit["timeToRevokeUs"].as_i64().unwrap() >= 0);

    let page = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/tenants/acme/users/alice@acme.test/audit?format=html",
            service.origin
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let html = page.text().await.unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("alice@acme.test") && html.contains("access REVOKED"));
    assert!(
        !html.contains("<script") && !html.contains("http://") && !html.contains("https://"),
        "self-contained"
    );
    let text = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/tenants/acme/users/{alice}/audit?format=text",
            service.origin
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("LEFT: deactivated") && text.contains(&request_id),
        "{text}"
    );

    let report = api.get(&format!("/audit/leavers?since={since}")).await.expect(200).body;
    assert_eq!(report["count"], 1);
    assert_eq!(report["stillHolding"], 0);
    assert_eq!(report["leavers"][0]["revoked"], 3);
    // Back again: a leaver of the period who holds access now is flagged.
    set_active(&scim, &alice, true).await;
    let report = api.get(&format!("/audit/leavers?since={since}")).await.expect(200).body;
    assert_eq!(report["stillHolding"], 1);
    assert_eq!(report["leavers"][0]["stillHolds"].as_array().unwrap().len(), 3);
    api.get("/audit/leavers?since=yesterday").await.expect(400);
    service.stop().await;
}

#[tokio::test]
async fn consumers_killed_and_resumed_mid_stream_miss_nothing_and_repeat_nothing() {
    let service = Service::start().await;
    let scim = service.scim("acme");
    let api = service.api("acme");
    let mut users = Vec::new();
    for n in 0..12 {
        users.push(user(&scim, &format!("u{n}@acme.test")).await);
    }
    let a = group(&scim, "a", &[]).await;
    let b = group(&scim, "b", &[]).await;
    api.put("/bindings/policy/p", &json!({"sources": [a], "destinations": [b]}))
        .await
        .expect(200);
    api.put("/bindings/setup-key/k", &json!({"groups": [a, b]}))
        .await
        .expect(200);

    // A writer keeps changing memberships and activity while consumers come and go.
    let writer = {
        let scim = scim.clone();
        let users = users.clone();
        let (a, b) = (a.clone(), b.clone());
        tokio::spawn(async move {
            for round in 0..30 {
                let members: Vec<Value> = users
                    .iter()
                    .skip(round % 3)
                    .step_by(2)
                    .map(|id| json!({"value": id}))
                    .collect();
                let target = if round % 2 == 0 { &a } else { &b };
                scim.patch(
                    &format!("/Groups/{target}"),
                    &json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "members", "value": members}]}),
                )
                .await
                .expect(200);
                set_active(&scim, &users[round % users.len()], round % 4 == 0).await;
            }
        })
    };

    let token = service.admin_token("acme");
    let url = format!("{}/api/v1/tenants/acme/changes?from=1", service.origin);
    let mut received: Vec<SseItem> = Vec::new();
    let mut resumed_inside_a_record = false;
    let mut take = 3;
    let mut writer = Some(writer);
    loop {
        let last = received.last().map(|item| item.id.clone());
        resumed_inside_a_record |= last.as_deref().is_some_and(|id| id.contains('.'));
        let mut client = SseClient::connect(&url, &token, last.as_deref()).await;
        let mut got = 0;
        while got < take {
            match client.next_within(Duration::from_millis(700)).await {
                Some(item) => {
                    received.push(item);
                    got += 1;
                }
                None => break,
            }
        }
        drop(client); // killed mid-stream
        take = take % 7 + 2;
        if got == 0 {
            match writer.take() {
                Some(task) => task.await.unwrap(),
                None => break,
            }
        }
    }
    assert!(
        resumed_inside_a_record,
        "some resume started between two access changes of one record"
    );

    // What the log says: every record, then its access changes, re-projected by the engine.
    let tenant = service.engine.require_tenant(&TenantId::new("acme").unwrap()).unwrap();
    let head = tenant.state().seq();
    let mut replay = tenant.subscribe(Seq(1));
    let mut expected: Vec<StreamLine> = Vec::new();
    loop {
        let applied = replay.next().await.unwrap();
        expected.push((applied.event.seq.to_string(), "event".to_owned(), None));
        for (offset, change) in applied.access.iter().enumerate() {
            let direction = format!("{:?}", change.direction).to_lowercase();
            expected.push((
                format!("{}.{}", applied.event.seq, offset + 1),
                format!("access.{direction}"),
                Some((
                    change.user.to_string(),
                    change.resource.to_string(),
                    change.via.to_string(),
                    direction,
                )),
            ));
        }
        if applied.event.seq == head {
            break;
        }
    }
    let got: Vec<StreamLine> = received
        .iter()
        .map(|item| {
            let access = (item.event != "event").then(|| access_of(item));
            (item.id.clone(), item.event.clone(), access)
        })
        .collect();
    assert!(expected.len() > 100, "the scenario produced {} items", expected.len());
    assert_eq!(got.len(), expected.len(), "nothing missed, nothing twice");
    assert_eq!(got, expected);
    let event_seqs: Vec<u64> = received
        .iter()
        .filter(|item| item.event == "event")
        .map(|item| item.data["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(event_seqs, (1..=head.0).collect::<Vec<_>>());
    // Bad positions are refused.
    let bad = Client::new(&format!("{}/api/v1/tenants/acme", service.origin), Some(token.clone()));
    bad.get(&format!("/changes?from={}", head.0 + 5)).await.expect(400);
    bad.get("/changes?from=0").await.expect(400);
    bad.with_header("last-event-id", "banana")
        .get("/changes")
        .await
        .expect(400);
    service.stop().await;
}

#[tokio::test]
async fn the_past_from_the_index_agrees_with_the_state_of_the_time() {
    let service = Service::start().await;
    let scim = service.scim("acme");
    let api = service.api("acme");
    let alice = user(&scim, "alice@acme.test").await;
    let bob = user(&scim, "bob@acme.test").await;
    let carol = user(&scim, "carol@acme.test").await;
    let inner = group(&scim, "inner", &[&carol]).await;
    let eng = group(&scim, "eng", &[&alice, &bob, &inner]).await;
    let then = head(&api).await;
    let moment = api.get("").await.body["recordedAt"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(5)).await;
    // Afterwards: bob renamed and deactivated, alice deleted, carol leaves inner, eng renamed.
    scim.patch(
        &format!("/Users/{bob}"),
        &json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "userName", "value": "robert@acme.test"}]}),
    )
    .await
    .expect(200);
    set_active(&scim, &bob, false).await;
    scim.delete(&format!("/Users/{alice}")).await.expect(204);
    scim.patch(
        &format!("/Groups/{inner}"),
        &json!({"schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": format!("members[value eq \"{carol}\"]")}]}),
    )
    .await
    .expect(200);
    scim.patch(
        &format!("/Groups/{eng}"),
        &json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "displayName", "value": "engineering"}]}),
    )
    .await
    .expect(200);

    let tenant = service.engine.require_tenant(&TenantId::new("acme").unwrap()).unwrap();
    let past = tenant.state_at(Seq(then)).await.unwrap();
    for effective in [false, true] {
        let expected: Vec<Value> = if effective {
            idpsync::engine::access::effective_users(&past, eng.parse().unwrap())
                .into_iter()
                .map(|id| {
                    serde_json::to_value(idpsync::api::wire::MemberRow::of(
                        &past,
                        idpsync::engine::ids::Member::User(id),
                    ))
                    .unwrap()
                })
                .collect()
        } else {
            past.direct_members(eng.parse().unwrap())
                .map(|member| serde_json::to_value(idpsync::api::wire::MemberRow::of(&past, member)).unwrap())
                .collect()
        };
        for query in [format!("seq={then}"), format!("at={moment}")] {
            let answer = api
                .get(&format!("/groups/{eng}/members?{query}&effective={effective}"))
                .await
                .expect(200);
            assert_eq!(answer.body["items"], json!(expected), "{query} effective={effective}");
            assert_eq!(answer.body["seq"], then);
        }
    }
    let names: Vec<&str> = vec!["alice@acme.test", "bob@acme.test"];
    let direct = api.get(&format!("/groups/{eng}/members?seq={then}")).await.expect(200);
    for (row, name) in direct.body["items"].as_array().unwrap().iter().zip(names) {
        assert_eq!(row["userName"], name);
        assert_eq!(row["active"], true);
    }
    // Paging walks the same list.
    let first = api
        .get(&format!("/groups/{eng}/members?seq={then}&limit=2"))
        .await
        .expect(200);
    let cursor = first.body["next"].as_str().unwrap().to_owned();
    let rest = api
        .get(&format!("/groups/{eng}/members?seq={then}&limit=2&after={cursor}"))
        .await
        .expect(200);
    assert_eq!(rest.body["items"][0]["displayName"], "inner");
    assert!(rest.body.get("next").is_none());
    let old_group = api.get(&format!("/groups/{eng}?seq={then}")).await.expect(200);
    assert_eq!(old_group.body["displayName"], "eng");
    assert_eq!(old_group.body["members"], 3);
    let users_then = api.get(&format!("/users?seq={then}")).await.expect(200);
    assert_eq!(users_then.body["items"].as_array().unwrap().len(), 3);
    let bob_then = api.get(&format!("/users/{bob}?seq={then}")).await.expect(200);
    assert_eq!(bob_then.body["userName"], "bob@acme.test");
    assert_eq!(bob_then.body["groups"][0]["displayName"], "eng");
    // Now.
    let now = api.get(&format!("/groups/{eng}/members")).await.expect(200);
    assert_eq!(now.body["items"].as_array().unwrap().len(), 2);
    api.get(&format!("/groups/{eng}/members?seq={}", then + 1000))
        .await
        .expect(400);
    api.get(&format!("/groups/{eng}/members?seq=1&at={moment}"))
        .await
        .expect(400);
    api.get("/users?at=last-tuesday").await.expect(400);
    api.get("/users?limit=0").await.expect(400);

    // Intervals and timelines.
    let intervals = api
        .get(&format!("/groups/{inner}/members/{carol}/intervals"))
        .await
        .expect(200);
    let spans = intervals.body["items"].as_array().unwrap();
    assert_eq!(spans.len(), 1);
    assert!(spans[0]["until"]["seq"].as_u64().unwrap() > then);
    let timeline = api.get(&format!("/users/{alice}/timeline")).await.expect(200);
    let kinds: Vec<&str> = timeline.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["event"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["user.provisioned", "members.added", "user.deleted"]);
    assert_eq!(timeline.body["items"][0]["event"]["userName"], "alice@acme.test");
    service.stop().await;
}

#[tokio::test]
async fn erasure_through_the_api_reads_as_erased_everywhere() {
    let service = Service::start().await;
    let scim = service.scim("acme");
    let api = service.api("acme");
    let dana = user(&scim, "dana@acme.test").await;
    group(&scim, "eng", &[&dana]).await;
    let erased = api.post(&format!("/users/{dana}/erase"), &json!({})).await.expect(200);
    assert_eq!(erased.body["changed"], true);
    let again = api.post(&format!("/users/{dana}/erase"), &json!({})).await.expect(200);
    assert_eq!(again.body["changed"], false);
    let detail = api.get(&format!("/users/{dana}")).await.expect(200);
    assert_eq!(detail.body["userName"], format!("erased-{dana}"));
    assert_eq!(detail.body["erased"], true);
    let timeline = api.get(&format!("/users/{dana}/timeline")).await.expect(200);
    assert_eq!(timeline.body["items"][0]["event"]["userName"], Value::Null);
    let audit = api.get(&format!("/users/{dana}/audit")).await.expect(200);
    assert_eq!(audit.body["erased"], true);
    assert!(!audit.body.to_string().contains("dana@acme.test"));
    let scim_view = scim.get(&format!("/Users/{dana}")).await.expect(200);
    assert!(!scim_view.body.to_string().contains("dana@acme.test"));
    api.post("/users/nobody@acme.test/erase", &json!({})).await.expect(404);
    service.stop().await;
}

/// Hardening issue, must-fix 3: the change stream renders each record once and keeps what it
/// rendered for the clients that follow; an erasure left the erased user's userName and
/// externalId in that cache, and a client replaying from the start after the erasure got them.
#[tokio::test]
async fn the_change_stream_forgets_what_it_rendered_of_a_user_once_erased() {
    let service = Service::start().await;
    let scim = service.scim("acme");
    let api = service.api("acme");
    let token = service.admin_token("acme");
    let erin = scim
        .post(
            "/Users",
            &json!({"userName": "erin@acme.test", "externalId": "erin-ext-42", "active": true}),
        )
        .await
        .expect(201)
        .id();
    let url = format!("{}/api/v1/tenants/acme/changes?from=1", service.origin);
    let mut before = SseClient::connect(&url, &token, None).await;
    let provisioned = before.next().await;
    assert_eq!(provisioned.data["event"]["userName"], "erin@acme.test");
    assert_eq!(provisioned.data["event"]["externalId"], "erin-ext-42");

    api.post(&format!("/users/{erin}/erase"), &json!({})).await.expect(200);
    let mut after = SseClient::connect(&url, &token, None).await;
    for _ in 0..2 {
        let item = after.next().await;
        let text = item.data.to_string();
        assert!(
            !text.contains("erin@acme.test") && !text.contains("erin-ext-42"),
            "{} {text}",
            item.id
        );
    }
    service.stop().await;
}

#[tokio::test]
async fn metrics_count_requests_appends_and_streams() {
    let service = Service::start().await;
    let scim = service.scim("acme");
    let api = service.api("acme");
    user(&scim, "m@acme.test").await;
    scim.get("/Users/00000000-0000-7000-8000-000000000000")
        .await
        .expect(404);
    api.get("/users").await.expect(200);
    let text = reqwest::get(format!("{}/metrics", service.origin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: BTreeMap<&str, ()> = text.lines().map(|line| (line, ())).collect();
    let has = |needle: &str| lines.keys().any(|line| line.contains(needle));
    assert!(
        has("idpsync_scim_requests_total{route=\"/Users\",method=\"POST\",status=\"201\"}"),
        "{text}"
    );
    assert!(
        has("idpsync_scim_requests_total{route=\"/Users/{id}\",method=\"GET\",status=\"404\"}"),
        "{text}"
    );
    assert!(
        has("idpsync_api_requests_total{route=\"/api/v1/tenants/{tenant}/users\",method=\"GET\",status=\"200\"}"),
        "{text}"
    );
    assert!(has("idpsync_events_appended_total{tenant=\"acme\"}"), "{text}");
    assert!(has("idpsync_build_info{version=\""), "{text}");
    assert!(has("idpsync_append_seconds_bucket"), "{text}");
    assert!(has("idpsync_scim_request_seconds_bucket"), "{text}");
    // The recorder is the process's: other tests' tenants named acme move the value too.
    assert!(has("idpsync_log_head_seq{tenant=\"acme\"} "), "{text}");
    // Operations issue: every family the service exports says what it is.
    let families: BTreeMap<&str, ()> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split(' ').next())
        .map(|name| (name, ()))
        .collect();
    assert!(families.len() >= 8, "{text}");
    for family in families.keys() {
        assert!(has(&format!("# HELP {family} ")), "no # HELP for {family}");
    }
    service.stop().await;
}

/// Hardening issue, must-fix 8: the method label was the request's method as sent, so a client
/// inventing methods grew the metrics without bound; every label now has a fixed set of values.
#[tokio::test]
async fn metrics_labels_stay_bounded_whatever_methods_and_paths_clients_send() {
    let service = Service::start().await;
    let http = reqwest::Client::new();
    for n in 0..20 {
        let method = reqwest::Method::from_bytes(format!("INVENTED{n}").as_bytes()).unwrap();
        for path in [
            format!("/scim/v2/Users/{n}"),
            format!("/scim/v2/nowhere{n}/x"),
            format!("/api/v1/tenants/acme/nowhere{n}"),
        ] {
            http.request(method.clone(), format!("{}{path}", service.origin))
                .send()
                .await
                .unwrap();
        }
    }
    let text = reqwest::get(format!("{}/metrics", service.origin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("INVENTED"), "{text}");
    assert!(!text.contains("nowhere"), "{text}");
    assert!(
        text.contains("idpsync_scim_requests_total{route=\"/Users/{id}\",method=\"other\""),
        "{text}"
    );
    service.stop().await;
}
