//! Write turns: which process appends to a tenant's log now, when several share the database.
//!
//! A turn is a session-level advisory lock on a key drawn from the schema and the tenant,
//! held on a connection of its own from a small pool kept apart from the store's, so that
//! writers waiting for turns never take the connections appends need. PostgreSQL grants a
//! waiting lock in the order it was asked for, so replicas that take turns take them fairly.
//! A connection that may still hold or wait for the lock after something went wrong (a
//! timeout, a failed unlock) is closed, not put back: closing it is what frees the lock.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Object, Pool, PoolError, TimeoutType, Timeouts};

use crate::error::StoreError;
use crate::store::WriteTurn;
use crate::types::TenantId;

use super::settings::PostgresSettings;

/// Connections kept for turns: as many tenants of one process can hold or wait for a turn at
/// once. A writer that finds none free does not wait for one: it appends without a turn (a
/// process writing many tenants at once is not held up by turns it rarely needs).
pub(super) const TURN_POOL_SIZE: usize = 8;
/// How long a writer waits for its turn: far longer than any writer keeps one, so reaching it
/// means the holder is stuck (or the database is); the writer then appends without a turn.
const TURN_WAIT: Duration = Duration::from_secs(10);

/// The advisory lock key of `tenant`'s turn in `schema`: 64 bits of a hash, so that schemas
/// sharing a database, and the migration lock, do not share keys.
pub(super) fn turn_key(schema: &str, tenant: &TenantId) -> i64 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"idpsync write turn\0");
    hasher.update(schema.as_bytes());
    hasher.update(b"\0");
    hasher.update(tenant.as_str().as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_bytes()[..8]);
    i64::from_le_bytes(first)
}

/// A lock key as `pg_locks` shows it: its high and low 32 bits, as `oid`s.
fn lock_key_halves(key: i64) -> [u32; 2] {
    let bits = key as u64;
    [(bits >> 32) as u32, bits as u32]
}

/// Waits for `tenant`'s turn on a connection of `pool`.
pub(super) async fn take(pool: &Pool, settings: &PostgresSettings, tenant: &TenantId) -> Result<PgTurn, StoreError> {
    let failed = |reason: String| StoreError::backend("taking the write turn", std::io::Error::other(reason));
    // A wait of zero is the pool's own "do not wait": no slot free is an error at once.
    let no_wait = Timeouts {
        wait: Some(Duration::ZERO),
        ..pool.timeouts()
    };
    let client = match pool.timeout_get(&no_wait).await {
        Ok(client) => client,
        Err(PoolError::Timeout(TimeoutType::Wait)) => {
            return Err(failed("every connection for turns is in use".to_owned()));
        }
        Err(error) => return Err(failed(error.to_string())),
    };
    let key = turn_key(&settings.schema, tenant);
    match tokio::time::timeout(TURN_WAIT, client.execute("SELECT pg_advisory_lock($1)", &[&key])).await {
        Ok(Ok(_)) => Ok(PgTurn {
            client: Some(client),
            key,
        }),
        Ok(Err(error)) => {
            drop(Object::take(client));
            Err(failed(error.to_string()))
        }
        Err(_) => {
            // The request may still be granted: the connection goes, and the lock with it.
            drop(Object::take(client));
            Err(failed(format!("no turn within {} s", TURN_WAIT.as_secs())))
        }
    }
}

/// A tenant's turn, held by the session of `client`.
pub(super) struct PgTurn {
    client: Option<Object>,
    key: i64,
}

#[async_trait]
impl WriteTurn for PgTurn {
    /// A request for the same lock not yet granted, in `pg_locks` (which shows a bigint key as
    /// its high and low 32 bits, `classid` and `objid`, with `objsubid` 1).
    async fn is_wanted(&self) -> bool {
        let Some(client) = &self.client else {
            return true;
        };
        let [high, low] = lock_key_halves(self.key);
        let parameters: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&high, &low];
        let asked = client.query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             AND classid = $1 AND objid = $2 AND objsubid = 1)",
            &parameters,
        );
        match tokio::time::timeout(TURN_WAIT, asked).await {
            Ok(Ok(row)) => row.get::<_, bool>(0),
            _ => true,
        }
    }

    async fn release(mut self: Box<Self>) {
        if let Some(client) = self.client.take() {
            unlock(client, self.key).await;
        }
    }
}

impl Drop for PgTurn {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(unlock(client, self.key));
            }
            Err(_) => drop(Object::take(client)),
        }
    }
}

/// Frees the lock and puts the connection back; closes it when the unlock cannot be confirmed.
async fn unlock(client: Object, key: i64) {
    let unlocked = tokio::time::timeout(TURN_WAIT, client.query_one("SELECT pg_advisory_unlock($1)", &[&key])).await;
    match unlocked {
        Ok(Ok(row)) if row.get::<_, bool>(0) => drop(client),
        _ => drop(Object::take(client)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_schema_and_by_tenant() {
        let acme = TenantId::new("acme").unwrap();
        let globex = TenantId::new("globex").unwrap();
        assert_eq!(turn_key("idpsync", &acme), turn_key("idpsync", &acme));
        assert_ne!(turn_key("idpsync", &acme), turn_key("idpsync", &globex));
        assert_ne!(turn_key("idpsync", &acme), turn_key("other", &acme));
    }
}
