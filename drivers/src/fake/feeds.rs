//! The vendors' change feeds as the fake serves them, rendered from the directory's log of
//! changes: Okta's System Log (`/api/v1/logs`), Auth0's log events (`/logs`) and authentik's
//! events (`/events/events/`). Shapes follow the vendors' documentation; the contracts in
//! `idp-contracts/` have none of these endpoints.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::vendors::authentik_page;
use super::{Call, Change, Directory, FakeMember, Logged};

type Answer = (Vec<(&'static str, String)>, Value);

/// What a garbled feed answers: not the vendor's shape.
fn garbled() -> Answer {
    (vec![], json!({"garbled": true}))
}

/// Every string in double quotes right after an occurrence of `key` in `text`:
/// `quoted_after("id eq \"a\" or id eq \"b\"", "id eq ")` is `["a", "b"]`.
pub(super) fn quoted_after(text: &str, key: &str) -> Vec<String> {
    text.split(key)
        .skip(1)
        .filter_map(|rest| rest.strip_prefix('"')?.split('"').next().map(str::to_owned))
        .collect()
}

/// The directory's changes with their feed ids, counted from 1: one change of the logical
/// clock (a user deleted) can log several.
fn numbered(directory: &Directory) -> impl Iterator<Item = (u64, &Logged)> {
    (1..).zip(&directory.changes)
}

pub(super) fn rfc3339(time: SystemTime) -> String {
    OffsetDateTime::from(time)
        .format(&Rfc3339)
        .expect("a system time formats as RFC 3339")
}

fn parse_time(text: &str) -> Option<SystemTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok().map(SystemTime::from)
}

/// Okta's System Log: `since` (7 days back by default), `filter` by `eventType eq "…"`,
/// `limit` (at most 1,000), `after`, oldest first. A polling query (no `until`) always offers
/// a next link, even on its last page.
pub(super) fn okta_log(origin: &str, call: &Call, directory: &Directory) -> Answer {
    if directory.garbled_feeds {
        return garbled();
    }
    let since = call
        .param("since")
        .and_then(parse_time)
        .unwrap_or_else(|| SystemTime::now() - Duration::from_secs(7 * 86_400));
    let types = quoted_after(call.param("filter").unwrap_or_default(), "eventType eq ");
    let limit = call.number("limit", 100).clamp(1, 1000);
    let after: u64 = call.param("after").and_then(|after| after.parse().ok()).unwrap_or(0);
    let events: Vec<(u64, Value)> = numbered(directory)
        .filter(|(id, logged)| logged.published >= since && *id > after)
        .filter_map(|(id, logged)| okta_event(id, logged).map(|event| (id, event)))
        .filter(|(_, event)| types.is_empty() || types.iter().any(|kind| event["eventType"] == kind.as_str()))
        .take(limit)
        .collect();
    let last = events.last().map_or(after, |(at, _)| *at);
    let mut next = reqwest::Url::parse(&format!("{origin}{}", call.path)).expect("the fake's own URL parses");
    for (key, value) in call.query.iter().filter(|(key, _)| key != "after") {
        next.query_pairs_mut().append_pair(key, value);
    }
    next.query_pairs_mut().append_pair("after", &last.to_string());
    (
        vec![("link", format!("<{next}>; rel=\"next\""))],
        Value::Array(events.into_iter().map(|(_, event)| event).collect()),
    )
}

fn okta_event(id: u64, logged: &Logged) -> Option<Value> {
    let user =
        |id: &str| json!({"id": id, "type": "User", "alternateId": format!("{id}@example.com"), "displayName": id});
    let group = |id: &str| json!({"id": id, "type": "UserGroup", "alternateId": "unknown", "displayName": id});
    let (kind, targets) = match &logged.change {
        Change::UserDeleted(id) => ("user.lifecycle.delete.initiated", vec![user(id)]),
        Change::UserDeactivated(id) => ("user.lifecycle.deactivate", vec![user(id)]),
        Change::GroupDeleted(id) => ("group.lifecycle.delete", vec![group(id)]),
        Change::Joined(id, FakeMember::User(member)) => ("group.user_membership.add", vec![user(member), group(id)]),
        Change::Left(id, FakeMember::User(member)) => ("group.user_membership.remove", vec![user(member), group(id)]),
        Change::Joined(_, FakeMember::Group(_)) | Change::Left(_, FakeMember::Group(_)) => return None,
    };
    Some(json!({
        "uuid": format!("evt-{id:012}"),
        "published": rfc3339(logged.published),
        "eventType": kind,
        "version": "0",
        "severity": "INFO",
        "displayMessage": kind,
        "actor": {"id": "00uadmin", "type": "User", "alternateId": "admin@example.com", "displayName": "Admin"},
        "outcome": {"result": "SUCCESS"},
        "target": targets,
    }))
}

/// Auth0's log events: by checkpoint (`from` a log id, `take` at most 100, oldest first), or by
/// search (`q` with `type:(…)` and `date:[… TO *]`, `sort` `date:1` or `date:-1`, `page` and
/// `per_page` at most 100). A bare array either way.
pub(super) fn auth0_logs(call: &Call, directory: &Directory) -> Answer {
    if directory.garbled_feeds {
        return garbled();
    }
    let events = numbered(directory).map(|(id, logged)| (id, logged, auth0_event(id, logged)));
    let page: Vec<Value> = match call.param("from") {
        Some(from) => {
            let from: u64 = from.parse().unwrap_or(0);
            let take = call.number("take", 50).min(100);
            events
                .filter(|(id, _, _)| *id > from)
                .take(take)
                .map(|(_, _, event)| event)
                .collect()
        }
        None => {
            let q = call.param("q").unwrap_or_default();
            // `type:("sdu" OR "du")`: the quoted words inside the parentheses.
            let types: Vec<&str> = q
                .split("type:(")
                .nth(1)
                .and_then(|rest| rest.split(')').next())
                .map(|inside| inside.split('"').skip(1).step_by(2).collect())
                .unwrap_or_default();
            let since = q
                .split("date:[")
                .nth(1)
                .and_then(|rest| rest.split(" TO").next())
                .and_then(parse_time);
            let mut found: Vec<Value> = events
                .filter(|(_, logged, _)| since.is_none_or(|since| logged.published >= since))
                .map(|(_, _, event)| event)
                .filter(|event| types.is_empty() || types.iter().any(|kind| event["type"] == *kind))
                .collect();
            if call.param("sort") == Some("date:-1") {
                found.reverse();
            }
            let per_page = call.number("per_page", 50).min(100);
            let start = call.number("page", 0).saturating_mul(per_page);
            found.into_iter().skip(start).take(per_page).collect()
        }
    };
    (vec![], Value::Array(page))
}

fn auth0_event(id: u64, logged: &Logged) -> Value {
    let mut event = json!({
        "log_id": format!("{id:020}"),
        "date": rfc3339(logged.published),
        "client_id": "fake-client",
        "client_name": "sync",
        "ip": "127.0.0.1",
    });
    match &logged.change {
        Change::UserDeleted(id) => {
            event["type"] = json!("sdu");
            event["description"] = json!("User deleted");
            event["user_id"] = json!(id);
        }
        change => {
            event["type"] = json!("sapi");
            event["description"] = json!(format!("{change:?}"));
        }
    }
    event
}

/// authentik's events: `action`, `context_model_app`, `ordering` (`-created` newest first),
/// `page` and `page_size`.
pub(super) fn authentik_events(call: &Call, directory: &Directory) -> Answer {
    if directory.garbled_feeds {
        return garbled();
    }
    let mut events: Vec<Value> = numbered(directory)
        .map(|(id, logged)| authentik_event(id, logged))
        .filter(|event| call.param("action").is_none_or(|action| event["action"] == action))
        .filter(|event| {
            call.param("context_model_app")
                .is_none_or(|app| event["context"]["model"]["app"] == app)
        })
        .collect();
    if call.param("ordering") == Some("-created") {
        events.reverse();
    }
    authentik_page(call, events.len(), &mut |start, end| events[start..end].to_vec())
}

fn authentik_event(id: u64, logged: &Logged) -> Value {
    let number = |id: &str| json!(id.parse::<i64>().unwrap_or(0));
    let (action, model) = match &logged.change {
        Change::UserDeleted(id) => (
            "model_deleted",
            json!({"app": "authentik_core", "model_name": "user", "pk": number(id), "name": id}),
        ),
        Change::UserDeactivated(id) => (
            "model_updated",
            json!({"app": "authentik_core", "model_name": "user", "pk": number(id), "name": id}),
        ),
        Change::GroupDeleted(id) => (
            "model_deleted",
            json!({"app": "authentik_core", "model_name": "group", "pk": id, "name": id}),
        ),
        Change::Joined(id, _) | Change::Left(id, _) => (
            "model_updated",
            json!({"app": "authentik_core", "model_name": "group", "pk": id, "name": id}),
        ),
    };
    json!({
        "pk": format!("00000000-0000-4000-9000-{id:012}"),
        "user": {"pk": 1, "username": "akadmin", "email": "admin@example.com"},
        "action": action,
        "app": "authentik.events.signals",
        "context": {"model": model, "http_request": {"args": {}, "path": "/api/v3/", "method": "DELETE", "request_id": "r", "user_agent": "fake"}},
        "client_ip": "127.0.0.1",
        "created": rfc3339(logged.published),
        "expires": rfc3339(logged.published + Duration::from_secs(365 * 86_400)),
        "brand": {},
    })
}
