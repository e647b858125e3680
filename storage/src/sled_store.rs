//! [`SledStore`]: the log in sled, behind the `sled` feature, to compare with redb on the same
//! suite and benchmarks. It is not offered as a default: sled 0.34 depends on crates flagged
//! unmaintained, its on-disk format is not promised stable across releases, and its own
//! documentation does not recommend it where reliability comes first (see
//! `storage/DESIGN.md`).
//!
//! One sled tree holds everything, so that one `apply_batch` is atomic across the log, the
//! heads and the secrets; a key starts with its kind and the tenant:
//!
//! ```text
//! 'h' tenant                      → seq u64 | recorded_at i64 | chain [32]   (the head)
//! 'r' tenant 0x00 seq (u64 BE)    → the record, in the layout of `record.rs`
//! 's' tenant 0x00 id [16]         → key material
//! 'm' tenant 0x00 seq (u64 BE)    → state hash [32] | len u64               (a snapshot)
//! 'p' tenant 0x00 seq part (u32)  → up to 1 MiB of the snapshot's bytes
//! 'k' namespace 0x00 key          → version u64 | value                     (metadata)
//! ```
//!
//! Metadata changes do not go through the committer: each is one compare-and-swap on its key
//! and a flush.
//!
//! Writes go through one committer thread (group commit): it takes every append waiting,
//! checks each against its tenant's head, applies them as one batch and flushes the database
//! (`Db::flush`, which returns once the data is on disk) before it answers any of them.

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;

use async_trait::async_trait;

use crate::error::StoreError;
use crate::meta::{self, MetaEntry};
use crate::record::{Record, RecordDecoder};
use crate::store::{
    AppendBatch, Appended, Head, LogStore, SecretId, SnapshotInfo, StoredSnapshot, head_after, prepare_append,
};
use crate::types::{Hash32, Seq, TenantId, Timestamp};

/// The most appends one flush takes.
const JOBS_PER_COMMIT_MAX: usize = 4096;
/// The largest part of a snapshot in one value.
const PART_LEN: usize = 1024 * 1024;

/// A [`LogStore`] in a sled database.
pub struct SledStore {
    tree: sled::Db,
    jobs: Option<mpsc::Sender<Job>>,
    committer: Option<JoinHandle<()>>,
}

struct Job {
    write: Write,
    reply: tokio::sync::oneshot::Sender<Result<Answer, StoreError>>,
}

enum Write {
    Append(AppendBatch),
    EnsureTenant(TenantId),
    DestroySecret(TenantId, SecretId),
    PutSnapshot(TenantId, StoredSnapshot),
    RemoveSnapshot(TenantId, Seq),
}

enum Answer {
    Appended(Appended),
    Head(Head),
    Existed(bool),
    Done,
}

fn failed(context: &'static str) -> impl Fn(sled::Error) -> StoreError {
    move |error| StoreError::backend(context, error)
}

fn key(kind: u8, tenant: &TenantId) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + tenant.as_str().len() + 20);
    key.push(kind);
    key.extend_from_slice(tenant.as_str().as_bytes());
    if kind != b'h' {
        key.push(0);
    }
    key
}

fn seq_key(kind: u8, tenant: &TenantId, seq: Seq) -> Vec<u8> {
    let mut key = key(kind, tenant);
    key.extend_from_slice(&seq.0.to_be_bytes());
    key
}

fn encode_head(head: &Head) -> [u8; 48] {
    let mut bytes = [0u8; 48];
    bytes[..8].copy_from_slice(&head.seq.0.to_le_bytes());
    bytes[8..16].copy_from_slice(&head.recorded_at.0.to_le_bytes());
    bytes[16..].copy_from_slice(&head.chain.0);
    bytes
}

fn decode_head(tenant: &TenantId, bytes: &[u8]) -> Result<Head, StoreError> {
    let bytes: &[u8; 48] = bytes.try_into().map_err(|_| StoreError::Corrupt {
        tenant: tenant.clone(),
        seq: Seq::ZERO,
        reason: format!("a head of {} bytes", bytes.len()),
    })?;
    let (seq, rest) = bytes.split_at(8);
    let (recorded_at, chain) = rest.split_at(8);
    Ok(Head {
        seq: Seq(u64::from_le_bytes(seq.try_into().expect("8 bytes"))),
        recorded_at: Timestamp(i64::from_le_bytes(recorded_at.try_into().expect("8 bytes"))),
        chain: Hash32(chain.try_into().expect("32 bytes")),
    })
}

fn meta_key(namespace: &str, key: &str) -> Vec<u8> {
    let mut bytes = meta_prefix(namespace);
    bytes.extend_from_slice(key.as_bytes());
    bytes
}

fn meta_prefix(namespace: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(2 + namespace.len());
    bytes.push(b'k');
    bytes.extend_from_slice(namespace.as_bytes());
    bytes.push(0);
    bytes
}

/// Replaces the entry's stored bytes `current` with `new` (`None`: removes it) in one
/// compare-and-swap, then flushes. A writer that changed the entry since `current` was read
/// makes this a conflict.
fn swap_meta(
    tree: &sled::Db,
    namespace: &str,
    key: &str,
    current: Option<&MetaEntry>,
    new: Option<Vec<u8>>,
    expected: Option<u64>,
) -> Result<(), StoreError> {
    let context = "writing metadata";
    let old = current.map(|entry| meta::encode_versioned(entry.version, &entry.value));
    let swapped = tree
        .compare_and_swap(meta_key(namespace, key), old, new)
        .map_err(failed(context))?;
    if swapped.is_err() {
        let now = read_meta(tree, namespace, key)?.map(|entry| entry.version);
        return Err(meta::conflict(namespace, key, now, expected));
    }
    tree.flush().map_err(failed(context))?;
    Ok(())
}

fn read_meta(tree: &sled::Db, namespace: &str, key: &str) -> Result<Option<MetaEntry>, StoreError> {
    tree.get(meta_key(namespace, key))
        .map_err(failed("reading metadata"))?
        .map(|bytes| meta::decode_versioned(key, &bytes))
        .transpose()
}

fn read_head(tree: &sled::Db, tenant: &TenantId) -> Result<Head, StoreError> {
    match tree.get(key(b'h', tenant)).map_err(failed("reading a head"))? {
        Some(bytes) => decode_head(tenant, &bytes),
        None => Err(StoreError::UnknownTenant(tenant.clone())),
    }
}

impl SledStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        crate::private_files::create_dir_all(dir).map_err(|e| StoreError::backend("creating the data directory", e))?;
        crate::private_files::make_dir_private(dir)?;
        let tree = sled::open(dir).map_err(failed("opening the sled database"))?;
        let (jobs, receiver) = mpsc::channel();
        let committer_tree = tree.clone();
        let committer = std::thread::Builder::new()
            .name("idpsync-sled-committer".to_owned())
            .spawn(move || run_committer(&committer_tree, &receiver))
            .map_err(|e| StoreError::backend("starting the committer thread", e))?;
        Ok(SledStore {
            tree,
            jobs: Some(jobs),
            committer: Some(committer),
        })
    }

    async fn submit(&self, write: Write) -> Result<Answer, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sender = self.jobs.as_ref().ok_or(StoreError::Closed)?;
        sender.send(Job { write, reply }).map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&sled::Db) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let tree = self.tree.clone();
        tokio::task::spawn_blocking(move || f(&tree))
            .await
            .map_err(|e| StoreError::backend("running a storage task", e))?
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(committer) = self.committer.take() {
            let _ = committer.join();
        }
    }
}

/// Runs until every sender is dropped: each group of waiting writes is one batch and one
/// flush.
fn run_committer(tree: &sled::Db, jobs: &mpsc::Receiver<Job>) {
    let mut heads: HashMap<TenantId, Head> = HashMap::new();
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < JOBS_PER_COMMIT_MAX {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let mut working: HashMap<TenantId, Head> = HashMap::new();
        let mut batch = sled::Batch::default();
        let mut answers = Vec::with_capacity(group.len());
        let mut failure = None;
        for job in &group {
            match apply(tree, &heads, &mut working, &mut batch, &job.write) {
                Ok(answer) => answers.push(answer),
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        let committed = match failure {
            Some(error) => Err(error),
            None => tree
                .apply_batch(batch)
                .and_then(|()| tree.flush().map(|_| ()))
                .map_err(failed("committing the log")),
        };
        match committed {
            Ok(()) => {
                heads.extend(working);
                for (job, answer) in group.into_iter().zip(answers) {
                    let _ = job.reply.send(answer);
                }
            }
            Err(error) => {
                heads.clear();
                let reason = error.to_string();
                for job in group {
                    let _ = job.reply.send(Err(StoreError::Backend {
                        context: "committing the log",
                        source: reason.clone().into(),
                    }));
                }
            }
        }
    }
}

/// Adds one write to the group's batch; returns its answer, or the error that fails the group.
fn apply(
    tree: &sled::Db,
    heads: &HashMap<TenantId, Head>,
    working: &mut HashMap<TenantId, Head>,
    batch: &mut sled::Batch,
    write: &Write,
) -> Result<Result<Answer, StoreError>, StoreError> {
    let head = |tenant: &TenantId, working: &HashMap<TenantId, Head>| -> Result<Option<Head>, StoreError> {
        if let Some(head) = working.get(tenant).or_else(|| heads.get(tenant)) {
            return Ok(Some(*head));
        }
        match read_head(tree, tenant) {
            Ok(head) => Ok(Some(head)),
            Err(StoreError::UnknownTenant(_)) => Ok(None),
            Err(error) => Err(error),
        }
    };
    Ok(match write {
        Write::Append(append) => match head(&append.tenant, working)? {
            None => Err(StoreError::UnknownTenant(append.tenant.clone())),
            Some(current) => match prepare_append(&current, append) {
                Err(error) => Err(error),
                Ok(records) => {
                    for record in &records {
                        let mut value = Vec::new();
                        record.encode_into(&mut value);
                        batch.insert(seq_key(b'r', &append.tenant, record.seq), value);
                    }
                    for secret in &append.secrets {
                        let mut id = key(b's', &append.tenant);
                        id.extend_from_slice(&secret.id.0);
                        batch.insert(id, secret.material.as_slice());
                    }
                    let new_head = head_after(&records).expect("a prepared batch is never empty");
                    batch.insert(key(b'h', &append.tenant), encode_head(&new_head).as_slice());
                    working.insert(append.tenant.clone(), new_head);
                    Ok(Answer::Appended(Appended {
                        head: new_head,
                        chains: records.iter().map(|record| record.chain).collect(),
                    }))
                }
            },
        },
        Write::EnsureTenant(tenant) => match head(tenant, working)? {
            Some(current) => Ok(Answer::Head(current)),
            None => {
                batch.insert(key(b'h', tenant), encode_head(&Head::EMPTY).as_slice());
                working.insert(tenant.clone(), Head::EMPTY);
                Ok(Answer::Head(Head::EMPTY))
            }
        },
        Write::DestroySecret(tenant, id) => match head(tenant, working)? {
            None => Err(StoreError::UnknownTenant(tenant.clone())),
            Some(_) => {
                let mut secret = key(b's', tenant);
                secret.extend_from_slice(&id.0);
                let existed = tree.contains_key(&secret).map_err(failed("destroying a secret"))?;
                batch.remove(secret);
                Ok(Answer::Existed(existed))
            }
        },
        Write::PutSnapshot(tenant, snapshot) => match head(tenant, working)? {
            None => Err(StoreError::UnknownTenant(tenant.clone())),
            Some(current) if snapshot.seq > current.seq => Err(StoreError::SnapshotBeyondHead {
                tenant: tenant.clone(),
                seq: snapshot.seq,
                head: current.seq,
            }),
            Some(_) => {
                remove_snapshot_parts(tree, batch, tenant, snapshot.seq)?;
                let mut header = snapshot.state_hash.0.to_vec();
                header.extend_from_slice(&(snapshot.bytes.len() as u64).to_le_bytes());
                batch.insert(seq_key(b'm', tenant, snapshot.seq), header);
                for (part, bytes) in (0u32..).zip(snapshot.bytes.chunks(PART_LEN)) {
                    let mut part_key = seq_key(b'p', tenant, snapshot.seq);
                    part_key.extend_from_slice(&part.to_be_bytes());
                    batch.insert(part_key, bytes);
                }
                Ok(Answer::Done)
            }
        },
        Write::RemoveSnapshot(tenant, seq) => match head(tenant, working)? {
            None => Err(StoreError::UnknownTenant(tenant.clone())),
            Some(_) => {
                let header = seq_key(b'm', tenant, *seq);
                let existed = tree.contains_key(&header).map_err(failed("removing a snapshot"))?;
                batch.remove(header);
                remove_snapshot_parts(tree, batch, tenant, *seq)?;
                Ok(Answer::Existed(existed))
            }
        },
    })
}

fn remove_snapshot_parts(
    tree: &sled::Db,
    batch: &mut sled::Batch,
    tenant: &TenantId,
    seq: Seq,
) -> Result<(), StoreError> {
    for entry in tree.scan_prefix(seq_key(b'p', tenant, seq)) {
        let (part, _) = entry.map_err(failed("removing a snapshot"))?;
        batch.remove(part);
    }
    Ok(())
}

fn unexpected() -> StoreError {
    StoreError::Closed
}

#[async_trait]
impl LogStore for SledStore {
    async fn ensure_tenant(&self, tenant: &TenantId) -> Result<Head, StoreError> {
        match self.submit(Write::EnsureTenant(tenant.clone())).await? {
            Answer::Head(head) => Ok(head),
            _ => Err(unexpected()),
        }
    }

    async fn tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        self.blocking(|tree| {
            let mut tenants = Vec::new();
            for entry in tree.scan_prefix([b'h']) {
                let (name, _) = entry.map_err(failed("listing tenants"))?;
                let name = String::from_utf8_lossy(&name[1..]).into_owned();
                tenants.push(TenantId::new(&name).map_err(|e| StoreError::Corrupt {
                    tenant: TenantId::default_tenant(),
                    seq: Seq::ZERO,
                    reason: e.to_string(),
                })?);
            }
            Ok(tenants)
        })
        .await
    }

    async fn head(&self, tenant: &TenantId) -> Result<Head, StoreError> {
        let tenant = tenant.clone();
        self.blocking(move |tree| read_head(tree, &tenant)).await
    }

    async fn append(&self, batch: AppendBatch) -> Result<Appended, StoreError> {
        match self.submit(Write::Append(batch)).await? {
            Answer::Appended(appended) => Ok(appended),
            _ => Err(unexpected()),
        }
    }

    async fn read(&self, tenant: &TenantId, from: Seq, limit: usize) -> Result<Vec<Record>, StoreError> {
        let tenant = tenant.clone();
        self.blocking(move |tree| {
            read_head(tree, &tenant)?;
            let from = Seq(from.0.max(1));
            let mut records = Vec::new();
            let end = key(b'r', &tenant).into_iter().chain([0xff; 9]).collect::<Vec<u8>>();
            for (expected, entry) in (from.0..).map(Seq).zip(tree.range(seq_key(b'r', &tenant, from)..end)) {
                if records.len() >= limit {
                    break;
                }
                let (_, value) = entry.map_err(failed("reading the log"))?;
                let corrupt = |reason: String| StoreError::Corrupt {
                    tenant: tenant.clone(),
                    seq: expected,
                    reason,
                };
                let record = RecordDecoder::new(&value)
                    .next()
                    .ok_or_else(|| corrupt("an empty record".to_owned()))?
                    .map_err(|e| corrupt(e.to_string()))?;
                if record.seq != expected {
                    return Err(corrupt("record missing (gap in the log)".to_owned()));
                }
                records.push(record);
            }
            Ok(records)
        })
        .await
    }

    async fn put_snapshot(&self, tenant: &TenantId, snapshot: StoredSnapshot) -> Result<(), StoreError> {
        match self.submit(Write::PutSnapshot(tenant.clone(), snapshot)).await? {
            Answer::Done => Ok(()),
            _ => Err(unexpected()),
        }
    }

    async fn snapshot_at_or_before(&self, tenant: &TenantId, seq: Seq) -> Result<Option<StoredSnapshot>, StoreError> {
        let tenant = tenant.clone();
        self.blocking(move |tree| {
            read_head(tree, &tenant)?;
            let Some(entry) = tree
                .range(seq_key(b'm', &tenant, Seq::ZERO)..=seq_key(b'm', &tenant, seq))
                .next_back()
            else {
                return Ok(None);
            };
            let (header_key, header) = entry.map_err(failed("reading a snapshot"))?;
            let found = Seq(u64::from_be_bytes(
                header_key[header_key.len() - 8..].try_into().expect("8 bytes"),
            ));
            let corrupt = |reason: &str| StoreError::SnapshotCorrupt {
                tenant: tenant.clone(),
                seq: found,
                reason: reason.to_owned(),
            };
            if header.len() != 40 {
                return Err(corrupt("a header of the wrong size"));
            }
            let state_hash = Hash32(header[..32].try_into().expect("32 bytes"));
            let mut bytes = Vec::new();
            for part in tree.scan_prefix(seq_key(b'p', &tenant, found)) {
                let (_, value) = part.map_err(failed("reading a snapshot"))?;
                bytes.extend_from_slice(&value);
            }
            let snapshot = StoredSnapshot {
                seq: found,
                state_hash,
                bytes,
            };
            if !snapshot.is_intact() {
                return Err(corrupt("state bytes do not match the stored hash"));
            }
            Ok(Some(snapshot))
        })
        .await
    }

    async fn snapshots(&self, tenant: &TenantId) -> Result<Vec<SnapshotInfo>, StoreError> {
        let tenant = tenant.clone();
        self.blocking(move |tree| {
            read_head(tree, &tenant)?;
            let mut listed = Vec::new();
            for entry in tree.scan_prefix(key(b'm', &tenant)) {
                let (header_key, header) = entry.map_err(failed("listing snapshots"))?;
                listed.push(SnapshotInfo {
                    seq: Seq(u64::from_be_bytes(
                        header_key[header_key.len() - 8..].try_into().expect("8 bytes"),
                    )),
                    state_hash: Hash32(header.get(..32).and_then(|h| h.try_into().ok()).unwrap_or_default()),
                });
            }
            Ok(listed)
        })
        .await
    }

    async fn remove_snapshot(&self, tenant: &TenantId, seq: Seq) -> Result<bool, StoreError> {
        match self.submit(Write::RemoveSnapshot(tenant.clone(), seq)).await? {
            Answer::Existed(existed) => Ok(existed),
            _ => Err(unexpected()),
        }
    }

    async fn secrets(&self, tenant: &TenantId) -> Result<Vec<(SecretId, Vec<u8>)>, StoreError> {
        let tenant = tenant.clone();
        self.blocking(move |tree| {
            read_head(tree, &tenant)?;
            let prefix = key(b's', &tenant);
            let mut secrets = Vec::new();
            for entry in tree.scan_prefix(&prefix) {
                let (id, material) = entry.map_err(failed("reading secrets"))?;
                let id: [u8; 16] = id[prefix.len()..].try_into().map_err(|_| StoreError::Corrupt {
                    tenant: tenant.clone(),
                    seq: Seq::ZERO,
                    reason: "a secret id of the wrong size".to_owned(),
                })?;
                secrets.push((SecretId(id), material.to_vec()));
            }
            Ok(secrets)
        })
        .await
    }

    async fn destroy_secret(&self, tenant: &TenantId, id: SecretId) -> Result<bool, StoreError> {
        match self.submit(Write::DestroySecret(tenant.clone(), id)).await? {
            Answer::Existed(existed) => Ok(existed),
            _ => Err(unexpected()),
        }
    }

    async fn get_meta(&self, namespace: &str, key: &str) -> Result<Option<MetaEntry>, StoreError> {
        meta::check_name(namespace, key)?;
        let (namespace, key) = (namespace.to_owned(), key.to_owned());
        self.blocking(move |tree| read_meta(tree, &namespace, &key)).await
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
        let (namespace, key) = (namespace.to_owned(), key.to_owned());
        self.blocking(move |tree| {
            let current = read_meta(tree, &namespace, &key)?;
            let version = meta::next_version(&namespace, &key, current.as_ref().map(|e| e.version), expected)?;
            let new = meta::encode_versioned(version, &value);
            swap_meta(tree, &namespace, &key, current.as_ref(), Some(new), expected)?;
            Ok(version)
        })
        .await
    }

    async fn list_meta(&self, namespace: &str) -> Result<Vec<MetaEntry>, StoreError> {
        meta::check_namespace(namespace)?;
        let prefix = meta_prefix(namespace);
        self.blocking(move |tree| {
            let mut entries = Vec::new();
            for entry in tree.scan_prefix(&prefix) {
                let (name, bytes) = entry.map_err(failed("listing metadata"))?;
                let key = std::str::from_utf8(&name[prefix.len()..]).map_err(|_| StoreError::InvalidMeta {
                    reason: "a stored metadata key is not UTF-8".to_owned(),
                })?;
                entries.push(meta::decode_versioned(key, &bytes)?);
            }
            Ok(entries)
        })
        .await
    }

    async fn delete_meta(&self, namespace: &str, key: &str, expected: u64) -> Result<(), StoreError> {
        meta::check_name(namespace, key)?;
        let (namespace, key) = (namespace.to_owned(), key.to_owned());
        self.blocking(move |tree| {
            let current = read_meta(tree, &namespace, &key)?;
            let version = current.as_ref().map(|entry| entry.version);
            if version != Some(expected) {
                return Err(meta::conflict(&namespace, &key, version, Some(expected)));
            }
            swap_meta(tree, &namespace, &key, current.as_ref(), None, Some(expected))
        })
        .await
    }
}
