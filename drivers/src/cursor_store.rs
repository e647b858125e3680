//! [`CursorStore`]: each integration's small state (its delta cursor and when its last full
//! listing was applied), so that a restart continues where the last applied run stopped.
//!
//! It is kept in a file per integration in the data directory, or, where replicas share the
//! log store, in the store beside the tenant's log (`Tenant::save_integration_state`), so that
//! the replica that takes an integration over goes on from the same cursor.
//!
//! A file is replaced atomically: written to a temporary file, synced, renamed over the old one,
//! and the directory synced, so that a crash leaves the old state or the new one, never half.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use idpsync_engine::Tenant;
use idpsync_engine::ids::IntegrationName;
use serde::{Deserialize, Serialize};

use crate::provider::Cursor;

/// What is kept between runs of one integration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrationState {
    /// The provider and API root the cursor belongs to (`okta https://acme.okta.com`): a cursor
    /// of another IdP, or of the same IdP at another address, means nothing.
    #[serde(default)]
    pub source: Option<String>,
    /// Where the next incremental listing starts.
    pub cursor: Option<Cursor>,
    /// When the last full listing was applied (seconds since the Unix epoch).
    pub last_full_unix_seconds: Option<i64>,
}

/// The states of one tenant's integrations: files in one directory, or the tenant's log store.
#[derive(Clone)]
pub struct CursorStore {
    place: Place,
}

#[derive(Clone)]
enum Place {
    Files(PathBuf),
    Log(Arc<Tenant>),
}

impl CursorStore {
    /// The store in `dir` (created on first save).
    pub fn new(dir: impl Into<PathBuf>) -> CursorStore {
        CursorStore {
            place: Place::Files(dir.into()),
        }
    }

    /// The store beside `tenant`'s log, for replicas that share the log store.
    pub fn in_log(tenant: Arc<Tenant>) -> CursorStore {
        CursorStore {
            place: Place::Log(tenant),
        }
    }

    /// The integration's state; the default (no cursor) when none was saved yet. A state that
    /// does not parse is reported: the caller decides (a full listing is always safe).
    pub async fn load(&self, integration: &IntegrationName) -> io::Result<IntegrationState> {
        let bytes = match &self.place {
            Place::Files(dir) => match fs::read(path(dir, integration)) {
                Ok(bytes) => bytes,
                Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(IntegrationState::default()),
                Err(error) => return Err(error),
            },
            Place::Log(tenant) => match tenant.integration_state(integration).await.map_err(io::Error::other)? {
                Some(bytes) => bytes,
                None => return Ok(IntegrationState::default()),
            },
        };
        serde_json::from_slice(&bytes).map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
    }

    /// Replaces the integration's state, atomically and durably.
    pub async fn save(&self, integration: &IntegrationName, state: &IntegrationState) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
        match &self.place {
            Place::Files(dir) => save_file(dir, integration, &bytes),
            Place::Log(tenant) => tenant
                .save_integration_state(integration, bytes)
                .await
                .map_err(io::Error::other),
        }
    }
}

fn path(dir: &Path, integration: &IntegrationName) -> PathBuf {
    dir.join(format!("{integration}.json"))
}

/// Replaces the integration's file in `dir` with `bytes`, atomically and durably.
fn save_file(dir: &Path, integration: &IntegrationName, bytes: &[u8]) -> io::Result<()> {
    // The data directory's rule: directories 0700, files 0600.
    let mut directory = fs::DirBuilder::new();
    directory.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut directory, 0o700);
    directory.create(dir)?;
    let temporary = dir.join(format!(".{integration}.json.tmp"));
    {
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&temporary, path(dir, integration))?;
    sync_dir(dir)
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entra_state() -> IntegrationState {
        IntegrationState {
            source: Some("entra https://graph".into()),
            cursor: Some(Cursor::GraphDelta {
                users: "https://graph/users/delta()?$deltatoken=a".into(),
                groups: "https://graph/groups/delta()?$deltatoken=b".into(),
            }),
            last_full_unix_seconds: Some(1_700_000_000),
        }
    }

    #[tokio::test]
    async fn state_survives_a_reopen_and_a_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let store = CursorStore::new(dir.path().join("drivers/acme"));
        let name = IntegrationName::new("entra").unwrap();
        assert_eq!(store.load(&name).await.unwrap(), IntegrationState::default());
        let state = entra_state();
        store.save(&name, &state).await.unwrap();
        assert_eq!(
            CursorStore::new(dir.path().join("drivers/acme"))
                .load(&name)
                .await
                .unwrap(),
            state
        );
        fs::write(dir.path().join("drivers/acme/entra.json"), b"{not json").unwrap();
        assert_eq!(store.load(&name).await.unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn state_in_the_log_store_is_seen_by_every_replica_and_kept_per_tenant() {
        let store: Arc<dyn idpsync_storage::LogStore> = Arc::new(idpsync_storage::MemoryStore::new());
        let settings = idpsync_engine::TenantSettings::default();
        // Two engines on one store, as two replicas on one database.
        let one = idpsync_engine::Engine::open(Arc::clone(&store), settings.clone())
            .await
            .unwrap();
        let other = idpsync_engine::Engine::open(Arc::clone(&store), settings)
            .await
            .unwrap();
        let acme = idpsync_engine::ids::TenantId::new("acme").unwrap();
        let name = IntegrationName::new("entra").unwrap();
        let saving = CursorStore::in_log(one.ensure_tenant(&acme).await.unwrap());
        let reading = CursorStore::in_log(other.ensure_tenant(&acme).await.unwrap());
        assert_eq!(reading.load(&name).await.unwrap(), IntegrationState::default());
        saving.save(&name, &entra_state()).await.unwrap();
        assert_eq!(reading.load(&name).await.unwrap(), entra_state());
        let newer = IntegrationState {
            last_full_unix_seconds: Some(1_800_000_000),
            ..entra_state()
        };
        reading.save(&name, &newer).await.unwrap();
        assert_eq!(saving.load(&name).await.unwrap(), newer);
        let default = CursorStore::in_log(
            one.require_tenant(&idpsync_engine::ids::TenantId::default_tenant())
                .unwrap(),
        );
        assert_eq!(default.load(&name).await.unwrap(), IntegrationState::default());
    }
}
