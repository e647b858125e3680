//! The JSON shapes of roles: every user's management role now or at a past moment.

use idpsync_engine::RoleAssignment;
use idpsync_engine::State;
use idpsync_engine::ids::UserId;
use serde::Serialize;
use utoipa::ToSchema;

use super::{GroupRef, UserRef};

/// A user's role and where it comes from.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleRow {
    /// The user.
    pub user: UserRef,
    /// Its role.
    #[schema(example = "Admin")]
    pub role: String,
    /// The role binding that gives it (`null` for the built-in default role).
    pub binding: Option<String>,
    /// The binding's group the user is in (`null` for the default role).
    pub group: Option<GroupRef>,
}

impl RoleRow {
    /// `user`'s role `held`; names come from `state`.
    pub fn of(state: &State, user: UserId, held: RoleAssignment) -> RoleRow {
        RoleRow {
            user: UserRef {
                id: user,
                user_name: state.user(user).map(|found| found.profile.user_name.clone()),
            },
            binding: held.binding.map(|binding| binding.as_str().to_owned()),
            group: held.via.map(|via| GroupRef::of(state, via)),
            role: held.role,
        }
    }
}

/// `GET …/roles`: every user's role (or only the admins') as of a log position.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleList {
    /// The log position the answer is as of.
    pub seq: u64,
    /// When that record was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<String>,
    /// Whether the tenant has any role binding; without one no user has a role.
    pub enabled: bool,
    /// The role of users no role binding's group holds.
    #[schema(example = "User")]
    pub default_role: String,
    /// The users and their roles.
    pub items: Vec<RoleRow>,
}
