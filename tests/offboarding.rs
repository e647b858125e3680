//! The offboarding loop through the real HTTP server: leavers' revocations read from the change
//! stream and acknowledged by the consumer, the audit showing each leaver's chain up to the
//! acknowledgement, and a revocation left unacknowledged past the threshold alerting in
//! `/healthz` (counts only), the leavers' report and `/metrics`.

mod common;
mod support;

use std::time::Duration;

use common::Client;
use idpsync::engine::TenantSettings;
use serde_json::{Value, json};
use support::{PATCH_OP, Service, SseClient};

async fn user(scim: &Client, name: &str) -> String {
    scim.post("/Users", &json!({"userName": name, "active": true}))
        .await
        .expect(201)
        .id()
}

async fn deactivate(scim: &Client, user: &str) {
    scim.patch(
        &format!("/Users/{user}"),
        &json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": false}]}),
    )
    .await
    .expect(200);
}

/// The ids of the `access.revoked` items of the next record on `stream`.
async fn revoked_items(stream: &mut SseClient) -> Vec<String> {
    let event = stream.next().await;
    assert_eq!(event.event, "event");
    let mut ids = Vec::new();
    while let Some(item) = stream.next_within(Duration::from_millis(500)).await {
        if item.event == "event" {
            panic!("one record at a time: {item:?}");
        }
        assert_eq!(item.event, "access.revoked", "{item:?}");
        ids.push(item.id);
    }
    ids
}

#[tokio::test]
async fn revocations_acknowledged_close_the_chain_and_unacknowledged_ones_alert() {
    let settings = TenantSettings {
        revocation_ack_within: Duration::from_millis(300),
        ..TenantSettings::default()
    };
    let service = Service::start_with_settings(settings).await;
    let scim = service.scim("acme");
    let api = service.api("acme");
    let alice = user(&scim, "alice@acme.test").await;
    let bob = user(&scim, "bob@acme.test").await;
    let members: Vec<Value> = [&alice, &bob].iter().map(|id| json!({"value": id})).collect();
    let eng = scim
        .post("/Groups", &json!({"displayName": "eng", "members": members}))
        .await
        .expect(201)
        .id();
    let bound = api
        .put("/bindings/route/office", &json!({"groups": [eng]}))
        .await
        .expect(200)
        .body;
    let since = idpsync::storage::Timestamp::now().to_rfc3339();

    // A grant is not a revocation; nonsense and unknown ids are refused; nothing is written.
    let grant = format!("{}.1", bound["seq"]);
    let tenant = service
        .engine
        .require_tenant(&idpsync::storage::TenantId::new("acme").unwrap())
        .unwrap();
    let head = tenant.state().seq();
    let refused = api.post("/changes/ack", &json!({"id": grant})).await.expect(422);
    assert_eq!(refused.body["error"]["code"], "not_a_revocation", "{:?}", refused.body);
    api.post("/changes/ack", &json!({"id": "soon"})).await.expect(400);
    api.post("/changes/ack", &json!({"id": "99999.1"})).await.expect(404);
    api.post("/changes/ack", &json!({"id": format!("{}.0", bound["seq"])}))
        .await
        .expect(404);
    api.post("/changes/ack", &json!({"id": "1.1", "extra": true}))
        .await
        .expect(400);
    assert_eq!(tenant.state().seq(), head, "refusals write nothing");

    let token = service.admin_token("acme");
    let mut stream = SseClient::connect(&format!("{}/api/v1/tenants/acme/changes", service.origin), &token, None).await;
    deactivate(&scim, &alice).await;
    let alice_revoked = revoked_items(&mut stream).await;
    assert_eq!(alice_revoked.len(), 1);
    deactivate(&scim, &bob).await;
    let bob_revoked = revoked_items(&mut stream).await;
    assert_eq!(bob_revoked.len(), 1);

    // The consumer applies alice's revocation and says so; bob's it never acknowledges.
    let acked = api
        .post("/changes/ack", &json!({"id": alice_revoked[0]}))
        .await
        .expect(200)
        .body;
    assert_eq!(
        (acked["user"].as_str(), &acked["recorded"]),
        (Some(alice.as_str()), &json!(true))
    );
    let again = api
        .post("/changes/ack", &json!({"id": alice_revoked[0]}))
        .await
        .expect(200)
        .body;
    assert_eq!(again["recorded"], false, "acknowledged once, recorded once");
    // The acknowledgement is itself on the stream, as an event of the log.
    let recorded = stream.next().await;
    assert_eq!(recorded.data["event"]["type"], "access.revocation_acknowledged");
    assert_eq!(recorded.data["event"]["change"], alice_revoked[0]);

    let audit = api.get(&format!("/users/{alice}/audit")).await.expect(200).body;
    let steps = audit["steps"].as_array().unwrap();
    let acknowledgement = steps
        .iter()
        .find(|step| step["kind"] == "acknowledged")
        .expect("an acknowledgement step");
    assert_eq!(acknowledgement["door"]["door"], "admin");
    assert!(acknowledgement["latencyUs"].as_i64().unwrap() >= 0);
    let chain = &audit["offboarding"];
    assert_eq!(
        (chain["revocations"].as_u64(), chain["acknowledged"].as_u64()),
        (Some(1), Some(1))
    );
    for step in ["toRecordUs", "toRevokeUs", "toAcknowledgeUs", "totalUs"] {
        assert!(chain[step].as_i64().unwrap() >= 0, "{step}: {chain}");
    }
    // A SCIM request does not say when the IdP made the change: the chain starts when it
    // reached IdP-Sync.
    assert_eq!(chain["idpChangedAt"], Value::Null, "{chain}");
    assert_eq!(chain["toReceiveUs"], Value::Null, "{chain}");
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
    assert!(text.contains("→ acknowledged") && text.contains("closed in"), "{text}");
    let bob_audit = api.get(&format!("/users/{bob}/audit")).await.expect(200).body;
    assert_eq!(bob_audit["offboarding"]["acknowledged"], 0);
    assert_eq!(bob_audit["offboarding"]["acknowledgedAt"], Value::Null);

    // Past the threshold, bob's revocation alerts: counts only, no tenant or user named.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let health = reqwest::get(format!("{}/healthz", service.origin)).await.unwrap();
    assert_eq!(health.status(), 200, "an alert, not a reason to stop taking writes");
    let health = health.text().await.unwrap();
    let body: Value = serde_json::from_str(&health).unwrap();
    assert_eq!(body["alerts"]["overdueRevocations"], 1, "{health}");
    assert!(!health.contains("acme") && !health.contains("bob"), "{health}");

    let report = api.get(&format!("/audit/leavers?since={since}")).await.expect(200).body;
    let waiting = report["unacknowledged"].as_array().unwrap();
    assert_eq!(waiting.len(), 1, "{report}");
    assert_eq!(waiting[0]["user"], bob);
    let slowest = report["slowest"].as_array().unwrap();
    assert_eq!(slowest.len(), 1);
    assert_eq!(slowest[0]["user"], alice);

    let metrics = reqwest::get(format!("{}/metrics", service.origin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("idpsync_revocation_ack_seconds_count{tenant=\"acme\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("idpsync_overdue_revocations{tenant=\"acme\"} 1"));

    // Once bob's revocation is acknowledged too, the alert is gone.
    api.post("/changes/ack", &json!({"id": bob_revoked[0]}))
        .await
        .expect(200);
    let body: Value = reqwest::get(format!("{}/healthz", service.origin))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["alerts"], Value::Null, "{body}");
    service.stop().await;
}
