//! Tokens through the real `idpsync` binary, on the data directory's file and on PostgreSQL's
//! shared tokens (when `IDPSYNC_TEST_POSTGRES_URL` names a database): an expiry given to
//! `token create`, an expired token refused with 401 on SCIM and on the API and its change
//! stream ended, the last use kept in memory and written at shutdown, shown by `token list` and
//! the console; the admin console signed in to with those tokens, creating and revoking tokens
//! and starting a sync, each action in the trail with the admin token that did it.

mod binary;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use binary::{Serving, idpsync};
use idpsync::storage::{PostgresSettings, PostgresStore};
use idpsync_drivers::fake::{Directory, FakeIdp, Vendor};
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::{Value, json};

/// A data directory, the log store the commands and the server use (the data directory's
/// redb, or a PostgreSQL schema), and a configuration with one fake Okta integration.
struct Setup {
    dir: tempfile::TempDir,
    storage: Option<String>,
    config: PathBuf,
    _fake: FakeIdp,
    _schema: Option<PostgresStore>,
}

impl Setup {
    async fn new(postgres: bool) -> Option<Setup> {
        let (schema, storage) = if postgres {
            let Ok(url) = std::env::var("IDPSYNC_TEST_POSTGRES_URL") else {
                eprintln!("skipped: IDPSYNC_TEST_POSTGRES_URL is not set, so shared tokens are not tested");
                return None;
            };
            let store = PostgresStore::open_scratch(PostgresSettings::from_url(&url).unwrap(), "idpsync_tokens")
                .await
                .unwrap();
            let mut with_schema = url::Url::parse(&url).unwrap();
            with_schema
                .query_pairs_mut()
                .append_pair("schema", store.settings().schema());
            (Some(store), Some(with_schema.to_string()))
        } else {
            (None, None)
        };
        let mut directory = Directory::default();
        directory.put_user("1001", "ada.lovelace", true);
        let fake = FakeIdp::start(Vendor::Okta, directory, false).await;
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("idpsync.toml");
        std::fs::write(
            &config,
            format!(
                "[[tenant]]\nid = \"default\"\n[[tenant.integration]]\nname = \"okta\"\ninterval = \"1h\"\n{}",
                fake.integration_toml()
            ),
        )
        .unwrap();
        Some(Setup {
            dir,
            storage,
            config,
            _fake: fake,
            _schema: schema,
        })
    }

    fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    fn env(&self) -> Vec<(&str, &str)> {
        self.storage
            .as_deref()
            .map(|storage| vec![("IDPSYNC_STORAGE", storage)])
            .unwrap_or_default()
    }

    /// Runs `idpsync` with `args` on this setup's store.
    fn run(&self, args: &[&str]) -> Output {
        idpsync(self.data_dir())
            .envs(self.env())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap()
    }

    /// `token create` with `args`; the secret (the last line) and the id.
    fn create(&self, args: &[&str]) -> (String, String) {
        let mut all = vec!["token", "create", "--tenant", "default"];
        all.extend_from_slice(args);
        let output = self.run(&all);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let stdout = String::from_utf8(output.stdout).unwrap();
        let secret = stdout.lines().last().unwrap().to_owned();
        let id = stdout.split_whitespace().nth(3).unwrap().to_owned();
        (secret, id)
    }

    /// The line of `token list` of the token named `name`, split at its columns.
    fn listed(&self, name: &str) -> Vec<String> {
        let output = self.run(&["token", "list"]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let stdout = String::from_utf8(output.stdout).unwrap();
        let header: Vec<&str> = stdout.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(
            header,
            [
                "id", "tenant", "kind", "created", "expires", "last", "used", "status", "name"
            ]
        );
        stdout
            .lines()
            .map(|line| line.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .find(|columns| columns.last().map(String::as_str) == Some(name))
            .unwrap_or_else(|| panic!("no token {name} in {stdout}"))
    }

    fn serve(&self) -> Serving {
        Serving::start_with(self.data_dir(), Some(&self.config), &self.env())
    }
}

/// `token list` columns.
const EXPIRES: usize = 4;
const LAST_USED: usize = 5;
const STATUS: usize = 6;

async fn scim_status(server: &Serving, token: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .get(format!("{}/scim/v2/Users", server.origin))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn api_status(server: &Serving, token: &str) -> StatusCode {
    reqwest::Client::new()
        .get(format!("{}/api/v1/tenants/default", server.origin))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

/// Reads the change stream until it ends; when it ended.
async fn stream_end(mut stream: reqwest::Response, within: Duration) -> Option<Instant> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.chunk()).await {
            Err(_) => return None,
            Ok(Ok(Some(_))) => {}
            Ok(_) => return Some(Instant::now()),
        }
    }
}

/// An expiring SCIM token and an expiring admin token work until their expiry and get 401
/// after it, on SCIM (with SCIM's error body) and on the API; the admin token's change stream
/// ends at the expiry; a lasting token goes on.
async fn expired_tokens_are_refused_and_their_streams_end(setup: &Setup, server: &Serving) {
    const LIFE: Duration = Duration::from_secs(8);
    let (lasting, _) = setup.create(&["--admin", "--name", "lasting-ops"]);
    let created = Instant::now();
    let (scim, _) = setup.create(&["--name", "short-idp", "--expires", "8s"]);
    let (admin, _) = setup.create(&["--admin", "--name", "short-ops", "--expires", "8s"]);

    // The new tokens reach the server within its reload interval (about a second).
    let reached = Instant::now() + Duration::from_secs(3);
    while scim_status(server, &scim).await.0 != StatusCode::OK || api_status(server, &admin).await != StatusCode::OK {
        assert!(Instant::now() < reached, "the new tokens do not work");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stream = reqwest::Client::new()
        .get(format!("{}/api/v1/tenants/default/changes?from=1", server.origin))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let ended = stream_end(stream, LIFE + Duration::from_secs(3))
        .await
        .expect("the stream of an expired token ends");
    let after = ended.duration_since(created);
    eprintln!("the stream ended {after:?} after the token was created with a life of {LIFE:?}");
    assert!(
        after >= LIFE - Duration::from_millis(500),
        "ended before the expiry: {after:?}"
    );

    let (status, body) = scim_status(server, &scim).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(
        body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
        "{body}"
    );
    assert_eq!(body["status"], "401", "{body}");
    assert_eq!(api_status(server, &admin).await, StatusCode::UNAUTHORIZED);
    assert_eq!(api_status(server, &lasting).await, StatusCode::OK);
    let short = setup.listed("short-ops");
    assert!(short[EXPIRES].ends_with('Z') && short[STATUS] == "expired", "{short:?}");
    let lasting_line = setup.listed("lasting-ops");
    assert!(
        lasting_line[EXPIRES] == "-" && lasting_line[STATUS] == "active",
        "{lasting_line:?}"
    );
}

/// A browser of the console: no redirects followed, the session cookie kept by hand.
struct Browser {
    origin: String,
    http: reqwest::Client,
    cookie: Option<String>,
}

impl Browser {
    fn new(server: &Serving) -> Browser {
        Browser {
            origin: server.origin.clone(),
            http: reqwest::Client::builder().redirect(Policy::none()).build().unwrap(),
            cookie: None,
        }
    }

    async fn answer(&mut self, response: reqwest::Response) -> (StatusCode, String) {
        if let Some(set) = response.headers().get("set-cookie").and_then(|v| v.to_str().ok()) {
            self.cookie = Some(set.split(';').next().unwrap().to_owned());
        }
        (response.status(), response.text().await.unwrap())
    }

    async fn get(&mut self, path: &str) -> (StatusCode, String) {
        let mut request = self.http.get(format!("{}{path}", self.origin));
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send().await.unwrap();
        self.answer(response).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
        let mut request = self
            .http
            .post(format!("{}{path}", self.origin))
            .header("origin", &self.origin)
            .form(form);
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send().await.unwrap();
        self.answer(response).await
    }
}

fn csrf_of(page: &str) -> String {
    let start = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + "name=\"csrf\" value=\"".len();
    let end = page[start..].find('"').unwrap() + start;
    page[start..end].to_owned()
}

/// The console signs in with the store's admin token, lists the tokens with their expiry and
/// last use, creates an expiring token and revokes it, and starts a sync.
async fn the_console_manages_the_stores_tokens(setup: &Setup, server: &Serving, admin: &str) {
    let mut browser = Browser::new(server);
    let (status, _) = browser.post("/admin/sign-in", &[("token", admin)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "an admin token of the store signs in");
    let (status, page) = browser.get("/admin/tenant").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("console-ops") && page.contains("Last used") && page.contains("Expires"));
    let csrf = csrf_of(&page);

    let (status, page) = browser
        .post(
            "/admin/tokens",
            &[
                ("csrf", &csrf),
                ("name", "made-in-console"),
                ("kind", "scim"),
                ("expires", "30d"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("It stops working at"), "{page}");
    let made = setup.listed("made-in-console");
    assert!(made[EXPIRES].ends_with('Z') && made[STATUS] == "active", "{made:?}");
    let (status, page) = browser
        .post(
            "/admin/tokens",
            &[
                ("csrf", &csrf),
                ("name", "never-made"),
                ("kind", "scim"),
                ("expires", "yesterday"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("invalid token expiry"), "{page}");
    assert!(
        !String::from_utf8(setup.run(&["token", "list"]).stdout)
            .unwrap()
            .contains("never-made")
    );

    let (status, _) = browser
        .post(&format!("/admin/tokens/{}/revoke", made[0]), &[("csrf", &csrf)])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(setup.listed("made-in-console")[STATUS], "revoked");
    let (status, _) = browser.post("/admin/integrations/okta/sync", &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

/// The API lists, creates (with an expiry) and revokes the tenant's tokens; a bad expiry is
/// refused with 400 and makes no token.
async fn the_api_manages_the_tenants_tokens(server: &Serving, admin: &str) -> String {
    let api = format!("{}/api/v1/tenants/default/tokens", server.origin);
    let http = reqwest::Client::new();
    let created = http
        .post(&api)
        .bearer_auth(admin)
        .json(&json!({"name": "made-by-api", "kind": "admin", "expiresAt": "2099-01-01"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["expiresAt"], "2099-01-01T00:00:00.000000Z");
    assert_eq!(created["status"], "active");
    assert!(created["secret"].as_str().unwrap().starts_with("idps_"));
    let refused = http
        .post(&api)
        .bearer_auth(admin)
        .json(&json!({"name": "never", "kind": "scim", "expiresAt": "2001-01-01"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let id = created["id"].as_str().unwrap().to_owned();
    let revoked = http
        .post(format!("{api}/{id}/revoke"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let listed: Value = http
        .get(&api)
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = listed["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .all(|item| item["name"] != "never" && item.get("secret").is_none())
    );
    let made = items.iter().find(|item| item["id"] == id.as_str()).unwrap();
    assert_eq!(made["status"], "revoked");
    id
}

/// The trail's lines in the server's log of `action`.
fn actions(log: &str, action: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|entry| entry["target"] == idpsync::actions::TARGET && entry["fields"]["action"] == action)
        .map(|entry| entry["fields"].clone())
        .collect()
}

async fn tokens_end_to_end(postgres: bool) {
    let Some(setup) = Setup::new(postgres).await else {
        return;
    };
    let server = setup.serve();
    expired_tokens_are_refused_and_their_streams_end(&setup, &server).await;

    let (admin, admin_id) = setup.create(&["--admin", "--name", "console-ops"]);
    let (scim, _) = setup.create(&["--name", "idp"]);
    let deadline = Instant::now() + Duration::from_secs(3);
    while scim_status(&server, &scim).await.0 != StatusCode::OK {
        assert!(Instant::now() < deadline, "the new token does not work");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let created = reqwest::Client::new()
        .post(format!("{}/scim/v2/Users", server.origin))
        .bearer_auth(&scim)
        .json(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "grace@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    // Uses are kept in memory: nothing is written per request.
    assert_eq!(setup.listed("idp")[LAST_USED], "-");

    the_console_manages_the_stores_tokens(&setup, &server, &admin).await;
    let made_by_api = the_api_manages_the_tenants_tokens(&server, &admin).await;
    let log = server.stop();

    // Written when the server stopped.
    let used = setup.listed("idp")[LAST_USED].clone();
    let used = idpsync::engine::ids::Timestamp::parse_rfc3339(&used).expect("a last use");
    assert!(
        idpsync::engine::ids::Timestamp::now().0 - used.0 < 120_000_000,
        "{used}"
    );
    assert!(setup.listed("console-ops")[LAST_USED].ends_with('Z'));
    assert_eq!(setup.listed("lasting-ops")[LAST_USED].len(), 27);

    for action in ["token.create", "token.revoke", "sync.start"] {
        let lines: Vec<Value> = actions(&log, action)
            .into_iter()
            .filter(|line| line["door"] == "console")
            .collect();
        assert_eq!(lines.len(), 1, "{action}: {lines:?}\n{log}");
        assert_eq!(lines[0]["tenant"], "default");
        assert_eq!(lines[0]["token"], admin_id.as_str());
        assert_eq!(lines[0]["token_name"], "console-ops");
    }
    assert_eq!(actions(&log, "sync.start")[0]["subject"], "okta");
    for action in ["token.create", "token.revoke"] {
        let by_api: Vec<Value> = actions(&log, action)
            .into_iter()
            .filter(|line| line["door"] == "api")
            .collect();
        assert_eq!(by_api.len(), 1, "{action}: {by_api:?}");
        assert_eq!(by_api[0]["token"], admin_id.as_str());
        assert_eq!(by_api[0]["subject"], made_by_api.as_str());
    }
    assert!(!log.contains(&admin), "the admin secret is never logged");

    // The API shows the last uses written at the stop.
    let server = setup.serve();
    let listed: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/tenants/default/tokens", server.origin))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let idp = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["name"] == "idp")
        .unwrap();
    assert!(idp["lastUsedAt"].as_str().unwrap().ends_with('Z'), "{idp}");
    assert_eq!(idp["expiresAt"], Value::Null);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_on_the_data_directorys_file() {
    tokens_end_to_end(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_on_postgresql_shared_by_replicas() {
    tokens_end_to_end(true).await;
}

/// A moment that is not one, or is past, is refused by `token create`, which makes no token.
#[test]
fn a_bad_expiry_is_refused_and_makes_no_token() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["yesterday", "2001-01-01", "-5d"] {
        let output = idpsync(dir.path())
            .args(["token", "create", "--name", "x", &format!("--expires={bad}")])
            .output()
            .unwrap();
        assert!(!output.status.success(), "{bad}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("invalid token expiry"), "{bad}: {stderr}");
    }
    let made = idpsync(dir.path())
        .args(["token", "create", "--name", "kept", "--expires", "2099-01-01"])
        .output()
        .unwrap();
    assert!(made.status.success());
    let listed = String::from_utf8(idpsync(dir.path()).args(["token", "list"]).output().unwrap().stdout).unwrap();
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(listed.contains("2099-01-01T00:00:00.000000Z"), "{listed}");
}
