//! The folded state of one tenant: users, groups, memberships, bindings and their indexes.
//!
//! Everything lives in persistent maps (imbl), so a clone is O(1) and shares structure: readers
//! take the published state without blocking the writer, and checkpoints cost only what changes
//! after them. The fold ([`State::apply`], in `apply.rs`) is pure and total: no clock, no
//! randomness, no I/O; an event that names something missing changes nothing.

mod absences;
mod apply;
mod erasure;
mod flat;
mod in_order;
mod indexes;
mod inversion;
mod maps;
mod snapshot;

use std::sync::Arc;

use imbl::{OrdMap, OrdSet};

use crate::absence::{Absence, Absent};
use crate::ids::{GroupId, IntegrationName, Member, Seq, Timestamp, UserId};
use crate::model::{BindingGroups, BindingRole, Group, ResourceRef, User};

pub(crate) use absences::Absences;
pub use apply::Effects;
pub use flat::FlatState;
use indexes::{Bindings, Indexes};
pub(crate) use snapshot::{HistoryParts, encode_snapshot_sized};
pub use snapshot::{
    HistorySections, SNAPSHOT_FORMAT, SNAPSHOT_FORMAT_WITH_ABSENCES, SnapshotDecodeError, SnapshotOutline,
    decode_snapshot, encode_snapshot, read_outline, read_snapshot, read_state,
};

/// Folds a name for comparison (userName, group displayName): Unicode compatibility
/// normalisation (NFKC) and full case folding, so that `ＵＳＥＲ`, `User` and `user` are one
/// name. NFKC is applied again after folding, which can undo it (as Unicode's `NFKC_Casefold`
/// does; unlike it, default-ignorable characters are kept: a userName may not hold them).
pub fn fold_case(name: &str) -> String {
    // NFKC leaves ASCII as it is, and folding ASCII is lowercasing it: the common case.
    if name.is_ascii() {
        return name.to_ascii_lowercase();
    }
    let nfkc = icu_normalizer::ComposingNormalizerBorrowed::new_nfkc();
    let folded = icu_casemap::CaseMapper::new()
        .fold_string(&nfkc.normalize(name))
        .into_owned();
    nfkc.normalize(&folded).into_owned()
}

/// The groups one member is directly in, in id order: a plain slice behind an `Arc`, shared by
/// every state until one of them changes it (by making a new one: a member is in tens of
/// groups, not thousands). Far smaller than a persistent set per member, smaller than one set
/// of every (member, group) pair, and read as one contiguous list, in one allocation with its
/// counts.
pub(crate) type GroupList = Arc<[GroupId]>;

/// A group and its direct members.
#[derive(Clone, Debug)]
pub(crate) struct GroupEntry {
    pub(crate) group: Arc<Group>,
    pub(crate) members: OrdSet<Member>,
}

/// A tenant's state after the log up to [`State::seq`].
#[derive(Clone, Default)]
pub struct State {
    pub(crate) seq: Seq,
    pub(crate) recorded_at: Timestamp,
    pub(crate) users: OrdMap<UserId, Arc<User>>,
    /// Each group with its direct members: one entry, so that a membership change finds the
    /// group, checks it exists, changes its members and moves its version in one lookup.
    pub(crate) groups: OrdMap<GroupId, GroupEntry>,
    /// The groups each member is directly in. A member in no group has no entry.
    pub(crate) member_of: OrdMap<Member, GroupList>,
    /// Users and groups by name, external id and owner.
    pub(crate) indexes: Indexes,
    pub(crate) bindings: Bindings,
    /// What each integration's complete listings found absent, not yet taken effect.
    pub(crate) absences: Absences,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("seq", &self.seq)
            .field("users", &self.users.len())
            .field("groups", &self.groups.len())
            .field("bindings", &self.bindings.by_resource.len())
            .finish()
    }
}

impl State {
    /// The empty state, before the first record.
    pub fn new() -> State {
        State::default()
    }

    /// The last `seq` folded in.
    pub fn seq(&self) -> Seq {
        self.seq
    }

    /// The `recorded_at` of the last record folded in.
    pub fn recorded_at(&self) -> Timestamp {
        self.recorded_at
    }

    /// A user by id.
    pub fn user(&self, id: UserId) -> Option<&Arc<User>> {
        self.users.get(&id)
    }

    /// A group by id.
    pub fn group(&self, id: GroupId) -> Option<&Arc<Group>> {
        self.groups.get(&id).map(|entry| &entry.group)
    }

    /// Every user, in id order (which is creation order: ids are UUID v7).
    pub fn users(&self) -> impl Iterator<Item = &Arc<User>> + '_ {
        self.users.values()
    }

    /// Every group, in id order.
    pub fn groups(&self) -> impl Iterator<Item = &Arc<Group>> + '_ {
        self.groups.values().map(|entry| &entry.group)
    }

    /// Users from `after` (exclusive) on, in id order: for stable pagination.
    pub fn users_after(&self, after: Option<UserId>) -> impl Iterator<Item = &Arc<User>> + '_ {
        let start = match after {
            Some(id) => std::ops::Bound::Excluded(id),
            None => std::ops::Bound::Unbounded,
        };
        self.users
            .range((start, std::ops::Bound::Unbounded))
            .map(|(_, user)| user)
    }

    /// How many users.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// How many groups.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// The user with this userName, compared folded ([`fold_case`]). Where a log written
    /// before names were compared this way gives several users one folded name, the earliest
    /// (the lowest id: ids are UUID v7) holds it.
    pub fn user_by_name(&self, user_name: &str) -> Option<&Arc<User>> {
        let key = fold_case(user_name);
        self.indexes
            .user_names
            .range((key.clone(), UserId::MIN)..=(key, UserId::MAX))
            .next()
            .and_then(|(_, id)| self.users.get(id))
    }

    /// The user that stops `user` from going by `user_name`: another user that holds the
    /// name, unless `user` goes by it already (however it is written). A user keeps the name
    /// it has, even where an older log gave another user the same folded name.
    pub(crate) fn user_name_taken_from(&self, user_name: &str, user: &User) -> Option<&Arc<User>> {
        let holder = self.user_by_name(user_name)?;
        let keeps_its_name = fold_case(&user.profile.user_name) == fold_case(user_name);
        (holder.id != user.id && !keeps_its_name).then_some(holder)
    }

    /// Users whose folded userName starts with `prefix` (folded here), in name order.
    pub fn users_by_name_prefix<'a>(&'a self, prefix: &str) -> impl Iterator<Item = &'a Arc<User>> + 'a {
        let prefix = fold_case(prefix);
        self.indexes
            .user_names
            .range((prefix.clone(), UserId::MIN)..)
            .take_while(move |(name, _)| name.starts_with(&prefix))
            .filter_map(|(_, id)| self.users.get(id))
    }

    /// Folded userNames that more than one user has, with those users in id order: only a log
    /// written before names were compared folded can hold them (`decide` refuses a name that
    /// is taken). The first user of each holds the name.
    pub fn user_name_collisions(&self) -> Vec<(String, Vec<UserId>)> {
        let mut collisions: Vec<(String, Vec<UserId>)> = Vec::new();
        let mut previous: Option<&(String, UserId)> = None;
        for entry in &self.indexes.user_names {
            if let Some((name, holder)) = previous.filter(|(name, _)| *name == entry.0) {
                match collisions.last_mut() {
                    Some((last, users)) if last == name => users.push(entry.1),
                    _ => collisions.push((name.clone(), vec![*holder, entry.1])),
                }
            }
            previous = Some(entry);
        }
        collisions
    }

    /// Users with this externalId (exact match).
    pub fn users_by_external_id<'a>(&'a self, external_id: &str) -> impl Iterator<Item = &'a Arc<User>> + 'a {
        let key = external_id.to_owned();
        self.indexes
            .user_external_ids
            .range((key.clone(), UserId::MIN)..=(key, UserId::MAX))
            .filter_map(|(_, id)| self.users.get(id))
    }

    /// Groups with this externalId (exact match).
    pub fn groups_by_external_id<'a>(&'a self, external_id: &str) -> impl Iterator<Item = &'a Arc<Group>> + 'a {
        let key = external_id.to_owned();
        self.indexes
            .group_external_ids
            .range((key.clone(), GroupId::MIN)..=(key, GroupId::MAX))
            .filter_map(|(_, id)| self.group(*id))
    }

    /// Groups with this displayName, compared case-insensitively.
    pub fn groups_by_name<'a>(&'a self, display_name: &str) -> impl Iterator<Item = &'a Arc<Group>> + 'a {
        let key = fold_case(display_name);
        self.indexes
            .group_names
            .range((key.clone(), GroupId::MIN)..=(key, GroupId::MAX))
            .filter_map(|(_, id)| self.group(*id))
    }

    /// The user an integration owns under this external id.
    pub fn owned_user(&self, integration: &IntegrationName, external_id: &str) -> Option<UserId> {
        self.indexes
            .owned_users
            .get(&(integration.clone(), external_id.to_owned()))
            .copied()
    }

    /// The group an integration owns under this external id.
    pub fn owned_group(&self, integration: &IntegrationName, external_id: &str) -> Option<GroupId> {
        self.indexes
            .owned_groups
            .get(&(integration.clone(), external_id.to_owned()))
            .copied()
    }

    /// Every (external id, user) an integration owns, in external-id order.
    pub fn users_owned_by<'a>(
        &'a self,
        integration: &'a IntegrationName,
    ) -> impl Iterator<Item = (&'a str, UserId)> + 'a {
        self.indexes
            .owned_users
            .range((integration.clone(), String::new())..)
            .take_while(move |((owner, _), _)| owner == integration)
            .map(|((_, external_id), id)| (external_id.as_str(), *id))
    }

    /// Every (external id, group) an integration owns, in external-id order.
    pub fn groups_owned_by<'a>(
        &'a self,
        integration: &'a IntegrationName,
    ) -> impl Iterator<Item = (&'a str, GroupId)> + 'a {
        self.indexes
            .owned_groups
            .range((integration.clone(), String::new())..)
            .take_while(move |((owner, _), _)| owner == integration)
            .map(|((_, external_id), id)| (external_id.as_str(), *id))
    }

    /// A group's direct members, in order (users before groups, each by id), without copying
    /// them; none for a group that does not exist.
    pub fn direct_members(&self, group: GroupId) -> impl Iterator<Item = Member> + '_ {
        self.groups
            .get(&group)
            .into_iter()
            .flat_map(|entry| entry.members.iter().copied())
    }

    /// How many direct members a group has.
    pub fn direct_member_count(&self, group: GroupId) -> usize {
        self.groups.get(&group).map_or(0, |entry| entry.members.len())
    }

    /// Whether `member` is directly in `group`.
    pub fn is_direct_member(&self, group: GroupId, member: Member) -> bool {
        self.groups
            .get(&group)
            .is_some_and(|entry| entry.members.contains(&member))
    }

    /// The groups `member` is directly in, in id order.
    pub fn groups_of(&self, member: Member) -> impl Iterator<Item = GroupId> + '_ {
        self.member_of
            .get(&member)
            .into_iter()
            .flat_map(|list| list.iter().copied())
    }

    /// Whether a user or group with this id exists.
    pub fn member_exists(&self, member: Member) -> bool {
        match member {
            Member::User(id) => self.users.contains_key(&id),
            Member::Group(id) => self.groups.contains_key(&id),
        }
    }

    /// Every binding, in resource order.
    pub fn bindings(&self) -> impl DoubleEndedIterator<Item = (&ResourceRef, &BindingGroups)> + '_ {
        self.bindings.by_resource.iter()
    }

    /// One resource's binding.
    pub fn binding(&self, resource: &ResourceRef) -> Option<&BindingGroups> {
        self.bindings.by_resource.get(resource)
    }

    /// The resources (and roles) a group is bound to directly, in resource order.
    pub fn bindings_of_group(&self, group: GroupId) -> impl Iterator<Item = (&ResourceRef, BindingRole)> + '_ {
        self.bindings
            .by_group
            .get(&group)
            .into_iter()
            .flat_map(|bound| bound.iter().map(|(resource, role)| (resource, *role)))
    }

    /// Whether a group is bound to some resource directly.
    pub fn is_bound(&self, group: GroupId) -> bool {
        self.bindings.by_group.contains_key(&group)
    }

    /// What `integration`'s complete listings found absent and has not taken effect yet, with
    /// how long it has been absent (see [`crate::absence`]).
    pub fn pending_absences(&self, integration: &IntegrationName) -> impl Iterator<Item = (&Absent, &Absence)> + '_ {
        self.absences.of(integration).into_iter().flatten()
    }

    /// The integrations with pending absences.
    pub fn integrations_with_absences(&self) -> impl Iterator<Item = &IntegrationName> + '_ {
        self.absences.by_integration.keys()
    }
}
