//! The log on PostgreSQL under faults, through the real binary: PostgreSQL restarted while a
//! SCIM client writes, then `idpsync serve` killed with SIGKILL mid-load and started again. No
//! write that was acknowledged is lost, nothing is half-written (every user is whole, no
//! userName twice), and the chain verifies.
//!
//! The test runs a PostgreSQL server of its own (initdb in a temporary directory, a free port),
//! so that restarting it disturbs no other test. It needs the server's binaries (Debian's
//! `postgresql` package, which `.ci/postgres` installs); where they are missing it says so and
//! passes. Run as root, the server runs as the `postgres` user, as PostgreSQL requires.

mod binary;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use binary::Serving;

/// A PostgreSQL server in a directory of its own, stopped when dropped.
struct PrivatePostgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// Whether commands run as the `postgres` user (the test runs as root).
    as_postgres: bool,
    _home: tempfile::TempDir,
}

impl PrivatePostgres {
    /// Starts one, or says why it cannot and returns `None`.
    fn start() -> Option<PrivatePostgres> {
        let skip = |why: &str| {
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!("skipped: {why}, so PostgreSQL restarts are not tested\n").as_bytes(),
            );
            None
        };
        let Some(bin) = server_binaries() else {
            return skip("no PostgreSQL server binaries (initdb, pg_ctl) here");
        };
        let as_postgres = is_root();
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join("cluster");
        std::fs::create_dir(&dir).unwrap();
        if as_postgres {
            let owned = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(home.path())
                .status();
            if !owned.is_ok_and(|status| status.success()) {
                return skip("running as root without a `postgres` user to run the server as");
            }
        }
        let port = free_port();
        let server = PrivatePostgres {
            bin,
            dir,
            port,
            as_postgres,
            _home: home,
        };
        let initialised = server
            .run("initdb", &["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&server.dir)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(initialised.success(), "initdb failed");
        server.pg_ctl("start");
        Some(server)
    }

    /// A command of the server's binaries, as the user the server runs as.
    fn run(&self, program: &str, args: &[&str]) -> Command {
        let program = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        };
        command.args(args);
        command
    }

    /// `pg_ctl start|restart|stop`, waiting until it is done.
    fn pg_ctl(&self, action: &str) {
        let options = format!(
            "-p {} -k {} -c fsync=on -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.display()
        );
        let status = self
            .run("pg_ctl", &["-w", "-m", "fast", "-D"])
            .arg(&self.dir)
            .args(["-l"])
            .arg(self.dir.join("server.log"))
            .args(["-o", &options, action])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "pg_ctl {action} failed");
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self
            .run("pg_ctl", &["-w", "-m", "immediate", "stop", "-D"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Where `initdb` and `pg_ctl` are: `pg_config --bindir`, else Debian's versioned directory.
fn server_binaries() -> Option<PathBuf> {
    let from_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()));
    let debian = std::fs::read_dir("/usr/lib/postgresql").ok().and_then(|versions| {
        versions
            .filter_map(Result::ok)
            .map(|version| version.path().join("bin"))
            .filter(|bin| bin.join("initdb").is_file())
            .max()
    });
    from_config
        .into_iter()
        .chain(debian)
        .find(|bin| bin.join("initdb").is_file() && bin.join("pg_ctl").is_file())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Creates users `prefix-0`, `prefix-1`, … one at a time until `stop` says so (or `count`
/// are acknowledged); returns the acknowledged userNames. Failures (the log unavailable: 503)
/// are allowed: those writes were not acknowledged.
async fn create_users(
    origin: &str,
    token: &str,
    prefix: &str,
    count: usize,
    stop: impl Fn(usize) -> bool,
) -> (Vec<String>, Duration) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut acknowledged = Vec::new();
    let mut next = 0;
    let mut last_ack = Instant::now();
    let mut longest_gap = Duration::ZERO;
    let mut failed_in_a_row = 0;
    while acknowledged.len() < count && !stop(acknowledged.len()) {
        // A server that never comes back (a minute of failures) ends the load.
        if failed_in_a_row > 1_200 {
            break;
        }
        let name = format!("{prefix}-{next}@example.com");
        next += 1;
        let sent = client
            .post(format!("{origin}/scim/v2/Users"))
            .bearer_auth(token)
            .header("content-type", "application/scim+json")
            .body(
                serde_json::json!({"userName": name, "name": {"givenName": "Load", "familyName": prefix}}).to_string(),
            )
            .send()
            .await;
        match sent {
            Ok(answer) if answer.status() == 201 => {
                acknowledged.push(name);
                longest_gap = longest_gap.max(last_ack.elapsed());
                last_ack = Instant::now();
                failed_in_a_row = 0;
            }
            Ok(answer) => {
                failed_in_a_row += 1;
                let status = answer.status();
                assert!(
                    status == 503 || status == 500,
                    "only an unavailable log may refuse a create, got {status}: {}",
                    answer.text().await.unwrap_or_default()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // The server went away (killed), or the connection broke: not acknowledged.
            Err(_) => {
                failed_in_a_row += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    eprintln!(
        "{prefix}: {} writes acknowledged, the longest wait between two {longest_gap:?}",
        acknowledged.len()
    );
    (acknowledged, longest_gap)
}

fn config(dir: &Path, url: &str) -> PathBuf {
    let path = dir.join("idpsync.toml");
    std::fs::write(&path, format!("storage = \"{url}\"\n")).unwrap();
    path
}

fn bootstrap_token(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join("bootstrap-token"))
        .unwrap()
        .lines()
        .rev()
        .find(|line| line.starts_with("idps_"))
        .expect("the bootstrap token file holds the token")
        .to_owned()
}

fn user_names(data_dir: &Path, config: &Path) -> Vec<String> {
    let output = binary::idpsync(data_dir)
        .arg("--config")
        .arg(config)
        .args(["query", "users", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let users: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    users
        .iter()
        .map(|user| user["userName"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn postgres_restarted_and_serve_killed_mid_load_lose_no_acknowledged_write() {
    let Some(postgres) = PrivatePostgres::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = config(dir.path(), &postgres.url());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // PostgreSQL restarted while the client writes.
    let server = Serving::start(&data, Some(&config));
    let token = bootstrap_token(&data);
    let (mut acknowledged, _) = runtime.block_on(create_users(&server.origin, &token, "before", 60, |_| false));
    assert_eq!(acknowledged.len(), 60, "a healthy server takes every write");
    let (restart, outage) = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let started = Instant::now();
            runtime.block_on(create_users(&server.origin, &token, "during", 400, |done| {
                done >= 150 && started.elapsed() > Duration::from_secs(4)
            }))
        });
        std::thread::sleep(Duration::from_millis(700));
        let restarting = Instant::now();
        postgres.pg_ctl("restart");
        eprintln!("PostgreSQL restarted in {:?}", restarting.elapsed());
        writer.join().unwrap()
    });
    assert!(!restart.is_empty(), "writes went on around the restart");
    // Writes resume soon after the database is back (the store's first pauses are 0.5 s,
    // 1 s, 2 s…): a bound far above that, which a pause grown by the failures of one outage
    // (30 s) passes.
    assert!(
        outage < Duration::from_secs(15),
        "writes were refused for {outage:?} around a restart of PostgreSQL"
    );
    acknowledged.extend(restart);
    acknowledged.extend(
        runtime
            .block_on(create_users(&server.origin, &token, "after", 40, |_| false))
            .0,
    );
    server.stop();

    // `serve` killed with SIGKILL while the client writes.
    let server = Serving::start(&data, Some(&config));
    let gone = AtomicBool::new(false);
    let (killed, _) = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            runtime.block_on(create_users(&server.origin, &token, "killed", 10_000, |_| {
                gone.load(Ordering::Relaxed)
            }))
        });
        std::thread::sleep(Duration::from_millis(1_500));
        let pid = server.pid();
        assert!(
            Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()
                .unwrap()
                .success()
        );
        gone.store(true, Ordering::Relaxed);
        writer.join().unwrap()
    });
    assert!(!killed.is_empty(), "writes were acknowledged before the kill");
    drop(server);
    acknowledged.extend(killed);

    let names = user_names(&data, &config);
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "no userName twice");
    for name in &acknowledged {
        assert!(unique.binary_search(name).is_ok(), "acknowledged but lost: {name}");
    }
    let verified = binary::idpsync(&data)
        .arg("--config")
        .arg(&config)
        .args(["log", "verify"])
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );
    eprintln!(
        "{} writes acknowledged, {} users in the log, the chain verifies",
        acknowledged.len(),
        names.len()
    );
}
