//! The state a full replay folds into: plain, mutable hash maps where a [`State`] has
//! persistent B-trees, frozen into a `State` once at the end.
//!
//! A full replay folds a million events into a state no reader sees until it is done, so it
//! need not pay for persistence: an insert into a persistent B-tree far larger than the cache
//! is a chain of cache misses and copy-on-write checks, where a hash map takes one or two
//! misses. The fold is the same code ([`super::apply::fold`] over [`FoldMaps`]); freezing
//! builds the persistent maps from sorted runs, where their inserts are cheap. The bindings
//! change only with binding events and stay persistent; the lookups by name, external id and
//! owner are not kept while folding, and freezing builds them at once from the users and groups
//! (see `indexes.rs` for where that can differ from keeping them one change at a time).

use std::sync::Arc;

use imbl::OrdMap;

use super::absences::Absences;
use super::apply::{Effects, fold};
use super::in_order::map_in_order;
use super::indexes::{Bindings, Indexes, set_in_bulk};
use super::maps::{FoldMaps, bump};
use super::{GroupEntry, GroupList, State};
use crate::event::LoggedEvent;
use crate::history::HashMap;
use crate::ids::{GroupId, Member, Seq, Timestamp, UserId};
use crate::model::{Group, User};
use crate::seal::Opener;

/// Keys are ids the engine generated, written to the log by the engine: a fast hash with a
/// fixed seed is safe, as for the history index.
type HashSet<T> = std::collections::HashSet<T, foldhash::fast::FixedState>;

/// A user and the groups it is directly in, in id order: one lookup finds both, for the check
/// that a member exists and for its list.
struct FlatUser {
    user: Arc<User>,
    groups: Vec<GroupId>,
}

/// A group, its direct members, and the groups it is directly in, in id order.
struct FlatGroup {
    group: Arc<Group>,
    members: HashSet<Member>,
    groups: Vec<GroupId>,
}

/// A tenant's state in plain maps, for folding a whole log; see the module docs.
#[derive(Default)]
pub struct FlatState {
    seq: Seq,
    recorded_at: Timestamp,
    users: HashMap<UserId, FlatUser>,
    groups: HashMap<GroupId, FlatGroup>,
    bindings: Bindings,
    absences: Absences,
}

impl FlatState {
    /// The empty state, before the first record.
    pub fn new() -> FlatState {
        FlatState::default()
    }

    /// Folds `event` in, as [`State::apply_mut`] does, and sets `effects` to what it changed
    /// (one buffer serves a whole replay).
    pub fn apply_into(&mut self, event: &LoggedEvent, opener: &dyn Opener, effects: &mut Effects) {
        effects.memberships.clear();
        effects.touched.clear();
        fold(self, event, opener, effects);
    }

    /// The persistent [`State`] with the same contents, its lookups built from the users and
    /// groups at once (see `indexes.rs`). The users, and half of the groups' member sets, are
    /// built on threads of their own.
    pub fn freeze(self) -> State {
        let FlatState {
            seq,
            recorded_at,
            users,
            groups,
            bindings,
            absences,
        } = self;
        let ((users, user_lists, user_indexes), (groups, group_lists, mut indexes)) = std::thread::scope(|scope| {
            let users = scope.spawn(move || {
                let mut lists = Vec::new();
                let mut records = Vec::with_capacity(users.len());
                for (id, flat) in users {
                    if !flat.groups.is_empty() {
                        lists.push((Member::User(id), Arc::from(flat.groups)));
                    }
                    records.push((id, flat.user));
                }
                let records = sorted_by_key(records);
                let mut indexes = Indexes::default();
                indexes.index_users_in_bulk(records.iter().map(|(_, user)| &**user));
                (
                    map_in_order(records).expect("users in id order"),
                    sorted_by_key(lists),
                    indexes,
                )
            });
            // The member sets are most of the work: half of them on a thread of their own.
            let mut groups: Vec<(GroupId, FlatGroup)> = groups.into_iter().collect();
            let second_half = groups.split_off(groups.len() / 2);
            let second_half = scope.spawn(move || group_entries(second_half));
            let (mut entries, mut lists) = group_entries(groups);
            let (more_entries, more_lists) = second_half
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            entries.extend(more_entries);
            lists.extend(more_lists);
            let entries = sorted_by_key(entries);
            let mut indexes = Indexes::default();
            indexes.index_groups_in_bulk(entries.iter().map(|(_, entry)| &*entry.group));
            let groups = (
                map_in_order(entries).expect("groups in id order"),
                sorted_by_key(lists),
                indexes,
            );
            let users = users.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (users, groups)
        });
        // Users sort before groups: the lists go into the map in key order.
        let member_of: OrdMap<Member, GroupList> =
            map_in_order(user_lists.into_iter().chain(group_lists).collect()).expect("members in order");
        indexes.user_names = user_indexes.user_names;
        indexes.user_external_ids = user_indexes.user_external_ids;
        indexes.owned_users = user_indexes.owned_users;
        indexes.owned_erased_users = user_indexes.owned_erased_users;
        State {
            seq,
            recorded_at,
            users,
            groups,
            member_of,
            indexes,
            bindings,
            absences,
        }
    }

    /// The groups `member` is directly in, if it exists.
    fn groups_of_mut(&mut self, member: Member) -> Option<&mut Vec<GroupId>> {
        match member {
            Member::User(id) => self.users.get_mut(&id).map(|entry| &mut entry.groups),
            Member::Group(id) => self.groups.get_mut(&id).map(|entry| &mut entry.groups),
        }
    }

    /// Removes `group` from `member`'s list.
    fn leave_group(&mut self, member: Member, group: GroupId) {
        let Some(list) = self.groups_of_mut(member) else { return };
        if let Ok(at) = list.binary_search(&group) {
            list.remove(at);
        }
    }
}

/// Groups' persistent entries, and the lists of the groups they are in.
type GroupParts = (Vec<(GroupId, GroupEntry)>, Vec<(Member, GroupList)>);

/// Groups' entries with their member sets, and the lists of the groups they are in.
fn group_entries(groups: Vec<(GroupId, FlatGroup)>) -> GroupParts {
    let mut lists = Vec::new();
    let mut entries = Vec::with_capacity(groups.len());
    for (id, flat) in groups {
        if !flat.groups.is_empty() {
            lists.push((Member::Group(id), Arc::from(flat.groups)));
        }
        let members = set_in_bulk(flat.members.into_iter().collect());
        let entry = GroupEntry {
            group: flat.group,
            members,
        };
        entries.push((id, entry));
    }
    (entries, lists)
}

/// `entries` in key order (keys are unique).
fn sorted_by_key<K: Ord, V>(mut entries: Vec<(K, V)>) -> Vec<(K, V)> {
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    entries
}

impl FoldMaps for FlatState {
    fn set_position(&mut self, seq: Seq, at: Timestamp) {
        self.seq = seq;
        self.recorded_at = at;
    }

    fn user(&self, id: UserId) -> Option<&Arc<User>> {
        self.users.get(&id).map(|entry| &entry.user)
    }

    fn user_mut(&mut self, id: UserId) -> Option<&mut Arc<User>> {
        self.users.get_mut(&id).map(|entry| &mut entry.user)
    }

    fn put_user(&mut self, user: Arc<User>) {
        match self.users.get_mut(&user.id) {
            Some(entry) => entry.user = user,
            None => {
                let entry = FlatUser {
                    user,
                    groups: Vec::new(),
                };
                self.users.insert(entry.user.id, entry);
            }
        }
    }

    fn take_user(&mut self, id: UserId) -> Option<Arc<User>> {
        let entry = self.users.remove(&id)?;
        debug_assert!(entry.groups.is_empty(), "a user leaves its groups before it goes");
        Some(entry.user)
    }

    fn group(&self, id: GroupId) -> Option<&Arc<Group>> {
        self.groups.get(&id).map(|entry| &entry.group)
    }

    fn group_mut(&mut self, id: GroupId) -> Option<&mut Arc<Group>> {
        self.groups.get_mut(&id).map(|entry| &mut entry.group)
    }

    fn create_group(&mut self, group: Arc<Group>) {
        let entry = FlatGroup {
            group,
            members: HashSet::default(),
            groups: Vec::new(),
        };
        self.groups.insert(entry.group.id, entry);
    }

    fn take_group(&mut self, id: GroupId) -> Option<(Arc<Group>, Vec<Member>)> {
        let old = self.groups.remove(&id)?;
        debug_assert!(old.groups.is_empty(), "a group leaves its groups before it goes");
        let mut members: Vec<Member> = old.members.into_iter().collect();
        members.sort_unstable();
        for member in &members {
            self.leave_group(*member, id);
        }
        Some((old.group, members))
    }

    fn add_member(&mut self, group: GroupId, member: Member, seq: Seq, at: Timestamp) -> bool {
        // One lookup of the member finds that it exists and its list.
        let (entry, list) = match member {
            Member::User(id) => {
                let Some(user) = self.users.get_mut(&id) else {
                    return false;
                };
                let Some(entry) = self.groups.get_mut(&group) else {
                    return false;
                };
                (entry, &mut user.groups)
            }
            Member::Group(id) => {
                if id == group {
                    return false;
                }
                let [Some(entry), Some(nested)] = self.groups.get_disjoint_mut([&group, &id]) else {
                    return false;
                };
                (entry, &mut nested.groups)
            }
        };
        if !entry.members.insert(member) {
            return false;
        }
        bump(&mut entry.group, seq, at);
        if let Err(at) = list.binary_search(&group) {
            list.insert(at, group);
        }
        true
    }

    fn remove_member(&mut self, group: GroupId, member: Member, seq: Seq, at: Timestamp) -> bool {
        let Some(entry) = self.groups.get_mut(&group) else {
            return false;
        };
        if !entry.members.remove(&member) {
            return false;
        }
        bump(&mut entry.group, seq, at);
        self.leave_group(member, group);
        true
    }

    fn take_groups_of(&mut self, member: Member) -> Vec<GroupId> {
        self.groups_of_mut(member).map(std::mem::take).unwrap_or_default()
    }

    fn indexes(&mut self) -> Option<&mut Indexes> {
        None
    }

    fn bindings(&mut self) -> &mut Bindings {
        &mut self.bindings
    }

    fn absences(&mut self) -> &mut Absences {
        &mut self.absences
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use uuid::Uuid;

    use super::*;
    use crate::event::{Cause, Envelope, Event, Personal, Source};
    use crate::ids::{EventId, IntegrationName, ResourceId};
    use crate::model::{BindingGroups, Owner, ResourceKind, ResourceRef, UserProfile};
    use crate::seal::WithoutKeys;
    use crate::sealed::ExternalIdHash;
    use crate::state::encode_snapshot;

    fn user(n: u8) -> UserId {
        UserId(Uuid::from_u128(1000 + u128::from(n % 6)))
    }

    fn group(n: u8) -> GroupId {
        GroupId(Uuid::from_u128(2000 + u128::from(n % 5)))
    }

    fn member(n: u8) -> Member {
        if n.is_multiple_of(3) {
            Member::Group(group(n / 3))
        } else {
            Member::User(user(n))
        }
    }

    fn owner(n: u8) -> Owner {
        match n % 3 {
            0 => Owner::Scim,
            1 => Owner::Integration(IntegrationName::new("idp").unwrap()),
            _ => Owner::Operator,
        }
    }

    fn external_id(n: u8) -> Option<String> {
        (!n.is_multiple_of(4)).then(|| format!("e{}", n % 3))
    }

    fn personal(n: u8) -> Personal {
        Personal::Plain(Box::new(UserProfile {
            user_name: format!("Name{}", n % 4),
            ..UserProfile::default()
        }))
    }

    fn resource(n: u8) -> ResourceRef {
        ResourceRef {
            kind: ResourceKind::ALL[n as usize % ResourceKind::ALL.len()],
            id: ResourceId::new(&format!("r{}", n % 3)).unwrap(),
        }
    }

    /// Any event over a few users, groups and resources, including events that name what does
    /// not exist, which the fold must ignore the same way in both forms.
    fn event() -> impl Strategy<Value = Event> {
        let n = any::<u8>;
        prop_oneof![
            3 => (n(), n(), any::<bool>(), n()).prop_map(|(u, o, active, p)| Event::UserProvisioned {
                user: user(u),
                owner: owner(o),
                external_id: external_id(o / 3),
                active,
                personal: personal(p),
            }),
            1 => (n(), n(), n()).prop_map(|(u, e, p)| Event::UserUpdated {
                user: user(u),
                external_id: external_id(e),
                personal: personal(p),
            }),
            1 => n().prop_map(|u| Event::UserErased { user: user(u) }),
            1 => (n(), n()).prop_map(|(u, h)| Event::UserErasedWithLookup {
                user: user(u),
                external_id_hash: (h % 3 != 0).then(|| ExternalIdHash(Box::new([h % 3; 32]))),
            }),
            1 => n().prop_map(|u| Event::UserDeactivated { user: user(u) }),
            1 => n().prop_map(|u| Event::UserReactivated { user: user(u) }),
            1 => n().prop_map(|u| Event::UserDeleted { user: user(u) }),
            2 => (n(), n(), n()).prop_map(|(g, o, d)| Event::GroupCreated {
                group: group(g),
                owner: owner(o),
                external_id: external_id(o / 3),
                display_name: format!("Group{}", d % 3),
            }),
            1 => (n(), n()).prop_map(|(g, d)| Event::GroupRenamed {
                group: group(g),
                display_name: format!("Group{}", d % 3),
            }),
            1 => (n(), n()).prop_map(|(g, e)| Event::GroupExternalIdChanged {
                group: group(g),
                external_id: external_id(e),
            }),
            1 => n().prop_map(|g| Event::GroupDeleted { group: group(g) }),
            5 => (n(), proptest::collection::vec(n(), 1..4)).prop_map(|(g, ms)| Event::MembersAdded {
                group: group(g),
                members: ms.into_iter().map(member).collect(),
            }),
            3 => (n(), proptest::collection::vec(n(), 1..4)).prop_map(|(g, ms)| Event::MembersRemoved {
                group: group(g),
                members: ms.into_iter().map(member).collect(),
            }),
            1 => (n(), proptest::collection::vec(n(), 0..3)).prop_map(|(r, gs)| Event::BindingSet {
                resource: resource(r),
                groups: BindingGroups::Groups(gs.into_iter().map(group).collect()),
            }),
            1 => n().prop_map(|r| Event::BindingRemoved { resource: resource(r) }),
        ]
    }

    /// Everything a state holds, in comparable form.
    fn contents(state: &State) -> impl PartialEq + std::fmt::Debug {
        let groups: Vec<(GroupId, Group, Vec<Member>)> = state
            .groups
            .iter()
            .map(|(id, entry)| (*id, Group::clone(&entry.group), entry.members.iter().copied().collect()))
            .collect();
        (
            (state.seq, state.recorded_at),
            state.users.clone(),
            groups,
            state.member_of.clone(),
            state.bindings.clone(),
            state.absences.clone(),
        )
    }

    /// `state`'s users and groups indexed one after the other, in id order, and in bulk.
    fn indexed_both_ways(state: &State) -> (Indexes, Indexes) {
        let mut one_by_one = Indexes::default();
        for user in state.users.values() {
            one_by_one.index_user(user);
        }
        for entry in state.groups.values() {
            one_by_one.index_group(&entry.group);
        }
        let mut bulk = Indexes::default();
        bulk.index_users_in_bulk(state.users.values().map(|user| &**user));
        bulk.index_groups_in_bulk(state.groups.values().map(|entry| &*entry.group));
        (one_by_one, bulk)
    }

    proptest! {
        #[test]
        fn folding_into_plain_maps_and_freezing_equals_the_persistent_fold_and_indexing_in_bulk(
            events in proptest::collection::vec(event(), 0..80),
        ) {
            let (mut persistent, mut flat) = (State::new(), FlatState::new());
            let mut effects = Effects::default();
            for (i, event) in events.into_iter().enumerate() {
                let seq = Seq(i as u64 + 1);
                let logged = LoggedEvent {
                    seq,
                    recorded_at: Timestamp(1_700_000_000_000_000 + seq.0 as i64),
                    event_id: EventId(Uuid::from_u128(u128::from(seq.0))),
                    envelope: Envelope {
                        source: Source::Operator,
                        cause: Cause::Unspecified,
                        event,
                    },
                };
                let expected = persistent.apply_mut(&logged, &WithoutKeys);
                flat.apply_into(&logged, &WithoutKeys, &mut effects);
                prop_assert_eq!(&effects, &expected, "effects at {}", seq);
            }
            let frozen = flat.freeze();
            prop_assert_eq!(contents(&frozen), contents(&persistent));
            // The lookups, built at once, are those of indexing each user and group in id
            // order (with the names and external ids of this generator, keys often repeat).
            let (one_by_one, bulk) = indexed_both_ways(&persistent);
            prop_assert_eq!(&bulk, &one_by_one);
            prop_assert_eq!(&frozen.indexes, &bulk);
            let history = crate::history::History::new();
            prop_assert_eq!(encode_snapshot(&frozen, &history), encode_snapshot(&persistent, &history));
        }
    }
}
