//! The trail of operators' actions that the identity log keeps no event of its own for: a
//! held sync confirmed or rejected, a sync run started on request, a token created or revoked.
//! Each is one structured log line at `info` under the target [`TARGET`], naming the tenant,
//! the door (the management API or the admin console), the action, its subject and the admin
//! token that asked: its id, and its name when the door knows it; never its secret.
//!
//! What such an action changes in the identities (the removals of a confirmed hold) is in the
//! log as ever, attributed to the integration's run; this trail says who let it happen.

use idpsync_engine::ids::TokenId;
use idpsync_storage::TenantId;

/// The `tracing` target of every action line, to filter the trail out of the service's log.
pub const TARGET: &str = "idpsync::actions";

/// Where an operator acted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Door {
    /// The management API (`/api/v1`).
    Api,
    /// The admin console (`/admin`).
    Console,
}

impl Door {
    /// `api` or `console`.
    pub fn as_str(self) -> &'static str {
        match self {
            Door::Api => "api",
            Door::Console => "console",
        }
    }
}

/// Who acted: the admin token of a request or of a console session.
#[derive(Clone, Copy, Debug)]
pub struct Actor<'a> {
    /// The tenant the token is for.
    pub tenant: &'a TenantId,
    /// The token's id.
    pub token: TokenId,
    /// The token's name, when the door knows it.
    pub token_name: Option<&'a str>,
    /// Where it acted.
    pub door: Door,
}

/// What was done: `hold.confirm`, `hold.reject`, `sync.start`, `token.create`, `token.revoke`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// A held sync was confirmed and applied.
    ConfirmHold,
    /// A held sync was rejected: nothing of it was applied.
    RejectHold,
    /// A sync run was started on request.
    StartSync,
    /// A token was created.
    CreateToken,
    /// A token was revoked.
    RevokeToken,
}

impl Action {
    /// The action's name in the trail.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::ConfirmHold => "hold.confirm",
            Action::RejectHold => "hold.reject",
            Action::StartSync => "sync.start",
            Action::CreateToken => "token.create",
            Action::RevokeToken => "token.revoke",
        }
    }
}

/// Writes the line of `action` on `subject` (an integration, a token id) by `actor`.
pub fn record(actor: &Actor<'_>, action: Action, subject: &str) {
    tracing::info!(
        target: TARGET,
        tenant = %actor.tenant,
        door = actor.door.as_str(),
        token = %actor.token,
        token_name = actor.token_name.unwrap_or(""),
        action = action.as_str(),
        subject,
        "operator action"
    );
}
