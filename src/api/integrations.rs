//! Integrations: each one's sync status (last run, last error, counts), the snapshot the
//! mass-deactivation guard holds with the changes it would make and what the guard counted,
//! confirming (the run reviewed, while it is fresh) or rejecting it, and a run on request.

use std::collections::BTreeSet;
use std::time::SystemTime;

use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use idpsync_drivers::scheduler::IntegrationStatus;
use idpsync_engine::ids::{IntegrationName, SyncRunId};
use idpsync_engine::reconcile::{AbsentLine, ReconcilePolicy};
use idpsync_engine::{HeldReconcile, Outcome, State, Tenant};
use idpsync_storage::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::TenantAccess;
use super::error::ApiError;
use super::wire::absent_json;
use super::{ApiState, Routes};

pub(super) fn routes(routes: Routes) -> Routes {
    routes
        .get("/tenants/{tenant}/integrations", list)
        .get("/tenants/{tenant}/integrations/{integration}", get_one)
        .post("/tenants/{tenant}/integrations/{integration}/sync", trigger)
        .post("/tenants/{tenant}/integrations/{integration}/held/confirm", confirm)
        .post("/tenants/{tenant}/integrations/{integration}/held/reject", reject)
}

fn time(moment: Option<SystemTime>) -> Value {
    match moment.and_then(|moment| moment.duration_since(SystemTime::UNIX_EPOCH).ok()) {
        Some(since) => json!(idpsync_storage::Timestamp(since.as_micros() as i64).to_rfc3339()),
        None => Value::Null,
    }
}

fn status_json(status: &IntegrationStatus) -> Value {
    json!({
        "integration": status.integration.as_str(),
        "provider": status.provider,
        "running": status.running,
        "runs": status.runs,
        "failures": status.failures,
        "lastStarted": time(status.last_started),
        "lastFinished": time(status.last_finished),
        "lastResult": status.last_result,
        "lastError": status.last_error,
        "restarts": status.restarts,
        "leaseHeld": status.lease_held,
        "lastCounts": status.last_counts,
        "nextRun": time(status.next_run),
    })
}

fn held_json(held: &HeldReconcile, policy: &ReconcilePolicy) -> Value {
    let report = &held.report;
    let guard = &report.guard;
    let expires_at = held.expires_at(policy);
    json!({
        "heldAt": held.held_at,
        "heldSince": held.held_since.to_rfc3339(),
        "expiresAt": expires_at.to_rfc3339(),
        "expired": Timestamp::now() >= expires_at,
        "run": held.snapshot.run,
        "summary": report.held,
        "removesLastOwner": report.removes_last_owner,
        "guard": {
            "removals": guard.removals,
            "deletions": guard.deletions,
            "ownedUsers": guard.owned_users,
            "earlierRemovals": guard.earlier.removals,
            "earlierDeletions": guard.earlier.deletions,
            "limitPermille": guard.limit_permille,
        },
        "planned": {
            "usersCreated": report.users_created,
            "usersUpdated": report.users_updated,
            "usersDeactivated": report.users_deactivated,
            "usersReactivated": report.users_reactivated,
            "usersDeleted": report.users_deleted,
            "groupsCreated": report.groups_created,
            "groupsRenamed": report.groups_renamed,
            "groupsDeleted": report.groups_deleted,
            "membershipsAdded": report.memberships_added,
            "membershipsRemoved": report.memberships_removed,
        },
        "changes": report.changes.iter().map(|line| json!({"action": line.action, "object": line.object})).collect::<Vec<_>>(),
        "conflicts": report.conflicts,
        "pending": report.pending.iter().map(absent_line_json).collect::<Vec<_>>(),
    })
}

/// A pending absence of a planned run.
fn absent_line_json(line: &AbsentLine) -> Value {
    json!({
        "kind": line.kind,
        "object": line.object,
        "listings": line.listings,
        "needed": line.needed,
        "since": line.since.to_rfc3339(),
        "takesEffectAfter": line.takes_effect_after.map(|at| at.to_rfc3339()),
    })
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
fn pending_json(state: &State, name: &IntegrationName) -> Value {
    let items: Vec<Value> = state
        .pending_absences(name)
        .map(|(absent, absence)| {
            let (kind, label) = state.absent_label(absent);
            let mut item = absent_json(absent);
            item["kind"] = json!(kind);
            item["name"] = json!(label);
            item["listings"] = json!(absence.listings);
            item["since"] = json!(absence.since.to_rfc3339());
            item
        })
        .collect();
    Value::Array(items)
}

fn integration_json(
    status: Option<&IntegrationStatus>,
    name: &IntegrationName,
    held: Option<&HeldReconcile>,
    tenant: &Tenant,
) -> Value {
    let mut value = match status {
        Some(status) => status_json(status),
        None => json!({"integration": name.as_str(), "scheduled": false}),
    };
    value["held"] = held.map_or(Value::Null, |held| held_json(held, &tenant.settings().policy));
    value["pendingAbsences"] = pending_json(&tenant.state(), name);
    value
}

async fn list(state: axum::extract::State<ApiState>, access: TenantAccess) -> Json<Value> {
    let statuses = statuses(&state, &access);
    let tenant = &access.tenant;
    let mut held = tenant.held();
    let mut listed: BTreeSet<IntegrationName> = BTreeSet::new();
    let mut items: Vec<Value> = statuses
        .iter()
        .map(|status| {
            listed.insert(status.integration.clone());
            integration_json(
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
            .map(|name| integration_json(None, name, held.get(name), tenant)),
    );
    Json(json!({"items": items}))
}

async fn get_one(
    state: axum::extract::State<ApiState>,
    access: TenantAccess,
    Path((_, integration)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(integration_json(
        status,
        &integration,
        held.as_ref(),
        &access.tenant,
    )))
}

async fn trigger(
    state: axum::extract::State<ApiState>,
    access: TenantAccess,
    Path((_, integration)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"integration": integration.as_str(), "triggered": true})),
    ))
}

/// The body of `POST …/held/confirm`, which may be empty.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfirmBody {
    /// The held run that was reviewed; confirming fails with 409 if a newer listing has
    /// superseded it. Without it, the hold as it stands now is confirmed.
    run: Option<SyncRunId>,
}

async fn confirm(
    access: TenantAccess,
    Path((_, integration)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
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
    let report = match committed.outcome {
        Outcome::Reconciled(report) | Outcome::Held(report) => {
            serde_json::to_value(report).map_err(ApiError::internal)?
        }
        _ => Value::Null,
    };
    Ok(Json(json!({
        "integration": integration.as_str(),
        "applied": true,
        "events": committed.events,
        "seq": committed.head,
        "report": report,
    })))
}

async fn reject(access: TenantAccess, Path((_, integration)): Path<(String, String)>) -> Result<StatusCode, ApiError> {
    let integration = name(&integration)?;
    if access.tenant.reject_held(&integration).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "integration {integration} has no held sync"
        )))
    }
}
