//! [`MemoryStore`]: a log kept in memory, for tests, examples and embedding without a disk.
//!
//! It passes the shared backend suite except the crash test, which needs a disk: nothing
//! survives the process.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::error::StoreError;
use crate::meta::{self, MetaEntry};
use crate::record::Record;
use crate::store::{
    AppendBatch, Appended, Head, LogStore, SecretId, SnapshotInfo, StoredSnapshot, head_after, prepare_append,
};
use crate::types::{Seq, TenantId};

/// A [`LogStore`] in memory.
#[derive(Default)]
pub struct MemoryStore {
    // A std mutex: no lock is ever held across an await, and every critical section is short.
    tenants: Mutex<BTreeMap<TenantId, MemoryLog>>,
    meta: Mutex<MetaMap>,
}

/// Metadata: `(namespace, key)` → `(version, value)`.
type MetaMap = BTreeMap<(String, String), (u64, Vec<u8>)>;

struct MemoryLog {
    head: Head,
    records: Vec<Record>,
    snapshots: BTreeMap<Seq, StoredSnapshot>,
    secrets: BTreeMap<SecretId, Vec<u8>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn with_log<T>(
        &self,
        tenant: &TenantId,
        f: impl FnOnce(&mut MemoryLog) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut tenants = self.tenants.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let log = tenants
            .get_mut(tenant)
            .ok_or_else(|| StoreError::UnknownTenant(tenant.clone()))?;
        f(log)
    }

    fn with_meta<T>(&self, f: impl FnOnce(&mut MetaMap) -> T) -> T {
        f(&mut self.meta.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

#[async_trait]
impl LogStore for MemoryStore {
    async fn ensure_tenant(&self, tenant: &TenantId) -> Result<Head, StoreError> {
        let mut tenants = self.tenants.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let log = tenants.entry(tenant.clone()).or_insert_with(|| MemoryLog {
            head: Head::EMPTY,
            records: Vec::new(),
            snapshots: BTreeMap::new(),
            secrets: BTreeMap::new(),
        });
        Ok(log.head)
    }

    async fn tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        let tenants = self.tenants.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(tenants.keys().cloned().collect())
    }

    async fn head(&self, tenant: &TenantId) -> Result<Head, StoreError> {
        self.with_log(tenant, |log| Ok(log.head))
    }

    async fn append(&self, batch: AppendBatch) -> Result<Appended, StoreError> {
        self.with_log(&batch.tenant, |log| {
            let records = prepare_append(&log.head, &batch)?;
            let chains = records.iter().map(|record| record.chain).collect();
            // prepare_append rejects empty batches, so there is a last record.
            log.head = head_after(&records).expect("a prepared batch is never empty");
            log.records.extend(records);
            log.secrets
                .extend(batch.secrets.iter().map(|secret| (secret.id, secret.material.clone())));
            Ok(Appended { head: log.head, chains })
        })
    }

    async fn read(&self, tenant: &TenantId, from: Seq, limit: usize) -> Result<Vec<Record>, StoreError> {
        self.with_log(tenant, |log| {
            let start = from.0.max(1) as usize - 1;
            Ok(log.records.iter().skip(start).take(limit).cloned().collect())
        })
    }

    async fn put_snapshot(&self, tenant: &TenantId, snapshot: StoredSnapshot) -> Result<(), StoreError> {
        self.with_log(tenant, |log| {
            if snapshot.seq > log.head.seq {
                return Err(StoreError::SnapshotBeyondHead {
                    tenant: tenant.clone(),
                    seq: snapshot.seq,
                    head: log.head.seq,
                });
            }
            log.snapshots.insert(snapshot.seq, snapshot);
            Ok(())
        })
    }

    async fn snapshot_at_or_before(&self, tenant: &TenantId, seq: Seq) -> Result<Option<StoredSnapshot>, StoreError> {
        self.with_log(tenant, |log| {
            Ok(log.snapshots.range(..=seq).next_back().map(|(_, s)| s.clone()))
        })
    }

    async fn remove_snapshot(&self, tenant: &TenantId, seq: Seq) -> Result<bool, StoreError> {
        self.with_log(tenant, |log| Ok(log.snapshots.remove(&seq).is_some()))
    }

    async fn snapshots(&self, tenant: &TenantId) -> Result<Vec<SnapshotInfo>, StoreError> {
        self.with_log(tenant, |log| {
            Ok(log
                .snapshots
                .values()
                .map(|s| SnapshotInfo {
                    seq: s.seq,
                    state_hash: s.state_hash,
                })
                .collect())
        })
    }

    async fn secrets(&self, tenant: &TenantId) -> Result<Vec<(SecretId, Vec<u8>)>, StoreError> {
        self.with_log(tenant, |log| {
            Ok(log
                .secrets
                .iter()
                .map(|(id, material)| (*id, material.clone()))
                .collect())
        })
    }

    async fn destroy_secret(&self, tenant: &TenantId, id: SecretId) -> Result<bool, StoreError> {
        self.with_log(tenant, |log| Ok(log.secrets.remove(&id).is_some()))
    }

    async fn get_meta(&self, namespace: &str, key: &str) -> Result<Option<MetaEntry>, StoreError> {
        meta::check_name(namespace, key)?;
        Ok(self.with_meta(|entries| {
            entries
                .get(&(namespace.to_owned(), key.to_owned()))
                .map(|(version, value)| MetaEntry {
                    key: key.to_owned(),
                    version: *version,
                    value: value.clone(),
                })
        }))
    }

    async fn put_meta(
        &self,
        namespace: &str,
        key: &str,
        expected: Option<u64>,
        value: Vec<u8>,
    ) -> Result<u64, StoreError> {
        meta::check_name(namespace, key)?;
        meta::check_value(&value)?;
        self.with_meta(|entries| {
            let name = (namespace.to_owned(), key.to_owned());
            let current = entries.get(&name).map(|(version, _)| *version);
            let version = meta::next_version(namespace, key, current, expected)?;
            entries.insert(name, (version, value));
            Ok(version)
        })
    }

    async fn list_meta(&self, namespace: &str) -> Result<Vec<MetaEntry>, StoreError> {
        meta::check_namespace(namespace)?;
        Ok(self.with_meta(|entries| {
            entries
                .iter()
                .filter(|((space, _), _)| space == namespace)
                .map(|((_, key), (version, value))| MetaEntry {
                    key: key.clone(),
                    version: *version,
                    value: value.clone(),
                })
                .collect()
        }))
    }

    async fn delete_meta(&self, namespace: &str, key: &str, expected: u64) -> Result<(), StoreError> {
        meta::check_name(namespace, key)?;
        self.with_meta(|entries| {
            let name = (namespace.to_owned(), key.to_owned());
            let current = entries.get(&name).map(|(version, _)| *version);
            if current != Some(expected) {
                return Err(meta::conflict(namespace, key, current, Some(expected)));
            }
            entries.remove(&name);
            Ok(())
        })
    }
}
