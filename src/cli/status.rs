//! `idpsync status`: what waits in each tenant, from its log: each integration's pending
//! absences (what its complete listings no longer contain and is not removed yet, see
//! docs/absences.md) and the revocations of the last day that the management server has not
//! acknowledged (docs/offboarding.md).

use std::fmt::Write as _;

use clap::Args;
use idpsync::engine::Tenant;
use idpsync::revocations::RECALL_WINDOW;
use idpsync::storage::{TenantId, Timestamp};

use super::Context;

#[derive(Args, Debug)]
pub(crate) struct StatusArgs {
    /// Only this tenant (every tenant of the store by default)
    #[arg(long)]
    tenant: Option<TenantId>,
}

pub(crate) async fn run(context: &Context, args: StatusArgs) -> anyhow::Result<()> {
    let engine = context.open_engine().await?;
    let ids = match args.tenant {
        Some(id) => vec![id],
        None => engine.tenant_ids(),
    };
    let now = Timestamp::now();
    let since = Timestamp(now.0 - RECALL_WINDOW.as_micros() as i64);
    let mut out = String::new();
    let mut failure = None;
    for id in ids {
        let tenant = match engine.require_tenant(&id) {
            Ok(tenant) => tenant,
            Err(error) => {
                failure = Some(anyhow::Error::from(error));
                break;
            }
        };
        if let Err(error) = tenant.recall_unacknowledged(since).await {
            failure = Some(error.into());
            break;
        }
        render(&mut out, &tenant, now);
    }
    engine.shutdown().await;
    if let Some(error) = failure {
        return Err(error);
    }
    outln!("{}", out.trim_end());
    Ok(())
}

/// One tenant's status.
fn render(out: &mut String, tenant: &Tenant, now: Timestamp) {
    let state = tenant.state();
    let _ = writeln!(
        out,
        "tenant {}: seq {}, {} users, {} groups",
        tenant.id(),
        state.seq(),
        state.user_count(),
        state.group_count()
    );
    for integration in state.integrations_with_absences() {
        let pending: Vec<_> = state.pending_absences(integration).collect();
        let _ = writeln!(out, "  integration {integration}: {} absence(s) pending", pending.len());
        for (absent, absence) in pending {
            let (kind, label) = state.absent_label(absent);
            let _ = writeln!(
                out,
                "    {kind} {label}: absent from {} consecutive complete listing(s) since {}",
                absence.listings,
                absence.since.to_rfc3339()
            );
        }
    }
    let waiting = tenant.unacknowledged_revocations();
    let overdue = tenant.overdue_revocations(now);
    if !waiting.is_empty() {
        let _ = writeln!(
            out,
            "  revocations waiting for the management server's acknowledgement: {} ({} overdue{})",
            waiting.len(),
            overdue.count,
            overdue
                .oldest
                .map(|at| format!(", the oldest since {}", at.to_rfc3339()))
                .unwrap_or_default()
        );
    }
}
