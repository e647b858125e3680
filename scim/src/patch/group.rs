//! PATCH on a group, planned as engine commands: membership operations become `AddMembers`,
//! `RemoveMembers` and `ReplaceMembers` on the edge set (one O(log n) step per member, whatever
//! the group's size), `displayName` and `externalId` one `UpdateGroup`. The caller submits them
//! as one atomic command.
//!
//! Client forms handled here: Entra's `remove` of `members` with a value list (exactly those
//! members), `members[value eq "x"]` removals (Okta, Entra), Okta's path-less `replace` that
//! carries the group's `id` (ignored), and authentik's one-member-per-operation requests.

use idpsync_engine::State;
use idpsync_engine::command::Command;
use idpsync_engine::ids::{Member, Seq};
use idpsync_engine::model::Group;
use serde_json::Value;

use super::operation::{Op, Operation};
use crate::error::Error;
use crate::grammar::{CompareOp, Filter, Literal};
use crate::matcher::Matcher;
use crate::normalise::{coerce, normalise_resource};
use crate::resource::BaseUrl;
use crate::resource::group::{MemberView, existing_member, known_members};
use crate::resource::to_object;
use crate::schema::{Attribute, GROUP_TYPE, Mutability};

/// The commands that apply `operations` to `group`, in order; the first is an `UpdateGroup`
/// carrying `expected_version` (so an `If-Match` is checked atomically with the rest) and the
/// final name and external id (a no-op when they do not change).
#[cfg_attr(feature = "internals", visibility::make(pub))]
pub(crate) fn plan_group_patch(
    state: &State,
    group: &Group,
    operations: &[Operation],
    expected_version: Option<Seq>,
    base: &BaseUrl,
) -> Result<Vec<Command>, Error> {
    let mut plan = Plan {
        state,
        group,
        base,
        display_name: group.display_name.clone(),
        external_id: group.external_id.clone(),
        membership: Vec::new(),
    };
    for operation in operations {
        plan.apply(operation)?;
    }
    let mut commands = vec![Command::UpdateGroup {
        group: group.id,
        expected_version,
        display_name: plan.display_name,
        external_id: plan.external_id,
    }];
    commands.extend(plan.membership);
    Ok(commands)
}

struct Plan<'a> {
    state: &'a State,
    group: &'a Group,
    base: &'a BaseUrl,
    display_name: String,
    external_id: Option<String>,
    membership: Vec<Command>,
}

impl Plan<'_> {
    fn apply(&mut self, operation: &Operation) -> Result<(), Error> {
        let Some(path) = &operation.path else {
            tracing::debug!(quirk = "path-less value", "applying each attribute of the value");
            let value = operation.value.as_ref().unwrap_or(&Value::Null);
            let canonical = normalise_resource(&GROUP_TYPE, value)?;
            for (key, value) in &canonical {
                let attribute = GROUP_TYPE.core_attribute(key).expect("normalised keys are canonical");
                self.write(attribute, operation.op, Some(value), None)?;
            }
            return Ok(());
        };
        let Some(resolved) = GROUP_TYPE.resolve(&path.attr) else {
            tracing::warn!(path = %path, "PATCH names an attribute groups do not have; ignored");
            return Ok(());
        };
        if resolved.attribute.mutability == Mutability::ReadOnly {
            return Err(Error::mutability(format!("{} is read-only", resolved.canonical())));
        }
        if resolved.sub.is_some() {
            return Err(Error::invalid_path(format!(
                "{path}: {} is changed whole, not by sub-attribute",
                resolved.attribute.name
            )));
        }
        if path.filter.is_some() && resolved.attribute.name != "members" {
            return Err(Error::invalid_path(format!("{path}: only members take a value filter")));
        }
        self.write(
            resolved.attribute,
            operation.op,
            operation.value.as_ref(),
            path.filter.as_ref(),
        )
    }

    fn write(
        &mut self,
        attribute: &'static Attribute,
        op: Op,
        value: Option<&Value>,
        filter: Option<&Filter>,
    ) -> Result<(), Error> {
        let coerced = match value {
            Some(value) => coerce(attribute, value)?,
            None => None,
        };
        match attribute.name {
            "displayName" => match (op, coerced) {
                (Op::Remove, _) | (_, None) => Err(Error::invalid_value("displayName is required")),
                (_, Some(Value::String(name))) => {
                    self.display_name = name;
                    Ok(())
                }
                _ => Err(Error::invalid_value("displayName must be a string")),
            },
            "externalId" => {
                self.external_id = match (op, coerced) {
                    (Op::Remove, _) | (_, None) => None,
                    (_, Some(Value::String(id))) => Some(id),
                    _ => return Err(Error::invalid_value("externalId must be a string")),
                };
                Ok(())
            }
            "members" => self.write_members(op, coerced, filter),
            other => Err(Error::mutability(format!("{other} cannot be changed"))),
        }
    }

    fn write_members(&mut self, op: Op, value: Option<Value>, filter: Option<&Filter>) -> Result<(), Error> {
        let group = self.group.id;
        if let Some(filter) = filter {
            let matched = self.members_matching(filter)?;
            if !matched.is_empty() && op != Op::Add {
                self.membership.push(Command::RemoveMembers {
                    group,
                    members: matched,
                });
            }
            if op != Op::Remove && value.is_some() {
                let members = self.named_members(value.as_ref())?;
                self.membership.push(Command::AddMembers { group, members });
            }
            return Ok(());
        }
        let command = match (op, value) {
            (Op::Add, value) => Command::AddMembers {
                group,
                members: self.named_members(value.as_ref())?,
            },
            (Op::Replace, value) => Command::ReplaceMembers {
                group,
                members: self.named_members(value.as_ref())?,
            },
            (Op::Remove, Some(Value::Array(items))) if !items.is_empty() => {
                tracing::debug!(
                    quirk = "remove members with a value list",
                    count = items.len(),
                    "removing exactly the members given"
                );
                Command::RemoveMembers {
                    group,
                    members: self.named_members(Some(&Value::Array(items)))?,
                }
            }
            (Op::Remove, _) => Command::ReplaceMembers {
                group,
                members: Vec::new(),
            },
        };
        self.membership.push(command);
        Ok(())
    }

    /// The members a coerced `members` value names (see [`known_members`]).
    fn named_members(&self, value: Option<&Value>) -> Result<Vec<Member>, Error> {
        let Some(Value::Array(items)) = value else {
            return Ok(Vec::new());
        };
        known_members(self.state, items.iter().filter_map(Value::as_object))
    }

    /// The current members matching a value filter. `value eq "x"` (and `or`s of them) are
    /// looked up directly; any other filter is evaluated on the rendered member list.
    fn members_matching(&self, filter: &Filter) -> Result<Vec<Member>, Error> {
        if let Some(ids) = value_equalities(filter) {
            return Ok(ids
                .iter()
                .filter_map(|id| existing_member(self.state, id, None))
                .filter(|member| self.state.is_direct_member(self.group.id, *member))
                .collect());
        }
        let members_attribute = GROUP_TYPE.core_attribute("members").expect("groups have members");
        let matcher = Matcher::for_values(&GROUP_TYPE, members_attribute, filter)?;
        Ok(self
            .state
            .direct_members(self.group.id)
            .filter(|member| {
                MemberView::new(self.state, *member, self.base, true)
                    .is_some_and(|entry| matcher.matches_value(&to_object(&entry)))
            })
            .collect())
    }
}

/// The ids of `value eq "x"` or `value eq "x" or value eq "y"`; `None` for other filters.
fn value_equalities(filter: &Filter) -> Option<Vec<String>> {
    let parts: &[Filter] = match filter {
        Filter::Or(parts) => parts,
        single => std::slice::from_ref(single),
    };
    parts
        .iter()
        .map(|part| match part {
            Filter::Compare {
                path,
                op: CompareOp::Eq,
                value: Literal::String(id),
            } if path.name.eq_ignore_ascii_case("value") && path.urn.is_none() && path.sub.is_none() => {
                Some(id.clone())
            }
            _ => None,
        })
        .collect()
}
