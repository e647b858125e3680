//! Who is in scope under `only_group_members` around an incremental listing: the users the
//! integration's included groups reach, directly or through nested groups, before the listing
//! (from the state alone) and after it (the state with the listing's membership changes
//! applied). The difference is who enters scope and who leaves it; [`super::scope`] turns it
//! into the snapshot, and a driver asks [`SyncInput::users_to_fetch`] for the users entering
//! scope whose user object the listing lacks.
//!
//! The state holds the members of the groups the integration syncs, not of the nested groups
//! the filter drops; a membership through such a group is seen only when the listing reads that
//! group's member list (the full listing judges it in any case).

use std::collections::{HashMap, HashSet};

use super::filter::GroupFilter;
use super::listing::{Changes, Listing};
use super::scope::SyncInput;
use super::snapshot::ExternalMember;
use crate::ids::{IntegrationName, Member};
use crate::model::Owner;
use crate::state::State;

/// Members by group, by IdP ids.
type Graph = HashMap<String, HashSet<ExternalMember>>;

/// The users an integration's included groups reach before and after an incremental listing.
#[derive(Debug, Default)]
pub(super) struct Reach {
    /// From the state alone.
    pub(super) before: HashSet<String>,
    /// With the listing applied.
    pub(super) after: HashSet<String>,
}

impl Reach {
    /// The reach around `listing` (an incremental one; `changes` are its changes) of the
    /// groups `integration` owns in `state` and those the listing adds, as `filter` includes
    /// them.
    pub(super) fn of(
        state: &State,
        integration: &IntegrationName,
        filter: &GroupFilter,
        listing: &Listing,
        changes: &Changes,
    ) -> Reach {
        let owned: Vec<(&str, crate::ids::GroupId)> = state.groups_owned_by(integration).collect();
        let before_graph: Graph = owned
            .iter()
            .map(|(external_id, id)| ((*external_id).to_owned(), owned_members(state, integration, *id)))
            .collect();
        let roots_before: Vec<&str> = owned
            .iter()
            .filter(|(_, id)| state.group(*id).is_some_and(|group| filter.allows(&group.display_name)))
            .map(|(external_id, _)| *external_id)
            .collect();
        let before = reached(&before_graph, roots_before);

        let removed: HashSet<&str> = changes.removed_groups.iter().map(String::as_str).collect();
        let listed_names: HashMap<&str, &str> = listing
            .groups
            .iter()
            .map(|group| (group.external_id.as_str(), group.display_name.as_str()))
            .collect();
        let mut after_graph = before_graph;
        for refreshed in &changes.refreshed {
            after_graph.insert(refreshed.clone(), HashSet::new());
        }
        for edge in &listing.edges {
            after_graph
                .entry(edge.group.clone())
                .or_default()
                .insert(edge.member.clone());
        }
        for edge in &changes.left {
            if let Some(members) = after_graph.get_mut(&edge.group) {
                members.remove(&edge.member);
            }
        }
        for edge in &changes.joined {
            after_graph
                .entry(edge.group.clone())
                .or_default()
                .insert(edge.member.clone());
        }
        after_graph.retain(|group, _| !removed.contains(group.as_str()));
        // A group is included by the name the listing gives it, else by the one the state holds.
        let included = |external_id: &str, held: Option<&str>| {
            listed_names
                .get(external_id)
                .copied()
                .or(held)
                .is_some_and(|name| filter.allows(name))
        };
        let mut roots_after: Vec<&str> = owned
            .iter()
            .filter(|(external_id, id)| {
                let held = state.group(*id).map(|group| group.display_name.as_str());
                included(external_id, held)
            })
            .map(|(external_id, _)| *external_id)
            .collect();
        roots_after.extend(
            listing
                .groups
                .iter()
                .map(|group| group.external_id.as_str())
                .filter(|external_id| state.owned_group(integration, external_id).is_none())
                .filter(|external_id| included(external_id, None)),
        );
        roots_after.retain(|external_id| !removed.contains(external_id));
        let after = reached(&after_graph, roots_after);
        Reach { before, after }
    }
}

impl SyncInput {
    /// The users an incremental listing under `only_group_members` brings into scope (joined
    /// to an included group, directly or through nesting) without listing them, as the
    /// driver must read them by id before the run is reconciled: those the integration does
    /// not hold, and those it holds deactivated that were out of scope before. Empty for a
    /// complete listing, or without `only_group_members` (every user is listed then).
    pub fn users_to_fetch(&self, state: &State) -> Vec<String> {
        let Some(changes) = self.listing.changes.as_ref().filter(|_| self.rules.only_group_members) else {
            return Vec::new();
        };
        let reach = Reach::of(state, &self.integration, &self.rules.groups, &self.listing, changes);
        let mut wanted: Vec<String> = reach
            .after
            .iter()
            .filter(|id| !self.listing.has_user(id))
            .filter(|id| match state.owned_user(&self.integration, id) {
                None => true,
                Some(user) => !reach.before.contains(id.as_str()) && state.user(user).is_some_and(|user| !user.active),
            })
            .cloned()
            .collect();
        wanted.sort();
        wanted
    }
}

/// The direct members the state holds for one of an integration's groups, by IdP id (only
/// the integration's own objects have one).
pub(super) fn owned_members(
    state: &State,
    integration: &IntegrationName,
    group: crate::ids::GroupId,
) -> HashSet<ExternalMember> {
    let owner = Owner::Integration(integration.clone());
    state
        .direct_members(group)
        .filter_map(|member| match member {
            Member::User(id) => state
                .user(id)
                .filter(|user| user.owner == owner)
                .and_then(|user| user.external_id.clone())
                .map(ExternalMember::User),
            Member::Group(id) => state
                .group(id)
                .filter(|group| group.owner == owner)
                .and_then(|group| group.external_id.clone())
                .map(ExternalMember::Group),
        })
        .collect()
}

/// The users `graph` reaches from `roots`, through nested groups (cycle-safe).
fn reached<'r>(graph: &Graph, roots: impl IntoIterator<Item = &'r str>) -> HashSet<String> {
    let mut users = HashSet::new();
    let mut visited: HashSet<&str> = HashSet::new();
    let mut stack: Vec<&str> = roots.into_iter().collect();
    while let Some(group) = stack.pop() {
        let Some((group, members)) = graph.get_key_value(group) else {
            continue;
        };
        if !visited.insert(group.as_str()) {
            continue;
        }
        for member in members {
            match member {
                ExternalMember::User(id) => {
                    users.insert(id.clone());
                }
                ExternalMember::Group(id) => stack.push(id),
            }
        }
    }
    users
}
