//! The contract between the crate and a vendor's module: how the vendor is configured
//! ([`Vendor`], [`Settings`]), how it authenticates and lists ([`Provider`]), what a listing
//! returns ([`Fetched`]) and where an incremental one starts ([`Cursor`]). It sits below both
//! sides: the configuration, the driver and every module in `providers` import it, and it
//! imports none of them.

use std::fmt;
use std::sync::Arc;

use reqwest::Url;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::auth::Auth;
use crate::client::{IdpClient, Run};
use crate::error::DriverError;
use crate::keys::{self, KeyError};
use idpsync_engine::reconcile::Listing;

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
        /// Where the IdP's deletion feed was read up to, where that feed pages by a position of
        /// its own rather than by time (Auth0's log id); `None` until an incremental run has
        /// read the feed once.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        feed: Option<String>,
    },
}

/// What a run read: the listing, and the cursor the next incremental run starts from.
#[derive(Debug)]
pub(crate) struct Fetched {
    /// Users, groups, memberships.
    pub(crate) listing: Listing,
    /// Where the next incremental listing starts; `None` where the IdP has no deltas.
    pub(crate) cursor: Option<Cursor>,
}

/// The vendor-specific half of a driver: one integration's checked settings, and the vendor's
/// code that uses them.
#[async_trait::async_trait]
pub(crate) trait Provider: fmt::Debug + Send + Sync {
    /// The integration's credentials. A driver builds them once, so that a token cache outlives
    /// a run; secrets are resolved and keys parsed here, not when the configuration is read (a
    /// secret that does not resolve is a [`crate::keys::KeyError`] naming its key).
    fn auth(&self) -> Result<Auth, DriverError>;

    /// Whether incremental listings exist for this IdP.
    fn incremental(&self) -> bool;

    /// Lists everything (`since` is `None`) or what changed since `since`.
    async fn list(&self, client: &IdpClient, run: &Run<'_>, since: Option<&Cursor>) -> Result<Fetched, DriverError>;

    /// Adds to `listing` the users of these ids as the IdP has them now (one it no longer has
    /// is left out): the users an incremental listing brings into an included group without
    /// listing them (`only_group_members`). `false` where the vendor's module cannot read
    /// users by id; the run then lists everything instead.
    async fn add_users(
        &self,
        _client: &IdpClient,
        _run: &Run<'_>,
        _listing: &mut Listing,
        _ids: &[String],
    ) -> Result<bool, DriverError> {
        Ok(false)
    }
}

/// One vendor as the configuration knows it: the `provider` value that selects it, and how its
/// keys are read.
pub(crate) struct Vendor {
    /// The `provider` value.
    pub(crate) name: &'static str,
    configure: fn(toml::Table, Endpoints) -> Result<Configured, KeyError>,
}

impl Vendor {
    /// The vendor called `name`, whose keys are `S`.
    pub(crate) const fn new<S: Settings>(name: &'static str) -> Vendor {
        Vendor {
            name,
            configure: configure::<S>,
        }
    }

    /// Reads the vendor's keys (every key of the integration but the common ones).
    pub(crate) fn configure(&self, table: toml::Table, endpoints: Endpoints) -> Result<Configured, KeyError> {
        (self.configure)(table, endpoints)
    }
}

fn configure<S: Settings>(table: toml::Table, endpoints: Endpoints) -> Result<Configured, KeyError> {
    let (base_url, provider) = keys::parse::<S>(table)?.check(endpoints)?;
    Ok(Configured {
        base_url,
        provider: Arc::new(provider),
    })
}

/// A vendor's keys as written: a `#[derive(Deserialize)]` struct that denies unknown fields,
/// read by [`keys::parse`].
pub(crate) trait Settings: DeserializeOwned {
    /// The checked integration.
    type Provider: Provider + 'static;

    /// Applies the vendor's defaults and checks its alternatives (one way to authenticate, not
    /// two): the API root, and the checked integration.
    fn check(self, endpoints: Endpoints) -> Result<(Url, Self::Provider), KeyError>;
}

/// The common keys whose defaults and requirements belong to the vendor.
#[derive(Default)]
pub(crate) struct Endpoints {
    /// `base_url`: the API root, if given.
    pub(crate) base_url: Option<Url>,
    /// `token_url`: the token endpoint, if given; vendors with static credentials ignore it.
    pub(crate) token_url: Option<Url>,
}

/// A vendor's checked settings: the API root and the checked integration.
pub(crate) struct Configured {
    /// The API root, given or the vendor's default.
    pub(crate) base_url: Url,
    /// The integration.
    pub(crate) provider: Arc<dyn Provider>,
}
