//! The leavers of a period: every user deactivated or deleted since a moment, how long each
//! one's access took to go and to be acknowledged as gone, the slowest offboardings, and,
//! flagged loudly, any leaver who still holds access, any revocation the consumer has not
//! acknowledged within the tenant's threshold, and any sync the guard holds that would take
//! users out.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use idpsync_storage::{Hash32, LogStore, Seq, TenantId, Timestamp};

use super::chain::{Chains, Keep};
use super::{AuditError, Door, Held, Offboarding, Standing};
use crate::error::EngineError;
use crate::event::{Event, LoggedEvent};
use crate::ids::{Member, TokenId, UserId};
use crate::model::ResourceKind;
use crate::reader::EventPages;
use crate::roles::{self, RoleAssignment, RoleChange};
use crate::seal::Keyring;
use crate::state::State;
use crate::tenant::{Tenant, seq_at_time};

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

/// Where a report reads: a tenant's log in a store, up to a head, and the keys that open its
/// sealed profiles.
pub struct ReportLog<'a> {
    /// The store.
    pub store: &'a Arc<dyn LogStore>,
    /// The tenant.
    pub tenant: &'a TenantId,
    /// The last record the report covers.
    pub head: Seq,
    /// The tenant's keys.
    pub keyring: &'a Keyring,
}

/// What a report says beyond the log.
pub struct ReportContext<'a> {
    /// Token names by id, to name doors.
    pub token_names: &'a BTreeMap<TokenId, String>,
    /// How long the consumer may take to acknowledge a revocation.
    pub ack_within: Duration,
    /// The held syncs that would take users out ([`held_leavers`] of a running tenant).
    pub held: Vec<HeldLeavers>,
}

/// The leavers of `tenant` since `since`, up to its published head, naming tokens from
/// `token_names`.
pub async fn leavers_report(
    tenant: &Tenant,
    since: Timestamp,
    token_names: &BTreeMap<TokenId, String>,
) -> Result<LeaversReport, AuditError> {
    let keyring = tenant.keyring();
    let log = ReportLog {
        store: tenant.store(),
        tenant: tenant.id(),
        head: tenant.state().seq(),
        keyring,
    };
    let context = ReportContext {
        token_names,
        ack_within: tenant.settings().revocation_ack_within,
        held: held_leavers(tenant),
    };
    leavers_report_from_log(log, since, context).await
}

/// The leavers of a tenant since `since`, read from its log alone, in memory that does not grow
/// with the log: no tenant is loaded. Two passes over the log: the first finds the period's
/// leavers (and whether any role binding was ever set); the second folds, into a state of its
/// own, only what bears on them: their own events, every group's events with the memberships
/// of other users left out, and the bindings (see the module docs of [`crate::audit`]). A tenant
/// that ever had a role binding is folded whole instead, for the role changes of every user.
pub async fn leavers_report_from_log(
    log: ReportLog<'_>,
    since: Timestamp,
    context: ReportContext<'_>,
) -> Result<LeaversReport, AuditError> {
    let head = log.head;
    // The period starts with the first record at or after `since`: after the last one before it.
    let before = Timestamp(since.0.saturating_sub(1));
    let from_seq = seq_at_time(log.store, log.tenant, before).await?.min(head).next();
    let period = read_period(&log, from_seq).await?;
    let mut chains = Chains::new(
        period.leaves.iter().map(|leave| leave.user),
        Keep::Offboarding,
        log.keyring,
        context.token_names,
    );
    let mut role_changes = Vec::new();
    let mut events = EventPages::new(log.store, log.tenant, Seq(1)..=head);
    while let Some(page) = events.next_page().await? {
        for (event, chain) in page {
            let event = match period.role_bindings {
                true => event,
                false => match bearing_on_watched(event, &chains) {
                    Some(event) => event,
                    None => continue,
                },
            };
            let projection = chains.fold(&event, chain);
            if event.seq >= from_seq {
                role_changes.extend(projection.roles);
            }
        }
    }
    let present = chains.state().clone();
    let leavers: Vec<Leaver> = period
        .leaves
        .into_iter()
        .map(|leave| {
            let audit = chains
                .take(leave.user)
                .into_audit(leave.user, &present, log.tenant.clone(), head);
            Leaver {
                user: leave.user,
                user_name: audit.user_name.clone(),
                how: leave.how,
                seq: leave.event.seq,
                left_at: leave.event.recorded_at,
                chain: leave.chain,
                door: audit.steps.iter().find(|step| step.seq == leave.event.seq).map_or_else(
                    || Door::of(&leave.event, context.token_names, None),
                    |step| step.door.clone(),
                ),
                standing: audit.standing,
                revoked: audit.revocations().count(),
                time_to_revoke_us: audit.time_to_revoke_us,
                still_holds: audit.still_holds,
                offboarding: audit.offboarding,
            }
        })
        .collect();
    let times: Vec<i64> = leavers.iter().filter_map(|leaver| leaver.time_to_revoke_us).collect();
    let generated_at = Timestamp::now();
    let ack_within_us = i64::try_from(context.ack_within.as_micros()).unwrap_or(i64::MAX);
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
    Ok(LeaversReport {
        tenant: log.tenant.clone(),
        since,
        from_seq,
        head,
        generated_at,
        count: leavers.len(),
        median_time_to_revoke_us: median(&times),
        max_time_to_revoke_us: times.iter().copied().max(),
        still_holding: leavers.iter().filter(|leaver| !leaver.still_holds.is_empty()).count(),
        leavers,
        held: context.held,
        ack_within_us,
        unacknowledged,
        slowest,
        admin_changes: admin_changes(&present, role_changes),
    })
}

/// A user's first leave in the period.
struct Leave {
    user: UserId,
    how: LeaveKind,
    event: LoggedEvent,
    chain: Hash32,
}

/// What the first pass finds.
struct Period {
    /// The first leave of each user who left in the period, in log order.
    leaves: Vec<Leave>,
    /// Whether a role binding was set at any record up to the head.
    role_bindings: bool,
}

/// The first pass over the log: the leaves from `from_seq` on, and whether a role binding was
/// ever set.
async fn read_period(log: &ReportLog<'_>, from_seq: Seq) -> Result<Period, EngineError> {
    let mut seen = HashSet::new();
    let mut period = Period {
        leaves: Vec::new(),
        role_bindings: false,
    };
    let mut events = EventPages::new(log.store, log.tenant, Seq(1)..=log.head);
    while let Some(page) = events.next_page().await? {
        for (event, chain) in page {
            let (user, how) = match &event.envelope.event {
                Event::BindingSet { resource, .. } => {
                    period.role_bindings |= resource.kind == ResourceKind::Role;
                    continue;
                }
                Event::UserDeactivated { user } => (*user, LeaveKind::Deactivated),
                Event::UserDeleted { user } => (*user, LeaveKind::Deleted),
                _ => continue,
            };
            if event.seq >= from_seq && seen.insert(user) {
                period.leaves.push(Leave {
                    user,
                    how,
                    event,
                    chain,
                });
            }
        }
    }
    Ok(period)
}

/// `event` with what bears on no watched user left out, or `None` if nothing is left: another
/// user's own events and acknowledgements, and other users in membership changes. Groups,
/// bindings and everything else stay, since a watched user's access and the names of its steps
/// depend on them.
fn bearing_on_watched(mut event: LoggedEvent, chains: &Chains<'_>) -> Option<LoggedEvent> {
    let watched = |member: &Member| match member {
        Member::User(user) => chains.watches(*user),
        Member::Group(_) => true,
    };
    match &mut event.envelope.event {
        Event::MembersAdded { members, .. } | Event::MembersRemoved { members, .. } => {
            members.retain(watched);
            if members.is_empty() {
                return None;
            }
        }
        Event::RevocationAcknowledged { user, .. } if !chains.watches(*user) => return None,
        other => {
            if let Some(user) = other.user()
                && !chains.watches(user)
            {
                return None;
            }
        }
    }
    Some(event)
}

/// The role changes among `changes` that made a user an admin or stopped it being one (see
/// [`AdminChange`]), named as `present` names them.
fn admin_changes(present: &State, changes: Vec<RoleChange>) -> Vec<AdminChange> {
    let default = roles::default_role(present);
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
    changes
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
        .collect()
}

/// The syncs the guard holds that would deactivate or delete users.
pub fn held_leavers(tenant: &Tenant) -> Vec<HeldLeavers> {
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
