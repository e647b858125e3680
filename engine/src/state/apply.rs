//! The fold: `State::apply`. Pure and total. Every index is kept in step here and nowhere else.
//!
//! The fold is written once, against [`FoldMaps`]: the persistent maps of a [`State`], or the
//! plain ones a full replay folds into and freezes at the end.
//!
//! Folding an event also reports its [`Effects`]: the membership edges it changed and the users
//! and groups whose records it changed. The history index (`crate::history`) is built from
//! them, so that a membership ended by deleting a user or a group is recorded like any other.

use std::sync::Arc;

use super::State;
use super::indexes::Indexes;
use super::maps::FoldMaps;
use crate::event::{Event, LoggedEvent, Personal};
use crate::ids::{GroupId, Member, Seq, Timestamp};
use crate::model::{Group, User, UserProfile, erased_profile};
use crate::seal::Opener;
use crate::sealed::ExternalIdHash;

/// What folding one event changed, besides the state itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// Membership edges that changed: `(group, member, joined)`.
    pub memberships: Vec<(GroupId, Member, bool)>,
    /// Users and groups whose own record changed: created, updated, (de)activated, renamed,
    /// deleted.
    pub touched: Vec<Member>,
}

/// Sets a user's personal fields from an event's: the readable profile and externalId (logged
/// in the clear beside the personal part, or sealed in it), or the erased placeholder if they
/// cannot be read, and the sealed form a snapshot keeps.
fn set_personal(record: &mut User, external_id: &Option<String>, personal: &Personal, opener: &dyn Opener) {
    record.sealed = match personal {
        Personal::Sealed(sealed) => Some(sealed.clone()),
        Personal::Plain(_) => None,
    };
    match opener.open(record.id, personal) {
        Some(fields) => {
            record.profile = fields.profile;
            record.external_id = external_id.clone().or(fields.external_id);
            record.readable = true;
        }
        None => {
            record.profile = erased_profile(record.id);
            record.external_id = external_id.clone();
            record.readable = false;
        }
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
        let mut effects = Effects::default();
        fold(self, logged, opener, &mut effects);
        effects
    }
}

/// Folds `logged` into `maps` and adds what it changed to `effects`.
pub(crate) fn fold(maps: &mut impl FoldMaps, logged: &LoggedEvent, opener: &dyn Opener, effects: &mut Effects) {
    let (seq, at) = (logged.seq, logged.recorded_at);
    maps.set_position(seq, at);
    match &logged.envelope.event {
        Event::UserProvisioned {
            user,
            owner,
            external_id,
            active,
            personal,
        } => {
            if maps.user(*user).is_some() {
                return;
            }
            let mut record = User {
                id: *user,
                owner: owner.clone(),
                external_id: None,
                external_id_hash: None,
                active: *active,
                profile: UserProfile::default(),
                sealed: None,
                erased: false,
                readable: true,
                created: at,
                last_modified: at,
                version: seq,
            };
            set_personal(&mut record, external_id, personal, opener);
            index(maps, |indexes| indexes.index_user(&record));
            maps.put_user(Arc::new(record));
            effects.touched.push(Member::User(*user));
        }
        Event::UserUpdated {
            user,
            external_id,
            personal,
        } => {
            let Some(old) = maps.user(*user).cloned() else {
                return;
            };
            index(maps, |indexes| indexes.unindex_user(&old));
            let mut record = User::clone(&old);
            // Once erased, always erased: nothing logged later brings the fields back.
            if record.erased {
                record.external_id = external_id.clone();
            } else {
                set_personal(&mut record, external_id, personal, opener);
            }
            record.last_modified = at;
            record.version = seq;
            index(maps, |indexes| indexes.index_user(&record));
            maps.put_user(Arc::new(record));
            effects.touched.push(Member::User(*user));
        }
        Event::UserErased { user } => erase(maps, *user, ErasedExternalId::Kept, seq, at, effects),
        Event::UserErasedWithLookup { user, external_id_hash } => erase(
            maps,
            *user,
            ErasedExternalId::Hashed(external_id_hash),
            seq,
            at,
            effects,
        ),
        Event::UserDeactivated { user } => set_active(maps, *user, false, seq, at, effects),
        Event::UserReactivated { user } => set_active(maps, *user, true, seq, at, effects),
        Event::UserDeleted { user } => {
            if maps.user(*user).is_none() {
                return;
            }
            // It leaves its groups, then goes.
            leave_all(maps, Member::User(*user), seq, at, effects);
            if let Some(old) = maps.take_user(*user) {
                index(maps, |indexes| indexes.unindex_user(&old));
            }
            effects.touched.push(Member::User(*user));
        }
        Event::GroupCreated {
            group,
            owner,
            external_id,
            display_name,
        } => {
            if maps.group(*group).is_some() {
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
            index(maps, |indexes| indexes.index_group(&record));
            maps.create_group(Arc::new(record));
            effects.touched.push(Member::Group(*group));
        }
        Event::GroupRenamed { group, display_name } => {
            if reindex_group(maps, *group, seq, at, |record| {
                record.display_name = display_name.clone()
            }) {
                effects.touched.push(Member::Group(*group));
            }
        }
        Event::GroupExternalIdChanged { group, external_id } => {
            if reindex_group(maps, *group, seq, at, |record| record.external_id = external_id.clone()) {
                effects.touched.push(Member::Group(*group));
            }
        }
        Event::GroupDeleted { group } => {
            if maps.group(*group).is_none() {
                return;
            }
            // It leaves the groups it was in, then goes; its members leave it. Reported members
            // first.
            let left = maps.leave_all(Member::Group(*group), seq, at);
            let Some((old, members)) = maps.take_group(*group) else {
                return;
            };
            index(maps, |indexes| indexes.unindex_group(&old));
            for member in members {
                effects.memberships.push((*group, member, false));
            }
            for other in left {
                effects.memberships.push((other, Member::Group(*group), false));
            }
            effects.touched.push(Member::Group(*group));
        }
        Event::MembersAdded { group, members } => {
            for member in members {
                if maps.add_member(*group, *member, seq, at) {
                    effects.memberships.push((*group, *member, true));
                }
            }
        }
        Event::MembersRemoved { group, members } => {
            for member in members {
                if maps.remove_member(*group, *member, seq, at) {
                    effects.memberships.push((*group, *member, false));
                }
            }
        }
        Event::BindingSet { resource, groups } => maps.bindings().set(resource, groups),
        Event::BindingRemoved { resource } => maps.bindings().remove(resource),
        Event::ReconcileHeld { .. } => {}
        Event::AbsencesObserved {
            integration, absent, ..
        } => maps.absences().observe(integration, absent, at),
        // Indexed under the user, so that its audit finds it; the user's record is unchanged.
        Event::RevocationAcknowledged { user, .. } => effects.touched.push(Member::User(*user)),
    }
}

/// What an erasure does with the user's externalId.
enum ErasedExternalId<'a> {
    /// Keeps it as it was: what [`Event::UserErased`], logged by earlier builds, does.
    Kept,
    /// Drops it, keeping only its keyed hash (if it had one).
    Hashed(&'a Option<ExternalIdHash>),
}

/// Erases a user's personal fields at `seq`.
fn erase(
    maps: &mut impl FoldMaps,
    user: crate::ids::UserId,
    external_id: ErasedExternalId<'_>,
    seq: Seq,
    at: Timestamp,
    effects: &mut Effects,
) {
    let Some(old) = maps.user(user).cloned() else {
        return;
    };
    index(maps, |indexes| indexes.unindex_user(&old));
    let mut record = User::clone(&old);
    record.profile = erased_profile(user);
    record.sealed = None;
    record.erased = true;
    record.readable = true;
    if let ErasedExternalId::Hashed(external_id_hash) = external_id {
        record.external_id = None;
        record.external_id_hash = external_id_hash.clone();
    }
    record.last_modified = at;
    record.version = seq;
    index(maps, |indexes| indexes.index_user(&record));
    maps.put_user(Arc::new(record));
    effects.touched.push(Member::User(user));
}

fn set_active(
    maps: &mut impl FoldMaps,
    user: crate::ids::UserId,
    active: bool,
    seq: Seq,
    at: Timestamp,
    effects: &mut Effects,
) {
    let Some(slot) = maps.user_mut(user) else { return };
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

/// Changes an indexed field of a group at `seq`, keeping the indexes in step; false if there is
/// no such group.
fn reindex_group(
    maps: &mut impl FoldMaps,
    group: GroupId,
    seq: Seq,
    at: Timestamp,
    change: impl FnOnce(&mut Group),
) -> bool {
    let Some(old) = maps.group(group).cloned() else {
        return false;
    };
    index(maps, |indexes| indexes.unindex_group(&old));
    let mut record = Group::clone(&old);
    change(&mut record);
    record.last_modified = at;
    record.version = seq;
    index(maps, |indexes| indexes.index_group(&record));
    if let Some(slot) = maps.group_mut(group) {
        *slot = Arc::new(record);
    }
    true
}

/// Changes the lookups, where `maps` keeps them as it folds.
fn index(maps: &mut impl FoldMaps, change: impl FnOnce(&mut Indexes)) {
    if let Some(indexes) = maps.indexes() {
        change(indexes);
    }
}

/// Removes `member` from every group it is directly in.
fn leave_all(maps: &mut impl FoldMaps, member: Member, seq: Seq, at: Timestamp, effects: &mut Effects) {
    for group in maps.leave_all(member, seq, at) {
        effects.memberships.push((group, member, false));
    }
}
