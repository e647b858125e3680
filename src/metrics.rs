//! Metrics: the request middleware of the SCIM service and the management API, the `# HELP`
//! text of every metric, and `GET /metrics` over an [`Exposition`].
//!
//! The engine and the drivers' scheduler record through the `metrics` facade (events
//! appended, append and command latency, held syncs, change-stream subscribers and lag, sync
//! runs and their durations, restarts of integration tasks after a panic); this module adds
//! requests by route and status. Which recorder keeps them is the process's choice: `serve`
//! installs the Prometheus exporter (`metrics::prometheus`, the crate's `prometheus` feature,
//! part of `cli`); an embedding server may install its own recorder and, if it wants the service's
//! `/metrics`, hand its text over as an [`Exposition`].

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

#[cfg(feature = "prometheus")]
pub mod prometheus;
#[cfg(feature = "prometheus")]
pub use prometheus::install;

/// What `GET /metrics` answers: the current text of the process's recorder.
#[derive(Clone)]
pub struct Exposition {
    render: Arc<dyn Fn() -> String + Send + Sync>,
}

impl Exposition {
    /// An exposition whose text `render` makes on each request (in the Prometheus text
    /// format: the response says so).
    pub fn new(render: impl Fn() -> String + Send + Sync + 'static) -> Exposition {
        Exposition {
            render: Arc::new(render),
        }
    }
}

/// Counters: name and `# HELP` text.
const COUNTERS: &[(&str, &str)] = &[
    (
        "idpsync_api_requests_total",
        "Management API requests, by route template, method and status.",
    ),
    (
        "idpsync_scim_requests_total",
        "SCIM requests, by route, method and status.",
    ),
    ("idpsync_events_appended_total", "Records appended to the tenant's log."),
    (
        "idpsync_http_connections_closed_total",
        "HTTP connections the server closed, by reason (limit, header timeout, body timeout, idle).",
    ),
    (
        "idpsync_http_token_limited_total",
        "Requests refused with 429 because their token had too many in flight.",
    ),
    (
        "idpsync_sync_runs_total",
        "Finished sync runs of an integration, by outcome (applied, held, failed).",
    ),
    (
        "idpsync_sync_task_restarts_total",
        "Restarts of an integration's sync task after it panicked.",
    ),
];

/// Gauges: name and `# HELP` text.
const GAUGES: &[(&str, &str)] = &[
    (
        "idpsync_build_info",
        "The build: version and commit, as labels; always 1.",
    ),
    (
        "idpsync_api_sse_clients",
        "Change-stream (SSE) clients connected, per tenant.",
    ),
    (
        "idpsync_change_stream_subscribers",
        "Subscribers of the tenant's change feed inside the engine.",
    ),
    (
        "idpsync_held_syncs",
        "Syncs the mass-deactivation guard holds, waiting for an operator, per tenant.",
    ),
    ("idpsync_http_connections", "HTTP connections open."),
    (
        "idpsync_log_head_seq",
        "The seq of the newest record in the tenant's log (tenants loaded since the start).",
    ),
    (
        "idpsync_tenants_loaded",
        "Tenants loaded since the start (tenants load on first use).",
    ),
    (
        "idpsync_checkpoint_last_timestamp_seconds",
        "When the tenant's newest checkpoint was signed (Unix time); its age is time() minus this.",
    ),
    (
        "idpsync_sync_last_success_timestamp_seconds",
        "When the integration's last sync run was applied (Unix time).",
    ),
];

/// Histograms: name and `# HELP` text.
const HISTOGRAMS: &[(&str, &str)] = &[
    (
        "idpsync_api_request_seconds",
        "Management API request latency, by route template and method.",
    ),
    (
        "idpsync_scim_request_seconds",
        "SCIM request latency, by route and method.",
    ),
    (
        "idpsync_append_seconds",
        "Time to make one batch of records durable in the log store.",
    ),
    (
        "idpsync_command_seconds",
        "Time from a command's submission to its durable answer, by outcome.",
    ),
    (
        "idpsync_change_stream_lag_events",
        "How far behind the log's head a change-stream subscriber reads, in records.",
    ),
    (
        "idpsync_sync_seconds",
        "Duration of an integration's sync run, by outcome.",
    ),
    (
        "idpsync_idp_change_to_revocation_seconds",
        "Time from a change the IdP dated (its change feed, a user's status change) to the access it revoked.",
    ),
];

/// Gives every metric the service records its `# HELP` text, in the recorder installed now.
pub fn describe() {
    for &(name, help) in COUNTERS {
        metrics::describe_counter!(name, help);
    }
    for &(name, help) in GAUGES {
        metrics::describe_gauge!(name, help);
    }
    for &(name, help) in HISTOGRAMS {
        metrics::describe_histogram!(name, help);
    }
}

/// `GET /metrics`: everything recorded, in the Prometheus text format.
pub async fn render(exposition: axum::extract::State<Exposition>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        (exposition.render)(),
    )
}

/// The SCIM route of a path below the mount point, with ids replaced, so that the label
/// has a bounded set of values: `/Users/{id}`, `/Groups`, `/.search`, `other`.
pub fn scim_route(path: &str) -> &'static str {
    let mut segments = path.trim_matches('/').split('/');
    let first = segments.next().unwrap_or_default();
    let has_id = segments.next().is_some_and(|segment| !segment.is_empty());
    match (first, has_id) {
        ("Users", false) => "/Users",
        ("Users", true) => "/Users/{id}",
        ("Groups", false) => "/Groups",
        ("Groups", true) => "/Groups/{id}",
        ("Bulk", _) => "/Bulk",
        (".search", _) => "/.search",
        ("Me", _) => "/Me",
        ("ServiceProviderConfig", _) => "/ServiceProviderConfig",
        ("ResourceTypes", _) => "/ResourceTypes",
        ("Schemas", _) => "/Schemas",
        _ => "other",
    }
}

/// The method label: one of the methods the service answers, or `other`, so that a client
/// inventing methods cannot grow the metrics without bound.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Middleware around the SCIM router: `idpsync_scim_requests_total{route, method, status}`
/// and `idpsync_scim_request_seconds{route, method}`.
pub async fn track_scim(request: Request, next: Next) -> Response {
    let route = scim_route(request.uri().path());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("idpsync_scim_requests_total", "route" => route, "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("idpsync_scim_request_seconds", "route" => route, "method" => method).record(started.elapsed());
    response
}

/// Middleware on the API's routes: `idpsync_api_requests_total{route, method, status}` and
/// `idpsync_api_request_seconds{route, method}`, the route being the matched template.
pub async fn track_api(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_owned(), |path| path.as_str().to_owned());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("idpsync_api_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("idpsync_api_request_seconds", "route" => route, "method" => method).record(started.elapsed());
    response
}

#[cfg(test)]
mod tests {
    use super::scim_route;

    #[test]
    fn scim_routes_have_bounded_labels() {
        assert_eq!(scim_route("/Users"), "/Users");
        assert_eq!(scim_route("/Users/"), "/Users");
        assert_eq!(scim_route("/Users/0194-abc"), "/Users/{id}");
        assert_eq!(scim_route("/Groups/x/y"), "/Groups/{id}");
        assert_eq!(scim_route("/Schemas/urn:x"), "/Schemas");
        assert_eq!(scim_route("/whatever/123"), "other");
    }
}
