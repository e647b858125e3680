//! Helpers shared by the engine's integration tests.

use idpsync_engine::model::{Owner, UserProfile};
use idpsync_engine::{Cause, Command, Origin, Source};

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
