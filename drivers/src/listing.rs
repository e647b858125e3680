//! [`Listing`]: what a driver read from its IdP, before filters; and its conversion into the
//! engine's [`DirectorySnapshot`] with the integration's group filter applied.
//!
//! A listing is complete (everything the IdP has) or incremental (what changed, plus the full
//! member lists of the groups it names as refreshed). An incremental listing's refreshed groups
//! become delta edges by comparing them with what the engine holds for the integration, so that
//! drivers whose IdP can only say "this group changed" never compute deltas themselves.

use std::collections::{HashMap, HashSet};

use idpsync_engine::State;
use idpsync_engine::ids::{IntegrationName, Member, SyncRunId};
use idpsync_engine::model::Owner;
use idpsync_engine::reconcile::{
    DirectorySnapshot, ExternalMember, Membership, SnapshotGroup, SnapshotScope, SnapshotUser,
};

use crate::filter::GroupFilter;

/// Users, groups and memberships as a driver read them.
#[derive(Debug, Default)]
pub struct Listing {
    users: Vec<SnapshotUser>,
    user_ids: HashSet<String>,
    groups: Vec<SnapshotGroup>,
    group_ids: HashSet<String>,
    /// Membership edges; a set, because IdPs repeat an edge across pages and order does not
    /// matter to reconcile.
    edges: HashSet<Membership>,
    changes: Option<Changes>,
}

/// What an incremental listing says besides the objects it lists.
#[derive(Debug, Default)]
struct Changes {
    /// Groups whose member lists in `edges` are complete.
    refreshed: HashSet<String>,
    removed_users: Vec<String>,
    removed_groups: Vec<String>,
    joined: Vec<Membership>,
    left: Vec<Membership>,
}

/// How a listing is scoped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListingScope {
    /// Everything the IdP has.
    Complete,
    /// What changed since a cursor.
    Incremental,
}

impl Listing {
    /// An empty listing of the given scope.
    pub fn new(scope: ListingScope) -> Listing {
        Listing {
            changes: (scope == ListingScope::Incremental).then(Changes::default),
            ..Listing::default()
        }
    }

    /// The listing's scope.
    pub fn scope(&self) -> ListingScope {
        match self.changes {
            Some(_) => ListingScope::Incremental,
            None => ListingScope::Complete,
        }
    }

    /// Adds a user; returns whether it is new to this listing (a repeat is ignored).
    pub fn add_user(&mut self, user: SnapshotUser) -> bool {
        if !self.user_ids.insert(user.external_id.clone()) {
            return false;
        }
        self.users.push(user);
        true
    }

    /// Adds a group; returns whether it is new to this listing.
    pub fn add_group(&mut self, group: SnapshotGroup) -> bool {
        if !self.group_ids.insert(group.external_id.clone()) {
            return false;
        }
        self.groups.push(group);
        true
    }

    /// Whether a group of this id is listed.
    pub fn has_group(&self, external_id: &str) -> bool {
        self.group_ids.contains(external_id)
    }

    /// Adds a membership edge (of a complete listing, or of a refreshed group); returns
    /// whether it is new.
    pub fn add_member(&mut self, group: &str, member: ExternalMember) -> bool {
        self.edges.insert(Membership {
            group: group.to_owned(),
            member,
        })
    }

    /// Marks a group's member list, as added with [`Listing::add_member`], as complete
    /// (incremental listings only; in a complete listing every group's list is).
    pub fn refreshed(&mut self, group: &str) {
        if let Some(changes) = &mut self.changes {
            changes.refreshed.insert(group.to_owned());
        }
    }

    /// Records a user the IdP deleted (incremental listings only).
    pub fn removed_user(&mut self, external_id: String) {
        if let Some(changes) = &mut self.changes {
            changes.removed_users.push(external_id);
        }
    }

    /// Records a group the IdP deleted (incremental listings only).
    pub fn removed_group(&mut self, external_id: String) {
        if let Some(changes) = &mut self.changes {
            changes.removed_groups.push(external_id);
        }
    }

    /// Records one edge added or removed (incremental listings only).
    pub fn delta_edge(&mut self, group: &str, member: ExternalMember, joined: bool) {
        if let Some(changes) = &mut self.changes {
            let edge = Membership {
                group: group.to_owned(),
                member,
            };
            if joined {
                changes.joined.push(edge);
            } else {
                changes.left.push(edge);
            }
        }
    }

    /// Users listed.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Groups listed.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Membership edges listed.
    pub fn membership_count(&self) -> usize {
        self.edges.len()
    }
}

/// How a listing becomes a snapshot.
pub struct SnapshotRules<'a> {
    /// The integration and its run.
    pub integration: &'a IntegrationName,
    /// The run.
    pub run: SyncRunId,
    /// Which groups are synced.
    pub filter: &'a GroupFilter,
    /// Only users in a synced group (complete listings).
    pub only_group_members: bool,
}

impl Listing {
    /// The snapshot the engine reconciles, filtered; incremental listings are compared with
    /// `state` to find the members a refreshed group lost.
    pub fn into_snapshot(self, rules: &SnapshotRules<'_>, state: &State) -> DirectorySnapshot {
        let Listing {
            mut users,
            groups,
            edges,
            changes,
            ..
        } = self;
        let kept: HashSet<String> = groups
            .iter()
            .filter(|group| rules.filter.allows(&group.display_name))
            .map(|group| group.external_id.clone())
            .collect();
        let listed_elsewhere_allowed = |external_id: &str| -> bool {
            state
                .owned_group(rules.integration, external_id)
                .and_then(|id| state.group(id))
                .is_none_or(|group| rules.filter.allows(&group.display_name))
        };
        let group_allowed = |external_id: &str, listed: &HashSet<String>| -> bool {
            kept.contains(external_id) || (!listed.contains(external_id) && listed_elsewhere_allowed(external_id))
        };
        let listed: HashSet<String> = groups.iter().map(|group| group.external_id.clone()).collect();
        let edge_allowed = |edge: &Membership| {
            group_allowed(&edge.group, &listed)
                && match &edge.member {
                    ExternalMember::User(_) => true,
                    ExternalMember::Group(id) => group_allowed(id, &listed),
                }
        };
        let (kept_groups, dropped_groups): (Vec<SnapshotGroup>, Vec<SnapshotGroup>) =
            groups.into_iter().partition(|group| kept.contains(&group.external_id));
        let scope = match changes {
            None => {
                if rules.only_group_members {
                    let members = transitive_user_members(&edges, &kept);
                    users.retain(|user| members.contains(user.external_id.as_str()));
                }
                let user_ids: HashSet<&str> = users.iter().map(|user| user.external_id.as_str()).collect();
                let memberships = edges
                    .into_iter()
                    .filter(|edge| edge_allowed(edge))
                    .filter(|edge| match &edge.member {
                        ExternalMember::User(id) => !rules.only_group_members || user_ids.contains(id.as_str()),
                        ExternalMember::Group(_) => true,
                    })
                    .collect();
                SnapshotScope::Complete { memberships }
            }
            Some(changes) => {
                let mut removed_groups = changes.removed_groups;
                // A group renamed out of the filter is gone as far as this integration goes.
                removed_groups.extend(
                    dropped_groups
                        .iter()
                        .filter(|group| state.owned_group(rules.integration, &group.external_id).is_some())
                        .map(|group| group.external_id.clone()),
                );
                let mut joined: Vec<Membership> = edges.iter().filter(|edge| edge_allowed(edge)).cloned().collect();
                joined.extend(changes.joined.into_iter().filter(|edge| edge_allowed(edge)));
                let mut left: Vec<Membership> = changes.left.into_iter().filter(|edge| edge_allowed(edge)).collect();
                for group in changes.refreshed.iter().filter(|group| kept.contains(*group)) {
                    for member in owned_members(state, rules.integration, group) {
                        let edge = Membership {
                            group: group.clone(),
                            member,
                        };
                        if !edges.contains(&edge) {
                            left.push(edge);
                        }
                    }
                }
                SnapshotScope::Delta {
                    removed_users: changes.removed_users,
                    removed_groups,
                    joined,
                    left,
                }
            }
        };
        DirectorySnapshot {
            integration: rules.integration.clone(),
            run: rules.run,
            users,
            groups: kept_groups,
            scope,
        }
    }
}

/// The direct members the engine holds for an integration's group, by IdP id.
fn owned_members(state: &State, integration: &IntegrationName, group: &str) -> Vec<ExternalMember> {
    let Some(group_id) = state.owned_group(integration, group) else {
        return Vec::new();
    };
    let owner = Owner::Integration(integration.clone());
    state
        .direct_members(group_id)
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

/// Users who are members of a kept group, directly or through nested groups (cycle-safe).
fn transitive_user_members<'e>(edges: &'e HashSet<Membership>, kept: &HashSet<String>) -> HashSet<&'e str> {
    let mut children: HashMap<&str, Vec<&ExternalMember>> = HashMap::new();
    for edge in edges {
        children.entry(edge.group.as_str()).or_default().push(&edge.member);
    }
    let mut users = HashSet::new();
    let mut visited: HashSet<&str> = HashSet::new();
    let mut stack: Vec<&str> = Vec::new();
    for (group, _) in children.iter().filter(|(group, _)| kept.contains(**group)) {
        stack.push(group);
    }
    while let Some(group) = stack.pop() {
        if !visited.insert(group) {
            continue;
        }
        for member in children.get(group).into_iter().flatten() {
            match member {
                ExternalMember::User(id) => {
                    users.insert(id.as_str());
                }
                ExternalMember::Group(id) => stack.push(id.as_str()),
            }
        }
    }
    users
}

#[cfg(test)]
mod tests {
    use super::*;
    use idpsync_engine::model::UserProfile;

    fn user(id: &str) -> SnapshotUser {
        SnapshotUser {
            external_id: id.to_owned(),
            active: true,
            profile: UserProfile {
                user_name: format!("{id}@example.com"),
                ..UserProfile::default()
            },
        }
    }

    fn group(id: &str, name: &str) -> SnapshotGroup {
        SnapshotGroup {
            external_id: id.to_owned(),
            display_name: name.to_owned(),
        }
    }

    fn check(filter: GroupFilter, only_group_members: bool) -> DirectorySnapshot {
        let mut listing = Listing::new(ListingScope::Complete);
        for id in ["alice", "bob", "carol", "dave"] {
            listing.add_user(user(id));
        }
        assert!(!listing.add_user(user("alice")), "a repeat is not new");
        listing.add_group(group("g1", "vpn-eng"));
        listing.add_group(group("g2", "eng-nested"));
        listing.add_group(group("g3", "sales"));
        listing.add_member("g1", ExternalMember::User("alice".into()));
        listing.add_member("g1", ExternalMember::Group("g2".into()));
        listing.add_member("g2", ExternalMember::User("bob".into()));
        listing.add_member("g2", ExternalMember::Group("g1".into()));
        listing.add_member("g3", ExternalMember::User("carol".into()));
        let integration = IntegrationName::new("test").unwrap();
        let rules = SnapshotRules {
            integration: &integration,
            run: SyncRunId::new(),
            filter: &filter,
            only_group_members,
        };
        listing.into_snapshot(&rules, &State::new())
    }

    fn ids<T>(items: &[T], id: impl Fn(&T) -> &str) -> Vec<String> {
        let mut ids: Vec<String> = items.iter().map(|item| id(item).to_owned()).collect();
        ids.sort();
        ids
    }

    #[test]
    fn filters_drop_groups_and_their_edges() {
        let snapshot = check(GroupFilter::new(vec!["vpn-".into()], vec![]), false);
        assert_eq!(ids(&snapshot.groups, |g| &g.external_id), ["g1"]);
        assert_eq!(snapshot.users.len(), 4, "without only_group_members every user stays");
        let SnapshotScope::Complete { memberships } = snapshot.scope else {
            panic!("complete expected")
        };
        assert_eq!(
            memberships,
            [Membership {
                group: "g1".into(),
                member: ExternalMember::User("alice".into())
            }]
        );
    }

    #[test]
    fn only_group_members_follows_nested_groups_through_cycles() {
        let snapshot = check(GroupFilter::new(vec!["vpn-*".into()], vec![]), true);
        assert_eq!(ids(&snapshot.users, |u| &u.external_id), ["alice", "bob"]);
        let everything = check(GroupFilter::default(), true);
        assert_eq!(
            ids(&everything.users, |u| &u.external_id),
            ["alice", "bob", "carol"],
            "dave is in no group"
        );
    }
}
