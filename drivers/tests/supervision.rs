//! The scheduler's supervision of integration tasks: a task that panics is started again, and
//! says so in its status and in the metrics. Its own test binary, because it installs the
//! process-wide metrics recorder.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use idpsync_drivers::cursor_store::CursorStore;
use idpsync_drivers::fake::{Directory, FakeIdp, Vendor};
use idpsync_drivers::scheduler::{Scheduled, Scheduler};
use idpsync_drivers::{Driver, IntegrationConfig};
use metrics::{Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use support::{fast_retries, open_tenant};

/// A metrics recorder that keeps counters by name and labels, and panics the first time
/// `panic_on` is counted: a stand-in for any bug that panics inside an integration's task.
struct Counters {
    panic_on: &'static str,
    panicked: AtomicBool,
    counts: Mutex<BTreeMap<String, u64>>,
}

/// One counter of [`Counters`].
struct Count {
    counters: Arc<Counters>,
    key: String,
}

impl CounterFn for Count {
    fn increment(&self, value: u64) {
        *self
            .counters
            .counts
            .lock()
            .unwrap()
            .entry(self.key.clone())
            .or_default() += value;
    }

    fn absolute(&self, value: u64) {
        self.counters.counts.lock().unwrap().insert(self.key.clone(), value);
    }
}

/// The recorder installed: it shares [`Counters`] with the test.
struct Installed(Arc<Counters>);

impl Recorder for Installed {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        if key.name() == self.0.panic_on && !self.0.panicked.swap(true, Ordering::SeqCst) {
            panic!("the metrics recorder broke");
        }
        let labels: Vec<String> = key
            .labels()
            .map(|label| format!("{}={}", label.key(), label.value()))
            .collect();
        Counter::from_arc(Arc::new(Count {
            counters: Arc::clone(&self.0),
            key: format!("{}{{{}}}", key.name(), labels.join(",")),
        }))
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

/// Hardening issue, must-fix 7: a panic in an integration's task ended the task for good: the
/// integration never ran again, its status said "running" forever and nothing counted it. Now
/// the task starts again after the back-off of a failed run, the status counts the restart and
/// the panicked run as a failure, and `idpsync_sync_task_restarts_total` counts it.
#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_integration_task_restarts_and_says_so() {
    let counters = Arc::new(Counters {
        panic_on: "idpsync_sync_runs_total",
        panicked: AtomicBool::new(false),
        counts: Mutex::new(BTreeMap::new()),
    });
    metrics::set_global_recorder(Installed(Arc::clone(&counters))).unwrap_or_else(|_| panic!("one recorder"));
    let mut directory = Directory::default();
    directory.put_user("1001", "ada.lovelace", true);
    let fake = FakeIdp::start(Vendor::JumpCloud, directory, false).await;
    let config = IntegrationConfig::from_toml(&format!(
        "name = \"jc\"\ninterval = \"1s\"\n{}",
        fake.integration_toml()
    ))
    .unwrap();
    let (engine, tenant) = open_tenant().await;
    let dir = tempfile::tempdir().unwrap();
    let scheduler = Scheduler::start(vec![Scheduled {
        tenant: Arc::clone(&tenant),
        driver: Arc::new(Driver::new(config, fast_retries()).unwrap()),
        cursors: CursorStore::new(dir.path()),
    }]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut told = None;
    let status = loop {
        let status = scheduler.status().remove(0);
        if let Some(error) = status.last_error.as_deref().filter(|error| error.contains("panicked")) {
            told = Some(error.to_owned());
        }
        let recovered = status.runs >= 2 && status.last_result == Some("applied");
        if recovered || tokio::time::Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    scheduler.shutdown().await;
    assert!(counters.panicked.load(Ordering::SeqCst));
    assert!(
        status.runs >= 2,
        "the integration runs again after its task panicked: {status:?}"
    );
    assert_eq!(status.last_result, Some("applied"), "{status:?}");
    assert_eq!(status.restarts, 1, "{status:?}");
    let told = told.expect("the status tells of the panic until a run succeeds");
    assert!(
        told.contains("the metrics recorder broke") && told.contains("it restarts in 1s"),
        "{told}"
    );
    assert!(status.failures >= 1, "the panicked run counts as failed: {status:?}");
    let counts = counters.counts.lock().unwrap().clone();
    assert_eq!(
        counts.get("idpsync_sync_task_restarts_total{tenant=default,integration=jc}"),
        Some(&1),
        "{counts:?}"
    );
    engine.shutdown().await;
}
