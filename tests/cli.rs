//! The `idpsync` binary end to end: a seed killed with SIGKILL leaves a log that verifies and a
//! second seed continues it; `serve` answers `/healthz` and writes a snapshot when stopped with
//! SIGTERM; `log verify` names the tenant and seq of a snapshot that was tampered with; queries
//! answer in the past.

mod binary;

use std::io::{Read, Write};
use std::process::{Output, Stdio};
use std::time::Duration;

use binary::{Serving, idpsync, run, seed};

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_killed_seed_leaves_a_log_that_verifies_and_a_second_seed_continues() {
    let dir = tempfile::tempdir().unwrap();
    let mut seed = idpsync(dir.path())
        .args([
            "dev",
            "seed",
            "--users",
            "20000",
            "--groups",
            "200",
            "--memberships",
            "200000",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Let it write for a while, then kill it mid-run.
    std::thread::sleep(Duration::from_millis(1500));
    seed.kill().unwrap();
    seed.wait().unwrap();

    let verified = run(dir.path(), &["log", "verify"]);
    assert!(verified.status.success(), "{}{}", stdout(&verified), stderr(&verified));
    assert!(
        stdout(&verified).contains("tenant default: ok"),
        "{}",
        stdout(&verified)
    );

    let second = run(
        dir.path(),
        &[
            "dev",
            "seed",
            "--users",
            "500",
            "--groups",
            "20",
            "--memberships",
            "3000",
            "--seed",
            "2",
        ],
    );
    assert!(second.status.success(), "{}", stderr(&second));
    let verified = run(dir.path(), &["log", "verify"]);
    assert!(verified.status.success(), "{}{}", stdout(&verified), stderr(&verified));

    let users = run(dir.path(), &["query", "users", "--json"]);
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&users.stdout).unwrap();
    assert!(
        listed
            .iter()
            .any(|u| u["userName"].as_str().unwrap().starts_with("s2r")),
        "the second run's users are there"
    );
    assert!(listed.iter().all(|u| u["id"].is_string()));
}

/// Sends one HTTP/1.1 GET and returns the status line and body.
fn get(address: &str, path: &str) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.lines().next().unwrap_or_default().to_owned();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

#[test]
fn serve_answers_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), 50, 5, 100);
    let snapshots = || {
        let mut names: Vec<_> = std::fs::read_dir(dir.path().join("snapshots/default"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let seeded = snapshots();
    assert!(!seeded.is_empty(), "the seed's shutdown snapshot");
    let server = Serving::start(dir.path(), None);
    for path in ["/healthz", "/readyz"] {
        let (status, body) = get(&server.address, path);
        assert!(status.contains("200"), "{status}");
        let health: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(health["status"], "ready");
        assert!(
            !body.contains("default"),
            "tenants are not named to anyone who asks: {body}"
        );
    }
    let (status, _) = get(&server.address, "/livez");
    assert!(status.contains("200"), "{status}");

    let rest = server.stop();
    assert!(rest.contains("stopped"), "{rest}");
    // Nothing was written while serving: the seed's shutdown snapshot is at the head.
    assert_eq!(snapshots(), seeded);
}

#[test]
fn log_verify_names_the_tenant_and_seq_of_a_tampered_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), 100, 10, 500);
    let snapshots = dir.path().join("snapshots/default");
    let file = std::fs::read_dir(&snapshots).unwrap().next().unwrap().unwrap().path();
    let seq: u64 = file.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&file, bytes).unwrap();

    let verified = run(dir.path(), &["log", "verify"]);
    assert!(!verified.status.success());
    let message = stderr(&verified);
    assert!(
        message.contains("tenant default") && message.contains(&format!("seq {seq}")),
        "{message}"
    );
    // The engine still starts: it skips the bad snapshot and replays the log.
    let users = run(dir.path(), &["query", "users", "--json"]);
    assert!(users.status.success(), "{}", stderr(&users));
}

#[test]
fn log_verify_names_a_snapshot_stored_past_the_head_and_deep_verifies_a_sound_log() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), 100, 10, 500);
    let deep = run(dir.path(), &["log", "verify", "--deep"]);
    assert!(deep.status.success(), "{}", stderr(&deep));
    assert!(stdout(&deep).contains("tenant default: ok"), "{}", stdout(&deep));

    // A sound snapshot copied under a later seq, its file header edited to match: only the log
    // says that no record is there.
    let snapshots = dir.path().join("snapshots/default");
    let file = std::fs::read_dir(&snapshots).unwrap().next().unwrap().unwrap().path();
    let seq: u64 = file.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    let beyond = seq + 1_000_000;
    let mut bytes = std::fs::read(&file).unwrap();
    // The file header: magic (8 bytes), then the seq (u64, little-endian).
    bytes[8..16].copy_from_slice(&beyond.to_le_bytes());
    std::fs::write(snapshots.join(format!("{beyond:020}.snap")), bytes).unwrap();
    let verified = run(dir.path(), &["log", "verify"]);
    assert!(!verified.status.success());
    let message = stderr(&verified);
    assert!(
        message.contains("tenant default") && message.contains(&format!("seq {beyond}")),
        "{message}"
    );
}

#[test]
fn queries_answer_in_the_past() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), 200, 10, 2000);
    let groups: Vec<serde_json::Value> =
        serde_json::from_slice(&run(dir.path(), &["query", "groups", "--json"]).stdout).unwrap();
    let busiest = groups.iter().max_by_key(|g| g["members"].as_u64().unwrap()).unwrap();
    let id = busiest["id"].as_str().unwrap();

    let now: Vec<serde_json::Value> =
        serde_json::from_slice(&run(dir.path(), &["query", "members", "--group", id, "--json"]).stdout).unwrap();
    assert_eq!(now.len() as u64, busiest["members"].as_u64().unwrap());
    // Right after the groups and users were created, before any membership change.
    let early: Vec<serde_json::Value> = serde_json::from_slice(
        &run(
            dir.path(),
            &["query", "members", "--group", id, "--seq", "210", "--json"],
        )
        .stdout,
    )
    .unwrap();
    assert!(early.is_empty(), "{early:?}");
    let before_time = run(
        dir.path(),
        &["query", "users", "--at", "2000-01-01T00:00:00Z", "--json"],
    );
    assert_eq!(
        serde_json::from_slice::<Vec<serde_json::Value>>(&before_time.stdout)
            .unwrap()
            .len(),
        0
    );

    let member = now[0]["userName"].as_str().unwrap();
    let detail: serde_json::Value =
        serde_json::from_slice(&run(dir.path(), &["query", "user", "--user", member, "--json"]).stdout).unwrap();
    assert!(detail["groups"].as_array().unwrap().iter().any(|g| g["id"] == id));

    let bad = run(dir.path(), &["query", "users", "--at", "yesterday"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("RFC 3339"), "{}", stderr(&bad));
    let missing = run(dir.path(), &["query", "users", "--tenant", "nobody"]);
    assert!(
        stderr(&missing).contains("tenant nobody does not exist"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn user_erase_leaves_a_verifiable_log_and_an_erased_user() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), 30, 3, 100);
    let users: Vec<serde_json::Value> =
        serde_json::from_slice(&run(dir.path(), &["query", "users", "--json"]).stdout).unwrap();
    let (id, name) = (
        users[0]["id"].as_str().unwrap().to_owned(),
        users[0]["userName"].as_str().unwrap().to_owned(),
    );

    let erased = run(dir.path(), &["user", "erase", "--user", &name]);
    assert!(erased.status.success(), "{}", stderr(&erased));
    assert!(
        stdout(&erased).contains(&format!("erased user {id}")),
        "{}",
        stdout(&erased)
    );

    let detail: serde_json::Value =
        serde_json::from_slice(&run(dir.path(), &["query", "user", "--user", &id, "--json"]).stdout).unwrap();
    assert_eq!(detail["userName"], format!("erased-{id}"));
    let by_name = run(dir.path(), &["query", "user", "--user", &name]);
    assert!(!by_name.status.success(), "the old userName no longer finds the user");
    let past: serde_json::Value =
        serde_json::from_slice(&run(dir.path(), &["query", "user", "--user", &id, "--seq", "40", "--json"]).stdout)
            .unwrap();
    assert_eq!(past["userName"], format!("erased-{id}"), "erased in the past too");
    let verified = run(dir.path(), &["log", "verify"]);
    assert!(verified.status.success(), "{}{}", stdout(&verified), stderr(&verified));
    let again = run(dir.path(), &["user", "erase", "--user", &id]);
    assert!(stdout(&again).contains("already erased"), "{}", stdout(&again));
}

#[test]
fn output_cut_short_by_its_reader_ends_the_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), 3000, 10, 100);
    // As `idpsync query users | head -1`: read one line, then close the pipe.
    let mut query = idpsync(dir.path())
        .args(["query", "users"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 64];
    let n = query.stdout.take().unwrap().read(&mut first).unwrap();
    assert!(n > 0);
    let finished = query.wait_with_output().unwrap();
    assert!(
        finished.status.success(),
        "exit {:?}: {}",
        finished.status,
        stderr(&finished)
    );
    assert!(!stderr(&finished).contains("panicked"), "{}", stderr(&finished));
}

/// Every directory and file under `dir` with its permission bits.
fn modes_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(path) = pending.pop() {
        let metadata = std::fs::metadata(&path).unwrap();
        found.push((path.clone(), metadata.permissions().mode() & 0o777));
        if metadata.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                pending.push(entry.unwrap().path());
            }
        }
    }
    found
}

/// Hardening issue, must-fix 4: the data directory holds sealing keys, token hashes and the
/// checkpoint key; what the service writes there is private to its user, and a key file that
/// others can read is refused.
#[test]
fn the_data_directory_is_private_and_a_readable_key_file_is_refused() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    seed(&dir, 200, 10, 1_000);
    let serving = Serving::start(&dir, None);
    serving.stop();
    let modes = modes_under(&dir);
    for name in [
        "log.redb",
        "tokens.json",
        "bootstrap-token",
        "checkpoint-key",
        "snapshots",
    ] {
        assert!(
            modes.iter().any(|(path, _)| path.file_name().unwrap() == name),
            "{name} exists: {modes:?}"
        );
    }
    for (path, mode) in &modes {
        let wanted = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(*mode, wanted, "{} has mode {mode:o}", path.display());
    }

    use std::os::unix::fs::PermissionsExt;
    for name in ["checkpoint-key", "log.redb", "tokens.json"] {
        let path = dir.join(name);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let refused = run(&dir, &["serve", "--listen", "127.0.0.1:0"]);
        assert!(!refused.status.success());
        let message = stderr(&refused);
        assert!(
            message.contains(&format!("{}", path.display())) && message.contains("chmod 600"),
            "{message}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // A data directory as `mkdir` makes it is made private.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let verified = run(&dir, &["log", "verify"]);
    assert!(verified.status.success(), "{}", stderr(&verified));
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
}

#[test]
fn the_version_names_the_commit_it_was_built_from() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(dir.path(), &["--version"]);
    assert!(output.status.success());
    let text = stdout(&output);
    assert!(text.starts_with("idpsync 0."), "{text}");
    assert!(text.contains("(commit "), "{text}");
}
