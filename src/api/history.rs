//! The past of one user or group: the spans during which a member was in a group, and every
//! event that touched a user or group (its timeline), with the chain link of each.

use axum::Json;
use axum::extract::Path;
use idpsync_engine::Tenant;
use idpsync_engine::audit::resolve_user;
use idpsync_engine::ids::{GroupId, Member};
use idpsync_storage::Seq;
use serde_json::{Value, json};

use super::Routes;
use super::auth::TenantAccess;
use super::directory::{WhenQuery, find_group, position};
use super::error::{ApiError, ApiQuery};
use super::wire::logged_event_json;

pub(super) fn routes(routes: Routes) -> Routes {
    routes
        .get("/tenants/{tenant}/users/{user}/timeline", user_timeline)
        .get("/tenants/{tenant}/groups/{group}/timeline", group_timeline)
        .get("/tenants/{tenant}/groups/{group}/members/{member}/intervals", intervals)
}

/// Whether the history index knows anything of `member`.
fn known(tenant: &Tenant, member: Member) -> bool {
    tenant.with_history(|history, head| !history.member_events(member, head).is_empty())
}

/// A group by id (present or past) or by its present displayName.
pub(super) fn resolve_group(tenant: &Tenant, key: &str) -> Result<GroupId, ApiError> {
    if let Ok(id) = key.parse::<GroupId>()
        && known(tenant, Member::Group(id))
    {
        return Ok(id);
    }
    find_group(&tenant.state(), key)?.map(|group| group.id).ok_or_else(|| {
        ApiError::not_found(format!(
            "no group with id or displayName {key:?} (name a deleted group by its id)"
        ))
    })
}

async fn timeline(tenant: &Tenant, member: Member) -> Result<Json<Value>, ApiError> {
    let entries = tenant.timeline(member).await?;
    let items: Vec<Value> = entries
        .iter()
        .map(|entry| logged_event_json(&entry.event, &entry.chain, &**tenant.keyring()))
        .collect();
    Ok(Json(json!({"seq": tenant.state().seq(), "items": items})))
}

async fn user_timeline(access: TenantAccess, Path((_, key)): Path<(String, String)>) -> Result<Json<Value>, ApiError> {
    let user = resolve_user(&access.tenant, &key).await?;
    timeline(&access.tenant, Member::User(user)).await
}

async fn group_timeline(access: TenantAccess, Path((_, key)): Path<(String, String)>) -> Result<Json<Value>, ApiError> {
    let group = resolve_group(&access.tenant, &key)?;
    timeline(&access.tenant, Member::Group(group)).await
}

fn position_json(tenant: &Tenant, seq: Seq) -> Value {
    let at = tenant.with_history(|history, _| history.recorded_at(seq));
    json!({"seq": seq, "recordedAt": at.map(|at| at.to_rfc3339())})
}

async fn intervals(
    access: TenantAccess,
    Path((_, group_key, member_key)): Path<(String, String, String)>,
    ApiQuery(query): ApiQuery<WhenQuery>,
) -> Result<Json<Value>, ApiError> {
    let tenant = &access.tenant;
    let seq = position(tenant, query.at.as_deref(), query.seq)?;
    let group = resolve_group(tenant, &group_key)?;
    // A group by id or name first: resolving a user can fall back to reading the log.
    let member = match member_key.parse::<GroupId>() {
        Ok(id) if known(tenant, Member::Group(id)) => Member::Group(id),
        _ => match find_group(&tenant.state(), &member_key)? {
            Some(found) => Member::Group(found.id),
            None => Member::User(resolve_user(tenant, &member_key).await?),
        },
    };
    let spans = tenant.with_history(|history, _| history.membership_intervals(group, member, seq));
    let items: Vec<Value> = spans
        .iter()
        .map(|span| {
            json!({
                "from": position_json(tenant, span.from),
                "until": span.until.map(|until| position_json(tenant, until)),
            })
        })
        .collect();
    let (kind, id) = match member {
        Member::User(id) => ("User", id.to_string()),
        Member::Group(id) => ("Group", id.to_string()),
    };
    Ok(Json(json!({
        "seq": seq,
        "group": group,
        "member": {"type": kind, "id": id},
        "items": items,
    })))
}
