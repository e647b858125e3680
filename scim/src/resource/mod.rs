//! The wire form of resources: users and groups rendered as canonical SCIM JSON from the
//! engine's state, and canonical JSON (after `crate::normalise`) decoded into what the engine's
//! commands carry. Engine types never reach the wire directly.
//!
//! `meta.rs` and `json.rs` hold what both kinds are made of; `user.rs` and `group.rs` each
//! kind; this module a resource as a response carries it ([`Rendered`]).

pub(crate) mod group;
mod json;
mod meta;
pub(crate) mod user;

use idpsync_engine::State;
use idpsync_engine::model::{Group, User};
use serde::Serialize;
use serde::ser::Serializer;
use serde_json::{Map, Value};

pub(crate) use json::to_object;
#[cfg_attr(feature = "internals", visibility::make(pub))]
pub(crate) use meta::BaseUrl;

use crate::projection::Projection;
use group::{GroupDocument, Members};
use user::UserDocument;

/// A resource as a response carries it: serialised straight from the state, or (when the
/// client asked for `attributes` or `excludedAttributes`) as a projected object.
pub(crate) enum Rendered<'a> {
    /// A whole user.
    User(UserDocument<'a>),
    /// A whole group.
    Group(GroupDocument<'a>),
    /// A projected resource.
    Projected(Map<String, Value>),
}

impl<'a> Rendered<'a> {
    /// `user` as a response carries it under `projection`.
    pub(crate) fn user(state: &'a State, user: &'a User, base: &'a BaseUrl, projection: &Projection) -> Rendered<'a> {
        let document = UserDocument { state, user, base };
        if projection.is_identity() {
            return Rendered::User(document);
        }
        Rendered::Projected(projection.apply(to_object(&document)))
    }

    /// `group` as a response carries it under `projection`: its member list is written only
    /// when the projection keeps it.
    pub(crate) fn group(
        state: &'a State,
        group: &'a Group,
        base: &'a BaseUrl,
        projection: &Projection,
    ) -> Rendered<'a> {
        let document = GroupDocument {
            state,
            group,
            base,
            members: Members::wanted(projection),
        };
        if projection.is_identity() {
            return Rendered::Group(document);
        }
        Rendered::Projected(projection.apply(to_object(&document)))
    }
}

impl Serialize for Rendered<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Rendered::User(document) => document.serialize(serializer),
            Rendered::Group(document) => document.serialize(serializer),
            Rendered::Projected(object) => object.serialize(serializer),
        }
    }
}
