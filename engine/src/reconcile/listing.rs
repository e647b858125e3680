//! [`Listing`]: what a driver read from its IdP, before the integration's scope rules. Drivers
//! fill it object by object; the engine turns it into a snapshot ([`super::scope`]).
//!
//! A listing is complete (everything the IdP has) or incremental (what changed, plus the full
//! member lists of the groups it names as refreshed). An incremental listing's refreshed groups
//! become delta edges by comparing them with what the engine holds for the integration, so that
//! drivers whose IdP can only say "this group changed" never compute deltas themselves.

use std::collections::HashSet;
use std::sync::Arc;

use super::idp_times::IdpTimes;
use super::snapshot::{ExternalMember, ListedUser, Membership, SnapshotGroup, SnapshotUser};
use super::unique_list::UniqueList;
use crate::ids::IntegrationName;
use crate::state::State;

/// Users, groups and memberships as a driver read them.
#[derive(Debug, Default)]
pub struct Listing {
    /// Each once, by external id.
    pub(super) users: UniqueList<ListedUser>,
    /// Each once, by external id.
    pub(super) groups: UniqueList<SnapshotGroup>,
    /// Membership edges, each once: IdPs repeat an edge across pages, and order does not
    /// matter to reconcile.
    pub(super) edges: UniqueList<Membership>,
    pub(super) changes: Option<Changes>,
    /// When the IdP says its changes happened, where it says so.
    pub(super) idp_times: IdpTimes,
    /// What users are compared with as they are added.
    baseline: Option<Baseline>,
}

/// What a listing compares its users with as a driver adds them: the state when the run
/// began, and the integration whose users they are. A user read exactly as that state holds
/// it is kept as the state's record (see [`ListedUser`]), so that a resync that finds little
/// changed holds little more than the state. The plan still compares every listed user with
/// the writer's state at the time it plans, so a baseline that has grown stale changes what
/// a listing takes, never what it plans.
#[derive(Clone)]
pub struct Baseline {
    state: Arc<State>,
    integration: IntegrationName,
}

impl Baseline {
    /// `integration`'s users as `state` holds them.
    pub fn new(state: Arc<State>, integration: IntegrationName) -> Baseline {
        Baseline { state, integration }
    }

    /// `user`, shared with the state's record where that record is what it says.
    fn listed(&self, user: SnapshotUser) -> ListedUser {
        let record = self
            .state
            .owned_user(&self.integration, &user.external_id)
            .and_then(|id| self.state.user(id));
        match record {
            Some(record) => ListedUser::as_held(record, user),
            None => ListedUser::from(user),
        }
    }
}

impl std::fmt::Debug for Baseline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Baseline")
            .field("seq", &self.state.seq())
            .field("integration", &self.integration)
            .finish()
    }
}

/// What an incremental listing says besides the objects it lists.
#[derive(Debug, Default)]
pub(super) struct Changes {
    /// Groups whose member lists in `edges` are complete.
    pub(super) refreshed: HashSet<String>,
    pub(super) removed_users: Vec<String>,
    pub(super) removed_groups: Vec<String>,
    pub(super) joined: Vec<Membership>,
    pub(super) left: Vec<Membership>,
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

    /// An empty listing of the given scope whose users are compared with `baseline` as they
    /// are added.
    pub fn compared_with(scope: ListingScope, baseline: Option<Baseline>) -> Listing {
        Listing {
            baseline,
            ..Listing::new(scope)
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
        let listed = match &self.baseline {
            Some(baseline) => baseline.listed(user),
            None => ListedUser::from(user),
        };
        self.users.push(listed)
    }

    /// Adds a group; returns whether it is new to this listing.
    pub fn add_group(&mut self, group: SnapshotGroup) -> bool {
        self.groups.push(group)
    }

    /// Whether a user of this id is listed.
    pub fn has_user(&self, external_id: &str) -> bool {
        self.users.contains(external_id)
    }

    /// Whether a group of this id is listed.
    pub fn has_group(&self, external_id: &str) -> bool {
        self.groups.contains(external_id)
    }

    /// Adds a membership edge (of a complete listing, or of a refreshed group); returns
    /// whether it is new.
    pub fn add_member(&mut self, group: &str, member: ExternalMember) -> bool {
        self.edges.push(Membership {
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

    /// The groups an incremental listing's changes take a member from, each once, in order:
    /// those whose full member lists a driver reads again where a membership may go on through
    /// a nested group its changes do not show (none for a complete listing).
    pub fn groups_losing_members(&self) -> Vec<String> {
        let groups: std::collections::BTreeSet<&str> = self
            .changes
            .iter()
            .flat_map(|changes| changes.left.iter().map(|edge| edge.group.as_str()))
            .collect();
        groups.into_iter().map(str::to_owned).collect()
    }

    /// The IdP's own times of the listing's changes, for the driver to note what its IdP
    /// dates: a feed entry's time, or a user's time of its last status change.
    pub fn idp_times(&mut self) -> &mut IdpTimes {
        &mut self.idp_times
    }

    /// Every user id the listing names (its users, the user members of its edges, an
    /// incremental listing's removed users and changed edges), repeats included: what
    /// recognises the erased users it lists (see `Tenant::reconcile`).
    pub fn named_user_ids(&self) -> impl Iterator<Item = &str> + '_ {
        let changes = self.changes.iter().flat_map(|changes| {
            changes
                .removed_users
                .iter()
                .map(String::as_str)
                .chain(changes.joined.iter().chain(&changes.left).filter_map(Membership::user))
        });
        self.users
            .iter()
            .map(ListedUser::external_id)
            .chain(self.edges.iter().filter_map(Membership::user))
            .chain(changes)
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
