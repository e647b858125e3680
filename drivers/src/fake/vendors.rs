//! The eight vendors' paths, shapes, paging and rate-limit signals, as the fake serves them.
//! Shapes follow the contracts in `idp-contracts/` (checked by `tests/contract.rs`).

use serde_json::{Value, json};

use super::feeds::rfc3339;
use super::{Call, Change, Directory, FakeGroup, FakeMember, FakeUser, json_response};
use axum::http::StatusCode;
use axum::response::Response;

/// Which IdP a fake plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Vendor {
    /// Microsoft Graph.
    Entra,
    /// Okta.
    Okta,
    /// Google Workspace.
    Google,
    /// JumpCloud.
    JumpCloud,
    /// Keycloak.
    Keycloak,
    /// Auth0.
    Auth0,
    /// authentik.
    Authentik,
    /// Zitadel.
    Zitadel,
}

impl Vendor {
    /// All eight.
    pub const ALL: [Vendor; 8] = [
        Vendor::Entra,
        Vendor::Okta,
        Vendor::Google,
        Vendor::JumpCloud,
        Vendor::Keycloak,
        Vendor::Auth0,
        Vendor::Authentik,
        Vendor::Zitadel,
    ];

    /// The provider name of the configuration.
    pub fn provider(self) -> &'static str {
        match self {
            Vendor::Entra => "entra",
            Vendor::Okta => "okta",
            Vendor::Google => "google",
            Vendor::JumpCloud => "jumpcloud",
            Vendor::Keycloak => "keycloak",
            Vendor::Auth0 => "auth0",
            Vendor::Authentik => "authentik",
            Vendor::Zitadel => "zitadel",
        }
    }

    /// The API root path under the fake's origin (the vendor's `servers` path).
    pub fn base_path(self) -> &'static str {
        match self {
            Vendor::Entra => "/v1.0",
            Vendor::JumpCloud => "/api",
            Vendor::Auth0 => "/api/v2",
            Vendor::Authentik => "/api/v3",
            _ => "",
        }
    }
}

/// The test-only RSA key of the JWT flows (Google service account, Okta service app).
const TEST_KEY: &str = super::credentials::PRIVATE_KEY;

/// The integration's TOML for a fake at `origin`, which is plain http on loopback: hence
/// `allow_insecure_http`.
pub(super) fn integration_toml(vendor: Vendor, origin: &str) -> String {
    let base = format!("{origin}{}", vendor.base_path());
    let common = format!(
        "provider = \"{}\"\nbase_url = \"{base}\"\nallow_insecure_http = true\n",
        vendor.provider()
    );
    let specific = match vendor {
        Vendor::Entra => format!(
            "token_url = \"{origin}/contoso/oauth2/v2.0/token\"\nclient_id = \"fake-client\"\nclient_secret = \"fake-secret\"\n"
        ),
        Vendor::Okta | Vendor::Authentik => "api_token = \"fake-api-token\"\n".to_owned(),
        Vendor::Google => {
            let key = json!({"client_email": "sync@fake.iam.gserviceaccount.com", "private_key_id": "k1", "private_key": TEST_KEY});
            format!(
                "token_url = \"{origin}/token\"\nsubject = \"admin@example.com\"\nservice_account_key = {}\n",
                toml_string(&key.to_string())
            )
        }
        Vendor::JumpCloud => "api_key = \"fake-api-token\"\n".to_owned(),
        Vendor::Keycloak => {
            "realm = \"acme\"\nclient_id = \"fake-client\"\nclient_secret = \"fake-secret\"\n".to_owned()
        }
        Vendor::Auth0 => format!(
            "token_url = \"{origin}/oauth/token\"\nclient_id = \"fake-client\"\nclient_secret = \"fake-secret\"\n"
        ),
        Vendor::Zitadel => "pat = \"fake-api-token\"\n".to_owned(),
    };
    format!("{common}{specific}")
}

fn toml_string(text: &str) -> String {
    format!(
        "\"{}\"",
        text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
    )
}

pub(super) fn is_token_path(vendor: Vendor, path: &str) -> bool {
    match vendor {
        Vendor::Entra => path.ends_with("/oauth2/v2.0/token"),
        Vendor::Okta => path == "/oauth2/v1/token",
        Vendor::Google => path == "/token",
        Vendor::Keycloak => path.ends_with("/protocol/openid-connect/token"),
        Vendor::Auth0 => path == "/oauth/token",
        Vendor::Zitadel => path == "/oauth/v2/token",
        Vendor::JumpCloud | Vendor::Authentik => false,
    }
}

/// The header and value a vendor with static credentials expects; `None` for bearer tokens the
/// fake issued.
pub(super) fn static_auth(vendor: Vendor) -> Option<(&'static str, &'static str)> {
    match vendor {
        Vendor::Okta => Some(("authorization", "SSWS fake-api-token")),
        Vendor::JumpCloud => Some(("x-api-key", "fake-api-token")),
        Vendor::Authentik | Vendor::Zitadel => Some(("authorization", "Bearer fake-api-token")),
        _ => None,
    }
}

/// The integration's TOML for an Entra fake reached with a certificate's private key.
pub(super) fn entra_certificate_toml(origin: &str, private_key: &str, certificate: &str) -> String {
    let base = format!("{origin}{}", Vendor::Entra.base_path());
    format!(
        "provider = \"entra\"\nbase_url = \"{base}\"\nallow_insecure_http = true\ntoken_url = \"{origin}/contoso/oauth2/v2.0/token\"\nclient_id = \"fake-client\"\nprivate_key = {}\ncertificate = {}\n",
        toml_string(private_key),
        toml_string(certificate)
    )
}

/// The integration's TOML for an Okta fake reached by a service app (`private_key_jwt`).
pub(super) fn okta_service_app_toml(origin: &str) -> String {
    format!(
        "provider = \"okta\"\nbase_url = \"{origin}\"\nallow_insecure_http = true\nclient_id = \"fake-client\"\nprivate_key = \"\"\"\n{TEST_KEY}\"\"\"\n"
    )
}

/// A token request the vendor refuses for a scope the client was not granted: Okta's service
/// app without `okta.logs.read` when the feeds' permission is withheld.
pub(super) fn refuse_scope(vendor: Vendor, scopes: &str, withheld: bool) -> Option<(Response, Option<Value>)> {
    let refused =
        vendor == Vendor::Okta && withheld && scopes.split_whitespace().any(|scope| scope == "okta.logs.read");
    refused.then(|| {
        json_response(
            StatusCode::BAD_REQUEST,
            vec![],
            json!({"error": "invalid_scope", "error_description": "The following scopes are not allowed: [okta.logs.read]"}),
        )
    })
}

/// Whether `path` is one of the vendor's change feeds.
fn is_feed_path(vendor: Vendor, path: &str) -> bool {
    match vendor {
        Vendor::Okta => path == "/api/v1/logs",
        Vendor::Auth0 => path == "/api/v2/logs",
        Vendor::Authentik => path == "/api/v3/events/events/",
        _ => false,
    }
}

/// A change feed's 403 in the vendor's words, for an integration without its permission.
fn feed_forbidden(vendor: Vendor) -> (Response, Option<Value>) {
    let body = match vendor {
        Vendor::Okta => json!({
            "errorCode": "E0000006",
            "errorSummary": "You do not have permission to perform the requested action",
            "errorLink": "E0000006", "errorId": "fake", "errorCauses": []
        }),
        Vendor::Auth0 => json!({
            "statusCode": 403, "error": "Forbidden",
            "message": "Insufficient scope, expected any of: read:logs", "errorCode": "insufficient_scope"
        }),
        _ => json!({"detail": "You do not have permission to perform this action."}),
    };
    json_response(StatusCode::FORBIDDEN, vec![], body)
}

/// A request the vendor refuses with a 4xx of its own: Graph's delta functions take no `$top`
/// (the page size goes in `Prefer: odata.maxpagesize`) and answer an expired delta token 400
/// `syncStateNotFound`; a change feed answers 403 while its permission is withheld.
pub(super) fn refuse(vendor: Vendor, call: &Call, directory: &Directory) -> Option<(Response, Option<Value>)> {
    if directory.feed_permission_withheld && is_feed_path(vendor, &call.path) {
        return Some(feed_forbidden(vendor));
    }
    let graph_error = |code: &str, message: &str| {
        json_response(
            StatusCode::BAD_REQUEST,
            vec![],
            json!({"error": {"code": code, "message": message, "innerError": {"request-id": "fake", "date": "2024-01-01T00:00:00"}}}),
        )
    };
    match vendor {
        Vendor::Entra if call.path.ends_with("/delta()") => {
            if call.param("$top").is_some() {
                return Some(graph_error(
                    "Request_UnsupportedQuery",
                    "Unsupported query option: $top",
                ));
            }
            let since: Option<u64> = call.param("$deltatoken").and_then(|token| token.parse().ok());
            if since.is_some_and(|since| since < directory.delta_horizon) {
                return Some(graph_error(
                    "syncStateNotFound",
                    "The sync state generation is not found.",
                ));
            }
            None
        }
        _ => None,
    }
}

/// The quota headers a vendor sends on every answer: Okta's `X-Rate-Limit-*` and Auth0's
/// `X-RateLimit-*` (reset in epoch seconds). The others send none.
pub(super) fn quota_headers(vendor: Vendor, limit: u32, remaining: u32, reset: u64) -> Vec<(&'static str, String)> {
    let names = match vendor {
        Vendor::Okta => ["x-rate-limit-limit", "x-rate-limit-remaining", "x-rate-limit-reset"],
        Vendor::Auth0 => ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"],
        _ => return Vec::new(),
    };
    names
        .into_iter()
        .zip([limit.to_string(), remaining.to_string(), reset.to_string()])
        .collect()
}

/// The vendor's "slow down" answer: come back in `retry_after` seconds; `limit` is the quota
/// the headers name (the vendor's documented one when the fake has none).
pub(super) fn rate_limited(
    vendor: Vendor,
    retry_after: u64,
    now: u64,
    limit: Option<u32>,
) -> (Response, Option<Value>) {
    let limit = limit
        .or_else(|| super::Quota::documented(vendor).map(|quota| quota.limit))
        .unwrap_or(0);
    let seconds = retry_after.to_string();
    let quota = quota_headers(vendor, limit, 0, now + retry_after);
    match vendor {
        Vendor::Okta => json_response(
            StatusCode::TOO_MANY_REQUESTS,
            quota,
            json!({"errorCode": "E0000047", "errorSummary": "API call exceeded rate limit due to too many requests.", "errorLink": "E0000047", "errorId": "sampleQPivGUj_ND5v78vbYWW", "errorCauses": []}),
        ),
        Vendor::Auth0 => json_response(
            StatusCode::TOO_MANY_REQUESTS,
            quota,
            json!({"statusCode": 429, "error": "Too Many Requests", "message": "Global limit has been reached", "errorCode": "too_many_requests"}),
        ),
        Vendor::Google => json_response(
            StatusCode::FORBIDDEN,
            vec![],
            json!({"error": {"code": 403, "message": "Quota exceeded for quota metric", "status": "PERMISSION_DENIED", "errors": [{"domain": "usageLimits", "reason": "userRateLimitExceeded", "message": "User Rate Limit Exceeded"}]}}),
        ),
        Vendor::Entra => json_response(
            StatusCode::TOO_MANY_REQUESTS,
            vec![("retry-after", seconds)],
            json!({"error": {"code": "TooManyRequests", "message": "Too many requests", "innerError": {"request-id": "r", "client-request-id": "c", "date": "2024-01-01T00:00:00"}}}),
        ),
        Vendor::Zitadel => json_response(
            StatusCode::TOO_MANY_REQUESTS,
            vec![("retry-after", seconds)],
            json!({"code": 8, "message": "resource exhausted", "details": []}),
        ),
        Vendor::JumpCloud | Vendor::Keycloak | Vendor::Authentik => json_response(
            StatusCode::TOO_MANY_REQUESTS,
            vec![("retry-after", seconds)],
            json!({"message": "too many requests"}),
        ),
    }
}

type Answer = (Vec<(&'static str, String)>, Value);

/// Answers an API call, or `None` for a path the vendor does not have.
pub(super) fn route(vendor: Vendor, origin: &str, call: &Call, directory: &Directory) -> Option<Answer> {
    let path = call.path.strip_prefix(vendor.base_path())?;
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match vendor {
        Vendor::Entra => entra(origin, call, &segments, directory),
        Vendor::Okta => okta(origin, call, &segments, directory),
        Vendor::Google => google(call, &segments, directory),
        Vendor::JumpCloud => jumpcloud(call, &segments, directory),
        Vendor::Keycloak => keycloak(call, &segments, directory),
        Vendor::Auth0 => auth0(call, &segments, directory),
        Vendor::Authentik => authentik(call, &segments, directory),
        Vendor::Zitadel => zitadel(call, &segments, directory),
    }
}

/// A window of `items` from `offset`, and whether more follow.
fn window<T: Clone>(items: &[T], offset: usize, limit: usize) -> (Vec<T>, bool) {
    let end = offset.saturating_add(limit).min(items.len());
    let start = offset.min(end);
    (items[start..end].to_vec(), end < items.len())
}

fn members_of(group: &FakeGroup) -> Vec<&FakeMember> {
    group.members.iter().collect()
}

fn user_ids(group: &FakeGroup) -> Vec<String> {
    group
        .members
        .iter()
        .filter_map(|member| match member {
            FakeMember::User(id) => Some(id.clone()),
            FakeMember::Group(_) => None,
        })
        .collect()
}

fn entra_user(user: &FakeUser) -> Value {
    json!({"@odata.type": "#microsoft.graph.user", "id": user.id, "userPrincipalName": user.email, "accountEnabled": user.active, "displayName": format!("{} {}", user.given_name, user.family_name), "givenName": user.given_name, "surname": user.family_name, "mail": user.email})
}

fn entra_member(member: &FakeMember, removed: bool) -> Value {
    let (kind, id) = match member {
        FakeMember::User(id) => ("#microsoft.graph.user", id),
        FakeMember::Group(id) => ("#microsoft.graph.group", id),
    };
    let mut value = json!({"@odata.type": kind, "id": id});
    if removed {
        value["@removed"] = json!({"reason": "deleted"});
    }
    value
}

/// One item of a Graph delta page, rendered only if it is on the page asked for.
#[derive(Clone)]
enum Entry<'a> {
    User(&'a FakeUser),
    Group(&'a FakeGroup),
    Raw(Value),
}

fn entra_entry(entry: Entry<'_>) -> Value {
    match entry {
        Entry::User(user) => entra_user(user),
        Entry::Group(group) => {
            let members: Vec<Value> = members_of(group).into_iter().map(|m| entra_member(m, false)).collect();
            json!({"@odata.type": "#microsoft.graph.group", "id": group.id, "displayName": group.name, "members@delta": members})
        }
        Entry::Raw(value) => value,
    }
}

fn entra(origin: &str, call: &Call, segments: &[&str], directory: &Directory) -> Option<Answer> {
    let round = match segments {
        ["users"] => return Some(entra_users_by_id(call, directory)),
        ["groups", id, "members"] => return entra_group_members(origin, call, id, directory),
        ["users", "delta()"] => "users",
        ["groups", "delta()"] => "groups",
        _ => return None,
    };
    let top = call
        .headers
        .get("prefer")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().strip_prefix("odata.maxpagesize="))
        .and_then(|size| size.parse().ok())
        .unwrap_or(100usize)
        .min(999);
    let since: Option<u64> = call.param("$deltatoken").and_then(|token| token.parse().ok());
    let offset = call.number("$skiptoken", 0);
    let items: Vec<Entry> = match (round, since) {
        ("users", None) => directory.users().map(Entry::User).collect(),
        ("users", Some(since)) => {
            let mut items: Vec<Entry> = directory
                .users()
                .filter(|user| user.updated > since)
                .map(Entry::User)
                .collect();
            for logged in &directory.changes {
                if let (true, Change::UserDeleted(id)) = (logged.at > since, &logged.change) {
                    items.push(Entry::Raw(
                        json!({"@odata.type": "#microsoft.graph.user", "id": id, "@removed": {"reason": "deleted"}}),
                    ));
                }
            }
            items
        }
        ("groups", None) => directory.groups().map(Entry::Group).collect(),
        (_, Some(since)) => {
            let mut items: Vec<Entry> = directory
                .groups()
                .filter(|group| group.updated > since)
                .map(|group| {
                    Entry::Raw(
                        json!({"@odata.type": "#microsoft.graph.group", "id": group.id, "displayName": group.name}),
                    )
                })
                .collect();
            for logged in directory.changes.iter().filter(|logged| logged.at > since) {
                match &logged.change {
                    Change::Joined(group, member) => {
                        items.push(Entry::Raw(json!({"@odata.type": "#microsoft.graph.group", "id": group, "members@delta": [entra_member(member, false)]})))
                    }
                    Change::Left(group, member) => {
                        items.push(Entry::Raw(json!({"@odata.type": "#microsoft.graph.group", "id": group, "members@delta": [entra_member(member, true)]})))
                    }
                    Change::GroupDeleted(id) => items.push(Entry::Raw(json!({"@odata.type": "#microsoft.graph.group", "id": id, "@removed": {"reason": "deleted"}}))),
                    Change::UserDeleted(_) | Change::UserDeactivated(_) => {}
                }
            }
            items
        }
        _ => return None,
    };
    let (page, more) = window(&items, offset, top);
    let page: Vec<Value> = page.into_iter().map(entra_entry).collect();
    let link = format!("{origin}/v1.0/{round}/delta()");
    let mut body = json!({"value": page});
    if more {
        let mut next = format!("{link}?$skiptoken={}", offset + top);
        if let Some(since) = since {
            next.push_str(&format!("&$deltatoken={since}"));
        }
        body["@odata.nextLink"] = json!(next);
    } else {
        body["@odata.deltaLink"] = json!(format!("{link}?$deltatoken={}", directory.clock));
    }
    Some((vec![], body))
}

/// `GET /groups/{id}/members`: the group's direct members, `$top` a page (at most 999), paged
/// by `$skiptoken`.
fn entra_group_members(origin: &str, call: &Call, id: &str, directory: &Directory) -> Option<Answer> {
    let group = directory.groups.get(id)?;
    let top = call.number("$top", 100).clamp(1, 999);
    let offset = call.number("$skiptoken", 0);
    let members: Vec<&FakeMember> = members_of(group);
    let (page, more) = window(&members, offset, top);
    let mut body = json!({"value": page.into_iter().map(|member| entra_member(member, false)).collect::<Vec<_>>()});
    if more {
        body["@odata.nextLink"] = json!(format!(
            "{origin}/v1.0/groups/{id}/members?$select=id&$top={top}&$skiptoken={}",
            offset + top
        ));
    }
    Some((vec![], body))
}

/// `GET /users?$filter=id in ('…', …)`: the users of those ids that exist.
fn entra_users_by_id(call: &Call, directory: &Directory) -> Answer {
    let filter = call.param("$filter").unwrap_or_default();
    let ids: Vec<&str> = filter.split('\'').skip(1).step_by(2).collect();
    let users: Vec<Value> = ids
        .iter()
        .filter_map(|id| directory.users.get(*id))
        .map(entra_user)
        .collect();
    (vec![], json!({ "value": users }))
}

fn okta_user(user: &FakeUser) -> Value {
    json!({"id": user.id, "status": if user.active { "ACTIVE" } else { "DEPROVISIONED" }, "created": "2024-01-01T00:00:00.000Z", "lastUpdated": "2024-01-02T00:00:00.000Z", "statusChanged": rfc3339(user.status_changed), "profile": {"login": user.email, "email": user.email, "firstName": user.given_name, "lastName": user.family_name}, "credentials": {"provider": {"type": "OKTA", "name": "OKTA"}}, "_links": {}})
}

/// Okta pages by an `after` cursor (the last id) and a `Link` header. `items` are sorted by
/// id; only the page's items are rendered.
fn okta_page<'a, T>(
    origin: &str,
    call: &Call,
    items: impl Iterator<Item = (&'a str, T)>,
    limit_max: usize,
    render: impl Fn(T) -> Value,
) -> Answer {
    let limit = call.number("limit", limit_max).min(limit_max);
    let after = call.param("after").unwrap_or_default();
    let mut page: Vec<(&str, T)> = items.skip_while(|(id, _)| *id <= after).take(limit + 1).collect();
    let more = page.len() > limit;
    page.truncate(limit);
    let mut headers = vec![("link", format!("<{origin}{}?limit={limit}>; rel=\"self\"", call.path))];
    if more {
        let last = page.last().expect("a page before more items is not empty").0;
        let mut next = reqwest::Url::parse(&format!("{origin}{}", call.path)).expect("the fake's own URL parses");
        for (key, value) in call.query.iter().filter(|(key, _)| key != "after") {
            next.query_pairs_mut().append_pair(key, value);
        }
        next.query_pairs_mut().append_pair("after", last);
        headers.push(("link", format!("<{next}>; rel=\"next\"")));
    }
    (
        headers,
        Value::Array(page.into_iter().map(|(_, item)| render(item)).collect()),
    )
}

fn okta(origin: &str, call: &Call, segments: &[&str], directory: &Directory) -> Option<Answer> {
    match segments {
        ["api", "v1", "users"] => {
            let deprovisioned = call
                .param("filter")
                .is_some_and(|filter| filter.contains("DEPROVISIONED"));
            let search = call.param("search").is_some();
            // `search=id eq "…" or id eq "…"` asks for those users.
            let ids = super::feeds::quoted_after(call.param("search").unwrap_or_default(), "id eq ");
            // Start at the cursor in the ordered map, rather than walking every user before it.
            let after = call.param("after").unwrap_or_default().to_owned();
            let items = directory
                .users
                .range::<String, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
                .map(|(_, user)| user)
                .filter(|user| search || user.active != deprovisioned)
                .filter(|user| ids.is_empty() || ids.contains(&user.id))
                .filter(|user| !ids.is_empty() || !search || !directory.okta_index_lag.contains(&user.id))
                .map(|user| (user.id.as_str(), user));
            Some(okta_page(origin, call, items, 200, okta_user))
        }
        ["api", "v1", "logs"] => Some(super::feeds::okta_log(origin, call, directory)),
        ["api", "v1", "groups"] => {
            let items = directory.groups().map(|group| (group.id.as_str(), group));
            Some(okta_page(
                origin,
                call,
                items,
                10_000,
                |group: &FakeGroup| json!({"id": group.id, "created": "2024-01-01T00:00:00.000Z", "lastUpdated": "2024-01-02T00:00:00.000Z", "lastMembershipUpdated": "2024-01-02T00:00:00.000Z", "objectClass": ["okta:user_group"], "type": "OKTA_GROUP", "profile": {"name": group.name, "description": ""}, "_links": {}}),
            ))
        }
        ["api", "v1", "groups", id, "users"] => {
            let group = directory.groups.get(*id)?;
            let items = group
                .members
                .iter()
                .filter_map(|member| match member {
                    FakeMember::User(id) => directory.users.get(id),
                    FakeMember::Group(_) => None,
                })
                .map(|user| (user.id.as_str(), user));
            Some(okta_page(origin, call, items, 1000, okta_user))
        }
        _ => None,
    }
}

/// One Google page: `maxResults` items from the `pageToken` offset, rendered only if on it.
fn google_page<T>(
    call: &Call,
    kind: &str,
    key: &str,
    items: impl Iterator<Item = T>,
    max: usize,
    render: impl Fn(T) -> Value,
) -> Answer {
    let offset: usize = call
        .param("pageToken")
        .and_then(|token| token.parse().ok())
        .unwrap_or(0);
    let limit = call.number("maxResults", max).min(max);
    let mut page: Vec<Value> = items.skip(offset).take(limit + 1).map(render).collect();
    let more = page.len() > limit;
    page.truncate(limit);
    let mut body = json!({"kind": kind, "etag": "\"e\"", key: page});
    if more {
        body["nextPageToken"] = json!((offset + limit).to_string());
    }
    (vec![], body)
}

fn google(call: &Call, segments: &[&str], directory: &Directory) -> Option<Answer> {
    match segments {
        ["admin", "directory", "v1", "users"] => Some(google_page(
            call,
            "admin#directory#users",
            "users",
            directory.users(),
            500,
            |user| json!({"kind": "admin#directory#user", "id": user.id, "primaryEmail": user.email, "suspended": !user.active, "archived": false, "name": {"givenName": user.given_name, "familyName": user.family_name, "fullName": format!("{} {}", user.given_name, user.family_name)}}),
        )),
        ["admin", "directory", "v1", "groups"] => Some(google_page(
            call,
            "admin#directory#groups",
            "groups",
            directory.groups(),
            200,
            |group| json!({"kind": "admin#directory#group", "id": group.id, "name": group.name, "email": format!("{}@example.com", group.id), "directMembersCount": group.members.len().to_string()}),
        )),
        ["admin", "directory", "v1", "groups", id, "members"] => {
            let group = directory.groups.get(*id)?;
            Some(google_page(
                call,
                "admin#directory#members",
                "members",
                group.members.iter(),
                200,
                |member| match member {
                    FakeMember::User(id) => {
                        json!({"kind": "admin#directory#member", "id": id, "type": "USER", "role": "MEMBER", "status": "ACTIVE"})
                    }
                    FakeMember::Group(id) => {
                        json!({"kind": "admin#directory#member", "id": id, "type": "GROUP", "role": "MEMBER"})
                    }
                },
            ))
        }
        _ => None,
    }
}

/// The order of a JumpCloud listing asked without `sort`: unspecified, so the fake puts the
/// objects changed last first, and a change made while the listing is read moves an object
/// across the pages.
fn unsorted<T>(items: &mut [T], updated: impl Fn(&T) -> u64) {
    items.sort_by_key(|item| std::cmp::Reverse(updated(item)));
}

fn jumpcloud(call: &Call, segments: &[&str], directory: &Directory) -> Option<Answer> {
    let (skip, limit) = (call.number("skip", 0), call.number("limit", 10).min(100));
    match segments {
        ["systemusers"] => {
            let mut users: Vec<&FakeUser> = directory.users().collect();
            if call.param("sort") != Some("_id") {
                unsorted(&mut users, |user| user.updated);
            }
            let total = users.len();
            let (users, _) = window(&users, skip, limit);
            let users: Vec<Value> = users
                .into_iter()
                .map(|user| json!({"_id": user.id, "username": user.user_name, "email": user.email, "firstname": user.given_name, "lastname": user.family_name, "displayname": format!("{} {}", user.given_name, user.family_name), "activated": true, "suspended": !user.active, "state": if user.active { "ACTIVATED" } else { "SUSPENDED" }}))
                .collect();
            Some((vec![], json!({"totalCount": total, "results": users})))
        }
        ["v2", "usergroups"] => {
            let mut groups: Vec<&FakeGroup> = directory.groups().collect();
            if call.param("sort") != Some("id") {
                unsorted(&mut groups, |group| group.updated);
            }
            let groups: Vec<Value> = window(&groups, skip, limit)
                .0
                .into_iter()
                .map(|group| json!({"id": group.id, "name": group.name, "type": "user_group"}))
                .collect();
            Some((vec![], Value::Array(groups)))
        }
        ["v2", "usergroups", id, "members"] => {
            let group = directory.groups.get(*id)?;
            let edges: Vec<Value> = members_of(group)
                .into_iter()
                .map(|member| match member {
                    FakeMember::User(id) => json!({"from": {"id": group.id, "type": "user_group"}, "to": {"id": id, "type": "user"}, "attributes": {}}),
                    FakeMember::Group(id) => json!({"from": {"id": group.id, "type": "user_group"}, "to": {"id": id, "type": "user_group"}, "attributes": {}}),
                })
                .collect();
            Some((vec![], Value::Array(window(&edges, skip, limit).0)))
        }
        _ => None,
    }
}

/// A group as Keycloak shows it: with its count of subgroups, or (Keycloak 22 and older) with
/// their whole tree inline. `depth` bounds the tree of a directory with a cycle.
fn keycloak_group(directory: &Directory, group: &FakeGroup, depth: usize) -> Value {
    let children: Vec<&FakeGroup> = members_of(group)
        .into_iter()
        .filter_map(|member| match member {
            FakeMember::Group(id) => directory.groups.get(id),
            FakeMember::User(_) => None,
        })
        .collect();
    let path = format!("/{}", group.name);
    if directory.keycloak_22 {
        let tree: Vec<Value> = children
            .iter()
            .filter(|_| depth < 16)
            .map(|child| keycloak_group(directory, child, depth + 1))
            .collect();
        return json!({"id": group.id, "name": group.name, "path": path, "subGroups": tree});
    }
    json!({"id": group.id, "name": group.name, "path": path, "subGroupCount": children.len(), "subGroups": []})
}

fn keycloak(call: &Call, segments: &[&str], directory: &Directory) -> Option<Answer> {
    let (first, max) = (call.number("first", 0), call.number("max", 100));
    let items: Vec<Value> = match segments {
        ["admin", "realms", _, "users"] => directory
            .users()
            .map(|user| json!({"id": user.id, "username": user.user_name, "email": user.email, "firstName": user.given_name, "lastName": user.family_name, "enabled": user.active, "emailVerified": true}))
            .collect(),
        ["admin", "realms", _, "groups"] => {
            let nested: std::collections::HashSet<&String> = directory
                .groups()
                .flat_map(|group| group.members.iter())
                .filter_map(|member| match member {
                    FakeMember::Group(id) => Some(id),
                    FakeMember::User(_) => None,
                })
                .collect();
            directory
                .groups()
                .filter(|group| !nested.contains(&group.id))
                .map(|group| keycloak_group(directory, group, 0))
                .collect()
        }
        ["admin", "realms", _, "groups", _, "children"] if directory.keycloak_22 => return None,
        ["admin", "realms", _, "groups", id, "children"] => members_of(directory.groups.get(*id)?)
            .into_iter()
            .filter_map(|member| match member {
                FakeMember::Group(child) => directory.groups.get(child).map(|child| keycloak_group(directory, child, 0)),
                FakeMember::User(_) => None,
            })
            .collect(),
        ["admin", "realms", _, "groups", id, "members"] => user_ids(directory.groups.get(*id)?)
            .into_iter()
            .filter_map(|user| directory.users.get(&user))
            .map(|user| json!({"id": user.id, "username": user.user_name, "enabled": user.active}))
            .collect(),
        _ => return None,
    };
    Some((vec![], Value::Array(window(&items, first, max).0)))
}

/// A user as Auth0's `/users` and its users exports show it.
pub(super) fn auth0_user(user: &FakeUser) -> Value {
    json!({"user_id": user.id, "email": user.email, "email_verified": true, "given_name": user.given_name, "family_name": user.family_name, "name": format!("{} {}", user.given_name, user.family_name), "blocked": !user.active, "created_at": "2024-01-01T00:00:00.000Z", "updated_at": super::feeds::rfc3339(user.changed_at)})
}

fn auth0(call: &Call, segments: &[&str], directory: &Directory) -> Option<Answer> {
    let by_page = |key: &str, items: Vec<Value>| {
        let per_page = call.number("per_page", 50).min(100);
        let page = call.number("page", 0);
        let (slice, _) = window(&items, page * per_page, per_page);
        let mut body = json!({"start": page * per_page, "limit": per_page, "total": items.len(), key: slice});
        // Only the users answer carries `length`.
        if key == "users" {
            body["length"] = json!(body[key].as_array().map_or(0, Vec::len));
        }
        (vec![], body)
    };
    let by_checkpoint = |key: &str, items: Vec<Value>| {
        let take = call.number("take", 50).min(100);
        let from: usize = call.param("from").and_then(|from| from.parse().ok()).unwrap_or(0);
        let (slice, more) = window(&items, from, take);
        let mut body = json!({key: slice});
        if more {
            body["next"] = json!((from + take).to_string());
        }
        (vec![], body)
    };
    let role_id = |group: &FakeGroup| format!("rol_{}", group.id);
    match segments {
        ["logs"] => Some(super::feeds::auth0_logs(call, directory)),
        ["users"] => {
            let q = call.param("q").unwrap_or_default();
            // `q=user_id:"…" OR user_id:"…"` asks for those users.
            let ids = super::feeds::quoted_after(q, "user_id:");
            // `q=updated_at:[<time> TO *]` for those changed since.
            let since = q
                .strip_prefix("updated_at:[")
                .and_then(|rest| rest.split(' ').next())
                .and_then(super::feeds::parse_time);
            let users = directory
                .users()
                .filter(|user| ids.is_empty() || ids.contains(&user.id))
                .filter(|user| since.is_none_or(|since| user.changed_at >= since))
                .map(auth0_user)
                .collect();
            Some(by_page("users", users))
        }
        ["roles"] => Some(by_page(
            "roles",
            directory
                .groups()
                .map(|group| json!({"id": role_id(group), "name": group.name, "description": ""}))
                .collect(),
        )),
        ["roles", id, "users"] => {
            let group = directory.groups().find(|group| role_id(group) == *id)?;
            let users = user_ids(group)
                .into_iter()
                .filter_map(|user| directory.users.get(&user))
                .map(|user| json!({"user_id": user.id, "email": user.email, "name": user.user_name, "picture": ""}))
                .collect();
            Some(by_checkpoint("users", users))
        }
        _ => None,
    }
}

/// One authentik page of `count` items, by `page` and `page_size`. The page is cut before its
/// items are rendered (`render` gets the range): a large directory renders one page a request,
/// not all of it.
pub(super) fn authentik_page(call: &Call, count: usize, render: &mut dyn FnMut(usize, usize) -> Vec<Value>) -> Answer {
    let page_size = call.number("page_size", 20);
    let page = call.number("page", 1).max(1);
    let start = ((page - 1) * page_size).min(count);
    let end = start.saturating_add(page_size).min(count);
    let slice = render(start, end);
    let more = end < count;
    let total_pages = count.div_ceil(page_size.max(1));
    let body = json!({"pagination": {"next": if more { page + 1 } else { 0 }, "previous": page.saturating_sub(1), "count": count, "current": page, "total_pages": total_pages, "start_index": (page - 1) * page_size + 1, "end_index": (page - 1) * page_size + slice.len()}, "results": slice, "autocomplete": {}});
    (vec![], body)
}

fn authentik_user(user: &FakeUser) -> Value {
    let number = user.id.parse::<i64>().unwrap_or(0);
    json!({"pk": number, "username": user.user_name, "name": format!("{} {}", user.given_name, user.family_name), "is_active": user.active, "last_login": null, "date_joined": "2024-01-01T00:00:00Z", "last_updated": "2024-01-02T00:00:00Z", "password_change_date": "2024-01-01T00:00:00Z", "is_superuser": false, "groups": [], "groups_obj": [], "roles": [], "roles_obj": [], "email": user.email, "avatar": "", "attributes": {}, "uid": user.id, "path": "users", "type": "internal", "uuid": format!("00000000-0000-4000-8000-{number:012}")})
}

fn authentik(call: &Call, segments: &[&str], directory: &Directory) -> Option<Answer> {
    let paginated =
        |count: usize, render: &mut dyn FnMut(usize, usize) -> Vec<Value>| authentik_page(call, count, render);
    let number = |id: &str| id.parse::<i64>().unwrap_or(0);
    match segments {
        ["events", "events"] => Some(super::feeds::authentik_events(call, directory)),
        ["core", "users"] => Some(paginated(directory.users.len(), &mut |start, end| {
            directory
                .users()
                .skip(start)
                .take(end - start)
                .map(authentik_user)
                .collect()
        })),
        ["core", "users", id] => directory.users.get(*id).map(|user| (vec![], authentik_user(user))),
        ["core", "groups"] => Some(paginated(directory.groups.len(), &mut |start, end| {
            directory
                .groups()
                .skip(start)
                .take(end - start)
                .map(|group| {
                    let parents: Vec<&String> = directory
                        .groups()
                        .filter(|parent| parent.members.contains(&FakeMember::Group(group.id.clone())))
                        .map(|parent| &parent.id)
                        .collect();
                    let users: Vec<i64> = user_ids(group).iter().map(|id| number(id)).collect();
                    json!({"pk": group.id, "num_pk": 1, "name": group.name, "is_superuser": false, "parents": parents, "parents_obj": [], "users": users, "users_obj": [], "attributes": {}, "roles": [], "roles_obj": [], "inherited_roles_obj": [], "children": [], "children_obj": []})
                })
                .collect()
        })),
        _ => None,
    }
}

/// One authorization per user in a group of project `p1`, the user's groups' names as its
/// roles, rendered by `render` (v2 or v2beta).
fn zitadel_authorizations(directory: &Directory, render: impl Fn(&FakeUser, &[&String]) -> Value) -> Vec<Value> {
    directory
        .users()
        .filter_map(|user| {
            let roles: Vec<&String> = directory
                .groups()
                .filter(|group| group.members.contains(&FakeMember::User(user.id.clone())))
                .map(|group| &group.name)
                .collect();
            (!roles.is_empty()).then(|| render(user, &roles))
        })
        .collect()
}

fn zitadel(call: &Call, segments: &[&str], directory: &Directory) -> Option<Answer> {
    let body = call.body.clone().unwrap_or(Value::Null);
    let window_of = |pointer: &str, items: Vec<Value>| {
        let offset: usize = body
            .pointer(&format!("{pointer}/offset"))
            .and_then(Value::as_str)
            .and_then(|offset| offset.parse().ok())
            .unwrap_or(0);
        let limit = body
            .pointer(&format!("{pointer}/limit"))
            .and_then(Value::as_u64)
            .unwrap_or(100)
            .min(1000) as usize;
        (window(&items, offset, limit).0, items.len(), limit)
    };
    match segments {
        ["v2", "users"] => {
            let users: Vec<Value> = directory
                .users()
                .map(|user| json!({"userId": user.id, "details": {"sequence": "1", "changeDate": "2024-01-02T00:00:00Z", "resourceOwner": "org1", "creationDate": "2024-01-01T00:00:00Z"}, "state": if user.active { "USER_STATE_ACTIVE" } else { "USER_STATE_INACTIVE" }, "username": user.user_name, "loginNames": [user.email], "preferredLoginName": user.email, "human": {"profile": {"givenName": user.given_name, "familyName": user.family_name, "displayName": format!("{} {}", user.given_name, user.family_name)}, "email": {"email": user.email, "isVerified": true}}}))
                .collect();
            let (page, total, _) = window_of("/query", users);
            Some((
                vec![],
                json!({"details": {"totalResult": total.to_string(), "processedSequence": "1", "timestamp": "2024-01-02T00:00:00Z"}, "result": page}),
            ))
        }
        ["zitadel.group.v2.GroupService", "ListGroups"] => {
            let groups: Vec<Value> = directory
                .groups()
                .map(|group| json!({"id": group.id, "name": group.name, "description": "", "organizationId": "org1", "creationDate": "2024-01-01T00:00:00Z", "changeDate": "2024-01-02T00:00:00Z"}))
                .collect();
            let (page, total, limit) = window_of("/pagination", groups);
            Some((
                vec![],
                json!({"groups": page, "pagination": {"totalResult": total.to_string(), "appliedLimit": limit.to_string()}}),
            ))
        }
        ["zitadel.authorization.v2.AuthorizationService", "ListAuthorizations"] if !directory.zitadel_before_v4 => {
            let grants = zitadel_authorizations(directory, |user, roles| {
                let roles: Vec<Value> = roles
                    .iter()
                    .map(|role| json!({"key": role, "displayName": role, "group": ""}))
                    .collect();
                json!({"id": format!("auth-{}", user.id), "creationDate": "2024-01-01T00:00:00Z", "changeDate": "2024-01-02T00:00:00Z", "project": {"id": "p1", "name": "vpn", "organizationId": "org1"}, "organization": {"id": "org1", "name": "acme"}, "user": {"id": user.id, "preferredLoginName": user.email, "displayName": user.user_name, "avatarUrl": "", "organizationId": "org1"}, "state": "STATE_ACTIVE", "roles": roles})
            });
            let (page, total, limit) = window_of("/pagination", grants);
            Some((
                vec![],
                json!({"pagination": {"totalResult": total.to_string(), "appliedLimit": limit.to_string()}, "authorizations": page}),
            ))
        }
        ["v2beta", "authorizations", "search"] => {
            let grants = zitadel_authorizations(
                directory,
                |user, roles| json!({"id": format!("auth-{}", user.id), "projectId": "p1", "projectName": "vpn", "organizationId": "org1", "creationDate": "2024-01-01T00:00:00Z", "changeDate": "2024-01-02T00:00:00Z", "state": "STATE_ACTIVE", "user": {"id": user.id, "preferredLoginName": user.email, "displayName": user.user_name, "organizationId": "org1"}, "roles": roles}),
            );
            let (page, total, limit) = window_of("/pagination", grants);
            Some((
                vec![],
                json!({"pagination": {"totalResult": total.to_string(), "appliedLimit": limit.to_string()}, "authorizations": page}),
            ))
        }
        _ => None,
    }
}
