//! No body makes the request path panic: random JSON (keys drawn from the real attribute
//! names, in any case, dotted and URN-qualified, with values of every type) goes through
//! normalisation, decoding and PATCH application, which may refuse it but must not fall over.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use crate::normalise::normalise_resource;
use crate::patch::{apply_to_document, parse_operations};
use crate::resource::{group, user};
use crate::schema::{GROUP_TYPE, USER_TYPE};

const KEYS: &[&str] = &[
    "userName",
    "USERNAME",
    "name",
    "name.givenName",
    "givenName",
    "active",
    "emails",
    "value",
    "type",
    "primary",
    "display",
    "members",
    "displayName",
    "externalId",
    "id",
    "meta",
    "schemas",
    "groups",
    "addresses",
    "x509Certificates",
    "$ref",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
    "urn:scim:schemas:extension:enterprise:1.0",
    "manager",
    "managerId",
    "op",
    "path",
    "Operations",
    "nosuch",
];

const PATHS: &[&str] = &[
    "emails[type eq \"work\"].value",
    "emails[value co \"x\"]",
    "members[value eq \"x\"]",
    "name.familyName",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
    "active",
    "roles",
    "addresses[primary eq true].locality",
    "meta.created",
    "userName",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        prop::sample::select(vec![
            "True",
            "false",
            "",
            "x",
            "2026-01-01T00:00:00Z",
            "[1]",
            "{\"value\":\"v\"}"
        ])
        .prop_map(|text| Value::String(text.to_owned())),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS.to_vec()), inner), 0..6).prop_map(|members| {
                Value::Object(
                    members
                        .into_iter()
                        .map(|(key, value)| (key.to_owned(), value))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

fn operation() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["add", "Replace", "remove", "REMOVE", "update"]),
        prop::option::of(prop::sample::select(PATHS.to_vec())),
        prop::option::of(json_value()),
    )
        .prop_map(|(op, path, value)| {
            let mut operation = json!({"op": op});
            if let Some(path) = path {
                operation["path"] = json!(path);
            }
            if let Some(value) = value {
                operation["value"] = value;
            }
            operation
        })
}

fn sample_user() -> Map<String, Value> {
    json!({
        "userName": "bjensen", "active": true, "name": {"givenName": "B"},
        "emails": [{"value": "b@example.com", "type": "work", "primary": true}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "7"}
    })
    .as_object()
    .cloned()
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn resource_bodies_never_panic(body in json_value()) {
        if let Ok(canonical) = normalise_resource(&USER_TYPE, &body) {
            let _ = user::decode(&canonical);
        }
        if let Ok(canonical) = normalise_resource(&GROUP_TYPE, &body) {
            let _ = group::decode(&idpsync_engine::State::new(), &canonical);
        }
    }

    #[test]
    fn patch_bodies_never_panic(operations in prop::collection::vec(operation(), 0..5)) {
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations});
        if let Ok(operations) = parse_operations(&body) {
            let mut document = sample_user();
            if apply_to_document(&USER_TYPE, &mut document, &operations).is_ok() {
                let _ = user::decode(&document);
            }
        }
    }
}
