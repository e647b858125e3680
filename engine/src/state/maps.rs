//! The maps the fold writes, as one trait: the persistent ones of a [`State`], or the plain,
//! mutable ones of a full replay (`flat.rs`), frozen into a `State` once at the end. The fold
//! (`apply.rs`) is written once, against this trait.

use std::sync::Arc;

use imbl::OrdMap;

use super::absences::Absences;
use super::indexes::{Bindings, Indexes};
use super::{GroupEntry, GroupList, State};
use crate::ids::{GroupId, Member, Seq, Timestamp, UserId};
use crate::model::{Group, User};

/// Where a fold keeps users, groups and memberships.
pub(crate) trait FoldMaps {
    /// Moves the position to the record being folded.
    fn set_position(&mut self, seq: Seq, at: Timestamp);

    /// A user by id.
    fn user(&self, id: UserId) -> Option<&Arc<User>>;
    /// A user by id, to change in place.
    fn user_mut(&mut self, id: UserId) -> Option<&mut Arc<User>>;
    /// Adds or replaces a user.
    fn put_user(&mut self, user: Arc<User>);
    /// Removes a user, which must have left its groups ([`FoldMaps::leave_all`]).
    fn take_user(&mut self, id: UserId) -> Option<Arc<User>>;

    /// A group by id.
    fn group(&self, id: GroupId) -> Option<&Arc<Group>>;
    /// A group by id, to change in place.
    fn group_mut(&mut self, id: GroupId) -> Option<&mut Arc<Group>>;
    /// Adds a group without members.
    fn create_group(&mut self, group: Arc<Group>);
    /// Removes a group, which must have left its groups ([`FoldMaps::leave_all`]), and its
    /// direct members' links to it; returns it and those members, in member order.
    fn take_group(&mut self, id: GroupId) -> Option<(Arc<Group>, Vec<Member>)>;

    /// Makes `member` a direct member of `group` at `seq` if it is not already, marking the
    /// group changed; false if it was, if either does not exist, or if `member` is `group`
    /// itself.
    fn add_member(&mut self, group: GroupId, member: Member, seq: Seq, at: Timestamp) -> bool;
    /// Ends `member`'s direct membership of `group` at `seq`, marking the group changed; false
    /// if there was none.
    fn remove_member(&mut self, group: GroupId, member: Member, seq: Seq, at: Timestamp) -> bool;
    /// Removes and returns the list of groups `member` is directly in, in id order (the
    /// groups' member sets are left as they are).
    fn take_groups_of(&mut self, member: Member) -> Vec<GroupId>;

    /// Removes `member` from every group it is directly in at `seq`, marking each changed;
    /// returns those groups in id order.
    fn leave_all(&mut self, member: Member, seq: Seq, at: Timestamp) -> Vec<GroupId> {
        let groups = self.take_groups_of(member);
        for &group in &groups {
            // The member's list is gone already: this changes the group's side only.
            self.remove_member(group, member, seq, at);
        }
        groups
    }

    /// The name, external-id and owner lookups, if this form keeps them as it folds; a full
    /// replay builds them once, from what it ends with.
    fn indexes(&mut self) -> Option<&mut Indexes>;
    /// The bindings.
    fn bindings(&mut self) -> &mut Bindings;
    /// The pending absences.
    fn absences(&mut self) -> &mut Absences;
}

/// Marks a group changed at `seq`: its version and `lastModified` move. Membership changes
/// count as changes of the group. Copies the record only if an older state still shares it.
pub(crate) fn bump(group: &mut Arc<Group>, seq: Seq, at: Timestamp) {
    let record = Arc::make_mut(group);
    record.last_modified = at;
    record.version = seq;
}

/// Records that `member` is directly in `group`.
fn join_group(member_of: &mut OrdMap<Member, GroupList>, member: Member, group: GroupId) {
    match member_of.get_mut(&member) {
        Some(list) => {
            if let Err(at) = list.binary_search(&group) {
                let mut groups = Vec::with_capacity(list.len() + 1);
                groups.extend_from_slice(&list[..at]);
                groups.push(group);
                groups.extend_from_slice(&list[at..]);
                *list = groups.into();
            }
        }
        None => {
            member_of.insert(member, Arc::new([group]));
        }
    }
}

/// Records that `member` is no longer directly in `group`.
fn leave_group(member_of: &mut OrdMap<Member, GroupList>, member: Member, group: GroupId) {
    let Some(list) = member_of.get_mut(&member) else { return };
    let Ok(at) = list.binary_search(&group) else { return };
    if list.len() == 1 {
        member_of.remove(&member);
    } else {
        *list = list[..at].iter().chain(&list[at + 1..]).copied().collect();
    }
}

impl FoldMaps for State {
    fn set_position(&mut self, seq: Seq, at: Timestamp) {
        self.seq = seq;
        self.recorded_at = at;
    }

    fn user(&self, id: UserId) -> Option<&Arc<User>> {
        self.users.get(&id)
    }

    fn user_mut(&mut self, id: UserId) -> Option<&mut Arc<User>> {
        self.users.get_mut(&id)
    }

    fn put_user(&mut self, user: Arc<User>) {
        self.users.insert(user.id, user);
    }

    fn take_user(&mut self, id: UserId) -> Option<Arc<User>> {
        self.users.remove(&id)
    }

    fn group(&self, id: GroupId) -> Option<&Arc<Group>> {
        self.groups.get(&id).map(|entry| &entry.group)
    }

    fn group_mut(&mut self, id: GroupId) -> Option<&mut Arc<Group>> {
        self.groups.get_mut(&id).map(|entry| &mut entry.group)
    }

    fn create_group(&mut self, group: Arc<Group>) {
        self.groups.insert(
            group.id,
            GroupEntry {
                group,
                members: imbl::OrdSet::new(),
            },
        );
    }

    fn take_group(&mut self, id: GroupId) -> Option<(Arc<Group>, Vec<Member>)> {
        let old = self.groups.remove(&id)?;
        let members: Vec<Member> = old.members.into_iter().collect();
        for member in &members {
            leave_group(&mut self.member_of, *member, id);
        }
        Some((old.group, members))
    }

    fn add_member(&mut self, group: GroupId, member: Member, seq: Seq, at: Timestamp) -> bool {
        if member == Member::Group(group) || !self.member_exists(member) {
            return false;
        }
        let Some(entry) = self.groups.get_mut(&group) else {
            return false;
        };
        if entry.members.insert(member).is_some() {
            return false;
        }
        bump(&mut entry.group, seq, at);
        join_group(&mut self.member_of, member, group);
        true
    }

    fn remove_member(&mut self, group: GroupId, member: Member, seq: Seq, at: Timestamp) -> bool {
        let Some(entry) = self.groups.get_mut(&group) else {
            return false;
        };
        if entry.members.remove(&member).is_none() {
            return false;
        }
        bump(&mut entry.group, seq, at);
        leave_group(&mut self.member_of, member, group);
        true
    }

    fn take_groups_of(&mut self, member: Member) -> Vec<GroupId> {
        self.member_of
            .remove(&member)
            .map(|list| list.to_vec())
            .unwrap_or_default()
    }

    fn indexes(&mut self) -> Option<&mut Indexes> {
        Some(&mut self.indexes)
    }

    fn bindings(&mut self) -> &mut Bindings {
        &mut self.bindings
    }

    fn absences(&mut self) -> &mut Absences {
        &mut self.absences
    }
}
