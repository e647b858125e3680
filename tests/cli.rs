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

    // Operators issue: nobody at a terminal to confirm, and no --yes: refused, nothing erased.
    let unconfirmed = run(dir.path(), &["user", "erase", "--user", &name]);
    assert!(!unconfirmed.status.success());
    assert!(stderr(&unconfirmed).contains("pass --yes"), "{}", stderr(&unconfirmed));
    let still: serde_json::Value =
        serde_json::from_slice(&run(dir.path(), &["query", "user", "--user", &id, "--json"]).stdout).unwrap();
    assert_eq!(still["userName"], name.as_str());

    let erased = run(dir.path(), &["user", "erase", "--user", &name, "--yes"]);
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
    let again = run(dir.path(), &["user", "erase", "--user", &id, "--yes"]);
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

/// Operators issue: while `serve` held the store, every read command failed with "the data
/// directory is in use". They now go through the running service's control socket and print
/// what they print on a stopped data directory; an audit's `--output` file is written by the
/// caller; errors come back as errors.
#[test]
fn read_commands_work_while_the_server_runs_with_the_same_output() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), 60, 6, 300);
    let offline_users = run(dir.path(), &["query", "users", "--json"]);
    assert!(offline_users.status.success(), "{}", stderr(&offline_users));
    let offline_groups = stdout(&run(dir.path(), &["query", "groups"]));
    // The report's first line says when it was generated.
    let report = |dir: &std::path::Path| {
        let text = stdout(&run(dir, &["audit", "report", "--since", "2000-01-01"]));
        let (first, rest) = text.split_once('\n').unwrap();
        (first.split(", generated").next().unwrap().to_owned(), rest.to_owned())
    };
    let offline_report = report(dir.path());

    let server = Serving::start(dir.path(), None);
    let users = run(dir.path(), &["query", "users", "--json"]);
    assert!(users.status.success(), "{}", stderr(&users));
    assert_eq!(stdout(&users), stdout(&offline_users));
    assert_eq!(stdout(&run(dir.path(), &["query", "groups"])), offline_groups);
    assert_eq!(report(dir.path()), offline_report);
    let report_file = dir.path().join("report.html");
    let written = run(
        dir.path(),
        &[
            "audit",
            "report",
            "--since",
            "2000-01-01",
            "--format",
            "html",
            "--output",
            report_file.to_str().unwrap(),
        ],
    );
    assert!(written.status.success(), "{}", stderr(&written));
    assert!(std::fs::read_to_string(&report_file).unwrap().contains("<html"));

    let verify = run(dir.path(), &["log", "verify"]);
    assert!(verify.status.success(), "{}", stderr(&verify));
    assert!(stdout(&verify).contains("tenant default: ok"), "{}", stdout(&verify));
    let status = run(dir.path(), &["status"]);
    assert!(status.status.success(), "{}", stderr(&status));
    assert!(
        stdout(&status).contains("tenant default: head seq"),
        "{}",
        stdout(&status)
    );
    assert!(
        !stdout(&status).contains("the service is not running here"),
        "{}",
        stdout(&status)
    );
    let missing = run(dir.path(), &["query", "users", "--tenant", "nobody"]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("tenant nobody does not exist"),
        "{}",
        stderr(&missing)
    );

    server.stop();
    assert!(
        !dir.path().join("control.sock").exists(),
        "the socket goes with the server"
    );
    let stopped = run(dir.path(), &["status"]);
    assert!(
        stdout(&stopped).contains("the service is not running here"),
        "{}",
        stdout(&stopped)
    );
}

/// Operators issue: a read command on a mistyped data directory made an empty log there and
/// answered from it, as if every user were gone.
#[test]
fn read_commands_on_a_mistyped_data_directory_say_so_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mistyped = dir.path().join("idpsync-dat");
    for args in [
        &["query", "users"][..],
        &["log", "verify"],
        &["status"],
        &["audit", "report", "--since", "2026-01-01"],
    ] {
        let answer = run(&mistyped, args);
        assert!(!answer.status.success(), "{args:?}");
        assert!(
            stderr(&answer).contains("holds no IdP-Sync log"),
            "{args:?}: {}",
            stderr(&answer)
        );
        assert!(!mistyped.exists(), "{args:?} created the directory");
    }
}

/// Operators issue: behind a proxy that rewrites `Host`, SCIM's absolute URLs named the
/// service's inner address. With `public_url` they name the public one, whatever the request
/// says; a malformed one is refused at start with the setting named.
#[test]
fn public_url_is_the_base_of_scim_urls() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("idpsync.toml");
    std::fs::write(&config, "public_url = \"https://idpsync.example.com/\"\n").unwrap();
    let server = Serving::start(&dir.path().join("data"), Some(&config));
    let (status, body) = get(&server.address, "/scim/v2/ServiceProviderConfig");
    assert!(status.contains("200"), "{status}");
    assert!(
        body.contains("\"location\":\"https://idpsync.example.com/scim/v2/ServiceProviderConfig\""),
        "{body}"
    );
    server.stop();

    std::fs::write(&config, "public_url = \"idpsync.example.com\"\n").unwrap();
    let refused = idpsync(&dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("public_url"), "{}", stderr(&refused));
}

/// Operators issue: long operations showed nothing until they ended. On a terminal, `log copy`
/// draws a bar of the records copied; piped, its output is the summary line alone.
#[test]
fn log_copy_shows_progress_on_a_terminal_only() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), 200, 5, 3000);
    let to = dir.path().join("copy");
    let piped = run(
        dir.path(),
        &[
            "log",
            "copy",
            "--from",
            &format!("redb:{}", dir.path().display()),
            "--to",
            &format!("redb:{}", to.display()),
        ],
    );
    assert!(piped.status.success(), "{}", stderr(&piped));
    assert!(!stderr(&piped).contains("tenant default ["), "{}", stderr(&piped));
    assert!(
        stdout(&piped).starts_with("tenant default: copied"),
        "{}",
        stdout(&piped)
    );

    // `script` (util-linux) runs the command on a pseudo-terminal.
    if std::process::Command::new("script").arg("--version").output().is_err() {
        let _ = std::io::stderr()
            .write_all(b"skipped the terminal half: no `script` command to give the copy a terminal\n");
        return;
    }
    let again = dir.path().join("copy-on-a-terminal");
    let command = format!(
        "'{}' --data-dir '{}' log copy --from 'redb:{}' --to 'redb:{}'",
        env!("CARGO_BIN_EXE_idpsync"),
        dir.path().display(),
        dir.path().display(),
        again.display()
    );
    let on_terminal = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("IDPSYNC_LOG", "warn")
        .output()
        .unwrap();
    assert!(on_terminal.status.success(), "{}", stdout(&on_terminal));
    let screen = stdout(&on_terminal);
    assert!(screen.contains("tenant default ["), "{screen}");
    assert!(screen.contains("tenant default: copied"), "{screen}");
}

/// Issue 18: an integration's secret is resolved only by the commands that build its driver.
/// With `env:` naming an unset variable, commands that never talk to the IdP work; `sync`
/// (and `serve`) refuse with the integration and the key named.
#[test]
fn an_unresolvable_secret_stops_only_the_commands_that_use_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("idpsync.toml");
    std::fs::write(
        &config,
        "[[tenant]]\nid = \"default\"\n[[tenant.integration]]\nname = \"okta\"\nprovider = \"okta\"\n\
         domain = \"acme.okta.com\"\napi_token = \"env:IDPSYNC_TEST_UNSET_TOKEN\"\n",
    )
    .unwrap();
    let with_config = |args: &[&str]| {
        idpsync(&data)
            .arg("--config")
            .arg(&config)
            .args(args)
            .env_remove("IDPSYNC_TEST_UNSET_TOKEN")
            .output()
            .unwrap()
    };
    for args in [
        &["dev", "seed", "--users", "5", "--groups", "2", "--memberships", "4"][..],
        &["query", "users", "--json"],
        &["status"],
    ] {
        let output = with_config(args);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    }
    let users: Vec<serde_json::Value> =
        serde_json::from_slice(&with_config(&["query", "users", "--json"]).stdout).unwrap();
    assert_eq!(users.len(), 5);

    let expected = "integration `okta`: key `api_token`: the environment variable IDPSYNC_TEST_UNSET_TOKEN is not set";
    for args in [
        &["sync", "--once", "--integration", "okta"][..],
        &["sync", "--once", "--dry-run", "--integration", "okta"],
        &["serve", "--listen", "127.0.0.1:0"],
    ] {
        let refused = with_config(args);
        assert!(!refused.status.success(), "{args:?}");
        assert!(stderr(&refused).contains(expected), "{args:?}: {}", stderr(&refused));
    }
}
