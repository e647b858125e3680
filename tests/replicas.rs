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
    // A create goes to its writer without catching up first: what A just wrote still decides
    // it, one after the other as well as at once.
    let (status, taken) = create_user(&replicas[1], &tokens, "alice@example.com").await;
    assert_eq!((status, &taken["scimType"]), (409, &json!("uniqueness")), "{taken}");
    let (status, group) = send(
        reqwest::Method::POST,
        &format!("{}/scim/v2/Groups", replicas[2].server.origin),
        &tokens.scim,
        Some(json!({"displayName": "vpn", "members": [{"value": id}]})),
    )
    .await;
    assert_eq!(status, 201, "{group}");
    assert_eq!(group["members"][0]["value"], json!(id), "{group}");
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

/// Where the load goes: the replicas in turn, as a round-robin load balancer sends it, and the
/// next one when a replica does not answer (it was killed), as a client or balancer retries.
struct Balancer {
    origins: Vec<String>,
    next: std::sync::atomic::AtomicUsize,
    client: reqwest::Client,
    token: String,
}

/// A replica's answer to a request sent through a [`Balancer`].
struct Answer {
    status: u16,
    body: Value,
    /// Whether an earlier attempt went unanswered: it may have been carried out.
    retried: bool,
}

impl Balancer {
    fn new(origins: Vec<String>, token: &str) -> Balancer {
        Balancer {
            origins,
            next: std::sync::atomic::AtomicUsize::new(0),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            token: token.to_owned(),
        }
    }

    /// Sends the SCIM request until a replica answers with anything but a 5xx; gives up after
    /// a minute of failures.
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Answer {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut retried = false;
        loop {
            let turn = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let origin = &self.origins[turn % self.origins.len()];
            let mut request = self
                .client
                .request(method.clone(), format!("{origin}/scim/v2{path}"))
                .bearer_auth(&self.token);
            if let Some(body) = body {
                request = request.json(body);
            }
            match request.send().await {
                Ok(response) if !response.status().is_server_error() => {
                    let status = response.status().as_u16();
                    let text = response.text().await.unwrap_or_default();
                    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
                    return Answer { status, body, retried };
                }
                Ok(_) | Err(_) => retried = true,
            }
            assert!(
                Instant::now() < deadline,
                "no replica answered {method} {path} within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// What the load was told was done, by userName: the user's id once its create was
/// acknowledged, the groups it was acknowledged to join, and whether its delete was.
#[derive(Default)]
struct Acknowledged {
    created: std::collections::BTreeMap<String, String>,
    joined: std::collections::BTreeMap<String, Vec<String>>,
    deleted: std::collections::BTreeSet<String>,
    /// Creates whose first attempt went unanswered and whose retry found the name taken:
    /// created once, by the unanswered attempt.
    created_unacknowledged: std::collections::BTreeSet<String>,
}

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// One load client until `stop`: creates users, adds each to a group, deletes every fifth.
async fn load(
    worker: usize,
    balancer: std::sync::Arc<Balancer>,
    groups: std::sync::Arc<Vec<String>>,
    acked: std::sync::Arc<std::sync::Mutex<Acknowledged>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let mut n = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let name = format!("w{worker}-{n}@example.com");
        let created = balancer
            .send(
                reqwest::Method::POST,
                "/Users",
                Some(&json!({"userName": name, "active": true})),
            )
            .await;
        let id = match created.status {
            201 => created.body["id"].as_str().unwrap().to_owned(),
            409 if created.retried => {
                // The unanswered attempt created it; the load goes on with the next name.
                acked.lock().unwrap().created_unacknowledged.insert(name);
                n += 1;
                continue;
            }
            status => panic!("creating {name}: {status} {}", created.body),
        };
        acked.lock().unwrap().created.insert(name.clone(), id.clone());
        let group = &groups[n % groups.len()];
        let joined = balancer
            .send(
                reqwest::Method::PATCH,
                &format!("/Groups/{group}"),
                Some(&json!({"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members", "value": [{"value": id}]}]})),
            )
            .await;
        assert!(
            matches!(joined.status, 200 | 204),
            "{name} joining {group}: {} {}",
            joined.status,
            joined.body
        );
        acked
            .lock()
            .unwrap()
            .joined
            .entry(name.clone())
            .or_default()
            .push(group.clone());
        if n % 5 == 4 {
            let deleted = balancer
                .send(reqwest::Method::DELETE, &format!("/Users/{id}"), None)
                .await;
            assert!(
                deleted.status == 204 || (deleted.status == 404 && deleted.retried),
                "deleting {name}: {} {}",
                deleted.status,
                deleted.body
            );
            acked.lock().unwrap().deleted.insert(name);
        }
        n += 1;
    }
}

/// Until `stop`: one userName created through every replica at once, round after round. Of
/// the replicas that answer, at most one creates it and the others answer 409 `uniqueness`;
/// when all answer, exactly one creates it.
async fn contend(
    origins: Vec<String>,
    token: String,
    acked: std::sync::Arc<std::sync::Mutex<Acknowledged>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> usize {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut rounds = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let name = format!("contended{rounds}@example.com");
        let attempts = origins.iter().map(|origin| {
            client
                .post(format!("{origin}/scim/v2/Users"))
                .bearer_auth(&token)
                .json(&json!({"userName": name, "active": true}))
                .send()
        });
        let mut answers = Vec::new();
        for answer in futures_util::future::join_all(attempts).await.into_iter().flatten() {
            let status = answer.status().as_u16();
            answers.push((status, answer.json::<Value>().await.unwrap_or(Value::Null)));
        }
        let created: Vec<_> = answers.iter().filter(|(status, _)| *status == 201).collect();
        assert!(created.len() <= 1, "{name} created twice: {answers:?}");
        for (status, body) in &answers {
            assert!(
                *status == 201 || (*status == 409 && body["scimType"] == "uniqueness"),
                "{name}: {answers:?}"
            );
        }
        if answers.len() == origins.len() {
            assert_eq!(created.len(), 1, "{name}: {answers:?}");
        }
        if let [(_, body)] = &created[..] {
            let id = body["id"].as_str().unwrap().to_owned();
            acked.lock().unwrap().created.insert(name, id);
        }
        rounds += 1;
    }
    rounds
}

/// Every SCIM resource of `kind` a replica lists, in its order, its own origin taken out of
/// the resources' locations.
async fn scim_resources(origin: &str, token: &str, kind: &str) -> Vec<Value> {
    let mut resources = Vec::new();
    loop {
        let (status, page) = send(
            reqwest::Method::GET,
            &format!("{origin}/scim/v2/{kind}?startIndex={}&count=100", resources.len() + 1),
            token,
            None,
        )
        .await;
        assert_eq!(status, 200, "{page}");
        let items = page["Resources"].as_array().cloned().unwrap_or_default();
        let done = items.is_empty() || resources.len() + items.len() >= page["totalResults"].as_u64().unwrap() as usize;
        resources.extend(items);
        if done {
            let text = serde_json::to_string(&resources).unwrap().replace(origin, "");
            let mut resources: Vec<Value> = serde_json::from_str(&text).unwrap();
            // The order of a list or of a group's members is no part of the state.
            for resource in &mut resources {
                if let Some(members) = resource["members"].as_array_mut() {
                    members.sort_by(|a, b| a["value"].as_str().cmp(&b["value"].as_str()));
                }
            }
            resources.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
            return resources;
        }
    }
}

/// What a replica shows of the tenant: its head, its users and its groups with their members.
async fn directory(origin: &str, tokens: &Tokens) -> (u64, Vec<Value>, Vec<Value>) {
    let (status, summary) = send(
        reqwest::Method::GET,
        &format!("{origin}/api/v1/tenants/default"),
        &tokens.admin,
        None,
    )
    .await;
    assert_eq!(status, 200, "{summary}");
    let users = scim_resources(origin, &tokens.scim, "Users").await;
    let groups = scim_resources(origin, &tokens.scim, "Groups").await;
    (summary["seq"].as_u64().unwrap(), users, groups)
}

/// Which of `origins` hold the lease of the integration `jc` and have run it since they took it.
async fn running_jc(origins: &[&str], admin: &str) -> Vec<usize> {
    let mut holders = Vec::new();
    for (n, origin) in origins.iter().enumerate() {
        let (code, status) = send(
            reqwest::Method::GET,
            &format!("{origin}/api/v1/tenants/default/integrations/jc"),
            admin,
            None,
        )
        .await;
        assert_eq!(code, 200, "{status}");
        if status["leaseHeld"] == true && status["runs"].as_u64().unwrap() >= 1 {
            holders.push(n);
        }
    }
    assert!(holders.len() <= 1, "two replicas hold one lease: {holders:?}");
    holders
}

/// Waits up to 30 s for one of `origins` to run `jc`; its index.
async fn jc_runner(origins: &[&str], admin: &str, what: &str) -> usize {
    let since = Instant::now();
    loop {
        if let [runner] = running_jc(origins, admin).await[..] {
            eprintln!("{what}: after {} ms", since.elapsed().as_millis());
            return runner;
        }
        assert!(since.elapsed() < Duration::from_secs(30), "{what}: not within 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the load has had `more` creates acknowledged besides those it has now.
async fn progress(acked: &std::sync::Mutex<Acknowledged>, more: usize) {
    let target = acked.lock().unwrap().created.len() + more;
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.lock().unwrap().created.len() < target {
        assert!(Instant::now() < deadline, "the load made no progress for 120 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_of_three_replicas_killed_under_load_lose_no_acknowledged_write() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let Some((_schema, storage)) = scratch_postgres().await else {
        return;
    };
    let mut directory_at_idp = Directory::default();
    directory_at_idp.put_user("1001", "ada.lovelace", true);
    let fake = FakeIdp::start(Vendor::JumpCloud, directory_at_idp, false).await;
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
    let (replicas, tokens) = replicas(root.path(), 3, &storage, Some(&config));
    let origins: Vec<String> = replicas.iter().map(|replica| replica.server.origin.clone()).collect();
    let mut replicas: Vec<Option<Replica>> = replicas.into_iter().map(Some).collect();
    let live = |replicas: &[Option<Replica>]| -> Vec<usize> {
        (0..replicas.len()).filter(|n| replicas[*n].is_some()).collect()
    };
    let live_origins = |replicas: &[Option<Replica>]| -> Vec<String> {
        live(replicas).into_iter().map(|n| origins[n].clone()).collect()
    };

    // One checkpoint key, kept in the database: each replica has its public half, none the
    // secret.
    let public_keys: Vec<String> = (0..3)
        .map(|n| {
            let dir = root.path().join(format!("replica{n}"));
            assert!(
                !dir.join("checkpoint-key").exists(),
                "replica {n} keeps the secret on its disk"
            );
            std::fs::read_to_string(dir.join("checkpoint-key.pub")).unwrap()
        })
        .collect();
    assert!(public_keys.windows(2).all(|pair| pair[0] == pair[1]), "{public_keys:?}");

    let balancer = Arc::new(Balancer::new(origins.clone(), &tokens.scim));
    let mut groups = Vec::new();
    for n in 0..4 {
        let made = balancer
            .send(
                reqwest::Method::POST,
                "/Groups",
                Some(&json!({"displayName": format!("team{n}")})),
            )
            .await;
        assert_eq!(made.status, 201, "{}", made.body);
        groups.push(made.body["id"].as_str().unwrap().to_owned());
    }
    let groups = Arc::new(groups);
    let all: Vec<&str> = origins.iter().map(String::as_str).collect();
    let first_holder = jc_runner(&all, &tokens.admin, "the integration runs on one replica").await;

    // The load: four clients through the balancer, and one userName through every replica
    // at once, round after round.
    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|worker| {
            tokio::spawn(load(
                worker,
                Arc::clone(&balancer),
                Arc::clone(&groups),
                Arc::clone(&acked),
                Arc::clone(&stop),
            ))
        })
        .collect();
    let contender = tokio::spawn(contend(
        origins.clone(),
        tokens.scim.clone(),
        Arc::clone(&acked),
        Arc::clone(&stop),
    ));
    progress(&acked, 40).await;

    // Kill -9 the replica that runs the integration; another takes it over.
    replicas[first_holder].take().unwrap().server.kill();
    eprintln!("killed replica {first_holder}");
    let survivors = live_origins(&replicas);
    let survivors: Vec<&str> = survivors.iter().map(String::as_str).collect();
    let second_holder = live(&replicas)[jc_runner(&survivors, &tokens.admin, "taken over after the first kill").await];
    progress(&acked, 40).await;

    // Kill -9 the new holder too; the last replica takes the integration over and carries
    // the whole load.
    replicas[second_holder].take().unwrap().server.kill();
    eprintln!("killed replica {second_holder}");
    let last = live(&replicas)[0];
    jc_runner(
        &[origins[last].as_str()],
        &tokens.admin,
        "taken over after the second kill",
    )
    .await;
    progress(&acked, 40).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    let rounds = contender.await.unwrap();
    let acked = Arc::into_inner(acked).unwrap().into_inner().unwrap();
    eprintln!(
        "acknowledged: {} creates ({} of them contended, out of {rounds} rounds), {} joins, {} deletes; {} creates answered only by a 409 on retry",
        acked.created.len(),
        acked
            .created
            .keys()
            .filter(|name| name.starts_with("contended"))
            .count(),
        acked.joined.len(),
        acked.deleted.len(),
        acked.created_unacknowledged.len()
    );

    // The killed replicas come back on their own data directories, and one more starts on a
    // new one (it folds the whole log afresh): all three show the same directory.
    let restarted: Vec<Replica> = (0..3)
        .filter(|n| *n != last)
        .map(|n| Replica {
            server: Serving::start_with(
                &root.path().join(format!("replica{n}")),
                Some(&config),
                &[("IDPSYNC_STORAGE", storage.as_str())],
            ),
        })
        .collect();
    let survivor = replicas[last].take().unwrap();
    let fresh = Replica {
        server: Serving::start_with(
            &root.path().join("fresh"),
            Some(&config),
            &[("IDPSYNC_STORAGE", storage.as_str())],
        ),
    };
    let everyone: Vec<&Replica> = restarted.iter().chain([&survivor, &fresh]).collect();
    // Scheduled syncs may still append (none should: the IdP does not change), so the
    // replicas are read until they agree.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (seq, users, groups_seen) = loop {
        let mut seen = Vec::new();
        for replica in &everyone {
            seen.push(directory(&replica.server.origin, &tokens).await);
        }
        if seen.windows(2).all(|pair| pair[0] == pair[1]) {
            break seen.swap_remove(0);
        }
        if Instant::now() > deadline {
            for (n, view) in seen.iter().enumerate().skip(1) {
                assert_eq!(view.0, seen[0].0, "replica {n}'s head differs");
                assert_eq!(view.1, seen[0].1, "replica {n}'s users differ");
                assert_eq!(view.2, seen[0].2, "replica {n}'s groups differ");
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    // Every acknowledged create is there once with its id, unless its delete was
    // acknowledged; every acknowledged join holds; userNames are unique.
    let by_name: std::collections::BTreeMap<&str, &Value> = users
        .iter()
        .map(|user| (user["userName"].as_str().unwrap(), user))
        .collect();
    assert_eq!(by_name.len(), users.len(), "a userName is held twice");
    let ids: std::collections::BTreeSet<&str> = users.iter().map(|user| user["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), users.len(), "an id is held twice");
    for (name, id) in &acked.created {
        match by_name.get(name.as_str()) {
            Some(user) => {
                assert!(!acked.deleted.contains(name), "{name} was deleted, yet listed");
                assert_eq!(user["id"], id.as_str(), "{name}");
            }
            None => assert!(
                acked.deleted.contains(name),
                "the acknowledged create of {name} is lost"
            ),
        }
    }
    for name in &acked.created_unacknowledged {
        assert!(
            by_name.contains_key(name.as_str()),
            "{name} answered 409, yet is not listed"
        );
    }
    assert!(by_name.contains_key("ada.lovelace"), "the integration's user");
    let members: std::collections::BTreeMap<&str, std::collections::BTreeSet<&str>> = groups_seen
        .iter()
        .map(|group| {
            let members = group["members"]
                .as_array()
                .map(|members| members.iter().map(|m| m["value"].as_str().unwrap()).collect())
                .unwrap_or_default();
            (group["id"].as_str().unwrap(), members)
        })
        .collect();
    for (name, joined) in &acked.joined {
        if acked.deleted.contains(name) {
            continue;
        }
        let id = acked.created[name].as_str();
        for group in joined {
            assert!(
                members[group.as_str()].contains(id),
                "{name}'s acknowledged join of {group} is lost"
            );
        }
    }

    // In the log: every userName provisioned at most once, every record once and in order.
    let mut stream = SseClient::connect(
        &format!("{}/api/v1/tenants/default/changes?from=1", survivor.server.origin),
        &tokens.admin,
        None,
    )
    .await;
    let mut provisioned = std::collections::BTreeMap::<String, usize>::new();
    let mut expected = 1;
    while expected <= seq {
        let item = stream.next().await;
        if item.id.contains('.') {
            continue;
        }
        assert_eq!(item.id, expected.to_string(), "records in order, none twice");
        if item.data["event"]["type"] == "user.provisioned" {
            let name = item.data["event"]["userName"].as_str().unwrap().to_owned();
            *provisioned.entry(name).or_default() += 1;
        }
        expected += 1;
    }
    for (name, times) in &provisioned {
        assert_eq!(*times, 1, "{name} provisioned {times} times");
    }
    for name in acked.created.keys().chain(&acked.created_unacknowledged) {
        assert!(provisioned.contains_key(name), "{name} is not in the log");
    }

    // And the log verifies: chain, no gap, every snapshot the state the log folds to.
    let verified = binary::idpsync(&root.path().join("operator"))
        .env("IDPSYNC_STORAGE", &storage)
        .args(["log", "verify", "--deep"])
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    drop(stream);
    drop(everyone);
    for replica in restarted.into_iter().chain([survivor, fresh]) {
        replica.server.stop();
    }
}
