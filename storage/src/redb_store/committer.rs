//! The committer thread: group commit.
//!
//! Every write job goes through one channel to this thread. It takes the first job, then every
//! job already waiting (up to a bound), applies them all in one redb write transaction and
//! commits it once, with redb's default `Durability::Immediate`: the commit returns only after
//! the data and the new root are flushed to disk. Only then does it answer the jobs. So:
//!
//! - an acknowledged append is durable;
//! - a crash before the commit returns loses the whole group, none of which was acknowledged;
//! - many concurrent appends cost one flush.
//!
//! A job that fails validation (a seq conflict, a clock going back) is answered with its error
//! and leaves nothing in the transaction, without failing the other jobs of the group.
//!
//! After a secret is destroyed, the committer scrubs the database file (see `scrub`) once the
//! group is answered, and then at most once per `scrub_every` while more are destroyed; a scrub
//! still due when the store closes runs before it closes, and one a crash prevented runs at
//! the next start. A destroyed key is thus in the file for `scrub_every` at most while the
//! store runs, and not at all once it has closed.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use redb::{Database, ReadableTable};
use tokio::sync::oneshot;

use crate::error::StoreError;
use crate::record::Record;
use crate::store::{AppendBatch, Appended, Head, SecretId, head_after, prepare_append};
use crate::types::TenantId;

use super::handle::DatabaseHandle;
use super::tables::{
    HEADS, JOURNAL, SECRET_ROWS, SECRETS, SECRETS_PER_ROW, decode_head, decode_secret_row, encode_head,
    encode_new_secrets, encode_secret_row,
};
use super::{journal, scrub};

/// The most jobs one commit takes, bounding the latency of the first job in a group.
const JOBS_PER_COMMIT_MAX: usize = 4096;
/// The most payload bytes one commit takes.
const BYTES_PER_COMMIT_MAX: usize = 64 * 1024 * 1024;
/// How often an idle committer checks whether a failed database can be opened again.
const FAILED_CHECK_EVERY: std::time::Duration = std::time::Duration::from_millis(250);
/// Records of one tenant in one commit are packed into journal segments of at most this many
/// records, and about [`journal::CHUNK_BYTES_MAX`] bytes.
const CHUNK_RECORDS_MAX: usize = 512;

/// A write for the committer, and where to send its answer.
pub(super) struct Job {
    pub(super) write: Write,
    pub(super) reply: oneshot::Sender<Result<Answer, StoreError>>,
}

/// What a [`Job`] asks for.
pub(super) enum Write {
    Append(AppendBatch),
    EnsureTenant(TenantId),
    DestroySecret(TenantId, SecretId),
}

/// What a [`Job`] gets back once its group is committed.
pub(super) enum Answer {
    Appended(Appended),
    Head(Head),
    Destroyed(bool),
}

impl Job {
    fn payload_len(&self) -> usize {
        match &self.write {
            Write::Append(batch) => batch.records.iter().map(|r| r.payload.len()).sum(),
            Write::EnsureTenant(_) | Write::DestroySecret(..) => 0,
        }
    }
}

/// Runs until every sender is dropped, scrubbing the file at most once per `scrub_every` after
/// secrets are destroyed.
pub(super) fn run(database: &DatabaseHandle, jobs: &mpsc::Receiver<Job>, scrub_every: Duration) {
    // The committed heads, so that validation needs no read per append, and where the journal
    // stands. Only updated after a successful commit; after a failed one both are read again
    // from the database, as it was opened again.
    let mut heads: HashMap<TenantId, Head> = HashMap::new();
    let mut fill: Option<journal::Fill> = None;
    let mut scrubs = Scrubs {
        every: scrub_every,
        due: scrub::is_due(database.path()),
        last: None,
    };
    loop {
        let first = match jobs.recv_timeout(FAILED_CHECK_EVERY) {
            Ok(job) => job,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // A failed database is opened again when its pause is over, even without writes
                // waiting, so that reads work again too.
                let _ = database.writable();
                scrubs.run_if_due(database, &mut heads, &mut fill);
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                scrubs.every = Duration::ZERO;
                scrubs.run_if_due(database, &mut heads, &mut fill);
                return;
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
        if !scrubs.due && group.iter().any(|job| matches!(job.write, Write::DestroySecret(..))) {
            // Marked before the commit: a crash after it still scrubs at the next start.
            if let Err(error) = scrub::mark_due(database.path()) {
                tracing::warn!(%error, "a crash before the next scrub would leave destroyed keys in the file until another");
            }
        }
        match commit_when_writable(database, &mut heads, &mut fill, &group) {
            Ok(answers) => {
                scrubs.due |= answers
                    .iter()
                    .any(|answer| matches!(answer, Ok(Answer::Destroyed(true))));
                for (job, answer) in group.into_iter().zip(answers) {
                    let _ = job.reply.send(answer);
                }
                scrubs.run_if_due(database, &mut heads, &mut fill);
            }
            Err(refused) => {
                // Nothing of this group is durable.
                if let Refused::Failed(reason) = refused {
                    tracing::error!(%reason, jobs = group.len(), "log commit failed; the whole group is rejected");
                    heads.clear();
                    fill = None;
                    database.failed(&reason);
                }
                for job in group {
                    let _ = job.reply.send(Err(database.refusal()));
                }
            }
        }
    }
}

/// When the database file is next scrubbed of destroyed secrets.
struct Scrubs {
    /// The least time between two scrubs.
    every: Duration,
    /// A secret was destroyed since the last scrub.
    due: bool,
    /// When the last scrub ran.
    last: Option<Instant>,
}

impl Scrubs {
    /// Scrubs the file if a secret was destroyed since the last scrub, and that was `every`
    /// ago. A failed scrub is tried again `every` later.
    fn run_if_due(
        &mut self,
        database: &DatabaseHandle,
        heads: &mut HashMap<TenantId, Head>,
        fill: &mut Option<journal::Fill>,
    ) {
        if !self.due || self.last.is_some_and(|last| last.elapsed() < self.every) {
            return;
        }
        let started = Instant::now();
        self.last = Some(started);
        // What the committer knows of the file is read again from the scrubbed one.
        heads.clear();
        *fill = None;
        match database.scrub() {
            Ok(()) => {
                self.due = false;
                scrub::clear_due(database.path());
                tracing::info!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "scrubbed the database file of destroyed keys"
                );
            }
            Err(error) => tracing::error!(%error, "cannot scrub the database file of destroyed keys yet"),
        }
    }
}

/// Why a group was not committed.
enum Refused {
    /// The database cannot take writes yet; nothing was tried.
    Unavailable,
    /// The commit was tried and failed.
    Failed(String),
}

/// Commits `group` if the database can take writes, loading where the journal stands first
/// if it is not known.
fn commit_when_writable(
    database: &DatabaseHandle,
    heads: &mut HashMap<TenantId, Head>,
    fill: &mut Option<journal::Fill>,
    group: &[Job],
) -> Result<Vec<Result<Answer, StoreError>>, Refused> {
    database.writable().map_err(|_| Refused::Unavailable)?;
    let db = database.get().map_err(|_| Refused::Unavailable)?;
    let current = match fill {
        Some(current) => *current,
        None => journal::Fill::load(&db).map_err(|error| Refused::Failed(error.to_string()))?,
    };
    let (answers, filled) =
        commit_group(&db, heads, current, group).map_err(|error| Refused::Failed(error.to_string()))?;
    *fill = Some(filled);
    Ok(answers)
}

/// Applies `group` in one write transaction and commits it; returns each job's answer and where
/// the journal stands after it, or the error that failed the whole group (then nothing of it is
/// durable, and the cached heads were not touched).
fn commit_group(
    db: &Database,
    heads: &mut HashMap<TenantId, Head>,
    fill: journal::Fill,
    group: &[Job],
) -> Result<(Vec<Result<Answer, StoreError>>, journal::Fill), StoreError> {
    let mut working: HashMap<TenantId, Head> = HashMap::new();
    let outcome = (|| -> Result<(Vec<Result<Answer, StoreError>>, journal::Fill), StoreError> {
        let context = "writing the log";
        let txn = db.begin_write().map_err(|e| StoreError::backend(context, e))?;
        let mut answers = Vec::with_capacity(group.len());
        let mut pending: BTreeMap<TenantId, Vec<Record>> = BTreeMap::new();
        {
            let mut head_table = txn.open_table(HEADS).map_err(|e| StoreError::backend(context, e))?;
            let mut secret_rows = txn
                .open_table(SECRET_ROWS)
                .map_err(|e| StoreError::backend(context, e))?;
            let mut secret_table = txn.open_table(SECRETS).map_err(|e| StoreError::backend(context, e))?;
            for job in group {
                // Where the tenant's log stands in this group: after earlier jobs of the group,
                // or as committed.
                let cached = |tenant: &TenantId, working: &HashMap<TenantId, Head>| {
                    working.get(tenant).or_else(|| heads.get(tenant)).copied()
                };
                let head = |tenant: &TenantId, working: &HashMap<TenantId, Head>| -> Result<Option<Head>, StoreError> {
                    if let Some(head) = cached(tenant, working) {
                        return Ok(Some(head));
                    }
                    let stored = head_table
                        .get(tenant.as_str())
                        .map_err(|e| StoreError::backend(context, e))?;
                    stored.map(|bytes| decode_head(tenant, bytes.value())).transpose()
                };
                let answer = match &job.write {
                    Write::Append(batch) => match head(&batch.tenant, &working)? {
                        None => Err(StoreError::UnknownTenant(batch.tenant.clone())),
                        Some(current) => match prepare_append(&current, batch) {
                            Err(e) => Err(e),
                            Ok(records) => {
                                let new_head = head_after(&records).expect("a prepared batch is never empty");
                                let chains = records.iter().map(|r| r.chain).collect();
                                for (part, secrets) in (0u32..).zip(batch.secrets.chunks(SECRETS_PER_ROW)) {
                                    secret_rows
                                        .insert(
                                            (batch.tenant.as_str(), batch.first_seq.0, part),
                                            encode_new_secrets(secrets).as_slice(),
                                        )
                                        .map_err(|e| StoreError::backend(context, e))?;
                                }
                                working.insert(batch.tenant.clone(), new_head);
                                pending.entry(batch.tenant.clone()).or_default().extend(records);
                                Ok(Answer::Appended(Appended { head: new_head, chains }))
                            }
                        },
                    },
                    Write::EnsureTenant(tenant) => {
                        let current = match head(tenant, &working)? {
                            Some(current) => current,
                            None => {
                                working.insert(tenant.clone(), Head::EMPTY);
                                Head::EMPTY
                            }
                        };
                        Ok(Answer::Head(current))
                    }
                    Write::DestroySecret(tenant, id) => match head(tenant, &working)? {
                        None => Err(StoreError::UnknownTenant(tenant.clone())),
                        Some(_) => {
                            destroy_secret(&mut secret_rows, &mut secret_table, tenant, *id).map(Answer::Destroyed)
                        }
                    },
                };
                answers.push(answer);
            }
            for (tenant, head) in &working {
                head_table
                    .insert(tenant.as_str(), encode_head(head).as_slice())
                    .map_err(|e| StoreError::backend(context, e))?;
            }
        }
        let mut value = Vec::new();
        for (tenant, records) in &pending {
            let mut start = 0;
            while start < records.len() {
                let segment = journal::Segment::start(&mut value, tenant, records[start].seq);
                let mut end = start;
                while end < records.len()
                    && end - start < CHUNK_RECORDS_MAX
                    && segment.chunk_len(&value) < journal::CHUNK_BYTES_MAX
                {
                    records[end].encode_into(&mut value);
                    end += 1;
                }
                segment.finish(&mut value);
                start = end;
            }
        }
        if !value.is_empty() {
            txn.open_table(JOURNAL)
                .map_err(|e| StoreError::backend(context, e))?
                .insert(fill.next_commit, value.as_slice())
                .map_err(|e| StoreError::backend(context, e))?;
        }
        let mut filled = fill.after_commit(value.len());
        if filled.is_due() {
            journal::move_into_log(&txn)?;
            filled = filled.emptied();
        }
        txn.commit().map_err(|e| StoreError::backend("committing the log", e))?;
        Ok((answers, filled))
    })();

    if outcome.is_ok() {
        heads.extend(working);
    }
    outcome
}

/// Destroys one secret of `tenant`: rewrites the `secret_rows` row that holds it without it
/// (removes the row if it held nothing else), or removes it from the older `secrets` table.
/// Returns whether it existed. Reads the tenant's rows until it finds the secret: erasures are
/// rare, and a tenant's keys are a few megabytes at most.
fn destroy_secret(
    rows: &mut redb::Table<(&str, u64, u32), &[u8]>,
    legacy: &mut redb::Table<(&str, u128), &[u8]>,
    tenant: &TenantId,
    id: SecretId,
) -> Result<bool, StoreError> {
    let context = "destroying a secret";
    let name = tenant.as_str();
    let mut holder = None;
    for entry in rows
        .range((name, 0u64, 0u32)..=(name, u64::MAX, u32::MAX))
        .map_err(|e| StoreError::backend(context, e))?
    {
        let (key, value) = entry.map_err(|e| StoreError::backend(context, e))?;
        let secrets = decode_secret_row(tenant, value.value())?;
        if secrets.iter().any(|(secret, _)| *secret == id) {
            let (_, seq, part) = key.value();
            let kept = encode_secret_row(secrets.into_iter().filter(|(secret, _)| *secret != id));
            holder = Some(((name, seq, part), kept));
            break;
        }
    }
    if let Some((key, kept)) = holder {
        if kept.is_empty() {
            rows.remove(key).map_err(|e| StoreError::backend(context, e))?;
        } else {
            rows.insert(key, kept.as_slice())
                .map_err(|e| StoreError::backend(context, e))?;
        }
        return Ok(true);
    }
    let removed = legacy
        .remove((name, u128::from_be_bytes(id.0)))
        .map_err(|e| StoreError::backend(context, e))?;
    Ok(removed.is_some())
}
