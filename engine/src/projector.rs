//! The projector: for each applied event, the access it granted or revoked.
//!
//! An [`AccessChange`] is one [`Grant`] appearing or disappearing: a user reaching a resource
//! through one bound group. A user who loses one path but keeps another still holds the
//! resource; [`crate::access::grants`] answers that.
//!
//! The projector is a function of the state before and after the event: [`begin`] notes which
//! users the event can affect, and which of their grants it can touch, before the event;
//! [`finish`] compares with after. A membership change in a group with no bound group above it
//! can change no access, and costs nothing more. It is deterministic, so replaying the log
//! reproduces the same changes in the same order.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::access::{Grant, GrantFilter, ancestors, effective_users, grants_matching};
use crate::event::{Event, LoggedEvent};
use crate::ids::{GroupId, Member, Seq, Timestamp, UserId};
use crate::model::{BindingRole, ResourceRef};
use crate::roles::{self, RoleChange};
use crate::seal::Opener;
use crate::state::{Effects, State};

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
    pub via: GroupId,
}

/// What [`begin`] saw before an event: the users it may affect, the grants it may touch, and
/// those users' matching grants then.
pub struct Pending {
    filter: GrantFilter,
    before: Vec<(UserId, BTreeSet<Grant>)>,
}

/// The bound groups among `group` and the groups above it: the only `via` groups a change of
/// `group`'s members can add or remove.
fn bound_lineage(state: &State, group: GroupId) -> BTreeSet<GroupId> {
    let mut lineage = ancestors(state, Member::Group(group));
    lineage.insert(group);
    lineage.retain(|group| state.is_bound(*group));
    lineage
}

/// The users among `members`, and in the groups among them, directly or nested.
pub(crate) fn users_of(state: &State, members: &[Member]) -> BTreeSet<UserId> {
    let mut users = BTreeSet::new();
    for member in members {
        match *member {
            Member::User(user) => {
                users.insert(user);
            }
            Member::Group(group) => users.extend(effective_users(state, group)),
        }
    }
    users
}

/// The users whose grants `event` can change, and which grants, judged before it.
fn affected(state: &State, event: &Event) -> (BTreeSet<UserId>, GrantFilter) {
    let nobody = || (BTreeSet::new(), GrantFilter::All);
    match event {
        Event::MembersAdded { group, members } | Event::MembersRemoved { group, members } => {
            let lineage = bound_lineage(state, *group);
            if lineage.is_empty() {
                return nobody();
            }
            (users_of(state, members), GrantFilter::Via(lineage))
        }
        Event::GroupDeleted { group } => {
            let lineage = bound_lineage(state, *group);
            if lineage.is_empty() {
                return nobody();
            }
            (effective_users(state, *group), GrantFilter::Via(lineage))
        }
        Event::UserDeactivated { user } | Event::UserReactivated { user } | Event::UserDeleted { user } => {
            (BTreeSet::from([*user]), GrantFilter::All)
        }
        Event::BindingSet { resource, .. } | Event::BindingRemoved { resource } => {
            let mut groups: BTreeSet<GroupId> = state
                .binding(resource)
                .map(|b| b.pairs())
                .unwrap_or_default()
                .into_iter()
                .map(|(g, _)| g)
                .collect();
            if let Event::BindingSet { groups: new, .. } = event {
                groups.extend(new.pairs().into_iter().map(|(g, _)| g));
            }
            let users = groups
                .into_iter()
                .flat_map(|group| effective_users(state, group))
                .collect();
            (users, GrantFilter::Resource(resource.clone()))
        }
        Event::UserProvisioned { .. }
        | Event::UserUpdated { .. }
        | Event::GroupCreated { .. }
        | Event::GroupRenamed { .. }
        | Event::GroupExternalIdChanged { .. }
        | Event::ReconcileHeld { .. }
        | Event::UserErased { .. }
        | Event::UserErasedWithLookup { .. }
        | Event::AbsencesObserved { .. }
        | Event::RevocationAcknowledged { .. } => nobody(),
    }
}

/// What projecting one event yields: the access it granted or revoked, and the management
/// roles it changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Projection {
    /// Access granted or revoked, in [`finish`]'s order.
    pub access: Vec<AccessChange>,
    /// Roles changed, by user (see [`crate::roles`]).
    pub roles: Vec<RoleChange>,
}

/// Folds `event` into `state` and projects it: what the fold changed (for the history index),
/// the access it granted or revoked and the roles it changed. The one way every folding path
/// (the writer, a change stream catching up from the log, the audit) turns an event into
/// access and role changes, so that none can drift from another.
pub fn fold_and_project(state: &mut State, event: &LoggedEvent, opener: &dyn Opener) -> (Effects, Projection) {
    let pending = begin(state, &event.envelope.event);
    let pending_roles = roles::begin(state, &event.envelope.event);
    let effects = state.apply_mut(event, opener);
    let access = finish(pending, state, event);
    let roles = roles::finish(pending_roles, state, event);
    (effects, Projection { access, roles })
}

impl Pending {
    /// Each user the event may affect, with the grants it may touch that the user held
    /// before it.
    pub(crate) fn grants_before(&self) -> impl Iterator<Item = (UserId, &BTreeSet<Grant>)> + '_ {
        self.before.iter().map(|(user, grants)| (*user, grants))
    }
}

/// Notes, before `event` is applied to `state`, what it may change.
pub fn begin(state: &State, event: &Event) -> Pending {
    let (users, filter) = affected(state, event);
    let before = users
        .into_iter()
        .map(|user| (user, grants_matching(state, user, &filter)))
        .collect();
    Pending { filter, before }
}

/// The access changes of `event`, now applied to `state`, in a fixed order (by user; for each
/// user revocations, then grants, each by resource, role and group).
pub fn finish(pending: Pending, state: &State, event: &LoggedEvent) -> Vec<AccessChange> {
    let mut changes = Vec::new();
    for (user, before) in pending.before {
        let after = grants_matching(state, user, &pending.filter);
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
