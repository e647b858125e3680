//! [`Rejection`]: why a command was refused, the engine's domain answer to a command it will
//! not carry out. Kept apart from I/O failures ([`crate::error`]) and below everything that
//! refuses: `decide`, the value checks of [`crate::validate`], reconcile's conflicts.

use serde::Serialize;

use crate::ids::{GroupId, IntegrationName, Member, Seq, SyncRunId, Timestamp, UserId};
use crate::model::ResourceKind;

/// Why a command was refused. Nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[non_exhaustive]
pub enum Rejection {
    /// Another user has this userName (compared case-insensitively).
    #[error("userName {user_name:?} is already taken by user {existing}")]
    UserNameTaken {
        /// The name asked for.
        user_name: String,
        /// The user that has it.
        existing: UserId,
    },
    /// No such user.
    #[error("user {0} not found")]
    UserNotFound(UserId),
    /// The user's personal fields were erased; they cannot be set again.
    #[error("user {0} was erased; its personal fields cannot be changed")]
    UserErased(UserId),
    /// No such group.
    #[error("group {0} not found")]
    GroupNotFound(GroupId),
    /// A member that does not exist.
    #[error("member {0:?} not found")]
    MemberNotFound(Member),
    /// A group cannot contain itself.
    #[error("group {0} cannot be a member of itself")]
    SelfMembership(GroupId),
    /// The resource is not at the expected version.
    #[error("version mismatch: expected {expected}, current {actual}")]
    VersionMismatch {
        /// What the caller expected.
        expected: Seq,
        /// What it is.
        actual: Seq,
    },
    /// A field has a value the engine does not accept.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// Which field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A binding whose shape does not fit its kind (policies take sources and destinations).
    #[error("a {kind} binding needs {expected}")]
    BindingShape {
        /// The resource kind.
        kind: ResourceKind,
        /// The shape it needs.
        expected: &'static str,
    },
    /// No binding for this resource.
    #[error("no binding for {0}")]
    BindingNotFound(crate::model::ResourceRef),
    /// The held sync an operator confirmed is no longer the integration's hold: a newer
    /// listing replaced it.
    #[error(
        "the held sync {run} of integration {integration} was superseded by a newer listing, run {held}; review that one"
    )]
    HoldSuperseded {
        /// The integration.
        integration: IntegrationName,
        /// The run the operator confirmed.
        run: SyncRunId,
        /// The run held now.
        held: SyncRunId,
    },
    /// The held sync is too old to be confirmed: what its IdP listed then is stale.
    #[error(
        "the held sync of integration {integration} was held at {} and has expired; the next sync lists the IdP again",
        held_since.to_rfc3339()
    )]
    HoldExpired {
        /// The integration.
        integration: IntegrationName,
        /// When it was held.
        held_since: Timestamp,
    },
    /// The externalId of a user or group an integration owns is the integration's key to it:
    /// only that integration's syncs change it.
    #[error(
        "externalId is set by integration {integration}, which owns this resource; it cannot be changed from {external_id:?}"
    )]
    OwnedExternalId {
        /// The integration that owns the resource.
        integration: IntegrationName,
        /// The externalId it keeps.
        external_id: Option<String>,
    },
    /// No access change has this stream id.
    #[error("no access change {seq}.{index} in the log")]
    ChangeNotFound {
        /// The record.
        seq: Seq,
        /// The change's place among the record's access changes.
        index: u32,
    },
    /// A SCIM request would leave the tenant without an Owner (see [`crate::roles`]): the last
    /// Owner's role is changed by the management API or an integration's confirmed sync, never
    /// by a provisioning client.
    #[error(
        "this request would remove the tenant's last {owner}: user {user} would no longer hold the role; make another user {owner} first",
        owner = crate::roles::OWNER
    )]
    LastOwner {
        /// A user who holds the role now and would lose it.
        user: UserId,
    },
    /// An acknowledgement named an access change that granted access.
    #[error("access change {seq}.{index} is a grant, not a revocation")]
    NotARevocation {
        /// The record.
        seq: Seq,
        /// The change's place among the record's access changes.
        index: u32,
    },
}

impl Rejection {
    /// A field with a value the engine does not accept.
    pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> Rejection {
        Rejection::Invalid {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
}
