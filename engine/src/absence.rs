//! Absences: what an integration's complete listing no longer contains, before it counts as
//! gone.
//!
//! A user, group or membership missing from one listing is not proof that it left the IdP: a
//! flaky answer, a permissions change or a paging bug can drop part of a directory for one
//! run. So absence alone takes effect only once it has been witnessed by
//! [`AbsenceRules::listings`] consecutive complete listings, or has lasted
//! [`AbsenceRules::after`]. Until then it is *pending*: each complete run that finds something
//! absent, or clears what was pending, records [`Event::AbsencesObserved`] with everything
//! still pending after it, and the fold keeps the count ([`Absence`]) per integration. The log
//! is the truth for the count: a restart, a replay or another replica reading the same log
//! counts the same.
//!
//! Positive signals are never delayed: a deletion an incremental listing reports, a user the
//! IdP lists as suspended, a SCIM `DELETE` or `active=false`.
//!
//! [`Event::AbsencesObserved`]: crate::Event::AbsencesObserved

use std::num::NonZeroU32;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ids::{GroupId, Member, Timestamp, UserId};

/// Something of an integration's that a complete listing did not contain, by the engine's ids
/// (never the IdP's, which are personal data sealed with the user's profile).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Absent {
    /// A user the integration owns.
    User(UserId),
    /// A group the integration owns.
    Group(GroupId),
    /// A direct membership in a group the integration owns.
    Membership {
        /// The group.
        group: GroupId,
        /// The member.
        member: Member,
    },
}

/// How long something has been absent without taking effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Absence {
    /// Consecutive complete listings it was absent from.
    pub listings: u32,
    /// When the first of them was recorded.
    pub since: Timestamp,
}

/// An integration's settings for absence alone: when something no complete listing contains
/// any more is removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbsenceRules {
    /// Consecutive complete listings that must not contain it (1: the first one suffices).
    pub listings: NonZeroU32,
    /// Or: how long it must have been absent, if set (checked at each complete listing).
    pub after: Option<Duration>,
}

impl AbsenceRules {
    /// Absence takes effect at the first complete listing that shows it.
    pub const IMMEDIATE: AbsenceRules = AbsenceRules {
        listings: NonZeroU32::MIN,
        after: None,
    };

    /// Whether an absence, pending as `prior` (`None`: first seen now), takes effect at a
    /// complete listing made at `now` that does not contain it either.
    pub fn takes_effect(&self, prior: Option<&Absence>, now: Timestamp) -> bool {
        let seen = prior.map_or(1, |absence| absence.listings.saturating_add(1));
        if seen >= self.listings.get() {
            return true;
        }
        match (self.after, prior) {
            (Some(after), Some(absence)) => {
                let lasted = now.0.saturating_sub(absence.since.0);
                lasted >= i64::try_from(after.as_micros()).unwrap_or(i64::MAX)
            }
            _ => false,
        }
    }
}

impl Default for AbsenceRules {
    /// Two consecutive complete listings, no time limit.
    fn default() -> Self {
        AbsenceRules {
            listings: NonZeroU32::new(2).expect("2 is not zero"),
            after: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(listings: u32, after: Option<u64>) -> AbsenceRules {
        AbsenceRules {
            listings: NonZeroU32::new(listings).unwrap(),
            after: after.map(Duration::from_secs),
        }
    }

    fn pending(listings: u32, since_secs: i64) -> Absence {
        Absence {
            listings,
            since: Timestamp(since_secs * 1_000_000),
        }
    }

    #[test]
    fn absence_takes_effect_at_the_nth_consecutive_listing() {
        let now = Timestamp(100 * 1_000_000);
        assert!(!rules(2, None).takes_effect(None, now));
        assert!(rules(2, None).takes_effect(Some(&pending(1, 99)), now));
        assert!(!rules(3, None).takes_effect(Some(&pending(1, 99)), now));
        assert!(rules(3, None).takes_effect(Some(&pending(2, 98)), now));
        assert!(AbsenceRules::IMMEDIATE.takes_effect(None, now));
    }

    #[test]
    fn absence_takes_effect_once_it_has_lasted_long_enough() {
        let now = Timestamp(1000 * 1_000_000);
        let ten_minutes = rules(5, Some(600));
        assert!(!ten_minutes.takes_effect(None, now));
        assert!(!ten_minutes.takes_effect(Some(&pending(1, 1000 - 599)), now));
        assert!(ten_minutes.takes_effect(Some(&pending(1, 1000 - 600)), now));
    }
}
