//! The JSON shapes of a user's audit and of the leavers' report, as the API answers them and
//! `idpsync audit --format json` prints them: camelCase fields, times in RFC 3339, chain links
//! in hex, each step's kind and door tagged inline.

use idpsync_engine::AccessDirection;
use idpsync_engine::audit::{
    AdminChange, Door, Held, HeldLeavers, Leaver, LeaversReport, Offboarding, SlowOffboarding, Standing, Step,
    StepKind, Unacknowledged, UserAudit,
};
use idpsync_engine::ids::{GroupId, RequestId, SyncRunId, TokenId, UserId};
use idpsync_storage::{Seq, TenantId};
use serde::Serialize;
use utoipa::ToSchema;

/// A user's audit, ready to serialise.
pub fn user(audit: &UserAudit) -> impl Serialize + '_ {
    UserAuditJson {
        tenant: &audit.tenant,
        user: audit.user,
        user_name: &audit.user_name,
        erased: audit.erased,
        standing: standing(audit.standing),
        head: audit.head,
        generated_at: audit.generated_at.to_rfc3339(),
        leave: audit.leave.as_ref().map(step),
        steps: audit.steps.iter().map(step).collect(),
        still_holds: audit.still_holds.iter().map(held).collect(),
        time_to_revoke_us: audit.time_to_revoke_us,
        offboarding: audit.offboarding.as_ref().map(offboarding),
    }
}

/// The leavers' report, ready to serialise.
pub fn report(report: &LeaversReport) -> impl Serialize + '_ {
    LeaversReportJson {
        tenant: &report.tenant,
        since: report.since.to_rfc3339(),
        from_seq: report.from_seq,
        head: report.head,
        generated_at: report.generated_at.to_rfc3339(),
        count: report.count,
        median_time_to_revoke_us: report.median_time_to_revoke_us,
        max_time_to_revoke_us: report.max_time_to_revoke_us,
        still_holding: report.still_holding,
        leavers: report.leavers.iter().map(leaver).collect(),
        held: report.held.iter().map(held_leavers).collect(),
        ack_within_us: report.ack_within_us,
        unacknowledged: report.unacknowledged.iter().map(unacknowledged).collect(),
        slowest: report.slowest.iter().map(slow).collect(),
        admin_changes: report.admin_changes.iter().map(admin_change).collect(),
    }
}

/// A user's role changing between the default one and another (an admin gained or lost).
#[derive(Serialize, ToSchema)]
#[schema(as = AdminChange)]
#[serde(rename_all = "camelCase")]
struct AdminChangeJson<'a> {
    #[schema(value_type = String)]
    user: UserId,
    user_name: &'a str,
    /// The record that changed the role.
    #[schema(value_type = u64)]
    seq: Seq,
    at: String,
    /// Whether the user became an admin (`false`: stopped being one).
    gained: bool,
    old_role: Option<&'a str>,
    new_role: Option<&'a str>,
    /// The name of the group the admin role comes (or came) through.
    group: Option<&'a str>,
}

fn admin_change(change: &AdminChange) -> AdminChangeJson<'_> {
    AdminChangeJson {
        user: change.user,
        user_name: &change.user_name,
        seq: change.seq,
        at: change.at.to_rfc3339(),
        gained: change.gained,
        old_role: change.old.as_deref(),
        new_role: change.new.as_deref(),
        group: change.group.as_deref(),
    }
}

/// A leave's chain, with the latency of each step.
#[derive(Serialize, ToSchema)]
#[schema(as = Offboarding)]
#[serde(rename_all = "camelCase")]
struct OffboardingJson {
    /// When the IdP made the change, by its own clock, where it said so (a sync that read it
    /// from the IdP's change feed or the user's time of its last status change); null for a
    /// SCIM request and for a removal by absence.
    idp_changed_at: Option<String>,
    received_at: Option<String>,
    recorded_at: String,
    revoked_at: Option<String>,
    acknowledged_at: Option<String>,
    revocations: usize,
    acknowledged: usize,
    /// From the IdP's change to its reaching IdP-Sync, where the IdP dated it.
    to_receive_us: Option<i64>,
    to_record_us: Option<i64>,
    to_revoke_us: Option<i64>,
    to_acknowledge_us: Option<i64>,
    total_us: Option<i64>,
}

fn offboarding(offboarding: &Offboarding) -> OffboardingJson {
    OffboardingJson {
        idp_changed_at: offboarding.idp_changed_at.map(|at| at.to_rfc3339()),
        received_at: offboarding.received_at.map(|at| at.to_rfc3339()),
        recorded_at: offboarding.recorded_at.to_rfc3339(),
        revoked_at: offboarding.revoked_at.map(|at| at.to_rfc3339()),
        acknowledged_at: offboarding.acknowledged_at.map(|at| at.to_rfc3339()),
        revocations: offboarding.revocations,
        acknowledged: offboarding.acknowledged,
        to_receive_us: offboarding.to_receive_us(),
        to_record_us: offboarding.to_record_us(),
        to_revoke_us: offboarding.to_revoke_us(),
        to_acknowledge_us: offboarding.to_acknowledge_us(),
        total_us: offboarding.total_us(),
    }
}

#[derive(Serialize, ToSchema)]
#[schema(as = Unacknowledged)]
#[serde(rename_all = "camelCase")]
struct UnacknowledgedJson<'a> {
    #[schema(value_type = String)]
    user: UserId,
    user_name: &'a str,
    waiting: usize,
    revoked_at: String,
    waiting_us: i64,
}

fn unacknowledged(waiting: &Unacknowledged) -> UnacknowledgedJson<'_> {
    UnacknowledgedJson {
        user: waiting.user,
        user_name: &waiting.user_name,
        waiting: waiting.waiting,
        revoked_at: waiting.revoked_at.to_rfc3339(),
        waiting_us: waiting.waiting_us,
    }
}

#[derive(Serialize, ToSchema)]
#[schema(as = SlowOffboarding)]
#[serde(rename_all = "camelCase")]
struct SlowJson<'a> {
    #[schema(value_type = String)]
    user: UserId,
    user_name: &'a str,
    offboarding: OffboardingJson,
}

fn slow(slow: &SlowOffboarding) -> SlowJson<'_> {
    SlowJson {
        user: slow.user,
        user_name: &slow.user_name,
        offboarding: offboarding(&slow.offboarding),
    }
}

/// A user's audit: its standing, each step of its chain, what it still holds.
#[derive(Serialize, ToSchema)]
#[schema(as = UserAudit)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserAuditJson<'a> {
    #[schema(value_type = String)]
    tenant: &'a TenantId,
    #[schema(value_type = String)]
    user: UserId,
    user_name: &'a str,
    erased: bool,
    standing: &'static str,
    #[schema(value_type = u64)]
    head: Seq,
    generated_at: String,
    leave: Option<StepJson<'a>>,
    steps: Vec<StepJson<'a>>,
    still_holds: Vec<HeldJson<'a>>,
    time_to_revoke_us: Option<i64>,
    offboarding: Option<OffboardingJson>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = AuditStep)]
#[serde(rename_all = "camelCase")]
struct StepJson<'a> {
    #[schema(value_type = u64)]
    seq: Seq,
    recorded_at: String,
    chain: String,
    #[serde(flatten)]
    kind: StepKindJson<'a>,
    door: DoorJson<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_us: Option<i64>,
}

/// A step's kind, tagged inline: `kind` and the fields that kind has.
#[derive(Default, Serialize, ToSchema)]
#[schema(as = AuditStepKind)]
#[serde(rename_all = "camelCase")]
struct StepKindJson<'a> {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    group: Option<GroupId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    how: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    direction: Option<AccessDirection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    via: Option<GroupId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    via_name: Option<&'a str>,
    /// For an acknowledgement: the record of the revocation.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u64>)]
    revoked: Option<Seq>,
    /// For a role change: the role before and after (`null` for none), the role binding that
    /// gives the new one, and the group that gave the old one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    old_role: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    new_role: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    binding: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    old_via: Option<GroupId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    old_via_name: Option<&'a str>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = AuditDoor)]
#[serde(tag = "door", rename_all = "lowercase")]
enum DoorJson<'a> {
    #[serde(rename_all = "camelCase")]
    Scim {
        #[schema(value_type = String)]
        token: TokenId,
        #[serde(skip_serializing_if = "Option::is_none")]
        token_name: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<String>)]
        request: Option<RequestId>,
    },
    #[serde(rename_all = "camelCase")]
    Integration {
        integration: &'a str,
        #[schema(value_type = String)]
        run: SyncRunId,
        #[serde(skip_serializing_if = "Option::is_none")]
        idp_object: Option<&'a str>,
        /// When the IdP made the change, by its own clock, where it said so.
        #[serde(skip_serializing_if = "Option::is_none")]
        idp_changed_at: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    Admin {
        #[schema(value_type = String)]
        token: TokenId,
        #[serde(skip_serializing_if = "Option::is_none")]
        token_name: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<String>)]
        request: Option<RequestId>,
    },
    Operator,
    Workload,
}

#[derive(Serialize, ToSchema)]
#[schema(as = HeldAccess)]
#[serde(rename_all = "camelCase")]
struct HeldJson<'a> {
    resource_kind: &'static str,
    resource_id: String,
    role: &'static str,
    #[schema(value_type = String)]
    via: GroupId,
    via_name: &'a str,
}

/// The leavers of a period: how fast each lost access, who still holds some, the held syncs.
#[derive(Serialize, ToSchema)]
#[schema(as = LeaversReport)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LeaversReportJson<'a> {
    #[schema(value_type = String)]
    tenant: &'a TenantId,
    since: String,
    #[schema(value_type = u64)]
    from_seq: Seq,
    #[schema(value_type = u64)]
    head: Seq,
    generated_at: String,
    count: usize,
    median_time_to_revoke_us: Option<i64>,
    max_time_to_revoke_us: Option<i64>,
    still_holding: usize,
    leavers: Vec<LeaverJson<'a>>,
    held: Vec<HeldLeaversJson<'a>>,
    ack_within_us: i64,
    unacknowledged: Vec<UnacknowledgedJson<'a>>,
    slowest: Vec<SlowJson<'a>>,
    admin_changes: Vec<AdminChangeJson<'a>>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = Leaver)]
#[serde(rename_all = "camelCase")]
struct LeaverJson<'a> {
    #[schema(value_type = String)]
    user: UserId,
    user_name: &'a str,
    how: &'static str,
    #[schema(value_type = u64)]
    seq: Seq,
    left_at: String,
    chain: String,
    door: DoorJson<'a>,
    standing: &'static str,
    revoked: usize,
    time_to_revoke_us: Option<i64>,
    still_holds: Vec<HeldJson<'a>>,
    offboarding: Option<OffboardingJson>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = HeldLeavers)]
#[serde(rename_all = "camelCase")]
struct HeldLeaversJson<'a> {
    integration: &'a str,
    #[schema(value_type = u64)]
    held_at: Seq,
    deactivations: u32,
    deletions: u32,
    #[schema(value_type = Vec<String>)]
    changes: &'a [String],
}

fn standing(standing: Standing) -> &'static str {
    match standing {
        Standing::Active => "active",
        Standing::Inactive => "inactive",
        Standing::Deleted => "deleted",
    }
}

fn step(step: &Step) -> StepJson<'_> {
    StepJson {
        seq: step.seq,
        recorded_at: step.recorded_at.to_rfc3339(),
        chain: step.chain.to_hex(),
        kind: step_kind(&step.kind),
        door: door(&step.door),
        latency_us: step.latency_us,
    }
}

fn step_kind(kind: &StepKind) -> StepKindJson<'_> {
    let tag = |kind: &'static str| StepKindJson {
        kind,
        ..StepKindJson::default()
    };
    match kind {
        StepKind::Provisioned => tag("provisioned"),
        StepKind::Deactivated => tag("deactivated"),
        StepKind::Reactivated => tag("reactivated"),
        StepKind::Deleted => tag("deleted"),
        StepKind::Erased => tag("erased"),
        StepKind::Joined { group, group_name } => StepKindJson {
            group: Some(*group),
            group_name: Some(group_name),
            ..tag("joined")
        },
        StepKind::Left { group, group_name, how } => StepKindJson {
            group: Some(*group),
            group_name: Some(group_name),
            how: Some(how.as_str()),
            ..tag("left")
        },
        StepKind::Acknowledged {
            revoked,
            resource,
            role,
            via,
            via_name,
        } => StepKindJson {
            revoked: Some(*revoked),
            resource_kind: Some(resource.kind.as_str()),
            resource_id: Some(resource.id.to_string()),
            role: Some(role.as_str()),
            via: Some(*via),
            via_name: Some(via_name),
            ..tag("acknowledged")
        },
        StepKind::Role {
            old,
            new,
            binding,
            via,
            old_via,
        } => StepKindJson {
            old_role: Some(old.as_deref()),
            new_role: Some(new.as_deref()),
            binding: binding.as_ref().map(|binding| binding.as_str()),
            via: via.as_ref().map(|(group, _)| *group),
            via_name: via.as_ref().map(|(_, name)| name.as_str()),
            old_via: old_via.as_ref().map(|(group, _)| *group),
            old_via_name: old_via.as_ref().map(|(_, name)| name.as_str()),
            ..tag("role")
        },
        StepKind::Access {
            direction,
            resource,
            role,
            via,
            via_name,
        } => StepKindJson {
            direction: Some(*direction),
            resource_kind: Some(resource.kind.as_str()),
            resource_id: Some(resource.id.to_string()),
            role: Some(role.as_str()),
            via: Some(*via),
            via_name: Some(via_name),
            ..tag("access")
        },
    }
}

fn door(door: &Door) -> DoorJson<'_> {
    match door {
        Door::Scim {
            token,
            token_name,
            request,
        } => DoorJson::Scim {
            token: *token,
            token_name: token_name.as_deref(),
            request: *request,
        },
        Door::Integration {
            integration,
            run,
            idp_object,
            idp_changed_at,
        } => DoorJson::Integration {
            integration,
            run: *run,
            idp_object: idp_object.as_deref(),
            idp_changed_at: idp_changed_at.map(|at| at.to_rfc3339()),
        },
        Door::Admin {
            token,
            token_name,
            request,
        } => DoorJson::Admin {
            token: *token,
            token_name: token_name.as_deref(),
            request: *request,
        },
        Door::Operator => DoorJson::Operator,
        Door::Workload => DoorJson::Workload,
    }
}

fn held(held: &Held) -> HeldJson<'_> {
    HeldJson {
        resource_kind: held.resource.kind.as_str(),
        resource_id: held.resource.id.to_string(),
        role: held.role.as_str(),
        via: held.via,
        via_name: &held.via_name,
    }
}

fn leaver(leaver: &Leaver) -> LeaverJson<'_> {
    LeaverJson {
        user: leaver.user,
        user_name: &leaver.user_name,
        how: leaver.how.as_str(),
        seq: leaver.seq,
        left_at: leaver.left_at.to_rfc3339(),
        chain: leaver.chain.to_hex(),
        door: door(&leaver.door),
        standing: standing(leaver.standing),
        revoked: leaver.revoked,
        time_to_revoke_us: leaver.time_to_revoke_us,
        still_holds: leaver.still_holds.iter().map(held).collect(),
        offboarding: leaver.offboarding.as_ref().map(offboarding),
    }
}

fn held_leavers(held: &HeldLeavers) -> HeldLeaversJson<'_> {
    HeldLeaversJson {
        integration: &held.integration,
        held_at: held.held_at,
        deactivations: held.deactivations,
        deletions: held.deletions,
        changes: &held.changes,
    }
}
