//! Follower lag: how long after replica A acknowledges an append replica B has applied it.
//!
//! ```sh
//! IDPSYNC_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo run --release -p idpsync-benches --example follower_lag -- --appends 5000 --runs 3
//! ```
//!
//! Two engines in this process, each on a connection pool of its own to one scratch schema of
//! the database the variable names (dropped afterwards), each following the other's appends as
//! `serve` does (LISTEN/NOTIFY, then a catch-up read of the records). A creates one user per
//! append, one append after the other; the time at which A's `execute` returns (the append is
//! committed and acknowledged) is the start, and the time at which B's change stream yields
//! that record (B has read, folded and published it) the end. B's apply can come before A's
//! acknowledgement returns: such lags are counted as zero.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use idpsync_engine::model::{Owner, UserProfile};
use idpsync_engine::{Cause, Command, Engine, Origin, Source, TenantSettings};
use idpsync_storage::{PostgresSettings, PostgresStore, Seq, TenantId};

#[derive(Parser)]
struct Args {
    /// Appends per run.
    #[arg(long, default_value_t = 5_000)]
    appends: usize,
    /// Runs, each on a new schema.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// The lags of one run and the acknowledgement times at A, in microseconds.
struct Run {
    lags: Vec<u64>,
    appends: Vec<u64>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Failure> {
    let args = Args::parse();
    let url = std::env::var("IDPSYNC_TEST_POSTGRES_URL")
        .map_err(|_| "IDPSYNC_TEST_POSTGRES_URL must name a PostgreSQL database")?;
    let mut p50s = Vec::new();
    let mut p99s = Vec::new();
    for run in 1..=args.runs {
        let Run { mut lags, mut appends } = one_run(&url, args.appends).await?;
        lags.sort_unstable();
        appends.sort_unstable();
        println!(
            "run {run}: {} appends; lag A → B p50 {} µs, p90 {} µs, p99 {} µs, max {} µs; A's append p50 {} µs, p99 {} µs",
            lags.len(),
            percentile(&lags, 50.0),
            percentile(&lags, 90.0),
            percentile(&lags, 99.0),
            lags.last().copied().unwrap_or(0),
            percentile(&appends, 50.0),
            percentile(&appends, 99.0),
        );
        p50s.push(percentile(&lags, 50.0));
        p99s.push(percentile(&lags, 99.0));
    }
    p50s.sort_unstable();
    p99s.sort_unstable();
    println!(
        "over {} runs: lag p50 median {} µs (spread {}–{}), p99 median {} µs (spread {}–{})",
        args.runs,
        p50s[p50s.len() / 2],
        p50s[0],
        p50s[p50s.len() - 1],
        p99s[p99s.len() / 2],
        p99s[0],
        p99s[p99s.len() - 1],
    );
    Ok(())
}

/// The value below which `percent` of the sorted `values` lie.
fn percentile(sorted: &[u64], percent: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((percent / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn one_run(url: &str, appends: usize) -> Result<Run, Failure> {
    let a_store = PostgresStore::open_scratch(PostgresSettings::from_url(url)?, "idpsync_lag").await?;
    let b_store = PostgresStore::open(a_store.settings().clone()).await?;
    let a = Arc::new(Engine::open(Arc::new(a_store), TenantSettings::default()).await?);
    let b = Arc::new(Engine::open(Arc::new(b_store), TenantSettings::default()).await?);
    let every = Duration::from_secs(5);
    let _following = (
        a.follow_other_writers(every).ok_or("the store is not shared")?,
        b.follow_other_writers(every).ok_or("the store is not shared")?,
    );
    let default = TenantId::default_tenant();
    let (at_a, at_b) = (a.require_tenant(&default)?, b.require_tenant(&default)?);
    let first = at_a.state().seq().next();
    let mut stream = at_b.subscribe(first);
    let watcher = tokio::spawn(async move {
        let mut applied = Vec::with_capacity(appends);
        while applied.len() < appends {
            match stream.next().await {
                Ok(event) => applied.push((event.event.seq, Instant::now())),
                Err(error) => return Err(error.to_string()),
            }
        }
        Ok(applied)
    });
    let mut acknowledged = Vec::with_capacity(appends);
    let mut append_times = Vec::with_capacity(appends);
    for n in 0..appends {
        let started = Instant::now();
        let committed = at_a
            .execute(provision(&format!("lag{n}@example.com")), origin())
            .await?;
        let at = Instant::now();
        append_times.push((at - started).as_micros() as u64);
        acknowledged.push((committed.head, at));
    }
    let applied = tokio::time::timeout(Duration::from_secs(120), watcher)
        .await
        .map_err(|_| "B did not apply every append within 120 s")??
        .map_err(|error| format!("B's change stream: {error}"))?;
    let applied_at: std::collections::HashMap<Seq, Instant> = applied.into_iter().collect();
    let lags = acknowledged
        .iter()
        .map(|(seq, at)| {
            applied_at
                .get(seq)
                .map(|applied| applied.saturating_duration_since(*at).as_micros() as u64)
                .ok_or_else(|| format!("B never applied seq {seq}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    a.shutdown().await;
    b.shutdown().await;
    Ok(Run {
        lags,
        appends: append_times,
    })
}

fn provision(user_name: &str) -> Command {
    Command::ProvisionUser {
        owner: Owner::Scim,
        external_id: None,
        active: true,
        profile: UserProfile {
            user_name: user_name.to_owned(),
            ..UserProfile::default()
        },
    }
}

fn origin() -> Origin {
    Origin {
        source: Source::Operator,
        cause: Cause::Unspecified,
    }
}
