//! Following the operator documentation as written: its pages split into the blocks a test
//! checks ([`Page`], [`Block`]), and a [`Host`] to run them on, a stand-in for the machine the
//! guides speak of.
//!
//! A block is checked when the line just before its fence is a marker:
//!
//! - `<!-- check: run -->` before a ```` ```sh ```` block: the commands run, and must succeed;
//! - `<!-- check: config -->` before a ```` ```toml ```` block: the configuration must load.
//!
//! The host gives a page's runnable blocks what the guides assume of a real machine, and
//! nothing more:
//!
//! - `idpsync` on `PATH` is the build under test;
//! - `/var/lib/idpsync`, `/var/backups/idpsync` and `/etc/idpsync` lie under a temporary
//!   directory (the text of each block is rewritten so), and `IDPSYNC_DATA_DIR` names the
//!   first, as the guides' conventions say;
//! - `127.0.0.1:8080`, the default listen address the guides use, becomes the address of the
//!   service the host runs;
//! - `systemctl start|stop|restart idpsync` starts `idpsync serve` on that data directory, or
//!   stops it with SIGTERM as systemd does;
//! - each block runs in `bash -euo pipefail` in the page's working directory, and the
//!   variables it sets are there for the page's later blocks.

#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The directories a guide names, which the host keeps under its temporary root.
const MACHINE_PATHS: [&str; 3] = ["/var/lib/idpsync", "/var/backups/idpsync", "/etc/idpsync"];

/// The listen address the guides use: `serve`'s default.
const GUIDE_ADDRESS: &str = "127.0.0.1:8080";

/// The most one block may take before it counts as hung.
const BLOCK_TIMEOUT_SECONDS: u32 = 120;

/// What a marked block asks of the test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Shell commands that must run.
    Run,
    /// A configuration file that must load.
    Config,
}

/// One marked block of a page.
#[derive(Clone, Debug)]
pub struct Block {
    /// What to check.
    pub check: Check,
    /// The heading the block sits under.
    pub heading: String,
    /// The block's first line in the page (1-based), for messages.
    pub line: usize,
    /// The block's text.
    pub text: String,
}

/// A page of the documentation and its marked blocks.
#[derive(Debug)]
pub struct Page {
    /// The page, relative to the repository.
    pub path: String,
    /// Its marked blocks, in order.
    pub blocks: Vec<Block>,
}

/// The repository's root.
pub fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

impl Page {
    /// Reads a page (a path relative to the repository).
    pub fn read(path: &str) -> Page {
        let text = std::fs::read_to_string(repository().join(path)).unwrap_or_else(|error| panic!("{path}: {error}"));
        Page {
            path: path.to_owned(),
            blocks: marked_blocks(path, &text),
        }
    }

    /// Every page of `docs/` and `deploy/`, sorted.
    pub fn all() -> Vec<Page> {
        let mut paths = Vec::new();
        for directory in ["docs", "deploy"] {
            collect_markdown(&repository(), Path::new(directory), &mut paths);
        }
        paths.sort();
        paths.iter().map(|path| Page::read(path)).collect()
    }

    /// The blocks to run.
    pub fn runnable(&self) -> impl Iterator<Item = &Block> {
        self.blocks.iter().filter(|block| block.check == Check::Run)
    }

    /// The configurations to load.
    pub fn configurations(&self) -> impl Iterator<Item = &Block> {
        self.blocks.iter().filter(|block| block.check == Check::Config)
    }
}

fn collect_markdown(root: &Path, directory: &Path, paths: &mut Vec<String>) {
    let entries =
        std::fs::read_dir(root.join(directory)).unwrap_or_else(|error| panic!("{}: {error}", directory.display()));
    for entry in entries {
        let entry = entry.unwrap();
        let relative = directory.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            collect_markdown(root, &relative, paths);
        } else if relative.extension().is_some_and(|extension| extension == "md") {
            paths.push(relative.to_str().unwrap().to_owned());
        }
    }
}

/// The blocks of `text` that a marker line precedes. A marker before anything but a fence of
/// the matching language is a mistake in the page, and panics naming it.
fn marked_blocks(path: &str, text: &str) -> Vec<Block> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut heading = String::new();
    let mut index = 0;
    while index < lines.len() {
        let line = lines[index].trim_end();
        if let Some(title) = line.strip_prefix('#').filter(|_| !line.starts_with("#!")) {
            heading = title.trim_start_matches('#').trim().to_owned();
        }
        let check = match line.trim() {
            "<!-- check: run -->" => Some((Check::Run, "```sh")),
            "<!-- check: config -->" => Some((Check::Config, "```toml")),
            other if other.starts_with("<!-- check") => panic!("{path}:{}: unknown marker {other:?}", index + 1),
            _ => None,
        };
        index += 1;
        let Some((check, fence)) = check else {
            continue;
        };
        assert_eq!(
            lines.get(index).map(|line| line.trim_end()),
            Some(fence),
            "{path}:{index}: the marker must stand just before a {fence} block"
        );
        let start = index + 1;
        let end = (start..lines.len())
            .find(|&at| lines[at].trim_end() == "```")
            .unwrap_or_else(|| panic!("{path}:{start}: the block is never closed"));
        blocks.push(Block {
            check,
            heading: heading.clone(),
            line: start + 1,
            text: lines[start..end].join("\n") + "\n",
        });
        index = end + 1;
    }
    blocks
}

/// A stand-in for the machine a guide is followed on: a temporary root holding its
/// directories, a free port for its service, and the shell state of the page being followed.
pub struct Host {
    root: tempfile::TempDir,
    port: u16,
}

impl Host {
    /// A fresh host, its service not started.
    pub fn new() -> Host {
        let root = tempfile::tempdir().unwrap();
        for directory in ["work", "etc/idpsync", "var/backups/idpsync"] {
            std::fs::create_dir_all(root.path().join(directory)).unwrap();
        }
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let host = Host { root, port };
        std::fs::write(host.state_file(), "").unwrap();
        std::fs::write(host.prelude_file(), host.prelude()).unwrap();
        host
    }

    /// `http://127.0.0.1:<port>`: where the service answers.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The service's data directory, `/var/lib/idpsync` on the guides' machine.
    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("var/lib/idpsync")
    }

    /// The text of a block as it runs here: the guide's paths under the root, its address
    /// the service's.
    pub fn rewrite(&self, text: &str) -> String {
        let mut text = text.replace(GUIDE_ADDRESS, &format!("127.0.0.1:{}", self.port));
        for path in MACHINE_PATHS {
            text = text.replace(path, &format!("{}{path}", self.root.path().display()));
        }
        text
    }

    /// Seeds tenant `acme` with a small synthetic directory, so that pages that back up,
    /// query or verify have something to work on.
    pub fn seed_acme(&self) {
        let output = self.shell("idpsync dev seed --tenant acme --users 40 --groups 4 --memberships 80 > /dev/null");
        assert!(output.status.success(), "dev seed: {}", describe(&output));
    }

    /// Starts the service, as `systemctl start idpsync` does in the guides.
    pub fn start(&self) {
        let output = self.shell("systemctl start idpsync");
        assert!(output.status.success(), "starting serve: {}", describe(&output));
    }

    /// Runs `commands` as a page's block runs; what the block printed and its exit status.
    pub fn shell(&self, commands: &str) -> Output {
        let script = format!(
            "set -euo pipefail\nsource '{prelude}'\nsource '{state}'\ncd '{work}'\nset -a\n{commands}\nset +a\nexport -p > '{state}'\n",
            prelude = self.prelude_file().display(),
            state = self.state_file().display(),
            work = self.root.path().join("work").display(),
            commands = self.rewrite(commands),
        );
        Command::new("timeout")
            .arg(BLOCK_TIMEOUT_SECONDS.to_string())
            .args(["bash", "-c", &script])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("bash runs")
    }

    /// Runs one block of `page`, and panics with the page, the line and what it printed if it
    /// fails; returns its standard output.
    pub fn run(&self, page: &Page, block: &Block) -> String {
        let output = self.shell(&block.text);
        assert!(
            output.status.success(),
            "{}:{} (under \"{}\") failed:\n{}\n{}",
            page.path,
            block.line,
            block.heading,
            block.text,
            describe(&output)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// A variable a block of the page set.
    pub fn variable(&self, name: &str) -> String {
        let output = self.shell(&format!("printf '%s' \"${{{name}:?{name} was never set}}\""));
        assert!(output.status.success(), "{}", describe(&output));
        String::from_utf8(output.stdout).unwrap()
    }

    /// Whether the service runs.
    pub fn serving(&self) -> bool {
        self.pid_file().exists()
    }

    /// What the service logged.
    pub fn service_log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("serve.log")).unwrap_or_default()
    }

    fn prelude_file(&self) -> PathBuf {
        self.root.path().join("prelude.sh")
    }

    fn state_file(&self) -> PathBuf {
        self.root.path().join("state.sh")
    }

    fn pid_file(&self) -> PathBuf {
        self.root.path().join("serve.pid")
    }

    /// The shell functions and variables every block starts with.
    fn prelude(&self) -> String {
        let binary = Path::new(env!("CARGO_BIN_EXE_idpsync"));
        format!(
            r#"export PATH='{bin}':"$PATH"
export IDPSYNC_DATA_DIR='{data}' IDPSYNC_LOG=warn
# `systemctl start|stop|restart idpsync`, for the service this host runs.
systemctl() {{
    if [ "$#" -ne 2 ] || [ "$2" != idpsync ]; then
        echo "this host's systemctl knows only start, stop and restart of idpsync" >&2
        return 2
    fi
    case "$1" in
        start) __idpsync_start ;;
        stop) __idpsync_stop ;;
        restart) __idpsync_stop && __idpsync_start ;;
        *) echo "systemctl $1: not on this host" >&2; return 2 ;;
    esac
}}
__idpsync_start() {{
    if [ -e '{pid}' ]; then return 0; fi
    idpsync serve --listen 127.0.0.1:{port} < /dev/null >> '{log}' 2>&1 &
    echo "$!" > '{pid}'
    for _ in $(seq 600); do
        if curl -fsS -o /dev/null http://127.0.0.1:{port}/readyz 2> /dev/null; then return 0; fi
        if ! kill -0 "$(cat '{pid}')" 2> /dev/null; then break; fi
        sleep 0.1
    done
    echo "idpsync serve did not come up:" >&2
    cat '{log}' >&2
    rm -f '{pid}'
    return 1
}}
__idpsync_stop() {{
    if [ ! -e '{pid}' ]; then return 0; fi
    local pid
    pid="$(cat '{pid}')"
    kill -TERM "$pid" 2> /dev/null || true
    while kill -0 "$pid" 2> /dev/null; do sleep 0.05; done
    rm -f '{pid}'
}}
"#,
            bin = binary.parent().unwrap().display(),
            data = self.data_dir().display(),
            pid = self.pid_file().display(),
            log = self.root.path().join("serve.log").display(),
            port = self.port,
        )
    }
}

impl Drop for Host {
    /// Never leaves a service behind, whatever the test did.
    fn drop(&mut self) {
        if self.serving() {
            let _ = self.shell("systemctl stop idpsync");
        }
    }
}

/// The exit status and both outputs of a command, for a failure message.
pub fn describe(output: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A value every secret of a checked configuration gets: a JSON document that is also a
/// plain, non-empty string, so that it stands for an API token, a client secret, a PEM key
/// (which is only read when a sync runs), a Google service account's key file and a Zitadel
/// key file alike.
pub const STAND_IN_SECRET: &str = r#"{"client_email": "idpsync@example-project.iam.gserviceaccount.com", "private_key_id": "stand-in", "private_key": "stand-in", "userId": "100000000000000001", "keyId": "stand-in", "key": "stand-in"}"#;

/// Loads `configuration` (TOML text, with the guides' paths rewritten for `host`) the way
/// every `idpsync` command does, each `env:NAME` and `file:PATH` secret given
/// [`STAND_IN_SECRET`]; the command's output if it fails.
pub fn load_configuration(host: &Host, configuration: &str) -> Result<(), String> {
    let text = host.rewrite(configuration);
    let path = host.root.path().join("etc/idpsync/checked.toml");
    std::fs::write(&path, &text).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_idpsync"));
    command
        .arg("--config")
        .arg(&path)
        .arg("--data-dir")
        .arg(host.root.path().join("config-check"))
        .args(["token", "list"])
        .env("IDPSYNC_LOG", "warn");
    for reference in secret_references(&text) {
        match reference {
            SecretReference::Env(name) => {
                command.env(name, STAND_IN_SECRET);
            }
            SecretReference::File(file) => {
                let file = Path::new(&file);
                std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                std::fs::write(file, STAND_IN_SECRET).unwrap();
            }
        }
    }
    let output = command.output().unwrap();
    if output.status.success() {
        Ok(())
    } else {
        Err(describe(&output))
    }
}

/// Where a configuration takes a secret from.
enum SecretReference {
    Env(String),
    File(String),
}

/// The `"env:NAME"` and `"file:PATH"` values of a configuration, commented-out lines left out.
fn secret_references(text: &str) -> Vec<SecretReference> {
    let mut references = Vec::new();
    for line in text.lines().filter(|line| !line.trim_start().starts_with('#')) {
        for (prefix, make) in [
            ("\"env:", SecretReference::Env as fn(String) -> SecretReference),
            ("\"file:", SecretReference::File),
        ] {
            if let Some(start) = line.find(prefix) {
                let rest = &line[start + prefix.len()..];
                let value = &rest[..rest.find('"').expect("a quoted value ends")];
                references.push(make(value.to_owned()));
            }
        }
    }
    references
}
