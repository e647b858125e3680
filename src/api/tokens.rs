//! The tenant's tokens through the API: listed (created, expires, last used, state; never a
//! secret), created (the secret in the answer, once) and revoked, in the service's token book
//! (the data directory's file or the store replicas share), as `idpsync token` and the admin
//! console do. Creating and revoking are written to the trail of actions with the admin token
//! that asked.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use idpsync_engine::ids::Timestamp;

use super::auth::TenantAccess;
use super::error::{ApiError, ApiJson, ErrorBody};
use super::wire::{CreateTokenBody, CreatedToken, TokenList, TokenRow};
use super::{ApiState, Routes};
use crate::actions::{self, Action};
use crate::token_book::TokenBook;
use crate::tokens::{TokenError, TokenRecord, parse_expiry};

/// The `{token}` path parameter.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code, reason = "read by the OpenAPI derive only")]
struct TokenPath {
    /// The token's id.
    token: String,
}

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

async fn tenant_tokens(state: &ApiState, access: &TenantAccess) -> Result<Vec<TokenRecord>, ApiError> {
    let tokens = book(state)?.list().await.map_err(store_error)?;
    Ok(tokens
        .into_iter()
        .filter(|token| &token.tenant == access.tenant.id())
        .collect())
}

/// Lists the tenant's tokens, oldest first, without their secrets.
///
/// `lastUsedAt` is written once a minute, so it may be that much behind.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/tokens",
    operation_id = "listTokens",
    tag = "tokens",
    params(super::doc::TenantPath),
    responses(
        (status = 200, description = "The tenant's tokens", body = TokenList),
        (status = 404, description = "This service keeps no token store", body = ErrorBody),
    )
)]
async fn list(State(state): State<ApiState>, access: TenantAccess) -> Result<Json<TokenList>, ApiError> {
    let now = Timestamp::now();
    let items = tenant_tokens(&state, &access)
        .await?
        .iter()
        .map(|token| TokenRow::of(token, now))
        .collect();
    Ok(Json(TokenList { items }))
}

/// Creates a token of the tenant; the answer holds its secret, which is never stored and never
/// shown again.
#[utoipa::path(
    post,
    path = "/tenants/{tenant}/tokens",
    operation_id = "createToken",
    tag = "tokens",
    params(super::doc::TenantPath),
    request_body = CreateTokenBody,
    responses(
        (status = 201, description = "The token, with its secret shown this once", body = CreatedToken),
        (status = 400, description = "A malformed body, name or expiry (an expiry must be in the future)", body = ErrorBody),
        (status = 404, description = "This service keeps no token store", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
    )
)]
async fn create(
    State(state): State<ApiState>,
    access: TenantAccess,
    ApiJson(body): ApiJson<CreateTokenBody>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
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
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: TokenRow::of(&record, now),
            secret,
        }),
    ))
}

/// Revokes one of the tenant's tokens, by id: it stops opening the door at once, and open
/// change streams it reads end.
#[utoipa::path(
    post,
    path = "/tenants/{tenant}/tokens/{token}/revoke",
    operation_id = "revokeToken",
    tag = "tokens",
    params(super::doc::TenantPath, TokenPath),
    responses(
        (status = 200, description = "The token, revoked", body = TokenRow),
        (status = 404, description = "The tenant has no such token, or the service keeps no token store", body = ErrorBody),
    )
)]
async fn revoke(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<TokenRow>, ApiError> {
    let token = tenant_tokens(&state, &access)
        .await?
        .into_iter()
        .find(|token| token.id.to_string() == id)
        .ok_or_else(|| ApiError::not_found(format!("tenant {} has no token {id}", access.tenant.id())))?;
    let revoked = book(&state)?.revoke(&token.id.to_string()).await.map_err(store_error)?;
    actions::record(&access.actor(), Action::RevokeToken, &revoked.id.to_string());
    Ok(Json(TokenRow::of(&revoked, Timestamp::now())))
}
