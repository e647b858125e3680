//! Replay: reading a stretch of the log, checking its chain, decoding and folding it.
//!
//! Three things run at once: a task reads, chain-checks and decodes pages of records a few
//! pages ahead; the fold folds them; and, when the history index is wanted, a blocking thread
//! extends it from batches of what the fold reports. A replay from the empty state (a full
//! replay: a tenant without a snapshot, `log verify`) folds into plain hash maps and freezes
//! them into the persistent state at the end ([`FlatState`]); a replay onto a state (a tail
//! after a snapshot or checkpoint) folds into that state.

use std::sync::Arc;

use idpsync_storage::verify::ChainVerifier;
use idpsync_storage::{Hash32, Head, LogStore, Record, Seq, TenantId};

use crate::error::EngineError;
use crate::event::{LoggedEvent, decode_record};
use crate::history::{EffectsBatch, History};
use crate::seal::Opener;
use crate::state::{Effects, FlatState, State};

/// Records read per page.
pub const REPLAY_PAGE_LEN: usize = 8192;

/// Reads `tenant`'s records after `state.seq()` up to `to` inclusive, checks that they continue
/// the chain, and hands each decoded event to `step`, which folds it into `state`.
///
/// The record at `state.seq()` itself is read again as the chain's anchor: it is trusted, as
/// part of what `state` already covers. Reading, checking and decoding run in a task of their
/// own, a few pages ahead of the fold.
pub async fn replay_with(
    store: &Arc<dyn LogStore>,
    tenant: &TenantId,
    state: &mut State,
    to: Seq,
    mut step: impl FnMut(&mut State, LoggedEvent, Hash32),
) -> Result<(), EngineError> {
    let start = state.seq();
    replay_pages(store, tenant, start, state, to, |state, page| {
        for (event, chain) in page.drain(..) {
            step(state, event, chain);
        }
    })
    .await
}

/// [`replay_with`] into any `target` that has folded the log up to `start`, a page of events
/// at a time. What `step` leaves in a page is dropped by the reading task, which allocated it,
/// rather than by the fold.
async fn replay_pages<T>(
    store: &Arc<dyn LogStore>,
    tenant: &TenantId,
    start: Seq,
    target: &mut T,
    to: Seq,
    mut step: impl FnMut(&mut T, &mut Vec<(LoggedEvent, Hash32)>),
) -> Result<(), EngineError> {
    if to <= start {
        return Ok(());
    }
    let (pages, mut decoded) = tokio::sync::mpsc::channel(PAGES_AHEAD);
    let (spent, spent_pages) = tokio::sync::mpsc::unbounded_channel();
    let reader = read_ahead(Arc::clone(store), tenant.clone(), start, to, pages, spent_pages);
    let producer = tokio::spawn(reader);
    let mut reached = start;
    while let Some(page) = decoded.recv().await {
        let mut page = page?;
        if let Some((event, _)) = page.last() {
            reached = event.seq;
        }
        step(target, &mut page);
        // Fails only once the reader has stopped; the page is then dropped here.
        let _ = spent.send(page);
    }
    producer.await.map_err(|_| EngineError::Closed)?;
    if reached < to {
        return Err(missing(tenant, reached.next(), "the log ends before its head"));
    }
    Ok(())
}

/// Pages of decoded events the reader may run ahead of the fold.
const PAGES_AHEAD: usize = 4;

type DecodedPage = Result<Vec<(LoggedEvent, Hash32)>, EngineError>;

/// Reads, chain-checks and decodes records `start + 1 ..= to` page by page into `pages`; stops
/// at the first error, which it sends.
async fn read_ahead(
    store: Arc<dyn LogStore>,
    tenant: TenantId,
    start: Seq,
    to: Seq,
    pages: tokio::sync::mpsc::Sender<DecodedPage>,
    mut spent_pages: tokio::sync::mpsc::UnboundedReceiver<Vec<(LoggedEvent, Hash32)>>,
) {
    let mut verifier: Option<ChainVerifier> = (start == Seq::ZERO).then(|| ChainVerifier::new(tenant.clone()));
    let mut from = Seq(start.0.max(1));
    while from <= to {
        while let Ok(page) = spent_pages.try_recv() {
            drop(page);
        }
        let limit = REPLAY_PAGE_LEN.min((to.0 - from.0 + 1) as usize);
        let page = match store.read(&tenant, from, limit).await {
            Ok(page) if !page.is_empty() => page,
            Ok(_) => return,
            Err(error) => {
                let _ = pages.send(Err(error.into())).await;
                return;
            }
        };
        from = page.last().expect("the page is not empty").seq.next();
        let decoded = check_and_decode(&tenant, start, &mut verifier, page);
        let failed = decoded.is_err();
        if pages.send(decoded).await.is_err() || failed {
            return;
        }
    }
}

fn check_and_decode(
    tenant: &TenantId,
    start: Seq,
    verifier: &mut Option<ChainVerifier>,
    page: Vec<Record>,
) -> DecodedPage {
    let mut events = Vec::with_capacity(page.len());
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
            *verifier = Some(ChainVerifier::after(
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
        events.push((event, record.chain));
    }
    Ok(events)
}

/// [`replay_with`] that only folds, reading personal fields with `opener`.
pub async fn replay(
    store: &Arc<dyn LogStore>,
    tenant: &TenantId,
    opener: &(dyn Opener + Sync),
    state: &mut State,
    to: Seq,
) -> Result<(), EngineError> {
    fold_tail(store, tenant, opener, state, to, |_, _| {}).await
}

/// [`replay_with`] that folds and extends the history index, which must end where `state` does.
pub async fn replay_recording(
    store: &Arc<dyn LogStore>,
    tenant: &TenantId,
    opener: &(dyn Opener + Sync),
    state: &mut State,
    history: &mut History,
    to: Seq,
) -> Result<(), EngineError> {
    // The index is extended on a blocking thread of its own, a batch of records at a time,
    // while the fold goes on: the two take comparable time on a large log.
    // A std channel: the fold is synchronous code, and waits (rarely) for the indexer.
    let (batches, received) = std::sync::mpsc::sync_channel::<EffectsBatch>(PAGES_AHEAD);
    let mut owned = std::mem::take(history);
    let indexer = tokio::task::spawn_blocking(move || {
        for batch in received {
            owned.record_batch(&batch);
        }
        owned
    });
    let mut batch = EffectsBatch::default();
    let folded = fold_tail(store, tenant, opener, state, to, |event, effects| {
        batch.push(event.seq, event.recorded_at, effects);
        if batch.len() == REPLAY_PAGE_LEN {
            // The indexer only stops when the sender is dropped: this send fails only if it
            // panicked, which the join below reports.
            let _ = batches.send(std::mem::take(&mut batch));
        }
    })
    .await;
    if !batch.is_empty() {
        let _ = batches.send(batch);
    }
    drop(batches);
    *history = indexer.await.map_err(|_| EngineError::Closed)?;
    folded
}

/// Folds the records after `state` up to `to` into it, handing each event and what it changed
/// to `folded`. From the empty state (a full replay), the fold goes into plain maps, frozen
/// into `state` at the end ([`FlatState`]): the same fold, without paying for persistence
/// while no one reads the state.
async fn fold_tail(
    store: &Arc<dyn LogStore>,
    tenant: &TenantId,
    opener: &(dyn Opener + Sync),
    state: &mut State,
    to: Seq,
    mut folded: impl FnMut(&LoggedEvent, &Effects),
) -> Result<(), EngineError> {
    if state.seq() != Seq::ZERO {
        return replay_with(store, tenant, state, to, |state, event, _| {
            folded(&event, &state.apply_mut(&event, opener));
        })
        .await;
    }
    let (mut flat, mut effects) = (FlatState::new(), Effects::default());
    replay_pages(store, tenant, Seq::ZERO, &mut flat, to, |flat, page| {
        for (event, _) in page.iter() {
            flat.apply_into(event, opener, &mut effects);
            folded(event, &effects);
        }
    })
    .await?;
    *state = flat.freeze();
    Ok(())
}

fn missing(tenant: &TenantId, seq: Seq, reason: &str) -> EngineError {
    EngineError::Corrupt {
        tenant: tenant.clone(),
        seq,
        reason: reason.to_owned(),
    }
}
