//! Snapshots in the database: a header row in `snapshots` (`seq`, state hash, length) and the
//! bytes in `snapshot_parts`, at most [`PART_LEN`] to a row, so that no statement carries a
//! whole snapshot of hundreds of megabytes and a reader holds a few parts at a time.

use std::io::Read;
use std::sync::Arc;
use std::sync::mpsc;

use crate::error::StoreError;
use crate::store::{SnapshotInfo, SnapshotReader, StoredSnapshot};
use crate::types::{Seq, TenantId};

use super::Shared;
use super::health::Failure;
use super::rows::{bound_seq, db_seq, hash_from, seq_from};

/// The largest part of a snapshot in one row.
pub(super) const PART_LEN: usize = 1024 * 1024;

/// Stores `snapshot` in one transaction, replacing one at the same `seq`.
pub(super) async fn put(shared: &Shared, tenant: &TenantId, snapshot: &StoredSnapshot) -> Result<(), Failure> {
    let sql = &shared.sql;
    let mut client = shared.pool.get().await?;
    let txn = client.transaction().await?;
    // The head is locked against nothing but its own disappearance: appends go on.
    let head = txn
        .query_opt(&txn.prepare_cached(&sql.lock_head_shared).await?, &[&tenant.as_str()])
        .await?
        .ok_or_else(|| StoreError::UnknownTenant(tenant.clone()))?;
    let head = seq_from(tenant, head.get(0))?;
    if snapshot.seq > head {
        return Err(StoreError::SnapshotBeyondHead {
            tenant: tenant.clone(),
            seq: snapshot.seq,
            head,
        }
        .into());
    }
    let seq = db_seq(tenant, snapshot.seq)?;
    let len = i64::try_from(snapshot.bytes.len()).unwrap_or(i64::MAX);
    txn.execute(
        &txn.prepare_cached(&sql.delete_snapshot).await?,
        &[&tenant.as_str(), &seq],
    )
    .await?;
    txn.execute(
        &txn.prepare_cached(&sql.insert_snapshot).await?,
        &[&tenant.as_str(), &seq, &snapshot.state_hash.0.as_slice(), &len],
    )
    .await?;
    let insert_part = txn.prepare_cached(&sql.insert_snapshot_part).await?;
    for (part, bytes) in (0i32..).zip(snapshot.bytes.chunks(PART_LEN)) {
        txn.execute(&insert_part, &[&tenant.as_str(), &seq, &part, &bytes])
            .await?;
    }
    txn.commit().await?;
    Ok(())
}

/// A stored snapshot's header.
struct Header {
    info: SnapshotInfo,
    len: u64,
}

/// The header of the latest snapshot of `tenant` at or before `seq`.
async fn header(shared: &Shared, tenant: &TenantId, seq: Seq) -> Result<Option<Header>, Failure> {
    let client = shared.pool.get().await?;
    shared.require_tenant(&client, tenant).await?;
    let statement = client.prepare_cached(&shared.sql.snapshot_at_or_before).await?;
    let Some(row) = client
        .query_opt(&statement, &[&tenant.as_str(), &bound_seq(seq)])
        .await?
    else {
        return Ok(None);
    };
    let found = seq_from(tenant, row.get(0))?;
    let len: i64 = row.get(2);
    Ok(Some(Header {
        info: SnapshotInfo {
            seq: found,
            state_hash: hash_from(tenant, found, row.get(1))?,
        },
        len: u64::try_from(len).unwrap_or(0),
    }))
}

/// The latest snapshot at or before `seq`, whole, its hash checked.
pub(super) async fn latest(shared: &Shared, tenant: &TenantId, seq: Seq) -> Result<Option<StoredSnapshot>, Failure> {
    let Some(header) = header(shared, tenant, seq).await? else {
        return Ok(None);
    };
    let client = shared.pool.get().await?;
    let statement = client.prepare_cached(&shared.sql.snapshot_parts).await?;
    let mut bytes = Vec::with_capacity(usize::try_from(header.len).unwrap_or(0));
    for row in client
        .query(&statement, &[&tenant.as_str(), &db_seq(tenant, header.info.seq)?])
        .await?
    {
        bytes.extend_from_slice(row.get::<_, &[u8]>(0));
    }
    let snapshot = StoredSnapshot {
        seq: header.info.seq,
        state_hash: header.info.state_hash,
        bytes,
    };
    if snapshot.bytes.len() as u64 != header.len || !snapshot.is_intact() {
        return Err(StoreError::SnapshotCorrupt {
            tenant: tenant.clone(),
            seq: snapshot.seq,
            reason: "the stored parts do not match the stored length and hash".to_owned(),
        }
        .into());
    }
    Ok(Some(snapshot))
}

/// The latest snapshot at or before `seq`, read a part at a time: the first part is fetched
/// now; the others, if any, by a blocking task one part ahead of the reader.
pub(super) async fn open(shared: &Arc<Shared>, tenant: &TenantId, seq: Seq) -> Result<Option<SnapshotReader>, Failure> {
    let Some(header) = header(shared, tenant, seq).await? else {
        return Ok(None);
    };
    let parts = header.len.div_ceil(PART_LEN as u64);
    let first = if parts == 0 {
        Vec::new()
    } else {
        fetch_part(shared, tenant, header.info.seq, 0).await?
    };
    let (sender, receiver) = mpsc::sync_channel(1);
    if parts > 1 {
        let shared = Arc::clone(shared);
        let tenant = tenant.clone();
        let runtime = tokio::runtime::Handle::current();
        let at = header.info.seq;
        tokio::task::spawn_blocking(move || {
            for part in 1..parts {
                let fetched = runtime
                    .block_on(tokio::time::timeout(
                        super::OPERATION_TIMEOUT,
                        fetch_part(&shared, &tenant, at, part),
                    ))
                    .map_err(|_| Failure::Outage("PostgreSQL did not answer in time".to_owned()))
                    .and_then(|fetched| fetched)
                    .map_err(|failure| {
                        std::io::Error::other(format!("reading part {part} of the snapshot: {failure:?}"))
                    });
                let failed = fetched.is_err();
                // The reader is gone (dropped early, or finished with an error): stop.
                if sender.send(fetched).is_err() || failed {
                    return;
                }
            }
        });
    }
    let source = Parts {
        current: std::io::Cursor::new(first),
        rest: receiver,
    };
    Ok(Some(SnapshotReader::new(
        tenant.clone(),
        header.info.seq,
        header.info.state_hash,
        header.len,
        Box::new(source),
    )))
}

async fn fetch_part(shared: &Shared, tenant: &TenantId, seq: Seq, part: u64) -> Result<Vec<u8>, Failure> {
    let client = shared.pool.get().await?;
    let statement = client.prepare_cached(&shared.sql.snapshot_part).await?;
    let index = i32::try_from(part).unwrap_or(i32::MAX);
    let row = client
        .query_opt(&statement, &[&tenant.as_str(), &db_seq(tenant, seq)?, &index])
        .await?;
    row.map(|row| row.get(0)).ok_or_else(|| {
        StoreError::SnapshotCorrupt {
            tenant: tenant.clone(),
            seq,
            reason: format!("part {part} is missing"),
        }
        .into()
    })
}

/// A snapshot's bytes as [`Read`]: the part in hand, then the parts the fetching task sends.
struct Parts {
    current: std::io::Cursor<Vec<u8>>,
    rest: mpsc::Receiver<std::io::Result<Vec<u8>>>,
}

impl Read for Parts {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let n = self.current.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            match self.rest.recv() {
                Ok(next) => self.current = std::io::Cursor::new(next?),
                // No more parts: the end (the reader's hash check tells a short snapshot).
                Err(_) => return Ok(0),
            }
        }
    }
}

/// Every snapshot of `tenant`, in `seq` order.
pub(super) async fn list(shared: &Shared, tenant: &TenantId) -> Result<Vec<SnapshotInfo>, Failure> {
    let client = shared.pool.get().await?;
    shared.require_tenant(&client, tenant).await?;
    let statement = client.prepare_cached(&shared.sql.snapshots).await?;
    let mut listed = Vec::new();
    for row in client.query(&statement, &[&tenant.as_str()]).await? {
        let seq = seq_from(tenant, row.get(0))?;
        listed.push(SnapshotInfo {
            seq,
            state_hash: hash_from(tenant, seq, row.get(1))?,
        });
    }
    Ok(listed)
}

/// Removes the snapshot of `tenant` at `seq` (its parts go with it); returns whether there was
/// one.
pub(super) async fn remove(shared: &Shared, tenant: &TenantId, seq: Seq) -> Result<bool, Failure> {
    let client = shared.pool.get().await?;
    shared.require_tenant(&client, tenant).await?;
    let statement = client.prepare_cached(&shared.sql.delete_snapshot).await?;
    let removed = client.execute(&statement, &[&tenant.as_str(), &bound_seq(seq)]).await?;
    Ok(removed > 0)
}
