//! PATCH applied to a rendered resource document (users): each operation resolves its path
//! against the schema, coerces its value, and edits the canonical JSON. The caller decodes
//! the result and submits one command, so a request applies all or nothing.
//!
//! Beyond RFC 7644 §3.5.2, two lenient readings serve real clients: a `replace` (or `add`)
//! through a value filter that matches nothing creates the value the filter describes
//! (Entra's `emails[type eq "work"].value` on a user without a work address), and a `remove`
//! with a value array removes exactly those values (Entra, JumpCloud, authentik).

use serde_json::{Map, Value};

use super::operation::{Op, Operation};
use crate::error::Error;
use crate::grammar::{CompareOp, Filter, Literal};
use crate::matcher::Matcher;
use crate::normalise::{coerce, normalise_resource, object_at};
use crate::schema::{Attribute, Container, Mutability, Resolved, ResourceType};

/// Applies `operations` in order to `document`. Stops at the first failure; the caller then
/// discards the document, so nothing is half-applied.
#[cfg_attr(feature = "internals", visibility::make(pub))]
pub(crate) fn apply_to_document(
    resource: &ResourceType,
    document: &mut Map<String, Value>,
    operations: &[Operation],
) -> Result<(), Error> {
    for operation in operations {
        apply(resource, document, operation)?;
    }
    Ok(())
}

fn apply(resource: &ResourceType, document: &mut Map<String, Value>, operation: &Operation) -> Result<(), Error> {
    let Some(path) = &operation.path else {
        // Path-less add/replace: the value is a partial resource (Okta, Entra's
        // aadOptscim062020 dotted keys); `parse_operations` guarantees it is there.
        tracing::debug!(quirk = "path-less value", "applying each attribute of the value");
        let value = operation.value.as_ref().unwrap_or(&Value::Null);
        return apply_partial(resource, document, operation.op, value);
    };
    if path.filter.is_none()
        && let Some(extension) = resource.whole_extension(&path.attr)
    {
        if operation.op == Op::Remove {
            document.remove(extension.id);
            return Ok(());
        }
        let value = operation.value.as_ref().unwrap_or(&Value::Null);
        let wrapped = Value::Object(Map::from_iter([(extension.id.to_owned(), value.clone())]));
        return apply_partial(resource, document, operation.op, &wrapped);
    }
    let Some(resolved) = resource.resolve(&path.attr) else {
        // An attribute this server does not keep (a custom mapping in the IdP): ignoring it
        // keeps the rest of the request (say, `active=false`) from failing with it.
        tracing::warn!(path = %path, "PATCH names an attribute this server does not keep; ignored");
        return Ok(());
    };
    if resolved.attribute.mutability == Mutability::ReadOnly
        || resolved.sub.is_some_and(|sub| sub.mutability == Mutability::ReadOnly)
    {
        return Err(Error::mutability(format!("{} is read-only", resolved.canonical())));
    }
    let filter = match &path.filter {
        None => None,
        Some(filter) => {
            if !(resolved.attribute.multi_valued && resolved.attribute.is_complex()) {
                return Err(Error::invalid_path(format!(
                    "{path}: a value filter needs a multi-valued complex attribute"
                )));
            }
            Some((Matcher::for_values(resource, resolved.attribute, filter)?, filter))
        }
    };
    let target = if filter.is_some() && resolved.sub.is_none() {
        // `emails[type eq "work"]` designates values: the value is one (or a list of) them.
        resolved.attribute
    } else {
        resolved.leaf()
    };
    // A remove reads its value only in Entra's form: a list of values of a multi-valued
    // attribute, without a filter.
    let value_matters =
        operation.op != Op::Remove || (target.multi_valued && filter.is_none() && resolved.sub.is_none());
    let value = match &operation.value {
        Some(value) if value_matters => coerce(target, value)?,
        _ => None,
    };
    write(
        document,
        resolved,
        filter.as_ref().map(|(matcher, raw)| (matcher, *raw)),
        operation.op,
        value,
    )
}

/// Applies each attribute of a partial resource as if it had its own path.
fn apply_partial(
    resource: &ResourceType,
    document: &mut Map<String, Value>,
    op: Op,
    value: &Value,
) -> Result<(), Error> {
    let canonical = normalise_resource(resource, value)?;
    for (key, value) in canonical {
        if let Some(extension) = resource.extension(&key) {
            let Value::Object(members) = value else { continue };
            for (name, member) in members {
                if let Some(attribute) = extension.attributes.iter().find(|attribute| attribute.name == name) {
                    let resolved = Resolved {
                        container: Container::Extension(extension),
                        attribute,
                        sub: None,
                    };
                    write(document, resolved, None, op, non_null(member))?;
                }
            }
            continue;
        }
        if let Some(attribute) = resource.core_attribute(&key) {
            let resolved = Resolved {
                container: Container::Core,
                attribute,
                sub: None,
            };
            write(document, resolved, None, op, non_null(value))?;
        }
    }
    Ok(())
}

fn non_null(value: Value) -> Option<Value> {
    (!value.is_null()).then_some(value)
}

/// Applies one operation to a resolved target; `value` is coerced, `None` meaning "no value".
fn write(
    document: &mut Map<String, Value>,
    resolved: Resolved,
    filter: Option<(&Matcher, &Filter)>,
    op: Op,
    value: Option<Value>,
) -> Result<(), Error> {
    let container = match resolved.container {
        Container::Core => &mut *document,
        Container::Extension(schema) => object_at(document, schema.id),
    };
    let attribute = resolved.attribute;
    if !attribute.multi_valued {
        write_single(container, attribute, resolved.sub, op, value);
    } else {
        write_multi(container, attribute, resolved.sub, filter, op, value)?;
    }
    if let Container::Extension(schema) = resolved.container
        && document
            .get(schema.id)
            .is_some_and(|object| object.as_object().is_some_and(Map::is_empty))
    {
        document.remove(schema.id);
    }
    Ok(())
}

fn write_single(
    container: &mut Map<String, Value>,
    attribute: &Attribute,
    sub: Option<&Attribute>,
    op: Op,
    value: Option<Value>,
) {
    let name = attribute.name;
    match (sub, op, value) {
        (None, Op::Remove, _) | (None, _, None) => {
            container.remove(name);
        }
        (None, _, Some(Value::Object(members))) if attribute.is_complex() => {
            // RFC 7644 §3.5.2.3: sub-attributes not given are left unchanged.
            object_at(container, name).extend(members);
        }
        (None, _, Some(value)) => {
            container.insert(name.to_owned(), value);
        }
        (Some(sub), Op::Remove, _) | (Some(sub), _, None) => {
            if let Some(Value::Object(object)) = container.get_mut(name) {
                object.remove(sub.name);
                if object.is_empty() {
                    container.remove(name);
                }
            }
        }
        (Some(sub), _, Some(value)) => {
            object_at(container, name).insert(sub.name.to_owned(), value);
        }
    }
}

fn write_multi(
    container: &mut Map<String, Value>,
    attribute: &Attribute,
    sub: Option<&Attribute>,
    filter: Option<(&Matcher, &Filter)>,
    op: Op,
    value: Option<Value>,
) -> Result<(), Error> {
    let name = attribute.name;
    let mut elements: Vec<Value> = match container.remove(name) {
        Some(Value::Array(elements)) => elements,
        _ => Vec::new(),
    };
    let result = edit_values(&mut elements, attribute, sub, filter, op, value);
    if !elements.is_empty() {
        container.insert(name.to_owned(), Value::Array(elements));
    }
    result
}

fn edit_values(
    elements: &mut Vec<Value>,
    attribute: &Attribute,
    sub: Option<&Attribute>,
    filter: Option<(&Matcher, &Filter)>,
    op: Op,
    value: Option<Value>,
) -> Result<(), Error> {
    let Some((matcher, raw_filter)) = filter else {
        return edit_all_values(elements, attribute, sub, op, value);
    };
    let matched: Vec<usize> = elements
        .iter()
        .enumerate()
        .filter(|(_, element)| element.as_object().is_some_and(|object| matcher.matches_value(object)))
        .map(|(index, _)| index)
        .collect();
    match (op, sub, value) {
        (Op::Remove, None, _) => {
            let mut index = 0;
            elements.retain(|_| {
                index += 1;
                !matched.contains(&(index - 1))
            });
        }
        (Op::Remove, Some(sub), _) | (_, Some(sub), None) => {
            for &index in &matched {
                if let Some(object) = elements[index].as_object_mut() {
                    object.remove(sub.name);
                }
            }
            elements.retain(|element| element.as_object().is_none_or(|object| !object.is_empty()));
        }
        (_, None, None) => {
            let mut index = 0;
            elements.retain(|_| {
                index += 1;
                !matched.contains(&(index - 1))
            });
        }
        (_, Some(sub), Some(value)) => {
            if matched.is_empty() {
                let mut created = described_by(attribute, raw_filter)
                    .ok_or_else(|| Error::no_target(format!("no value of {} matches {raw_filter}", attribute.name)))?;
                tracing::debug!(
                    quirk = "filtered write matched nothing",
                    attribute = attribute.name,
                    "created the value the filter describes"
                );
                created.insert(sub.name.to_owned(), value);
                elements.push(Value::Object(created));
                let last = elements.len() - 1;
                keep_one_primary(elements, &[last]);
                return Ok(());
            }
            for &index in &matched {
                object_at_value(&mut elements[index]).insert(sub.name.to_owned(), value.clone());
            }
            keep_one_primary(elements, &matched);
        }
        (_, None, Some(value)) => {
            let replacement = match value {
                Value::Array(mut items) if items.len() == 1 => items.remove(0),
                Value::Array(_) => {
                    return Err(Error::invalid_value(format!(
                        "a filtered {} path takes one value",
                        attribute.name
                    )));
                }
                single => single,
            };
            let Value::Object(replacement) = replacement else {
                return Err(Error::invalid_value(format!("{} values are objects", attribute.name)));
            };
            if matched.is_empty() {
                let mut created = described_by(attribute, raw_filter)
                    .ok_or_else(|| Error::no_target(format!("no value of {} matches {raw_filter}", attribute.name)))?;
                created.extend(replacement);
                elements.push(Value::Object(created));
                let last = elements.len() - 1;
                keep_one_primary(elements, &[last]);
                return Ok(());
            }
            for &index in &matched {
                object_at_value(&mut elements[index]).extend(replacement.clone());
            }
            keep_one_primary(elements, &matched);
        }
    }
    Ok(())
}

/// Edits every value (no filter).
fn edit_all_values(
    elements: &mut Vec<Value>,
    attribute: &Attribute,
    sub: Option<&Attribute>,
    op: Op,
    value: Option<Value>,
) -> Result<(), Error> {
    if let Some(sub) = sub {
        match (op, value) {
            (Op::Remove, _) | (_, None) => {
                for element in elements.iter_mut() {
                    if let Some(object) = element.as_object_mut() {
                        object.remove(sub.name);
                    }
                }
                elements.retain(|element| element.as_object().is_none_or(|object| !object.is_empty()));
            }
            (_, Some(value)) => {
                if elements.is_empty() {
                    elements.push(Value::Object(Map::new()));
                }
                for element in elements.iter_mut() {
                    object_at_value(element).insert(sub.name.to_owned(), value.clone());
                }
            }
        }
        return Ok(());
    }
    let items = match value {
        Some(Value::Array(items)) => items,
        Some(single) => vec![single],
        None => Vec::new(),
    };
    match op {
        Op::Remove if items.is_empty() => elements.clear(),
        Op::Remove => {
            tracing::debug!(
                quirk = "remove with a value list",
                attribute = attribute.name,
                "removing exactly the values given"
            );
            let value_attribute = attribute.sub_attribute("value");
            elements.retain(|element| !items.iter().any(|item| same_value(value_attribute, element, item)));
        }
        Op::Replace => {
            *elements = items;
            let all: Vec<usize> = (0..elements.len()).collect();
            keep_one_primary(elements, &all);
        }
        Op::Add => {
            let value_attribute = attribute.sub_attribute("value");
            let mut written = Vec::new();
            for item in items {
                // RFC 7644 §3.5.2.1: a value that is already there is not added again; its
                // other sub-attributes (say, `primary`) are updated.
                match elements
                    .iter()
                    .position(|element| same_value(value_attribute, element, &item))
                {
                    Some(index) => {
                        if let (Some(existing), Value::Object(incoming)) = (elements[index].as_object_mut(), item) {
                            existing.extend(incoming);
                        }
                        written.push(index);
                    }
                    None => {
                        elements.push(item);
                        written.push(elements.len() - 1);
                    }
                }
            }
            keep_one_primary(elements, &written);
        }
    }
    Ok(())
}

/// Whether two values of a multi-valued complex attribute are the same value: equal `value`
/// sub-attributes (respecting `caseExact`), or equal objects when there is no `value`.
fn same_value(value_attribute: Option<&Attribute>, left: &Value, right: &Value) -> bool {
    let (Some(attribute), Some(left_value), Some(right_value)) = (
        value_attribute,
        left.get("value").and_then(Value::as_str),
        right.get("value").and_then(Value::as_str),
    ) else {
        return left == right;
    };
    if attribute.case_exact {
        left_value == right_value
    } else {
        left_value.to_lowercase() == right_value.to_lowercase()
    }
}

/// If one of the values at `written` is now primary, no other value stays primary
/// (RFC 7643 §2.4).
fn keep_one_primary(elements: &mut [Value], written: &[usize]) {
    let chosen = written
        .iter()
        .rev()
        .copied()
        .find(|&index| elements[index].get("primary") == Some(&Value::Bool(true)));
    let Some(chosen) = chosen else { return };
    for (index, element) in elements.iter_mut().enumerate() {
        if index != chosen
            && let Some(object) = element.as_object_mut()
            && object.get("primary") == Some(&Value::Bool(true))
        {
            object.remove("primary");
        }
    }
}

fn object_at_value(value: &mut Value) -> &mut Map<String, Value> {
    if !value.is_object() {
        *value = Value::Object(Map::new());
    }
    match value {
        Value::Object(object) => object,
        _ => unreachable!("just made an object"),
    }
}

/// The value a filter of `eq` comparisons joined by `and` describes
/// (`type eq "work"` → `{"type": "work"}`); `None` for any other filter.
fn described_by(attribute: &Attribute, filter: &Filter) -> Option<Map<String, Value>> {
    let parts: &[Filter] = match filter {
        Filter::And(parts) => parts,
        single => std::slice::from_ref(single),
    };
    let mut described = Map::new();
    for part in parts {
        let Filter::Compare {
            path,
            op: CompareOp::Eq,
            value,
        } = part
        else {
            return None;
        };
        let sub = attribute.sub_attribute(&path.name)?;
        let value = match value {
            Literal::String(text) => Value::String(text.clone()),
            Literal::Bool(flag) => Value::Bool(*flag),
            Literal::Number(text) => serde_json::from_str(text).ok()?,
            Literal::Null => return None,
        };
        described.insert(sub.name.to_owned(), coerce(sub, &value).ok()??);
    }
    Some(described)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::patch::parse_operations;
    use crate::schema::USER_TYPE;

    /// Applies a PATCH body to `before` and compares the document with `after`.
    fn check(before: Value, patch: Value, after: Value) {
        let operations = parse_operations(&patch).unwrap();
        let mut document = before.as_object().unwrap().clone();
        apply_to_document(&USER_TYPE, &mut document, &operations).unwrap_or_else(|error| panic!("{patch}: {error}"));
        assert_eq!(Value::Object(document), after, "patch {patch}");
    }

    fn check_error(before: Value, patch: Value, scim_type: &str) {
        let operations = parse_operations(&patch).unwrap();
        let mut document = before.as_object().unwrap().clone();
        let error = apply_to_document(&USER_TYPE, &mut document, &operations).unwrap_err();
        assert_eq!(error.scim_type().map(|t| t.as_str()), Some(scim_type), "{patch}");
    }

    #[test]
    fn entra_default_dialect_user_update() {
        check(
            json!({"userName": "a", "active": true, "name": {"givenName": "G", "familyName": "F"},
                   "emails": [{"value": "old@x.com", "type": "work", "primary": true}]}),
            json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
                {"op":"Replace","path":"emails[type eq \"work\"].value","value":"updatedEmail@microsoft.com"},
                {"op":"Replace","path":"name.familyName","value":"updatedFamilyName"},
                {"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber","value":"Eqpj"},
                {"op":"Replace","path":"active","value":"False"}]}),
            json!({"userName": "a", "active": false, "name": {"givenName": "G", "familyName": "updatedFamilyName"},
                   "emails": [{"value": "updatedEmail@microsoft.com", "type": "work", "primary": true}],
                   "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "Eqpj"}}),
        );
    }

    #[test]
    fn entra_filtered_replace_creates_the_missing_work_email() {
        check(
            json!({"userName": "a"}),
            json!({"Operations":[{"op":"Add","path":"emails[type eq \"work\"].value","value":"a@x.com"}]}),
            json!({"userName": "a", "emails": [{"type": "work", "value": "a@x.com"}]}),
        );
    }

    #[test]
    fn entra_aad_opt_scim062020_path_less_dotted_keys() {
        check(
            json!({"userName": "a", "displayName": "Old", "name": {"givenName": "G", "familyName": "F"}}),
            json!({"Operations":[{"op":"replace","value":{"displayName":"Bjfe","name.givenName":"Kkom","name.familyName":"Unua",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber":"Aklq"}}]}),
            json!({"userName": "a", "displayName": "Bjfe", "name": {"givenName": "Kkom", "familyName": "Unua"},
                   "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "Aklq"}}),
        );
    }

    #[test]
    fn entra_manager_set_as_a_bare_string_then_cleared() {
        let urn = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
        check(
            json!({"userName": "a"}),
            json!({"Operations":[{"op":"Add","path":format!("{urn}:manager"),"value":"45619541-aa"}]}),
            json!({"userName": "a", urn: {"manager": {"value": "45619541-aa"}}}),
        );
        check(
            json!({"userName": "a", urn: {"manager": {"value": "45619541-aa"}}}),
            json!({"Operations":[{"op":"Replace","path":format!("{urn}:manager"),"value":""}]}),
            json!({"userName": "a"}),
        );
    }

    #[test]
    fn okta_path_less_deactivation() {
        check(
            json!({"userName": "a", "active": true}),
            json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}),
            json!({"userName": "a", "active": false}),
        );
    }

    #[test]
    fn adding_an_existing_value_changes_nothing_and_primary_moves() {
        let before = json!({"userName": "a", "emails": [{"value": "a@x.com", "primary": true}, {"value": "b@x.com"}]});
        check(
            before.clone(),
            json!({"Operations":[{"op":"add","path":"emails","value":[{"value":"A@X.com","primary":true}]}]}),
            json!({"userName": "a", "emails": [{"value": "A@X.com", "primary": true}, {"value": "b@x.com"}]}),
        );
        check(
            before,
            json!({"Operations":[{"op":"add","path":"emails","value":[{"value":"c@x.com","primary":true}]}]}),
            json!({"userName": "a", "emails": [{"value": "a@x.com"}, {"value": "b@x.com"}, {"value": "c@x.com", "primary": true}]}),
        );
    }

    #[test]
    fn removes_by_filter_by_value_list_and_whole() {
        let before = json!({"userName": "a", "emails": [{"value": "a@x.com", "type": "work"}, {"value": "b@x.com", "type": "home"}]});
        check(
            before.clone(),
            json!({"Operations":[{"op":"remove","path":"emails[type eq \"work\"]"}]}),
            json!({"userName": "a", "emails": [{"value": "b@x.com", "type": "home"}]}),
        );
        check(
            before.clone(),
            json!({"Operations":[{"op":"Remove","path":"emails","value":[{"value":"b@x.com"}]}]}),
            json!({"userName": "a", "emails": [{"value": "a@x.com", "type": "work"}]}),
        );
        check(
            before.clone(),
            json!({"Operations":[{"op":"remove","path":"emails"}]}),
            json!({"userName": "a"}),
        );
        check(
            before,
            json!({"Operations":[{"op":"remove","path":"emails[type eq \"other\"]"}]}),
            json!({"userName": "a", "emails": [{"value": "a@x.com", "type": "work"}, {"value": "b@x.com", "type": "home"}]}),
        );
    }

    #[test]
    fn entra_null_update_clears() {
        check(
            json!({"userName": "a", "title": "T", "nickName": "N"}),
            json!({"Operations":[{"op":"replace","path":"title","value":""},{"op":"replace","path":"nickName","value":null}]}),
            json!({"userName": "a"}),
        );
    }

    #[test]
    fn read_only_paths_and_unmatched_filters_fail() {
        check_error(
            json!({"userName": "a"}),
            json!({"Operations":[{"op":"replace","path":"id","value":"x"}]}),
            "mutability",
        );
        check_error(
            json!({"userName": "a"}),
            json!({"Operations":[{"op":"replace","path":"groups","value":[{"value":"x"}]}]}),
            "mutability",
        );
        check_error(
            json!({"userName": "a"}),
            json!({"Operations":[{"op":"replace","path":"emails[value co \"x\"].type","value":"work"}]}),
            "noTarget",
        );
        check_error(
            json!({"userName": "a"}),
            json!({"Operations":[{"op":"replace","path":"name[givenName eq \"x\"]","value":"y"}]}),
            "invalidPath",
        );
    }

    #[test]
    fn unknown_attributes_are_ignored_so_the_rest_applies() {
        check(
            json!({"userName": "a", "active": true}),
            json!({"Operations":[{"op":"replace","path":"urn:example:custom:2.0:User:costume","value":"x"},
                                 {"op":"replace","path":"active","value":false}]}),
            json!({"userName": "a", "active": false}),
        );
    }
}
