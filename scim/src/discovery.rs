//! The discovery endpoints (RFC 7644 §4): `/ServiceProviderConfig`, `/ResourceTypes` and
//! `/Schemas`, rendered from the same definitions the server runs on, so they advertise
//! exactly what works. They need no token: they describe the server, not a tenant's data.

use std::sync::Arc;

use axum::extract::State;
use serde_json::{Value, json};

use crate::auth::RequestBase;
use crate::error::Error;
use crate::query::LIST_RESPONSE_URN;
use crate::resource::BaseUrl;
use crate::schema::{Attribute, RESOURCE_TYPES, ResourceType, Schema};
use crate::service::Service;
use crate::wire::{PathSegment, Reply};

const SERVICE_PROVIDER_CONFIG_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RESOURCE_TYPE_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

/// `GET /ServiceProviderConfig`.
pub(crate) async fn service_provider_config(
    State(service): State<Arc<Service>>,
    RequestBase(base): RequestBase,
) -> Reply {
    let settings = &service.settings;
    Reply::ok(&json!({
        "schemas": [SERVICE_PROVIDER_CONFIG_URN],
        "documentationUri": "https://github.com/openzro/idp-sync",
        "patch": {"supported": true},
        "bulk": {
            "supported": true,
            "maxOperations": settings.bulk_operations_max,
            "maxPayloadSize": settings.bulk_payload_len_max,
        },
        // A filter matches, and a sortBy orders, at most maxResults resources (400 tooMany
        // beyond): the one number RFC 7643 gives for both.
        "filter": {"supported": true, "maxResults": settings.filter_results_max},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "A per-tenant bearer token created with `idpsync token create`.",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{}/ServiceProviderConfig", base.as_str()),
        },
    }))
}

/// `GET /ResourceTypes`.
pub(crate) async fn resource_types(RequestBase(base): RequestBase) -> Reply {
    let resources: Vec<Value> = RESOURCE_TYPES
        .iter()
        .map(|resource| resource_type(resource, &base))
        .collect();
    Reply::ok(&list(resources))
}

/// `GET /ResourceTypes/{name}`.
pub(crate) async fn resource_type_by_name(
    RequestBase(base): RequestBase,
    PathSegment(name): PathSegment,
) -> Result<Reply, Error> {
    RESOURCE_TYPES
        .iter()
        .find(|resource| resource.name.eq_ignore_ascii_case(&name))
        .map(|resource| Reply::ok(&resource_type(resource, &base)))
        .ok_or_else(|| Error::NotFound(format!("no resource type {name}")))
}

/// `GET /Schemas`.
pub(crate) async fn schemas(RequestBase(base): RequestBase) -> Reply {
    Reply::ok(&list(
        all_schemas().map(|schema| schema_document(schema, &base)).collect(),
    ))
}

/// `GET /Schemas/{urn}`.
pub(crate) async fn schema_by_id(RequestBase(base): RequestBase, PathSegment(id): PathSegment) -> Result<Reply, Error> {
    all_schemas()
        .find(|schema| schema.id.eq_ignore_ascii_case(&id))
        .map(|schema| Reply::ok(&schema_document(schema, &base)))
        .ok_or_else(|| Error::NotFound(format!("no schema {id}")))
}

fn all_schemas() -> impl Iterator<Item = &'static Schema> {
    RESOURCE_TYPES
        .iter()
        .flat_map(|resource| std::iter::once(resource.schema).chain(resource.extensions.iter().copied()))
}

fn list(resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE_URN],
        "totalResults": resources.len(),
        "itemsPerPage": resources.len(),
        "startIndex": 1,
        "Resources": resources,
    })
}

fn resource_type(resource: &ResourceType, base: &BaseUrl) -> Value {
    let extensions: Vec<Value> = resource
        .extensions
        .iter()
        .map(|schema| json!({"schema": schema.id, "required": false}))
        .collect();
    json!({
        "schemas": [RESOURCE_TYPE_URN],
        "id": resource.name,
        "name": resource.name,
        "endpoint": resource.endpoint,
        "description": resource.description,
        "schema": resource.schema.id,
        "schemaExtensions": extensions,
        "meta": {
            "resourceType": "ResourceType",
            "location": format!("{}/ResourceTypes/{}", base.as_str(), resource.name),
        },
    })
}

fn schema_document(schema: &Schema, base: &BaseUrl) -> Value {
    json!({
        "schemas": [SCHEMA_URN],
        "id": schema.id,
        "name": schema.name,
        "description": schema.description,
        "attributes": schema.attributes.iter().map(attribute_document).collect::<Vec<_>>(),
        "meta": {
            "resourceType": "Schema",
            "location": format!("{}/Schemas/{}", base.as_str(), schema.id),
        },
    })
}

fn attribute_document(attribute: &Attribute) -> Value {
    let mut document = json!({
        "name": attribute.name,
        "type": attribute.kind.as_str(),
        "multiValued": attribute.multi_valued,
        "description": attribute.description,
        "required": attribute.required,
        "caseExact": attribute.case_exact,
        "mutability": attribute.mutability.as_str(),
        "returned": attribute.returned.as_str(),
        "uniqueness": if attribute.unique { "server" } else { "none" },
    });
    if !attribute.canonical_values.is_empty() {
        document["canonicalValues"] = json!(attribute.canonical_values);
    }
    if !attribute.reference_types.is_empty() {
        document["referenceTypes"] = json!(attribute.reference_types);
    }
    if !attribute.sub_attributes.is_empty() {
        document["subAttributes"] = Value::Array(attribute.sub_attributes.iter().map(attribute_document).collect());
    }
    document
}
