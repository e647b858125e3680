//! [`PostgresStore`]: the log in PostgreSQL, for deployments where the log must outlive one
//! machine, or several idpsync processes share it.
//!
//! Tables (in the store's schema, `idpsync` unless the URL says `schema=`; see
//! `migrations/` and `storage/DESIGN.md`):
//!
//! ```text
//! heads           (tenant) → seq, recorded_at, chain      a tenant exists when it has a head
//! records         (tenant, seq) → recorded_at, event_id, version, payload, chain
//! secrets         (tenant, id) → material
//! snapshots       (tenant, seq) → state_hash, len
//! snapshot_parts  (tenant, seq, part) → bytes              1 MiB to a part
//! meta            (namespace, key) → version, value        metadata (compare-and-set)
//! schema_migrations (version)
//! ```
//!
//! Appends go through one committer task (group commit, `committer`); everything else runs on
//! a connection from the pool (deadpool), except write turns, which hold connections of their
//! own (`turns`). Every operation is bounded in time; an unreachable
//! or read-only database makes the store unavailable until it is back (`health`).

mod committer;
mod health;
mod meta;
mod notices;
mod rows;
mod schema;
mod settings;
mod snapshots;
mod statements;
mod tls;
mod turns;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::sync::{mpsc, oneshot};

use crate::error::StoreError;
use crate::meta::{MetaEntry, check_name, check_namespace, check_value};
use crate::record::Record;
use crate::store::{
    AppendBatch, Appended, Head, HeadNotice, LogStore, SecretId, SnapshotInfo, SnapshotReader, StoreHealth,
    StoredSnapshot, WriteTurn,
};
use crate::types::{Hash32, Seq, TenantId};

use health::{Failure, Health};
use rows::{bound_seq, head_from, record_from};
use statements::Statements;

pub use schema::{SCHEMA_VERSION, SchemaError};
pub use settings::{DEFAULT_SCHEMA, InvalidPostgresUrl, PostgresSettings, TlsMode, redact};
pub use tls::TlsSetupError;

/// Connections the pool keeps at most: the committer's, and readers'.
const POOL_SIZE_MAX: usize = 16;
/// Head notices kept for a follower that is behind; one further behind is told it lagged, and
/// reads every head.
const NOTICES_BUFFERED: usize = 4096;
/// The longest any operation may take before the database counts as unavailable.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// A [`LogStore`] in a PostgreSQL database.
pub struct PostgresStore {
    shared: Arc<Shared>,
    jobs: mpsc::UnboundedSender<committer::Job>,
    /// Set for a store in a schema of its own that goes with it.
    scratch: bool,
    /// Heads moved by any process, once someone follows them (`head_notices`).
    notices: tokio::sync::broadcast::Sender<HeadNotice>,
    /// The task listening for them, started by the first follower.
    listener: std::sync::OnceLock<tokio::task::AbortHandle>,
}

/// What the store's operations and its committer share.
struct Shared {
    pool: Pool,
    /// Connections that hold write turns (`turns`), apart from `pool`.
    turns: Pool,
    sql: Statements,
    health: Health,
    settings: PostgresSettings,
}

impl PostgresStore {
    /// Connects to the database `settings` name, creates or migrates the store's tables, and
    /// starts the committer. A database that cannot be reached, refuses the credentials, or
    /// was migrated by a newer build is [`StoreError::CannotOpen`], naming the (redacted) URL.
    pub async fn open(settings: PostgresSettings) -> Result<PostgresStore, StoreError> {
        let refuse = |reason: String| StoreError::CannotOpen {
            store: format!("the PostgreSQL database at {}", settings.redacted_url()),
            reason,
        };
        let tls = tls::connector(&settings).map_err(|e| refuse(e.to_string()))?;
        let pool = |size: usize| {
            let manager = Manager::from_config(
                settings.config.clone(),
                tls.clone(),
                ManagerConfig {
                    // A connection is checked with a round trip before it is handed out: after
                    // the database restarts or the network drops, dead connections are
                    // replaced, not tried.
                    recycling_method: RecyclingMethod::Verified,
                },
            );
            Pool::builder(manager)
                .max_size(size)
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(OPERATION_TIMEOUT))
                .create_timeout(Some(settings::CONNECT_TIMEOUT))
                .recycle_timeout(Some(settings::CONNECT_TIMEOUT))
                .build()
                .map_err(|e| refuse(e.to_string()))
        };
        let turns = pool(turns::TURN_POOL_SIZE)?;
        let pool = pool(POOL_SIZE_MAX)?;
        let mut client = pool.get().await.map_err(|e| refuse(connect_reason(e)))?;
        schema::migrate(&mut client, &settings.schema)
            .await
            .map_err(|e| refuse(with_causes(&e)))?;
        drop(client);
        let shared = Arc::new(Shared {
            pool,
            turns,
            sql: Statements::new(&settings.schema),
            health: Health::new(),
            settings,
        });
        let (jobs, receiver) = mpsc::unbounded_channel();
        tokio::spawn(committer::run(Arc::clone(&shared), receiver));
        Ok(PostgresStore {
            shared,
            jobs,
            scratch: false,
            notices: tokio::sync::broadcast::channel(NOTICES_BUFFERED).0,
            listener: std::sync::OnceLock::new(),
        })
    }

    /// Opens a store in a new schema of its own, named after `prefix` and made unique, that is
    /// dropped with everything in it when the store is dropped: for tests and benchmarks that
    /// share one database.
    pub async fn open_scratch(settings: PostgresSettings, prefix: &str) -> Result<PostgresStore, StoreError> {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let unique = format!(
            "{prefix}_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            crate::types::Timestamp::now().0
        );
        let settings = settings
            .with_schema(&unique)
            .map_err(|e| StoreError::backend("naming a scratch schema", e))?;
        let mut store = PostgresStore::open(settings).await?;
        store.scratch = true;
        Ok(store)
    }

    /// The settings the store was opened with.
    pub fn settings(&self) -> &PostgresSettings {
        &self.shared.settings
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        if let Some(listener) = self.listener.get() {
            listener.abort();
        }
        if !self.scratch {
            return;
        }
        // The schema goes on a connection of its own, on a thread of its own: a drop cannot
        // wait for the store's runtime.
        let settings = self.shared.settings.clone();
        let dropped = std::thread::spawn(move || drop_schema(&settings)).join();
        if !matches!(dropped, Ok(Ok(()))) {
            tracing::warn!(schema = %self.shared.settings.schema, "could not drop a scratch schema");
        }
    }
}

/// Drops the schema `settings` name, with its tables.
fn drop_schema(settings: &PostgresSettings) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let tls = tls::connector(settings).map_err(|e| e.to_string())?;
        let (client, connection) = settings.config.connect(tls).await.map_err(|e| e.to_string())?;
        let driver = tokio::spawn(connection);
        let dropped = client
            .batch_execute(&format!(
                "SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {} CASCADE",
                statements::quoted(&settings.schema)
            ))
            .await
            .map_err(|e| e.to_string());
        drop(client);
        let _ = driver.await;
        dropped
    })
}

/// What a failed first connection says, for an error that names the setting.
fn connect_reason(error: deadpool_postgres::PoolError) -> String {
    match error {
        deadpool_postgres::PoolError::Backend(error) => match error.as_db_error() {
            Some(database) => database.message().to_owned(),
            None => with_causes(&error),
        },
        deadpool_postgres::PoolError::Timeout(_) => {
            format!("no connection within {} s", settings::CONNECT_TIMEOUT.as_secs())
        }
        other => other.to_string(),
    }
}

/// An error and its causes, on one line: tokio-postgres says "error connecting to server" and
/// keeps what happened (connection refused, a certificate not trusted) in its source.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(each) = cause {
        line.push_str(": ");
        line.push_str(&each.to_string());
        cause = each.source();
    }
    line
}

impl Shared {
    /// Runs `work`, bounded by [`OPERATION_TIMEOUT`]; an outage it meets makes the store
    /// unavailable.
    async fn run<T>(&self, work: impl Future<Output = Result<T, Failure>>) -> Result<T, StoreError> {
        let outcome = match tokio::time::timeout(OPERATION_TIMEOUT, work).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Failure::Outage(format!(
                "PostgreSQL did not answer within {} s",
                OPERATION_TIMEOUT.as_secs()
            ))),
        };
        match outcome {
            Ok(value) => Ok(value),
            Err(Failure::Store(error)) => Err(error),
            Err(Failure::Outage(reason)) => Err(self.health.failed(reason)),
        }
    }

    /// [`Shared::run`] for a write: refused at once during an outage's pause; once it goes
    /// through, the outage is over.
    async fn write<T>(&self, work: impl Future<Output = Result<T, Failure>>) -> Result<T, StoreError> {
        if let Some(refusal) = self.health.refuse_now() {
            return Err(refusal);
        }
        let value = self.run(work).await?;
        self.health.recovered();
        Ok(value)
    }

    /// Asks the database whether it takes writes; ends an outage if it does.
    async fn check_writable(&self) -> Result<(), StoreError> {
        self.write(async {
            let client = self.pool.get().await?;
            let writable: bool = client.query_one(&self.sql.writable, &[]).await?.get(0);
            if writable {
                Ok(())
            } else {
                Err(Failure::Outage("PostgreSQL: the database is read-only".to_owned()))
            }
        })
        .await
    }

    /// The head of `tenant`, or [`StoreError::UnknownTenant`].
    async fn require_tenant(&self, client: &deadpool_postgres::Client, tenant: &TenantId) -> Result<Head, Failure> {
        let statement = client.prepare_cached(&self.sql.head).await?;
        let row = client
            .query_opt(&statement, &[&tenant.as_str()])
            .await?
            .ok_or_else(|| StoreError::UnknownTenant(tenant.clone()))?;
        Ok(head_from(tenant, row.get(0), row.get(1), row.get(2))?)
    }
}

#[async_trait]
impl LogStore for PostgresStore {
    async fn ensure_tenant(&self, tenant: &TenantId) -> Result<Head, StoreError> {
        let shared = &*self.shared;
        shared
            .write(async {
                let client = shared.pool.get().await?;
                let statement = client.prepare_cached(&shared.sql.ensure_tenant).await?;
                client
                    .execute(
                        &statement,
                        &[&tenant.as_str(), &Head::EMPTY.recorded_at.0, &Hash32::ZERO.0.as_slice()],
                    )
                    .await?;
                shared.require_tenant(&client, tenant).await
            })
            .await
    }

    async fn tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        let shared = &*self.shared;
        shared
            .run(async {
                let client = shared.pool.get().await?;
                let statement = client.prepare_cached(&shared.sql.tenants).await?;
                let mut tenants = Vec::new();
                for row in client.query(&statement, &[]).await? {
                    let name: &str = row.get(0);
                    tenants.push(TenantId::new(name).map_err(|e| StoreError::Corrupt {
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
        let shared = &*self.shared;
        shared
            .run(async {
                let client = shared.pool.get().await?;
                shared.require_tenant(&client, tenant).await
            })
            .await
    }

    /// Appends through the committer: when this returns `Ok`, the transaction holding the
    /// batch has committed, and with `synchronous_commit` on (PostgreSQL's default, which the
    /// store expects) its WAL is flushed on the server.
    async fn append(&self, batch: AppendBatch) -> Result<Appended, StoreError> {
        if let Some(refusal) = self.shared.health.refuse_now() {
            return Err(refusal);
        }
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(committer::Job { batch, reply })
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn read(&self, tenant: &TenantId, from: Seq, limit: usize) -> Result<Vec<Record>, StoreError> {
        let shared = &*self.shared;
        let from = Seq(from.0.max(1));
        shared
            .run(async {
                let client = shared.pool.get().await?;
                let statement = client.prepare_cached(&shared.sql.read).await?;
                let limit = i64::try_from(limit).unwrap_or(i64::MAX);
                let rows = client
                    .query(&statement, &[&tenant.as_str(), &bound_seq(from), &limit])
                    .await?;
                if rows.is_empty() {
                    shared.require_tenant(&client, tenant).await?;
                    return Ok(Vec::new());
                }
                let mut records = Vec::with_capacity(rows.len());
                for (expected, row) in (from.0..).map(Seq).zip(&rows) {
                    let record = record_from(tenant, row)?;
                    if record.seq != expected {
                        return Err(StoreError::Corrupt {
                            tenant: tenant.clone(),
                            seq: expected,
                            reason: "record missing (gap in the log)".to_owned(),
                        }
                        .into());
                    }
                    records.push(record);
                }
                Ok(records)
            })
            .await
    }

    async fn put_snapshot(&self, tenant: &TenantId, snapshot: StoredSnapshot) -> Result<(), StoreError> {
        let shared = &*self.shared;
        shared.write(snapshots::put(shared, tenant, &snapshot)).await
    }

    async fn snapshot_at_or_before(&self, tenant: &TenantId, seq: Seq) -> Result<Option<StoredSnapshot>, StoreError> {
        let shared = &*self.shared;
        shared.run(snapshots::latest(shared, tenant, seq)).await
    }

    async fn open_snapshot_at_or_before(
        &self,
        tenant: &TenantId,
        seq: Seq,
    ) -> Result<Option<SnapshotReader>, StoreError> {
        self.shared.run(snapshots::open(&self.shared, tenant, seq)).await
    }

    async fn snapshots(&self, tenant: &TenantId) -> Result<Vec<SnapshotInfo>, StoreError> {
        let shared = &*self.shared;
        shared.run(snapshots::list(shared, tenant)).await
    }

    async fn remove_snapshot(&self, tenant: &TenantId, seq: Seq) -> Result<bool, StoreError> {
        let shared = &*self.shared;
        shared.write(snapshots::remove(shared, tenant, seq)).await
    }

    async fn secrets(&self, tenant: &TenantId) -> Result<Vec<(SecretId, Vec<u8>)>, StoreError> {
        let shared = &*self.shared;
        shared
            .run(async {
                let client = shared.pool.get().await?;
                shared.require_tenant(&client, tenant).await?;
                let statement = client.prepare_cached(&shared.sql.secrets).await?;
                let mut secrets = Vec::new();
                for row in client.query(&statement, &[&tenant.as_str()]).await? {
                    let id: &[u8] = row.get(0);
                    let id = <[u8; 16]>::try_from(id).map_err(|_| StoreError::Corrupt {
                        tenant: tenant.clone(),
                        seq: Seq::ZERO,
                        reason: format!("a secret id of {} bytes", id.len()),
                    })?;
                    secrets.push((SecretId(id), row.get(1)));
                }
                Ok(secrets)
            })
            .await
    }

    /// Deletes the secret's row; durable when this returns. PostgreSQL keeps a deleted row's
    /// bytes in the table file until `VACUUM` reclaims it, and in the WAL and its archives
    /// until they are recycled (see `storage/DESIGN.md`).
    async fn destroy_secret(&self, tenant: &TenantId, id: SecretId) -> Result<bool, StoreError> {
        let shared = &*self.shared;
        shared
            .write(async {
                let client = shared.pool.get().await?;
                shared.require_tenant(&client, tenant).await?;
                let statement = client.prepare_cached(&shared.sql.destroy_secret).await?;
                let deleted = client
                    .execute(&statement, &[&tenant.as_str(), &id.0.as_slice()])
                    .await?;
                Ok(deleted > 0)
            })
            .await
    }

    async fn get_meta(&self, namespace: &str, key: &str) -> Result<Option<MetaEntry>, StoreError> {
        check_name(namespace, key)?;
        self.shared.run(meta::get(&self.shared, namespace, key)).await
    }

    async fn put_meta(
        &self,
        namespace: &str,
        key: &str,
        expected: Option<u64>,
        value: Vec<u8>,
    ) -> Result<u64, StoreError> {
        check_name(namespace, key)?;
        check_value(&value)?;
        self.shared
            .write(meta::put(&self.shared, namespace, key, expected, &value))
            .await
    }

    async fn list_meta(&self, namespace: &str) -> Result<Vec<MetaEntry>, StoreError> {
        check_namespace(namespace)?;
        self.shared.run(meta::list(&self.shared, namespace)).await
    }

    async fn delete_meta(&self, namespace: &str, key: &str, expected: u64) -> Result<(), StoreError> {
        check_name(namespace, key)?;
        self.shared
            .write(meta::delete(&self.shared, namespace, key, expected))
            .await
    }

    /// Every process that opens the same schema writes the same logs.
    fn is_shared(&self) -> bool {
        true
    }

    /// Notifications of the `heads` trigger, heard on a connection of its own that the first
    /// call opens (see `notices`).
    fn head_notices(&self) -> Option<tokio::sync::broadcast::Receiver<HeadNotice>> {
        let receiver = self.notices.subscribe();
        self.listener.get_or_init(|| {
            tokio::spawn(notices::listen(self.shared.settings.clone(), self.notices.clone())).abort_handle()
        });
        Some(receiver)
    }

    fn health(&self) -> StoreHealth {
        self.shared.health.report()
    }

    /// A session advisory lock of the tenant, on a connection of its own (see `turns`).
    async fn write_turn(&self, tenant: &TenantId) -> Result<Option<Box<dyn WriteTurn>>, StoreError> {
        let turn = turns::take(&self.shared.turns, &self.shared.settings, tenant).await?;
        Ok(Some(Box::new(turn)))
    }
}
