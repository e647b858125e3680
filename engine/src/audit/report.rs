//! The leavers of a period: every user deactivated or deleted since a moment, how long each
//! one's access took to go and to be acknowledged as gone, the slowest offboardings, and,
//! flagged loudly, any leaver who still holds access, any revocation the consumer has not
//! acknowledged within the tenant's threshold, and any sync the guard holds that would take
//! users out.

use std::collections::BTreeSet;

use idpsync_storage::{Hash32, Seq, TenantId, Timestamp};

use super::{AuditError, AuditSources, Door, Held, Offboarding, Standing, audit_user};
use crate::event::Event;
use crate::ids::UserId;
use crate::roles::{self, RoleAssignment};
use crate::tenant::Tenant;

/// How a leaver left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaveKind {
    /// Deactivated.
    Deactivated,
    /// Deleted.
    Deleted,
}

impl LeaveKind {
    /// In words: `deactivated`, `deleted`.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaveKind::Deactivated => "deactivated",
            LeaveKind::Deleted => "deleted",
        }
    }
}

/// One leaver of the period.
#[derive(Clone, Debug)]
pub struct Leaver {
    /// The user.
    pub user: UserId,
    /// Its userName as last known.
    pub user_name: String,
    /// The first leave in the period.
    pub how: LeaveKind,
    /// That record.
    pub seq: Seq,
    /// When.
    pub left_at: Timestamp,
    /// Its chain link.
    pub chain: Hash32,
    /// Its door.
    pub door: Door,
    /// Where the user stands now.
    pub standing: Standing,
    /// Access revoked at or after its last leave.
    pub revoked: usize,
    /// From the leave reaching IdP-Sync to the last access it took away.
    pub time_to_revoke_us: Option<i64>,
    /// Access it holds now: an alarm.
    pub still_holds: Vec<Held>,
    /// Its leave's chain to the consumer's acknowledgements.
    pub offboarding: Option<Offboarding>,
}

/// A leaver whose revocations the consumer has not all acknowledged within the tenant's
/// threshold.
#[derive(Clone, Debug)]
pub struct Unacknowledged {
    /// The user.
    pub user: UserId,
    /// Its userName as last known.
    pub user_name: String,
    /// Revocations without an acknowledgement.
    pub waiting: usize,
    /// When the last of its revocations was recorded.
    pub revoked_at: Timestamp,
    /// Microseconds from then to the report.
    pub waiting_us: i64,
}

/// One of the slowest closed offboardings of the period.
#[derive(Clone, Debug)]
pub struct SlowOffboarding {
    /// The user.
    pub user: UserId,
    /// Its userName as last known.
    pub user_name: String,
    /// Its chain.
    pub offboarding: Offboarding,
}

/// A sync the guard holds that would deactivate or delete users: leavers whose access is
/// still there until someone confirms it.
#[derive(Clone, Debug)]
pub struct HeldLeavers {
    /// The integration.
    pub integration: String,
    /// The log head when it was held.
    pub held_at: Seq,
    /// Users it would deactivate.
    pub deactivations: u32,
    /// Users it would delete.
    pub deletions: u32,
    /// Its user deactivations and deletions, as the planner wrote them.
    pub changes: Vec<String>,
}

/// A user who gained or lost an administrator's role in the period: a role other than the
/// tenant's default role (as it is set now) and [`crate::roles::DEFAULT_ROLE`].
#[derive(Clone, Debug)]
pub struct AdminChange {
    /// The user.
    pub user: UserId,
    /// Its userName as it reads now (its id once deleted).
    pub user_name: String,
    /// The record that changed the role.
    pub seq: Seq,
    /// When.
    pub at: Timestamp,
    /// Whether the user became an admin (else it stopped being one).
    pub gained: bool,
    /// The role before (none: no role).
    pub old: Option<String>,
    /// The role after (none: no role).
    pub new: Option<String>,
    /// Why: the name of the group that gives the new role or, for a loss, gave the old one.
    pub group: Option<String>,
}

/// The report over a period.
#[derive(Clone, Debug)]
pub struct LeaversReport {
    /// The tenant.
    pub tenant: TenantId,
    /// The period's start.
    pub since: Timestamp,
    /// The first record of the period.
    pub from_seq: Seq,
    /// The last record read.
    pub head: Seq,
    /// When the report was made.
    pub generated_at: Timestamp,
    /// How many users left.
    pub count: usize,
    /// Median time to revoke, over leavers whose access is gone.
    pub median_time_to_revoke_us: Option<i64>,
    /// Longest time to revoke.
    pub max_time_to_revoke_us: Option<i64>,
    /// Leavers who hold access now.
    pub still_holding: usize,
    /// Each leaver, in the order they left.
    pub leavers: Vec<Leaver>,
    /// Held syncs that would take users out.
    pub held: Vec<HeldLeavers>,
    /// How long the consumer may take to acknowledge a revocation.
    pub ack_within_us: i64,
    /// Leavers with revocations unacknowledged for longer than that: an alarm.
    pub unacknowledged: Vec<Unacknowledged>,
    /// The slowest closed offboardings (from the IdP's change to the last acknowledgement),
    /// slowest first, at most [`SLOWEST_SHOWN`].
    pub slowest: Vec<SlowOffboarding>,
    /// Users who gained or lost an administrator's role in the period, in log order.
    pub admin_changes: Vec<AdminChange>,
}

/// How many of the slowest offboardings a report shows.
pub const SLOWEST_SHOWN: usize = 5;

impl LeaversReport {
    /// Whether anything needs a person's attention.
    pub fn has_alarms(&self) -> bool {
        self.still_holding > 0 || !self.held.is_empty() || !self.unacknowledged.is_empty()
    }
}

/// The leavers of `tenant` since `since`, up to its published head.
pub async fn leavers_report(
    tenant: &Tenant,
    since: Timestamp,
    sources: &AuditSources<'_>,
) -> Result<LeaversReport, AuditError> {
    let head = tenant.state().seq();
    let from_seq = tenant.seq_at(since).next();
    let mut seen = BTreeSet::new();
    let mut leavers = Vec::new();
    let mut events = tenant.events(from_seq..=head);
    while let Some(page) = events.next_page().await? {
        for (event, chain) in page {
            let (user, how) = match event.envelope.event {
                Event::UserDeactivated { user } => (user, LeaveKind::Deactivated),
                Event::UserDeleted { user } => (user, LeaveKind::Deleted),
                _ => continue,
            };
            if !seen.insert(user) {
                continue;
            }
            let audit = audit_user(tenant, user, sources).await?;
            leavers.push(Leaver {
                user,
                user_name: audit.user_name.clone(),
                how,
                seq: event.seq,
                left_at: event.recorded_at,
                chain,
                door: audit
                    .steps
                    .iter()
                    .find(|step| step.seq == event.seq)
                    .map_or_else(|| Door::of(&event, sources.token_names, None), |step| step.door.clone()),
                standing: audit.standing,
                revoked: audit.revocations().count(),
                time_to_revoke_us: audit.time_to_revoke_us,
                still_holds: audit.still_holds,
                offboarding: audit.offboarding,
            });
        }
    }
    let times: Vec<i64> = leavers.iter().filter_map(|leaver| leaver.time_to_revoke_us).collect();
    let generated_at = Timestamp::now();
    let ack_within_us = i64::try_from(tenant.settings().revocation_ack_within.as_micros()).unwrap_or(i64::MAX);
    let unacknowledged = leavers
        .iter()
        .filter_map(|leaver| {
            let offboarding = leaver.offboarding?;
            let revoked_at = offboarding.revoked_at?;
            let waiting_us = generated_at.0 - revoked_at.0;
            (offboarding.unacknowledged() > 0 && waiting_us > ack_within_us).then(|| Unacknowledged {
                user: leaver.user,
                user_name: leaver.user_name.clone(),
                waiting: offboarding.unacknowledged(),
                revoked_at,
                waiting_us,
            })
        })
        .collect();
    let mut slowest: Vec<SlowOffboarding> = leavers
        .iter()
        .filter_map(|leaver| {
            let offboarding = leaver.offboarding?;
            offboarding.total_us().map(|_| SlowOffboarding {
                user: leaver.user,
                user_name: leaver.user_name.clone(),
                offboarding,
            })
        })
        .collect();
    slowest.sort_by_key(|slow| std::cmp::Reverse(slow.offboarding.total_us()));
    slowest.truncate(SLOWEST_SHOWN);
    // Finding role changes replays the period over a second state; a tenant that never had a
    // role binding has none, and skips that replay (and its memory: a second full state).
    let admin_changes = if sources.bindings.had_role_bindings(head) {
        admin_changes(tenant, from_seq, head).await?
    } else {
        Vec::new()
    };
    Ok(LeaversReport {
        tenant: tenant.id().clone(),
        since,
        from_seq,
        head,
        generated_at,
        count: leavers.len(),
        median_time_to_revoke_us: median(&times),
        max_time_to_revoke_us: times.iter().copied().max(),
        still_holding: leavers.iter().filter(|leaver| !leaver.still_holds.is_empty()).count(),
        leavers,
        held: held_leavers(tenant),
        ack_within_us,
        unacknowledged,
        slowest,
        admin_changes,
    })
}

/// The role changes of the records `from..=to` that made a user an admin or stopped it being
/// one (see [`AdminChange`]).
async fn admin_changes(tenant: &Tenant, from: Seq, to: Seq) -> Result<Vec<AdminChange>, AuditError> {
    let present = tenant.state();
    let default = roles::default_role(&present);
    let admin = |held: &Option<RoleAssignment>| {
        held.as_ref()
            .is_some_and(|held| held.role != roles::DEFAULT_ROLE && roles::is_admin(&held.role, &default))
    };
    let group_name = |held: &Option<RoleAssignment>| {
        held.as_ref().and_then(|held| held.via).map(|via| {
            present
                .group(via)
                .map_or_else(|| via.to_string(), |group| group.display_name.clone())
        })
    };
    Ok(tenant
        .role_changes(from, to)
        .await?
        .into_iter()
        .filter(|change| admin(&change.old) != admin(&change.new))
        .map(|change| {
            let gained = admin(&change.new);
            AdminChange {
                user: change.user,
                user_name: present
                    .user(change.user)
                    .map_or_else(|| change.user.to_string(), |found| found.profile.user_name.clone()),
                seq: change.seq,
                at: change.recorded_at,
                gained,
                group: if gained {
                    group_name(&change.new)
                } else {
                    group_name(&change.old)
                },
                old: change.old.map(|held| held.role),
                new: change.new.map(|held| held.role),
            }
        })
        .collect())
}

/// The syncs the guard holds that would deactivate or delete users.
fn held_leavers(tenant: &Tenant) -> Vec<HeldLeavers> {
    tenant
        .held()
        .into_iter()
        .filter_map(|(integration, hold)| {
            let summary = hold.report.held.clone()?;
            (summary.deactivations + summary.deletions > 0).then(|| HeldLeavers {
                integration: integration.to_string(),
                held_at: hold.held_at,
                deactivations: summary.deactivations,
                deletions: summary.deletions,
                changes: hold
                    .report
                    .changes
                    .iter()
                    .filter(|line| line.action.contains("deactivated") || line.action.contains("deleted"))
                    .filter(|line| line.action.starts_with("user"))
                    .map(|line| format!("{} {}", line.action, line.object))
                    .collect(),
            })
        })
        .collect()
}

/// The median of `values` (the mean of the two middle ones for an even count).
fn median(values: &[i64]) -> Option<i64> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let middle = sorted.len() / 2;
    match sorted.len() {
        0 => None,
        len if len % 2 == 1 => Some(sorted[middle]),
        _ => Some((sorted[middle - 1] + sorted[middle]) / 2),
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[5]), Some(5));
        assert_eq!(median(&[9, 1, 5]), Some(5));
        assert_eq!(median(&[4, 1, 10, 2]), Some(3));
    }
}
