//! Acknowledgements: `POST /tenants/{tenant}/changes/ack`, by which the management server says
//! it applied a revocation it read from the change stream. The body names the item by its
//! stream id, `{"id": "<seq>.<i>"}`; the acknowledgement is recorded in the log (once, however
//! often it is sent), and the answer says whose access it was and when it was revoked.

use axum::Json;
use idpsync_engine::{AcknowledgeError, ChangeId};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Routes;
use super::auth::TenantAccess;
use super::bindings::admin_origin;
use super::error::{ApiError, ApiJson};

pub(super) fn routes(routes: Routes) -> Routes {
    routes.post("/tenants/{tenant}/changes/ack", acknowledge)
}

/// The body of `POST …/changes/ack`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    /// The stream id of an `access.revoked` item: `<seq>.<i>`.
    id: String,
}

async fn acknowledge(access: TenantAccess, ApiJson(body): ApiJson<AckBody>) -> Result<Json<Value>, ApiError> {
    let change: ChangeId = body.id.parse().map_err(ApiError::bad_request)?;
    let acknowledged = access
        .tenant
        .acknowledge(change, admin_origin(&access))
        .await
        .map_err(|error| match error {
            AcknowledgeError::Submit(error) => ApiError::from(error),
            AcknowledgeError::Read(error) => ApiError::from(error),
        })?;
    Ok(Json(json!({
        "id": change.to_string(),
        "user": acknowledged.user,
        "recorded": acknowledged.recorded,
        "revokedAt": acknowledged.revoked_at.to_rfc3339(),
    })))
}
