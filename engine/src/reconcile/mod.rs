//! Reconcile: what an integration's driver read becomes the fewest events that make what the
//! integration owns match its IdP. The engine's one home for it; drivers only fetch and
//! normalise.
//!
//! A sync goes through four steps, one module each, lower ones first:
//! - [`Listing`] (`listing`): what a driver read, filled object by object;
//! - scope (`scope`, `filter`): the integration's [`ScopeRules`] (the [`GroupFilter`] and
//!   `only_group_members`) applied to the listing, and an incremental listing compared with the
//!   state (`reach`: who enters and leaves scope under `only_group_members`), give the
//!   [`DirectorySnapshot`] (`snapshot`);
//! - plan (`plan`): the snapshot against the state gives the events and the
//!   [`ReconcileReport`] (`report`), removals first, following the tenant's
//!   [`ReconcilePolicy`] (`policy`);
//! - guard (`guard`): a plan that, with the integration's recent runs, takes access from too
//!   many users is held instead ([`Guard`], [`GuardCount`]).
//!
//! The ways in are [`Tenant::plan`](crate::Tenant::plan) (a dry run: nothing is written) and
//! [`Tenant::reconcile`](crate::Tenant::reconcile) (through the writer, which turns the
//! listing into a snapshot against its own state); a snapshot already made, such as a held one
//! an operator confirms, is reconciled as [`Command::Reconcile`](crate::Command::Reconcile).
//! This module uses neither commands nor `decide`: they use it.

mod filter;
mod guard;
mod idp_times;
mod listing;
mod plan;
mod policy;
mod reach;
mod report;
mod scope;
mod snapshot;
mod unique_list;

pub use filter::{GroupFilter, PatternError};
pub use guard::{Guard, GuardCount, GuardMemory, RecentRemovals};
pub(crate) use guard::{Removals, held_event};
pub use idp_times::IdpTimes;
pub use listing::{Baseline, Listing, ListingScope};
pub(crate) use plan::{Plan, plan};
pub use policy::{MissingUsers, ReconcilePolicy};
pub use report::{AbsentLine, ChangeLine, ReconcileReport};
pub use scope::{ScopeRules, SyncInput};
pub use snapshot::{
    DirectorySnapshot, ExternalMember, ListedUser, Membership, SnapshotGroup, SnapshotScope, SnapshotUser,
};
