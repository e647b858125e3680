//! Where a resource lives and its `meta`: the SCIM base URL, the `meta.location` made from it,
//! and `meta.version` as a weak ETag.

use std::fmt;

use idpsync_engine::ids::{Seq, Timestamp};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use crate::schema::ResourceType;

/// The absolute URL of the SCIM base (`https://idp-sync.example.com/scim/v2`), from which
/// `meta.location` and `$ref` values are made.
#[cfg_attr(feature = "internals", visibility::make(pub))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BaseUrl(String);

impl BaseUrl {
    /// Wraps a base URL, without a trailing slash.
    pub(crate) fn new(url: &str) -> BaseUrl {
        BaseUrl(url.trim_end_matches('/').to_owned())
    }

    /// The base URL as text.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL of a resource: `<base><endpoint>/<id>`.
    pub(crate) fn location(&self, resource: &ResourceType, id: &str) -> String {
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
