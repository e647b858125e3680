//! PATCH (RFC 7644 §3.5.2): the request parsed and normalised (`op` in any case, `path` in
//! the one grammar), then applied all or nothing: to a user's rendered document (`document.rs`),
//! or to a group as engine commands on its edge set (`group.rs`), so that a group's member
//! list is never materialised.

mod document;
mod group;
mod operation;

#[cfg_attr(feature = "internals", visibility::make(pub))]
pub(crate) use document::apply_to_document;
#[cfg_attr(feature = "internals", visibility::make(pub))]
pub(crate) use group::plan_group_patch;
#[cfg(feature = "internals")]
pub use operation::Operation;
#[cfg_attr(feature = "internals", visibility::make(pub))]
pub(crate) use operation::parse_operations;
