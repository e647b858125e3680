//! The schemas this service provider serves: core User (every attribute the engine stores),
//! the enterprise User extension, and Group (RFC 7643 §4, §8.7). One static definition feeds
//! the discovery documents, the resolution of attribute names (case-insensitive, optionally
//! URN-qualified), the coercion of client values and the typed comparisons of filters, so what
//! `/Schemas` advertises is exactly what the server does.
//!
//! What an attribute and a schema are is in `attribute.rs`, the definitions in
//! `definitions.rs`; this module puts them together as resource types and resolves names.

mod attribute;
mod definitions;

pub(crate) use attribute::{AttrType, Attribute, Mutability, Returned, Schema};
pub(crate) use definitions::{
    COMMON_ATTRIBUTES, ENTERPRISE_USER, ENTERPRISE_USER_URN, GROUP, GROUP_URN, USER, USER_URN,
};

use self::attribute::find;
use crate::error::Error;
use crate::grammar::AttrPath;

/// A kind of resource: its endpoint, its core schema and its extensions.
#[cfg_attr(feature = "internals", visibility::make(pub))]
#[derive(Debug)]
pub(crate) struct ResourceType {
    /// The name (`User`), also the id.
    pub(crate) name: &'static str,
    /// The endpoint relative to the base URL (`/Users`).
    pub(crate) endpoint: &'static str,
    /// What it is.
    pub(crate) description: &'static str,
    /// The core schema.
    pub(crate) schema: &'static Schema,
    /// The extension schemas (none is required).
    pub(crate) extensions: &'static [&'static Schema],
}

/// The User resource type.
#[cfg_attr(feature = "internals", visibility::make(pub))]
pub(crate) static USER_TYPE: ResourceType = ResourceType {
    name: "User",
    endpoint: "/Users",
    description: "User Account",
    schema: &USER,
    extensions: &[&ENTERPRISE_USER],
};

/// The Group resource type.
#[cfg_attr(feature = "internals", visibility::make(pub))]
pub(crate) static GROUP_TYPE: ResourceType = ResourceType {
    name: "Group",
    endpoint: "/Groups",
    description: "Group",
    schema: &GROUP,
    extensions: &[],
};

/// Every resource type, in the order of `/ResourceTypes`.
pub(crate) static RESOURCE_TYPES: [&ResourceType; 2] = [&USER_TYPE, &GROUP_TYPE];

/// Where a resolved attribute lives in a resource's JSON.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Container {
    /// At the top level (core schema and common attributes).
    Core,
    /// Inside the extension's object, under its URN.
    Extension(&'static Schema),
}

impl PartialEq for Container {
    fn eq(&self, other: &Container) -> bool {
        match (self, other) {
            (Container::Core, Container::Core) => true,
            (Container::Extension(left), Container::Extension(right)) => left.id == right.id,
            _ => false,
        }
    }
}

impl Eq for Container {}

/// An attribute path resolved against a resource type: canonical names and definitions.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Resolved {
    /// Where the attribute lives.
    pub(crate) container: Container,
    /// The attribute.
    pub(crate) attribute: &'static Attribute,
    /// The sub-attribute, if the path names one.
    pub(crate) sub: Option<&'static Attribute>,
}

impl Resolved {
    /// The definition of the value the path designates (the sub-attribute's, if any).
    pub(crate) fn leaf(&self) -> &'static Attribute {
        self.sub.unwrap_or(self.attribute)
    }

    /// The canonical path, URN-qualified for extension attributes.
    pub(crate) fn canonical(&self) -> String {
        let mut text = match self.container {
            Container::Core => self.attribute.name.to_owned(),
            Container::Extension(schema) => format!("{}:{}", schema.id, self.attribute.name),
        };
        if let Some(sub) = self.sub {
            text.push('.');
            text.push_str(sub.name);
        }
        text
    }
}

impl ResourceType {
    /// A schema of this type (core or extension) by URN, case-insensitively.
    pub(crate) fn schema_by_urn(&self, urn: &str) -> Option<&'static Schema> {
        std::iter::once(self.schema)
            .chain(self.extensions.iter().copied())
            .find(|schema| schema.id.eq_ignore_ascii_case(urn))
    }

    /// The extension with this URN.
    pub(crate) fn extension(&self, urn: &str) -> Option<&'static Schema> {
        self.extensions
            .iter()
            .copied()
            .find(|schema| schema.id.eq_ignore_ascii_case(urn))
    }

    /// A top-level attribute of the core schema, or a common attribute (`id`, `externalId`,
    /// `meta`), by name, case-insensitively.
    pub(crate) fn core_attribute(&self, name: &str) -> Option<&'static Attribute> {
        find(self.schema.attributes, name).or_else(|| find(&COMMON_ATTRIBUTES, name))
    }

    /// Resolves `path`; `None` when the resource type has no such attribute.
    pub(crate) fn resolve(&self, path: &AttrPath) -> Option<Resolved> {
        let (container, attribute) = match &path.urn {
            None => (Container::Core, self.core_attribute(&path.name)?),
            Some(urn) => match self.schema_by_urn(urn) {
                Some(schema) if std::ptr::eq(schema, self.schema) => {
                    (Container::Core, self.core_attribute(&path.name)?)
                }
                Some(schema) => (Container::Extension(schema), find(schema.attributes, &path.name)?),
                None => return None,
            },
        };
        let sub = match &path.sub {
            Some(name) => Some(attribute.sub_attribute(name)?),
            None => None,
        };
        Some(Resolved {
            container,
            attribute,
            sub,
        })
    }

    /// Resolves `path` or answers 400 with `scim_type`.
    pub(crate) fn require(&self, path: &AttrPath, error: fn(String) -> Error) -> Result<Resolved, Error> {
        self.resolve(path)
            .ok_or_else(|| error(format!("{} has no attribute {path}", self.name)))
    }

    /// Whether `path` names a whole extension (`urn:…:enterprise:2.0:User`), which the
    /// grammar splits at its last colon.
    pub(crate) fn whole_extension(&self, path: &AttrPath) -> Option<&'static Schema> {
        if path.sub.is_some() {
            return None;
        }
        let urn = format!("{}:{}", path.urn.as_deref()?, path.name);
        self.extension(&urn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grammar::parse_attr_path;

    fn resolve(resource: &ResourceType, path: &str) -> Option<String> {
        resource
            .resolve(&parse_attr_path(path).unwrap())
            .map(|resolved| resolved.canonical())
    }

    #[test]
    fn names_resolve_case_insensitively_to_canonical_names() {
        assert_eq!(resolve(&USER_TYPE, "USERNAME").as_deref(), Some("userName"));
        assert_eq!(
            resolve(&USER_TYPE, "name.FamilyName").as_deref(),
            Some("name.familyName")
        );
        assert_eq!(
            resolve(&USER_TYPE, "meta.lastmodified").as_deref(),
            Some("meta.lastModified")
        );
        assert_eq!(resolve(&USER_TYPE, "emails.Value").as_deref(), Some("emails.value"));
        assert_eq!(resolve(&GROUP_TYPE, "members.$ref").as_deref(), Some("members.$ref"));
        assert_eq!(resolve(&USER_TYPE, "nosuch"), None);
        assert_eq!(resolve(&USER_TYPE, "name.nosuch"), None);
    }

    #[test]
    fn urn_qualified_names_resolve_to_their_schema() {
        assert_eq!(
            resolve(&USER_TYPE, "urn:ietf:params:scim:schemas:core:2.0:User:userName").as_deref(),
            Some("userName")
        );
        assert_eq!(
            resolve(
                &USER_TYPE,
                "URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:manager.value"
            )
            .as_deref(),
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value")
        );
        assert_eq!(
            resolve(&GROUP_TYPE, "urn:ietf:params:scim:schemas:core:2.0:User:userName"),
            None
        );
        let whole = parse_attr_path(ENTERPRISE_USER_URN).unwrap();
        assert!(USER_TYPE.whole_extension(&whole).is_some());
    }

    #[test]
    fn every_definition_is_consistent() {
        for resource in RESOURCE_TYPES {
            for schema in std::iter::once(resource.schema).chain(resource.extensions.iter().copied()) {
                for attribute in schema.attributes {
                    assert_eq!(
                        attribute.is_complex(),
                        !attribute.sub_attributes.is_empty(),
                        "{}",
                        attribute.name
                    );
                    for sub in attribute.sub_attributes {
                        assert!(sub.sub_attributes.is_empty(), "{}.{} nests", attribute.name, sub.name);
                    }
                }
            }
        }
    }
}
