//! The mass-deactivation guard: a sync that, with what the integration's earlier runs took
//! away within the window, would take access from more than the configured share of the
//! integration's users is not applied; a [`Event::ReconcileHeld`] records the hold, and an
//! operator confirms or rejects it. An IdP outage or a permissions change must never look
//! like everyone leaving the company, whether it comes in one run or in several small ones.
//!
//! # What counts
//!
//! The guard counts people: the users a run takes access from ([`Removals`]). A user counts
//! once per run when the run
//! - deactivates or deletes the user (whatever access it had: that is an offboarding), or
//! - takes from the user, by removing a membership or deleting a group, a resource (in a
//!   role) that the user no longer reaches at the end of the run.
//!
//! A membership removal or a group deletion that no binding reaches removes no access and
//! does not count; nor does a move from one bound group to another that reaches the same
//! resources. Counting every removal instead would hold the everyday reshuffling of groups
//! no policy uses, and a guard that holds too often is confirmed without being read. Counting
//! raw events would also weigh a deleted group with a thousand members like one user.
//!
//! # The formula
//!
//! With `removals` the users this run takes access from, `earlier` those that the
//! integration's applied runs within the window took access from (since the last confirmed
//! one), `owned` the users the integration owns before this run and `deleted` the users those
//! earlier runs deleted (so that a series of deletions does not shrink the size it is judged
//! against), the run is held when
//!
//! ```text
//! removals > 0  and  (earlier + removals) × 1000 > hold_above_permille × (owned + deleted)
//! ```
//!
//! An integration that owns no user, and a run that removes nothing, are never held by the
//! formula.
//!
//! # The last Owner
//!
//! Whatever the share, a run after which no user of the tenant holds the Owner role (see
//! [`crate::roles`]) while one did before is held too: losing the last Owner locks the
//! tenant's administrators out, and an IdP's group mishap must not do that unseen. The report
//! says so ([`ReconcileReport::removes_last_owner`]), and so does the hold's preview. A run
//! applied although it passes the limit was confirmed by an operator: the window starts again
//! after it, so that what was confirmed is not counted against the next run.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::report::ReconcileReport;
use super::snapshot::DirectorySnapshot;
use crate::access::grants;
use crate::event::{Cause, Envelope, Event, HoldSummary, Source};
use crate::ids::{IntegrationName, UserId};
use crate::model::{BindingRole, ResourceRef};
use crate::projector;
use crate::state::State;

/// Whether the mass-deactivation guard applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Guard {
    /// Hold a snapshot that removes too much access.
    Enforce,
    /// An operator confirmed this snapshot: apply it whatever it removes.
    Confirmed,
}

/// What an integration's applied runs within the window took away, since the last confirmed
/// one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentRemovals {
    /// Users those runs took access from (each run counts its users once).
    pub removals: u32,
    /// Of them, the users those runs deleted.
    pub deletions: u32,
}

/// What the guard knows beyond the state, per integration: the hold that stands, and what
/// its recent runs removed.
#[derive(Clone, Debug, Default)]
pub struct GuardMemory {
    /// The holds already recorded, so that a hold that stands is not logged again on every
    /// poll.
    pub holds: BTreeMap<IntegrationName, HoldSummary>,
    /// What each integration's runs within the window removed.
    pub recent: BTreeMap<IntegrationName, RecentRemovals>,
}

/// What the guard counted for one run, and the limit it was judged against (see the module's
/// formula).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardCount {
    /// Users this run takes access from.
    pub removals: u32,
    /// Of them, the users it deletes.
    pub deletions: u32,
    /// Users the integration owned before the run.
    pub owned_users: u32,
    /// What the integration's earlier runs within the window removed.
    pub earlier: RecentRemovals,
    /// The limit, in thousandths of [`GuardCount::size`].
    pub limit_permille: u32,
}

impl GuardCount {
    /// The size of the integration the limit is a share of: the users it owns, and those its
    /// runs within the window deleted.
    pub fn size(&self) -> u64 {
        u64::from(self.owned_users) + u64::from(self.earlier.deletions)
    }

    /// Whether the run, with the window, takes access from more than the limit allows.
    pub fn over_limit(&self) -> bool {
        let removed = u64::from(self.earlier.removals) + u64::from(self.removals);
        self.removals > 0 && removed * 1000 > u64::from(self.limit_permille) * self.size()
    }
}

/// The users a run takes access from, noted event by event before each is applied, and
/// counted on the state after the run's last one. The plan counts what it would do with it;
/// the window, reading applied runs back from the log, counts them with it too, so the two
/// cannot disagree.
#[derive(Default)]
pub(crate) struct Removals {
    /// Users deactivated or deleted: they count whatever they could reach.
    offboarded: BTreeSet<UserId>,
    /// Of them, the deleted ones.
    deleted: BTreeSet<UserId>,
    /// Users a removal may take access from, with the resources (and roles) it may take.
    at_risk: BTreeMap<UserId, BTreeSet<(ResourceRef, BindingRole)>>,
}

impl Removals {
    /// Notes whom `event`, about to be applied to `state`, may take access from.
    pub(crate) fn before(&mut self, state: &State, event: &Event) {
        match event {
            Event::UserDeactivated { user } => {
                self.offboarded.insert(*user);
            }
            Event::UserDeleted { user } => {
                self.offboarded.insert(*user);
                self.deleted.insert(*user);
            }
            Event::MembersRemoved { .. } | Event::GroupDeleted { .. } => {
                // The projector knows whom a removal can reach, and through which bound groups;
                // a removal in groups no binding reaches affects no one.
                let pending = projector::begin(state, event);
                for (user, grants) in pending.grants_before() {
                    self.at_risk
                        .entry(user)
                        .or_default()
                        .extend(grants.iter().map(|grant| (grant.resource.clone(), grant.role)));
                }
            }
            _ => {}
        }
    }

    /// The users the run took access from, and of them those it deleted, judged on `after`,
    /// the state after its last event.
    pub(crate) fn count(self, after: &State) -> (u32, u32) {
        let mut removed = self.offboarded;
        for (user, at_risk) in self.at_risk {
            if removed.contains(&user) {
                continue;
            }
            let reached: BTreeSet<(ResourceRef, BindingRole)> = grants(after, user)
                .into_iter()
                .map(|grant| (grant.resource, grant.role))
                .collect();
            if !at_risk.is_subset(&reached) {
                removed.insert(user);
            }
        }
        (removed.len() as u32, self.deleted.len() as u32)
    }
}

/// The hold a plan calls for, if any: the guard applies, and `count` is over the limit or the
/// plan takes the tenant's last Owner away ([`ReconcileReport::removes_last_owner`]).
pub(super) fn hold(guard: Guard, count: &GuardCount, report: &ReconcileReport) -> Option<HoldSummary> {
    if guard == Guard::Confirmed || !(count.over_limit() || report.removes_last_owner) {
        return None;
    }
    Some(HoldSummary {
        owned_users: count.owned_users,
        deactivations: report.users_deactivated,
        deletions: report.users_deleted,
        limit_permille: count.limit_permille,
    })
}

/// The event that records a hold of `snapshot`.
pub(crate) fn held_event(snapshot: &DirectorySnapshot, summary: HoldSummary) -> Envelope {
    Envelope {
        source: Source::Integration {
            integration: snapshot.integration.clone(),
            run: snapshot.run,
        },
        cause: Cause::Unspecified,
        event: Event::ReconcileHeld {
            integration: snapshot.integration.clone(),
            run: snapshot.run,
            summary,
        },
    }
}
