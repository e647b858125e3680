//! Effective membership and access, derived from direct edges. Every walk keeps a visited set,
//! so cycles of nested groups end.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::ids::{GroupId, Member, UserId};
use crate::model::{BindingRole, ResourceRef};
use crate::state::State;

/// One way a user reaches a resource: through `via`, a group bound to the resource in `role`,
/// of which the user is an effective member.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Grant {
    /// The resource.
    pub resource: ResourceRef,
    /// The part the group plays in it.
    pub role: BindingRole,
    /// The bound group the user is in (directly or through nested groups).
    pub via: GroupId,
}

/// Which of a user's grants to compute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GrantFilter {
    /// All of them.
    All,
    /// Those through one of these groups.
    Via(BTreeSet<GroupId>),
    /// Those to this resource.
    Resource(ResourceRef),
}

/// Every group `member` is in, directly or through nested groups (not `member` itself).
pub fn ancestors(state: &State, member: Member) -> BTreeSet<GroupId> {
    let mut found = BTreeSet::new();
    let mut pending: Vec<GroupId> = state.groups_of(member).collect();
    while let Some(group) = pending.pop() {
        if found.insert(group) {
            pending.extend(state.groups_of(Member::Group(group)));
        }
    }
    if let Member::Group(group) = member {
        found.remove(&group);
    }
    found
}

/// Every user in `group`, directly or through nested groups.
pub fn effective_users(state: &State, group: GroupId) -> BTreeSet<UserId> {
    let mut users = BTreeSet::new();
    let mut seen = BTreeSet::from([group]);
    let mut pending = vec![group];
    while let Some(current) = pending.pop() {
        for member in state.direct_members(current) {
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

/// What a user may reach now: nothing if it is inactive or gone; otherwise one grant per bound
/// group it is in, per resource and role.
pub fn grants(state: &State, user: UserId) -> BTreeSet<Grant> {
    grants_matching(state, user, &GrantFilter::All)
}

/// The user's grants that `filter` selects.
pub fn grants_matching(state: &State, user: UserId, filter: &GrantFilter) -> BTreeSet<Grant> {
    let mut grants = BTreeSet::new();
    if !state.user(user).is_some_and(|u| u.active) {
        return grants;
    }
    for group in ancestors(state, Member::User(user)) {
        if let GrantFilter::Via(groups) = filter
            && !groups.contains(&group)
        {
            continue;
        }
        for (resource, role) in state.bindings_of_group(group) {
            if let GrantFilter::Resource(only) = filter
                && only != resource
            {
                continue;
            }
            grants.insert(Grant {
                resource: resource.clone(),
                role,
                via: group,
            });
        }
    }
    grants
}
