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
//! The allocator is mimalloc, as in the `idpsync` binary: the fold allocates on every event, and
//! with glibc's malloc the same full replay took 5–20 % longer (three alternated pairs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
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
use idpsync_storage::{LogStore, Record, RedbStore, TenantId};
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

/// The seeded tenant's data directory, seeding it on first use.
fn bench_data(runtime: &tokio::runtime::Runtime) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data/tenant-100k-5k-1m");
    if dir.join("complete").exists() {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("seeding the benchmark tenant into {} (once)...", dir.display());
    runtime.block_on(async {
        let engine = idpsync::open(&dir, TenantSettings::default()).await.unwrap();
        let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
        let spec = WorkloadSpec {
            users: 100_000,
            groups: 5_000,
            memberships: 1_000_000,
            seed: 1,
        };
        let progress = seed(&tenant, &spec, &mut |p| eprintln!("  {} events", p.events))
            .await
            .unwrap();
        eprintln!("seeded {} events", progress.events);
        engine.shutdown().await;
    });
    std::fs::write(dir.join("complete"), b"").unwrap();
    dir
}

async fn open(dir: &Path) -> Engine {
    let store: Arc<dyn LogStore> = Arc::new(RedbStore::open(dir).unwrap());
    Engine::open(store, TenantSettings::default()).await.unwrap()
}

/// Groups of the tenant, and the time span of its log.
fn sample_space(engine: &Engine) -> (Vec<GroupId>, Timestamp, Timestamp) {
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    let groups: Vec<GroupId> = tenant.state().groups().map(|g| g.id).collect();
    let (first, last) =
        tenant.with_history(|history, head| (history.recorded_at(Seq(1)).unwrap(), history.recorded_at(head).unwrap()));
    (groups, first, last)
}

fn cold_start(c: &mut Criterion, runtime: &tokio::runtime::Runtime, dir: &Path) {
    let mut group = c.benchmark_group("tenant_1m");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    group.bench_function("cold_start_to_first_query", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let started = Instant::now();
                runtime.block_on(async {
                    let engine = open(dir).await;
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

fn full_replay(c: &mut Criterion, runtime: &tokio::runtime::Runtime, dir: &Path) {
    let store: Arc<dyn LogStore> = Arc::new(RedbStore::open(dir).unwrap());
    let tenant = TenantId::default_tenant();
    let head = runtime.block_on(store.head(&tenant)).unwrap().seq;
    let keyring = runtime.block_on(Keyring::load(&*store, &tenant)).unwrap();
    let mut group = c.benchmark_group("tenant_1m");
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
fn replay_stages(runtime: &tokio::runtime::Runtime, dir: &Path) {
    let store: Arc<dyn LogStore> = Arc::new(RedbStore::open(dir).unwrap());
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
        "tenant_1m/replay_stages ns/event: read {:.0}, chain check {:.0}, decode {:.0}; fold {:.0} (into a published state; timer included), into plain maps {:.0}, freezing those {:.0}, history {:.0}",
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
        "tenant_1m/replay_stages fold by type (timer included): {}",
        kinds.join(", ")
    );
}

fn members_at_random_past_moment(c: &mut Criterion, runtime: &tokio::runtime::Runtime, dir: &Path) {
    let engine = runtime.block_on(open(dir));
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    let (groups, first, last) = sample_space(&engine);
    let mut rng = StdRng::seed_from_u64(7);
    let mut query = move || {
        let group = groups[rng.random_range(0..groups.len())];
        let moment = Timestamp(rng.random_range(first.0..=last.0));
        let seq = tenant.seq_at(moment);
        tenant.with_history(|history, _| history.direct_members_at(group, seq).len())
    };
    c.bench_function("tenant_1m/members_of_a_group_at_a_random_past_moment", |b| {
        b.iter(&mut query)
    });
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
        "tenant_1m/members_at percentiles over {} queries: p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
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
fn audit_a_user(c: &mut Criterion, runtime: &tokio::runtime::Runtime, dir: &Path) {
    let engine = runtime.block_on(open(dir));
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    let started = Instant::now();
    let mut bindings = BindingLog::default();
    runtime.block_on(bindings.catch_up(&tenant)).unwrap();
    println!(
        "tenant_1m/audit: reading the binding changes once took {:?} ({} changes)",
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
    c.bench_function("tenant_1m/audit_user", |b| {
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
        "tenant_1m/audit_user percentiles over {} users ({} steps on average): p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
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
fn memory_child(dir: &Path) {
    let runtime = runtime();
    runtime.block_on(async {
        let engine = open(dir).await;
        let (groups, first, last) = sample_space(&engine);
        let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
        let seq = tenant.seq_at(Timestamp((first.0 + last.0) / 2));
        let members = tenant.with_history(|history, _| history.direct_members_at(groups[3], seq).len());
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

fn peak_memory(dir: &Path) {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .env(CHILD_VAR, dir)
        .output()
        .expect("the memory child runs");
    let report = String::from_utf8_lossy(&output.stdout);
    println!("tenant_1m/peak_resident_memory: {}", report.trim());
}

fn main() {
    if let Some(dir) = std::env::var_os(CHILD_VAR) {
        memory_child(Path::new(&dir));
        return;
    }
    let runtime = runtime();
    let dir = bench_data(&runtime);
    let mut c = Criterion::default().configure_from_args();
    cold_start(&mut c, &runtime, &dir);
    full_replay(&mut c, &runtime, &dir);
    replay_stages(&runtime, &dir);
    members_at_random_past_moment(&mut c, &runtime, &dir);
    audit_a_user(&mut c, &runtime, &dir);
    c.final_summary();
    peak_memory(&dir);
}
