//! [`Driver`]: one configured integration, ready to read its IdP. It owns the HTTP client and
//! the credentials (so the token cache outlives a run) and hands each run to its vendor's code.

use crate::client::{IdpClient, Run};
use crate::config::{ConfigError, IntegrationConfig};
use crate::error::DriverError;
use crate::http::{Http, RetryPolicy};
use crate::members::Selection;
use crate::provider::{Cursor, Fetched};
use idpsync_engine::reconcile::Listing;

/// A configured integration's driver. Its `Debug` print shows the configuration and the
/// state of the credentials, never a secret or a token.
#[derive(Debug)]
pub struct Driver {
    config: IntegrationConfig,
    client: IdpClient,
}

impl Driver {
    /// Builds the driver of `config`: its HTTP client and its credentials. Secrets are resolved
    /// (`env:NAME`, `file:PATH`) and keys parsed here, not when the configuration is read; a
    /// secret that does not resolve is a [`DriverError::Config`] naming the integration and
    /// the key.
    pub fn new(config: IntegrationConfig, policy: RetryPolicy) -> Result<Driver, DriverError> {
        let http = Http::new(config.request_timeout, policy, config.member_concurrency);
        Driver::with_http(config, http)
    }

    /// The driver of `config`, sending its requests through `http`.
    pub(crate) fn with_http(config: IntegrationConfig, http: Http) -> Result<Driver, DriverError> {
        let auth = config.provider.vendor().auth().map_err(|error| match error {
            DriverError::Config(ConfigError::Key {
                integration: None,
                error,
            }) => DriverError::Config(ConfigError::Key {
                integration: Some(config.name.clone()),
                error,
            }),
            other => other,
        })?;
        let client = IdpClient {
            http,
            auth,
            base: config.base_url.clone(),
        };
        Ok(Driver { config, client })
    }

    /// The integration's configuration.
    pub fn config(&self) -> &IntegrationConfig {
        &self.config
    }

    /// Which groups' members a run fetches, and how many at once: the integration's group
    /// filter, `only_group_members` and `member_concurrency`.
    pub(crate) fn selection(&self) -> Selection {
        Selection {
            groups: self.config.groups.clone(),
            nested: self.config.only_group_members,
            concurrency: self.config.member_concurrency,
        }
    }

    /// Whether this IdP offers incremental listings.
    pub fn has_incremental(&self) -> bool {
        self.config.provider.vendor().incremental()
    }

    /// Reads the IdP: everything, or the changes since `since`. Any failure on the way is an
    /// error; a listing that stopped early is never returned.
    pub(crate) async fn fetch(&self, run: &Run<'_>, since: Option<&Cursor>) -> Result<Fetched, DriverError> {
        self.config.provider.vendor().list(&self.client, run, since).await
    }

    /// Adds the users of `ids` to `listing`, read by id; `false` where the IdP's module cannot
    /// (see `Provider::add_users`).
    pub(crate) async fn add_users(
        &self,
        run: &Run<'_>,
        listing: &mut Listing,
        ids: &[String],
    ) -> Result<bool, DriverError> {
        self.config
            .provider
            .vendor()
            .add_users(&self.client, run, listing, ids)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message of the error that building the driver of `text` fails with.
    fn build_error(text: &str) -> String {
        let config = IntegrationConfig::from_toml(text).expect("the configuration reads without its secrets");
        Driver::new(config, RetryPolicy::default()).unwrap_err().to_string()
    }

    #[test]
    fn secrets_resolve_when_the_driver_is_built() {
        assert_eq!(
            build_error(
                "name = \"a\"\nprovider = \"authentik\"\nbase_url = \"https://a/api/v3\"\napi_token = \"env:IDPSYNC_UNSET_FOR_TEST\""
            ),
            "integration `a`: key `api_token`: the environment variable IDPSYNC_UNSET_FOR_TEST is not set"
        );
        assert_eq!(
            build_error(
                "name = \"g\"\nprovider = \"google\"\nsubject = \"admin@example.com\"\nservice_account_key = \"{}\""
            ),
            "integration `g`: key `service_account_key`: not a usable JSON key file: missing field `client_email` at line 1 column 2"
        );
        let unreadable = build_error(
            "name = \"z\"\nprovider = \"zitadel\"\nbase_url = \"https://z\"\nclient_id = \"c\"\nclient_secret = \"file:/nonexistent/idpsync\"",
        );
        assert!(
            unreadable.starts_with("integration `z`: key `client_secret`: cannot read /nonexistent/idpsync"),
            "{unreadable}"
        );
        let literal = IntegrationConfig::from_toml("name = \"j\"\nprovider = \"jumpcloud\"\napi_key = \"k\"").unwrap();
        assert!(Driver::new(literal, RetryPolicy::default()).is_ok());
    }
}
