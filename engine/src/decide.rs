//! `decide(state, command) -> events | rejection`: the choice of events, pure apart from the
//! ids it is handed. A rejected command writes nothing; a command with nothing to change
//! decides no events. Values are checked by `validate`; a reconcile is planned by
//! [`crate::reconcile`], and `decide` only turns the plan, or its hold, into events.

use std::collections::BTreeSet;

use serde::Serialize;
use uuid::Uuid;

use crate::command::{Command, Origin};
use crate::event::{Envelope, Event, Personal, Source};
use crate::ids::{GroupId, Member, Seq, Timestamp, UserId};
use crate::limits;
use crate::model::{BindingGroups, Owner, ResourceKind, ResourceRef};
use crate::reconcile::{self, GuardMemory, Plan, ReconcilePolicy, ReconcileReport};
use crate::rejection::Rejection;
use crate::roles;
use crate::speculate::apply_speculatively;
use crate::state::State;
use crate::validate::{validate_display_name, validate_external_id, validate_profile};

/// What a command produced besides its events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Outcome {
    /// Done; nothing more to say.
    Done,
    /// A user was provisioned with this id.
    UserProvisioned(UserId),
    /// A group was created with this id.
    GroupCreated(GroupId),
    /// A reconcile was applied (or had nothing to do).
    Reconciled(ReconcileReport),
    /// A reconcile was held by the mass-deactivation guard; nothing but the hold was written.
    Held(ReconcileReport),
    /// The outcomes of an atomic command's parts, in order.
    Atomic(Vec<Outcome>),
}

/// The events a command decided and its outcome.
#[derive(Clone, Debug)]
pub struct Decision {
    /// The events to append, in order; empty when there was nothing to change.
    pub events: Vec<Envelope>,
    /// What else the caller learns.
    pub outcome: Outcome,
}

/// What `decide` needs besides the state: fresh ids, and the tenant's reconcile settings.
pub struct DecideContext<'a> {
    /// Returns a fresh id for each new user or group. The writer passes UUID v7; tests pass a
    /// counter, so decisions replay exactly.
    pub new_id: &'a mut dyn FnMut() -> Uuid,
    /// How reconciles are guarded.
    pub policy: &'a ReconcilePolicy,
    /// What the guard knows beyond the state: the holds that stand and what each
    /// integration's recent runs removed.
    pub guard: &'a GuardMemory,
    /// When the command is decided: what a reconcile judges how long an absence has lasted
    /// against.
    pub now: Timestamp,
}

/// Decides what `command` does to `state`. A SCIM request that would leave the tenant without
/// an Owner is refused ([`Rejection::LastOwner`]).
pub fn decide(
    state: &State,
    command: &Command,
    origin: &Origin,
    context: &mut DecideContext<'_>,
) -> Result<Decision, Rejection> {
    let decision = decide_command(state, command, origin, context)?;
    if matches!(origin.source, Source::Scim { .. }) {
        keep_an_owner(state, &decision.events)?;
    }
    Ok(decision)
}

/// Refuses `events` if they take the tenant's last Owner away.
fn keep_an_owner(state: &State, events: &[Envelope]) -> Result<(), Rejection> {
    if events.is_empty() || !roles::has_owner(state) {
        return Ok(());
    }
    let mut after = state.clone();
    for envelope in events {
        apply_speculatively(&mut after, envelope);
    }
    if roles::has_owner(&after) {
        return Ok(());
    }
    let user = state
        .users()
        .map(|user| user.id)
        .find(|user| roles::effective_role(state, *user).is_some_and(|held| held.role == roles::OWNER))
        .expect("a tenant with an owner has a user holding the role");
    Err(Rejection::LastOwner { user })
}

/// A role binding's groups with its role name as it is kept ([`roles::role_name`]), checked
/// against the default binding's rules: the default binding has no groups and priority 0,
/// every other binding at least one group. Other kinds' groups as they are.
fn role_binding(resource: &ResourceRef, groups: &BindingGroups) -> Result<BindingGroups, Rejection> {
    let BindingGroups::Role { role, priority, groups } = groups else {
        return Ok(groups.clone());
    };
    let role = roles::role_name(role).map_err(|reason| Rejection::invalid("role", reason))?;
    let is_default = resource.id.as_str() == roles::DEFAULT_BINDING;
    if is_default && (!groups.is_empty() || *priority != 0) {
        return Err(Rejection::invalid(
            "groups",
            format!(
                "the {} role binding sets the default role: it takes no groups and no priority",
                roles::DEFAULT_BINDING
            ),
        ));
    }
    if !is_default && groups.is_empty() {
        return Err(Rejection::invalid("groups", "a role binding needs at least one group"));
    }
    let mut groups = groups.clone();
    groups.sort();
    groups.dedup();
    Ok(BindingGroups::Role {
        role,
        priority: *priority,
        groups,
    })
}

/// Decides what `command` does to `state`, whatever its door.
fn decide_command(
    state: &State,
    command: &Command,
    origin: &Origin,
    context: &mut DecideContext<'_>,
) -> Result<Decision, Rejection> {
    let wrap = |events: Vec<Event>| -> Vec<Envelope> {
        events
            .into_iter()
            .map(|event| Envelope {
                source: origin.source.clone(),
                cause: origin.cause.clone(),
                event,
            })
            .collect()
    };
    let done = |events: Vec<Event>| {
        Ok(Decision {
            events: wrap(events),
            outcome: Outcome::Done,
        })
    };
    match command {
        Command::ProvisionUser {
            owner,
            external_id,
            active,
            profile,
        } => {
            validate_profile(profile)?;
            validate_external_id(external_id.as_deref())?;
            if let Some(existing) = state.user_by_name(&profile.user_name) {
                return Err(Rejection::UserNameTaken {
                    user_name: profile.user_name.clone(),
                    existing: existing.id,
                });
            }
            let user = UserId((context.new_id)());
            let event = Event::UserProvisioned {
                user,
                owner: owner.clone(),
                external_id: external_id.clone(),
                active: *active,
                personal: Personal::Plain(Box::new(profile.clone())),
            };
            Ok(Decision {
                events: wrap(vec![event]),
                outcome: Outcome::UserProvisioned(user),
            })
        }
        Command::ReplaceUser {
            user,
            expected_version,
            external_id,
            active,
            profile,
        } => {
            let current = state.user(*user).ok_or(Rejection::UserNotFound(*user))?;
            check_version(*expected_version, current.version)?;
            if current.is_erased() && (current.profile != *profile || current.external_id != *external_id) {
                return Err(Rejection::UserErased(*user));
            }
            validate_profile(profile)?;
            validate_external_id(external_id.as_deref())?;
            keep_owned_external_id(&current.owner, current.external_id.as_ref(), external_id.as_ref())?;
            if let Some(other) = state.user_name_taken_from(&profile.user_name, current) {
                return Err(Rejection::UserNameTaken {
                    user_name: profile.user_name.clone(),
                    existing: other.id,
                });
            }
            let mut events = Vec::new();
            if current.profile != *profile || current.external_id != *external_id {
                events.push(Event::UserUpdated {
                    user: *user,
                    external_id: external_id.clone(),
                    personal: Personal::Plain(Box::new(profile.clone())),
                });
            }
            events.extend(active.and_then(|active| activation(current.active, active, *user)));
            done(events)
        }
        Command::SetUserActive { user, active } => {
            let current = state.user(*user).ok_or(Rejection::UserNotFound(*user))?;
            done(activation(current.active, *active, *user).into_iter().collect())
        }
        Command::EraseUser { user } => {
            let current = state.user(*user).ok_or(Rejection::UserNotFound(*user))?;
            done(if current.erased {
                vec![]
            } else {
                vec![Event::UserErased { user: *user }]
            })
        }
        Command::DeleteUser { user, expected_version } => {
            let current = state.user(*user).ok_or(Rejection::UserNotFound(*user))?;
            check_version(*expected_version, current.version)?;
            done(vec![Event::UserDeleted { user: *user }])
        }
        Command::CreateGroup {
            owner,
            external_id,
            display_name,
            members,
        } => {
            validate_display_name(display_name)?;
            validate_external_id(external_id.as_deref())?;
            let group = GroupId((context.new_id)());
            let members = new_members(state, group, members)?;
            let mut events = vec![Event::GroupCreated {
                group,
                owner: owner.clone(),
                external_id: external_id.clone(),
                display_name: display_name.clone(),
            }];
            if !members.is_empty() {
                events.push(Event::MembersAdded { group, members });
            }
            Ok(Decision {
                events: wrap(events),
                outcome: Outcome::GroupCreated(group),
            })
        }
        Command::UpdateGroup {
            group,
            expected_version,
            display_name,
            external_id,
        } => {
            let current = state.group(*group).ok_or(Rejection::GroupNotFound(*group))?;
            check_version(*expected_version, current.version)?;
            validate_display_name(display_name)?;
            validate_external_id(external_id.as_deref())?;
            keep_owned_external_id(&current.owner, current.external_id.as_ref(), external_id.as_ref())?;
            let mut events = Vec::new();
            if current.display_name != *display_name {
                events.push(Event::GroupRenamed {
                    group: *group,
                    display_name: display_name.clone(),
                });
            }
            if current.external_id != *external_id {
                events.push(Event::GroupExternalIdChanged {
                    group: *group,
                    external_id: external_id.clone(),
                });
            }
            done(events)
        }
        Command::DeleteGroup {
            group,
            expected_version,
        } => {
            let current = state.group(*group).ok_or(Rejection::GroupNotFound(*group))?;
            check_version(*expected_version, current.version)?;
            done(vec![Event::GroupDeleted { group: *group }])
        }
        Command::AddMembers { group, members } => {
            require_group(state, *group)?;
            let members = new_members(state, *group, members)?;
            done(if members.is_empty() {
                vec![]
            } else {
                vec![Event::MembersAdded { group: *group, members }]
            })
        }
        Command::RemoveMembers { group, members } => {
            require_group(state, *group)?;
            check_member_count(members.len())?;
            let leaving: Vec<Member> = members
                .iter()
                .copied()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .filter(|member| state.is_direct_member(*group, *member))
                .collect();
            done(if leaving.is_empty() {
                vec![]
            } else {
                vec![Event::MembersRemoved {
                    group: *group,
                    members: leaving,
                }]
            })
        }
        Command::ReplaceMembers { group, members } => {
            require_group(state, *group)?;
            check_member_count(members.len())?;
            let wanted: BTreeSet<Member> = members.iter().copied().collect();
            let joining = new_members(state, *group, members)?;
            let leaving: Vec<Member> = state
                .direct_members(*group)
                .filter(|member| !wanted.contains(member))
                .collect();
            let mut events = Vec::new();
            if !leaving.is_empty() {
                events.push(Event::MembersRemoved {
                    group: *group,
                    members: leaving,
                });
            }
            if !joining.is_empty() {
                events.push(Event::MembersAdded {
                    group: *group,
                    members: joining,
                });
            }
            done(events)
        }
        Command::SetBinding { resource, groups } => {
            if !groups.fits(resource.kind) {
                let expected = match resource.kind {
                    ResourceKind::Policy => "sources and destinations",
                    ResourceKind::Role => "a role, a priority and groups",
                    _ => "a list of groups",
                };
                return Err(Rejection::BindingShape {
                    kind: resource.kind,
                    expected,
                });
            }
            let groups = role_binding(resource, groups)?;
            let named = groups.groups();
            if named.len() > limits::BINDING_GROUPS_MAX {
                return Err(Rejection::invalid(
                    "groups",
                    format!("at most {} groups per binding", limits::BINDING_GROUPS_MAX),
                ));
            }
            for group in &named {
                require_group(state, *group)?;
            }
            if state.binding(resource) == Some(&groups) {
                return done(vec![]);
            }
            done(vec![Event::BindingSet {
                resource: resource.clone(),
                groups,
            }])
        }
        Command::RemoveBinding { resource } => {
            if state.binding(resource).is_none() {
                return Err(Rejection::BindingNotFound(resource.clone()));
            }
            done(vec![Event::BindingRemoved {
                resource: resource.clone(),
            }])
        }
        Command::Reconcile { snapshot, guard } => {
            let recent = context
                .guard
                .recent
                .get(&snapshot.integration)
                .copied()
                .unwrap_or_default();
            Ok(
                match reconcile::plan(
                    state,
                    snapshot,
                    *guard,
                    context.policy,
                    recent,
                    context.now,
                    context.new_id,
                ) {
                    Plan::Apply { events, report } => Decision {
                        events,
                        outcome: Outcome::Reconciled(report),
                    },
                    Plan::Hold { summary, report } => {
                        // A hold that stands is not logged again on every poll.
                        let events = if context.guard.holds.get(&snapshot.integration) == Some(&summary) {
                            Vec::new()
                        } else {
                            vec![reconcile::held_event(snapshot, summary)]
                        };
                        Decision {
                            events,
                            outcome: Outcome::Held(report),
                        }
                    }
                },
            )
        }
        Command::AcknowledgeRevocation {
            user,
            seq,
            index,
            resource,
            role,
            via,
        } => {
            // Only a change the log has can have been applied.
            if *seq == Seq::ZERO || *seq > state.seq() {
                return Err(Rejection::ChangeNotFound {
                    seq: *seq,
                    index: *index,
                });
            }
            done(vec![Event::RevocationAcknowledged {
                user: *user,
                seq: *seq,
                index: *index,
                resource: resource.clone(),
                role: *role,
                via: *via,
            }])
        }
        Command::Atomic(commands) => {
            let mut scratch = state.clone();
            let mut events = Vec::new();
            let mut outcomes = Vec::with_capacity(commands.len());
            for part in commands {
                let decision = decide_command(&scratch, part, origin, context)?;
                for envelope in &decision.events {
                    apply_speculatively(&mut scratch, envelope);
                }
                events.extend(decision.events);
                outcomes.push(decision.outcome);
            }
            Ok(Decision {
                events,
                outcome: Outcome::Atomic(outcomes),
            })
        }
    }
}

fn activation(current: bool, wanted: bool, user: UserId) -> Option<Event> {
    match (current, wanted) {
        (true, false) => Some(Event::UserDeactivated { user }),
        (false, true) => Some(Event::UserReactivated { user }),
        _ => None,
    }
}

/// Refuses to change the externalId of a user or group an integration owns: it is the
/// integration's key to the object, by which its next sync finds it. Changed by anyone else,
/// the integration would lose the object and could no longer deactivate or delete it when its
/// IdP does: a leaver hidden from offboarding. Setting the value it has is no change.
fn keep_owned_external_id(owner: &Owner, current: Option<&String>, wanted: Option<&String>) -> Result<(), Rejection> {
    match owner {
        Owner::Integration(integration) if current != wanted => Err(Rejection::OwnedExternalId {
            integration: integration.clone(),
            external_id: current.cloned(),
        }),
        _ => Ok(()),
    }
}

fn check_version(expected: Option<Seq>, actual: Seq) -> Result<(), Rejection> {
    match expected {
        Some(expected) if expected != actual => Err(Rejection::VersionMismatch { expected, actual }),
        _ => Ok(()),
    }
}

fn require_group(state: &State, group: GroupId) -> Result<(), Rejection> {
    state.group(group).map(|_| ()).ok_or(Rejection::GroupNotFound(group))
}

fn check_member_count(count: usize) -> Result<(), Rejection> {
    if count > limits::MEMBERS_PER_COMMAND_MAX {
        return Err(Rejection::invalid(
            "members",
            format!("at most {} members per request", limits::MEMBERS_PER_COMMAND_MAX),
        ));
    }
    Ok(())
}

/// The members of `members` that exist and are not yet in `group`, sorted, without duplicates.
fn new_members(state: &State, group: GroupId, members: &[Member]) -> Result<Vec<Member>, Rejection> {
    check_member_count(members.len())?;
    let mut joining = BTreeSet::new();
    for member in members {
        if *member == Member::Group(group) {
            return Err(Rejection::SelfMembership(group));
        }
        if !state.member_exists(*member) {
            return Err(Rejection::MemberNotFound(*member));
        }
        if !state.is_direct_member(group, *member) {
            joining.insert(*member);
        }
    }
    Ok(joining.into_iter().collect())
}
