//! The history index: what the log says about the past, kept so that point-in-time questions
//! need no replay. The time of every record, every membership change per group, and the
//! records that touched each user or group.
//!
//! It is append-only and lives beside the state, not inside it: one index serves every state
//! of the tenant, and each question is asked "as of" a `seq`, ignoring what came later. That
//! keeps the persistent state small and the writer's appends cheap (a push on a vector, no
//! copy-on-write). The writer appends only what it has committed.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::ids::{GroupId, Member, Seq, Timestamp, UserId};
use crate::state::Effects;

/// The maps of the index are keyed by ids the engine itself generated, so a fast hash with a
/// fixed seed is safe here: no client picks these keys.
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

/// A member joining or leaving a group.
///
/// Packed: a tenant keeps one per membership change it ever logged (10M on the largest
/// benchmark tenant), and aligned they took 32 bytes each where their fields need 26. Read its
/// fields by value; a reference to one is refused by the compiler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[repr(C, packed)]
pub struct MembershipChange {
    /// The record that made the change.
    pub seq: Seq,
    /// Who joined or left.
    pub member: Member,
    /// `true` for joining, `false` for leaving.
    pub joined: bool,
}

const _: () = assert!(std::mem::size_of::<MembershipChange>() == 26);

/// A span of the log during which a member was directly in a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct MembershipInterval {
    /// The record that added the member.
    pub from: Seq,
    /// The record that removed it; `None` while it is still a member (as of the question).
    pub until: Option<Seq>,
}

/// What a run of consecutive records changed, for [`History::record_batch`]: kept flat, so
/// that a batch costs a few allocations however many records it holds.
#[derive(Clone, Debug, Default)]
pub(crate) struct EffectsBatch {
    /// Each record with the ends of its parts in the two lists below.
    records: Vec<(Seq, Timestamp, usize, usize)>,
    memberships: Vec<(GroupId, Member, bool)>,
    touched: Vec<Member>,
}

impl EffectsBatch {
    /// Adds the record at `seq` and what folding it changed.
    pub(crate) fn push(&mut self, seq: Seq, recorded_at: Timestamp, effects: &Effects) {
        self.memberships.extend_from_slice(&effects.memberships);
        self.touched.extend_from_slice(&effects.touched);
        self.records
            .push((seq, recorded_at, self.memberships.len(), self.touched.len()));
    }

    /// How many records it holds.
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether it holds no record.
    pub(crate) fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// The history index of one tenant's log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// `times[i]` is the `recorded_at` of `Seq(i + 1)`.
    pub(crate) times: Vec<Timestamp>,
    /// Every membership change, per group, in log order.
    pub(crate) group_changes: HashMap<GroupId, Vec<MembershipChange>>,
    /// Every record that changed a user or group's own record or its memberships as a member,
    /// per member, in log order.
    pub(crate) member_events: HashMap<Member, Vec<Seq>>,
}

fn until(seq: Seq) -> impl Fn(&MembershipChange) -> bool {
    move |change| { change.seq } <= seq
}

impl History {
    /// An empty index.
    pub fn new() -> History {
        History::default()
    }

    /// The last record it covers.
    pub fn seq(&self) -> Seq {
        Seq(self.times.len() as u64)
    }

    /// Adds the record at `seq`, which must be the next one.
    pub fn record(&mut self, seq: Seq, recorded_at: Timestamp, effects: &Effects) {
        self.record_parts(seq, recorded_at, &effects.memberships, &effects.touched);
    }

    /// Adds every record of `batch`, in order; the first must be the next one.
    pub(crate) fn record_batch(&mut self, batch: &EffectsBatch) {
        let (mut memberships, mut touched) = (0, 0);
        for &(seq, recorded_at, memberships_end, touched_end) in &batch.records {
            self.record_parts(
                seq,
                recorded_at,
                &batch.memberships[memberships..memberships_end],
                &batch.touched[touched..touched_end],
            );
            (memberships, touched) = (memberships_end, touched_end);
        }
    }

    fn record_parts(
        &mut self,
        seq: Seq,
        recorded_at: Timestamp,
        memberships: &[(GroupId, Member, bool)],
        touched: &[Member],
    ) {
        debug_assert_eq!(seq, self.seq().next(), "history records are appended in order");
        self.times.push(recorded_at);
        for &(group, member, joined) in memberships {
            self.group_changes
                .entry(group)
                .or_default()
                .push(MembershipChange { seq, member, joined });
            self.touch(member, seq);
        }
        for member in touched {
            self.touch(*member, seq);
        }
    }

    fn touch(&mut self, member: Member, seq: Seq) {
        let seqs = self.member_events.entry(member).or_default();
        // One record can touch a member twice (a deleted group leaving several groups).
        if seqs.last() != Some(&seq) {
            seqs.push(seq);
        }
    }

    /// The last record at or before `moment`, as of `as_of`: how far the log had got then.
    /// [`Seq::ZERO`] if `moment` is before the first record.
    pub fn seq_at(&self, moment: Timestamp, as_of: Seq) -> Seq {
        let known = (as_of.0 as usize).min(self.times.len());
        // `times` never decreases, so the records at or before `moment` are a prefix.
        Seq(self.times[..known].partition_point(|time| *time <= moment) as u64)
    }

    /// When a record was recorded.
    pub fn recorded_at(&self, seq: Seq) -> Option<Timestamp> {
        let index = usize::try_from(seq.0).ok()?.checked_sub(1)?;
        self.times.get(index).copied()
    }

    /// Every membership change of a group up to `seq`, in log order.
    pub fn group_changes(&self, group: GroupId, seq: Seq) -> &[MembershipChange] {
        let changes = self.group_changes.get(&group).map_or(&[][..], Vec::as_slice);
        &changes[..changes.partition_point(until(seq))]
    }

    /// The records up to `seq` that touched a user or group, in log order.
    pub fn member_events(&self, member: Member, seq: Seq) -> &[Seq] {
        let seqs = self.member_events.get(&member).map_or(&[][..], Vec::as_slice);
        &seqs[..seqs.partition_point(|s| *s <= seq)]
    }

    /// A group's direct members just after record `seq`.
    pub fn direct_members_at(&self, group: GroupId, seq: Seq) -> BTreeSet<Member> {
        let mut members = BTreeSet::new();
        for change in self.group_changes(group, seq) {
            if change.joined {
                members.insert(change.member);
            } else {
                members.remove(&change.member);
            }
        }
        members
    }

    /// The users in a group just after record `seq`, through nested groups too (cycle-safe).
    pub fn effective_users_at(&self, group: GroupId, seq: Seq) -> BTreeSet<UserId> {
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

    /// The spans up to `seq` during which `member` was directly in `group`.
    pub fn membership_intervals(&self, group: GroupId, member: Member, seq: Seq) -> Vec<MembershipInterval> {
        let mut intervals: Vec<MembershipInterval> = Vec::new();
        for change in self
            .group_changes(group, seq)
            .iter()
            .filter(|change| change.member == member)
        {
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

    /// Forgets everything after `seq` (used when an index was built past what is wanted).
    pub fn truncate(&mut self, seq: Seq) {
        self.times.truncate(seq.0 as usize);
        for changes in self.group_changes.values_mut() {
            changes.truncate(changes.partition_point(until(seq)));
        }
        self.group_changes.retain(|_, changes| !changes.is_empty());
        for seqs in self.member_events.values_mut() {
            seqs.truncate(seqs.partition_point(|s| *s <= seq));
        }
        self.member_events.retain(|_, seqs| !seqs.is_empty());
    }
}
