//! Helpers shared by the engine's integration tests.

use idpsync_engine::ids::{GroupId, Member};
use idpsync_engine::model::{Owner, UserProfile};
use idpsync_engine::{Cause, Command, Origin, Outcome, Source, Tenant};

/// A SCIM-owned, active user with only a userName.
pub(crate) fn provision(user_name: &str) -> Command {
    Command::ProvisionUser {
        owner: Owner::Scim,
        external_id: None,
        active: true,
        profile: UserProfile {
            user_name: user_name.to_owned(),
            ..UserProfile::default()
        },
    }
}

/// An operator's command.
pub(crate) fn origin() -> Origin {
    Origin {
        source: Source::Operator,
        cause: Cause::Unspecified,
    }
}

/// Creates a SCIM-owned group of `members` as an operator; its id.
#[allow(dead_code)] // Not every test crate that includes these helpers creates groups.
pub(crate) async fn create_group(tenant: &Tenant, display_name: &str, members: Vec<Member>) -> GroupId {
    let command = Command::CreateGroup {
        owner: Owner::Scim,
        external_id: None,
        display_name: display_name.to_owned(),
        members,
    };
    match tenant.execute(command, origin()).await.unwrap().outcome {
        Outcome::GroupCreated(group) => group,
        other => panic!("the group was not created: {other:?}"),
    }
}
