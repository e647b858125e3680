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
//! (data: seq, index, user, resource kind and id, role, and the group the access came through).
//! An idle stream sends a comment every heartbeat interval. A slow or disconnected consumer never
//! slows the writer: it falls behind the engine's broadcast and catches up from the in-memory
//! ring or the log (see `idpsync_engine::ChangeStream`).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use idpsync_engine::{Applied, ChangeStream, Tenant};
use idpsync_storage::Seq;
use serde::Deserialize;
use tokio::sync::watch;

use super::auth::TenantAccess;
use super::error::{ApiError, ApiQuery};
use super::wire::{access_change_json, access_event_name, logged_event_json};
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ChangesQuery {
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

async fn changes(
    State(state): State<ApiState>,
    access: TenantAccess,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<ChangesQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let position = start(&access.tenant, &headers, query.from)?;
    let feed = Feed {
        stream: access.tenant.subscribe(position.seq),
        tenant: Arc::clone(&access.tenant),
        skip: position.skip,
        pending: VecDeque::new(),
        closing: state.closing(),
        _client: Client::connect(access.tenant.id().as_str()),
    };
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        let event = feed.next().await?;
        Some((Ok(event), feed))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(state.inner.settings.heartbeat)))
}

/// One client's stream: the engine's change stream, cut into SSE items.
struct Feed {
    stream: ChangeStream,
    tenant: Arc<Tenant>,
    /// Items of the first record still to skip (resuming after one of them).
    skip: usize,
    pending: VecDeque<Event>,
    closing: watch::Receiver<bool>,
    _client: Client,
}

impl Feed {
    /// The next SSE item; `None` ends the stream (the service is stopping, or the log failed).
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            if *self.closing.borrow() {
                return None;
            }
            let applied = tokio::select! {
                applied = self.stream.next() => applied,
                _ = self.closing.changed() => return None,
            };
            match applied {
                Ok(applied) => self.render(&applied),
                Err(error) => {
                    tracing::warn!(tenant = %self.tenant.id(), %error, "change stream ended");
                    return None;
                }
            }
        }
    }

    fn render(&mut self, applied: &Applied) {
        let seq = applied.event.seq;
        let present = self.tenant.state();
        let keyring = self.tenant.keyring();
        let skip = std::mem::take(&mut self.skip);
        if skip == 0 {
            let data = logged_event_json(&applied.event, &applied.chain, &**keyring);
            self.pending.push_back(
                Event::default()
                    .id(item_id(seq, 0))
                    .event("event")
                    .data(data.to_string()),
            );
        }
        for (offset, change) in applied.access.iter().enumerate() {
            let index = offset + 1;
            if index < skip {
                continue;
            }
            let data = access_change_json(&present, change, index);
            self.pending.push_back(
                Event::default()
                    .id(item_id(seq, index))
                    .event(access_event_name(change))
                    .data(data.to_string()),
            );
        }
    }
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
        for id in ["7", "7.1", "7.2"] {
            let position = Position::after_id(id).unwrap();
            let (seq, index) = id.split_once('.').map_or((id, 0), |(s, i)| (s, i.parse().unwrap()));
            assert_eq!(position.seq.0.to_string(), seq);
            assert_eq!(position.skip, index + 1);
        }
    }
}
