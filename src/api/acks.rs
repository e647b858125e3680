//! Acknowledgements: `POST /tenants/{tenant}/changes/ack`, by which the management server says
//! it applied a revocation it read from the change stream. The body names the item by its
//! stream id, `{"id": "<seq>.<i>"}`; the acknowledgement is recorded in the log (once, however
//! often it is sent), and the answer says whose access it was and when it was revoked.

use axum::Json;
use idpsync_engine::{AcknowledgeError, ChangeId};

use super::Routes;
use super::auth::TenantAccess;
use super::bindings::admin_origin;
use super::error::{ApiError, ApiJson, ErrorBody};
use super::wire::{AckAnswer, AckBody};

pub(super) fn routes(routes: Routes) -> Routes {
    routes.post("/tenants/{tenant}/changes/ack", acknowledge)
}

/// Records that the management server applied a revocation.
#[utoipa::path(
    post,
    path = "/tenants/{tenant}/changes/ack",
    operation_id = "acknowledgeChange",
    tag = "changes",
    params(super::doc::TenantPath),
    request_body = AckBody,
    responses(
        (status = 200, description = "The revocation is acknowledged (once, however often it is sent)", body = AckAnswer),
        (status = 400, description = "A malformed body or id", body = ErrorBody),
        (status = 404, description = "No change with that id", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
        (status = 422, description = "The change is not a revocation", body = ErrorBody),
    )
)]
async fn acknowledge(access: TenantAccess, ApiJson(body): ApiJson<AckBody>) -> Result<Json<AckAnswer>, ApiError> {
    let change: ChangeId = body.id.parse().map_err(ApiError::bad_request)?;
    let acknowledged = access
        .tenant
        .acknowledge(change, admin_origin(&access))
        .await
        .map_err(|error| match error {
            AcknowledgeError::Submit(error) => ApiError::from(error),
            AcknowledgeError::Read(error) => ApiError::from(error),
        })?;
    Ok(Json(AckAnswer {
        id: change.to_string(),
        user: acknowledged.user,
        recorded: acknowledged.recorded,
        revoked_at: acknowledged.revoked_at.to_rfc3339(),
    }))
}
