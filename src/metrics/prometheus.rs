//! The Prometheus exporter `idpsync serve` installs as the process's recorder (the crate's
//! `prometheus` feature): histogram buckets fitted to the service's metrics, `# HELP` text,
//! `idpsync_build_info`.

use std::sync::Mutex;

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

use super::Exposition;

/// Histogram buckets in seconds, from 100 µs to 30 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Buckets of the time from a revocation to its acknowledgement by the consumer, in seconds:
/// from a live consumer's fraction of a second to an hour's outage.
const ACK_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];
/// Buckets of the time from the IdP's own change to the revocation it caused, in seconds: from
/// a SCIM-fast second to a day of polls that could not run.
const IDP_CHANGE_BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0,
];
/// Buckets of the change-stream lag, in events.
const LAG_BUCKETS: &[f64] = &[1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0, 1_000_000.0];

static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// Installs the process-wide Prometheus recorder (once; later calls return the same one) and
/// returns what `GET /metrics` answers with.
pub fn install() -> Result<Exposition, BuildError> {
    // Held across the installation, so that two callers never both try to install.
    let mut installed = HANDLE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(handle) = &*installed {
        return Ok(exposition(handle.clone()));
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full("idpsync_revocation_ack_seconds".to_owned()), ACK_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full("idpsync_idp_change_to_revocation_seconds".to_owned()),
            IDP_CHANGE_BUCKETS,
        )?
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full("idpsync_change_stream_lag_events".to_owned()),
            LAG_BUCKETS,
        )?
        .install_recorder()?;
    *installed = Some(handle.clone());
    super::describe();
    metrics::gauge!("idpsync_build_info", "version" => env!("CARGO_PKG_VERSION"), "commit" => env!("IDPSYNC_COMMIT"))
        .set(1.0);
    Ok(exposition(handle))
}

fn exposition(handle: PrometheusHandle) -> Exposition {
    Exposition::new(move || handle.render())
}
