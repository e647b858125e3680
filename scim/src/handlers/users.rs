//! `/Users`: list and search, get, create, replace, patch, delete.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract;
use axum::http::StatusCode;
use idpsync_engine::command::Command;
use idpsync_engine::ids::{Seq, UserId};
use idpsync_engine::model::{AttrValue, Owner, User, UserProfile};
use idpsync_engine::{Outcome, Rejection, State, SubmitError};
use serde_json::Value;

use super::{Conditions, QueryPairs, WriteRequest};
use crate::auth::Scope;
use crate::error::Error;
use crate::normalise::normalise_resource;
use crate::patch::{apply_to_document, parse_operations};
use crate::projection::Projection;
use crate::query::{ListParams, Listing};
use crate::resource::Rendered;
use crate::resource::user::{self, UserWrite};
use crate::schema::USER_TYPE;
use crate::service::Service;
use crate::wire::{PathSegment, Reply, ScimJson};

/// How often a PATCH without `If-Match` is retried when another write changed the user
/// between reading it and committing.
const PATCH_ATTEMPTS_MAX: usize = 8;

/// `GET /Users`.
pub(crate) async fn list(
    extract::State(service): extract::State<Arc<Service>>,
    scope: Scope,
    query: QueryPairs,
) -> Result<Reply, Error> {
    let params = ListParams::from_query(&query.0)?;
    super::list(&service, &scope, Listing::Users, &params).await
}

/// `POST /Users/.search`.
pub(crate) async fn search(
    extract::State(service): extract::State<Arc<Service>>,
    scope: Scope,
    body: ScimJson,
) -> Result<Reply, Error> {
    let params = ListParams::from_search_body(&body.0)?;
    super::list(&service, &scope, Listing::Users, &params).await
}

/// `GET /Users/{id}`.
pub(crate) async fn get(
    scope: Scope,
    PathSegment(id): PathSegment,
    conditions: Conditions,
    query: QueryPairs,
) -> Result<Reply, Error> {
    let params = ListParams::from_query(&query.0)?;
    let state = scope.state().await?;
    let found = find(&state, &id)?;
    if conditions.none_match(found.version) {
        return Ok(Reply::empty(StatusCode::NOT_MODIFIED).etag(found.version));
    }
    let projection = Projection::new(&USER_TYPE, params.projection())?;
    Ok(Reply::ok(&Rendered::user(&state, found, &scope.base, &projection)).etag(found.version))
}

/// `POST /Users`.
pub(crate) async fn create_endpoint(
    scope: Scope,
    conditions: Conditions,
    query: QueryPairs,
    body: ScimJson,
) -> Result<Reply, Error> {
    create(&scope, &WriteRequest::new(&conditions, &query, body)?).await
}

/// `PUT /Users/{id}`.
pub(crate) async fn replace_endpoint(
    scope: Scope,
    PathSegment(id): PathSegment,
    conditions: Conditions,
    query: QueryPairs,
    body: ScimJson,
) -> Result<Reply, Error> {
    replace(&scope, &id, &WriteRequest::new(&conditions, &query, body)?).await
}

/// `PATCH /Users/{id}`.
pub(crate) async fn patch_endpoint(
    scope: Scope,
    PathSegment(id): PathSegment,
    conditions: Conditions,
    query: QueryPairs,
    body: ScimJson,
) -> Result<Reply, Error> {
    patch(&scope, &id, &WriteRequest::new(&conditions, &query, body)?).await
}

/// `DELETE /Users/{id}`.
pub(crate) async fn delete_endpoint(
    scope: Scope,
    PathSegment(id): PathSegment,
    conditions: Conditions,
) -> Result<Reply, Error> {
    delete(&scope, &id, conditions.expected_version).await
}

/// Creates a user; 201 with the user, its `Location` and `ETag`.
pub(crate) async fn create(scope: &Scope, request: &WriteRequest) -> Result<Reply, Error> {
    let projection = Projection::new(&USER_TYPE, request.params.projection())?;
    let write = decode(&request.body)?;
    let command = Command::ProvisionUser {
        owner: Owner::Scim,
        external_id: write.external_id,
        active: write.active.unwrap_or(true),
        profile: write.profile,
    };
    let committed = scope.tenant.execute(command, scope.origin.clone()).await?;
    let Outcome::UserProvisioned(id) = committed.outcome else {
        return Err(Error::Internal(format!(
            "ProvisionUser answered {:?}",
            committed.outcome
        )));
    };
    let reply = respond(scope, id, &projection)?;
    Ok(reply.created())
}

/// Replaces a user (PUT): every attribute is set from the body, except that a body without
/// `active` leaves `active` as it is.
pub(crate) async fn replace(scope: &Scope, id: &str, request: &WriteRequest) -> Result<Reply, Error> {
    let projection = Projection::new(&USER_TYPE, request.params.projection())?;
    let state = scope.state().await?;
    let current = find(&state, id)?;
    let (user_id, extra) = (current.id, current.profile.details().extra.clone());
    let write = decode(&request.body)?;
    let command = Command::ReplaceUser {
        user: user_id,
        expected_version: request.expected_version,
        external_id: write.external_id.clone(),
        active: write.active,
        profile: with_extra(write, extra),
    };
    scope.tenant.execute(command, scope.origin.clone()).await?;
    respond(scope, user_id, &projection)
}

/// Applies a PATCH all or nothing; 200 with the user.
pub(crate) async fn patch(scope: &Scope, id: &str, request: &WriteRequest) -> Result<Reply, Error> {
    let projection = Projection::new(&USER_TYPE, request.params.projection())?;
    let operations = parse_operations(&request.body)?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let state = scope.state().await?;
        let current = find(&state, id)?;
        if let Some(expected) = request.expected_version
            && expected != current.version
        {
            return Err(Rejection::VersionMismatch {
                expected,
                actual: current.version,
            }
            .into());
        }
        let mut document = user::render(&state, current, &scope.base);
        apply_to_document(&USER_TYPE, &mut document, &operations)?;
        let write = user::decode(&document)?;
        let command = Command::ReplaceUser {
            user: current.id,
            expected_version: Some(current.version),
            external_id: write.external_id.clone(),
            active: write.active,
            profile: with_extra(write, current.profile.details().extra.clone()),
        };
        match scope.tenant.execute(command, scope.origin.clone()).await {
            Ok(_) => return respond(scope, current.id, &projection),
            Err(SubmitError::Rejected(Rejection::VersionMismatch { .. }))
                if request.expected_version.is_none() && attempt < PATCH_ATTEMPTS_MAX =>
            {
                continue;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// Deletes a user and its memberships; 204.
pub(crate) async fn delete(scope: &Scope, id: &str, expected_version: Option<Seq>) -> Result<Reply, Error> {
    let user = find(&*scope.state().await?, id)?.id;
    let command = Command::DeleteUser { user, expected_version };
    scope.tenant.execute(command, scope.origin.clone()).await?;
    Ok(Reply::empty(StatusCode::NO_CONTENT))
}

fn decode(body: &Value) -> Result<UserWrite, Error> {
    user::decode(&normalise_resource(&USER_TYPE, body)?)
}

/// The profile of `write`, keeping the attributes outside the schema that another door set
/// (SCIM cannot see them, so it cannot mean to clear them).
fn with_extra(write: UserWrite, extra: BTreeMap<String, AttrValue>) -> UserProfile {
    let mut profile = write.profile;
    profile.details_mut().extra = extra;
    profile.compact();
    profile
}

/// The user `id` names in `state`, or 404.
pub(crate) fn find<'a>(state: &'a State, id: &str) -> Result<&'a Arc<User>, Error> {
    id.parse::<UserId>()
        .ok()
        .and_then(|user| state.user(user))
        .ok_or_else(|| Error::NotFound(format!("User {id} not found")))
}

/// 200 with the user as it is now, projected, with its `ETag` and `Location`.
fn respond(scope: &Scope, id: UserId, projection: &Projection) -> Result<Reply, Error> {
    let state = scope.tenant.state();
    let found = state
        .user(id)
        .ok_or_else(|| Error::NotFound(format!("User {id} not found")))?;
    let location = scope.base.location(&USER_TYPE, &id.to_string());
    Ok(Reply::ok(&Rendered::user(&state, found, &scope.base, projection))
        .etag(found.version)
        .location(location))
}
