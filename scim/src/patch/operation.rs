//! A PATCH request's operations (RFC 7644 §3.5.2): the body parsed into [`Operation`]s, with
//! `op` in any case and `path` in the one grammar; applying them is `document.rs`'s and
//! `group.rs`'s.

use serde_json::Value;

use crate::error::Error;
use crate::grammar::{PatchPath, parse_patch_path};

/// The most operations one PATCH request may carry.
pub(crate) const OPERATIONS_MAX: usize = 1_000;

/// What an operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// Add values (or set, for single-valued attributes).
    Add,
    /// Remove values.
    Remove,
    /// Replace values.
    Replace,
}

/// One PATCH operation.
#[cfg_attr(feature = "internals", visibility::make(pub))]
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Operation {
    /// What it does.
    pub(crate) op: Op,
    /// Where; `None` means the resource itself.
    pub(crate) path: Option<PatchPath>,
    /// With what.
    pub(crate) value: Option<Value>,
}

/// Parses a PATCH body. `schemas` may be missing (Entra's group PATCH omits it); `op` may be
/// in any case (Entra sends `Replace`); the keys of the body and of each operation are
/// matched case-insensitively.
#[cfg_attr(feature = "internals", visibility::make(pub))]
pub(crate) fn parse_operations(body: &Value) -> Result<Vec<Operation>, Error> {
    let Value::Object(object) = body else {
        return Err(Error::invalid_syntax("a PATCH body must be a JSON object"));
    };
    let operations = member(object, "Operations")
        .ok_or_else(|| Error::invalid_syntax("a PATCH body needs Operations"))?
        .as_array()
        .ok_or_else(|| Error::invalid_syntax("Operations must be an array"))?;
    if operations.is_empty() {
        return Err(Error::invalid_syntax("Operations must not be empty"));
    }
    if operations.len() > OPERATIONS_MAX {
        return Err(Error::invalid_value(format!(
            "at most {OPERATIONS_MAX} operations per PATCH request"
        )));
    }
    operations.iter().map(parse_operation).collect()
}

fn parse_operation(operation: &Value) -> Result<Operation, Error> {
    let Value::Object(object) = operation else {
        return Err(Error::invalid_syntax("each operation must be an object"));
    };
    let op = match member(object, "op") {
        Some(Value::String(text)) => {
            if text.chars().any(|c| c.is_ascii_uppercase()) {
                tracing::debug!(quirk = "op in capitals", op = %text, "normalised a client quirk");
            }
            match text.to_ascii_lowercase().as_str() {
                "add" => Op::Add,
                "remove" => Op::Remove,
                "replace" => Op::Replace,
                _ => {
                    return Err(Error::invalid_syntax(format!(
                        "unknown op {text:?}: use add, remove or replace"
                    )));
                }
            }
        }
        _ => return Err(Error::invalid_syntax("each operation needs an op")),
    };
    let path = match member(object, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) if text.trim().is_empty() => None,
        Some(Value::String(text)) => {
            Some(parse_patch_path(text).map_err(|error| Error::invalid_path(format!("path {text:?}: {error}")))?)
        }
        Some(_) => return Err(Error::invalid_path("path must be a string")),
    };
    let value = member(object, "value").cloned();
    if op != Op::Remove && value.is_none() {
        return Err(Error::invalid_value("add and replace need a value"));
    }
    if op == Op::Remove && path.is_none() {
        return Err(Error::no_target("remove needs a path"));
    }
    Ok(Operation { op, path, value })
}

/// A member of an object by name, case-insensitively.
fn member<'a>(object: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).or_else(|| {
        object
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn entra_capitalised_ops_without_schemas() {
        let operations = parse_operations(&json!({"Operations":[
            {"op":"Replace","path":"active","value":"False"},
            {"op":"Add","path":"members","value":[{"$ref":null,"value":"f648f8d5ea4e4cd38e9c"}]},
            {"op":"Remove","path":"members","value":[{"$ref":null,"value":"f648f8d5ea4e4cd38e9c"}]}]}))
        .unwrap();
        assert_eq!(
            operations.iter().map(|operation| operation.op).collect::<Vec<_>>(),
            vec![Op::Replace, Op::Add, Op::Remove]
        );
        assert!(operations.iter().all(|operation| operation.path.is_some()));
    }

    #[test]
    fn malformed_requests_say_why() {
        for (body, scim_type) in [
            (json!({"Operations": []}), "invalidSyntax"),
            (json!({"Operations": [{"path": "x", "value": 1}]}), "invalidSyntax"),
            (
                json!({"Operations": [{"op": "update", "path": "x", "value": 1}]}),
                "invalidSyntax",
            ),
            (json!({"Operations": [{"op": "remove"}]}), "noTarget"),
            (json!({"Operations": [{"op": "add", "path": "x"}]}), "invalidValue"),
            (
                json!({"Operations": [{"op": "add", "path": "a[", "value": 1}]}),
                "invalidPath",
            ),
            (json!([]), "invalidSyntax"),
        ] {
            let error = parse_operations(&body).unwrap_err();
            assert_eq!(error.scim_type().map(|t| t.as_str()), Some(scim_type), "{body}");
        }
    }
}
