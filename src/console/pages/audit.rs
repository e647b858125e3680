//! Audits: a form for one user's offboarding timeline and one for the leavers' report of a
//! period, and the two reports themselves, the same self-contained HTML pages as
//! `GET /api/v1/…/audit?format=html` (`crate::audit::html`), under their own content
//! security policy (an inline style sheet, no script).

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use idpsync_engine::audit::{audit_user, resolve_user};
use idpsync_storage::Timestamp;
use maud::html;
use serde::Deserialize;

use super::super::ConsoleState;
use super::super::headers::AUDIT_POLICY;
use super::super::layout::{Section, at, failure, page};
use super::super::signed_in::SignedIn;
use crate::api::audit::{leavers_of, with_sources};
use crate::api::error::ApiError;

/// `GET /admin/audit`: the two forms.
pub(in super::super) async fn index(signed_in: SignedIn) -> Response {
    let month_ago = Timestamp(Timestamp::now().0 - 30 * 24 * 3600 * 1_000_000).to_rfc3339();
    page(
        &signed_in,
        Section::Audit,
        "Audit",
        html! {
            form.card #user-audit method="get" action=(at("/audit/user")) {
                p { "One user's offboarding timeline: every membership, every grant and revocation, each with its proof in the log." }
                label { "userName, externalId or id " input #audit-user type="text" name="user" required; }
                button type="submit" { "Show timeline" }
            }
            form.card #leavers method="get" action=(at("/audit/leavers")) {
                p { "The leavers' report: everyone who left since a moment, and whether their access ended." }
                label { "Since (RFC 3339 or a plain date) " input #leavers-since type="text" name="since" value=(month_ago) required; }
                button type="submit" { "Show report" }
            }
        },
    )
}

/// An audit page as the API renders it, under the audit pages' policy.
fn audit_page(body: String) -> Response {
    let mut response = Html(body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(AUDIT_POLICY));
    response
}

fn api_failure(error: ApiError) -> Response {
    if error.status().is_server_error() {
        tracing::error!(message = error.message(), "a console audit failed");
        return failure(error.status(), "the audit failed; the service's log says why");
    }
    failure(error.status(), error.message())
}

/// The user form's field.
#[derive(Deserialize)]
pub(in super::super) struct UserQuery {
    user: String,
}

/// `GET /admin/audit/user?user=`: one user's timeline.
pub(in super::super) async fn user(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    Query(query): Query<UserQuery>,
) -> Response {
    let tenant = &signed_in.tenant;
    let user = match resolve_user(tenant, query.user.trim()).await {
        Ok(user) => user,
        Err(error) => return api_failure(error.into()),
    };
    match with_sources(state.api(), tenant, async |sources| {
        audit_user(tenant, user, sources).await
    })
    .await
    {
        Ok(audit) => audit_page(crate::audit::html::user(&audit)),
        Err(error) => api_failure(error),
    }
}

/// The report form's field.
#[derive(Deserialize)]
pub(in super::super) struct LeaversQuery {
    since: String,
}

/// `GET /admin/audit/leavers?since=`: the leavers' report.
pub(in super::super) async fn leavers(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    Query(query): Query<LeaversQuery>,
) -> Response {
    let since = match Timestamp::parse_moment(query.since.trim()) {
        Ok(since) => since,
        Err(error) => return failure(StatusCode::BAD_REQUEST, &format!("since: {error}")),
    };
    let tenant = &signed_in.tenant;
    match leavers_of(state.api(), tenant, since).await {
        Ok(report) => audit_page(crate::audit::html::report(&report)),
        Err(error) => api_failure(error),
    }
}
