//! Erasure end to end, on the real binary: a user provisioned through SCIM and one pulled from
//! a (fake) IdP are read everywhere they can be (SCIM, the management API now and in the past,
//! the change stream, so that every cache and in-memory checkpoint holds them), then erased;
//! after that their names, emails and externalIds are in no answer of any API, no change-stream
//! item replayed from the start, no output of the command line and no byte of any file in the
//! data directory, and neither are their keys; the log still verifies.

mod binary;
mod common;
mod support;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use binary::{Serving, run};
use idpsync::engine::ids::UserId;
use idpsync::engine::seal::secret_id;
use idpsync::storage::{LogStore, RedbStore, TenantId};
use idpsync_drivers::fake::{Directory, FakeIdp, FakeMember, Vendor};
use serde_json::{Value, json};
use support::{PATCH_OP, SseClient};

/// What identifies alice (SCIM) and erin (the IdP) and must not be found once they are erased.
const NEEDLES: [&str; 6] = [
    "wonderland",
    "liddell",
    "looking-glass",
    "al-7e11-ext",
    "driverhoff",
    "83056417293",
];

/// The first needle `text` holds, compared case-insensitively.
fn needle_in(text: &str) -> Option<&'static str> {
    let text = text.to_lowercase();
    NEEDLES.into_iter().find(|needle| text.contains(needle))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The secret on the last line of `token create`.
fn token(data_dir: &Path, admin: bool) -> String {
    let mut args = vec!["token", "create", "--tenant", "acme", "--name", "test"];
    if admin {
        args.push("--admin");
    }
    ok(run(data_dir, &args)).lines().last().unwrap().trim().to_owned()
}

/// A request with `token`; the status and the body as text.
async fn send(method: reqwest::Method, url: &str, token: &str, body: Option<Value>) -> (u16, String) {
    let mut request = reqwest::Client::new().request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/scim+json")
            .body(body.to_string());
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn get(url: &str, token: &str) -> String {
    let (status, body) = send(reqwest::Method::GET, url, token, None).await;
    assert_eq!(status, 200, "{url}: {body}");
    body
}

async fn get_json(url: &str, token: &str) -> Value {
    serde_json::from_str(&get(url, token).await).unwrap()
}

/// Runs of the integration so far.
async fn runs(api: &str, admin: &str) -> u64 {
    get_json(&format!("{api}/integrations/okta"), admin).await["runs"]
        .as_u64()
        .unwrap()
}

/// Asks the integration to sync and waits until it has run once more.
async fn sync(api: &str, admin: &str) {
    let before = runs(api, admin).await;
    let (status, body) = send(
        reqwest::Method::POST,
        &format!("{api}/integrations/okta/sync"),
        admin,
        None,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while runs(api, admin).await <= before {
        assert!(Instant::now() < deadline, "the sync did not run");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = get_json(&format!("{api}/integrations/okta"), admin).await;
    assert_eq!(status["lastResult"], "applied", "{status}");
}

/// Every change-stream item from the first record on, until the stream has been quiet a while.
async fn replay_from_the_start(origin: &str, admin: &str) -> Vec<Value> {
    let url = format!("{origin}/api/v1/tenants/acme/changes?from=1");
    let mut stream = SseClient::connect(&url, admin, None).await;
    let mut items = Vec::new();
    while let Some(item) = stream.next_within(Duration::from_secs(2)).await {
        items.push(item.data);
    }
    items
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Hardening issue, must-fix 3: after `user erase` (or its API call), the erased user's name,
/// email and externalId were still readable: from the change stream's cache of rendered items,
/// from in-memory checkpoints answering `?seq=`, from every record and snapshot (the externalId
/// was never sealed), and the destroyed key itself stayed in a free page of `log.redb`.
#[tokio::test(flavor = "multi_thread")]
async fn erased_users_are_found_in_no_answer_no_output_and_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut directory = Directory::default();
    directory.put_user("83056417293", "erin.driverhoff", true);
    directory.put_group("g-vpn", "vpn-users");
    directory.join("g-vpn", FakeMember::User("83056417293".into()));
    let fake = FakeIdp::start(Vendor::Okta, directory, false).await;
    let config = dir.path().join("idpsync.toml");
    std::fs::write(
        &config,
        format!(
            "[engine]\nsnapshot_every = 2\nsnapshots_kept = 100\ncheckpoint_every = 1\ncheckpoints_max = 100\n\
             [[tenant]]\nid = \"acme\"\n[[tenant.integration]]\nname = \"okta\"\ninterval = \"1h\"\n{}",
            fake.integration_toml()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let scim_token = token(&data, false);
    let admin = token(&data, true);

    // Alice through SCIM, in a group; erin from the IdP.
    let server = Serving::start(&data, Some(&config));
    let api = format!("{}/api/v1/tenants/acme", server.origin);
    let scim = format!("{}/scim/v2", server.origin);
    let (status, body) = send(
        reqwest::Method::POST,
        &format!("{scim}/Users"),
        &scim_token,
        Some(json!({
            "userName": "alice@wonderland.example",
            "externalId": "al-7e11-ext",
            "name": {"givenName": "Alice", "familyName": "Liddell"},
            "emails": [{"value": "alice@looking-glass.example", "primary": true}],
            "active": true,
        })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let alice: Value = serde_json::from_str(&body).unwrap();
    let alice = alice["id"].as_str().unwrap().to_owned();
    let (status, body) = send(
        reqwest::Method::POST,
        &format!("{scim}/Groups"),
        &scim_token,
        Some(json!({"displayName": "readers", "members": [{"value": alice}]})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let readers: Value = serde_json::from_str(&body).unwrap();
    let readers = readers["id"].as_str().unwrap().to_owned();
    sync(&api, &admin).await;
    let users = get_json(&format!("{api}/users"), &admin).await;
    let erin = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|user| user["externalId"] == "83056417293")
        .unwrap_or_else(|| panic!("erin is synced: {users}"))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server.stop();

    // Their keys, to look for in the files later.
    let keys: Vec<Vec<u8>> = {
        let store = RedbStore::open(&data).unwrap();
        let secrets = store.secrets(&TenantId::new("acme").unwrap()).await.unwrap();
        [&alice, &erin]
            .into_iter()
            .map(|user| {
                let id = secret_id(user.parse::<UserId>().unwrap());
                secrets
                    .iter()
                    .find(|(secret, _)| *secret == id)
                    .map(|(_, material)| material.clone())
                    .unwrap_or_else(|| panic!("{user} has a key"))
            })
            .collect()
    };

    // Read everywhere after a restart, so that what the service keeps in memory holds them:
    // in-memory checkpoints of every record, the change stream's rendered items.
    let server = Serving::start(&data, Some(&config));
    let api = format!("{}/api/v1/tenants/acme", server.origin);
    let scim = format!("{}/scim/v2", server.origin);
    let (status, body) = send(
        reqwest::Method::PATCH,
        &format!("{scim}/Users/{alice}"),
        &scim_token,
        Some(json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "title", "value": "Reader"}]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let summary = get_json(&api, &admin).await;
    let before = summary["seq"].as_u64().unwrap();
    let moment = summary["recordedAt"].as_str().unwrap().to_owned();
    let past = get(&format!("{api}/users?seq={before}"), &admin).await;
    assert!(
        past.contains("alice@wonderland.example") && past.contains("83056417293"),
        "{past}"
    );
    let streamed = replay_from_the_start(&server.origin, &admin).await;
    assert!(
        streamed
            .iter()
            .any(|item| item.to_string().contains("alice@wonderland.example"))
    );

    for user in [&alice, &erin] {
        let (status, body) = send(
            reqwest::Method::POST,
            &format!("{api}/users/{user}/erase"),
            &admin,
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    // The IdP still lists erin: the integration knows her, and provisions no one new.
    sync(&api, &admin).await;
    let users = get_json(&format!("{api}/users"), &admin).await;
    assert_eq!(users["items"].as_array().unwrap().len(), 2, "{users}");

    // Every API.
    let mut answers: Vec<(String, String)> = Vec::new();
    let api_paths = [
        "/users".to_owned(),
        format!("/users?seq={before}"),
        format!("/users?at={moment}"),
        format!("/users/{alice}"),
        format!("/users/{alice}?seq={before}"),
        format!("/users/{erin}?at={moment}"),
        "/groups".to_owned(),
        format!("/groups?seq={before}"),
        format!("/groups/{readers}/members?seq={before}"),
        format!("/groups/{readers}/members?effective=true"),
        format!("/groups/{readers}/timeline"),
        format!("/groups/{readers}/members/{alice}/intervals"),
        format!("/users/{alice}/timeline"),
        format!("/users/{erin}/timeline"),
        format!("/users/{alice}/audit?format=json"),
        format!("/users/{erin}/audit?format=html"),
        format!("/users/{erin}/audit?format=text"),
        "/audit/leavers?since=2000-01-01T00:00:00Z".to_owned(),
        "/integrations/okta".to_owned(),
        String::new(),
    ];
    for path in api_paths {
        let url = format!("{api}{path}");
        answers.push((url.clone(), get(&url, &admin).await));
    }
    let scim_paths = [
        "/Users".to_owned(),
        format!("/Users/{alice}"),
        format!("/Users/{erin}"),
        format!("/Users?{}", common::filter("externalId eq \"al-7e11-ext\"")),
        format!("/Users?{}", common::filter("emails co \"looking-glass\"")),
        format!("/Users?{}", common::filter("userName sw \"alice\"")),
        "/Groups".to_owned(),
        format!("/Groups/{readers}"),
    ];
    for path in scim_paths {
        let url = format!("{scim}{path}");
        answers.push((url.clone(), get(&url, &scim_token).await));
    }
    let filtered = get_json(
        &format!("{scim}/Users?{}", common::filter("externalId eq \"al-7e11-ext\"")),
        &scim_token,
    )
    .await;
    assert_eq!(filtered["totalResults"], 0, "{filtered}");
    let streamed = replay_from_the_start(&server.origin, &admin).await;
    assert!(streamed.len() > 8, "{streamed:?}");
    for item in streamed {
        answers.push(("the change stream".to_owned(), item.to_string()));
    }
    for (source, answer) in &answers {
        assert_eq!(needle_in(answer), None, "{source}: {answer}");
    }
    server.stop();

    // Every command-line read.
    let since = "2000-01-01";
    let before = before.to_string();
    let outputs = [
        ok(run(&data, &["query", "users", "--tenant", "acme", "--json"])),
        ok(run(&data, &["query", "users", "--tenant", "acme", "--seq", &before])),
        ok(run(
            &data,
            &["query", "user", "--tenant", "acme", "--user", &alice, "--json"],
        )),
        ok(run(
            &data,
            &[
                "query", "user", "--tenant", "acme", "--user", &erin, "--seq", &before, "--json",
            ],
        )),
        ok(run(
            &data,
            &[
                "query", "members", "--tenant", "acme", "--group", &readers, "--seq", &before,
            ],
        )),
        ok(run(
            &data,
            &[
                "audit", "user", "--tenant", "acme", "--user", &alice, "--format", "json",
            ],
        )),
        ok(run(
            &data,
            &["audit", "user", "--tenant", "acme", "--user", &erin, "--format", "text"],
        )),
        ok(run(
            &data,
            &[
                "audit", "report", "--tenant", "acme", "--since", since, "--format", "html",
            ],
        )),
        ok(run(&data, &["log", "verify"])),
    ];
    for output in &outputs {
        assert_eq!(needle_in(output), None, "{output}");
    }
    assert!(outputs.last().unwrap().contains("tenant acme: ok"));

    // Every file of the data directory: the log, the snapshots, everything else.
    let files = files_under(&data);
    assert!(files.iter().any(|file| file.ends_with("log.redb")));
    assert!(
        files.iter().any(|file| file.extension().is_some_and(|e| e == "snap")),
        "{files:?}"
    );
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        let lowered = bytes.to_ascii_lowercase();
        for needle in NEEDLES {
            assert!(
                !contains(&lowered, needle.as_bytes()),
                "{} holds {needle:?}",
                file.display()
            );
        }
        for key in &keys {
            assert!(!contains(&bytes, key), "{} holds an erased user's key", file.display());
        }
    }
}
