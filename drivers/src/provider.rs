//! The contract between a [`Driver`](crate::Driver) and its vendor's code: [`Provider`], what a
//! listing returns ([`Fetched`]) and where an incremental one starts ([`Cursor`]). It sits below
//! both: the driver and every module in `providers` import it, and it imports neither.

use serde::{Deserialize, Serialize};

use crate::client::{IdpClient, Run};
use crate::error::DriverError;
use crate::listing::Listing;

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
