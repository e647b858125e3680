//! SCIM creates through replicas: `POST /Users` at a fixed concurrency, sent round-robin over
//! one or more `idpsync serve` processes that share one PostgreSQL schema.
//!
//! ```sh
//! cargo build --release --bin idpsync
//! IDPSYNC_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo run --release -p idpsync-benches --example replica_load -- \
//!     --binary target/release/idpsync --replicas 1 --replicas 3 --runs 3
//! ```
//!
//! Each run starts the replicas on a new scratch schema of the database the variable names
//! (dropped afterwards), each with a data directory of its own, makes a SCIM token with
//! `idpsync token create` on the shared store, then keeps `--concurrency` requests in flight
//! for `--seconds` (after a warm-up of `--warm-up` seconds that is not counted): each a
//! durable create of a user with a name of its own, to the next replica in turn. It prints
//! requests per second, latency percentiles and any answer other than 201, per run and as the
//! median and spread of the runs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use idpsync_storage::{PostgresSettings, PostgresStore};
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// The `idpsync` binary.
    #[arg(long)]
    binary: PathBuf,
    /// Replica counts to measure, each in its own runs.
    #[arg(long, default_values_t = vec![1, 3])]
    replicas: Vec<usize>,
    /// Runs per replica count.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Requests in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// The measured stretch of a run.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// The stretch before it, not counted.
    #[arg(long, default_value_t = 3)]
    warm_up: u64,
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// What one run measured.
struct Measured {
    rate: f64,
    p50: Duration,
    p99: Duration,
    other_answers: usize,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Failure> {
    let args = Args::parse();
    let url = std::env::var("IDPSYNC_TEST_POSTGRES_URL")
        .map_err(|_| "IDPSYNC_TEST_POSTGRES_URL must name a PostgreSQL database")?;
    for &count in &args.replicas {
        let mut rates = Vec::new();
        for run in 1..=args.runs {
            let measured = one_run(&args, &url, count, run).await?;
            println!(
                "{count} replica(s), run {run}: {:.0} req/s, p50 {:.1} ms, p99 {:.1} ms, other than 201: {}",
                measured.rate,
                measured.p50.as_secs_f64() * 1e3,
                measured.p99.as_secs_f64() * 1e3,
                measured.other_answers
            );
            rates.push(measured.rate);
        }
        rates.sort_by(f64::total_cmp);
        println!(
            "{count} replica(s): median {:.0} req/s (spread {:.0}–{:.0}) over {} runs at concurrency {}",
            rates[rates.len() / 2],
            rates[0],
            rates[rates.len() - 1],
            rates.len(),
            args.concurrency
        );
    }
    Ok(())
}

async fn one_run(args: &Args, url: &str, count: usize, run: usize) -> Result<Measured, Failure> {
    let schema = PostgresStore::open_scratch(PostgresSettings::from_url(url)?, "idpsync_replica_load").await?;
    let mut storage = url::Url::parse(url)?;
    storage
        .query_pairs_mut()
        .append_pair("schema", schema.settings().schema());
    let storage = storage.to_string();
    let work = tempfile::tempdir()?;
    let token = token(&args.binary, &work.path().join("operator"), &storage)?;
    let mut replicas = Vec::new();
    for n in 0..count {
        replicas.push(Replica::start(&args.binary, &work.path().join(format!("replica{n}")), &storage).await?);
    }
    let origins: Arc<Vec<String>> = Arc::new(replicas.iter().map(|replica| replica.origin.clone()).collect());
    let measured = load(args, origins, &token, run).await;
    for replica in replicas {
        replica.stop();
    }
    drop(schema);
    measured
}

/// A SCIM token made on the shared store.
fn token(binary: &Path, data_dir: &Path, storage: &str) -> Result<String, Failure> {
    let made = Command::new(binary)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["token", "create", "--tenant", "default", "--name", "load"])
        .env("IDPSYNC_STORAGE", storage)
        .env("IDPSYNC_LOG", "warn")
        .output()?;
    if !made.status.success() {
        return Err(format!("token create: {}", String::from_utf8_lossy(&made.stderr)).into());
    }
    let out = String::from_utf8(made.stdout)?;
    Ok(out
        .lines()
        .last()
        .ok_or("token create printed nothing")?
        .trim()
        .to_owned())
}

/// One `serve` process.
struct Replica {
    child: Child,
    origin: String,
}

impl Replica {
    /// Starts `serve` on a free port and waits until it answers `/healthz`.
    async fn start(binary: &Path, data_dir: &Path, storage: &str) -> Result<Replica, Failure> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(binary)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("IDPSYNC_STORAGE", storage)
            .env("IDPSYNC_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()?;
        let replica = Replica {
            child,
            origin: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        let client = reqwest::Client::new();
        loop {
            let ready = client.get(format!("{}/healthz", replica.origin)).send().await;
            if ready.is_ok_and(|answer| answer.status().is_success()) {
                return Ok(replica);
            }
            if Instant::now() > deadline {
                replica.stop();
                return Err("serve did not become ready within 120 s".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The load: `concurrency` workers, each one request at a time, round-robin over `origins`.
async fn load(args: &Args, origins: Arc<Vec<String>>, token: &str, run: usize) -> Result<Measured, Failure> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let turn = Arc::new(AtomicUsize::new(0));
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..args.concurrency)
        .map(|worker| {
            let (client, origins, turn, counting, stop) = (
                client.clone(),
                Arc::clone(&origins),
                Arc::clone(&turn),
                Arc::clone(&counting),
                Arc::clone(&stop),
            );
            let token = token.to_owned();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut other_answers = 0;
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let origin = &origins[turn.fetch_add(1, Ordering::Relaxed) % origins.len()];
                    let started = Instant::now();
                    let answer = client
                        .post(format!("{origin}/scim/v2/Users"))
                        .bearer_auth(&token)
                        .json(&json!({"userName": format!("r{run}-w{worker}-{n}@example.com"), "active": true}))
                        .send()
                        .await;
                    let created = match answer {
                        Ok(answer) => {
                            let status = answer.status().as_u16();
                            let _ = answer.bytes().await;
                            status == 201
                        }
                        Err(_) => false,
                    };
                    if counting.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
                        if created {
                            latencies.push(started.elapsed());
                        } else {
                            other_answers += 1;
                        }
                    }
                    n += 1;
                }
                (latencies, other_answers)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(args.warm_up)).await;
    counting.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let mut latencies = Vec::new();
    let mut other_answers = 0;
    for worker in workers {
        let (mut measured, others) = worker.await?;
        latencies.append(&mut measured);
        other_answers += others;
    }
    latencies.sort_unstable();
    let at = |percent: usize| {
        latencies
            .get(latencies.len() * percent / 100)
            .copied()
            .unwrap_or_default()
    };
    Ok(Measured {
        rate: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: at(50),
        p99: at(99),
        other_answers,
    })
}
