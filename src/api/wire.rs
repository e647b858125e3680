//! The JSON shapes of the API: rows of users, groups and members, grants, access changes and
//! events. The engine never speaks JSON; this is where its values get their public names.

mod bindings;
mod events;
mod integrations;
mod roles;
mod tokens;
mod writes;

use idpsync_engine::access::Grant;
use idpsync_engine::ids::{GroupId, Member, UserId};
use idpsync_engine::model::{Group, Owner, ResourceRef, User};
use idpsync_engine::{AccessChange, AccessDirection, State};
use idpsync_storage::Seq;
use serde::Serialize;
use utoipa::ToSchema;

pub use bindings::{Binding, BindingBody, BindingList, BindingWritten};
pub use events::{
    AbsentRef, AccessChangeRow, CauseRow, EventBody, LoggedEventRow, RoleChangeRow, SourceRow, Timeline, UserRef,
};
pub use integrations::{
    AbsentLineRow, ChangeLineRow, ConfirmAnswer, ConfirmBody, GuardRow, HeldSync, HoldSummaryRow, IntegrationList,
    IntegrationRow, PendingAbsence, PlannedCounts, RunCountsRow, SyncReport, TriggerAnswer,
};
pub use roles::{RoleList, RoleRow};
pub use tokens::{CreateTokenBody, CreatedToken, TokenList, TokenRow};
pub use writes::{AckAnswer, AckBody, EraseAnswer, Interval, Intervals, LogPosition, TenantSummary};

/// The `recordedAt` of a state's last record, unless it has none.
pub fn time_of(state: &State) -> Option<String> {
    (state.seq() > Seq::ZERO).then(|| state.recorded_at().to_rfc3339())
}

/// One page of a list, as of a log position.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// The log position the answer is as of.
    pub seq: u64,
    /// When that record was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<String>,
    /// The items.
    pub items: Vec<T>,
    /// The `after` cursor of the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// A user in lists.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserRow {
    /// Its id.
    #[schema(value_type = String)]
    pub id: UserId,
    /// Its userName (`erased-<id>` once erased).
    pub user_name: String,
    /// Whether it may have access.
    pub active: bool,
    /// The IdP's id for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Set when its personal fields are erased.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[schema(default = false)]
    pub erased: bool,
}

impl From<&User> for UserRow {
    fn from(user: &User) -> Self {
        UserRow {
            id: user.id,
            user_name: user.profile.user_name.clone(),
            active: user.active,
            external_id: user.external_id.clone(),
            erased: user.is_erased(),
        }
    }
}

/// A group in lists.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupRow {
    /// Its id.
    #[schema(value_type = String)]
    pub id: GroupId,
    /// Its name.
    pub display_name: String,
    /// The IdP's id for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Who manages it: `scim`, `operator` or `integration:<name>`.
    pub owner: String,
    /// How many direct members it has.
    pub members: usize,
}

impl GroupRow {
    /// The row of `group` in `state`.
    pub fn of(state: &State, group: &Group) -> GroupRow {
        GroupRow {
            id: group.id,
            display_name: group.display_name.clone(),
            external_id: group.external_id.clone(),
            owner: owner_name(&group.owner),
            members: state.direct_member_count(group.id),
        }
    }
}

/// An owner's public name.
pub fn owner_name(owner: &Owner) -> String {
    match owner {
        Owner::Scim => "scim".to_owned(),
        Owner::Operator => "operator".to_owned(),
        Owner::Integration(name) => format!("integration:{name}"),
    }
}

/// A direct or effective member.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberRow {
    /// The user's or group's id.
    pub id: String,
    /// `User` or `Group`.
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "User")]
    pub kind: &'static str,
    /// A user's userName.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// A group's displayName.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Whether a user is active.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

impl MemberRow {
    /// The row of a user as it was (or is).
    pub fn user(id: UserId, user: Option<&User>) -> MemberRow {
        MemberRow {
            id: id.to_string(),
            kind: "User",
            user_name: user.map(|u| u.profile.user_name.clone()),
            display_name: None,
            active: user.map(|u| u.active),
        }
    }

    /// The row of a group as it was (or is).
    pub fn group(id: GroupId, group: Option<&Group>) -> MemberRow {
        MemberRow {
            id: id.to_string(),
            kind: "Group",
            user_name: None,
            display_name: group.map(|g| g.display_name.clone()),
            active: None,
        }
    }

    /// The row of `member` in `state`.
    pub fn of(state: &State, member: Member) -> MemberRow {
        match member {
            Member::User(id) => MemberRow::user(id, state.user(id).map(|u| &**u)),
            Member::Group(id) => MemberRow::group(id, state.group(id).map(|g| &**g)),
        }
    }
}

/// A group by id and, where known, name.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupRef {
    /// Its id.
    #[schema(value_type = String)]
    pub id: GroupId,
    /// Its name, when the group exists in the state asked about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

impl GroupRef {
    /// `group` named from `state`.
    pub fn of(state: &State, group: GroupId) -> GroupRef {
        GroupRef {
            id: group,
            display_name: state.group(group).map(|g| g.display_name.clone()),
        }
    }
}

/// A management-server resource.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ResourceRow {
    /// `policy`, `nameserver-group`, `dns-management`, `route`, `setup-key` or (for a removed
    /// role binding) `role`.
    #[schema(value_type = String, example = "policy")]
    pub kind: &'static str,
    /// Its id in the management server.
    pub id: String,
}

impl From<&ResourceRef> for ResourceRow {
    fn from(resource: &ResourceRef) -> Self {
        ResourceRow {
            kind: resource.kind.as_str(),
            id: resource.id.to_string(),
        }
    }
}

/// One way a user reaches a resource.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrantRow {
    /// The resource.
    pub resource: ResourceRow,
    /// `source`, `destination` or `member`.
    #[schema(value_type = String, example = "source")]
    pub role: &'static str,
    /// The bound group the user is in.
    pub via: GroupRef,
}

impl GrantRow {
    /// `grant` named from `state`.
    pub fn of(state: &State, grant: &Grant) -> GrantRow {
        GrantRow {
            resource: ResourceRow::from(&grant.resource),
            role: grant.role.as_str(),
            via: GroupRef::of(state, grant.via),
        }
    }
}

/// A user or group named by type and id, as events and absences name members.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, ToSchema)]
pub struct MemberRef {
    /// `User` or `Group`.
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "User")]
    pub kind: &'static str,
    /// The user's or group's id.
    pub id: String,
}

impl From<Member> for MemberRef {
    fn from(member: Member) -> Self {
        match member {
            Member::User(id) => MemberRef {
                kind: "User",
                id: id.to_string(),
            },
            Member::Group(id) => MemberRef {
                kind: "Group",
                id: id.to_string(),
            },
        }
    }
}

/// The SSE event name of an access change.
pub fn access_event_name(change: &AccessChange) -> &'static str {
    match change.direction {
        AccessDirection::Granted => "access.granted",
        AccessDirection::Revoked => "access.revoked",
    }
}

/// `GET /users/{user}`: a user with its groups and access.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserDetail {
    /// The log position the answer is as of.
    pub seq: u64,
    /// When that record was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<String>,
    /// The user.
    #[serde(flatten)]
    pub user: UserRow,
    /// The groups it is in, directly or through nested groups.
    pub groups: Vec<UserGroup>,
    /// Its access: each resource, role and the bound group it comes through.
    pub access: Vec<GrantRow>,
}

/// A group a user is in.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserGroup {
    /// The group.
    #[serde(flatten)]
    pub group: GroupRef,
    /// Whether the user is a direct member (not only through a nested group).
    pub direct: bool,
}

/// `GET /groups/{group}`: a group and its direct member count.
#[derive(Serialize, ToSchema)]
pub struct GroupDetail {
    /// The group.
    #[serde(flatten)]
    pub group: GroupRow,
    /// The log position the answer is as of.
    pub seq: u64,
}
