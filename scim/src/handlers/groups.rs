//! `/Groups`: list and search, get, create, replace, patch, delete. Members are edges: a PATCH
//! becomes membership commands, and its answer carries the member list only for groups small
//! enough to render cheaply (or when the client asks for attributes); a large group is
//! answered 204, which RFC 7644 §3.5.2 allows.

use std::sync::Arc;

use axum::extract;
use axum::http::StatusCode;
use idpsync_engine::command::Command;
use idpsync_engine::ids::{GroupId, Seq};
use idpsync_engine::model::{Group, Owner};
use idpsync_engine::{Outcome, State};
use serde_json::Value;

use super::{Conditions, QueryPairs, WriteRequest};
use crate::auth::Scope;
use crate::error::Error;
use crate::normalise::normalise_resource;
use crate::patch::{parse_operations, plan_group_patch};
use crate::projection::Projection;
use crate::query::{ListParams, Listing};
use crate::resource::Rendered;
use crate::resource::group::{self, GroupWrite};
use crate::schema::GROUP_TYPE;
use crate::service::Service;
use crate::wire::{PathSegment, Reply, ScimJson};

/// The most members a PATCH answer renders unasked; larger groups are answered 204.
pub(crate) const PATCH_REPLY_MEMBERS_MAX: usize = 1_000;

/// `GET /Groups`.
pub(crate) async fn list(
    extract::State(service): extract::State<Arc<Service>>,
    scope: Scope,
    query: QueryPairs,
) -> Result<Reply, Error> {
    let params = ListParams::from_query(&query.0)?;
    super::list(&service, &scope, Listing::Groups, &params).await
}

/// `POST /Groups/.search`.
pub(crate) async fn search(
    extract::State(service): extract::State<Arc<Service>>,
    scope: Scope,
    body: ScimJson,
) -> Result<Reply, Error> {
    let params = ListParams::from_search_body(&body.0)?;
    super::list(&service, &scope, Listing::Groups, &params).await
}

/// `GET /Groups/{id}`.
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
    let projection = Projection::new(&GROUP_TYPE, params.projection())?;
    Ok(render(&state, found, &scope, &projection))
}

/// `POST /Groups`.
pub(crate) async fn create_endpoint(
    scope: Scope,
    conditions: Conditions,
    query: QueryPairs,
    body: ScimJson,
) -> Result<Reply, Error> {
    create(&scope, &WriteRequest::new(&conditions, &query, body)?).await
}

/// `PUT /Groups/{id}`.
pub(crate) async fn replace_endpoint(
    scope: Scope,
    PathSegment(id): PathSegment,
    conditions: Conditions,
    query: QueryPairs,
    body: ScimJson,
) -> Result<Reply, Error> {
    replace(&scope, &id, &WriteRequest::new(&conditions, &query, body)?).await
}

/// `PATCH /Groups/{id}`.
pub(crate) async fn patch_endpoint(
    scope: Scope,
    PathSegment(id): PathSegment,
    conditions: Conditions,
    query: QueryPairs,
    body: ScimJson,
) -> Result<Reply, Error> {
    patch(&scope, &id, &WriteRequest::new(&conditions, &query, body)?).await
}

/// `DELETE /Groups/{id}`.
pub(crate) async fn delete_endpoint(
    scope: Scope,
    PathSegment(id): PathSegment,
    conditions: Conditions,
) -> Result<Reply, Error> {
    delete(&scope, &id, conditions.expected_version).await
}

/// Creates a group with its members; 201.
pub(crate) async fn create(scope: &Scope, request: &WriteRequest) -> Result<Reply, Error> {
    let projection = Projection::new(&GROUP_TYPE, request.params.projection())?;
    let write = decode(&*scope.state().await?, &request.body)?;
    let command = Command::CreateGroup {
        owner: Owner::Scim,
        external_id: write.external_id,
        display_name: write.display_name,
        members: write.members.unwrap_or_default(),
    };
    let committed = scope.tenant.execute(command, scope.origin.clone()).await?;
    let Outcome::GroupCreated(id) = committed.outcome else {
        return Err(Error::Internal(format!("CreateGroup answered {:?}", committed.outcome)));
    };
    let state = scope.tenant.state();
    Ok(render(&state, find_id(&state, id)?, scope, &projection).created())
}

/// Replaces a group (PUT). A body without `members` leaves the members as they are: a PUT
/// that forgot them must not revoke everyone's access; `"members": []` empties the group.
pub(crate) async fn replace(scope: &Scope, id: &str, request: &WriteRequest) -> Result<Reply, Error> {
    let projection = Projection::new(&GROUP_TYPE, request.params.projection())?;
    let state = scope.state().await?;
    let group_id = find(&state, id)?.id;
    let write = decode(&state, &request.body)?;
    let mut commands = vec![Command::UpdateGroup {
        group: group_id,
        expected_version: request.expected_version,
        display_name: write.display_name,
        external_id: write.external_id,
    }];
    if let Some(members) = write.members {
        commands.push(Command::ReplaceMembers {
            group: group_id,
            members,
        });
    }
    scope
        .tenant
        .execute(Command::Atomic(commands), scope.origin.clone())
        .await?;
    let state = scope.tenant.state();
    Ok(render(&state, find_id(&state, group_id)?, scope, &projection))
}

/// Applies a PATCH all or nothing.
pub(crate) async fn patch(scope: &Scope, id: &str, request: &WriteRequest) -> Result<Reply, Error> {
    let projection = Projection::new(&GROUP_TYPE, request.params.projection())?;
    let operations = parse_operations(&request.body)?;
    let state = scope.state().await?;
    let current = find(&state, id)?;
    let commands = plan_group_patch(&state, current, &operations, request.expected_version, &scope.base)?;
    let group_id = current.id;
    scope
        .tenant
        .execute(Command::Atomic(commands), scope.origin.clone())
        .await?;
    let state = scope.tenant.state();
    let found = find_id(&state, group_id)?;
    if !request.params.projection().is_given() && state.direct_member_count(group_id) > PATCH_REPLY_MEMBERS_MAX {
        return Ok(Reply::empty(StatusCode::NO_CONTENT).etag(found.version));
    }
    Ok(render(&state, found, scope, &projection))
}

/// Deletes a group and its memberships; 204.
pub(crate) async fn delete(scope: &Scope, id: &str, expected_version: Option<Seq>) -> Result<Reply, Error> {
    let group = find(&*scope.state().await?, id)?.id;
    let command = Command::DeleteGroup {
        group,
        expected_version,
    };
    scope.tenant.execute(command, scope.origin.clone()).await?;
    Ok(Reply::empty(StatusCode::NO_CONTENT))
}

fn decode(state: &State, body: &Value) -> Result<GroupWrite, Error> {
    group::decode(state, &normalise_resource(&GROUP_TYPE, body)?)
}

/// The group `id` names in `state`, or 404.
pub(crate) fn find<'a>(state: &'a State, id: &str) -> Result<&'a Arc<Group>, Error> {
    id.parse::<GroupId>()
        .ok()
        .and_then(|group| state.group(group))
        .ok_or_else(|| Error::NotFound(format!("Group {id} not found")))
}

fn find_id(state: &State, id: GroupId) -> Result<&Arc<Group>, Error> {
    state
        .group(id)
        .ok_or_else(|| Error::NotFound(format!("Group {id} not found")))
}

/// 200 with the group, projected (members only if the projection keeps them), its `ETag`
/// and `Location`.
fn render(state: &State, found: &Group, scope: &Scope, projection: &Projection) -> Reply {
    Reply::ok(&Rendered::group(state, found, &scope.base, projection))
        .etag(found.version)
        .location(scope.base.location(&GROUP_TYPE, &found.id.to_string()))
}
