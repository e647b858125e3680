//! `idpsync log verify`, `idpsync log copy` (in `log_copy`) and `idpsync log checkpoint export | create`.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use idpsync::checkpoint::{self, key, verify::verify_all};
use idpsync::storage::TenantId;
use serde::{Deserialize, Serialize};

use super::Context;

#[derive(Subcommand, Debug)]
pub(crate) enum LogCommand {
    /// Check the hash chain, the absence of gaps, that every record decodes and the log ends at
    /// its head, and that every snapshot matches its stored hash and its place in the log (the
    /// seq and time of its record); with --deep, also that every snapshot is the state the log
    /// folds to; with --checkpoints, also that the log extends every exported checkpoint. Exits
    /// non-zero at the first problem, naming tenant and seq. Without --deep the memory taken
    /// does not grow with the log (records are read a page at a time and dropped)
    Verify(VerifyArgs),
    /// Copy logs from one store to another (redb:<dir>, postgres://…): the migration path
    /// between backends. Resumable: a second run continues from the destination's head; a
    /// destination that is ahead or differs is refused. Each copied log is verified
    #[command(name = "copy")]
    Copy(super::log_copy::CopyArgs),
    /// Signed checkpoints of the log
    #[command(subcommand)]
    Checkpoint(CheckpointCommand),
}

/// What `log verify` checks.
#[derive(Args, Debug, Serialize, Deserialize)]
pub(crate) struct VerifyArgs {
    /// Only this tenant [default: every tenant]
    #[arg(long)]
    tenant: Option<TenantId>,
    /// Also re-fold the log to every snapshot's seq and compare the states' hashes: holds the
    /// tenant's whole state (and its history index), so it takes memory as a running service
    /// does
    #[arg(long)]
    deep: bool,
    /// Checkpoints exported earlier (JSON lines) that the log must extend
    #[arg(long, value_name = "FILE")]
    checkpoints: Option<PathBuf>,
    /// The public key that signed them [default: <data-dir>/checkpoint-key.pub]
    #[arg(long, value_name = "FILE", requires = "checkpoints")]
    public_key: Option<PathBuf>,
}

impl VerifyArgs {
    /// The same, with its files named by absolute paths, for a server whose working
    /// directory is not the caller's.
    pub(crate) fn with_absolute_paths(self) -> anyhow::Result<VerifyArgs> {
        let absolute = |path: Option<PathBuf>| {
            path.map(|path| std::path::absolute(&path).with_context(|| format!("resolving {}", path.display())))
                .transpose()
        };
        Ok(VerifyArgs {
            tenant: self.tenant,
            deep: self.deep,
            checkpoints: absolute(self.checkpoints)?,
            public_key: absolute(self.public_key)?,
        })
    }
}

#[derive(Subcommand, Debug)]
pub(crate) enum CheckpointCommand {
    /// Write the stored checkpoints as JSON lines, to keep them somewhere the log's owner
    /// cannot rewrite
    Export {
        /// Only this tenant's
        #[arg(long)]
        tenant: Option<TenantId>,
        /// Write to this file instead of standard output
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Sign a checkpoint of each tenant at its head now (`serve` signs them on its schedule)
    Create {
        /// Only this tenant [default: every tenant]
        #[arg(long)]
        tenant: Option<TenantId>,
    },
}

pub(crate) async fn run(context: &Context, command: LogCommand) -> anyhow::Result<()> {
    match command {
        LogCommand::Verify(args) => verify(context, args).await,
        LogCommand::Copy(args) => super::log_copy::run(args).await,
        LogCommand::Checkpoint(CheckpointCommand::Export { tenant, output }) => export(context, tenant, output),
        LogCommand::Checkpoint(CheckpointCommand::Create { tenant }) => create(context, tenant).await,
    }
}

/// `log verify`.
pub(crate) async fn verify(context: &Context, args: VerifyArgs) -> anyhow::Result<()> {
    let VerifyArgs {
        tenant: only,
        deep,
        checkpoints,
        public_key,
    } = args;
    let store = context.open_store().await?;
    let tenants = match &only {
        Some(tenant) => vec![tenant.clone()],
        None => store.tenants().await?,
    };
    for tenant in tenants {
        let started = std::time::Instant::now();
        let spinner = super::progress::spinner(format!("verifying tenant {tenant}"));
        let report = match deep {
            true => idpsync::engine::verify::verify_tenant(&store, &tenant).await,
            false => idpsync::engine::verify::verify_log_and_snapshots(&store, &tenant).await,
        };
        spinner.finish_and_clear();
        let report = report.map_err(|error| anyhow::anyhow!("verification failed: {error}"))?;
        let older = match report.snapshots_of_older_formats {
            0 => String::new(),
            n => format!(" ({n} of an older format not compared: their bytes matched their hash)"),
        };
        outln!(
            "tenant {}: ok, {} records, {} snapshots matched{older}, chain head {} ({:.2} s)",
            report.tenant,
            report.records,
            report.snapshots,
            report.chain_head,
            started.elapsed().as_secs_f64()
        );
    }
    let Some(path) = checkpoints else { return Ok(()) };
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let exported: Vec<checkpoint::Checkpoint> = checkpoint::parse_lines(&path, &text)?
        .into_iter()
        .filter(|checkpoint| only.as_ref().is_none_or(|tenant| &checkpoint.tenant == tenant))
        .collect();
    if exported.is_empty() {
        bail!(
            "{} holds no checkpoint{}",
            path.display(),
            if only.is_some() { " of this tenant" } else { "" }
        );
    }
    let key_path = public_key.unwrap_or_else(|| context.data_dir.join(key::PUBLIC_KEY_FILE));
    let trusted = key::read_public(&key_path)?;
    let proven = verify_all(&store, &exported, &trusted)
        .await
        .map_err(|error| anyhow::anyhow!("checkpoint verification failed: {error}"))?;
    for each in &proven {
        outln!(
            "checkpoint tenant {} seq {}: ok, the log extends it{}",
            each.tenant,
            each.seq,
            if each.refolded { " (state re-folded)" } else { "" }
        );
    }
    Ok(())
}

fn export(context: &Context, only: Option<TenantId>, output: Option<PathBuf>) -> anyhow::Result<()> {
    let checkpoints = checkpoint::stored(&context.data_dir, only.as_ref())?;
    let mut lines = String::new();
    for checkpoint in &checkpoints {
        lines.push_str(&serde_json::to_string(checkpoint)?);
        lines.push('\n');
    }
    match output {
        Some(path) => {
            std::fs::write(&path, &lines).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {} checkpoints to {}", checkpoints.len(), path.display());
        }
        None => out!("{lines}"),
    }
    Ok(())
}

async fn create(context: &Context, only: Option<TenantId>) -> anyhow::Result<()> {
    let engine = context.open_engine().await?;
    let result = async {
        let signing = key::for_store(&**engine.store(), &context.data_dir).await?;
        let tenants = match &only {
            Some(tenant) => vec![tenant.clone()],
            None => engine.store().tenants().await?,
        };
        for id in tenants {
            let tenant = engine.existing_tenant(&id).await?;
            match checkpoint::make(&tenant, engine.store(), &signing).await? {
                Some(made) => {
                    checkpoint::append(&context.data_dir, &made)?;
                    outln!("tenant {id}: signed a checkpoint at seq {}", made.seq);
                }
                None => outln!("tenant {id}: empty log, no checkpoint"),
            }
        }
        anyhow::Ok(())
    }
    .await;
    engine.close().await;
    result
}
