//! Erasure of a user's personal fields through the API: the same command as
//! `idpsync user erase`, recorded with the admin token that asked.

use axum::Json;
use axum::extract::Path;
use idpsync_engine::Command;

use super::Routes;
use super::auth::TenantAccess;
use super::bindings::admin_origin;
use super::directory::{UserPath, find_user};
use super::error::{ApiError, ErrorBody};
use super::wire::EraseAnswer;

pub(super) fn routes(routes: Routes) -> Routes {
    routes.post("/tenants/{tenant}/users/{user}/erase", erase)
}

/// Erases a user's personal fields by destroying its key.
///
/// Idempotent: erasing an erased user changes nothing and says so (`changed` is `false`).
#[utoipa::path(
    post,
    path = "/tenants/{tenant}/users/{user}/erase",
    operation_id = "eraseUser",
    tag = "erasure",
    params(super::doc::TenantPath, UserPath),
    responses(
        (status = 200, description = "The user's personal fields are erased", body = EraseAnswer),
        (status = 404, description = "No such user", body = ErrorBody),
    )
)]
async fn erase(access: TenantAccess, Path((_, key)): Path<(String, String)>) -> Result<Json<EraseAnswer>, ApiError> {
    let user = find_user(&access.tenant.state(), &key)
        .ok_or_else(|| ApiError::not_found(format!("no user with id or userName {key:?}")))?;
    let logged_plain = user.logged_in_the_clear();
    let committed = access
        .tenant
        .execute(Command::EraseUser { user: user.id }, admin_origin(&access))
        .await?;
    Ok(Json(EraseAnswer {
        user: user.id,
        erased: true,
        changed: committed.events > 0,
        seq: committed.head.0,
        // Fields logged in the clear (before sealing, or before sealed externalIds) read as
        // erased now, but stay in the log.
        logged_in_the_clear: logged_plain,
    }))
}
