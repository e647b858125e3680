//! [`Driver`]: one configured integration, ready to read its IdP. It owns the HTTP client and
//! the credentials (so the token cache outlives a run) and hands each run to its provider.

use crate::auth::Auth;
use crate::client::{IdpClient, Run};
use crate::config::{IntegrationConfig, ProviderConfig};
use crate::error::DriverError;
use crate::http::{Http, RetryPolicy};
use crate::provider::{Cursor, Fetched, Provider};
use crate::providers;

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
