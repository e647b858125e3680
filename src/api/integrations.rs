//! Integrations: each one's sync status (last run, last error, counts), the snapshot the
//! mass-deactivation guard holds with the changes it would make and what the guard counted,
//! confirming (the run reviewed, while it is fresh) or rejecting it, and a run on request.

use std::collections::BTreeSet;

use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use idpsync_drivers::scheduler::IntegrationStatus;
use idpsync_engine::ids::IntegrationName;
use idpsync_engine::{HeldReconcile, Outcome, State, Tenant};

use crate::actions::{self, Action};

use super::auth::TenantAccess;
use super::error::{ApiError, ErrorBody};
use super::wire::{
    AbsentRef, ConfirmAnswer, ConfirmBody, IntegrationList, IntegrationRow, PendingAbsence, SyncReport, TriggerAnswer,
};
use super::{ApiState, Routes};

pub(super) fn routes(routes: Routes) -> Routes {
    routes
        .get("/tenants/{tenant}/integrations", list)
        .get("/tenants/{tenant}/integrations/{integration}", get_one)
        .post("/tenants/{tenant}/integrations/{integration}/sync", trigger)
        .post("/tenants/{tenant}/integrations/{integration}/held/confirm", confirm)
        .post("/tenants/{tenant}/integrations/{integration}/held/reject", reject)
}

/// An integration route's `{integration}`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code, reason = "read by the OpenAPI derive only")]
struct IntegrationPath {
    /// The integration's name, as in the configuration.
    integration: String,
}

fn name(text: &str) -> Result<IntegrationName, ApiError> {
    IntegrationName::new(text).map_err(ApiError::bad_request)
}

/// The statuses of the tenant's scheduled integrations.
fn statuses(state: &ApiState, access: &TenantAccess) -> Vec<IntegrationStatus> {
    tenant_statuses(state, access.tenant.id())
}

/// The statuses of `tenant`'s scheduled integrations (none when the service runs no schedule).
pub(crate) fn tenant_statuses(state: &ApiState, tenant: &idpsync_storage::TenantId) -> Vec<IntegrationStatus> {
    let Some(schedule) = &state.inner.settings.integrations else {
        return Vec::new();
    };
    schedule
        .status()
        .into_iter()
        .filter(|status| &status.tenant == tenant)
        .collect()
}

/// What the integration's complete listings found absent and has not taken effect yet: each
/// object, by id and name as the state has them, with the listings it was absent from and
/// since when.
fn pending_absences(state: &State, name: &IntegrationName) -> Vec<PendingAbsence> {
    state
        .pending_absences(name)
        .map(|(absent, absence)| {
            let (kind, label) = state.absent_label(absent);
            PendingAbsence {
                absent: AbsentRef::from(absent),
                kind: kind.to_owned(),
                name: label,
                listings: absence.listings,
                since: absence.since.to_rfc3339(),
            }
        })
        .collect()
}

fn integration_row(
    status: Option<&IntegrationStatus>,
    name: &IntegrationName,
    held: Option<&HeldReconcile>,
    tenant: &Tenant,
) -> IntegrationRow {
    IntegrationRow::new(
        name.as_str(),
        status,
        held.map(|held| (held, &tenant.settings().policy)),
        pending_absences(&tenant.state(), name),
    )
}

/// The tenant's integrations: status, held sync, pending absences.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/integrations",
    operation_id = "listIntegrations",
    tag = "integrations",
    params(super::doc::TenantPath),
    responses((status = 200, description = "The tenant's integrations", body = IntegrationList))
)]
async fn list(state: axum::extract::State<ApiState>, access: TenantAccess) -> Json<IntegrationList> {
    let statuses = statuses(&state, &access);
    let tenant = &access.tenant;
    let mut held = tenant.held();
    let mut listed: BTreeSet<IntegrationName> = BTreeSet::new();
    let mut items: Vec<IntegrationRow> = statuses
        .iter()
        .map(|status| {
            listed.insert(status.integration.clone());
            integration_row(
                Some(status),
                &status.integration,
                held.remove(&status.integration).as_ref(),
                tenant,
            )
        })
        .collect();
    // A hold or pending absences of an integration not scheduled here (run with `idpsync
    // sync`) are listed too.
    let published = tenant.state();
    let unscheduled: BTreeSet<IntegrationName> = held
        .keys()
        .chain(published.integrations_with_absences())
        .filter(|name| !listed.contains(*name))
        .cloned()
        .collect();
    items.extend(
        unscheduled
            .iter()
            .map(|name| integration_row(None, name, held.get(name), tenant)),
    );
    Json(IntegrationList { items })
}

/// One integration: status, held sync, pending absences.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/integrations/{integration}",
    operation_id = "getIntegration",
    tag = "integrations",
    params(super::doc::TenantPath, IntegrationPath),
    responses(
        (status = 200, description = "The integration", body = IntegrationRow),
        (status = 400, description = "A malformed name", body = ErrorBody),
        (status = 404, description = "The tenant has no such integration", body = ErrorBody),
    )
)]
async fn get_one(
    state: axum::extract::State<ApiState>,
    access: TenantAccess,
    Path((_, integration)): Path<(String, String)>,
) -> Result<Json<IntegrationRow>, ApiError> {
    let integration = name(&integration)?;
    let statuses = statuses(&state, &access);
    let status = statuses.iter().find(|status| status.integration == integration);
    let held = access.tenant.held().remove(&integration);
    let pending = access.tenant.state().pending_absences(&integration).next().is_some();
    if status.is_none() && held.is_none() && !pending {
        return Err(ApiError::not_found(format!(
            "tenant {} has no integration {integration}",
            access.tenant.id()
        )));
    }
    Ok(Json(integration_row(
        status,
        &integration,
        held.as_ref(),
        &access.tenant,
    )))
}

/// Asks for a run of an integration now.
#[utoipa::path(
    post,
    path = "/tenants/{tenant}/integrations/{integration}/sync",
    operation_id = "triggerSync",
    tag = "integrations",
    params(super::doc::TenantPath, IntegrationPath),
    responses(
        (status = 202, description = "A run was asked for; it starts when the integration is idle", body = TriggerAnswer),
        (status = 400, description = "A malformed name", body = ErrorBody),
        (status = 404, description = "The service runs no such integration", body = ErrorBody),
    )
)]
async fn trigger(
    state: axum::extract::State<ApiState>,
    access: TenantAccess,
    Path((_, integration)): Path<(String, String)>,
) -> Result<(StatusCode, Json<TriggerAnswer>), ApiError> {
    let integration = name(&integration)?;
    let schedule = state
        .inner
        .settings
        .integrations
        .as_ref()
        .ok_or_else(|| ApiError::not_found("this service runs no integrations"))?;
    schedule
        .trigger(access.tenant.id(), &integration)
        .map_err(|error| ApiError::not_found(error.to_string()))?;
    actions::record(&access.actor(), Action::StartSync, integration.as_str());
    Ok((
        StatusCode::ACCEPTED,
        Json(TriggerAnswer {
            integration: integration.as_str().to_owned(),
            triggered: true,
        }),
    ))
}

/// Applies the snapshot the mass-deactivation guard holds.
#[utoipa::path(
    post,
    path = "/tenants/{tenant}/integrations/{integration}/held/confirm",
    operation_id = "confirmHeldSync",
    tag = "integrations",
    params(super::doc::TenantPath, IntegrationPath),
    request_body(content = Option<ConfirmBody>, description = "The run reviewed; may be empty"),
    responses(
        (status = 200, description = "The held snapshot was applied", body = ConfirmAnswer),
        (status = 400, description = "A malformed name or body", body = ErrorBody),
        (status = 404, description = "The integration has no held sync", body = ErrorBody),
        (status = 409, description = "A newer listing superseded the run, or the hold expired", body = ErrorBody),
    )
)]
async fn confirm(
    access: TenantAccess,
    Path((_, integration)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<ConfirmAnswer>, ApiError> {
    let integration = name(&integration)?;
    let body: ConfirmBody = if body.iter().all(u8::is_ascii_whitespace) {
        ConfirmBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|error| ApiError::bad_request(format!("invalid JSON body: {error}")))?
    };
    let Some(held) = access.tenant.held().remove(&integration) else {
        return Err(ApiError::not_found(format!(
            "integration {integration} has no held sync"
        )));
    };
    let run = body.run.unwrap_or(held.snapshot.run);
    let committed = access.tenant.confirm_held(integration.clone(), run).await?;
    actions::record(&access.actor(), Action::ConfirmHold, integration.as_str());
    let report = match &committed.outcome {
        Outcome::Reconciled(report) | Outcome::Held(report) => Some(SyncReport::from(report)),
        _ => None,
    };
    Ok(Json(ConfirmAnswer {
        integration: integration.as_str().to_owned(),
        applied: true,
        events: committed.events,
        seq: committed.head.0,
        report,
    }))
}

/// Drops the snapshot the mass-deactivation guard holds.
#[utoipa::path(
    post,
    path = "/tenants/{tenant}/integrations/{integration}/held/reject",
    operation_id = "rejectHeldSync",
    tag = "integrations",
    params(super::doc::TenantPath, IntegrationPath),
    responses(
        (status = 204, description = "The held snapshot was dropped"),
        (status = 400, description = "A malformed name", body = ErrorBody),
        (status = 404, description = "The integration has no held sync", body = ErrorBody),
    )
)]
async fn reject(access: TenantAccess, Path((_, integration)): Path<(String, String)>) -> Result<StatusCode, ApiError> {
    let integration = name(&integration)?;
    if access.tenant.reject_held(&integration).await? {
        actions::record(&access.actor(), Action::RejectHold, integration.as_str());
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "integration {integration} has no held sync"
        )))
    }
}
