//! The harness of the tests that drive the real `idpsync` binary: commands on a data directory,
//! and `idpsync serve` on a free port, stopped with SIGTERM.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The binary on `data_dir`, logging warnings only.
pub fn idpsync(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_idpsync"));
    command.arg("--data-dir").arg(data_dir).env("IDPSYNC_LOG", "warn");
    command
}

/// Runs the binary with `args` to the end.
pub fn run(data_dir: &Path, args: &[&str]) -> Output {
    idpsync(data_dir).args(args).output().expect("idpsync runs")
}

/// Seeds `data_dir` through `idpsync dev seed` with `users`, `groups` and `memberships`;
/// panics with the command's standard error if it fails.
pub fn seed(data_dir: &Path, users: u32, groups: u32, memberships: u32) {
    let (users, groups, memberships) = (users.to_string(), groups.to_string(), memberships.to_string());
    let seeded = run(
        data_dir,
        &[
            "dev",
            "seed",
            "--users",
            &users,
            "--groups",
            &groups,
            "--memberships",
            &memberships,
        ],
    );
    assert!(seeded.status.success(), "{}", String::from_utf8_lossy(&seeded.stderr));
}

/// Sends SIGTERM through the `kill` command (the project forbids unsafe code, so no libc call).
pub fn send_sigterm(pid: u32) -> i32 {
    Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .map_or(-1, |s| s.code().unwrap_or(-1))
}

/// `idpsync serve` on a free port, its log read to the end in the background.
pub struct Serving {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub address: String,
    /// `http://127.0.0.1:PORT`.
    pub origin: String,
    /// The rest of the log, once the server is gone.
    log: JoinHandle<String>,
}

impl Serving {
    /// Starts `serve` (with `config`, if any) and returns once it listens.
    pub fn start(data_dir: &Path, config: Option<&Path>) -> Serving {
        Serving::start_with(data_dir, config, &[])
    }

    /// [`Serving::start`] with more environment variables.
    pub fn start_with(data_dir: &Path, config: Option<&Path>, env: &[(&str, &str)]) -> Serving {
        let mut command = idpsync(data_dir);
        command.envs(env.iter().copied());
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("IDPSYNC_LOG", "info")
            .env("IDPSYNC_LOG_FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut reader = BufReader::new(child.stderr.take().unwrap());
        let deadline = Instant::now() + Duration::from_secs(60);
        let address = loop {
            assert!(Instant::now() < deadline, "serve did not start");
            let mut line = String::new();
            assert!(
                reader.read_line(&mut line).unwrap() > 0,
                "serve exited before listening"
            );
            let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if entry["fields"]["message"] == "idpsync is serving" {
                break entry["fields"]["address"].as_str().unwrap().to_owned();
            }
        };
        let log = std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = reader.read_to_string(&mut rest);
            rest
        });
        Serving {
            child,
            origin: format!("http://{address}"),
            address,
            log,
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, as a crash: nothing is shut down or given up.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for a clean exit; returns the log written after start-up.
    pub fn stop(mut self) -> String {
        assert_eq!(send_sigterm(self.child.id()), 0);
        let exit = self.child.wait().unwrap();
        let log = self.log.join().unwrap();
        assert!(exit.success(), "serve exited with {exit}: {log}");
        log
    }
}
