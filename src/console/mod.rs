//! The admin console: server-rendered HTML pages at [`MOUNT`] for an operator of one tenant,
//! signed in with an admin token. Everything it does goes through the same engine calls, token
//! store and schedule as the management API.
//!
//! # Layout
//! - [`session`]: server-side sessions (the token's principal, never its secret);
//! - `signed_in`: the extractors that admit a request: a live session whose token is still
//!   active, and for forms the session's CSRF token and a same-origin `Origin`/`Referer`;
//! - `headers`: the security headers of every response;
//! - `layout`: the page frame, the style sheet, the small pieces pages share;
//! - `pages`: one module per page (sign-in, tenant and tokens, integrations, held syncs,
//!   audits, log status).
//!
//! The pages use no script at all: every action is a form, and the content security policy
//! allows none.

pub mod session;

mod headers;
mod layout;
mod pages;
mod signed_in;

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};

use crate::api::ApiState;
use crate::token_book::TokenBook;
use session::Sessions;

/// Where `idpsync serve` mounts the console.
pub const MOUNT: &str = "/admin";

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "idpsync_console";

/// What the console's handlers share. Cheap to clone.
#[derive(Clone)]
pub struct ConsoleState {
    inner: Arc<Inner>,
}

struct Inner {
    api: ApiState,
    tokens: TokenBook,
    sessions: Sessions,
    secure_cookies: bool,
}

impl ConsoleState {
    /// The console over the API's engine, admin tokens and schedule; `None` when the API has
    /// no token store (then nobody could be signed in, nor a session checked). The store may
    /// be the data directory's file or, for replicas, the shared one. With
    /// `secure_cookies`, the session cookie is marked `Secure` (the service is reached over
    /// HTTPS); it is also when a request says it came over HTTPS (`X-Forwarded-Proto`).
    pub fn new(api: ApiState, secure_cookies: bool) -> Option<ConsoleState> {
        let tokens = api.settings().tokens.clone()?;
        Some(ConsoleState {
            inner: Arc::new(Inner {
                api,
                tokens,
                sessions: Sessions::default(),
                secure_cookies,
            }),
        })
    }

    fn api(&self) -> &ApiState {
        &self.inner.api
    }

    fn tokens(&self) -> &TokenBook {
        &self.inner.tokens
    }

    fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }
}

/// The console's router, its paths under [`MOUNT`] (`/admin` and `/admin/` both open it):
/// merge it into the service's.
pub fn router(state: ConsoleState) -> Router {
    let path = |tail: &str| format!("{MOUNT}{tail}");
    Router::new()
        .route(MOUNT, get(pages::home))
        .route(&path("/"), get(pages::home))
        .route(&path("/assets/console.css"), get(layout::style_sheet))
        .route(
            &path("/sign-in"),
            get(pages::sign_in::form).post(pages::sign_in::submit),
        )
        .route(&path("/sign-out"), post(pages::sign_in::sign_out))
        .route(&path("/tenant"), get(pages::tenant::show))
        .route(&path("/tokens"), post(pages::tenant::create_token))
        .route(&path("/tokens/{id}/revoke"), post(pages::tenant::revoke_token))
        .route(&path("/integrations"), get(pages::integrations::list))
        .route(&path("/integrations/{name}/sync"), post(pages::integrations::sync_now))
        .route(&path("/integrations/{name}/held"), get(pages::held::show))
        .route(&path("/integrations/{name}/held/confirm"), post(pages::held::confirm))
        .route(&path("/integrations/{name}/held/reject"), post(pages::held::reject))
        .route(&path("/audit"), get(pages::audit::index))
        .route(&path("/audit/user"), get(pages::audit::user))
        .route(&path("/audit/leavers"), get(pages::audit::leavers))
        .route(&path("/log"), get(pages::log::show))
        .route(&path("/log/verify"), post(pages::log::verify))
        .layer(middleware::from_fn(headers::secure))
        .with_state(state)
}
