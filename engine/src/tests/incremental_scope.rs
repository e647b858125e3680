//! An incremental run ends where a complete listing of the same IdP would: the same users
//! (and whether they are active), groups and memberships, with `only_group_members` either
//! way, with or without a group filter, whatever the IdP did between the two runs (memberships
//! added and removed, nested groups, groups renamed out of the filter, users and groups
//! deleted, users changed outside scope). The incremental listing is built as a driver builds
//! one: the users and groups that changed, each changed group's full member list, and the users
//! entering scope read by id (`SyncInput::users_to_fetch`).
//!
//! Nesting goes through groups the filter includes before and after (a membership through a
//! nested group the filter drops is not held by the engine; the full listing judges it).

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use crate::absence::AbsenceRules;
use crate::command::Command;
use crate::ids::{IntegrationName, Member, SyncRunId};
use crate::model::UserProfile;
use crate::reconcile::{
    ExternalMember, GroupFilter, Guard, Listing, ListingScope, MissingUsers, ScopeRules, SnapshotGroup, SnapshotUser,
    SyncInput,
};
use crate::testing::Harness;

const NAMES: [&str; 4] = ["vpn-eng", "vpn-ops", "sales", "vpn-all"];

/// An IdP's directory: users (id → title, active), groups (id → name, members).
#[derive(Clone, Debug)]
struct Idp {
    users: BTreeMap<u8, (u8, bool)>,
    groups: BTreeMap<u8, (usize, BTreeSet<ExternalMember>)>,
}

impl Idp {
    fn user(&self, id: u8) -> Option<SnapshotUser> {
        let (title, active) = *self.users.get(&id)?;
        Some(SnapshotUser {
            external_id: format!("u{id}"),
            active,
            profile: UserProfile {
                user_name: format!("user{id}@example.com"),
                details: Some(Box::new(crate::model::ProfileDetails {
                    title: Some(format!("title {title}")),
                    ..Default::default()
                })),
                ..UserProfile::default()
            },
        })
    }

    fn group(&self, id: u8) -> SnapshotGroup {
        SnapshotGroup {
            external_id: format!("g{id}"),
            display_name: NAMES[self.groups[&id].0].to_owned(),
        }
    }

    fn add_group(&self, listing: &mut Listing, id: u8) {
        listing.add_group(self.group(id));
        for member in &self.groups[&id].1 {
            listing.add_member(&format!("g{id}"), member.clone());
        }
        listing.refreshed(&format!("g{id}"));
    }

    fn complete(&self) -> Listing {
        let mut listing = Listing::new(ListingScope::Complete);
        for id in self.users.keys() {
            listing.add_user(self.user(*id).unwrap());
        }
        for id in self.groups.keys() {
            self.add_group(&mut listing, *id);
        }
        listing
    }

    /// What an incremental listing since `before` says.
    fn since(&self, before: &Idp) -> Listing {
        let mut listing = Listing::new(ListingScope::Incremental);
        for (id, user) in &self.users {
            if before.users.get(id) != Some(user) {
                listing.add_user(self.user(*id).unwrap());
            }
        }
        for id in before.users.keys().filter(|id| !self.users.contains_key(*id)) {
            listing.removed_user(format!("u{id}"));
        }
        for (id, group) in &self.groups {
            if before.groups.get(id) != Some(group) {
                self.add_group(&mut listing, *id);
            }
        }
        for id in before.groups.keys().filter(|id| !self.groups.contains_key(*id)) {
            listing.removed_group(format!("g{id}"));
        }
        listing
    }
}

fn idp() -> impl Strategy<Value = Idp> {
    (
        proptest::collection::btree_map(0u8..8, (0u8..2, prop::bool::weighted(0.8)), 0..8),
        proptest::collection::btree_map(
            0u8..5,
            (
                0..NAMES.len(),
                proptest::collection::btree_set((any::<bool>(), 0u8..8), 0..6),
            ),
            0..5,
        ),
    )
        .prop_map(|(users, groups)| Idp {
            groups: groups
                .into_iter()
                .map(|(id, (name, members))| {
                    let members = members
                        .into_iter()
                        // A member that does not exist is not listed.
                        .filter(|(nested, member)| {
                            if *nested {
                                *member < 5
                            } else {
                                users.contains_key(member)
                            }
                        })
                        .map(|(nested, member)| match nested {
                            true => ExternalMember::Group(format!("g{}", member % 5)),
                            false => ExternalMember::User(format!("u{member}")),
                        })
                        .collect();
                    (id, (name, members))
                })
                .collect(),
            users,
        })
}

/// Drops nesting under a group that `filter` does not include in `a` and `b` alike, and edges
/// to groups that do not exist.
fn nest_within(filter: &GroupFilter, a: &mut Idp, b: &mut Idp) {
    let included = |idp: &Idp, id: &str| {
        let id: u8 = id.trim_start_matches('g').parse().unwrap();
        idp.groups.get(&id).is_some_and(|(name, _)| filter.allows(NAMES[*name]))
    };
    let keep = |member: &ExternalMember, a: &Idp, b: &Idp| match member {
        ExternalMember::User(_) => true,
        ExternalMember::Group(id) => included(a, id) && included(b, id),
    };
    let (a_view, b_view) = (a.clone(), b.clone());
    for idp in [&mut *a, &mut *b] {
        for (_, members) in idp.groups.values_mut() {
            members.retain(|member| keep(member, &a_view, &b_view));
        }
    }
}

fn run(h: &mut Harness, listing: Listing, rules: &ScopeRules) {
    let input = SyncInput {
        integration: IntegrationName::new("idp").unwrap(),
        run: SyncRunId::new(),
        listing,
        rules: rules.clone(),
    };
    let snapshot = input.into_snapshot(&h.state);
    h.when(Command::Reconcile {
        snapshot: Box::new(snapshot),
        guard: Guard::Confirmed,
    })
    .unwrap();
}

/// Users (active?), groups and memberships the integration owns, by IdP id.
type Owned = (
    BTreeMap<String, bool>,
    BTreeMap<String, String>,
    BTreeSet<(String, String)>,
);

fn owned(h: &Harness) -> Owned {
    let integration = IntegrationName::new("idp").unwrap();
    let state = &h.state;
    let users = state
        .users_owned_by(&integration)
        .map(|(external_id, id)| (external_id.to_owned(), state.user(id).unwrap().active))
        .collect();
    let mut groups = BTreeMap::new();
    let mut memberships = BTreeSet::new();
    for (external_id, id) in state.groups_owned_by(&integration) {
        groups.insert(external_id.to_owned(), state.group(id).unwrap().display_name.clone());
        for member in state.direct_members(id) {
            let member = match member {
                Member::User(user) => state.user(user).unwrap().external_id.clone().unwrap(),
                Member::Group(group) => state.group(group).unwrap().external_id.clone().unwrap(),
            };
            memberships.insert((external_id.to_owned(), member));
        }
    }
    (users, groups, memberships)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn an_incremental_run_ends_where_a_complete_listing_does(
        before in idp(),
        after in idp(),
        only_group_members in any::<bool>(),
        filtered in any::<bool>(),
        delete in any::<bool>(),
    ) {
        let filter = match filtered {
            true => GroupFilter::new(vec!["vpn-*".into()], vec![]).unwrap(),
            false => GroupFilter::default(),
        };
        let (mut before, mut after) = (before, after);
        nest_within(&filter, &mut before, &mut after);
        let rules = ScopeRules {
            groups: filter,
            only_group_members,
            absence: AbsenceRules::IMMEDIATE,
        };
        let harness = || {
            let mut h = Harness::new();
            h.policy.missing_users = if delete { MissingUsers::Delete } else { MissingUsers::Deactivate };
            run(&mut h, before.complete(), &rules);
            h
        };
        let mut complete = harness();
        run(&mut complete, after.complete(), &rules);
        let mut incremental = harness();
        let mut listing = after.since(&before);
        let probe = SyncInput {
            integration: IntegrationName::new("idp").unwrap(),
            run: SyncRunId::new(),
            listing,
            rules: rules.clone(),
        };
        let wanted = probe.users_to_fetch(&incremental.state);
        listing = probe.listing;
        for id in wanted {
            let number: u8 = id.trim_start_matches('u').parse().unwrap();
            if let Some(user) = after.user(number) {
                listing.add_user(user);
            }
        }
        run(&mut incremental, listing, &rules);
        prop_assert_eq!(owned(&incremental), owned(&complete));
    }
}

/// The cases the issue names, spelt out: a group renamed out of the filter takes out of scope
/// the users no other synced group holds, and a user changed in the IdP outside scope stays
/// out.
#[test]
fn a_group_renamed_out_of_the_filter_takes_its_members_out_of_scope() {
    let member = |id: u8| ExternalMember::User(format!("u{id}"));
    let before = Idp {
        users: BTreeMap::from([(1, (0, true)), (2, (0, true)), (3, (0, true))]),
        groups: BTreeMap::from([
            (0, (0, BTreeSet::from([member(1), member(2)]))),
            (1, (1, BTreeSet::from([member(2)]))),
            (2, (2, BTreeSet::from([member(3)]))),
        ]),
    };
    let mut after = before.clone();
    after.groups.get_mut(&0).unwrap().0 = 2; // vpn-eng → sales
    after.users.insert(3, (1, true)); // changed, in sales only
    let rules = ScopeRules {
        groups: GroupFilter::new(vec!["vpn-*".into()], vec![]).unwrap(),
        only_group_members: true,
        absence: AbsenceRules::IMMEDIATE,
    };
    let mut h = Harness::new();
    run(&mut h, before.complete(), &rules);
    let (users, groups, _) = owned(&h);
    assert_eq!(users.keys().collect::<Vec<_>>(), ["u1", "u2"]);
    assert_eq!(groups.keys().collect::<Vec<_>>(), ["g0", "g1"]);
    run(&mut h, after.since(&before), &rules);
    let (users, groups, memberships) = owned(&h);
    assert_eq!(users.keys().collect::<Vec<_>>(), ["u2"], "u1 was in vpn-eng only");
    assert_eq!(groups.keys().collect::<Vec<_>>(), ["g1"]);
    assert_eq!(memberships, BTreeSet::from([("g1".to_owned(), "u2".to_owned())]));
}
