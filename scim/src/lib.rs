//! The SCIM 2.0 service provider of openZro IdP-Sync (RFC 7643, RFC 7644), as an axum
//! [`Router`] to nest at `/scim/v2`.
//!
//! Every write becomes an engine command (decide → append → fold) carrying the caller's token
//! id and a request id; every answer is rendered from the tenant's state after the write.
//!
//! - The bearer token decides the tenant ([`Authenticator`]); no handler can reach another.
//! - Real clients' quirks are normalised before any logic (`normalise`), each rewrite traced.
//! - One grammar (`grammar`) parses filters, attribute paths and PATCH paths, with limits.
//! - Membership is an edge set: group PATCH never materialises a member list.
//! - Discovery documents are rendered from the definitions the server runs on (`schema`).
//!
//! # Layout
//! - `error`: the one error type, its status and RFC 7644 error body;
//! - `wire`: request bodies (size, depth, syntax) and every response (media type, ETag,
//!   errors);
//! - `grammar`: filters and paths; `matcher`: filters compiled and matched against resources;
//! - `schema`: attribute definitions; `discovery`: the discovery endpoints;
//! - `normalise`: client quirks; `resource`: users and groups on the wire;
//! - `patch`: PATCH on documents and on groups; `projection`: `attributes`;
//! - `query`: list, search, planning, sorting, pagination; `scan`: the bounded pool and the
//!   budget of the requests that filter or sort without an index; `handlers`: the endpoints;
//! - `service`: the settings and the authenticator the router is built from;
//! - `auth`: tokens, tenants and request ids.
//!
//! Every module is private: the API is [`router`], [`Settings`], [`Authenticator`] and
//! [`Principal`]. The `internals` feature adds a hidden `internals` module that re-exports
//! the grammar, the matcher, PATCH and the body reader for the fuzz targets and benchmarks.
//!
//! # Connecting a client
//! `idpsync serve` mounts the router at `/scim/v2` (the first start writes a token for the
//! `default` tenant to `<data-dir>/bootstrap-token`; `idpsync token create --tenant T --name N`
//! makes more). Entra ID: *Tenant URL* `https://<host>/scim/v2` (append `?aadOptscim062020`
//! or not: both PATCH dialects are accepted), *Secret Token* the token. Okta: *SCIM connector
//! base URL* the same, *Authentication mode* HTTP Header (Bearer), *Unique identifier field*
//! `userName`; push groups with PATCH. authentik, JumpCloud and OneLogin: the same URL and a
//! bearer token.
//!
//! # Deliberate choices
//! - A member value naming no user or group of the tenant is skipped (and logged), not refused,
//!   so that a request carrying real joins and leaves never fails because of it.
//! - A PATCH naming an attribute the server does not keep is ignored (and logged), so that a
//!   custom mapping in the IdP cannot block `active=false`.
//! - A PUT without `active` leaves it as is; a group PUT without `members` leaves them as is.
//! - Group `members[].display` is returned only when asked for (`attributes=members.display`);
//!   a group PATCH answers 200 with the group up to 1,000 members, 204 above (RFC 7644 allows
//!   both), unless the client asks for attributes.
//! - A filter matching, or a `sortBy` ordering, more than `filter.maxResults` resources
//!   answers 400 `tooMany`.
//! - A list or search that must render resources one by one (a filter the indexes cannot
//!   answer, or a `sortBy`) runs on blocking threads, a few at a time
//!   ([`Settings::scans_concurrent_max`]; beyond, 503 with `Retry-After` after
//!   [`Settings::scan_queue_wait`]), within a budget of resources and time
//!   ([`Settings::scan_resources_max`], [`Settings::scan_time_max`]; beyond, 400 `tooMany`
//!   saying to narrow the filter). Lookups by id and indexed filters never wait for scans.
//!
//! # Architecture invariants
//! - The only crate that knows SCIM JSON; engine types never reach the wire directly.
//! - Never touches storage: it hands commands to the engine.
//! - A rejected or failed request changes nothing: a request is one command (atomic).
//!
//! # Example
//! ```
//! use std::sync::Arc;
//! use idpsync_engine::{Engine, TenantSettings};
//! use idpsync_engine::ids::{TenantId, TokenId};
//! use idpsync_scim::{Principal, Settings, SharedSecret};
//!
//! // One secret for one client; a program with a token store implements `Authenticator`.
//! let principal = Principal { tenant: TenantId::default_tenant(), token: TokenId::MIN };
//! let auth = Arc::new(SharedSecret::new("let-me-in", principal));
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let store = Arc::new(idpsync_storage::MemoryStore::new());
//! let engine = Arc::new(Engine::open(store, TenantSettings::default()).await.unwrap());
//! let app = axum::Router::new().nest("/scim/v2", idpsync_scim::router(engine, auth, Settings::default()));
//! # drop(app);
//! # });
//! ```

mod auth;
mod discovery;
mod error;
mod grammar;
mod handlers;
mod matcher;
mod normalise;
mod patch;
mod projection;
mod query;
mod resource;
mod scan;
mod schema;
mod service;
mod shared_secret;
mod wire;

#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals;
#[cfg(test)]
mod no_panic;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::middleware;
use axum::routing::{any, get, post};
use idpsync_engine::Engine;

/// The attribute an [`Authenticator`] implementation is written with.
pub use async_trait::async_trait;
pub use service::{Authenticator, Principal, Settings};
pub use shared_secret::SharedSecret;

/// The SCIM error response (429 `Too Many Requests`, with `Retry-After`) for a client that has
/// to slow down, for limits an embedding program enforces in front of the router.
pub fn too_many_requests(detail: impl Into<String>, retry_after_seconds: u32) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    error::Error::TooManyRequests {
        detail: detail.into(),
        retry_after_seconds,
    }
    .into_response()
}

use crate::error::Error;
use crate::handlers::{bulk, groups, users};
use crate::query::{ListParams, Listing};
use crate::service::Service;
use crate::wire::{Reply, ScimJson};

/// The SCIM router, to nest at [`Settings::mount_path`].
pub fn router(engine: Arc<Engine>, authenticator: Arc<dyn Authenticator>, settings: Settings) -> Router {
    let bulk_limit = DefaultBodyLimit::max(settings.bulk_payload_len_max);
    let body_limit = DefaultBodyLimit::max(settings.body_len_max);
    let service = Arc::new(Service {
        engine,
        authenticator,
        scans: settings.scan_pool(),
        settings,
    });
    Router::new()
        .route("/Users", get(users::list).post(users::create_endpoint))
        .route("/Users/.search", post(users::search))
        .route(
            "/Users/{id}",
            get(users::get)
                .put(users::replace_endpoint)
                .patch(users::patch_endpoint)
                .delete(users::delete_endpoint),
        )
        .route("/Groups", get(groups::list).post(groups::create_endpoint))
        .route("/Groups/.search", post(groups::search))
        .route(
            "/Groups/{id}",
            get(groups::get)
                .put(groups::replace_endpoint)
                .patch(groups::patch_endpoint)
                .delete(groups::delete_endpoint),
        )
        .route("/.search", post(search))
        .route("/Bulk", post(bulk::run).layer(bulk_limit))
        .route("/ServiceProviderConfig", get(discovery::service_provider_config))
        .route("/ResourceTypes", get(discovery::resource_types))
        .route("/ResourceTypes/{name}", get(discovery::resource_type_by_name))
        .route("/Schemas", get(discovery::schemas))
        .route("/Schemas/{id}", get(discovery::schema_by_id))
        .route("/Me", any(me))
        .route("/Me/{*rest}", any(me))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(body_limit)
        .layer(middleware::from_fn(auth::request_context))
        .with_state(service)
}

/// `POST /.search`: users and groups together.
async fn search(State(service): State<Arc<Service>>, scope: auth::Scope, body: ScimJson) -> Result<Reply, Error> {
    let params = ListParams::from_search_body(&body.0)?;
    handlers::list(&service, &scope, Listing::Everything, &params).await
}

/// `/Me`: there is no user behind a provisioning token.
async fn me() -> Error {
    Error::NotImplemented("/Me is not supported: a provisioning token does not stand for a user".to_owned())
}

async fn not_found() -> Error {
    Error::NotFound("no such SCIM endpoint".to_owned())
}

async fn method_not_allowed() -> Error {
    Error::MethodNotAllowed
}
