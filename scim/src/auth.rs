//! Who is calling: the bearer token (checked by the [`Authenticator`] the embedding program
//! supplies) decides the tenant, and every command of the request carries the token's id and
//! the request's id. The [`Scope`] extractor is the only way a handler reaches a tenant, so a
//! token can never touch another tenant's data.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use idpsync_engine::ids::{RequestId, TenantId};
use idpsync_engine::{Cause, EngineError, Origin, Source, State, Tenant};

use crate::error::Error;
use crate::resource::BaseUrl;
use crate::service::Service;

/// An authenticated request: its tenant, its origin for commands, and the base URL for
/// `meta.location`.
pub(crate) struct Scope {
    /// The caller's tenant.
    pub(crate) tenant: Arc<Tenant>,
    /// The token and request ids, for every command of the request.
    pub(crate) origin: Origin,
    /// The SCIM base URL as the client reached it.
    pub(crate) base: BaseUrl,
}

impl FromRequestParts<Arc<Service>> for Scope {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, service: &Arc<Service>) -> Result<Scope, Error> {
        let secret = bearer(&parts.headers).ok_or(Error::Unauthorized)?;
        let principal = service
            .authenticator
            .authenticate(secret)
            .await
            .ok_or(Error::Unauthorized)?;
        // A token may be created for a tenant this server has not seen yet (the command line
        // writes tokens while the server runs): the first request creates it.
        let tenant = match service.engine.tenant(&principal.tenant) {
            Some(tenant) => tenant,
            None => service
                .engine
                .ensure_tenant(&principal.tenant)
                .await
                .map_err(|error| engine_failed("opening", &principal.tenant, error))?,
        };
        let request = parts.extensions.get::<RequestId>().copied().unwrap_or_default();
        Ok(Scope {
            tenant,
            origin: Origin {
                source: Source::Scim { token: principal.token },
                cause: Cause::Request(request),
            },
            base: base_url(&parts.headers, service),
        })
    }
}

impl Scope {
    /// The tenant's state for a request to read or decide on: on a log other replicas write,
    /// with what they appended folded in first, so that a client reads what it wrote through
    /// any of them. Every read of a request that comes before its own command goes through
    /// here; a create that reads nothing before its command never waits for it (its writer
    /// folds in the others' appends when it takes its turn to write), and a reply rendered
    /// after the request's own command reads [`Tenant::state`], which holds it.
    pub(crate) async fn state(&self) -> Result<Arc<State>, Error> {
        self.tenant
            .caught_up()
            .await
            .map_err(|error| engine_failed("catching up", self.tenant.id(), error))?;
        Ok(self.tenant.state())
    }
}

/// The SCIM error for an engine that could not open or catch up a tenant: 503 with a
/// `Retry-After` while its log is unavailable, 500 otherwise.
fn engine_failed(what: &str, tenant: &TenantId, error: EngineError) -> Error {
    match error.unavailable_for() {
        Some(wait) => Error::LogUnavailable {
            retry_after_seconds: crate::error::retry_after_seconds(wait),
        },
        None => Error::Internal(format!("{what} tenant {tenant}: {error}")),
    }
}

/// The request's SCIM base URL, for endpoints without a [`Scope`] (discovery).
pub(crate) struct RequestBase(pub BaseUrl);

impl FromRequestParts<Arc<Service>> for RequestBase {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, service: &Arc<Service>) -> Result<RequestBase, Self::Rejection> {
        Ok(RequestBase(base_url(&parts.headers, service)))
    }
}

/// The base URL of the request: the configured one, else `<scheme>://<Host><mount path>`.
fn base_url(headers: &HeaderMap, service: &Service) -> BaseUrl {
    if let Some(base) = &service.settings.base_url {
        return BaseUrl::new(base);
    }
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(',').next())
        .map(str::trim)
        .filter(|scheme| matches!(*scheme, "http" | "https"))
        .unwrap_or("http");
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .filter(|host| host.chars().all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c)))
        .unwrap_or("localhost");
    BaseUrl::new(&format!("{scheme}://{host}{}", service.settings.mount_path))
}

/// The secret of an `Authorization: Bearer <secret>` header (scheme in any case).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, secret) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !secret.trim().is_empty()).then(|| secret.trim())
}

/// Middleware: gives each request an id, for its events and its `X-Request-Id` header, and
/// logs the cause of every 500 (see [`crate::wire`]).
pub(crate) async fn request_context(mut request: Request, next: Next) -> Response {
    let id = RequestId::new();
    request.extensions_mut().insert(id);
    let method = request.method().clone();
    let uri = request.uri().clone();
    let mut response = next.run(request).await;
    if let Some(cause) = crate::wire::internal_failure(&response) {
        tracing::error!(%method, path = uri.path(), request = %id, %cause, "SCIM request failed");
    }
    if let Ok(value) = HeaderValue::from_str(&id.to_string()) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_in_any_case() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer abc"));
        assert_eq!(bearer(&headers), Some("abc"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&headers), None);
    }
}
