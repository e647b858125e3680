//! [`FaultyStore`]: an in-memory store with switches for the faults a real disk or database
//! has — writes refused, a commit that lands but answers with an error, a record altered at
//! rest, snapshots gone, an append held in flight — for the tests of everything built on a
//! store (feature `faults`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use crate::error::StoreError;
use crate::memory::MemoryStore;
use crate::meta::MetaEntry;
use crate::record::Record;
use crate::store::{AppendBatch, Appended, Head, LogStore, SecretId, SnapshotInfo, StoreHealth, StoredSnapshot};
use crate::types::{Seq, TenantId, Timestamp};

/// What a refused write says, and what [`FaultyStore::health`] reports meanwhile.
pub const FULL_DISK: &str = "no space left on device";

/// A [`MemoryStore`] with switchable faults. Every switch is off by default.
#[derive(Default)]
pub struct FaultyStore {
    /// The store underneath, for reading it past the faults.
    pub inner: MemoryStore,
    /// Refuse every write (appends, snapshots, destroyed secrets) as a full disk would, and
    /// report the store unavailable.
    pub refuse_writes: AtomicBool,
    /// Let appends reach the log but answer them with an error, as a commit whose flush
    /// failed after its data was written can.
    pub lose_answers: AtomicBool,
    /// Flip the last payload byte of the record at this `seq` whenever it is read.
    pub tamper_seq: Mutex<Option<Seq>>,
    /// Pretend there are no snapshots, so that start-up replays the whole log.
    pub hide_snapshots: AtomicBool,
    /// When set, how many more appends succeed before the disk fills up (and
    /// [`FaultyStore::refuse_writes`] is switched on): a failure in the middle of a series.
    pub appends_before_full: Mutex<Option<usize>>,
    /// Appends wait for this lock, so that a test can keep one in flight.
    pub gate: tokio::sync::Mutex<()>,
    /// Appends waiting at the gate now.
    pub waiting: AtomicUsize,
}

impl FaultyStore {
    /// Counts an append against [`FaultyStore::appends_before_full`].
    fn count_down_to_full(&self) {
        let mut left = self.appends_before_full.lock().unwrap_or_else(|p| p.into_inner());
        match left.as_mut() {
            Some(0) => {
                self.refuse_writes.store(true, Ordering::SeqCst);
                *left = None;
            }
            Some(n) => *n -= 1,
            None => {}
        }
    }

    fn refused(&self) -> Result<(), StoreError> {
        match self.refuse_writes.load(Ordering::SeqCst) {
            true => Err(StoreError::Unavailable {
                reason: FULL_DISK.to_owned(),
                retry_after: Duration::from_secs(3),
            }),
            false => Ok(()),
        }
    }
}

#[async_trait]
impl LogStore for FaultyStore {
    async fn ensure_tenant(&self, tenant: &TenantId) -> Result<Head, StoreError> {
        self.inner.ensure_tenant(tenant).await
    }

    async fn tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        self.inner.tenants().await
    }

    async fn head(&self, tenant: &TenantId) -> Result<Head, StoreError> {
        self.inner.head(tenant).await
    }

    async fn append(&self, batch: AppendBatch) -> Result<Appended, StoreError> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        drop(self.gate.lock().await);
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        self.count_down_to_full();
        self.refused()?;
        let appended = self.inner.append(batch).await?;
        if self.lose_answers.load(Ordering::SeqCst) {
            return Err(StoreError::backend(
                "writing the log",
                std::io::Error::other("input/output error while flushing"),
            ));
        }
        Ok(appended)
    }

    async fn read(&self, tenant: &TenantId, from: Seq, limit: usize) -> Result<Vec<Record>, StoreError> {
        let mut records = self.inner.read(tenant, from, limit).await?;
        let tamper = *self.tamper_seq.lock().unwrap_or_else(|p| p.into_inner());
        for record in records.iter_mut().filter(|record| Some(record.seq) == tamper) {
            if let Some(last) = record.payload.last_mut() {
                *last ^= 1;
            }
        }
        Ok(records)
    }

    async fn put_snapshot(&self, tenant: &TenantId, snapshot: StoredSnapshot) -> Result<(), StoreError> {
        self.refused()?;
        self.inner.put_snapshot(tenant, snapshot).await
    }

    async fn snapshot_at_or_before(&self, tenant: &TenantId, seq: Seq) -> Result<Option<StoredSnapshot>, StoreError> {
        if self.hide_snapshots.load(Ordering::SeqCst) {
            return Ok(None);
        }
        self.inner.snapshot_at_or_before(tenant, seq).await
    }

    async fn snapshots(&self, tenant: &TenantId) -> Result<Vec<SnapshotInfo>, StoreError> {
        if self.hide_snapshots.load(Ordering::SeqCst) {
            return Ok(Vec::new());
        }
        self.inner.snapshots(tenant).await
    }

    async fn remove_snapshot(&self, tenant: &TenantId, seq: Seq) -> Result<bool, StoreError> {
        self.inner.remove_snapshot(tenant, seq).await
    }

    async fn secrets(&self, tenant: &TenantId) -> Result<Vec<(SecretId, Vec<u8>)>, StoreError> {
        self.inner.secrets(tenant).await
    }

    async fn get_meta(&self, namespace: &str, key: &str) -> Result<Option<MetaEntry>, StoreError> {
        self.inner.get_meta(namespace, key).await
    }

    async fn put_meta(
        &self,
        namespace: &str,
        key: &str,
        expected: Option<u64>,
        value: Vec<u8>,
    ) -> Result<u64, StoreError> {
        self.refused()?;
        self.inner.put_meta(namespace, key, expected, value).await
    }

    async fn list_meta(&self, namespace: &str) -> Result<Vec<MetaEntry>, StoreError> {
        self.inner.list_meta(namespace).await
    }

    async fn delete_meta(&self, namespace: &str, key: &str, expected: u64) -> Result<(), StoreError> {
        self.refused()?;
        self.inner.delete_meta(namespace, key, expected).await
    }

    async fn destroy_secret(&self, tenant: &TenantId, id: SecretId) -> Result<bool, StoreError> {
        self.refused()?;
        self.inner.destroy_secret(tenant, id).await
    }

    fn health(&self) -> StoreHealth {
        match self.refuse_writes.load(Ordering::SeqCst) {
            true => StoreHealth::Unavailable {
                since: Timestamp::now(),
                reason: FULL_DISK.to_owned(),
            },
            false => StoreHealth::Ready,
        }
    }
}
