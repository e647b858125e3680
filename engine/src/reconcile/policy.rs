//! [`ReconcilePolicy`]: a tenant's reconcile settings, the guard's limit and what happens to
//! users the IdP no longer lists.

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
    /// Hold a snapshot that would deactivate or delete more than this many thousandths of the
    /// integration's users (100 = 10 %).
    pub hold_above_permille: u32,
    /// What happens to users the IdP no longer lists.
    pub missing_users: MissingUsers,
}

impl Default for ReconcilePolicy {
    fn default() -> Self {
        ReconcilePolicy {
            hold_above_permille: 100,
            missing_users: MissingUsers::Delete,
        }
    }
}
