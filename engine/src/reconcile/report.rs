//! [`ReconcileReport`]: what a reconcile did or, planned, would do, for people to read.

use serde::Serialize;

use super::guard::GuardCount;
use crate::event::HoldSummary;
use crate::ids::Timestamp;

/// One planned or applied change, for people to read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChangeLine {
    /// `user created`, `user deactivated`, `group renamed`, `member added`, …
    pub action: &'static str,
    /// The object, by IdP id and name.
    pub object: String,
}

/// Something a complete listing no longer contains whose absence has not taken effect: pending
/// (see [`crate::absence`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AbsentLine {
    /// `user`, `group` or `membership`.
    pub kind: &'static str,
    /// The object, by name and IdP id.
    pub object: String,
    /// Consecutive complete listings it has been absent from, this one included.
    pub listings: u32,
    /// The listings it takes to take effect.
    pub needed: u32,
    /// When the first of them was recorded.
    pub since: Timestamp,
    /// When it takes effect at the next complete listing however few listings saw it, if the
    /// integration sets a time.
    pub takes_effect_after: Option<Timestamp>,
}

/// What a reconcile did, or would do.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    /// Users created.
    pub users_created: u32,
    /// Users whose attributes changed.
    pub users_updated: u32,
    /// Users deactivated.
    pub users_deactivated: u32,
    /// Users reactivated.
    pub users_reactivated: u32,
    /// Users deleted.
    pub users_deleted: u32,
    /// Groups created.
    pub groups_created: u32,
    /// Groups renamed.
    pub groups_renamed: u32,
    /// Groups deleted.
    pub groups_deleted: u32,
    /// Membership edges added.
    pub memberships_added: u32,
    /// Membership edges removed.
    pub memberships_removed: u32,
    /// Membership edges naming an object the snapshot does not have (filtered out, or unknown).
    pub unresolved_members: u32,
    /// Objects skipped, and why (a userName another owner has, a duplicate id, a bad value).
    pub conflicts: Vec<String>,
    /// Every change, in order.
    pub changes: Vec<ChangeLine>,
    /// What the listing no longer contains but is not removed yet: pending absences.
    pub pending: Vec<AbsentLine>,
    /// What the guard counted: the users it takes access from, with the integration's
    /// recent runs, against the limit.
    pub guard: GuardCount,
    /// Set when the guard held the snapshot.
    pub held: Option<HoldSummary>,
    /// Whether the changes leave the tenant without an Owner while it had one: a reason to
    /// hold, whatever the share (see [`crate::roles`]).
    pub removes_last_owner: bool,
}

impl ReconcileReport {
    /// Whether it changes anything.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}
