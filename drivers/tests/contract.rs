//! Contract check: every request a driver sends to its fake, and every answer the fake gives,
//! checked against the vendor's OpenAPI contract in `../shared/idp-contracts/` (beside the
//! repository): the path and method are an operation of the contract, every query parameter is
//! one the operation declares (with a value of its type, within its bounds), credentials are
//! sent, and the answer's body validates against the operation's response schema.
//!
//! Without the contracts the test is skipped with a message, except in CI (`CI=true`), where
//! their absence fails it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use idpsync_drivers::cursor_store::CursorStore;
use idpsync_drivers::fake::{Directory, FakeIdp, FakeMember, Faults, Recorded, Vendor};
use idpsync_drivers::sync::{Mode, Resync, sync_once};
use idpsync_drivers::{Driver, IntegrationConfig, RetryPolicy};
use idpsync_engine::{Engine, TenantSettings};
use idpsync_storage::{MemoryStore, TenantId};
use serde_json::Value;

fn contracts_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/idp-contracts");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("the vendor contracts are missing: expected {}", dir.display());
    }
    eprintln!("skipping the contract check: {} does not exist", dir.display());
    None
}

fn contract_file(vendor: Vendor) -> &'static str {
    match vendor {
        Vendor::Entra => "msgraph.openapi.yaml",
        Vendor::Okta => "okta.openapi.yaml",
        Vendor::Google => "google-directory.openapi.yaml",
        Vendor::JumpCloud => "jumpcloud.openapi.yaml",
        Vendor::Keycloak => "keycloak.openapi.yaml",
        Vendor::Auth0 => "auth0.openapi.yaml",
        Vendor::Authentik => "authentik.openapi.yaml",
        Vendor::Zitadel => "zitadel.openapi.yaml",
    }
}

/// A validator of the JSON-schema subset the contracts use: `$ref`, `type` (with OpenAPI's
/// `nullable`), `properties`, `required`, `items`, `allOf`, `anyOf`, `oneOf`, `enum` and
/// `additionalProperties`. Formats and patterns are not checked.
struct Spec {
    root: Value,
}

impl Spec {
    fn resolve<'a>(&'a self, mut node: &'a Value) -> &'a Value {
        while let Some(reference) = node.get("$ref").and_then(Value::as_str) {
            node = self
                .root
                .pointer(reference.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("unresolved $ref {reference}"));
        }
        node
    }

    fn validate(&self, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        let schema = self.resolve(schema);
        if value.is_null() && schema.get("nullable").and_then(Value::as_bool) == Some(true) {
            return;
        }
        for part in schema.get("allOf").and_then(Value::as_array).into_iter().flatten() {
            self.validate(part, value, at, errors);
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(options) = schema.get(key).and_then(Value::as_array) {
                let fits = options.iter().any(|option| {
                    let mut inner = Vec::new();
                    self.validate(option, value, at, &mut inner);
                    inner.is_empty()
                });
                if !fits {
                    errors.push(format!("{at}: fits none of {key}"));
                }
            }
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            errors.push(format!("{at}: {value} is not one of {allowed:?}"));
        }
        let type_ok = match schema.get("type").and_then(Value::as_str) {
            None => true,
            Some("object") => value.is_object(),
            Some("array") => value.is_array(),
            Some("string") => value.is_string(),
            Some("integer") => value.is_i64() || value.is_u64(),
            Some("number") => value.is_number(),
            Some("boolean") => value.is_boolean(),
            Some(other) => panic!("unknown type {other}"),
        };
        if !type_ok {
            errors.push(format!("{at}: {value} is not of type {}", schema["type"]));
            return;
        }
        if let Some(object) = value.as_object() {
            let properties = schema.get("properties").and_then(Value::as_object);
            for required in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
                let name = required.as_str().unwrap_or_default();
                if !object.contains_key(name) {
                    errors.push(format!("{at}: required property {name} is missing"));
                }
            }
            for (name, item) in object {
                match properties.and_then(|properties| properties.get(name)) {
                    Some(property) => self.validate(property, item, &format!("{at}.{name}"), errors),
                    None => match schema.get("additionalProperties") {
                        Some(Value::Bool(false)) => errors.push(format!("{at}: unexpected property {name}")),
                        Some(extra @ Value::Object(_)) => self.validate(extra, item, &format!("{at}.{name}"), errors),
                        _ => {}
                    },
                }
            }
        }
        if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
            for (index, item) in array.iter().enumerate() {
                self.validate(items, item, &format!("{at}[{index}]"), errors);
            }
        }
    }

    /// The operation for a request path, trying it with and without the API's base path.
    fn operation(&self, method: &str, paths: &[&str]) -> Option<(&str, &Value)> {
        let operations = self.root["paths"].as_object()?;
        for path in paths {
            let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
            for (template, item) in operations {
                let pattern: Vec<&str> = template.trim_end_matches('/').split('/').collect();
                let fits = pattern.len() == segments.len()
                    && pattern
                        .iter()
                        .zip(&segments)
                        .all(|(p, s)| (p.starts_with('{') && p.ends_with('}')) || p == s);
                if let (true, Some(operation)) = (fits, item.get(method)) {
                    return Some((template.as_str(), operation));
                }
            }
        }
        None
    }
}

fn check_request(spec: &Spec, vendor: Vendor, recorded: &Recorded, errors: &mut Vec<String>) {
    let method = recorded.method.as_str().to_ascii_lowercase();
    let stripped = recorded.path.strip_prefix(vendor.base_path()).unwrap_or(&recorded.path);
    let Some((template, operation)) = spec.operation(&method, &[stripped, &recorded.path]) else {
        errors.push(format!(
            "{vendor:?}: {} {} is not an operation of the contract",
            recorded.method, recorded.path
        ));
        return;
    };
    let label = format!("{vendor:?} {} {template}", recorded.method);
    let parameters: Vec<&Value> = operation
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(
            spec.root["paths"][template]
                .get("parameters")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        )
        .map(|parameter| spec.resolve(parameter))
        .collect();
    for (key, value) in &recorded.query {
        let declared = parameters
            .iter()
            .find(|parameter| parameter["in"] == "query" && parameter["name"] == key.as_str());
        let Some(declared) = declared else {
            errors.push(format!("{label}: query parameter {key} is not declared"));
            continue;
        };
        let schema = spec.resolve(&declared["schema"]);
        if schema["type"] == "integer" {
            match value.parse::<i64>() {
                Ok(number) => {
                    if schema
                        .get("maximum")
                        .and_then(Value::as_i64)
                        .is_some_and(|max| number > max)
                    {
                        errors.push(format!("{label}: {key}={number} is above the maximum"));
                    }
                    if schema
                        .get("minimum")
                        .and_then(Value::as_i64)
                        .is_some_and(|min| number < min)
                    {
                        errors.push(format!("{label}: {key}={number} is below the minimum"));
                    }
                }
                Err(_) => errors.push(format!("{label}: {key}={value} is not an integer")),
            }
        }
        if schema["type"] == "boolean" && !matches!(value.as_str(), "true" | "false") {
            errors.push(format!("{label}: {key}={value} is not a boolean"));
        }
    }
    for parameter in parameters
        .iter()
        .filter(|parameter| parameter["required"] == true && parameter["in"] == "query")
    {
        let name = parameter["name"].as_str().unwrap_or_default();
        if !recorded.query.iter().any(|(key, _)| key == name) {
            errors.push(format!("{label}: required query parameter {name} is missing"));
        }
    }
    let token_endpoint = template.contains("token");
    let credentials = ["authorization", "x-api-key"]
        .iter()
        .any(|name| recorded.headers.contains_key(*name));
    if !token_endpoint && !credentials {
        errors.push(format!("{label}: no credentials sent"));
    }
    if let (Some(request_schema), Some(body)) = (
        operation.pointer("/requestBody/content/application~1json/schema"),
        recorded.body.as_ref().filter(|_| !token_endpoint),
    ) {
        spec.validate(request_schema, body, &format!("{label} request"), errors);
    }
    let Some(response) = recorded.response.as_ref() else {
        return;
    };
    let responses = &operation["responses"];
    let status = recorded.status.to_string();
    let family = format!("{}XX", &status[..1]);
    let declared = [status.as_str(), family.as_str(), "default"]
        .iter()
        .find_map(|key| responses.get(*key))
        .map(|declared| spec.resolve(declared));
    match declared.and_then(|declared| declared.pointer("/content/application~1json/schema")) {
        Some(schema) => spec.validate(schema, response, &format!("{label} → {status}"), errors),
        // The contract declares no body for this status (JumpCloud, Keycloak and authentik
        // declare no 429 at all): nothing to check it against.
        None if recorded.status >= 400 => {}
        None => errors.push(format!("{label}: the contract has no JSON body for status {status}")),
    }
}

/// The deletion feeds incremental runs read, which the contracts (subsets for listing users and
/// groups) do not have; their shapes follow the vendors' documentation (see
/// `docs/providers/<vendor>.md`). A full run, such as the CI's `sync --once --dry-run` against
/// mocks of the contracts, never calls them.
const FEEDS_OUTSIDE_THE_CONTRACTS: &[(Vendor, &str)] = &[
    (Vendor::Okta, "/api/v1/logs"),
    (Vendor::Auth0, "/api/v2/logs"),
    (Vendor::Authentik, "/api/v3/events/events/"),
];

fn is_feed(vendor: Vendor, recorded: &Recorded) -> bool {
    FEEDS_OUTSIDE_THE_CONTRACTS
        .iter()
        .any(|(feed_vendor, path)| *feed_vendor == vendor && recorded.path == *path)
}

fn directory() -> Directory {
    let mut directory = Directory::default();
    for n in 1001..=1012 {
        directory.put_user(&n.to_string(), &format!("user{n}.smith"), n % 5 != 0);
    }
    directory.put_group("g-eng", "vpn-eng");
    directory.put_group("g-ops", "vpn-ops");
    for n in 1001..=1008 {
        directory.join("g-eng", FakeMember::User(n.to_string()));
    }
    directory.join("g-ops", FakeMember::User("1010".into()));
    directory.join("g-eng", FakeMember::Group("g-ops".into()));
    directory
}

/// One way a vendor is checked besides its defaults: settings, and the fake's version, that
/// make the driver send other requests.
struct Variant {
    /// Settings added to the integration.
    toml: &'static str,
    /// What the fake is made to be.
    fake: fn(&mut Directory),
}

/// The variants each vendor is checked with.
fn variants(vendor: Vendor) -> Vec<Variant> {
    let as_is = |_: &mut Directory| {};
    let mut variants = vec![Variant { toml: "", fake: as_is }];
    match vendor {
        // Users who join a synced group are read by id between full listings.
        Vendor::Entra | Vendor::Okta | Vendor::Authentik | Vendor::Auth0 => variants.push(Variant {
            toml: "only_group_members = true\n",
            fake: as_is,
        }),
        Vendor::Zitadel => {
            variants.push(Variant {
                toml: "groups = \"groups\"\n",
                fake: as_is,
            });
            // Before v4, the deprecated v2beta authorizations are read instead.
            variants.push(Variant {
                toml: "",
                fake: Directory::as_zitadel_before_v4,
            });
        }
        _ => {}
    }
    variants
}

/// The contract the repository keeps for an operation the shared set lacks, merged into
/// `spec` (its paths and schemas).
fn merge_kept_here(spec: &mut Spec, vendor: Vendor) {
    let file = match vendor {
        Vendor::Zitadel => "zitadel-authorization-v2.openapi.yaml",
        _ => return,
    };
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/contracts")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let kept: Value = yaml_serde::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    for section in ["/paths", "/components/schemas"] {
        let into = spec
            .root
            .pointer_mut(section)
            .and_then(Value::as_object_mut)
            .unwrap_or_else(|| panic!("{vendor:?}: the shared contract has no {section}"));
        for (key, value) in kept.pointer(section).and_then(Value::as_object).into_iter().flatten() {
            assert!(
                into.insert(key.clone(), value.clone()).is_none(),
                "{file}: {key} is in the shared contract already; drop it here"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn drivers_and_fakes_keep_to_the_vendor_contracts() {
    let Some(dir) = contracts_dir() else {
        return;
    };
    let mut errors = Vec::new();
    for vendor in Vendor::ALL {
        let text = std::fs::read_to_string(dir.join(contract_file(vendor))).unwrap();
        let mut spec = Spec {
            root: yaml_serde::from_str(&text).unwrap_or_else(|error| panic!("{vendor:?}: {error}")),
        };
        merge_kept_here(&mut spec, vendor);
        for variant in variants(vendor) {
            check_runs(&spec, vendor, &variant, &mut errors).await;
        }
    }
    assert!(
        errors.is_empty(),
        "{} contract violations:\n{}",
        errors.len(),
        errors.join("\n")
    );
}

/// A full run and an incremental one of `vendor`'s driver in a `variant`, every request
/// and answer checked against `spec`.
async fn check_runs(spec: &Spec, vendor: Vendor, variant: &Variant, errors: &mut Vec<String>) {
    let extra = variant.toml;
    let mut seeded = directory();
    (variant.fake)(&mut seeded);
    let fake = FakeIdp::start(vendor, seeded, true).await;
    let toml = format!("name = \"it\"\n{}{extra}", fake.integration_toml());
    let driver = Driver::new(
        IntegrationConfig::from_toml(&toml).unwrap(),
        RetryPolicy {
            backoff_base: Duration::from_millis(1),
            ..RetryPolicy::default()
        },
    )
    .unwrap();
    let engine = Engine::open(Arc::new(MemoryStore::new()), TenantSettings::default())
        .await
        .unwrap();
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    let state_dir = tempfile::tempdir().unwrap();
    let cursors = CursorStore::new(state_dir.path());
    // One rate-limited answer, a full listing, a change, then an incremental one where the
    // IdP has them.
    fake.set_faults(Faults {
        rate_limited: 1,
        ..Faults::default()
    });
    sync_once(&driver, &tenant, &cursors, Mode::Apply, Resync::Full)
        .await
        .unwrap();
    let mut recorded = fake.take_recorded();
    assert!(
        !recorded.iter().any(|each| is_feed(vendor, each)),
        "{vendor:?} {extra}: a full run reads no deletion feed"
    );
    fake.edit(|d| {
        d.put_user("1013", "late.joiner", true);
        d.leave("g-eng", FakeMember::User("1001".into()));
        d.join("g-eng", FakeMember::User("1011".into()));
        d.delete_user("1002");
    });
    sync_once(&driver, &tenant, &cursors, Mode::Apply, Resync::Auto)
        .await
        .unwrap();
    let incremental = fake.take_recorded();
    assert_eq!(
        incremental.iter().any(|each| is_feed(vendor, each)),
        FEEDS_OUTSIDE_THE_CONTRACTS
            .iter()
            .any(|(feed_vendor, _)| *feed_vendor == vendor),
        "{vendor:?} {extra}: an incremental run reads the vendor's deletion feed"
    );
    recorded.extend(incremental);
    assert!(recorded.len() >= 4, "{vendor:?} {extra}: {} requests", recorded.len());
    for each in recorded.iter().filter(|each| !is_feed(vendor, each)) {
        check_request(spec, vendor, each, errors);
    }
    engine.shutdown().await;
}

#[test]
fn the_validator_finds_what_it_should() {
    let spec = Spec {
        root: serde_json::json!({"components": {"schemas": {
            "User": {"type": "object", "required": ["id"], "properties": {
                "id": {"type": "string"}, "age": {"type": "integer", "nullable": true},
                "kind": {"type": "string", "enum": ["a", "b"]},
                "tags": {"type": "array", "items": {"type": "string"}}}},
            "Strict": {"allOf": [{"$ref": "#/components/schemas/User"}], "additionalProperties": false, "properties": {"id": {}}}
        }}}),
    };
    let check = |schema: &str, value: Value| {
        let mut errors = Vec::new();
        spec.validate(
            &serde_json::json!({"$ref": format!("#/components/schemas/{schema}")}),
            &value,
            "$",
            &mut errors,
        );
        errors
    };
    assert!(
        check(
            "User",
            serde_json::json!({"id": "1", "age": null, "kind": "a", "tags": ["x"], "extra": 1})
        )
        .is_empty()
    );
    assert_eq!(check("User", serde_json::json!({"age": 1})).len(), 1, "id is required");
    assert_eq!(check("User", serde_json::json!({"id": 1})).len(), 1, "id is a string");
    assert_eq!(
        check("User", serde_json::json!({"id": "1", "kind": "c"})).len(),
        1,
        "kind is an enum"
    );
    assert_eq!(
        check("User", serde_json::json!({"id": "1", "tags": [1]})).len(),
        1,
        "tags hold strings"
    );
    assert_eq!(
        check("Strict", serde_json::json!({"id": "1", "extra": 1})).len(),
        1,
        "no extra properties"
    );
}
