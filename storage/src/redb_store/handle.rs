//! The open database, shared by the committer and the readers, and opened again in place after
//! a failed write.
//!
//! After an I/O error (a full disk, a failing device) redb answers every later operation with
//! `PreviousIo` until the file is opened again. So a failed commit marks the store unavailable;
//! the committer, after a pause that grows while the cause stays, waits for the readers of the
//! old database to finish, drops it and opens the file again (redb repairs what the failed
//! commit left). Writes meanwhile are refused at once with [`StoreError::Unavailable`], so a
//! client gets a quick answer it can retry instead of a request that hangs or a 500 forever.
//!
//! A scrub (see `scrub`) takes the database the same way: once its readers are done, the file
//! is rewritten into a fresh one, which is opened in its place.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use redb::Database;

use crate::error::StoreError;
use crate::store::StoreHealth;
use crate::types::Timestamp;

use super::{scrub, tables};

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

    /// The database file.
    pub(super) fn path(&self) -> &Path {
        &self.path
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
        // The file lock goes with the last handle: only once it is dropped can it be opened again.
        drop(take_unread(&mut slot)?);
        self.open_into(&mut slot)
    }

    /// Rewrites the database into a fresh file holding only what is live (see `scrub`), once no
    /// reader holds it, and opens that file in its place. Readers and the committer wait
    /// meanwhile. If the rewrite fails, the old file stays the database and is opened again; if
    /// no file can be opened, writes are refused until one can.
    pub(super) fn scrub(&self) -> Result<(), StoreError> {
        let mut slot = self.database.write().unwrap_or_else(|p| p.into_inner());
        let Some(old) = take_unread(&mut slot)? else {
            return Err(self.refusal());
        };
        let fresh = self.path.with_file_name(scrub::SCRUB_FILE);
        // Renamed into place while the old file is still open: its lock keeps other processes
        // out until then, and one that opens the path after opens the fresh file.
        let scrubbed = scrub::copy_into(&old, &fresh).and_then(|()| scrub::replace(&fresh, &self.path));
        if scrubbed.is_err() {
            let _ = std::fs::remove_file(&fresh);
        }
        drop(old);
        if let Err(error) = self.open_into(&mut slot) {
            self.failed(&error.to_string());
            return Err(error);
        }
        scrubbed
    }

    /// Opens the file into the empty `slot`.
    fn open_into(&self, slot: &mut Option<Arc<Database>>) -> Result<(), StoreError> {
        let database = (self.open_file)(&self.path)?;
        tables::create(&database)?;
        *slot = Some(Arc::new(database));
        Ok(())
    }
}

/// Takes the database out of `slot` once no reader holds it (waiting [`READERS_WAIT_MAX`] at
/// most; then it stays in the slot and this fails).
fn take_unread(slot: &mut Option<Arc<Database>>) -> Result<Option<Arc<Database>>, StoreError> {
    let Some(old) = slot.take() else {
        return Ok(None);
    };
    let deadline = Instant::now() + READERS_WAIT_MAX;
    while Arc::strong_count(&old) > 1 {
        if Instant::now() > deadline {
            *slot = Some(old);
            return Err(StoreError::Unavailable {
                reason: "readers of the database did not finish".to_owned(),
                retry_after: RETRY_FIRST,
            });
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(Some(old))
}
