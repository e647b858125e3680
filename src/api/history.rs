//! The past of one user or group: the spans during which a member was in a group, and every
//! event that touched a user or group (its timeline), with the chain link of each.

use axum::Json;
use axum::extract::Path;
use idpsync_engine::History;
use idpsync_engine::Tenant;
use idpsync_engine::audit::resolve_user;
use idpsync_engine::ids::{GroupId, Member};
use idpsync_storage::Seq;

use super::Routes;
use super::auth::TenantAccess;
use super::directory::{GroupPath, UserPath, WhenQuery, find_group, position};
use super::error::{ApiError, ApiQuery, ErrorBody};
use super::wire::{Interval, Intervals, LogPosition, LoggedEventRow, MemberRef, Timeline};

pub(super) fn routes(routes: Routes) -> Routes {
    routes
        .get("/tenants/{tenant}/users/{user}/timeline", user_timeline)
        .get("/tenants/{tenant}/groups/{group}/timeline", group_timeline)
        .get("/tenants/{tenant}/groups/{group}/members/{member}/intervals", intervals)
}

/// Whether the history index knows anything of `member`.
async fn known(tenant: &Tenant, member: Member) -> bool {
    tenant
        .with_history(|history, head| !history.member_events(member, head).is_empty())
        .await
}

/// A group by id (present or past) or by its present displayName.
pub(super) async fn resolve_group(tenant: &Tenant, key: &str) -> Result<GroupId, ApiError> {
    if let Ok(id) = key.parse::<GroupId>()
        && known(tenant, Member::Group(id)).await
    {
        return Ok(id);
    }
    find_group(&tenant.state(), key)?.map(|group| group.id).ok_or_else(|| {
        ApiError::not_found(format!(
            "no group with id or displayName {key:?} (name a deleted group by its id)"
        ))
    })
}

async fn timeline(tenant: &Tenant, member: Member) -> Result<Json<Timeline>, ApiError> {
    let entries = tenant.timeline(member).await?;
    let items = entries
        .iter()
        .map(|entry| LoggedEventRow::of(&entry.event, &entry.chain, &**tenant.keyring()))
        .collect();
    Ok(Json(Timeline {
        seq: tenant.state().seq().0,
        items,
    }))
}

/// Every event that touched a user, with its chain link.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/users/{user}/timeline",
    operation_id = "getUserTimeline",
    tag = "history",
    params(super::doc::TenantPath, UserPath),
    responses(
        (status = 200, description = "Every event that touched the user, oldest first", body = Timeline),
        (status = 404, description = "No such user, now or in the log", body = ErrorBody),
    )
)]
async fn user_timeline(
    access: TenantAccess,
    Path((_, key)): Path<(String, String)>,
) -> Result<Json<Timeline>, ApiError> {
    let user = resolve_user(&access.tenant, &key).await?;
    timeline(&access.tenant, Member::User(user)).await
}

/// Every event that touched a group, with its chain link.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/groups/{group}/timeline",
    operation_id = "getGroupTimeline",
    tag = "history",
    params(super::doc::TenantPath, GroupPath),
    responses(
        (status = 200, description = "Every event that touched the group, oldest first", body = Timeline),
        (status = 404, description = "No such group, now or in the log", body = ErrorBody),
        (status = 409, description = "Several groups have that displayName", body = ErrorBody),
    )
)]
async fn group_timeline(
    access: TenantAccess,
    Path((_, key)): Path<(String, String)>,
) -> Result<Json<Timeline>, ApiError> {
    let group = resolve_group(&access.tenant, &key).await?;
    timeline(&access.tenant, Member::Group(group)).await
}

fn log_position(history: &History, seq: Seq) -> LogPosition {
    let at = history.recorded_at(seq);
    LogPosition {
        seq: seq.0,
        recorded_at: at.map(|at| at.to_rfc3339()),
    }
}

/// The `{member}` of the intervals route.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code, reason = "read by the OpenAPI derive only")]
struct MemberPath {
    /// A user (id or userName) or a group (id or displayName).
    member: String,
}

/// The spans during which a user or group was a member of a group.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/groups/{group}/members/{member}/intervals",
    operation_id = "getMembershipIntervals",
    tag = "history",
    params(super::doc::TenantPath, GroupPath, MemberPath, WhenQuery),
    responses(
        (status = 200, description = "The spans during which the member was in the group", body = Intervals),
        (status = 400, description = "A malformed query", body = ErrorBody),
        (status = 404, description = "No such group or member", body = ErrorBody),
        (status = 409, description = "Several groups have that displayName", body = ErrorBody),
    )
)]
async fn intervals(
    access: TenantAccess,
    Path((_, group_key, member_key)): Path<(String, String, String)>,
    ApiQuery(query): ApiQuery<WhenQuery>,
) -> Result<Json<Intervals>, ApiError> {
    let tenant = &access.tenant;
    let seq = position(tenant, query.at.as_deref(), query.seq).await?;
    let group = resolve_group(tenant, &group_key).await?;
    // A group by id or name first: resolving a user can fall back to reading the log.
    let member = match member_key.parse::<GroupId>() {
        Ok(id) if known(tenant, Member::Group(id)).await => Member::Group(id),
        _ => match find_group(&tenant.state(), &member_key)? {
            Some(found) => Member::Group(found.id),
            None => Member::User(resolve_user(tenant, &member_key).await?),
        },
    };
    let items = tenant
        .with_history(|history, _| {
            history
                .membership_intervals(group, member, seq)
                .iter()
                .map(|span| Interval {
                    from: log_position(history, span.from),
                    until: span.until.map(|until| log_position(history, until)),
                })
                .collect()
        })
        .await;
    Ok(Json(Intervals {
        seq: seq.0,
        group,
        member: MemberRef::from(member),
        items,
    }))
}
