//! Signing in with an admin token (its principal is kept in a server-side session, never the
//! secret) and signing out.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::super::ConsoleState;
use super::super::layout::{at, frame};
use super::super::signed_in::{NoFields, Posted, clear_cookie, over_https, same_origin, session_cookie_value};

/// The sign-in form, with a message above it when there is one.
fn sign_in_page(status: StatusCode, message: Option<&str>) -> Response {
    let mut response = frame(
        "Sign in",
        html! {
            main.signin {
                h1 { "IdP-Sync admin console" }
                @if let Some(message) = message {
                    p.error #error { (message) }
                }
                form.card method="post" action=(at("/sign-in")) {
                    p { "Sign in with an admin token of your tenant (" code { "idpsync token create --admin" } ")." }
                    label for="token" { "Admin token" }
                    br;
                    input #token type="password" name="token" autocomplete="off" required;
                    p { button #sign-in type="submit" { "Sign in" } }
                }
            }
        },
    );
    *response.status_mut() = status;
    response
}

/// `GET /admin/sign-in`.
pub(in super::super) async fn form() -> Response {
    sign_in_page(StatusCode::OK, None)
}

/// The sign-in form's fields.
#[derive(Deserialize)]
pub(in super::super) struct SignInForm {
    token: String,
}

/// `POST /admin/sign-in`: a valid admin token of a tenant with a log starts a session.
pub(in super::super) async fn submit(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    if !same_origin(&headers) {
        return sign_in_page(
            StatusCode::FORBIDDEN,
            Some("this form was not sent from the console's own pages"),
        );
    }
    let Some(principal) = state.api().authenticator().authenticate(form.token.trim()).await else {
        return sign_in_page(
            StatusCode::UNAUTHORIZED,
            Some("the token is unknown, revoked, or not an admin token"),
        );
    };
    // The tenant loads here if this is its first use since the start.
    match state.api().engine().tenant_in_log(&principal.tenant).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return sign_in_page(
                StatusCode::NOT_FOUND,
                Some(&format!("tenant {} has no log yet", principal.tenant)),
            );
        }
        Err(error) => {
            return sign_in_page(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(&format!("tenant {} cannot be read now: {error}", principal.tenant)),
            );
        }
    }
    let id = state.sessions().start(principal);
    (
        [(
            header::SET_COOKIE,
            session_cookie_value(&id, over_https(&state, &headers)),
        )],
        Redirect::to(&at("/tenant")),
    )
        .into_response()
}

/// `POST /admin/sign-out`: ends the session.
pub(in super::super) async fn sign_out(State(state): State<ConsoleState>, posted: Posted<NoFields>) -> Response {
    state.sessions().end(&posted.signed_in.id);
    ([(header::SET_COOKIE, clear_cookie())], Redirect::to(&at("/sign-in"))).into_response()
}
