//! The API's OpenAPI document, generated from the handlers' `#[utoipa::path]` attributes and
//! the types of [`super::wire`]: served at `GET /api/v1/openapi.json`, and committed as
//! `src/api/openapi.json`, which a test keeps equal to what the code generates
//! (`IDPSYNC_WRITE_OPENAPI=1 cargo test -p idpsync --lib api::doc` rewrites it).
//!
//! Every operation has an `operationId` and a tag, every one but the document itself needs the
//! admin token (the `adminToken` bearer scheme), and every one can fail with the answers of
//! [`StandardErrors`] besides its own, all in the one error format ([`super::error::ErrorBody`]).

use std::sync::LazyLock;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, RefOr, ResponseBuilder};
use utoipa::{IntoParams, Modify, OpenApi};

use super::error::ErrorBody;
use super::{acks, audit, bindings, changes, directory, erase, history, integrations, roles, tokens, wire};

/// The `{tenant}` path parameter every tenant route has.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code, reason = "read by the OpenAPI derive only")]
pub struct TenantPath {
    /// The tenant; the admin token must be this tenant's.
    tenant: String,
}

/// The API described.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "openZro IdP-Sync management API",
        version = "1",
        description = "Bindings, the directory and roles now and in the past, timelines, integrations, the change \
            stream, offboarding audits, erasure and tokens. JSON fields are camelCase. Every operation but this \
            document needs an admin token (`idpsync token create --admin --tenant T`) as \
            `Authorization: Bearer <token>`; a token is bound to one tenant. Errors are \
            `{\"error\": {\"code\", \"message\"}}`."
    ),
    servers((url = "/api/v1")),
    security(("adminToken" = [])),
    modifiers(&Security, &StandardErrors),
    tags(
        (name = "document", description = "This document"),
        (name = "tenants", description = "The tenant's head and counts"),
        (name = "bindings", description = "Which groups a management-server resource references"),
        (name = "directory", description = "Users, groups, members and access, now or at a past moment"),
        (name = "history", description = "Timelines and membership intervals"),
        (name = "integrations", description = "Sync status, held syncs, runs on request"),
        (name = "changes", description = "The change stream and its acknowledgements"),
        (name = "audit", description = "Offboarding audits and the leavers' report"),
        (name = "erasure", description = "Erasure of a user's personal fields"),
        (name = "roles", description = "Every user's management role from the role bindings, now or at a past moment"),
        (name = "tokens", description = "The tenant's SCIM and admin tokens: listed, created, revoked"),
    ),
    paths(
        super::openapi,
        super::tenant_summary,
        bindings::list,
        bindings::get_one,
        bindings::put,
        bindings::delete,
        directory::list_users,
        directory::get_user,
        directory::list_groups,
        directory::get_group,
        directory::list_members,
        history::user_timeline,
        history::group_timeline,
        history::intervals,
        erase::erase,
        audit::user_audit,
        audit::leavers,
        integrations::list,
        integrations::get_one,
        integrations::trigger,
        integrations::confirm,
        integrations::reject,
        changes::changes,
        acks::acknowledge,
        roles::list,
        tokens::list,
        tokens::create,
        tokens::revoke,
    ),
    components(schemas(ErrorBody, crate::audit::Format, wire::AccessChangeRow, wire::LoggedEventRow, wire::RoleChangeRow))
)]
pub struct ApiDoc;

/// The document as served, pretty-printed JSON.
pub fn document() -> &'static str {
    static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
        let mut text = ApiDoc::openapi()
            .to_pretty_json()
            .expect("the OpenAPI document serializes");
        text.push('\n');
        text
    });
    &DOCUMENT
}

/// Adds the `adminToken` bearer scheme.
struct Security;

impl Modify for Security {
    fn modify(&self, document: &mut Document) {
        let components = document.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "An admin token of the tenant the path names: `idpsync token create --admin --tenant T`.",
            ))
            .build();
        components.add_security_scheme("adminToken", SecurityScheme::Http(scheme));
    }
}

/// The one operation that needs no token.
const OPEN_OPERATION: &str = "getOpenApiDocument";

/// The failures any tenant operation can answer, added to each where it does not describe
/// them itself: a missing or unknown token (401), another tenant's token (403), a tenant with
/// no log (404), too many requests in progress for the token (429), a failure of the service
/// (500), the log unavailable or the service stopping (503).
pub struct StandardErrors;

/// `(status, component name, description)` of each of [`StandardErrors`].
const STANDARD_ERRORS: [(&str, &str, &str); 6] = [
    (
        "401",
        "Unauthorized",
        "No admin token, or one that is unknown or revoked",
    ),
    ("403", "Forbidden", "The token is another tenant's"),
    ("404", "NotFound", "The tenant has no log yet"),
    (
        "429",
        "TooManyRequests",
        "The token has as many requests in progress as it may; `Retry-After` says when to try again",
    ),
    ("500", "Internal", "A failure of the service; its log has the cause"),
    (
        "503",
        "Unavailable",
        "The log cannot be written or the service is stopping; `Retry-After` says when to try again",
    ),
];

impl Modify for StandardErrors {
    fn modify(&self, document: &mut Document) {
        let components = document.components.get_or_insert_with(Default::default);
        for (_, name, description) in STANDARD_ERRORS {
            let response = ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Error")))
                        .build(),
                )
                .build();
            components.responses.insert(name.to_owned(), RefOr::T(response));
        }
        for item in document.paths.paths.values_mut() {
            let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete];
            for operation in operations.into_iter().flatten() {
                // The public document itself needs no token and fails in none of these ways.
                if operation.operation_id.as_deref() == Some(OPEN_OPERATION) {
                    continue;
                }
                for (status, name, _) in STANDARD_ERRORS {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::document;

    const COMMITTED: &str = include_str!("openapi.json");

    #[test]
    fn the_committed_document_is_the_generated_one() {
        if std::env::var_os("IDPSYNC_WRITE_OPENAPI").is_some() {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/api/openapi.json");
            std::fs::write(path, document()).expect("write src/api/openapi.json");
            return;
        }
        assert!(
            COMMITTED == document(),
            "src/api/openapi.json differs from the document the code generates; rewrite it with \
             `IDPSYNC_WRITE_OPENAPI=1 cargo test -p idpsync --lib api::doc` and review the diff"
        );
    }

    #[test]
    fn every_operation_has_an_operation_id_a_summary_and_a_tag() {
        let document: serde_json::Value = serde_json::from_str(document()).unwrap();
        let mut ids = std::collections::BTreeSet::new();
        for (path, operations) in document["paths"].as_object().unwrap() {
            for (method, operation) in operations.as_object().unwrap() {
                let id = operation["operationId"].as_str();
                assert!(id.is_some(), "{method} {path} has no operationId");
                assert!(ids.insert(id), "{method} {path}: operationId {id:?} is used twice");
                assert!(
                    operation["summary"].as_str().is_some_and(|summary| !summary.is_empty()),
                    "{method} {path} has no summary (the first line of the handler's doc comment)"
                );
                assert!(
                    operation["tags"].as_array().is_some_and(|tags| !tags.is_empty()),
                    "{method} {path} has no tag"
                );
            }
        }
        assert_eq!(
            document["components"]["securitySchemes"]["adminToken"]["scheme"],
            "bearer"
        );
        assert!(document["components"]["schemas"]["Error"].is_object());
    }
}
