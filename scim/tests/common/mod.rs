//! What the SCIM router's tests share: one bearer token for the default tenant, and requests
//! that carry it.

use axum::body::Body;
use axum::http::{Request, header};
use idpsync_engine::ids::{TenantId, TokenId};
use idpsync_scim::{Principal, SharedSecret};
use serde_json::Value;

/// The one token [`one_token`] accepts.
pub(crate) const TOKEN: &str = "scim-test-token";

/// Accepts [`TOKEN`], for the default tenant.
pub(crate) fn one_token() -> SharedSecret {
    SharedSecret::new(
        TOKEN,
        Principal {
            tenant: TenantId::default_tenant(),
            token: TokenId::MIN,
        },
    )
}

/// A SCIM request with [`TOKEN`] and, if given, a JSON body.
pub(crate) fn request(method: &str, uri: &str, body: Option<&Value>) -> Request<Body> {
    let builder = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "application/scim+json");
    let body = body.map_or_else(Body::empty, |body| Body::from(body.to_string()));
    builder.body(body).unwrap()
}
