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

/// Runs until every sender is dropped.
pub(super) async fn run(shared: Arc<Shared>, mut jobs: mpsc::UnboundedReceiver<Job>) {
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
        match shared.write(commit_group(&shared, &batches)).await {
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
/// all of them unwritten.
async fn commit_group(shared: &Shared, group: &[&AppendBatch]) -> Result<Vec<Result<Appended, StoreError>>, Failure> {
    let mut client = shared.pool.get().await?;
    let sql = &shared.sql;
    let txn = client.transaction().await?;
    let by_name: BTreeMap<&str, &TenantId> = group
        .iter()
        .map(|batch| (batch.tenant.as_str(), &batch.tenant))
        .collect();
    let names: Vec<&str> = by_name.keys().copied().collect();
    let mut heads: HashMap<&TenantId, Head> = HashMap::with_capacity(names.len());
    let lock = txn.prepare_cached(&sql.lock_heads).await?;
    for row in txn.query(&lock, &[&names]).await? {
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
        txn.rollback().await?;
        return Ok(answers);
    }
    let insert = txn.prepare_cached(&sql.insert_records).await?;
    txn.execute(
        &insert,
        &[
            &columns.tenants,
            &columns.seqs,
            &columns.times,
            &columns.event_ids,
            &columns.versions,
            &columns.payloads,
            &columns.chains,
        ],
    )
    .await?;
    if !secrets.is_empty() {
        let tenants: Vec<&str> = secrets.keys().map(|(tenant, _)| *tenant).collect();
        let ids: Vec<&[u8]> = secrets.keys().map(|(_, id)| id.as_slice()).collect();
        let materials: Vec<&[u8]> = secrets.values().copied().collect();
        let upsert = txn.prepare_cached(&sql.upsert_secrets).await?;
        txn.execute(&upsert, &[&tenants, &ids, &materials]).await?;
    }
    let tenants: Vec<&str> = moved.keys().map(|tenant| tenant.as_str()).collect();
    let mut seqs = Vec::with_capacity(moved.len());
    for (tenant, head) in &moved {
        seqs.push(db_seq(tenant, head.seq)?);
    }
    let times: Vec<i64> = moved.values().map(|head| head.recorded_at.0).collect();
    let chains: Vec<&[u8]> = moved.values().map(|head| head.chain.0.as_slice()).collect();
    let update = txn.prepare_cached(&sql.update_heads).await?;
    txn.execute(&update, &[&tenants, &seqs, &times, &chains]).await?;
    txn.commit().await?;
    Ok(answers)
}
