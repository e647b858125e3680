//! [`Driver`]: one configured integration, ready to read its IdP. It owns the HTTP client and
//! the credentials (so the token cache outlives a run) and hands each run to its vendor's code.

use crate::client::{IdpClient, Run};
use crate::config::IntegrationConfig;
use crate::error::DriverError;
use crate::http::{Http, RetryPolicy};
use crate::members::Selection;
use crate::provider::{Cursor, Fetched};

/// A configured integration's driver. Its `Debug` print shows the configuration and the
/// state of the credentials, never a secret or a token.
#[derive(Debug)]
pub struct Driver {
    config: IntegrationConfig,
    client: IdpClient,
}

impl Driver {
    /// Builds the driver of `config`: its HTTP client and its credentials (keys are parsed
    /// here).
    pub fn new(config: IntegrationConfig, policy: RetryPolicy) -> Result<Driver, DriverError> {
        let http = Http::new(config.request_timeout, policy, config.member_concurrency);
        Driver::with_http(config, http)
    }

    /// The driver of `config`, sending its requests through `http`.
    pub(crate) fn with_http(config: IntegrationConfig, http: Http) -> Result<Driver, DriverError> {
        let client = IdpClient {
            http,
            auth: config.provider.vendor().auth()?,
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
}
