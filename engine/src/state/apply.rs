//! The fold: `State::apply`. Pure and total. Every index is kept in step here and nowhere else.
//!
//! Folding an event also reports its [`Effects`]: the membership edges it changed and the users
//! and groups whose records it changed. The history index (`crate::history`) is built from
//! them, so that a membership ended by deleting a user or a group is recorded like any other.

use std::sync::Arc;

use imbl::{OrdMap, OrdSet};

use super::{GroupEntry, State, fold_case, join_group, leave_group};
use crate::event::{Event, LoggedEvent, Personal};
use crate::ids::{GroupId, IntegrationName, Member, Seq, Timestamp, UserId};
use crate::model::{Group, Owner, ResourceRef, User, UserProfile, erased_profile};
use crate::seal::Opener;

/// What folding one event changed, besides the state itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// Membership edges that changed: `(group, member, joined)`.
    pub memberships: Vec<(GroupId, Member, bool)>,
    /// Users and groups whose own record changed: created, updated, (de)activated, renamed,
    /// deleted.
    pub touched: Vec<Member>,
}

fn set_insert<K: Ord + Clone, V: Ord + Clone>(map: &mut OrdMap<K, OrdSet<V>>, key: K, value: V) -> bool {
    match map.get_mut(&key) {
        Some(set) => set.insert(value).is_none(),
        None => {
            map.insert(key, OrdSet::unit(value));
            true
        }
    }
}

fn set_remove<K: Ord + Clone, V: Ord + Clone>(map: &mut OrdMap<K, OrdSet<V>>, key: &K, value: &V) -> bool {
    let Some(set) = map.get_mut(key) else { return false };
    let removed = set.remove(value).is_some();
    if set.is_empty() {
        map.remove(key);
    }
    removed
}

/// Sets a user's personal fields from an event's personal part: the readable profile, or the
/// erased placeholder if it cannot be read, and the sealed form a snapshot keeps.
fn set_personal(record: &mut User, personal: &Personal, opener: &dyn Opener) {
    record.sealed = match personal {
        Personal::Sealed(sealed) => Some(sealed.clone()),
        Personal::Plain(_) => None,
    };
    match opener.open(record.id, personal) {
        Some(profile) => {
            record.profile = profile;
            record.readable = true;
        }
        None => {
            record.profile = erased_profile(record.id);
            record.readable = false;
        }
    }
}

/// Marks a group changed at `seq`: its version and `lastModified` move. Membership changes
/// count as changes of the group. Copies the record only if an older state still shares it.
fn bump(group: &mut Arc<Group>, seq: Seq, at: Timestamp) {
    let record = Arc::make_mut(group);
    record.last_modified = at;
    record.version = seq;
}

fn owned_key(owner: &Owner, external_id: Option<&String>) -> Option<(IntegrationName, String)> {
    match (owner, external_id) {
        (Owner::Integration(integration), Some(external_id)) => Some((integration.clone(), external_id.clone())),
        _ => None,
    }
}

impl State {
    /// The state after `event`: the pure fold. `self` is unchanged. `opener` reads the
    /// event's personal fields: the fold is a function of the log and of which users' keys
    /// still exist.
    pub fn apply(&self, event: &LoggedEvent, opener: &dyn Opener) -> State {
        let mut next = self.clone();
        next.apply_mut(event, opener);
        next
    }

    /// Folds `event` into this state in place and reports what it changed. The same as
    /// [`State::apply`], without the clone.
    pub fn apply_mut(&mut self, logged: &LoggedEvent, opener: &dyn Opener) -> Effects {
        let (seq, at) = (logged.seq, logged.recorded_at);
        self.seq = seq;
        self.recorded_at = at;
        let mut effects = Effects::default();
        match &logged.envelope.event {
            Event::UserProvisioned {
                user,
                owner,
                external_id,
                active,
                personal,
            } => {
                if self.users.contains_key(user) {
                    return effects;
                }
                let mut record = User {
                    id: *user,
                    owner: owner.clone(),
                    external_id: external_id.clone(),
                    active: *active,
                    profile: UserProfile::default(),
                    sealed: None,
                    erased: false,
                    readable: true,
                    created: at,
                    last_modified: at,
                    version: seq,
                };
                set_personal(&mut record, personal, opener);
                self.index_user(&record);
                self.users.insert(*user, Arc::new(record));
                effects.touched.push(Member::User(*user));
            }
            Event::UserUpdated {
                user,
                external_id,
                personal,
            } => {
                let Some(old) = self.users.get(user).cloned() else {
                    return effects;
                };
                self.unindex_user(&old);
                let mut record = User::clone(&old);
                record.external_id = external_id.clone();
                // Once erased, always erased: nothing logged later brings the fields back.
                if !record.erased {
                    set_personal(&mut record, personal, opener);
                }
                record.last_modified = at;
                record.version = seq;
                self.index_user(&record);
                self.users.insert(*user, Arc::new(record));
                effects.touched.push(Member::User(*user));
            }
            Event::UserErased { user } => {
                let Some(old) = self.users.get(user).cloned() else {
                    return effects;
                };
                self.unindex_user(&old);
                let mut record = User::clone(&old);
                record.profile = erased_profile(*user);
                record.sealed = None;
                record.erased = true;
                record.readable = true;
                record.last_modified = at;
                record.version = seq;
                self.index_user(&record);
                self.users.insert(*user, Arc::new(record));
                effects.touched.push(Member::User(*user));
            }
            Event::UserDeactivated { user } => self.set_active(*user, false, seq, at, &mut effects),
            Event::UserReactivated { user } => self.set_active(*user, true, seq, at, &mut effects),
            Event::UserDeleted { user } => {
                let Some(old) = self.users.remove(user) else {
                    return effects;
                };
                self.unindex_user(&old);
                self.leave_all(Member::User(*user), seq, at, &mut effects);
                effects.touched.push(Member::User(*user));
            }
            Event::GroupCreated {
                group,
                owner,
                external_id,
                display_name,
            } => {
                if self.groups.contains_key(group) {
                    return effects;
                }
                let record = Group {
                    id: *group,
                    owner: owner.clone(),
                    external_id: external_id.clone(),
                    display_name: display_name.clone(),
                    created: at,
                    last_modified: at,
                    version: seq,
                };
                self.index_group(&record);
                self.groups.insert(
                    *group,
                    GroupEntry {
                        group: Arc::new(record),
                        members: OrdSet::new(),
                    },
                );
                effects.touched.push(Member::Group(*group));
            }
            Event::GroupRenamed { group, display_name } => {
                if self.reindex_group(*group, seq, at, |record| record.display_name = display_name.clone()) {
                    effects.touched.push(Member::Group(*group));
                }
            }
            Event::GroupExternalIdChanged { group, external_id } => {
                if self.reindex_group(*group, seq, at, |record| record.external_id = external_id.clone()) {
                    effects.touched.push(Member::Group(*group));
                }
            }
            Event::GroupDeleted { group } => {
                let Some(old) = self.groups.remove(group) else {
                    return effects;
                };
                self.unindex_group(&old.group);
                // Its members leave it...
                for member in old.members {
                    leave_group(&mut self.member_of, member, *group);
                    effects.memberships.push((*group, member, false));
                }
                // ...and it leaves the groups it was in.
                self.leave_all(Member::Group(*group), seq, at, &mut effects);
                effects.touched.push(Member::Group(*group));
            }
            Event::MembersAdded { group, members } => {
                // Nested groups are checked before the group's entry is borrowed for changing;
                // users are checked in the loop (a different map).
                let missing_group = |member: &Member| match member {
                    Member::Group(nested) => nested == group || !self.groups.contains_key(nested),
                    Member::User(_) => false,
                };
                let valid: Vec<Member>;
                let members: &[Member] = if members.iter().any(missing_group) {
                    valid = members
                        .iter()
                        .filter(|member| !missing_group(member))
                        .copied()
                        .collect();
                    &valid
                } else {
                    members
                };
                let State {
                    users,
                    groups,
                    member_of,
                    ..
                } = self;
                let Some(entry) = groups.get_mut(group) else {
                    return effects;
                };
                for member in members {
                    if let Member::User(user) = member
                        && !users.contains_key(user)
                    {
                        continue;
                    }
                    if entry.members.insert(*member).is_none() {
                        join_group(member_of, *member, *group);
                        effects.memberships.push((*group, *member, true));
                    }
                }
                if !effects.memberships.is_empty() {
                    bump(&mut entry.group, seq, at);
                }
            }
            Event::MembersRemoved { group, members } => {
                let Some(entry) = self.groups.get_mut(group) else {
                    return effects;
                };
                for member in members {
                    if entry.members.remove(member).is_some() {
                        leave_group(&mut self.member_of, *member, *group);
                        effects.memberships.push((*group, *member, false));
                    }
                }
                if !effects.memberships.is_empty() {
                    bump(&mut entry.group, seq, at);
                }
            }
            Event::BindingSet { resource, groups } => {
                self.unbind(resource);
                for (group, role) in groups.pairs() {
                    set_insert(&mut self.bound, group, (resource.clone(), role));
                }
                self.bindings.insert(resource.clone(), groups.clone());
            }
            Event::BindingRemoved { resource } => self.unbind(resource),
            Event::ReconcileHeld { .. } => {}
        }
        effects
    }

    fn unbind(&mut self, resource: &ResourceRef) {
        if let Some(old) = self.bindings.remove(resource) {
            for (group, role) in old.pairs() {
                set_remove(&mut self.bound, &group, &(resource.clone(), role));
            }
        }
    }

    fn set_active(&mut self, user: UserId, active: bool, seq: Seq, at: Timestamp, effects: &mut Effects) {
        let Some(slot) = self.users.get_mut(&user) else { return };
        if slot.active == active {
            return;
        }
        // make_mut copies the user only if an older state still shares it.
        let record = Arc::make_mut(slot);
        record.active = active;
        record.last_modified = at;
        record.version = seq;
        effects.touched.push(Member::User(user));
    }

    /// Changes an indexed field of a group at `seq`, keeping the indexes in step; false if
    /// there is no such group.
    fn reindex_group(&mut self, group: GroupId, seq: Seq, at: Timestamp, change: impl FnOnce(&mut Group)) -> bool {
        let Some(old) = self.groups.get(&group).map(|entry| Arc::clone(&entry.group)) else {
            return false;
        };
        self.unindex_group(&old);
        let mut record = Group::clone(&old);
        change(&mut record);
        record.last_modified = at;
        record.version = seq;
        self.index_group(&record);
        if let Some(entry) = self.groups.get_mut(&group) {
            entry.group = Arc::new(record);
        }
        true
    }

    /// Removes `member` from every group it is directly in.
    fn leave_all(&mut self, member: Member, seq: Seq, at: Timestamp, effects: &mut Effects) {
        let groups = self.member_of.remove(&member).unwrap_or_default();
        for &group in groups.iter() {
            if let Some(entry) = self.groups.get_mut(&group) {
                entry.members.remove(&member);
                bump(&mut entry.group, seq, at);
            }
            effects.memberships.push((group, member, false));
        }
    }

    pub(super) fn index_user(&mut self, user: &User) {
        self.user_names.insert(fold_case(&user.profile.user_name), user.id);
        if let Some(external_id) = &user.external_id {
            self.user_external_ids.insert((external_id.clone(), user.id));
        }
        if let Some(key) = owned_key(&user.owner, user.external_id.as_ref()) {
            self.owned_users.insert(key, user.id);
        }
    }

    fn unindex_user(&mut self, user: &User) {
        let name = fold_case(&user.profile.user_name);
        if self.user_names.get(&name) == Some(&user.id) {
            self.user_names.remove(&name);
        }
        if let Some(external_id) = &user.external_id {
            self.user_external_ids.remove(&(external_id.clone(), user.id));
        }
        if let Some(key) = owned_key(&user.owner, user.external_id.as_ref())
            && self.owned_users.get(&key) == Some(&user.id)
        {
            self.owned_users.remove(&key);
        }
    }

    pub(super) fn index_group(&mut self, group: &Group) {
        self.group_names.insert((fold_case(&group.display_name), group.id));
        if let Some(external_id) = &group.external_id {
            self.group_external_ids.insert((external_id.clone(), group.id));
        }
        if let Some(key) = owned_key(&group.owner, group.external_id.as_ref()) {
            self.owned_groups.insert(key, group.id);
        }
    }

    fn unindex_group(&mut self, group: &Group) {
        self.group_names.remove(&(fold_case(&group.display_name), group.id));
        if let Some(external_id) = &group.external_id {
            self.group_external_ids.remove(&(external_id.clone(), group.id));
        }
        if let Some(key) = owned_key(&group.owner, group.external_id.as_ref())
            && self.owned_groups.get(&key) == Some(&group.id)
        {
            self.owned_groups.remove(&key);
        }
    }
}
