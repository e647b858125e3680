//! Commands: what a door asks the engine to do, in the imperative. [`crate::decide()`] turns each
//! into events or a rejection.

use crate::event::{Cause, Source};
use crate::ids::{GroupId, IntegrationName, Member, Seq, SyncRunId, UserId};
use crate::model::{BindingGroups, BindingRole, Owner, ResourceRef, UserProfile};
use crate::reconcile::{DirectorySnapshot, Guard};

/// Where a command comes from; copied into every event it causes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// Which door.
    pub source: Source,
    /// Which request or object.
    pub cause: Cause,
}

impl Origin {
    /// The origin of a sync run's events.
    pub fn integration(integration: IntegrationName, run: SyncRunId) -> Origin {
        Origin {
            source: Source::Integration { integration, run },
            cause: Cause::Unspecified,
        }
    }
}

/// A request to change a tenant's identities.
#[derive(Clone, Debug)]
pub enum Command {
    /// Create a user.
    ProvisionUser {
        /// Who will manage it.
        owner: Owner,
        /// The client's id for it.
        external_id: Option<String>,
        /// Whether it starts active.
        active: bool,
        /// Its personal fields.
        profile: UserProfile,
    },
    /// Replace a user's attributes (SCIM PUT, or a PATCH already applied to a copy).
    ReplaceUser {
        /// The user.
        user: UserId,
        /// Fails with [`crate::Rejection::VersionMismatch`] unless the user is at this version.
        expected_version: Option<Seq>,
        /// The client's id for it.
        external_id: Option<String>,
        /// The new `active`; `None` leaves it as it is (a PUT that omits `active` never
        /// deactivates).
        active: Option<bool>,
        /// The new personal fields.
        profile: UserProfile,
    },
    /// Activate or deactivate a user.
    SetUserActive {
        /// The user.
        user: UserId,
        /// The wanted state.
        active: bool,
    },
    /// Erase a user's personal fields: its key is destroyed, and it reads as erased from then on,
    /// in the present and in the past. Its memberships, state and history stay.
    EraseUser {
        /// The user.
        user: UserId,
    },
    /// Delete a user and its memberships.
    DeleteUser {
        /// The user.
        user: UserId,
        /// Fails unless the user is at this version.
        expected_version: Option<Seq>,
    },
    /// Create a group, with initial members.
    CreateGroup {
        /// Who will manage it.
        owner: Owner,
        /// The client's id for it.
        external_id: Option<String>,
        /// Its name.
        display_name: String,
        /// Its first members.
        members: Vec<Member>,
    },
    /// Change a group's name and external id.
    UpdateGroup {
        /// The group.
        group: GroupId,
        /// Fails unless the group is at this version.
        expected_version: Option<Seq>,
        /// The new name.
        display_name: String,
        /// The new external id.
        external_id: Option<String>,
    },
    /// Delete a group and its memberships.
    DeleteGroup {
        /// The group.
        group: GroupId,
        /// Fails unless the group is at this version.
        expected_version: Option<Seq>,
    },
    /// Add members; members already in the group are left alone.
    AddMembers {
        /// The group.
        group: GroupId,
        /// The members to add.
        members: Vec<Member>,
    },
    /// Remove members; members not in the group are left alone.
    RemoveMembers {
        /// The group.
        group: GroupId,
        /// The members to remove.
        members: Vec<Member>,
    },
    /// Make the group's direct members exactly these.
    ReplaceMembers {
        /// The group.
        group: GroupId,
        /// The members it should have.
        members: Vec<Member>,
    },
    /// Record which groups a management-server resource references.
    SetBinding {
        /// The resource.
        resource: ResourceRef,
        /// Its groups.
        groups: BindingGroups,
    },
    /// Forget a resource's groups.
    RemoveBinding {
        /// The resource.
        resource: ResourceRef,
    },
    /// Bring what an integration owns in line with a snapshot of its IdP (a sync run's listing
    /// goes through [`crate::Tenant::reconcile`], which makes the snapshot in the writer).
    Reconcile {
        /// The IdP's view.
        snapshot: Box<DirectorySnapshot>,
        /// Whether the mass-deactivation guard applies.
        guard: Guard,
    },
    /// Record that the consumer of the change stream applied a revocation (see
    /// [`crate::Tenant::acknowledge`], which finds the change the consumer names).
    AcknowledgeRevocation {
        /// Whose access was revoked.
        user: UserId,
        /// The record whose projection revoked it.
        seq: Seq,
        /// Its place among that record's access changes.
        index: u32,
        /// The resource.
        resource: ResourceRef,
        /// The role.
        role: BindingRole,
        /// The bound group it came through.
        via: GroupId,
    },
    /// Several commands, applied all or none, each seeing the effects of those before it.
    Atomic(Vec<Command>),
}
