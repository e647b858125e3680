//! What the log says about the past, kept folded so that point-in-time questions need no replay:
//! the time of every record, every membership change per group, and the records that touched
//! each user or group.
//!
//! All three are append-only persistent vectors: the fold pushes, a clone shares.

use std::collections::BTreeSet;

use imbl::{OrdMap, Vector};
use serde::{Deserialize, Serialize};

use crate::ids::{GroupId, Member, Seq, Timestamp};

/// A member joining or leaving a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipChange {
    /// The record that made the change.
    pub seq: Seq,
    /// Who joined or left.
    pub member: Member,
    /// `true` for joining, `false` for leaving.
    pub joined: bool,
}

/// A span of the log during which a member was directly in a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct MembershipInterval {
    /// The record that added the member.
    pub from: Seq,
    /// The record that removed it; `None` while it is still a member.
    pub until: Option<Seq>,
}

/// The folded history of a tenant's log.
#[derive(Clone, Default)]
pub struct History {
    /// `times[i]` is the `recorded_at` of `Seq(i + 1)`.
    pub(crate) times: Vector<Timestamp>,
    /// Every membership change, per group, in log order.
    pub(crate) group_changes: OrdMap<GroupId, Vector<MembershipChange>>,
    /// Every record that changed a user or group (its attributes, state or memberships), per
    /// member, in log order.
    pub(crate) member_events: OrdMap<Member, Vector<Seq>>,
}

impl History {
    /// The last record at or before `moment`: how far the log had got at that time.
    /// [`Seq::ZERO`] if `moment` is before the first record.
    pub fn seq_at(&self, moment: Timestamp) -> Seq {
        // `times` never decreases, so the records at or before `moment` are a prefix.
        let count = match self.times.binary_search_by(|time| {
            if *time <= moment {
                std::cmp::Ordering::Less
            } else {
                std::cmp::Ordering::Greater
            }
        }) {
            Ok(index) | Err(index) => index,
        };
        Seq(count as u64)
    }

    /// When a record was recorded.
    pub fn recorded_at(&self, seq: Seq) -> Option<Timestamp> {
        let index = usize::try_from(seq.0).ok()?.checked_sub(1)?;
        self.times.get(index).copied()
    }

    /// Every membership change of a group, in log order.
    pub fn group_changes(&self, group: GroupId) -> impl Iterator<Item = &MembershipChange> + '_ {
        self.group_changes.get(&group).into_iter().flatten()
    }

    /// The records that touched a user or group, in log order.
    pub fn member_events(&self, member: Member) -> impl Iterator<Item = Seq> + '_ {
        self.member_events.get(&member).into_iter().flatten().copied()
    }

    /// A group's direct members just after record `seq`.
    pub fn direct_members_at(&self, group: GroupId, seq: Seq) -> BTreeSet<Member> {
        let mut members = BTreeSet::new();
        for change in self.group_changes(group).take_while(|change| change.seq <= seq) {
            if change.joined {
                members.insert(change.member);
            } else {
                members.remove(&change.member);
            }
        }
        members
    }

    /// The users in a group just after record `seq`, through nested groups too (cycle-safe).
    pub fn effective_users_at(&self, group: GroupId, seq: Seq) -> BTreeSet<crate::ids::UserId> {
        let mut users = BTreeSet::new();
        let mut seen = BTreeSet::from([group]);
        let mut pending = vec![group];
        while let Some(current) = pending.pop() {
            for member in self.direct_members_at(current, seq) {
                match member {
                    Member::User(user) => {
                        users.insert(user);
                    }
                    Member::Group(nested) => {
                        if seen.insert(nested) {
                            pending.push(nested);
                        }
                    }
                }
            }
        }
        users
    }

    /// The spans during which `member` was directly in `group`.
    pub fn membership_intervals(&self, group: GroupId, member: Member) -> Vec<MembershipInterval> {
        let mut intervals: Vec<MembershipInterval> = Vec::new();
        for change in self.group_changes(group).filter(|change| change.member == member) {
            match (change.joined, intervals.last_mut()) {
                (true, Some(MembershipInterval { until: None, .. })) => {}
                (true, _) => intervals.push(MembershipInterval {
                    from: change.seq,
                    until: None,
                }),
                (false, Some(open @ MembershipInterval { until: None, .. })) => open.until = Some(change.seq),
                (false, _) => {}
            }
        }
        intervals
    }

    pub(crate) fn record(&mut self, recorded_at: Timestamp) {
        self.times.push_back(recorded_at);
    }

    pub(crate) fn membership(&mut self, group: GroupId, change: MembershipChange) {
        match self.group_changes.get_mut(&group) {
            Some(changes) => changes.push_back(change),
            None => {
                self.group_changes.insert(group, Vector::unit(change));
            }
        }
        self.touch(change.member, change.seq);
        self.touch(Member::Group(group), change.seq);
    }

    pub(crate) fn touch(&mut self, member: Member, seq: Seq) {
        match self.member_events.get_mut(&member) {
            Some(seqs) => {
                // One record can touch a member twice (a group gaining several members).
                if seqs.last() != Some(&seq) {
                    seqs.push_back(seq);
                }
            }
            None => {
                self.member_events.insert(member, Vector::unit(seq));
            }
        }
    }
}
