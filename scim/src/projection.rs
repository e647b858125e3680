//! `attributes` and `excludedAttributes` (RFC 7644 §3.9): which attributes a response carries.
//! `id` and `schemas` are always returned. The projection is known before rendering, so an
//! excluded `members` is never computed.

use serde_json::{Map, Value};

use crate::error::Error;
use crate::grammar::parse_attr_path;
use crate::normalise::object_at;
use crate::schema::{Container, Resolved, ResourceType, Returned};

/// The attributes a response includes.
#[derive(Clone, Debug, Default)]
pub(crate) struct Projection {
    /// `attributes`: only these (plus those returned always).
    only: Option<Vec<Resolved>>,
    /// `excludedAttributes`: all but these.
    excluded: Vec<Resolved>,
}

/// The raw `attributes` / `excludedAttributes` parameters, comma-separated.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ProjectionParams<'a> {
    /// `attributes`.
    pub(crate) attributes: Option<&'a str>,
    /// `excludedAttributes`.
    pub(crate) excluded_attributes: Option<&'a str>,
}

impl ProjectionParams<'_> {
    /// Whether either parameter was given.
    pub(crate) fn is_given(&self) -> bool {
        self.attributes.is_some_and(|text| !text.trim().is_empty())
            || self.excluded_attributes.is_some_and(|text| !text.trim().is_empty())
    }
}

impl Projection {
    /// Parses the parameters for `resource`. A name that does not parse is a 400
    /// `invalidPath`; a name the resource does not have is ignored (a cross-type `/.search`
    /// names attributes of other types).
    pub(crate) fn new(resource: &ResourceType, params: ProjectionParams<'_>) -> Result<Projection, Error> {
        let only = match params.attributes {
            Some(text) if !text.trim().is_empty() => Some(resolve_list(resource, text)?),
            _ => None,
        };
        let excluded = match params.excluded_attributes {
            Some(text) => resolve_list(resource, text)?,
            None => Vec::new(),
        };
        Ok(Projection { only, excluded })
    }

    /// Whether the projection keeps every attribute (no `attributes`, no
    /// `excludedAttributes`).
    pub(crate) fn is_identity(&self) -> bool {
        self.only.is_none() && self.excluded.is_empty()
    }

    /// Whether the response may include any of top-level attribute `name` (so it is worth
    /// computing).
    pub(crate) fn includes(&self, name: &str) -> bool {
        if let Some(only) = &self.only {
            return only.iter().any(|resolved| resolved.attribute.name == name);
        }
        !self
            .excluded
            .iter()
            .any(|resolved| resolved.attribute.name == name && resolved.sub.is_none())
    }

    /// Whether `attributes` names `name.sub` (or `name` with a sub-attribute returned only on
    /// request, which must be named itself).
    pub(crate) fn asks_for(&self, name: &str, sub: &str) -> bool {
        self.only
            .iter()
            .flatten()
            .any(|resolved| resolved.attribute.name == name && resolved.sub.is_some_and(|found| found.name == sub))
    }

    /// Applies the projection to a rendered resource.
    pub(crate) fn apply(&self, document: Map<String, Value>) -> Map<String, Value> {
        let mut document = document;
        if let Some(only) = &self.only {
            let mut kept = Map::new();
            for key in ["schemas", "id"] {
                if let Some(value) = document.get(key) {
                    kept.insert(key.to_owned(), value.clone());
                }
            }
            for resolved in only {
                copy(&document, &mut kept, resolved);
            }
            document = kept;
        }
        for resolved in &self.excluded {
            if resolved.attribute.returned != Returned::Always {
                remove(&mut document, resolved);
            }
        }
        document
    }
}

fn resolve_list(resource: &ResourceType, text: &str) -> Result<Vec<Resolved>, Error> {
    let mut resolved = Vec::new();
    for name in text.split(',').map(str::trim).filter(|name| !name.is_empty()) {
        let path = parse_attr_path(name).map_err(|error| Error::invalid_path(format!("{name:?}: {error}")))?;
        match resource.resolve(&path) {
            Some(found) => resolved.push(found),
            None => tracing::debug!(
                attribute = name,
                "projection names an attribute the resource does not have"
            ),
        }
    }
    Ok(resolved)
}

fn container<'a>(document: &'a Map<String, Value>, resolved: &Resolved) -> Option<&'a Map<String, Value>> {
    match resolved.container {
        Container::Core => Some(document),
        Container::Extension(schema) => document.get(schema.id).and_then(Value::as_object),
    }
}

/// Copies what `resolved` designates from `from` into `into`.
fn copy(from: &Map<String, Value>, into: &mut Map<String, Value>, resolved: &Resolved) {
    let Some(value) = container(from, resolved).and_then(|source| source.get(resolved.attribute.name)) else {
        return;
    };
    let target = match resolved.container {
        Container::Core => into,
        Container::Extension(schema) => object_at(into, schema.id),
    };
    let name = resolved.attribute.name;
    let Some(sub) = resolved.sub else {
        target.insert(name.to_owned(), value.clone());
        return;
    };
    match value {
        Value::Object(object) => {
            if let Some(member) = object.get(sub.name) {
                object_at(target, name).insert(sub.name.to_owned(), member.clone());
            }
        }
        Value::Array(items) => {
            // Each value keeps only the named sub-attribute, merged with what an earlier
            // `emails.type` already kept of the same value.
            let existing = target.remove(name);
            let mut merged: Vec<Value> = match existing {
                Some(Value::Array(values)) if values.len() == items.len() => values,
                _ => vec![Value::Object(Map::new()); items.len()],
            };
            for (slot, item) in merged.iter_mut().zip(items) {
                if let (Value::Object(slot), Some(member)) = (slot, item.get(sub.name)) {
                    slot.insert(sub.name.to_owned(), member.clone());
                }
            }
            target.insert(name.to_owned(), Value::Array(merged));
        }
        _ => {}
    }
}

/// Removes what `resolved` designates from `document`.
fn remove(document: &mut Map<String, Value>, resolved: &Resolved) {
    let target = match resolved.container {
        Container::Core => Some(document),
        Container::Extension(schema) => document.get_mut(schema.id).and_then(Value::as_object_mut),
    };
    let Some(target) = target else { return };
    let name = resolved.attribute.name;
    let Some(sub) = resolved.sub else {
        target.remove(name);
        return;
    };
    match target.get_mut(name) {
        Some(Value::Object(object)) => {
            object.remove(sub.name);
        }
        Some(Value::Array(items)) => {
            for item in items {
                if let Value::Object(object) = item {
                    object.remove(sub.name);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::schema::{GROUP_TYPE, USER_TYPE};

    fn check(resource: &ResourceType, params: ProjectionParams<'_>, expected: Value) {
        let document = json!({
            "schemas": ["s"], "id": "1", "userName": "a", "displayName": "A", "meta": {"created": "x"},
            "emails": [{"value": "a@x", "type": "work"}, {"value": "b@x", "type": "home"}],
            "name": {"givenName": "G", "familyName": "F"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "D", "division": "V"}
        });
        let projection = Projection::new(resource, params).unwrap();
        let projected = projection.apply(document.as_object().unwrap().clone());
        assert_eq!(Value::Object(projected), expected);
    }

    #[test]
    fn attributes_keep_only_what_is_asked_and_what_is_always_returned() {
        check(
            &USER_TYPE,
            ProjectionParams {
                attributes: Some(
                    "userName, emails.value,NAME.givenName,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
                ),
                excluded_attributes: None,
            },
            json!({"schemas": ["s"], "id": "1", "userName": "a", "emails": [{"value": "a@x"}, {"value": "b@x"}],
                   "name": {"givenName": "G"},
                   "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "D"}}),
        );
    }

    #[test]
    fn excluded_attributes_drop_what_is_named_but_never_id() {
        check(
            &USER_TYPE,
            ProjectionParams {
                attributes: None,
                excluded_attributes: Some(
                    "emails,meta,id,name.familyName,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:division",
                ),
            },
            json!({"schemas": ["s"], "id": "1", "userName": "a", "displayName": "A", "name": {"givenName": "G"},
                   "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "D"}}),
        );
    }

    #[test]
    fn excluded_members_are_never_computed() {
        let projection = Projection::new(
            &GROUP_TYPE,
            ProjectionParams {
                attributes: None,
                excluded_attributes: Some("members"),
            },
        )
        .unwrap();
        assert!(!projection.includes("members"));
        assert!(Projection::default().includes("members"));
        let only_name = Projection::new(
            &GROUP_TYPE,
            ProjectionParams {
                attributes: Some("displayName"),
                excluded_attributes: None,
            },
        )
        .unwrap();
        assert!(!only_name.includes("members"));
    }

    #[test]
    fn malformed_names_are_invalid_paths() {
        let error = Projection::new(
            &USER_TYPE,
            ProjectionParams {
                attributes: Some(r#"emails[type eq "work"]"#),
                excluded_attributes: None,
            },
        )
        .unwrap_err();
        assert_eq!(error.scim_type(), Some(crate::error::ScimType::InvalidPath));
    }
}
