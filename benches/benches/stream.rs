//! Load runs of the change stream and of sealing, over the real service: SCIM, the management
//! API and the engine on a durable redb log in a temporary directory, on loopback.
//!
//! 1. Revocation latency: SCIM `PATCH active=false` sent at 1,000 writes/s (open loop, one
//!    user per request, each in a group bound to a policy); the time from sending a request to
//!    the SSE client receiving that user's `access.revoked`. p50, p99, max. Run again with a
//!    consumer that acknowledges each revocation as it receives it (`POST …/changes/ack`, as
//!    a management server would once it applied it): each step of the offboarding chain, from
//!    the request to the acknowledgement answered (recorded in the log).
//! 2. Subscribers: durable append throughput (membership changes in a bound group, each
//!    granting or revoking access) with no SSE client, then with 100 SSE clients reading the
//!    stream; alternated three times.
//! 3. Sealing: durable append throughput of user provisioning and replacement (the events
//!    with personal fields) with per-user encryption on and off, 50,000 users a run; alternated
//!    seven times, with the process CPU per commit beside each rate.
//!
//! Run: `cargo bench -p idpsync-benches --bench stream` (about two minutes). Not criterion: a
//! load run reports percentiles and rates; each figure is printed with its spread.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use idpsync::api::{ApiSettings, ApiState};
use idpsync::engine::ids::{GroupId, Member, ResourceId, UserId};
use idpsync::engine::model::{BindingGroups, MultiValue, Name, Owner, ResourceKind, ResourceRef, UserProfile};
use idpsync::engine::{Cause, Command, Engine, Origin, Outcome, Source, Tenant, TenantSettings};
use idpsync::storage::TenantId;
use idpsync::tokens::{TokenAuthenticator, TokenKind, TokenStore};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const IN_FLIGHT: usize = 256;

fn origin() -> Origin {
    Origin {
        source: Source::Workload,
        cause: Cause::Unspecified,
    }
}

fn profile(n: usize) -> UserProfile {
    UserProfile {
        user_name: format!("load-{n}@example.com"),
        name: Some(Box::new(Name {
            given_name: Some(format!("Given{n}")),
            family_name: Some("Family".into()),
            ..Name::default()
        })),
        display_name: Some(format!("Load User {n}")),
        emails: vec![MultiValue {
            value: format!("load-{n}@example.com"),
            kind: Some("work".into()),
            primary: true,
            ..MultiValue::default()
        }],
        ..UserProfile::default()
    }
}

/// Runs `commands` through the tenant with up to [`IN_FLIGHT`] in flight; returns the
/// outcomes in order.
async fn pipeline(tenant: &Arc<Tenant>, commands: Vec<Command>) -> Vec<Outcome> {
    let mut pending = std::collections::VecDeque::new();
    let mut outcomes = Vec::with_capacity(commands.len());
    for command in commands {
        if pending.len() >= IN_FLIGHT {
            let commit: idpsync::engine::tenant::PendingCommit = pending.pop_front().unwrap();
            outcomes.push(commit.committed().await.unwrap().outcome);
        }
        pending.push_back(tenant.enqueue(command, origin()).await.unwrap());
    }
    for commit in pending {
        outcomes.push(commit.committed().await.unwrap().outcome);
    }
    outcomes
}

/// Provisions `count` users through [`pipeline`]; their ids in order.
async fn provision_users(tenant: &Arc<Tenant>, count: usize) -> Vec<UserId> {
    let provisions = (0..count)
        .map(|n| Command::ProvisionUser {
            owner: Owner::Operator,
            external_id: None,
            active: true,
            profile: profile(n),
        })
        .collect();
    pipeline(tenant, provisions)
        .await
        .into_iter()
        .map(|outcome| match outcome {
            Outcome::UserProvisioned(id) => id,
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

/// `count` users, all in one group bound to a policy as sources (one grant each).
async fn populate(tenant: &Arc<Tenant>, count: usize) -> (Vec<UserId>, GroupId) {
    let users = provision_users(tenant, count).await;
    let created = tenant
        .execute(
            Command::CreateGroup {
                owner: Owner::Operator,
                external_id: None,
                display_name: "vpn".into(),
                members: users.iter().map(|id| Member::User(*id)).collect(),
            },
            origin(),
        )
        .await
        .unwrap();
    let Outcome::GroupCreated(group) = created.outcome else {
        unreachable!()
    };
    tenant
        .execute(
            Command::SetBinding {
                resource: ResourceRef {
                    kind: ResourceKind::Policy,
                    id: ResourceId::new("office").unwrap(),
                },
                groups: BindingGroups::Policy {
                    sources: vec![group],
                    destinations: vec![],
                },
            },
            origin(),
        )
        .await
        .unwrap();
    (users, group)
}

struct Served {
    origin: String,
    scim_token: String,
    admin_token: String,
    api: ApiState,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn serve(engine: &Arc<Engine>, data_dir: &Path) -> Served {
    let tokens = TokenStore::new(data_dir);
    let tenant = TenantId::default_tenant();
    let scim_token = tokens.create(&tenant, "load", TokenKind::Scim).unwrap().1;
    let admin_token = tokens.create(&tenant, "load", TokenKind::Admin).unwrap().1;
    let api = ApiState::new(
        Arc::clone(engine),
        Arc::new(TokenAuthenticator::admin(tokens.clone()).unwrap()),
        ApiSettings::default(),
    )
    .unwrap();
    // A hundred change streams share one admin token here: more than a token may hold open by
    // default.
    let settings = idpsync::server::ServiceSettings {
        http: idpsync::server::HttpLimits {
            per_token_concurrency: 1_024,
            ..idpsync::server::HttpLimits::default()
        },
        ..idpsync::server::ServiceSettings::default()
    };
    let router = idpsync::server::service(
        Arc::clone(engine),
        Arc::new(TokenAuthenticator::new(tokens).unwrap()),
        api.clone(),
        idpsync::metrics::install().unwrap(),
        &settings,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let closer = api.clone();
    let task = tokio::spawn(async move {
        idpsync::server::run(listener, router, &settings.http, async move {
            let _ = stopped.await;
            closer.close_streams();
        })
        .await
        .unwrap();
    });
    Served {
        origin: format!("http://{address}"),
        scim_token,
        admin_token,
        api,
        stop,
        task,
    }
}

impl Served {
    async fn stop(self) {
        self.api.close_streams();
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Reads an SSE response, handing each complete item's (id, event, data) to `each`.
async fn read_sse(mut response: reqwest::Response, mut each: impl FnMut(&str, &str, &str)) {
    let mut buffer = String::new();
    while let Ok(Some(bytes)) = response.chunk().await {
        buffer.push_str(&String::from_utf8_lossy(&bytes));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let (mut id, mut event, mut data) = ("", "", "");
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("id: ") {
                    id = value;
                } else if let Some(value) = line.strip_prefix("event: ") {
                    event = value;
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data = value;
                }
            }
            each(id, event, data);
        }
    }
}

/// CPU seconds this process has used (user and system), from `/proc/self/stat`.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|field| field.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name; 100 ticks/s.
    (ticks(11) + ticks(12)) / 100.0
}

fn percentile(sorted: &[Duration], quantile: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * quantile).round() as usize]
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn median_and_spread(values: &mut [f64]) -> String {
    values.sort_by(f64::total_cmp);
    format!(
        "median {:.0}/s (runs {})",
        values[values.len() / 2],
        values.iter().map(|v| format!("{v:.0}")).collect::<Vec<_>>().join(", ")
    )
}

/// What the change stream's consumer does with each revocation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Consumer {
    /// Only reads it.
    Reads,
    /// Acknowledges it at once, as a management server does once it has applied it.
    Acknowledges,
}

async fn revocation_latency(consumer: Consumer) {
    const RATE_PER_SECOND: usize = 1_000;
    const SECONDS: usize = 10;
    const WARM_UP: usize = 1_000;
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(idpsync::open(dir.path(), TenantSettings::default()).await.unwrap());
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    let total = RATE_PER_SECOND * SECONDS + WARM_UP;
    let (users, _) = populate(&tenant, total).await;
    let served = serve(&engine, dir.path()).await;
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let received: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let acknowledged: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let http = reqwest::Client::builder().tcp_nodelay(true).build().unwrap();
    let stream = http
        .get(format!("{}/api/v1/tenants/default/changes", served.origin))
        .bearer_auth(&served.admin_token)
        .send()
        .await
        .unwrap();
    let reader = {
        let received = Arc::clone(&received);
        let (acknowledged, http) = (Arc::clone(&acknowledged), http.clone());
        let ack_url = format!("{}/api/v1/tenants/default/changes/ack", served.origin);
        let admin_token = served.admin_token.clone();
        tokio::spawn(read_sse(stream, move |id, event, data| {
            if event == "access.revoked" {
                let arrived = Instant::now();
                let value: serde_json::Value = serde_json::from_str(data).unwrap();
                let user = value["user"]["id"].as_str().unwrap().to_owned();
                received.lock().unwrap().push((user.clone(), arrived));
                if consumer == Consumer::Acknowledges {
                    let (http, url, token) = (http.clone(), ack_url.clone(), admin_token.clone());
                    let (acknowledged, body) = (Arc::clone(&acknowledged), format!(r#"{{"id":"{id}"}}"#));
                    tokio::spawn(async move {
                        let response = http
                            .post(url)
                            .bearer_auth(token)
                            .header("content-type", "application/json")
                            .body(body)
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(response.status(), 200);
                        acknowledged.lock().unwrap().insert(user, Instant::now());
                    });
                }
            }
        }))
    };
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / RATE_PER_SECOND as u64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let response_times: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let mut requests = Vec::with_capacity(total);
    let started = Instant::now();
    for user in &users {
        ticker.tick().await;
        let url = format!("{}/scim/v2/Users/{user}", served.origin);
        let (http, token, sent, response_times) = (
            http.clone(),
            served.scim_token.clone(),
            Arc::clone(&sent),
            Arc::clone(&response_times),
        );
        let user = user.to_string();
        requests.push(tokio::spawn(async move {
            let body = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}"#;
            let at = Instant::now();
            sent.lock().unwrap().insert(user, at);
            let response = http
                .patch(url)
                .bearer_auth(token)
                .header("content-type", "application/scim+json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            response_times.lock().unwrap().push(at.elapsed());
        }));
    }
    let offered = total as f64 / started.elapsed().as_secs_f64();
    for request in requests {
        request.await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let expected_acks = if consumer == Consumer::Acknowledges { total } else { 0 };
    while (received.lock().unwrap().len() < total || acknowledged.lock().unwrap().len() < expected_acks)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent = sent.lock().unwrap().clone();
    let received = received.lock().unwrap().clone();
    let mut latencies: Vec<Duration> = received
        .iter()
        .skip(WARM_UP)
        .map(|(user, arrived)| arrived.duration_since(sent[user]))
        .collect();
    latencies.sort();
    let mut responses = response_times.lock().unwrap().clone();
    responses.sort();
    if consumer == Consumer::Acknowledges {
        let acknowledged = acknowledged.lock().unwrap().clone();
        let counted = || {
            received
                .iter()
                .skip(WARM_UP)
                .filter(|(user, _)| acknowledged.contains_key(user))
        };
        let mut to_ack: Vec<Duration> = counted()
            .map(|(user, arrived)| acknowledged[user].duration_since(*arrived))
            .collect();
        let mut total_chain: Vec<Duration> = counted()
            .map(|(user, _)| acknowledged[user].duration_since(sent[user]))
            .collect();
        to_ack.sort();
        total_chain.sort();
        println!(
            "stream/offboarding_chain: {} PATCHes offered at {offered:.0}/s, {} acknowledged ({} after warm-up); \
             request -> recorded (PATCH answered): p50 {:?}, p99 {:?}; request -> access.revoked on the stream: p50 {:?}, p99 {:?}; \
             revoked -> acknowledgement recorded (ack answered): p50 {:?}, p99 {:?}; whole chain: p50 {:?}, p99 {:?}, max {:?}",
            total,
            acknowledged.len(),
            to_ack.len(),
            percentile(&responses, 0.5),
            percentile(&responses, 0.99),
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            percentile(&to_ack, 0.5),
            percentile(&to_ack, 0.99),
            percentile(&total_chain, 0.5),
            percentile(&total_chain, 0.99),
            total_chain[total_chain.len() - 1],
        );
    } else {
        println!(
            "stream/revocation_latency: {} PATCHes offered at {offered:.0}/s, {} revocations received ({} after warm-up); \
         SCIM send -> SSE access.revoked: p50 {:?}, p90 {:?}, p99 {:?}, max {:?}; PATCH response: p50 {:?}, p99 {:?}",
            total,
            received.len(),
            latencies.len(),
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.9),
            percentile(&latencies, 0.99),
            latencies[latencies.len() - 1],
            percentile(&responses, 0.5),
            percentile(&responses, 0.99),
        );
    }
    reader.abort();
    served.stop().await;
    engine.shutdown().await;
}

/// Commits per second of membership changes (each one access change) for `duration`.
async fn membership_throughput(tenant: &Arc<Tenant>, users: &[UserId], group: GroupId, duration: Duration) -> f64 {
    let started = Instant::now();
    let mut commits = 0u64;
    let mut pending = std::collections::VecDeque::new();
    let mut index = 0usize;
    while started.elapsed() < duration {
        let user = users[index % users.len()];
        // The first pass takes users out, the second puts them back, and so on.
        let command = if (index / users.len()).is_multiple_of(2) {
            Command::RemoveMembers {
                group,
                members: vec![Member::User(user)],
            }
        } else {
            Command::AddMembers {
                group,
                members: vec![Member::User(user)],
            }
        };
        index += 1;
        if pending.len() >= IN_FLIGHT {
            let commit: idpsync::engine::tenant::PendingCommit = pending.pop_front().unwrap();
            commit.committed().await.unwrap();
            commits += 1;
        }
        pending.push_back(tenant.enqueue(command, origin()).await.unwrap());
    }
    for commit in pending {
        commit.committed().await.unwrap();
        commits += 1;
    }
    commits as f64 / started.elapsed().as_secs_f64()
}

async fn subscribers() {
    const SUBSCRIBERS: usize = 100;
    const ROUNDS: usize = 5;
    const ROUND: Duration = Duration::from_secs(4);
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(idpsync::open(dir.path(), TenantSettings::default()).await.unwrap());
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    let (users, group) = populate(&tenant, 20_000).await;
    let served = serve(&engine, dir.path()).await;
    let http = reqwest::Client::new();
    let (mut alone, mut watched) = (Vec::new(), Vec::new());
    let (mut alone_cpu, mut watched_cpu) = (Vec::new(), Vec::new());
    let mut bytes_per_round = Vec::new();
    for _ in 0..ROUNDS {
        let cpu = cpu_seconds();
        let rate = membership_throughput(&tenant, &users, group, ROUND).await;
        alone_cpu.push((cpu_seconds() - cpu) / (rate * ROUND.as_secs_f64()) * 1e6);
        alone.push(rate);
        let counted = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut readers = Vec::new();
        for _ in 0..SUBSCRIBERS {
            let response = http
                .get(format!("{}/api/v1/tenants/default/changes", served.origin))
                .bearer_auth(&served.admin_token)
                .send()
                .await
                .unwrap();
            let counted = Arc::clone(&counted);
            // The clients only count bytes, so that the figure is the server's cost, not the
            // cost of parsing 100 streams on the same two cores.
            readers.push(tokio::spawn(async move {
                let mut response = response;
                while let Ok(Some(bytes)) = response.chunk().await {
                    counted.fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
                }
            }));
        }
        let cpu = cpu_seconds();
        let rate = membership_throughput(&tenant, &users, group, ROUND).await;
        watched_cpu.push((cpu_seconds() - cpu) / (rate * ROUND.as_secs_f64()) * 1e6);
        watched.push(rate);
        tokio::time::sleep(Duration::from_millis(500)).await;
        bytes_per_round.push(counted.load(std::sync::atomic::Ordering::Relaxed));
        for reader in readers {
            reader.abort();
        }
    }
    let (alone_text, watched_text) = (median_and_spread(&mut alone), median_and_spread(&mut watched));
    println!(
        "stream/subscribers: durable membership changes, no SSE client: {alone_text}; with {SUBSCRIBERS} SSE clients: {watched_text}; \
         change: {:+.1} % (medians); process CPU per commit: {:.1} µs alone, {:.1} µs with clients (medians); \
         MB delivered per round to the clients: {:?}",
        (watched[watched.len() / 2] / alone[alone.len() / 2] - 1.0) * 100.0,
        median(&mut alone_cpu),
        median(&mut watched_cpu),
        bytes_per_round
            .iter()
            .map(|bytes| bytes / 1_000_000)
            .collect::<Vec<_>>()
    );
    served.stop().await;
    engine.shutdown().await;
}

/// Provisioning or replacing users: commits per second, and process CPU per commit.
struct PersonalRun {
    rate: f64,
    cpu_micros: f64,
}

impl PersonalRun {
    async fn measure(count: usize, work: impl std::future::Future<Output = ()>) -> PersonalRun {
        let (cpu, started) = (cpu_seconds(), Instant::now());
        work.await;
        PersonalRun {
            rate: count as f64 / started.elapsed().as_secs_f64(),
            cpu_micros: (cpu_seconds() - cpu) / count as f64 * 1e6,
        }
    }
}

/// Provisioning `count` users, then replacing each once.
async fn personal_throughput(seal: bool, count: usize) -> (PersonalRun, PersonalRun) {
    let dir = tempfile::tempdir().unwrap();
    let settings = TenantSettings {
        seal_personal: seal,
        ..TenantSettings::default()
    };
    let engine = Arc::new(idpsync::open(dir.path(), settings).await.unwrap());
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    let mut users = Vec::new();
    let provisioned = PersonalRun::measure(count, async { users = provision_users(&tenant, count).await }).await;
    let replacements = users
        .iter()
        .enumerate()
        .map(|(n, user)| {
            let mut changed = profile(n);
            changed.display_name = Some(format!("Renamed {n}"));
            Command::ReplaceUser {
                user: *user,
                expected_version: None,
                external_id: None,
                active: None,
                profile: changed,
            }
        })
        .collect();
    let replaced = PersonalRun::measure(count, async {
        pipeline(&tenant, replacements).await;
    })
    .await;
    engine.shutdown().await;
    (provisioned, replaced)
}

/// The runs of one operation with sealing on or off: rates, and CPU per commit.
#[derive(Default)]
struct PersonalRuns {
    rates: Vec<f64>,
    cpu_micros: Vec<f64>,
}

async fn sealing() {
    const USERS: usize = 50_000;
    const ROUNDS: usize = 7;
    let mut runs: HashMap<(&str, bool), PersonalRuns> = HashMap::new();
    // The first run of a process also pays for growing its heap: run one of each, uncounted.
    personal_throughput(true, USERS).await;
    personal_throughput(false, USERS).await;
    // Alternate which goes first, so that neither always runs on a process warmed by the other.
    for round in 0..ROUNDS {
        for seal in [round % 2 == 0, round % 2 == 1] {
            let (provision, replace) = personal_throughput(seal, USERS).await;
            for (label, run) in [("provision", provision), ("replace", replace)] {
                let runs = runs.entry((label, seal)).or_default();
                runs.rates.push(run.rate);
                runs.cpu_micros.push(run.cpu_micros);
            }
        }
    }
    for label in ["provision", "replace"] {
        let mut sealed = runs.remove(&(label, true)).unwrap_or_default();
        let mut plain = runs.remove(&(label, false)).unwrap_or_default();
        let (sealed_text, plain_text) = (
            median_and_spread(&mut sealed.rates),
            median_and_spread(&mut plain.rates),
        );
        let (sealed_cpu, plain_cpu) = (median(&mut sealed.cpu_micros), median(&mut plain.cpu_micros));
        println!(
            "stream/sealing {label} {USERS} users, durable: sealed {sealed_text}; plain {plain_text}; cost {:.1} % (medians); \
             process CPU per commit {sealed_cpu:.1} µs sealed, {plain_cpu:.1} µs plain (medians)",
            (1.0 - median(&mut sealed.rates) / median(&mut plain.rates)) * 100.0
        );
    }
}

fn main() {
    idpsync_allocator::configure();
    // `cargo bench` passes `--bench`; a name filter picks one run.
    let filter: Option<String> = std::env::args().skip(1).find(|arg| !arg.starts_with("--"));
    let wanted = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        if wanted("revocation_latency") {
            revocation_latency(Consumer::Reads).await;
        }
        if wanted("offboarding_chain") {
            revocation_latency(Consumer::Acknowledges).await;
        }
        if wanted("subscribers") {
            subscribers().await;
        }
        if wanted("sealing") {
            sealing().await;
        }
    });
}
