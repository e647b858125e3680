//! The integration's scope, and the conversion of a [`Listing`] into the [`DirectorySnapshot`]
//! the plan takes: the group filter and `only_group_members` ([`ScopeRules`]) applied, and an
//! incremental listing's refreshed groups turned into delta edges.
//!
//! The conversion reads the state: a group listed in an earlier run is judged by the name the
//! engine holds for it, a group renamed out of the filter is gone, and a refreshed group loses
//! the members the engine holds that it no longer lists; under `only_group_members` the users
//! an incremental listing takes out of every synced group leave scope (see `reach`). The
//! writer converts against its own state, after every earlier commit, so what it compares
//! with is never stale.

use std::collections::{HashMap, HashSet};

use super::filter::GroupFilter;
use super::listing::Listing;
use super::reach::{Reach, owned_members};
use super::snapshot::{DirectorySnapshot, ExternalMember, Membership, SnapshotGroup, SnapshotScope};
use crate::absence::AbsenceRules;
use crate::ids::{IntegrationName, SyncRunId};
use crate::state::State;

/// Which part of what its IdP holds an integration syncs, and when what it no longer lists is
/// gone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScopeRules {
    /// Which groups are synced.
    pub groups: GroupFilter,
    /// Only users in a synced group, directly or through nested groups. An incremental
    /// listing keeps the users the integration holds, adds those its membership changes bring
    /// into a synced group and removes those whose last membership in one it takes away.
    pub only_group_members: bool,
    /// When what a complete listing no longer contains is removed.
    pub absence: AbsenceRules,
}

/// One sync run as the engine takes it to plan or reconcile: what the integration's driver
/// read, and the rules that scope it.
#[derive(Debug)]
pub struct SyncInput {
    /// The integration.
    pub integration: IntegrationName,
    /// The run; every event it causes names it.
    pub run: SyncRunId,
    /// What the driver read.
    pub listing: Listing,
    /// Which part of it the integration syncs.
    pub rules: ScopeRules,
}

impl SyncInput {
    /// The snapshot the plan takes, scoped by the rules; an incremental listing is compared
    /// with `state` to find the members its refreshed groups lost.
    pub(crate) fn into_snapshot(self, state: &State) -> DirectorySnapshot {
        let SyncInput {
            integration,
            run,
            listing,
            rules,
        } = self;
        let reach = match (&listing.changes, rules.only_group_members) {
            (Some(changes), true) => Some(Reach::of(state, &integration, &rules.groups, &listing, changes)),
            _ => None,
        };
        let Listing {
            users,
            groups,
            edges,
            changes,
            idp_times,
            ..
        } = listing;
        let (mut users, groups, mut edges) = (users.into_vec(), groups.into_vec(), edges.into_vec());
        let kept: HashSet<String> = groups
            .iter()
            .filter(|group| rules.groups.allows(&group.display_name))
            .map(|group| group.external_id.clone())
            .collect();
        let listed_elsewhere_allowed = |external_id: &str| -> bool {
            state
                .owned_group(&integration, external_id)
                .and_then(|id| state.group(id))
                .is_none_or(|group| rules.groups.allows(&group.display_name))
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
                    users.retain(|user| members.contains(user.external_id()));
                }
                let user_ids: HashSet<&str> = users.iter().map(|user| user.external_id()).collect();
                // In place: the listing's edges become the snapshot's, without a copy.
                edges.retain(|edge| {
                    edge_allowed(edge)
                        && match &edge.member {
                            ExternalMember::User(id) => !rules.only_group_members || user_ids.contains(id.as_str()),
                            ExternalMember::Group(_) => true,
                        }
                });
                edges.shrink_to_fit();
                SnapshotScope::Complete { memberships: edges }
            }
            Some(changes) => {
                let mut removed_groups = changes.removed_groups;
                // A group renamed out of the filter is gone as far as this integration goes.
                removed_groups.extend(
                    dropped_groups
                        .iter()
                        .filter(|group| state.owned_group(&integration, &group.external_id).is_some())
                        .map(|group| group.external_id.clone()),
                );
                let mut removed_users = changes.removed_users;
                let mut joined: Vec<Membership> = edges.iter().filter(|edge| edge_allowed(edge)).cloned().collect();
                joined.extend(changes.joined.into_iter().filter(|edge| edge_allowed(edge)));
                if let Some(reach) = &reach {
                    let held = |id: &str| state.owned_user(&integration, id).is_some();
                    // In scope: who the included groups reach now, and who the integration
                    // holds that they did not reach before either (in scope through a nested
                    // group the state does not hold, which this listing did not read); a user
                    // changed in the IdP but outside scope is not the integration's.
                    users.retain(|user| {
                        let id = user.external_id();
                        reach.after.contains(id) || (held(id) && !reach.before.contains(id))
                    });
                    joined.retain(|edge| edge.user().is_none_or(|id| reach.after.contains(id) || held(id)));
                    // Out of scope: those the included groups reached and no longer do, gone
                    // as they are from a complete listing.
                    let mut leaving: Vec<String> = reach
                        .before
                        .difference(&reach.after)
                        .filter(|id| !removed_users.contains(id))
                        .cloned()
                        .collect();
                    leaving.sort();
                    removed_users.extend(leaving);
                }
                let mut left: Vec<Membership> = changes.left.into_iter().filter(|edge| edge_allowed(edge)).collect();
                let listed_edges: HashSet<&Membership> = edges.iter().collect();
                for group in changes.refreshed.iter().filter(|group| kept.contains(*group)) {
                    let Some(group_id) = state.owned_group(&integration, group) else {
                        continue;
                    };
                    for member in owned_members(state, &integration, group_id) {
                        let edge = Membership {
                            group: group.clone(),
                            member,
                        };
                        if !listed_edges.contains(&edge) {
                            left.push(edge);
                        }
                    }
                }
                SnapshotScope::Delta {
                    removed_users,
                    removed_groups,
                    joined,
                    left,
                }
            }
        };
        DirectorySnapshot {
            integration,
            run,
            users,
            groups: kept_groups,
            scope,
            absence: rules.absence,
            idp_times,
        }
    }
}

/// Users who are members of a kept group, directly or through nested groups (cycle-safe).
fn transitive_user_members<'e>(edges: &'e [Membership], kept: &HashSet<String>) -> HashSet<&'e str> {
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
    use crate::model::UserProfile;
    use crate::reconcile::listing::ListingScope;
    use crate::reconcile::snapshot::SnapshotUser;

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
        assert!(
            !listing.add_member("g1", ExternalMember::User("alice".into())),
            "a repeated edge is not new"
        );
        assert!(listing.add_member("g3", ExternalMember::User("alice".into())));
        assert_eq!(listing.membership_count(), 6, "each edge once");
        let input = SyncInput {
            integration: IntegrationName::new("test").unwrap(),
            run: SyncRunId::new(),
            listing,
            rules: ScopeRules {
                groups: filter,
                only_group_members,
                absence: AbsenceRules::default(),
            },
        };
        input.into_snapshot(&State::new())
    }

    fn ids<T>(items: &[T], id: impl Fn(&T) -> &str) -> Vec<String> {
        let mut ids: Vec<String> = items.iter().map(|item| id(item).to_owned()).collect();
        ids.sort();
        ids
    }

    #[test]
    fn filters_drop_groups_and_their_edges() {
        let snapshot = check(GroupFilter::new(vec!["vpn-*".into()], vec![]).unwrap(), false);
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
        let snapshot = check(GroupFilter::new(vec!["vpn-*".into()], vec![]).unwrap(), true);
        assert_eq!(ids(&snapshot.users, |u| u.external_id()), ["alice", "bob"]);
        let everything = check(GroupFilter::default(), true);
        assert_eq!(
            ids(&everything.users, |u| u.external_id()),
            ["alice", "bob", "carol"],
            "dave is in no group"
        );
    }
}
