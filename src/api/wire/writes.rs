//! The JSON shapes of the tenant's summary, of membership intervals, and of the writes that
//! are not bindings or integrations: acknowledgements and erasure.

use idpsync_engine::ids::{GroupId, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::MemberRef;

/// `GET /tenants/{tenant}`: the tenant's head and counts.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantSummary {
    /// The tenant.
    pub tenant: String,
    /// The log's head.
    pub seq: u64,
    /// When the head was recorded; absent on an empty log.
    pub recorded_at: Option<String>,
    /// Users.
    pub users: usize,
    /// Groups.
    pub groups: usize,
    /// Bindings.
    pub bindings: usize,
    /// Syncs the mass-deactivation guard holds.
    pub held_syncs: usize,
    /// Clients reading the change stream.
    pub change_stream_subscribers: usize,
}

/// A log position and when it was recorded.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogPosition {
    /// The record.
    pub seq: u64,
    /// When it was recorded, if the history index knows.
    pub recorded_at: Option<String>,
}

/// A span during which a member was in a group.
#[derive(Serialize, ToSchema)]
pub struct Interval {
    /// The record that added it.
    pub from: LogPosition,
    /// The record that removed it; absent (`null`) while it is a member.
    pub until: Option<LogPosition>,
}

/// `GET …/members/{member}/intervals`: when a member was in a group.
#[derive(Serialize, ToSchema)]
pub struct Intervals {
    /// The log position the answer is as of.
    pub seq: u64,
    /// The group.
    #[schema(value_type = String)]
    pub group: GroupId,
    /// The member.
    pub member: MemberRef,
    /// The spans, oldest first.
    pub items: Vec<Interval>,
}

/// The body of `POST …/changes/ack`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    /// The stream id of an `access.revoked` item: `<seq>.<index>`.
    #[schema(example = "42.1")]
    pub id: String,
}

/// The answer to `POST …/changes/ack`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AckAnswer {
    /// The change acknowledged.
    pub id: String,
    /// Whose access it revoked.
    #[schema(value_type = String)]
    pub user: UserId,
    /// Whether this call recorded it (`false`: it was acknowledged before).
    pub recorded: bool,
    /// When the revocation was recorded.
    pub revoked_at: String,
}

/// The answer to `POST …/users/{user}/erase`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EraseAnswer {
    /// The user.
    #[schema(value_type = String)]
    pub user: UserId,
    /// Always `true`: the user's personal fields cannot be read any more.
    pub erased: bool,
    /// Whether this call erased them (`false`: they were erased before).
    pub changed: bool,
    /// The log's head after the erasure.
    pub seq: u64,
    /// Whether fields of the user were logged in the clear (before sealing): they read as
    /// erased now, but stay in the log.
    pub logged_in_the_clear: bool,
}
