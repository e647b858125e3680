//! [`IdpTimes`]: when the IdP itself says the changes of a listing happened, where it says so
//! (a change feed's entry, an object's time of its last status change). The plan writes them
//! into the events it makes for those changes ([`crate::Cause::IdpObjectChanged`]), so that an
//! offboarding's chain starts at the IdP's change rather than at the run that read it.

use std::collections::HashMap;

use super::snapshot::Membership;
use crate::ids::Timestamp;

/// The IdP's own times of a listing's changes, by the IdP's ids; each the latest it reported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdpTimes {
    /// Users: when each was deactivated or deleted.
    users: HashMap<String, Timestamp>,
    /// Groups: when each was deleted.
    groups: HashMap<String, Timestamp>,
    /// Membership edges: when each was removed.
    left: HashMap<Membership, Timestamp>,
}

/// Keeps the later of the time held for `key` and `at`.
fn keep_latest<K: std::hash::Hash + Eq>(times: &mut HashMap<K, Timestamp>, key: K, at: Timestamp) {
    times
        .entry(key)
        .and_modify(|held| *held = (*held).max(at))
        .or_insert(at);
}

impl IdpTimes {
    /// Notes when the IdP deactivated or deleted a user.
    pub fn user(&mut self, external_id: &str, at: Timestamp) {
        keep_latest(&mut self.users, external_id.to_owned(), at);
    }

    /// Notes when the IdP deleted a group.
    pub fn group(&mut self, external_id: &str, at: Timestamp) {
        keep_latest(&mut self.groups, external_id.to_owned(), at);
    }

    /// Notes when the IdP removed a membership edge.
    pub fn left(&mut self, edge: Membership, at: Timestamp) {
        keep_latest(&mut self.left, edge, at);
    }

    /// When the IdP deactivated or deleted the user, if it said.
    pub fn of_user(&self, external_id: &str) -> Option<Timestamp> {
        self.users.get(external_id).copied()
    }

    /// When the IdP deleted the group, if it said.
    pub fn of_group(&self, external_id: &str) -> Option<Timestamp> {
        self.groups.get(external_id).copied()
    }

    /// When the IdP removed the edge, if it said.
    pub fn of_left(&self, edge: &Membership) -> Option<Timestamp> {
        self.left.get(edge).copied()
    }

    /// Whether no time is known.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.groups.is_empty() && self.left.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::ExternalMember;

    #[test]
    fn the_latest_time_reported_is_kept() {
        let mut times = IdpTimes::default();
        assert!(times.is_empty());
        times.user("u1", Timestamp(20));
        times.user("u1", Timestamp(10));
        times.group("g1", Timestamp(5));
        times.group("g1", Timestamp(7));
        let edge = Membership {
            group: "g1".into(),
            member: ExternalMember::User("u1".into()),
        };
        times.left(edge.clone(), Timestamp(3));
        assert_eq!(times.of_user("u1"), Some(Timestamp(20)));
        assert_eq!(times.of_user("u2"), None);
        assert_eq!(times.of_group("g1"), Some(Timestamp(7)));
        assert_eq!(times.of_left(&edge), Some(Timestamp(3)));
        assert!(!times.is_empty());
    }
}
