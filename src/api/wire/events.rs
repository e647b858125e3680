//! The JSON shapes of events as logged (timelines, the change stream) and of the access and
//! role changes they cause. The engine's events get their public names here, one variant per event type.

use idpsync_engine::absence::Absent;
use idpsync_engine::event::{Cause, Event, LoggedEvent, Source};
use idpsync_engine::ids::{GroupId, UserId};
use idpsync_engine::seal::Opener;
use idpsync_engine::{AccessChange, AccessDirection, RoleAssignment, RoleChange, State};
use idpsync_storage::Hash32;
use serde::Serialize;
use utoipa::ToSchema;

use super::{Binding, GroupRef, MemberRef, ResourceRow, owner_name};

/// An event as logged: position, time, id, chain link, door, cause and fields.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoggedEventRow {
    /// Its place in the tenant's log.
    pub seq: u64,
    /// When it was recorded (RFC 3339).
    pub recorded_at: String,
    /// Its id, unique across tenants.
    pub event_id: String,
    /// The chain hash of its record, in hex.
    pub chain: String,
    /// Where it came from.
    pub source: SourceRow,
    /// What caused it.
    pub cause: CauseRow,
    /// The event.
    pub event: EventBody,
}

impl LoggedEventRow {
    /// `event` with its chain link; personal fields are read with `opener` while they can be.
    pub fn of(event: &LoggedEvent, chain: &Hash32, opener: &dyn Opener) -> LoggedEventRow {
        LoggedEventRow {
            seq: event.seq.0,
            recorded_at: event.recorded_at.to_rfc3339(),
            event_id: event.event_id.0.to_string(),
            chain: chain.to_hex(),
            source: SourceRow::from(&event.envelope.source),
            cause: CauseRow::from(&event.envelope.cause),
            event: EventBody::of(&event.envelope.event, opener),
        }
    }
}

/// A tenant's events about one user or group, oldest first.
#[derive(Serialize, ToSchema)]
pub struct Timeline {
    /// The log's head when it was read.
    pub seq: u64,
    /// The events.
    pub items: Vec<LoggedEventRow>,
}

/// The door an event came in by.
#[derive(Serialize, ToSchema)]
#[serde(tag = "door", rename_all = "lowercase")]
pub enum SourceRow {
    /// A SCIM request authenticated by this token.
    Scim {
        /// The token's id.
        token: String,
    },
    /// A sync driver's run.
    Integration {
        /// The integration.
        integration: String,
        /// The run.
        run: String,
    },
    /// The management API, authenticated by this admin token.
    Admin {
        /// The token's id.
        token: String,
    },
    /// An operator's command.
    Operator,
    /// The synthetic workload.
    Workload,
}

impl From<&Source> for SourceRow {
    fn from(source: &Source) -> Self {
        match source {
            Source::Scim { token } => SourceRow::Scim {
                token: token.to_string(),
            },
            Source::Integration { integration, run } => SourceRow::Integration {
                integration: integration.as_str().to_owned(),
                run: run.to_string(),
            },
            Source::Admin { token } => SourceRow::Admin {
                token: token.to_string(),
            },
            Source::Operator => SourceRow::Operator,
            Source::Workload => SourceRow::Workload,
        }
    }
}

/// What caused an event: at most one of `request`, `idpObject` and `idpUser` is set, and
/// `idpChangedAt` beside an IdP's object or user when the IdP dated its change.
#[derive(Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CauseRow {
    /// The request (SCIM or API) that asked for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// The IdP object a sync read it from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idp_object: Option<String>,
    /// Set when the IdP's user record caused it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idp_user: Option<bool>,
    /// When the IdP made the change, by its own clock (RFC 3339), where it said so: from its
    /// change feed, or the user's time of its last status change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idp_changed_at: Option<String>,
}

impl From<&Cause> for CauseRow {
    fn from(cause: &Cause) -> Self {
        match cause {
            Cause::Request(id) => CauseRow {
                request: Some(id.to_string()),
                ..CauseRow::default()
            },
            Cause::IdpObject(id) => CauseRow {
                idp_object: Some(id.to_string()),
                ..CauseRow::default()
            },
            Cause::IdpUser => CauseRow {
                idp_user: Some(true),
                ..CauseRow::default()
            },
            Cause::IdpObjectChanged { object, at } => CauseRow {
                idp_object: Some(object.clone()),
                idp_changed_at: Some(at.to_rfc3339()),
                ..CauseRow::default()
            },
            Cause::IdpUserChanged { at } => CauseRow {
                idp_user: Some(true),
                idp_changed_at: Some(at.to_rfc3339()),
                ..CauseRow::default()
            },
            Cause::Unspecified => CauseRow::default(),
        }
    }
}

/// Something a complete listing found absent, by the engine's ids: a user, a group, or a
/// group's member.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AbsentRef {
    /// The user, when a user is absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub user: Option<UserId>,
    /// The group, when a group or one of its members is absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub group: Option<GroupId>,
    /// The member, when a membership is absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<MemberRef>,
}

impl From<&Absent> for AbsentRef {
    fn from(absent: &Absent) -> Self {
        let (user, group, member) = match absent {
            Absent::User(user) => (Some(*user), None, None),
            Absent::Group(group) => (None, Some(*group), None),
            Absent::Membership { group, member } => (None, Some(*group), Some(MemberRef::from(*member))),
        };
        AbsentRef { user, group, member }
    }
}

/// An event's fields, tagged by its `type`.
#[derive(Serialize, ToSchema)]
#[serde(tag = "type")]
pub enum EventBody {
    /// A user was created.
    #[serde(rename = "user.provisioned", rename_all = "camelCase")]
    UserProvisioned {
        /// The user.
        #[schema(value_type = String)]
        user: UserId,
        /// Who manages it: `scim`, `operator` or `integration:<name>`.
        owner: String,
        /// The IdP's id for it, unless erased.
        external_id: Option<String>,
        /// Whether it may have access.
        active: bool,
        /// Its userName, unless erased.
        user_name: Option<String>,
    },
    /// A user's attributes changed.
    #[serde(rename = "user.updated", rename_all = "camelCase")]
    UserUpdated {
        /// The user.
        #[schema(value_type = String)]
        user: UserId,
        /// The IdP's id for it, unless erased.
        external_id: Option<String>,
        /// Its userName, unless erased.
        user_name: Option<String>,
    },
    /// A user lost all access.
    #[serde(rename = "user.deactivated")]
    UserDeactivated {
        /// The user.
        #[schema(value_type = String)]
        user: UserId,
    },
    /// A user may have access again.
    #[serde(rename = "user.reactivated")]
    UserReactivated {
        /// The user.
        #[schema(value_type = String)]
        user: UserId,
    },
    /// A user was deleted.
    #[serde(rename = "user.deleted")]
    UserDeleted {
        /// The user.
        #[schema(value_type = String)]
        user: UserId,
    },
    /// A user's personal fields were erased.
    #[serde(rename = "user.erased")]
    UserErased {
        /// The user.
        #[schema(value_type = String)]
        user: UserId,
    },
    /// A group was created.
    #[serde(rename = "group.created", rename_all = "camelCase")]
    GroupCreated {
        /// The group.
        #[schema(value_type = String)]
        group: GroupId,
        /// Who manages it: `scim`, `operator` or `integration:<name>`.
        owner: String,
        /// The IdP's id for it.
        external_id: Option<String>,
        /// Its name.
        display_name: String,
    },
    /// A group was renamed.
    #[serde(rename = "group.renamed", rename_all = "camelCase")]
    GroupRenamed {
        /// The group.
        #[schema(value_type = String)]
        group: GroupId,
        /// Its new name.
        display_name: String,
    },
    /// A group's IdP id changed.
    #[serde(rename = "group.external_id_changed", rename_all = "camelCase")]
    GroupExternalIdChanged {
        /// The group.
        #[schema(value_type = String)]
        group: GroupId,
        /// Its new IdP id.
        external_id: Option<String>,
    },
    /// A group was deleted.
    #[serde(rename = "group.deleted")]
    GroupDeleted {
        /// The group.
        #[schema(value_type = String)]
        group: GroupId,
    },
    /// Members joined a group.
    #[serde(rename = "members.added")]
    MembersAdded {
        /// The group.
        #[schema(value_type = String)]
        group: GroupId,
        /// The members.
        members: Vec<MemberRef>,
    },
    /// Members left a group.
    #[serde(rename = "members.removed")]
    MembersRemoved {
        /// The group.
        #[schema(value_type = String)]
        group: GroupId,
        /// The members.
        members: Vec<MemberRef>,
    },
    /// A binding was set.
    #[serde(rename = "binding.set")]
    BindingSet {
        /// The binding as set.
        binding: Binding,
    },
    /// A binding was removed.
    #[serde(rename = "binding.removed")]
    BindingRemoved {
        /// The resource whose binding it was.
        resource: ResourceRow,
    },
    /// The mass-deactivation guard held a sync's snapshot.
    #[serde(rename = "sync.held", rename_all = "camelCase")]
    ReconcileHeld {
        /// The integration.
        integration: String,
        /// The held run.
        run: String,
        /// Users the integration owned before.
        owned_users: u32,
        /// Users the snapshot would deactivate.
        deactivations: u32,
        /// Users the snapshot would delete.
        deletions: u32,
        /// The limit, in thousandths of the owned users.
        limit_permille: u32,
    },
    /// A complete listing found objects absent.
    #[serde(rename = "sync.absences_observed")]
    AbsencesObserved {
        /// The integration.
        integration: String,
        /// The run.
        run: String,
        /// What it found absent.
        absent: Vec<AbsentRef>,
    },
    /// The management server acknowledged a revocation.
    #[serde(rename = "access.revocation_acknowledged")]
    RevocationAcknowledged {
        /// The user whose access it was.
        #[schema(value_type = String)]
        user: UserId,
        /// The change-stream id of the revocation, `<seq>.<index>`.
        change: String,
        /// The resource.
        resource: ResourceRow,
        /// The role the user had on it.
        role: String,
        /// The group the access came through.
        #[schema(value_type = String)]
        via: GroupId,
    },
}

/// The userName and externalId a user event carries, as far as they can be read now: the
/// externalId logged in the clear (`external_id`), or the one sealed with the userName, which
/// cannot be read once erased.
fn user_fields(opener: &dyn Opener, event: &Event, external_id: &Option<String>) -> (Option<String>, Option<String>) {
    let fields = event
        .personal()
        .and_then(|(user, personal)| opener.open(user, personal));
    let user_name = fields.as_ref().map(|fields| fields.profile.user_name.clone());
    let external_id = external_id
        .clone()
        .or_else(|| fields.and_then(|fields| fields.external_id));
    (user_name, external_id)
}

impl EventBody {
    /// `event`'s public fields; personal ones are read with `opener` while they can be.
    pub fn of(event: &Event, opener: &dyn Opener) -> EventBody {
        match event {
            Event::UserProvisioned {
                user,
                owner,
                external_id,
                active,
                ..
            } => {
                let (user_name, external_id) = user_fields(opener, event, external_id);
                EventBody::UserProvisioned {
                    user: *user,
                    owner: owner_name(owner),
                    external_id,
                    active: *active,
                    user_name,
                }
            }
            Event::UserUpdated { user, external_id, .. } => {
                let (user_name, external_id) = user_fields(opener, event, external_id);
                EventBody::UserUpdated {
                    user: *user,
                    external_id,
                    user_name,
                }
            }
            Event::UserDeactivated { user } => EventBody::UserDeactivated { user: *user },
            Event::UserReactivated { user } => EventBody::UserReactivated { user: *user },
            Event::UserDeleted { user } => EventBody::UserDeleted { user: *user },
            Event::UserErased { user } | Event::UserErasedWithLookup { user, .. } => {
                EventBody::UserErased { user: *user }
            }
            Event::GroupCreated {
                group,
                owner,
                external_id,
                display_name,
            } => EventBody::GroupCreated {
                group: *group,
                owner: owner_name(owner),
                external_id: external_id.clone(),
                display_name: display_name.clone(),
            },
            Event::GroupRenamed { group, display_name } => EventBody::GroupRenamed {
                group: *group,
                display_name: display_name.clone(),
            },
            Event::GroupExternalIdChanged { group, external_id } => EventBody::GroupExternalIdChanged {
                group: *group,
                external_id: external_id.clone(),
            },
            Event::GroupDeleted { group } => EventBody::GroupDeleted { group: *group },
            Event::MembersAdded { group, members } => EventBody::MembersAdded {
                group: *group,
                members: members.iter().copied().map(MemberRef::from).collect(),
            },
            Event::MembersRemoved { group, members } => EventBody::MembersRemoved {
                group: *group,
                members: members.iter().copied().map(MemberRef::from).collect(),
            },
            Event::BindingSet { resource, groups } => EventBody::BindingSet {
                binding: Binding::of(resource, groups),
            },
            Event::BindingRemoved { resource } => EventBody::BindingRemoved {
                resource: ResourceRow::from(resource),
            },
            Event::ReconcileHeld {
                integration,
                run,
                summary,
            } => EventBody::ReconcileHeld {
                integration: integration.as_str().to_owned(),
                run: run.to_string(),
                owned_users: summary.owned_users,
                deactivations: summary.deactivations,
                deletions: summary.deletions,
                limit_permille: summary.limit_permille,
            },
            Event::AbsencesObserved {
                integration,
                run,
                absent,
            } => EventBody::AbsencesObserved {
                integration: integration.as_str().to_owned(),
                run: run.to_string(),
                absent: absent.iter().map(AbsentRef::from).collect(),
            },
            Event::RevocationAcknowledged {
                user,
                seq,
                index,
                resource,
                role,
                via,
            } => EventBody::RevocationAcknowledged {
                user: *user,
                change: format!("{seq}.{index}"),
                resource: ResourceRow::from(resource),
                role: role.as_str().to_owned(),
                via: *via,
            },
        }
    }
}

/// A user by id and, where the present state still has it, userName.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserRef {
    /// The user's id.
    #[schema(value_type = String)]
    pub id: UserId,
    /// Its userName, unless the user is gone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
}

/// An access change: the data of the change stream's `access.granted` and `access.revoked`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessChangeRow {
    /// The record that caused it.
    pub seq: u64,
    /// Its place among the record's changes, from 1: its stream id is `<seq>.<index>`.
    pub index: usize,
    /// When the record was recorded (RFC 3339).
    pub recorded_at: String,
    /// `granted` or `revoked`.
    #[schema(value_type = String, example = "revoked")]
    pub direction: &'static str,
    /// Whose access it is.
    pub user: UserRef,
    /// The resource.
    pub resource: ResourceRow,
    /// `source`, `destination` or `member`.
    #[schema(value_type = String, example = "source")]
    pub role: &'static str,
    /// The bound group the access comes through.
    pub group: GroupRef,
}

impl AccessChangeRow {
    /// `change`, the `index`-th of its record; names come from `state` (the present) where it
    /// still has them.
    pub fn of(state: &State, change: &AccessChange, index: usize) -> AccessChangeRow {
        AccessChangeRow {
            seq: change.seq.0,
            index,
            recorded_at: change.recorded_at.to_rfc3339(),
            direction: match change.direction {
                AccessDirection::Granted => "granted",
                AccessDirection::Revoked => "revoked",
            },
            user: UserRef {
                id: change.user,
                user_name: state.user(change.user).map(|user| user.profile.user_name.clone()),
            },
            resource: ResourceRow::from(&change.resource),
            role: change.role.as_str(),
            group: GroupRef::of(state, change.via),
        }
    }
}

/// A role change: the data of the change stream's `role.changed`. Roles are `null` where the
/// user had or has none (new, inactive, gone, or roles off).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleChangeRow {
    /// The record that caused it.
    pub seq: u64,
    /// Its place among the record's changes, after the access changes, from 1: its stream id
    /// is `<seq>.<index>`.
    pub index: usize,
    /// When the record was recorded (RFC 3339).
    pub recorded_at: String,
    /// Whose role it is.
    pub user: UserRef,
    /// The role before.
    #[schema(example = "User")]
    pub old_role: Option<String>,
    /// The role after.
    #[schema(example = "Admin")]
    pub new_role: Option<String>,
    /// The role binding that gives the new role (`null` for the built-in default).
    pub binding: Option<String>,
    /// The binding's group that gives the new role (`null` for the default role).
    pub group: Option<GroupRef>,
    /// The role binding that gave the old role.
    pub old_binding: Option<String>,
    /// The binding's group that gave the old role.
    pub old_group: Option<GroupRef>,
}

impl RoleChangeRow {
    /// `change`, the `index`-th of its record; names come from `state` (the present) where it
    /// still has them.
    pub fn of(state: &State, change: &RoleChange, index: usize) -> RoleChangeRow {
        let role = |held: &Option<RoleAssignment>| held.as_ref().map(|held| held.role.clone());
        let binding = |held: &Option<RoleAssignment>| {
            held.as_ref()
                .and_then(|held| held.binding.as_ref())
                .map(|binding| binding.as_str().to_owned())
        };
        let group = |held: &Option<RoleAssignment>| {
            held.as_ref()
                .and_then(|held| held.via)
                .map(|via| GroupRef::of(state, via))
        };
        RoleChangeRow {
            seq: change.seq.0,
            index,
            recorded_at: change.recorded_at.to_rfc3339(),
            user: UserRef {
                id: change.user,
                user_name: state.user(change.user).map(|user| user.profile.user_name.clone()),
            },
            old_role: role(&change.old),
            new_role: role(&change.new),
            binding: binding(&change.new),
            group: group(&change.new),
            old_binding: binding(&change.old),
            old_group: group(&change.old),
        }
    }
}
