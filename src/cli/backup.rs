//! `idpsync backup --to DIR` (online: through the running service when there is one) and
//! `idpsync restore --from DIR` (into a stopped, empty data directory or store).

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Args;
use idpsync::backup::{BackupReport, back_up, restore};
use serde::{Deserialize, Serialize};

use super::Context;

#[derive(Args, Debug, Serialize, Deserialize)]
pub(crate) struct BackupArgs {
    /// The directory to write the backup to: new, or empty. It becomes a data directory of its
    /// own (`idpsync --data-dir DIR log verify` checks it)
    #[arg(long, value_name = "DIR")]
    to: PathBuf,
}

impl BackupArgs {
    /// The same, with the directory named by an absolute path, for a service whose working
    /// directory is not the caller's.
    pub(crate) fn with_absolute_path(self) -> anyhow::Result<BackupArgs> {
        Ok(BackupArgs {
            to: std::path::absolute(&self.to).with_context(|| format!("resolving {}", self.to.display()))?,
        })
    }
}

#[derive(Args, Debug)]
pub(crate) struct RestoreArgs {
    /// The backup to restore (a directory `idpsync backup` wrote)
    #[arg(long, value_name = "DIR")]
    from: PathBuf,
}

/// Moves the bar to a tenant's copy.
fn show(
    bar: &indicatif::ProgressBar,
    tenant: &idpsync::storage::TenantId,
    done: idpsync::storage::Seq,
    head: idpsync::storage::Seq,
) {
    bar.set_message(format!("tenant {tenant}"));
    bar.set_length(head.0);
    bar.set_position(done.0);
}

fn print(report: &BackupReport, verb: &str, started: std::time::Instant) -> anyhow::Result<()> {
    for tenant in &report.tenants {
        outln!(
            "tenant {}: {verb} {} records, {} keys, {} snapshots; verified, chain head {}",
            tenant.tenant,
            tenant.head.seq,
            tenant.secrets_added,
            tenant.snapshots,
            tenant.head.chain
        );
    }
    let files: Vec<String> = report.files.iter().map(|file| file.display().to_string()).collect();
    outln!(
        "metadata: {} entries (tokens, cursors, held syncs kept in the store)",
        report.metadata
    );
    outln!(
        "files: {} ({:.2} s)",
        if files.is_empty() {
            "none".to_owned()
        } else {
            files.join(", ")
        },
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `backup`: on the service's store when it runs the command, else on the configured one.
pub(crate) async fn run_backup(context: &Context, args: BackupArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let store = context.open_store().await?;
    let bar = super::progress::bar(0, String::new());
    let report = back_up(&*store, &context.data_dir, &args.to, &mut |tenant, done, head| {
        show(&bar, tenant, done, head)
    })
    .await
    .with_context(|| format!("backing up to {}", args.to.display()))?;
    bar.finish_and_clear();
    print(&report, "backed up", started)
}

/// `restore`: only with the service stopped, into a store that holds no records.
pub(crate) async fn run_restore(context: &Context, args: RestoreArgs) -> anyhow::Result<()> {
    if super::control::service_answers(&context.data_dir).await {
        bail!(
            "idpsync serve runs on {}: stop it, set the data directory aside, then restore",
            context.data_dir.display()
        );
    }
    let started = std::time::Instant::now();
    let store = context.open_store().await?;
    let bar = super::progress::bar(0, String::new());
    let report = restore(&args.from, &*store, &context.data_dir, &mut |tenant, done, head| {
        show(&bar, tenant, done, head)
    })
    .await
    .with_context(|| format!("restoring {}", args.from.display()))?;
    bar.finish_and_clear();
    print(&report, "restored", started)
}
