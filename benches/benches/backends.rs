//! The log stores side by side on the same work: redb, PostgreSQL (where
//! `IDPSYNC_TEST_POSTGRES_URL` names a database) and sled (with `--features sled`).
//!
//! - `backends/append/<store>/events_per_append/N`: 64 writers, each appending batches of N
//!   records of 120 bytes to its own tenant in a loop, every append durable when it returns:
//!   the shape of `append/storage_64_writers` in `log.rs`;
//! - `backends/replay/<store>`: reading a tenant's 200,000 records back in pages and checking
//!   the chain (`verify_log`), the storage part of a full replay.
//!
//! Run: `IDPSYNC_TEST_POSTGRES_URL=postgres://… cargo bench -p idpsync-benches --features sled
//! --bench backends`. PostgreSQL runs in a scratch schema, dropped at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use idpsync_storage::verify::verify_log;
use idpsync_storage::{
    AppendBatch, EventId, LogStore, NewRecord, PostgresSettings, PostgresStore, RedbStore, SchemaVersion, TenantId,
    Timestamp,
};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const WRITERS: usize = 64;
/// A payload of the size of a typical membership event.
const PAYLOAD_LEN: usize = 120;
/// Records of the replayed tenant.
const REPLAY_RECORDS: usize = 200_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Every store this build and machine can run, by name, each in a place of its own.
fn stores(runtime: &tokio::runtime::Runtime, dir: &std::path::Path) -> Vec<(&'static str, Arc<dyn LogStore>)> {
    let mut stores: Vec<(&'static str, Arc<dyn LogStore>)> =
        vec![("redb", Arc::new(RedbStore::open(&dir.join("redb")).unwrap()))];
    #[cfg(feature = "sled")]
    stores.push((
        "sled",
        Arc::new(idpsync_storage::SledStore::open(&dir.join("sled")).unwrap()),
    ));
    match std::env::var("IDPSYNC_TEST_POSTGRES_URL") {
        Ok(url) => {
            let settings = PostgresSettings::from_url(&url).unwrap();
            let store = runtime
                .block_on(PostgresStore::open_scratch(settings, "idpsync_bench"))
                .unwrap();
            stores.push(("postgres", Arc::new(store)));
        }
        Err(_) => eprintln!("IDPSYNC_TEST_POSTGRES_URL is not set: PostgreSQL is left out"),
    }
    stores
}

fn records(events: usize, after: Timestamp) -> Vec<NewRecord> {
    (0..events)
        .map(|_| NewRecord {
            recorded_at: Timestamp::now().max(after),
            event_id: EventId::new(),
            version: SchemaVersion(1),
            payload: vec![7; PAYLOAD_LEN],
        })
        .collect()
}

/// 64 writers appending to their own tenants, on each store.
fn append(c: &mut Criterion) {
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    let tenants: Vec<TenantId> = (0..WRITERS).map(|i| TenantId::new(&format!("w{i}")).unwrap()).collect();
    let mut group = c.benchmark_group("backends/append");
    group.sample_size(10).measurement_time(Duration::from_secs(8));
    for (name, store) in stores(&runtime, dir.path()) {
        runtime.block_on(async {
            for tenant in &tenants {
                store.ensure_tenant(tenant).await.unwrap();
            }
        });
        for events in [1usize, 16] {
            group.throughput(Throughput::Elements((WRITERS * events) as u64));
            let id = BenchmarkId::new(format!("{name}/events_per_append"), events);
            group.bench_with_input(id, &events, |b, &events| {
                b.to_async(&runtime).iter_custom(|rounds| {
                    let store = Arc::clone(&store);
                    let tenants = tenants.clone();
                    async move {
                        let started = Instant::now();
                        let mut tasks = Vec::new();
                        for tenant in tenants {
                            let store = Arc::clone(&store);
                            tasks.push(tokio::spawn(async move {
                                let mut head = store.head(&tenant).await.unwrap();
                                for _ in 0..rounds {
                                    head = store
                                        .append(AppendBatch {
                                            tenant: tenant.clone(),
                                            first_seq: head.seq.next(),
                                            records: records(events, head.recorded_at),
                                            secrets: Vec::new(),
                                        })
                                        .await
                                        .unwrap()
                                        .head;
                                }
                            }));
                        }
                        for task in tasks {
                            task.await.unwrap();
                        }
                        started.elapsed()
                    }
                });
            });
        }
    }
    group.finish();
}

/// A tenant of 200,000 records read back and chain-checked, on each store.
fn replay(c: &mut Criterion) {
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::new("replayed").unwrap();
    let mut group = c.benchmark_group("backends/replay");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(REPLAY_RECORDS as u64));
    for (name, store) in stores(&runtime, dir.path()) {
        runtime.block_on(async {
            let mut head = store.ensure_tenant(&tenant).await.unwrap();
            while (head.seq.0 as usize) < REPLAY_RECORDS {
                head = store
                    .append(AppendBatch {
                        tenant: tenant.clone(),
                        first_seq: head.seq.next(),
                        records: records(4096.min(REPLAY_RECORDS - head.seq.0 as usize), head.recorded_at),
                        secrets: Vec::new(),
                    })
                    .await
                    .unwrap()
                    .head;
            }
        });
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| {
                let store = Arc::clone(&store);
                let tenant = tenant.clone();
                async move { verify_log(&*store, &tenant).await.unwrap() }
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // The binary's allocator settings, as in `idpsync`'s `main`, before the first bench.
    config = {
        idpsync_allocator::configure();
        Criterion::default()
    };
    targets = append, replay
}
criterion_main!(benches);
