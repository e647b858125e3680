//! A large tenant: 100k users, 5k groups, 1M membership changes (about 1.1M events), made by
//! `idpsync dev seed --users 100000 --groups 5000 --memberships 1000000 --seed 1`.
//!
//! Measures: cold start to the first query with a snapshot (open the log, load the snapshot
//! with its history index, replay the tail, answer); full replay from the first record (read,
//! chain check, decode, fold), with and without building the history index beside the state,
//! and where it spends its time (each stage alone; the fold into a published state by event
//! type, and into the plain maps of a full replay with their freezing); members of a group at
//! a random past moment, with p50 and p99; the offboarding audit of a user (p50, p99); and the
//! peak resident memory of a process that has loaded the tenant.
//!
//! Run: `cargo bench -p idpsync-benches --bench tenant`. The first run seeds the tenant into
//! `target/bench-data/` (about half a minute) and later runs reuse it. "Cold" means a new
//! engine in a process whose page cache may hold the files: process-cold, not disk-cold.
//!
//! `IDPSYNC_BENCH_TENANT_SCALE=10` measures a tenant ten times the size (1M users, 50k groups,
//! 10M membership changes; the stages of a replay, which hold the whole log in memory, are left
//! out), and `IDPSYNC_BENCH_TENANT_STORAGE=postgres` keeps the tenant in PostgreSQL (the
//! database `IDPSYNC_TEST_POSTGRES_URL` names, schema `idpsync_bench_tenant_x<scale>`) instead
//! of redb.
//!
//! The allocator is mimalloc, as in the `idpsync` binary: the fold allocates on every event, and
//! with glibc's malloc the same full replay took 5–20 % longer (three alternated pairs).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use idpsync::workload::{WorkloadSpec, run as seed};
use idpsync_engine::audit::{AuditSources, BindingLog, audit_user};
use idpsync_engine::event::{LoggedEvent, decode_record};
use idpsync_engine::ids::{GroupId, Seq, Timestamp, UserId};
use idpsync_engine::reader::PAGE_LEN;
use idpsync_engine::replay::{replay, replay_recording};
use idpsync_engine::seal::Keyring;
use idpsync_engine::state::{Effects, FlatState, encode_snapshot};
use idpsync_engine::{Engine, History, State, TenantSettings};
use idpsync_storage::verify::ChainVerifier;
use idpsync_storage::{LogStore, PostgresSettings, PostgresStore, Record, RedbStore, TenantId};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CHILD_VAR: &str = "IDPSYNC_BENCH_MEMORY_CHILD";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Where the benchmark tenant lives, and its size.
struct Bench {
    spec: WorkloadSpec,
    location: Location,
    /// The name of the benchmark group: `tenant_1m` for the default size on redb.
    label: String,
}

enum Location {
    Redb(PathBuf),
    Postgres(Box<PostgresSettings>),
}

impl Bench {
    /// The benchmark the environment asks for (see the module's documentation).
    fn from_env() -> Bench {
        let scale: u64 = std::env::var("IDPSYNC_BENCH_TENANT_SCALE")
            .map(|scale| scale.parse().expect("IDPSYNC_BENCH_TENANT_SCALE: a whole number"))
            .unwrap_or(1);
        let spec = WorkloadSpec {
            users: 100_000 * scale,
            groups: 5_000 * scale,
            memberships: 1_000_000 * scale,
            seed: 1,
        };
        let storage = std::env::var("IDPSYNC_BENCH_TENANT_STORAGE").unwrap_or_else(|_| "redb".to_owned());
        let location = match storage.as_str() {
            "redb" => {
                let name = match scale {
                    1 => "tenant-100k-5k-1m".to_owned(),
                    _ => format!("tenant-x{scale}"),
                };
                Location::Redb(bench_data().join(name))
            }
            "postgres" => {
                let url = std::env::var("IDPSYNC_TEST_POSTGRES_URL")
                    .expect("IDPSYNC_BENCH_TENANT_STORAGE=postgres needs IDPSYNC_TEST_POSTGRES_URL");
                let settings = PostgresSettings::from_url(&url)
                    .and_then(|settings| settings.with_schema(&format!("idpsync_bench_tenant_x{scale}")))
                    .unwrap();
                Location::Postgres(Box::new(settings))
            }
            other => panic!("IDPSYNC_BENCH_TENANT_STORAGE: `redb` or `postgres`, not {other:?}"),
        };
        let label = match (scale, &location) {
            (1, Location::Redb(_)) => "tenant_1m".to_owned(),
            (_, Location::Redb(_)) => format!("tenant_{scale}m"),
            (_, Location::Postgres(_)) => format!("tenant_{scale}m_postgres"),
        };
        Bench { spec, location, label }
    }

    fn is_default_size(&self) -> bool {
        self.spec.users == 100_000
    }

    async fn store(&self) -> Arc<dyn LogStore> {
        match &self.location {
            Location::Redb(dir) => Arc::new(RedbStore::open(dir).unwrap()),
            Location::Postgres(settings) => Arc::new(PostgresStore::open((**settings).clone()).await.unwrap()),
        }
    }

    /// The marker of a finished seeding: in the redb data directory, or beside them naming the
    /// PostgreSQL schema.
    fn complete_marker(&self) -> PathBuf {
        match &self.location {
            Location::Redb(dir) => dir.join("complete"),
            Location::Postgres(settings) => bench_data().join(format!("postgres-{}.complete", settings.schema())),
        }
    }

    /// Seeds the tenant through the engine, as `idpsync dev seed` does, unless done before.
    fn seed(&self, runtime: &tokio::runtime::Runtime) {
        let marker = self.complete_marker();
        if let Location::Redb(dir) = &self.location {
            if marker.exists() {
                return;
            }
            let _ = std::fs::remove_dir_all(dir);
            std::fs::create_dir_all(dir).unwrap();
        }
        let head = runtime.block_on(async {
            self.store()
                .await
                .head(&TenantId::default_tenant())
                .await
                .map(|head| head.seq)
        });
        if let Location::Postgres(settings) = &self.location {
            match (marker.exists(), head.unwrap_or(Seq::ZERO)) {
                (true, head) if head > Seq::ZERO => return,
                (_, Seq::ZERO) => {}
                _ => panic!(
                    "schema {} holds an unfinished seeding: drop it and run again",
                    settings.schema()
                ),
            }
        }
        eprintln!("seeding the benchmark tenant ({}, once)...", self.label);
        let started = Instant::now();
        runtime.block_on(async {
            let engine = Engine::open(self.store().await, TenantSettings::default())
                .await
                .unwrap();
            let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
            let progress = seed(&tenant, &self.spec, &mut |p| eprintln!("  {} events", p.events))
                .await
                .unwrap();
            eprintln!(
                "{}/seed: {} events in {:.0} s",
                self.label,
                progress.events,
                started.elapsed().as_secs_f64()
            );
            engine.shutdown().await;
        });
        std::fs::create_dir_all(marker.parent().unwrap()).unwrap();
        std::fs::write(marker, b"").unwrap();
    }
}

/// `target/bench-data/`.
fn bench_data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data")
}

async fn open(bench: &Bench) -> Engine {
    Engine::open(bench.store().await, TenantSettings::default())
        .await
        .unwrap()
}

/// Groups of the tenant, and the time span of its log.
/// Waits for the history index, which loads after the tenant starts.
async fn sample_space(engine: &Engine) -> (Vec<GroupId>, Timestamp, Timestamp) {
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    let groups: Vec<GroupId> = tenant.state().groups().map(|g| g.id).collect();
    let (first, last) = tenant
        .with_history(|history, head| (history.recorded_at(Seq(1)).unwrap(), history.recorded_at(head).unwrap()))
        .await;
    (groups, first, last)
}

fn cold_start(c: &mut Criterion, runtime: &tokio::runtime::Runtime, bench: &Bench) {
    let mut group = c.benchmark_group(&bench.label);
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    group.bench_function("cold_start_to_first_query", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let started = Instant::now();
                runtime.block_on(async {
                    let engine = open(bench).await;
                    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
                    let state = tenant.state();
                    let group = state.groups().nth(3).unwrap().id;
                    assert!(state.direct_member_count(group) > 0);
                    total += started.elapsed();
                    engine.shutdown().await;
                });
            }
            total
        });
    });
    group.finish();
}

fn full_replay(c: &mut Criterion, runtime: &tokio::runtime::Runtime, bench: &Bench) {
    let store = runtime.block_on(bench.store());
    let tenant = TenantId::default_tenant();
    let head = runtime.block_on(store.head(&tenant)).unwrap().seq;
    let keyring = runtime.block_on(Keyring::load(&*store, &tenant)).unwrap();
    let mut group = c.benchmark_group(&bench.label);
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(30))
        .throughput(Throughput::Elements(head.0));
    let replay_into = |state: &mut State, history: Option<&mut History>| {
        let replayed = match history {
            Some(history) => runtime.block_on(replay_recording(&store, &tenant, &keyring, state, history, head)),
            None => runtime.block_on(replay(&store, &tenant, &keyring, state, head)),
        };
        replayed.unwrap();
        assert_eq!(state.seq(), head);
    };
    group.bench_function("full_replay_decode_chain_fold", |b| {
        time_each(b, || {
            let (mut state, mut history) = (State::new(), History::new());
            let started = Instant::now();
            replay_into(&mut state, Some(&mut history));
            (started.elapsed(), (state, history))
        });
    });
    // The same without the history index: only what the target names (decode, chain check,
    // fold), as a replay for a point-in-time state does it.
    group.bench_function("full_replay_decode_chain_fold_no_history_index", |b| {
        time_each(b, || {
            let mut state = State::new();
            let started = Instant::now();
            replay_into(&mut state, None);
            (started.elapsed(), state)
        });
    });
    group.finish();
}

/// Sums the times `run` reports, each with what it built, which is dropped untimed.
fn time_each<T>(b: &mut criterion::Bencher, mut run: impl FnMut() -> (Duration, T)) {
    b.iter_custom(|iterations| (0..iterations).map(|_| run().0).sum());
}

/// Nanoseconds per event of `elapsed` over `events`.
fn per_event(elapsed: Duration, events: usize) -> f64 {
    elapsed.as_nanos() as f64 / events as f64
}

/// The stages of a full replay, each run alone over the whole log on one thread: reading the
/// records, checking the chain, decoding, folding (by event type) and indexing the history.
/// Replay overlaps reading, checking and decoding with the fold on the second core, so its rate
/// is bounded by the slower of the two sides.
fn replay_stages(runtime: &tokio::runtime::Runtime, bench: &Bench) {
    let store = runtime.block_on(bench.store());
    let tenant = TenantId::default_tenant();
    let head = runtime.block_on(store.head(&tenant)).unwrap().seq;
    let keyring = runtime.block_on(Keyring::load(&*store, &tenant)).unwrap();

    let started = Instant::now();
    let mut records: Vec<Record> = Vec::with_capacity(head.0 as usize);
    while records.len() < head.0 as usize {
        let from = Seq(records.len() as u64 + 1);
        records.extend(runtime.block_on(store.read(&tenant, from, PAGE_LEN)).unwrap());
    }
    let read = started.elapsed();
    let started = Instant::now();
    let mut verifier = ChainVerifier::new(tenant.clone());
    for record in &records {
        verifier.check(record).unwrap();
    }
    let chain = started.elapsed();
    let started = Instant::now();
    let events: Vec<LoggedEvent> = records.iter().map(|record| decode_record(record).unwrap()).collect();
    let decode = started.elapsed();
    drop(records);

    let mut state = State::new();
    let mut by_kind: BTreeMap<&'static str, (usize, Duration)> = BTreeMap::new();
    let mut effects = Vec::with_capacity(events.len());
    let started = Instant::now();
    for event in &events {
        let one = Instant::now();
        effects.push(state.apply_mut(event, &keyring));
        let slot = by_kind.entry(event.envelope.event.kind()).or_default();
        slot.0 += 1;
        slot.1 += one.elapsed();
    }
    let fold = started.elapsed();
    let (mut flat, mut buffer) = (FlatState::new(), Effects::default());
    let started = Instant::now();
    for event in &events {
        flat.apply_into(event, &keyring, &mut buffer);
    }
    let flat_fold = started.elapsed();
    let started = Instant::now();
    let frozen = flat.freeze();
    let freeze = started.elapsed();
    assert!(
        encode_snapshot(&frozen, &History::new()) == encode_snapshot(&state, &History::new()),
        "the two folds differ"
    );
    drop((frozen, state));
    let started = Instant::now();
    let mut history = History::new();
    for (event, effects) in events.iter().zip(&effects) {
        history.record(event.seq, event.recorded_at, effects);
    }
    let index = started.elapsed();

    let n = events.len();
    println!(
        "{}/replay_stages ns/event: read {:.0}, chain check {:.0}, decode {:.0}; fold {:.0} (into a published state; timer included), into plain maps {:.0}, freezing those {:.0}, history {:.0}",
        bench.label,
        per_event(read, n),
        per_event(chain, n),
        per_event(decode, n),
        per_event(fold, n),
        per_event(flat_fold, n),
        per_event(freeze, n),
        per_event(index, n)
    );
    let kinds: Vec<String> = by_kind
        .iter()
        .map(|(kind, (count, elapsed))| format!("{kind} {count} × {:.0} ns", per_event(*elapsed, *count)))
        .collect();
    println!(
        "{}/replay_stages fold by type (timer included): {}",
        bench.label,
        kinds.join(", ")
    );
}

fn members_at_random_past_moment(c: &mut Criterion, runtime: &tokio::runtime::Runtime, bench: &Bench) {
    let engine = runtime.block_on(open(bench));
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    let (groups, first, last) = runtime.block_on(sample_space(&engine));
    let mut rng = StdRng::seed_from_u64(7);
    // The index is loaded (`sample_space` waited for it): asked without waiting, as a reader
    // on the runtime's threads would once it is.
    let mut query = move || {
        let group = groups[rng.random_range(0..groups.len())];
        let moment = Timestamp(rng.random_range(first.0..=last.0));
        tenant
            .with_history_now(|history, head| {
                let seq = history.seq_at(moment, head);
                history.direct_members_at(group, seq).len()
            })
            .expect("the history index is loaded")
    };
    c.bench_function(
        &format!("{}/members_of_a_group_at_a_random_past_moment", bench.label),
        |b| b.iter(&mut query),
    );
    // Criterion reports the mean; the target is on percentiles, so measure them directly too.
    let mut latencies: Vec<Duration> = (0..20_000)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(query());
            started.elapsed()
        })
        .collect();
    latencies.sort();
    let at = |quantile: f64| latencies[((latencies.len() as f64 - 1.0) * quantile) as usize];
    println!(
        "{}/members_at percentiles over {} queries: p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
        bench.label,
        latencies.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        latencies[latencies.len() - 1]
    );
    runtime.block_on(engine.shutdown());
}

/// The offboarding audit of users of the tenant (leavers first: deactivated users), from the
/// history index and the users' and their groups' timelines; the binding changes are read
/// from the log once beforehand, as a running service does at its first audit.
fn audit_a_user(c: &mut Criterion, runtime: &tokio::runtime::Runtime, bench: &Bench) {
    let engine = runtime.block_on(open(bench));
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    let started = Instant::now();
    let mut bindings = BindingLog::default();
    runtime.block_on(bindings.catch_up(&tenant)).unwrap();
    println!(
        "{}/audit: reading the binding changes once took {:?} ({} changes)",
        bench.label,
        started.elapsed(),
        bindings.events().len()
    );
    let state = tenant.state();
    let mut users: Vec<UserId> = state
        .users()
        .filter(|user| !user.active)
        .map(|user| user.id)
        .take(300)
        .collect();
    let mut rng = StdRng::seed_from_u64(11);
    let all: Vec<UserId> = state.users().map(|user| user.id).collect();
    while users.len() < 300 {
        users.push(all[rng.random_range(0..all.len())]);
    }
    let names = BTreeMap::new();
    let sources = AuditSources {
        bindings: &bindings,
        token_names: &names,
    };
    let mut next = 0;
    c.bench_function(&format!("{}/audit_user", bench.label), |b| {
        b.iter(|| {
            next = (next + 1) % users.len();
            runtime.block_on(audit_user(&tenant, users[next], &sources)).unwrap()
        })
    });
    let mut latencies: Vec<Duration> = Vec::new();
    let mut steps = 0;
    for user in &users {
        let started = Instant::now();
        let audit = runtime.block_on(audit_user(&tenant, *user, &sources)).unwrap();
        latencies.push(started.elapsed());
        steps += audit.steps.len();
    }
    latencies.sort();
    let at = |quantile: f64| latencies[((latencies.len() as f64 - 1.0) * quantile) as usize];
    println!(
        "{}/audit_user percentiles over {} users ({} steps on average): p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
        bench.label,
        latencies.len(),
        steps / latencies.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        latencies[latencies.len() - 1]
    );
    runtime.block_on(engine.shutdown());
}

/// Reads a `/proc/self/status` field in kB.
fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with(field))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

/// Runs in a child process: load the tenant, answer a query, report the peak resident memory.
fn memory_child(bench: &Bench) {
    let runtime = runtime();
    runtime.block_on(async {
        let engine = open(bench).await;
        let (groups, first, last) = sample_space(&engine).await;
        let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
        let seq = tenant.seq_at(Timestamp((first.0 + last.0) / 2)).await;
        let members = tenant
            .with_history(|history, _| history.direct_members_at(groups[3], seq).len())
            .await;
        println!(
            "loaded: {} users, {} groups, {members} members; VmHWM {} kB, VmRSS {} kB",
            tenant.state().user_count(),
            groups.len(),
            status_kb("VmHWM:"),
            status_kb("VmRSS:")
        );
        engine.shutdown().await;
    });
}

fn peak_memory(bench: &Bench) {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .env(CHILD_VAR, "1")
        .output()
        .expect("the memory child runs");
    let report = String::from_utf8_lossy(&output.stdout);
    println!("{}/peak_resident_memory: {}", bench.label, report.trim());
}

fn main() {
    idpsync_allocator::configure();
    let bench = Bench::from_env();
    if std::env::var_os(CHILD_VAR).is_some() {
        memory_child(&bench);
        return;
    }
    let runtime = runtime();
    bench.seed(&runtime);
    let mut c = Criterion::default().configure_from_args();
    cold_start(&mut c, &runtime, &bench);
    full_replay(&mut c, &runtime, &bench);
    if bench.is_default_size() {
        replay_stages(&runtime, &bench);
    }
    members_at_random_past_moment(&mut c, &runtime, &bench);
    audit_a_user(&mut c, &runtime, &bench);
    c.final_summary();
    peak_memory(&bench);
}
