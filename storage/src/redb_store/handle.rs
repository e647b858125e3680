//! The open database, shared by the committer and the readers, and opened again in place after
//! a failed write.
//!
//! After an I/O error (a full disk, a failing device) redb answers every later operation with
//! `PreviousIo` until the file is opened again. So a failed commit marks the store unavailable;
//! the committer, after a pause that grows while the cause stays, waits for the readers of the
//! old database to finish, drops it and opens the file again (redb repairs what the failed
//! commit left). Writes meanwhile are refused at once with [`StoreError::Unavailable`], so a
//! client gets a quick answer it can retry instead of a request that hangs or a 500 forever.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use redb::Database;

use crate::error::StoreError;
use crate::store::StoreHealth;
use crate::types::Timestamp;

use super::tables;

/// The first pause after a failure before the file is opened again...
const RETRY_FIRST: Duration = Duration::from_millis(500);
/// ...doubling while the cause stays, up to this.
const RETRY_MAX: Duration = Duration::from_secs(30);
/// How long a reopening waits for readers of the old database to finish.
const READERS_WAIT_MAX: Duration = Duration::from_secs(10);

/// Opens (or creates) the database file and its tables.
pub(super) type Opener = dyn Fn(&Path) -> Result<Database, StoreError> + Send + Sync;

/// The database and whether it can be written.
pub(super) struct DatabaseHandle {
    path: PathBuf,
    open_file: Box<Opener>,
    database: RwLock<Option<Arc<Database>>>,
    state: Mutex<State>,
}

/// Whether writes are possible, and if not, since when and until when they are refused.
enum State {
    Ready,
    Failed {
        since: Timestamp,
        reason: String,
        /// The next time the file is opened again.
        retry_at: Instant,
        /// The pause after the next failure.
        next_pause: Duration,
    },
}

impl DatabaseHandle {
    /// Opens the database at `path` with `open_file`.
    pub(super) fn open(path: PathBuf, open_file: Box<Opener>) -> Result<DatabaseHandle, StoreError> {
        let database = open_file(&path)?;
        tables::create(&database)?;
        Ok(DatabaseHandle {
            path,
            open_file,
            database: RwLock::new(Some(Arc::new(database))),
            state: Mutex::new(State::Ready),
        })
    }

    /// The open database, for one read or one commit.
    pub(super) fn get(&self) -> Result<Arc<Database>, StoreError> {
        let database = self.database.read().unwrap_or_else(|p| p.into_inner());
        database.clone().ok_or_else(|| self.refusal())
    }

    /// Whether writes can be tried now: ready, or failed with its pause over. A failed store
    /// whose pause is over is opened again first; if that fails too, the pause grows.
    pub(super) fn writable(&self) -> Result<(), StoreError> {
        let due = match &*self.state.lock().unwrap_or_else(|p| p.into_inner()) {
            State::Ready => return Ok(()),
            State::Failed { retry_at, .. } => Instant::now() >= *retry_at,
        };
        if !due {
            return Err(self.refusal());
        }
        match self.reopen() {
            Ok(()) => {
                tracing::info!(path = %self.path.display(), "the log database is open again; writes resume");
                *self.state.lock().unwrap_or_else(|p| p.into_inner()) = State::Ready;
                Ok(())
            }
            Err(error) => {
                self.failed(&error.to_string());
                Err(self.refusal())
            }
        }
    }

    /// Records a failed write: writes are refused until the pause is over.
    pub(super) fn failed(&self, reason: &str) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (since, pause) = match &*state {
            State::Ready => (Timestamp::now(), RETRY_FIRST),
            State::Failed { since, next_pause, .. } => (*since, *next_pause),
        };
        tracing::error!(
            reason,
            retry_in_ms = pause.as_millis() as u64,
            "the log cannot be written; refusing writes until it can"
        );
        *state = State::Failed {
            since,
            reason: reason.to_owned(),
            retry_at: Instant::now() + pause,
            next_pause: (pause * 2).min(RETRY_MAX),
        };
    }

    /// Whether the store can take writes.
    pub(super) fn health(&self) -> StoreHealth {
        match &*self.state.lock().unwrap_or_else(|p| p.into_inner()) {
            State::Ready => StoreHealth::Ready,
            State::Failed { since, reason, .. } => StoreHealth::Unavailable {
                since: *since,
                reason: reason.clone(),
            },
        }
    }

    /// The error of a refused write, with how long until the next try.
    pub(super) fn refusal(&self) -> StoreError {
        match &*self.state.lock().unwrap_or_else(|p| p.into_inner()) {
            State::Ready => StoreError::Unavailable {
                reason: "the database is being opened again".to_owned(),
                retry_after: RETRY_FIRST,
            },
            State::Failed { reason, retry_at, .. } => StoreError::Unavailable {
                reason: reason.clone(),
                retry_after: retry_at.saturating_duration_since(Instant::now()).max(RETRY_FIRST),
            },
        }
    }

    /// Drops the database once no reader holds it, and opens the file again.
    fn reopen(&self) -> Result<(), StoreError> {
        let mut slot = self.database.write().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = slot.take() {
            let deadline = Instant::now() + READERS_WAIT_MAX;
            while Arc::strong_count(&old) > 1 {
                if Instant::now() > deadline {
                    *slot = Some(old);
                    return Err(StoreError::Unavailable {
                        reason: "readers of the failed database did not finish".to_owned(),
                        retry_after: RETRY_FIRST,
                    });
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            // The file lock goes with the last handle: only now can it be opened again.
            drop(old);
        }
        let database = (self.open_file)(&self.path)?;
        tables::create(&database)?;
        *slot = Some(Arc::new(database));
        Ok(())
    }
}
