//! Choosing the log store (`storage`, `IDPSYNC_STORAGE`) and moving a log between stores with
//! `idpsync log copy`, through the real binary. The PostgreSQL parts run in a schema of their
//! own in the database `IDPSYNC_TEST_POSTGRES_URL` names; where it is not set they say so and
//! pass.

mod binary;

use std::path::Path;
use std::process::Output;

use binary::{idpsync, seed};
use idpsync::storage::{LogStore, PostgresSettings, PostgresStore, RedbStore, Seq, TenantId};

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A scratch schema in the test database (dropped with the returned store), and the URL that
/// names it; `None` where no database is given.
fn scratch_postgres(runtime: &tokio::runtime::Runtime) -> Option<(PostgresStore, String)> {
    let Ok(url) = std::env::var("IDPSYNC_TEST_POSTGRES_URL") else {
        // Straight to standard error: the test harness captures eprintln!, and the reason must show.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"skipped: IDPSYNC_TEST_POSTGRES_URL is not set, so the PostgreSQL backend is not tested\n",
        );
        return None;
    };
    let store = runtime
        .block_on(PostgresStore::open_scratch(
            PostgresSettings::from_url(&url).unwrap(),
            "idpsync_test",
        ))
        .unwrap();
    let mut with_schema = url::Url::parse(&url).unwrap();
    with_schema
        .query_pairs_mut()
        .append_pair("schema", store.settings().schema());
    Some((store, with_schema.to_string()))
}

fn copy(from: &str, to: &str, data_dir: &Path) -> String {
    let copied = idpsync(data_dir)
        .args(["log", "copy", "--from", from, "--to", to])
        .output()
        .unwrap();
    assert!(copied.status.success(), "{}", text(&copied));
    text(&copied)
}

/// Everything a log holds that a copy must carry, read back from a redb directory.
fn contents(runtime: &tokio::runtime::Runtime, dir: &Path) -> Vec<(TenantId, impl PartialEq + std::fmt::Debug)> {
    runtime.block_on(async {
        let store = RedbStore::open(dir).unwrap();
        let mut all = Vec::new();
        for tenant in store.tenants().await.unwrap() {
            let records = store.read(&tenant, Seq(1), usize::MAX).await.unwrap();
            let mut secrets = store.secrets(&tenant).await.unwrap();
            secrets.sort();
            let snapshots = store.snapshots(&tenant).await.unwrap();
            let head = store.head(&tenant).await.unwrap();
            all.push((tenant, (records, secrets, snapshots, head)));
        }
        all
    })
}

/// The migration path, both ways: redb → PostgreSQL → redb gives the same records, byte for
/// byte, the same keys and snapshots, and a log that `log verify` accepts. A second copy
/// continues where the first stopped, and copies nothing when there is nothing new.
#[test]
fn a_log_copied_from_redb_to_postgres_and_back_is_identical_and_verifies() {
    let runtime = runtime();
    let Some((scratch, postgres)) = scratch_postgres(&runtime) else {
        return;
    };
    let (source, back) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    seed(source.path(), 200, 10, 1_500);
    let redb_source = format!("redb:{}", source.path().display());
    let first = copy(&redb_source, &postgres, back.path());
    assert!(first.contains("tenant default: copied"), "{first}");

    // More events in the source: the next copy continues from the destination's head.
    seed(source.path(), 50, 5, 300);
    let second = copy(&redb_source, &postgres, back.path());
    assert!(second.contains("verified"), "{second}");
    let third = copy(&redb_source, &postgres, back.path());
    assert!(third.contains("copied 0 records"), "{third}");

    let redb_back = format!("redb:{}", back.path().display());
    copy(&postgres, &redb_back, back.path());
    assert_eq!(contents(&runtime, source.path()), contents(&runtime, back.path()));
    let verified = idpsync(back.path()).args(["log", "verify"]).output().unwrap();
    assert!(verified.status.success(), "{}", text(&verified));
    assert!(text(&verified).contains("tenant default: ok"), "{}", text(&verified));
    drop(scratch);
}

/// A copy never overwrites: into a destination whose log is not a prefix of the source's, it
/// refuses before writing anything.
#[test]
fn a_copy_into_a_different_log_is_refused_and_writes_nothing() {
    let runtime = runtime();
    let (one, other, work) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    seed(one.path(), 50, 5, 200);
    seed(other.path(), 60, 5, 200);
    let before = contents(&runtime, other.path());
    let refused = idpsync(work.path())
        .args([
            "log",
            "copy",
            "--from",
            &format!("redb:{}", one.path().display()),
            "--to",
            &format!("redb:{}", other.path().display()),
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("differs") || text(&refused).contains("ahead"),
        "{}",
        text(&refused)
    );
    assert_eq!(contents(&runtime, other.path()), before);
}

/// `IDPSYNC_STORAGE` (and `storage` in the file) choose the store; a wrong one is one error
/// line naming the setting, without the password.
#[test]
fn the_storage_setting_chooses_the_store_and_its_mistakes_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let wrong = idpsync(dir.path())
        .env("IDPSYNC_STORAGE", "mysql://root:hunter2@db/idp")
        .args(["log", "verify"])
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    assert!(text(&wrong).contains("IDPSYNC_STORAGE"), "{}", text(&wrong));
    assert!(!text(&wrong).contains("hunter2"), "{}", text(&wrong));
    let config = dir.path().join("idpsync.toml");
    std::fs::write(&config, "storage = \"redb:\"\n").unwrap();
    let in_file = idpsync(dir.path())
        .arg("--config")
        .arg(&config)
        .args(["log", "verify"])
        .output()
        .unwrap();
    assert!(!in_file.status.success());
    assert!(text(&in_file).contains("storage"), "{}", text(&in_file));

    let runtime = runtime();
    let Some((scratch, postgres)) = scratch_postgres(&runtime) else {
        return;
    };
    let unreachable = postgres.replace("127.0.0.1:5432", "127.0.0.1:1");
    let refused = idpsync(dir.path())
        .env("IDPSYNC_STORAGE", &unreachable)
        .args(["log", "verify"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let said = text(&refused);
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(
        said.contains("IDPSYNC_STORAGE") && said.contains("PostgreSQL"),
        "{said}"
    );

    seed_with(dir.path(), &postgres);
    let verified = idpsync(dir.path())
        .env("IDPSYNC_STORAGE", &postgres)
        .args(["log", "verify"])
        .output()
        .unwrap();
    assert!(verified.status.success(), "{}", text(&verified));
    assert!(text(&verified).contains("tenant default: ok"), "{}", text(&verified));
    // Nothing of the log went to the data directory.
    assert!(!dir.path().join(idpsync::storage::redb_store::DATABASE_FILE).exists());
    drop(scratch);
}

fn seed_with(data_dir: &Path, storage: &str) {
    let seeded = idpsync(data_dir)
        .env("IDPSYNC_STORAGE", storage)
        .args(["dev", "seed", "--users", "40", "--groups", "4", "--memberships", "100"])
        .output()
        .unwrap();
    assert!(seeded.status.success(), "{}", text(&seeded));
}

/// Operators issue: a backup needed the service stopped, and there was no restore. A backup
/// taken while `serve` runs verifies, holds the files beside the log, and restores into an
/// empty data directory and into PostgreSQL; a restore while the service runs, or into a store
/// that holds records, is refused and changes nothing.
#[test]
fn a_backup_taken_online_restores_into_redb_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    seed(&data, 40, 4, 200);
    let token = idpsync(&data)
        .args(["token", "create", "--tenant", "default", "--name", "kept"])
        .output()
        .unwrap();
    assert!(token.status.success(), "{}", text(&token));
    let users_before = idpsync(&data).args(["query", "users", "--json"]).output().unwrap();

    let server = binary::Serving::start(&data, None);
    let backup = dir.path().join("backup");
    let backed_up = idpsync(&data)
        .args(["backup", "--to", backup.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(backed_up.status.success(), "{}", text(&backed_up));
    assert!(
        text(&backed_up).contains("tenant default: backed up"),
        "{}",
        text(&backed_up)
    );
    assert!(text(&backed_up).contains("tokens.json"), "{}", text(&backed_up));
    let again = idpsync(&data)
        .args(["backup", "--to", backup.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!again.status.success(), "a backup never writes over another");
    assert!(text(&again).contains("is not empty"), "{}", text(&again));
    let while_serving = idpsync(&data)
        .args(["restore", "--from", backup.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!while_serving.status.success());
    assert!(text(&while_serving).contains("stop it"), "{}", text(&while_serving));
    server.stop();

    // Into a new data directory.
    let restored = dir.path().join("restored");
    let into_redb = idpsync(&restored)
        .args(["restore", "--from", backup.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(into_redb.status.success(), "{}", text(&into_redb));
    let users_after = idpsync(&restored).args(["query", "users", "--json"]).output().unwrap();
    assert_eq!(users_after.stdout, users_before.stdout);
    let tokens = idpsync(&restored).args(["token", "list"]).output().unwrap();
    assert!(text(&tokens).contains("kept"), "{}", text(&tokens));
    // Not twice.
    let twice = idpsync(&restored)
        .args(["restore", "--from", backup.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!twice.status.success());
    assert!(text(&twice).contains("is not empty"), "{}", text(&twice));

    // Into PostgreSQL.
    let runtime = runtime();
    let Some((_store, url)) = scratch_postgres(&runtime) else {
        return;
    };
    let on_postgres = dir.path().join("on-postgres");
    let into_postgres = idpsync(&on_postgres)
        .env("IDPSYNC_STORAGE", &url)
        .args(["restore", "--from", backup.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(into_postgres.status.success(), "{}", text(&into_postgres));
    let users_on_postgres = idpsync(&on_postgres)
        .env("IDPSYNC_STORAGE", &url)
        .args(["query", "users", "--json"])
        .output()
        .unwrap();
    assert_eq!(users_on_postgres.stdout, users_before.stdout);
}

/// Scale-out issue: on a store replicas share, the tokens, cursors and held syncs live in the
/// store's metadata. A backup carries them (not the leases) and a restore puts them back.
#[test]
fn a_backup_of_a_shared_store_carries_its_metadata() {
    let runtime = runtime();
    let Some((store, url)) = scratch_postgres(&runtime) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let on = |data: &Path| {
        let mut command = idpsync(data);
        command.env("IDPSYNC_STORAGE", &url);
        command
    };
    let seeded = on(&data)
        .args(["dev", "seed", "--users", "20", "--groups", "2", "--memberships", "40"])
        .output()
        .unwrap();
    assert!(seeded.status.success(), "{}", text(&seeded));
    let token = on(&data)
        .args(["token", "create", "--tenant", "default", "--name", "in-the-database"])
        .output()
        .unwrap();
    assert!(token.status.success(), "{}", text(&token));
    runtime.block_on(async {
        use idpsync::storage::meta::namespaces;
        store
            .put_meta(namespaces::LEASES, "default/okta", None, b"replica-a".to_vec())
            .await
            .unwrap();
    });

    let backup = dir.path().join("backup");
    let backed_up = on(&data)
        .args(["backup", "--to", backup.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(backed_up.status.success(), "{}", text(&backed_up));
    assert!(
        text(&backed_up).contains("metadata: 1 entries"),
        "the token, not the lease: {}",
        text(&backed_up)
    );

    let restored = dir.path().join("restored");
    let into_redb = idpsync(&restored)
        .args(["restore", "--from", backup.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(into_redb.status.success(), "{}", text(&into_redb));
    let copy = runtime.block_on(async {
        let store = RedbStore::open(&restored).unwrap();
        store
            .list_meta(idpsync::storage::meta::namespaces::TOKENS)
            .await
            .unwrap()
    });
    assert_eq!(copy.len(), 1);
    assert!(String::from_utf8_lossy(&copy[0].value).contains("in-the-database"));
}
