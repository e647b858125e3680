//! Three real `idpsync serve` processes (replicas) on one PostgreSQL schema, each with a data
//! directory of its own: tokens made once with `idpsync token` work on all three, and one
//! revoked stops working on all three; one userName created at once through all three is
//! created once (409 for the others); a write through one is read through another at once; the change stream of one carries the others' writes in log
//! order; an integration runs on the replica that holds its lease, and when that replica is
//! killed another takes it over within 30 s.
//!
//! Each test runs in a schema of its own in the database `IDPSYNC_TEST_POSTGRES_URL` names;
//! where it is not set, each test says so and passes.

mod binary;
mod common;
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use binary::Serving;
use idpsync::storage::{PostgresSettings, PostgresStore};
use idpsync_drivers::fake::{Directory, FakeIdp, Vendor};
use serde_json::{Value, json};
use support::SseClient;

/// A scratch schema (dropped with the returned store) and the URL that names it; `None` where
/// no database is given.
async fn scratch_postgres() -> Option<(PostgresStore, String)> {
    let Ok(url) = std::env::var("IDPSYNC_TEST_POSTGRES_URL") else {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"skipped: IDPSYNC_TEST_POSTGRES_URL is not set, so replicas are not tested\n",
        );
        return None;
    };
    let store = PostgresStore::open_scratch(PostgresSettings::from_url(&url).unwrap(), "idpsync_replicas")
        .await
        .unwrap();
    let mut with_schema = url::Url::parse(&url).unwrap();
    with_schema
        .query_pairs_mut()
        .append_pair("schema", store.settings().schema());
    Some((store, with_schema.to_string()))
}

/// A replica: its own data directory, the shared log.
struct Replica {
    server: Serving,
}

/// Tokens made with `idpsync token create` on the shared store: they work on every replica.
struct Tokens {
    scim: String,
    admin: String,
}

/// The secret on the last line of `token create`, made in the store at `storage`.
fn token(data_dir: &Path, storage: &str, admin: bool) -> String {
    let mut args = vec!["token", "create", "--tenant", "default", "--name"];
    if admin {
        args.extend(["admin-test", "--admin"]);
    } else {
        args.push("scim-test");
    }
    let created = binary::idpsync(data_dir)
        .env("IDPSYNC_STORAGE", storage)
        .args(&args)
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    String::from_utf8(created.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_owned()
}

/// `count` replicas on the log at `storage`, with `config`, and tokens all of them take.
fn replicas(root: &Path, count: usize, storage: &str, config: Option<&Path>) -> (Vec<Replica>, Tokens) {
    let tokens_made_by = root.join("operator");
    let tokens = Tokens {
        scim: token(&tokens_made_by, storage, false),
        admin: token(&tokens_made_by, storage, true),
    };
    let replicas = (0..count)
        .map(|n| Replica {
            server: Serving::start_with(
                &root.join(format!("replica{n}")),
                config,
                &[("IDPSYNC_STORAGE", storage)],
            ),
        })
        .collect();
    (replicas, tokens)
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

async fn create_user(replica: &Replica, tokens: &Tokens, user_name: &str) -> (u16, Value) {
    send(
        reqwest::Method::POST,
        &format!("{}/scim/v2/Users", replica.server.origin),
        &tokens.scim,
        Some(json!({"userName": user_name, "active": true})),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_keep_user_names_unique_and_read_each_others_writes() {
    let Some((_schema, storage)) = scratch_postgres().await else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let (replicas, tokens) = replicas(root.path(), 3, &storage, None);

    // One userName through all three at once, ten times: one 201, two 409s each time.
    for round in 0..10 {
        let name = format!("user{round}@example.com");
        let (a, b, c) = tokio::join!(
            create_user(&replicas[0], &tokens, &name),
            create_user(&replicas[1], &tokens, &name),
            create_user(&replicas[2], &tokens, &name)
        );
        let mut statuses = vec![a.0, b.0, c.0];
        statuses.sort();
        assert_eq!(statuses, vec![201, 409, 409], "round {round}: {a:?} {b:?} {c:?}");
    }

    // Written through A, read through B and C at once: no waiting, no retry.
    let (status, created) = create_user(&replicas[0], &tokens, "alice@example.com").await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    for replica in &replicas[1..] {
        let (status, read) = send(
            reqwest::Method::GET,
            &format!("{}/scim/v2/Users/{id}", replica.server.origin),
            &tokens.scim,
            None,
        )
        .await;
        assert_eq!(status, 200, "{read}");
        assert_eq!(read["userName"], "alice@example.com");
        let (status, listed) = send(
            reqwest::Method::GET,
            &format!("{}/api/v1/tenants/default/users?limit=100", replica.server.origin),
            &tokens.admin,
            None,
        )
        .await;
        assert_eq!(status, 200, "{listed}");
        assert_eq!(listed["items"].as_array().unwrap().len(), 11, "{listed}");
    }

    // The change stream of B carries what A writes, in log order.
    let (_, head) = send(
        reqwest::Method::GET,
        &format!("{}/scim/v2/Users?count=0", replicas[1].server.origin),
        &tokens.scim,
        None,
    )
    .await;
    assert_eq!(head["totalResults"], 11);
    let mut stream = SseClient::connect(
        &format!("{}/api/v1/tenants/default/changes?from=1", replicas[1].server.origin),
        &tokens.admin,
        None,
    )
    .await;
    for n in 0..5 {
        let (status, _) = create_user(&replicas[0], &tokens, &format!("late{n}@example.com")).await;
        assert_eq!(status, 201);
    }
    let mut seqs = Vec::new();
    let mut late = Vec::new();
    while late.len() < 5 {
        let item = stream.next().await;
        let seq: u64 = item.id.split('.').next().unwrap().parse().unwrap();
        if !item.id.contains('.') {
            seqs.push(seq);
            if let Some(name) = item.data["event"]["userName"].as_str()
                && name.starts_with("late")
            {
                late.push(name.to_owned());
            }
        }
    }
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "every record, in order"
    );
    assert_eq!(late, (0..5).map(|n| format!("late{n}@example.com")).collect::<Vec<_>>());

    // A token revoked with `idpsync token` stops working on every replica within seconds.
    let revoked = binary::idpsync(&root.path().join("operator"))
        .env("IDPSYNC_STORAGE", &storage)
        .args(["token", "revoke", "scim-test"])
        .output()
        .unwrap();
    assert!(revoked.status.success(), "{}", String::from_utf8_lossy(&revoked.stderr));
    let deadline = Instant::now() + Duration::from_secs(10);
    for replica in &replicas {
        loop {
            let (status, _) = send(
                reqwest::Method::GET,
                &format!("{}/scim/v2/Users?count=0", replica.server.origin),
                &tokens.scim,
                None,
            )
            .await;
            if status == 401 {
                break;
            }
            assert!(Instant::now() < deadline, "a revoked token still works after 10 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for replica in replicas {
        replica.server.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_integration_runs_on_one_replica_and_another_takes_it_over_when_it_dies() {
    let Some((_schema, storage)) = scratch_postgres().await else {
        return;
    };
    let mut directory = Directory::default();
    directory.put_user("1001", "ada.lovelace", true);
    let fake = FakeIdp::start(Vendor::JumpCloud, directory, false).await;
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("idpsync.toml");
    std::fs::write(
        &config,
        format!(
            "[[tenant]]\nid = \"default\"\n[[tenant.integration]]\nname = \"jc\"\ninterval = \"2s\"\n{}",
            fake.integration_toml()
        ),
    )
    .unwrap();
    let (mut replicas, tokens) = replicas(root.path(), 3, &storage, Some(&config));
    let status = async |replica: &Replica| {
        let (code, status) = send(
            reqwest::Method::GET,
            &format!("{}/api/v1/tenants/default/integrations/jc", replica.server.origin),
            &tokens.admin,
            None,
        )
        .await;
        assert_eq!(code, 200, "{status}");
        status
    };

    // One replica holds the lease and runs the integration; the others stand by.
    let deadline = Instant::now() + Duration::from_secs(30);
    let holder = loop {
        let mut holders = Vec::new();
        for (n, replica) in replicas.iter().enumerate() {
            let status = status(replica).await;
            if status["leaseHeld"] == true && status["runs"].as_u64().unwrap() >= 2 {
                holders.push(n);
            }
        }
        if let [holder] = holders[..] {
            break holder;
        }
        assert!(holders.len() <= 1, "two replicas hold one lease: {holders:?}");
        assert!(Instant::now() < deadline, "no replica ran the integration within 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for (n, replica) in replicas.iter().enumerate().filter(|(n, _)| *n != holder) {
        let status = status(replica).await;
        assert_eq!(status["leaseHeld"], false, "replica {n}: {status}");
        assert_eq!(status["runs"], 0, "replica {n} stands by: {status}");
    }

    // The holder dies without giving the lease up; another runs the integration within 30 s.
    replicas.remove(holder).server.kill();
    let killed = Instant::now();
    let taken_over = loop {
        let mut runners = Vec::new();
        for (n, replica) in replicas.iter().enumerate() {
            let status = status(replica).await;
            if status["leaseHeld"] == true && status["runs"].as_u64().unwrap() >= 1 {
                runners.push(n);
            }
        }
        assert!(runners.len() <= 1, "two replicas hold one lease: {runners:?}");
        if !runners.is_empty() {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "nobody took the integration over within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("taken over {} ms after the holder was killed", taken_over.as_millis());
    for replica in replicas {
        replica.server.stop();
    }
}
