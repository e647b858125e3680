//! The offboarding audit: for a user, the chain from the IdP's deactivation or deletion through
//! the events it caused to every access it revoked, with times, latencies and the log
//! positions (`seq` and chain link) that prove each step; and a report over all leavers of a
//! period. The reports are plain values; rendering them (text, HTML, JSON) is the caller's.
//!
//! # How a user's chain is found without replaying the log
//! A user's grants depend only on its own events (active or not), the groups it is in,
//! directly or through nesting, and the bindings of those groups. The history index names the
//! events that touched the user and each group ([`crate::Tenant::timeline`]); the binding
//! changes come from [`BindingLog`]. Folding just those events into an empty state and running
//! the projector on each ([`crate::projector::fold_and_project`]) gives exactly the access
//! changes the writer computed for this user, at the same `seq`s: the fold ignores what the
//! events say about anything else, and the projector is a function of the state before and
//! after.
//!
//! # A period's report in bounded memory
//! The leavers' report ([`leavers_report_from_log`]) needs no history index and no loaded
//! tenant: one pass over the log finds the period's leavers, a second folds, into a state of its
//! own, only what bears on them (their own events, the groups with other users' memberships
//! left out, the bindings), keeping each leaver's steps as [`audit_user`] would. Its memory grows
//! with the leavers and the groups, not with the log or the directory. A tenant that ever had a
//! role binding is folded whole (the report lists every user's admin role changes), in the
//! memory of one state of the directory.
//!
//! # Latency
//! Each step caused by the IdP says when the IdP's change reached IdP-Sync: the SCIM request's
//! id and a sync run's id are UUID v7, stamped when the request arrived and when the run
//! started. A revocation's latency is from that moment to the record that revoked the access.
//! Where the IdP dated the change itself (a sync run that read it from the IdP's change feed,
//! or from the user's time of its last status change: [`crate::Cause::IdpObjectChanged`]),
//! the step's door has that time too, and a leave's chain ([`Offboarding`]) starts there.
//!
//! # Layout
//! - this file: what an audit is made of ([`UserAudit`], [`Step`], [`Door`]) and reads
//!   ([`AuditSources`]);
//! - [`chain`]: one user's chain ([`audit_user`]);
//! - [`report`]: the leavers of a period ([`leavers_report`], [`leavers_report_from_log`]);
//! - [`scan`]: reading stretches of the log: the binding changes, a user by a former userName.

pub mod chain;
pub mod report;
pub mod scan;

use std::collections::BTreeMap;

use idpsync_storage::{Hash32, Seq, TenantId, Timestamp};

pub use chain::audit_user;
pub use report::{
    AdminChange, HeldLeavers, LeaveKind, Leaver, LeaversReport, ReportContext, ReportLog, SLOWEST_SHOWN,
    SlowOffboarding, Unacknowledged, held_leavers, leavers_report, leavers_report_from_log,
};
pub use scan::{BindingLog, BindingLogs, resolve_user};

use crate::error::EngineError;
use crate::event::{Cause, LoggedEvent, Source};
use crate::ids::{GroupId, RequestId, SyncRunId, TokenId, UserId};
use crate::model::{BindingRole, ResourceRef, User};
use crate::projector::AccessDirection;

/// Which door a step came through, and what exactly caused it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Door {
    /// A SCIM request.
    Scim {
        /// The token's id.
        token: TokenId,
        /// The token's name, when the token store still has it.
        token_name: Option<String>,
        /// The request's id.
        request: Option<RequestId>,
    },
    /// A sync run of an integration.
    Integration {
        /// The integration.
        integration: String,
        /// The run.
        run: SyncRunId,
        /// The IdP's id of the object the step is about.
        idp_object: Option<String>,
        /// When the IdP made the change, by its own clock, where it said so (its change
        /// feed, or the object's time of its last status change).
        idp_changed_at: Option<Timestamp>,
    },
    /// The management API.
    Admin {
        /// The admin token's id.
        token: TokenId,
        /// The token's name.
        token_name: Option<String>,
        /// The request's id.
        request: Option<RequestId>,
    },
    /// An operator on the command line.
    Operator,
    /// The synthetic workload.
    Workload,
}

impl Door {
    /// The door of `event`, naming tokens from `token_names`. An IdP object that is the
    /// event's user ([`Cause::IdpUser`]) is named by the externalId of `user`, if that is the
    /// event's user: its record as of the event, as far as it can be read (not once erased).
    pub(crate) fn of(event: &LoggedEvent, token_names: &BTreeMap<TokenId, String>, user: Option<&User>) -> Door {
        let request = match &event.envelope.cause {
            Cause::Request(id) => Some(*id),
            _ => None,
        };
        match &event.envelope.source {
            Source::Scim { token } => Door::Scim {
                token: *token,
                token_name: token_names.get(token).cloned(),
                request,
            },
            Source::Integration { integration, run } => Door::Integration {
                integration: integration.to_string(),
                run: *run,
                idp_object: match &event.envelope.cause {
                    Cause::IdpObject(id) | Cause::IdpObjectChanged { object: id, .. } => Some(id.clone()),
                    Cause::IdpUser | Cause::IdpUserChanged { .. } => user
                        .filter(|user| event.envelope.event.user() == Some(user.id))
                        .and_then(|user| user.external_id.clone()),
                    Cause::Request(_) | Cause::Unspecified => None,
                },
                idp_changed_at: event.envelope.cause.idp_changed_at(),
            },
            Source::Admin { token } => Door::Admin {
                token: *token,
                token_name: token_names.get(token).cloned(),
                request,
            },
            Source::Operator => Door::Operator,
            Source::Workload => Door::Workload,
        }
    }

    /// When the IdP made the change, by its own clock, where it said so.
    pub fn idp_changed_at(&self) -> Option<Timestamp> {
        match self {
            Door::Integration { idp_changed_at, .. } => *idp_changed_at,
            _ => None,
        }
    }

    /// When the change reached IdP-Sync: the time in the UUID v7 of the SCIM or API request,
    /// or of the sync run (which started reading the IdP then).
    pub fn received_at(&self) -> Option<Timestamp> {
        let uuid = match self {
            Door::Scim { request: Some(id), .. } | Door::Admin { request: Some(id), .. } => id.0,
            Door::Integration { run, .. } => run.0,
            _ => return None,
        };
        let (seconds, nanos) = uuid.get_timestamp()?.to_unix();
        Some(Timestamp(seconds as i64 * 1_000_000 + i64::from(nanos / 1_000)))
    }
}

/// How a user's direct membership in a group ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MembershipEnd {
    /// The user was taken out of the group.
    Removed,
    /// The group was deleted.
    GroupDeleted,
    /// The user was deleted.
    UserDeleted,
}

impl MembershipEnd {
    /// In words: `removed`, `group deleted`, `user deleted`.
    pub fn as_str(self) -> &'static str {
        match self {
            MembershipEnd::Removed => "removed",
            MembershipEnd::GroupDeleted => "group deleted",
            MembershipEnd::UserDeleted => "user deleted",
        }
    }
}

/// What happened at one step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepKind {
    /// The user was provisioned.
    Provisioned,
    /// The user was deactivated (the IdP's leave, usually).
    Deactivated,
    /// The user was activated again.
    Reactivated,
    /// The user was deleted.
    Deleted,
    /// The user's personal fields were erased.
    Erased,
    /// The user joined a group directly.
    Joined {
        /// The group.
        group: GroupId,
        /// Its name then.
        group_name: String,
    },
    /// The user's direct membership ended.
    Left {
        /// The group.
        group: GroupId,
        /// Its name then.
        group_name: String,
        /// Why.
        how: MembershipEnd,
    },
    /// The change stream's consumer acknowledged that it applied a revocation.
    Acknowledged {
        /// The record of the revocation.
        revoked: Seq,
        /// The resource.
        resource: ResourceRef,
        /// The group's role in the resource.
        role: BindingRole,
        /// The bound group the access came through.
        via: GroupId,
        /// Its name then.
        via_name: String,
    },
    /// The user's management role changed (see [`crate::roles`]).
    Role {
        /// The role before; none when the user had none.
        old: Option<String>,
        /// The role after; none when the user has none (inactive, deleted, roles off).
        new: Option<String>,
        /// The binding that gives the new role (the default binding, or none for the built-in
        /// default).
        binding: Option<crate::ids::ResourceId>,
        /// The binding's group the user is in, with its name then; none for the default role.
        via: Option<(GroupId, String)>,
        /// The group that gave the old role, with its name then, when a group did.
        old_via: Option<(GroupId, String)>,
    },
    /// Access began or ended.
    Access {
        /// Granted or revoked.
        direction: AccessDirection,
        /// The resource.
        resource: ResourceRef,
        /// The group's role in the resource.
        role: BindingRole,
        /// The bound group the access came through.
        via: GroupId,
        /// Its name then.
        via_name: String,
    },
}

/// One step of a user's chain, with the proof of its place in the log.
#[derive(Clone, Debug)]
pub struct Step {
    /// The record.
    pub seq: Seq,
    /// When it was recorded.
    pub recorded_at: Timestamp,
    /// Its chain link.
    pub chain: Hash32,
    /// What happened.
    pub kind: StepKind,
    /// Where it came from.
    pub door: Door,
    /// For access steps: microseconds from the change reaching IdP-Sync to this record; for
    /// an acknowledgement: from the revocation's record to this one.
    pub latency_us: Option<i64>,
}

/// The user's current state, as the audit closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Active: not a leaver (or returned).
    Active,
    /// Deactivated, memberships kept, no access.
    Inactive,
    /// Deleted.
    Deleted,
}

/// A grant the user holds now.
#[derive(Clone, Debug)]
pub struct Held {
    /// The resource.
    pub resource: ResourceRef,
    /// The role.
    pub role: BindingRole,
    /// Through which group.
    pub via: GroupId,
    /// Its name.
    pub via_name: String,
}

/// A user's offboarding audit.
#[derive(Clone, Debug)]
pub struct UserAudit {
    /// The tenant.
    pub tenant: TenantId,
    /// The user.
    pub user: UserId,
    /// Its userName as last known (`erased-<id>` once erased).
    pub user_name: String,
    /// Whether its personal fields are erased.
    pub erased: bool,
    /// Where it stands now.
    pub standing: Standing,
    /// The log position the audit is as of.
    pub head: Seq,
    /// When the audit was made.
    pub generated_at: Timestamp,
    /// The step that took the user out: its last deactivation or deletion (none while it has
    /// never left, or came back).
    pub leave: Option<Step>,
    /// Every step, in log order.
    pub steps: Vec<Step>,
    /// Grants the user holds now. Empty for a leaver; anything here after a leave is an alarm.
    pub still_holds: Vec<Held>,
    /// Microseconds from the leave reaching IdP-Sync to the last access it took away (0 when
    /// the access was gone before); absent while the user is not a leaver or still holds
    /// access.
    pub time_to_revoke_us: Option<i64>,
    /// The leave's chain, step by step: the IdP's change, its record, the revocations, their
    /// acknowledgements. Set for a leaver.
    pub offboarding: Option<Offboarding>,
}

/// A leave's chain: when the IdP made the change (where it said), when the change reached
/// IdP-Sync, when it was recorded, when the last access it took away was revoked, and when the
/// consumer acknowledged the last of those revocations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offboarding {
    /// When the IdP made the change, by its own clock, where it said so (a sync run that read
    /// it from the IdP's change feed, or from the user's time of its last status change); `None`
    /// for a SCIM request and for a removal by absence, whose IdP time is not known.
    pub idp_changed_at: Option<Timestamp>,
    /// When the change reached IdP-Sync (the SCIM request's or sync run's time), where known.
    pub received_at: Option<Timestamp>,
    /// When the leave was recorded.
    pub recorded_at: Timestamp,
    /// When the last revocation at or after the leave was recorded; `None` if it revoked
    /// nothing.
    pub revoked_at: Option<Timestamp>,
    /// Revocations at or after the leave.
    pub revocations: usize,
    /// Of them, those the consumer acknowledged.
    pub acknowledged: usize,
    /// When the last acknowledgement was recorded, once every revocation has one.
    pub acknowledged_at: Option<Timestamp>,
}

impl Offboarding {
    /// Microseconds from the IdP's change to its reaching IdP-Sync, where both are known.
    pub fn to_receive_us(&self) -> Option<i64> {
        Some((self.received_at?.0 - self.idp_changed_at?.0).max(0))
    }

    /// Microseconds from the change reaching IdP-Sync to its record.
    pub fn to_record_us(&self) -> Option<i64> {
        self.received_at.map(|at| (self.recorded_at.0 - at.0).max(0))
    }

    /// Microseconds from the record to the last revocation.
    pub fn to_revoke_us(&self) -> Option<i64> {
        self.revoked_at.map(|at| (at.0 - self.recorded_at.0).max(0))
    }

    /// Microseconds from the last revocation to the last acknowledgement.
    pub fn to_acknowledge_us(&self) -> Option<i64> {
        Some((self.acknowledged_at?.0 - self.revoked_at?.0).max(0))
    }

    /// Microseconds from the first known moment (the IdP's change, else reached IdP-Sync, else
    /// recorded) to the last acknowledgement: the whole offboarding, once it is closed.
    pub fn total_us(&self) -> Option<i64> {
        let start = self.idp_changed_at.or(self.received_at).unwrap_or(self.recorded_at);
        Some((self.acknowledged_at?.0 - start.0).max(0))
    }

    /// Revocations still waiting for their acknowledgement.
    pub fn unacknowledged(&self) -> usize {
        self.revocations - self.acknowledged
    }
}

impl UserAudit {
    /// The acknowledgement step of a revocation step, if the consumer acknowledged it.
    pub fn acknowledgement_of(&self, revocation: &Step) -> Option<&Step> {
        let StepKind::Access {
            resource, role, via, ..
        } = &revocation.kind
        else {
            return None;
        };
        self.steps.iter().find(|step| {
            matches!(&step.kind, StepKind::Acknowledged { revoked, resource: r, role: o, via: v, .. }
                if *revoked == revocation.seq && r == resource && o == role && v == via)
        })
    }

    /// Access steps revoked at or after the leave.
    pub fn revocations(&self) -> impl Iterator<Item = &Step> {
        let from = self.leave.as_ref().map_or(Seq(u64::MAX), |leave| leave.seq);
        self.steps.iter().filter(move |step| {
            step.seq >= from
                && matches!(
                    step.kind,
                    StepKind::Access {
                        direction: AccessDirection::Revoked,
                        ..
                    }
                )
        })
    }
}

/// Why an audit could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The engine or the log failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The log has never had this user.
    #[error("tenant {tenant} has no user {user}")]
    UnknownUser {
        /// The tenant.
        tenant: TenantId,
        /// What was asked for.
        user: String,
    },
}

/// What an audit reads besides the tenant.
pub struct AuditSources<'a> {
    /// The tenant's binding changes, caught up with its head.
    pub bindings: &'a BindingLog,
    /// Token names by id, to name doors.
    pub token_names: &'a BTreeMap<TokenId, String>,
}
