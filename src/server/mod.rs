//! The HTTP server of `idpsync serve`: functions build the router, another runs it on a bound
//! listener until a shutdown future resolves. [`router`] serves health (`GET /livez`, and
//! readiness at `GET /readyz` and `GET /healthz`) and the SCIM
//! service provider at [`SCIM_MOUNT`]; [`service`] adds the management API at
//! [`crate::api::MOUNT`] and Prometheus metrics at `GET /metrics`. Both are bounded by
//! [`HttpLimits`].
//!
//! # Layout
//! - `connections`: accepting connections under a cap, and the timeouts that close what slow
//!   or idle clients hold;
//! - `token_limits`: requests in progress per token;
//! - `guarded_body`: a response body that holds a guard until it is sent.

mod connections;
mod guarded_body;
mod token_limits;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use idpsync_engine::Engine;
use idpsync_scim::Authenticator;
use idpsync_storage::StoreHealth;
use serde::Serialize;
use tokio::net::TcpListener;

use token_limits::TokenLimits;

/// How the service is bounded: the HTTP server's limits and the SCIM service provider's.
#[derive(Clone, Debug, Default)]
pub struct ServiceSettings {
    /// Connections, timeouts, requests in progress per token.
    pub http: HttpLimits,
    /// Bodies, bulk, filters, pages and scans of the SCIM service provider (its mount path is
    /// [`SCIM_MOUNT`] whatever this says).
    pub scim: idpsync_scim::Settings,
}

/// What one client may hold of the server: connections, time and requests in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Once the first byte of a request head arrives, the whole head must arrive within this.
    pub header_read_timeout: Duration,
    /// Once a request head is in, its body must arrive in full within this.
    pub request_body_timeout: Duration,
    /// A connection with no request in progress that receives nothing for this long is closed.
    pub idle_timeout: Duration,
    /// The most connections open at once; at the cap, new ones wait in the listen backlog.
    pub connections_max: usize,
    /// The most requests one token may have in progress at once (a change stream counts for
    /// as long as it runs).
    pub per_token_concurrency: usize,
    /// How long a request beyond that waits for its turn before it is answered 429.
    pub per_token_queue_wait: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_read_timeout: Duration::from_secs(10),
            request_body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            connections_max: 4_096,
            per_token_concurrency: 64,
            per_token_queue_wait: Duration::from_secs(5),
        }
    }
}

/// Where the SCIM service provider is mounted.
pub const SCIM_MOUNT: &str = "/scim/v2";

/// What `GET /healthz` and `GET /readyz` answer: whether the service can take writes. It names
/// no tenant: the endpoints are open to anyone who can reach the port.
#[derive(Serialize)]
struct Readiness {
    /// `ready` or `not-ready`.
    status: &'static str,
    /// Why not, when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// Since when, when not (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    since: Option<String>,
    /// What needs a person's attention without stopping writes; counts only, over every
    /// tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    alerts: Option<Alerts>,
}

/// Alerts in the readiness details.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Alerts {
    /// Revocations the change stream's consumer has not acknowledged within the threshold.
    overdue_revocations: u64,
    /// How long the oldest of them has waited, in seconds.
    oldest_overdue_seconds: u64,
}

impl Alerts {
    /// The alerts as of now, if any.
    fn of(engine: &Engine) -> Option<Alerts> {
        let now = idpsync_storage::Timestamp::now();
        let mut alerts = Alerts {
            overdue_revocations: 0,
            oldest_overdue_seconds: 0,
        };
        for tenant in engine.loaded_tenants() {
            let overdue = tenant.overdue_revocations(now);
            alerts.overdue_revocations += overdue.count;
            if let Some(oldest) = overdue.oldest {
                let waited = u64::try_from((now.0 - oldest.0) / 1_000_000).unwrap_or(0);
                alerts.oldest_overdue_seconds = alerts.oldest_overdue_seconds.max(waited);
            }
        }
        (alerts.overdue_revocations > 0).then_some(alerts)
    }
}

/// Readiness: 200 while the log takes writes; 503 with the reason while it cannot (a full disk,
/// an unreachable database), so that a load balancer sends writes elsewhere meanwhile. Either
/// way, `alerts` counts what needs a person (revocations the consumer has not acknowledged in
/// time), without naming tenants or users.
async fn readiness(State(engine): State<Arc<Engine>>) -> (StatusCode, Json<Readiness>) {
    let alerts = Alerts::of(&engine);
    match engine.store().health() {
        StoreHealth::Ready => (
            StatusCode::OK,
            Json(Readiness {
                status: "ready",
                reason: None,
                since: None,
                alerts,
            }),
        ),
        StoreHealth::Unavailable { since, reason } => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Readiness {
                status: "not-ready",
                reason: Some(reason),
                since: Some(since.to_rfc3339()),
                alerts,
            }),
        ),
    }
}

/// Liveness: 200 while the process serves requests at all.
async fn liveness() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "alive"}))
}

/// The service's router: health, and SCIM for the tenants `authenticator`'s tokens name, with
/// each token's requests in progress bounded as `settings` say.
pub fn router(engine: Arc<Engine>, authenticator: Arc<dyn Authenticator>, settings: &ServiceSettings) -> Router {
    let limits = &settings.http;
    let per_token = TokenLimits::new(
        Arc::clone(&authenticator),
        limits.per_token_concurrency,
        limits.per_token_queue_wait,
        token_limits::refuse_scim,
    );
    let scim_settings = idpsync_scim::Settings {
        mount_path: SCIM_MOUNT.to_owned(),
        ..settings.scim.clone()
    };
    let scim = idpsync_scim::router(Arc::clone(&engine), authenticator, scim_settings)
        .layer(axum::middleware::from_fn_with_state(per_token, token_limits::limit))
        .layer(axum::middleware::from_fn(crate::metrics::track_scim));
    Router::new()
        .route("/healthz", get(readiness))
        .route("/readyz", get(readiness))
        .route("/livez", get(liveness))
        .with_state(engine)
        .nest(SCIM_MOUNT, scim)
}

/// The whole service: [`router`], the management API over `api`, the admin console at
/// [`crate::console::MOUNT`] (when `api` has a token store), and, given an exposition (such as the
/// one `idpsync::metrics::install` returns), `GET /metrics` (unauthenticated, like `/healthz`: keep the
/// listener private or filter it).
pub fn service(
    engine: Arc<Engine>,
    authenticator: Arc<dyn Authenticator>,
    api: crate::api::ApiState,
    metrics: impl Into<Option<crate::metrics::Exposition>>,
    settings: &ServiceSettings,
) -> Router {
    let limits = &settings.http;
    let per_token = TokenLimits::new(
        api.authenticator(),
        limits.per_token_concurrency,
        limits.per_token_queue_wait,
        token_limits::refuse_api,
    );
    let secure_cookies = settings
        .scim
        .base_url
        .as_deref()
        .is_some_and(|base| base.starts_with("https://"));
    let console = crate::console::ConsoleState::new(api.clone(), secure_cookies);
    let api = crate::api::router(api).layer(axum::middleware::from_fn_with_state(per_token, token_limits::limit));
    let mut service = router(engine, authenticator, settings).nest(crate::api::MOUNT, api);
    if let Some(metrics) = metrics.into() {
        service = service.route("/metrics", get(crate::metrics::render).with_state(metrics));
    }
    match console {
        Some(console) => service.merge(crate::console::router(console)),
        None => service,
    }
}

/// Raises the process's open-files limit to its hard limit (each connection is a file) and
/// returns the limit now in force, `None` when unlimited.
pub fn raise_open_files_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if let (Some(current), Some(maximum)) = (limit.current, limit.maximum)
        && current < maximum
    {
        limit.current = Some(maximum);
        if let Err(error) = setrlimit(Resource::Nofile, limit) {
            tracing::debug!(%error, "cannot raise the open-files limit");
        }
    }
    getrlimit(Resource::Nofile).current
}

/// Serves `router` on `listener` within `limits` until `shutdown` resolves, then stops
/// accepting, lets requests in flight finish and closes idle connections.
///
/// Connections get `TCP_NODELAY`: every response is one small write that a client waits for,
/// so there is nothing for Nagle's algorithm to gain and a delayed ACK to lose.
pub async fn run(
    listener: TcpListener,
    router: Router,
    limits: &HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    connections::serve(listener, router, *limits, shutdown).await
}
