//! The projector: for each applied event, the access it granted or revoked.
//!
//! An [`AccessChange`] is one [`Grant`] appearing or disappearing: a user reaching a resource
//! through one bound group. A user who loses one path but keeps another still holds the
//! resource; [`crate::access::grants`] answers that.
//!
//! The projector is a function of the state before and after the event: [`begin`] notes which
//! users the event can affect and their grants before, [`finish`] compares with after. It is
//! deterministic, so replaying the log reproduces the same changes in the same order.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::access::{Grant, effective_users, grants};
use crate::event::{Event, LoggedEvent};
use crate::ids::{Member, Seq, Timestamp, UserId};
use crate::model::{BindingRole, ResourceRef};
use crate::state::State;

/// Whether access began or ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessDirection {
    /// The user can now reach the resource through the group.
    Granted,
    /// The user can no longer reach the resource through the group.
    Revoked,
}

/// One user gaining or losing one resource through one group, caused by the record at `seq`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AccessChange {
    /// The record that caused it.
    pub seq: Seq,
    /// When.
    pub recorded_at: Timestamp,
    /// Whose access.
    pub user: UserId,
    /// To what.
    pub resource: ResourceRef,
    /// In which role.
    pub role: BindingRole,
    /// Granted or revoked.
    pub direction: AccessDirection,
    /// Through which bound group.
    pub via: crate::ids::GroupId,
}

/// What [`begin`] saw before an event: the users it may affect and their grants then.
pub struct Pending {
    before: Vec<(UserId, BTreeSet<Grant>)>,
}

/// The users whose grants `event` can change, judged on the state before it.
fn affected_users(state: &State, event: &Event) -> BTreeSet<UserId> {
    let users_of = |members: &[Member]| -> BTreeSet<UserId> {
        members
            .iter()
            .flat_map(|member| match *member {
                Member::User(user) => BTreeSet::from([user]),
                Member::Group(group) => effective_users(state, group),
            })
            .collect()
    };
    match event {
        Event::MembersAdded { members, .. } | Event::MembersRemoved { members, .. } => users_of(members),
        Event::UserDeactivated { user } | Event::UserReactivated { user } | Event::UserDeleted { user } => {
            BTreeSet::from([*user])
        }
        Event::GroupDeleted { group } => effective_users(state, *group),
        Event::BindingSet { resource, groups } => {
            let mut bound: Vec<_> = groups.pairs().into_iter().map(|(group, _)| group).collect();
            bound.extend(old_binding_groups(state, resource));
            bound
                .into_iter()
                .flat_map(|group| effective_users(state, group))
                .collect()
        }
        Event::BindingRemoved { resource } => old_binding_groups(state, resource)
            .flat_map(|group| effective_users(state, group))
            .collect(),
        Event::UserProvisioned { .. }
        | Event::UserUpdated { .. }
        | Event::GroupCreated { .. }
        | Event::GroupRenamed { .. }
        | Event::GroupExternalIdChanged { .. }
        | Event::ReconcileHeld { .. } => BTreeSet::new(),
    }
}

fn old_binding_groups<'a>(state: &'a State, resource: &ResourceRef) -> impl Iterator<Item = crate::ids::GroupId> + 'a {
    state
        .binding(resource)
        .map(|groups| groups.pairs())
        .unwrap_or_default()
        .into_iter()
        .map(|(group, _)| group)
}

/// Notes, before `event` is applied to `state`, what it may change.
pub fn begin(state: &State, event: &Event) -> Pending {
    let before = affected_users(state, event)
        .into_iter()
        .map(|user| (user, grants(state, user)))
        .collect();
    Pending { before }
}

/// The access changes of `event`, now applied to `state`, in a fixed order (by user, then
/// resource, role and group; revocations before grants).
pub fn finish(pending: Pending, state: &State, event: &LoggedEvent) -> Vec<AccessChange> {
    let mut changes = Vec::new();
    for (user, before) in pending.before {
        let after = grants(state, user);
        let mut push = |grant: &Grant, direction| {
            changes.push(AccessChange {
                seq: event.seq,
                recorded_at: event.recorded_at,
                user,
                resource: grant.resource.clone(),
                role: grant.role,
                direction,
                via: grant.via,
            });
        };
        for grant in before.difference(&after) {
            push(grant, AccessDirection::Revoked);
        }
        for grant in after.difference(&before) {
            push(grant, AccessDirection::Granted);
        }
    }
    changes
}
