//! [`ReconcilePolicy`]: a tenant's reconcile settings: the guard's limit, its window and how
//! long a hold can be confirmed, and what happens to users the IdP no longer lists.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What happens to users the IdP no longer lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MissingUsers {
    /// Delete them (their history stays in the log).
    Delete,
    /// Deactivate them.
    Deactivate,
}

/// A tenant's reconcile settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcilePolicy {
    /// Hold a run that, with the integration's runs within `hold_window`, would take access
    /// from more than this many thousandths of the integration's users (100 = 10 %; the
    /// formula is in the guard's documentation, [`GuardCount`](super::GuardCount)).
    pub hold_above_permille: u32,
    /// How far back the guard adds up what an integration's runs removed.
    pub hold_window: Duration,
    /// A held run older than this can no longer be confirmed: what it listed is stale.
    pub hold_expires_after: Duration,
    /// What happens to users the IdP no longer lists.
    pub missing_users: MissingUsers,
}

impl Default for ReconcilePolicy {
    fn default() -> Self {
        ReconcilePolicy {
            hold_above_permille: 100,
            hold_window: Duration::from_secs(24 * 3600),
            hold_expires_after: Duration::from_secs(24 * 3600),
            missing_users: MissingUsers::Delete,
        }
    }
}
