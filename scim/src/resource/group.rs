//! Groups on the wire. Members are the engine's edge set: they are rendered only when the
//! response includes `members`, and decoded into `Member` ids checked against the state, so
//! no membership change ever copies a member list.

use idpsync_engine::State;
use idpsync_engine::ids::{GroupId, Member, UserId};
use idpsync_engine::model::Group;
use serde_json::{Map, Value, json};

use super::{BaseUrl, Meta, document, objects, put_text, text};
use crate::error::Error;
use crate::projection::Projection;
use crate::schema::{GROUP_TYPE, GROUP_URN, USER_TYPE};

/// What a Group body asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupWrite {
    /// The name.
    pub display_name: String,
    /// The client's id.
    pub external_id: Option<String>,
    /// The members, if the body has `members`.
    pub members: Option<Vec<Member>>,
}

/// Whether a rendered group carries its member list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Members {
    /// Render `members` with `value`, `$ref` and `type` (costs one entry per member).
    Included,
    /// Also `display`, which is returned on request only (it costs a look-up per member).
    WithDisplay,
    /// Leave them out (costs nothing, however large the group).
    Omitted,
}

impl Members {
    /// What `projection` asks of the member list.
    pub fn wanted(projection: &Projection) -> Members {
        if projection.asks_for("members", "display") {
            Members::WithDisplay
        } else if projection.includes("members") {
            Members::Included
        } else {
            Members::Omitted
        }
    }
}

/// Renders `group`.
pub fn render(state: &State, group: &Group, base: &BaseUrl, members: Members) -> Map<String, Value> {
    let meta = Meta {
        id: group.id.to_string(),
        created: group.created,
        last_modified: group.last_modified,
        version: group.version,
    };
    let mut doc = document(&GROUP_TYPE, vec![GROUP_URN], meta, base);
    put_text(&mut doc, "externalId", &group.external_id);
    doc.insert("displayName".to_owned(), Value::String(group.display_name.clone()));
    if members != Members::Omitted
        && let Some(set) = state.direct_members(group.id)
        && !set.is_empty()
    {
        let display = members == Members::WithDisplay;
        let rendered = set
            .iter()
            .filter_map(|member| render_member(state, *member, base, display))
            .collect();
        doc.insert("members".to_owned(), Value::Array(rendered));
    }
    doc
}

/// One entry of `members`: `value`, `$ref`, `type`, and `display` if asked for.
pub fn render_member(state: &State, member: Member, base: &BaseUrl, with_display: bool) -> Option<Value> {
    let (id, resource, display) = match member {
        Member::User(id) => {
            let user = state.user(id)?;
            let display = user.profile.display_name.as_ref().unwrap_or(&user.profile.user_name);
            (id.to_string(), &USER_TYPE, display)
        }
        Member::Group(id) => (id.to_string(), &GROUP_TYPE, &state.group(id)?.display_name),
    };
    let mut entry = json!({"value": id, "$ref": base.location(resource, &id), "type": resource.name});
    if with_display {
        entry["display"] = Value::String(display.clone());
    }
    Some(entry)
}

/// Decodes a canonical Group body.
pub fn decode(state: &State, body: &Map<String, Value>) -> Result<GroupWrite, Error> {
    let Some(display_name) = text(body, "displayName") else {
        return Err(Error::invalid_value("displayName is required"));
    };
    let members = match body.get("members") {
        None | Some(Value::Null) => None,
        Some(_) => Some(decode_members(state, body)?),
    };
    Ok(GroupWrite {
        display_name,
        external_id: text(body, "externalId"),
        members,
    })
}

/// The members listed under `members` in a canonical object; each must exist.
pub fn decode_members(state: &State, body: &Map<String, Value>) -> Result<Vec<Member>, Error> {
    known_members(state, objects(body, "members"))
}

/// The members that member entries (`{"value": …, "type": …}`) name. An entry naming no user
/// or group of the tenant is skipped with a warning, not refused: a request that also carries
/// real changes (a join, a leave) must not fail because of it, and a member that does not
/// exist could not be given access anyway. An entry with neither `value` nor `$ref` is a 400.
pub fn known_members<'a>(
    state: &State,
    entries: impl Iterator<Item = &'a Map<String, Value>>,
) -> Result<Vec<Member>, Error> {
    let mut members = Vec::new();
    for entry in entries {
        let reference = member_reference(entry)?;
        match existing_member(state, &reference, text(entry, "type").as_deref()) {
            Some(member) => members.push(member),
            None => {
                tracing::warn!(member = %reference, "a member entry names no user or group of this tenant; skipped")
            }
        }
    }
    Ok(members)
}

/// The id a member entry names: its `value`, or the last segment of its `$ref`.
pub fn member_reference(entry: &Map<String, Value>) -> Result<String, Error> {
    if let Some(value) = text(entry, "value") {
        return Ok(value);
    }
    match text(entry, "$ref")
        .as_deref()
        .and_then(|reference| reference.rsplit('/').next())
    {
        Some(id) if !id.is_empty() => Ok(id.to_owned()),
        _ => Err(Error::invalid_value("each member needs a value")),
    }
}

/// The user or group `id` names, if it exists. `kind` (`User` or `Group`) is a hint only:
/// ids are unique across both.
pub fn existing_member(state: &State, id: &str, kind: Option<&str>) -> Option<Member> {
    let wants_group = kind.is_some_and(|kind| kind.eq_ignore_ascii_case("group"));
    let user = id
        .parse::<UserId>()
        .ok()
        .filter(|id| state.user(*id).is_some())
        .map(Member::User);
    let group = id
        .parse::<GroupId>()
        .ok()
        .filter(|id| state.group(*id).is_some())
        .map(Member::Group);
    if wants_group { group.or(user) } else { user.or(group) }
}
