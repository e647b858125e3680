//! The JSON shapes of the API: rows of users, groups and members, grants, access changes and
//! events. The engine never speaks JSON; this is where its values get their public names.

use idpsync_engine::absence::Absent;
use idpsync_engine::access::Grant;
use idpsync_engine::event::{Cause, Event, LoggedEvent, Source};
use idpsync_engine::ids::{GroupId, Member, UserId};
use idpsync_engine::model::{BindingGroups, Group, Owner, ResourceRef, User};
use idpsync_engine::seal::Opener;
use idpsync_engine::{AccessChange, AccessDirection, RoleAssignment, RoleChange, State};
use idpsync_storage::{Hash32, Seq, Timestamp};
use serde::Serialize;
use serde_json::{Value, json};

/// The `recordedAt` of a state's last record, unless it has none.
pub fn time_of(state: &State) -> Option<String> {
    (state.seq() > Seq::ZERO).then(|| state.recorded_at().to_rfc3339())
}

/// One page of a list, as of a log position.
#[derive(Serialize)]
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
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UserRow {
    /// Its id.
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
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupRow {
    /// Its id.
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
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MemberRow {
    /// The user's or group's id.
    pub id: String,
    /// `User` or `Group`.
    #[serde(rename = "type")]
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
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupRef {
    /// Its id.
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
#[derive(Clone, Debug, Serialize)]
pub struct ResourceRow {
    /// `policy`, `nameserver-group`, `dns-management`, `route` or `setup-key`.
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
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantRow {
    /// The resource.
    pub resource: ResourceRow,
    /// `source`, `destination` or `member`.
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

/// A binding's groups as the API shows them.
pub fn binding_json(resource: &ResourceRef, groups: &BindingGroups) -> Value {
    let mut value = match groups {
        BindingGroups::Policy { sources, destinations } => json!({"sources": sources, "destinations": destinations}),
        BindingGroups::Groups(groups) => json!({"groups": groups}),
        BindingGroups::Role { role, priority, groups } => {
            json!({"role": role, "priority": priority, "groups": groups})
        }
    };
    value["kind"] = json!(resource.kind.as_str());
    value["id"] = json!(resource.id.as_str());
    value
}

/// The SSE event name of an access change.
pub fn access_event_name(change: &AccessChange) -> &'static str {
    match change.direction {
        AccessDirection::Granted => "access.granted",
        AccessDirection::Revoked => "access.revoked",
    }
}

/// An access change; names come from `state` (the present) where it still has them.
pub fn access_change_json(state: &State, change: &AccessChange, index: usize) -> Value {
    let mut user = json!({"id": change.user});
    if let Some(found) = state.user(change.user) {
        user["userName"] = json!(found.profile.user_name);
    }
    json!({
        "seq": change.seq,
        "index": index,
        "recordedAt": change.recorded_at.to_rfc3339(),
        "direction": change.direction,
        "user": user,
        "resource": ResourceRow::from(&change.resource),
        "role": change.role.as_str(),
        "group": GroupRef::of(state, change.via),
    })
}

/// A user's role and where it comes from; names come from `state`.
pub fn role_json(state: &State, held: &RoleAssignment) -> Value {
    json!({
        "role": held.role,
        "binding": held.binding.as_ref().map(|binding| binding.as_str()),
        "group": held.via.map(|via| GroupRef::of(state, via)),
    })
}

/// A role change, the SSE item `role.changed`: the user, the roles before and after (`null`
/// for none), the binding and group that give the new role, and the group that gave the old
/// one. Names come from `state` (the present) where it still has them.
pub fn role_change_json(state: &State, change: &RoleChange, index: usize) -> Value {
    let mut user = json!({"id": change.user});
    if let Some(found) = state.user(change.user) {
        user["userName"] = json!(found.profile.user_name);
    }
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
    json!({
        "seq": change.seq,
        "index": index,
        "recordedAt": change.recorded_at.to_rfc3339(),
        "user": user,
        "oldRole": role(&change.old),
        "newRole": role(&change.new),
        "binding": binding(&change.new),
        "group": group(&change.new),
        "oldBinding": binding(&change.old),
        "oldGroup": group(&change.old),
    })
}

/// Where an event came from.
pub fn source_json(source: &Source) -> Value {
    match source {
        Source::Scim { token } => json!({"door": "scim", "token": token}),
        Source::Integration { integration, run } => {
            json!({"door": "integration", "integration": integration.as_str(), "run": run})
        }
        Source::Admin { token } => json!({"door": "admin", "token": token}),
        Source::Operator => json!({"door": "operator"}),
        Source::Workload => json!({"door": "workload"}),
    }
}

/// What caused an event.
pub fn cause_json(cause: &Cause) -> Value {
    match cause {
        Cause::Request(id) => json!({"request": id}),
        Cause::IdpObject(id) => json!({"idpObject": id}),
        Cause::IdpUser => json!({"idpUser": true}),
        Cause::Unspecified => json!({}),
    }
}

fn members_json(members: &[Member]) -> Vec<Value> {
    members.iter().map(|member| member_ref(*member)).collect()
}

fn member_ref(member: Member) -> Value {
    match member {
        Member::User(id) => json!({"type": "User", "id": id}),
        Member::Group(id) => json!({"type": "Group", "id": id}),
    }
}

/// The userName and externalId a user event carries, as far as they can be read now: the
/// externalId logged in the clear (`external_id`), or the one sealed with the userName, which
/// cannot be read once erased.
fn user_fields(opener: &dyn Opener, event: &Event, external_id: &Option<String>) -> (Value, Value) {
    let fields = event
        .personal()
        .and_then(|(user, personal)| opener.open(user, personal));
    let user_name = fields
        .as_ref()
        .map_or(Value::Null, |fields| json!(fields.profile.user_name));
    let external_id = external_id
        .clone()
        .or_else(|| fields.and_then(|fields| fields.external_id));
    (user_name, json!(external_id))
}

/// Something pending as absent, by the engine's ids: `{"user": "…"}`, `{"group": "…"}` or
/// `{"group": "…", "member": {…}}`.
pub fn absent_json(absent: &Absent) -> Value {
    match absent {
        Absent::User(user) => json!({"user": user}),
        Absent::Group(group) => json!({"group": group}),
        Absent::Membership { group, member } => {
            json!({"group": group, "member": member_ref(*member)})
        }
    }
}

/// An event's type ([`Event::kind`]) and fields: `{"type": "user.deactivated", "user": "…"}`.
pub fn event_body(event: &Event, opener: &dyn Opener) -> Value {
    let mut body = match event {
        Event::UserProvisioned {
            user,
            owner,
            external_id,
            active,
            ..
        } => {
            let (user_name, external_id) = user_fields(opener, event, external_id);
            json!({"user": user, "owner": owner_name(owner),
                "externalId": external_id, "active": active, "userName": user_name})
        }
        Event::UserUpdated { user, external_id, .. } => {
            let (user_name, external_id) = user_fields(opener, event, external_id);
            json!({"user": user, "externalId": external_id, "userName": user_name})
        }
        Event::UserDeactivated { user }
        | Event::UserReactivated { user }
        | Event::UserDeleted { user }
        | Event::UserErased { user }
        | Event::UserErasedWithLookup { user, .. } => json!({"user": user}),
        Event::GroupCreated {
            group,
            owner,
            external_id,
            display_name,
        } => json!({"group": group, "owner": owner_name(owner),
            "externalId": external_id, "displayName": display_name}),
        Event::GroupRenamed { group, display_name } => {
            json!({"group": group, "displayName": display_name})
        }
        Event::GroupExternalIdChanged { group, external_id } => {
            json!({"group": group, "externalId": external_id})
        }
        Event::GroupDeleted { group } => json!({"group": group}),
        Event::MembersAdded { group, members } | Event::MembersRemoved { group, members } => {
            json!({"group": group, "members": members_json(members)})
        }
        Event::BindingSet { resource, groups } => {
            json!({"binding": binding_json(resource, groups)})
        }
        Event::BindingRemoved { resource } => {
            json!({"resource": ResourceRow::from(resource)})
        }
        Event::ReconcileHeld {
            integration,
            run,
            summary,
        } => json!({"integration": integration.as_str(), "run": run,
            "ownedUsers": summary.owned_users, "deactivations": summary.deactivations,
            "deletions": summary.deletions, "limitPermille": summary.limit_permille}),
        Event::AbsencesObserved {
            integration,
            run,
            absent,
        } => json!({"integration": integration.as_str(), "run": run,
            "absent": absent.iter().map(absent_json).collect::<Vec<Value>>()}),
        Event::RevocationAcknowledged {
            user,
            seq,
            index,
            resource,
            role,
            via,
        } => json!({"user": user, "change": format!("{seq}.{index}"),
            "resource": ResourceRow::from(resource), "role": role.as_str(), "via": via}),
    };
    body["type"] = Value::from(event.kind());
    body
}

/// An event as logged: position, time, id, chain link, door, cause and fields.
pub fn logged_event_json(event: &LoggedEvent, chain: &Hash32, opener: &dyn Opener) -> Value {
    json!({
        "seq": event.seq,
        "recordedAt": event.recorded_at.to_rfc3339(),
        "eventId": event.event_id.0,
        "chain": chain.to_hex(),
        "source": source_json(&event.envelope.source),
        "cause": cause_json(&event.envelope.cause),
        "event": event_body(&event.envelope.event, opener),
    })
}

/// A timestamp in API form.
pub fn time(at: Timestamp) -> String {
    at.to_rfc3339()
}
