//! The writer's turn on a store several replicas append to. A replica's writer decides on its
//! own state and appends conditionally on its head; when another replica appended first, the
//! batch loses its place, and the writer folds in the other's records and decides again.
//! Replicas writing one tenant at once would lose most of their batches that way, and a command
//! that lost its place `REDECIDE_MAX` times in a row (the writer's bound) failed.
//!
//! So on a shared store a writer takes the tenant's turn ([`LogStore::write_turn`]) before it
//! decides anything it will append, and folds in what the others appended; until it gives the
//! turn back, its appends are the only ones. It keeps the turn while nobody else asks for it
//! (a replica that writes alone takes it once and pays nothing after), and gives it back at
//! the first moment nothing of its own is in flight once another writer waits for it: it asks
//! whether one does after [`TURN_LINGER`] without jobs and every [`TURN_LONGEST`] while jobs
//! keep coming (then it stops taking jobs until its pipeline is empty), so the others wait
//! about that long at most. A turn kept [`IDLE_CHECKS_MAX`] idle checks is given back anyway.
//!
//! A writer that cannot get its turn (no connection for turns free: it does not wait for one;
//! the holder stuck; the database failing) decides and appends without it: the conditional
//! append still keeps the log whole, and a lost place is decided again.
//!
//! [`LogStore::write_turn`]: idpsync_storage::LogStore::write_turn

use std::time::{Duration, Instant};

use idpsync_storage::{StoreHealth, WriteTurn};

use super::Tenant;

/// How long a writer with nothing to do waits before it asks whether another wants its turn.
const TURN_LINGER: Duration = Duration::from_millis(2);
/// How long an idle writer waits between its later checks.
const IDLE_RECHECK: Duration = Duration::from_millis(20);
/// After this many idle checks in a row the turn is given back, wanted or not.
const IDLE_CHECKS_MAX: u32 = 10;
/// How often a busy writer asks whether another wants its turn.
const TURN_LONGEST: Duration = Duration::from_millis(50);

/// A writer's turn, when it holds one.
#[derive(Default)]
pub(super) struct Turn {
    held: Option<Held>,
}

struct Held {
    turn: Box<dyn WriteTurn>,
    /// When the writer last asked whether another wants the turn (or took it).
    checked: Instant,
    /// Another wants it: the writer takes no more jobs and gives it back once quiet.
    yielding: bool,
    /// Idle checks since the writer last took jobs.
    idle_checks: u32,
}

impl Turn {
    /// Whether the writer may take jobs: not while it gives its turn back.
    pub(super) fn takes_jobs(&self) -> bool {
        self.held.as_ref().is_none_or(|held| !held.yielding)
    }

    /// How long the writer, holding its turn with nothing to do, waits before
    /// [`Turn::idle`]; `None` without a turn.
    pub(super) fn idle_wait(&self) -> Option<Duration> {
        self.held.as_ref().map(|held| match held.idle_checks {
            0 => TURN_LINGER,
            _ => IDLE_RECHECK,
        })
    }

    /// Whether the writer of `tenant` would take a turn before appending: on a store other
    /// replicas append to, when it holds none.
    pub(super) fn is_wanted(&self, tenant: &Tenant) -> bool {
        self.held.is_none() && tenant.store.is_shared()
    }

    /// Waits for `tenant`'s turn, if [`Turn::is_wanted`]; returns whether it was taken now (the
    /// caller then folds in what the others appended before deciding).
    pub(super) async fn take(&mut self, tenant: &Tenant) -> bool {
        // During an outage the append fails at once anyway: no wait for a turn before it.
        if !self.is_wanted(tenant) || tenant.store.health() != StoreHealth::Ready {
            return false;
        }
        match tenant.store.write_turn(&tenant.id).await {
            Ok(Some(turn)) => {
                self.held = Some(Held {
                    turn,
                    checked: Instant::now(),
                    yielding: false,
                    idle_checks: 0,
                });
                true
            }
            Ok(None) => false,
            Err(error) => {
                // Often only that the process holds as many turns as it keeps connections for.
                tracing::debug!(tenant = %tenant.id, %error, "no write turn; appending without one");
                false
            }
        }
    }

    /// Notes that the writer took jobs.
    pub(super) fn busy(&mut self) {
        if let Some(held) = &mut self.held {
            held.idle_checks = 0;
        }
    }

    /// Called whenever the writer is about to wait, `quiet` when nothing of its own is in
    /// flight or decided: gives the turn back if another wants it (at once when quiet, else
    /// once quiet), asking every [`TURN_LONGEST`].
    pub(super) async fn tend(&mut self, quiet: bool) {
        let Some(held) = &mut self.held else {
            return;
        };
        if !held.yielding && held.checked.elapsed() >= TURN_LONGEST {
            held.checked = Instant::now();
            held.yielding = held.turn.is_wanted().await;
        }
        if held.yielding && quiet {
            self.release().await;
        }
    }

    /// The writer held its turn with nothing to do for [`Turn::idle_wait`]: gives it back if
    /// another wants it, or after [`IDLE_CHECKS_MAX`] such checks.
    pub(super) async fn idle(&mut self) {
        let Some(held) = &mut self.held else {
            return;
        };
        held.idle_checks += 1;
        held.checked = Instant::now();
        if held.idle_checks >= IDLE_CHECKS_MAX || held.turn.is_wanted().await {
            self.release().await;
        }
    }

    /// Gives the turn back, if held.
    pub(super) async fn release(&mut self) {
        if let Some(held) = self.held.take() {
            held.turn.release().await;
        }
    }
}
