//! The wire form of resources: users and groups rendered as canonical SCIM JSON from the
//! engine's state, and canonical JSON (after `crate::normalise`) decoded into what the engine's
//! commands carry. Engine types never reach the wire directly.

pub mod group;
pub mod user;

use std::fmt;

use idpsync_engine::ids::{Seq, Timestamp};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Map, Value};

use crate::schema::ResourceType;

/// The absolute URL of the SCIM base (`https://idp-sync.example.com/scim/v2`), from which
/// `meta.location` and `$ref` values are made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseUrl(String);

impl BaseUrl {
    /// Wraps a base URL, without a trailing slash.
    pub fn new(url: &str) -> BaseUrl {
        BaseUrl(url.trim_end_matches('/').to_owned())
    }

    /// The base URL as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL of a resource: `<base><endpoint>/<id>`.
    pub fn location(&self, resource: &ResourceType, id: &str) -> String {
        format!("{}{}/{id}", self.0, resource.endpoint)
    }
}

/// Serialises as `<base><endpoint>/<id>`, without building the string first.
pub(crate) struct Location<'a, I: fmt::Display> {
    pub(crate) base: &'a BaseUrl,
    pub(crate) resource: &'static ResourceType,
    pub(crate) id: I,
}

impl<I: fmt::Display> Serialize for Location<'_, I> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("{}{}/{}", self.base.0, self.resource.endpoint, self.id))
    }
}

/// A resource's `meta`.
pub(crate) struct MetaView<'a, I: fmt::Display> {
    pub(crate) location: Location<'a, I>,
    pub(crate) created: Timestamp,
    pub(crate) last_modified: Timestamp,
    pub(crate) version: Seq,
}

impl<I: fmt::Display> Serialize for MetaView<'_, I> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(5))?;
        map.serialize_entry("resourceType", self.location.resource.name)?;
        map.serialize_entry("created", &self.created.to_rfc3339())?;
        map.serialize_entry("lastModified", &self.last_modified.to_rfc3339())?;
        map.serialize_entry("location", &self.location)?;
        map.serialize_entry("version", &Version(self.version))?;
        map.end()
    }
}

/// Serialises a version as its weak ETag, `W/"<seq>"`.
struct Version(Seq);

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("W/\"{}\"", self.0.0))
    }
}

/// Serialises an iterator's items as a JSON array.
pub(crate) struct Each<F>(pub(crate) F);

impl<F, I> Serialize for Each<F>
where
    F: Fn() -> I,
    I: Iterator,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq((self.0)())
    }
}

/// Adds `key: value` to a map being serialised when `value` is present.
pub(crate) fn entry<M: SerializeMap, T: Serialize>(map: &mut M, key: &str, value: &Option<T>) -> Result<(), M::Error> {
    match value {
        Some(value) => map.serialize_entry(key, value),
        None => Ok(()),
    }
}

/// A resource as a response carries it: serialised straight from the state, or (when the
/// client asked for `attributes` or `excludedAttributes`) as a projected object.
pub enum Rendered<'a> {
    /// A whole user.
    User(user::UserDocument<'a>),
    /// A whole group.
    Group(group::GroupDocument<'a>),
    /// A projected resource.
    Projected(Map<String, Value>),
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

/// Turns a resource view into a JSON object, for filters, projections and PATCH.
pub(crate) fn to_object(view: &impl Serialize) -> Map<String, Value> {
    // The views serialise maps with string keys and never fail, so this is always an object.
    match serde_json::to_value(view) {
        Ok(Value::Object(object)) => object,
        _ => Map::new(),
    }
}

/// A string member of a canonical object (`null` reads as absent).
pub(crate) fn text(map: &Map<String, Value>, key: &str) -> Option<String> {
    match map.get(key) {
        Some(Value::String(text)) => Some(text.clone()),
        _ => None,
    }
}

/// A boolean member of a canonical object.
pub(crate) fn flag(map: &Map<String, Value>, key: &str) -> Option<bool> {
    match map.get(key) {
        Some(Value::Bool(flag)) => Some(*flag),
        _ => None,
    }
}

/// The elements of an array member (objects only).
pub(crate) fn objects<'a>(map: &'a Map<String, Value>, key: &str) -> impl Iterator<Item = &'a Map<String, Value>> + 'a {
    map.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
}
