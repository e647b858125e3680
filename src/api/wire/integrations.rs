//! The JSON shapes of integrations: sync status, the snapshot the mass-deactivation guard
//! holds, pending absences, and the answers to a run on request and to a confirmed hold.

use std::time::SystemTime;

use idpsync_drivers::scheduler::{IntegrationStatus, RunCounts};
use idpsync_engine::HeldReconcile;
use idpsync_engine::event::HoldSummary;
use idpsync_engine::ids::SyncRunId;
use idpsync_engine::reconcile::{AbsentLine, ChangeLine, GuardCount, ReconcilePolicy, ReconcileReport};
use idpsync_storage::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AbsentRef;

/// `GET …/integrations`: the tenant's integrations.
#[derive(Serialize, ToSchema)]
pub struct IntegrationList {
    /// The scheduled integrations, then those that only have a hold or pending absences.
    pub items: Vec<IntegrationRow>,
}

/// An integration: its sync status when this service schedules it, the hold that stands and
/// what its listings found absent.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationRow {
    /// Its name.
    pub integration: String,
    /// Whether this service runs it on a schedule (`false`: it is run with `idpsync sync`, and
    /// the fields of the schedule are empty).
    pub scheduled: bool,
    /// Its provider.
    pub provider: Option<String>,
    /// Whether a run is going on.
    pub running: bool,
    /// Runs finished, failed ones included.
    pub runs: u64,
    /// Runs that failed.
    pub failures: u64,
    /// When the last run started.
    pub last_started: Option<String>,
    /// When the last run finished.
    pub last_finished: Option<String>,
    /// `applied`, `held` or `failed`.
    pub last_result: Option<String>,
    /// The last failure's message, kept until a run succeeds.
    pub last_error: Option<String>,
    /// What the last successful run warned of without failing, e.g. a deletion feed left out
    /// because the IdP refused it for want of a permission (deletions then take effect at the
    /// full runs); kept until the next successful run.
    pub last_warnings: Vec<String>,
    /// How often its task panicked and was started again.
    pub restarts: u64,
    /// Whether this replica holds its lease (only the holder runs it).
    pub lease_held: bool,
    /// What the last successful run changed.
    pub last_counts: Option<RunCountsRow>,
    /// When the next run is due.
    pub next_run: Option<String>,
    /// The snapshot the guard holds, if it holds one.
    pub held: Option<HeldSync>,
    /// What its complete listings found absent that has not taken effect yet.
    pub pending_absences: Vec<PendingAbsence>,
}

impl IntegrationRow {
    /// The row of `name`: its `status` if scheduled, its `held` snapshot judged by `policy`,
    /// and its `pending` absences.
    pub fn new(
        name: &str,
        status: Option<&IntegrationStatus>,
        held: Option<(&HeldReconcile, &ReconcilePolicy)>,
        pending_absences: Vec<PendingAbsence>,
    ) -> IntegrationRow {
        IntegrationRow {
            integration: name.to_owned(),
            scheduled: status.is_some(),
            provider: status.map(|status| status.provider.to_owned()),
            running: status.is_some_and(|status| status.running),
            runs: status.map_or(0, |status| status.runs),
            failures: status.map_or(0, |status| status.failures),
            last_started: status.and_then(|status| time(status.last_started)),
            last_finished: status.and_then(|status| time(status.last_finished)),
            last_result: status.and_then(|status| status.last_result.map(str::to_owned)),
            last_error: status.and_then(|status| status.last_error.clone()),
            last_warnings: status.map(|status| status.last_warnings.clone()).unwrap_or_default(),
            restarts: status.map_or(0, |status| status.restarts),
            lease_held: status.is_some_and(|status| status.lease_held),
            last_counts: status.and_then(|status| status.last_counts.as_ref().map(RunCountsRow::from)),
            next_run: status.and_then(|status| time(status.next_run)),
            held: held.map(|(held, policy)| HeldSync::of(held, policy)),
            pending_absences,
        }
    }
}

fn time(moment: Option<SystemTime>) -> Option<String> {
    let since = moment?.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    Some(Timestamp(i64::try_from(since.as_micros()).unwrap_or(i64::MAX)).to_rfc3339())
}

/// The counts of one run.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunCountsRow {
    /// Users read.
    pub listed_users: usize,
    /// Groups read.
    pub listed_groups: usize,
    /// Memberships read.
    pub listed_memberships: usize,
    /// Users created, updated, deactivated, reactivated or deleted.
    pub user_changes: u32,
    /// Groups created, renamed or deleted.
    pub group_changes: u32,
    /// Membership edges added or removed.
    pub membership_changes: u32,
    /// HTTP requests sent.
    pub requests: u64,
    /// How long the run took, in milliseconds.
    pub elapsed_ms: u64,
}

impl From<&RunCounts> for RunCountsRow {
    fn from(counts: &RunCounts) -> Self {
        RunCountsRow {
            listed_users: counts.listed_users,
            listed_groups: counts.listed_groups,
            listed_memberships: counts.listed_memberships,
            user_changes: counts.user_changes,
            group_changes: counts.group_changes,
            membership_changes: counts.membership_changes,
            requests: counts.requests,
            elapsed_ms: counts.elapsed_ms,
        }
    }
}

/// A snapshot the mass-deactivation guard holds: what it would change and what the guard
/// counted.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeldSync {
    /// The log position of the hold.
    pub held_at: u64,
    /// Since when the integration's snapshots have been held.
    pub held_since: String,
    /// When the hold can no longer be confirmed.
    pub expires_at: String,
    /// Whether it has expired.
    pub expired: bool,
    /// The held run: confirm names it.
    pub run: String,
    /// What the guard recorded when it held the snapshot.
    pub summary: Option<HoldSummaryRow>,
    /// Whether applying it would leave the tenant without an Owner: such a sync is held
    /// whatever the share it removes.
    pub removes_last_owner: bool,
    /// What the guard counted.
    pub guard: GuardRow,
    /// What applying it would change.
    pub planned: PlannedCounts,
    /// Every change it would make, in order.
    pub changes: Vec<ChangeLineRow>,
    /// Objects skipped, and why.
    pub conflicts: Vec<String>,
    /// What the listing no longer contains but is not removed yet.
    pub pending: Vec<AbsentLineRow>,
}

impl HeldSync {
    /// `held`, its expiry judged by `policy`.
    pub fn of(held: &HeldReconcile, policy: &ReconcilePolicy) -> HeldSync {
        let report = &held.report;
        let expires_at = held.expires_at(policy);
        HeldSync {
            held_at: held.held_at.0,
            held_since: held.held_since.to_rfc3339(),
            expires_at: expires_at.to_rfc3339(),
            expired: Timestamp::now() >= expires_at,
            run: held.snapshot.run.to_string(),
            summary: report.held.as_ref().map(HoldSummaryRow::from),
            removes_last_owner: report.removes_last_owner,
            guard: GuardRow::from(&report.guard),
            planned: PlannedCounts::from(report),
            changes: report.changes.iter().map(ChangeLineRow::from).collect(),
            conflicts: report.conflicts.clone(),
            pending: report.pending.iter().map(AbsentLineRow::from).collect(),
        }
    }
}

/// What the guard recorded when it held a snapshot.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HoldSummaryRow {
    /// Users the integration owned before.
    pub owned_users: u32,
    /// Users the snapshot would deactivate.
    pub deactivations: u32,
    /// Users the snapshot would delete.
    pub deletions: u32,
    /// The limit, in thousandths of the owned users.
    pub limit_permille: u32,
}

impl From<&HoldSummary> for HoldSummaryRow {
    fn from(summary: &HoldSummary) -> Self {
        HoldSummaryRow {
            owned_users: summary.owned_users,
            deactivations: summary.deactivations,
            deletions: summary.deletions,
            limit_permille: summary.limit_permille,
        }
    }
}

/// What the guard counted for a run, and the limit it was judged against.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GuardRow {
    /// Users the run takes access from.
    pub removals: u32,
    /// Of them, the users it deletes.
    pub deletions: u32,
    /// Users the integration owned before the run.
    pub owned_users: u32,
    /// Users the integration's earlier runs within the window took access from.
    pub earlier_removals: u32,
    /// Of them, the users those runs deleted.
    pub earlier_deletions: u32,
    /// The limit, in thousandths.
    pub limit_permille: u32,
}

impl From<&GuardCount> for GuardRow {
    fn from(guard: &GuardCount) -> Self {
        GuardRow {
            removals: guard.removals,
            deletions: guard.deletions,
            owned_users: guard.owned_users,
            earlier_removals: guard.earlier.removals,
            earlier_deletions: guard.earlier.deletions,
            limit_permille: guard.limit_permille,
        }
    }
}

/// How many objects a sync changes, by kind of change.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlannedCounts {
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
}

impl From<&ReconcileReport> for PlannedCounts {
    fn from(report: &ReconcileReport) -> Self {
        PlannedCounts {
            users_created: report.users_created,
            users_updated: report.users_updated,
            users_deactivated: report.users_deactivated,
            users_reactivated: report.users_reactivated,
            users_deleted: report.users_deleted,
            groups_created: report.groups_created,
            groups_renamed: report.groups_renamed,
            groups_deleted: report.groups_deleted,
            memberships_added: report.memberships_added,
            memberships_removed: report.memberships_removed,
        }
    }
}

/// One planned or applied change, for people to read.
#[derive(Serialize, ToSchema)]
pub struct ChangeLineRow {
    /// `user created`, `user deactivated`, `group renamed`, `member added`, …
    pub action: String,
    /// The object, by IdP id and name.
    pub object: String,
}

impl From<&ChangeLine> for ChangeLineRow {
    fn from(line: &ChangeLine) -> Self {
        ChangeLineRow {
            action: line.action.to_owned(),
            object: line.object.clone(),
        }
    }
}

/// Something a complete listing no longer contains whose absence has not taken effect.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AbsentLineRow {
    /// `user`, `group` or `membership`.
    pub kind: String,
    /// The object, by name and IdP id.
    pub object: String,
    /// Consecutive complete listings it has been absent from.
    pub listings: u32,
    /// The listings it takes to take effect.
    pub needed: u32,
    /// When the first of them was recorded.
    pub since: String,
    /// When it takes effect at the next complete listing however few listings saw it, if the
    /// integration sets a time.
    pub takes_effect_after: Option<String>,
}

impl From<&AbsentLine> for AbsentLineRow {
    fn from(line: &AbsentLine) -> Self {
        AbsentLineRow {
            kind: line.kind.to_owned(),
            object: line.object.clone(),
            listings: line.listings,
            needed: line.needed,
            since: line.since.to_rfc3339(),
            takes_effect_after: line.takes_effect_after.map(|at| at.to_rfc3339()),
        }
    }
}

/// An object the integration's complete listings found absent, not yet taken effect.
#[derive(Serialize, ToSchema)]
pub struct PendingAbsence {
    /// What is absent, by id.
    #[serde(flatten)]
    pub absent: AbsentRef,
    /// `user`, `group` or `membership`.
    pub kind: String,
    /// Its name as the state has it.
    pub name: String,
    /// Consecutive complete listings it has been absent from.
    pub listings: u32,
    /// When the first of them was recorded.
    pub since: String,
}

/// The answer to `POST …/sync`.
#[derive(Serialize, ToSchema)]
pub struct TriggerAnswer {
    /// The integration.
    pub integration: String,
    /// Always `true`: a run was asked for (it starts when the integration is idle).
    pub triggered: bool,
}

/// The body of `POST …/held/confirm`, which may be empty.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmBody {
    /// The held run that was reviewed; confirming fails with 409 if a newer listing has
    /// superseded it. Without it, the hold as it stands now is confirmed.
    #[schema(value_type = Option<String>)]
    pub run: Option<SyncRunId>,
}

/// The answer to `POST …/held/confirm`.
#[derive(Serialize, ToSchema)]
pub struct ConfirmAnswer {
    /// The integration.
    pub integration: String,
    /// Always `true`: the snapshot was applied.
    pub applied: bool,
    /// Events written.
    pub events: u64,
    /// The log's head after them.
    pub seq: u64,
    /// What the sync did.
    pub report: Option<SyncReport>,
}

/// What a sync did.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncReport {
    /// How many objects it changed, by kind of change.
    #[serde(flatten)]
    pub counts: PlannedCounts,
    /// Membership edges naming an object the snapshot does not have.
    pub unresolved_members: u32,
    /// Objects skipped, and why.
    pub conflicts: Vec<String>,
    /// Every change, in order.
    pub changes: Vec<ChangeLineRow>,
    /// What the listing no longer contains but is not removed yet.
    pub pending: Vec<AbsentLineRow>,
    /// What the guard counted.
    pub guard: GuardRow,
    /// Set when the guard held the snapshot.
    pub held: Option<HoldSummaryRow>,
}

impl From<&ReconcileReport> for SyncReport {
    fn from(report: &ReconcileReport) -> Self {
        SyncReport {
            counts: PlannedCounts::from(report),
            unresolved_members: report.unresolved_members,
            conflicts: report.conflicts.clone(),
            changes: report.changes.iter().map(ChangeLineRow::from).collect(),
            pending: report.pending.iter().map(AbsentLineRow::from).collect(),
            guard: GuardRow::from(&report.guard),
            held: report.held.as_ref().map(HoldSummaryRow::from),
        }
    }
}
