//! Durable appends: group commit under 64 concurrent writers, and one writer committing one
//! event at a time.
//!
//! Run: `cargo bench -p idpsync-benches --bench log`. Every append here is fsync-durable; the
//! log lives in a temporary directory on the machine's disk. The allocator is mimalloc, as in
//! the `idpsync` binary.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use idpsync_engine::ids::{Member, UserId};
use idpsync_engine::model::{Owner, UserProfile};
use idpsync_engine::{Cause, Command, Engine, Origin, Outcome, Source, TenantSettings};
use idpsync_storage::{AppendBatch, EventId, LogStore, NewRecord, RedbStore, SchemaVersion, TenantId, Timestamp};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const WRITERS: usize = 64;
/// A payload of the size of a typical membership event.
const PAYLOAD_LEN: usize = 120;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// 64 writers, each appending batches of `events` records to its own tenant in a loop; the
/// store merges concurrent appends into shared commits.
fn storage_group_commit(c: &mut Criterion) {
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn LogStore> = Arc::new(RedbStore::open(dir.path()).unwrap());
    let tenants: Vec<TenantId> = (0..WRITERS).map(|i| TenantId::new(&format!("w{i}")).unwrap()).collect();
    runtime.block_on(async {
        for tenant in &tenants {
            store.ensure_tenant(tenant).await.unwrap();
        }
    });
    let mut group = c.benchmark_group("append/storage_64_writers");
    group.sample_size(10).measurement_time(Duration::from_secs(8));
    for events in [1usize, 16] {
        group.throughput(Throughput::Elements((WRITERS * events) as u64));
        group.bench_with_input(BenchmarkId::new("events_per_append", events), &events, |b, &events| {
            b.to_async(&runtime).iter_custom(|rounds| {
                let store = Arc::clone(&store);
                let tenants = tenants.clone();
                async move {
                    let started = Instant::now();
                    let mut tasks = Vec::new();
                    for tenant in tenants {
                        let store = Arc::clone(&store);
                        tasks.push(tokio::spawn(async move {
                            // A writer knows where its log stands from its last append, as the
                            // engine's writer does; the head is read once.
                            let mut head = store.head(&tenant).await.unwrap();
                            for _ in 0..rounds {
                                let records = (0..events)
                                    .map(|_| NewRecord {
                                        recorded_at: Timestamp::now().max(head.recorded_at),
                                        event_id: EventId::new(),
                                        version: SchemaVersion(1),
                                        payload: vec![7; PAYLOAD_LEN],
                                    })
                                    .collect();
                                head = store
                                    .append(AppendBatch {
                                        tenant: tenant.clone(),
                                        first_seq: head.seq.next(),
                                        records,
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
    group.finish();
}

/// 64 concurrent callers sending one-event commands to one tenant: the path a SCIM request
/// takes (decide, fold, project, durable append shared by the writer's batch).
fn engine_group_commit(c: &mut Criterion) {
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    let (tenant, group_id, users) = runtime.block_on(async {
        let store: Arc<dyn LogStore> = Arc::new(RedbStore::open(dir.path()).unwrap());
        let engine = Engine::open(store, TenantSettings::default()).await.unwrap();
        let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
        let origin = Origin {
            source: Source::Operator,
            cause: Cause::Unspecified,
        };
        let mut users = Vec::new();
        for i in 0..WRITERS {
            let profile = UserProfile {
                user_name: format!("writer{i}"),
                ..UserProfile::default()
            };
            let command = Command::ProvisionUser {
                owner: Owner::Operator,
                external_id: None,
                active: true,
                profile,
            };
            let Outcome::UserProvisioned(id) = tenant.execute(command, origin.clone()).await.unwrap().outcome else {
                unreachable!()
            };
            users.push(id);
        }
        let command = Command::CreateGroup {
            owner: Owner::Operator,
            external_id: None,
            display_name: "churn".into(),
            members: vec![],
        };
        let Outcome::GroupCreated(group) = tenant.execute(command, origin).await.unwrap().outcome else {
            unreachable!()
        };
        (tenant, group, users)
    });
    let mut group = c.benchmark_group("append/engine_64_writers");
    group.sample_size(10).measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(WRITERS as u64));
    group.bench_function("membership_commands", |b| {
        b.to_async(&runtime).iter_custom(|rounds| {
            let tenant = Arc::clone(&tenant);
            let users: Vec<UserId> = users.clone();
            async move {
                let started = Instant::now();
                let mut tasks = Vec::new();
                for user in users {
                    let tenant = Arc::clone(&tenant);
                    tasks.push(tokio::spawn(async move {
                        let origin = Origin {
                            source: Source::Operator,
                            cause: Cause::Unspecified,
                        };
                        for round in 0..rounds {
                            let members = vec![Member::User(user)];
                            let command = if round % 2 == 0 {
                                Command::AddMembers {
                                    group: group_id,
                                    members,
                                }
                            } else {
                                Command::RemoveMembers {
                                    group: group_id,
                                    members,
                                }
                            };
                            tenant.execute(command, origin.clone()).await.unwrap();
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
    group.finish();
}

/// One writer, one event per commit: the cost of a lone durable write.
fn single_writer(c: &mut Criterion) {
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn LogStore> = Arc::new(RedbStore::open(dir.path()).unwrap());
    let tenant = TenantId::default_tenant();
    runtime.block_on(store.ensure_tenant(&tenant)).unwrap();
    let mut group = c.benchmark_group("append/single_writer");
    group.sample_size(20).throughput(Throughput::Elements(1));
    group.bench_function("one_event_per_commit", |b| {
        b.to_async(&runtime).iter(|| {
            let store = Arc::clone(&store);
            let tenant = tenant.clone();
            async move {
                let head = store.head(&tenant).await.unwrap();
                let record = NewRecord {
                    recorded_at: Timestamp::now().max(head.recorded_at),
                    event_id: EventId::new(),
                    version: SchemaVersion(1),
                    payload: vec![7; PAYLOAD_LEN],
                };
                store
                    .append(AppendBatch {
                        tenant,
                        first_seq: head.seq.next(),
                        records: vec![record],
                        secrets: Vec::new(),
                    })
                    .await
                    .unwrap()
            }
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    // The binary's allocator settings, as in `idpsync`'s `main`, before the first bench.
    config = {
        idpsync_allocator::configure();
        Criterion::default()
    };
    targets = storage_group_commit, engine_group_commit, single_writer
}
criterion_main!(benches);
