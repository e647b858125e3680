//! Bindings: which groups a management-server resource references. `PUT` replaces a
//! resource's groups, `DELETE` forgets them; both are events in the log like any other write,
//! and change access at once (see the change stream). Role bindings (kind `role`) take a role,
//! a priority and groups, and change roles instead of access; the role binding `default` takes
//! only a role: the tenant's default role.

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use idpsync_engine::event::{Cause, Source};
use idpsync_engine::ids::{RequestId, ResourceId};
use idpsync_engine::model::{BindingGroups, ResourceKind, ResourceRef};
use idpsync_engine::{Command, Origin};

use super::Routes;
use super::auth::TenantAccess;
use super::error::{ApiError, ApiJson, ErrorBody};
use super::wire::{Binding, BindingBody, BindingList, BindingWritten};

pub(super) fn routes(routes: Routes) -> Routes {
    routes
        .get("/tenants/{tenant}/bindings", list)
        .get("/tenants/{tenant}/bindings/{kind}/{id}", get_one)
        .put("/tenants/{tenant}/bindings/{kind}/{id}", put)
        .delete("/tenants/{tenant}/bindings/{kind}/{id}", delete)
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

/// Every binding of the tenant.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/bindings",
    operation_id = "listBindings",
    tag = "bindings",
    params(super::doc::TenantPath),
    responses((status = 200, description = "Every binding of the tenant", body = BindingList))
)]
async fn list(access: TenantAccess) -> Json<BindingList> {
    let state = access.tenant.state();
    let items = state
        .bindings()
        .map(|(resource, groups)| Binding::of(resource, groups))
        .collect();
    Json(BindingList {
        seq: state.seq().0,
        items,
    })
}

/// One resource's binding.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/bindings/{kind}/{id}",
    operation_id = "getBinding",
    tag = "bindings",
    params(super::doc::TenantPath, ResourcePath),
    responses(
        (status = 200, description = "The binding", body = Binding),
        (status = 400, description = "A malformed id", body = ErrorBody),
        (status = 404, description = "No such kind, or no binding for the resource", body = ErrorBody),
    )
)]
async fn get_one(
    access: TenantAccess,
    Path((_, kind, id)): Path<(String, String, String)>,
) -> Result<Json<Binding>, ApiError> {
    let resource = resource(&kind, &id)?;
    let state = access.tenant.state();
    let groups = state
        .binding(&resource)
        .ok_or_else(|| ApiError::not_found(format!("no binding for {resource}")))?;
    Ok(Json(Binding::of(&resource, groups)))
}

/// Sets a resource's groups (replacing the ones it had).
#[utoipa::path(
    put,
    path = "/tenants/{tenant}/bindings/{kind}/{id}",
    operation_id = "putBinding",
    tag = "bindings",
    params(super::doc::TenantPath, ResourcePath),
    request_body = BindingBody,
    responses(
        (status = 200, description = "The binding as stored", body = BindingWritten),
        (status = 400, description = "A malformed id or body", body = ErrorBody),
        (status = 404, description = "No such kind", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
        (status = 422, description = "The body does not fit the kind, or names a group that does not exist", body = ErrorBody),
    )
)]
async fn put(
    access: TenantAccess,
    Path((_, kind, id)): Path<(String, String, String)>,
    ApiJson(body): ApiJson<BindingBody>,
) -> Result<Json<BindingWritten>, ApiError> {
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
    Ok(Json(BindingWritten {
        binding: Binding::of(&resource, state.binding(&resource).unwrap_or(&groups)),
        seq: committed.head.0,
        changed: committed.events > 0,
    }))
}

/// Removes a resource's binding.
#[utoipa::path(
    delete,
    path = "/tenants/{tenant}/bindings/{kind}/{id}",
    operation_id = "deleteBinding",
    tag = "bindings",
    params(super::doc::TenantPath, ResourcePath),
    responses(
        (status = 204, description = "The binding is gone"),
        (status = 400, description = "A malformed id", body = ErrorBody),
        (status = 404, description = "No such kind, or no binding for the resource", body = ErrorBody),
    )
)]
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

/// The resource a binding route names.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code, reason = "read by the OpenAPI derive only")]
struct ResourcePath {
    /// `policy`, `nameserver-group`, `dns-management`, `route` or `setup-key`.
    kind: String,
    /// The resource's id in the management server.
    id: String,
}
