//! [`RedbStore`]: the embedded default backend. One redb database file holds every tenant's log;
//! snapshots are files beside it.
//!
//! Layout of the data directory:
//!
//! ```text
//! log.redb                       the log: tables `log`, `journal`, `heads` and the secrets (see `tables`)
//! log.redb.scrub                 only while the file is scrubbed of destroyed secrets (see `scrub`)
//! log.redb.scrub-due             only while a destroyed secret may be in the file
//! snapshots/<tenant>/<seq>.snap  state snapshots, one file each (see `snapshot_files`)
//! ```
//!
//! All writes to the database go through one committer thread (see `committer`), which is what
//! turns concurrent appends into one durable commit. Reads use redb's MVCC read transactions and
//! never wait for the committer.

mod committer;
#[cfg(test)]
mod failing_disk_tests;
mod handle;
mod journal;
mod meta_table;
mod scrub;
mod snapshot_files;
mod tables;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable};

use crate::error::StoreError;
use crate::meta::{self, MetaEntry};
use crate::private_files;
use crate::record::{Record, RecordDecoder};
use crate::store::{
    AppendBatch, Appended, Head, LogStore, SecretId, SnapshotInfo, SnapshotReader, StoreHealth, StoredSnapshot,
};
use crate::types::{Seq, TenantId};

use committer::{Answer, Job, Write};
use handle::DatabaseHandle;
use tables::{HEADS, JOURNAL, LOG, SECRET_ROWS, SECRETS, decode_head};

/// The name of the database file inside the data directory.
pub const DATABASE_FILE: &str = "log.redb";

/// After a secret is destroyed, the database file is scrubbed of it at most this long after
/// (and before the store closes); at most one scrub runs per this long.
pub const SCRUB_EVERY: Duration = Duration::from_secs(60);

/// redb's page cache (its default is 1 GiB). The engine keeps every loaded tenant's state in
/// memory and reads the log only to catch a tenant up, to stream changes and for audits, each
/// mostly once; what a larger cache would keep is mostly the pages of the records just
/// written, which nothing reads again. A commit keeps the few pages it walks (the trees' roots
/// and their right edges) in these 16 MiB. Measured on a driver's sync of 100,000 users: the
/// process peaked 50 MiB lower than with redb's default, with no change in append throughput
/// beyond the noise (benches/README.md).
pub const CACHE_BYTES: usize = 16 * 1024 * 1024;

/// A [`LogStore`] on a local disk, in one redb database.
pub struct RedbStore {
    database: Arc<DatabaseHandle>,
    snapshots_dir: PathBuf,
    jobs: Option<mpsc::Sender<Job>>,
    committer: Option<JoinHandle<()>>,
}

impl RedbStore {
    /// Opens the store in `dir`, creating the directory and the database if they do not exist,
    /// with a page cache of [`CACHE_BYTES`].
    ///
    /// Fails with [`StoreError::InUse`] if another process has the database open.
    pub fn open(dir: &Path) -> Result<RedbStore, StoreError> {
        RedbStore::open_with(dir, Box::new(open_database), SCRUB_EVERY)
    }

    /// [`RedbStore::open`] with the database file opened by `open_file` (tests put a failing
    /// disk under it) and scrubbed at most once per `scrub_every`.
    fn open_with(dir: &Path, open_file: Box<handle::Opener>, scrub_every: Duration) -> Result<RedbStore, StoreError> {
        private_files::create_dir_all(dir).map_err(|e| StoreError::backend("creating the data directory", e))?;
        private_files::make_dir_private(dir)?;
        let path = dir.join(DATABASE_FILE);
        // The database holds the users' sealing keys: made private before redb writes to it.
        match private_files::file_options().write(true).create_new(true).open(&path) {
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => private_files::check_file(&path)?,
            Err(error) => return Err(StoreError::backend("creating the database", error)),
        }
        let database = Arc::new(DatabaseHandle::open(path, open_file)?);
        // Only now, holding the database, is no other process scrubbing it.
        scrub::remove_leftover(dir)?;
        let snapshots_dir = dir.join("snapshots");
        private_files::create_dir_all(&snapshots_dir)
            .map_err(|e| StoreError::backend("creating the snapshot directory", e))?;
        let (jobs, receiver) = mpsc::channel();
        let committer_database = Arc::clone(&database);
        let committer = std::thread::Builder::new()
            .name("idpsync-committer".to_owned())
            .spawn(move || committer::run(&committer_database, &receiver, scrub_every))
            .map_err(|e| StoreError::backend("starting the committer thread", e))?;
        Ok(RedbStore {
            database,
            snapshots_dir,
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
        f: impl FnOnce(&Database, &Path) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let database = Arc::clone(&self.database);
        let snapshots_dir = self.snapshots_dir.clone();
        tokio::task::spawn_blocking(move || f(&*database.get()?, &snapshots_dir))
            .await
            .map_err(|e| StoreError::backend("running a storage task", e))?
    }

    /// The latest snapshot of `tenant` at or before `seq`, as `load` gives it from its file.
    async fn latest_snapshot<T: Send + 'static>(
        &self,
        tenant: &TenantId,
        seq: Seq,
        load: fn(&Path, &TenantId, Seq) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let tenant = tenant.clone();
        self.blocking(move |db, dir| {
            read_head(db, &tenant)?;
            snapshot_files::latest_at_or_before(dir, &tenant, seq)?
                .map(|found| load(dir, &tenant, found))
                .transpose()
        })
        .await
    }
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        // Closing the channel lets the committer finish the jobs it has, then exit; joining it
        // means the database is closed when the store is gone, so it can be reopened at once.
        drop(self.jobs.take());
        if let Some(committer) = self.committer.take() {
            let _ = committer.join();
        }
    }
}

/// Opens the database file (creating it if needed); a file another process holds is
/// [`StoreError::InUse`].
fn open_database(path: &Path) -> Result<Database, StoreError> {
    match Database::builder().set_cache_size(CACHE_BYTES).create(path) {
        Ok(database) => Ok(database),
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => Err(StoreError::InUse {
            path: path.display().to_string(),
        }),
        Err(e) => Err(StoreError::backend("opening the database", e)),
    }
}

fn read_head(db: &Database, tenant: &TenantId) -> Result<Head, StoreError> {
    let txn = db
        .begin_read()
        .map_err(|e| StoreError::backend("reading the head", e))?;
    let heads = txn
        .open_table(HEADS)
        .map_err(|e| StoreError::backend("reading the head", e))?;
    let stored = heads
        .get(tenant.as_str())
        .map_err(|e| StoreError::backend("reading the head", e))?;
    match stored {
        Some(bytes) => decode_head(tenant, bytes.value()),
        None => Err(StoreError::UnknownTenant(tenant.clone())),
    }
}

fn read_records(db: &Database, tenant: &TenantId, from: Seq, limit: usize) -> Result<Vec<Record>, StoreError> {
    let from = Seq(from.0.max(1));
    let context = "reading the log";
    let txn = db.begin_read().map_err(|e| StoreError::backend(context, e))?;
    let heads = txn.open_table(HEADS).map_err(|e| StoreError::backend(context, e))?;
    if heads
        .get(tenant.as_str())
        .map_err(|e| StoreError::backend(context, e))?
        .is_none()
    {
        return Err(StoreError::UnknownTenant(tenant.clone()));
    }
    let log = txn.open_table(LOG).map_err(|e| StoreError::backend(context, e))?;
    let name = tenant.as_str();
    // The chunk holding `from` is the last one starting at or before it.
    let first_chunk = log
        .range((name, 0)..=(name, from.0))
        .map_err(|e| StoreError::backend(context, e))?
        .next_back()
        .transpose()
        .map_err(|e| StoreError::backend(context, e))?
        .map_or(from.0, |(key, _)| key.value().1);
    let mut page = Page {
        tenant,
        from,
        limit,
        expected: from,
        records: Vec::new(),
    };
    for entry in log
        .range((name, first_chunk)..=(name, u64::MAX))
        .map_err(|e| StoreError::backend(context, e))?
    {
        let (key, chunk) = entry.map_err(|e| StoreError::backend(context, e))?;
        if page.take_chunk(Seq(key.value().1), chunk.value())? {
            return Ok(page.records);
        }
    }
    // Records after the tenant's last log chunk, not yet moved out of the journal.
    let journal = txn.open_table(JOURNAL).map_err(|e| StoreError::backend(context, e))?;
    journal::for_each_chunk(&journal, tenant, |first_seq, chunk| page.take_chunk(first_seq, chunk))?;
    Ok(page.records)
}

/// Records of one tenant being read from `from`, at most `limit` of them, chunk by chunk.
struct Page<'a> {
    tenant: &'a TenantId,
    from: Seq,
    limit: usize,
    /// The seq the next chunk must reach back to (a later start is a gap).
    expected: Seq,
    records: Vec<Record>,
}

impl Page<'_> {
    /// Takes the records of a chunk starting at `chunk_first`; returns whether the page is full.
    fn take_chunk(&mut self, chunk_first: Seq, chunk: &[u8]) -> Result<bool, StoreError> {
        if chunk_first > self.expected {
            return Err(StoreError::Corrupt {
                tenant: self.tenant.clone(),
                seq: self.expected,
                reason: "record missing (gap in the log)".to_owned(),
            });
        }
        let corrupt = |seq: Seq, reason: String| StoreError::Corrupt {
            tenant: self.tenant.clone(),
            seq,
            reason,
        };
        let mut position = chunk_first;
        let mut decoder = RecordDecoder::new(chunk);
        // Records before `from`: stepped over, their seq checked.
        while position < self.from {
            let Some(skipped) = decoder.step_over() else {
                return Ok(false);
            };
            let seq = skipped.map_err(|e| corrupt(position, e.to_string()))?;
            if seq != position {
                return Err(corrupt(position, format!("record carries seq {seq}")));
            }
            position = position.next();
        }
        for decoded in decoder {
            let record = decoded.map_err(|e| corrupt(position, e.to_string()))?;
            if record.seq != position {
                return Err(corrupt(position, format!("record carries seq {}", record.seq)));
            }
            position = position.next();
            self.records.push(record);
            self.expected = position;
            if self.records.len() >= self.limit {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[async_trait]
impl LogStore for RedbStore {
    async fn ensure_tenant(&self, tenant: &TenantId) -> Result<Head, StoreError> {
        match self.submit(Write::EnsureTenant(tenant.clone())).await? {
            Answer::Head(head) => Ok(head),
            Answer::Appended(appended) => Ok(appended.head),
            Answer::Destroyed(_) => Err(StoreError::Closed),
        }
    }

    async fn tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        self.blocking(|db, _| {
            let context = "listing tenants";
            let txn = db.begin_read().map_err(|e| StoreError::backend(context, e))?;
            let heads = txn.open_table(HEADS).map_err(|e| StoreError::backend(context, e))?;
            let mut tenants = Vec::new();
            for entry in heads.iter().map_err(|e| StoreError::backend(context, e))? {
                let (name, _) = entry.map_err(|e| StoreError::backend(context, e))?;
                let tenant = TenantId::new(name.value()).map_err(|e| StoreError::Corrupt {
                    tenant: TenantId::default_tenant(),
                    seq: Seq::ZERO,
                    reason: e.to_string(),
                })?;
                tenants.push(tenant);
            }
            Ok(tenants)
        })
        .await
    }

    async fn head(&self, tenant: &TenantId) -> Result<Head, StoreError> {
        let tenant = tenant.clone();
        self.blocking(move |db, _| read_head(db, &tenant)).await
    }

    async fn append(&self, batch: AppendBatch) -> Result<Appended, StoreError> {
        match self.submit(Write::Append(batch)).await? {
            Answer::Appended(appended) => Ok(appended),
            Answer::Head(_) | Answer::Destroyed(_) => Err(StoreError::Closed),
        }
    }

    async fn read(&self, tenant: &TenantId, from: Seq, limit: usize) -> Result<Vec<Record>, StoreError> {
        let tenant = tenant.clone();
        self.blocking(move |db, _| read_records(db, &tenant, from, limit)).await
    }

    async fn put_snapshot(&self, tenant: &TenantId, snapshot: StoredSnapshot) -> Result<(), StoreError> {
        let tenant = tenant.clone();
        self.blocking(move |db, dir| {
            let head = read_head(db, &tenant)?;
            if snapshot.seq > head.seq {
                return Err(StoreError::SnapshotBeyondHead {
                    tenant,
                    seq: snapshot.seq,
                    head: head.seq,
                });
            }
            snapshot_files::write(dir, &tenant, &snapshot)
        })
        .await
    }

    async fn snapshot_at_or_before(&self, tenant: &TenantId, seq: Seq) -> Result<Option<StoredSnapshot>, StoreError> {
        self.latest_snapshot(tenant, seq, snapshot_files::read).await
    }

    async fn open_snapshot_at_or_before(
        &self,
        tenant: &TenantId,
        seq: Seq,
    ) -> Result<Option<SnapshotReader>, StoreError> {
        self.latest_snapshot(tenant, seq, snapshot_files::open).await
    }

    async fn remove_snapshot(&self, tenant: &TenantId, seq: Seq) -> Result<bool, StoreError> {
        let tenant = tenant.clone();
        self.blocking(move |db, dir| {
            read_head(db, &tenant)?;
            snapshot_files::remove(dir, &tenant, seq)
        })
        .await
    }

    async fn snapshots(&self, tenant: &TenantId) -> Result<Vec<SnapshotInfo>, StoreError> {
        let tenant = tenant.clone();
        self.blocking(move |db, dir| {
            read_head(db, &tenant)?;
            snapshot_files::list(dir, &tenant)?
                .into_iter()
                .map(|seq| snapshot_files::read_info(dir, &tenant, seq))
                .collect()
        })
        .await
    }

    async fn secrets(&self, tenant: &TenantId) -> Result<Vec<(SecretId, Vec<u8>)>, StoreError> {
        let tenant = tenant.clone();
        self.blocking(move |db, _| {
            let context = "reading secrets";
            read_head(db, &tenant)?;
            let txn = db.begin_read().map_err(|e| StoreError::backend(context, e))?;
            let name = tenant.as_str();
            let mut secrets = Vec::new();
            let rows = txn
                .open_table(SECRET_ROWS)
                .map_err(|e| StoreError::backend(context, e))?;
            for entry in rows
                .range((name, 0u64, 0u32)..=(name, u64::MAX, u32::MAX))
                .map_err(|e| StoreError::backend(context, e))?
            {
                let (_, row) = entry.map_err(|e| StoreError::backend(context, e))?;
                let row = tables::decode_secret_row(&tenant, row.value())?;
                secrets.extend(row.into_iter().map(|(id, material)| (id, material.to_vec())));
            }
            let legacy = txn.open_table(SECRETS).map_err(|e| StoreError::backend(context, e))?;
            for entry in legacy
                .range((name, 0u128)..=(name, u128::MAX))
                .map_err(|e| StoreError::backend(context, e))?
            {
                let (key, material) = entry.map_err(|e| StoreError::backend(context, e))?;
                secrets.push((SecretId(key.value().1.to_be_bytes()), material.value().to_vec()));
            }
            Ok(secrets)
        })
        .await
    }

    async fn destroy_secret(&self, tenant: &TenantId, id: SecretId) -> Result<bool, StoreError> {
        match self.submit(Write::DestroySecret(tenant.clone(), id)).await? {
            Answer::Destroyed(existed) => Ok(existed),
            Answer::Appended(_) | Answer::Head(_) => Err(StoreError::Closed),
        }
    }

    async fn get_meta(&self, namespace: &str, key: &str) -> Result<Option<MetaEntry>, StoreError> {
        meta::check_name(namespace, key)?;
        let (namespace, key) = (namespace.to_owned(), key.to_owned());
        self.blocking(move |db, _| meta_table::get(db, &namespace, &key)).await
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
        self.database.writable()?;
        let (namespace, key) = (namespace.to_owned(), key.to_owned());
        self.blocking(move |db, _| meta_table::put(db, &namespace, &key, expected, &value))
            .await
    }

    async fn list_meta(&self, namespace: &str) -> Result<Vec<MetaEntry>, StoreError> {
        meta::check_namespace(namespace)?;
        let namespace = namespace.to_owned();
        self.blocking(move |db, _| meta_table::list(db, &namespace)).await
    }

    async fn delete_meta(&self, namespace: &str, key: &str, expected: u64) -> Result<(), StoreError> {
        meta::check_name(namespace, key)?;
        self.database.writable()?;
        let (namespace, key) = (namespace.to_owned(), key.to_owned());
        self.blocking(move |db, _| meta_table::delete(db, &namespace, &key, expected))
            .await
    }

    fn health(&self) -> StoreHealth {
        self.database.health()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewSecret;
    use crate::types::Seq;

    /// A database as an earlier build made it: created by redb itself, then made private by
    /// the operator, as opening it asks.
    fn database_of_an_earlier_build(dir: &Path) -> Database {
        let path = dir.join(DATABASE_FILE);
        let db = Database::create(&path).unwrap();
        #[cfg(unix)]
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        db
    }

    /// A database whose secrets are in the `secrets` table, one row per secret, as builds
    /// before `secret_rows` wrote them.
    fn database_with_a_secret_in_the_old_layout(dir: &Path, tenant: &TenantId, id: SecretId) {
        let db = database_of_an_earlier_build(dir);
        tables::create(&db).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(HEADS)
            .unwrap()
            .insert(tenant.as_str(), tables::encode_head(&Head::EMPTY).as_slice())
            .unwrap();
        txn.open_table(SECRETS)
            .unwrap()
            .insert((tenant.as_str(), u128::from_be_bytes(id.0)), [7u8; 32].as_slice())
            .unwrap();
        txn.commit().unwrap();
    }

    fn record(at: i64) -> crate::record::NewRecord {
        crate::record::NewRecord {
            recorded_at: crate::types::Timestamp(at),
            event_id: crate::types::EventId(uuid::Uuid::from_u128(at as u128)),
            version: crate::types::SchemaVersion(1),
            payload: at.to_le_bytes().to_vec(),
        }
    }

    async fn append_one(store: &RedbStore, tenant: &TenantId) -> Head {
        let head = store.head(tenant).await.unwrap();
        let at = head.seq.0 as i64 + 1;
        store
            .append(AppendBatch {
                tenant: tenant.clone(),
                first_seq: head.seq.next(),
                records: vec![record(at)],
                secrets: Vec::new(),
            })
            .await
            .unwrap()
            .head
    }

    /// (journal entries, log chunks) in the database as committed.
    fn table_lens(dir: &Path) -> (u64, u64) {
        use redb::ReadableTableMetadata;
        let db = Database::open(dir.join(DATABASE_FILE)).unwrap();
        let txn = db.begin_read().unwrap();
        (
            txn.open_table(JOURNAL).unwrap().len().unwrap(),
            txn.open_table(LOG).unwrap().len().unwrap(),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commits_wait_in_the_journal_across_a_restart_then_move_into_one_log_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let acme = TenantId::new("acme").unwrap();
        {
            let store = RedbStore::open(dir.path()).unwrap();
            store.ensure_tenant(&acme).await.unwrap();
            for _ in 1..journal::COMMITS_MAX {
                append_one(&store, &acme).await;
            }
        }
        assert_eq!(table_lens(dir.path()), (journal::COMMITS_MAX - 1, 0));
        // The reopened store counts the journal's commits: the next one moves them all.
        let store = RedbStore::open(dir.path()).unwrap();
        assert_eq!(
            store.read(&acme, Seq(1), 1_000).await.unwrap().len() as u64,
            journal::COMMITS_MAX - 1
        );
        let head = append_one(&store, &acme).await;
        drop(store);
        assert_eq!(table_lens(dir.path()), (0, 1), "one merged chunk, an empty journal");
        let store = RedbStore::open(dir.path()).unwrap();
        let records = store.read(&acme, Seq(1), 1_000).await.unwrap();
        assert_eq!(records.len() as u64, journal::COMMITS_MAX);
        assert_eq!(records.last().unwrap().chain, head.chain);
        assert_eq!(crate::verify::verify_log(&store, &acme).await.unwrap(), head);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(6))]

        /// Whatever the appends (tenant, batch size, payload sizes), reading any tenant from any
        /// seq with any limit gives exactly the records appended, wherever they are: in log
        /// chunks, in the journal, or both, with the journal moved zero or more times and
        /// the store reopened in between.
        #[test]
        fn reads_match_what_was_appended_across_journal_moves(
            appends in proptest::collection::vec(
                (0..3usize, proptest::collection::vec(0..20_000usize, 1..5)),
                60..160,
            ),
            reopen_after in 0..160usize,
            reads in proptest::collection::vec((0..3usize, 0..700u64, 1..300usize), 40),
        ) {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
            runtime.block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let names = ["a", "b", "c"].map(|name| TenantId::new(name).unwrap());
                let mut appended: [Vec<Vec<u8>>; 3] = Default::default();
                let mut store = RedbStore::open(dir.path()).unwrap();
                for name in &names {
                    store.ensure_tenant(name).await.unwrap();
                }
                for (index, (tenant, sizes)) in appends.iter().enumerate() {
                    if index == reopen_after {
                        drop(store);
                        store = RedbStore::open(dir.path()).unwrap();
                    }
                    let head = store.head(&names[*tenant]).await.unwrap();
                    let payloads: Vec<Vec<u8>> =
                        sizes.iter().map(|&len| vec![(appended[*tenant].len() % 251) as u8; len]).collect();
                    let records = payloads
                        .iter()
                        .map(|payload| crate::record::NewRecord {
                            payload: payload.clone(),
                            ..record(head.seq.0 as i64 + 1)
                        })
                        .collect();
                    store
                        .append(AppendBatch {
                            tenant: names[*tenant].clone(),
                            first_seq: head.seq.next(),
                            records,
                            secrets: Vec::new(),
                        })
                        .await
                        .unwrap();
                    appended[*tenant].extend(payloads);
                }
                for (tenant, from, limit) in reads {
                    let expected = &appended[tenant];
                    let from = from.max(1);
                    let got = store.read(&names[tenant], Seq(from), limit).await.unwrap();
                    let start = (from as usize - 1).min(expected.len());
                    let wanted = &expected[start..expected.len().min(start + limit)];
                    assert_eq!(got.len(), wanted.len(), "tenant {tenant} from {from} limit {limit}");
                    for (offset, (record, payload)) in got.iter().zip(wanted).enumerate() {
                        assert_eq!(record.seq, Seq(from + offset as u64));
                        assert_eq!(&record.payload, payload);
                    }
                }
                for name in &names {
                    let head = store.head(name).await.unwrap();
                    assert_eq!(crate::verify::verify_log(&store, name).await.unwrap(), head);
                }
            });
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_log_written_before_the_journal_reads_on_into_it() {
        let dir = tempfile::tempdir().unwrap();
        let acme = TenantId::new("acme").unwrap();
        // Three records filed straight into `log`, as builds before the journal wrote them.
        {
            let db = database_of_an_earlier_build(dir.path());
            tables::create(&db).unwrap();
            let batch = AppendBatch {
                tenant: acme.clone(),
                first_seq: Seq(1),
                records: (1..=3).map(record).collect(),
                secrets: Vec::new(),
            };
            let records = crate::store::prepare_append(&Head::EMPTY, &batch).unwrap();
            let mut chunk = Vec::new();
            records.iter().for_each(|r| r.encode_into(&mut chunk));
            let txn = db.begin_write().unwrap();
            txn.open_table(LOG)
                .unwrap()
                .insert(("acme", 1), chunk.as_slice())
                .unwrap();
            let head = crate::store::head_after(&records).unwrap();
            txn.open_table(HEADS)
                .unwrap()
                .insert("acme", tables::encode_head(&head).as_slice())
                .unwrap();
            txn.commit().unwrap();
        }
        let store = RedbStore::open(dir.path()).unwrap();
        append_one(&store, &acme).await;
        let head = append_one(&store, &acme).await;
        let seqs = |records: Vec<Record>| records.iter().map(|r| r.seq.0).collect::<Vec<_>>();
        assert_eq!(seqs(store.read(&acme, Seq(1), 100).await.unwrap()), vec![1, 2, 3, 4, 5]);
        assert_eq!(seqs(store.read(&acme, Seq(3), 2).await.unwrap()), vec![3, 4]);
        assert_eq!(seqs(store.read(&acme, Seq(5), 9).await.unwrap()), vec![5]);
        assert_eq!(crate::verify::verify_log(&store, &acme).await.unwrap(), head);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn secrets_stored_one_per_row_by_earlier_builds_are_read_and_destroyed() {
        let dir = tempfile::tempdir().unwrap();
        let acme = TenantId::new("acme").unwrap();
        let (old, new) = (SecretId([1; 16]), SecretId([2; 16]));
        database_with_a_secret_in_the_old_layout(dir.path(), &acme, old);
        let store = RedbStore::open(dir.path()).unwrap();
        store
            .append(AppendBatch {
                tenant: acme.clone(),
                first_seq: Seq(1),
                records: vec![crate::record::NewRecord {
                    payload: b"sealed".to_vec(),
                    ..record(1)
                }],
                secrets: vec![NewSecret {
                    id: new,
                    material: vec![8; 32],
                }],
            })
            .await
            .unwrap();
        let mut secrets = store.secrets(&acme).await.unwrap();
        secrets.sort();
        assert_eq!(secrets, vec![(old, vec![7; 32]), (new, vec![8; 32])]);
        assert!(store.destroy_secret(&acme, old).await.unwrap());
        assert!(!store.destroy_secret(&acme, old).await.unwrap());
        assert_eq!(store.secrets(&acme).await.unwrap(), vec![(new, vec![8; 32])]);
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|window| window == needle)
    }

    /// Hardening issue, must-fix 3: destroying a secret rewrote the row that held it, but redb
    /// only freed the page the row was on, and the key's bytes stayed in the database file,
    /// for anyone who can read the file to recover.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_destroyed_secret_is_gone_from_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let acme = TenantId::new("acme").unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        let destroyed = log_with_a_secret_then_records(&store, &acme).await;
        let kept = NewSecret {
            id: SecretId([2; 16]),
            material: (0..32u8).map(|i| 0x5c ^ i.wrapping_mul(11)).collect(),
        };
        store
            .append(AppendBatch {
                tenant: acme.clone(),
                first_seq: Seq(201),
                records: vec![record(201)],
                secrets: vec![kept.clone()],
            })
            .await
            .unwrap();
        let file = dir.path().join(DATABASE_FILE);
        assert!(contains(&std::fs::read(&file).unwrap(), &destroyed.material), "stored");

        assert!(store.destroy_secret(&acme, destroyed.id).await.unwrap());
        let head = store.head(&acme).await.unwrap();
        drop(store);
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !contains(&bytes, &destroyed.material),
            "the destroyed key is in the file"
        );
        assert!(contains(&bytes, &kept.material));

        let store = RedbStore::open(dir.path()).unwrap();
        assert_eq!(
            store.secrets(&acme).await.unwrap(),
            vec![(kept.id, kept.material.clone())]
        );
        assert_eq!(crate::verify::verify_log(&store, &acme).await.unwrap(), head);
    }

    /// While the store stays open, the file is scrubbed once the scrub interval after the first
    /// destroyed secret is over (here at once), and reads and writes go on after it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_open_store_scrubs_its_file_after_a_secret_is_destroyed() {
        let dir = tempfile::tempdir().unwrap();
        let acme = TenantId::new("acme").unwrap();
        let store = RedbStore::open_with(dir.path(), Box::new(open_database), Duration::ZERO).unwrap();
        store.ensure_tenant(&acme).await.unwrap();
        let destroyed = NewSecret {
            id: SecretId([1; 16]),
            material: (0..32u8).map(|i| 0x3c ^ i.wrapping_mul(29)).collect(),
        };
        store
            .append(AppendBatch {
                tenant: acme.clone(),
                first_seq: Seq(1),
                records: vec![record(1)],
                secrets: vec![destroyed.clone()],
            })
            .await
            .unwrap();
        for _ in 0..50 {
            append_one(&store, &acme).await;
        }
        store
            .put_meta("leases", "acme/okta", None, b"kept".to_vec())
            .await
            .unwrap();
        assert!(store.destroy_secret(&acme, destroyed.id).await.unwrap());
        let file = dir.path().join(DATABASE_FILE);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while contains(&std::fs::read(&file).unwrap(), &destroyed.material) {
            assert!(std::time::Instant::now() < deadline, "not scrubbed within 30 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!dir.path().join(scrub::SCRUB_FILE).exists());
        let head = append_one(&store, &acme).await;
        assert_eq!(store.read(&acme, Seq(1), 100).await.unwrap().len(), 52);
        assert_eq!(crate::verify::verify_log(&store, &acme).await.unwrap(), head);
        assert!(store.secrets(&acme).await.unwrap().is_empty());
        // Metadata is copied into the scrubbed file, and is there after a reopen.
        let kept = |entry: Option<crate::meta::MetaEntry>| entry.map(|entry| (entry.version, entry.value));
        assert_eq!(
            kept(store.get_meta("leases", "acme/okta").await.unwrap()),
            Some((1, b"kept".to_vec()))
        );
        drop(store);
        let store = RedbStore::open(dir.path()).unwrap();
        assert_eq!(
            kept(store.get_meta("leases", "acme/okta").await.unwrap()),
            Some((1, b"kept".to_vec()))
        );
    }

    /// `acme`'s log with one secret, stored before 200 records of 4 KiB, so that the page the
    /// secret is on is not at the end of the file; returns the secret.
    async fn log_with_a_secret_then_records(store: &RedbStore, acme: &TenantId) -> NewSecret {
        let secret = NewSecret {
            id: SecretId([1; 16]),
            material: (0..32u8).map(|i| 0xa0 ^ i.wrapping_mul(37)).collect(),
        };
        store.ensure_tenant(acme).await.unwrap();
        for seq in 1..=200u64 {
            store
                .append(AppendBatch {
                    tenant: acme.clone(),
                    first_seq: Seq(seq),
                    records: vec![crate::record::NewRecord {
                        payload: vec![seq as u8; 4096],
                        ..record(seq as i64)
                    }],
                    secrets: if seq == 1 { vec![secret.clone()] } else { Vec::new() },
                })
                .await
                .unwrap();
        }
        secret
    }

    /// A scrub that a crash prevented (the secret destroyed, the file not yet rewritten) runs
    /// when the store opens again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_scrub_a_crash_prevented_runs_at_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let acme = TenantId::new("acme").unwrap();
        let secret = log_with_a_secret_then_records(&RedbStore::open(dir.path()).unwrap(), &acme).await;
        let file = dir.path().join(DATABASE_FILE);
        // The destroy committed, its scrub marked due, and then the crash.
        scrub::mark_due(&file).unwrap();
        {
            let db = Database::open(&file).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(SECRET_ROWS).unwrap().remove(("acme", 1, 0)).unwrap();
            txn.commit().unwrap();
        }
        assert!(
            contains(&std::fs::read(&file).unwrap(), &secret.material),
            "in a free page"
        );

        let store = RedbStore::open(dir.path()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        // The scrub renames the clean file in place, then clears its mark: wait for both.
        while contains(&std::fs::read(&file).unwrap(), &secret.material) || scrub::is_due(&file) {
            assert!(std::time::Instant::now() < deadline, "not scrubbed within 30 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(store.secrets(&acme).await.unwrap().is_empty());
        assert_eq!(store.read(&acme, Seq(1), 1_000).await.unwrap().len(), 200);
    }
}
