//! The wire form of resources: users and groups rendered as canonical SCIM JSON from the
//! engine's state, and canonical JSON (after `crate::normalise`) decoded into what the engine's
//! commands carry. Engine types never reach the wire directly.

pub mod group;
pub mod user;

use idpsync_engine::ids::{Seq, Timestamp};
use serde_json::{Map, Value, json};

use crate::schema::ResourceType;
use crate::wire::etag_of;

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

/// What every rendered resource carries besides its attributes.
pub(crate) struct Meta {
    pub(crate) id: String,
    pub(crate) created: Timestamp,
    pub(crate) last_modified: Timestamp,
    pub(crate) version: Seq,
}

/// Starts a resource document: `schemas`, `id`, `meta`.
pub(crate) fn document(resource: &ResourceType, schemas: Vec<&str>, meta: Meta, base: &BaseUrl) -> Map<String, Value> {
    let mut document = Map::new();
    document.insert("schemas".to_owned(), json!(schemas));
    document.insert(
        "meta".to_owned(),
        json!({
            "resourceType": resource.name,
            "created": meta.created.to_rfc3339(),
            "lastModified": meta.last_modified.to_rfc3339(),
            "location": base.location(resource, &meta.id),
            "version": etag_of(meta.version),
        }),
    );
    document.insert("id".to_owned(), Value::String(meta.id));
    document
}

/// Inserts `value` under `key` when it is present.
pub(crate) fn put_text(map: &mut Map<String, Value>, key: &str, value: &Option<String>) {
    if let Some(value) = value {
        map.insert(key.to_owned(), Value::String(value.clone()));
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
