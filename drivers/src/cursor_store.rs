//! [`CursorStore`]: each integration's small state file (its delta cursor and when its last full
//! listing was applied), so that a restart continues where the last applied run stopped.
//!
//! A file is replaced atomically: written to a temporary file, synced, renamed over the old one,
//! and the directory synced, so that a crash leaves the old state or the new one, never half.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

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

/// The state files of one tenant's integrations, in one directory.
#[derive(Clone, Debug)]
pub struct CursorStore {
    dir: PathBuf,
}

impl CursorStore {
    /// The store in `dir` (created on first save).
    pub fn new(dir: impl Into<PathBuf>) -> CursorStore {
        CursorStore { dir: dir.into() }
    }

    fn path(&self, integration: &IntegrationName) -> PathBuf {
        self.dir.join(format!("{integration}.json"))
    }

    /// The integration's state; the default (no cursor) when there is no file yet. A file that
    /// does not parse is reported: the caller decides (a full listing is always safe).
    pub fn load(&self, integration: &IntegrationName) -> io::Result<IntegrationState> {
        match fs::read(self.path(integration)) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(IntegrationState::default()),
            Err(error) => Err(error),
        }
    }

    /// Replaces the integration's state, atomically and durably.
    pub fn save(&self, integration: &IntegrationName, state: &IntegrationState) -> io::Result<()> {
        // The data directory's rule: directories 0700, files 0600.
        let mut directory = fs::DirBuilder::new();
        directory.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut directory, 0o700);
        directory.create(&self.dir)?;
        let path = self.path(integration);
        let temporary = self.dir.join(format!(".{integration}.json.tmp"));
        let bytes = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
        {
            let mut options = fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&temporary)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
        }
        fs::rename(&temporary, &path)?;
        sync_dir(&self.dir)
    }
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

    #[test]
    fn state_survives_a_reopen_and_a_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let store = CursorStore::new(dir.path().join("drivers/acme"));
        let name = IntegrationName::new("entra").unwrap();
        assert_eq!(store.load(&name).unwrap(), IntegrationState::default());
        let state = IntegrationState {
            source: Some("entra https://graph".into()),
            cursor: Some(Cursor::GraphDelta {
                users: "https://graph/users/delta()?$deltatoken=a".into(),
                groups: "https://graph/groups/delta()?$deltatoken=b".into(),
            }),
            last_full_unix_seconds: Some(1_700_000_000),
        };
        store.save(&name, &state).unwrap();
        assert_eq!(
            CursorStore::new(dir.path().join("drivers/acme")).load(&name).unwrap(),
            state
        );
        fs::write(dir.path().join("drivers/acme/entra.json"), b"{not json").unwrap();
        assert_eq!(store.load(&name).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
