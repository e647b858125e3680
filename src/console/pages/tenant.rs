//! The tenant page: what its log holds, and its SCIM and admin tokens: listed (created,
//! expires, last used, state), created (with an optional expiry; the secret shown once, on the
//! answer to the form, never again) and revoked. Only the token book's `create`, `list` and
//! `revoke` are used: the data directory's file or the store replicas share. Creating and
//! revoking are written to the trail of actions, with the session's token.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use idpsync_engine::ids::Timestamp;

use super::super::ConsoleState;
use super::super::layout::{Failure, Section, at, csrf_field, failure, notice, page};
use super::super::signed_in::{NoFields, Posted, SignedIn};
use crate::actions::{self, Action};
use crate::tokens::{TokenError, TokenKind, TokenRecord, TokenStatus, parse_expiry};

/// What a redirect to the tenant page reports.
#[derive(Deserialize)]
pub(in super::super) struct Done {
    done: Option<String>,
}

fn done_text(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "revoked" => Some("The token was revoked."),
        _ => None,
    }
}

/// The tenant's tokens, newest first, or the store's error.
async fn tenant_tokens(state: &ConsoleState, signed_in: &SignedIn) -> Result<Vec<TokenRecord>, Failure> {
    let tokens = state.tokens().list().await.map_err(|error| {
        Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read the tokens: {error}"),
        )
    })?;
    let mut tokens: Vec<TokenRecord> = tokens
        .into_iter()
        .filter(|token| &token.tenant == signed_in.tenant.id())
        .collect();
    tokens.reverse();
    Ok(tokens)
}

fn summary(signed_in: &SignedIn) -> Markup {
    let state = signed_in.tenant.state();
    html! {
        table.facts #summary {
            tr { th { "Log head (seq)" } td { (state.seq().0) } }
            tr { th { "Users" } td { (state.user_count()) } }
            tr { th { "Groups" } td { (state.group_count()) } }
            tr { th { "Bindings" } td { (state.bindings().count()) } }
            tr { th { "Held syncs" } td {
                (signed_in.tenant.held().len())
                @if !signed_in.tenant.held().is_empty() {
                    " — " a href=(at("/integrations")) { "review" }
                }
            } }
        }
    }
}

/// A moment of a token, or a dash.
fn when(at: Option<Timestamp>) -> String {
    at.map_or_else(|| "—".to_owned(), Timestamp::to_rfc3339)
}

fn token_table(signed_in: &SignedIn, tokens: &[TokenRecord]) -> Markup {
    let now = Timestamp::now();
    html! {
        table #tokens {
            tr {
                th { "Name" } th { "Kind" } th { "Id" } th { "Created" } th { "Expires" }
                th { "Last used" } th { "State" } th {}
            }
            @for token in tokens {
                @let status = token.status(now);
                tr.token data-id=(token.id) {
                    td.token-name { (token.name) }
                    td { (token.kind.as_str()) }
                    td.mono { (token.id) }
                    td { (token.created.to_rfc3339()) }
                    td.expires { (when(token.expires)) }
                    td.last-used { (when(token.last_used)) }
                    td.state {
                        @match status {
                            TokenStatus::Revoked(since) => span.tag.bad { "revoked " (since.to_rfc3339()) },
                            TokenStatus::Expired(since) => span.tag.bad { "expired " (since.to_rfc3339()) },
                            TokenStatus::Active => span.tag.good { "active" },
                        }
                    }
                    td {
                        @if status == TokenStatus::Active {
                            form.inline method="post" action=(at(&format!("/tokens/{}/revoke", token.id))) {
                                (csrf_field(signed_in))
                                button.danger.revoke type="submit" { "Revoke" }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn create_form(signed_in: &SignedIn) -> Markup {
    html! {
        form.card #create-token method="post" action=(at("/tokens")) {
            (csrf_field(signed_in))
            label { "Name " input #token-name type="text" name="name" required maxlength="128"; }
            label { "Kind "
                select #token-kind name="kind" {
                    option value="scim" { "SCIM (for an IdP's provisioning)" }
                    option value="admin" { "admin (management API and this console)" }
                }
            }
            label { "Expires "
                input #token-expires type="text" name="expires" placeholder="never, or 90d, 2027-01-01";
            }
            button #create type="submit" { "Create token" }
        }
    }
}

async fn tenant_page(state: &ConsoleState, signed_in: &SignedIn, above: Markup) -> Response {
    let tokens = match tenant_tokens(state, signed_in).await {
        Ok(tokens) => tokens,
        Err(failure) => return failure.into_response(),
    };
    page(
        signed_in,
        Section::Tenant,
        &format!("Tenant {}", signed_in.tenant.id()),
        html! {
            (above)
            (summary(signed_in))
            h2 { "Tokens" }
            (create_form(signed_in))
            (token_table(signed_in, &tokens))
        },
    )
}

/// `GET /admin/tenant`.
pub(in super::super) async fn show(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    Query(done): Query<Done>,
) -> Response {
    tenant_page(&state, &signed_in, notice(done_text(done.done.as_deref()))).await
}

/// The create form's fields.
#[derive(Deserialize)]
pub(in super::super) struct CreateForm {
    name: String,
    kind: String,
    /// Empty for a token that never expires.
    #[serde(default)]
    expires: String,
}

/// `POST /admin/tokens`: creates a token of the signed-in tenant and shows its secret, once.
pub(in super::super) async fn create_token(State(state): State<ConsoleState>, posted: Posted<CreateForm>) -> Response {
    let signed_in = &posted.signed_in;
    let kind = match posted.form.kind.as_str() {
        "scim" => TokenKind::Scim,
        "admin" => TokenKind::Admin,
        other => {
            return failure(
                StatusCode::BAD_REQUEST,
                &format!("no token kind {other:?}: scim or admin"),
            );
        }
    };
    let not_created =
        |error: TokenError| failure(StatusCode::BAD_REQUEST, &format!("the token was not created: {error}"));
    let expires = match posted.form.expires.trim() {
        "" => None,
        text => match parse_expiry(text, Timestamp::now()) {
            Ok(expires) => Some(expires),
            Err(error) => return not_created(error),
        },
    };
    let (record, secret) = match state
        .tokens()
        .create(signed_in.tenant.id(), posted.form.name.trim(), kind, expires)
        .await
    {
        Ok(created) => created,
        Err(error) => return not_created(error),
    };
    actions::record(&signed_in.actor(), Action::CreateToken, &record.id.to_string());
    tenant_page(
        &state,
        signed_in,
        html! {
            div.card.secret #new-token {
                p { "Token " strong { (record.name) } " (" (record.kind.as_str()) ") was created. "
                    "Copy its secret now: it is not stored and is never shown again." }
                code #new-secret { (secret) }
                @if let Some(expires) = record.expires {
                    p { "It stops working at " (expires.to_rfc3339()) "." }
                }
            }
        },
    )
    .await
}

/// `POST /admin/tokens/{id}/revoke`: revokes one of the signed-in tenant's tokens.
pub(in super::super) async fn revoke_token(
    State(state): State<ConsoleState>,
    Path(id): Path<String>,
    posted: Posted<NoFields>,
) -> Response {
    let signed_in = &posted.signed_in;
    let tokens = match tenant_tokens(&state, signed_in).await {
        Ok(tokens) => tokens,
        Err(failure) => return failure.into_response(),
    };
    let Some(token) = tokens.iter().find(|token| token.id.to_string() == id) else {
        return failure(
            StatusCode::NOT_FOUND,
            &format!("tenant {} has no token {id}", signed_in.tenant.id()),
        );
    };
    match state.tokens().revoke(&token.id.to_string()).await {
        Ok(revoked) => {
            actions::record(&signed_in.actor(), Action::RevokeToken, &revoked.id.to_string());
            Redirect::to(&at("/tenant?done=revoked")).into_response()
        }
        Err(error) => failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("the token was not revoked: {error}"),
        ),
    }
}
