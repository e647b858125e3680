//! The tenant's tokens through the API: listed (created, expires, last used, state; never a
//! secret), created (the secret in the answer, once) and revoked, in the service's token book
//! (the data directory's file or the store replicas share), as `idpsync token` and the admin
//! console do. Creating and revoking are written to the trail of actions with the admin token
//! that asked.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use idpsync_engine::ids::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::TenantAccess;
use super::error::ApiError;
use super::{ApiState, Routes};
use crate::actions::{self, Action};
use crate::token_book::TokenBook;
use crate::tokens::{TokenError, TokenKind, TokenRecord, parse_expiry};

pub(super) fn routes(routes: Routes) -> Routes {
    routes
        .get("/tenants/{tenant}/tokens", list)
        .post("/tenants/{tenant}/tokens", create)
        .post("/tenants/{tenant}/tokens/{token}/revoke", revoke)
}

fn book(state: &ApiState) -> Result<&TokenBook, ApiError> {
    state
        .settings()
        .tokens
        .as_ref()
        .ok_or_else(|| ApiError::not_found("this service keeps no token store"))
}

fn store_error(error: TokenError) -> ApiError {
    match error {
        TokenError::InvalidName | TokenError::InvalidExpiry(_) => ApiError::bad_request(error.to_string()),
        TokenError::NotFound(_) => ApiError::not_found(error.to_string()),
        other => ApiError::internal(other),
    }
}

/// A token as the API shows it: everything but the secret's hash.
fn token_json(token: &TokenRecord, now: Timestamp) -> Value {
    let moment = |at: Option<Timestamp>| at.map(Timestamp::to_rfc3339);
    json!({
        "id": token.id,
        "name": token.name,
        "kind": token.kind.as_str(),
        "createdAt": token.created.to_rfc3339(),
        "expiresAt": moment(token.expires),
        "lastUsedAt": moment(token.last_used),
        "revokedAt": moment(token.revoked),
        "status": token.status(now).as_str(),
    })
}

async fn tenant_tokens(state: &ApiState, access: &TenantAccess) -> Result<Vec<TokenRecord>, ApiError> {
    let tokens = book(state)?.list().await.map_err(store_error)?;
    Ok(tokens
        .into_iter()
        .filter(|token| &token.tenant == access.tenant.id())
        .collect())
}

/// `GET /tenants/{tenant}/tokens`: the tenant's tokens, oldest first. `lastUsedAt` is written
/// once a minute, so it may be that much behind.
async fn list(State(state): State<ApiState>, access: TenantAccess) -> Result<Json<Value>, ApiError> {
    let now = Timestamp::now();
    let items: Vec<Value> = tenant_tokens(&state, &access)
        .await?
        .iter()
        .map(|token| token_json(token, now))
        .collect();
    Ok(Json(json!({ "items": items })))
}

/// The body of `POST /tenants/{tenant}/tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateBody {
    name: String,
    kind: TokenKind,
    /// A moment (RFC 3339 or a date) or a time from now (`90d`); absent: never.
    expires_at: Option<String>,
}

/// `POST /tenants/{tenant}/tokens`: a new token of the tenant; the answer holds its secret,
/// which is never stored and never shown again.
async fn create(
    State(state): State<ApiState>,
    access: TenantAccess,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body: CreateBody =
        serde_json::from_slice(&body).map_err(|error| ApiError::bad_request(format!("invalid JSON body: {error}")))?;
    let now = Timestamp::now();
    let expires = match &body.expires_at {
        Some(text) => Some(parse_expiry(text, now).map_err(store_error)?),
        None => None,
    };
    let (record, secret) = book(&state)?
        .create(access.tenant.id(), body.name.trim(), body.kind, expires)
        .await
        .map_err(store_error)?;
    actions::record(&access.actor(), Action::CreateToken, &record.id.to_string());
    let mut answer = token_json(&record, now);
    answer["secret"] = json!(secret);
    Ok((StatusCode::CREATED, Json(answer)))
}

/// `POST /tenants/{tenant}/tokens/{token}/revoke`: revokes one of the tenant's tokens, by id.
async fn revoke(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let token = tenant_tokens(&state, &access)
        .await?
        .into_iter()
        .find(|token| token.id.to_string() == id)
        .ok_or_else(|| ApiError::not_found(format!("tenant {} has no token {id}", access.tenant.id())))?;
    let revoked = book(&state)?.revoke(&token.id.to_string()).await.map_err(store_error)?;
    actions::record(&access.actor(), Action::RevokeToken, &revoked.id.to_string());
    Ok(Json(token_json(&revoked, Timestamp::now())))
}
