//! The [`LogStore`] trait every backend implements, and the values it takes and returns.

use async_trait::async_trait;

use crate::error::StoreError;
use crate::meta::MetaEntry;
use crate::record::{NewRecord, PAYLOAD_LEN_MAX, Record, chain_link};
use crate::types::{Hash32, Seq, TenantId, Timestamp};

/// The last record of a tenant's log: where the next append continues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// The last `seq`; [`Seq::ZERO`] for an empty log.
    pub seq: Seq,
    /// The last record's `recorded_at`; `Timestamp(i64::MIN)` for an empty log.
    pub recorded_at: Timestamp,
    /// The last record's chain link; [`Hash32::ZERO`] for an empty log.
    pub chain: Hash32,
}

impl Head {
    /// The head of a log with no records.
    pub const EMPTY: Head = Head {
        seq: Seq::ZERO,
        recorded_at: Timestamp(i64::MIN),
        chain: Hash32::ZERO,
    };
}

/// Records to append to one tenant's log, in order.
#[derive(Clone, Debug)]
pub struct AppendBatch {
    /// Whose log.
    pub tenant: TenantId,
    /// The `seq` the first record must get: the caller's view of `head + 1`. If the log has
    /// moved on, the append fails with [`StoreError::SeqConflict`] and writes nothing.
    pub first_seq: Seq,
    /// At least one record; `recorded_at` must not go backwards.
    pub records: Vec<NewRecord>,
    /// Secrets (per-user encryption keys) the records need, stored outside the log in the same
    /// durable commit: a record never exists without the key it was sealed with.
    pub secrets: Vec<NewSecret>,
}

/// The id of a secret: opaque to the store (the engine uses a user's id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretId(pub [u8; 16]);

/// A secret to store with an append.
#[derive(Clone, PartialEq, Eq)]
pub struct NewSecret {
    /// Its id.
    pub id: SecretId,
    /// The key material.
    pub material: Vec<u8>,
}

impl std::fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key material never reaches a log line.
        f.debug_struct("NewSecret")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The most secrets one append may carry.
pub const SECRETS_PER_APPEND_MAX: usize = 1_000_000;

/// The largest secret, in bytes.
pub const SECRET_LEN_MAX: usize = 1024;

/// What a successful append made durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The log's new head.
    pub head: Head,
    /// The chain link of each appended record, in order.
    pub chains: Vec<Hash32>,
}

/// A state snapshot as stored: opaque bytes that the engine encoded at `seq`, and their hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSnapshot {
    /// The log position the snapshot folds up to, inclusive.
    pub seq: Seq,
    /// BLAKE3 of `bytes`: the state hash that `log verify` recomputes by folding the log.
    pub state_hash: Hash32,
    /// The encoded state.
    pub bytes: Vec<u8>,
}

/// The state hash of encoded state bytes: their BLAKE3.
pub fn state_hash(bytes: &[u8]) -> Hash32 {
    Hash32(*blake3::hash(bytes).as_bytes())
}

impl StoredSnapshot {
    /// Wraps encoded state bytes, hashing them.
    pub fn new(seq: Seq, bytes: Vec<u8>) -> StoredSnapshot {
        let state_hash = state_hash(&bytes);
        StoredSnapshot { seq, state_hash, bytes }
    }

    /// Whether `bytes` still hash to `state_hash`.
    pub fn is_intact(&self) -> bool {
        state_hash(&self.bytes) == self.state_hash
    }
}

/// A stored snapshot opened for reading in pieces, so that a large one is never held whole:
/// its bytes come through [`std::io::Read`] and are hashed as they pass. Nothing read from it
/// is checked until [`SnapshotReader::finish`], which reads what is left and compares the
/// hash: a reader builds what it decodes, then keeps it only if `finish` succeeds.
pub struct SnapshotReader {
    tenant: TenantId,
    seq: Seq,
    state_hash: Hash32,
    len: u64,
    read: u64,
    hasher: blake3::Hasher,
    source: Box<dyn std::io::Read + Send>,
}

impl SnapshotReader {
    /// A reader of the `len` bytes of `tenant`'s snapshot at `seq` that `source` yields, which
    /// must hash to `state_hash`.
    pub fn new(
        tenant: TenantId,
        seq: Seq,
        state_hash: Hash32,
        len: u64,
        source: Box<dyn std::io::Read + Send>,
    ) -> SnapshotReader {
        SnapshotReader {
            tenant,
            seq,
            state_hash,
            len,
            read: 0,
            hasher: blake3::Hasher::new(),
            source,
        }
    }

    /// A reader of a snapshot already in memory.
    pub fn from_stored(tenant: TenantId, snapshot: StoredSnapshot) -> SnapshotReader {
        let len = snapshot.bytes.len() as u64;
        let source = Box::new(std::io::Cursor::new(snapshot.bytes));
        SnapshotReader::new(tenant, snapshot.seq, snapshot.state_hash, len, source)
    }

    /// The log position the snapshot folds up to.
    pub fn seq(&self) -> Seq {
        self.seq
    }

    /// The hash the snapshot was stored with, which [`SnapshotReader::finish`] checks.
    pub fn state_hash(&self) -> Hash32 {
        self.state_hash
    }

    /// The bytes not read yet.
    pub fn remaining(&self) -> u64 {
        self.len - self.read
    }

    /// Reads what is left and checks the hash of everything read against the stored one.
    pub fn finish(mut self) -> Result<(), StoreError> {
        std::io::copy(&mut self, &mut std::io::sink()).map_err(|e| self.corrupt(e.to_string()))?;
        if self.read != self.len {
            return Err(self.corrupt(format!("{} bytes of state, the header says {}", self.read, self.len)));
        }
        if Hash32(*self.hasher.finalize().as_bytes()) != self.state_hash {
            return Err(self.corrupt("state bytes do not match the stored hash".to_owned()));
        }
        Ok(())
    }

    fn corrupt(&self, reason: String) -> StoreError {
        StoreError::SnapshotCorrupt {
            tenant: self.tenant.clone(),
            seq: self.seq,
            reason,
        }
    }
}

impl std::io::Read for SnapshotReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let room = usize::try_from(self.remaining()).unwrap_or(usize::MAX).min(buf.len());
        let n = self.source.read(&mut buf[..room])?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// A stored snapshot's position and hash, without its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The log position the snapshot folds up to.
    pub seq: Seq,
    /// The hash stored with it.
    pub state_hash: Hash32,
}

/// A durable, append-only, hash-chained log per tenant, plus state snapshots.
///
/// The interface is asynchronous and batch-shaped so that a networked backend fits behind it
/// without changing its callers. Every backend must pass the shared suite in
/// `storage/tests/backend_suite.rs`.
///
/// There is no update and no delete.
#[async_trait]
pub trait LogStore: Send + Sync + 'static {
    /// Makes sure `tenant` exists, creating an empty log for it if needed; returns its head.
    async fn ensure_tenant(&self, tenant: &TenantId) -> Result<Head, StoreError>;

    /// Every tenant that has a log, in name order.
    async fn tenants(&self) -> Result<Vec<TenantId>, StoreError>;

    /// The head of `tenant`'s log.
    async fn head(&self, tenant: &TenantId) -> Result<Head, StoreError>;

    /// Appends `batch` to its tenant's log.
    ///
    /// When this returns `Ok`, every record of the batch is durable: it has been written and
    /// flushed to stable storage (fsync) and survives a crash or power loss from then on.
    /// Concurrent appends, of one tenant or of many, share one flush (group commit).
    /// When it returns `Err`, none of the batch's records were appended.
    async fn append(&self, batch: AppendBatch) -> Result<Appended, StoreError>;

    /// Up to `limit` records of `tenant` from `from` on, in `seq` order. Fewer records than
    /// `limit` means the head was reached.
    async fn read(&self, tenant: &TenantId, from: Seq, limit: usize) -> Result<Vec<Record>, StoreError>;

    /// Stores a snapshot of `tenant`'s state; durable when this returns. A snapshot at the same
    /// `seq` is replaced.
    async fn put_snapshot(&self, tenant: &TenantId, snapshot: StoredSnapshot) -> Result<(), StoreError>;

    /// The latest snapshot at or before `seq`, its hash checked.
    async fn snapshot_at_or_before(&self, tenant: &TenantId, seq: Seq) -> Result<Option<StoredSnapshot>, StoreError>;

    /// The latest snapshot at or before `seq`, opened for reading in pieces; its hash is
    /// checked by [`SnapshotReader::finish`]. Stores that hold snapshots in memory need not
    /// implement it.
    async fn open_snapshot_at_or_before(
        &self,
        tenant: &TenantId,
        seq: Seq,
    ) -> Result<Option<SnapshotReader>, StoreError> {
        Ok(self
            .snapshot_at_or_before(tenant, seq)
            .await?
            .map(|snapshot| SnapshotReader::from_stored(tenant.clone(), snapshot)))
    }

    /// Every stored snapshot of `tenant`, in `seq` order.
    async fn snapshots(&self, tenant: &TenantId) -> Result<Vec<SnapshotInfo>, StoreError>;

    /// Removes the snapshot at `seq`; returns whether there was one. The log is untouched: a
    /// snapshot is only a shortcut to the state at its `seq`.
    async fn remove_snapshot(&self, tenant: &TenantId, seq: Seq) -> Result<bool, StoreError>;

    /// Every secret of `tenant`.
    async fn secrets(&self, tenant: &TenantId) -> Result<Vec<(SecretId, Vec<u8>)>, StoreError>;

    /// Destroys a secret; durable when this returns. Returns whether it existed. The records
    /// sealed with it stay, unreadable.
    async fn destroy_secret(&self, tenant: &TenantId, id: SecretId) -> Result<bool, StoreError>;

    /// The metadata entry `namespace`/`key`, if there is one (see [`crate::meta`]).
    async fn get_meta(&self, namespace: &str, key: &str) -> Result<Option<MetaEntry>, StoreError>;

    /// Creates (`expected` `None`) or replaces (`expected` its current version) the metadata
    /// entry `namespace`/`key`; durable when this returns. Returns the new version. An entry
    /// whose version is not `expected` is [`StoreError::MetaConflict`], and nothing changes.
    async fn put_meta(
        &self,
        namespace: &str,
        key: &str,
        expected: Option<u64>,
        value: Vec<u8>,
    ) -> Result<u64, StoreError>;

    /// Every metadata entry of `namespace`, in key order.
    async fn list_meta(&self, namespace: &str) -> Result<Vec<MetaEntry>, StoreError>;

    /// Removes the metadata entry `namespace`/`key` if its version is `expected`; durable when
    /// this returns. Otherwise (or with no entry) [`StoreError::MetaConflict`].
    async fn delete_meta(&self, namespace: &str, key: &str, expected: u64) -> Result<(), StoreError>;

    /// Whether other processes may append to the store (replicas on one database): then a
    /// process's view of a log can be behind the log, and readers catch up before they read.
    fn is_shared(&self) -> bool {
        false
    }

    /// Notices of heads that any writer of the store moved, this process's included, for a
    /// store that other processes may append to; `None` for a store only this process writes
    /// (the embedded ones). A notice can be late or missed (the receiver lags, a connection
    /// drops): a follower also reads the heads now and then, and reads them all on
    /// [`HeadNotice::Missed`].
    fn head_notices(&self) -> Option<tokio::sync::broadcast::Receiver<HeadNotice>> {
        None
    }

    /// Whether the store can take writes now: a store whose last write failed (a full disk, a
    /// lost database) says since when and why, until it can again.
    fn health(&self) -> StoreHealth {
        StoreHealth::Ready
    }

    /// On a store other processes append to: waits until this process may append to
    /// `tenant`'s log alone, and returns that turn, held until it is released (or dropped).
    /// Writers that take their turn before deciding never append on a head another writer
    /// moved; the conditional append (`first_seq`) stays what keeps the log whole, so a writer
    /// that cannot get a turn may still append, at the risk of a conflict. `None` on a store
    /// only this process writes (the embedded ones), where there is nobody to take turns with.
    async fn write_turn(&self, _tenant: &TenantId) -> Result<Option<Box<dyn WriteTurn>>, StoreError> {
        Ok(None)
    }
}

/// A process's turn to append to one tenant's log of a shared store (see
/// [`LogStore::write_turn`]). Dropping it gives it back too, a little later.
#[async_trait]
pub trait WriteTurn: Send + Sync {
    /// Whether another writer waits for this turn. An error counts as yes: a holder that
    /// cannot tell gives the turn back.
    async fn is_wanted(&self) -> bool;

    /// Gives the turn back, so that another process's writer may take it.
    async fn release(self: Box<Self>);
}

/// What [`LogStore::head_notices`] tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadNotice {
    /// `tenant`'s log reached `seq` (a new tenant: seq 0).
    Moved {
        /// Whose log.
        tenant: TenantId,
        /// Its head now.
        seq: Seq,
    },
    /// Notices may have been missed (the store lost its connection for a while): every head may
    /// have moved.
    Missed,
}

/// Whether a store can take writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreHealth {
    /// Writes go through.
    Ready,
    /// Writes are refused with [`StoreError::Unavailable`] until the cause is gone; the store
    /// recovers on its own.
    Unavailable {
        /// When the first failure of this stretch happened.
        since: Timestamp,
        /// The last failure.
        reason: String,
    },
}

/// Checks `batch` against the log's current `head` and builds the records to store, chained.
///
/// Shared by every backend so that all of them accept and reject exactly the same batches.
pub fn prepare_append(head: &Head, batch: &AppendBatch) -> Result<Vec<Record>, StoreError> {
    if batch.records.is_empty() {
        return Err(StoreError::EmptyBatch {
            tenant: batch.tenant.clone(),
        });
    }
    if batch.secrets.len() > SECRETS_PER_APPEND_MAX
        || batch
            .secrets
            .iter()
            .any(|secret| secret.material.len() > SECRET_LEN_MAX)
    {
        return Err(StoreError::SecretTooLarge {
            tenant: batch.tenant.clone(),
        });
    }
    let expected = head.seq.next();
    if batch.first_seq != expected {
        return Err(StoreError::SeqConflict {
            tenant: batch.tenant.clone(),
            expected,
            got: batch.first_seq,
        });
    }
    let mut previous_chain = head.chain;
    let mut previous_time = head.recorded_at;
    let mut records = Vec::with_capacity(batch.records.len());
    for (offset, new) in batch.records.iter().enumerate() {
        let seq = batch.first_seq.plus(offset as u64);
        if new.payload.len() > PAYLOAD_LEN_MAX {
            return Err(StoreError::PayloadTooLarge {
                tenant: batch.tenant.clone(),
                seq,
                len: new.payload.len(),
            });
        }
        if new.recorded_at < previous_time {
            return Err(StoreError::ClockWentBack {
                tenant: batch.tenant.clone(),
                seq,
                recorded_at: new.recorded_at,
                previous: previous_time,
            });
        }
        let chain = chain_link(
            &previous_chain,
            seq,
            new.recorded_at,
            new.event_id,
            new.version,
            &new.payload,
        );
        records.push(Record {
            seq,
            recorded_at: new.recorded_at,
            event_id: new.event_id,
            version: new.version,
            payload: new.payload.clone(),
            chain,
        });
        previous_chain = chain;
        previous_time = new.recorded_at;
    }
    Ok(records)
}

/// The head after `records`, which [`prepare_append`] built on top of some head.
pub fn head_after(records: &[Record]) -> Option<Head> {
    records.last().map(|last| Head {
        seq: last.seq,
        recorded_at: last.recorded_at,
        chain: last.chain,
    })
}

#[cfg(test)]
mod snapshot_reader_tests {
    use super::*;

    fn reader(bytes: &[u8], stored: &[u8]) -> SnapshotReader {
        let mut snapshot = StoredSnapshot::new(Seq(7), stored.to_vec());
        snapshot.bytes = bytes.to_vec();
        SnapshotReader::from_stored(TenantId::new("acme").unwrap(), snapshot)
    }

    #[test]
    fn a_snapshot_reader_checks_the_hash_of_everything_it_passed_on() {
        assert!(reader(b"state", b"state").finish().is_ok());
        let mut read = reader(b"state", b"state");
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut read, &mut bytes).unwrap();
        assert_eq!(bytes, b"state");
        assert!(read.finish().is_ok());
        assert!(matches!(
            reader(b"stale", b"state").finish(),
            Err(StoreError::SnapshotCorrupt { seq: Seq(7), .. })
        ));
        // Shorter than its header says.
        let short = SnapshotReader::new(
            TenantId::new("acme").unwrap(),
            Seq(7),
            state_hash(b"state"),
            9,
            Box::new(std::io::Cursor::new(b"state".to_vec())),
        );
        assert!(matches!(short.finish(), Err(StoreError::SnapshotCorrupt { .. })));
    }
}
