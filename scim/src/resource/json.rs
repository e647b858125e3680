//! The JSON of resource views and bodies: serialising an iterator or an optional member
//! without building values first, a view as an object, and reading members of a canonical
//! object.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Map, Value};

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
