//! Groups on the wire. Members are the engine's edge set: they are rendered only when the
//! response includes `members`, and decoded into `Member` ids checked against the state, so
//! no membership change ever copies a member list.

use idpsync_engine::State;
use idpsync_engine::ids::{GroupId, Member, UserId};
use idpsync_engine::model::Group;
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Map, Value};

use super::json::{Each, entry, objects, text, to_object};
use super::meta::{BaseUrl, Location, MetaView};
use crate::error::Error;
use crate::projection::Projection;
use crate::schema::{GROUP_TYPE, GROUP_URN, ResourceType, USER_TYPE};

/// What a Group body asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GroupWrite {
    /// The name.
    pub(crate) display_name: String,
    /// The client's id.
    pub(crate) external_id: Option<String>,
    /// The members, if the body has `members`.
    pub(crate) members: Option<Vec<Member>>,
}

/// Whether a rendered group carries its member list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Members {
    /// Render `members` with `value`, `$ref` and `type` (costs one entry per member).
    Included,
    /// Also `display`, which is returned on request only (it costs a look-up per member).
    WithDisplay,
    /// Leave them out (costs nothing, however large the group).
    Omitted,
}

impl Members {
    /// What `projection` asks of the member list.
    pub(crate) fn wanted(projection: &Projection) -> Members {
        if projection.asks_for("members", "display") {
            Members::WithDisplay
        } else if projection.includes("members") {
            Members::Included
        } else {
            Members::Omitted
        }
    }
}

/// A group as a SCIM Group document, serialised straight from the engine's state.
pub(crate) struct GroupDocument<'a> {
    /// The state the group and its members are read from.
    pub(crate) state: &'a State,
    /// The group.
    pub(crate) group: &'a Group,
    /// For `meta.location` and `$ref`.
    pub(crate) base: &'a BaseUrl,
    /// How much of the member list to write.
    pub(crate) members: Members,
}

/// Renders `group` as a JSON object.
pub(crate) fn render(state: &State, group: &Group, base: &BaseUrl, members: Members) -> Map<String, Value> {
    to_object(&GroupDocument {
        state,
        group,
        base,
        members,
    })
}

impl Serialize for GroupDocument<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (state, group, base) = (self.state, self.group, self.base);
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("schemas", &[GROUP_URN])?;
        map.serialize_entry("id", &group.id)?;
        entry(&mut map, "externalId", &group.external_id)?;
        map.serialize_entry("displayName", &group.display_name)?;
        if self.members != Members::Omitted && state.direct_member_count(group.id) > 0 {
            let display = self.members == Members::WithDisplay;
            let members = || {
                state
                    .direct_members(group.id)
                    .filter_map(move |member| MemberView::new(state, member, base, display))
            };
            map.serialize_entry("members", &Each(members))?;
        }
        let meta = MetaView {
            location: Location {
                base,
                resource: &GROUP_TYPE,
                id: group.id,
            },
            created: group.created,
            last_modified: group.last_modified,
            version: group.version,
        };
        map.serialize_entry("meta", &meta)?;
        map.end()
    }
}

/// One entry of `members`: `value`, `$ref`, `type`, and `display` if asked for.
pub(crate) struct MemberView<'a> {
    id: uuid::Uuid,
    resource: &'static ResourceType,
    display: Option<&'a str>,
    base: &'a BaseUrl,
}

impl<'a> MemberView<'a> {
    /// The entry of `member`, if it exists in `state`.
    pub(crate) fn new(
        state: &'a State,
        member: Member,
        base: &'a BaseUrl,
        with_display: bool,
    ) -> Option<MemberView<'a>> {
        let (id, resource, display) = match member {
            Member::User(id) => {
                let user = state.user(id)?;
                let display = user.profile.display_name.as_ref().unwrap_or(&user.profile.user_name);
                (id.0, &USER_TYPE, display.as_str())
            }
            Member::Group(id) => (id.0, &GROUP_TYPE, state.group(id)?.display_name.as_str()),
        };
        Some(MemberView {
            id,
            resource,
            display: with_display.then_some(display),
            base,
        })
    }
}

impl Serialize for MemberView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("value", &self.id)?;
        let location = Location {
            base: self.base,
            resource: self.resource,
            id: self.id,
        };
        map.serialize_entry("$ref", &location)?;
        map.serialize_entry("type", self.resource.name)?;
        entry(&mut map, "display", &self.display)?;
        map.end()
    }
}

/// Decodes a canonical Group body.
pub(crate) fn decode(state: &State, body: &Map<String, Value>) -> Result<GroupWrite, Error> {
    let Some(display_name) = text(body, "displayName") else {
        return Err(Error::invalid_value("displayName is required"));
    };
    let members = match body.get("members") {
        None | Some(Value::Null) => None,
        Some(_) => Some(known_members(state, objects(body, "members"))?),
    };
    Ok(GroupWrite {
        display_name,
        external_id: text(body, "externalId"),
        members,
    })
}

/// The members that member entries (`{"value": …, "type": …}`) name. An entry naming no user
/// or group of the tenant is skipped with a warning, not refused: a request that also carries
/// real changes (a join, a leave) must not fail because of it, and a member that does not
/// exist could not be given access anyway. An entry with neither `value` nor `$ref` is a 400.
pub(crate) fn known_members<'a>(
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
fn member_reference(entry: &Map<String, Value>) -> Result<String, Error> {
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
pub(crate) fn existing_member(state: &State, id: &str, kind: Option<&str>) -> Option<Member> {
    let id = uuid::Uuid::parse_str(id.trim()).ok()?;
    let user = Member::User(UserId(id));
    let group = Member::Group(GroupId(id));
    let candidates = if kind.is_some_and(|kind| kind.eq_ignore_ascii_case("group")) {
        [group, user]
    } else {
        [user, group]
    };
    candidates.into_iter().find(|member| state.member_exists(*member))
}
