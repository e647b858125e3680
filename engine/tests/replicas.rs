//! Several engines (replicas) on one PostgreSQL schema: a command decided on a log another
//! replica moved on is decided again on what it appended, so a userName stays unique across
//! replicas; each replica folds in the others' appends (read-your-writes through another
//! replica, the change stream in log order, tenants another replica wrote, loaded on first use).
//!
//! Every test runs in a schema of its own in the database `IDPSYNC_TEST_POSTGRES_URL` names;
//! where it is not set, each test says so and passes.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{origin, provision};
use idpsync_engine::{Engine, Follower, Outcome, Rejection, SubmitError, TenantSettings};
use idpsync_storage::verify::verify_log;
use idpsync_storage::{LogStore, PostgresSettings, PostgresStore, Seq, TenantId};

/// Engines on one new schema, each on a store (a connection pool) of its own, as separate
/// processes would be, each following the others (heads read every `every` besides the
/// notices); `None` where no database is configured.
async fn replicas(count: usize, every: Duration) -> Option<(Vec<Arc<Engine>>, Vec<Follower>, PostgresSettings)> {
    let Ok(url) = std::env::var("IDPSYNC_TEST_POSTGRES_URL") else {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"skipped: IDPSYNC_TEST_POSTGRES_URL is not set, so replicas are not tested\n",
        );
        return None;
    };
    let first = PostgresStore::open_scratch(PostgresSettings::from_url(&url).unwrap(), "idpsync_replicas")
        .await
        .unwrap();
    let settings = first.settings().clone();
    let mut stores: Vec<Arc<dyn LogStore>> = vec![Arc::new(first)];
    for _ in 1..count {
        stores.push(Arc::new(PostgresStore::open(settings.clone()).await.unwrap()));
    }
    let mut engines = Vec::new();
    let mut followers = Vec::new();
    for store in stores {
        let engine = Arc::new(Engine::open(store, TenantSettings::default()).await.unwrap());
        followers.push(
            engine
                .follow_other_writers(every)
                .expect("a PostgreSQL store is shared"),
        );
        engines.push(engine);
    }
    Some((engines, followers, settings))
}

/// Waits up to 10 s for `done`.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "not within 10 s: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_name_created_at_once_through_three_replicas_is_created_once() {
    let Some((engines, _followers, _)) = replicas(3, Duration::from_secs(30)).await else {
        return;
    };
    let default = TenantId::default_tenant();
    for round in 0..10 {
        let name = format!("user{round}@example.com");
        let attempts: Vec<_> = engines
            .iter()
            .map(|engine| {
                let tenant = engine.require_tenant(&default).unwrap();
                let name = name.clone();
                tokio::spawn(async move { tenant.execute(provision(&name), origin()).await })
            })
            .collect();
        let mut created = 0;
        for attempt in attempts {
            match attempt.await.unwrap() {
                Ok(committed) => {
                    assert!(matches!(committed.outcome, Outcome::UserProvisioned(_)));
                    created += 1;
                }
                Err(SubmitError::Rejected(Rejection::UserNameTaken { .. })) => {}
                Err(other) => panic!("round {round}: {other}"),
            }
        }
        assert_eq!(created, 1, "round {round}: exactly one replica creates {name}");
    }
    // Every replica, caught up, holds the same ten users, once each; the log is intact.
    for engine in &engines {
        let tenant = engine.require_tenant(&default).unwrap();
        tenant.catch_up().await.unwrap();
        let state = tenant.state();
        assert_eq!(state.users().count(), 10);
        for round in 0..10 {
            assert!(state.user_by_name(&format!("user{round}@example.com")).is_some());
        }
    }
    let head = verify_log(&**engines[0].store(), &default).await.unwrap();
    assert_eq!(head.seq, engines[2].require_tenant(&default).unwrap().state().seq());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_writing_one_tenant_at_once_take_turns_and_never_lose_their_place() {
    let Some((engines, _followers, _)) = replicas(3, Duration::from_secs(30)).await else {
        return;
    };
    let default = TenantId::default_tenant();
    const WRITERS: usize = 16;
    const EACH: usize = 20;
    let mut writes = Vec::new();
    for (replica, engine) in engines.iter().enumerate() {
        for writer in 0..WRITERS {
            let tenant = engine.require_tenant(&default).unwrap();
            writes.push(tokio::spawn(async move {
                for n in 0..EACH {
                    let name = format!("r{replica}w{writer}n{n}@example.com");
                    if let Err(error) = tenant.execute(provision(&name), origin()).await {
                        panic!("{name}: {error}");
                    }
                }
            }));
        }
    }
    for write in writes {
        write.await.unwrap();
    }
    let conflicts: Vec<u64> = engines
        .iter()
        .map(|engine| engine.require_tenant(&default).unwrap().append_conflicts())
        .collect();
    assert_eq!(
        conflicts,
        [0, 0, 0],
        "batches that lost their place in the log, per replica"
    );
    let head = verify_log(&**engines[0].store(), &default).await.unwrap();
    for engine in &engines {
        let tenant = engine.require_tenant(&default).unwrap();
        assert_eq!(tenant.catch_up().await.unwrap(), head.seq);
        assert_eq!(tenant.state().users().count(), engines.len() * WRITERS * EACH);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_one_replica_is_read_through_another() {
    // Heads are read only every 30 s: what shows sooner came by a notice or a catch-up.
    let Some((engines, _followers, _)) = replicas(2, Duration::from_secs(30)).await else {
        return;
    };
    let default = TenantId::default_tenant();
    let (a, b) = (
        engines[0].require_tenant(&default).unwrap(),
        engines[1].require_tenant(&default).unwrap(),
    );
    // Read-your-writes: a catch-up before the read includes the write.
    let written = a.execute(provision("alice@example.com"), origin()).await.unwrap();
    assert!(b.catch_up().await.unwrap() >= written.head);
    assert!(b.state().user_by_name("alice@example.com").is_some());
    // Without asking, the notice brings the next write.
    a.execute(provision("bob@example.com"), origin()).await.unwrap();
    eventually("B folds in A's second write", || {
        b.state().user_by_name("bob@example.com").is_some()
    })
    .await;
    // And B's writes go on from there, decided on A's.
    b.execute(provision("carol@example.com"), origin()).await.unwrap();
    assert!(matches!(
        a.execute(provision("carol@example.com"), origin()).await,
        Err(SubmitError::Rejected(Rejection::UserNameTaken { .. }))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_stream_of_one_replica_carries_another_replicas_writes_in_order() {
    let Some((engines, _followers, _)) = replicas(2, Duration::from_secs(30)).await else {
        return;
    };
    let default = TenantId::default_tenant();
    let (a, b) = (
        engines[0].require_tenant(&default).unwrap(),
        engines[1].require_tenant(&default).unwrap(),
    );
    let mut stream = b.subscribe(Seq(1));
    for n in 0..20 {
        a.execute(provision(&format!("user{n}@example.com")), origin())
            .await
            .unwrap();
    }
    for expected in 1..=20u64 {
        let applied = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("the next change within 10 s")
            .unwrap();
        assert_eq!(applied.event.seq, Seq(expected));
        let chain = engines[1].store().read(&default, Seq(expected), 1).await.unwrap()[0].chain;
        assert_eq!(applied.chain, chain, "seq {expected} carries its stored chain link");
    }
}

/// A replica leaves alone a tenant it has not used (it follows only what it loaded): on first
/// use it loads it up to date, and from then on folds in the other replica's writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_another_replica_writes_loads_up_to_date_on_first_use_then_is_followed() {
    let Some((engines, _followers, _)) = replicas(2, Duration::from_secs(30)).await else {
        return;
    };
    let beta = TenantId::new("beta").unwrap();
    let tenant = engines[0].ensure_tenant(&beta).await.unwrap();
    tenant.execute(provision("dana@example.com"), origin()).await.unwrap();
    // B's follower hears of the write (a notice) and leaves beta unloaded.
    let default = TenantId::default_tenant();
    engines[0]
        .require_tenant(&default)
        .unwrap()
        .execute(provision("marker@example.com"), origin())
        .await
        .unwrap();
    eventually("B follows default, which it loaded", || {
        engines[1]
            .require_tenant(&default)
            .unwrap()
            .state()
            .user_by_name("marker@example.com")
            .is_some()
    })
    .await;
    assert!(engines[1].tenant(&beta).is_none(), "B loads beta only on first use");

    let on_b = engines[1]
        .tenant_in_log(&beta)
        .await
        .unwrap()
        .expect("the log has beta");
    assert!(on_b.state().user_by_name("dana@example.com").is_some());
    tenant.execute(provision("erin@example.com"), origin()).await.unwrap();
    eventually("B folds in A's next write to beta", || {
        on_b.state().user_by_name("erin@example.com").is_some()
    })
    .await;
}

/// A replica that loads a tenant while another writes it misses none of the writes made during
/// the loading: its follower waits for the loading, then catches up (the heads' timer is too
/// slow to hide a miss here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_loaded_while_another_replica_writes_it_ends_at_the_head() {
    let Some((engines, _followers, _)) = replicas(2, Duration::from_secs(60)).await else {
        return;
    };
    let gamma = TenantId::new("gamma").unwrap();
    let writer = engines[0].ensure_tenant(&gamma).await.unwrap();
    for n in 0..200 {
        writer
            .execute(provision(&format!("before{n}")), origin())
            .await
            .unwrap();
    }
    let writing = tokio::spawn(async move {
        for n in 0..100 {
            writer
                .execute(provision(&format!("during{n}")), origin())
                .await
                .unwrap();
        }
        writer.state().seq()
    });
    let on_b = engines[1]
        .tenant_in_log(&gamma)
        .await
        .unwrap()
        .expect("the log has gamma");
    let head = writing.await.unwrap();
    assert_eq!(head, Seq(300));
    eventually("B's gamma reaches A's head", || on_b.state().seq() == head).await;
    assert_eq!(on_b.state().user_count(), 300);
}

/// A listing of users `u0`..`u{count - 1}` from the integration `okta`.
fn okta_run(count: usize) -> idpsync_engine::reconcile::SyncInput {
    use idpsync_engine::absence::AbsenceRules;
    use idpsync_engine::model::UserProfile;
    use idpsync_engine::reconcile::{Listing, ListingScope, ScopeRules, SnapshotUser, SyncInput};
    let mut listing = Listing::new(ListingScope::Complete);
    for n in 0..count {
        listing.add_user(SnapshotUser {
            external_id: format!("u{n}"),
            active: true,
            profile: UserProfile {
                user_name: format!("okta{n}@example.com"),
                ..UserProfile::default()
            },
        });
    }
    SyncInput {
        integration: idpsync_engine::ids::IntegrationName::new("okta").unwrap(),
        run: idpsync_engine::ids::SyncRunId::new(),
        listing,
        // The guard alone: what a listing lacks is taken away at once (engine/tests/absence.rs
        // counts listings).
        rules: ScopeRules {
            absence: AbsenceRules::IMMEDIATE,
            ..ScopeRules::default()
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_another_replica_cleared_is_not_confirmed_through_a_replica_that_still_shows_it() {
    use idpsync_engine::reconcile::Guard;
    let Some((engines, _followers, settings)) = replicas(2, Duration::from_secs(30)).await else {
        return;
    };
    let default = TenantId::default_tenant();
    let a = engines[0].require_tenant(&default).unwrap();
    a.reconcile(okta_run(100), Guard::Enforce).await.unwrap();
    assert!(a.reconcile(okta_run(50), Guard::Enforce).await.unwrap().held.is_some());
    let okta = idpsync_engine::ids::IntegrationName::new("okta").unwrap();
    let run = a.held()[&okta].snapshot.run;

    // A third replica starting now finds the hold in the store.
    let c_store = PostgresStore::open(settings).await.unwrap();
    let c = Engine::open(Arc::new(c_store), TenantSettings::default())
        .await
        .unwrap();
    let c_tenant = c.require_tenant(&default).unwrap();
    assert_eq!(
        c_tenant.held()[&okta].snapshot.run,
        run,
        "the hold is kept in the store"
    );

    // A's next run applies and clears the hold; C's memory still shows it, but confirming it
    // there applies nothing.
    a.reconcile(okta_run(100), Guard::Enforce).await.unwrap();
    assert!(a.held().is_empty());
    assert!(c_tenant.held().contains_key(&okta));
    let refused = c_tenant.confirm_held(okta.clone(), run).await.unwrap_err();
    assert!(
        matches!(refused, SubmitError::Rejected(Rejection::Invalid { .. })),
        "{refused:?}"
    );
    c_tenant.catch_up().await.unwrap();
    assert_eq!(
        c_tenant.state().users_owned_by(&okta).count(),
        100,
        "nothing was applied"
    );
    c.shutdown().await;
}

/// A SQL session on the test database, beside the stores; `None` where none is configured.
async fn sql() -> Option<tokio_postgres::Client> {
    let url = std::env::var("IDPSYNC_TEST_POSTGRES_URL").ok()?;
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    Some(client)
}

/// A replica that follows `settings`' schema on a store of its own, its connections named
/// `application_name` so that a test can find them; heads read every `every` besides the
/// notices.
async fn follower_named(
    settings: &PostgresSettings,
    application_name: &str,
    every: Duration,
) -> (Arc<Engine>, Follower) {
    let mut url = url::Url::parse(&std::env::var("IDPSYNC_TEST_POSTGRES_URL").unwrap()).unwrap();
    url.query_pairs_mut()
        .append_pair("schema", settings.schema())
        .append_pair("application_name", application_name);
    let store = PostgresStore::open(PostgresSettings::from_url(url.as_str()).unwrap())
        .await
        .unwrap();
    let engine = Arc::new(Engine::open(Arc::new(store), TenantSettings::default()).await.unwrap());
    let follower = engine
        .follow_other_writers(every)
        .expect("a PostgreSQL store is shared");
    (engine, follower)
}

/// The process ids of the connections named `application_name` that listen for heads.
async fn listeners(sql: &tokio_postgres::Client, application_name: &str) -> Vec<i32> {
    sql.query(
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN %'",
        &[&application_name],
    )
    .await
    .unwrap()
    .iter()
    .map(|row| row.get(0))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_whose_listening_connection_is_killed_still_applies_every_append() {
    // Heads are read only every 30 s: what B shows sooner came by a notice or a reconnection.
    let Some((engines, _followers, settings)) = replicas(1, Duration::from_secs(30)).await else {
        return;
    };
    let sql = sql().await.unwrap();
    let name = format!("{}_b", settings.schema());
    let (b_engine, _b_follower) = follower_named(&settings, &name, Duration::from_secs(30)).await;
    let default = TenantId::default_tenant();
    let a = engines[0].require_tenant(&default).unwrap();
    let b = b_engine.require_tenant(&default).unwrap();
    a.execute(provision("before@example.com"), origin()).await.unwrap();
    eventually("B hears of A's first write", || {
        b.state().user_by_name("before@example.com").is_some()
    })
    .await;

    // B's listening connection dies; A appends while nobody listens for B.
    let old = listeners(&sql, &name).await;
    assert_eq!(old.len(), 1, "B listens on one connection");
    let killed: bool = sql
        .query_one("SELECT pg_terminate_backend($1)", &[&old[0]])
        .await
        .unwrap()
        .get(0);
    assert!(killed);
    for n in 0..20 {
        a.execute(provision(&format!("unheard{n}@example.com")), origin())
            .await
            .unwrap();
    }
    let head = a.state().seq();
    eventually("B applies every append made while it did not listen", || {
        b.state().seq() == head
    })
    .await;
    for n in 0..20 {
        assert!(b.state().user_by_name(&format!("unheard{n}@example.com")).is_some());
    }

    // It listens again, on a new connection, and hears the next append.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = listeners(&sql, &name).await;
        if now.len() == 1 && now != old {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "B does not listen again: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.execute(provision("after@example.com"), origin()).await.unwrap();
    eventually("B hears of A's write after it listens again", || {
        b.state().user_by_name("after@example.com").is_some()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_hears_no_notice_still_applies_every_append_at_its_sweep() {
    let Some((engines, _followers, settings)) = replicas(1, Duration::from_secs(30)).await else {
        return;
    };
    let sql = sql().await.unwrap();
    let name = format!("{}_b", settings.schema());
    let (b_engine, _b_follower) = follower_named(&settings, &name, Duration::from_millis(500)).await;
    let default = TenantId::default_tenant();
    let a = engines[0].require_tenant(&default).unwrap();
    let b = b_engine.require_tenant(&default).unwrap();
    // No append of this schema notifies anyone from now on.
    sql.batch_execute(&format!(
        "ALTER TABLE \"{}\".heads DISABLE TRIGGER heads_notify",
        settings.schema()
    ))
    .await
    .unwrap();
    for n in 0..20 {
        a.execute(provision(&format!("unheard{n}@example.com")), origin())
            .await
            .unwrap();
    }
    let head = a.state().seq();
    eventually("B applies every append it was never told of", || {
        b.state().seq() == head
    })
    .await;
    for n in 0..20 {
        assert!(b.state().user_by_name(&format!("unheard{n}@example.com")).is_some());
    }
}
