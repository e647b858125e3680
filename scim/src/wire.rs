//! Bytes on the wire: the request-body extractor (size, nesting and syntax checked, SCIM
//! errors on failure), the path-segment extractor (a SCIM error for a segment that is not
//! UTF-8), the response with `application/scim+json`, `ETag` and `Location`, and
//! the response of an [`Error`]: its RFC 7644 body, and for a 500 the cause, carried in a
//! response extension to the `auth::request_context` middleware, which logs it, so that
//! nothing is logged inside the conversion and nothing internal leaks.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use idpsync_engine::ids::Seq;
use serde::Serialize;
use serde_json::Value;

use crate::error::Error;

/// The media type of every SCIM response.
pub(crate) const SCIM_CONTENT_TYPE: &str = "application/scim+json";
/// The deepest nesting of arrays and objects a request body may have. SCIM resources nest
/// three levels at most (`{"Operations": [{"value": {"name": {…}}}]}` is four), so this is
/// generous, and it keeps every recursive walk of a body shallow.
pub(crate) const JSON_DEPTH_MAX: usize = 16;

/// A JSON request body: the extractor answers oversized bodies with 413 and malformed or
/// over-nested ones with 400 `invalidSyntax`, as SCIM errors. Any content type is read as
/// JSON: clients send `application/scim+json`, `application/json`, or nothing.
#[derive(Debug)]
pub(crate) struct ScimJson(pub Value);

impl<S: Send + Sync> FromRequest<S> for ScimJson {
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self, Error> {
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Error::TooLarge("the request body is larger than this server accepts".to_owned())
            } else {
                Error::invalid_syntax(format!("the request body could not be read: {rejection}"))
            }
        })?;
        parse_body(&bytes).map(ScimJson)
    }
}

/// The one parameter of a route's path (a resource id, a resource type name, a schema URN),
/// percent-decoded. A segment that does not decode to UTF-8 names nothing this server has:
/// 404, as a SCIM error.
#[derive(Debug)]
pub(crate) struct PathSegment(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathSegment {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(segment)) => Ok(PathSegment(segment)),
            Err(rejection) => Err(Error::NotFound(format!(
                "{} names nothing here: {}",
                parts.uri.path(),
                rejection.body_text()
            ))),
        }
    }
}

/// Parses a request body, refusing nesting deeper than [`JSON_DEPTH_MAX`].
#[cfg_attr(feature = "internals", visibility::make(pub))]
pub(crate) fn parse_body(bytes: &[u8]) -> Result<Value, Error> {
    if nesting_depth(bytes) > JSON_DEPTH_MAX {
        return Err(Error::invalid_syntax(format!(
            "the request body nests deeper than {JSON_DEPTH_MAX} levels"
        )));
    }
    serde_json::from_slice(bytes)
        .map_err(|error| Error::invalid_syntax(format!("the request body is not valid JSON: {error}")))
}

/// The deepest nesting of `[` and `{` outside strings. Runs before parsing, so a hostile body
/// never reaches a recursive parser deeper than the limit.
fn nesting_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &byte in bytes {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// A SCIM response: status, optional body, and the headers a resource carries.
#[derive(Debug)]
pub(crate) struct Reply {
    status: StatusCode,
    body: Option<Vec<u8>>,
    etag: Option<Seq>,
    location: Option<String>,
}

impl Reply {
    /// 200 with `body`, serialised now.
    pub(crate) fn ok(body: &impl Serialize) -> Reply {
        // The bodies are JSON values and resource views, whose maps have string keys and
        // which never fail to serialise into memory.
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        Reply {
            status: StatusCode::OK,
            body: Some(bytes),
            etag: None,
            location: None,
        }
    }

    /// A status without a body (204, 304).
    pub(crate) fn empty(status: StatusCode) -> Reply {
        Reply {
            status,
            body: None,
            etag: None,
            location: None,
        }
    }

    /// Makes the status 201 Created.
    pub(crate) fn created(mut self) -> Reply {
        self.status = StatusCode::CREATED;
        self
    }

    /// The status.
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// The version behind the `ETag`, if any.
    pub(crate) fn version(&self) -> Option<Seq> {
        self.etag
    }

    /// The `Location`, if any.
    pub(crate) fn location_url(&self) -> Option<&str> {
        self.location.as_deref()
    }

    /// Adds `ETag: W/"<version>"`.
    pub(crate) fn etag(mut self, version: Seq) -> Reply {
        self.etag = Some(version);
        self
    }

    /// Adds `Location`.
    pub(crate) fn location(mut self, location: String) -> Reply {
        self.location = Some(location);
        self
    }
}

/// The weak ETag of a resource version: `W/"<seq>"`.
pub(crate) fn etag_of(version: Seq) -> String {
    format!("W/\"{}\"", version.0)
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let has_body = self.body.is_some();
        let mut response = match self.body {
            Some(body) => Response::new(Body::from(body)),
            None => Response::new(Body::empty()),
        };
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        if has_body {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_CONTENT_TYPE));
        }
        if let Some(version) = self.etag
            && let Ok(value) = HeaderValue::from_str(&etag_of(version))
        {
            headers.insert(header::ETAG, value);
        }
        if let Some(location) = self.location
            && let Ok(value) = HeaderValue::from_str(&location)
        {
            headers.insert(header::LOCATION, value);
        }
        response
    }
}

/// The cause of a 500, carried to the middleware that logs it.
#[derive(Clone, Debug)]
struct InternalFailure(Arc<str>);

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_CONTENT_TYPE));
        if matches!(self, Error::Unauthorized) {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="scim""#),
            );
        }
        if let Error::TooManyRequests {
            retry_after_seconds, ..
        }
        | Error::LogUnavailable { retry_after_seconds }
        | Error::Busy {
            retry_after_seconds, ..
        } = &self
        {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_seconds));
        }
        if let Error::Internal(cause) = self {
            response.extensions_mut().insert(InternalFailure(cause.into()));
        }
        response
    }
}

/// The cause of a 500 that this router answered, for the middleware that logs it.
pub(crate) fn internal_failure(response: &Response) -> Option<&str> {
    response
        .extensions()
        .get::<InternalFailure>()
        .map(|InternalFailure(cause)| &**cause)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_ignores_brackets_inside_strings() {
        assert_eq!(nesting_depth(br#"{"a": "[[[[{{{{"}"#), 1);
        assert_eq!(nesting_depth(br#"{"a": "\"[[[", "b": [[1]]}"#), 3);
    }

    #[test]
    fn deep_bodies_are_refused_before_parsing() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let error = parse_body(deep.as_bytes()).unwrap_err();
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        let fine = format!("{}{}", "[".repeat(JSON_DEPTH_MAX), "]".repeat(JSON_DEPTH_MAX));
        assert!(parse_body(fine.as_bytes()).is_ok());
    }

    #[test]
    fn junk_is_invalid_syntax() {
        let error = parse_body(b"{junk").unwrap_err();
        assert_eq!(error.scim_type(), Some(crate::error::ScimType::InvalidSyntax));
    }
}
