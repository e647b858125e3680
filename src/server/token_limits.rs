//! Requests in progress per token: one client (a misconfigured SCIM connector, a script in a
//! loop) cannot take every worker and every writer slot from the others.
//!
//! Each token has [`HttpLimits::per_token_concurrency`] permits. A request beyond them waits up
//! to [`HttpLimits::per_token_queue_wait`] for one, then is answered 429 with `Retry-After`, in
//! the error format of the router it came to. Requests without a valid token pass through
//! untouched: the router answers them 401 at once, without touching any tenant.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use idpsync_engine::ids::TokenId;
use idpsync_scim::Authenticator;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::guarded_body::GuardedBody;

/// The per-token permits of one router.
#[derive(Clone)]
pub(super) struct TokenLimits {
    authenticator: Arc<dyn Authenticator>,
    per_token: usize,
    queue_wait: Duration,
    /// Bounded by the number of tokens the authenticator accepts: an entry is made only for a
    /// valid token.
    permits: Arc<Mutex<HashMap<TokenId, Arc<Semaphore>>>>,
    refuse: fn(String) -> Response,
}

/// How long a refused client is told to wait.
const RETRY_AFTER_SECONDS: u32 = 1;

impl TokenLimits {
    /// Limits for the tokens `authenticator` accepts; `refuse` renders the 429.
    pub(super) fn new(
        authenticator: Arc<dyn Authenticator>,
        per_token: usize,
        queue_wait: Duration,
        refuse: fn(String) -> Response,
    ) -> TokenLimits {
        TokenLimits {
            authenticator,
            per_token: per_token.max(1),
            queue_wait,
            permits: Arc::default(),
            refuse,
        }
    }

    fn semaphore(&self, token: TokenId) -> Arc<Semaphore> {
        let mut permits = self.permits.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(
            permits
                .entry(token)
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_token))),
        )
    }

    /// The semaphore of the token whose secret a request bears; `None` without a valid
    /// token.
    async fn token_semaphore(&self, secret: &str) -> Option<Arc<Semaphore>> {
        let principal = self.authenticator.authenticate(secret).await?;
        Some(self.semaphore(principal.token))
    }

    async fn admit(&self, semaphore: Arc<Semaphore>) -> Result<OwnedSemaphorePermit, Response> {
        match tokio::time::timeout(self.queue_wait, semaphore.acquire_owned()).await {
            Ok(permit) => Ok(permit.expect("the semaphore is never closed")),
            Err(_) => {
                metrics::counter!("idpsync_http_token_limited_total").increment(1);
                Err((self.refuse)(format!(
                    "this token already has {} requests in progress; retry after {RETRY_AFTER_SECONDS} s",
                    self.per_token
                )))
            }
        }
    }
}

/// Middleware: holds one of the token's permits for the whole request, response included.
pub(super) async fn limit(
    axum::extract::State(limits): axum::extract::State<TokenLimits>,
    request: Request,
    next: Next,
) -> Response {
    // Owned: a request's body is not `Sync`, so no reference to the request may be held
    // across the check.
    let semaphore = match bearer(&request).map(str::to_owned) {
        Some(secret) => limits.token_semaphore(&secret).await,
        None => None,
    };
    let Some(semaphore) = semaphore else {
        return next.run(request).await;
    };
    match limits.admit(semaphore).await {
        Ok(permit) => next.run(request).await.map(|body| GuardedBody::wrap(body, permit)),
        Err(refused) => refused,
    }
}

/// The SCIM router's 429.
pub(super) fn refuse_scim(detail: String) -> Response {
    idpsync_scim::too_many_requests(detail, RETRY_AFTER_SECONDS)
}

/// The management API's 429.
pub(super) fn refuse_api(message: String) -> Response {
    crate::api::error::ApiError::too_many_requests(message, RETRY_AFTER_SECONDS).into_response()
}

fn bearer(request: &Request) -> Option<&str> {
    let value = request.headers().get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, secret) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| secret.trim())
}
