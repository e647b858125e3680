//! What admits a console request: [`SignedIn`] for pages (a live session whose admin token is
//! still active, neither revoked nor expired: checked again on every request, so revoking the
//! token ends the session at once), and [`Posted`] for forms, which adds a same-origin `Origin` (or `Referer`) and the
//! session's CSRF token in the form's `csrf` field. A request that fails goes back to sign-in
//! (no session) or gets 403 (a form from elsewhere), and changes nothing.

use std::sync::Arc;

use axum::Form;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use idpsync_engine::Tenant;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq as _;

use super::session::Session;
use super::{ConsoleState, MOUNT, SESSION_COOKIE};
use crate::actions::{Actor, Door};
use crate::tokens::{TokenKind, TokenRecord};

/// A request from a signed-in browser.
pub(super) struct SignedIn {
    /// The session's id, from the cookie.
    pub(super) id: String,
    /// The session.
    pub(super) session: Session,
    /// The token's tenant.
    pub(super) tenant: Arc<Tenant>,
    /// The admin token the session signed in with, as stored (no secret).
    pub(super) token: TokenRecord,
}

impl SignedIn {
    /// The session's token as the actor of an action, for the trail ([`crate::actions`]).
    pub(super) fn actor(&self) -> Actor<'_> {
        Actor {
            tenant: &self.token.tenant,
            token: self.token.id,
            token_name: Some(&self.token.name),
            door: Door::Console,
        }
    }
}

/// Why a request is not admitted.
pub(super) enum Refused {
    /// No live session, or its token no longer opens the tenant: to sign-in, cookie cleared.
    SignIn,
    /// A form without the session's CSRF token, or from another origin.
    Forbidden(&'static str),
    /// A form that does not parse.
    BadForm(String),
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::SignIn => (
                [(header::SET_COOKIE, clear_cookie())],
                Redirect::to(&format!("{MOUNT}/sign-in")),
            )
                .into_response(),
            Refused::Forbidden(why) => super::layout::failure(StatusCode::FORBIDDEN, why),
            Refused::BadForm(why) => super::layout::failure(StatusCode::BAD_REQUEST, &why),
        }
    }
}

/// The value of the session cookie of a request, if any.
pub(super) fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

/// A `Set-Cookie` value that starts a session: HttpOnly, SameSite=Strict, scoped to the
/// console, `Secure` when the service is reached over HTTPS.
pub(super) fn session_cookie_value(id: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={id}; Path={MOUNT}; HttpOnly; SameSite=Strict{secure}")
}

/// A `Set-Cookie` value that removes the session cookie.
pub(super) fn clear_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path={MOUNT}; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Whether the request came over HTTPS, as the service is configured or as a proxy in front
/// says.
pub(super) fn over_https(state: &ConsoleState, headers: &HeaderMap) -> bool {
    state.inner.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

/// The session's admin token if it is still active (neither revoked nor expired), for its
/// tenant.
async fn active_token(state: &ConsoleState, session: &Session) -> Option<TokenRecord> {
    match state.tokens().list().await {
        Ok(tokens) => tokens.into_iter().find(|token| {
            token.id == session.principal.token
                && token.tenant == session.principal.tenant
                && token.kind == TokenKind::Admin
                && token.is_active()
        }),
        Err(error) => {
            tracing::error!(%error, "cannot read the token store; console sessions are refused meanwhile");
            None
        }
    }
}

impl FromRequestParts<ConsoleState> for SignedIn {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, state: &ConsoleState) -> Result<Self, Self::Rejection> {
        let id = session_cookie(&parts.headers).ok_or(Refused::SignIn)?.to_owned();
        let session = state.sessions().touch(&id).ok_or(Refused::SignIn)?;
        let Some(token) = active_token(state, &session).await else {
            state.sessions().end(&id);
            return Err(Refused::SignIn);
        };
        let tenant = state
            .api()
            .engine()
            .tenant_in_log(&session.principal.tenant)
            .await
            .ok()
            .flatten()
            .ok_or(Refused::SignIn)?;
        Ok(SignedIn {
            id,
            session,
            tenant,
            token,
        })
    }
}

/// Whether `Origin` (or, without it, `Referer`) names the host the request was sent to. A
/// request with neither is refused: every browser that submits a form sends one.
pub(super) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|value| value.to_str().ok()) else {
        return false;
    };
    let source = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|value| value.to_str().ok());
    let Some(url) = source.and_then(|source| url::Url::parse(source).ok()) else {
        return false;
    };
    if !matches!(url.scheme(), "http" | "https") {
        return false;
    }
    let Some(source_host) = url.host_str() else {
        return false;
    };
    let authority = match url.port() {
        Some(port) => format!("{source_host}:{port}"),
        None => source_host.to_owned(),
    };
    authority.eq_ignore_ascii_case(host.trim())
}

#[derive(Deserialize)]
struct WithCsrf<T> {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    fields: T,
}

/// A form posted by a signed-in browser, from this origin, with the session's CSRF token.
pub(super) struct Posted<T> {
    /// Who posted it.
    pub(super) signed_in: SignedIn,
    /// The form's other fields.
    pub(super) form: T,
}

impl<T: DeserializeOwned + Send> FromRequest<ConsoleState> for Posted<T> {
    type Rejection = Refused;

    async fn from_request(request: Request, state: &ConsoleState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let signed_in = SignedIn::from_request_parts(&mut parts, state).await?;
        if !same_origin(&parts.headers) {
            return Err(Refused::Forbidden(
                "this form was not sent from the console's own pages",
            ));
        }
        let request = Request::from_parts(parts, body);
        let Form(posted) = Form::<WithCsrf<T>>::from_request(request, state)
            .await
            .map_err(|rejection| Refused::BadForm(rejection.body_text()))?;
        // In time that depends on the lengths only.
        if !bool::from(posted.csrf.as_bytes().ct_eq(signed_in.session.csrf.as_bytes())) {
            return Err(Refused::Forbidden(
                "the form's CSRF token is missing or not this session's",
            ));
        }
        Ok(Posted {
            signed_in,
            form: posted.fields,
        })
    }
}

/// A form with no fields but the CSRF token.
#[derive(Deserialize)]
pub(super) struct NoFields {}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn only_the_consoles_own_origin_may_post() {
        assert!(same_origin(&headers(&[
            ("host", "idp.example:8080"),
            ("origin", "http://idp.example:8080")
        ])));
        assert!(same_origin(&headers(&[
            ("host", "idp.example"),
            ("origin", "https://IDP.example")
        ])));
        assert!(same_origin(&headers(&[
            ("host", "idp.example"),
            ("referer", "https://idp.example/admin/tenant")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "idp.example"),
            ("origin", "https://evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "idp.example:8080"),
            ("origin", "http://idp.example")
        ])));
        assert!(!same_origin(&headers(&[("host", "idp.example"), ("origin", "null")])));
        assert!(!same_origin(&headers(&[("host", "idp.example")])));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let map = headers(&[("cookie", "a=1; idpsync_console=abc; b=2")]);
        assert_eq!(session_cookie(&map), Some("abc"));
        assert_eq!(session_cookie(&headers(&[("cookie", "a=1")])), None);
        assert!(session_cookie_value("x", true).ends_with("HttpOnly; SameSite=Strict; Secure"));
        assert!(!session_cookie_value("x", false).contains("Secure"));
    }
}
