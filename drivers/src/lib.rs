//! Native sync drivers of openZro IdP-Sync: they read users, groups and memberships from an
//! IdP's management API and hand them to the engine's reconcile as a
//! [`Listing`](idpsync_engine::reconcile::Listing), with the integration's scope rules.
//!
//! Eight IdPs: Microsoft Entra ID (Graph), Okta, Google Workspace, JumpCloud, Keycloak, Auth0,
//! authentik and Zitadel.
//!
//! # Layout
//! - `config`: one integration's configuration ([`IntegrationConfig`]): the keys every
//!   integration has, read once, then the vendor's own keys, read by its module; mistakes are
//!   [`ConfigError`]s naming the integration and the key (`keys`: serde over one TOML table);
//!   secrets checked in form, resolved when a driver is built (`secret`); the group filter;
//! - `http`, `auth`, `certificate`, `client`, `paging`: the shared machinery: retries and rate
//!   limits, OAuth2 and JWT tokens with a cache, certificate credentials (a key and its
//!   certificate, checked to be a pair), requests with credentials, page following;
//! - `provider`: the contract between the crate and a vendor's module; `providers`: one module
//!   per IdP, each with everything of its vendor (settings, auth, listing), and the registry of
//!   vendors;
//! - `driver`: a configured integration's [`Driver`], which fills a listing;
//! - [`sync`]: one run end to end (read, plan or apply, keep the cursor); [`cursor_store`]: the
//!   per-integration state file; [`scheduler`]: every integration on its interval;
//! - `fake` (feature `fake`): stateful fake IdP servers for tests and benchmarks;
//! - `internals` (feature `internals`, hidden): what the fuzz targets reach.
//!
//! # Example
//! ```
//! use idpsync_drivers::{Driver, IntegrationConfig, RetryPolicy};
//!
//! // One `[[tenant.integration]]` table; secrets may also be `env:NAME` or `file:PATH`.
//! let config = IntegrationConfig::from_toml(
//!     r#"
//!     name = "okta"
//!     provider = "okta"
//!     domain = "acme.okta.com"
//!     api_token = "00abc"
//!     interval = "5m"
//!     include_groups = ["vpn-*"]
//!     "#,
//! )
//! .unwrap();
//! assert_eq!(config.base_url.as_str(), "https://acme.okta.com/");
//! let driver = Driver::new(config, RetryPolicy::default()).unwrap();
//! assert!(driver.has_incremental());
//! // `idpsync_drivers::sync::sync_once(&driver, &tenant, &cursors, mode, resync)` then reads
//! // the IdP and reconciles the tenant; `scheduler::Scheduler` does so on the interval.
//! ```
//!
//! # Architecture invariants
//! - The only crate that knows vendor APIs; it never touches storage.
//! - It fetches and normalises, nothing more: what a listing means for the tenant (the scope
//!   rules, the diff, the guard) is the engine's reconcile, which the drivers never reach around.
//! - A failed or partial listing is an error, never an empty directory: nothing reaches the
//!   engine unless every page was read.
//! - A cursor moves only after its snapshot was applied; a held or failed run starts again
//!   from the same place.
//! - Whatever an IdP sends is bounded before it is trusted: answers (64 MiB each, refused as
//!   they stream in), rate-limit waits, token lifetimes, pages; nothing it sends can panic an
//!   integration's task, and a task that panics all the same is started again by the scheduler.
//! - IdP endpoints are `https://`; plain http is a configuration error unless an integration
//!   allows it for tests. No `Debug` print shows a secret or a token.

mod auth;
mod certificate;
mod client;
mod config;
pub mod cursor_store;
mod driver;
mod error;
mod http;
mod keys;
mod members;
mod pacing;
mod paging;
mod provider;
mod providers;
pub mod scheduler;
mod secret;
pub mod sync;

#[cfg(feature = "fake")]
pub mod fake;

#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals;

pub use config::{ConfigError, IntegrationConfig, ProviderConfig};
pub use driver::Driver;
pub use error::DriverError;
pub use http::RetryPolicy;
pub use keys::KeyError;
pub use provider::Cursor;
