//! A held sync: what the guard counted, the full preview of what confirming it would do now
//! (who is deactivated or deleted, who leaves which group, and the access each one loses, as
//! the projector computes it), and confirm / reject, through the same engine calls as
//! `POST /api/v1/…/held/confirm` and `…/held/reject`. Confirming names the run reviewed, so
//! that a newer listing held meanwhile is refused, not applied unseen.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use idpsync_engine::ids::{IntegrationName, SyncRunId};
use idpsync_engine::{HoldPreview, SubmitError, Tenant};
use maud::{Markup, html};
use serde::Deserialize;

use crate::actions::{self, Action};

use super::super::layout::{Failure, Section, at, csrf_field, failure, page};
use super::super::signed_in::{NoFields, Posted, SignedIn};

fn integration(name: &str) -> Result<IntegrationName, Failure> {
    IntegrationName::new(name).map_err(|error| Failure::new(StatusCode::BAD_REQUEST, error.to_string()))
}

fn no_hold(integration: &IntegrationName) -> Response {
    failure(
        StatusCode::NOT_FOUND,
        &format!("integration {integration} has no held sync"),
    )
}

fn group_name(tenant: &Tenant, group: idpsync_engine::ids::GroupId) -> String {
    tenant
        .state()
        .group(group)
        .map_or_else(|| group.to_string(), |found| found.display_name.clone())
}

fn losers_table(tenant: &Tenant, preview: &HoldPreview) -> Markup {
    html! {
        table #losers {
            tr { th { "User" } th { "Account" } th { "Groups left" } th { "Role" } th { "Access lost" } }
            @for loser in &preview.losers {
                tr.loser {
                    td.user-name { (loser.user_name) }
                    td {
                        @if loser.deleted { span.tag.bad { "deleted" } }
                        @else if loser.deactivated { span.tag.bad { "deactivated" } }
                        @else { "stays active" }
                    }
                    td { @if loser.groups_left.is_empty() { "—" } @else { (loser.groups_left.join(", ")) } }
                    td.role {
                        @match &loser.role_change {
                            Some(change) => {
                                (role_text(change.old.as_ref())) " → " (role_text(change.new.as_ref()))
                            }
                            None => { "—" }
                        }
                    }
                    td {
                        @if loser.access_lost.is_empty() { "—" }
                        @else {
                            ul.lost {
                                @for change in &loser.access_lost {
                                    li.access-lost {
                                        code { (change.resource) } " as " (change.role.as_str())
                                        " (through " (group_name(tenant, change.via)) ")"
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn role_text(role: Option<&idpsync_engine::RoleAssignment>) -> &str {
    role.map_or("no role", |held| held.role.as_str())
}

/// `GET /admin/integrations/{name}/held`.
pub(in super::super) async fn show(signed_in: SignedIn, Path(name): Path<String>) -> Response {
    let integration = match integration(&name) {
        Ok(integration) => integration,
        Err(failure) => return failure.into_response(),
    };
    let tenant = &signed_in.tenant;
    let (Some(held), Some(preview)) = (tenant.held().remove(&integration), tenant.preview_held(&integration)) else {
        return no_hold(&integration);
    };
    let policy = &tenant.settings().policy;
    let guard = &held.report.guard;
    let expires = held.expires_at(policy);
    let planned = &preview.report;
    page(
        &signed_in,
        Section::Integrations,
        &format!("Held sync of {integration}"),
        html! {
            div.card.warn #hold {
                p { "The mass-deactivation guard held run " code #held-run { (held.snapshot.run) }
                    " since " (held.held_since.to_rfc3339()) "; it can be confirmed until " (expires.to_rfc3339()) "." }
                p { "It takes access from " strong { (guard.removals) } " of the " (guard.owned_users)
                    " users the integration owns (" (guard.deletions) " deleted), with "
                    (guard.earlier.removals) " taken by its recent runs; the tenant allows "
                    (guard.limit_permille as f64 / 10.0) " %." }
                @if held.report.removes_last_owner {
                    p #last-owner { strong { "It would leave the tenant without an Owner: " }
                        "after it no user would hold the Owner role. It is held whatever the share." }
                }
            }
            h2 { "Who loses what if it is confirmed now" }
            p.muted {
                (planned.users_deactivated) " users deactivated, " (planned.users_deleted) " deleted, "
                (planned.memberships_removed) " memberships removed; " (planned.users_created) " users created, "
                (planned.users_updated) " updated, " (planned.users_reactivated) " reactivated; "
                (planned.groups_created) " groups created, " (planned.groups_renamed) " renamed, "
                (planned.groups_deleted) " deleted; " (planned.memberships_added) " memberships added."
            }
            (losers_table(tenant, &preview))
            div.card {
                form.inline #confirm method="post" action=(at(&format!("/integrations/{integration}/held/confirm"))) {
                    (csrf_field(&signed_in))
                    input type="hidden" name="run" value=(held.snapshot.run);
                    button.danger #confirm-button type="submit" { "Confirm: apply this sync" }
                }
                " "
                form.inline #reject method="post" action=(at(&format!("/integrations/{integration}/held/reject"))) {
                    (csrf_field(&signed_in))
                    button.quiet #reject-button type="submit" { "Reject: apply nothing" }
                }
            }
            h2 { "Every planned change" }
            table #changes {
                tr { th { "Change" } th { "Object" } }
                @for line in &planned.changes {
                    tr { td { (line.action) } td { (line.object) } }
                }
            }
            @if !planned.conflicts.is_empty() {
                h2 { "Skipped" }
                ul { @for conflict in &planned.conflicts { li { (conflict) } } }
            }
        },
    )
}

/// The confirm form's fields.
#[derive(Deserialize)]
pub(in super::super) struct ConfirmForm {
    run: String,
}

/// `POST /admin/integrations/{name}/held/confirm`: applies the run reviewed.
pub(in super::super) async fn confirm(Path(name): Path<String>, posted: Posted<ConfirmForm>) -> Response {
    let integration = match integration(&name) {
        Ok(integration) => integration,
        Err(failure) => return failure.into_response(),
    };
    let Ok(run) = posted.form.run.parse::<SyncRunId>() else {
        return failure(StatusCode::BAD_REQUEST, "the form names no run");
    };
    let signed_in = &posted.signed_in;
    if !signed_in.tenant.held().contains_key(&integration) {
        return no_hold(&integration);
    }
    match signed_in.tenant.confirm_held(integration.clone(), run).await {
        Ok(committed) => {
            actions::record(&signed_in.actor(), Action::ConfirmHold, integration.as_str());
            page(
                signed_in,
                Section::Integrations,
                &format!("Held sync of {integration} confirmed"),
                html! {
                    p.notice #confirmed {
                        "Run " code { (run) } " was applied: " (committed.events) " records, the log's head is now seq "
                        (committed.head.0) "."
                    }
                    p { a href=(at("/integrations")) { "Back to the integrations" } " · " a href=(at("/log")) { "Log status" } }
                },
            )
        }
        Err(SubmitError::Rejected(rejection)) => failure(StatusCode::CONFLICT, &rejection.to_string()),
        Err(error) => failure(StatusCode::SERVICE_UNAVAILABLE, &error.to_string()),
    }
}

/// `POST /admin/integrations/{name}/held/reject`: drops the hold; nothing of it is applied.
pub(in super::super) async fn reject(Path(name): Path<String>, posted: Posted<NoFields>) -> Response {
    let integration = match integration(&name) {
        Ok(integration) => integration,
        Err(failure) => return failure.into_response(),
    };
    match posted.signed_in.tenant.reject_held(&integration).await {
        Ok(true) => {
            actions::record(&posted.signed_in.actor(), Action::RejectHold, integration.as_str());
            Redirect::to(&at("/integrations?done=rejected")).into_response()
        }
        Ok(false) => no_hold(&integration),
        Err(error) => failure(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("the hold was not rejected: {error}"),
        ),
    }
}
