//! Many tenants on one database: 10 and 10,000 small tenants (each written by the synthetic
//! workload: 10 users, 2 groups, 20 membership changes, about 40 records), on redb and, when
//! `IDPSYNC_TEST_POSTGRES_URL` names a database, on PostgreSQL.
//!
//! Measures: the engine's start (open the store, open the engine, answer a query of the
//! `default` tenant) with 10 and with 10,000 tenants, which should be the same, since tenants
//! load on first use; the cold start of one tenant on first use (from its snapshot and the log),
//! with p50, p99 and max over 1,000 tenants; and the resident memory of a process after the
//! start and after loading 1,000 tenants.
//!
//! Run: `IDPSYNC_TEST_POSTGRES_URL=postgres://… cargo bench -p idpsync-benches --bench tenants`.
//! The first run seeds the tenants (redb into `target/bench-data/`, PostgreSQL into the schemas
//! `idpsync_bench_tenants_<count>`, kept for later runs); an interrupted seeding resumes where
//! it stopped.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::Criterion;
use idpsync::workload::{WorkloadSpec, run as seed_workload};
use idpsync_engine::{Engine, TenantSettings};
use idpsync_storage::{LogStore, PostgresSettings, PostgresStore, RedbStore, TenantId};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Set in the child process that reports memory: `<backend>:<count>`.
const CHILD_VAR: &str = "IDPSYNC_BENCH_TENANTS_MEMORY_CHILD";
/// The store sizes compared.
const COUNTS: [usize; 2] = [10, 10_000];
/// Tenants loaded one after another for the cold-start percentiles and the memory figure.
const LOADED: usize = 1_000;
/// Tenants seeded at once.
const SEEDERS: usize = 16;
/// Tenants seeded per engine, which is then shut down (so seeding does not hold all loaded).
const SEED_CHUNK: usize = 500;

/// Each tenant's workload.
fn workload(n: usize) -> WorkloadSpec {
    WorkloadSpec {
        users: 10,
        groups: 2,
        memberships: 20,
        seed: n as u64,
    }
}

fn tenant_id(n: usize) -> TenantId {
    TenantId::new(&format!("t{n:05}")).expect("a valid tenant name")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Where a store of `count` tenants lives.
#[derive(Clone)]
enum Backend {
    Redb(PathBuf),
    Postgres(Box<PostgresSettings>),
}

impl Backend {
    /// The backends to measure with `count` tenants: redb, and PostgreSQL when configured.
    fn all(count: usize) -> Vec<Backend> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../target/bench-data/tenants-{count}"));
        let mut backends = vec![Backend::Redb(dir)];
        match std::env::var("IDPSYNC_TEST_POSTGRES_URL") {
            Ok(url) => {
                let settings = PostgresSettings::from_url(&url)
                    .and_then(|settings| settings.with_schema(&format!("idpsync_bench_tenants_{count}")))
                    .unwrap();
                backends.push(Backend::Postgres(Box::new(settings)));
            }
            Err(_) => eprintln!("IDPSYNC_TEST_POSTGRES_URL is not set: PostgreSQL is left out"),
        }
        backends
    }

    fn name(&self) -> &'static str {
        match self {
            Backend::Redb(_) => "redb",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// The backend as `CHILD_VAR` names it.
    fn parse(name: &str, count: usize) -> Backend {
        Backend::all(count)
            .into_iter()
            .find(|backend| backend.name() == name)
            .expect("a configured backend")
    }

    async fn open(&self) -> Arc<dyn LogStore> {
        match self {
            Backend::Redb(dir) => {
                std::fs::create_dir_all(dir).unwrap();
                Arc::new(RedbStore::open(dir).unwrap())
            }
            Backend::Postgres(settings) => Arc::new(PostgresStore::open((**settings).clone()).await.unwrap()),
        }
    }
}

/// Seeds tenants `0..count` that the store does not have yet (resuming an interrupted seeding).
async fn seed(backend: &Backend, count: usize) {
    let store = backend.open().await;
    let existing: BTreeSet<TenantId> = store.tenants().await.unwrap().into_iter().collect();
    let missing: Vec<usize> = (0..count).filter(|n| !existing.contains(&tenant_id(*n))).collect();
    if missing.is_empty() {
        return;
    }
    eprintln!("seeding {} tenants on {} (once)...", missing.len(), backend.name());
    let started = Instant::now();
    for chunk in missing.chunks(SEED_CHUNK) {
        let engine = Arc::new(
            Engine::open(Arc::clone(&store), TenantSettings::default())
                .await
                .unwrap(),
        );
        let chunk = Arc::new(chunk.to_vec());
        let next = Arc::new(AtomicUsize::new(0));
        // The workload's progress callback is not `Send`: the seeders share one thread (the
        // tenants' writers run on the runtime's).
        let seeders = tokio::task::LocalSet::new();
        let handles: Vec<_> = (0..SEEDERS)
            .map(|_| {
                let (engine, chunk, next) = (Arc::clone(&engine), Arc::clone(&chunk), Arc::clone(&next));
                seeders.spawn_local(async move {
                    while let Some(&n) = chunk.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let tenant = engine.ensure_tenant(&tenant_id(n)).await.unwrap();
                        seed_workload(&tenant, &workload(n), &mut |_| {}).await.unwrap();
                    }
                })
            })
            .collect();
        seeders
            .run_until(async {
                for handle in handles {
                    handle.await.unwrap();
                }
            })
            .await;
        engine.shutdown().await;
        eprintln!(
            "  {} tenants, {:.0} s",
            chunk.last().unwrap() + 1,
            started.elapsed().as_secs_f64()
        );
    }
}

/// Opens the store and the engine and answers a query of `default`: what a start costs.
async fn start(backend: &Backend) -> Engine {
    let engine = Engine::open(backend.open().await, TenantSettings::default())
        .await
        .unwrap();
    let default = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    std::hint::black_box(default.state().user_count());
    engine
}

fn engine_start(c: &mut Criterion, runtime: &tokio::runtime::Runtime) {
    let mut group = c.benchmark_group("tenants");
    group.sample_size(20).measurement_time(Duration::from_secs(10));
    for count in COUNTS {
        for backend in Backend::all(count) {
            group.bench_function(format!("{}/engine_start/{count}", backend.name()), |b| {
                b.iter_custom(|iterations| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iterations {
                        let started = Instant::now();
                        let engine = runtime.block_on(start(&backend));
                        total += started.elapsed();
                        runtime.block_on(engine.shutdown());
                        drop(engine);
                    }
                    total
                });
            });
        }
    }
    group.finish();
}

/// The first use of tenants not loaded yet, one after another; a new engine when all are.
fn cold_start_of_one_tenant(c: &mut Criterion, runtime: &tokio::runtime::Runtime) {
    let count = COUNTS[1];
    let mut group = c.benchmark_group("tenants");
    group.sample_size(20).measurement_time(Duration::from_secs(10));
    for backend in Backend::all(count) {
        let mut engine = runtime.block_on(start(&backend));
        let mut next = 0;
        let mut load_next = |engine: &mut Engine| {
            if next == count {
                runtime.block_on(engine.shutdown());
                *engine = runtime.block_on(start(&backend));
                next = 0;
            }
            let id = tenant_id(next);
            next += 1;
            let started = Instant::now();
            let tenant = runtime.block_on(engine.existing_tenant(&id)).unwrap();
            let elapsed = started.elapsed();
            std::hint::black_box(tenant.state().user_count());
            elapsed
        };
        group.bench_function(format!("{}/cold_start_one_of_{count}", backend.name()), |b| {
            b.iter_custom(|iterations| (0..iterations).map(|_| load_next(&mut engine)).sum());
        });
        let mut latencies: Vec<Duration> = (0..LOADED).map(|_| load_next(&mut engine)).collect();
        latencies.sort();
        let at = |quantile: f64| latencies[((latencies.len() as f64 - 1.0) * quantile) as usize];
        println!(
            "tenants/{}/cold_start_one_of_{count} percentiles over {} tenants: p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
            backend.name(),
            latencies.len(),
            at(0.5),
            at(0.9),
            at(0.99),
            latencies[latencies.len() - 1]
        );
        runtime.block_on(engine.shutdown());
    }
    group.finish();
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

/// Runs in a child process: start, report the resident memory, load up to [`LOADED`]
/// tenants, report it again.
fn memory_child(backend: &Backend, count: usize) {
    let runtime = runtime();
    runtime.block_on(async {
        let engine = start(backend).await;
        let after_start = status_kb("VmRSS:");
        let loaded = count.min(LOADED);
        for n in 0..loaded {
            engine.existing_tenant(&tenant_id(n)).await.unwrap();
        }
        println!(
            "VmRSS after start {after_start} kB, after loading {loaded} tenants {} kB; VmHWM {} kB",
            status_kb("VmRSS:"),
            status_kb("VmHWM:")
        );
        engine.shutdown().await;
    });
}

fn memory(backend: &Backend, count: usize) {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .env(CHILD_VAR, format!("{}:{count}", backend.name()))
        .output()
        .expect("the memory child runs");
    println!(
        "tenants/{}/memory_of_{count}: {}",
        backend.name(),
        String::from_utf8_lossy(&output.stdout).trim()
    );
}

fn main() {
    idpsync_allocator::configure();
    if let Ok(child) = std::env::var(CHILD_VAR) {
        let (name, count) = child.split_once(':').expect("<backend>:<count>");
        let count = count.parse().expect("a tenant count");
        memory_child(&Backend::parse(name, count), count);
        return;
    }
    let runtime = runtime();
    for count in COUNTS {
        for backend in Backend::all(count) {
            runtime.block_on(seed(&backend, count));
        }
    }
    let mut c = Criterion::default().configure_from_args();
    engine_start(&mut c, &runtime);
    cold_start_of_one_tenant(&mut c, &runtime);
    c.final_summary();
    for count in COUNTS {
        for backend in Backend::all(count) {
            memory(&backend, count);
        }
    }
}
