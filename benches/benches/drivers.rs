//! Load benchmark of the sync drivers against their fake IdPs on loopback: a full sync of
//! 100,000 users, 2,000 groups and 500,000 memberships into a fresh tenant, then a no-op resync
//! of the same directory, for three paging styles (Okta `Link` headers, Graph delta rounds,
//! Google page tokens). It reports the median and spread of each, the requests sent against the
//! fewest the IdP's maximum page sizes allow, the events of the no-op resync (must be zero) and
//! the process's peak resident memory.
//!
//! A second scenario (`IDPSYNC_BENCH_SCENARIO=large`, or `all` for both) is a tenant at the
//! scale that matters: 100,000 users, 20,000 groups, 1,000,000 memberships, an include filter
//! that keeps 10 % of the groups, and fakes that answer like a vendor's API does: 100 ms per
//! request and the vendor's documented rate limit (`Quota::documented`). It reports, per
//! vendor, the time of one full sync (the latency is real sleeping, so it is the fake's time),
//! the requests against the fewest the vendor's API allows for that filter, and the requests
//! the fake refused as over its rate limit.
//!
//! The fake IdP runs in a child process (this bench started again with
//! `IDPSYNC_BENCH_SERVE_FAKE=<vendor>`), so that the peak resident memory reported for the sync
//! is the driver's and the engine's alone; the child's own peak is reported beside it.
//! `IDPSYNC_BENCH_FAKE=in-process` runs the fake in the bench's process instead, as earlier
//! figures were taken.
//!
//! The small scenario's engine keeps its log in a redb store in a scratch directory, as the
//! binary does by default; `IDPSYNC_BENCH_STORE=memory` keeps it in memory instead (so the
//! log's records are the process's heap too).
//!
//! Run: `cargo bench -p idpsync-benches --bench drivers` (`IDPSYNC_BENCH_ITERATIONS=5` for more
//! runs, `IDPSYNC_BENCH_VENDORS=okta,entra` for fewer vendors).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

// The allocator of the `idpsync` binary, so that the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use idpsync_drivers::cursor_store::CursorStore;
use idpsync_drivers::fake::{Directory, FakeIdp, FakeMember, Faults, Quota, Vendor};
use idpsync_drivers::sync::{Mode, Resync, SyncResult, sync_once};
use idpsync_drivers::{Driver, IntegrationConfig, RetryPolicy};
use idpsync_engine::reconcile::ReconcilePolicy;
use idpsync_engine::{Engine, TenantSettings};
use idpsync_storage::{LogStore, MemoryStore, RedbStore, TenantId};

const USERS: usize = 100_000;
const GROUPS: usize = 2_000;
const MEMBERS_PER_GROUP: usize = 250;

fn directory() -> Directory {
    let mut directory = Directory::default();
    for n in 0..USERS {
        directory.put_user(&format!("{:06}", 100_000 + n), &format!("user{n}.load"), true);
    }
    for g in 0..GROUPS {
        let id = format!("g{g:05}");
        directory.put_group(&id, &format!("group-{g:05}"));
        for k in 0..MEMBERS_PER_GROUP {
            let user = (g * MEMBERS_PER_GROUP + k) % USERS;
            directory.join(&id, FakeMember::User(format!("{:06}", 100_000 + user)));
        }
    }
    directory
}

/// The fewest requests that list this directory at the vendor's maximum page sizes, token
/// requests included.
fn fewest_requests(vendor: Vendor) -> u64 {
    let pages = |items: usize, size: usize| items.div_ceil(size).max(1) as u64;
    match vendor {
        // Users (200), deprovisioned users (one empty page), groups (10,000), members (1,000).
        Vendor::Okta => pages(USERS, 200) + 1 + pages(GROUPS, 10_000) + GROUPS as u64 * pages(MEMBERS_PER_GROUP, 1000),
        // Token, users delta (999), groups delta with members (999).
        Vendor::Entra => 1 + pages(USERS, 999) + pages(GROUPS, 999),
        // Token, users (500), groups (200), members (200).
        Vendor::Google => 1 + pages(USERS, 500) + pages(GROUPS, 200) + GROUPS as u64 * pages(MEMBERS_PER_GROUP, 200),
        other => panic!("no request model for {other:?}"),
    }
}

/// Peak resident memory of this process, in MiB (Linux).
fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// Set in the child process that serves the fake IdP: the vendor's name.
const SERVE_FAKE: &str = "IDPSYNC_BENCH_SERVE_FAKE";

/// A fake IdP serving the directory, in this process or in a child.
enum Fake {
    InProcess(FakeIdp),
    Child {
        child: std::process::Child,
        /// What the child writes after the integration's TOML: its peak, when it stops.
        output: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
        integration: String,
    },
}

impl Fake {
    /// Starts a fake of `vendor`: in a child process when `seed` is `None`.
    async fn start(vendor: Vendor, seed: Option<&Directory>) -> Fake {
        use std::io::BufRead as _;
        let Some(seed) = seed else {
            let mut child = std::process::Command::new(std::env::current_exe().unwrap())
                .env(SERVE_FAKE, vendor.provider())
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            // The child writes the integration's TOML, then a line `end`.
            let mut output = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
            let mut integration = String::new();
            for line in output.by_ref() {
                let line = line.unwrap();
                if line == "end" {
                    break;
                }
                integration.push_str(&line);
                integration.push('\n');
            }
            return Fake::Child {
                child,
                output,
                integration,
            };
        };
        Fake::InProcess(FakeIdp::start(vendor, seed.clone(), false).await)
    }

    fn integration_toml(&self) -> String {
        match self {
            Fake::InProcess(fake) => fake.integration_toml(),
            Fake::Child { integration, .. } => integration.clone(),
        }
    }

    /// Stops the fake; a child reports its peak resident memory in MiB.
    fn stop(self) -> Option<u64> {
        match self {
            Fake::InProcess(fake) => {
                drop(fake);
                None
            }
            Fake::Child {
                mut child, mut output, ..
            } => {
                drop(child.stdin.take());
                let peak = output.next().and_then(|line| line.ok()?.trim().parse().ok());
                child.wait().unwrap();
                peak
            }
        }
    }
}

/// The child's side of [`Fake::start`]: serves `vendor`'s fake of the directory until its
/// standard input closes, then prints its own peak resident memory in MiB.
fn serve_fake(vendor: &str) {
    let vendor = [Vendor::Okta, Vendor::Entra, Vendor::Google]
        .into_iter()
        .find(|known| known.provider() == vendor)
        .unwrap_or_else(|| panic!("no fake for {vendor}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let fake = runtime.block_on(FakeIdp::start(vendor, directory(), false));
    println!("{}\nend", fake.integration_toml().trim_end());
    std::io::copy(&mut std::io::stdin(), &mut std::io::sink()).unwrap();
    drop(fake);
    println!("{}", peak_rss_mib().unwrap_or(0));
}

struct Figures {
    full: Vec<Duration>,
    noop: Vec<Duration>,
    requests: u64,
    noop_events: u64,
    /// The fake's own peak resident memory in MiB, when it ran in a child process.
    fake_peak_mib: Vec<u64>,
}

fn spread(samples: &mut [Duration]) -> String {
    samples.sort();
    let median = samples[samples.len() / 2];
    format!(
        "{:.2} s (min {:.2}, max {:.2})",
        median.as_secs_f64(),
        samples[0].as_secs_f64(),
        samples[samples.len() - 1].as_secs_f64()
    )
}

/// The log store `IDPSYNC_BENCH_STORE` names: redb in `dir` (the default), or in memory.
fn log_store(dir: &Path) -> Arc<dyn LogStore> {
    match std::env::var("IDPSYNC_BENCH_STORE").as_deref() {
        Err(_) | Ok("redb") => Arc::new(RedbStore::open(&dir.join("data")).unwrap()),
        Ok("memory") => Arc::new(MemoryStore::new()),
        Ok(other) => panic!("IDPSYNC_BENCH_STORE: `memory` or `redb`, not {other:?}"),
    }
}

/// `seed` is the directory for a fake in this process; `None` runs the fake in a child.
async fn run(vendor: Vendor, seed: Option<&Directory>, iterations: usize) -> Figures {
    let mut figures = Figures {
        full: Vec::new(),
        noop: Vec::new(),
        requests: 0,
        noop_events: 0,
        fake_peak_mib: Vec::new(),
    };
    for _ in 0..iterations {
        let fake = Fake::start(vendor, seed).await;
        let toml = format!("name = \"load\"\nsync_timeout = \"10m\"\n{}", fake.integration_toml());
        let driver = Driver::new(IntegrationConfig::from_toml(&toml).unwrap(), RetryPolicy::default()).unwrap();
        // The engine's background snapshot of the 100,000 new users would run during the no-op
        // resync and compete for the two cores; it is the log's cost (see the engine benches),
        // not the sync's, so it is kept out of this measurement.
        let settings = TenantSettings {
            snapshot_every: u64::MAX,
            checkpoint_every: u64::MAX,
            policy: ReconcilePolicy::default(),
            ..TenantSettings::default()
        };
        let state_dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(log_store(state_dir.path()), settings).await.unwrap();
        let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
        let cursors = CursorStore::new(state_dir.path());

        let started = Instant::now();
        let full = sync_once(&driver, &tenant, &cursors, Mode::Apply, Resync::Full)
            .await
            .unwrap();
        figures.full.push(started.elapsed());
        assert_eq!(full.result, SyncResult::Applied);
        assert_eq!(full.report.users_created as usize, USERS, "{vendor:?}");
        assert_eq!(
            full.report.memberships_added as usize,
            GROUPS * MEMBERS_PER_GROUP,
            "{vendor:?}"
        );
        figures.requests = full.requests;
        let full_times = (full.elapsed, full.read_elapsed);
        // Its report (a line per change) is the caller's to keep or not: not part of the resync.
        drop(full);

        let head = tenant.state().seq();
        let started = Instant::now();
        let noop = sync_once(&driver, &tenant, &cursors, Mode::Apply, Resync::Full)
            .await
            .unwrap();
        figures.noop.push(started.elapsed());
        assert!(
            noop.report.is_empty(),
            "{vendor:?}: {:?}",
            &noop.report.changes[..3.min(noop.report.changes.len())]
        );
        figures.noop_events = tenant.state().seq().0 - head.0;
        eprintln!(
            "{vendor:?}: full {:.2} s (reading {:.2} s), no-op {:.2} s (reading {:.2} s)",
            full_times.0.as_secs_f64(),
            full_times.1.as_secs_f64(),
            noop.elapsed.as_secs_f64(),
            noop.read_elapsed.as_secs_f64()
        );
        engine.shutdown().await;
        figures.fake_peak_mib.extend(fake.stop());
    }
    figures
}

/// The large tenant: 100,000 users (the same as above), 20,000 groups of 50 users each, one in
/// ten named `vpn-…` (the include filter's), the others `team-…`.
const LARGE_GROUPS: usize = 20_000;
const LARGE_MEMBERS_PER_GROUP: usize = 50;
const LARGE_KEPT: usize = LARGE_GROUPS / 10;
/// What a vendor's API takes per request, in the large scenario.
const LATENCY: Duration = Duration::from_millis(100);

fn large_directory() -> Directory {
    let mut directory = Directory::default();
    for n in 0..USERS {
        directory.put_user(&format!("{:06}", 100_000 + n), &format!("user{n}.load"), true);
    }
    for g in 0..LARGE_GROUPS {
        let id = format!("g{g:05}");
        let name = if g % 10 == 0 {
            format!("vpn-{g:05}")
        } else {
            format!("team-{g:05}")
        };
        directory.put_group(&id, &name);
        for k in 0..LARGE_MEMBERS_PER_GROUP {
            // Spread so that each user is in ten groups.
            let user = (k * (USERS / LARGE_MEMBERS_PER_GROUP) + g) % USERS;
            directory.join(&id, FakeMember::User(format!("{:06}", 100_000 + user)));
        }
    }
    directory
}

/// The include filter keeping the `vpn-…` groups, as the vendor names them (Zitadel's groups
/// are `<project>:<role>`).
fn large_filter(vendor: Vendor) -> &'static str {
    match vendor {
        Vendor::Zitadel => "include_groups = [\"vpn:vpn-*\"]\n",
        _ => "include_groups = [\"vpn-*\"]\n",
    }
}

/// The fewest requests that list the large tenant with its filter at the vendor's maximum
/// page sizes, token requests included: users and groups in full, members of the kept groups
/// only (one page each: 50 members).
fn fewest_large(vendor: Vendor) -> u64 {
    let pages = |items: usize, size: usize| items.div_ceil(size).max(1) as u64;
    let kept = LARGE_KEPT as u64;
    match vendor {
        // Users (200), deprovisioned users (one empty page), groups (10,000), members.
        Vendor::Okta => pages(USERS, 200) + 1 + pages(LARGE_GROUPS, 10_000) + kept,
        // Token, users delta (999), groups delta with their members (999).
        Vendor::Entra => 1 + pages(USERS, 999) + pages(LARGE_GROUPS, 999),
        // Token, users (500), groups (200), members.
        Vendor::Google => 1 + pages(USERS, 500) + pages(LARGE_GROUPS, 200) + kept,
        // Users (100), groups (100), members; bare arrays end on a short page, so a listing
        // of a multiple of the page size needs one more (empty) page.
        Vendor::JumpCloud => pages(USERS, 100) + pages(LARGE_GROUPS, 100) + 2 + kept,
        // Token, users (1,000), top-level groups (1,000), members; bare arrays as above.
        Vendor::Keycloak => 1 + pages(USERS, 1000) + pages(LARGE_GROUPS, 1000) + 2 + kept,
        // Users (100), groups with their members (100).
        Vendor::Authentik => pages(USERS, 100) + pages(LARGE_GROUPS, 100),
        // Users (1,000), authorizations, one per user with its roles (1,000).
        Vendor::Zitadel => pages(USERS, 1000) + pages(USERS, 1000),
        Vendor::Auth0 => unreachable!("Auth0 lists at most 1,000 users (see benches/README.md)"),
    }
}

/// What one full sync of the large tenant cost.
struct LargeFigures {
    elapsed: Duration,
    read: Duration,
    requests: u64,
    refused: u64,
    users: u32,
    memberships: u32,
}

async fn run_large(vendor: Vendor, seed: &Directory) -> LargeFigures {
    let fake = FakeIdp::start(vendor, seed.clone(), false).await;
    fake.set_faults(Faults {
        delay: LATENCY,
        quota: Quota::documented(vendor),
        ..Faults::default()
    });
    let toml = format!(
        "name = \"large\"\nsync_timeout = \"30m\"\n{}{}",
        large_filter(vendor),
        fake.integration_toml()
    );
    let driver = Driver::new(IntegrationConfig::from_toml(&toml).unwrap(), RetryPolicy::default()).unwrap();
    let settings = TenantSettings {
        snapshot_every: u64::MAX,
        checkpoint_every: u64::MAX,
        policy: ReconcilePolicy::default(),
        ..TenantSettings::default()
    };
    let engine = Engine::open(Arc::new(MemoryStore::new()), settings).await.unwrap();
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    let state_dir = tempfile::tempdir().unwrap();
    let cursors = CursorStore::new(state_dir.path());
    let outcome = sync_once(&driver, &tenant, &cursors, Mode::Apply, Resync::Full)
        .await
        .unwrap_or_else(|error| panic!("{vendor:?}: {error}"));
    assert_eq!(outcome.result, SyncResult::Applied, "{vendor:?}");
    engine.shutdown().await;
    LargeFigures {
        elapsed: outcome.elapsed,
        read: outcome.read_elapsed,
        requests: outcome.requests,
        refused: outcome.rate_limited,
        users: outcome.report.users_created,
        memberships: outcome.report.memberships_added,
    }
}

fn main_large(runtime: &tokio::runtime::Runtime, wanted: &str) {
    let vendors: Vec<Vendor> = Vendor::ALL
        .into_iter()
        .filter(|vendor| *vendor != Vendor::Auth0)
        .filter(|vendor| wanted.split(',').any(|name| name.trim() == vendor.provider()))
        .collect();
    let seed = large_directory();
    println!(
        "drivers (large): one full sync of {USERS} users, {LARGE_GROUPS} groups, {} memberships, {LARGE_KEPT} groups kept by the filter, {} ms a request, the vendor's rate limit",
        LARGE_GROUPS * LARGE_MEMBERS_PER_GROUP,
        LATENCY.as_millis()
    );
    for vendor in vendors {
        let figures = runtime.block_on(run_large(vendor, &seed));
        let fewest = fewest_large(vendor);
        let ratio = figures.requests as f64 / fewest as f64;
        let verdict = |ok: bool| if ok { "ok" } else { "OVER BUDGET" };
        println!(
            "{:<9} {:.1} s (reading {:.1} s) [{}: ≤ 120 s]; requests {} (fewest {fewest}, ×{ratio:.3}) [{}: ≤ ×1.05]; refused {}; users {}, memberships {}",
            vendor.provider(),
            figures.elapsed.as_secs_f64(),
            figures.read.as_secs_f64(),
            verdict(figures.elapsed <= Duration::from_secs(120)),
            figures.requests,
            verdict(ratio <= 1.05),
            figures.refused,
            figures.users,
            figures.memberships,
        );
    }
}

fn main() {
    idpsync_allocator::configure();
    if let Ok(vendor) = std::env::var(SERVE_FAKE) {
        return serve_fake(&vendor);
    }
    let scenario = std::env::var("IDPSYNC_BENCH_SCENARIO").unwrap_or_else(|_| "small".to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if matches!(scenario.as_str(), "large" | "all") {
        let wanted = std::env::var("IDPSYNC_BENCH_VENDORS")
            .unwrap_or_else(|_| "entra,okta,google,jumpcloud,keycloak,authentik,zitadel".to_owned());
        main_large(&runtime, &wanted);
    }
    if matches!(scenario.as_str(), "small" | "all") {
        main_small(&runtime);
    }
}

fn main_small(runtime: &tokio::runtime::Runtime) {
    let iterations: usize = std::env::var("IDPSYNC_BENCH_ITERATIONS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(3);
    let wanted = std::env::var("IDPSYNC_BENCH_VENDORS").unwrap_or_else(|_| "okta,entra,google".to_owned());
    let vendors: Vec<Vendor> = [Vendor::Okta, Vendor::Entra, Vendor::Google]
        .into_iter()
        .filter(|vendor| wanted.split(',').any(|name| name.trim() == vendor.provider()))
        .collect();
    let in_process = std::env::var("IDPSYNC_BENCH_FAKE").is_ok_and(|value| value == "in-process");
    let seed = in_process.then(directory);
    println!(
        "drivers: full sync and no-op resync of {USERS} users, {GROUPS} groups, {} memberships; {iterations} runs each",
        GROUPS * MEMBERS_PER_GROUP
    );
    for vendor in vendors {
        let mut figures = runtime.block_on(run(vendor, seed.as_ref(), iterations));
        let fewest = fewest_requests(vendor);
        let overhead = (figures.requests as f64 / fewest as f64 - 1.0) * 100.0;
        let full_median = {
            figures.full.sort();
            figures.full[figures.full.len() / 2]
        };
        let noop_median = {
            figures.noop.sort();
            figures.noop[figures.noop.len() / 2]
        };
        let verdict = |ok: bool| if ok { "ok" } else { "OVER BUDGET" };
        println!(
            "{:<7} full sync   {}  [{}: ≤ 30 s]",
            vendor.provider(),
            spread(&mut figures.full),
            verdict(full_median <= Duration::from_secs(30))
        );
        println!(
            "{:<7} no-op       {}  [{}: ≤ 10 s], events {}",
            vendor.provider(),
            spread(&mut figures.noop),
            verdict(noop_median <= Duration::from_secs(10) && figures.noop_events == 0),
            figures.noop_events
        );
        println!(
            "{:<7} requests    {} (fewest possible {fewest}, {overhead:+.1} %) [{}: ≤ 5 %]",
            vendor.provider(),
            figures.requests,
            verdict(overhead <= 5.0)
        );
        if !figures.fake_peak_mib.is_empty() {
            println!(
                "{:<7} fake IdP    peak resident memory of its process {:?} MiB",
                vendor.provider(),
                figures.fake_peak_mib
            );
        }
    }
    if let Some(peak) = peak_rss_mib() {
        match in_process {
            true => println!("peak resident memory of the whole process (fake IdP, driver and engine): {peak} MiB"),
            false => println!("peak resident memory of the sync's process (driver and engine): {peak} MiB"),
        }
    }
}
