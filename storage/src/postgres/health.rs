//! Whether the database can take writes, and which failures mean it cannot.
//!
//! A failure of the connection (refused, reset, timed out), of the server's resources (disk
//! full, too many connections), an operator's intervention (shutdown, recovery) or a read-only
//! database is an outage: the store reports itself unavailable, refuses writes at once with
//! [`StoreError::Unavailable`] for a pause that grows while the outage lasts, then tries again.
//! The pool drops broken connections and opens new ones, so the store recovers on its own when
//! the database is back. Any other database error (a constraint, a bug) is not an outage: it
//! fails the operation as [`StoreError::Backend`].

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio_postgres::error::SqlState;

use crate::error::StoreError;
use crate::store::StoreHealth;
use crate::types::Timestamp;

/// The first pause after a failure before writes are tried again...
const RETRY_FIRST: Duration = Duration::from_millis(500);
/// ...doubling while the outage lasts, up to this.
const RETRY_MAX: Duration = Duration::from_secs(30);

/// How an operation failed.
#[derive(Debug)]
pub(super) enum Failure {
    /// The database cannot be reached or cannot write: an outage, with its reason.
    Outage(String),
    /// Anything else, including the store's own answers (an unknown tenant, a seq conflict).
    Store(StoreError),
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Failure {
        Failure::Store(error)
    }
}

impl From<tokio_postgres::Error> for Failure {
    fn from(error: tokio_postgres::Error) -> Failure {
        let Some(database) = error.as_db_error() else {
            // No answer from the server: the connection failed or closed.
            return Failure::Outage(format!("PostgreSQL: {}", super::with_causes(&error)));
        };
        let code = database.code();
        let class = &code.code()[..2];
        // 08 connection exception, 53 insufficient resources, 57 operator intervention,
        // 58 system error; 40 a transaction rolled back by the server (serialization, deadlock).
        if matches!(class, "08" | "53" | "57" | "58" | "40") || *code == SqlState::READ_ONLY_SQL_TRANSACTION {
            return Failure::Outage(format!("PostgreSQL: {}", database.message()));
        }
        Failure::Store(StoreError::backend("running a statement on PostgreSQL", error))
    }
}

impl From<deadpool_postgres::PoolError> for Failure {
    fn from(error: deadpool_postgres::PoolError) -> Failure {
        match error {
            deadpool_postgres::PoolError::Backend(error) => Failure::from(error),
            other => Failure::Outage(format!("PostgreSQL: no connection: {other}")),
        }
    }
}

/// Whether writes are possible, and if not, since when and until when they are refused.
pub(super) struct Health {
    state: Mutex<State>,
}

enum State {
    Ready,
    Failed {
        since: Timestamp,
        reason: String,
        /// When writes are tried again.
        retry_at: Instant,
        /// The pause after the next failure.
        next_pause: Duration,
    },
}

impl Health {
    pub(super) fn new() -> Health {
        Health {
            state: Mutex::new(State::Ready),
        }
    }

    /// The refusal of a write made now, during an outage's pause; `None` when a write may be
    /// tried (the store is ready, or the pause is over).
    pub(super) fn refuse_now(&self) -> Option<StoreError> {
        let now = Instant::now();
        match &*self.state.lock().unwrap_or_else(|p| p.into_inner()) {
            State::Ready => None,
            State::Failed { retry_at, .. } if now >= *retry_at => None,
            State::Failed { reason, retry_at, .. } => Some(StoreError::Unavailable {
                reason: reason.clone(),
                retry_after: retry_at.saturating_duration_since(now),
            }),
        }
    }

    /// Whether the store is in an outage whose pause is over: time to try the database.
    pub(super) fn due_for_check(&self) -> bool {
        match &*self.state.lock().unwrap_or_else(|p| p.into_inner()) {
            State::Ready => false,
            State::Failed { retry_at, .. } => Instant::now() >= *retry_at,
        }
    }

    /// Records an outage; returns the error to give the operation that met it.
    ///
    /// The pause grows only when an attempt made after the last pause fails: operations that
    /// were already under way when the outage began (an append, the read of the head after
    /// it, a commit of the group) fail together, and counting each as an attempt would make a
    /// restart of a second or two refuse writes for half a minute.
    pub(super) fn failed(&self, reason: String) -> StoreError {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if let State::Failed { retry_at, .. } = &*state
            && now < *retry_at
        {
            return StoreError::Unavailable {
                reason,
                retry_after: retry_at.saturating_duration_since(now),
            };
        }
        let (since, pause) = match &*state {
            State::Ready => (Timestamp::now(), RETRY_FIRST),
            State::Failed { since, next_pause, .. } => (*since, *next_pause),
        };
        tracing::error!(
            %reason,
            retry_in_ms = pause.as_millis() as u64,
            "the log database cannot be written; refusing writes until it can"
        );
        *state = State::Failed {
            since,
            reason: reason.clone(),
            retry_at: now + pause,
            next_pause: (pause * 2).min(RETRY_MAX),
        };
        StoreError::Unavailable {
            reason,
            retry_after: pause,
        }
    }

    /// Records that a write went through.
    pub(super) fn recovered(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(*state, State::Failed { .. }) {
            tracing::info!("the log database takes writes again");
            *state = State::Ready;
        }
    }

    /// Whether the store can take writes.
    pub(super) fn report(&self) -> StoreHealth {
        match &*self.state.lock().unwrap_or_else(|p| p.into_inner()) {
            State::Ready => StoreHealth::Ready,
            State::Failed { since, reason, .. } => StoreHealth::Unavailable {
                since: *since,
                reason: reason.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scale-out issue, faults: a PostgreSQL restart of under a second left writes refused for
    /// about 30 s, because every operation in flight when the connection closed doubled the
    /// pause (0.5, 1, 2, 4… s within a few milliseconds).
    #[test]
    fn failures_within_one_pause_do_not_lengthen_it() {
        let health = Health::new();
        let first = health.failed("connection closed".to_owned());
        for _ in 0..10 {
            health.failed("connection refused".to_owned());
        }
        let StoreError::Unavailable { retry_after, .. } = first else {
            panic!("an outage is Unavailable");
        };
        assert_eq!(retry_after, RETRY_FIRST);
        let Some(StoreError::Unavailable { retry_after, .. }) = health.refuse_now() else {
            panic!("writes are refused during the pause");
        };
        assert!(retry_after <= RETRY_FIRST, "{retry_after:?}");
    }

    #[test]
    fn a_failed_attempt_after_the_pause_doubles_it_up_to_the_most() {
        let health = Health::new();
        health.failed("down".to_owned());
        let mut expected = RETRY_FIRST;
        for _ in 0..10 {
            // The pause is over: the next failure is a new attempt.
            if let State::Failed { retry_at, .. } = &mut *health.state.lock().unwrap() {
                *retry_at = Instant::now();
            }
            expected = (expected * 2).min(RETRY_MAX);
            let StoreError::Unavailable { retry_after, .. } = health.failed("still down".to_owned()) else {
                panic!("an outage is Unavailable");
            };
            assert_eq!(retry_after, expected);
        }
        health.recovered();
        assert!(health.refuse_now().is_none());
        assert!(matches!(health.report(), StoreHealth::Ready));
    }
}
