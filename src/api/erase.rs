//! Erasure of a user's personal fields through the API: the same command as
//! `idpsync user erase`, recorded with the admin token that asked.

use axum::Json;
use axum::extract::Path;
use idpsync_engine::Command;
use serde_json::{Value, json};

use super::Routes;
use super::auth::TenantAccess;
use super::bindings::admin_origin;
use super::directory::find_user;
use super::error::ApiError;

pub(super) fn routes(routes: Routes) -> Routes {
    routes.post("/tenants/{tenant}/users/{user}/erase", erase)
}

/// `POST /users/{user}/erase`: destroys the user's key. Idempotent: erasing an erased user
/// changes nothing and says so.
async fn erase(access: TenantAccess, Path((_, key)): Path<(String, String)>) -> Result<Json<Value>, ApiError> {
    let user = find_user(&access.tenant.state(), &key)
        .ok_or_else(|| ApiError::not_found(format!("no user with id or userName {key:?}")))?;
    let logged_plain = user.logged_in_the_clear();
    let committed = access
        .tenant
        .execute(Command::EraseUser { user: user.id }, admin_origin(&access))
        .await?;
    Ok(Json(json!({
        "user": user.id,
        "erased": true,
        "changed": committed.events > 0,
        "seq": committed.head,
        // Fields logged in the clear (before sealing, or before sealed externalIds) read as
        // erased now, but stay in the log.
        "loggedInTheClear": logged_plain,
    })))
}
