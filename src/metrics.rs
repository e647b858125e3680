//! Prometheus metrics: the recorder `serve` installs, `GET /metrics`, and the request
//! middleware of the SCIM service and the management API.
//!
//! The engine and the drivers' scheduler record through the `metrics` facade (events
//! appended, append and command latency, held syncs, change-stream subscribers and lag, sync
//! runs and their durations, restarts of integration tasks after a panic); this module adds
//! requests by route and status, and renders it all in the Prometheus text format.

use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// Histogram buckets in seconds, from 100 µs to 30 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Buckets of the time from a revocation to its acknowledgement by the consumer, in seconds:
/// from a live consumer's fraction of a second to an hour's outage.
const ACK_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];
/// Buckets of the change-stream lag, in events.
const LAG_BUCKETS: &[f64] = &[1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0, 1_000_000.0];

static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// Installs the process-wide Prometheus recorder (once; later calls return the same handle).
pub fn install() -> Result<PrometheusHandle, BuildError> {
    // Held across the installation, so that two callers never both try to install.
    let mut installed = HANDLE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(handle) = &*installed {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full("idpsync_revocation_ack_seconds".to_owned()), ACK_BUCKETS)?
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full("idpsync_change_stream_lag_events".to_owned()),
            LAG_BUCKETS,
        )?
        .install_recorder()?;
    *installed = Some(handle.clone());
    describe();
    metrics::gauge!("idpsync_build_info", "version" => env!("CARGO_PKG_VERSION"), "commit" => env!("IDPSYNC_COMMIT"))
        .set(1.0);
    Ok(handle)
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
];

/// Gives every metric the service records its `# HELP` text.
fn describe() {
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
pub async fn render(handle: axum::extract::State<PrometheusHandle>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
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
