//! Management roles from groups: each user's one role, derived from the role bindings
//! ([`BindingGroups::Role`]) and the user's effective memberships, and the role changes an
//! event causes.
//!
//! # The rule
//!
//! - Roles are on once the tenant has a role binding (any binding of kind
//!   [`ResourceKind::Role`]); until then no user has a role and no event changes one.
//! - An active user's role is the role of the matching binding with the highest priority; a
//!   binding matches when the user is an effective member (directly or through nested groups)
//!   of one of its groups. Among bindings of equal priority the lowest binding id (byte order)
//!   wins, so the answer never depends on the order bindings were made.
//! - The group that gives a user the winning binding is the lowest group id among the
//!   binding's groups the user is in.
//! - A user no binding matches has the default role: the role of the binding named
//!   [`DEFAULT_BINDING`] (which has no groups), or [`DEFAULT_ROLE`] when there is none.
//! - Inactive and deleted users have no role.
//!
//! A role name is free text, but the built-in names ([`BUILT_IN`]) are recognised whatever
//! their case and written as listed, so that `owner` and `Owner` are one role.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::access::{ancestors, effective_users};
use crate::event::{Event, LoggedEvent};
use crate::ids::{GroupId, Member, ResourceId, Seq, Timestamp, UserId};
use crate::model::{BindingGroups, ResourceKind, ResourceRef};
use crate::projector::users_of;
use crate::state::State;

/// The role that can do everything, of which a tenant keeps at least one (see
/// [`crate::reconcile`]'s last-owner hold and the SCIM refusal).
pub const OWNER: &str = "Owner";

/// The role of a user no binding matches, when the tenant sets no default binding.
pub const DEFAULT_ROLE: &str = "User";

/// The built-in role names, from the most to the least powerful.
pub const BUILT_IN: [&str; 6] = [
    OWNER,
    "Admin",
    "Network Admin",
    "Billing Admin",
    "Auditor",
    DEFAULT_ROLE,
];

/// The id of the role binding that sets the tenant's default role.
pub const DEFAULT_BINDING: &str = "default";

/// The longest role name accepted.
pub const ROLE_NAME_MAX: usize = 64;

/// A role name as it is kept: a built-in name, whatever its case, as [`BUILT_IN`] writes it;
/// any other name as given, trimmed. 1 to [`ROLE_NAME_MAX`] characters, no control characters.
pub fn role_name(name: &str) -> Result<String, String> {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.chars().count() > ROLE_NAME_MAX || trimmed.chars().any(char::is_control) {
        return Err(format!(
            "invalid role {name:?}: use 1 to {ROLE_NAME_MAX} characters without control characters"
        ));
    }
    Ok(BUILT_IN
        .iter()
        .find(|built_in| built_in.eq_ignore_ascii_case(trimmed))
        .map_or_else(|| trimmed.to_owned(), |built_in| (*built_in).to_owned()))
}

/// Whether `role` counts as an administrator's in reports: any role but the default one.
pub fn is_admin(role: &str, default_role: &str) -> bool {
    role != default_role
}

/// A user's role and where it comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RoleAssignment {
    /// The role's name.
    pub role: String,
    /// The binding that gives it: a group binding, the default binding, or none for the
    /// built-in default.
    pub binding: Option<ResourceId>,
    /// The binding's group the user is in; none for the default role.
    pub via: Option<GroupId>,
}

/// One user's role changing, caused by the record at `seq`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RoleChange {
    /// The record that caused it.
    pub seq: Seq,
    /// When.
    pub recorded_at: Timestamp,
    /// Whose role.
    pub user: UserId,
    /// The role before; none when the user had none (new, inactive, or roles were off).
    pub old: Option<RoleAssignment>,
    /// The role after; none when the user has none (deactivated, deleted, or roles are off).
    pub new: Option<RoleAssignment>,
}

/// One role binding: its id, role, priority and groups.
struct RoleBinding<'a> {
    id: &'a ResourceId,
    role: &'a str,
    priority: i32,
    groups: &'a [GroupId],
}

/// Every role binding, the default one included, in descending id order. The role kind is the
/// last kind, so they are the bindings at the end of the resource order.
fn role_bindings(state: &State) -> impl Iterator<Item = RoleBinding<'_>> + '_ {
    state
        .bindings()
        .rev()
        .take_while(|(resource, _)| resource.kind == ResourceKind::Role)
        .filter_map(|(resource, groups)| match groups {
            BindingGroups::Role { role, priority, groups } => Some(RoleBinding {
                id: &resource.id,
                role,
                priority: *priority,
                groups,
            }),
            _ => None,
        })
}

/// Whether the tenant has a role binding: whether users have roles at all.
pub fn roles_enabled(state: &State) -> bool {
    role_bindings(state).next().is_some()
}

/// The tenant's default role: the default binding's, or [`DEFAULT_ROLE`].
pub fn default_role(state: &State) -> String {
    default_assignment(state).role
}

fn default_assignment(state: &State) -> RoleAssignment {
    role_bindings(state)
        .find(|binding| binding.id.as_str() == DEFAULT_BINDING)
        .map_or_else(
            || RoleAssignment {
                role: DEFAULT_ROLE.to_owned(),
                binding: None,
                via: None,
            },
            |binding| RoleAssignment {
                role: binding.role.to_owned(),
                binding: Some(binding.id.clone()),
                via: None,
            },
        )
}

/// The role `user` holds in `state` (see the module's rule); none when roles are off or the
/// user is inactive or gone.
pub fn effective_role(state: &State, user: UserId) -> Option<RoleAssignment> {
    if !roles_enabled(state) || !state.user(user).is_some_and(|found| found.active) {
        return None;
    }
    let groups = ancestors(state, Member::User(user));
    let mut best: Option<(&RoleBinding<'_>, GroupId)> = None;
    let bindings: Vec<RoleBinding<'_>> = role_bindings(state).collect();
    for binding in &bindings {
        let Some(via) = binding.groups.iter().filter(|group| groups.contains(group)).min() else {
            continue;
        };
        // Descending id order: a later binding of equal priority has a lower id and wins.
        if best.is_none_or(|(held, _)| binding.priority >= held.priority) {
            best = Some((binding, *via));
        }
    }
    Some(match best {
        Some((binding, via)) => RoleAssignment {
            role: binding.role.to_owned(),
            binding: Some(binding.id.clone()),
            via: Some(via),
        },
        None => default_assignment(state),
    })
}

/// Every user's role, in user id order: the users with none are left out.
pub fn all_roles(state: &State) -> Vec<(UserId, RoleAssignment)> {
    if !roles_enabled(state) {
        return Vec::new();
    }
    state
        .users()
        .filter_map(|user| effective_role(state, user.id).map(|role| (user.id, role)))
        .collect()
}

/// Whether some user holds [`OWNER`].
pub fn has_owner(state: &State) -> bool {
    if !roles_enabled(state) {
        return false;
    }
    let is_owner = |user: UserId| effective_role(state, user).is_some_and(|held| held.role == OWNER);
    if default_role(state) == OWNER {
        return state.users().any(|user| is_owner(user.id));
    }
    let candidates: BTreeSet<UserId> = role_bindings(state)
        .filter(|binding| binding.role == OWNER)
        .flat_map(|binding| binding.groups.iter().flat_map(|group| effective_users(state, *group)))
        .collect();
    candidates.into_iter().any(is_owner)
}

/// Whether the events take the tenant's last owner away: `before` has an owner, `after` none.
pub fn removes_last_owner(before: &State, after: &State) -> bool {
    has_owner(before) && !has_owner(after)
}

/// The groups named by role bindings.
fn role_groups(state: &State) -> BTreeSet<GroupId> {
    role_bindings(state)
        .flat_map(|binding| binding.groups.iter().copied())
        .collect()
}

/// Whether a membership change in `group` can change a role: `group` or a group above it is
/// named by a role binding.
fn reaches_role_group(state: &State, group: GroupId) -> bool {
    let bound = role_groups(state);
    if bound.is_empty() {
        return false;
    }
    bound.contains(&group) || ancestors(state, Member::Group(group)).iter().any(|g| bound.contains(g))
}

/// The users whose role `event` can change, judged before it.
fn affected(state: &State, event: &Event) -> BTreeSet<UserId> {
    let every_user = || state.users().map(|user| user.id).collect();
    if let Event::BindingSet { resource, .. } | Event::BindingRemoved { resource } = event
        && resource.kind == ResourceKind::Role
    {
        return affected_by_binding(state, event, resource).unwrap_or_else(every_user);
    }
    if !roles_enabled(state) {
        return BTreeSet::new();
    }
    match event {
        Event::UserProvisioned { user, .. }
        | Event::UserDeactivated { user }
        | Event::UserReactivated { user }
        | Event::UserDeleted { user } => BTreeSet::from([*user]),
        Event::MembersAdded { group, members } | Event::MembersRemoved { group, members } => {
            if reaches_role_group(state, *group) {
                users_of(state, members)
            } else {
                BTreeSet::new()
            }
        }
        Event::GroupDeleted { group } => {
            if reaches_role_group(state, *group) {
                effective_users(state, *group)
            } else {
                BTreeSet::new()
            }
        }
        _ => BTreeSet::new(),
    }
}

/// The users a change of the role binding `resource` can affect: those in its old and new
/// groups; `None` (everyone) when it is the default binding, or turns roles on or off.
fn affected_by_binding(state: &State, event: &Event, resource: &ResourceRef) -> Option<BTreeSet<UserId>> {
    let old = state.binding(resource);
    let others = role_bindings(state).any(|binding| binding.id != &resource.id);
    let switches = match event {
        Event::BindingSet { .. } => !others && old.is_none(),
        _ => !others && old.is_some(),
    };
    if resource.id.as_str() == DEFAULT_BINDING || switches {
        return None;
    }
    let mut groups = old.map(BindingGroups::groups).unwrap_or_default();
    if let Event::BindingSet { groups: new, .. } = event {
        groups.extend(new.groups());
    }
    Some(
        groups
            .into_iter()
            .flat_map(|group| effective_users(state, group))
            .collect(),
    )
}

/// What [`begin`] saw before an event: the users whose role it may change, with their roles
/// then.
pub struct RolesPending {
    before: Vec<(UserId, Option<RoleAssignment>)>,
}

/// Notes, before `event` is applied to `state`, whose role it may change.
pub fn begin(state: &State, event: &Event) -> RolesPending {
    RolesPending {
        before: affected(state, event)
            .into_iter()
            .map(|user| (user, effective_role(state, user)))
            .collect(),
    }
}

/// The role changes of `event`, now applied to `state`, by user: one per user whose role name
/// changed.
pub fn finish(pending: RolesPending, state: &State, event: &LoggedEvent) -> Vec<RoleChange> {
    pending
        .before
        .into_iter()
        .filter_map(|(user, old)| {
            let new = effective_role(state, user);
            let name = |held: &Option<RoleAssignment>| held.as_ref().map(|held| held.role.clone());
            (name(&old) != name(&new)).then_some(RoleChange {
                seq: event.seq,
                recorded_at: event.recorded_at,
                user,
                old,
                new,
            })
        })
        .collect()
}
