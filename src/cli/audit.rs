//! `idpsync audit user | report`: the offboarding audit of one user, and the leavers of a
//! period, as text, JSON or one self-contained HTML page.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use idpsync::audit::{Format, html, json, text};
use idpsync::engine::EngineError;
use idpsync::engine::audit::{
    AuditSources, BindingLog, LeaversReport, ReportContext, ReportLog, UserAudit, audit_user, leavers_report,
    leavers_report_from_log, resolve_user,
};
use idpsync::engine::seal::Keyring;
use idpsync::engine::tenant::has_stored_holds;
use idpsync::storage::{StoreError, TenantId, Timestamp};
use idpsync::tokens::TokenStore;
use serde::{Deserialize, Serialize};

use super::Context;

#[derive(Subcommand, Debug, Serialize, Deserialize)]
pub(crate) enum AuditCommand {
    /// One user's chain: who took it out and through which door, when each membership ended,
    /// each access revoked and how long after the change arrived, with seq and chain link
    User {
        #[command(flatten)]
        output: Output,
        /// The user, by id or userName (a deleted user's former userName is looked up in the
        /// log, which takes longer)
        #[arg(long, value_name = "USERNAME|ID")]
        user: String,
    },
    /// Every leaver of a period: count, median and maximum time to revoke, and anyone who
    /// still holds access, flagged
    Report {
        #[command(flatten)]
        output: Output,
        /// The start of the period: RFC 3339, or a date (midnight UTC)
        #[arg(long, value_name = "DATE")]
        since: String,
    },
}

#[derive(Args, Debug, Serialize, Deserialize)]
pub(crate) struct Output {
    /// The tenant
    #[arg(long, default_value = "default")]
    tenant: TenantId,
    /// Output format
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Write to this file instead of standard output
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
}

impl AuditCommand {
    /// Takes the file the audit is to be written to out of the command (it then writes to
    /// standard output), for a caller that writes the file itself.
    pub(crate) fn take_output_file(&mut self) -> Option<PathBuf> {
        match self {
            AuditCommand::User { output, .. } | AuditCommand::Report { output, .. } => output.output.take(),
        }
    }
}

/// A moment from RFC 3339 or a plain date.
fn moment(text: &str) -> anyhow::Result<Timestamp> {
    Timestamp::parse_moment(text).map_err(|error| anyhow::anyhow!("--since: {error}"))
}

fn write(output: &Output, content: &str) -> anyhow::Result<()> {
    match &output.output {
        Some(path) => std::fs::write(path, content).with_context(|| format!("writing {}", path.display())),
        None => {
            out!("{content}");
            Ok(())
        }
    }
}

fn token_names(context: &Context) -> BTreeMap<idpsync::engine::ids::TokenId, String> {
    TokenStore::new(&context.data_dir)
        .list()
        .map(|tokens| tokens.into_iter().map(|token| (token.id, token.name)).collect())
        .unwrap_or_default()
}

pub(crate) async fn run(context: &Context, command: AuditCommand) -> anyhow::Result<()> {
    let rendered = match &command {
        AuditCommand::User { output, user } => {
            let audit = user_audit(context, &output.tenant, user).await?;
            match output.format {
                Format::Text => text::user(&audit),
                Format::Json => serde_json::to_string_pretty(&json::user(&audit))? + "\n",
                Format::Html => html::user(&audit),
            }
        }
        AuditCommand::Report { output, since } => {
            let report = report(context, &output.tenant, moment(since)?).await?;
            if report.has_alarms() {
                warnln!("warning: leavers still hold access, or a held sync keeps leavers in; see the report");
            }
            match output.format {
                Format::Text => text::report(&report),
                Format::Json => serde_json::to_string_pretty(&json::report(&report))? + "\n",
                Format::Html => html::report(&report),
            }
        }
    };
    let output = match &command {
        AuditCommand::User { output, .. } | AuditCommand::Report { output, .. } => output,
    };
    write(output, &rendered)
}

/// One user's audit, from the tenant loaded with its history index.
async fn user_audit(context: &Context, tenant: &TenantId, user: &str) -> anyhow::Result<UserAudit> {
    let engine = context.open_engine().await?;
    let result = async {
        let tenant = engine.existing_tenant(tenant).await?;
        let mut bindings = BindingLog::default();
        bindings.catch_up(&tenant).await?;
        let names = token_names(context);
        let sources = AuditSources {
            bindings: &bindings,
            token_names: &names,
        };
        let user = resolve_user(&tenant, user).await?;
        anyhow::Ok(audit_user(&tenant, user, &sources).await?)
    }
    .await;
    engine.close().await;
    result
}

/// The leavers' report. Read from the log alone, without loading the tenant (in memory that
/// does not grow with the log), unless the service runs the command (its tenant is loaded) or
/// the store keeps a held sync of the tenant (showing it takes the tenant's state).
async fn report(context: &Context, tenant: &TenantId, since: Timestamp) -> anyhow::Result<LeaversReport> {
    let names = token_names(context);
    if context.running.is_none() {
        let store = context.open_store().await?;
        if !has_stored_holds(&store, tenant).await? {
            let head = match store.head(tenant).await {
                Err(StoreError::UnknownTenant(_)) => return Err(EngineError::UnknownTenant(tenant.clone()).into()),
                other => other?.seq,
            };
            let keyring = Keyring::load(&*store, tenant).await?;
            let log = ReportLog {
                store: &store,
                tenant,
                head,
                keyring: &keyring,
            };
            let report_context = ReportContext {
                token_names: &names,
                ack_within: context.config.tenant_settings().revocation_ack_within,
                held: Vec::new(),
            };
            return Ok(leavers_report_from_log(log, since, report_context).await?);
        }
    }
    let engine = context.open_engine().await?;
    let result = async {
        let tenant = engine.existing_tenant(tenant).await?;
        anyhow::Ok(leavers_report(&tenant, since, &names).await?)
    }
    .await;
    engine.close().await;
    result
}
