//! Admin-token authentication: every tenant route takes a [`TenantAccess`], which checks the
//! bearer token and that it belongs to the tenant in the path.
//!
//! An admin token is bound to one tenant, as a SCIM token is: a leaked token exposes one
//! tenant, never all. A request for another tenant gets 403 whether that tenant exists or not,
//! so a token cannot be used to find out which tenants exist.
//!
//! A response that outlives its request (the change stream) keeps a [`TokenWatch`], which
//! ends it once the token no longer opens the tenant: revoking a token closes its streams
//! within [`TOKEN_RECHECK`] plus the authenticator's own reload interval, and a token's
//! expiry within [`TOKEN_RECHECK`].

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use idpsync_engine::Tenant;
use idpsync_engine::ids::TokenId;
use idpsync_scim::Authenticator;
use idpsync_storage::TenantId;

use super::ApiState;
use super::error::ApiError;
use crate::actions::{Actor, Door};

/// An authenticated request for one tenant.
pub struct TenantAccess {
    /// The tenant in the path, which the token may use.
    pub tenant: Arc<Tenant>,
    /// The admin token, recorded in the events the request causes.
    pub token: TokenId,
    /// Tells when the token stops opening this tenant.
    pub watch: TokenWatch,
}

impl TenantAccess {
    /// The request's token as the actor of an action, for the trail ([`crate::actions`]).
    pub fn actor(&self) -> Actor<'_> {
        Actor {
            tenant: self.tenant.id(),
            token: self.token,
            token_name: None,
            door: Door::Api,
        }
    }
}

/// How often a long-lived response checks that its token still opens its tenant.
pub const TOKEN_RECHECK: Duration = Duration::from_millis(250);

/// The credential of a request, kept to check again later that it is still valid.
pub struct TokenWatch {
    authenticator: Arc<dyn Authenticator>,
    secret: String,
    tenant: TenantId,
    token: TokenId,
}

impl TokenWatch {
    /// Whether the token still authenticates as itself, for the same tenant.
    async fn is_valid(&self) -> bool {
        self.authenticator
            .authenticate(&self.secret)
            .await
            .is_some_and(|principal| principal.tenant == self.tenant && principal.token == self.token)
    }

    /// Resolves once the token is revoked (or no longer opens the tenant): checked every
    /// [`TOKEN_RECHECK`].
    pub async fn revoked(self) {
        let mut ticks = tokio::time::interval(TOKEN_RECHECK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if !self.is_valid().await {
                return;
            }
        }
    }
}

/// The secret of an `Authorization: Bearer <secret>` header (scheme in any case).
fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, secret) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !secret.trim().is_empty()).then(|| secret.trim())
}

impl FromRequestParts<ApiState> for TenantAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Self::Rejection> {
        let secret = bearer(parts)
            .ok_or_else(|| ApiError::unauthorized("send an admin token as `Authorization: Bearer <token>`"))?
            .to_owned();
        let principal = state
            .inner
            .authenticator
            .authenticate(&secret)
            .await
            .ok_or_else(|| ApiError::unauthorized("the token is unknown, revoked, or not an admin token"))?;
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
        let name = params
            .iter()
            .find(|(key, _)| *key == "tenant")
            .map(|(_, value)| value)
            .ok_or_else(|| ApiError::internal("a tenant route without a {tenant} parameter"))?;
        if name != principal.tenant.as_str() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this token is for tenant {}, not {name:?}", principal.tenant),
            ));
        }
        let tenant_id = TenantId::new(name).map_err(|error| ApiError::bad_request(error.to_string()))?;
        let tenant = state
            .inner
            .engine
            .tenant_in_log(&tenant_id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("tenant {tenant_id} has no log yet")))?;
        // On a log other replicas write, what they appended is folded in before the request is
        // served: a client reads what it wrote through any of them.
        tenant.caught_up().await?;
        Ok(TenantAccess {
            tenant,
            token: principal.token,
            watch: TokenWatch {
                authenticator: Arc::clone(&state.inner.authenticator),
                secret,
                tenant: principal.tenant,
                token: principal.token,
            },
        })
    }
}
