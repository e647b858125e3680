//! Each member's groups, gathered from the groups' member lists as a snapshot loads.
//!
//! A large tenant has millions of memberships. Gathering them in a hash map of member → list
//! paid a random access into the map and another into the member's list per membership, and
//! was the slowest part of loading a snapshot. Here each pair goes into one of many small
//! buckets, chosen by random bits of the member's id, and each bucket is sorted on its own,
//! small enough to sort in the processor's cache; only the finished lists are sorted into
//! member order.

use imbl::OrdMap;

use super::GroupList;
use super::in_order::map_in_order;
use crate::ids::{GroupId, Member};

/// The buckets number `1 << BUCKET_BITS`.
const BUCKET_BITS: u32 = 16;

/// The memberships of a run of groups in ascending id order, gathered by member.
pub(crate) struct Inversion {
    /// The groups in the order they were added: a pair names its group by its place here.
    groups: Vec<GroupId>,
    buckets: Vec<Vec<(Member, u32)>>,
}

/// Which bucket a member's pairs go to: the last bits of its id, random in a UUID v7 (its
/// leading bits are a time, the same for the ids made in one millisecond).
fn bucket(member: &Member) -> usize {
    let id = match member {
        Member::User(user) => user.0.as_u128(),
        Member::Group(group) => group.0.as_u128(),
    };
    (id as usize) & ((1 << BUCKET_BITS) - 1)
}

impl Inversion {
    /// Room for about `memberships` pairs.
    pub(crate) fn with_capacity(memberships: usize) -> Inversion {
        let per_bucket = (memberships >> BUCKET_BITS) + (memberships >> (BUCKET_BITS + 3));
        Inversion {
            groups: Vec::new(),
            buckets: (0..1 << BUCKET_BITS).map(|_| Vec::with_capacity(per_bucket)).collect(),
        }
    }

    /// Adds a group and its members. Groups must come in ascending id order, each once, for
    /// [`Inversion::finish`]'s lists to be sorted: the caller checks it.
    pub(crate) fn add(&mut self, group: GroupId, members: &[Member]) {
        let index = u32::try_from(self.groups.len()).expect("fewer than 2^32 groups");
        self.groups.push(group);
        for member in members {
            self.buckets[bucket(member)].push((*member, index));
        }
    }

    /// Each member's groups, in ascending order, each once.
    pub(crate) fn finish(self) -> OrdMap<Member, GroupList> {
        let Inversion { groups, buckets } = self;
        let mut lists: Vec<(Member, GroupList)> = Vec::new();
        for mut pairs in buckets {
            // A group's index orders as its id does, so each member's groups come out sorted.
            pairs.sort_unstable();
            for run in pairs.chunk_by(|a, b| a.0 == b.0) {
                let list: GroupList = run.iter().map(|&(_, group)| groups[group as usize]).collect();
                lists.push((run[0].0, list));
            }
        }
        lists.sort_unstable_by_key(|(member, _)| *member);
        map_in_order(lists).expect("each member once, sorted")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use uuid::Uuid;

    use super::*;
    use crate::ids::UserId;

    fn member(raw: (bool, u128)) -> Member {
        match raw.0 {
            true => Member::User(UserId(Uuid::from_u128(raw.1))),
            false => Member::Group(GroupId(Uuid::from_u128(raw.1))),
        }
    }

    proptest! {
        #[test]
        fn each_member_gets_every_group_that_lists_it_in_order(
            groups in prop::collection::btree_map(any::<u128>(), prop::collection::btree_set((any::<bool>(), 0u128..40), 0..12), 0..30),
            capacity in 0usize..1 << 20,
        ) {
            let mut inversion = Inversion::with_capacity(capacity);
            let mut expected: BTreeMap<Member, Vec<GroupId>> = BTreeMap::new();
            for (group, members) in &groups {
                let group = GroupId(Uuid::from_u128(*group));
                let members: Vec<Member> = members.iter().copied().map(member).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
                inversion.add(group, &members);
                for member in members {
                    expected.entry(member).or_default().push(group);
                }
            }
            let inverted = inversion.finish();
            prop_assert_eq!(inverted.len(), expected.len());
            for ((member, list), (expected_member, expected_list)) in inverted.iter().zip(&expected) {
                prop_assert_eq!(member, expected_member);
                prop_assert_eq!(&list[..], &expected_list[..]);
            }
        }
    }

    #[test]
    fn members_whose_ids_share_their_last_bits_are_kept_apart() {
        let (a, b) = (Uuid::from_u128(1 << 64 | 5), Uuid::from_u128(2 << 64 | 5));
        let (g1, g2) = (GroupId(Uuid::from_u128(10)), GroupId(Uuid::from_u128(20)));
        let mut inversion = Inversion::with_capacity(0);
        inversion.add(
            g1,
            &[
                Member::User(UserId(a)),
                Member::User(UserId(b)),
                Member::Group(GroupId(a)),
            ],
        );
        inversion.add(g2, &[Member::User(UserId(b))]);
        let inverted = inversion.finish();
        let lists: Vec<(Member, Vec<GroupId>)> = inverted.iter().map(|(m, l)| (*m, l.to_vec())).collect();
        assert_eq!(
            lists,
            vec![
                (Member::User(UserId(a)), vec![g1]),
                (Member::User(UserId(b)), vec![g1, g2]),
                (Member::Group(GroupId(a)), vec![g1]),
            ]
        );
    }
}
