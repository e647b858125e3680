//! Unit tests of the engine's pure parts, through the deterministic [`crate::testing::Harness`].

mod decide;
mod history;
mod incremental_scope;
mod listing_baseline;
mod projector;
mod reconcile;
mod reconcile_properties;
mod roles;
