//! [`Driver`]: one configured integration, ready to read its IdP. It owns the HTTP client and
//! the credentials (so the token cache outlives a run) and hands each run to its provider.

use serde::{Deserialize, Serialize};

use crate::auth::Auth;
use crate::client::{IdpClient, Run};
use crate::config::{IntegrationConfig, ProviderConfig};
use crate::error::DriverError;
use crate::http::{Http, RetryPolicy};
use crate::listing::Listing;
use crate::providers;

/// Where an incremental listing starts, as stored between runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Cursor {
    /// Microsoft Graph delta links of the last complete round.
    GraphDelta {
        /// `users/delta()`'s `@odata.deltaLink`.
        users: String,
        /// `groups/delta()`'s `@odata.deltaLink`.
        groups: String,
    },
    /// Objects changed since this moment (seconds since the Unix epoch), for IdPs that filter
    /// by a last-updated time (Okta, authentik, Auth0).
    Since {
        /// The moment.
        unix_seconds: i64,
    },
}

/// What a run read: the listing, and the cursor the next incremental run starts from.
#[derive(Debug)]
pub struct Fetched {
    /// Users, groups, memberships.
    pub listing: Listing,
    /// Where the next incremental listing starts; `None` where the IdP has no deltas.
    pub cursor: Option<Cursor>,
}

/// The vendor-specific half of a driver.
#[async_trait::async_trait]
pub(crate) trait Provider: Send + Sync {
    /// Whether incremental listings exist for this IdP.
    fn incremental(&self) -> bool;

    /// Lists everything (`since` is `None`) or what changed since `since`.
    async fn list(&self, client: &IdpClient, run: &Run<'_>, since: Option<&Cursor>) -> Result<Fetched, DriverError>;
}

/// A configured integration's driver.
pub struct Driver {
    config: IntegrationConfig,
    client: IdpClient,
    provider: Box<dyn Provider>,
}

impl Driver {
    /// Builds the driver of `config`: its HTTP client, its credentials (keys are parsed
    /// here), its provider.
    pub fn new(config: IntegrationConfig, policy: RetryPolicy) -> Result<Driver, DriverError> {
        let (auth, provider): (Auth, Box<dyn Provider>) = match &config.provider {
            ProviderConfig::Entra { .. } => providers::entra::build(&config)?,
            ProviderConfig::Okta { .. } => providers::okta::build(&config)?,
            ProviderConfig::Google { .. } => providers::google::build(&config)?,
            ProviderConfig::JumpCloud { .. } => providers::jumpcloud::build(&config)?,
            ProviderConfig::Keycloak { .. } => providers::keycloak::build(&config)?,
            ProviderConfig::Auth0 { .. } => providers::auth0::build(&config)?,
            ProviderConfig::Authentik { .. } => providers::authentik::build(&config)?,
            ProviderConfig::Zitadel { .. } => providers::zitadel::build(&config)?,
        };
        let client = IdpClient {
            http: Http::new(config.request_timeout, policy),
            auth,
            base: config.base_url.clone(),
        };
        Ok(Driver {
            config,
            client,
            provider,
        })
    }

    /// The integration's configuration.
    pub fn config(&self) -> &IntegrationConfig {
        &self.config
    }

    /// Whether this IdP offers incremental listings.
    pub fn has_incremental(&self) -> bool {
        self.provider.incremental()
    }

    /// Reads the IdP: everything, or the changes since `since`. Any failure on the way is an
    /// error; a listing that stopped early is never returned.
    pub async fn fetch(&self, run: &Run<'_>, since: Option<&Cursor>) -> Result<Fetched, DriverError> {
        self.provider.list(&self.client, run, since).await
    }
}
