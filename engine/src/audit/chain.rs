//! One user's chain: the events of the user, of every group it was ever in (directly or
//! through nesting) and the binding changes, folded into an empty state and projected, each
//! step kept with its door, time and chain link (see the module docs of [`crate::audit`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use idpsync_storage::{Hash32, Seq, TenantId, Timestamp};

use super::{AuditError, AuditSources, Door, Held, MembershipEnd, Offboarding, Standing, Step, StepKind, UserAudit};
use crate::error::EngineError;
use crate::event::{Event, LoggedEvent};
use crate::ids::{GroupId, Member, TokenId, UserId};
use crate::model::User;
use crate::projector::{self, AccessDirection, Projection};
use crate::seal::Keyring;
use crate::state::State;
use crate::tenant::Tenant;

/// The audit of `user` in `tenant`, as of its published head.
pub async fn audit_user(tenant: &Tenant, user: UserId, sources: &AuditSources<'_>) -> Result<UserAudit, AuditError> {
    let present = tenant.state();
    let head = present.seq();
    let mut events = relevant_events(tenant, user).await?;
    if events.is_empty() {
        return Err(AuditError::UnknownUser {
            tenant: tenant.id().clone(),
            user: user.to_string(),
        });
    }
    events.extend(
        sources
            .bindings
            .events()
            .iter()
            .filter(|(event, _)| event.seq <= head)
            .cloned(),
    );
    events.sort_by_key(|(event, _)| event.seq);
    events.dedup_by_key(|(event, _)| event.seq);

    let keyring = tenant.keyring();
    let mut chains = Chains::new([user], Keep::Every, keyring, sources.token_names);
    for (event, chain) in &events {
        chains.fold(event, *chain);
    }
    let chain = chains.take(user);
    Ok(chain.into_audit(user, &present, tenant.id().clone(), head))
}

/// Folds events into a state of its own and keeps the steps of a set of watched users: what a
/// user's audit and a period's report are made of. The events folded must include, for each
/// watched user, its own events, those of every group it was ever in (directly or through
/// nesting) and every binding change (see the module docs of [`crate::audit`]); events about
/// other users may be left out or kept, they change no watched user's steps.
pub(super) struct Chains<'a> {
    state: State,
    watched: HashMap<UserId, Chain>,
    keep: Keep,
    keyring: &'a Keyring,
    token_names: &'a BTreeMap<TokenId, String>,
}

/// Which steps [`Chains`] keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Keep {
    /// Every step: a user's audit.
    Every,
    /// The leaves, the revocations and their acknowledgements: all a leaver's line in the
    /// period's report is made of, so that its memory grows with the leavers, not with how
    /// often they changed groups.
    Offboarding,
}

impl Keep {
    fn keeps(self, kind: &StepKind) -> bool {
        match self {
            Keep::Every => true,
            Keep::Offboarding => matches!(
                kind,
                StepKind::Deactivated
                    | StepKind::Deleted
                    | StepKind::Acknowledged { .. }
                    | StepKind::Access {
                        direction: AccessDirection::Revoked,
                        ..
                    }
            ),
        }
    }
}

/// One watched user's steps so far.
#[derive(Default)]
pub(super) struct Chain {
    steps: Vec<Step>,
    /// Its record as last folded: its externalId names the IdP object of its sync steps, and
    /// its userName outlives a deletion.
    last_known: Option<Arc<User>>,
}

impl<'a> Chains<'a> {
    /// Watches `users`, keeping the steps `keep` says, opening sealed profiles with `keyring`
    /// and naming tokens from `token_names`.
    pub(super) fn new(
        users: impl IntoIterator<Item = UserId>,
        keep: Keep,
        keyring: &'a Keyring,
        token_names: &'a BTreeMap<TokenId, String>,
    ) -> Chains<'a> {
        Chains {
            state: State::new(),
            watched: users.into_iter().map(|user| (user, Chain::default())).collect(),
            keep,
            keyring,
            token_names,
        }
    }

    /// Whether `user` is watched.
    pub(super) fn watches(&self, user: UserId) -> bool {
        self.watched.contains_key(&user)
    }

    /// The state folded so far.
    pub(super) fn state(&self) -> &State {
        &self.state
    }

    /// Folds `event`, whose record has the chain link `chain`, adding the steps it makes for
    /// each watched user; returns its projection.
    pub(super) fn fold(&mut self, event: &LoggedEvent, chain: Hash32) -> Projection {
        let names_before = self.state.clone();
        let (effects, projection) = projector::fold_and_project(&mut self.state, event, self.keyring);
        let state = &self.state;
        if let Some(user) = event.envelope.event.user()
            && let Some(watched) = self.watched.get_mut(&user)
            && let Some(found) = state.user(user)
        {
            watched.last_known = Some(Arc::clone(found));
        }
        // When the revocation an acknowledgement answers was recorded: a step of an earlier event.
        let acknowledged_revocation_at = match &event.envelope.event {
            Event::RevocationAcknowledged {
                user,
                seq,
                resource,
                role,
                via,
                ..
            } => self.watched.get(user).and_then(|watched| {
                watched
                    .steps
                    .iter()
                    .find(|step| {
                        step.seq == *seq
                            && matches!(&step.kind, StepKind::Access { direction: AccessDirection::Revoked, resource: r, role: o, via: v, .. }
                                if r == resource && o == role && v == via)
                    })
                    .map(|step| step.recorded_at)
            }),
            _ => None,
        };
        let token_names = self.token_names;
        let keep = self.keep;
        let mut push = |user: UserId, kind: StepKind, latency_us: Option<i64>| {
            if let Some(watched) = self.watched.get_mut(&user)
                && keep.keeps(&kind)
            {
                let door = Door::of(event, token_names, watched.last_known.as_deref());
                watched.steps.push(Step {
                    seq: event.seq,
                    recorded_at: event.recorded_at,
                    chain,
                    kind,
                    door,
                    latency_us,
                });
            }
        };
        let received = Door::of(event, token_names, None).received_at();
        let lifecycle = match &event.envelope.event {
            Event::UserProvisioned { user, .. } => Some((*user, StepKind::Provisioned)),
            Event::UserDeactivated { user } => Some((*user, StepKind::Deactivated)),
            Event::UserReactivated { user } => Some((*user, StepKind::Reactivated)),
            Event::UserDeleted { user } => Some((*user, StepKind::Deleted)),
            Event::UserErased { user } | Event::UserErasedWithLookup { user, .. } => Some((*user, StepKind::Erased)),
            _ => None,
        };
        if let Some((user, kind)) = lifecycle {
            push(user, kind, None);
        }
        for (group, member, joined) in &effects.memberships {
            let Member::User(user) = *member else {
                continue;
            };
            let group_name = group_name(&names_before, state, *group);
            let kind = if *joined {
                StepKind::Joined {
                    group: *group,
                    group_name,
                }
            } else {
                let how = match &event.envelope.event {
                    Event::GroupDeleted { .. } => MembershipEnd::GroupDeleted,
                    Event::UserDeleted { .. } => MembershipEnd::UserDeleted,
                    _ => MembershipEnd::Removed,
                };
                StepKind::Left {
                    group: *group,
                    group_name,
                    how,
                }
            };
            push(user, kind, None);
        }
        if let Event::RevocationAcknowledged {
            user,
            seq,
            resource,
            role,
            via,
            ..
        } = &event.envelope.event
        {
            push(
                *user,
                StepKind::Acknowledged {
                    revoked: *seq,
                    resource: resource.clone(),
                    role: *role,
                    via: *via,
                    via_name: group_name(&names_before, state, *via),
                },
                acknowledged_revocation_at.map(|at| (event.recorded_at.0 - at.0).max(0)),
            );
        }
        for change in &projection.roles {
            let named = |via: Option<GroupId>| via.map(|via| (via, group_name(&names_before, state, via)));
            push(
                change.user,
                StepKind::Role {
                    old: change.old.as_ref().map(|held| held.role.clone()),
                    new: change.new.as_ref().map(|held| held.role.clone()),
                    binding: change.new.as_ref().and_then(|held| held.binding.clone()),
                    via: named(change.new.as_ref().and_then(|held| held.via)),
                    old_via: named(change.old.as_ref().and_then(|held| held.via)),
                },
                received.map(|at| (change.recorded_at.0 - at.0).max(0)),
            );
        }
        for change in &projection.access {
            push(
                change.user,
                StepKind::Access {
                    direction: change.direction,
                    resource: change.resource.clone(),
                    role: change.role,
                    via: change.via,
                    via_name: group_name(&names_before, state, change.via),
                },
                received.map(|at| (change.recorded_at.0 - at.0).max(0)),
            );
        }
        projection
    }

    /// Stops watching `user` and hands over its steps.
    pub(super) fn take(&mut self, user: UserId) -> Chain {
        self.watched.remove(&user).unwrap_or_default()
    }
}

impl Chain {
    /// The audit of `user` made of these steps, standing as `present` (the state at `head`)
    /// says.
    pub(super) fn into_audit(self, user: UserId, present: &State, tenant: TenantId, head: Seq) -> UserAudit {
        let Chain { steps, last_known } = self;
        let current = present.user(user);
        let standing = match current {
            Some(found) if found.active => Standing::Active,
            Some(_) => Standing::Inactive,
            None => Standing::Deleted,
        };
        let known = current.or(last_known.as_ref());
        let erased = known.is_some_and(|u| u.is_erased());
        let user_name = known.map_or_else(|| user.to_string(), |u| u.profile.user_name.clone());
        let still_holds: Vec<Held> = crate::access::grants(present, user)
            .into_iter()
            .map(|grant| Held {
                via_name: present
                    .group(grant.via)
                    .map_or_else(|| grant.via.to_string(), |g| g.display_name.clone()),
                resource: grant.resource,
                role: grant.role,
                via: grant.via,
            })
            .collect();
        let leave = last_leave(&steps, standing);
        let mut audit = UserAudit {
            tenant,
            user,
            user_name,
            erased,
            standing,
            head,
            generated_at: Timestamp::now(),
            leave,
            steps,
            still_holds,
            time_to_revoke_us: None,
            offboarding: None,
        };
        audit.time_to_revoke_us = time_to_revoke(&audit);
        audit.offboarding = offboarding(&audit);
        audit
    }
}

/// Every group that was ever an ancestor of `user` (directly or through nesting), and the
/// events of the user and of those groups, in log order, without repeats.
async fn relevant_events(tenant: &Tenant, user: UserId) -> Result<Vec<(LoggedEvent, Hash32)>, EngineError> {
    let mut events: BTreeMap<Seq, (LoggedEvent, Hash32)> = BTreeMap::new();
    let mut seen: BTreeSet<GroupId> = BTreeSet::new();
    let mut pending: Vec<Member> = vec![Member::User(user)];
    while let Some(member) = pending.pop() {
        for entry in tenant.timeline(member).await? {
            if let Event::MembersAdded { group, members } = &entry.event.envelope.event
                && members.contains(&member)
                && seen.insert(*group)
            {
                pending.push(Member::Group(*group));
            }
            events.entry(entry.event.seq).or_insert((entry.event, entry.chain));
        }
    }
    Ok(events.into_values().collect())
}

/// The last deactivation or deletion, unless the user is active again.
fn last_leave(steps: &[Step], standing: Standing) -> Option<Step> {
    if standing == Standing::Active {
        return None;
    }
    steps
        .iter()
        .rev()
        .find(|step| matches!(step.kind, StepKind::Deactivated | StepKind::Deleted))
        .cloned()
}

/// From the leave reaching IdP-Sync to the last access it took away; `None` while the user is
/// not a leaver or still holds access.
fn time_to_revoke(audit: &UserAudit) -> Option<i64> {
    let leave = audit.leave.as_ref()?;
    if !audit.still_holds.is_empty() {
        return None;
    }
    let received = leave.door.received_at().unwrap_or(leave.recorded_at);
    Some(
        audit
            .revocations()
            .map(|step| (step.recorded_at.0 - received.0).max(0))
            .max()
            .unwrap_or(0),
    )
}

/// The leave's chain, for a leaver.
fn offboarding(audit: &UserAudit) -> Option<Offboarding> {
    let leave = audit.leave.as_ref()?;
    let revocations: Vec<&Step> = audit.revocations().collect();
    let acknowledgements: Vec<Timestamp> = revocations
        .iter()
        .filter_map(|revocation| audit.acknowledgement_of(revocation).map(|step| step.recorded_at))
        .collect();
    let acknowledged = acknowledgements.len();
    Some(Offboarding {
        idp_changed_at: leave.door.idp_changed_at(),
        received_at: leave.door.received_at(),
        recorded_at: leave.recorded_at,
        revoked_at: revocations.iter().map(|step| step.recorded_at).max(),
        revocations: revocations.len(),
        acknowledged,
        acknowledged_at: (acknowledged == revocations.len())
            .then(|| acknowledgements.into_iter().max())
            .flatten(),
    })
}

/// A group's name at a step: after the event if it still exists, else before it.
fn group_name(before: &State, after: &State, group: GroupId) -> String {
    after
        .group(group)
        .or_else(|| before.group(group))
        .map_or_else(|| group.to_string(), |g| g.display_name.clone())
}
