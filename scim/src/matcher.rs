//! Matching resources against a filter: a parsed filter compiled against a resource type into
//! a [`Matcher`], which decides whether a rendered resource (or one value of a multi-valued
//! attribute) matches.
//!
//! Compiling resolves every name to its schema definition (so `UserName`, `emails.Value` and
//! URN-qualified names work), turns each value into the attribute's type (strings, booleans,
//! date-times; no attribute served is a number), and refuses what cannot be compared (`active gt true`, `name eq "x"`)
//! with 400 `invalidFilter`. Evaluation follows RFC 7644 §3.4.2.2: a multi-valued attribute
//! matches when any value does; a complex multi-valued attribute without a sub-attribute is
//! compared through its `value`; strings compare case-insensitively unless `caseExact`.

use std::cmp::Ordering;

use idpsync_engine::ids::Timestamp;
use serde_json::{Map, Value};

use crate::error::Error;
use crate::grammar::{AttrPath, CompareOp, Filter, Literal};
use crate::schema::{AttrType, Attribute, Container, Resolved, ResourceType};
use idpsync_engine::state::fold_case;

/// A filter compiled against a resource type, ready to match resources.
#[cfg_attr(feature = "internals", visibility::make(pub))]
#[derive(Clone, Debug)]
pub(crate) struct Matcher {
    root: Node,
}

/// Where a leaf reads its values.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Target {
    /// An attribute (or sub-attribute) of the resource.
    Document(Resolved),
    /// A sub-attribute of one value, inside a value path.
    Element(&'static Attribute),
}

/// A value to compare with, already in the attribute's type.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Operand {
    /// Text (lower-cased when the attribute is not `caseExact`).
    Text(String),
    /// A boolean.
    Bool(bool),
    /// A point in time.
    Time(Timestamp),
    /// `null`: `eq null` means absent, `ne null` present.
    Null,
}

/// A node of a compiled filter.
#[derive(Clone, Debug)]
pub(crate) enum Node {
    /// `target op operand`.
    Compare {
        /// What is compared.
        target: Target,
        /// How.
        op: CompareOp,
        /// With what.
        operand: Operand,
    },
    /// `target pr`.
    Present(Target),
    /// All hold.
    And(Vec<Node>),
    /// Some holds.
    Or(Vec<Node>),
    /// Does not hold.
    Not(Box<Node>),
    /// Some value of the multi-valued attribute matches the inner filter.
    ValuePath {
        /// The multi-valued attribute.
        at: Resolved,
        /// The condition on each value, whose targets are [`Target::Element`].
        filter: Box<Node>,
    },
}

impl Matcher {
    /// Compiles `filter` for `resource`.
    pub(crate) fn new(resource: &ResourceType, filter: &Filter) -> Result<Matcher, Error> {
        Ok(Matcher {
            root: compile(resource, filter, None)?,
        })
    }

    /// Compiles a value filter (`members[value eq "x"]`'s inner part) for the values of
    /// `attribute`, a multi-valued attribute of `resource`.
    pub(crate) fn for_values(
        resource: &ResourceType,
        attribute: &'static Attribute,
        filter: &Filter,
    ) -> Result<Matcher, Error> {
        Ok(Matcher {
            root: compile(resource, filter, Some(attribute))?,
        })
    }

    /// The root node, for query planning.
    pub(crate) fn root(&self) -> &Node {
        &self.root
    }

    /// Whether a resource matches.
    pub(crate) fn matches(&self, document: &Map<String, Value>) -> bool {
        evaluate(&self.root, document)
    }

    /// Whether one value of a multi-valued attribute matches (for `for_values` filters).
    pub(crate) fn matches_value(&self, element: &Map<String, Value>) -> bool {
        evaluate(&self.root, element)
    }

    /// Whether any leaf reads `attribute` (by canonical top-level name).
    pub(crate) fn reads(&self, attribute: &str) -> bool {
        reads(&self.root, attribute)
    }
}

fn reads(node: &Node, attribute: &str) -> bool {
    match node {
        Node::Compare {
            target: Target::Document(resolved),
            ..
        }
        | Node::Present(Target::Document(resolved)) => resolved.attribute.name == attribute,
        Node::Compare { .. } | Node::Present(_) => false,
        Node::And(parts) | Node::Or(parts) => parts.iter().any(|part| reads(part, attribute)),
        Node::Not(inner) => reads(inner, attribute),
        Node::ValuePath { at, .. } => at.attribute.name == attribute,
    }
}

fn compile(resource: &ResourceType, filter: &Filter, values_of: Option<&'static Attribute>) -> Result<Node, Error> {
    let compile_all = |parts: &[Filter]| -> Result<Vec<Node>, Error> {
        parts.iter().map(|part| compile(resource, part, values_of)).collect()
    };
    Ok(match filter {
        Filter::And(parts) => Node::And(compile_all(parts)?),
        Filter::Or(parts) => Node::Or(compile_all(parts)?),
        Filter::Not(inner) => Node::Not(Box::new(compile(resource, inner, values_of)?)),
        Filter::Present(path) => Node::Present(target(resource, path, values_of)?),
        Filter::Compare { path, op, value } => {
            let target = target(resource, path, values_of)?;
            let leaf = match target {
                Target::Document(resolved) => resolved.leaf(),
                Target::Element(sub) => sub,
            };
            Node::Compare {
                target,
                op: *op,
                operand: operand(leaf, *op, value, path)?,
            }
        }
        Filter::ValuePath { path, filter } => {
            let at = resource
                .resolve(path)
                .ok_or_else(|| Error::invalid_filter(format!("{} has no attribute {path}", resource.name)))?;
            if !at.attribute.is_complex() || !at.attribute.multi_valued {
                return Err(Error::invalid_filter(format!(
                    "{path}[…] needs a multi-valued complex attribute"
                )));
            }
            Node::ValuePath {
                at,
                filter: Box::new(compile(resource, filter, Some(at.attribute))?),
            }
        }
    })
}

fn target(resource: &ResourceType, path: &AttrPath, values_of: Option<&'static Attribute>) -> Result<Target, Error> {
    if let Some(attribute) = values_of {
        return attribute
            .sub_attribute(&path.name)
            .map(Target::Element)
            .ok_or_else(|| Error::invalid_filter(format!("{} has no sub-attribute {}", attribute.name, path.name)));
    }
    let mut resolved = resource
        .resolve(path)
        .ok_or_else(|| Error::invalid_filter(format!("{} has no attribute {path}", resource.name)))?;
    if resolved.sub.is_none() && resolved.attribute.is_complex() {
        match resolved.attribute.sub_attribute("value") {
            Some(value) if resolved.attribute.multi_valued => resolved.sub = Some(value),
            _ => {
                return Err(Error::invalid_filter(format!(
                    "{path} is complex: compare one of its sub-attributes"
                )));
            }
        }
    }
    Ok(Target::Document(resolved))
}

fn operand(attribute: &Attribute, op: CompareOp, literal: &Literal, path: &AttrPath) -> Result<Operand, Error> {
    let refuse = |why: &str| Error::invalid_filter(format!("{path} {} {literal}: {why}", op.as_str()));
    if *literal == Literal::Null {
        return match op {
            CompareOp::Eq | CompareOp::Ne => Ok(Operand::Null),
            _ => Err(refuse("null can only be compared with eq or ne")),
        };
    }
    let text = match literal {
        Literal::String(text) | Literal::Number(text) => text.clone(),
        Literal::Bool(flag) => flag.to_string(),
        Literal::Null => String::new(),
    };
    match attribute.kind {
        AttrType::Boolean => {
            if !matches!(op, CompareOp::Eq | CompareOp::Ne) {
                return Err(refuse("booleans compare with eq or ne only"));
            }
            crate::normalise::parse_bool(&text)
                .map(Operand::Bool)
                .ok_or_else(|| refuse("expected true or false"))
        }
        AttrType::DateTime => {
            if matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew) {
                return Err(refuse("date-times do not compare as text"));
            }
            Timestamp::parse_rfc3339(&text)
                .map(Operand::Time)
                .map_err(|_| refuse("expected an RFC 3339 date and time"))
        }
        AttrType::Binary if op.is_ordering() => Err(refuse("binary values cannot be ordered")),
        AttrType::Complex => Err(refuse("complex attributes compare through a sub-attribute")),
        AttrType::String | AttrType::Reference | AttrType::Binary => Ok(Operand::Text(if attribute.case_exact {
            text
        } else {
            fold_case(&text)
        })),
    }
}

/// The values `target` designates in `document` (a resource, or one value inside a value
/// path), flattened over multi-valued attributes.
fn values<'a>(target: &Target, document: &'a Map<String, Value>) -> Vec<&'a Value> {
    match target {
        Target::Element(sub) => document.get(sub.name).into_iter().collect(),
        Target::Document(resolved) => values_at(resolved, document),
    }
}

/// The values `resolved` designates in a resource document.
pub(crate) fn values_at<'a>(resolved: &Resolved, document: &'a Map<String, Value>) -> Vec<&'a Value> {
    let container = match resolved.container {
        Container::Core => Some(document),
        Container::Extension(schema) => document.get(schema.id).and_then(Value::as_object),
    };
    let Some(value) = container.and_then(|container| container.get(resolved.attribute.name)) else {
        return Vec::new();
    };
    let items: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        single => vec![single],
    };
    match resolved.sub {
        None => items,
        Some(sub) => items
            .into_iter()
            .filter_map(|item| item.as_object().and_then(|object| object.get(sub.name)))
            .collect(),
    }
}

fn leaf_of(target: &Target) -> &'static Attribute {
    match target {
        Target::Document(resolved) => resolved.leaf(),
        Target::Element(sub) => sub,
    }
}

fn evaluate(node: &Node, document: &Map<String, Value>) -> bool {
    match node {
        Node::And(parts) => parts.iter().all(|part| evaluate(part, document)),
        Node::Or(parts) => parts.iter().any(|part| evaluate(part, document)),
        Node::Not(inner) => !evaluate(inner, document),
        Node::Present(target) => values(target, document).into_iter().any(is_present),
        Node::ValuePath { at, filter } => values_at(at, document)
            .into_iter()
            .filter_map(Value::as_object)
            .any(|element| evaluate(filter, element)),
        Node::Compare { target, op, operand } => {
            let found = values(target, document);
            let attribute = leaf_of(target);
            match (op, operand) {
                (CompareOp::Eq, Operand::Null) => !found.into_iter().any(is_present),
                (CompareOp::Ne, Operand::Null) => found.into_iter().any(is_present),
                (CompareOp::Ne, _) => !found
                    .into_iter()
                    .any(|value| compare(attribute, CompareOp::Eq, operand, value)),
                _ => found.into_iter().any(|value| compare(attribute, *op, operand, value)),
            }
        }
    }
}

fn is_present(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(text) => !text.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(members) => !members.is_empty(),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

fn compare(attribute: &Attribute, op: CompareOp, operand: &Operand, value: &Value) -> bool {
    match operand {
        Operand::Text(wanted) => {
            let Some(text) = value_text(value) else { return false };
            let text = if attribute.case_exact { text } else { fold_case(&text) };
            match op {
                CompareOp::Co => text.contains(wanted.as_str()),
                CompareOp::Sw => text.starts_with(wanted.as_str()),
                CompareOp::Ew => text.ends_with(wanted.as_str()),
                _ => ordered(op, text.as_str().cmp(wanted.as_str())),
            }
        }
        Operand::Bool(wanted) => value.as_bool() == Some(*wanted) && op == CompareOp::Eq,
        Operand::Time(wanted) => value
            .as_str()
            .and_then(|text| Timestamp::parse_rfc3339(text).ok())
            .is_some_and(|moment| ordered(op, moment.cmp(wanted))),
        Operand::Null => false,
    }
}

fn value_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn ordered(op: CompareOp, ordering: Ordering) -> bool {
    match op {
        CompareOp::Eq => ordering == Ordering::Equal,
        CompareOp::Ne => ordering != Ordering::Equal,
        CompareOp::Gt => ordering == Ordering::Greater,
        CompareOp::Ge => ordering != Ordering::Less,
        CompareOp::Lt => ordering == Ordering::Less,
        CompareOp::Le => ordering != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::grammar::parse_filter;
    use crate::schema::{GROUP_TYPE, USER_TYPE};

    fn user() -> Map<String, Value> {
        json!({
            "id": "2819c223", "userName": "BJensen@example.com", "active": false, "externalId": "Ext-1",
            "name": {"familyName": "O'Malley", "givenName": "Barbara"},
            "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true},
                       {"value": "babs@jensen.org", "type": "home"}],
            "meta": {"created": "2026-01-01T10:00:00Z", "lastModified": "2026-03-01T10:00:00.000001Z"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "701984", "manager": {"value": "m-1"}}
        })
        .as_object()
        .unwrap()
        .clone()
    }

    /// Evaluates each filter against the sample user and compares with the expected answer.
    fn check(cases: &[(&str, bool)]) {
        let document = user();
        for (text, expected) in cases {
            let filter = parse_filter(text).unwrap_or_else(|error| panic!("{text}: {error}"));
            let matcher = Matcher::new(&USER_TYPE, &filter).unwrap_or_else(|error| panic!("{text}: {error}"));
            assert_eq!(matcher.matches(&document), *expected, "{text}");
        }
    }

    #[test]
    fn strings_follow_case_exactness() {
        check(&[
            (r#"userName eq "bjensen@EXAMPLE.com""#, true),
            (r#"USERNAME sw "bjen""#, true),
            (r#"userName ew "@example.com""#, true),
            (r#"userName co "JENSEN""#, true),
            (r#"externalId eq "ext-1""#, false),
            (r#"externalId eq "Ext-1""#, true),
            (r#"userName ne "x""#, true),
            (r#"userName gt "a""#, true),
            (r#"userName lt "a""#, false),
        ]);
    }

    #[test]
    fn typed_comparisons() {
        check(&[
            ("active eq false", true),
            (r#"active eq "False""#, true),
            ("active ne true", true),
            (r#"meta.created lt "2026-01-01T10:00:01Z""#, true),
            (r#"meta.lastModified gt "2026-03-01T11:00:00+01:00""#, true),
            (r#"meta.lastModified ge "2026-03-01T10:00:00.000001Z""#, true),
            ("meta.created gt 2026-02-01T00:00:00Z", false),
        ]);
    }

    #[test]
    fn multi_valued_and_value_paths() {
        check(&[
            (r#"emails co "jensen.org""#, true),
            (r#"emails.value eq "babs@jensen.org""#, true),
            (r#"emails[type eq "work" and value co "@example.com"]"#, true),
            (r#"emails[type eq "home" and value co "@example.com"]"#, false),
            (r#"emails[type eq "work"].value eq "bjensen@example.com""#, true),
            (r#"emails[primary eq true].value ew ".org""#, false),
            ("emails.type pr", true),
            ("title pr", false),
            ("title eq null", true),
            ("name.familyName ne null", true),
        ]);
    }

    #[test]
    fn logic_and_extensions() {
        check(&[
            (
                r#"name.familyName co "o'malley" and (emails.value co "example.com" or emails.value co "example.org")"#,
                true,
            ),
            (r#"not (userName sw "b") or active eq false"#, true),
            (r#"not (userName sw "b")"#, false),
            (
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#,
                true,
            ),
            (
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "m-1""#,
                true,
            ),
        ]);
    }

    #[test]
    fn what_cannot_be_compared_is_an_invalid_filter() {
        for text in [
            "active gt true",
            r#"name eq "x""#,
            r#"nosuch eq "x""#,
            r#"meta.created eq "yesterday""#,
            r#"emails[nosuch eq "x"]"#,
            r#"userName[value eq "x"]"#,
            r#"active co "t""#,
        ] {
            let filter = parse_filter(text).unwrap();
            let error = Matcher::new(&USER_TYPE, &filter).unwrap_err();
            assert_eq!(error.scim_type(), Some(crate::error::ScimType::InvalidFilter), "{text}");
        }
        let filter = parse_filter(r#"userName eq "x""#).unwrap();
        assert!(Matcher::new(&GROUP_TYPE, &filter).is_err());
    }
}
