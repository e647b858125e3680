//! The endpoints. Each resource operation is a plain async function over a
//! [`Scope`](crate::auth::Scope) (so that `/Bulk` runs exactly what the single-resource
//! endpoint runs), wrapped by a thin axum handler that extracts the request. Every list and
//! search runs through [`list`], which sends the requests that scan to the scan pool.

pub(crate) mod bulk;
pub(crate) mod groups;
pub(crate) mod users;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use idpsync_engine::ids::Seq;

use crate::auth::Scope;
use crate::error::{Error, ScimType};
use crate::query::{ListParams, ListRequest, Listing};
use crate::scan::ScanBudget;
use crate::service::Service;
use crate::wire::{Reply, ScimJson};

/// Raw query pairs, read case-insensitively by [`ListParams`].
pub(crate) type QueryPairs = Query<Vec<(String, String)>>;

/// Answers a list or search request: at once when indexes answer it (or it reads a page in id
/// order), on the scan pool when it must render resources one by one to filter or sort.
pub(crate) async fn list(
    service: &Service,
    scope: &Scope,
    listing: Listing,
    params: &ListParams,
) -> Result<Reply, Error> {
    let request = ListRequest::new(listing, params, service.settings.list_limits())?;
    let state = scope.state().await?;
    if !request.scans() {
        let mut budget = ScanBudget::start(service.scans.limits());
        return request
            .run(&state, &scope.base, &mut budget)
            .map(|list| Reply::ok(&list));
    }
    let base = scope.base.clone();
    service
        .scans
        .run(move |budget| request.run(&state, &base, budget).map(|list| Reply::ok(&list)))
        .await
}

/// `If-Match` and `If-None-Match`, read from the request without copying its headers.
pub(crate) struct Conditions {
    /// The version `If-Match` names (`None` for no header or `*`).
    pub(crate) expected_version: Option<Seq>,
    if_none_match: Option<HeaderValue>,
}

impl<S: Send + Sync> FromRequestParts<S> for Conditions {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Conditions, Error> {
        Ok(Conditions {
            expected_version: if_match(&parts.headers)?,
            if_none_match: parts.headers.get(header::IF_NONE_MATCH).cloned(),
        })
    }
}

impl Conditions {
    /// Whether `If-None-Match` names `current` (or is `*`): a GET then answers 304.
    pub(crate) fn none_match(&self, current: Seq) -> bool {
        let Some(text) = self.if_none_match.as_ref().and_then(|value| value.to_str().ok()) else {
            return false;
        };
        text.split(',')
            .any(|tag| tag.trim() == "*" || parse_etag(tag) == Some(current))
    }
}

/// `If-Match`: the version a write expects. `*` (or no header) expects nothing.
fn if_match(headers: &HeaderMap) -> Result<Option<Seq>, Error> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| Error::bad(ScimType::InvalidVers, "If-Match is not text"))?;
    if text.trim() == "*" {
        return Ok(None);
    }
    let first = text.split(',').next().unwrap_or_default();
    parse_etag(first).map(Some).ok_or_else(|| {
        Error::bad(
            ScimType::InvalidVers,
            format!("If-Match {text:?} is not a version of this server"),
        )
    })
}

/// Parses `W/"12"` or `"12"`.
pub(crate) fn parse_etag(text: &str) -> Option<Seq> {
    let text = text.trim();
    let text = text.strip_prefix("W/").unwrap_or(text);
    text.strip_prefix('"')?.strip_suffix('"')?.parse::<u64>().ok().map(Seq)
}

/// A body and the list parameters of the query string, for the write endpoints that return a
/// projected resource.
pub(crate) struct WriteRequest {
    /// The body.
    pub(crate) body: serde_json::Value,
    /// `attributes` / `excludedAttributes` of the query string.
    pub(crate) params: ListParams,
    /// `If-Match`.
    pub(crate) expected_version: Option<Seq>,
}

impl WriteRequest {
    /// Gathers the parts of a write request.
    pub(crate) fn new(conditions: &Conditions, query: &QueryPairs, body: ScimJson) -> Result<WriteRequest, Error> {
        Ok(WriteRequest {
            body: body.0,
            params: ListParams::from_query(&query.0)?,
            expected_version: conditions.expected_version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_weak_or_strong() {
        assert_eq!(parse_etag(r#"W/"12""#), Some(Seq(12)));
        assert_eq!(parse_etag(r#" "7" "#), Some(Seq(7)));
        assert_eq!(parse_etag("12"), None);
        assert_eq!(parse_etag(r#"W/"x""#), None);
    }
}
