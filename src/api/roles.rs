//! Roles now or at a past moment: every user's management role, from the role bindings and the
//! user's groups as they were (see `idpsync_engine::roles`). `?at=` (RFC 3339 or a date) or
//! `?seq=N` asks about the past, from the whole state of the time ([`state_at`]); `?admins=true`
//! keeps the users whose role is not the default one ("who was an admin on 1 March").
//!
//! Role bindings themselves are bindings of kind `role` (`/tenants/{tenant}/bindings/role/…`).

use axum::Json;
use idpsync_engine::roles::{all_roles, default_role, is_admin, roles_enabled};
use serde::Deserialize;
use utoipa::IntoParams;

use super::Routes;
use super::auth::TenantAccess;
use super::directory::{position, state_at};
use super::error::{ApiError, ApiQuery, ErrorBody};
use super::wire::{RoleList, RoleRow, time_of};

pub(super) fn routes(routes: Routes) -> Routes {
    routes.get("/tenants/{tenant}/roles", list)
}

/// `?at=` / `?seq=` and `?admins=`.
#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct RolesQuery {
    /// A past moment: RFC 3339 or a date (`2026-03-01`). Not with `seq`.
    at: Option<String>,
    /// A past log position. Not with `at`.
    seq: Option<u64>,
    /// Only the users whose role is not the default one.
    admins: Option<bool>,
}

/// Every user's role, now or at a past moment.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/roles",
    operation_id = "listRoles",
    tag = "roles",
    params(super::doc::TenantPath, RolesQuery),
    responses(
        (status = 200, description = "Every user's role (only the admins' with `admins=true`), by user id", body = RoleList),
        (status = 400, description = "A malformed query, or a moment before the log", body = ErrorBody),
    )
)]
async fn list(access: TenantAccess, ApiQuery(query): ApiQuery<RolesQuery>) -> Result<Json<RoleList>, ApiError> {
    let tenant = &access.tenant;
    let seq = position(tenant, query.at.as_deref(), query.seq).await?;
    let state = state_at(tenant, seq).await?;
    let default = default_role(&state);
    let admins_only = query.admins.unwrap_or(false);
    let items = all_roles(&state)
        .into_iter()
        .filter(|(_, held)| !admins_only || is_admin(&held.role, &default))
        .map(|(user, held)| RoleRow::of(&state, user, held))
        .collect();
    Ok(Json(RoleList {
        seq: state.seq().0,
        recorded_at: time_of(&state),
        enabled: roles_enabled(&state),
        default_role: default,
        items,
    }))
}
