//! Plain-text renderings of a user's audit and of the leavers' report, for a terminal.

use std::fmt::Write as _;

use idpsync_engine::AccessDirection;
use idpsync_engine::audit::{AdminChange, Door, LeaversReport, Offboarding, Standing, Step, StepKind, UserAudit};
use idpsync_engine::ids::TokenId;
use idpsync_storage::Timestamp;

use super::duration_text;

/// What one step did, in a few words.
pub fn step_summary(kind: &StepKind) -> String {
    match kind {
        StepKind::Provisioned => "provisioned".to_owned(),
        StepKind::Deactivated => "DEACTIVATED".to_owned(),
        StepKind::Reactivated => "reactivated".to_owned(),
        StepKind::Deleted => "DELETED".to_owned(),
        StepKind::Erased => "personal fields erased".to_owned(),
        StepKind::Joined { group_name, .. } => format!("joined group {group_name}"),
        StepKind::Left { group_name, how, .. } => format!("left group {group_name} ({})", how.as_str()),
        StepKind::Acknowledged {
            revoked,
            resource,
            role,
            via_name,
            ..
        } => format!(
            "revocation of {resource} ({}) via {via_name} (seq {revoked}) acknowledged by the consumer",
            role.as_str()
        ),
        StepKind::Role {
            old,
            new,
            binding,
            via,
            old_via,
        } => role_summary(
            old.as_deref(),
            new.as_deref(),
            binding.as_ref(),
            via.as_ref(),
            old_via.as_ref(),
        ),
        StepKind::Access {
            direction,
            resource,
            role,
            via_name,
            ..
        } => format!(
            "access {} {resource} ({}) via {via_name}",
            match direction {
                AccessDirection::Granted => "granted",
                AccessDirection::Revoked => "REVOKED",
            },
            role.as_str()
        ),
    }
}

/// A role change in words: the roles, and why (the group and binding that give the new one, or
/// the group whose loss took the old one).
fn role_summary(
    old: Option<&str>,
    new: Option<&str>,
    binding: Option<&idpsync_engine::ids::ResourceId>,
    via: Option<&(idpsync_engine::ids::GroupId, String)>,
    old_via: Option<&(idpsync_engine::ids::GroupId, String)>,
) -> String {
    let mut line = format!("role {} -> {}", old.unwrap_or("(none)"), new.unwrap_or("(none)"));
    match (via, binding) {
        (Some((_, name)), Some(binding)) => {
            let _ = write!(line, " via group {name} (role binding {binding})");
        }
        (None, Some(binding)) => {
            let _ = write!(line, " (default, role binding {binding})");
        }
        (None, None) if new.is_some() => line.push_str(" (built-in default)"),
        _ => {}
    }
    if let Some((_, name)) = old_via {
        let _ = write!(line, "; had it via group {name}");
    }
    line
}

/// An admin gain or loss of the period, in one line.
pub fn admin_change_text(change: &AdminChange) -> String {
    format!(
        "{} {} ({}) {} admin: {} -> {}{} (seq {})",
        change.at,
        change.user_name,
        change.user,
        if change.gained { "GAINED" } else { "lost" },
        change.old.as_deref().unwrap_or("(none)"),
        change.new.as_deref().unwrap_or("(none)"),
        change
            .group
            .as_deref()
            .map(|group| format!(", via group {group}"))
            .unwrap_or_default(),
        change.seq
    )
}

/// Which door a step came through, in one line.
pub fn door_text(door: &Door) -> String {
    match door {
        Door::Scim {
            token,
            token_name,
            request,
        } => format!(
            "SCIM, token {}{}",
            named(token, token_name.as_deref()),
            request.map(|r| format!(", request {r}")).unwrap_or_default()
        ),
        Door::Integration {
            integration,
            run,
            idp_object,
            idp_changed_at,
        } => format!(
            "integration {integration}, sync run {run}{}{}",
            idp_object
                .as_deref()
                .map(|o| format!(", IdP object {o}"))
                .unwrap_or_default(),
            idp_changed_at
                .map(|at| format!(", changed in the IdP at {at}"))
                .unwrap_or_default()
        ),
        Door::Admin {
            token,
            token_name,
            request,
        } => format!(
            "management API, admin token {}{}",
            named(token, token_name.as_deref()),
            request.map(|r| format!(", request {r}")).unwrap_or_default()
        ),
        Door::Operator => "operator (command line)".to_owned(),
        Door::Workload => "synthetic workload".to_owned(),
    }
}

fn named(token: &TokenId, name: Option<&str>) -> String {
    match name {
        Some(name) => format!("{name} ({token})"),
        None => token.to_string(),
    }
}

/// Where a user stands, in words.
pub fn standing_text(standing: Standing) -> &'static str {
    match standing {
        Standing::Active => "active",
        Standing::Inactive => "inactive (deactivated)",
        Standing::Deleted => "deleted",
    }
}

fn step_line(out: &mut String, step: &Step) {
    let since = match step.kind {
        StepKind::Acknowledged { .. } => "the revocation",
        _ => "the change arrived",
    };
    let latency = step
        .latency_us
        .map(|us| format!("  [{} after {since}]", duration_text(us)))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "  seq {:<8} {}  {}{latency}\n             chain {}  {}",
        step.seq,
        step.recorded_at,
        step_summary(&step.kind),
        step.chain,
        door_text(&step.door)
    );
}

/// A user's audit as text.
pub fn user(audit: &UserAudit) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Offboarding audit of {} ({}), tenant {}",
        audit.user_name, audit.user, audit.tenant
    );
    let _ = writeln!(
        out,
        "Now: {}{}; as of seq {}, generated {}",
        standing_text(audit.standing),
        if audit.erased { ", personal fields erased" } else { "" },
        audit.head,
        audit.generated_at
    );
    out.push('\n');
    match &audit.leave {
        Some(leave) => {
            let _ = writeln!(
                out,
                "LEFT: {} at {} (seq {}, chain {})",
                step_summary(&leave.kind).to_lowercase(),
                leave.recorded_at,
                leave.seq,
                leave.chain
            );
            let _ = writeln!(out, "  by: {}", door_text(&leave.door));
            if let Some(changed) = leave.door.idp_changed_at() {
                let _ = writeln!(out, "  the IdP made the change at {changed}");
            }
            if let Some(received) = leave.door.received_at() {
                let _ = writeln!(out, "  the change reached IdP-Sync at {received}");
            }
            let revoked = audit.revocations().count();
            match audit.time_to_revoke_us {
                Some(us) => {
                    let _ = writeln!(
                        out,
                        "  access gone {} after that ({revoked} revoked)",
                        duration_text(us)
                    );
                }
                None => {
                    let _ = writeln!(out, "  access NOT gone");
                }
            }
            if let Some(offboarding) = &audit.offboarding {
                offboarding_lines(&mut out, offboarding);
            }
        }
        None if audit.standing == Standing::Active => {
            let _ = writeln!(out, "Not a leaver: the user is active.");
        }
        None => {
            let _ = writeln!(out, "No deactivation or deletion is recorded for this user.");
        }
    }
    if !audit.still_holds.is_empty() {
        let _ = writeln!(out, "\n!!! STILL HOLDS ACCESS ({} grants) !!!", audit.still_holds.len());
        for held in &audit.still_holds {
            let _ = writeln!(
                out,
                "  {} ({}) via {} ({})",
                held.resource,
                held.role.as_str(),
                held.via_name,
                held.via
            );
        }
    }
    let ended: Vec<&Step> = audit
        .steps
        .iter()
        .filter(|step| matches!(step.kind, StepKind::Left { .. }))
        .collect();
    let _ = writeln!(out, "\nMemberships ended ({}):", ended.len());
    for step in ended {
        step_line(&mut out, step);
    }
    let revoked: Vec<&Step> = audit
        .steps
        .iter()
        .filter(|step| {
            matches!(
                step.kind,
                StepKind::Access {
                    direction: AccessDirection::Revoked,
                    ..
                }
            )
        })
        .collect();
    let _ = writeln!(out, "\nAccess revoked ({}):", revoked.len());
    for step in revoked {
        step_line(&mut out, step);
    }
    let _ = writeln!(out, "\nEvery step ({}):", audit.steps.len());
    for step in &audit.steps {
        step_line(&mut out, step);
    }
    out
}

/// A leave's chain in one line, each step with its latency: the IdP's change (with its time,
/// where the IdP said) → reached IdP-Sync (where the IdP said when it changed) → recorded →
/// revoked → acknowledged, then whether it is closed.
pub fn chain_text(offboarding: &Offboarding) -> String {
    let optional = |value: Option<i64>| value.map_or_else(|| "-".to_owned(), duration_text);
    let state = if offboarding.unacknowledged() > 0 {
        format!(
            "{} of {} revocation(s) NOT acknowledged by the consumer",
            offboarding.unacknowledged(),
            offboarding.revocations
        )
    } else {
        match offboarding.total_us() {
            Some(total) => format!("closed in {}", duration_text(total)),
            None => "nothing to revoke".to_owned(),
        }
    };
    let start = match offboarding.idp_changed_at {
        Some(at) => format!(
            "IdP change {} → received {}",
            clock_text(at),
            optional(offboarding.to_receive_us())
        ),
        None => "IdP change".to_owned(),
    };
    format!(
        "{start} → recorded {} → revoked {} → acknowledged {}; {state}",
        optional(offboarding.to_record_us()),
        optional(offboarding.to_revoke_us()),
        optional(offboarding.to_acknowledge_us()),
    )
}

/// A moment to the second, for a one-line chain: `2026-03-02T09:00:00Z`.
fn clock_text(at: Timestamp) -> String {
    let full = at.to_rfc3339();
    match full.split_once('.') {
        Some((seconds, _)) => format!("{seconds}Z"),
        None => full,
    }
}

fn offboarding_lines(out: &mut String, offboarding: &Offboarding) {
    let _ = writeln!(out, "  chain: {}", chain_text(offboarding));
}

/// The leavers' report as text.
pub fn report(report: &LeaversReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Leavers of tenant {} since {} (seq {} to {}), generated {}",
        report.tenant, report.since, report.from_seq, report.head, report.generated_at
    );
    let optional = |value: Option<i64>| value.map_or_else(|| "-".to_owned(), duration_text);
    let _ = writeln!(
        out,
        "{} leavers; time to revoke: median {}, max {}",
        report.count,
        optional(report.median_time_to_revoke_us),
        optional(report.max_time_to_revoke_us)
    );
    if report.still_holding > 0 {
        let _ = writeln!(out, "\n!!! {} LEAVER(S) STILL HOLD ACCESS !!!", report.still_holding);
    }
    if !report.unacknowledged.is_empty() {
        let _ = writeln!(
            out,
            "\n!!! {} LEAVER(S) WITH REVOCATIONS NOT ACKNOWLEDGED WITHIN {} !!!",
            report.unacknowledged.len(),
            duration_text(report.ack_within_us)
        );
        for waiting in &report.unacknowledged {
            let _ = writeln!(
                out,
                "  {} ({}): {} revocation(s) waiting since {} ({})",
                waiting.user_name,
                waiting.user,
                waiting.waiting,
                waiting.revoked_at,
                duration_text(waiting.waiting_us)
            );
        }
    }
    if !report.slowest.is_empty() {
        let _ = writeln!(out, "\nSlowest offboardings (IdP change → acknowledged):");
        for slow in &report.slowest {
            let _ = writeln!(out, "  {} ({})", slow.user_name, slow.user);
            offboarding_lines(&mut out, &slow.offboarding);
        }
    }
    if !report.admin_changes.is_empty() {
        let _ = writeln!(out, "\nAdmin roles gained and lost ({}):", report.admin_changes.len());
        for change in &report.admin_changes {
            let _ = writeln!(out, "  {}", admin_change_text(change));
        }
    }
    for held in &report.held {
        let _ = writeln!(
            out,
            "\n!!! A SYNC OF {} IS HELD: {} deactivation(s) and {} deletion(s) wait for confirmation; those users keep their access until then !!!",
            held.integration, held.deactivations, held.deletions
        );
        for change in &held.changes {
            let _ = writeln!(out, "  {change}");
        }
    }
    out.push('\n');
    for leaver in &report.leavers {
        let flag = if leaver.still_holds.is_empty() {
            ""
        } else {
            "  !!! STILL HOLDS ACCESS"
        };
        let _ = writeln!(
            out,
            "{}  {} ({})  {} at seq {}, {} revoked, gone in {}; now {}{flag}\n  by: {}\n  chain {}",
            leaver.left_at,
            leaver.user_name,
            leaver.user,
            leaver.how.as_str(),
            leaver.seq,
            leaver.revoked,
            optional(leaver.time_to_revoke_us),
            standing_text(leaver.standing),
            door_text(&leaver.door),
            leaver.chain
        );
    }
    out
}
