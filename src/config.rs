//! The configuration file (TOML) and its environment overrides.
//!
//! Precedence, highest first: command-line flags, environment variables (`IDPSYNC_DATA_DIR`,
//! `IDPSYNC_LISTEN`, `IDPSYNC_LOG_FORMAT`, `IDPSYNC_STORAGE`), the file given by `--config`,
//! built-in defaults.
//! Unknown keys are errors, so a misspelt setting never silently does nothing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use idpsync_drivers::IntegrationConfig;
use idpsync_engine::TenantSettings;
use idpsync_engine::reconcile::{MissingUsers, ReconcilePolicy};
use idpsync_storage::TenantId;
use serde::Deserialize;

/// The data directory when nothing else says.
pub const DEFAULT_DATA_DIR: &str = "./idpsync-data";
/// The listen address when nothing else says: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The whole configuration file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the files live that are not in the log store (tokens, the checkpoint key,
    /// cursors), and the log itself by default (redb).
    pub data_dir: Option<PathBuf>,
    /// Which log store: `redb:<dir>` or `postgres://…` (default: redb in the data directory).
    pub storage: Option<crate::storage_location::StorageLocation>,
    /// The address `serve` listens on.
    pub listen: Option<SocketAddr>,
    /// The address clients reach the service at (through a proxy): SCIM's absolute URLs are
    /// built on it instead of the request's `Host` and `X-Forwarded-Proto`.
    pub public_url: Option<crate::public_url::PublicUrl>,
    /// `text` or `json` log lines.
    pub log_format: Option<LogFormat>,
    /// Engine tuning.
    #[serde(default)]
    pub engine: EngineConfig,
    /// Tenants to create at start-up (`default` always exists).
    #[serde(default, rename = "tenant")]
    pub tenants: Vec<TenantConfig>,
    /// When `serve` signs checkpoints.
    #[serde(default)]
    pub checkpoints: CheckpointsConfig,
    /// What one client may hold of the HTTP server.
    #[serde(default)]
    pub http: HttpConfig,
    /// The SCIM service provider's bounds.
    #[serde(default)]
    pub scim: ScimConfig,
}

/// `[scim]`: the bounds of the SCIM service provider, as its discovery documents advertise them.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScimConfig {
    /// The largest request body, in bytes (413 above).
    pub body_len_max: usize,
    /// `bulk.maxOperations`.
    pub bulk_operations_max: usize,
    /// `bulk.maxPayloadSize`, in bytes.
    pub bulk_payload_len_max: usize,
    /// `filter.maxResults`: the most resources a filter may match or a `sortBy` order, and the
    /// largest page.
    pub filter_results_max: usize,
    /// The page size when a list request has no `count`.
    pub page_size_default: usize,
    /// List requests that scan (a filter no index answers, or a `sortBy`) running at once.
    pub scans_concurrent_max: usize,
    /// How long a scan beyond that waits before it is answered 503 (`1s`).
    #[serde(with = "humantime_serde_duration")]
    pub scan_queue_wait: std::time::Duration,
    /// The most resources one scan may examine (400 `tooMany` beyond).
    pub scan_resources_max: usize,
    /// The longest one scan may run (`2s`; 400 `tooMany` beyond).
    #[serde(with = "humantime_serde_duration")]
    pub scan_time_max: std::time::Duration,
}

impl Default for ScimConfig {
    fn default() -> Self {
        let defaults = idpsync_scim::Settings::default();
        ScimConfig {
            body_len_max: defaults.body_len_max,
            bulk_operations_max: defaults.bulk_operations_max,
            bulk_payload_len_max: defaults.bulk_payload_len_max,
            filter_results_max: defaults.filter_results_max,
            page_size_default: defaults.page_size_default,
            scans_concurrent_max: defaults.scans_concurrent_max,
            scan_queue_wait: defaults.scan_queue_wait,
            scan_resources_max: defaults.scan_resources_max,
            scan_time_max: defaults.scan_time_max,
        }
    }
}

impl ScimConfig {
    /// The SCIM service provider's settings (its mount path is the server's).
    pub fn settings(&self) -> idpsync_scim::Settings {
        idpsync_scim::Settings {
            body_len_max: self.body_len_max,
            bulk_operations_max: self.bulk_operations_max,
            bulk_payload_len_max: self.bulk_payload_len_max,
            filter_results_max: self.filter_results_max,
            page_size_default: self.page_size_default,
            scans_concurrent_max: self.scans_concurrent_max,
            scan_queue_wait: self.scan_queue_wait,
            scan_resources_max: self.scan_resources_max,
            scan_time_max: self.scan_time_max,
            ..idpsync_scim::Settings::default()
        }
    }
}

/// `[http]`: timeouts, the connection cap and requests in progress per token.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Once a request head starts arriving, all of it must arrive within this (`10s`).
    #[serde(with = "humantime_serde_duration")]
    pub header_read_timeout: std::time::Duration,
    /// Once a head is in, the body must arrive in full within this (`30s`).
    #[serde(with = "humantime_serde_duration")]
    pub request_body_timeout: std::time::Duration,
    /// A connection with no request in progress is closed after this long without data (`60s`).
    #[serde(with = "humantime_serde_duration")]
    pub idle_timeout: std::time::Duration,
    /// The most connections open at once.
    pub connections_max: usize,
    /// The most requests one token may have in progress at once.
    pub per_token_concurrency: usize,
    /// How long a request beyond that waits before it is answered 429 (`5s`).
    #[serde(with = "humantime_serde_duration")]
    pub per_token_queue_wait: std::time::Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        let limits = crate::server::HttpLimits::default();
        HttpConfig {
            header_read_timeout: limits.header_read_timeout,
            request_body_timeout: limits.request_body_timeout,
            idle_timeout: limits.idle_timeout,
            connections_max: limits.connections_max,
            per_token_concurrency: limits.per_token_concurrency,
            per_token_queue_wait: limits.per_token_queue_wait,
        }
    }
}

impl HttpConfig {
    /// The server's limits.
    pub fn limits(&self) -> crate::server::HttpLimits {
        crate::server::HttpLimits {
            header_read_timeout: self.header_read_timeout,
            request_body_timeout: self.request_body_timeout,
            idle_timeout: self.idle_timeout,
            connections_max: self.connections_max,
            per_token_concurrency: self.per_token_concurrency,
            per_token_queue_wait: self.per_token_queue_wait,
        }
    }
}

/// `[checkpoints]`: sign one per tenant every `every_events` records or every `every`,
/// whichever comes first (and only when the log moved).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointsConfig {
    /// Records between checkpoints.
    pub every_events: u64,
    /// Time between checkpoints, such as `15m`.
    #[serde(with = "humantime_serde_duration")]
    pub every: std::time::Duration,
}

impl Default for CheckpointsConfig {
    fn default() -> Self {
        let policy = crate::checkpoint::signer::CheckpointPolicy::default();
        CheckpointsConfig {
            every_events: policy.every_events,
            every: policy.every,
        }
    }
}

impl CheckpointsConfig {
    /// The signer's policy.
    pub fn policy(&self) -> crate::checkpoint::signer::CheckpointPolicy {
        crate::checkpoint::signer::CheckpointPolicy {
            every_events: self.every_events,
            every: self.every,
        }
    }
}

/// A duration written as `humantime` text (`90s`, `15m`, `1h`).
mod humantime_serde_duration {
    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<std::time::Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map_err(|error| serde::de::Error::custom(format!("{text:?}: {error}")))
    }
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[engine]`: how tenants keep snapshots and guard reconciles.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Store a snapshot every this many records.
    pub snapshot_every: u64,
    /// Keep at most this many stored snapshots per tenant, spread over the log.
    pub snapshots_kept: usize,
    /// Keep an in-memory checkpoint every this many records.
    pub checkpoint_every: u64,
    /// Keep at most this many in-memory checkpoints.
    pub checkpoints_max: usize,
    /// Hold a sync that, with its integration's runs within `hold_window`, would take
    /// access from more than this percentage of the integration's users.
    pub hold_above_percent: f64,
    /// How far back a sync's removals add up with its integration's earlier runs (`24h`).
    #[serde(with = "humantime_serde_duration")]
    pub hold_window: std::time::Duration,
    /// A held sync older than this can no longer be confirmed (`24h`).
    #[serde(with = "humantime_serde_duration")]
    pub hold_expires_after: std::time::Duration,
    /// What a sync does with users its IdP no longer lists: `delete` or `deactivate`.
    pub missing_users: MissingUsersConfig,
    /// A revocation the change stream's consumer has not acknowledged within this long is
    /// overdue: an alert in `/healthz`, a metric and a finding of the leavers' report (`5m`).
    #[serde(with = "humantime_serde_duration")]
    pub revocation_ack_within: std::time::Duration,
}

/// What happens to users an IdP no longer lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MissingUsersConfig {
    /// Delete them.
    Delete,
    /// Deactivate them.
    Deactivate,
}

impl Default for EngineConfig {
    fn default() -> Self {
        let defaults = TenantSettings::default();
        EngineConfig {
            snapshot_every: defaults.snapshot_every,
            snapshots_kept: defaults.snapshots_kept,
            checkpoint_every: defaults.checkpoint_every,
            checkpoints_max: defaults.checkpoints_max,
            hold_above_percent: f64::from(defaults.policy.hold_above_permille) / 10.0,
            hold_window: defaults.policy.hold_window,
            hold_expires_after: defaults.policy.hold_expires_after,
            missing_users: MissingUsersConfig::Delete,
            revocation_ack_within: defaults.revocation_ack_within,
        }
    }
}

/// `[[tenant]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// The tenant's name.
    pub id: TenantId,
    /// `[[tenant.integration]]`: the IdPs this tenant pulls from.
    #[serde(default, rename = "integration")]
    pub integrations: Vec<IntegrationConfig>,
}

/// A configuration problem, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("invalid configuration in {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line.
        message: String,
    },
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses and checks configuration text.
    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        if !(0.0..=100.0).contains(&config.engine.hold_above_percent) {
            return Err(format!(
                "engine.hold_above_percent must be between 0 and 100, not {}",
                config.engine.hold_above_percent
            ));
        }
        for tenant in &config.tenants {
            let mut names = std::collections::BTreeSet::new();
            for integration in &tenant.integrations {
                if !names.insert(&integration.name) {
                    return Err(format!(
                        "tenant `{}`: integration name `{}` is used twice",
                        tenant.id, integration.name
                    ));
                }
            }
        }
        for (key, value) in [
            ("checkpoints.every", config.checkpoints.every),
            ("http.header_read_timeout", config.http.header_read_timeout),
            ("http.request_body_timeout", config.http.request_body_timeout),
            ("http.idle_timeout", config.http.idle_timeout),
            ("scim.scan_time_max", config.scim.scan_time_max),
            ("engine.hold_window", config.engine.hold_window),
            ("engine.hold_expires_after", config.engine.hold_expires_after),
        ] {
            if value.is_zero() {
                return Err(format!("{key} must be longer than zero"));
            }
        }
        if config.engine.snapshots_kept == 0 {
            return Err("engine.snapshots_kept must be at least 1".to_owned());
        }
        for (key, value) in [
            ("engine.snapshot_every", config.engine.snapshot_every),
            ("engine.checkpoint_every", config.engine.checkpoint_every),
            ("checkpoints.every_events", config.checkpoints.every_events),
            ("http.connections_max", config.http.connections_max as u64),
            ("http.per_token_concurrency", config.http.per_token_concurrency as u64),
            ("scim.body_len_max", config.scim.body_len_max as u64),
            ("scim.bulk_operations_max", config.scim.bulk_operations_max as u64),
            ("scim.bulk_payload_len_max", config.scim.bulk_payload_len_max as u64),
            ("scim.filter_results_max", config.scim.filter_results_max as u64),
            ("scim.page_size_default", config.scim.page_size_default as u64),
            ("scim.scans_concurrent_max", config.scim.scans_concurrent_max as u64),
            ("scim.scan_resources_max", config.scim.scan_resources_max as u64),
        ] {
            if value == 0 {
                return Err(format!("{key} must be at least 1"));
            }
        }
        Ok(config)
    }

    /// The bounds of the HTTP server and the SCIM service provider this configuration asks for.
    pub fn service_settings(&self) -> crate::server::ServiceSettings {
        let mut scim = self.scim.settings();
        scim.base_url = self
            .public_url
            .as_ref()
            .map(|public| public.join(crate::server::SCIM_MOUNT));
        crate::server::ServiceSettings {
            http: self.http.limits(),
            scim,
        }
    }

    /// The tenant settings this configuration asks for.
    pub fn tenant_settings(&self) -> TenantSettings {
        TenantSettings {
            snapshot_every: self.engine.snapshot_every,
            snapshots_kept: self.engine.snapshots_kept,
            checkpoint_every: self.engine.checkpoint_every,
            checkpoints_max: self.engine.checkpoints_max,
            policy: ReconcilePolicy {
                hold_above_permille: (self.engine.hold_above_percent * 10.0).round() as u32,
                hold_window: self.engine.hold_window,
                hold_expires_after: self.engine.hold_expires_after,
                missing_users: match self.engine.missing_users {
                    MissingUsersConfig::Delete => MissingUsers::Delete,
                    MissingUsersConfig::Deactivate => MissingUsers::Deactivate,
                },
            },
            revocation_ack_within: self.engine.revocation_ack_within,
            ..TenantSettings::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses() {
        let config = Config::parse(
            r#"
            data_dir = "/var/lib/idpsync"
            listen = "0.0.0.0:9000"
            log_format = "json"
            [engine]
            snapshot_every = 5000
            hold_above_percent = 5
            hold_window = "12h"
            hold_expires_after = "2h"
            missing_users = "deactivate"
            [checkpoints]
            every_events = 5000
            every = "90s"
            [http]
            idle_timeout = "2m"
            connections_max = 100
            [scim]
            filter_results_max = 500
            scan_time_max = "500ms"
            [[tenant]]
            id = "acme"
            "#,
        )
        .unwrap();
        assert_eq!(config.tenants[0].id.as_str(), "acme");
        assert_eq!(config.checkpoints.every_events, 5000);
        assert_eq!(config.checkpoints.every, std::time::Duration::from_secs(90));
        let limits = config.http.limits();
        assert_eq!(limits.idle_timeout, std::time::Duration::from_secs(120));
        assert_eq!(limits.connections_max, 100);
        assert_eq!(
            limits.header_read_timeout,
            crate::server::HttpLimits::default().header_read_timeout
        );
        let scim = config.service_settings().scim;
        assert_eq!(scim.filter_results_max, 500);
        assert_eq!(scim.scan_time_max, std::time::Duration::from_millis(500));
        assert_eq!(
            scim.bulk_operations_max,
            idpsync_scim::Settings::default().bulk_operations_max
        );
        let settings = config.tenant_settings();
        assert_eq!(settings.snapshot_every, 5000);
        assert_eq!(settings.policy.hold_above_permille, 50);
        assert_eq!(settings.policy.hold_window, std::time::Duration::from_secs(12 * 3600));
        assert_eq!(
            settings.policy.hold_expires_after,
            std::time::Duration::from_secs(2 * 3600)
        );
        assert_eq!(settings.policy.missing_users, MissingUsers::Deactivate);
    }

    #[test]
    fn the_storage_setting_names_its_key_when_wrong() {
        let config = Config::parse("storage = \"postgres://app@db/idp?schema=eu\"").unwrap();
        assert_eq!(config.storage.unwrap().to_string(), "postgres://app@db/idp?schema=eu");
        let wrong = Config::parse("storage = \"mysql://db/idp\"").unwrap_err();
        assert!(
            wrong.contains("storage") && wrong.contains("names no log store"),
            "{wrong}"
        );
    }

    #[test]
    fn mistakes_are_named() {
        let unknown = Config::parse("listn = \"127.0.0.1:1\"").unwrap_err();
        assert!(unknown.contains("listn"), "{unknown}");
        let bad_tenant = Config::parse("[[tenant]]\nid = \"Acme Corp\"").unwrap_err();
        assert!(bad_tenant.contains("invalid tenant name"), "{bad_tenant}");
        assert!(
            Config::parse("[engine]\nhold_above_percent = 150")
                .unwrap_err()
                .contains("between 0 and 100")
        );
        assert!(
            Config::parse("[http]\nidle_timeout = \"0s\"")
                .unwrap_err()
                .contains("http.idle_timeout must be longer than zero")
        );
        assert!(
            Config::parse("[engine]\nhold_window = \"0s\"")
                .unwrap_err()
                .contains("engine.hold_window must be longer than zero")
        );
        assert!(
            Config::parse("[engine]\nsnapshot_every = 0")
                .unwrap_err()
                .contains("at least 1")
        );
    }

    #[test]
    fn integrations_parse_and_their_mistakes_are_named() {
        let config = Config::parse(
            r#"
            [[tenant]]
            id = "acme"
            [[tenant.integration]]
            name = "entra"
            provider = "entra"
            interval = "5m"
            tenant_id = "contoso"
            client_id = "app"
            client_secret = "s3cret"
            include_groups = ["vpn-*"]
            "#,
        )
        .unwrap();
        assert_eq!(config.tenants[0].integrations[0].name.as_str(), "entra");
        let unknown = Config::parse(
            "[[tenant]]\nid = \"acme\"\n[[tenant.integration]]\nname = \"j\"\nprovider = \"jumpcloud\"\napi_key = \"k\"\napi_kee = \"k\"",
        )
        .unwrap_err();
        assert!(unknown.contains("integration `j`: unknown key `api_kee`"), "{unknown}");
        let twice = Config::parse(
            "[[tenant]]\nid = \"acme\"\n[[tenant.integration]]\nname = \"j\"\nprovider = \"jumpcloud\"\napi_key = \"k\"\n[[tenant.integration]]\nname = \"j\"\nprovider = \"jumpcloud\"\napi_key = \"k\"",
        )
        .unwrap_err();
        assert!(twice.contains("used twice"), "{twice}");
    }

    #[test]
    fn defaults_match_the_engine() {
        assert_eq!(Config::parse("").unwrap().tenant_settings(), TenantSettings::default());
    }
}
