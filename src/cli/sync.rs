//! `idpsync sync`: one run of one integration, printing what it changed or would change; and
//! the schedule `serve` runs (every configured integration).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::Args;
use idpsync::config::TenantConfig;
use idpsync_drivers::cursor_store::CursorStore;
use idpsync_drivers::scheduler::Scheduled;
use idpsync_drivers::sync::{Mode, Resync, SyncOutcome, SyncResult, sync_once};
use idpsync_drivers::{Driver, IntegrationConfig, RetryPolicy};
use idpsync_engine::reconcile::{AbsentLine, ReconcileReport};
use idpsync_engine::{Engine, Tenant};
use idpsync_storage::TenantId;

use super::Context;

#[derive(Args, Debug)]
pub(crate) struct SyncArgs {
    /// The tenant
    #[arg(long, default_value = "default")]
    tenant: String,
    /// The integration's name, as in `[[tenant.integration]]`
    #[arg(long)]
    integration: String,
    /// Run once and exit (the schedule is `idpsync serve`'s job)
    #[arg(long)]
    once: bool,
    /// Show what would change; write nothing
    #[arg(long, conflicts_with = "confirm_held")]
    dry_run: bool,
    /// Apply even a sync the mass-deactivation guard holds (after reviewing it)
    #[arg(long)]
    confirm_held: bool,
    /// List everything, even where a delta cursor would allow less
    #[arg(long)]
    full: bool,
}

/// Where an integration's state lives: beside the tenant's log on a store replicas share (so
/// that the replica that takes an integration over goes on from its cursor), otherwise one
/// directory per tenant in the data directory.
fn cursor_store(data_dir: &Path, tenant: &Arc<Tenant>) -> CursorStore {
    match tenant.store_is_shared() {
        true => CursorStore::in_log(Arc::clone(tenant)),
        false => CursorStore::new(data_dir.join("drivers").join(tenant.id().as_str())),
    }
}

fn find<'c>(context: &'c Context, tenant: &str, integration: &str) -> anyhow::Result<&'c IntegrationConfig> {
    let tenants = &context.config.tenants;
    let Some(tenant_config) = tenants.iter().find(|each| each.id.as_str() == tenant) else {
        let known: Vec<&str> = tenants.iter().map(|each| each.id.as_str()).collect();
        bail!(
            "tenant {tenant:?} is not in the configuration (configured: {}); pass --config FILE",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        );
    };
    match tenant_config
        .integrations
        .iter()
        .find(|each| each.name.as_str() == integration)
    {
        Some(found) => Ok(found),
        None => {
            let known: Vec<&str> = tenant_config
                .integrations
                .iter()
                .map(|each| each.name.as_str())
                .collect();
            bail!(
                "tenant {tenant:?} has no integration {integration:?} (configured: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            )
        }
    }
}

pub(crate) async fn run(context: &Context, args: SyncArgs) -> anyhow::Result<()> {
    if !args.once {
        bail!("`idpsync sync` runs one sync: pass --once (`idpsync serve` runs integrations on their interval)");
    }
    let integration = find(context, &args.tenant, &args.integration)?.clone();
    let tenant_id = TenantId::new(&args.tenant).map_err(|error| anyhow::anyhow!("{error}"))?;
    let driver = Driver::new(integration, RetryPolicy::default())
        .with_context(|| format!("setting up integration {}", args.integration))?;
    let engine = context.open_engine().await?;
    let tenant = engine.ensure_tenant(&tenant_id).await?;
    let mode = match (args.dry_run, args.confirm_held) {
        (true, _) => Mode::DryRun,
        (false, true) => Mode::ApplyConfirmingHold,
        (false, false) => Mode::Apply,
    };
    let resync = if args.full { Resync::Full } else { Resync::Auto };
    let cursors = cursor_store(&context.data_dir, &tenant);
    // On a task of its own, so that a panic in the run (a bug) is reported like a failure,
    // after the engine has shut down cleanly.
    let spinner = super::progress::spinner(format!("syncing {} (reading the IdP)", args.integration));
    let run = tokio::spawn(async move { sync_once(&driver, &tenant, &cursors, mode, resync).await });
    let result = run.await;
    spinner.finish_and_clear();
    engine.close().await;
    let outcome = match result {
        Ok(result) => result.with_context(|| format!("sync of {} failed; nothing was applied", args.integration))?,
        Err(panic) => bail!(
            "sync of {} did not finish: {panic}; the next run reads the IdP again from the last applied cursor",
            args.integration
        ),
    };
    out!("{}", render(&args, &outcome));
    // A held sync applied nothing: scripts learn it from the exit code.
    if outcome.result == SyncResult::Held && !args.dry_run {
        bail!("the sync of {} was held; nothing was applied", args.integration);
    }
    Ok(())
}

/// The run as people read it: every change, then one summary line.
fn render(args: &SyncArgs, outcome: &SyncOutcome) -> String {
    let report = &outcome.report;
    let verb = match outcome.result {
        SyncResult::Applied => "applied",
        SyncResult::Planned => "planned (dry run, nothing written)",
        SyncResult::Held => "held",
    };
    let mut out = format!(
        "sync {} of tenant {} ({:?} listing, run {}): {} users, {} groups, {} memberships read in {} requests, {:.1}s\n",
        args.integration,
        args.tenant,
        outcome.scope,
        outcome.run,
        outcome.listed.users,
        outcome.listed.groups,
        outcome.listed.memberships,
        outcome.requests,
        outcome.elapsed.as_secs_f64(),
    );
    for warning in &outcome.warnings {
        out.push_str(&format!("warning: {warning}\n"));
    }
    for change in &report.changes {
        out.push_str(&format!("  {:<18} {}\n", change.action, change.object));
    }
    for conflict in &report.conflicts {
        out.push_str(&format!("  skipped            {conflict}\n"));
    }
    for line in &report.pending {
        out.push_str(&format!("  absent (pending)   {}\n", absent_line(line)));
    }
    out.push_str(&format!("{verb}: {}\n", summary(report)));
    if let Some(hold) = &report.held {
        let guard = &report.guard;
        out.push_str(&format!(
            "HELD: this sync would take access from {} users (deactivating {}, deleting {}); with the {} its runs took it \
             from within the hold window, that is {} of the integration's {} users, above the limit of {:.1} %.\n\
             Nothing was applied. Review the changes above (`--dry-run` shows them again), then apply them with:\n  \
             idpsync sync --tenant {} --integration {} --once --confirm-held\n",
            guard.removals,
            hold.deactivations,
            hold.deletions,
            guard.earlier.removals,
            guard.earlier.removals + guard.removals,
            guard.size(),
            f64::from(hold.limit_permille) / 10.0,
            args.tenant,
            args.integration,
        ));
    }
    out
}

/// A pending absence as people read it: what, and how far it is from taking effect.
fn absent_line(line: &AbsentLine) -> String {
    let after = line
        .takes_effect_after
        .map(|at| format!(", or at the first complete listing after {}", at.to_rfc3339()))
        .unwrap_or_default();
    format!(
        "{} {}: absent from {} of the {} consecutive complete listings that remove it, since {}{after}",
        line.kind,
        line.object,
        line.listings,
        line.needed,
        line.since.to_rfc3339(),
    )
}

fn summary(report: &ReconcileReport) -> String {
    format!(
        "users {} created, {} updated, {} deactivated, {} reactivated, {} deleted; \
         groups {} created, {} renamed, {} deleted; memberships {} added, {} removed; {} unresolved, {} skipped; \
         {} absences pending",
        report.users_created,
        report.users_updated,
        report.users_deactivated,
        report.users_reactivated,
        report.users_deleted,
        report.groups_created,
        report.groups_renamed,
        report.groups_deleted,
        report.memberships_added,
        report.memberships_removed,
        report.unresolved_members,
        report.conflicts.len(),
        report.pending.len(),
    )
}

/// Every configured integration of every tenant, ready for the scheduler.
pub(crate) async fn scheduled(context: &Context, engine: &Arc<Engine>) -> anyhow::Result<Vec<Scheduled>> {
    let mut scheduled = Vec::new();
    for TenantConfig { id, integrations } in &context.config.tenants {
        let tenant = engine.ensure_tenant(id).await?;
        for integration in integrations {
            let driver = Driver::new(integration.clone(), RetryPolicy::default())
                .with_context(|| format!("setting up integration {} of tenant {id}", integration.name))?;
            scheduled.push(Scheduled {
                tenant: Arc::clone(&tenant),
                driver: Arc::new(driver),
                cursors: cursor_store(&context.data_dir, &tenant),
            });
        }
    }
    Ok(scheduled)
}
