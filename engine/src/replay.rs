//! Replay: reading a stretch of the log, checking its chain, decoding and folding it.
//!
//! Reading runs ahead of folding: the next page is read (on a blocking thread, by the store)
//! while the current one is decoded and folded.

use std::sync::Arc;

use idpsync_storage::verify::ChainVerifier;
use idpsync_storage::{Hash32, Head, LogStore, Record, Seq, TenantId};

use crate::error::EngineError;
use crate::event::{LoggedEvent, decode_record};
use crate::history::History;
use crate::state::State;

/// Records read per page.
pub const REPLAY_PAGE_LEN: usize = 8192;

/// Reads `tenant`'s records after `state.seq()` up to `to` inclusive, checks that they continue
/// the chain, and hands each decoded event to `step`, which folds it into `state`.
///
/// The record at `state.seq()` itself is read again as the chain's anchor: it is trusted, as
/// part of what `state` already covers.
pub async fn replay_with(
    store: &Arc<dyn LogStore>,
    tenant: &TenantId,
    state: &mut State,
    to: Seq,
    mut step: impl FnMut(&mut State, LoggedEvent, Hash32),
) -> Result<(), EngineError> {
    let start = state.seq();
    if to <= start {
        return Ok(());
    }
    let mut verifier: Option<ChainVerifier> = (start == Seq::ZERO).then(|| ChainVerifier::new(tenant.clone()));
    let read = |from: Seq| {
        let store = Arc::clone(store);
        let tenant = tenant.clone();
        let limit = REPLAY_PAGE_LEN.min((to.0 - from.0 + 1) as usize);
        tokio::spawn(async move { store.read(&tenant, from, limit).await })
    };
    let mut pending = Some(read(Seq(start.0.max(1))));
    let mut reached = start;
    while let Some(task) = pending.take() {
        let page: Vec<Record> = task.await.map_err(|_| EngineError::Closed)??;
        let Some(last) = page.last() else { break };
        if last.seq < to {
            pending = Some(read(last.seq.next()));
        }
        for record in page {
            let Some(checker) = verifier.as_mut() else {
                // The anchor.
                if record.seq != start {
                    return Err(missing(
                        tenant,
                        start,
                        "the record the state was folded up to is missing",
                    ));
                }
                verifier = Some(ChainVerifier::after(
                    tenant.clone(),
                    Head {
                        seq: record.seq,
                        recorded_at: record.recorded_at,
                        chain: record.chain,
                    },
                ));
                continue;
            };
            checker.check(&record)?;
            let event = decode_record(&record).map_err(|e| EngineError::Corrupt {
                tenant: tenant.clone(),
                seq: record.seq,
                reason: e.to_string(),
            })?;
            reached = record.seq;
            step(state, event, record.chain);
        }
    }
    if reached < to {
        return Err(missing(tenant, reached.next(), "the log ends before its head"));
    }
    Ok(())
}

/// [`replay_with`] that only folds.
pub async fn replay(
    store: &Arc<dyn LogStore>,
    tenant: &TenantId,
    state: &mut State,
    to: Seq,
) -> Result<(), EngineError> {
    replay_with(store, tenant, state, to, |state, event, _| {
        state.apply_mut(&event);
    })
    .await
}

/// [`replay_with`] that folds and extends the history index, which must end where `state` does.
pub async fn replay_recording(
    store: &Arc<dyn LogStore>,
    tenant: &TenantId,
    state: &mut State,
    history: &mut History,
    to: Seq,
) -> Result<(), EngineError> {
    replay_with(store, tenant, state, to, |state, event, _| {
        let effects = state.apply_mut(&event);
        history.record(event.seq, event.recorded_at, &effects);
    })
    .await
}

fn missing(tenant: &TenantId, seq: Seq, reason: &str) -> EngineError {
    EngineError::Corrupt {
        tenant: tenant.clone(),
        seq,
        reason: reason.to_owned(),
    }
}
