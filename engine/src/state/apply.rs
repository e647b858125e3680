//! The fold: `State::apply`. Pure and total. Every index is kept in step here and nowhere else.

use std::sync::Arc;

use imbl::{OrdMap, OrdSet};

use super::history::MembershipChange;
use super::{State, fold_case};
use crate::event::{Event, LoggedEvent};
use crate::ids::{GroupId, IntegrationName, Member, Seq, Timestamp, UserId};
use crate::model::{Group, Owner, User};

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

fn owned_key(owner: &Owner, external_id: Option<&String>) -> Option<(IntegrationName, String)> {
    match (owner, external_id) {
        (Owner::Integration(integration), Some(external_id)) => Some((integration.clone(), external_id.clone())),
        _ => None,
    }
}

impl State {
    /// The state after `event`: the pure fold. `self` is unchanged.
    pub fn apply(&self, event: &LoggedEvent) -> State {
        let mut next = self.clone();
        next.apply_mut(event);
        next
    }

    /// Folds `event` into this state in place. The same as [`State::apply`], without the clone;
    /// used by replay, where nothing else holds the state.
    pub fn apply_mut(&mut self, logged: &LoggedEvent) {
        let (seq, at) = (logged.seq, logged.recorded_at);
        self.seq = seq;
        self.recorded_at = at;
        self.history.record(at);
        match &logged.envelope.event {
            Event::UserProvisioned {
                user,
                owner,
                external_id,
                active,
                personal,
            } => {
                if self.users.contains_key(user) {
                    return;
                }
                let record = User {
                    id: *user,
                    owner: owner.clone(),
                    external_id: external_id.clone(),
                    active: *active,
                    profile: personal.profile().clone(),
                    created: at,
                    last_modified: at,
                    version: seq,
                };
                self.index_user(&record);
                self.users.insert(*user, Arc::new(record));
                self.history.touch(Member::User(*user), seq);
            }
            Event::UserUpdated {
                user,
                external_id,
                personal,
            } => {
                let Some(old) = self.users.get(user).cloned() else {
                    return;
                };
                self.unindex_user(&old);
                let mut record = User::clone(&old);
                record.external_id = external_id.clone();
                record.profile = personal.profile().clone();
                self.touch_user(&mut record, seq, at);
                self.index_user(&record);
                self.users.insert(*user, Arc::new(record));
            }
            Event::UserDeactivated { user } => self.set_active(*user, false, seq, at),
            Event::UserReactivated { user } => self.set_active(*user, true, seq, at),
            Event::UserDeleted { user } => {
                let Some(old) = self.users.remove(user) else { return };
                self.unindex_user(&old);
                self.drop_member(Member::User(*user), seq, at);
                self.history.touch(Member::User(*user), seq);
            }
            Event::GroupCreated {
                group,
                owner,
                external_id,
                display_name,
            } => {
                if self.groups.contains_key(group) {
                    return;
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
                self.groups.insert(*group, Arc::new(record));
                self.history.touch(Member::Group(*group), seq);
            }
            Event::GroupRenamed { group, display_name } => {
                self.reindex_group(*group, |record| record.display_name = display_name.clone());
                self.touch_group(*group, seq, at);
            }
            Event::GroupExternalIdChanged { group, external_id } => {
                self.reindex_group(*group, |record| record.external_id = external_id.clone());
                self.touch_group(*group, seq, at);
            }
            Event::GroupDeleted { group } => {
                let Some(old) = self.groups.remove(group) else { return };
                self.unindex_group(&old);
                // Its members leave it...
                if let Some(members) = self.members.remove(group) {
                    for member in members {
                        set_remove(&mut self.member_of, &member, group);
                        self.history.membership(
                            *group,
                            MembershipChange {
                                seq,
                                member,
                                joined: false,
                            },
                        );
                    }
                }
                // ...and it leaves the groups it was in.
                self.drop_member(Member::Group(*group), seq, at);
                self.history.touch(Member::Group(*group), seq);
            }
            Event::MembersAdded { group, members } => {
                if !self.groups.contains_key(group) {
                    return;
                }
                let mut changed = false;
                for member in members {
                    if *member == Member::Group(*group) || !self.member_exists(*member) {
                        continue;
                    }
                    if set_insert(&mut self.members, *group, *member) {
                        set_insert(&mut self.member_of, *member, *group);
                        self.history.membership(
                            *group,
                            MembershipChange {
                                seq,
                                member: *member,
                                joined: true,
                            },
                        );
                        changed = true;
                    }
                }
                if changed {
                    self.touch_group(*group, seq, at);
                }
            }
            Event::MembersRemoved { group, members } => {
                let mut changed = false;
                for member in members {
                    if set_remove(&mut self.members, group, member) {
                        set_remove(&mut self.member_of, member, group);
                        self.history.membership(
                            *group,
                            MembershipChange {
                                seq,
                                member: *member,
                                joined: false,
                            },
                        );
                        changed = true;
                    }
                }
                if changed {
                    self.touch_group(*group, seq, at);
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
    }

    fn unbind(&mut self, resource: &crate::model::ResourceRef) {
        if let Some(old) = self.bindings.remove(resource) {
            for (group, role) in old.pairs() {
                set_remove(&mut self.bound, &group, &(resource.clone(), role));
            }
        }
    }

    fn touch_user(&mut self, record: &mut User, seq: Seq, at: Timestamp) {
        record.last_modified = at;
        record.version = seq;
        self.history.touch(Member::User(record.id), seq);
    }

    fn set_active(&mut self, user: UserId, active: bool, seq: Seq, at: Timestamp) {
        let Some(slot) = self.users.get_mut(&user) else { return };
        if slot.active == active {
            return;
        }
        // make_mut copies the user only if an older state still shares it.
        let record = Arc::make_mut(slot);
        record.active = active;
        record.last_modified = at;
        record.version = seq;
        self.history.touch(Member::User(user), seq);
    }

    /// Marks a group changed at `seq`.
    fn touch_group(&mut self, group: GroupId, seq: Seq, at: Timestamp) {
        let Some(slot) = self.groups.get_mut(&group) else {
            return;
        };
        let record = Arc::make_mut(slot);
        record.last_modified = at;
        record.version = seq;
        self.history.touch(Member::Group(group), seq);
    }

    /// Changes an indexed field of a group, keeping the indexes in step.
    fn reindex_group(&mut self, group: GroupId, change: impl FnOnce(&mut Group)) {
        let Some(old) = self.groups.get(&group).cloned() else {
            return;
        };
        self.unindex_group(&old);
        let mut record = Group::clone(&old);
        change(&mut record);
        self.index_group(&record);
        self.groups.insert(group, Arc::new(record));
    }

    /// Removes `member` from every group it is directly in.
    fn drop_member(&mut self, member: Member, seq: Seq, at: Timestamp) {
        let Some(groups) = self.member_of.remove(&member) else {
            return;
        };
        for group in groups {
            set_remove(&mut self.members, &group, &member);
            self.history.membership(
                group,
                MembershipChange {
                    seq,
                    member,
                    joined: false,
                },
            );
            self.touch_group(group, seq, at);
        }
    }

    pub(super) fn index_user(&mut self, user: &User) {
        self.user_names.insert(fold_case(&user.profile.user_name), user.id);
        if let Some(external_id) = &user.external_id {
            set_insert(&mut self.user_external_ids, external_id.clone(), user.id);
        }
        if let Some(key) = owned_key(&user.owner, user.external_id.as_ref()) {
            self.owned_users.insert(key, user.id);
        }
    }

    pub(super) fn unindex_user(&mut self, user: &User) {
        let name = fold_case(&user.profile.user_name);
        if self.user_names.get(&name) == Some(&user.id) {
            self.user_names.remove(&name);
        }
        if let Some(external_id) = &user.external_id {
            set_remove(&mut self.user_external_ids, external_id, &user.id);
        }
        if let Some(key) = owned_key(&user.owner, user.external_id.as_ref())
            && self.owned_users.get(&key) == Some(&user.id)
        {
            self.owned_users.remove(&key);
        }
    }

    pub(super) fn index_group(&mut self, group: &Group) {
        set_insert(&mut self.group_names, fold_case(&group.display_name), group.id);
        if let Some(external_id) = &group.external_id {
            set_insert(&mut self.group_external_ids, external_id.clone(), group.id);
        }
        if let Some(key) = owned_key(&group.owner, group.external_id.as_ref()) {
            self.owned_groups.insert(key, group.id);
        }
    }

    pub(super) fn unindex_group(&mut self, group: &Group) {
        set_remove(&mut self.group_names, &fold_case(&group.display_name), &group.id);
        if let Some(external_id) = &group.external_id {
            set_remove(&mut self.group_external_ids, external_id, &group.id);
        }
        if let Some(key) = owned_key(&group.owner, group.external_id.as_ref())
            && self.owned_groups.get(&key) == Some(&group.id)
        {
            self.owned_groups.remove(&key);
        }
    }
}
