//! The store's tables, created and migrated when it opens.
//!
//! Each migration is an SQL file shipped in the binary (`migrations/NNNN_*.sql`) and applied
//! once, in order, in one transaction with its row in `schema_migrations`. Every opening takes
//! a transaction-scoped advisory lock first, so that replicas starting together migrate once.
//! A database already at a newer version than this build knows is refused: an older build
//! must not write to tables whose meaning it does not know.

use super::statements::quoted;

/// The migrations, in order: `(version, SQL)`. Versions are dense from 1; a released
/// migration is never edited, a change is a new one.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("migrations/0001_log.sql")),
    (2, include_str!("migrations/0002_meta.sql")),
];

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Why the schema cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The database was migrated by a newer build.
    #[error(
        "the database schema {schema:?} is at version {found}, newer than version {supported} that this build of idpsync knows: run a build at least as new as the one that migrated it"
    )]
    TooNew {
        /// The schema.
        schema: String,
        /// The version found.
        found: i32,
        /// The newest version this build knows.
        supported: i32,
    },
    /// A statement failed.
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
}

/// Brings `schema` to [`SCHEMA_VERSION`], creating it if needed; returns the version found
/// before.
pub(super) async fn migrate(client: &mut deadpool_postgres::Client, schema: &str) -> Result<i32, SchemaError> {
    let txn = client.transaction().await?;
    let lock_key = format!("idpsync schema {schema}");
    txn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&lock_key])
        .await?;
    let schema_name = quoted(schema);
    // A schema an administrator created is used as it is: creating one, even "if not exists",
    // needs a privilege on the whole database that the store's role need not have.
    let exists = txn
        .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema])
        .await?
        .is_some();
    if !exists {
        txn.batch_execute(&format!("CREATE SCHEMA {schema_name}")).await?;
    }
    txn.batch_execute(&format!(
        "SET LOCAL search_path TO {schema_name};
         CREATE TABLE IF NOT EXISTS schema_migrations (
             version    integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         );"
    ))
    .await?;
    let found: i32 = txn
        .query_one("SELECT coalesce(max(version), 0) FROM schema_migrations", &[])
        .await?
        .get(0);
    if found > SCHEMA_VERSION {
        return Err(SchemaError::TooNew {
            schema: schema.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version > found) {
        txn.batch_execute(sql).await?;
        txn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[version])
            .await?;
        tracing::info!(schema, version, "migrated the PostgreSQL schema");
    }
    txn.commit().await?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_dense_from_one() {
        for (index, (version, _)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*version, index as i32 + 1);
        }
    }
}
