//! `idpsync log copy --from <store> --to <store> [--tenant T]`.

use anyhow::{Context as _, bail};
use clap::Args;
use idpsync::copy::copy_tenant_with_progress;
use idpsync::storage::TenantId;
use idpsync::storage_location::StorageLocation;

#[derive(Args, Debug)]
pub(crate) struct CopyArgs {
    /// The store to copy from: redb:<dir> or postgres://…
    #[arg(long, value_name = "STORE")]
    from: StorageLocation,
    /// The store to copy to (created if needed): redb:<dir> or postgres://…
    #[arg(long, value_name = "STORE")]
    to: StorageLocation,
    /// Only this tenant [default: every tenant of the source]
    #[arg(long)]
    tenant: Option<TenantId>,
}

pub(crate) async fn run(args: CopyArgs) -> anyhow::Result<()> {
    if !args.from.exists() {
        bail!("--from {}: there is no log there", args.from);
    }
    let from = args
        .from
        .open()
        .await
        .with_context(|| format!("opening --from {}", args.from))?;
    let to = args
        .to
        .open()
        .await
        .with_context(|| format!("opening --to {}", args.to))?;
    let tenants = match args.tenant {
        Some(tenant) => vec![tenant],
        None => from.tenants().await?,
    };
    for tenant in tenants {
        let started = std::time::Instant::now();
        let bar = super::progress::bar(0, format!("tenant {tenant}"));
        let report = copy_tenant_with_progress(&*from, &*to, &tenant, &mut |done, head| {
            bar.set_length(head.0);
            bar.set_position(done.0);
        })
        .await
        .with_context(|| format!("copying tenant {tenant} from {} to {}", args.from, args.to))?;
        bar.finish_and_clear();
        outln!(
            "tenant {}: copied {} records, {} keys, {} snapshots; destroyed {} keys; verified, chain head {} at seq {} ({:.2} s)",
            report.tenant,
            report.records,
            report.secrets_added,
            report.snapshots,
            report.secrets_destroyed,
            report.head.chain,
            report.head.seq,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
