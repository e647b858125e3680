//! The HTTP server of `idpsync serve`: functions build the router, another runs it on a bound
//! listener until a shutdown future resolves. [`router`] serves `GET /healthz` and the SCIM
//! service provider at [`SCIM_MOUNT`]; [`service`] adds the management API at
//! [`crate::api::MOUNT`] and Prometheus metrics at `GET /metrics`.

use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::{Json, Router};
use idpsync_engine::Engine;
use idpsync_scim::Authenticator;
use serde::Serialize;
use tokio::net::TcpListener;

/// Where the SCIM service provider is mounted.
pub const SCIM_MOUNT: &str = "/scim/v2";

/// What `GET /healthz` answers.
#[derive(Serialize)]
struct Health {
    status: &'static str,
    tenants: Vec<TenantHealth>,
}

#[derive(Serialize)]
struct TenantHealth {
    id: String,
    seq: u64,
}

async fn healthz(State(engine): State<Arc<Engine>>) -> Json<Health> {
    let tenants = engine
        .heads()
        .into_iter()
        .map(|(id, seq)| TenantHealth {
            id: id.to_string(),
            seq: seq.0,
        })
        .collect();
    Json(Health { status: "ok", tenants })
}

/// The service's router: health, and SCIM for the tenants `authenticator`'s tokens name.
pub fn router(engine: Arc<Engine>, authenticator: Arc<dyn Authenticator>) -> Router {
    let scim = crate::scim_router(Arc::clone(&engine), authenticator, SCIM_MOUNT)
        .layer(axum::middleware::from_fn(crate::metrics::track_scim));
    Router::new()
        .route("/healthz", get(healthz))
        .with_state(engine)
        .nest(SCIM_MOUNT, scim)
}

/// The whole service: [`router`], the management API over `api`, and `GET /metrics` from
/// `metrics` (unauthenticated, like `/healthz`: keep the listener private or filter it).
pub fn service(
    engine: Arc<Engine>,
    authenticator: Arc<dyn Authenticator>,
    api: crate::api::ApiState,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
) -> Router {
    router(engine, authenticator)
        .nest(crate::api::MOUNT, crate::api::router(api))
        .route("/metrics", get(crate::metrics::render).with_state(metrics))
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets requests in flight finish.
///
/// Connections get `TCP_NODELAY`: every response is one small write that a client waits for,
/// so there is nothing for Nagle's algorithm to gain and a delayed ACK to lose.
pub async fn run(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = listener.tap_io(|stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on a connection");
        }
    });
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}
