//! The management API under [`MOUNT`]: what a management server and its operators use every
//! day. JSON in and out, admin-token authentication ([`auth`]), one error format ([`error`]).
//!
//! # Layout
//! - [`bindings`]: which groups a management-server resource references (role bindings
//!   included); [`roles`]: every user's management role, now or at a past moment;
//! - [`directory`]: users, groups, members and access, now or at a past moment;
//! - [`history`]: membership intervals and timelines;
//! - [`integrations`]: sync status, held snapshots, runs on request;
//! - [`changes`]: the change stream as Server-Sent Events; [`acks`]: the consumer's
//!   acknowledgements of the revocations it applied;
//! - [`audit`]: the offboarding audit of a user and the leavers' report;
//! - [`erase`]: erasure of a user's personal fields;
//! - [`tokens`]: the tenant's tokens: listed, created (with an optional expiry), revoked;
//! - [`wire`]: the request and response types, the API's own (camelCase JSON), apart from the
//!   engine's;
//! - [`doc`]: the OpenAPI document, generated from the handlers and the types.
//!
//! Every route is declared through [`Routes`], which also keeps the table of routes that a
//! test compares with the generated document, so the document cannot fall behind the code;
//! another compares the document with the committed `openapi.json`.

pub mod acks;
pub mod audit;
pub mod auth;
pub mod bindings;
pub mod changes;
pub mod directory;
pub mod doc;
pub mod erase;
pub mod error;
pub mod history;
pub mod integrations;
pub mod roles;
pub mod tokens;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use axum::handler::Handler;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::MethodRouter;
use axum::{Json, Router};
use idpsync_drivers::scheduler::SchedulerHandle;
use idpsync_engine::Engine;
use idpsync_engine::audit::BindingLogs;
use idpsync_scim::Authenticator;
use tokio::sync::watch;

use crate::token_book::TokenBook;
use auth::TenantAccess;

/// Where the API is mounted by `idpsync serve`.
pub const MOUNT: &str = "/api/v1";

/// What the API needs besides the engine and the admin tokens.
#[derive(Clone)]
pub struct ApiSettings {
    /// The integrations' schedule, when the service runs one.
    pub integrations: Option<SchedulerHandle>,
    /// The token store (the file or the shared one), to name tokens in audits; the admin
    /// console manages its tokens.
    pub tokens: Option<TokenBook>,
    /// How often an idle change stream sends a heartbeat comment.
    pub heartbeat: Duration,
    /// The data directory, where the signed checkpoints are kept: the admin console shows each
    /// tenant's newest when it is known.
    pub data_dir: Option<std::path::PathBuf>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            integrations: None,
            tokens: None,
            heartbeat: Duration::from_secs(15),
            data_dir: None,
        }
    }
}

/// The state every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Arc<Engine>,
    authenticator: Arc<dyn Authenticator>,
    settings: ApiSettings,
    /// Flips to `true` when the service stops, to end the change streams (they would
    /// otherwise keep a graceful shutdown waiting forever).
    closing: watch::Sender<bool>,
    /// Each tenant's binding changes, for audits.
    binding_logs: BindingLogs,
    /// Each tenant's rendered change-stream items, shared by its clients.
    render_caches: std::sync::Mutex<std::collections::HashMap<idpsync_storage::TenantId, Arc<changes::RenderCache>>>,
    /// Caps change-stream delivery while the writer is busy.
    governor: Arc<changes::Governor>,
    /// Where the change-stream clients' work runs.
    streams: changes::StreamRuntime,
}

impl ApiState {
    /// The API over `engine`, admitting the tokens `authenticator` accepts (for the service:
    /// [`crate::tokens::TokenAuthenticator::admin`]). Starts the thread the change streams run
    /// on; fails only if the thread cannot be started.
    pub fn new(
        engine: Arc<Engine>,
        authenticator: Arc<dyn Authenticator>,
        settings: ApiSettings,
    ) -> std::io::Result<ApiState> {
        let streams = changes::StreamRuntime::start()?;
        let governor = changes::Governor::start(Arc::clone(&engine), &streams);
        Ok(ApiState {
            inner: Arc::new(Inner {
                engine,
                authenticator,
                settings,
                closing: watch::channel(false).0,
                binding_logs: BindingLogs::default(),
                render_caches: std::sync::Mutex::default(),
                governor,
                streams,
            }),
        })
    }

    /// The authenticator of the API's admin tokens.
    pub(crate) fn authenticator(&self) -> Arc<dyn Authenticator> {
        Arc::clone(&self.inner.authenticator)
    }

    /// The engine the API serves.
    pub(crate) fn engine(&self) -> &Arc<Engine> {
        &self.inner.engine
    }

    /// What the API was given besides the engine and the authenticator.
    pub(crate) fn settings(&self) -> &ApiSettings {
        &self.inner.settings
    }

    /// Ends every change stream: call it when the service begins to stop.
    pub fn close_streams(&self) {
        self.inner.closing.send_replace(true);
    }

    fn closing(&self) -> watch::Receiver<bool> {
        self.inner.closing.subscribe()
    }

    fn render_cache(&self, tenant: &idpsync_engine::Tenant) -> Arc<changes::RenderCache> {
        let mut caches = self.inner.render_caches.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(
            caches
                .entry(tenant.id().clone())
                .or_insert_with(|| changes::RenderCache::start(tenant, &self.inner.streams)),
        )
    }
}

/// The router of the API, paths relative to [`MOUNT`]: nest it there.
pub fn router(state: ApiState) -> Router {
    routes()
        .router
        .route_layer(axum::middleware::from_fn(crate::metrics::track_api))
        .layer(axum::middleware::from_fn(error::log_failures))
        .with_state(state)
}

/// Routes, each recorded as `(method, path)` as it is added.
pub struct Routes {
    router: Router<ApiState>,
    table: Vec<(&'static str, &'static str)>,
}

macro_rules! method {
    ($name:ident) => {
        /// Adds a handler for this method on `path`.
        pub fn $name<H, T>(self, path: &'static str, handler: H) -> Routes
        where
            H: Handler<T, ApiState>,
            T: 'static,
        {
            self.add(stringify!($name), path, axum::routing::$name(handler))
        }
    };
}

impl Routes {
    fn new() -> Routes {
        Routes {
            router: Router::new(),
            table: Vec::new(),
        }
    }

    method!(get);
    method!(put);
    method!(post);
    method!(delete);

    fn add(mut self, method: &'static str, path: &'static str, route: MethodRouter<ApiState>) -> Routes {
        self.router = self.router.route(path, route);
        self.table.push((method, path));
        self
    }

    /// Every `(method, path)`, in the order added.
    pub fn table(&self) -> &[(&'static str, &'static str)] {
        &self.table
    }
}

/// Every route of the API.
pub fn routes() -> Routes {
    let routes = Routes::new()
        .get("/openapi.json", openapi)
        .get("/tenants/{tenant}", tenant_summary);
    let routes = bindings::routes(routes);
    let routes = directory::routes(routes);
    let routes = history::routes(routes);
    let routes = erase::routes(routes);
    let routes = audit::routes(routes);
    let routes = integrations::routes(routes);
    let routes = acks::routes(routes);
    let routes = tokens::routes(routes);
    let routes = roles::routes(routes);
    changes::routes(routes)
}

/// This document: the API described in OpenAPI 3.1.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "getOpenApiDocument",
    tag = "document",
    security(()),
    responses((status = 200, description = "This document, OpenAPI 3.1", content_type = "application/json"))
)]
async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], doc::document())
}

/// The tenant's log head and counts.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}",
    operation_id = "getTenant",
    tag = "tenants",
    params(doc::TenantPath),
    responses((status = 200, description = "The tenant's head and counts", body = wire::TenantSummary))
)]
async fn tenant_summary(access: TenantAccess) -> Json<wire::TenantSummary> {
    let state = access.tenant.state();
    Json(wire::TenantSummary {
        tenant: access.tenant.id().to_string(),
        seq: state.seq().0,
        recorded_at: wire::time_of(&state),
        users: state.user_count(),
        groups: state.group_count(),
        bindings: state.bindings().count(),
        held_syncs: access.tenant.held().len(),
        change_stream_subscribers: access.tenant.subscriber_count(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::{doc, routes};

    #[test]
    fn the_openapi_document_describes_exactly_the_routes() {
        let document: serde_json::Value = serde_json::from_str(doc::document()).expect("the document is JSON");
        let documented: BTreeSet<(String, String)> = document["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, operations)| {
                operations
                    .as_object()
                    .expect("operations")
                    .keys()
                    .map(move |method| (method.clone(), path.clone()))
            })
            .collect();
        let served: BTreeSet<(String, String)> = routes()
            .table()
            .iter()
            .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
            .collect();
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let unserved: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty(),
            "routes without a #[utoipa::path] in doc::ApiDoc: {undocumented:?}"
        );
        assert!(
            unserved.is_empty(),
            "the document describes routes that do not exist: {unserved:?}"
        );
        assert_eq!(document["servers"][0]["url"], super::MOUNT);
    }
}
