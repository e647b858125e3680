//! Roles now or at a past moment: every user's management role, from the role bindings and the
//! user's groups as they were (see `idpsync_engine::roles`). `?at=` (RFC 3339 or a date) or
//! `?seq=N` asks about the past, from the whole state of the time ([`state_at`]); `?admins=true`
//! keeps the users whose role is not the default one ("who was an admin on 1 March").
//!
//! Role bindings themselves are bindings of kind `role` (`/tenants/{tenant}/bindings/role/…`).

use axum::Json;
use idpsync_engine::roles::{all_roles, default_role, is_admin, roles_enabled};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Routes;
use super::auth::TenantAccess;
use super::directory::{position, state_at};
use super::error::{ApiError, ApiQuery};
use super::wire::{role_json, time_of};

pub(super) fn routes(routes: Routes) -> Routes {
    routes.get("/tenants/{tenant}/roles", list)
}

/// `?at=` / `?seq=` and `?admins=`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RolesQuery {
    at: Option<String>,
    seq: Option<u64>,
    admins: Option<bool>,
}

async fn list(access: TenantAccess, ApiQuery(query): ApiQuery<RolesQuery>) -> Result<Json<Value>, ApiError> {
    let tenant = &access.tenant;
    let seq = position(tenant, query.at.as_deref(), query.seq)?;
    let state = state_at(tenant, seq).await?;
    let default = default_role(&state);
    let admins_only = query.admins.unwrap_or(false);
    let items: Vec<Value> = all_roles(&state)
        .into_iter()
        .filter(|(_, held)| !admins_only || is_admin(&held.role, &default))
        .map(|(user, held)| {
            let mut item = role_json(&state, &held);
            item["user"] = json!({
                "id": user,
                "userName": state.user(user).map(|found| found.profile.user_name.clone()),
            });
            item
        })
        .collect();
    Ok(Json(json!({
        "seq": state.seq(),
        "recordedAt": time_of(&state),
        "enabled": roles_enabled(&state),
        "defaultRole": default,
        "items": items,
    })))
}
