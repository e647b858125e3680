//! `idpsync dev seed`.

use clap::{Args, Subcommand};
use idpsync::storage::TenantId;
use idpsync::workload::{WorkloadSpec, run as run_workload};

use super::Context;

#[derive(Subcommand, Debug)]
pub(crate) enum DevCommand {
    /// Write a synthetic, reproducible workload through the engine (joiners, leavers, renames,
    /// membership churn, nested groups, bindings)
    Seed(SeedArgs),
}

#[derive(Args, Debug)]
pub(crate) struct SeedArgs {
    /// The tenant to write to (created if needed)
    #[arg(long, default_value = "default")]
    tenant: TenantId,
    /// Users to provision
    #[arg(long, default_value_t = 1_000)]
    users: u64,
    /// Groups to create
    #[arg(long, default_value_t = 50)]
    groups: u64,
    /// Membership changes to make
    #[arg(long, default_value_t = 10_000)]
    memberships: u64,
    /// Random seed: the same seed gives the same workload
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub(crate) async fn run(context: &Context, command: DevCommand) -> anyhow::Result<()> {
    let DevCommand::Seed(args) = command;
    let engine = context.open_engine().await?;
    let tenant = engine.ensure_tenant(&args.tenant).await?;
    let spec = WorkloadSpec {
        users: args.users,
        groups: args.groups,
        memberships: args.memberships,
        seed: args.seed,
    };
    let started = std::time::Instant::now();
    let bar = super::progress::bar(0, format!("seeding tenant {}", args.tenant));
    let mut report = |progress: &idpsync::workload::Progress| {
        if !bar.is_hidden() {
            bar.set_length(progress.planned);
            bar.set_position(progress.commands);
            return;
        }
        let elapsed = started.elapsed().as_secs_f64();
        eprintln!(
            "seed: {}/~{} commands, {} events, {:.0} events/s",
            progress.commands,
            progress.planned,
            progress.events,
            progress.events as f64 / elapsed.max(1e-9)
        );
    };
    let result = run_workload(&tenant, &spec, &mut report).await;
    bar.finish_and_clear();
    engine.close().await;
    let progress = result?;
    let state = tenant.state();
    outln!(
        "seeded tenant {}: {} events in {:.1} s ({} commands, {} rejected); now {} users, {} groups, head seq {}",
        args.tenant,
        progress.events,
        started.elapsed().as_secs_f64(),
        progress.commands,
        progress.rejected,
        state.user_count(),
        state.group_count(),
        state.seq()
    );
    Ok(())
}
