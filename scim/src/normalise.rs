//! Normalisation of what real clients send (scim-clients notes §1.4), before any PUT, POST or
//! PATCH logic sees it: attribute names in any case become canonical; dotted (`name.givenName`)
//! and URN-qualified (`urn:…:User:employeeNumber`) keys are moved to where they belong;
//! `"True"`/`"False"` become booleans; a scalar where a list or a complex value is expected is
//! wrapped; values sent as JSON text are parsed; client-sent `schemas`, `meta`, `id`,
//! read-only attributes, `null`s and unknown attributes are dropped.
//!
//! A reference sent in any of the shapes clients use is stored as one `{"value": id}`: Entra
//! sends the enterprise `manager` as a bare id, as an object, or as a one-element list of
//! `{"$ref", "value"}`; authentik's manager model may carry only a `$ref` URL, whose last
//! segment is the id; OneLogin's SCIM 1.1 enterprise template puts the enterprise attributes
//! under `urn:scim:schemas:extension:enterprise:1.0` and the manager's id in `managerId`.
//!
//! Every rewrite is traced at debug level with a `quirk` field, so support can see what a
//! client sent and what the server understood. Values of the wrong type that no rewrite can
//! save are refused with 400 `invalidValue`.

use serde_json::{Map, Value};

use crate::error::Error;
use crate::grammar::parse_attr_path;
use crate::schema::{AttrType, Attribute, Container, ENTERPRISE_USER_URN, Mutability, ResourceType, Schema};

fn trace(quirk: &'static str, attribute: &str) {
    tracing::debug!(quirk, attribute, "normalised a client quirk");
}

/// SCIM 1.1 extension URNs clients still send, and the extension each stands for here.
const SCIM_1_EXTENSIONS: [(&str, &str); 1] = [("urn:scim:schemas:extension:enterprise:1.0", ENTERPRISE_USER_URN)];

/// SCIM 1.1 sub-attribute names clients still send: (attribute, SCIM 1.1 name, name here).
const SCIM_1_SUB_ATTRIBUTES: [(&str, &str, &str); 1] = [("manager", "managerId", "value")];

/// The extension `key` names: its URN, or the SCIM 1.1 URN that stands for it.
fn extension_named(resource: &ResourceType, key: &str) -> Option<&'static Schema> {
    resource.extension(key).or_else(|| {
        let (_, current) = SCIM_1_EXTENSIONS
            .iter()
            .find(|(legacy, _)| legacy.eq_ignore_ascii_case(key))?;
        let extension = resource.extension(current)?;
        trace("SCIM 1.1 extension URN read as its SCIM 2.0 schema", key);
        Some(extension)
    })
}

/// The sub-attribute of `attribute` that `key` names, also by its SCIM 1.1 name.
fn sub_attribute_named(attribute: &Attribute, key: &str) -> Option<&'static Attribute> {
    attribute.sub_attribute(key).or_else(|| {
        let (_, _, current) = SCIM_1_SUB_ATTRIBUTES
            .iter()
            .find(|(name, legacy, _)| *name == attribute.name && legacy.eq_ignore_ascii_case(key))?;
        trace("SCIM 1.1 sub-attribute name read as its SCIM 2.0 name", key);
        attribute.sub_attribute(current)
    })
}

/// Normalises a resource body (POST, PUT) or a path-less PATCH value into canonical form: core
/// attributes at the top, extension attributes in an object under their schema's URN. Only
/// writable attributes remain.
pub(crate) fn normalise_resource(resource: &ResourceType, body: &Value) -> Result<Map<String, Value>, Error> {
    let Value::Object(object) = body else {
        return Err(Error::invalid_syntax(format!(
            "a {} must be a JSON object",
            resource.name
        )));
    };
    let mut canonical = Map::new();
    for (key, value) in object {
        place(resource, &mut canonical, key, value)?;
    }
    Ok(canonical)
}

/// Puts one client key and its value into `canonical`.
fn place(resource: &ResourceType, canonical: &mut Map<String, Value>, key: &str, value: &Value) -> Result<(), Error> {
    if key.eq_ignore_ascii_case("schemas") {
        return Ok(());
    }
    if let Some(extension) = extension_named(resource, key) {
        match value {
            Value::Null => {}
            Value::Object(members) => {
                for (name, member) in members {
                    let qualified = format!("{}:{name}", extension.id);
                    place(resource, canonical, &qualified, member)?;
                }
            }
            _ => return Err(Error::invalid_value(format!("{} must be an object", extension.id))),
        }
        return Ok(());
    }
    let resolved = parse_attr_path(key).ok().and_then(|path| resource.resolve(&path));
    let Some(resolved) = resolved else {
        trace("unknown attribute ignored", key);
        return Ok(());
    };
    if key.contains('.') || key.contains(':') {
        trace("qualified key expanded", key);
    }
    if resolved.attribute.mutability == Mutability::ReadOnly
        || resolved.sub.is_some_and(|sub| sub.mutability == Mutability::ReadOnly)
    {
        trace("read-only attribute ignored", key);
        return Ok(());
    }
    let container = match resolved.container {
        Container::Core => canonical,
        Container::Extension(schema) => object_at(canonical, schema.id),
    };
    let Some(sub) = resolved.sub else {
        match coerce(resolved.attribute, value)? {
            Some(value) => {
                merge_attribute(container, resolved.attribute, value);
            }
            None => {
                container.insert(resolved.attribute.name.to_owned(), Value::Null);
            }
        }
        return Ok(());
    };
    if resolved.attribute.multi_valued {
        return Err(Error::invalid_path(format!(
            "{key}: a sub-attribute of a multi-valued attribute needs a value filter"
        )));
    }
    let coerced = coerce(sub, value)?.unwrap_or(Value::Null);
    object_at(container, resolved.attribute.name).insert(sub.name.to_owned(), coerced);
    Ok(())
}

/// Sets `attribute` in `container`, merging the sub-attributes of a complex value into what an
/// earlier key (`name.givenName` before `name`) already put there.
fn merge_attribute(container: &mut Map<String, Value>, attribute: &Attribute, value: Value) {
    match (container.get_mut(attribute.name), value) {
        (Some(Value::Object(existing)), Value::Object(incoming)) if !attribute.multi_valued => {
            existing.extend(incoming);
        }
        (_, value) => {
            container.insert(attribute.name.to_owned(), value);
        }
    }
}

/// The object under `key`, created (or replacing a non-object) if needed.
pub(crate) fn object_at<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = map.entry(key.to_owned()).or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(object) => object,
        _ => unreachable!("just made an object"),
    }
}

/// Coerces a client value to `attribute`'s type. `None` means "no value": `null`, an empty
/// string, or an empty complex value — reading back as absent, as Entra's null-update test
/// expects.
pub(crate) fn coerce(attribute: &Attribute, value: &Value) -> Result<Option<Value>, Error> {
    if value.is_null() {
        return Ok(None);
    }
    if !attribute.multi_valued {
        return match value {
            Value::Array(items) => match items.as_slice() {
                [] => {
                    trace("empty list read as no value", attribute.name);
                    Ok(None)
                }
                [only] => {
                    trace("one-element list unwrapped", attribute.name);
                    coerce_single(attribute, only)
                }
                _ => Err(Error::invalid_value(format!(
                    "{} takes one value, not a list of {}",
                    attribute.name,
                    items.len()
                ))),
            },
            single => coerce_single(attribute, single),
        };
    }
    let items = match value {
        Value::Array(items) => items.clone(),
        Value::String(text) if text.trim_start().starts_with('[') => match serde_json::from_str(text) {
            Ok(Value::Array(items)) => {
                trace("JSON text parsed", attribute.name);
                items
            }
            _ => vec![value.clone()],
        },
        single => {
            trace("single value wrapped in a list", attribute.name);
            vec![single.clone()]
        }
    };
    let mut coerced = Vec::with_capacity(items.len());
    for item in &items {
        if let Some(item) = coerce_single(attribute, item)? {
            coerced.push(item);
        }
    }
    Ok(Some(Value::Array(coerced)))
}

fn coerce_single(attribute: &Attribute, value: &Value) -> Result<Option<Value>, Error> {
    if value.is_null() {
        return Ok(None);
    }
    if attribute.kind != AttrType::Complex {
        return coerce_simple(attribute, value);
    }
    let object = match value {
        Value::Object(object) => object.clone(),
        Value::String(text) if text.is_empty() => return Ok(None),
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) if text.trim_start().starts_with('{') => {
                trace("JSON text parsed", attribute.name);
                object
            }
            _ if attribute.sub_attribute("value").is_some() => {
                trace("scalar wrapped as {value}", attribute.name);
                Map::from_iter([("value".to_owned(), value.clone())])
            }
            _ => return Err(type_error(attribute, "an object")),
        },
        _ => return Err(type_error(attribute, "an object")),
    };
    let mut canonical = Map::new();
    for (key, member) in &object {
        let Some(sub) = sub_attribute_named(attribute, key) else {
            trace("unknown sub-attribute ignored", key);
            continue;
        };
        if sub.mutability == Mutability::ReadOnly {
            trace("read-only sub-attribute ignored", key);
            continue;
        }
        if let Some(member) = coerce_simple(sub, member)? {
            canonical.insert(sub.name.to_owned(), member);
        }
    }
    if !canonical.contains_key("value")
        && let Some(id) = referenced_id(attribute, &object)
    {
        trace("$ref read as value", attribute.name);
        canonical.insert("value".to_owned(), Value::String(id.to_owned()));
    }
    if canonical.is_empty() {
        return Ok(None);
    }
    Ok(Some(Value::Object(canonical)))
}

/// The id a reference's `$ref` names (the last segment of its URL), for a reference that
/// has `$ref` but no `value`.
fn referenced_id<'a>(attribute: &Attribute, object: &'a Map<String, Value>) -> Option<&'a str> {
    attribute.sub_attribute("value")?;
    attribute.sub_attribute("$ref")?;
    let reference = object
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case("$ref"))
        .and_then(|(_, reference)| reference.as_str())?;
    let path = reference.split(['?', '#']).next().unwrap_or_default();
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|id| !id.is_empty())
}

fn coerce_simple(attribute: &Attribute, value: &Value) -> Result<Option<Value>, Error> {
    let coerced = match (attribute.kind, value) {
        (_, Value::Null) => return Ok(None),
        (AttrType::Boolean, Value::Bool(_)) => value.clone(),
        (AttrType::Boolean, Value::String(text)) => match parse_bool(text) {
            Some(flag) => {
                trace("boolean string", attribute.name);
                Value::Bool(flag)
            }
            None => return Err(type_error(attribute, "a boolean")),
        },
        (AttrType::String | AttrType::Reference | AttrType::Binary | AttrType::DateTime, Value::String(text)) => {
            if text.is_empty() {
                return Ok(None);
            }
            if attribute.kind == AttrType::DateTime && idpsync_engine::ids::Timestamp::parse_rfc3339(text).is_err() {
                return Err(type_error(attribute, "an RFC 3339 date and time"));
            }
            if attribute.kind == AttrType::Binary && !is_base64(text) {
                return Err(type_error(attribute, "base64 text"));
            }
            value.clone()
        }
        (AttrType::String | AttrType::Reference, Value::Number(_) | Value::Bool(_)) => {
            trace("scalar turned into a string", attribute.name);
            Value::String(value.to_string())
        }
        (AttrType::Complex, _) => return Err(type_error(attribute, "an object")),
        _ => {
            return Err(type_error(
                attribute,
                match attribute.kind {
                    AttrType::Boolean => "a boolean",
                    _ => "a string",
                },
            ));
        }
    };
    Ok(Some(coerced))
}

/// `true`/`false` in any case, as Entra (`"False"`) and Keycloak extensions (`"true"`) send.
pub(crate) fn parse_bool(text: &str) -> Option<bool> {
    if text.trim().eq_ignore_ascii_case("true") {
        Some(true)
    } else if text.trim().eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

fn is_base64(text: &str) -> bool {
    let trimmed = text.trim_end_matches('=');
    text.len() - trimmed.len() <= 2
        && trimmed
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'/' | b'-' | b'_'))
}

fn type_error(attribute: &Attribute, expected: &str) -> Error {
    Error::invalid_value(format!("{} must be {expected}", attribute.name))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::schema::{GROUP_TYPE, USER_TYPE};

    fn check(resource: &ResourceType, input: Value, expected: Value) {
        let canonical = normalise_resource(resource, &input).unwrap_or_else(|error| panic!("{input}: {error}"));
        assert_eq!(Value::Object(canonical), expected, "input {input}");
    }

    #[test]
    fn entra_create_user_with_client_meta_roles_and_empty_enterprise_schema() {
        check(
            &USER_TYPE,
            json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
              "externalId":"0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef","userName":"Test_User_ab6490ee","active":true,
              "emails":[{"primary":true,"type":"work","value":"Test_User_fd0ea19b@testuser.com"}],
              "meta":{"resourceType":"User"},"name":{"formatted":"givenName familyName","familyName":"familyName","givenName":"givenName"},"roles":[]}),
            json!({"externalId":"0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef","userName":"Test_User_ab6490ee","active":true,
              "emails":[{"primary":true,"type":"work","value":"Test_User_fd0ea19b@testuser.com"}],
              "name":{"formatted":"givenName familyName","familyName":"familyName","givenName":"givenName"},"roles":[]}),
        );
    }

    #[test]
    fn entra_attribute_names_in_any_case_and_boolean_strings() {
        check(
            &USER_TYPE,
            json!({"UserName":"a@example.com","Active":"True","Emails":[{"Primary":"true","Value":"a@example.com","Type":"work"}]}),
            json!({"userName":"a@example.com","active":true,"emails":[{"primary":true,"value":"a@example.com","type":"work"}]}),
        );
    }

    #[test]
    fn dotted_and_urn_keys_from_path_less_patch_values() {
        check(
            &USER_TYPE,
            json!({"displayName":"Bjfe","name.givenName":"Kkom","name.familyName":"Unua",
                   "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber":"Aklq"}),
            json!({"displayName":"Bjfe","name":{"givenName":"Kkom","familyName":"Unua"},
                   "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"employeeNumber":"Aklq"}}),
        );
    }

    #[test]
    fn nested_extension_objects_and_scalar_manager() {
        check(
            &USER_TYPE,
            json!({"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"Department":"R&D","manager":"45619541-aa"}}),
            json!({"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"R&D","manager":{"value":"45619541-aa"}}}),
        );
    }

    /// Hardening issue, must-fix 10: every shape Entra, authentik and OneLogin send a manager
    /// in is stored as one `{"value": id}`.
    #[test]
    fn a_manager_in_every_shape_clients_send_becomes_one_value() {
        let enterprise = |manager: Value| json!({"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": manager}});
        let stored = enterprise(json!({"value": "m1"}));
        for shape in [
            json!("m1"),
            json!({"value": "m1"}),
            json!([{"$ref": "https://scim.example.com/scim/v2/Users/m1", "value": "m1"}]),
            json!([{"$ref": null, "value": "m1"}]),
            json!({"$ref": "https://scim.example.com/scim/v2/Users/m1"}),
            json!({"value": null, "$ref": "https://scim.example.com/scim/v2/Users/m1/", "displayName": null}),
            json!({"managerId": "m1", "displayName": "Boss"}),
        ] {
            check(&USER_TYPE, enterprise(shape), stored.clone());
        }
        check(&USER_TYPE, enterprise(json!([])), enterprise(Value::Null));
        let two = normalise_resource(&USER_TYPE, &enterprise(json!([{"value": "m1"}, {"value": "m2"}]))).unwrap_err();
        assert_eq!(two.scim_type(), Some(crate::error::ScimType::InvalidValue));
    }

    /// Hardening issue, must-fix 10: OneLogin's SCIM 1.1 enterprise template (the SCIM 1.1
    /// URNs, a single email object, `managerId`) keeps every attribute it carries.
    #[test]
    fn onelogin_scim_1_1_enterprise_template() {
        check(
            &USER_TYPE,
            json!({"schemas": ["urn:scim:schemas:core:1.0", "urn:scim:schemas:extension:enterprise:1.0"],
                   "userName": "kim@example.com", "name": {"familyName": "Kim", "givenName": "Ada", "formatted": "Ada Kim"},
                   "emails": {"value": "kim@example.com", "type": "work", "primary": true}, "title": "Engineer",
                   "urn:scim:schemas:extension:enterprise:1.0": {"department": "R&D", "manager": {"managerId": "m1", "displayName": "Boss"}}}),
            json!({"userName": "kim@example.com", "name": {"familyName": "Kim", "givenName": "Ada", "formatted": "Ada Kim"},
                   "emails": [{"value": "kim@example.com", "type": "work", "primary": true}], "title": "Engineer",
                   "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D", "manager": {"value": "m1"}}}),
        );
    }

    #[test]
    fn a_member_named_only_by_its_ref() {
        check(
            &GROUP_TYPE,
            json!({"members": [{"$ref": "https://scim.example.com/scim/v2/Users/u1"}]}),
            json!({"members": [{"$ref": "https://scim.example.com/scim/v2/Users/u1", "value": "u1"}]}),
        );
    }

    #[test]
    fn okta_id_and_microsoft_group_schema_are_dropped() {
        check(
            &GROUP_TYPE,
            json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group","http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
                   "id":"abc","displayName":"Engineering","meta":{"resourceType":"Group"}}),
            json!({"displayName":"Engineering"}),
        );
    }

    #[test]
    fn members_with_null_ref_and_extra_keys() {
        check(
            &GROUP_TYPE,
            json!({"members":[{"$ref":null,"value":"f648f8d5","name":"addMember","display":"x"}]}),
            json!({"members":[{"value":"f648f8d5"}]}),
        );
        check(
            &GROUP_TYPE,
            json!({"members":"string id 1"}),
            json!({"members":[{"value":"string id 1"}]}),
        );
    }

    #[test]
    fn roles_as_json_text() {
        check(
            &USER_TYPE,
            json!({"roles":"[{\"primary\":\"True\",\"type\":\"WindowsAzureActiveDirectoryRole\",\"value\":\"Admin\"}]"}),
            json!({"roles":[{"primary":true,"type":"WindowsAzureActiveDirectoryRole","value":"Admin"}]}),
        );
    }

    #[test]
    fn empty_strings_and_nulls_read_as_absent() {
        check(
            &USER_TYPE,
            json!({"title":"", "nickName": null}),
            json!({"title":null, "nickName": null}),
        );
    }

    #[test]
    fn unsalvageable_types_are_invalid_values() {
        for body in [
            json!({"active":"maybe"}),
            json!({"name":["x"]}),
            json!({"emails":[{"primary":"sometimes"}]}),
        ] {
            let error = normalise_resource(&USER_TYPE, &body).unwrap_err();
            assert_eq!(error.scim_type(), Some(crate::error::ScimType::InvalidValue), "{body}");
        }
        assert!(normalise_resource(&USER_TYPE, &json!([1])).is_err());
    }
}
