//! The offboarding audit through the API: one user's chain, or the leavers of a period, as
//! JSON, HTML or text (`?format=`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use idpsync_engine::Tenant;
use idpsync_engine::audit::{AuditError, AuditSources, LeaversReport, audit_user, leavers_report, resolve_user};
use idpsync_engine::ids::TokenId;
use idpsync_storage::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use super::auth::TenantAccess;
use super::directory::UserPath;
use super::error::{ApiError, ApiQuery, ErrorBody};
use super::{ApiState, Routes};
use crate::audit::{Format, html, json, text};

pub(super) fn routes(routes: Routes) -> Routes {
    routes
        .get("/tenants/{tenant}/users/{user}/audit", user_audit)
        .get("/tenants/{tenant}/audit/leavers", leavers)
}

/// `?format=` of a user's audit.
#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct FormatQuery {
    /// `json` (the default), `text` or `html`.
    format: Option<Format>,
}

/// `?since=` and `?format=` of the leavers' report.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct LeaversQuery {
    /// The start of the period: RFC 3339 or a date (`2026-03-01`).
    since: String,
    /// `json` (the default), `text` or `html`.
    format: Option<Format>,
}

impl From<AuditError> for ApiError {
    fn from(error: AuditError) -> ApiError {
        match error {
            AuditError::Engine(error) => error.into(),
            unknown @ AuditError::UnknownUser { .. } => ApiError::not_found(unknown.to_string()),
        }
    }
}

/// Token names by id, from the service's token store.
async fn token_names(state: &ApiState) -> BTreeMap<TokenId, String> {
    let Some(store) = &state.inner.settings.tokens else {
        return BTreeMap::new();
    };
    match store.list().await {
        Ok(tokens) => tokens.into_iter().map(|token| (token.id, token.name)).collect(),
        Err(error) => {
            tracing::warn!(%error, "cannot read the token store; audits name tokens by id only");
            BTreeMap::new()
        }
    }
}

fn render<'a, T, J: Serialize>(
    value: &'a T,
    format: Format,
    as_json: fn(&'a T) -> J,
    as_text: fn(&T) -> String,
    as_html: fn(&T) -> String,
) -> Response {
    match format {
        Format::Json => axum::Json(as_json(value)).into_response(),
        Format::Text => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], as_text(value)).into_response(),
        Format::Html => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], as_html(value)).into_response(),
    }
}

/// Runs `make` with the tenant's binding log (caught up) and the token names.
pub(crate) async fn with_sources<T>(
    state: &ApiState,
    tenant: &Arc<Tenant>,
    make: impl AsyncFnOnce(&AuditSources<'_>) -> Result<T, AuditError>,
) -> Result<T, ApiError> {
    let bindings = state.inner.binding_logs.current(tenant).await?;
    let names = token_names(state).await;
    let sources = AuditSources {
        bindings: &bindings,
        token_names: &names,
    };
    Ok(make(&sources).await?)
}

/// The leavers' report of `tenant` since `since`, naming tokens from the service's store. The
/// report reads the log itself: it needs no binding log.
pub(crate) async fn leavers_of(state: &ApiState, tenant: &Tenant, since: Timestamp) -> Result<LeaversReport, ApiError> {
    let names = token_names(state).await;
    Ok(leavers_report(tenant, since, &names).await?)
}

/// A user's offboarding audit, as JSON, text or HTML.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/users/{user}/audit",
    operation_id = "getUserAudit",
    tag = "audit",
    params(super::doc::TenantPath, UserPath, FormatQuery),
    responses(
        (status = 200, description = "The user's offboarding audit: each step with its chain link and latency",
            content(
                (crate::audit::json::UserAuditJson = "application/json"),
                (String = "text/plain"),
                (String = "text/html"),
            )),
        (status = 400, description = "A malformed query", body = ErrorBody),
        (status = 404, description = "No such user, now or in the log", body = ErrorBody),
    )
)]
async fn user_audit(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path((_, key)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<FormatQuery>,
) -> Result<Response, ApiError> {
    let user = resolve_user(&access.tenant, &key).await?;
    let audit = with_sources(&state, &access.tenant, async |sources| {
        audit_user(&access.tenant, user, sources).await
    })
    .await?;
    Ok(render(
        &audit,
        query.format.unwrap_or(Format::Json),
        json::user,
        text::user,
        html::user,
    ))
}

/// The leavers of a period and how fast each lost access.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/audit/leavers",
    operation_id = "getLeaversReport",
    tag = "audit",
    params(super::doc::TenantPath, LeaversQuery),
    responses(
        (status = 200, description = "The users who left since the moment, how fast each lost access, and who still holds some",
            content(
                (crate::audit::json::LeaversReportJson = "application/json"),
                (String = "text/plain"),
                (String = "text/html"),
            )),
        (status = 400, description = "A malformed query", body = ErrorBody),
    )
)]
async fn leavers(
    State(state): State<ApiState>,
    access: TenantAccess,
    ApiQuery(query): ApiQuery<LeaversQuery>,
) -> Result<Response, ApiError> {
    let since = Timestamp::parse_moment(&query.since).map_err(|error| ApiError::bad_request(error.to_string()))?;
    let leavers = leavers_of(&state, &access.tenant, since).await?;
    Ok(render(
        &leavers,
        query.format.unwrap_or(Format::Json),
        json::report,
        text::report,
        html::report,
    ))
}
