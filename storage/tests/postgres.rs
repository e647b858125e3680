//! What the PostgreSQL backend promises beyond the shared suite: one winner when two writers
//! race for a head, outages reported and recovered from without a restart, records identical to
//! redb's, snapshots read a part at a time, and clear errors at start.
//!
//! Every test runs in a schema of its own, dropped afterwards, in the database
//! `IDPSYNC_TEST_POSTGRES_URL` names; where it is not set, each test says so and passes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use idpsync_storage::postgres::{SCHEMA_VERSION, TlsMode};
use idpsync_storage::{
    AppendBatch, EventId, HeadNotice, LogStore, NewRecord, NewSecret, PostgresSettings, PostgresStore, RedbStore,
    SchemaVersion, SecretId, Seq, StoreError, StoreHealth, StoredSnapshot, TenantId, Timestamp,
};

fn test_url() -> Option<String> {
    let url = std::env::var("IDPSYNC_TEST_POSTGRES_URL").ok();
    if url.is_none() {
        // Straight to standard error: the test harness captures eprintln!, and the reason must show.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"skipped: IDPSYNC_TEST_POSTGRES_URL is not set, so the PostgreSQL backend is not tested\n",
        );
    }
    url
}

async fn scratch(url: &str) -> PostgresStore {
    PostgresStore::open_scratch(PostgresSettings::from_url(url).unwrap(), "idpsync_test")
        .await
        .unwrap()
}

fn tenant(name: &str) -> TenantId {
    TenantId::new(name).unwrap()
}

fn record(at: i64, payload: &[u8]) -> NewRecord {
    NewRecord {
        recorded_at: Timestamp(at),
        event_id: EventId(uuid::Uuid::from_u128(at as u128)),
        version: SchemaVersion(1),
        payload: payload.to_vec(),
    }
}

fn batch(tenant: &TenantId, first_seq: Seq, records: Vec<NewRecord>, secrets: Vec<NewSecret>) -> AppendBatch {
    AppendBatch {
        tenant: tenant.clone(),
        first_seq,
        records,
        secrets,
    }
}

/// The first-seq contract across processes: two stores on one database (two replicas) append
/// at the same head at once, round after round. One wins; the other gets `SeqConflict`, and
/// nothing of its batch, records or secrets, is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_racing_for_one_head_store_one_batch_whole() {
    let Some(url) = test_url() else { return };
    let first = scratch(&url).await;
    let second = PostgresStore::open(first.settings().clone()).await.unwrap();
    let acme = tenant("acme");
    first.ensure_tenant(&acme).await.unwrap();
    for round in 0..20u8 {
        let head = second.head(&acme).await.unwrap();
        let at = 1_000 + i64::from(round) * 10;
        let secret_id = |writer: u8| {
            let mut id = [0u8; 16];
            id[0] = writer;
            id[1] = round;
            SecretId(id)
        };
        let attempt = |writer: u8| {
            batch(
                &acme,
                head.seq.next(),
                vec![record(at, &[writer, round]), record(at + 1, &[writer, round, 2])],
                vec![NewSecret {
                    id: secret_id(writer),
                    material: vec![writer; 32],
                }],
            )
        };
        let (one, two) = tokio::join!(first.append(attempt(1)), second.append(attempt(2)));
        let winner = match (&one, &two) {
            (Ok(_), Err(StoreError::SeqConflict { .. })) => 1u8,
            (Err(StoreError::SeqConflict { .. }), Ok(_)) => 2u8,
            other => panic!("round {round}: one winner expected, got {other:?}"),
        };
        let stored = first.read(&acme, head.seq.next(), 10).await.unwrap();
        assert_eq!(stored.len(), 2, "round {round}");
        assert!(stored.iter().all(|r| r.payload[0] == winner), "round {round}");
        let secrets = first.secrets(&acme).await.unwrap();
        let loser = 3 - winner;
        assert!(
            secrets.iter().all(|(id, _)| *id != secret_id(loser)),
            "round {round}: the loser's secret was stored"
        );
    }
    let head = idpsync_storage::verify::verify_log(&first, &acme).await.unwrap();
    assert_eq!(head.seq, Seq(40));
}

/// A TCP relay to the database that can be cut (every connection closed, new ones refused)
/// and restored: the database going away and coming back, without touching the server.
struct Relay {
    port: u16,
    up: Arc<AtomicBool>,
    links: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Relay {
    async fn start(target: String) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let links: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (accepting, registry) = (Arc::clone(&up), Arc::clone(&links));
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !accepting.load(Ordering::SeqCst) {
                    continue;
                }
                let target = target.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                registry.lock().unwrap().push(link.abort_handle());
            }
        });
        Relay { port, up, links }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// An unreachable database: appends fail with `Unavailable` and a retry time (never a panic,
/// never a hang), health says unavailable, and once the database is back the same store
/// takes appends again, without a restart; nothing of the refused appends is in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_turn_is_one_stores_at_a_time_and_its_holder_sees_who_waits() {
    let Some(url) = test_url() else {
        return;
    };
    let first = scratch(&url).await;
    let second = PostgresStore::open(first.settings().clone()).await.unwrap();
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    let held = first
        .write_turn(&acme)
        .await
        .unwrap()
        .expect("a shared store has turns");
    assert!(!held.is_wanted().await, "nobody waits yet");
    // Another tenant's turn is free.
    let other = second.write_turn(&globex).await.unwrap().unwrap();
    assert!(!held.is_wanted().await);
    other.release().await;
    // The other store waits for acme's turn, and the holder sees it waiting.
    let granted = Arc::new(AtomicBool::new(false));
    let waiter = tokio::spawn({
        let granted = Arc::clone(&granted);
        async move {
            let turn = second.write_turn(&tenant("acme")).await.unwrap().unwrap();
            granted.store(true, Ordering::SeqCst);
            turn.release().await;
        }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !held.is_wanted().await {
        assert!(tokio::time::Instant::now() < deadline, "the waiter never showed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !granted.load(Ordering::SeqCst),
        "granted while another store held the turn"
    );
    held.release().await;
    tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the turn passes on once released")
        .unwrap();
    assert!(granted.load(Ordering::SeqCst));
    // A dropped turn is given back too.
    drop(first.write_turn(&acme).await.unwrap());
    let again = tokio::time::timeout(Duration::from_secs(10), first.write_turn(&acme)).await;
    again
        .expect("a dropped turn is given back")
        .unwrap()
        .unwrap()
        .release()
        .await;
    // A store holds as many turns at once as it keeps connections for them; past that, a
    // writer is refused a turn at once (and appends without one), never left waiting.
    let mut held = Vec::new();
    for n in 0..8 {
        held.push(first.write_turn(&tenant(&format!("t{n}"))).await.unwrap().unwrap());
    }
    let refused = tokio::time::timeout(Duration::from_secs(5), first.write_turn(&tenant("t8"))).await;
    assert!(refused.expect("refused, not waited for").is_err());
    for turn in held {
        turn.release().await;
    }
    first.write_turn(&tenant("t8")).await.unwrap().unwrap().release().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_unavailable_and_the_store_recovers_without_a_restart() {
    let Some(url) = test_url() else { return };
    let direct = PostgresSettings::from_url(&url).unwrap();
    let mut parsed = url::Url::parse(&url).unwrap();
    let target = format!(
        "{}:{}",
        parsed.host_str().unwrap_or("127.0.0.1"),
        parsed.port().unwrap_or(5432)
    );
    let relay = Relay::start(target).await;
    parsed.set_host(Some("127.0.0.1")).unwrap();
    parsed.set_port(Some(relay.port)).unwrap();
    let through_relay = PostgresSettings::from_url(parsed.as_str()).unwrap();
    let store = PostgresStore::open_scratch(through_relay, "idpsync_test")
        .await
        .unwrap();
    let acme = tenant("acme");
    store.ensure_tenant(&acme).await.unwrap();
    store
        .append(batch(&acme, Seq(1), vec![record(1_000, b"before")], Vec::new()))
        .await
        .unwrap();
    assert_eq!(store.health(), StoreHealth::Ready);

    relay.cut();
    // A bound on the wait, so that a hang fails the test instead of stalling it.
    let refused = tokio::time::timeout(
        Duration::from_secs(60),
        store.append(batch(&acme, Seq(2), vec![record(2_000, b"during")], Vec::new())),
    )
    .await
    .expect("an append against an unreachable database returns");
    assert!(matches!(&refused, Err(StoreError::Unavailable { .. })), "{refused:?}");
    assert!(matches!(store.health(), StoreHealth::Unavailable { .. }));
    // During the pause, writes are refused at once.
    let again = store
        .append(batch(&acme, Seq(2), vec![record(2_000, b"during")], Vec::new()))
        .await;
    assert!(matches!(again, Err(StoreError::Unavailable { .. })), "{again:?}");

    relay.restore();
    let mut appended = None;
    for _ in 0..200 {
        match store
            .append(batch(&acme, Seq(2), vec![record(3_000, b"after")], Vec::new()))
            .await
        {
            Ok(done) => {
                appended = Some(done);
                break;
            }
            Err(StoreError::Unavailable { .. }) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(appended.expect("the store recovers").head.seq, Seq(2));
    assert_eq!(store.health(), StoreHealth::Ready);
    // Checked through a store that never saw the outage.
    let witness = PostgresStore::open(direct.with_schema(store.settings().schema()).unwrap())
        .await
        .unwrap();
    let payloads: Vec<Vec<u8>> = witness
        .read(&acme, Seq(1), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.payload)
        .collect();
    assert_eq!(payloads, vec![b"before".to_vec(), b"after".to_vec()]);
    drop(witness);
}

/// For the same batches, PostgreSQL and redb store the same records: every field and every
/// chain link equal, so a log moves between them unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_and_chains_are_identical_to_redbs() {
    let Some(url) = test_url() else { return };
    let postgres = scratch(&url).await;
    let dir = tempfile::tempdir().unwrap();
    let redb = RedbStore::open(dir.path()).unwrap();
    let acme = tenant("acme");
    for store in [&postgres as &dyn LogStore, &redb] {
        store.ensure_tenant(&acme).await.unwrap();
    }
    let batches = [
        vec![record(1_000, b""), record(1_000, &[0xff; 300])],
        vec![record(i64::MAX - 1, &vec![7; 70_000])],
    ];
    let mut first_seq = Seq(1);
    for records in batches {
        let count = records.len() as u64;
        let into_postgres = postgres
            .append(batch(&acme, first_seq, records.clone(), Vec::new()))
            .await
            .unwrap();
        let into_redb = redb.append(batch(&acme, first_seq, records, Vec::new())).await.unwrap();
        assert_eq!(into_postgres, into_redb);
        first_seq = first_seq.plus(count);
    }
    assert_eq!(
        postgres.read(&acme, Seq(1), 10).await.unwrap(),
        redb.read(&acme, Seq(1), 10).await.unwrap()
    );
    assert_eq!(postgres.head(&acme).await.unwrap(), redb.head(&acme).await.unwrap());
}

/// A snapshot of several parts: read whole, and read in pieces on a blocking thread, as the
/// engine does, with the hash checked at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_of_several_parts_reads_back_whole_and_in_pieces() {
    let Some(url) = test_url() else { return };
    let store = scratch(&url).await;
    let acme = tenant("acme");
    store.ensure_tenant(&acme).await.unwrap();
    store
        .append(batch(&acme, Seq(1), vec![record(1_000, b"x")], Vec::new()))
        .await
        .unwrap();
    let bytes: Vec<u8> = (0..3 * 1024 * 1024 + 12_345u32).map(|i| (i % 251) as u8).collect();
    store
        .put_snapshot(&acme, StoredSnapshot::new(Seq(1), bytes.clone()))
        .await
        .unwrap();
    let whole = store.snapshot_at_or_before(&acme, Seq(1)).await.unwrap().unwrap();
    assert_eq!(whole.bytes, bytes);
    let mut reader = store.open_snapshot_at_or_before(&acme, Seq(9)).await.unwrap().unwrap();
    let read = tokio::task::spawn_blocking(move || {
        let mut read = Vec::new();
        let mut piece = [0u8; 70_000];
        loop {
            let n = std::io::Read::read(&mut reader, &mut piece).unwrap();
            if n == 0 {
                break;
            }
            read.extend_from_slice(&piece[..n]);
        }
        reader.finish().map(|()| read)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(read, bytes);
    // A reader dropped half-way stops its fetching task; the store goes on.
    let mut early = store.open_snapshot_at_or_before(&acme, Seq(1)).await.unwrap().unwrap();
    tokio::task::spawn_blocking(move || {
        let mut piece = vec![0u8; 1024 * 1024 + 1];
        std::io::Read::read_exact(&mut early, &mut piece).unwrap();
    })
    .await
    .unwrap();
    assert_eq!(store.snapshots(&acme).await.unwrap().len(), 1);
}

/// A database migrated by a newer build is refused at start, naming both versions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_is_refused_naming_both_versions() {
    let Some(url) = test_url() else { return };
    let store = scratch(&url).await;
    let settings = store.settings().clone();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
        .execute(
            &format!(
                "INSERT INTO \"{}\".schema_migrations (version) VALUES ($1)",
                settings.schema()
            ),
            &[&(SCHEMA_VERSION + 1)],
        )
        .await
        .unwrap();
    let refused = PostgresStore::open(settings)
        .await
        .err()
        .expect("a newer schema is refused");
    let message = refused.to_string();
    assert!(
        message.contains(&format!("version {}", SCHEMA_VERSION + 1))
            && message.contains(&format!("version {SCHEMA_VERSION}")),
        "{message}"
    );
}

/// A replica hears of the heads another moves: a new tenant, then each append, in order, and
/// nothing of another schema on the same database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_hears_the_heads_another_store_moves() {
    let Some(url) = test_url() else { return };
    let first = scratch(&url).await;
    let second = PostgresStore::open(first.settings().clone()).await.unwrap();
    let elsewhere = scratch(&url).await;
    let mut notices = first.head_notices().expect("PostgreSQL stores are shared");
    // The listener says it may have missed something once it listens: from then on nothing is.
    let heard = tokio::time::timeout(Duration::from_secs(10), notices.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(heard, HeadNotice::Missed);
    let acme = tenant("acme");
    elsewhere.ensure_tenant(&acme).await.unwrap();
    elsewhere
        .append(batch(&acme, Seq(1), vec![record(1, b"x")], Vec::new()))
        .await
        .unwrap();
    second.ensure_tenant(&acme).await.unwrap();
    second
        .append(batch(&acme, Seq(1), vec![record(1, b"a"), record(2, b"b")], Vec::new()))
        .await
        .unwrap();
    second
        .append(batch(&acme, Seq(3), vec![record(3, b"c")], Vec::new()))
        .await
        .unwrap();
    let mut heard = Vec::new();
    while heard.len() < 3 {
        match tokio::time::timeout(Duration::from_secs(10), notices.recv())
            .await
            .unwrap()
            .unwrap()
        {
            HeadNotice::Moved { tenant, seq } => heard.push((tenant, seq)),
            HeadNotice::Missed => {}
        }
    }
    assert_eq!(
        heard,
        vec![(acme.clone(), Seq(0)), (acme.clone(), Seq(2)), (acme, Seq(3))]
    );
    // Stores that only this process writes have no notices.
    assert!(idpsync_storage::MemoryStore::new().head_notices().is_none());
}

/// Wrong credentials, or nothing listening: one error that names the URL, without its
/// password, and says what failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_user_or_port_is_one_clear_error_without_the_password() {
    let Some(url) = test_url() else { return };
    let mut wrong_user = url::Url::parse(&url).unwrap();
    wrong_user.set_username("no_such_role_idpsync").unwrap();
    wrong_user.set_password(Some("hunter2")).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = listener.local_addr().unwrap().port();
    drop(listener);
    let nobody = format!("postgres://postgres@127.0.0.1:{closed_port}/test?sslmode=disable");
    for (url, says) in [(wrong_user.to_string(), "no_such_role_idpsync"), (nobody, "refused")] {
        let error = PostgresStore::open(PostgresSettings::from_url(&url).unwrap())
            .await
            .err()
            .expect("refused");
        let message = error.to_string();
        assert!(matches!(error, StoreError::CannotOpen { .. }), "{message}");
        assert!(
            message.contains("cannot use the PostgreSQL database at postgres://"),
            "{message}"
        );
        assert!(message.to_lowercase().contains(says), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
}

/// TLS through rustls, in libpq's modes: `prefer` and `require` encrypt (the test server's
/// certificate is self-signed), `verify-full` refuses a certificate no trusted authority
/// issued, and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_modes_encrypt_and_verify_as_libpq_does() {
    let Some(url) = test_url() else { return };
    let with_mode = |mode: &str| {
        let mut parsed = url::Url::parse(&url).unwrap();
        let kept: Vec<(String, String)> = parsed
            .query_pairs()
            .filter(|(key, _)| key != "sslmode")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        parsed
            .query_pairs_mut()
            .clear()
            .extend_pairs(&kept)
            .append_pair("sslmode", mode);
        PostgresSettings::from_url(parsed.as_str()).unwrap()
    };
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let server_has_tls: String = client.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    if server_has_tls != "on" {
        eprintln!("skipped: the test server does not offer TLS");
        return;
    }
    for mode in ["prefer", "require"] {
        let store = PostgresStore::open_scratch(with_mode(mode), "idpsync_test")
            .await
            .unwrap();
        assert_ne!(store.settings().tls(), TlsMode::Disable);
        let acme = tenant("acme");
        store.ensure_tenant(&acme).await.unwrap();
        assert_eq!(store.tenants().await.unwrap(), vec![acme]);
    }
    let refused = PostgresStore::open(with_mode("verify-full"))
        .await
        .err()
        .expect("refused");
    let message = refused.to_string();
    assert!(message.to_lowercase().contains("certificate"), "{message}");
}

/// A database that turns read-only (a failover to a standby, an operator's switch): appends
/// fail with `Unavailable` saying so, health says unavailable, and when it takes writes again
/// the store does too, without a restart. The switch is made on a role of the test's own, so
/// nothing else using the database notices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_database_is_unavailable_until_it_takes_writes_again() {
    let Some(url) = test_url() else { return };
    let owner = scratch(&url).await;
    let schema = owner.settings().schema().to_owned();
    let role = format!("{schema}_writer");
    let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    // Roles of earlier runs that stopped before their cleanup: their schema is gone.
    let leftovers = admin
        .query(
            "SELECT rolname::text FROM pg_roles WHERE rolname LIKE 'idpsync\\_test\\_%\\_writer'
             AND NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = left(rolname, -7))",
            &[],
        )
        .await
        .unwrap();
    for leftover in leftovers {
        let name: String = leftover.get(0);
        let _ = admin.batch_execute(&format!("DROP ROLE \"{name}\"")).await;
    }
    admin
        .batch_execute(&format!(
            "CREATE ROLE \"{role}\" LOGIN;
             GRANT USAGE, CREATE ON SCHEMA \"{schema}\" TO \"{role}\";
             GRANT ALL ON ALL TABLES IN SCHEMA \"{schema}\" TO \"{role}\";"
        ))
        .await
        .unwrap();
    let mut as_role = url::Url::parse(&url).unwrap();
    as_role.set_username(&role).unwrap();
    as_role.set_password(None).unwrap();
    as_role.query_pairs_mut().append_pair("schema", &schema);
    let store = PostgresStore::open(PostgresSettings::from_url(as_role.as_str()).unwrap())
        .await
        .unwrap();
    let acme = tenant("acme");
    store.ensure_tenant(&acme).await.unwrap();
    let switch = |read_only: bool| {
        let setting = if read_only {
            "SET default_transaction_read_only = on"
        } else {
            "RESET default_transaction_read_only"
        };
        format!(
            "ALTER ROLE \"{role}\" {setting};
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}';"
        )
    };

    admin.batch_execute(&switch(true)).await.unwrap();
    let refused = store
        .append(batch(
            &acme,
            Seq(1),
            vec![record(1_000, b"while read-only")],
            Vec::new(),
        ))
        .await;
    assert!(matches!(&refused, Err(StoreError::Unavailable { .. })), "{refused:?}");
    assert!(
        matches!(store.health(), StoreHealth::Unavailable { ref reason, .. } if reason.contains("read-only")),
        "{:?}",
        store.health()
    );

    admin.batch_execute(&switch(false)).await.unwrap();
    let mut appended = None;
    for _ in 0..200 {
        match store
            .append(batch(&acme, Seq(1), vec![record(2_000, b"writable again")], Vec::new()))
            .await
        {
            Ok(done) => {
                appended = Some(done);
                break;
            }
            Err(StoreError::Unavailable { .. }) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(appended.expect("the store recovers").head.seq, Seq(1));
    assert_eq!(store.health(), StoreHealth::Ready);
    drop(store);
    admin
        .batch_execute(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}';
             DROP OWNED BY \"{role}\"; DROP ROLE \"{role}\";"
        ))
        .await
        .unwrap();
}
