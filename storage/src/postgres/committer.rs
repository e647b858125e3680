//! The committer task: group commit on PostgreSQL.
//!
//! Every append goes through one channel to this task. It takes the first waiting append, then
//! every append already queued (up to a bound), and writes them all in one transaction:
//!
//! 1. lock the heads of the tenants in the group (`SELECT … FOR UPDATE`, in name order);
//! 2. check each append against its tenant's head, as the previous appends of the group left
//!    it (`store::prepare_append`): an append that fails gets its error and contributes
//!    nothing;
//! 3. insert every record of the group in one statement, the secrets in another, and move the
//!    heads in a third;
//! 4. commit, with `synchronous_commit` as the server has it (on by default: the commit returns
//!    once its WAL is flushed);
//! 5. only then answer every append of the group.
//!
//! The heads are read in the transaction, under their row locks, never from a cache: another
//! process writing to the same database (a second replica, `idpsync log copy`) is seen, and a
//! writer that decided on an old head gets [`StoreError::SeqConflict`]. The primary key
//! `(tenant, seq)` of `records` backs this: even a writer that skipped the lock could not store
//! a second record at a taken position; its whole transaction would fail.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::error::StoreError;
use crate::store::{AppendBatch, Appended, Head, head_after, prepare_append};
use crate::types::TenantId;

use super::Shared;
use super::health::Failure;
use super::rows::{db_seq, head_from};

/// The most appends one transaction takes, bounding the wait of the first.
const JOBS_PER_COMMIT_MAX: usize = 4096;
/// The most payload bytes one transaction takes.
const BYTES_PER_COMMIT_MAX: usize = 64 * 1024 * 1024;
/// How often an idle committer in an outage checks whether the database takes writes again.
const IDLE_CHECK_EVERY: Duration = Duration::from_millis(250);

/// An append for the committer, and where to send its answer.
pub(super) struct Job {
    pub(super) batch: AppendBatch,
    pub(super) reply: oneshot::Sender<Result<Appended, StoreError>>,
}

impl Job {
    fn payload_len(&self) -> usize {
        self.batch.records.iter().map(|record| record.payload.len()).sum()
    }
}

/// The committer's own connection, kept from one group to the next. A connection whose group
/// failed, or whose group was cut short by a timeout, may be inside a transaction: it never
/// goes back to the pool, it is closed (and the server rolls its transaction back).
struct Dedicated(Option<deadpool_postgres::Client>);

impl Dedicated {
    /// Gives the connection back to the committer: its group went through.
    fn keep(mut self) -> Option<deadpool_postgres::Client> {
        self.0.take()
    }
}

impl Drop for Dedicated {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

/// Runs until every sender is dropped.
pub(super) async fn run(shared: Arc<Shared>, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let mut connection: Option<deadpool_postgres::Client> = None;
    loop {
        let first = match tokio::time::timeout(IDLE_CHECK_EVERY, jobs.recv()).await {
            Ok(Some(job)) => job,
            Ok(None) => return,
            Err(_) => {
                // An outage ends on its own when the database is back, writes or not, so that
                // health reports it.
                if shared.health.due_for_check() {
                    let _ = shared.check_writable().await;
                }
                continue;
            }
        };
        let mut bytes = first.payload_len();
        let mut group = vec![first];
        while group.len() < JOBS_PER_COMMIT_MAX && bytes < BYTES_PER_COMMIT_MAX {
            match jobs.try_recv() {
                Ok(job) => {
                    bytes += job.payload_len();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        if let Some(refusal) = shared.health.refuse_now() {
            answer_all(group, &refusal);
            continue;
        }
        let batches: Vec<&AppendBatch> = group.iter().map(|job| &job.batch).collect();
        let committed = shared
            .write(async {
                let client = match connection.take() {
                    Some(client) => client,
                    None => shared.pool.get().await?,
                };
                let client = Dedicated(Some(client));
                let answers = commit_group(client.0.as_ref().expect("just set"), &shared, &batches).await?;
                connection = client.keep();
                Ok(answers)
            })
            .await;
        match committed {
            Ok(answers) => {
                for (job, answer) in group.into_iter().zip(answers) {
                    let _ = job.reply.send(answer);
                }
            }
            Err(error) => answer_all(group, &error),
        }
    }
}

/// Gives every job of a group that was not committed the same error.
fn answer_all(group: Vec<Job>, error: &StoreError) {
    for job in group {
        let _ = job.reply.send(Err(copy_of(error)));
    }
}

/// The same error again, for another append of a failed group.
fn copy_of(error: &StoreError) -> StoreError {
    match error {
        StoreError::Unavailable { reason, retry_after } => StoreError::Unavailable {
            reason: reason.clone(),
            retry_after: *retry_after,
        },
        other => StoreError::Backend {
            context: "committing a group of appends",
            source: other.to_string().into(),
        },
    }
}

/// The columns of the records to insert, one array per column.
#[derive(Default)]
struct RecordColumns<'a> {
    tenants: Vec<&'a str>,
    seqs: Vec<i64>,
    times: Vec<i64>,
    event_ids: Vec<uuid::Uuid>,
    versions: Vec<i32>,
    payloads: Vec<&'a [u8]>,
    chains: Vec<Vec<u8>>,
}

/// Writes `group` in one transaction; returns each append's answer, or the failure that left
/// all of them unwritten. Statements are pipelined: `BEGIN` with the lock of the heads, then
/// the inserts, the heads' update and `COMMIT`, so a group costs two round trips and the
/// commit's flush.
async fn commit_group(
    client: &deadpool_postgres::Client,
    shared: &Shared,
    group: &[&AppendBatch],
) -> Result<Vec<Result<Appended, StoreError>>, Failure> {
    let sql = &shared.sql;
    let by_name: BTreeMap<&str, &TenantId> = group
        .iter()
        .map(|batch| (batch.tenant.as_str(), &batch.tenant))
        .collect();
    let names: Vec<&str> = by_name.keys().copied().collect();
    let mut heads: HashMap<&TenantId, Head> = HashMap::with_capacity(names.len());
    let lock = client.prepare_cached(&sql.lock_heads).await?;
    let insert = client.prepare_cached(&sql.insert_records).await?;
    let upsert = client.prepare_cached(&sql.upsert_secrets).await?;
    let update = client.prepare_cached(&sql.update_heads).await?;
    let (begun, locked) = tokio::join!(client.batch_execute("BEGIN"), async {
        client.query(&lock, &[&names]).await
    });
    begun?;
    for row in locked? {
        let name: &str = row.get(0);
        if let Some(tenant) = by_name.get(name) {
            heads.insert(tenant, head_from(tenant, row.get(1), row.get(2), row.get(3))?);
        }
    }
    let mut answers = Vec::with_capacity(group.len());
    let mut columns = RecordColumns::default();
    let mut secrets: BTreeMap<(&str, [u8; 16]), &[u8]> = BTreeMap::new();
    let mut moved: BTreeMap<&TenantId, Head> = BTreeMap::new();
    for batch in group {
        let name = batch.tenant.as_str();
        let Some(head) = heads.get_mut(&batch.tenant) else {
            answers.push(Err(StoreError::UnknownTenant(batch.tenant.clone())));
            continue;
        };
        let records = match prepare_append(head, batch) {
            Ok(records) => records,
            Err(error) => {
                answers.push(Err(error));
                continue;
            }
        };
        for (record, new) in records.iter().zip(&batch.records) {
            columns.tenants.push(name);
            columns.seqs.push(db_seq(&batch.tenant, record.seq)?);
            columns.times.push(record.recorded_at.0);
            columns.event_ids.push(record.event_id.0);
            columns.versions.push(i32::from(record.version.0));
            columns.payloads.push(&new.payload);
            columns.chains.push(record.chain.0.to_vec());
        }
        for secret in &batch.secrets {
            secrets.insert((name, secret.id.0), &secret.material);
        }
        // prepare_append never returns an empty batch.
        *head = head_after(&records).expect("a prepared batch is never empty");
        moved.insert(&batch.tenant, *head);
        answers.push(Ok(Appended {
            head: *head,
            chains: records.iter().map(|record| record.chain).collect(),
        }));
    }
    if moved.is_empty() {
        client.batch_execute("ROLLBACK").await?;
        return Ok(answers);
    }
    let secret_tenants: Vec<&str> = secrets.keys().map(|(tenant, _)| *tenant).collect();
    let secret_ids: Vec<&[u8]> = secrets.keys().map(|(_, id)| id.as_slice()).collect();
    let materials: Vec<&[u8]> = secrets.values().copied().collect();
    let tenants: Vec<&str> = moved.keys().map(|tenant| tenant.as_str()).collect();
    let mut seqs = Vec::with_capacity(moved.len());
    for (tenant, head) in &moved {
        seqs.push(db_seq(tenant, head.seq)?);
    }
    let times: Vec<i64> = moved.values().map(|head| head.recorded_at.0).collect();
    let chains: Vec<&[u8]> = moved.values().map(|head| head.chain.0.as_slice()).collect();
    let records = async {
        let columns: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
            &columns.tenants,
            &columns.seqs,
            &columns.times,
            &columns.event_ids,
            &columns.versions,
            &columns.payloads,
            &columns.chains,
        ];
        client.execute(&insert, &columns).await
    };
    let keys = async {
        if secret_ids.is_empty() {
            return Ok(0);
        }
        client
            .execute(&upsert, &[&secret_tenants, &secret_ids, &materials])
            .await
    };
    let heads_moved = async { client.execute(&update, &[&tenants, &seqs, &times, &chains]).await };
    // After a failed statement the server ignores the rest of the transaction and answers
    // COMMIT with a rollback: the group counts as committed only if every statement succeeded.
    let (records, keys, heads_moved, committed) =
        tokio::join!(records, keys, heads_moved, client.batch_execute("COMMIT"));
    records?;
    keys?;
    heads_moved?;
    committed?;
    Ok(answers)
}
