//! `idpsync log verify`.

use clap::Subcommand;
use idpsync::storage::TenantId;

use super::Context;

#[derive(Subcommand, Debug)]
pub(crate) enum LogCommand {
    /// Check the hash chain, the absence of gaps, that every record decodes, and that every
    /// snapshot is what the log folds to; exits non-zero at the first problem
    Verify {
        /// Only this tenant [default: every tenant]
        #[arg(long)]
        tenant: Option<TenantId>,
    },
}

pub(crate) async fn run(context: &Context, command: LogCommand) -> anyhow::Result<()> {
    match command {
        LogCommand::Verify { tenant } => verify(context, tenant).await,
    }
}

async fn verify(context: &Context, only: Option<TenantId>) -> anyhow::Result<()> {
    let store = idpsync::open_store(&context.data_dir)?;
    let tenants = match only {
        Some(tenant) => vec![tenant],
        None => store.tenants().await?,
    };
    for tenant in tenants {
        let started = std::time::Instant::now();
        let report = idpsync::engine::verify::verify_tenant(&store, &tenant)
            .await
            .map_err(|error| anyhow::anyhow!("verification failed: {error}"))?;
        println!(
            "tenant {}: ok, {} records, {} snapshots matched, chain head {} ({:.2} s)",
            report.tenant,
            report.records,
            report.snapshots,
            report.chain_head,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
