//! The identity event log of openZro IdP-Sync: append-only, hash-chained, durable, per tenant.
//!
//! This crate knows records and bytes, never identities: it does not decode payloads.
//!
//! Guarantees:
//! - `seq` is dense per tenant: 1, 2, 3, … with no gaps;
//! - `recorded_at` never goes backwards within a tenant;
//! - every record carries `chain = BLAKE3-derive-key("idpsync log v1", previous chain ‖ seq ‖
//!   recorded_at ‖ event_id ‖ version ‖ payload)`, so any edit of history shows;
//! - [`LogStore::append`] returns only when its records are durable, and concurrent appends
//!   share one flush (group commit);
//! - there is no update and no delete.
//!
//! # Layout
//! - [`types`]: tenant names, `Seq`, `Timestamp`, event ids, hashes;
//! - [`record`]: a record, its byte layout and the chain link;
//! - [`store`]: the [`LogStore`] trait and the batch / head / snapshot values;
//! - [`verify`]: checking a log from its first record;
//! - [`meta`]: metadata, small versioned values beside the logs (compare-and-set);
//! - [`memory`]: [`MemoryStore`], in memory; `faults` (feature `faults`): a store with
//!   switchable faults, for tests;
//! - [`private_files`]: files and directories only the service's user may read;
//! - [`redb_store`]: [`RedbStore`], the embedded default on disk;
//! - [`postgres`]: [`PostgresStore`], the log in PostgreSQL, for logs that outlive one machine;
//! - `sled_store` (feature `sled`): `SledStore`, for comparisons with redb.
//!
//! The byte layouts, the crash analysis and the invariants are in `storage/DESIGN.md`.
//!
//! # Example
//! ```
//! use idpsync_storage::{AppendBatch, EventId, LogStore, MemoryStore, NewRecord, SchemaVersion, Seq, TenantId, Timestamp};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let tenant = TenantId::new("acme").unwrap();
//! store.ensure_tenant(&tenant).await.unwrap();
//! let record = NewRecord { recorded_at: Timestamp::now(), event_id: EventId::new(), version: SchemaVersion(1), payload: b"hello".to_vec() };
//! let appended = store.append(AppendBatch { tenant: tenant.clone(), first_seq: Seq(1), records: vec![record], secrets: Vec::new() }).await.unwrap();
//! assert_eq!(appended.head.seq, Seq(1));
//! assert_eq!(store.read(&tenant, Seq(1), 10).await.unwrap()[0].payload, b"hello");
//! # });
//! ```

pub mod error;
#[cfg(feature = "faults")]
pub mod faults;
pub mod memory;
pub mod meta;
pub mod postgres;
pub mod private_files;
pub mod record;
pub mod redb_store;
#[cfg(feature = "sled")]
pub mod sled_store;
pub mod store;
pub mod types;
pub mod verify;

pub use error::StoreError;
pub use memory::MemoryStore;
pub use meta::MetaEntry;
pub use postgres::{PostgresSettings, PostgresStore};
pub use record::{NewRecord, Record};
pub use redb_store::RedbStore;
#[cfg(feature = "sled")]
pub use sled_store::SledStore;
pub use store::{
    AppendBatch, Appended, Head, HeadNotice, LogStore, NewSecret, SecretId, SnapshotInfo, SnapshotReader, StoreHealth,
    StoredSnapshot, WriteTurn, state_hash,
};
pub use types::{EventId, Hash32, InvalidTenantId, InvalidTimestamp, SchemaVersion, Seq, TenantId, Timestamp};
