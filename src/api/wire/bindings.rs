//! The JSON shapes of bindings: a resource's groups, as read, written and listed.

use idpsync_engine::ids::GroupId;
use idpsync_engine::model::{BindingGroups, ResourceRef};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A binding: the groups a management-server resource references. A policy has `sources` and
/// `destinations`; a role binding has `role`, `priority` and `groups`; the other kinds have
/// `groups`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Binding {
    /// `policy`, `nameserver-group`, `dns-management`, `route`, `setup-key` or `role`.
    #[schema(value_type = String, example = "policy")]
    pub kind: &'static str,
    /// The resource's id in the management server.
    pub id: String,
    /// A policy's source groups.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>)]
    pub sources: Option<Vec<GroupId>>,
    /// A policy's destination groups.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>)]
    pub destinations: Option<Vec<GroupId>>,
    /// The groups of a role binding or of any other kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>)]
    pub groups: Option<Vec<GroupId>>,
    /// A role binding's role: its members get it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "Admin")]
    pub role: Option<String>,
    /// A role binding's priority: of the role bindings a user is under, the highest wins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
}

impl Binding {
    /// The binding of `resource` to `groups`.
    pub fn of(resource: &ResourceRef, groups: &BindingGroups) -> Binding {
        let mut binding = Binding {
            kind: resource.kind.as_str(),
            id: resource.id.to_string(),
            sources: None,
            destinations: None,
            groups: None,
            role: None,
            priority: None,
        };
        match groups {
            BindingGroups::Policy { sources, destinations } => {
                binding.sources = Some(sources.clone());
                binding.destinations = Some(destinations.clone());
            }
            BindingGroups::Groups(groups) => binding.groups = Some(groups.clone()),
            BindingGroups::Role { role, priority, groups } => {
                binding.role = Some(role.clone());
                binding.priority = Some(*priority);
                binding.groups = Some(groups.clone());
            }
        }
        binding
    }
}

/// `GET …/bindings`: every binding of the tenant.
#[derive(Serialize, ToSchema)]
pub struct BindingList {
    /// The log position the answer is as of.
    pub seq: u64,
    /// The bindings.
    pub items: Vec<Binding>,
}

/// The answer to `PUT …/bindings/{kind}/{id}`: the binding as stored.
#[derive(Serialize, ToSchema)]
pub struct BindingWritten {
    /// The binding.
    #[serde(flatten)]
    pub binding: Binding,
    /// The log's head after the write.
    pub seq: u64,
    /// Whether the write changed anything (`false` when the binding already had these groups).
    pub changed: bool,
}

/// The body of `PUT …/bindings/{kind}/{id}`: `sources` and `destinations` for a policy,
/// `role`, `priority` (default 0) and `groups` for a role binding (only `role` for the
/// `default` one), `groups` for the other kinds.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BindingBody {
    /// A policy's source groups.
    #[schema(value_type = Option<Vec<String>>)]
    pub sources: Option<Vec<GroupId>>,
    /// A policy's destination groups.
    #[schema(value_type = Option<Vec<String>>)]
    pub destinations: Option<Vec<GroupId>>,
    /// The groups of a role binding or of any other kind.
    #[schema(value_type = Option<Vec<String>>)]
    pub groups: Option<Vec<GroupId>>,
    /// A role binding's role.
    #[schema(example = "Admin")]
    pub role: Option<String>,
    /// A role binding's priority (0 when left out).
    pub priority: Option<i32>,
}
