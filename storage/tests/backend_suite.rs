//! The suite every `LogStore` backend must pass. Each backend gets the same tests through
//! `backend_suite!`; a new backend adds one line at the bottom.

use std::sync::Arc;

use idpsync_storage::record::PAYLOAD_LEN_MAX;
use idpsync_storage::store::SECRET_LEN_MAX;
use idpsync_storage::verify::verify_log;
use idpsync_storage::{
    AppendBatch, EventId, Hash32, Head, LogStore, NewRecord, NewSecret, SchemaVersion, SecretId, Seq, StoreError,
    StoredSnapshot, TenantId, Timestamp,
};

fn tenant(name: &str) -> TenantId {
    TenantId::new(name).unwrap()
}

fn new_record(at: i64, payload: &[u8]) -> NewRecord {
    NewRecord {
        recorded_at: Timestamp(at),
        event_id: EventId::new(),
        version: SchemaVersion(1),
        payload: payload.to_vec(),
    }
}

async fn append_payloads(store: &dyn LogStore, tenant: &TenantId, payloads: &[&[u8]]) -> Result<Head, StoreError> {
    let head = store.head(tenant).await?;
    let base = head.recorded_at.0.max(1_000);
    let records = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| new_record(base + i as i64, p))
        .collect();
    Ok(store
        .append(AppendBatch {
            tenant: tenant.clone(),
            first_seq: head.seq.next(),
            records,
            secrets: Vec::new(),
        })
        .await?
        .head)
}

async fn appends_are_dense_and_chained(store: Arc<dyn LogStore>) {
    let acme = tenant("acme");
    assert_eq!(store.ensure_tenant(&acme).await.unwrap(), Head::EMPTY);
    append_payloads(&*store, &acme, &[b"a", b"b"]).await.unwrap();
    let head = append_payloads(&*store, &acme, &[b"c"]).await.unwrap();
    assert_eq!(head.seq, Seq(3));
    let records = store.read(&acme, Seq(1), 100).await.unwrap();
    assert_eq!(records.iter().map(|r| r.seq.0).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(
        records.iter().map(|r| r.payload.clone()).collect::<Vec<_>>(),
        vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
    );
    assert_eq!(records[2].chain, head.chain);
    assert_eq!(verify_log(&*store, &acme).await.unwrap(), head);
    // Reading from the middle, with a limit, and past the end.
    let middle = store.read(&acme, Seq(2), 1).await.unwrap();
    assert_eq!(middle.len(), 1);
    assert_eq!(middle[0].seq, Seq(2));
    assert!(store.read(&acme, Seq(4), 10).await.unwrap().is_empty());
}

async fn tenants_are_separate(store: Arc<dyn LogStore>) {
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    store.ensure_tenant(&acme).await.unwrap();
    store.ensure_tenant(&globex).await.unwrap();
    append_payloads(&*store, &acme, &[b"acme-1", b"acme-2"]).await.unwrap();
    append_payloads(&*store, &globex, &[b"globex-1"]).await.unwrap();
    assert_eq!(store.head(&acme).await.unwrap().seq, Seq(2));
    assert_eq!(store.head(&globex).await.unwrap().seq, Seq(1));
    let globex_records = store.read(&globex, Seq(1), 10).await.unwrap();
    assert_eq!(globex_records.len(), 1);
    assert_eq!(globex_records[0].payload, b"globex-1");
    assert_eq!(store.tenants().await.unwrap(), vec![acme.clone(), globex]);
    // Ensuring an existing tenant changes nothing.
    assert_eq!(store.ensure_tenant(&acme).await.unwrap().seq, Seq(2));
}

async fn bad_appends_write_nothing(store: Arc<dyn LogStore>) {
    let acme = tenant("acme");
    let unknown = tenant("nobody");
    assert!(matches!(store.head(&unknown).await, Err(StoreError::UnknownTenant(_))));
    assert!(matches!(
        store
            .append(AppendBatch {
                tenant: unknown.clone(),
                first_seq: Seq(1),
                records: vec![new_record(1, b"x")],
                secrets: Vec::new()
            })
            .await,
        Err(StoreError::UnknownTenant(_))
    ));
    store.ensure_tenant(&acme).await.unwrap();
    let head = append_payloads(&*store, &acme, &[b"a"]).await.unwrap();
    // A stale first_seq.
    let stale = store
        .append(AppendBatch {
            tenant: acme.clone(),
            first_seq: Seq(1),
            records: vec![new_record(2_000, b"x")],
            secrets: Vec::new(),
        })
        .await;
    assert!(
        matches!(
            stale,
            Err(StoreError::SeqConflict {
                expected: Seq(2),
                got: Seq(1),
                ..
            })
        ),
        "{stale:?}"
    );
    // A gap.
    let gap = store
        .append(AppendBatch {
            tenant: acme.clone(),
            first_seq: Seq(3),
            records: vec![new_record(2_000, b"x")],
            secrets: Vec::new(),
        })
        .await;
    assert!(matches!(gap, Err(StoreError::SeqConflict { .. })));
    // Time going back, in the second record of a batch: the first record is not kept either.
    let back = store
        .append(AppendBatch {
            tenant: acme.clone(),
            first_seq: Seq(2),
            records: vec![new_record(5_000, b"ok"), new_record(4_000, b"back")],
            secrets: Vec::new(),
        })
        .await;
    assert!(
        matches!(back, Err(StoreError::ClockWentBack { seq: Seq(3), .. })),
        "{back:?}"
    );
    // Empty, and oversized.
    assert!(matches!(
        store
            .append(AppendBatch {
                tenant: acme.clone(),
                first_seq: Seq(2),
                records: vec![],
                secrets: Vec::new()
            })
            .await,
        Err(StoreError::EmptyBatch { .. })
    ));
    let huge = vec![0u8; PAYLOAD_LEN_MAX + 1];
    assert!(matches!(
        store
            .append(AppendBatch {
                tenant: acme.clone(),
                first_seq: Seq(2),
                records: vec![new_record(5_000, &huge)],
                secrets: Vec::new()
            })
            .await,
        Err(StoreError::PayloadTooLarge { .. })
    ));
    assert_eq!(store.head(&acme).await.unwrap(), head);
    assert_eq!(store.read(&acme, Seq(1), 10).await.unwrap().len(), 1);
}

async fn concurrent_appends_all_land(store: Arc<dyn LogStore>) {
    // 32 tenants, 32 tasks each appending 20 batches; every record lands exactly once.
    let mut tasks = Vec::new();
    for index in 0..32 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let name = tenant(&format!("t{index}"));
            store.ensure_tenant(&name).await.unwrap();
            for round in 0..20u8 {
                append_payloads(&*store, &name, &[&[round], &[round, round]])
                    .await
                    .unwrap();
            }
            name
        }));
    }
    for task in tasks {
        let name = task.await.unwrap();
        let head = verify_log(&*store, &name).await.unwrap();
        assert_eq!(head.seq, Seq(40));
    }
}

async fn snapshots_are_found_at_or_before(store: Arc<dyn LogStore>) {
    let acme = tenant("acme");
    store.ensure_tenant(&acme).await.unwrap();
    append_payloads(&*store, &acme, &[b"1", b"2", b"3", b"4", b"5"])
        .await
        .unwrap();
    assert!(store.snapshot_at_or_before(&acme, Seq(5)).await.unwrap().is_none());
    store
        .put_snapshot(&acme, StoredSnapshot::new(Seq(2), b"state at 2".to_vec()))
        .await
        .unwrap();
    store
        .put_snapshot(&acme, StoredSnapshot::new(Seq(4), b"state at 4".to_vec()))
        .await
        .unwrap();
    assert!(store.snapshot_at_or_before(&acme, Seq(1)).await.unwrap().is_none());
    assert_eq!(
        store.snapshot_at_or_before(&acme, Seq(3)).await.unwrap().unwrap().bytes,
        b"state at 2"
    );
    let latest = store.snapshot_at_or_before(&acme, Seq(99)).await.unwrap().unwrap();
    assert_eq!(latest.seq, Seq(4));
    assert!(latest.is_intact());
    let listed = store.snapshots(&acme).await.unwrap();
    assert_eq!(listed.iter().map(|s| s.seq).collect::<Vec<_>>(), vec![Seq(2), Seq(4)]);
    assert_eq!(listed[1].state_hash, latest.state_hash);
    // Read in pieces: the same bytes, and the hash checked at the end.
    let mut reader = store.open_snapshot_at_or_before(&acme, Seq(3)).await.unwrap().unwrap();
    assert_eq!(reader.seq(), Seq(2));
    let mut first = [0u8; 5];
    std::io::Read::read_exact(&mut reader, &mut first).unwrap();
    assert_eq!(&first, b"state");
    assert_eq!(reader.remaining(), 5);
    reader.finish().unwrap();
    assert!(store.open_snapshot_at_or_before(&acme, Seq(1)).await.unwrap().is_none());
    let beyond = store
        .put_snapshot(&acme, StoredSnapshot::new(Seq(6), b"future".to_vec()))
        .await;
    assert!(matches!(beyond, Err(StoreError::SnapshotBeyondHead { .. })));

    // A removed snapshot is gone from the list and from lookups; the log is untouched.
    assert!(store.remove_snapshot(&acme, Seq(4)).await.unwrap());
    assert!(
        !store.remove_snapshot(&acme, Seq(4)).await.unwrap(),
        "removing twice finds nothing"
    );
    let listed = store.snapshots(&acme).await.unwrap();
    assert_eq!(listed.iter().map(|s| s.seq).collect::<Vec<_>>(), vec![Seq(2)]);
    let found = store.snapshot_at_or_before(&acme, Seq(99)).await.unwrap().unwrap();
    assert_eq!(found.seq, Seq(2));
    assert_eq!(store.head(&acme).await.unwrap().seq, Seq(5));
}

async fn large_batches_span_chunks(store: Arc<dyn LogStore>) {
    let acme = tenant("acme");
    store.ensure_tenant(&acme).await.unwrap();
    let payloads: Vec<Vec<u8>> = (0..3_000u32).map(|i| i.to_le_bytes().repeat(40)).collect();
    let refs: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
    append_payloads(&*store, &acme, &refs).await.unwrap();
    for from in [1u64, 2, 511, 512, 513, 1024, 2999, 3000] {
        let page = store.read(&acme, Seq(from), 7).await.unwrap();
        assert_eq!(page[0].seq, Seq(from));
        assert_eq!(page[0].payload, payloads[from as usize - 1]);
        assert_eq!(page.len(), (3001 - from as usize).min(7));
    }
    assert_eq!(verify_log(&*store, &acme).await.unwrap().seq, Seq(3000));
}

async fn many_commits_read_back_from_any_seq(store: Arc<dyn LogStore>) {
    // Three tenants taking turns, one commit per append: enough commits and bytes that a backend
    // which stages commits before filing them by tenant (redb's journal) files them several
    // times and ends with some still staged. Payloads of up to 18 KB make filed chunks split.
    let tenants = [tenant("a"), tenant("b"), tenant("c")];
    let mut expected: Vec<Vec<Vec<u8>>> = vec![Vec::new(); tenants.len()];
    for round in 0..150usize {
        for (index, name) in tenants.iter().enumerate() {
            if round == 0 {
                store.ensure_tenant(name).await.unwrap();
            }
            let payloads: Vec<Vec<u8>> = (0..1 + (round + index) % 3)
                .map(|n| vec![(round + n) as u8; ((round * 7 + index) % 7) * 3_000 + n])
                .collect();
            let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
            append_payloads(&*store, name, &refs).await.unwrap();
            expected[index].extend(payloads);
        }
    }
    for (name, payloads) in tenants.iter().zip(&expected) {
        assert_eq!(verify_log(&*store, name).await.unwrap().seq, Seq(payloads.len() as u64));
        for from in 1..=payloads.len() + 1 {
            let page = store.read(name, Seq(from as u64), 5).await.unwrap();
            let wanted = &payloads[from - 1..payloads.len().min(from + 4)];
            assert_eq!(page.len(), wanted.len(), "{name} from {from}");
            for (offset, (record, payload)) in page.iter().zip(wanted).enumerate() {
                assert_eq!(record.seq, Seq((from + offset) as u64));
                assert_eq!(&record.payload, payload, "{name} seq {}", record.seq);
            }
        }
    }
}

async fn secrets_commit_with_their_records_and_can_be_destroyed(store: Arc<dyn LogStore>) {
    let acme = tenant("acme");
    store.ensure_tenant(&acme).await.unwrap();
    let secret = |byte: u8| NewSecret {
        id: SecretId([byte; 16]),
        material: vec![byte; 32],
    };
    let record = || vec![new_record(1_000, b"sealed")];
    store
        .append(AppendBatch {
            tenant: acme.clone(),
            first_seq: Seq(1),
            records: record(),
            secrets: vec![secret(1), secret(2)],
        })
        .await
        .unwrap();
    // A rejected append stores none of its secrets.
    let stale = store
        .append(AppendBatch {
            tenant: acme.clone(),
            first_seq: Seq(1),
            records: record(),
            secrets: vec![secret(3)],
        })
        .await;
    assert!(matches!(stale, Err(StoreError::SeqConflict { .. })));
    let mut stored = store.secrets(&acme).await.unwrap();
    stored.sort();
    assert_eq!(
        stored,
        vec![(SecretId([1; 16]), vec![1; 32]), (SecretId([2; 16]), vec![2; 32])]
    );
    assert!(store.destroy_secret(&acme, SecretId([1; 16])).await.unwrap());
    assert!(
        !store.destroy_secret(&acme, SecretId([1; 16])).await.unwrap(),
        "already gone"
    );
    assert_eq!(
        store.secrets(&acme).await.unwrap(),
        vec![(SecretId([2; 16]), vec![2; 32])]
    );
    // The record stays; the chain is untouched.
    assert_eq!(verify_log(&*store, &acme).await.unwrap().seq, Seq(1));
    // Other tenants see none of it.
    let globex = tenant("globex");
    store.ensure_tenant(&globex).await.unwrap();
    assert!(store.secrets(&globex).await.unwrap().is_empty());
    assert!(!store.destroy_secret(&globex, SecretId([2; 16])).await.unwrap());

    // A secret over the size limit: the append writes nothing.
    let oversized = store
        .append(AppendBatch {
            tenant: acme.clone(),
            first_seq: Seq(2),
            records: vec![new_record(2_000, b"sealed")],
            secrets: vec![NewSecret {
                id: SecretId([9; 16]),
                material: vec![9; SECRET_LEN_MAX + 1],
            }],
        })
        .await;
    assert!(
        matches!(oversized, Err(StoreError::SecretTooLarge { .. })),
        "{oversized:?}"
    );
    assert_eq!(store.head(&acme).await.unwrap().seq, Seq(1));

    // Many secrets in one append (a large provisioning run): each can be destroyed alone.
    let id = |n: u32| {
        let mut id = [0xaa; 16];
        id[..4].copy_from_slice(&n.to_be_bytes());
        SecretId(id)
    };
    let many: Vec<NewSecret> = (0..2_500u32)
        .map(|n| NewSecret {
            id: id(n),
            material: n.to_le_bytes().repeat(8),
        })
        .collect();
    store
        .append(AppendBatch {
            tenant: acme.clone(),
            first_seq: Seq(2),
            records: vec![new_record(2_000, b"sealed")],
            secrets: many,
        })
        .await
        .unwrap();
    for n in [0, 1_500, 2_499] {
        assert!(store.destroy_secret(&acme, id(n)).await.unwrap());
    }
    let mut stored = store.secrets(&acme).await.unwrap();
    stored.sort();
    let mut expected: Vec<(SecretId, Vec<u8>)> = (0..2_500u32)
        .filter(|n| ![0, 1_500, 2_499].contains(n))
        .map(|n| (id(n), n.to_le_bytes().repeat(8)))
        .chain([(SecretId([2; 16]), vec![2; 32])])
        .collect();
    expected.sort();
    assert_eq!(stored, expected);
}

async fn metadata_changes_only_from_the_version_named(store: Arc<dyn LogStore>) {
    assert_eq!(store.get_meta("leases", "acme/okta").await.unwrap(), None);
    assert_eq!(
        store
            .put_meta("leases", "acme/okta", None, b"one".to_vec())
            .await
            .unwrap(),
        1
    );
    // A second creation, or a change from a version the entry no longer has, changes nothing.
    assert!(matches!(
        store.put_meta("leases", "acme/okta", None, b"two".to_vec()).await,
        Err(StoreError::MetaConflict {
            current: Some(1),
            expected: None,
            ..
        })
    ));
    assert_eq!(
        store
            .put_meta("leases", "acme/okta", Some(1), b"two".to_vec())
            .await
            .unwrap(),
        2
    );
    assert!(matches!(
        store.put_meta("leases", "acme/okta", Some(1), b"three".to_vec()).await,
        Err(StoreError::MetaConflict {
            current: Some(2),
            expected: Some(1),
            ..
        })
    ));
    let entry = store.get_meta("leases", "acme/okta").await.unwrap().unwrap();
    assert_eq!(
        (entry.key.as_str(), entry.version, entry.value.as_slice()),
        ("acme/okta", 2, &b"two"[..])
    );

    // Namespaces are separate; a list is in key order and holds only its namespace.
    store.put_meta("leases", "acme/azure", None, Vec::new()).await.unwrap();
    store
        .put_meta("leasesx", "acme/a", None, b"other".to_vec())
        .await
        .unwrap();
    store.put_meta("lease", "z", None, b"other".to_vec()).await.unwrap();
    let listed = store.list_meta("leases").await.unwrap();
    assert_eq!(
        listed.iter().map(|e| (e.key.as_str(), e.version)).collect::<Vec<_>>(),
        vec![("acme/azure", 1), ("acme/okta", 2)]
    );
    assert_eq!(listed[0].value, Vec::<u8>::new());

    // A delete names the version too.
    assert!(matches!(
        store.delete_meta("leases", "acme/okta", 1).await,
        Err(StoreError::MetaConflict { current: Some(2), .. })
    ));
    store.delete_meta("leases", "acme/okta", 2).await.unwrap();
    assert_eq!(store.get_meta("leases", "acme/okta").await.unwrap(), None);
    assert!(matches!(
        store.delete_meta("leases", "acme/okta", 2).await,
        Err(StoreError::MetaConflict { current: None, .. })
    ));
    // Created again, it starts over at version 1.
    assert_eq!(
        store
            .put_meta("leases", "acme/okta", None, b"again".to_vec())
            .await
            .unwrap(),
        1
    );

    // Bad names and values are refused and change nothing.
    assert!(matches!(
        store.put_meta("", "k", None, Vec::new()).await,
        Err(StoreError::InvalidMeta { .. })
    ));
    assert!(matches!(
        store.put_meta("n", "a\nb", None, Vec::new()).await,
        Err(StoreError::InvalidMeta { .. })
    ));
    assert!(matches!(
        store
            .put_meta("n", "k", None, vec![0; idpsync_storage::meta::META_VALUE_LEN_MAX + 1])
            .await,
        Err(StoreError::InvalidMeta { .. })
    ));
    assert!(store.list_meta("n").await.unwrap().is_empty());
    // Metadata is not a tenant.
    assert!(store.tenants().await.unwrap().is_empty());
}

async fn racing_metadata_writers_never_both_win(store: Arc<dyn LogStore>) {
    // Sixteen writers each read version 1 and try to replace it: exactly one does.
    store.put_meta("race", "entry", None, b"0".to_vec()).await.unwrap();
    let tasks: Vec<_> = (0..16u8)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.put_meta("race", "entry", Some(1), vec![i]).await })
        })
        .collect();
    let mut won = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            Ok(version) => won.push((i as u8, version)),
            Err(StoreError::MetaConflict { .. }) => {}
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(won.len(), 1, "{won:?}");
    let entry = store.get_meta("race", "entry").await.unwrap().unwrap();
    assert_eq!((entry.version, entry.value), (2, vec![won[0].0]));
}

#[test]
fn hash_zero_is_the_start_of_every_chain() {
    assert_eq!(Head::EMPTY.chain, Hash32::ZERO);
}

macro_rules! backend_suite {
    ($backend:ident, $make:expr) => {
        backend_suite!(optional $backend, |dir| {
            let make: fn(&std::path::Path) -> Arc<dyn LogStore> = $make;
            Some(make(dir))
        });
    };
    // A backend that needs a server: `$open` gives `None` (and says why) where there is none.
    (optional $backend:ident, $open:expr) => {
        mod $backend {
            use super::*;
            backend_suite!(@tests $open; appends_are_dense_and_chained, tenants_are_separate, bad_appends_write_nothing,
                concurrent_appends_all_land, snapshots_are_found_at_or_before, large_batches_span_chunks,
                secrets_commit_with_their_records_and_can_be_destroyed, many_commits_read_back_from_any_seq,
                metadata_changes_only_from_the_version_named, racing_metadata_writers_never_both_win);
        }
    };
    (@tests $open:expr; $($test:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let dir = tempfile::tempdir().unwrap();
                let open: fn(&std::path::Path) -> Option<Arc<dyn LogStore>> = $open;
                let Some(store) = open(dir.path()) else { return };
                super::$test(store).await;
            }
        )*
    };
}

backend_suite!(memory, |_| Arc::new(idpsync_storage::MemoryStore::new()));
backend_suite!(redb, |dir| Arc::new(idpsync_storage::RedbStore::open(dir).unwrap()));
#[cfg(feature = "sled")]
backend_suite!(sled, |dir| Arc::new(idpsync_storage::SledStore::open(dir).unwrap()));
backend_suite!(optional postgres, |_| postgres_in_a_schema_of_its_own());

/// A PostgreSQL store in a schema of its own, dropped with the store; `None` where
/// `IDPSYNC_TEST_POSTGRES_URL` names no database (CI sets it).
fn postgres_in_a_schema_of_its_own() -> Option<Arc<dyn LogStore>> {
    let Ok(url) = std::env::var("IDPSYNC_TEST_POSTGRES_URL") else {
        // Straight to standard error: the test harness captures eprintln!, and the reason must show.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"skipped: IDPSYNC_TEST_POSTGRES_URL is not set, so the PostgreSQL backend is not tested\n",
        );
        return None;
    };
    let settings = idpsync_storage::PostgresSettings::from_url(&url).unwrap();
    let open = idpsync_storage::PostgresStore::open_scratch(settings, "idpsync_test");
    let store = tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(open)).unwrap();
    Some(Arc::new(store))
}
