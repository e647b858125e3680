//! `/Bulk` (RFC 7644 §3.7): many operations in one request, each run exactly as its own
//! endpoint runs it. `bulkId` references (`"bulkId:qwerty"` in a path or anywhere in data)
//! are resolved, forward ones included: an operation waits until the operation that creates
//! what it references has run; references that can never resolve (circular, or to a failed
//! or missing operation) fail with 409. `failOnErrors` stops the run after that many errors.
//! Limits: `bulk.maxOperations` and `bulk.maxPayloadSize`, both answered 413 when exceeded.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract;
use idpsync_engine::ids::Seq;
use serde_json::{Map, Value, json};

use super::WriteRequest;
use super::{groups, users};
use crate::auth::Scope;
use crate::error::Error;
use crate::query::ListParams;
use crate::service::Service;
use crate::wire::{Reply, ScimJson, etag_of};

/// The URN of a bulk response.
pub(crate) const BULK_RESPONSE_URN: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";

/// One operation of a bulk request.
#[derive(Clone, Debug)]
struct BulkOperation {
    method: Method,
    bulk_id: Option<String>,
    version: Option<Seq>,
    path: String,
    data: Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// `POST /Bulk`.
pub(crate) async fn run(
    extract::State(service): extract::State<Arc<Service>>,
    scope: Scope,
    body: ScimJson,
) -> Result<Reply, Error> {
    let Value::Object(object) = &body.0 else {
        return Err(Error::invalid_syntax("a bulk request must be a JSON object"));
    };
    let member = |name: &str| {
        object
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    };
    let raw_operations = member("Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::invalid_syntax("a bulk request needs Operations"))?;
    let operations_max = service.settings.bulk_operations_max;
    if raw_operations.len() > operations_max {
        return Err(Error::TooLarge(format!(
            "the bulk request has {} operations; at most {operations_max} are accepted",
            raw_operations.len()
        )));
    }
    let fail_on_errors = match member("failOnErrors") {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            value
                .as_u64()
                .filter(|count| *count > 0)
                .ok_or_else(|| Error::invalid_value("failOnErrors must be a positive integer"))?,
        ),
    };
    let operations: Vec<BulkOperation> = raw_operations.iter().map(parse_operation).collect::<Result<_, _>>()?;
    let results = execute(&scope, &operations, fail_on_errors).await;
    let answered: Vec<Value> = results.into_iter().flatten().collect();
    Ok(Reply::ok(
        &json!({"schemas": [BULK_RESPONSE_URN], "Operations": answered}),
    ))
}

fn parse_operation(raw: &Value) -> Result<BulkOperation, Error> {
    let Value::Object(object) = raw else {
        return Err(Error::invalid_syntax("each bulk operation must be an object"));
    };
    let member = |name: &str| {
        object
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    };
    let method = match member("method")
        .and_then(Value::as_str)
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        Some("POST") => Method::Post,
        Some("PUT") => Method::Put,
        Some("PATCH") => Method::Patch,
        Some("DELETE") => Method::Delete,
        other => {
            return Err(Error::invalid_syntax(format!(
                "bulk method must be POST, PUT, PATCH or DELETE, not {other:?}"
            )));
        }
    };
    let path = member("path")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid_syntax("each bulk operation needs a path"))?
        .to_owned();
    let bulk_id = member("bulkId").and_then(Value::as_str).map(str::to_owned);
    if method == Method::Post && bulk_id.is_none() {
        return Err(Error::invalid_syntax("a bulk POST needs a bulkId"));
    }
    let version = match member("version").and_then(Value::as_str) {
        Some(text) => Some(super::parse_etag(text).ok_or_else(|| {
            Error::bad(
                crate::error::ScimType::InvalidVers,
                format!("version {text:?} is not a version of this server"),
            )
        })?),
        None => None,
    };
    Ok(BulkOperation {
        method,
        bulk_id,
        version,
        path,
        data: member("data").cloned().unwrap_or(Value::Null),
    })
}

/// Runs the operations, each as soon as its references resolve; returns each operation's
/// answer by position (`None` for operations not run because `failOnErrors` stopped the run).
async fn execute(scope: &Scope, operations: &[BulkOperation], fail_on_errors: Option<u64>) -> Vec<Option<Value>> {
    let mut results: Vec<Option<Value>> = vec![None; operations.len()];
    let declared: HashMap<&str, usize> = operations
        .iter()
        .enumerate()
        .filter_map(|(index, operation)| operation.bulk_id.as_deref().map(|id| (id, index)))
        .collect();
    let mut created: HashMap<String, String> = HashMap::new();
    let mut pending: Vec<usize> = (0..operations.len()).collect();
    let mut errors = 0u64;
    while !pending.is_empty() {
        let mut waiting = Vec::new();
        let mut progressed = false;
        for index in pending {
            if fail_on_errors.is_some_and(|limit| errors >= limit) {
                return results;
            }
            let operation = &operations[index];
            let references = references_of(operation);
            let unknown = references.iter().find(|id| !declared.contains_key(id.as_str()));
            if let Some(unknown) = unknown {
                errors += 1;
                results[index] = Some(failure(
                    operation,
                    &Error::Conflict(format!("bulkId {unknown:?} is not defined in this request")),
                ));
                progressed = true;
                continue;
            }
            if references.iter().any(|id| !created.contains_key(id)) {
                waiting.push(index);
                continue;
            }
            progressed = true;
            let resolved = resolve(operation, &created);
            match run_one(scope, &resolved).await {
                Ok(reply) => {
                    // A created resource's id is the last segment of its `Location`.
                    if let (Some(bulk_id), Some(id)) = (
                        &operation.bulk_id,
                        reply.location_url().and_then(|location| location.rsplit('/').next()),
                    ) {
                        created.insert(bulk_id.clone(), id.to_owned());
                    }
                    results[index] = Some(success(operation, &resolved, &reply, scope));
                }
                Err(error) => {
                    errors += 1;
                    results[index] = Some(failure(operation, &error));
                }
            }
        }
        if !progressed {
            // What still waits references operations that failed or that wait in turn.
            for index in waiting {
                results[index] = Some(failure(
                    &operations[index],
                    &Error::Conflict(
                        "a bulkId reference could not be resolved (circular, or to a failed operation)".to_owned(),
                    ),
                ));
            }
            break;
        }
        pending = waiting;
    }
    results
}

async fn run_one(scope: &Scope, operation: &BulkOperation) -> Result<Reply, Error> {
    let path = operation.path.trim();
    let (endpoint, id) = match path.trim_start_matches('/').split_once('/') {
        Some((endpoint, id)) => (endpoint, Some(id)),
        None => (path.trim_start_matches('/'), None),
    };
    let request = WriteRequest {
        body: operation.data.clone(),
        params: ListParams::default(),
        expected_version: operation.version,
    };
    let is_users = endpoint.eq_ignore_ascii_case("Users");
    let is_groups = endpoint.eq_ignore_ascii_case("Groups");
    match (operation.method, id) {
        (Method::Post, None) if is_users => users::create(scope, &request).await,
        (Method::Post, None) if is_groups => groups::create(scope, &request).await,
        (Method::Put, Some(id)) if is_users => users::replace(scope, id, &request).await,
        (Method::Put, Some(id)) if is_groups => groups::replace(scope, id, &request).await,
        (Method::Patch, Some(id)) if is_users => users::patch(scope, id, &request).await,
        (Method::Patch, Some(id)) if is_groups => groups::patch(scope, id, &request).await,
        (Method::Delete, Some(id)) if is_users => users::delete(scope, id, operation.version).await,
        (Method::Delete, Some(id)) if is_groups => groups::delete(scope, id, operation.version).await,
        _ => Err(Error::invalid_path(format!(
            "{} {path} is not an operation of this server",
            operation.method.as_str()
        ))),
    }
}

/// The bulkIds an operation references, in its path and anywhere in its data.
fn references_of(operation: &BulkOperation) -> Vec<String> {
    let mut found = Vec::new();
    for segment in operation.path.split('/') {
        if let Some(id) = segment.strip_prefix("bulkId:") {
            found.push(id.to_owned());
        }
    }
    collect_references(&operation.data, &mut found);
    found
}

fn collect_references(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::String(text) => {
            if let Some(id) = text.strip_prefix("bulkId:") {
                found.push(id.to_owned());
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_references(item, found)),
        Value::Object(members) => members.values().for_each(|member| collect_references(member, found)),
        _ => {}
    }
}

/// The operation with every `bulkId:` reference replaced by the id it created.
fn resolve(operation: &BulkOperation, created: &HashMap<String, String>) -> BulkOperation {
    let mut resolved = operation.clone();
    resolved.path = operation
        .path
        .split('/')
        .map(
            |segment| match segment.strip_prefix("bulkId:").and_then(|id| created.get(id)) {
                Some(id) => id.as_str(),
                None => segment,
            },
        )
        .collect::<Vec<_>>()
        .join("/");
    substitute(&mut resolved.data, created);
    resolved
}

fn substitute(value: &mut Value, created: &HashMap<String, String>) {
    match value {
        Value::String(text) => {
            if let Some(id) = text.strip_prefix("bulkId:").and_then(|id| created.get(id)) {
                *text = id.clone();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| substitute(item, created)),
        Value::Object(members) => members.values_mut().for_each(|member| substitute(member, created)),
        _ => {}
    }
}

fn success(operation: &BulkOperation, resolved: &BulkOperation, reply: &Reply, scope: &Scope) -> Value {
    let mut answer = Map::new();
    answer.insert("method".to_owned(), Value::String(operation.method.as_str().to_owned()));
    if let Some(bulk_id) = &operation.bulk_id {
        answer.insert("bulkId".to_owned(), Value::String(bulk_id.clone()));
    }
    let location = reply
        .location_url()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{}{}", scope.base.as_str(), resolved.path));
    answer.insert("location".to_owned(), Value::String(location));
    if let Some(version) = reply.version() {
        answer.insert("version".to_owned(), Value::String(etag_of(version)));
    }
    answer.insert("status".to_owned(), Value::String(reply.status().as_u16().to_string()));
    Value::Object(answer)
}

fn failure(operation: &BulkOperation, error: &Error) -> Value {
    let mut answer = Map::new();
    answer.insert("method".to_owned(), Value::String(operation.method.as_str().to_owned()));
    if let Some(bulk_id) = &operation.bulk_id {
        answer.insert("bulkId".to_owned(), Value::String(bulk_id.clone()));
    }
    if operation.method != Method::Post {
        answer.insert("location".to_owned(), Value::String(operation.path.clone()));
    }
    // The request's middleware sees only the bulk response, so an operation's internal failure
    // is logged here; its answer, like any 500, says only "internal error".
    if let Error::Internal(cause) = error {
        tracing::error!(%cause, method = operation.method.as_str(), path = %operation.path, "bulk operation failed");
    }
    answer.insert("status".to_owned(), Value::String(error.status().as_u16().to_string()));
    answer.insert(
        "response".to_owned(),
        serde_json::to_value(error.body()).unwrap_or(Value::Null),
    );
    Value::Object(answer)
}
