//! Bindings: which groups a management-server resource references. `PUT` replaces a
//! resource's groups, `DELETE` forgets them; both are events in the log like any other write,
//! and change access at once (see the change stream). Role bindings (kind `role`) take a role,
//! a priority and groups, and change roles instead of access; the role binding `default` takes
//! only a role: the tenant's default role.

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use idpsync_engine::event::{Cause, Source};
use idpsync_engine::ids::{GroupId, RequestId, ResourceId};
use idpsync_engine::model::{BindingGroups, ResourceKind, ResourceRef};
use idpsync_engine::{Command, Origin};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Routes;
use super::auth::TenantAccess;
use super::error::{ApiError, ApiJson};
use super::wire::binding_json;

pub(super) fn routes(routes: Routes) -> Routes {
    routes
        .get("/tenants/{tenant}/bindings", list)
        .get("/tenants/{tenant}/bindings/{kind}/{id}", get_one)
        .put("/tenants/{tenant}/bindings/{kind}/{id}", put)
        .delete("/tenants/{tenant}/bindings/{kind}/{id}", delete)
}

/// The body of `PUT`: `sources` and `destinations` for a policy, `role`, `priority` (default 0)
/// and `groups` for a role binding (only `role` for the `default` one), `groups` for the other
/// kinds.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BindingBody {
    sources: Option<Vec<GroupId>>,
    destinations: Option<Vec<GroupId>>,
    groups: Option<Vec<GroupId>>,
    role: Option<String>,
    priority: Option<i32>,
}

/// The resource a path names.
fn resource(kind: &str, id: &str) -> Result<ResourceRef, ApiError> {
    let kind = ResourceKind::parse(kind).ok_or_else(|| {
        let kinds: Vec<&str> = ResourceKind::ALL
            .iter()
            .chain([&ResourceKind::Role])
            .map(|k| k.as_str())
            .collect();
        ApiError::not_found(format!(
            "unknown resource kind {kind:?}; the kinds are {}",
            kinds.join(", ")
        ))
    })?;
    let id = ResourceId::new(id).map_err(ApiError::bad_request)?;
    Ok(ResourceRef { kind, id })
}

fn groups_of(kind: ResourceKind, body: BindingBody) -> Result<BindingGroups, ApiError> {
    match (kind, body) {
        (
            ResourceKind::Role,
            BindingBody {
                sources: None,
                destinations: None,
                groups,
                role: Some(role),
                priority,
            },
        ) => Ok(BindingGroups::Role {
            role,
            priority: priority.unwrap_or(0),
            groups: groups.unwrap_or_default(),
        }),
        (ResourceKind::Role, _) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "binding_shape",
            "a role binding takes {\"role\": name, \"priority\": number, \"groups\": [group ids]}",
        )),
        (
            ResourceKind::Policy,
            BindingBody {
                sources: Some(sources),
                destinations: Some(destinations),
                groups: None,
                role: None,
                priority: None,
            },
        ) => Ok(BindingGroups::Policy { sources, destinations }),
        (ResourceKind::Policy, _) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "binding_shape",
            "a policy binding takes {\"sources\": [group ids], \"destinations\": [group ids]}",
        )),
        (
            _,
            BindingBody {
                sources: None,
                destinations: None,
                groups: Some(groups),
                role: None,
                priority: None,
            },
        ) => Ok(BindingGroups::Groups(groups)),
        (kind, _) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "binding_shape",
            format!("a {kind} binding takes {{\"groups\": [group ids]}}"),
        )),
    }
}

/// The origin of a write through the API.
pub(super) fn admin_origin(access: &TenantAccess) -> Origin {
    Origin {
        source: Source::Admin { token: access.token },
        cause: Cause::Request(RequestId::new()),
    }
}

async fn list(access: TenantAccess) -> Json<Value> {
    let state = access.tenant.state();
    let items: Vec<Value> = state
        .bindings()
        .map(|(resource, groups)| binding_json(resource, groups))
        .collect();
    Json(json!({"seq": state.seq(), "items": items}))
}

async fn get_one(
    access: TenantAccess,
    Path((_, kind, id)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let resource = resource(&kind, &id)?;
    let state = access.tenant.state();
    let groups = state
        .binding(&resource)
        .ok_or_else(|| ApiError::not_found(format!("no binding for {resource}")))?;
    Ok(Json(binding_json(&resource, groups)))
}

async fn put(
    access: TenantAccess,
    Path((_, kind, id)): Path<(String, String, String)>,
    ApiJson(body): ApiJson<BindingBody>,
) -> Result<Json<Value>, ApiError> {
    let resource = resource(&kind, &id)?;
    let groups = groups_of(resource.kind, body)?;
    let committed = access
        .tenant
        .execute(
            Command::SetBinding {
                resource: resource.clone(),
                groups: groups.clone(),
            },
            admin_origin(&access),
        )
        .await?;
    // As the engine keeps it (a role's name is written as the built-in name it matches).
    let state = access.tenant.state();
    let mut answer = binding_json(&resource, state.binding(&resource).unwrap_or(&groups));
    answer["seq"] = json!(committed.head);
    answer["changed"] = json!(committed.events > 0);
    Ok(Json(answer))
}

async fn delete(
    access: TenantAccess,
    Path((_, kind, id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let resource = resource(&kind, &id)?;
    access
        .tenant
        .execute(Command::RemoveBinding { resource }, admin_origin(&access))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
