//! The crash loop: `idpsync serve` killed with SIGKILL again and again under a mixed SCIM and
//! management-API load, and every write it acknowledged checked after each restart.
//!
//! ```sh
//! cargo build --release --bin idpsync
//! cargo run --release -p idpsync-benches --example crash_loop -- \
//!     --binary target/release/idpsync --kills 100 --seed 1
//! ```
//!
//! (`scripts/crash-loop` runs both.) A cycle starts `serve` on a free port, checks everything
//! earlier cycles were told before it loads again, runs the load, kills `serve` with SIGKILL
//! after a random delay and runs `idpsync log verify` on the data directory. The load comes
//! from concurrent workers: each user worker creates users (SCIM `POST /Users`), deactivates
//! some of its own (SCIM `PATCH active=false`) and erases some of those (management API
//! `POST users/{id}/erase`); one group worker owns the membership of one large group, adding
//! acknowledged users 100 at a time and removing some (SCIM `PATCH /Groups/{id}`).
//!
//! A write is *acknowledged* when its 2xx answer has been received in full: the server promises
//! that it survives. A request in flight at the kill has an unknown outcome, so the objects it
//! touched become *uncertain*: they are neither checked nor used again. Every object has one
//! owner, the worker that alone writes it, so everything else is an exact expectation:
//! - every acknowledged user exists with its userName and its acknowledged active flag;
//! - an erased user reads as erased: `erased: true` and userName `erased-<id>` in the API, and
//!   none of its personal fields in its SCIM resource;
//! - the group holds every member whose addition was acknowledged and none whose removal was;
//! - nothing the harness never sent appears (an unknown user or member is a *phantom*).
//!
//! A missing or wrong expectation is a *loss*. Each is printed with its cycle, once; the data
//! directory is then kept and the program exits 1. It exits 2 when it cannot carry on (`serve`
//! does not start, exits on its own, or answers a check with an error). The seed fixes the kill
//! delays and each worker's choice of operations; which requests are in flight at a kill
//! depends on timing, so two runs with one seed are alike, not identical.
//!
//! SIGKILL ends the process, not the machine: what the process had written stays in the page
//! cache. The loop proves that an answer is sent only after the write is committed and that
//! every restart recovers a log that verifies; it does not simulate a power cut.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::Parser;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use reqwest::{Client, Method};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Why the loop could not carry on; losses are not errors but findings, counted in [`Summary`].
type Failure = Box<dyn std::error::Error + Send + Sync>;

/// The tenant every token and request is for.
const TENANT: &str = "default";
/// Workers creating, deactivating and erasing their own users; the group worker comes on top.
const USER_WORKERS: usize = 3;
/// Members one group PATCH adds.
const MEMBERS_PER_ADD: usize = 100;
/// Members one group PATCH removes.
const MEMBERS_PER_REMOVE: usize = 10;
/// The shortest load before a kill.
const KILL_DELAY_MS_MIN: u64 = 200;
/// The longest load before a kill.
const KILL_DELAY_MS_MAX: u64 = 2_000;
/// How long `serve` may take to say it is serving (a restart replays the log's tail).
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the final SIGTERM may take.
const STOP_TIMEOUT: Duration = Duration::from_secs(120);
/// A request's bound; a kill ends any request in flight long before.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// The page size of the checks' lists (the API's maximum).
const PAGE_LEN: usize = 1_000;
/// Lines of `serve`'s log kept to explain a failed start or an early exit.
const LOG_TAIL_LINES: usize = 40;
/// The SCIM PATCH request schema.
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// Kills `idpsync serve` under load and checks that no acknowledged write is lost.
#[derive(Parser, Debug)]
struct Args {
    /// The idpsync binary (built with `cargo build --release --bin idpsync`).
    #[arg(long)]
    binary: PathBuf,
    /// How many times `serve` is killed with SIGKILL.
    #[arg(long, default_value_t = 100)]
    kills: u32,
    /// The seed of the kill delays and of each worker's choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A data directory to run in and keep (it must not exist yet); by default a temporary one,
    /// kept only when something is lost.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("crash loop stopped: {error}");
            ExitCode::from(2)
        }
    }
}

/// Runs the loop in its data directory; `Ok(true)` when nothing was lost and every verify
/// passed. A temporary data directory is kept unless the run passed.
async fn run(args: &Args) -> Result<bool, Failure> {
    let (data_dir, temporary) = match &args.data_dir {
        Some(given) if given.exists() => {
            return Err(format!("{} exists; name a directory to create", given.display()).into());
        }
        Some(given) => (given.clone(), None),
        None => {
            let temporary = tempfile::Builder::new().prefix("idpsync-crash-loop-").tempdir()?;
            (temporary.path().to_owned(), Some(temporary))
        }
    };
    let outcome = crash_loop(args, &data_dir).await;
    if !matches!(outcome, Ok(true))
        && let Some(temporary) = temporary
    {
        println!("data directory kept for inspection: {}", temporary.keep().display());
    }
    outcome
}

/// Prepares `data_dir`, runs the cycles and the last check, and prints the summary.
async fn crash_loop(args: &Args, data_dir: &Path) -> Result<bool, Failure> {
    let started = Instant::now();
    let binary = args.binary.as_path();
    println!(
        "crash loop: {} kills, seed {}, binary {}, data {}",
        args.kills,
        args.seed,
        binary.display(),
        data_dir.display()
    );
    let tokens = Tokens {
        scim: create_token(binary, data_dir, &["--name", "load"])?,
        admin: create_token(binary, data_dir, &["--name", "admin", "--admin"])?,
    };

    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut summary = Summary::default();
    let (pool_sender, pool_receiver) = mpsc::unbounded_channel();
    let mut user_workers: Vec<UserWorker> = (0..USER_WORKERS)
        .map(|index| UserWorker::new(index, pool_sender.clone()))
        .collect();
    let mut server = start(binary, data_dir, &mut summary)?;
    let group_id = create_group(&Load::new(&server, &tokens, 0)?).await?;
    let mut group_worker = GroupWorker::new(group_id, pool_receiver);

    for cycle in 1..=args.kills {
        let load = Arc::new(Load::new(&server, &tokens, cycle)?);
        let checked = if cycle == 1 {
            Checked::default()
        } else {
            check(&load, &mut user_workers, &mut group_worker, &mut summary).await?
        };
        let delay = Duration::from_millis(rng.random_range(KILL_DELAY_MS_MIN..=KILL_DELAY_MS_MAX));
        let before = Tallies::of(&user_workers, &group_worker);
        let load_started = Instant::now();
        let user_tasks: Vec<_> = user_workers
            .drain(..)
            .map(|worker| tokio::spawn(worker.run(Arc::clone(&load), StdRng::seed_from_u64(rng.random()))))
            .collect();
        let group_task = tokio::spawn(group_worker.run(Arc::clone(&load), StdRng::seed_from_u64(rng.random())));
        tokio::time::sleep(delay).await;
        // The flag goes up before the signal, so that a worker whose request fails sees it and
        // counts the failure as the kill's, not as an error of a running server.
        load.killed.store(true, Ordering::SeqCst);
        server.kill()?;
        for task in user_tasks {
            user_workers.push(task.await?);
        }
        group_worker = group_task.await?;
        let loaded = Tallies::of(&user_workers, &group_worker).since(&before);
        let load_time = load_started.elapsed();

        let verified = verify(binary, data_dir)?;
        summary.verify_runs += 1;
        if !verified.passed {
            summary.verify_failures += 1;
            eprintln!("cycle {cycle}: log verify FAILED:\n{}", verified.output);
        }
        println!(
            "cycle {cycle}/{}: checked {} users, {} members; load {:.2} s: {loaded}; killed; verify {}",
            args.kills,
            checked.users,
            checked.members,
            load_time.as_secs_f64(),
            if verified.passed { "ok" } else { "FAILED" },
        );
        summary.cycles += 1;
        server = start(binary, data_dir, &mut summary)?;
    }

    let load = Load::new(&server, &tokens, args.kills + 1)?;
    let last = check(&load, &mut user_workers, &mut group_worker, &mut summary).await?;
    println!(
        "after the last restart: checked {} users, {} members",
        last.users, last.members
    );
    server.stop()?;
    let verified = verify(binary, data_dir)?;
    summary.verify_runs += 1;
    if !verified.passed {
        summary.verify_failures += 1;
        eprintln!("after a clean stop: log verify FAILED:\n{}", verified.output);
    }

    summary.final_users = last.users;
    summary.final_members = last.members;
    summary.tallies = Tallies::of(&user_workers, &group_worker);
    summary.elapsed = started.elapsed();
    summary.print(args);
    Ok(summary.passed())
}

/// The two bearer tokens of the load.
struct Tokens {
    /// A SCIM token of the tenant.
    scim: String,
    /// A management API token of the tenant.
    admin: String,
}

/// `idpsync token create` for the tenant with `args`; the secret is the last line it prints.
fn create_token(binary: &Path, data_dir: &Path, args: &[&str]) -> Result<String, Failure> {
    let output = Command::new(binary)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["token", "create", "--tenant", TENANT])
        .args(args)
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "token create {args:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    String::from_utf8(output.stdout)?
        .lines()
        .rfind(|line| !line.trim().is_empty())
        .map(|line| line.trim().to_owned())
        .ok_or_else(|| format!("token create {args:?} printed no token").into())
}

// ---------------------------------------------------------------------------------------------
// The server process.

/// A running `idpsync serve`, its log drained by a thread so that it never blocks on stderr.
struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    origin: String,
    /// The thread reading the log; it returns the last lines once the process is gone. Taken
    /// when the process has been waited for.
    log: Option<JoinHandle<Vec<String>>>,
}

/// Starts `serve` on a free port and returns once its log says it is serving, counting the wait
/// in `summary`.
fn start(binary: &Path, data_dir: &Path, summary: &mut Summary) -> Result<Server, Failure> {
    let spawned = Instant::now();
    let mut child = Command::new(binary)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("IDPSYNC_LOG_FORMAT", "json")
        .env("IDPSYNC_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().expect("stderr was asked to be piped");
    let (address_sender, address_receiver) = std_mpsc::channel();
    let log = std::thread::spawn(move || drain_log(stderr, address_sender));
    match address_receiver.recv_timeout(START_TIMEOUT) {
        Ok(address) => {
            summary.starts.push(spawned.elapsed());
            Ok(Server {
                child,
                origin: format!("http://{address}"),
                log: Some(log),
            })
        }
        Err(waiting) => {
            if child.try_wait()?.is_none() {
                child.kill()?;
            }
            let status = child.wait()?;
            let tail = join_log(log)?;
            let what = match waiting {
                std_mpsc::RecvTimeoutError::Timeout => format!("did not start within {START_TIMEOUT:?}"),
                std_mpsc::RecvTimeoutError::Disconnected => "exited before serving".to_owned(),
            };
            Err(format!("serve {what} ({status}); its last lines:\n{}", tail.join("\n")).into())
        }
    }
}

/// Reads `serve`'s JSON log to its end: sends the address of the "idpsync is serving" line, keeps
/// the last [`LOG_TAIL_LINES`] lines and returns them.
fn drain_log(stderr: impl Read, address_sender: std_mpsc::Sender<String>) -> Vec<String> {
    let mut tail = VecDeque::with_capacity(LOG_TAIL_LINES + 1);
    let mut announced = false;
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        if !announced
            && let Ok(entry) = serde_json::from_str::<Value>(&line)
            && entry["fields"]["message"] == "idpsync is serving"
            && let Some(address) = entry["fields"]["address"].as_str()
        {
            // The starter may have given up waiting; then nobody needs the address.
            announced = address_sender.send(address.to_owned()).is_ok();
        }
        tail.push_back(line);
        if tail.len() > LOG_TAIL_LINES {
            tail.pop_front();
        }
    }
    tail.into()
}

/// The last lines of a log whose process is gone.
fn join_log(log: JoinHandle<Vec<String>>) -> Result<Vec<String>, Failure> {
    log.join().map_err(|_| "the log reader panicked".into())
}

impl Server {
    /// The last lines of the log, once the process has been waited for.
    fn log_tail(&mut self) -> Result<Vec<String>, Failure> {
        self.log.take().map_or(Ok(Vec::new()), join_log)
    }

    /// SIGKILL, then waits for the process. An exit before the kill is a crash of its own and
    /// ends the loop with the log's last lines.
    fn kill(mut self) -> Result<(), Failure> {
        if let Some(status) = self.child.try_wait()? {
            let tail = self.log_tail()?;
            return Err(format!(
                "serve exited on its own ({status}); its last lines:\n{}",
                tail.join("\n")
            )
            .into());
        }
        self.child.kill()?;
        self.child.wait()?;
        self.log_tail()?;
        Ok(())
    }

    /// SIGTERM (through the `kill` command: the project forbids unsafe code), then waits for a
    /// clean exit.
    fn stop(mut self) -> Result<(), Failure> {
        let signalled = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()?;
        if !signalled.success() {
            return Err(format!("kill -TERM {} failed: {signalled}", self.child.id()).into());
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                self.child.kill()?;
                self.child.wait()?;
                return Err(format!("serve did not stop within {STOP_TIMEOUT:?} of SIGTERM").into());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let tail = self.log_tail()?;
        if !status.success() {
            return Err(format!("serve stopped with {status}; its last lines:\n{}", tail.join("\n")).into());
        }
        Ok(())
    }
}

impl Drop for Server {
    /// A loop that stops early must not leave `serve` running: kills it if it still is. Errors
    /// are ignored, as nothing is left to report them to.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What `idpsync log verify` said.
struct Verified {
    /// It exited 0: the chain, the sequence and the snapshots check out.
    passed: bool,
    /// Its standard output and error.
    output: String,
}

/// Runs `idpsync log verify` on the data directory (with `serve` stopped).
fn verify(binary: &Path, data_dir: &Path) -> Result<Verified, Failure> {
    let output = Command::new(binary)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["log", "verify"])
        .env("IDPSYNC_LOG", "warn")
        .output()?;
    Ok(Verified {
        passed: output.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    })
}

// ---------------------------------------------------------------------------------------------
// Requests.

/// What one cycle's workers share: the client, where the server is, the tokens, and whether the
/// kill has been sent.
struct Load {
    client: Client,
    origin: String,
    scim_token: String,
    admin_token: String,
    /// Raised just before SIGKILL; workers stop starting requests once it is up.
    killed: AtomicBool,
    /// The cycle, for reports.
    cycle: u32,
}

/// What became of one request.
enum Answer {
    /// A 2xx answer received in full, with its body (`null` when empty).
    Acknowledged(Value),
    /// Any other answer: the server said no.
    Refused(String),
    /// No full answer: the request may or may not have been carried out.
    Unknown(String),
}

impl Load {
    /// The load of `cycle` against `server`; a new client per cycle, so that no connection to a
    /// killed process is reused.
    fn new(server: &Server, tokens: &Tokens, cycle: u32) -> Result<Load, Failure> {
        Ok(Load {
            client: Client::builder().timeout(REQUEST_TIMEOUT).build()?,
            origin: server.origin.clone(),
            scim_token: tokens.scim.clone(),
            admin_token: tokens.admin.clone(),
            killed: AtomicBool::new(false),
            cycle,
        })
    }

    /// A SCIM URL.
    fn scim(&self, path: &str) -> String {
        format!("{}/scim/v2{path}", self.origin)
    }

    /// A management API URL of the tenant.
    fn api(&self, path: &str) -> String {
        format!("{}/api/v1/tenants/{TENANT}{path}", self.origin)
    }

    /// Sends a SCIM request.
    async fn scim_request(&self, method: Method, path: &str, body: &Value) -> Answer {
        self.send(method, &self.scim(path), &self.scim_token, Some(body)).await
    }

    /// Sends a request and reads its answer to the end.
    async fn send(&self, method: Method, url: &str, token: &str, body: Option<&Value>) -> Answer {
        let mut request = self.client.request(method, url).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => return Answer::Unknown(error.to_string()),
        };
        let status = response.status();
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(error) => return Answer::Unknown(format!("{status} with a body cut short: {error}")),
        };
        if !status.is_success() {
            return Answer::Refused(format!("{status}: {}", String::from_utf8_lossy(&bytes)));
        }
        if bytes.is_empty() {
            return Answer::Acknowledged(Value::Null);
        }
        match serde_json::from_slice(&bytes) {
            Ok(body) => Answer::Acknowledged(body),
            Err(error) => Answer::Refused(format!("{status} with a body that is not JSON: {error}")),
        }
    }

    /// A GET of the checks, which must succeed: the server is up and nothing else runs.
    async fn get(&self, url: &str, token: &str) -> Result<Value, Failure> {
        match self.send(Method::GET, url, token, None).await {
            Answer::Acknowledged(body) => Ok(body),
            Answer::Refused(why) | Answer::Unknown(why) => Err(format!("GET {url}: {why}").into()),
        }
    }

    /// Every item of a paginated management API list, following `next`.
    async fn get_all(&self, path: &str) -> Result<Vec<Value>, Failure> {
        let mut items = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut url = format!("{}?limit={PAGE_LEN}", self.api(path));
            if let Some(after) = &after {
                url.push_str("&after=");
                url.push_str(after);
            }
            let page = self.get(&url, &self.admin_token).await?;
            let Some(page_items) = page["items"].as_array() else {
                return Err(format!("GET {url}: no items in {page}").into());
            };
            items.extend(page_items.iter().cloned());
            match page["next"].as_str() {
                Some(next) => after = Some(next.to_owned()),
                None => return Ok(items),
            }
        }
    }
}

/// Creates the large group through SCIM, with no members yet; returns its id.
async fn create_group(load: &Load) -> Result<String, Failure> {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "crash-loop-large",
        "members": [],
    });
    match load.scim_request(Method::POST, "/Groups", &body).await {
        Answer::Acknowledged(group) => group["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("the group was created without an id: {group}").into()),
        Answer::Refused(why) | Answer::Unknown(why) => Err(format!("creating the group: {why}").into()),
    }
}

// ---------------------------------------------------------------------------------------------
// What was asked and what was acknowledged.

/// The kinds of write of the load.
#[derive(Clone, Copy, Debug)]
enum Write {
    CreateUser,
    DeactivateUser,
    EraseUser,
    AddMembers,
    RemoveMembers,
}

impl Write {
    /// Every kind, in the order of the summary.
    const ALL: [Write; 5] = [
        Write::CreateUser,
        Write::DeactivateUser,
        Write::EraseUser,
        Write::AddMembers,
        Write::RemoveMembers,
    ];

    /// Its name in the summary.
    fn name(self) -> &'static str {
        match self {
            Write::CreateUser => "user_create",
            Write::DeactivateUser => "user_deactivate",
            Write::EraseUser => "user_erase",
            Write::AddMembers => "group_add_members",
            Write::RemoveMembers => "group_remove_members",
        }
    }
}

/// How the requests of one kind ended.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    acknowledged: u64,
    uncertain: u64,
    refused: u64,
}

/// What one worker's requests came to, over the whole run.
#[derive(Clone, Debug, Default)]
struct Tallies {
    /// By [`Write`] kind.
    requests: [Tally; Write::ALL.len()],
    /// Members in acknowledged additions and removals.
    members_added: u64,
    members_removed: u64,
    /// Requests that failed while `serve` was up (the kill explains the others).
    errors_while_up: u64,
}

impl Tallies {
    /// All workers' tallies added up.
    fn of(user_workers: &[UserWorker], group_worker: &GroupWorker) -> Tallies {
        user_workers.iter().fold(group_worker.tallies.clone(), |total, worker| {
            total.combine(&worker.tallies, |a, b| a + b)
        })
    }

    /// What happened since `before` (tallies only grow).
    fn since(&self, before: &Tallies) -> Tallies {
        self.combine(before, |now, then| now - then)
    }

    /// Every count of `self` and `other` put through `op`.
    fn combine(&self, other: &Tallies, op: impl Fn(u64, u64) -> u64) -> Tallies {
        let mut requests = [Tally::default(); Write::ALL.len()];
        for ((result, mine), theirs) in requests.iter_mut().zip(&self.requests).zip(&other.requests) {
            *result = Tally {
                acknowledged: op(mine.acknowledged, theirs.acknowledged),
                uncertain: op(mine.uncertain, theirs.uncertain),
                refused: op(mine.refused, theirs.refused),
            };
        }
        Tallies {
            requests,
            members_added: op(self.members_added, other.members_added),
            members_removed: op(self.members_removed, other.members_removed),
            errors_while_up: op(self.errors_while_up, other.errors_while_up),
        }
    }

    /// Counts `answer` to a `write` and says whether it was acknowledged. A refusal, or a
    /// failure before the kill, is printed: under this load neither should happen.
    fn settle(&mut self, write: Write, answer: &Answer, load: &Load, what: &str) -> bool {
        let tally = &mut self.requests[write as usize];
        match answer {
            Answer::Acknowledged(_) => {
                tally.acknowledged += 1;
                true
            }
            Answer::Refused(why) => {
                tally.refused += 1;
                eprintln!("cycle {}: {} of {what} refused: {why}", load.cycle, write.name());
                false
            }
            Answer::Unknown(why) => {
                tally.uncertain += 1;
                if !load.killed.load(Ordering::SeqCst) {
                    self.errors_while_up += 1;
                    eprintln!(
                        "cycle {}: {} of {what} failed while serve was up: {why}",
                        load.cycle,
                        write.name()
                    );
                }
                false
            }
        }
    }

    fn json(&self) -> Value {
        let by_kind = |field: fn(&Tally) -> u64| -> Value {
            Write::ALL
                .iter()
                .map(|write| (write.name().to_owned(), json!(field(&self.requests[*write as usize]))))
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        json!({
            "acknowledged": by_kind(|tally| tally.acknowledged),
            "acknowledged_total": self.requests.iter().map(|tally| tally.acknowledged).sum::<u64>(),
            "members_added": self.members_added,
            "members_removed": self.members_removed,
            "uncertain": by_kind(|tally| tally.uncertain),
            "uncertain_total": self.requests.iter().map(|tally| tally.uncertain).sum::<u64>(),
            "refused": self.requests.iter().map(|tally| tally.refused).sum::<u64>(),
            "errors_while_up": self.errors_while_up,
        })
    }
}

impl std::fmt::Display for Tallies {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let acknowledged = |write: Write| self.requests[write as usize].acknowledged;
        write!(
            formatter,
            "+{} users, {} deactivated, {} erased, +{}/-{} members, {} uncertain",
            acknowledged(Write::CreateUser),
            acknowledged(Write::DeactivateUser),
            acknowledged(Write::EraseUser),
            self.members_added,
            self.members_removed,
            self.requests.iter().map(|tally| tally.uncertain).sum::<u64>(),
        )?;
        let refused: u64 = self.requests.iter().map(|tally| tally.refused).sum();
        if refused + self.errors_while_up > 0 {
            write!(
                formatter,
                ", {refused} refused, {} failed while up",
                self.errors_while_up
            )?;
        }
        Ok(())
    }
}

/// What the server acknowledged about one user.
#[derive(Debug)]
struct UserExpectation {
    user_name: String,
    given_name: String,
    state: UserState,
}

/// A user's acknowledged state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UserState {
    Active,
    Inactive,
    Erased,
    /// A write to it had an unknown outcome (or it was reported lost): no longer checked.
    Uncertain,
}

// ---------------------------------------------------------------------------------------------
// The workers.

/// A worker that creates users, deactivates some of its own and erases some of those. Its
/// state lives across cycles: it is moved into the cycle's task and handed back at its end.
struct UserWorker {
    index: usize,
    /// userNames issued so far, acknowledged or not.
    issued: u64,
    /// By id: every user whose creation was acknowledged.
    users: BTreeMap<String, UserExpectation>,
    /// Acknowledged active users, candidates for deactivation.
    active: Vec<String>,
    /// Acknowledged inactive users, candidates for erasure.
    inactive: Vec<String>,
    /// Erased users not yet read back through SCIM.
    erased_unread: Vec<String>,
    /// userNames of creations with an unknown outcome: such a user may exist.
    uncertain_names: BTreeSet<String>,
    /// Acknowledged users go to the group worker as candidate members.
    pool: mpsc::UnboundedSender<String>,
    tallies: Tallies,
}

impl UserWorker {
    fn new(index: usize, pool: mpsc::UnboundedSender<String>) -> UserWorker {
        UserWorker {
            index,
            issued: 0,
            users: BTreeMap::new(),
            active: Vec::new(),
            inactive: Vec::new(),
            erased_unread: Vec::new(),
            uncertain_names: BTreeSet::new(),
            pool,
            tallies: Tallies::default(),
        }
    }

    /// Writes until the kill: mostly creations, then deactivations, then erasures.
    async fn run(mut self, load: Arc<Load>, mut rng: StdRng) -> UserWorker {
        while !load.killed.load(Ordering::SeqCst) {
            let roll: f64 = rng.random();
            if roll < 0.20 && !self.active.is_empty() {
                let user = self.active.swap_remove(rng.random_range(0..self.active.len()));
                self.deactivate(&load, user).await;
            } else if roll < 0.35 && !self.inactive.is_empty() {
                let user = self.inactive.swap_remove(rng.random_range(0..self.inactive.len()));
                self.erase(&load, user).await;
            } else {
                self.create(&load).await;
            }
        }
        self
    }

    async fn create(&mut self, load: &Load) {
        let number = self.issued;
        self.issued += 1;
        let user_name = format!("w{}-u{number}@crash.test", self.index);
        let given_name = format!("Given{}x{number}", self.index);
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": user_name,
            "active": true,
            "name": {"givenName": given_name, "familyName": "Crashloop"},
            "emails": [{"value": user_name, "primary": true}],
        });
        let answer = load.scim_request(Method::POST, "/Users", &body).await;
        let id = match &answer {
            Answer::Acknowledged(user) => user["id"].as_str().map(str::to_owned),
            Answer::Refused(_) | Answer::Unknown(_) => None,
        };
        let acknowledged = self.tallies.settle(Write::CreateUser, &answer, load, &user_name);
        let Some(id) = id.filter(|_| acknowledged) else {
            if acknowledged {
                eprintln!("cycle {}: user {user_name} was created without an id", load.cycle);
            }
            self.uncertain_names.insert(user_name);
            return;
        };
        self.pool
            .send(id.clone())
            .expect("the group worker keeps the pool's receiver for the whole run");
        self.active.push(id.clone());
        self.users.insert(
            id,
            UserExpectation {
                user_name,
                given_name,
                state: UserState::Active,
            },
        );
    }

    async fn deactivate(&mut self, load: &Load, user: String) {
        let body = json!({
            "schemas": [PATCH_OP],
            "Operations": [{"op": "replace", "path": "active", "value": false}],
        });
        let answer = load.scim_request(Method::PATCH, &format!("/Users/{user}"), &body).await;
        let acknowledged = self.tallies.settle(Write::DeactivateUser, &answer, load, &user);
        let expectation = self.users.get_mut(&user).expect("only known users are deactivated");
        if acknowledged {
            expectation.state = UserState::Inactive;
            self.inactive.push(user);
        } else {
            expectation.state = UserState::Uncertain;
        }
    }

    async fn erase(&mut self, load: &Load, user: String) {
        let url = load.api(&format!("/users/{user}/erase"));
        let answer = load.send(Method::POST, &url, &load.admin_token, None).await;
        let acknowledged = self.tallies.settle(Write::EraseUser, &answer, load, &user);
        let expectation = self.users.get_mut(&user).expect("only known users are erased");
        if acknowledged {
            expectation.state = UserState::Erased;
            self.erased_unread.push(user);
        } else {
            expectation.state = UserState::Uncertain;
        }
    }
}

/// The one worker that writes the large group's membership.
struct GroupWorker {
    group_id: String,
    /// Acknowledged users from the user workers.
    pool: mpsc::UnboundedReceiver<String>,
    /// Users received from the pool and not yet added.
    waiting: VecDeque<String>,
    /// Users whose addition was acknowledged and whose removal was not asked.
    members: Vec<String>,
    /// Users whose removal was acknowledged; never added again.
    removed: BTreeSet<String>,
    /// Users an unanswered PATCH touched (or reported lost): no longer checked.
    uncertain: BTreeSet<String>,
    tallies: Tallies,
}

impl GroupWorker {
    fn new(group_id: String, pool: mpsc::UnboundedReceiver<String>) -> GroupWorker {
        GroupWorker {
            group_id,
            pool,
            waiting: VecDeque::new(),
            members: Vec::new(),
            removed: BTreeSet::new(),
            uncertain: BTreeSet::new(),
            tallies: Tallies::default(),
        }
    }

    /// Writes until the kill: adds [`MEMBERS_PER_ADD`] users whenever that many are waiting,
    /// and now and then removes [`MEMBERS_PER_REMOVE`] members.
    async fn run(mut self, load: Arc<Load>, mut rng: StdRng) -> GroupWorker {
        while !load.killed.load(Ordering::SeqCst) {
            while let Ok(user) = self.pool.try_recv() {
                self.waiting.push_back(user);
            }
            let roll: f64 = rng.random();
            if roll < 0.25 && self.members.len() >= 2 * MEMBERS_PER_REMOVE {
                let users = (0..MEMBERS_PER_REMOVE)
                    .map(|_| self.members.swap_remove(rng.random_range(0..self.members.len())))
                    .collect();
                self.remove(&load, users).await;
            } else if self.waiting.len() >= MEMBERS_PER_ADD {
                let users = self.waiting.drain(..MEMBERS_PER_ADD).collect();
                self.add(&load, users).await;
            } else {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        self
    }

    async fn add(&mut self, load: &Load, users: Vec<String>) {
        let answer = self.patch(load, "add", &users).await;
        let what = format!("{} members", users.len());
        if self.tallies.settle(Write::AddMembers, &answer, load, &what) {
            self.tallies.members_added += users.len() as u64;
            self.members.extend(users);
        } else {
            self.uncertain.extend(users);
        }
    }

    async fn remove(&mut self, load: &Load, users: Vec<String>) {
        let answer = self.patch(load, "remove", &users).await;
        let what = format!("{} members", users.len());
        if self.tallies.settle(Write::RemoveMembers, &answer, load, &what) {
            self.tallies.members_removed += users.len() as u64;
            self.removed.extend(users);
        } else {
            self.uncertain.extend(users);
        }
    }

    async fn patch(&self, load: &Load, op: &str, users: &[String]) -> Answer {
        let members: Vec<Value> = users.iter().map(|user| json!({"value": user})).collect();
        let body = json!({
            "schemas": [PATCH_OP],
            "Operations": [{"op": op, "path": "members", "value": members}],
        });
        let path = format!("/Groups/{}?excludedAttributes=members", self.group_id);
        load.scim_request(Method::PATCH, &path, &body).await
    }
}

// ---------------------------------------------------------------------------------------------
// The checks after a restart.

/// How much one check covered.
#[derive(Clone, Copy, Debug, Default)]
struct Checked {
    /// Users the server lists.
    users: usize,
    /// Direct members of the group the server lists.
    members: usize,
}

/// Checks every certain expectation against the restarted server, before any new load. Each
/// loss or phantom is printed and counted in `summary`, and the object becomes uncertain, so
/// that it is reported once.
async fn check(
    load: &Load,
    user_workers: &mut [UserWorker],
    group_worker: &mut GroupWorker,
    summary: &mut Summary,
) -> Result<Checked, Failure> {
    let cycle = load.cycle;
    let listed: BTreeMap<String, Value> = load
        .get_all("/users")
        .await?
        .into_iter()
        .filter_map(|row| Some((row["id"].as_str()?.to_owned(), row)))
        .collect();
    for worker in user_workers.iter_mut() {
        let mut lost_users = BTreeSet::new();
        for (id, expectation) in worker.users.iter_mut() {
            let (user_name, active, erased) = match expectation.state {
                UserState::Uncertain => continue,
                UserState::Active => (expectation.user_name.clone(), true, false),
                UserState::Inactive => (expectation.user_name.clone(), false, false),
                UserState::Erased => (format!("erased-{id}"), false, true),
            };
            let Some(row) = listed.get(id) else {
                summary.lose(
                    cycle,
                    format!(
                        "user {id} ({}, {:?}) is missing",
                        expectation.user_name, expectation.state
                    ),
                );
                expectation.state = UserState::Uncertain;
                lost_users.insert(id.clone());
                continue;
            };
            let seen_erased = row["erased"].as_bool().unwrap_or(false);
            if row["userName"] != user_name.as_str() || row["active"] != active || seen_erased != erased {
                summary.lose(cycle, format!(
                    "user {id} ({}) should read {:?} (userName {user_name}, active {active}, erased {erased}) but reads {row}",
                    expectation.user_name, expectation.state
                ));
                expectation.state = UserState::Uncertain;
                lost_users.insert(id.clone());
            }
        }
        // A lost user is uncertain from now on: not written again either.
        worker.active.retain(|id| !lost_users.contains(id));
        worker.inactive.retain(|id| !lost_users.contains(id));
        for id in std::mem::take(&mut worker.erased_unread) {
            let expectation = &worker.users[&id];
            if expectation.state != UserState::Erased {
                continue;
            }
            let resource = load.get(&load.scim(&format!("/Users/{id}")), &load.scim_token).await?;
            let text = resource.to_string();
            if text.contains(&expectation.user_name) || text.contains(&expectation.given_name) {
                summary.lose(
                    cycle,
                    format!("user {id} was erased but SCIM still shows personal fields: {resource}"),
                );
            }
        }
    }
    let known = |id: &String, row: &Value| {
        user_workers.iter().any(|worker| {
            worker.users.contains_key(id)
                || row["userName"]
                    .as_str()
                    .is_some_and(|name| worker.uncertain_names.contains(name))
        })
    };
    for (id, row) in &listed {
        if !known(id, row) {
            summary.phantom(cycle, format!("user {id} was never created: {row}"));
        }
    }

    let group = &mut *group_worker;
    let listed_members: BTreeSet<String> = load
        .get_all(&format!("/groups/{}/members", group.group_id))
        .await?
        .into_iter()
        .filter_map(|row| row["id"].as_str().map(str::to_owned))
        .collect();
    let mut lost_members = Vec::new();
    for member in &group.members {
        if !listed_members.contains(member) {
            summary.lose(cycle, format!("member {member} of group {} is missing", group.group_id));
            lost_members.push(member.clone());
        }
    }
    let mut returned_members = Vec::new();
    for removed in &group.removed {
        if listed_members.contains(removed) {
            summary.lose(
                cycle,
                format!("member {removed} was removed from group {} but is back", group.group_id),
            );
            returned_members.push(removed.clone());
        }
    }
    group.members.retain(|member| !lost_members.contains(member));
    group.removed.retain(|member| !returned_members.contains(member));
    group.uncertain.extend(lost_members);
    group.uncertain.extend(returned_members);
    let members: BTreeSet<&String> = group.members.iter().collect();
    for member in &listed_members {
        if !members.contains(member) && !group.uncertain.contains(member) {
            summary.phantom(
                cycle,
                format!("member {member} of group {} was never added", group.group_id),
            );
        }
    }
    Ok(Checked {
        users: listed.len(),
        members: listed_members.len(),
    })
}

// ---------------------------------------------------------------------------------------------
// The result.

/// The figures of a run.
#[derive(Debug, Default)]
struct Summary {
    cycles: u32,
    tallies: Tallies,
    /// Acknowledged writes missing or wrong after a restart.
    losses: u64,
    /// Users or members that nobody acknowledged nor left uncertain.
    phantoms: u64,
    verify_runs: u32,
    verify_failures: u32,
    /// From spawning `serve` to its "serving" line, per start.
    starts: Vec<Duration>,
    final_users: usize,
    final_members: usize,
    elapsed: Duration,
}

impl Summary {
    /// Nothing lost, nothing invented, every verify passed.
    fn passed(&self) -> bool {
        self.losses == 0 && self.phantoms == 0 && self.verify_failures == 0
    }

    /// Reports an acknowledged write found missing or wrong.
    fn lose(&mut self, cycle: u32, what: String) {
        eprintln!("cycle {cycle}: LOST {what}");
        self.losses += 1;
    }

    /// Reports a user or member that no request of the harness explains.
    fn phantom(&mut self, cycle: u32, what: String) {
        eprintln!("cycle {cycle}: PHANTOM {what}");
        self.phantoms += 1;
    }

    /// Prints the summary for people, then as one JSON line.
    fn print(&self, args: &Args) {
        let mut starts = self.starts.clone();
        starts.sort();
        let start_s_median = starts.get(starts.len() / 2).map_or(0.0, Duration::as_secs_f64);
        let start_s_max = starts.last().map_or(0.0, Duration::as_secs_f64);
        let tallies = self.tallies.json();
        println!();
        println!(
            "crash loop {}: {} cycles of load and SIGKILL (seed {}), {:.1} s",
            if self.passed() { "PASSED" } else { "FAILED" },
            self.cycles,
            args.seed,
            self.elapsed.as_secs_f64()
        );
        println!(
            "  acknowledged writes: {} ({})",
            tallies["acknowledged_total"], tallies["acknowledged"]
        );
        println!(
            "  members in acknowledged PATCHes: {} added, {} removed",
            self.tallies.members_added, self.tallies.members_removed
        );
        println!(
            "  uncertain (in flight at a kill): {} ({})",
            tallies["uncertain_total"], tallies["uncertain"]
        );
        println!(
            "  refused: {}; failed while serve was up: {}",
            tallies["refused"], tallies["errors_while_up"]
        );
        println!("  losses: {}; phantoms: {}", self.losses, self.phantoms);
        println!(
            "  log verify: {} runs, {} failed",
            self.verify_runs, self.verify_failures
        );
        println!("  serving after a start: median {start_s_median:.2} s, max {start_s_max:.2} s");
        println!(
            "  at the end: {} users, {} members in the large group",
            self.final_users, self.final_members
        );
        let line = json!({
            "passed": self.passed(),
            "kills": args.kills,
            "seed": args.seed,
            "cycles": self.cycles,
            "writes": tallies,
            "losses": self.losses,
            "phantoms": self.phantoms,
            "verify_runs": self.verify_runs,
            "verify_failures": self.verify_failures,
            "start_s_median": start_s_median,
            "start_s_max": start_s_max,
            "final_users": self.final_users,
            "final_group_members": self.final_members,
            "elapsed_s": self.elapsed.as_secs_f64(),
        });
        println!("{line}");
    }
}
