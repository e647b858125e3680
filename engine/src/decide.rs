//! `decide(state, command) -> events | rejection`: validation and the choice of events, pure
//! apart from the ids it is handed. A rejected command writes nothing; a command with nothing to
//! change decides no events.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use uuid::Uuid;

use crate::command::{Command, Origin};
use crate::event::{Envelope, Event, HoldSummary, LoggedEvent, Personal};
use crate::ids::{EventId, GroupId, IntegrationName, Member, Seq, UserId};
use crate::limits;
use crate::model::{AttrValue, MultiValue, ResourceKind, UserProfile};
use crate::reconcile::{self, ReconcilePolicy, ReconcileReport};
use crate::state::State;

/// Why a command was refused. Nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[non_exhaustive]
pub enum Rejection {
    /// Another user has this userName (compared case-insensitively).
    #[error("userName {user_name:?} is already taken by user {existing}")]
    UserNameTaken {
        /// The name asked for.
        user_name: String,
        /// The user that has it.
        existing: UserId,
    },
    /// No such user.
    #[error("user {0} not found")]
    UserNotFound(UserId),
    /// The user's personal fields were erased; they cannot be set again.
    #[error("user {0} was erased; its personal fields cannot be changed")]
    UserErased(UserId),
    /// No such group.
    #[error("group {0} not found")]
    GroupNotFound(GroupId),
    /// A member that does not exist.
    #[error("member {0:?} not found")]
    MemberNotFound(Member),
    /// A group cannot contain itself.
    #[error("group {0} cannot be a member of itself")]
    SelfMembership(GroupId),
    /// The resource is not at the expected version.
    #[error("version mismatch: expected {expected}, current {actual}")]
    VersionMismatch {
        /// What the caller expected.
        expected: Seq,
        /// What it is.
        actual: Seq,
    },
    /// A field has a value the engine does not accept.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// Which field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A binding whose shape does not fit its kind (policies take sources and destinations).
    #[error("a {kind} binding needs {expected}")]
    BindingShape {
        /// The resource kind.
        kind: ResourceKind,
        /// The shape it needs.
        expected: &'static str,
    },
    /// No binding for this resource.
    #[error("no binding for {0}")]
    BindingNotFound(crate::model::ResourceRef),
}

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
    /// The holds already recorded, per integration, so that a hold that stands is not logged
    /// again on every poll.
    pub holds: &'a BTreeMap<IntegrationName, HoldSummary>,
}

/// Decides what `command` does to `state`.
pub fn decide(
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
            if let Some(other) = state.user_by_name(&profile.user_name)
                && other.id != *user
            {
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
                let expected = if resource.kind == ResourceKind::Policy {
                    "sources and destinations"
                } else {
                    "a list of groups"
                };
                return Err(Rejection::BindingShape {
                    kind: resource.kind,
                    expected,
                });
            }
            let pairs = groups.pairs();
            if pairs.len() > limits::BINDING_GROUPS_MAX {
                return Err(invalid(
                    "groups",
                    format!("at most {} groups per binding", limits::BINDING_GROUPS_MAX),
                ));
            }
            for (group, _) in &pairs {
                require_group(state, *group)?;
            }
            if state.binding(resource) == Some(groups) {
                return done(vec![]);
            }
            done(vec![Event::BindingSet {
                resource: resource.clone(),
                groups: groups.clone(),
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
        Command::Reconcile { snapshot, guard } => reconcile::decide(state, snapshot, *guard, context),
        Command::Atomic(commands) => {
            let mut scratch = state.clone();
            let mut events = Vec::new();
            let mut outcomes = Vec::with_capacity(commands.len());
            for part in commands {
                let decision = decide(&scratch, part, origin, context)?;
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

/// Folds an event that has no place in the log yet into a scratch state, so that the next
/// decision sees it. Its seq and time are placeholders: the writer assigns the real ones.
pub(crate) fn apply_speculatively(scratch: &mut State, envelope: &Envelope) {
    let logged = LoggedEvent {
        seq: scratch.seq().next(),
        recorded_at: scratch.recorded_at(),
        event_id: EventId(Uuid::nil()),
        envelope: envelope.clone(),
    };
    scratch.apply_mut(&logged, &crate::seal::WithoutKeys);
}

fn activation(current: bool, wanted: bool, user: UserId) -> Option<Event> {
    match (current, wanted) {
        (true, false) => Some(Event::UserDeactivated { user }),
        (false, true) => Some(Event::UserReactivated { user }),
        _ => None,
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
        return Err(invalid(
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

fn invalid(field: &str, reason: impl Into<String>) -> Rejection {
    Rejection::Invalid {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

fn check_len(field: &str, value: &str, max: usize) -> Result<(), Rejection> {
    if value.len() > max {
        return Err(invalid(field, format!("longer than {max} bytes")));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err(invalid(field, "contains control characters"));
    }
    Ok(())
}

fn check_optional(field: &str, value: &Option<String>) -> Result<(), Rejection> {
    value
        .as_deref()
        .map_or(Ok(()), |value| check_len(field, value, limits::ATTRIBUTE_LEN_MAX))
}

fn check_values(field: &str, values: &[MultiValue]) -> Result<(), Rejection> {
    if values.len() > limits::MULTI_VALUES_MAX {
        return Err(invalid(field, format!("at most {} values", limits::MULTI_VALUES_MAX)));
    }
    for value in values {
        check_len(field, &value.value, limits::ATTRIBUTE_LEN_MAX)?;
        check_optional(field, &value.display)?;
        check_optional(field, &value.kind)?;
    }
    if values.iter().filter(|value| value.primary).count() > 1 {
        return Err(invalid(field, "more than one value is primary"));
    }
    Ok(())
}

fn extra_len(value: &AttrValue) -> usize {
    match value {
        AttrValue::Null | AttrValue::Bool(_) => 1,
        AttrValue::Number(text) | AttrValue::String(text) => text.len(),
        AttrValue::Array(items) => items.iter().map(extra_len).sum::<usize>() + 1,
        AttrValue::Object(members) => {
            members
                .iter()
                .map(|(key, value)| key.len() + extra_len(value))
                .sum::<usize>()
                + 1
        }
    }
}

/// Checks a profile against the engine's limits.
pub fn validate_profile(profile: &UserProfile) -> Result<(), Rejection> {
    if profile.user_name.trim().is_empty() {
        return Err(invalid("userName", "must not be empty"));
    }
    check_len("userName", &profile.user_name, limits::USER_NAME_LEN_MAX)?;
    if let Some(name) = &profile.name {
        for part in [
            &name.formatted,
            &name.family_name,
            &name.given_name,
            &name.middle_name,
            &name.honorific_prefix,
            &name.honorific_suffix,
        ] {
            check_optional("name", part)?;
        }
    }
    for (field, value) in [
        ("displayName", &profile.display_name),
        ("nickName", &profile.nick_name),
        ("profileUrl", &profile.profile_url),
        ("title", &profile.title),
        ("userType", &profile.user_type),
        ("preferredLanguage", &profile.preferred_language),
        ("locale", &profile.locale),
        ("timezone", &profile.timezone),
    ] {
        check_optional(field, value)?;
    }
    for (field, values) in [
        ("emails", &profile.emails),
        ("phoneNumbers", &profile.phone_numbers),
        ("ims", &profile.ims),
        ("photos", &profile.photos),
        ("entitlements", &profile.entitlements),
        ("roles", &profile.roles),
        ("x509Certificates", &profile.x509_certificates),
    ] {
        check_values(field, values)?;
    }
    if profile.addresses.len() > limits::MULTI_VALUES_MAX {
        return Err(invalid(
            "addresses",
            format!("at most {} values", limits::MULTI_VALUES_MAX),
        ));
    }
    for address in &profile.addresses {
        for part in [
            &address.formatted,
            &address.street_address,
            &address.locality,
            &address.region,
            &address.postal_code,
            &address.country,
            &address.kind,
        ] {
            check_optional("addresses", part)?;
        }
    }
    if let Some(enterprise) = &profile.enterprise {
        for part in [
            &enterprise.employee_number,
            &enterprise.cost_center,
            &enterprise.organization,
            &enterprise.division,
            &enterprise.department,
        ] {
            check_optional("enterprise", part)?;
        }
        if let Some(manager) = &enterprise.manager {
            check_len("manager", &manager.value, limits::ATTRIBUTE_LEN_MAX)?;
            check_optional("manager", &manager.display_name)?;
        }
    }
    if profile.extra.len() > limits::EXTRA_ATTRIBUTES_MAX {
        return Err(invalid(
            "attributes",
            format!("at most {} attributes outside the schema", limits::EXTRA_ATTRIBUTES_MAX),
        ));
    }
    let extra_bytes: usize = profile
        .extra
        .iter()
        .map(|(name, value)| name.len() + extra_len(value))
        .sum();
    if extra_bytes > limits::EXTRA_BYTES_MAX {
        return Err(invalid(
            "attributes",
            format!("attributes outside the schema exceed {} bytes", limits::EXTRA_BYTES_MAX),
        ));
    }
    Ok(())
}

/// Checks an external id.
pub fn validate_external_id(external_id: Option<&str>) -> Result<(), Rejection> {
    match external_id {
        Some("") => Err(invalid("externalId", "must not be empty")),
        Some(value) => check_len("externalId", value, limits::EXTERNAL_ID_LEN_MAX),
        None => Ok(()),
    }
}

/// Checks a group name.
pub fn validate_display_name(display_name: &str) -> Result<(), Rejection> {
    if display_name.trim().is_empty() {
        return Err(invalid("displayName", "must not be empty"));
    }
    check_len("displayName", display_name, limits::DISPLAY_NAME_LEN_MAX)
}
