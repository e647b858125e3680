//! The directory as it is now or was at a past moment: users, groups, one user with its groups
//! and access, a group's direct or effective members. Lists are paginated by id
//! (`?limit=&after=`).
//!
//! `?at=` (RFC 3339 or a date, as everywhere in the CLI and the API) or `?seq=N` asks about
//! the past. A group's members are answered from the
//! history index (fast: no replay), each member as it was then ([`Tenant::user_at`],
//! [`Tenant::group_at`]); lists of all users or groups and a user's access need the whole
//! state of the time, from [`Tenant::state_at`] (the nearest checkpoint or snapshot plus a
//! replay).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Json;
use axum::extract::Path;
use idpsync_engine::access::{ancestors, effective_users, grants};
use idpsync_engine::ids::{GroupId, Member, UserId};
use idpsync_engine::model::{Group, User};
use idpsync_engine::{State, Tenant};
use idpsync_storage::{Seq, Timestamp};
use serde::Deserialize;
use utoipa::IntoParams;

use super::Routes;
use super::auth::TenantAccess;
use super::error::{ApiError, ApiQuery, ErrorBody};
use super::wire::{
    GrantRow, GroupDetail, GroupRef, GroupRow, MemberRow, Page, UserDetail, UserGroup, UserRow, time_of,
};

pub(super) fn routes(routes: Routes) -> Routes {
    routes
        .get("/tenants/{tenant}/users", list_users)
        .get("/tenants/{tenant}/users/{user}", get_user)
        .get("/tenants/{tenant}/groups", list_groups)
        .get("/tenants/{tenant}/groups/{group}", get_group)
        .get("/tenants/{tenant}/groups/{group}/members", list_members)
}

/// The most items one page holds.
pub const PAGE_LEN_MAX: usize = 1_000;
/// Items per page unless `limit` says.
pub const PAGE_LEN_DEFAULT: usize = 100;

/// `?at=` / `?seq=` and paging.
#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    /// A past moment: RFC 3339 or a date (`2026-03-01`). Not with `seq`.
    at: Option<String>,
    /// A past log position. Not with `at`.
    seq: Option<u64>,
    /// Items per page, 1 to 1000 (default 100).
    limit: Option<usize>,
    /// The `next` cursor of the page before.
    after: Option<String>,
    /// Members only: users through nested groups instead of direct members.
    effective: Option<bool>,
}

/// `?at=` / `?seq=` only.
#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct WhenQuery {
    /// A past moment: RFC 3339 or a date (`2026-03-01`). Not with `seq`.
    pub(super) at: Option<String>,
    /// A past log position. Not with `at`.
    pub(super) seq: Option<u64>,
}

/// The log position a question is about: the head unless `at` or `seq` says otherwise.
pub(super) async fn position(tenant: &Tenant, at: Option<&str>, seq: Option<u64>) -> Result<Seq, ApiError> {
    let head = tenant.state().seq();
    match (at, seq) {
        (Some(_), Some(_)) => Err(ApiError::bad_request("pass `at` or `seq`, not both")),
        (Some(at), None) => {
            let moment = Timestamp::parse_moment(at).map_err(|error| ApiError::bad_request(error.to_string()))?;
            Ok(tenant.seq_at(moment).await)
        }
        (None, Some(seq)) if seq > head.0 => Err(ApiError::bad_request(format!(
            "seq {seq} is beyond the end of the log (seq {head})"
        ))),
        (None, Some(seq)) => Ok(Seq(seq)),
        (None, None) => Ok(head),
    }
}

/// The whole state at `seq`: the published one when `seq` is the head.
pub(super) async fn state_at(tenant: &Tenant, seq: Seq) -> Result<Arc<State>, ApiError> {
    let present = tenant.state();
    if seq >= present.seq() {
        return Ok(present);
    }
    Ok(Arc::new(tenant.state_at(seq).await?))
}

fn page_len(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(PAGE_LEN_DEFAULT),
        Some(limit) if (1..=PAGE_LEN_MAX).contains(&limit) => Ok(limit),
        Some(limit) => Err(ApiError::bad_request(format!(
            "limit {limit} is out of range: 1 to {PAGE_LEN_MAX}"
        ))),
    }
}

fn cursor<T: std::str::FromStr>(after: Option<&str>) -> Result<Option<T>, ApiError> {
    after
        .map(|text| {
            text.parse::<T>()
                .map_err(|_| ApiError::bad_request(format!("`after` must be an id from a previous page, not {text:?}")))
        })
        .transpose()
}

/// Cuts `items` (one more than a page, if there are more) into a page.
fn page<T, K: ToString>(
    state_seq: Seq,
    recorded_at: Option<String>,
    mut items: Vec<T>,
    len: usize,
    key: impl Fn(&T) -> K,
) -> Page<T> {
    let next = if items.len() > len {
        items.truncate(len);
        items.last().map(|last| key(last).to_string())
    } else {
        None
    };
    Page {
        seq: state_seq.0,
        recorded_at,
        items,
        next,
    }
}

/// A user by id or userName in `state`.
pub(super) fn find_user(state: &State, key: &str) -> Option<Arc<User>> {
    key.parse::<UserId>()
        .ok()
        .and_then(|id| state.user(id))
        .or_else(|| state.user_by_name(key))
        .cloned()
}

/// A group by id or (unique) displayName in `state`.
pub(super) fn find_group(state: &State, key: &str) -> Result<Option<Arc<Group>>, ApiError> {
    if let Some(group) = key.parse::<GroupId>().ok().and_then(|id| state.group(id)) {
        return Ok(Some(Arc::clone(group)));
    }
    let named: Vec<&Arc<Group>> = state.groups_by_name(key).collect();
    match named.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(Arc::clone(one))),
        many => Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "ambiguous",
            format!(
                "{} groups are named {key:?}; name one by id: {}",
                many.len(),
                many.iter().map(|g| g.id.to_string()).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

/// Users, a page at a time, now or at a past moment.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/users",
    operation_id = "listUsers",
    tag = "directory",
    params(super::doc::TenantPath, ListQuery),
    responses(
        (status = 200, description = "A page of users, by id", body = Page<UserRow>),
        (status = 400, description = "A malformed query", body = ErrorBody),
    )
)]
async fn list_users(
    access: TenantAccess,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Page<UserRow>>, ApiError> {
    reject_effective(&query)?;
    let len = page_len(query.limit)?;
    let after = cursor::<UserId>(query.after.as_deref())?;
    let seq = position(&access.tenant, query.at.as_deref(), query.seq).await?;
    let state = state_at(&access.tenant, seq).await?;
    let items = state
        .users_after(after)
        .take(len + 1)
        .map(|u| UserRow::from(&**u))
        .collect();
    Ok(Json(page(state.seq(), time_of(&state), items, len, |row: &UserRow| {
        row.id
    })))
}

/// Groups, a page at a time, now or at a past moment.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/groups",
    operation_id = "listGroups",
    tag = "directory",
    params(super::doc::TenantPath, ListQuery),
    responses(
        (status = 200, description = "A page of groups, by id", body = Page<GroupRow>),
        (status = 400, description = "A malformed query", body = ErrorBody),
    )
)]
async fn list_groups(
    access: TenantAccess,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Page<GroupRow>>, ApiError> {
    reject_effective(&query)?;
    let len = page_len(query.limit)?;
    let after = cursor::<GroupId>(query.after.as_deref())?;
    let seq = position(&access.tenant, query.at.as_deref(), query.seq).await?;
    let state = state_at(&access.tenant, seq).await?;
    let items = state
        .groups()
        .skip_while(|group| after.is_some_and(|after| group.id <= after))
        .take(len + 1)
        .map(|group| GroupRow::of(&state, group))
        .collect();
    Ok(Json(page(
        state.seq(),
        time_of(&state),
        items,
        len,
        |row: &GroupRow| row.id,
    )))
}

fn reject_effective(query: &ListQuery) -> Result<(), ApiError> {
    match query.effective {
        Some(_) => Err(ApiError::bad_request("`effective` applies to a group's members only")),
        None => Ok(()),
    }
}

/// A user route's `{user}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code, reason = "read by the OpenAPI derive only")]
pub(super) struct UserPath {
    /// The user's id or userName.
    user: String,
}

/// A group route's `{group}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code, reason = "read by the OpenAPI derive only")]
pub(super) struct GroupPath {
    /// The group's id or (unique) displayName.
    group: String,
}

/// A user with its groups and access, now or at a past moment.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/users/{user}",
    operation_id = "getUser",
    tag = "directory",
    params(super::doc::TenantPath, UserPath, WhenQuery),
    responses(
        (status = 200, description = "The user with its groups and access", body = UserDetail),
        (status = 400, description = "A malformed query", body = ErrorBody),
        (status = 404, description = "No such user at that moment", body = ErrorBody),
    )
)]
async fn get_user(
    access: TenantAccess,
    Path((_, key)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<WhenQuery>,
) -> Result<Json<UserDetail>, ApiError> {
    let seq = position(&access.tenant, query.at.as_deref(), query.seq).await?;
    let state = state_at(&access.tenant, seq).await?;
    let user = find_user(&state, &key)
        .ok_or_else(|| ApiError::not_found(format!("no user with id or userName {key:?} at seq {}", state.seq())))?;
    let direct: BTreeSet<GroupId> = state.groups_of(Member::User(user.id)).collect();
    let groups = ancestors(&state, Member::User(user.id))
        .into_iter()
        .map(|id| UserGroup {
            group: GroupRef::of(&state, id),
            direct: direct.contains(&id),
        })
        .collect();
    let access_rows = grants(&state, user.id)
        .iter()
        .map(|g| GrantRow::of(&state, g))
        .collect();
    Ok(Json(UserDetail {
        seq: state.seq().0,
        recorded_at: time_of(&state),
        user: UserRow::from(&*user),
        groups,
        access: access_rows,
    }))
}

/// A group and its direct member count, now or at a past moment.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/groups/{group}",
    operation_id = "getGroup",
    tag = "directory",
    params(super::doc::TenantPath, GroupPath, WhenQuery),
    responses(
        (status = 200, description = "The group and its direct member count", body = GroupDetail),
        (status = 400, description = "A malformed query", body = ErrorBody),
        (status = 404, description = "No such group at that moment", body = ErrorBody),
        (status = 409, description = "Several groups have that displayName", body = ErrorBody),
    )
)]
async fn get_group(
    access: TenantAccess,
    Path((_, key)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<WhenQuery>,
) -> Result<Json<GroupDetail>, ApiError> {
    let seq = position(&access.tenant, query.at.as_deref(), query.seq).await?;
    let (group, members) = group_at(&access.tenant, &key, seq).await?;
    Ok(Json(GroupDetail {
        group: GroupRow {
            id: group.id,
            display_name: group.display_name.clone(),
            external_id: group.external_id.clone(),
            owner: super::wire::owner_name(&group.owner),
            members,
        },
        seq: seq.0,
    }))
}

/// A group as it was at `seq`, and its direct member count then, from the history index.
async fn group_at(tenant: &Tenant, key: &str, seq: Seq) -> Result<(Arc<Group>, usize), ApiError> {
    let present = tenant.state();
    let id = match key.parse::<GroupId>() {
        Ok(id) => id,
        Err(_) => find_group(&present, key)?
            .map(|group| group.id)
            .ok_or_else(|| ApiError::not_found(format!("no group named {key:?} now; name a past group by its id")))?,
    };
    let group = tenant
        .group_at(id, seq)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("group {key:?} did not exist at seq {seq}")))?;
    let members = tenant
        .with_history(|history, _| history.direct_members_at(id, seq).len())
        .await;
    Ok((group, members))
}

/// A group's direct or effective members, now or at a past moment.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/groups/{group}/members",
    operation_id = "listGroupMembers",
    tag = "directory",
    params(super::doc::TenantPath, GroupPath, ListQuery),
    responses(
        (status = 200, description = "A page of members: users before groups, each by id", body = Page<MemberRow>),
        (status = 400, description = "A malformed query", body = ErrorBody),
        (status = 404, description = "No such group at that moment", body = ErrorBody),
        (status = 409, description = "Several groups have that displayName", body = ErrorBody),
    )
)]
async fn list_members(
    access: TenantAccess,
    Path((_, key)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Page<MemberRow>>, ApiError> {
    let len = page_len(query.limit)?;
    let seq = position(&access.tenant, query.at.as_deref(), query.seq).await?;
    let tenant = &access.tenant;
    let present = tenant.state();
    if seq == present.seq() {
        let group = find_group(&present, &key)?
            .ok_or_else(|| ApiError::not_found(format!("no group with id or displayName {key:?}")))?;
        let members = current_members(&present, group.id, query.effective == Some(true));
        let after = member_cursor(query.after.as_deref())?;
        let items = members
            .into_iter()
            .filter(|member| after.is_none_or(|after| *member > after))
            .take(len + 1)
            .map(|member| MemberRow::of(&present, member))
            .collect();
        return Ok(Json(page(seq, time_of(&present), items, len, member_row_cursor)));
    }
    let (group, _) = group_at(tenant, &key, seq).await?;
    let members: Vec<Member> = tenant
        .with_history(|history, _| {
            if query.effective == Some(true) {
                history
                    .effective_users_at(group.id, seq)
                    .into_iter()
                    .map(Member::User)
                    .collect()
            } else {
                history.direct_members_at(group.id, seq).into_iter().collect()
            }
        })
        .await;
    let after = member_cursor(query.after.as_deref())?;
    let mut items = Vec::new();
    for member in members
        .into_iter()
        .filter(|member| after.is_none_or(|after| *member > after))
        .take(len + 1)
    {
        items.push(match member {
            Member::User(id) => MemberRow::user(id, tenant.user_at(id, seq).await?.as_deref()),
            Member::Group(id) => MemberRow::group(id, tenant.group_at(id, seq).await?.as_deref()),
        });
    }
    let recorded_at = tenant
        .with_history(|history, _| history.recorded_at(seq))
        .await
        .map(|at| at.to_rfc3339());
    Ok(Json(page(seq, recorded_at, items, len, member_row_cursor)))
}

/// Members in a fixed order (users before groups, each by id), so pages are stable.
fn current_members(state: &State, group: GroupId, effective: bool) -> Vec<Member> {
    if effective {
        effective_users(state, group).into_iter().map(Member::User).collect()
    } else {
        state.direct_members(group).collect()
    }
}

/// The `after` cursor of a members page: `user:<id>` or `group:<id>`, the last member of the
/// page before (users sort before groups, so the kind is part of the position).
fn member_cursor(after: Option<&str>) -> Result<Option<Member>, ApiError> {
    let Some(text) = after else { return Ok(None) };
    let bad = || ApiError::bad_request(format!("`after` must be a cursor from a previous page, not {text:?}"));
    let member = match text.split_once(':') {
        Some(("user", id)) => Member::User(id.parse().map_err(|_| bad())?),
        Some(("group", id)) => Member::Group(id.parse().map_err(|_| bad())?),
        _ => return Err(bad()),
    };
    Ok(Some(member))
}

/// The cursor of a member row (see [`member_cursor`]).
fn member_row_cursor(row: &MemberRow) -> String {
    format!("{}:{}", row.kind.to_lowercase(), row.id)
}
