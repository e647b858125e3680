//! What the router is built from and what every handler shares: the embedding program's
//! [`Settings`] and [`Authenticator`] (with the [`Principal`] a token stands for), and the
//! [`Service`] that holds them with the engine and the pool scans run on. The request
//! extractors that use them are in `auth`.

use std::sync::Arc;
use std::time::Duration;

use idpsync_engine::Engine;
use idpsync_engine::ids::{TenantId, TokenId};

use crate::query::ListLimits;
use crate::scan::{ScanLimits, ScanPool};

/// Checks bearer tokens. The SCIM crate defines it; the program that embeds the router
/// implements it over its token store, which may be remote (a database, the management
/// server's own token service): the check is asynchronous. Implement it with
/// [`macro@crate::async_trait`].
#[async_trait::async_trait]
pub trait Authenticator: Send + Sync + 'static {
    /// The tenant and token a bearer secret stands for, or `None` for an unknown or revoked
    /// token. Implementations compare secrets in constant time.
    async fn authenticate(&self, secret: &str) -> Option<Principal>;
}

/// What a valid token stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The tenant whose data the token may read and change.
    pub tenant: TenantId,
    /// The token's id, recorded in every event it causes.
    pub token: TokenId,
}

/// How the service provider is bounded and where it is mounted.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The path the router is nested at, for `meta.location`.
    pub mount_path: String,
    /// An absolute base URL to use for `meta.location` instead of the request's `Host`
    /// (behind a proxy that rewrites it).
    pub base_url: Option<String>,
    /// The largest request body, in bytes (413 above).
    pub body_len_max: usize,
    /// `bulk.maxOperations`.
    pub bulk_operations_max: usize,
    /// `bulk.maxPayloadSize`, in bytes.
    pub bulk_payload_len_max: usize,
    /// `filter.maxResults`: the most resources a filter may match, the most a `sortBy` may
    /// order, and the largest page.
    pub filter_results_max: usize,
    /// The page size when a list request has no `count`.
    pub page_size_default: usize,
    /// The most list or search requests that scan (a filter the indexes cannot answer, or a
    /// `sortBy`) running at once, on blocking threads; the async workers never scan.
    pub scans_concurrent_max: usize,
    /// How long a scan beyond [`Settings::scans_concurrent_max`] waits for its turn before
    /// it is answered 503 with `Retry-After`.
    pub scan_queue_wait: Duration,
    /// The most resources one scan may examine (400 `tooMany` beyond).
    pub scan_resources_max: usize,
    /// The longest one scan may run (400 `tooMany` beyond).
    pub scan_time_max: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            mount_path: "/scim/v2".to_owned(),
            base_url: None,
            body_len_max: 8 * 1024 * 1024,
            bulk_operations_max: 1_000,
            bulk_payload_len_max: 1024 * 1024,
            filter_results_max: 1_000,
            page_size_default: 100,
            // Half the cores: however many scans clients send, the other half stays for
            // everything else.
            scans_concurrent_max: std::thread::available_parallelism().map_or(1, |cores| (cores.get() / 2).max(1)),
            scan_queue_wait: Duration::from_secs(1),
            scan_resources_max: 200_000,
            scan_time_max: Duration::from_secs(2),
        }
    }
}

impl Settings {
    /// The bounds of list and search requests.
    pub(crate) fn list_limits(&self) -> ListLimits {
        ListLimits {
            results_max: self.filter_results_max,
            page_size_default: self.page_size_default,
        }
    }

    /// The pool scans run on, within these settings' bounds.
    pub(crate) fn scan_pool(&self) -> ScanPool {
        let limits = ScanLimits {
            resources_max: self.scan_resources_max,
            time_max: self.scan_time_max,
        };
        ScanPool::new(self.scans_concurrent_max, self.scan_queue_wait, limits)
    }
}

/// What every handler shares.
pub(crate) struct Service {
    /// The engine whose tenants the requests read and write.
    pub(crate) engine: Arc<Engine>,
    /// Checks the requests' bearer tokens.
    pub(crate) authenticator: Arc<dyn Authenticator>,
    /// The bounds and the mount path.
    pub(crate) settings: Settings,
    /// Where list and search requests that scan run.
    pub(crate) scans: ScanPool,
}
