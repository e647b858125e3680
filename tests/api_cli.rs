//! The real `idpsync` binary with the management API: leavers through SCIM and through a
//! driver (against a fake IdP) audited with `idpsync audit user` in all three formats; the
//! past through the API agreeing with `idpsync query`; erasure through the API followed by
//! `log verify`; signed checkpoints that catch a rewritten or shortened log; a deletion feed
//! left out for want of a permission, shown in the integration's row.

mod binary;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use binary::{Serving, run, seed};
use idpsync_drivers::fake::{Directory, FakeIdp, FakeMember, Vendor};
use serde_json::{Value, json};

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn failed(output: Output) -> String {
    assert!(
        !output.status.success(),
        "expected a failure: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8(output.stderr).unwrap()
}

/// The secret on the last line of `token create`.
fn token(data_dir: &Path, tenant: &str, admin: bool) -> String {
    let mut args = vec!["token", "create", "--tenant", tenant, "--name", "test"];
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

async fn get(url: &str, token: &str) -> Value {
    let (status, body) = send(reqwest::Method::GET, url, token, None).await;
    assert_eq!(status, 200, "{url}: {body}");
    body
}

/// Polls `check` every 100 ms for up to 30 s.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn leavers_through_scim_and_a_driver_are_audited_in_three_formats() {
    let dir = tempfile::tempdir().unwrap();
    let mut directory = Directory::default();
    directory.put_user("2001", "erin.driver", true);
    directory.put_user("2002", "frank.driver", true);
    directory.put_group("g-vpn", "vpn-users");
    directory.join("g-vpn", FakeMember::User("2001".into()));
    directory.join("g-vpn", FakeMember::User("2002".into()));
    let fake = FakeIdp::start(Vendor::Okta, directory, false).await;
    let config = dir.path().join("idpsync.toml");
    std::fs::write(
        &config,
        format!(
            "[engine]\nhold_above_percent = 60\n[[tenant]]\nid = \"acme\"\n[[tenant.integration]]\nname = \"okta\"\ninterval = \"1h\"\n{}",
            fake.integration_toml()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let scim_token = token(&data, "acme", false);
    let admin = token(&data, "acme", true);
    let server = Serving::start(&data, Some(&config));
    let api = format!("{}/api/v1/tenants/acme", server.origin);
    let scim = format!("{}/scim/v2", server.origin);

    // The driver's door: a first sync brings the users in.
    let (status, _) = send(
        reqwest::Method::POST,
        &format!("{api}/integrations/okta/sync"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 202);
    // A scheduled run may come too: count runs, never expect an exact number.
    let runs = async || {
        get(&format!("{api}/integrations/okta"), &admin).await["runs"]
            .as_u64()
            .unwrap()
    };
    eventually("the first sync", async || runs().await >= 1).await;
    let status = get(&format!("{api}/integrations/okta"), &admin).await;
    assert_eq!(status["lastResult"], "applied", "{status}");
    assert_eq!(status["lastError"], Value::Null);
    assert_eq!(status["lastCounts"]["listedUsers"], 2);
    let groups = get(&format!("{api}/groups"), &admin).await;
    let vpn = groups["items"][0]["id"].as_str().unwrap().to_owned();

    // The SCIM door: a user in a SCIM group.
    let (status, alice) = send(
        reqwest::Method::POST,
        &format!("{scim}/Users"),
        &scim_token,
        Some(json!({"userName": "alice@acme.test", "active": true})),
    )
    .await;
    assert_eq!(status, 201);
    let alice = alice["id"].as_str().unwrap().to_owned();
    let (status, eng) = send(
        reqwest::Method::POST,
        &format!("{scim}/Groups"),
        &scim_token,
        Some(json!({"displayName": "eng", "members": [{"value": alice}]})),
    )
    .await;
    assert_eq!(status, 201);
    let eng = eng["id"].as_str().unwrap().to_owned();
    let (status, _) = send(
        reqwest::Method::PUT,
        &format!("{api}/bindings/policy/office"),
        &admin,
        Some(json!({"sources": [eng, vpn], "destinations": [vpn]})),
    )
    .await;
    assert_eq!(status, 200);

    // Both leave: alice through SCIM, erin through the IdP and the next sync.
    let (status, _) = send(
        reqwest::Method::PATCH,
        &format!("{scim}/Users/{alice}"),
        &scim_token,
        Some(json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": false}]})),
    )
    .await;
    assert_eq!(status, 200);
    // Okta dates erin's deactivation (the System Log's `published`, her `statusChanged`) 90 s
    // before the sync reads it.
    let left_at = {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        Duration::from_millis(now.as_millis() as u64) - Duration::from_secs(90)
    };
    fake.edit(|directory| {
        directory.set_active("2001", false);
        directory.date_last_change(std::time::UNIX_EPOCH + left_at);
    });
    let left_at = idpsync::storage::Timestamp(left_at.as_micros() as i64);
    let before = runs().await;
    send(
        reqwest::Method::POST,
        &format!("{api}/integrations/okta/sync"),
        &admin,
        None,
    )
    .await;
    eventually("the second sync", async || runs().await > before).await;
    let users = get(&format!("{api}/users"), &admin).await;
    let erin = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|user| user["externalId"] == "2001")
        .unwrap()
        .clone();
    assert_eq!(erin["active"], false);
    let erin = erin["id"].as_str().unwrap().to_owned();
    let metrics = reqwest::get(format!("{}/metrics", server.origin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("idpsync_sync_runs_total{tenant=\"acme\",integration=\"okta\",outcome=\"applied\"} "),
        "{metrics}"
    );
    assert!(
        metrics.contains("idpsync_sync_seconds_count{tenant=\"acme\",integration=\"okta\",outcome=\"applied\"} "),
        "{metrics}"
    );
    // Erin's revocations, from the change Okta dated; alice's SCIM leave has no IdP time.
    assert!(
        metrics.contains("idpsync_idp_change_to_revocation_seconds_count{tenant=\"acme\"} 1"),
        "{metrics}"
    );
    server.stop();

    // The audits, from the command line.
    let audit = |user: &str, format: &str| {
        ok(run(
            &data,
            &["audit", "user", "--tenant", "acme", "--user", user, "--format", format],
        ))
    };
    let json_scim: Value = serde_json::from_str(&audit("alice@acme.test", "json")).unwrap();
    assert_eq!(json_scim["leave"]["door"]["door"], "scim");
    assert_eq!(json_scim["leave"]["door"]["tokenName"], "test");
    assert!(json_scim["leave"]["door"]["request"].is_string());
    let revoked: Vec<&Value> = json_scim["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|step| step["kind"] == "access" && step["direction"] == "revoked")
        .collect();
    assert_eq!(revoked.len(), 1, "alice loses policy/office as a source through eng");
    assert_eq!(revoked[0]["resourceId"], "office");
    assert_eq!(revoked[0]["viaName"], "eng");
    // A SCIM client does not say when the IdP made the change.
    assert_eq!(json_scim["offboarding"]["idpChangedAt"], Value::Null);
    assert_eq!(json_scim["offboarding"]["toReceiveUs"], Value::Null);

    let json_driver: Value = serde_json::from_str(&audit(&erin, "json")).unwrap();
    let leave = &json_driver["leave"];
    assert_eq!(leave["door"]["door"], "integration");
    assert_eq!(leave["door"]["integration"], "okta");
    assert_eq!(leave["door"]["idpObject"], "2001");
    assert!(leave["door"]["run"].is_string());
    // Okta said when it made the change: the chain starts there.
    assert_eq!(leave["door"]["idpChangedAt"], left_at.to_rfc3339());
    let chain = &json_driver["offboarding"];
    assert_eq!(chain["idpChangedAt"], left_at.to_rfc3339(), "{chain}");
    assert!(
        chain["toReceiveUs"].as_i64().unwrap() >= 90_000_000 - 1_000,
        "from Okta's change to the run that read it: {chain}"
    );
    let revoked: Vec<String> = json_driver["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|step| step["kind"] == "access" && step["direction"] == "revoked")
        .map(|step| {
            format!(
                "{} {}",
                step["role"].as_str().unwrap(),
                step["viaName"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        revoked.len(),
        2,
        "source and destination through vpn-users: {revoked:?}"
    );
    assert!(
        json_driver["timeToRevokeUs"].as_i64().unwrap() > 0,
        "measured from the run's start"
    );

    let text = audit(&erin, "text");
    assert!(
        text.contains("LEFT: deactivated") && text.contains("integration okta, sync run"),
        "{text}"
    );
    let clock = left_at.to_rfc3339();
    let clock = format!("{}Z", clock.split_once('.').unwrap().0);
    assert!(
        text.contains(&format!("chain: IdP change {clock} → received ")),
        "{text}"
    );
    let html_file = dir.path().join("erin.html");
    ok(run(
        &data,
        &[
            "audit",
            "user",
            "--tenant",
            "acme",
            "--user",
            &erin,
            "--format",
            "html",
            "--output",
            html_file.to_str().unwrap(),
        ],
    ));
    let html = std::fs::read_to_string(&html_file).unwrap();
    assert!(
        html.starts_with("<!DOCTYPE html>") && html.contains("Offboarding audit") && html.contains("class=\"revoked\"")
    );
    assert!(
        !html.contains("<script") && !html.contains("<link") && !html.contains("src="),
        "one self-contained page"
    );

    let report = ok(run(
        &data,
        &[
            "audit",
            "report",
            "--tenant",
            "acme",
            "--since",
            "2000-01-01",
            "--format",
            "json",
        ],
    ));
    let report: Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["count"], 2);
    assert_eq!(report["stillHolding"], 0);
    assert!(report["maxTimeToRevokeUs"].as_i64().unwrap() >= report["medianTimeToRevokeUs"].as_i64().unwrap());
    let text = ok(run(
        &data,
        &["audit", "report", "--tenant", "acme", "--since", "2000-01-01"],
    ));
    assert!(text.contains("2 leavers"), "{text}");
    let missing = failed(run(
        &data,
        &["audit", "user", "--tenant", "acme", "--user", "nobody@acme.test"],
    ));
    assert!(missing.contains("has no user"), "{missing}");
}

/// An Okta integration whose API token may not read the System Log: its incremental runs go
/// on without the deletion feed, and the integration's row says so until a run no longer
/// warns.
#[tokio::test(flavor = "multi_thread")]
async fn a_deletion_feed_left_out_for_want_of_a_permission_shows_in_the_integration_s_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut directory = Directory::default();
    directory.put_user("2001", "erin.driver", true);
    directory.withhold_feed_permission();
    let fake = FakeIdp::start(Vendor::Okta, directory, false).await;
    let config = dir.path().join("idpsync.toml");
    std::fs::write(
        &config,
        format!(
            "[[tenant]]\nid = \"acme\"\n[[tenant.integration]]\nname = \"okta\"\ninterval = \"1h\"\n{}",
            fake.integration_toml()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let admin = token(&data, "acme", true);
    let server = Serving::start(&data, Some(&config));
    let api = format!("{}/api/v1/tenants/acme/integrations/okta", server.origin);
    let runs = async || get(&api, &admin).await["runs"].as_u64().unwrap();
    // The first run lists everything and reads no feed; the second is incremental.
    for wanted in [1, 2] {
        let (status, _) = send(reqwest::Method::POST, &format!("{api}/sync"), &admin, None).await;
        assert_eq!(status, 202);
        eventually("a sync", async || runs().await >= wanted).await;
    }
    let row = get(&api, &admin).await;
    assert_eq!(row["lastResult"], "applied", "{row}");
    assert_eq!(row["lastError"], Value::Null, "{row}");
    let warnings = row["lastWarnings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|w| w
            .as_str()
            .unwrap()
            .contains("deletion feed off: the System Log refused (HTTP 403")),
        "{row}"
    );
    fake.edit(Directory::grant_feed_permission);
    let (status, _) = send(reqwest::Method::POST, &format!("{api}/sync"), &admin, None).await;
    assert_eq!(status, 202);
    eventually("a sync with the feed", async || runs().await >= 3).await;
    let row = get(&api, &admin).await;
    assert_eq!(row["lastWarnings"], json!([]), "{row}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_past_through_the_api_agrees_with_idpsync_query() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), 300, 12, 4000);
    let groups: Vec<Value> = serde_json::from_str(&ok(run(dir.path(), &["query", "groups", "--json"]))).unwrap();
    let health_head = {
        let users: Vec<Value> = serde_json::from_str(&ok(run(dir.path(), &["query", "users", "--json"]))).unwrap();
        assert!(!users.is_empty());
        let verified = ok(run(dir.path(), &["log", "verify"]));
        verified
            .split(", ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let seq = (health_head / 2).to_string();
    let group = groups[3]["id"].as_str().unwrap().to_owned();
    let query = |args: &[&str]| -> Value { serde_json::from_str(&ok(run(dir.path(), args))).unwrap() };
    let direct = query(&["query", "members", "--group", &group, "--seq", &seq, "--json"]);
    let effective = query(&[
        "query",
        "members",
        "--group",
        &group,
        "--seq",
        &seq,
        "--effective",
        "--json",
    ]);
    let users = query(&["query", "users", "--seq", &seq, "--json"]);

    let admin = token(dir.path(), "default", true);
    let server = Serving::start(dir.path(), None);
    let api = format!("{}/api/v1/tenants/default", server.origin);
    let members = get(&format!("{api}/groups/{group}/members?seq={seq}&limit=1000"), &admin).await;
    assert_eq!(members["items"], direct);
    let members = get(
        &format!("{api}/groups/{group}/members?seq={seq}&limit=1000&effective=true"),
        &admin,
    )
    .await;
    assert_eq!(members["items"], effective);
    let page = get(&format!("{api}/users?seq={seq}&limit=1000"), &admin).await;
    assert_eq!(page["items"], users);
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn erasure_through_the_api_leaves_a_log_that_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let scim_token = token(dir.path(), "default", false);
    let admin = token(dir.path(), "default", true);
    let server = Serving::start(dir.path(), None);
    let (_, user) = send(
        reqwest::Method::POST,
        &format!("{}/scim/v2/Users", server.origin),
        &scim_token,
        Some(json!({"userName": "gina@acme.test", "active": true, "name": {"givenName": "Gina"}})),
    )
    .await;
    let user = user["id"].as_str().unwrap().to_owned();
    let (status, body) = send(
        reqwest::Method::POST,
        &format!("{}/api/v1/tenants/default/users/{user}/erase", server.origin),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    server.stop();
    assert!(ok(run(dir.path(), &["log", "verify"])).contains("tenant default: ok"));
    let shown = ok(run(dir.path(), &["query", "user", "--user", &user, "--json"]));
    assert!(
        shown.contains(&format!("erased-{user}")) && !shown.contains("gina"),
        "{shown}"
    );
    let audit = ok(run(dir.path(), &["audit", "user", "--user", &user, "--format", "json"]));
    assert!(!audit.contains("gina"), "{audit}");
}

#[test]
fn checkpoints_prove_the_log_and_catch_rewritten_history() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let seed = |data: &Path, seed: &str, users: &str| {
        ok(run(
            data,
            &[
                "dev",
                "seed",
                "--users",
                users,
                "--groups",
                "10",
                "--memberships",
                "600",
                "--seed",
                seed,
            ],
        ))
    };
    seed(&data, "1", "100");
    assert!(ok(run(&data, &["log", "checkpoint", "create"])).contains("signed a checkpoint"));
    seed(&data, "2", "50");
    ok(run(&data, &["log", "checkpoint", "create"]));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("checkpoint-key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let exported = dir.path().join("checkpoints.jsonl");
    ok(run(
        &data,
        &["log", "checkpoint", "export", "--output", exported.to_str().unwrap()],
    ));
    let lines: Vec<Value> = std::fs::read_to_string(&exported)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    let first_seq = lines[0]["seq"].as_u64().unwrap();
    let checkpoints = exported.to_str().unwrap();
    let verified = ok(run(&data, &["log", "verify", "--checkpoints", checkpoints]));
    assert_eq!(verified.matches("the log extends it").count(), 2, "{verified}");

    // The log grows: it still extends both.
    seed(&data, "3", "20");
    ok(run(&data, &["log", "verify", "--checkpoints", checkpoints]));

    // A copy whose history was rewritten: same key, a different log of the same length.
    let copy = dir.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    for name in ["checkpoint-key", "checkpoint-key.pub"] {
        std::fs::copy(data.join(name), copy.join(name)).unwrap();
    }
    seed(&copy, "9", "120");
    let error = failed(run(&copy, &["log", "verify", "--checkpoints", checkpoints]));
    assert!(
        error.contains(&format!("tenant default, seq {first_seq}")) && error.contains("history was rewritten"),
        "{error}"
    );
    // A log cut short.
    let short = dir.path().join("short");
    std::fs::create_dir(&short).unwrap();
    for name in ["checkpoint-key", "checkpoint-key.pub"] {
        std::fs::copy(data.join(name), short.join(name)).unwrap();
    }
    seed(&short, "9", "5");
    let error = failed(run(&short, &["log", "verify", "--checkpoints", checkpoints]));
    assert!(error.contains("history was cut short"), "{error}");
    // An edited checkpoint, and a stranger's key.
    let edited = dir.path().join("edited.jsonl");
    let mut tampered = lines[0].clone();
    tampered["seq"] = json!(first_seq - 1);
    std::fs::write(&edited, format!("{tampered}\n")).unwrap();
    let error = failed(run(
        &data,
        &["log", "verify", "--checkpoints", edited.to_str().unwrap()],
    ));
    assert!(error.contains("altered"), "{error}");
    let stranger = dir.path().join("stranger");
    seed(&stranger, "4", "10");
    ok(run(&stranger, &["log", "checkpoint", "create"]));
    let error = failed(run(
        &data,
        &[
            "log",
            "verify",
            "--checkpoints",
            stranger.join("checkpoints/default.jsonl").to_str().unwrap(),
        ],
    ));
    assert!(error.contains("signed by key"), "{error}");
}
