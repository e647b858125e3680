//! The configuration of one integration (`[[tenant.integration]]` in the TOML file), checked
//! when it is read.
//!
//! The keys every integration has are read here, once: `name` first (every later mistake is
//! told with it), then the common keys ([`CommonKeys`]); the rest go to the vendor `provider`
//! names, whose module in `providers` reads them into its own typed settings. Unknown keys,
//! missing keys and values of the wrong form are [`ConfigError`]s that name the integration and
//! the key. Secrets (`env:NAME`, `file:PATH`) are checked in form as they are read, and resolved
//! only when a driver is built ([`crate::Driver::new`]), with an error of the same kind.
//!
//! IdP endpoints must be `https://`: credentials travel with every request. A plain `http://`
//! `base_url` or `token_url` is refused unless the integration says `allow_insecure_http =
//! true`, which exists for tests against fakes and mocks on loopback.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use idpsync_engine::ids::IntegrationName;
use reqwest::Url;
use serde::{Deserialize, Deserializer};

use crate::keys::{self, KeyError};
use crate::provider::{Endpoints, Provider};
use crate::providers;
use idpsync_engine::absence::AbsenceRules;
use idpsync_engine::reconcile::GroupFilter;

/// How often the scheduler runs an integration, unless `interval` says.
const INTERVAL_DEFAULT: Duration = Duration::from_secs(5 * 60);
/// How often a full listing runs, unless `full_resync` says.
const FULL_RESYNC_DEFAULT: Duration = Duration::from_secs(24 * 3600);
/// The longest one sync may take, unless `sync_timeout` says.
const SYNC_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30 * 60);
/// The longest one HTTP request may take, unless `request_timeout` says.
const REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// How many member lists a run fetches at once, unless `member_concurrency` says.
const MEMBER_CONCURRENCY_DEFAULT: usize = 4;
/// The most `member_concurrency` may be: more is a burst no vendor's rate limit accepts.
const MEMBER_CONCURRENCY_MAX: usize = 64;
/// The longest any duration setting may be: 365 days. Longer ones are mistakes, and would not
/// fit the clock arithmetic of a run's deadline or of the next run.
const DURATION_MAX: Duration = Duration::from_secs(365 * 24 * 3600);

/// One integration: which IdP, how often, with which credentials and filters.
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "toml::Table")]
pub struct IntegrationConfig {
    /// Unique within the tenant.
    pub name: IntegrationName,
    /// How often the scheduler runs it.
    pub interval: Duration,
    /// How often a full listing runs, even where the IdP offers deltas (default 24 h).
    pub full_resync: Duration,
    /// The longest one sync may take, retries included (default 30 min).
    pub sync_timeout: Duration,
    /// The longest one HTTP request may take (default 30 s).
    pub request_timeout: Duration,
    /// The API root, as the vendor's OpenAPI `servers` entry has it.
    pub base_url: Url,
    /// Which groups are synced.
    pub groups: GroupFilter,
    /// Only sync users who are members (directly or through nested groups) of a synced group.
    pub only_group_members: bool,
    /// How many group member lists a run fetches at once (default 4), for IdPs that answer
    /// them one group at a time.
    pub member_concurrency: usize,
    /// When what a complete listing no longer contains is removed: `absent_listings`
    /// consecutive complete listings (default 2), or `absent_after` (unset by default).
    pub absence: AbsenceRules,
    /// The vendor, with its credentials and options.
    pub provider: ProviderConfig,
}

/// The vendor-specific part of an integration, checked; what it holds is the vendor's business.
#[derive(Clone, Debug)]
pub struct ProviderConfig {
    /// The `provider` value.
    name: &'static str,
    /// The vendor's checked settings, and its code.
    vendor: Arc<dyn Provider>,
}

impl ProviderConfig {
    /// The vendor's checked settings, and its code.
    pub(crate) fn vendor(&self) -> &Arc<dyn Provider> {
        &self.vendor
    }
}

/// Why an integration's configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The text given to [`IntegrationConfig::from_toml`] is not a TOML table.
    #[error("not a TOML table: {0}")]
    Toml(#[from] toml::de::Error),
    /// A key of the integration is wrong.
    #[error("{}: {error}", Integration(integration.as_ref()))]
    Key {
        /// The integration, unless its name is what is wrong.
        integration: Option<IntegrationName>,
        /// What is wrong, with the key.
        error: KeyError,
    },
}

/// "integration `okta`", or "integration" while the name is unknown.
struct Integration<'a>(Option<&'a IntegrationName>);

impl fmt::Display for Integration<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(name) => write!(f, "integration `{name}`"),
            None => f.write_str("integration"),
        }
    }
}

/// The keys every integration may have, besides `name`; `vendor` takes all the others.
#[derive(Deserialize)]
struct CommonKeys {
    /// Which vendor: one of [`providers::VENDORS`].
    provider: String,
    #[serde(default, deserialize_with = "duration")]
    interval: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    full_resync: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    sync_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    request_timeout: Option<Duration>,
    /// The API root; each vendor has its default or requires it.
    #[serde(default, deserialize_with = "http_url")]
    base_url: Option<Url>,
    /// The token endpoint of vendors with OAuth2; each has its default.
    #[serde(default, deserialize_with = "http_url")]
    token_url: Option<Url>,
    #[serde(default)]
    include_groups: Vec<String>,
    #[serde(default)]
    exclude_groups: Vec<String>,
    #[serde(default)]
    only_group_members: bool,
    #[serde(default, deserialize_with = "concurrency")]
    member_concurrency: Option<usize>,
    /// Consecutive complete listings that must not contain something before it is removed.
    #[serde(default, deserialize_with = "listings")]
    absent_listings: Option<NonZeroU32>,
    /// Or how long it must have been absent.
    #[serde(default, deserialize_with = "duration")]
    absent_after: Option<Duration>,
    /// Accept plain `http://` endpoints: for tests against fakes and mocks only.
    #[serde(default)]
    allow_insecure_http: bool,
    /// The vendor's keys: all the others, checked by the vendor.
    #[serde(flatten)]
    vendor: toml::Table,
}

/// A duration such as `"5m"`, longer than zero and at most [`DURATION_MAX`].
fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(deserializer)?;
    match humantime::parse_duration(&text) {
        Ok(value) if value.is_zero() => Err(serde::de::Error::custom("must be longer than zero")),
        Ok(value) if value > DURATION_MAX => Err(serde::de::Error::custom(format!(
            "{text:?} is longer than the longest accepted, 365 days"
        ))),
        Ok(value) => Ok(Some(value)),
        Err(error) => Err(serde::de::Error::custom(format!(
            "{text:?} is not a duration such as \"5m\": {error}"
        ))),
    }
}

/// A number of requests in flight: 1 to [`MEMBER_CONCURRENCY_MAX`].
fn concurrency<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<usize>, D::Error> {
    let value = i64::deserialize(deserializer)?;
    match usize::try_from(value) {
        Ok(value) if (1..=MEMBER_CONCURRENCY_MAX).contains(&value) => Ok(Some(value)),
        _ => Err(serde::de::Error::custom(format!(
            "must be from 1 to {MEMBER_CONCURRENCY_MAX}, not {value}"
        ))),
    }
}

/// A count of listings: at least 1.
fn listings<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<NonZeroU32>, D::Error> {
    let count = i64::deserialize(deserializer)?;
    u32::try_from(count)
        .ok()
        .and_then(NonZeroU32::new)
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom(format!("must be a count of listings from 1 up, not {count}")))
}

/// An http(s) URL that can be a base, without credentials in it (they would show wherever the
/// URL does); a trailing `/` is dropped.
fn http_url<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Url>, D::Error> {
    let text = String::deserialize(deserializer)?;
    let url = Url::parse(text.trim_end_matches('/'))
        .map_err(|error| serde::de::Error::custom(format!("{text:?} is not a URL: {error}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(serde::de::Error::custom(format!("{text:?} must be an http(s) URL")));
    }
    // Not echoed: the point is that it holds a secret.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(serde::de::Error::custom(
            "must not carry a user name or password; credentials go in the provider's keys",
        ));
    }
    Ok(Some(url))
}

/// The integration's name, taken out of its table before the rest is read.
fn integration_name(value: Option<toml::Value>) -> Result<IntegrationName, KeyError> {
    match value {
        None => Err(KeyError::Missing {
            key: "name",
            instead: None,
        }),
        Some(toml::Value::String(text)) => IntegrationName::new(&text).map_err(|why| KeyError::invalid("name", why)),
        Some(other) => Err(KeyError::invalid(
            "name",
            format!("must be a string, not {}", other.type_str()),
        )),
    }
}

impl TryFrom<toml::Table> for IntegrationConfig {
    type Error = ConfigError;

    fn try_from(mut table: toml::Table) -> Result<IntegrationConfig, ConfigError> {
        let name = integration_name(table.remove("name")).map_err(|error| ConfigError::Key {
            integration: None,
            error,
        })?;
        let in_integration = |error| ConfigError::Key {
            integration: Some(name.clone()),
            error,
        };
        let common: CommonKeys = keys::parse(table).map_err(in_integration)?;
        let Some(vendor) = providers::vendor(&common.provider) else {
            let names: Vec<&str> = providers::VENDORS.iter().map(|vendor| vendor.name).collect();
            return Err(in_integration(KeyError::invalid(
                "provider",
                format!("must be one of {}, not {:?}", names.join(", "), common.provider),
            )));
        };
        if !common.allow_insecure_http {
            let given = [("base_url", &common.base_url), ("token_url", &common.token_url)];
            if let Some((key, url)) = given
                .into_iter()
                .find_map(|(key, url)| url.as_ref().filter(|url| url.scheme() == "http").map(|url| (key, url)))
            {
                return Err(in_integration(KeyError::invalid(
                    key,
                    format!(
                        "{} is plain http, which would send the IdP's credentials unencrypted; use \
                         https (`allow_insecure_http = true` is meant for tests against local fakes)",
                        url.origin().ascii_serialization()
                    ),
                )));
            }
        }
        let endpoints = Endpoints {
            base_url: common.base_url,
            token_url: common.token_url,
        };
        let groups = GroupFilter::new(common.include_groups.clone(), common.exclude_groups).map_err(|error| {
            let key = if common.include_groups.contains(&error.pattern) {
                "include_groups"
            } else {
                "exclude_groups"
            };
            in_integration(KeyError::invalid(key, error))
        })?;
        let configured = vendor.configure(common.vendor, endpoints).map_err(in_integration)?;
        Ok(IntegrationConfig {
            interval: common.interval.unwrap_or(INTERVAL_DEFAULT),
            full_resync: common.full_resync.unwrap_or(FULL_RESYNC_DEFAULT),
            sync_timeout: common.sync_timeout.unwrap_or(SYNC_TIMEOUT_DEFAULT),
            request_timeout: common.request_timeout.unwrap_or(REQUEST_TIMEOUT_DEFAULT),
            base_url: configured.base_url,
            groups,
            only_group_members: common.only_group_members,
            member_concurrency: common.member_concurrency.unwrap_or(MEMBER_CONCURRENCY_DEFAULT),
            absence: AbsenceRules {
                listings: common.absent_listings.unwrap_or(AbsenceRules::default().listings),
                after: common.absent_after,
            },
            provider: ProviderConfig {
                name: vendor.name,
                vendor: configured.provider,
            },
            name,
        })
    }
}

impl IntegrationConfig {
    /// The provider's name as the configuration spells it.
    pub fn provider_name(&self) -> &'static str {
        self.provider.name
    }

    /// Parses one `[[tenant.integration]]` table given as TOML text (for tests and tools).
    pub fn from_toml(text: &str) -> Result<IntegrationConfig, ConfigError> {
        let table: toml::Table = toml::from_str(text)?;
        IntegrationConfig::try_from(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_error(text: &str, expected: &str) {
        let error = IntegrationConfig::from_toml(text).unwrap_err().to_string();
        assert!(error.contains(expected), "{error:?} should contain {expected:?}");
    }

    #[test]
    fn the_issue_example_parses() {
        let config = IntegrationConfig::from_toml(
            r#"
            name = "entra"
            provider = "entra"
            interval = "5m"
            base_url = "https://graph.microsoft.us/v1.0"
            tenant_id = "contoso"
            client_id = "app"
            client_secret = "s3cret"
            include_groups = ["vpn-*"]
            exclude_groups = []
            "#,
        )
        .unwrap();
        assert_eq!(config.interval, Duration::from_secs(300));
        assert_eq!(config.full_resync, FULL_RESYNC_DEFAULT);
        assert_eq!(config.base_url.as_str(), "https://graph.microsoft.us/v1.0");
        assert_eq!(config.provider_name(), "entra");
        assert!(config.groups.allows("vpn-eng") && !config.groups.allows("eng"));
        assert_eq!(config.absence, AbsenceRules::default());
    }

    #[test]
    fn absence_settings_are_read_and_checked() {
        let base = "name = \"j\"\nprovider = \"jumpcloud\"\napi_key = \"k\"\n";
        let config =
            IntegrationConfig::from_toml(&format!("{base}absent_listings = 3\nabsent_after = \"30m\"")).unwrap();
        assert_eq!(config.absence.listings.get(), 3);
        assert_eq!(config.absence.after, Some(Duration::from_secs(1800)));
        check_error(
            &format!("{base}absent_listings = 0"),
            "integration `j`: key `absent_listings`: must be a count of listings from 1 up, not 0",
        );
        check_error(
            &format!("{base}absent_after = \"0s\""),
            "integration `j`: key `absent_after`: must be longer than zero",
        );
    }

    #[test]
    fn mistakes_name_the_integration_and_the_key() {
        check_error(
            "name = \"okta\"\nprovider = \"okta\"\ndomain = \"x.okta.com\"\napi_tokn = \"t\"",
            "integration `okta`: unknown key `api_tokn`",
        );
        check_error(
            "name = \"kc\"\nprovider = \"keycloak\"\nbase_url = \"https://kc\"\nclient_id = \"c\"\nclient_secret = \"s\"",
            "integration `kc`: key `realm`: missing",
        );
        check_error(
            "name = \"x\"\nprovider = \"ldap\"",
            "integration `x`: key `provider`: must be one of entra, okta, google, jumpcloud, keycloak, auth0, authentik, zitadel, not \"ldap\"",
        );
        check_error(
            "name = \"a\"\nprovider = \"authentik\"\nbase_url = \"https://a/api/v3\"\napi_token = \"env:\"",
            "integration `a`: key `api_token`: `env:` must be followed by the name of an environment variable",
        );
        check_error(
            "name = \"j\"\nprovider = \"jumpcloud\"\napi_key = \"k\"\ninterval = \"soon\"",
            "integration `j`: key `interval`: \"soon\" is not a duration",
        );
        check_error(
            "name = \"j\"\nprovider = \"jumpcloud\"\napi_key = \"k\"\nbase_url = \"ftp://x\"",
            "integration `j`: key `base_url`: \"ftp://x\" must be an http(s) URL",
        );
        check_error(
            "name = \"o\"\nprovider = \"okta\"\napi_token = \"t\"",
            "integration `o`: key `domain`: missing (or `base_url`)",
        );
        check_error(
            "name = \"z\"\nprovider = \"zitadel\"\nbase_url = \"https://z\"\npat = \"t\"\nclient_id = \"c\"",
            "integration `z`: key `client_id` does not apply with `pat`",
        );
        check_error(
            "name = \"z\"\nprovider = \"zitadel\"\nbase_url = \"https://z\"\nkey_file = \"file:\"",
            "integration `z`: key `key_file`: `file:` must be followed by the path of a file",
        );
        check_error(
            "name = \"a0\"\nprovider = \"auth0\"\ndomain = \"a\"\nclient_id = \"c\"\nclient_secret = \"s\"\ngroups = \"teams\"",
            "integration `a0`: key `groups`: unknown variant `teams`",
        );
        check_error(
            "name = \"j\"\nprovider = \"jumpcloud\"\napi_key = \"k\"\nmember_concurrency = 0",
            "integration `j`: key `member_concurrency`: must be from 1 to 64, not 0",
        );
        check_error("provider = \"jumpcloud\"", "integration: key `name`: missing");
        check_error(
            "name = \"Acme Corp\"",
            "integration: key `name`: invalid integration name",
        );
        check_error("name = \"j\"", "integration `j`: key `provider`: missing");
    }

    /// Hardening issue, must-fix 9: a plain `http://` endpoint was accepted, and every request
    /// then carried the IdP's credentials unencrypted.
    #[test]
    fn plain_http_endpoints_are_refused_unless_allowed_for_tests() {
        check_error(
            "name = \"kc\"\nprovider = \"keycloak\"\nbase_url = \"http://sso.example.com\"\nrealm = \"r\"\nclient_id = \"c\"\nclient_secret = \"s\"",
            "integration `kc`: key `base_url`: http://sso.example.com is plain http",
        );
        check_error(
            "name = \"a0\"\nprovider = \"auth0\"\ndomain = \"a.auth0.com\"\ntoken_url = \"http://a.auth0.com/oauth/token\"\nclient_id = \"c\"\nclient_secret = \"s\"",
            "integration `a0`: key `token_url`: http://a.auth0.com is plain http",
        );
        check_error(
            "name = \"kc\"\nprovider = \"keycloak\"\nbase_url = \"https://admin:pw@sso.example.com\"\nrealm = \"r\"\nclient_id = \"c\"\nclient_secret = \"s\"",
            "integration `kc`: key `base_url`: must not carry a user name or password",
        );
        let allowed = IntegrationConfig::from_toml(
            "name = \"kc\"\nprovider = \"keycloak\"\nbase_url = \"http://127.0.0.1:8080\"\nrealm = \"r\"\nclient_id = \"c\"\nclient_secret = \"s\"\nallow_insecure_http = true",
        )
        .unwrap();
        assert_eq!(allowed.base_url.as_str(), "http://127.0.0.1:8080/");
    }

    /// Hardening issue, must-fix 7: a duration beyond what the clock can add (`sync_timeout =
    /// "600000000 years"`) was accepted, and the integration's task panicked when its run's
    /// deadline or its next run was computed.
    #[test]
    fn durations_beyond_a_year_are_refused() {
        check_error(
            "name = \"j\"\nprovider = \"jumpcloud\"\napi_key = \"k\"\nsync_timeout = \"600000000 years\"",
            "integration `j`: key `sync_timeout`: \"600000000 years\" is longer than the longest accepted, 365 days",
        );
        let config = IntegrationConfig::from_toml(
            "name = \"j\"\nprovider = \"jumpcloud\"\napi_key = \"k\"\ninterval = \"365days\"",
        )
        .unwrap();
        assert_eq!(config.interval, DURATION_MAX);
    }

    /// Issue 17: a bad regular expression in a group pattern is a configuration error that
    /// names the key, not a filter that silently matches nothing.
    #[test]
    fn a_bad_group_pattern_names_its_key() {
        check_error(
            "name = \"j\"\nprovider = \"jumpcloud\"\napi_key = \"k\"\ninclude_groups = [\"vpn-*\", \"re:^vpn-(eu\"]",
            "integration `j`: key `include_groups`: \"re:^vpn-(eu\" is not a usable pattern: not a regular expression",
        );
        check_error(
            "name = \"j\"\nprovider = \"jumpcloud\"\napi_key = \"k\"\nexclude_groups = [\"re:\"]",
            "integration `j`: key `exclude_groups`: \"re:\" is not a usable pattern",
        );
    }

    #[test]
    fn a_key_of_another_vendor_is_unknown() {
        let error =
            IntegrationConfig::from_toml("name = \"j\"\nprovider = \"jumpcloud\"\napi_key = \"k\"\nrealm = \"r\"")
                .unwrap_err();
        let ConfigError::Key { integration, error } = error else {
            panic!("a key error expected, not {error}");
        };
        assert_eq!(integration.unwrap().as_str(), "j");
        assert_eq!(
            error,
            KeyError::Unknown {
                key: "realm".to_owned()
            }
        );
    }
}
