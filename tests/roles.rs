//! Roles from groups through the real `idpsync` binary: role bindings set through the
//! management API, SCIM putting a user in the admins' group and taking them out again, each
//! change a `role.changed` item on the change stream, the user's audit and the period report
//! saying when and why, "who was an admin then" answered by the API and by `idpsync query roles
//! --at`, the last Owner refused over SCIM, and the `idpsync role` commands on the stopped
//! service's log.

mod binary;
mod common;
mod support;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use binary::{Serving, run};
use idpsync::storage::Timestamp;
use serde_json::{Value, json};
use support::{PATCH_OP, SseClient, SseItem};

fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn token(data_dir: &Path, admin: bool) -> String {
    let mut args = vec!["token", "create", "--name", "test"];
    if admin {
        args.push("--admin");
    }
    ok(run(data_dir, &args)).lines().last().unwrap().trim().to_owned()
}

async fn send(method: reqwest::Method, url: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn expect(status: u16, method: reqwest::Method, url: &str, token: &str, body: Option<Value>) -> Value {
    let (got, answer) = send(method, url, token, body).await;
    assert_eq!(got, status, "{url}: {answer}");
    answer
}

fn add_member(user: &str) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members", "value": [{"value": user}]}]})
}

fn remove_member(user: &str) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": format!("members[value eq \"{user}\"]")}]})
}

/// The `role.changed` items of the next record on `stream`.
async fn role_items(stream: &mut SseClient) -> Vec<SseItem> {
    let event = stream.next().await;
    assert_eq!(event.event, "event", "{event:?}");
    let mut items = Vec::new();
    while let Some(item) = stream.next_within(Duration::from_millis(500)).await {
        assert_ne!(item.event, "event", "one record at a time: {item:?}");
        if item.event == "role.changed" {
            items.push(item);
        }
    }
    items
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_follow_groups_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let scim_token = token(&data, false);
    let admin = token(&data, true);
    let server = Serving::start(&data, None);
    let api = format!("{}/api/v1/tenants/default", server.origin);
    let scim = format!("{}/scim/v2", server.origin);
    use reqwest::Method;

    let mut ids = Vec::new();
    for name in ["alice@acme.test", "bob@acme.test"] {
        let user = expect(
            201,
            Method::POST,
            &format!("{scim}/Users"),
            &scim_token,
            Some(json!({"userName": name, "active": true})),
        )
        .await;
        ids.push(user["id"].as_str().unwrap().to_owned());
    }
    let (alice, bob) = (ids[0].clone(), ids[1].clone());
    let group = async |name: &str, members: Vec<Value>| {
        let created = expect(
            201,
            Method::POST,
            &format!("{scim}/Groups"),
            &scim_token,
            Some(json!({"displayName": name, "members": members})),
        )
        .await;
        created["id"].as_str().unwrap().to_owned()
    };
    let owners = group("owners", vec![json!({"value": bob})]).await;
    let staff = group("staff", vec![]).await;
    // Nested: whoever is in staff is in admins.
    let admins = group("admins", vec![json!({"value": staff})]).await;

    // Role bindings through the management API; a bad one is refused and writes nothing.
    let bound = expect(
        200,
        Method::PUT,
        &format!("{api}/bindings/role/owners"),
        &admin,
        Some(json!({"role": "owner", "priority": 100, "groups": [owners]})),
    )
    .await;
    assert_eq!(bound["role"], "Owner", "built-in names are written as listed: {bound}");
    expect(
        200,
        Method::PUT,
        &format!("{api}/bindings/role/admins"),
        &admin,
        Some(json!({"role": "Admin", "priority": 10, "groups": [admins]})),
    )
    .await;
    let refused = expect(
        422,
        Method::PUT,
        &format!("{api}/bindings/role/default"),
        &admin,
        Some(json!({"role": "Admin", "groups": [admins]})),
    )
    .await;
    assert_eq!(refused["error"]["code"], "invalid", "{refused}");
    let listed = expect(200, Method::GET, &format!("{api}/bindings"), &admin, None).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 2, "{listed}");

    let mut stream = SseClient::connect(&format!("{api}/changes"), &admin, None).await;
    let before = Timestamp::now().to_rfc3339();
    tokio::time::sleep(Duration::from_millis(20)).await;

    // SCIM puts alice in staff, which is in admins: alice becomes an Admin.
    expect(
        200,
        Method::PATCH,
        &format!("{scim}/Groups/{staff}"),
        &scim_token,
        Some(add_member(&alice)),
    )
    .await;
    let gained = role_items(&mut stream).await;
    assert_eq!(gained.len(), 1, "{gained:?}");
    let item = &gained[0].data;
    assert_eq!(item["user"]["id"], alice.as_str());
    assert_eq!(
        (item["oldRole"].as_str(), item["newRole"].as_str()),
        (Some("User"), Some("Admin"))
    );
    assert_eq!(
        item["group"]["id"],
        admins.as_str(),
        "the winning binding's group: {item}"
    );
    assert_eq!(item["binding"], "admins");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let while_admin = Timestamp::now().to_rfc3339();
    tokio::time::sleep(Duration::from_millis(20)).await;

    // And out again.
    expect(
        200,
        Method::PATCH,
        &format!("{scim}/Groups/{staff}"),
        &scim_token,
        Some(remove_member(&alice)),
    )
    .await;
    let lost = role_items(&mut stream).await;
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(
        (lost[0].data["oldRole"].as_str(), lost[0].data["newRole"].as_str()),
        (Some("Admin"), Some("User"))
    );
    assert_eq!(lost[0].data["oldGroup"]["id"], admins.as_str());

    // SCIM may not remove the last Owner: 400 mutability, nothing written.
    let head = expect(200, Method::GET, &api, &admin, None).await["seq"].clone();
    let (status, error) = send(
        Method::PATCH,
        &format!("{scim}/Groups/{owners}"),
        &scim_token,
        Some(remove_member(&bob)),
    )
    .await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["scimType"], "mutability");
    assert!(error["detail"].as_str().unwrap().contains("last Owner"), "{error}");
    assert_eq!(expect(200, Method::GET, &api, &admin, None).await["seq"], head);

    // The audit says when alice gained and lost the role, and why.
    let audit = expect(200, Method::GET, &format!("{api}/users/{alice}/audit"), &admin, None).await;
    let steps: Vec<&Value> = audit["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|step| step["kind"] == "role")
        .collect();
    assert_eq!(steps.len(), 3, "User on roles turned on, Admin, User again: {audit}");
    assert_eq!(
        (steps[1]["newRole"].as_str(), steps[1]["viaName"].as_str()),
        (Some("Admin"), Some("admins"))
    );
    assert_eq!(steps[1]["door"]["door"], "scim");
    assert_eq!(
        (steps[2]["newRole"].as_str(), steps[2]["oldViaName"].as_str()),
        (Some("User"), Some("admins"))
    );
    let text = reqwest::Client::new()
        .get(format!("{api}/users/{alice}/audit?format=text"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("role User -> Admin via group admins (role binding admins)"),
        "{text}"
    );

    // The period report lists the admin gain and loss.
    let report = expect(
        200,
        Method::GET,
        &format!("{api}/audit/leavers?since={before}"),
        &admin,
        None,
    )
    .await;
    let changes = report["adminChanges"].as_array().unwrap();
    assert_eq!(changes.len(), 2, "{report}");
    assert_eq!(
        (changes[0]["gained"].as_bool(), changes[0]["group"].as_str()),
        (Some(true), Some("admins"))
    );
    assert_eq!(changes[1]["gained"], false);

    // Who was an admin then, and who is now: the API and the CLI (through the running service).
    let then = expect(
        200,
        Method::GET,
        &format!("{api}/roles?admins=true&at={}", urlencode(&while_admin)),
        &admin,
        None,
    )
    .await;
    let named = |answer: &Value| -> Vec<(String, String)> {
        answer["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| {
                (
                    item["user"]["userName"].as_str().unwrap().to_owned(),
                    item["role"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(
        named(&then),
        vec![
            ("alice@acme.test".into(), "Admin".into()),
            ("bob@acme.test".into(), "Owner".into())
        ]
    );
    let now = expect(200, Method::GET, &format!("{api}/roles?admins=true"), &admin, None).await;
    assert_eq!(named(&now), vec![("bob@acme.test".into(), "Owner".into())]);
    let cli: Vec<Value> = serde_json::from_str(&ok(run(
        &data,
        &["query", "roles", "--at", &while_admin, "--admins", "--json"],
    )))
    .unwrap();
    let cli: Vec<(&str, &str)> = cli
        .iter()
        .map(|row| (row["userName"].as_str().unwrap(), row["role"].as_str().unwrap()))
        .collect();
    assert_eq!(cli, vec![("alice@acme.test", "Admin"), ("bob@acme.test", "Owner")]);
    drop(stream);
    server.stop();

    // The role commands, on the stopped service's log.
    ok(run(&data, &["role", "default", "--role", "Auditor"]));
    ok(run(
        &data,
        &[
            "role",
            "bind",
            "--name",
            "net",
            "--role",
            "Network Admin",
            "--priority",
            "20",
            "--group",
            "staff",
        ],
    ));
    let listing = ok(run(&data, &["role", "list"]));
    let lines: Vec<&str> = listing.lines().collect();
    assert!(
        lines[0].starts_with("owners") && lines[1].starts_with("net"),
        "{listing}"
    );
    assert!(
        listing.contains("Auditor") && listing.contains("(the default role)"),
        "{listing}"
    );
    let refused = run(
        &data,
        &["role", "bind", "--name", "x", "--role", "Admin", "--group", "nope"],
    );
    assert!(!refused.status.success());
    ok(run(&data, &["role", "unbind", "--name", "net"]));
    let roles = ok(run(&data, &["query", "roles"]));
    assert!(
        roles.contains("default role Auditor") && roles.contains("alice@acme.test"),
        "{roles}"
    );
}

fn urlencode(text: &str) -> String {
    text.replace(':', "%3A").replace('+', "%2B")
}
