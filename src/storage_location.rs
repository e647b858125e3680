//! Which log store a process opens: the `storage` setting (`IDPSYNC_STORAGE`), also the
//! `--from` and `--to` of `idpsync log copy`.
//!
//! - `redb:<dir>`: the embedded store in `<dir>` (the default is redb in the data directory);
//! - `postgres://…` (or `postgresql://…`): the store in a PostgreSQL database, with libpq's URL
//!   keys, plus `schema=`; see [`storage::postgres`](crate::storage::postgres);
//! - `sled:<dir>`: sled in `<dir>`, only in builds with the `sled` feature, for comparisons.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use idpsync_storage::{LogStore, PostgresSettings, PostgresStore, RedbStore, StoreError};
use serde::Deserialize;

/// Where the log lives.
#[derive(Clone, Debug)]
pub enum StorageLocation {
    /// redb, in this directory.
    Redb(PathBuf),
    /// A PostgreSQL database (boxed: its settings are large beside a path).
    Postgres(Box<PostgresSettings>),
    /// sled, in this directory.
    #[cfg(feature = "sled")]
    Sled(PathBuf),
}

/// Why a text does not name a log store.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidStorage(String);

impl FromStr for StorageLocation {
    type Err = InvalidStorage;

    fn from_str(text: &str) -> Result<StorageLocation, InvalidStorage> {
        let text = text.trim();
        let directory = |rest: &str, kind: &str| {
            if rest.is_empty() {
                Err(InvalidStorage(format!(
                    "{kind}: needs a directory, as in {kind}:/var/lib/idpsync"
                )))
            } else {
                Ok(PathBuf::from(rest))
            }
        };
        if let Some(rest) = text.strip_prefix("redb:") {
            return directory(rest, "redb").map(StorageLocation::Redb);
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return PostgresSettings::from_url(text)
                .map(|settings| StorageLocation::Postgres(Box::new(settings)))
                .map_err(|e| InvalidStorage(e.to_string()));
        }
        if let Some(rest) = text.strip_prefix("sled:") {
            #[cfg(feature = "sled")]
            return directory(rest, "sled").map(StorageLocation::Sled);
            #[cfg(not(feature = "sled"))]
            return directory(rest, "sled").and_then(|_| {
                Err(InvalidStorage(
                    "sled: this build has no sled backend (it is built with --features sled)".to_owned(),
                ))
            });
        }
        Err(InvalidStorage(format!(
            "{:?} names no log store: use redb:<dir> or postgres://…",
            crate::storage::postgres::redact(text)
        )))
    }
}

impl fmt::Display for StorageLocation {
    /// The location as it was given, with any password replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageLocation::Redb(dir) => write!(f, "redb:{}", dir.display()),
            StorageLocation::Postgres(settings) => f.write_str(settings.redacted_url()),
            #[cfg(feature = "sled")]
            StorageLocation::Sled(dir) => write!(f, "sled:{}", dir.display()),
        }
    }
}

impl<'de> Deserialize<'de> for StorageLocation {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl StorageLocation {
    /// Opens the store: creates a redb (or sled) directory and database that do not exist yet,
    /// connects to PostgreSQL and migrates its schema.
    pub async fn open(&self) -> Result<Arc<dyn LogStore>, StoreError> {
        Ok(match self {
            StorageLocation::Redb(dir) => Arc::new(RedbStore::open(dir)?),
            StorageLocation::Postgres(settings) => Arc::new(PostgresStore::open((**settings).clone()).await?),
            #[cfg(feature = "sled")]
            StorageLocation::Sled(dir) => Arc::new(idpsync_storage::SledStore::open(dir)?),
        })
    }

    /// Whether several processes may use the store at once (replicas, and `idpsync token`
    /// while they run): then the tokens live in it (`shared_tokens`), not in the data directory.
    pub fn is_shared(&self) -> bool {
        matches!(self, StorageLocation::Postgres(_))
    }

    /// Whether a store is there already, without creating one: a directory store's database
    /// file exists (a database is always there; its schema is created on opening).
    pub fn exists(&self) -> bool {
        match self {
            StorageLocation::Redb(dir) => dir.join(idpsync_storage::redb_store::DATABASE_FILE).exists(),
            StorageLocation::Postgres(_) => true,
            #[cfg(feature = "sled")]
            StorageLocation::Sled(dir) => dir.exists(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_parses_and_mistakes_are_named() {
        assert!(
            matches!("redb:/var/lib/x".parse(), Ok(StorageLocation::Redb(dir)) if dir == std::path::Path::new("/var/lib/x"))
        );
        let postgres: StorageLocation = "postgres://app:pw@db/idp?schema=eu".parse().unwrap();
        assert_eq!(postgres.to_string(), "postgres://app:***@db/idp?schema=eu");
        let error = |text: &str| text.parse::<StorageLocation>().unwrap_err().to_string();
        assert!(error("redb:").contains("needs a directory"));
        assert!(error("mysql://root:pw@db/x").contains("names no log store"));
        assert!(!error("mysql://root:pw@db/x").contains("pw@"));
        assert!(error("postgres://db/x?sslmode=sometimes").contains("sslmode"));
        #[cfg(not(feature = "sled"))]
        assert!(error("sled:/tmp/x").contains("--features sled"));
    }
}
