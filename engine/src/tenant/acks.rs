//! Acknowledgements: the consumer of the change stream (the management server) says which
//! revocations it has applied, so that an offboarding is known to be over when the network
//! stops honouring the access, not when the engine decided it should.
//!
//! A change is named by its stream id `<seq>.<i>`: the `i`-th access change the record at
//! `seq` projected, counted from 1 (`<seq>` alone, or `<seq>.0`, is the event) ([`ChangeId`]). [`Tenant::acknowledge`] finds that change (from the recent
//! ring, or by replaying the log to it, as the change stream does), checks it is a revocation,
//! and records [`Event::RevocationAcknowledged`](crate::Event::RevocationAcknowledged) through
//! the writer: the log is the record, so audits and replays see it. Acknowledging twice
//! records once.
//!
//! The tenant also keeps, in memory, the revocations it has published and no acknowledgement
//! has answered yet ([`Acks`]), for the alert on those overdue ([`Tenant::overdue_revocations`])
//! and the metrics: `idpsync_revocation_ack_seconds` (a histogram of revocation to
//! acknowledgement) and `idpsync_overdue_revocations` (a gauge); and, for a revocation whose
//! cause the IdP dated, `idpsync_idp_change_to_revocation_seconds` (a histogram of the IdP's
//! change to the revocation). A revocation is watched for
//! [`WATCHED_FOR`]; one still unacknowledged after that is left to the leavers' report, which
//! reads the log, so that memory stays bounded when no consumer acknowledges. After a start,
//! the revocations of that window are read back from the log
//! ([`Tenant::recall_unacknowledged`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use idpsync_storage::{Seq, Timestamp};

use super::Tenant;
use super::apply::Applied;
use crate::command::{Command, Origin};
use crate::error::{EngineError, SubmitError};
use crate::event::Event;
use crate::ids::{Member, UserId};
use crate::projector::AccessDirection;
use crate::rejection::Rejection;

/// How long a revocation is watched for its acknowledgement (see the module docs).
pub const WATCHED_FOR: Duration = Duration::from_secs(24 * 3600);

/// An access change as the change stream names it: `<seq>.<i>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChangeId {
    /// The record that caused it.
    pub seq: Seq,
    /// Its place among that record's access changes, from 1, as the stream numbers them.
    pub index: u32,
}

impl ChangeId {
    /// The change of the record at `seq` at `position` (from 0) among its access changes.
    pub fn of(seq: Seq, position: usize) -> ChangeId {
        ChangeId {
            seq,
            index: position as u32 + 1,
        }
    }

    /// Its position (from 0) among the record's access changes; `None` for index 0, the event.
    pub fn position(&self) -> Option<usize> {
        (self.index as usize).checked_sub(1)
    }
}

impl fmt::Display for ChangeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.seq.0, self.index)
    }
}

impl FromStr for ChangeId {
    type Err = String;

    fn from_str(text: &str) -> Result<ChangeId, String> {
        let invalid = || format!("{text:?} is not an access change's id, `<seq>.<i>` such as \"42.0\"");
        let (seq, index) = text.split_once('.').ok_or_else(invalid)?;
        let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if !digits(seq) || !digits(index) {
            return Err(invalid());
        }
        Ok(ChangeId {
            seq: Seq(seq.parse().map_err(|_| invalid())?),
            index: index.parse().map_err(|_| invalid())?,
        })
    }
}

/// What acknowledging a revocation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acknowledgement {
    /// The change.
    pub change: ChangeId,
    /// Whose access it revoked.
    pub user: UserId,
    /// Whether this call recorded it (`false`: it was acknowledged before).
    pub recorded: bool,
    /// When the revocation was recorded.
    pub revoked_at: Timestamp,
}

/// Why an acknowledgement was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum AcknowledgeError {
    /// Refused ([`Rejection::ChangeNotFound`], [`Rejection::NotARevocation`]), or the write
    /// failed.
    #[error(transparent)]
    Submit(#[from] SubmitError),
    /// The log could not be read back to the change.
    #[error(transparent)]
    Read(#[from] EngineError),
}

impl From<Rejection> for AcknowledgeError {
    fn from(rejection: Rejection) -> Self {
        AcknowledgeError::Submit(SubmitError::Rejected(rejection))
    }
}

/// Revocations published and not acknowledged, as far as this process has seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overdue {
    /// Revocations unacknowledged for longer than the threshold.
    pub count: u64,
    /// When the oldest of them was recorded.
    pub oldest: Option<Timestamp>,
}

/// A revocation waiting for its acknowledgement.
#[derive(Clone, Copy, Debug)]
struct Waiting {
    user: UserId,
    revoked_at: Timestamp,
}

/// The tenant's revocations that wait for an acknowledgement.
#[derive(Default)]
pub(super) struct Acks {
    inner: Mutex<AcksInner>,
}

#[derive(Default)]
struct AcksInner {
    waiting: BTreeMap<ChangeId, Waiting>,
    /// While the log is read back after a start: the acknowledgements published meanwhile, so
    /// that a revocation read back is not taken for waiting when its answer came live.
    recalling: Option<BTreeSet<ChangeId>>,
}

impl Acks {
    // A std mutex: held for short, synchronous sections only, never across an await.
    fn lock(&self) -> MutexGuard<'_, AcksInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes what a published record revoked or acknowledged.
    pub(super) fn note(&self, tenant: &Tenant, applied: &Applied) {
        let mut inner = self.lock();
        let at = applied.event.recorded_at;
        idp_change_to_revocation(tenant, applied);
        for (position, change) in applied.access.iter().enumerate() {
            if change.direction == AccessDirection::Revoked {
                let id = ChangeId::of(change.seq, position);
                inner.waiting.insert(
                    id,
                    Waiting {
                        user: change.user,
                        revoked_at: at,
                    },
                );
            }
        }
        if let Event::RevocationAcknowledged { seq, index, .. } = &applied.event.envelope.event {
            let id = ChangeId {
                seq: *seq,
                index: *index,
            };
            if let Some(recalling) = &mut inner.recalling {
                recalling.insert(id);
            }
            let revoked_at = match inner.waiting.remove(&id) {
                Some(waiting) => Some(waiting.revoked_at),
                // Just after a start, while the history index loads, the time is not waited for.
                None => tenant
                    .with_history_now(|history, _| history.recorded_at(*seq))
                    .flatten(),
            };
            if let Some(revoked_at) = revoked_at {
                let seconds = (at.0 - revoked_at.0).max(0) as f64 / 1e6;
                metrics::histogram!("idpsync_revocation_ack_seconds", "tenant" => tenant.id.to_string())
                    .record(seconds);
            }
        }
    }
}

/// Records, for a record that revoked access because of a change the IdP dated, the time from
/// that change to the revocation in `idpsync_idp_change_to_revocation_seconds`.
fn idp_change_to_revocation(tenant: &Tenant, applied: &Applied) {
    let Some(changed_at) = applied.event.envelope.cause.idp_changed_at() else {
        return;
    };
    if applied
        .access
        .iter()
        .any(|change| change.direction == AccessDirection::Revoked)
    {
        let seconds = (applied.event.recorded_at.0 - changed_at.0).max(0) as f64 / 1e6;
        metrics::histogram!("idpsync_idp_change_to_revocation_seconds", "tenant" => tenant.id.to_string())
            .record(seconds);
    }
}

impl Tenant {
    /// Records that the consumer of the change stream applied the revocation `change`, on
    /// behalf of `origin` (the admin token). Refused with [`Rejection::ChangeNotFound`] when
    /// the log has no such change, and [`Rejection::NotARevocation`] when it granted access;
    /// a revocation acknowledged before is not recorded again.
    pub async fn acknowledge(
        self: &Arc<Self>,
        change: ChangeId,
        origin: Origin,
    ) -> Result<Acknowledgement, AcknowledgeError> {
        let not_found = || Rejection::ChangeNotFound {
            seq: change.seq,
            index: change.index,
        };
        if change.seq == Seq::ZERO || change.seq > self.state().seq() {
            return Err(not_found().into());
        }
        // The change stream's own way to the record's projection: the recent ring, or the log.
        let applied = self.subscribe(change.seq).next().await?;
        let revocation = change
            .position()
            .and_then(|position| applied.access.get(position))
            .ok_or_else(not_found)?;
        if revocation.direction != AccessDirection::Revoked {
            return Err(Rejection::NotARevocation {
                seq: change.seq,
                index: change.index,
            }
            .into());
        }
        let acknowledgement = |recorded| Acknowledgement {
            change,
            user: revocation.user,
            recorded,
            revoked_at: applied.event.recorded_at,
        };
        if self.acknowledged_before(revocation.user, change).await? {
            return Ok(acknowledgement(false));
        }
        let command = Command::AcknowledgeRevocation {
            user: revocation.user,
            seq: change.seq,
            index: change.index,
            resource: revocation.resource.clone(),
            role: revocation.role,
            via: revocation.via,
        };
        self.execute(command, origin).await?;
        Ok(acknowledgement(true))
    }

    /// Whether the user's timeline already has the acknowledgement of `change`.
    async fn acknowledged_before(&self, user: UserId, change: ChangeId) -> Result<bool, EngineError> {
        let timeline = self.timeline(Member::User(user)).await?;
        Ok(timeline.iter().any(|entry| {
            matches!(
                entry.event.envelope.event,
                Event::RevocationAcknowledged { seq, index, .. } if seq == change.seq && index == change.index
            )
        }))
    }

    /// The revocations unacknowledged for longer than the tenant's
    /// [`revocation_ack_within`](super::TenantSettings::revocation_ack_within) as of `now`,
    /// among those of the last [`WATCHED_FOR`] this process published or read back (older
    /// ones are forgotten here); sets the `idpsync_overdue_revocations` gauge to their count.
    pub fn overdue_revocations(&self, now: Timestamp) -> Overdue {
        let within = micros(self.settings.revocation_ack_within);
        let deadline = now.0.saturating_sub(within);
        let watched_since = now.0.saturating_sub(micros(WATCHED_FOR));
        let mut inner = self.acks.lock();
        inner.waiting.retain(|_, waiting| waiting.revoked_at.0 >= watched_since);
        let mut overdue = Overdue::default();
        for waiting in inner.waiting.values().filter(|waiting| waiting.revoked_at.0 < deadline) {
            overdue.count += 1;
            overdue.oldest = Some(
                overdue
                    .oldest
                    .map_or(waiting.revoked_at, |oldest| oldest.min(waiting.revoked_at)),
            );
        }
        metrics::gauge!("idpsync_overdue_revocations", "tenant" => self.id.to_string()).set(overdue.count as f64);
        overdue
    }

    /// The revocations waiting for an acknowledgement, oldest first: each change, whose access
    /// it revoked, and when.
    pub fn unacknowledged_revocations(&self) -> Vec<(ChangeId, UserId, Timestamp)> {
        self.acks
            .lock()
            .waiting
            .iter()
            .map(|(id, waiting)| (*id, waiting.user, waiting.revoked_at))
            .collect()
    }

    /// Reads back from the log the revocations recorded since `since` that no acknowledgement
    /// answered, so that those of before a start are waited for too. Records published while it
    /// reads are noted as usual.
    pub async fn recall_unacknowledged(self: &Arc<Self>, since: Timestamp) -> Result<(), EngineError> {
        let head = self.state().seq();
        let from = self.seq_at(since).await.next();
        self.acks.lock().recalling = Some(BTreeSet::new());
        let mut waiting: BTreeMap<ChangeId, Waiting> = BTreeMap::new();
        let mut stream = self.subscribe(from);
        let read = async {
            while stream.position() <= head {
                let applied = stream.next().await?;
                for (position, change) in applied.access.iter().enumerate() {
                    if change.direction == AccessDirection::Revoked {
                        let id = ChangeId::of(change.seq, position);
                        let revoked_at = applied.event.recorded_at;
                        waiting.insert(
                            id,
                            Waiting {
                                user: change.user,
                                revoked_at,
                            },
                        );
                    }
                }
                if let Event::RevocationAcknowledged { seq, index, .. } = &applied.event.envelope.event {
                    waiting.remove(&ChangeId {
                        seq: *seq,
                        index: *index,
                    });
                }
            }
            Ok::<(), EngineError>(())
        };
        let outcome = read.await;
        let mut inner = self.acks.lock();
        let answered = inner.recalling.take().unwrap_or_default();
        if outcome.is_ok() {
            for (id, entry) in waiting {
                if !answered.contains(&id) {
                    inner.waiting.entry(id).or_insert(entry);
                }
            }
        }
        outcome
    }
}

/// A duration in microseconds, as [`Timestamp`]s count.
fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_ids_read_as_the_stream_writes_them() {
        let id: ChangeId = "42.3".parse().unwrap();
        assert_eq!(id, ChangeId { seq: Seq(42), index: 3 });
        assert_eq!(id.to_string(), "42.3");
        for bad in [
            "42",
            "42.",
            ".3",
            "a.b",
            "42.3.1",
            "-1.0",
            "42.+3",
            "99999999999999999999999.0",
        ] {
            assert!(bad.parse::<ChangeId>().is_err(), "{bad:?}");
        }
    }
}
