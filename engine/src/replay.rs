//! Replay: reading a stretch of the log, checking its chain, decoding and folding it.
//!
//! Three things run at once: a task reads, chain-checks and decodes pages of records a few
//! pages ahead (through the log's one reader, [`EventPages`]); the fold folds them; and, when the history index is wanted, a blocking thread
//! extends it from batches of what the fold reports. A replay from the empty state (a full
//! replay: a tenant without a snapshot, `log verify`) folds into plain hash maps and freezes
//! them into the persistent state at the end ([`FlatState`]); a replay onto a state (a tail
//! after a snapshot or checkpoint) folds into that state.

use std::sync::Arc;

use idpsync_storage::{Hash32, LogStore, Seq, TenantId};

use crate::error::EngineError;
use crate::event::LoggedEvent;
use crate::history::{EffectsBatch, History};
use crate::reader::{EventPage, EventPages, PAGE_LEN};
use crate::seal::Opener;
use crate::state::{Effects, FlatState, State};

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
    mut step: impl FnMut(&mut T, &mut EventPage),
) -> Result<(), EngineError> {
    if to <= start {
        return Ok(());
    }
    let (pages, mut decoded) = tokio::sync::mpsc::channel(PAGES_AHEAD);
    let (spent, spent_pages) = tokio::sync::mpsc::unbounded_channel();
    let events = EventPages::chained_after(store, tenant, start, to);
    let producer = tokio::spawn(read_ahead(events, pages, spent_pages));
    while let Some(page) = decoded.recv().await {
        let mut page = page?;
        step(target, &mut page);
        // Fails only once the reader has stopped; the page is then dropped here.
        let _ = spent.send(page);
    }
    // The reader stops early only on an error, which it sent and the loop returned.
    producer.await.map_err(|_| EngineError::Closed)
}

/// Pages of decoded events the reader may run ahead of the fold.
const PAGES_AHEAD: usize = 4;

/// Reads `events` page by page into `pages`; stops at the first error, which it sends.
async fn read_ahead(
    mut events: EventPages,
    pages: tokio::sync::mpsc::Sender<Result<EventPage, EngineError>>,
    mut spent_pages: tokio::sync::mpsc::UnboundedReceiver<EventPage>,
) {
    loop {
        while let Ok(page) = spent_pages.try_recv() {
            drop(page);
        }
        let Some(page) = events.next_page().await.transpose() else {
            return;
        };
        let failed = page.is_err();
        if pages.send(page).await.is_err() || failed {
            return;
        }
    }
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
    let folded = fold_in_batches(store, tenant, opener, state, to, |batch| {
        // The indexer only stops when the sender is dropped: this send fails only if it
        // panicked, which the join below reports.
        let _ = batches.send(batch);
    })
    .await;
    drop(batches);
    *history = indexer.await.map_err(|_| EngineError::Closed)?;
    folded
}

/// [`replay_with`] that folds and hands what the records changed to `batches`, [`PAGE_LEN`]
/// records at a time: to extend a history index, or to keep for one that is not there yet (a
/// tenant's, still decoding from its snapshot).
pub(crate) async fn fold_in_batches(
    store: &Arc<dyn LogStore>,
    tenant: &TenantId,
    opener: &(dyn Opener + Sync),
    state: &mut State,
    to: Seq,
    mut batches: impl FnMut(EffectsBatch),
) -> Result<(), EngineError> {
    let mut batch = EffectsBatch::default();
    let folded = fold_tail(store, tenant, opener, state, to, |event, effects| {
        batch.push(event.seq, event.recorded_at, effects);
        if batch.len() == PAGE_LEN {
            batches(std::mem::take(&mut batch));
        }
    })
    .await;
    if !batch.is_empty() {
        batches(batch);
    }
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
