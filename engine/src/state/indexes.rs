//! What is kept beside the users and groups themselves: the lookups by name, external id and
//! owning integration, and the bindings, by resource and by group. Persistent maps in every
//! state, including the plain-mapped one a full replay folds into (these change only with user,
//! group and binding events, a small share of a log), so the fold keeps them with one piece of
//! code.

use imbl::{OrdMap, OrdSet};

use super::fold_case;
use crate::ids::{GroupId, IntegrationName, UserId};
use crate::model::{BindingGroups, BindingRole, Group, Owner, ResourceRef, User};

/// The lookups of users and groups by what clients and integrations know them by.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub(crate) struct Indexes {
    /// Case-folded userName → user; unique.
    pub(crate) user_names: OrdMap<String, UserId>,
    /// (externalId, user): a multimap as one set.
    pub(crate) user_external_ids: OrdSet<(String, UserId)>,
    /// (externalId, group).
    pub(crate) group_external_ids: OrdSet<(String, GroupId)>,
    /// (case-folded displayName, group).
    pub(crate) group_names: OrdSet<(String, GroupId)>,
    /// (integration, external id) → the user that integration owns.
    pub(crate) owned_users: OrdMap<(IntegrationName, String), UserId>,
    /// (integration, external id) → the group that integration owns.
    pub(crate) owned_groups: OrdMap<(IntegrationName, String), GroupId>,
}

fn owned_key(owner: &Owner, external_id: Option<&String>) -> Option<(IntegrationName, String)> {
    match (owner, external_id) {
        (Owner::Integration(integration), Some(external_id)) => Some((integration.clone(), external_id.clone())),
        _ => None,
    }
}

impl Indexes {
    /// Adds `user`'s entries.
    pub(crate) fn index_user(&mut self, user: &User) {
        self.user_names.insert(fold_case(&user.profile.user_name), user.id);
        if let Some(external_id) = &user.external_id {
            self.user_external_ids.insert((external_id.clone(), user.id));
        }
        if let Some(key) = owned_key(&user.owner, user.external_id.as_ref()) {
            self.owned_users.insert(key, user.id);
        }
    }

    /// Removes `user`'s entries (those that still point at it).
    pub(crate) fn unindex_user(&mut self, user: &User) {
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

    /// Adds `group`'s entries.
    pub(crate) fn index_group(&mut self, group: &Group) {
        self.group_names.insert((fold_case(&group.display_name), group.id));
        if let Some(external_id) = &group.external_id {
            self.group_external_ids.insert((external_id.clone(), group.id));
        }
        if let Some(key) = owned_key(&group.owner, group.external_id.as_ref()) {
            self.owned_groups.insert(key, group.id);
        }
    }

    /// Removes `group`'s entries (those that still point at it).
    pub(crate) fn unindex_group(&mut self, group: &Group) {
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

/// The management server's references to groups, by resource and by group.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub(crate) struct Bindings {
    /// Each bound resource and its groups.
    pub(crate) by_resource: OrdMap<ResourceRef, BindingGroups>,
    /// The resources (and roles) each group is bound to.
    pub(crate) by_group: OrdMap<GroupId, OrdSet<(ResourceRef, BindingRole)>>,
}

impl Bindings {
    /// Sets `resource`'s groups, replacing what it had.
    pub(crate) fn set(&mut self, resource: &ResourceRef, groups: &BindingGroups) {
        self.remove(resource);
        for (group, role) in groups.pairs() {
            let entry = (resource.clone(), role);
            match self.by_group.get_mut(&group) {
                Some(set) => {
                    set.insert(entry);
                }
                None => {
                    self.by_group.insert(group, OrdSet::unit(entry));
                }
            }
        }
        self.by_resource.insert(resource.clone(), groups.clone());
    }

    /// Removes `resource`'s binding, if it has one.
    pub(crate) fn remove(&mut self, resource: &ResourceRef) {
        let Some(old) = self.by_resource.remove(resource) else {
            return;
        };
        for (group, role) in old.pairs() {
            let Some(set) = self.by_group.get_mut(&group) else {
                continue;
            };
            set.remove(&(resource.clone(), role));
            if set.is_empty() {
                self.by_group.remove(&group);
            }
        }
    }
}
