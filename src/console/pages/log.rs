//! Log status: the tenant's head (its `seq` and chain link), its stored snapshots, its newest
//! signed checkpoint, and a "verify" action that runs the engine's verification of the whole
//! log (`idpsync log verify`): the chain from the first record, no gap, every record decodes,
//! every snapshot is what the log folds to.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};

use super::super::ConsoleState;
use super::super::layout::{Section, at, csrf_field, failure, page};
use super::super::signed_in::{NoFields, Posted, SignedIn};
use crate::checkpoint;

/// The status table, or why it cannot be read.
async fn status(state: &ConsoleState, signed_in: &SignedIn) -> Result<Markup, String> {
    let store = state.api().engine().store();
    let tenant = signed_in.tenant.id();
    let head = store.head(tenant).await.map_err(|error| error.to_string())?;
    let snapshots = store.snapshots(tenant).await.map_err(|error| error.to_string())?;
    let newest_snapshot = snapshots.iter().map(|snapshot| snapshot.seq.0).max();
    let newest_checkpoint = match &state.api().settings().data_dir {
        Some(data_dir) => Some(
            checkpoint::stored(data_dir, Some(tenant))
                .map_err(|error| error.to_string())?
                .into_iter()
                .max_by_key(|checkpoint| checkpoint.seq),
        ),
        None => None,
    };
    Ok(html! {
        table.facts #log-status {
            tr { th { "Head (seq)" } td #head-seq { (head.seq.0) } }
            tr { th { "Head's chain link" } td.mono { (head.chain) } }
            tr { th { "Head recorded at" } td { @if head.seq.0 == 0 { "—" } @else { (head.recorded_at.to_rfc3339()) } } }
            tr { th { "Stored snapshots" } td { (snapshots.len()) } }
            tr { th { "Newest snapshot" } td { @match newest_snapshot { Some(seq) => { "seq " (seq) }, None => "none" } } }
            tr { th { "Newest signed checkpoint" } td #newest-checkpoint {
                @match &newest_checkpoint {
                    Some(Some(checkpoint)) => { "seq " (checkpoint.seq) " signed at " (checkpoint.time) }
                    Some(None) => "none yet",
                    None => "not known to this service (it was started without its data directory)",
                }
            } }
        }
    })
}

fn status_page(signed_in: &SignedIn, table: Markup, result: Markup) -> Response {
    page(
        signed_in,
        Section::Log,
        "Log status",
        html! {
            (result)
            (table)
            form.card #verify method="post" action=(at("/log/verify")) {
                (csrf_field(signed_in))
                p { "Verify reads the whole log from its first record: the hash chain, no gap, every record decodes, and every stored snapshot is what the log folds to." }
                button #verify-button type="submit" { "Verify the log" }
            }
        },
    )
}

/// `GET /admin/log`.
pub(in super::super) async fn show(State(state): State<ConsoleState>, signed_in: SignedIn) -> Response {
    match status(&state, &signed_in).await {
        Ok(table) => status_page(&signed_in, table, html! {}),
        Err(error) => failure(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("cannot read the log: {error}"),
        ),
    }
}

/// `POST /admin/log/verify`: verifies the tenant's log and shows the result above the status.
pub(in super::super) async fn verify(State(state): State<ConsoleState>, posted: Posted<NoFields>) -> Response {
    let signed_in = &posted.signed_in;
    let result = match idpsync_engine::verify::verify_tenant(state.api().engine().store(), signed_in.tenant.id()).await
    {
        Ok(report) => html! {
            p.notice #verified {
                "The log verifies: " (report.records) " records, chain head " code { (report.chain_head) } ", "
                (report.snapshots) " snapshots re-folded and matched"
                @if report.snapshots_of_older_formats > 0 {
                    " (" (report.snapshots_of_older_formats) " of older formats checked by hash only)"
                }
                "."
            }
        },
        Err(error) => html! { p.error #verify-failed { "Verification failed: " (error) } },
    };
    match status(&state, signed_in).await {
        Ok(table) => status_page(signed_in, table, result),
        Err(error) => failure(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("cannot read the log: {error}"),
        ),
    }
}
