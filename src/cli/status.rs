//! `idpsync status`: each tenant's log (head, snapshots, newest checkpoint), integrations
//! (last and next run, last error, held syncs), what waits: each integration's pending
//! absences (what its complete listings no longer contain and is not removed yet, see
//! docs/absences.md) and the revocations of the last day that the management server has not
//! acknowledged (docs/offboarding.md).
//!
//! Run against a serving data directory (through its control socket) it shows what only the
//! service knows: the integrations' runs and the syncs the guard holds. Run on a stopped one,
//! the log's part, and the configured integrations as not running.

use std::collections::BTreeMap;
use std::time::SystemTime;

use clap::Args;
use idpsync::checkpoint;
use idpsync::engine::Tenant;
use idpsync::revocations::RECALL_WINDOW;
use idpsync::storage::{TenantId, Timestamp};
use serde::{Deserialize, Serialize};

use super::Context;
use idpsync::engine::Engine;

#[derive(Args, Debug, Serialize, Deserialize)]
pub(crate) struct StatusArgs {
    /// Only this tenant [default: every tenant]
    #[arg(long)]
    tenant: Option<TenantId>,
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

/// One tenant's status.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TenantStatus {
    tenant: TenantId,
    head_seq: u64,
    chain_head: String,
    snapshots: usize,
    newest_snapshot_seq: Option<u64>,
    newest_checkpoint: Option<CheckpointStatus>,
    integrations: Vec<IntegrationStatus>,
    users: usize,
    groups: usize,
    pending_absences: Vec<AbsenceStatus>,
    revocations_waiting: usize,
    revocations_overdue: u64,
    oldest_overdue: Option<String>,
}

/// Something an integration's complete listings no longer contain, not removed yet.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AbsenceStatus {
    integration: String,
    kind: &'static str,
    label: String,
    listings: u32,
    since: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CheckpointStatus {
    seq: u64,
    time: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IntegrationStatus {
    integration: String,
    /// Known only while the service runs.
    running: Option<RunStatus>,
    /// The sync the guard holds, if any: its run and how many users it would deactivate.
    held: Option<HeldStatus>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RunStatus {
    runs: u64,
    failures: u64,
    last_finished: Option<String>,
    last_result: Option<&'static str>,
    last_error: Option<String>,
    last_warnings: Vec<String>,
    next_run: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HeldStatus {
    run: String,
    held_since: String,
    users_deactivated: u32,
    users_deleted: u32,
}

fn rfc3339(moment: Option<SystemTime>) -> Option<String> {
    let since = moment?.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    Some(Timestamp(i64::try_from(since.as_micros()).ok()?).to_rfc3339())
}

pub(crate) async fn run(context: &Context, args: StatusArgs) -> anyhow::Result<()> {
    let engine = context.open_engine().await?;
    let result = collect(context, &engine, &args).await;
    engine.close().await;
    print(context, &args, &result?)
}

/// What waits in `tenant`: pending absences, revocations not acknowledged.
fn waiting(tenant: &Tenant, status: &mut TenantStatus) {
    let state = tenant.state();
    status.users = state.user_count();
    status.groups = state.group_count();
    for integration in state.integrations_with_absences() {
        for (absent, absence) in state.pending_absences(integration) {
            let (kind, label) = state.absent_label(absent);
            status.pending_absences.push(AbsenceStatus {
                integration: integration.to_string(),
                kind,
                label,
                listings: absence.listings,
                since: absence.since.to_rfc3339(),
            });
        }
    }
    let overdue = tenant.overdue_revocations(Timestamp::now());
    status.revocations_waiting = tenant.unacknowledged_revocations().len();
    status.revocations_overdue = overdue.count;
    status.oldest_overdue = overdue.oldest.map(Timestamp::to_rfc3339);
}

async fn collect(context: &Context, engine: &Engine, args: &StatusArgs) -> anyhow::Result<Vec<TenantStatus>> {
    let store = engine.store();
    let tenants = match &args.tenant {
        Some(tenant) => vec![tenant.clone()],
        None => store.tenants().await?,
    };
    let checkpoints = checkpoint::stored(&context.data_dir, args.tenant.as_ref())?;
    let mut runs: BTreeMap<(TenantId, String), RunStatus> = context
        .running
        .iter()
        .flat_map(|running| running.integrations.status())
        .map(|status| {
            let key = (status.tenant.clone(), status.integration.to_string());
            let run = RunStatus {
                runs: status.runs,
                failures: status.failures,
                last_finished: rfc3339(status.last_finished),
                last_result: status.last_result,
                last_error: status.last_error,
                last_warnings: status.last_warnings,
                next_run: rfc3339(status.next_run),
            };
            (key, run)
        })
        .collect();
    let mut statuses = Vec::new();
    for tenant in tenants {
        let head = store
            .head(&tenant)
            .await
            .map_err(|error| anyhow::anyhow!("tenant {tenant}: {error}"))?;
        let snapshots = store.snapshots(&tenant).await?;
        // Loaded now if this is its first use since the service started.
        let handle = engine.existing_tenant(&tenant).await?;
        let held = match &context.running {
            Some(_) => handle.held(),
            None => BTreeMap::new(),
        };
        let configured = context
            .config
            .tenants
            .iter()
            .filter(|configured| configured.id == tenant)
            .flat_map(|configured| configured.integrations.iter().map(|i| i.name.to_string()));
        let integrations = configured
            .map(|name| IntegrationStatus {
                running: runs.remove(&(tenant.clone(), name.clone())),
                held: held
                    .iter()
                    .find(|(integration, _)| integration.as_str() == name)
                    .map(|(_, held)| HeldStatus {
                        run: held.snapshot.run.to_string(),
                        held_since: held.held_since.to_rfc3339(),
                        users_deactivated: held.report.users_deactivated,
                        users_deleted: held.report.users_deleted,
                    }),
                integration: name,
            })
            .collect();
        // A running service keeps the revocations it waits for; a command of its own reads
        // them back from the log, as the service does at its start.
        if context.running.is_none() {
            let since = Timestamp(Timestamp::now().0 - RECALL_WINDOW.as_micros() as i64);
            handle.recall_unacknowledged(since).await?;
        }
        let mut status = TenantStatus {
            newest_checkpoint: checkpoints
                .iter()
                .filter(|checkpoint| checkpoint.tenant == tenant)
                .max_by_key(|checkpoint| checkpoint.seq)
                .map(|checkpoint| CheckpointStatus {
                    seq: checkpoint.seq,
                    time: checkpoint.time.clone(),
                }),
            tenant,
            head_seq: head.seq.0,
            chain_head: head.chain.to_string(),
            snapshots: snapshots.len(),
            newest_snapshot_seq: snapshots.iter().map(|snapshot| snapshot.seq.0).max(),
            integrations,
            users: 0,
            groups: 0,
            pending_absences: Vec::new(),
            revocations_waiting: 0,
            revocations_overdue: 0,
            oldest_overdue: None,
        };
        waiting(&handle, &mut status);
        statuses.push(status);
    }
    Ok(statuses)
}

fn print(context: &Context, args: &StatusArgs, statuses: &[TenantStatus]) -> anyhow::Result<()> {
    if args.json {
        outln!("{}", serde_json::to_string_pretty(statuses)?);
        return Ok(());
    }
    if context.running.is_none() {
        outln!("(the service is not running here: integrations' runs and held syncs are known only to it)");
    }
    for status in statuses {
        outln!(
            "tenant {}: head seq {}, chain head {}",
            status.tenant,
            status.head_seq,
            status.chain_head
        );
        match status.newest_snapshot_seq {
            Some(seq) => outln!("  snapshots: {}, the newest at seq {seq}", status.snapshots),
            None => outln!("  snapshots: none"),
        }
        match &status.newest_checkpoint {
            Some(newest) => outln!("  newest checkpoint: seq {} at {}", newest.seq, newest.time),
            None => outln!("  newest checkpoint: none"),
        }
        for integration in &status.integrations {
            out!("  integration {}: ", integration.integration);
            match &integration.running {
                Some(run) => outln!(
                    "{} runs ({} failed), last finished {} ({}), next {}{}",
                    run.runs,
                    run.failures,
                    run.last_finished.as_deref().unwrap_or("never"),
                    run.last_result.unwrap_or("none yet"),
                    run.next_run.as_deref().unwrap_or("not scheduled"),
                    run.last_error
                        .as_deref()
                        .map(|error| format!("; last error: {error}"))
                        .unwrap_or_default()
                ),
                None => outln!("not running"),
            }
            for warning in integration.running.iter().flat_map(|run| &run.last_warnings) {
                outln!("    warning: {warning}");
            }
            if let Some(held) = &integration.held {
                outln!(
                    "    HELD since {}: run {} would deactivate {} and delete {} users; review it with \
                     GET /api/v1/tenants/{}/integrations/{}",
                    held.held_since,
                    held.run,
                    held.users_deactivated,
                    held.users_deleted,
                    status.tenant,
                    integration.integration
                );
            }
        }
        let mut by_integration: BTreeMap<&str, Vec<&AbsenceStatus>> = BTreeMap::new();
        for absence in &status.pending_absences {
            by_integration.entry(&absence.integration).or_default().push(absence);
        }
        for (integration, pending) in by_integration {
            outln!("  integration {integration}: {} absence(s) pending", pending.len());
            for absence in pending {
                outln!(
                    "    {} {}: absent from {} consecutive complete listing(s) since {}",
                    absence.kind,
                    absence.label,
                    absence.listings,
                    absence.since
                );
            }
        }
        if status.revocations_waiting > 0 {
            outln!(
                "  revocations waiting for the management server's acknowledgement: {} ({} overdue{})",
                status.revocations_waiting,
                status.revocations_overdue,
                status
                    .oldest_overdue
                    .as_deref()
                    .map(|at| format!(", the oldest since {at}"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}
