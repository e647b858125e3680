//! The HTTP server of `idpsync serve`: a function builds the router, another runs it on a bound
//! listener until a shutdown future resolves. Later parts mount SCIM and the management API on
//! the same router.

use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use idpsync_engine::Engine;
use serde::Serialize;
use tokio::net::TcpListener;

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

/// The service's router.
pub fn router(engine: Arc<Engine>) -> Router {
    Router::new().route("/healthz", get(healthz)).with_state(engine)
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets requests in flight finish.
pub async fn run(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}
