//! What is kept beside the users and groups themselves: the lookups by name, external id and
//! owning integration, and the bindings, by resource and by group.
//!
//! The lookups follow from the users and groups: the fold keeps them in step one change at a
//! time, and loading a snapshot or ending a full replay builds them at once from all users and
//! groups in id order ([`Indexes::index_users_in_bulk`]). The two always agree: the userName
//! lookup is a set of (folded name, user), so where a log gives several users one folded name
//! (written before names were folded as they are now) each keeps its entry, and the name is
//! held by the lowest id, the earliest user, whichever way the lookup was built.

use imbl::{OrdMap, OrdSet};

use super::fold_case;
use super::in_order::{map_in_order, set_in_order};
use crate::ids::{GroupId, IntegrationName, UserId};
use crate::model::{BindingGroups, BindingRole, Group, Owner, ResourceRef, User};
use crate::sealed::ExternalIdHash;

/// The lookups of users and groups by what clients and integrations know them by.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub(crate) struct Indexes {
    /// (folded userName, user): unique per name for every name `decide` accepted; the
    /// lowest id holds a name that an older log gave to several users.
    pub(crate) user_names: OrdSet<(String, UserId)>,
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
    /// (integration, keyed hash of the external id) → the erased user that integration owns:
    /// erased users have no readable externalId, only its hash.
    pub(crate) owned_erased_users: OrdMap<(IntegrationName, ExternalIdHash), UserId>,
}

fn owned_key<K: Clone>(owner: &Owner, external_id: Option<&K>) -> Option<(IntegrationName, K)> {
    match (owner, external_id) {
        (Owner::Integration(integration), Some(external_id)) => Some((integration.clone(), external_id.clone())),
        _ => None,
    }
}

/// A persistent map of `entries` given in indexing order, equal to inserting them one after
/// the other: where keys repeat, the last entry holds the key. Built from sorted entries, where
/// each insert walks a path the last one left in the cache (inserting at random into a large
/// map of strings is a chain of cache misses per comparison), with full leaves (see
/// `in_order.rs`).
fn map_in_bulk<K: Ord + Clone, V: Clone>(mut entries: Vec<(K, V)>) -> OrdMap<K, V> {
    // Stable: among equal keys, the indexing order is kept, and the last one stays.
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut kept: Vec<(K, V)> = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        if kept.last().is_some_and(|(last, _)| *last == key) {
            kept.pop();
        }
        kept.push((key, value));
    }
    map_in_order(kept).expect("sorted, each key once")
}

/// A persistent set of `items`, built from sorted items (see [`map_in_bulk`]).
pub(super) fn set_in_bulk<T: Ord + Clone>(mut items: Vec<T>) -> OrdSet<T> {
    items.sort_unstable();
    items.dedup();
    set_in_order(items).expect("sorted, each item once")
}

/// Entries of the name, external-id and owner lookups of users or groups, gathered in the
/// order they would be indexed one by one: (case-folded name, id), (external id, id),
/// ((integration, external id), id).
struct LookupEntries<Id> {
    names: Vec<(String, Id)>,
    external_ids: Vec<(String, Id)>,
    owned: Vec<((IntegrationName, String), Id)>,
}

impl<Id> Default for LookupEntries<Id> {
    fn default() -> Self {
        LookupEntries {
            names: Vec::new(),
            external_ids: Vec::new(),
            owned: Vec::new(),
        }
    }
}

impl<Id: Copy> LookupEntries<Id> {
    fn add(&mut self, id: Id, name: &str, external_id: Option<&String>, owner: &Owner) {
        self.names.push((fold_case(name), id));
        if let Some(external_id) = external_id {
            self.external_ids.push((external_id.clone(), id));
        }
        if let Some(key) = owned_key(owner, external_id) {
            self.owned.push((key, id));
        }
    }
}

/// The entries of the users' lookups, gathered a user at a time (as a snapshot's users are
/// opened, say), then built into the lookups at once.
#[derive(Default)]
pub(crate) struct UserLookups {
    entries: LookupEntries<UserId>,
    owned_erased: Vec<((IntegrationName, ExternalIdHash), UserId)>,
}

impl UserLookups {
    /// Adds `user`'s entries; users come in the order they would be indexed one by one.
    pub(crate) fn add(&mut self, user: &User) {
        self.entries
            .add(user.id, &user.profile.user_name, user.external_id.as_ref(), &user.owner);
        if let Some(key) = owned_key(&user.owner, user.external_id_hash.as_ref()) {
            self.owned_erased.push((key, user.id));
        }
    }

    /// Builds the lookups into `indexes`, which must hold no user yet: the names, the largest,
    /// on a thread of their own while the others are built here.
    pub(crate) fn build_into(self, indexes: &mut Indexes) {
        debug_assert!(
            indexes.user_names.is_empty()
                && indexes.user_external_ids.is_empty()
                && indexes.owned_users.is_empty()
                && indexes.owned_erased_users.is_empty()
        );
        let UserLookups {
            entries:
                LookupEntries {
                    names,
                    external_ids,
                    owned,
                },
            owned_erased,
        } = self;
        std::thread::scope(|scope| {
            let names = scope.spawn(move || set_in_bulk(names));
            indexes.user_external_ids = set_in_bulk(external_ids);
            indexes.owned_users = map_in_bulk(owned);
            indexes.owned_erased_users = map_in_bulk(owned_erased);
            indexes.user_names = names.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        });
    }
}

impl Indexes {
    /// Indexes `users` at once, into maps that hold no user yet: the same as
    /// [`Indexes::index_user`] for each in turn, far cheaper for many.
    pub(crate) fn index_users_in_bulk<'a>(&mut self, users: impl Iterator<Item = &'a User>) {
        let mut lookups = UserLookups::default();
        users.for_each(|user| lookups.add(user));
        lookups.build_into(self);
    }

    /// Indexes `groups` at once, into maps that hold no group yet: the same as
    /// [`Indexes::index_group`] for each in turn.
    pub(crate) fn index_groups_in_bulk<'a>(&mut self, groups: impl Iterator<Item = &'a Group>) {
        debug_assert!(
            self.group_names.is_empty() && self.group_external_ids.is_empty() && self.owned_groups.is_empty()
        );
        let mut entries = LookupEntries::default();
        for group in groups {
            entries.add(group.id, &group.display_name, group.external_id.as_ref(), &group.owner);
        }
        self.group_names = set_in_bulk(entries.names);
        self.group_external_ids = set_in_bulk(entries.external_ids);
        self.owned_groups = map_in_bulk(entries.owned);
    }

    /// Adds `user`'s entries.
    pub(crate) fn index_user(&mut self, user: &User) {
        self.user_names.insert((fold_case(&user.profile.user_name), user.id));
        if let Some(external_id) = &user.external_id {
            self.user_external_ids.insert((external_id.clone(), user.id));
        }
        if let Some(key) = owned_key(&user.owner, user.external_id.as_ref()) {
            self.owned_users.insert(key, user.id);
        }
        if let Some(key) = owned_key(&user.owner, user.external_id_hash.as_ref()) {
            self.owned_erased_users.insert(key, user.id);
        }
    }

    /// Removes `user`'s entries (those that still point at it).
    pub(crate) fn unindex_user(&mut self, user: &User) {
        self.user_names.remove(&(fold_case(&user.profile.user_name), user.id));
        if let Some(external_id) = &user.external_id {
            self.user_external_ids.remove(&(external_id.clone(), user.id));
        }
        if let Some(key) = owned_key(&user.owner, user.external_id.as_ref())
            && self.owned_users.get(&key) == Some(&user.id)
        {
            self.owned_users.remove(&key);
        }
        if let Some(key) = owned_key(&user.owner, user.external_id_hash.as_ref())
            && self.owned_erased_users.get(&key) == Some(&user.id)
        {
            self.owned_erased_users.remove(&key);
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
