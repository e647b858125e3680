//! The mass-deactivation guard: if a snapshot would deactivate or delete more than the
//! configured share of the users the integration owns (default 10 %), nothing is applied; a
//! [`Event::ReconcileHeld`] records the hold, and an operator confirms or rejects it. An IdP
//! outage or a permissions change must never look like everyone leaving the company.

use serde::{Deserialize, Serialize};

use super::policy::ReconcilePolicy;
use super::report::ReconcileReport;
use super::snapshot::DirectorySnapshot;
use crate::event::{Cause, Envelope, Event, HoldSummary, Source};

/// Whether the mass-deactivation guard applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Guard {
    /// Hold a snapshot that removes too many users.
    Enforce,
    /// An operator confirmed this snapshot: apply it whatever it removes.
    Confirmed,
}

/// The hold a plan's `report` calls for, if any: the guard applies and the deactivations and
/// deletions exceed the policy's share of the `owned_users` (a share, so an integration that
/// owns no user is never held).
pub(super) fn hold(
    guard: Guard,
    policy: &ReconcilePolicy,
    owned_users: u32,
    report: &ReconcileReport,
) -> Option<HoldSummary> {
    let removals = report.users_deactivated + report.users_deleted;
    let limit_permille = policy.hold_above_permille;
    let over_limit = owned_users > 0 && u64::from(removals) * 1000 > u64::from(limit_permille) * u64::from(owned_users);
    if guard == Guard::Confirmed || !over_limit {
        return None;
    }
    Some(HoldSummary {
        owned_users,
        deactivations: report.users_deactivated,
        deletions: report.users_deleted,
        limit_permille,
    })
}

/// The event that records a hold of `snapshot`.
pub(crate) fn held_event(snapshot: &DirectorySnapshot, summary: HoldSummary) -> Envelope {
    Envelope {
        source: Source::Integration {
            integration: snapshot.integration.clone(),
            run: snapshot.run,
        },
        cause: Cause::Unspecified,
        event: Event::ReconcileHeld {
            integration: snapshot.integration.clone(),
            run: snapshot.run,
            summary,
        },
    }
}
