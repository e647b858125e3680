//! The change stream as Server-Sent Events: every applied event, then the access changes it
//! caused, in log order, from any position.
//!
//! # Event ids and resuming
//! An event's SSE id is its `seq` (`"1234"`). The access changes of that record follow it, the
//! i-th (from 1, in the projector's fixed order) with the id `"<seq>.<i>"` (`"1234.1"`,
//! `"1234.2"`). Replaying the log reproduces the same changes in the same order, so an id
//! names one item forever. A client that reconnects with `Last-Event-ID: <id>` gets exactly
//! the items after that one; `?from=SEQ` starts at the record `SEQ` (its event first). With
//! neither, the stream starts after the current head. `Last-Event-ID` wins over `from`: a
//! browser's `EventSource` keeps the URL and adds the header when it reconnects.
//!
//! Event names: `event` (data: the event as logged), `access.granted` and `access.revoked`
//! (data: seq, index, user, resource kind and id, role, and the group the access came through),
//! and `role.changed` (data: seq, index, user, oldRole, newRole, the binding and group that give
//! the new role, and those that gave the old one; see `idpsync_engine::roles`). A record's role
//! changes follow its access changes and continue their numbering.
//! An idle stream sends a comment every heartbeat interval. A slow or disconnected consumer never
//! slows the writer: it falls behind the engine's broadcast and catches up from the in-memory
//! ring or the log (see `idpsync_engine::ChangeStream`). A stream ends once its token is
//! revoked ([`super::auth::TokenWatch`]), within a second.
//!
//! # What a client costs
//! Each record is rendered once per process, not once per client: the items of recent records
//! are kept in a [`RenderCache`] per tenant, which clients at the same position share. An
//! erasure empties it (and drops the state its catch-up stream replayed): items rendered while
//! the user's key existed carry its userName and externalId. The
//! clients' work (catching up, rendering) runs on the API's own stream runtime, one thread
//! ([`StreamRuntime`]), so that however many clients there are, they take at most one core and
//! never queue ahead of the writer's task; the connection only forwards what it is handed.
//!
//! Clients that keep up cost little; clients far behind would take every spare cycle to catch
//! up, and on a small machine those are the writer's. So while the log takes writes fast
//! ([`BUSY_RECORDS_PER_SECOND`] or more), delivery to all clients together is capped at
//! [`BUSY_ITEMS_PER_SECOND`] ([`Governor`]); below that rate, clients get everything at once.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use idpsync_engine::{Applied, ChangeStream, Tenant};
use idpsync_storage::Seq;
use serde::Deserialize;
use tokio::sync::{Notify, mpsc, watch};

use super::auth::TenantAccess;
use super::error::{ApiError, ApiQuery, ErrorBody};
use super::wire::{AccessChangeRow, LoggedEventRow, RoleChangeRow, access_event_name};
use super::{ApiState, Routes};

pub(super) fn routes(routes: Routes) -> Routes {
    routes.get("/tenants/{tenant}/changes", changes)
}

/// Where a stream starts: the record `seq`, skipping its first `skip` items (0 is the event,
/// `i` its i-th access change).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// The record.
    pub seq: Seq,
    /// Items of that record already delivered.
    pub skip: usize,
}

impl Position {
    /// The position after the item with SSE id `id` (`"<seq>"` or `"<seq>.<i>"`).
    pub fn after_id(id: &str) -> Option<Position> {
        let (seq, index) = match id.trim().split_once('.') {
            Some((seq, index)) => (seq.parse::<u64>().ok()?, index.parse::<usize>().ok()?),
            None => (id.trim().parse::<u64>().ok()?, 0),
        };
        (seq >= 1).then_some(Position {
            seq: Seq(seq),
            skip: index + 1,
        })
    }
}

/// The SSE id of item `index` of record `seq`.
pub fn item_id(seq: Seq, index: usize) -> String {
    if index == 0 {
        seq.to_string()
    } else {
        format!("{seq}.{index}")
    }
}

/// `?from=` of the change stream.
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ChangesQuery {
    /// The record to start at (its event first); without it (and without `Last-Event-ID`),
    /// the stream starts after the current head.
    from: Option<u64>,
}

fn start(tenant: &Tenant, headers: &HeaderMap, from: Option<u64>) -> Result<Position, ApiError> {
    let head = tenant.state().seq();
    let position = match headers.get("last-event-id") {
        Some(value) => {
            let text = value.to_str().unwrap_or_default();
            Position::after_id(text).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Last-Event-ID {text:?} is not an id of this stream (`<seq>` or `<seq>.<index>`)"
                ))
            })?
        }
        None => match from {
            Some(0) => return Err(ApiError::bad_request("`from` counts from 1, the first record")),
            Some(seq) => Position { seq: Seq(seq), skip: 0 },
            None => Position {
                seq: head.next(),
                skip: 0,
            },
        },
    };
    if position.seq > head.next() {
        return Err(ApiError::bad_request(format!(
            "the stream cannot start at seq {}: the log ends at seq {head}",
            position.seq
        )));
    }
    Ok(position)
}

/// The change stream: events and the access changes they caused, as Server-Sent Events.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/changes",
    operation_id = "streamChanges",
    tag = "changes",
    params(
        super::doc::TenantPath,
        ChangesQuery,
        ("Last-Event-ID" = Option<String>, Header,
            description = "The id of the last item received (`<seq>` or `<seq>.<index>`): the stream resumes after it; wins over `from`"),
    ),
    responses(
        (status = 200, description = "Server-Sent Events: `event` items (data: a LoggedEventRow) with id `<seq>`, then \
            `access.granted` / `access.revoked` items (data: an AccessChangeRow) with id `<seq>.<index>`, then \
            `role.changed` items (data: a RoleChangeRow) with the following ids; a comment \
            every heartbeat interval while idle", content_type = "text/event-stream", body = String),
        (status = 400, description = "A malformed `from` or `Last-Event-ID`, or one beyond the log", body = ErrorBody),
    )
)]
async fn changes(
    State(state): State<ApiState>,
    access: TenantAccess,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<ChangesQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let position = start(&access.tenant, &headers, query.from)?;
    let (sender, receiver) = mpsc::channel::<Vec<Event>>(FORWARD_BATCHES);
    let feed = Feed {
        stream: access.tenant.subscribe(position.seq),
        next: position.seq,
        cache: state.render_cache(&access.tenant),
        governor: Arc::clone(&state.inner.governor),
        tenant: Arc::clone(&access.tenant),
        skip: position.skip,
        _client: Client::connect(access.tenant.id().as_str()),
    };
    state.inner.streams.spawn(feed.run(sender, state.closing()));
    let stream = futures_util::stream::unfold(
        (receiver, std::collections::VecDeque::new()),
        |(mut receiver, mut pending)| async move {
            if pending.is_empty() {
                pending.extend(receiver.recv().await?);
            }
            let event = pending.pop_front()?;
            Some((Ok(event), (receiver, pending)))
        },
    )
    // Ending the stream drops the receiver, which stops the feed.
    .take_until(Box::pin(access.watch.revoked()));
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(state.inner.settings.heartbeat)))
}

/// Batches of items handed to a connection ahead of what it has written.
const FORWARD_BATCHES: usize = 4;

/// The most items in one batch: a client behind the others takes what they already rendered
/// in batches, so that its connection is woken once per batch, not once per item.
const BATCH_LEN_MAX: usize = 1_024;

/// A write rate (records a second, all tenants) at which the writer counts as busy.
pub const BUSY_RECORDS_PER_SECOND: u64 = 10_000;

/// Items a second delivered to all clients together while the writer is busy.
pub const BUSY_ITEMS_PER_SECOND: u64 = 10_000;

/// How often the governor looks at the write rate.
const GOVERNOR_TICK: Duration = Duration::from_millis(100);

/// Caps change-stream delivery while the writer is busy (see the module docs).
pub struct Governor {
    busy: AtomicBool,
    /// Items that may still be sent in the current tick while busy.
    allowance: AtomicU64,
    /// Wakes feeds waiting for allowance at each tick.
    tick: Notify,
}

impl Governor {
    /// Starts watching `engine`'s write rate on `streams`.
    pub fn start(engine: Arc<idpsync_engine::Engine>, streams: &StreamRuntime) -> Arc<Governor> {
        let governor = Arc::new(Governor {
            busy: AtomicBool::new(false),
            allowance: AtomicU64::new(0),
            tick: Notify::new(),
        });
        let watcher = Arc::downgrade(&governor);
        streams.spawn(async move {
            let total = |engine: &idpsync_engine::Engine| engine.heads().iter().map(|(_, seq)| seq.0).sum::<u64>();
            let mut last = total(&engine);
            let mut ticker = tokio::time::interval(GOVERNOR_TICK);
            let per_tick = |rate: u64| rate * GOVERNOR_TICK.as_millis() as u64 / 1_000;
            loop {
                ticker.tick().await;
                let Some(governor) = watcher.upgrade() else { return };
                let now = total(&engine);
                governor
                    .busy
                    .store(now - last >= per_tick(BUSY_RECORDS_PER_SECOND), Ordering::Relaxed);
                governor
                    .allowance
                    .store(per_tick(BUSY_ITEMS_PER_SECOND), Ordering::Relaxed);
                governor.tick.notify_waiters();
                last = now;
            }
        });
        governor
    }

    /// Waits until `items` may be sent. A batch is admitted whole while any allowance is
    /// left in the tick, so the cap may be passed by one batch.
    async fn admit(&self, items: usize) {
        loop {
            if !self.busy.load(Ordering::Relaxed) {
                return;
            }
            // Registered before the check, so that a tick between the two is not missed.
            let next_tick = self.tick.notified();
            tokio::pin!(next_tick);
            next_tick.as_mut().enable();
            let taken = self
                .allowance
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                    (left > 0).then(|| left.saturating_sub(items as u64))
                });
            if taken.is_ok() {
                return;
            }
            next_tick.await;
        }
    }
}

/// Records whose rendered items are kept per tenant.
const RENDERED_MAX: usize = 32_768;

/// The rendered SSE items of a tenant's recent records, shared by its clients.
pub struct RenderCache {
    // A std mutex: held for a map lookup or insert, never across an await.
    rendered: Mutex<Rendered>,
    /// The change stream that clients catching up read through, one at a time, while the
    /// others wait and then find its work in the cache: a hundred clients behind by the same
    /// stretch of log read it once, not a hundred times, and the stream keeps its place (and
    /// its replay state) from one client to the next.
    catch_up: tokio::sync::Mutex<Option<ChangeStream>>,
}

/// The items, and the tenant's erasures they were rendered after: an erasure empties them at
/// the next look (or sooner, by the watcher [`RenderCache::start`] spawns), and an item
/// rendered across one is not kept.
struct Rendered {
    items: BTreeMap<Seq, Arc<[Event]>>,
    erasures: watch::Receiver<u64>,
    /// How many times the items were emptied.
    forgotten: u64,
}

impl RenderCache {
    /// The cache of `tenant`'s items; a task on `streams` empties it after each of the
    /// tenant's erasures, and drops the catch-up stream's replay.
    pub fn start(tenant: &Tenant, streams: &StreamRuntime) -> Arc<RenderCache> {
        let cache = Arc::new(RenderCache {
            rendered: Mutex::new(Rendered {
                items: BTreeMap::new(),
                erasures: tenant.erasures(),
                forgotten: 0,
            }),
            catch_up: tokio::sync::Mutex::new(None),
        });
        let mut erasures = tenant.erasures();
        let watched = Arc::downgrade(&cache);
        streams.spawn(async move {
            while erasures.changed().await.is_ok() {
                let Some(cache) = watched.upgrade() else { return };
                drop(cache.lock());
                *cache.catch_up.lock().await = None;
            }
        });
        cache
    }

    /// The items, emptied first if the tenant erased a user since the last look.
    fn lock(&self) -> std::sync::MutexGuard<'_, Rendered> {
        let mut rendered = self.rendered.lock().unwrap_or_else(|p| p.into_inner());
        // A closed sender means the tenant is gone; its items stay as they are.
        if rendered.erasures.has_changed().unwrap_or(false) {
            rendered.erasures.mark_unchanged();
            rendered.items.clear();
            rendered.forgotten += 1;
        }
        rendered
    }

    fn get(&self, seq: Seq) -> Option<Arc<[Event]>> {
        self.lock().items.get(&seq).cloned()
    }

    fn get_or_render(&self, seq: Seq, render: impl FnOnce() -> Vec<Event>) -> Arc<[Event]> {
        if let Some(items) = self.get(seq) {
            return items;
        }
        let forgotten = self.lock().forgotten;
        let rendered: Arc<[Event]> = render().into();
        let mut cache = self.lock();
        // An erasure while it was rendered: the items may hold what it erased. The client that
        // asked gets them, as if it had been a moment quicker; the cache does not keep them.
        if cache.forgotten == forgotten {
            cache.items.insert(seq, Arc::clone(&rendered));
            while cache.items.len() > RENDERED_MAX {
                cache.items.pop_first();
            }
        }
        rendered
    }
}

/// The one-thread runtime the change-stream clients' work runs on.
pub struct StreamRuntime {
    runtime: Option<tokio::runtime::Runtime>,
}

impl StreamRuntime {
    /// Starts the runtime's thread.
    pub fn start() -> std::io::Result<StreamRuntime> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("idpsync-streams")
            .enable_all()
            .build()?;
        Ok(StreamRuntime { runtime: Some(runtime) })
    }

    /// Runs `work` on the runtime's thread.
    pub fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        if let Some(runtime) = &self.runtime {
            runtime.spawn(work);
        }
    }
}

impl Drop for StreamRuntime {
    fn drop(&mut self) {
        // Dropping a runtime waits for its tasks, which an async context must not do.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// One client's stream: the engine's change stream, cut into SSE items.
struct Feed {
    stream: ChangeStream,
    /// The record whose items come next.
    next: Seq,
    cache: Arc<RenderCache>,
    governor: Arc<Governor>,
    tenant: Arc<Tenant>,
    /// Items of the first record still to skip (resuming after one of them).
    skip: usize,
    _client: Client,
}

impl Feed {
    /// Hands items to the connection until it goes away, the service stops, or the log fails.
    async fn run(mut self, sender: mpsc::Sender<Vec<Event>>, mut closing: watch::Receiver<bool>) {
        loop {
            if *closing.borrow() {
                return;
            }
            // A client that went away stops its work at once, not at its next item: a feed
            // catching up from the log would otherwise go on reading for nobody. Reading and
            // rendering wait for the governor too, as delivering does.
            tokio::select! {
                _ = self.governor.admit(1) => {}
                _ = closing.changed() => return,
                _ = sender.closed() => return,
            }
            let items = tokio::select! {
                items = self.next_record() => items,
                _ = closing.changed() => return,
                _ = sender.closed() => return,
            };
            let Some(items) = items else { return };
            let skip = std::mem::take(&mut self.skip);
            let mut batch: Vec<Event> = items.iter().skip(skip).cloned().collect();
            while batch.len() < BATCH_LEN_MAX
                && let Some(more) = self.cache.get(self.next)
            {
                self.next = self.next.next();
                batch.extend(more.iter().cloned());
            }
            if batch.is_empty() {
                continue;
            }
            tokio::select! {
                _ = self.governor.admit(batch.len()) => {}
                _ = closing.changed() => return,
                _ = sender.closed() => return,
            }
            if sender.send(batch).await.is_err() {
                return;
            }
        }
    }

    /// The items of record `next`: from the shared cache, or from a change stream (rendered
    /// once for everyone). Records already in the log are read through the tenant's shared
    /// catch-up stream; a client waiting for the next record waits on its own.
    async fn next_record(&mut self) -> Option<Arc<[Event]>> {
        if let Some(items) = self.cache.get(self.next) {
            self.next = self.next.next();
            return Some(items);
        }
        let cache = Arc::clone(&self.cache);
        let applied = if self.next <= self.tenant.state().seq() {
            let mut shared = cache.catch_up.lock().await;
            if let Some(items) = self.cache.get(self.next) {
                self.next = self.next.next();
                return Some(items);
            }
            let stream = shared.get_or_insert_with(|| self.tenant.subscribe(self.next));
            if stream.position() != self.next {
                *stream = self.tenant.subscribe(self.next);
            }
            stream.next().await
        } else {
            if self.stream.position() != self.next {
                self.stream = self.tenant.subscribe(self.next);
            }
            self.stream.next().await
        };
        let applied = match applied {
            Ok(applied) => applied,
            Err(error) => {
                tracing::warn!(tenant = %self.tenant.id(), %error, "change stream ended");
                return None;
            }
        };
        self.next = applied.event.seq.next();
        Some(
            self.cache
                .get_or_render(applied.event.seq, || render(&self.tenant, &applied)),
        )
    }
}

/// The SSE items of one applied record: its event, then its access changes, then its role
/// changes.
fn render(tenant: &Tenant, applied: &Applied) -> Vec<Event> {
    let seq = applied.event.seq;
    let present = tenant.state();
    let mut items = Vec::with_capacity(1 + applied.access.len() + applied.roles.len());
    let data = LoggedEventRow::of(&applied.event, &applied.chain, &**tenant.keyring());
    items.push(Event::default().id(item_id(seq, 0)).event("event").data(to_json(&data)));
    for (offset, change) in applied.access.iter().enumerate() {
        let index = offset + 1;
        let data = AccessChangeRow::of(&present, change, index);
        items.push(
            Event::default()
                .id(item_id(seq, index))
                .event(access_event_name(change))
                .data(to_json(&data)),
        );
    }
    for (offset, change) in applied.roles.iter().enumerate() {
        let index = applied.access.len() + offset + 1;
        let data = RoleChangeRow::of(&present, change, index);
        items.push(
            Event::default()
                .id(item_id(seq, index))
                .event("role.changed")
                .data(to_json(&data)),
        );
    }
    items
}

/// An item's data. The API's types serialize infallibly (string keys, no custom
/// serializers), so a failure here is a bug.
fn to_json(data: &impl serde::Serialize) -> String {
    serde_json::to_string(data).expect("the API's types serialize to JSON")
}

/// Counts connected SSE clients in `idpsync_api_sse_clients{tenant}` while it lives.
struct Client {
    tenant: String,
}

impl Client {
    fn connect(tenant: &str) -> Client {
        metrics::gauge!("idpsync_api_sse_clients", "tenant" => tenant.to_owned()).increment(1.0);
        Client {
            tenant: tenant.to_owned(),
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        metrics::gauge!("idpsync_api_sse_clients", "tenant" => self.tenant.clone()).decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_resume_after_the_item_they_name() {
        assert_eq!(Position::after_id("12"), Some(Position { seq: Seq(12), skip: 1 }));
        assert_eq!(Position::after_id("12.3"), Some(Position { seq: Seq(12), skip: 4 }));
        assert_eq!(Position::after_id("0"), None);
        assert_eq!(Position::after_id("x"), None);
        assert_eq!(Position::after_id("1.x"), None);
        assert_eq!(item_id(Seq(12), 0), "12");
        assert_eq!(item_id(Seq(12), 3), "12.3");
        // An id names one item: resuming after it starts with the item after it.
        assert_eq!(
            Position::after_id(&item_id(Seq(7), 0)),
            Some(Position { seq: Seq(7), skip: 1 })
        );
        assert_eq!(
            Position::after_id(&item_id(Seq(7), 2)),
            Some(Position { seq: Seq(7), skip: 3 })
        );
    }
}
