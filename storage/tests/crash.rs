//! Crash test: a child process appends in a loop and is killed with SIGKILL at random moments.
//! After each kill the store is reopened and must hold every acknowledged record, no partial
//! record, and a chain that verifies.
//!
//! The child is this same test binary, started with `IDPSYNC_CRASH_CHILD_DIR` set: it appends
//! to several tenants at once (so commits are shared) and prints `acked <tenant> <seq>` only
//! after `append` returned.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use idpsync_storage::verify::verify_log;
use idpsync_storage::{
    AppendBatch, EventId, LogStore, NewRecord, RedbStore, SchemaVersion, StoredSnapshot, TenantId, Timestamp,
};
use rand::{RngExt, SeedableRng, rngs::StdRng};

const CHILD_DIR_VAR: &str = "IDPSYNC_CRASH_CHILD_DIR";
const TENANTS: usize = 6;
const ROUNDS: usize = 8;

fn tenant(index: usize) -> TenantId {
    TenantId::new(&format!("crash-{index}")).unwrap()
}

async fn child(dir: &str) {
    let store: Arc<dyn LogStore> = Arc::new(RedbStore::open(std::path::Path::new(dir)).unwrap());
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..TENANTS {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let name = tenant(index);
            let mut head = store.ensure_tenant(&name).await.unwrap();
            let mut rng = StdRng::seed_from_u64(index as u64 ^ head.seq.0);
            loop {
                let count = rng.random_range(1..40);
                let records = (0..count)
                    .map(|_| NewRecord {
                        recorded_at: Timestamp::now().max(head.recorded_at),
                        event_id: EventId::new(),
                        version: SchemaVersion(1),
                        payload: vec![rng.random::<u8>(); rng.random_range(0..3000)],
                    })
                    .collect();
                let appended = store
                    .append(AppendBatch {
                        tenant: name.clone(),
                        first_seq: head.seq.next(),
                        records,
                        secrets: Vec::new(),
                    })
                    .await
                    .unwrap();
                head = appended.head;
                {
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "acked {} {}", name, head.seq).unwrap();
                    out.flush().unwrap();
                }
                if rng.random_range(0..50) == 0 {
                    let state = format!("state of {name} at {}", head.seq).into_bytes();
                    store
                        .put_snapshot(&name, StoredSnapshot::new(head.seq, state))
                        .await
                        .unwrap();
                }
            }
        });
    }
    // The tasks loop until the process is killed; a task that ends has failed.
    let ended = tasks.join_next().await;
    panic!("an appender stopped: {ended:?}");
}

#[test]
fn sigkill_never_loses_acknowledged_records() {
    if let Ok(dir) = std::env::var(CHILD_DIR_VAR) {
        tokio::runtime::Runtime::new().unwrap().block_on(child(&dir));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rng();
    let mut acked_max: HashMap<String, u64> = HashMap::new();
    for round in 0..ROUNDS {
        let mut process = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "sigkill_never_loses_acknowledged_records",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR_VAR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = process.stdout.take().unwrap();
        let acked: Arc<Mutex<HashMap<String, u64>>> = Arc::new(Mutex::new(HashMap::new()));
        let reader = {
            let acked = Arc::clone(&acked);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let mut words = line.split_whitespace();
                    if words.next() != Some("acked") {
                        continue;
                    }
                    let (Some(name), Some(seq)) = (words.next(), words.next()) else {
                        continue;
                    };
                    let seq: u64 = seq.parse().unwrap();
                    let mut acked = acked.lock().unwrap();
                    let entry = acked.entry(name.to_owned()).or_default();
                    *entry = (*entry).max(seq);
                }
            })
        };
        // Let the child reach its loop, then kill it at a random moment.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while acked.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(10..300)));
        process.kill().unwrap(); // SIGKILL on Unix
        process.wait().unwrap();
        reader.join().unwrap();
        for (name, seq) in acked.lock().unwrap().iter() {
            let entry = acked_max.entry(name.clone()).or_default();
            *entry = (*entry).max(*seq);
        }
        assert!(!acked_max.is_empty(), "round {round}: the child acknowledged nothing");

        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let store = RedbStore::open(dir.path()).unwrap();
            for (name, acked_seq) in &acked_max {
                let name = TenantId::new(name).unwrap();
                let head = verify_log(&store, &name)
                    .await
                    .unwrap_or_else(|e| panic!("round {round}: {e}"));
                assert!(
                    head.seq.0 >= *acked_seq,
                    "round {round}: {name} acknowledged seq {acked_seq} but the log ends at {}",
                    head.seq
                );
                if let Some(snapshot) = store.snapshot_at_or_before(&name, head.seq).await.unwrap() {
                    assert!(snapshot.is_intact());
                }
            }
        });
    }
}
