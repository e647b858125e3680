//! The identity engine of openZro IdP-Sync: the identity model, its events, and everything
//! derived from the log.
//!
//! Every write, whatever door it came through, is a [`Command`] that goes through one path in
//! the tenant's writer: [`decide()`] (validate, choose events) → append (durable, group commit) →
//! fold ([`State::apply`]) → project ([`projector`]: access granted and revoked) → publish.
//!
//! # Layout
//! - [`ids`], [`model`]: ids, users, groups, owners, bindings;
//! - [`event`]: the events, their envelope and encoding;
//! - [`seal`]: personal fields sealed under per-user keys ([`Sealed`]: a sealed profile and
//!   externalId; [`ExternalIdHash`]: what an erased user keeps of its externalId);
//! - [`state`]: the folded state and the fold; `history`: the index of the past ([`History`]);
//! - [`command`], [`decide`](mod@decide): commands and the events they decide; `rejection`:
//!   why a command is refused ([`Rejection`]); `validate` and `limits`: the bounds on values;
//! - [`absence`]: what complete listings no longer contain, pending until witnessed enough;
//! - [`reconcile`]: an integration's sync: the listing its driver read, scoped by its rules,
//!   planned against the state, and the mass-deactivation guard;
//! - [`access`], [`projector`]: effective membership, grants, access changes;
//! - [`tenant`]: the per-tenant writer and what it publishes (state, history, feed, snapshots),
//!   sync runs and the guard's holds, the change stream, point-in-time reads;
//! - `engine`: all tenants of a store ([`Engine`]); `error`: [`EngineError`], [`SubmitError`];
//! - [`reader`]: reading stretches of the log back as events; [`replay`], [`verify`]: folding
//!   and checking what is read;
//! - [`audit`]: the offboarding audit of a user and the leavers' report.
//!
//! # Architecture invariants
//! - The fold is pure and total: no clock, no randomness, no I/O. Ids and times are chosen
//!   before an event exists (ids by `decide`'s context, times by the writer).
//! - Every write goes through `decide`; a rejected command writes nothing.
//! - The projector is a function of the state before and after each event.
//! - Lower modules never import the modules that use them: [`reconcile`], `validate` and
//!   `rejection` know nothing of commands or `decide`; [`decide`](mod@decide) uses them.
//!
//! # Example
//! ```
//! use std::sync::Arc;
//! use idpsync_engine::{Command, Engine, Origin, Outcome, Source, Cause, TenantSettings};
//! use idpsync_engine::model::{Owner, UserProfile};
//! use idpsync_storage::{MemoryStore, TenantId};
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let engine = Engine::open(Arc::new(MemoryStore::new()), TenantSettings::default()).await.unwrap();
//! let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
//! let origin = Origin { source: Source::Operator, cause: Cause::Unspecified };
//! let profile = UserProfile { user_name: "alice@example.com".into(), ..Default::default() };
//! let command = Command::ProvisionUser { owner: Owner::Operator, external_id: None, active: true, profile };
//! let committed = tenant.execute(command, origin).await.unwrap();
//! let Outcome::UserProvisioned(alice) = committed.outcome else { unreachable!() };
//! assert_eq!(tenant.state().user_by_name("ALICE@example.com").unwrap().id, alice);
//! engine.shutdown().await;
//! # });
//! ```

pub mod absence;
pub mod access;
pub mod audit;
pub mod command;
pub mod decide;
mod engine;
mod error;
pub mod event;
mod follow;
mod history;
pub mod ids;
pub(crate) mod limits;
pub mod model;
mod profile_encoding;
pub mod projector;
pub mod reader;
pub mod reconcile;
mod rejection;
pub mod replay;
pub mod roles;
pub mod seal;
mod sealed;
mod speculate;
pub mod state;
pub mod tenant;
pub(crate) mod validate;
pub mod verify;

pub use command::{Command, Origin};
pub use decide::{DecideContext, Decision, Outcome, decide};
pub use engine::Engine;
pub use error::{EngineError, SubmitError};
pub use event::{Cause, Envelope, Event, LoggedEvent, Source};
pub use follow::Follower;
pub use history::History;
pub use projector::{AccessChange, AccessDirection, Projection};
pub use rejection::Rejection;
pub use roles::{RoleAssignment, RoleChange};
pub use sealed::{ExternalIdHash, Sealed};
pub use state::State;
pub use tenant::{
    AcknowledgeError, Acknowledgement, Applied, ChangeId, ChangeStream, Committed, HeldReconcile, HoldPreview,
    LosingUser, Overdue, Tenant, TenantSettings,
};
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
