//! What confirming a held sync would take away, person by person: the held snapshot planned
//! against the published state with the guard lifted (as [`Tenant::confirm_held`] plans it),
//! each planned event folded on a scratch copy and projected, so that the access each user
//! loses is the projector's own answer, not a guess. Nothing is written.

use std::collections::BTreeMap;

use idpsync_storage::Timestamp;
use uuid::Uuid;

use super::Tenant;
use crate::event::{Event, LoggedEvent};
use crate::ids::{EventId, GroupId, IntegrationName, Member, UserId};
use crate::projector::{AccessChange, AccessDirection, fold_and_project};
use crate::reconcile::{self, Guard, RecentRemovals, ReconcileReport};
use crate::roles::RoleChange;
use crate::seal::WithoutKeys;
use crate::state::State;

/// What confirming a held sync now would do, and whom it would take access from.
#[derive(Clone, Debug)]
pub struct HoldPreview {
    /// The plan's report, against the state now (it may differ from the report of the hold
    /// if the tenant changed since).
    pub report: ReconcileReport,
    /// Every user the plan deactivates, deletes, removes from a group, takes access from or
    /// changes the role of, by userName. When the report says the plan
    /// [removes the last Owner](ReconcileReport::removes_last_owner), the Owners are among
    /// them, with their role change.
    pub losers: Vec<LosingUser>,
}

/// One user whom a held sync would take something from.
#[derive(Clone, Debug)]
pub struct LosingUser {
    /// The user.
    pub user: UserId,
    /// Their userName, as the state reads now.
    pub user_name: String,
    /// The plan deactivates them.
    pub deactivated: bool,
    /// The plan deletes them.
    pub deleted: bool,
    /// The groups they would leave directly, by name.
    pub groups_left: Vec<String>,
    /// The access they would lose: resources, roles and the bound groups it came through.
    pub access_lost: Vec<AccessChange>,
    /// The management role they would lose (see [`crate::roles`]): the last change of it the
    /// plan makes, if it changes it.
    pub role_change: Option<RoleChange>,
}

impl LosingUser {
    fn of(state: &State, user: UserId) -> LosingUser {
        LosingUser {
            user,
            user_name: state
                .user(user)
                .map_or_else(|| user.to_string(), |found| found.profile.user_name.clone()),
            deactivated: false,
            deleted: false,
            groups_left: Vec::new(),
            access_lost: Vec::new(),
            role_change: None,
        }
    }
}

impl Tenant {
    /// What confirming `integration`'s held sync now would do, and whom it takes from; `None`
    /// when nothing is held.
    pub fn preview_held(&self, integration: &IntegrationName) -> Option<HoldPreview> {
        let held = self.held().remove(integration)?;
        let state = self.state();
        let mut new_id = Uuid::now_v7;
        let plan = reconcile::plan(
            &state,
            &held.snapshot,
            Guard::Confirmed,
            &self.settings.policy,
            RecentRemovals::default(),
            Timestamp::now(),
            &mut new_id,
        );
        let reconcile::Plan::Apply { events, report } = plan else {
            unreachable!("a confirmed plan is never held")
        };
        let mut scratch = (*state).clone();
        let mut losers: BTreeMap<UserId, LosingUser> = BTreeMap::new();
        for envelope in events {
            let before = scratch.clone();
            match &envelope.event {
                Event::UserDeactivated { user } => loser(&mut losers, &before, *user).deactivated = true,
                Event::UserDeleted { user } => loser(&mut losers, &before, *user).deleted = true,
                Event::MembersRemoved { group, members } => {
                    let name = group_name(&before, *group);
                    for member in members {
                        if let Member::User(user) = member {
                            loser(&mut losers, &before, *user).groups_left.push(name.clone());
                        }
                    }
                }
                _ => {}
            }
            let logged = LoggedEvent {
                seq: scratch.seq().next(),
                recorded_at: scratch.recorded_at(),
                event_id: EventId(Uuid::nil()),
                envelope,
            };
            let (_, projection) = fold_and_project(&mut scratch, &logged, &WithoutKeys);
            for change in projection.roles {
                if change.old.is_some() {
                    let user = change.user;
                    loser(&mut losers, &before, user).role_change = Some(change);
                }
            }
            for change in projection.access {
                if change.direction == AccessDirection::Revoked {
                    loser(&mut losers, &before, change.user).access_lost.push(change);
                }
            }
        }
        let mut losers: Vec<LosingUser> = losers.into_values().collect();
        losers.sort_by(|a, b| a.user_name.cmp(&b.user_name));
        Some(HoldPreview { report, losers })
    }
}

/// The entry of `user` among `losers`, made from `state` the first time.
fn loser<'a>(losers: &'a mut BTreeMap<UserId, LosingUser>, state: &State, user: UserId) -> &'a mut LosingUser {
    losers.entry(user).or_insert_with(|| LosingUser::of(state, user))
}

fn group_name(state: &State, group: GroupId) -> String {
    state
        .group(group)
        .map_or_else(|| group.to_string(), |found| found.display_name.clone())
}
