//! A disk that fills up under the store: a failed commit is refused as unavailable, loses
//! nothing acknowledged, and the store takes writes again without a restart once space returns.
//! Hardening issue, must-fix 5: before, redb's latched I/O error answered every later write
//! with an error until the process restarted.

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redb::backends::FileBackend;
use redb::{BackendError, Database, StorageBackend};

use super::RedbStore;
use crate::error::StoreError;
use crate::record::NewRecord;
use crate::store::{AppendBatch, LogStore, StoreHealth};
use crate::types::{EventId, SchemaVersion, Seq, TenantId, Timestamp};

/// The database file, failing every write while `full` is set.
#[derive(Debug)]
struct FillingDisk {
    file: FileBackend,
    full: Arc<AtomicBool>,
}

impl FillingDisk {
    fn check(&self) -> Result<(), std::io::Error> {
        match self.full.load(Ordering::SeqCst) {
            true => Err(std::io::Error::from(std::io::ErrorKind::StorageFull)),
            false => Ok(()),
        }
    }
}

impl StorageBackend for FillingDisk {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.file.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.file.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.check()?;
        self.file.set_len(len)
    }
    fn sync_data(&self) -> Result<(), std::io::Error> {
        self.check()?;
        self.file.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        self.check()?;
        self.file.write(offset, data)
    }
    fn close(&self) -> Result<(), std::io::Error> {
        self.file.close()
    }
    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.try_lock_range(start, end)
    }
    fn try_lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.try_lock_shared_range(start, end)
    }
    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_range(start, end)
    }
    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_shared_range(start, end)
    }
    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.unlock_range(start, end)
    }
    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.query_lock_range(start, end)
    }
}

fn open_on_filling_disk(dir: &Path, full: &Arc<AtomicBool>) -> RedbStore {
    let full = Arc::clone(full);
    RedbStore::open_with(
        dir,
        Box::new(move |path| {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map_err(|e| StoreError::backend("opening the database", e))?;
            let file = FileBackend::new(file).map_err(|e| StoreError::backend("opening the database", e))?;
            let disk = FillingDisk {
                file,
                full: Arc::clone(&full),
            };
            Database::builder()
                .create_with_backend(disk)
                .map_err(|e| StoreError::backend("opening the database", e))
        }),
        super::SCRUB_EVERY,
    )
    .unwrap()
}

fn batch(tenant: &TenantId, first: u64, count: u64) -> AppendBatch {
    AppendBatch {
        tenant: tenant.clone(),
        first_seq: Seq(first),
        records: (first..first + count)
            .map(|n| NewRecord {
                recorded_at: Timestamp(n as i64),
                event_id: EventId(uuid::Uuid::from_u128(n as u128)),
                version: SchemaVersion(1),
                payload: format!("record {n}").into_bytes(),
            })
            .collect(),
        secrets: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_as_unavailable_and_the_store_recovers_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let full = Arc::new(AtomicBool::new(false));
    let store = open_on_filling_disk(dir.path(), &full);
    let acme = TenantId::new("acme").unwrap();
    store.ensure_tenant(&acme).await.unwrap();
    store.append(batch(&acme, 1, 3)).await.unwrap();

    full.store(true, Ordering::SeqCst);
    let refused = store.append(batch(&acme, 4, 2)).await.unwrap_err();
    assert!(matches!(refused, StoreError::Unavailable { .. }), "{refused}");
    assert!(matches!(store.health(), StoreHealth::Unavailable { .. }));
    // While it lasts, writes are refused at once, with when to try again.
    let StoreError::Unavailable { retry_after, .. } = store.append(batch(&acme, 4, 2)).await.unwrap_err() else {
        panic!("unavailable expected")
    };
    assert!(retry_after >= Duration::from_millis(100));

    full.store(false, Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let appended = loop {
        match store.append(batch(&acme, 4, 2)).await {
            Ok(appended) => break appended,
            Err(StoreError::Unavailable { .. }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(other) => panic!("the store did not recover: {other}"),
        }
    };
    assert_eq!(appended.head.seq, Seq(5), "nothing of the refused batches was appended");
    assert_eq!(store.health(), StoreHealth::Ready);
    let seqs: Vec<u64> = store
        .read(&acme, Seq(1), 100)
        .await
        .unwrap()
        .iter()
        .map(|r| r.seq.0)
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert_eq!(crate::verify::verify_log(&store, &acme).await.unwrap(), appended.head);
}
