//! The integrations page: each scheduled integration's last and next run, last result and
//! error, the counts of its last run, a "sync now" button (the schedule's own trigger, as
//! `POST /api/v1/…/integrations/{name}/sync`), and the syncs the guard holds.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use idpsync_engine::ids::IntegrationName;
use maud::html;
use serde::Deserialize;

use super::super::ConsoleState;
use super::super::layout::{Section, at, csrf_field, failure, moment, notice, page};
use super::super::signed_in::{NoFields, Posted, SignedIn};
use crate::actions::{self, Action};
use crate::api::integrations::tenant_statuses;

/// What a redirect to the integrations page reports.
#[derive(Deserialize)]
pub(in super::super) struct Done {
    done: Option<String>,
}

fn done_text(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "sync" => Some("A sync run was started; refresh to see its result."),
        "rejected" => Some("The held sync was rejected: nothing of it was applied."),
        _ => None,
    }
}

/// `GET /admin/integrations`.
pub(in super::super) async fn list(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    Query(done): Query<Done>,
) -> Response {
    let statuses = tenant_statuses(state.api(), signed_in.tenant.id());
    let held = signed_in.tenant.held();
    // Holds of integrations not scheduled here (run with `idpsync sync`) are listed too.
    let unscheduled: Vec<&IntegrationName> = held
        .keys()
        .filter(|name| !statuses.iter().any(|status| &status.integration == *name))
        .collect();
    page(
        &signed_in,
        Section::Integrations,
        "Integrations",
        html! {
            (notice(done_text(done.done.as_deref())))
            @if statuses.is_empty() && unscheduled.is_empty() {
                p.muted { "This service runs no integration for the tenant." }
            }
            table #integrations {
                tr {
                    th { "Integration" } th { "Provider" } th { "Last run" } th { "Result" }
                    th { "Last error / warnings" } th { "Counts of the last run" } th { "Next run" } th {}
                }
                @for status in &statuses {
                    tr.integration data-name=(status.integration) {
                        td { strong { (status.integration) } }
                        td { (status.provider) }
                        td { (moment(status.last_finished)) @if status.running { " " span.tag { "running" } } }
                        td { (status.last_result.unwrap_or("—")) " (" (status.runs) " runs, " (status.failures) " failed)" }
                        td {
                            @if let Some(error) = &status.last_error { span.error { (error) } } @else { "—" }
                            @for warning in &status.last_warnings { br; span.warning { (warning) } }
                        }
                        td {
                            @match &status.last_counts {
                                Some(counts) => {
                                    (counts.listed_users) " users, " (counts.listed_groups) " groups listed; "
                                    (counts.user_changes) " user, " (counts.group_changes) " group, "
                                    (counts.membership_changes) " membership changes"
                                }
                                None => "—",
                            }
                        }
                        td { (moment(status.next_run)) }
                        td {
                            form.inline method="post" action=(at(&format!("/integrations/{}/sync", status.integration))) {
                                (csrf_field(&signed_in))
                                button.sync-now type="submit" { "Sync now" }
                            }
                            @if held.contains_key(&status.integration) {
                                " " a.held-link href=(at(&format!("/integrations/{}/held", status.integration))) { "Review held sync" }
                            }
                        }
                    }
                }
                @for name in &unscheduled {
                    tr.integration data-name=(name) {
                        td { strong { (name) } }
                        td colspan="6" { span.muted { "not scheduled by this service" } }
                        td { a.held-link href=(at(&format!("/integrations/{name}/held"))) { "Review held sync" } }
                    }
                }
            }
        },
    )
}

/// `POST /admin/integrations/{name}/sync`: starts a run now.
pub(in super::super) async fn sync_now(
    State(state): State<ConsoleState>,
    Path(name): Path<String>,
    posted: Posted<NoFields>,
) -> Response {
    let integration = match IntegrationName::new(&name) {
        Ok(integration) => integration,
        Err(error) => return failure(StatusCode::BAD_REQUEST, &error.to_string()),
    };
    let Some(schedule) = &state.api().settings().integrations else {
        return failure(StatusCode::NOT_FOUND, "this service runs no integrations");
    };
    match schedule.trigger(posted.signed_in.tenant.id(), &integration) {
        Ok(()) => {
            actions::record(&posted.signed_in.actor(), Action::StartSync, integration.as_str());
            Redirect::to(&at("/integrations?done=sync")).into_response()
        }
        Err(error) => failure(StatusCode::NOT_FOUND, &error.to_string()),
    }
}
