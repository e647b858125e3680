//! The one error type of the SCIM edge: its HTTP status, its RFC 7644 `scimType`, and its
//! RFC 7644 §3.12 error body (`schemas`, `status` as a string, `scimType`, `detail`). The
//! response that carries the body is made in `wire`, with every other response.
//!
//! Bad input explains itself in `detail`. An internal failure answers only "internal error";
//! its cause is logged by the middleware, never returned (see `wire`).

use axum::http::StatusCode;
use idpsync_engine::{Rejection, SubmitError};
use serde::Serialize;

/// The URN of an error response.
pub(crate) const ERROR_URN: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// RFC 7644 Table 9: the detail error types of a 400 (and 409, 413) answer.
#[cfg_attr(feature = "internals", visibility::make(pub))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScimType {
    /// The filter is malformed or names something that cannot be compared.
    InvalidFilter,
    /// The filter yields more results than the server will process.
    TooMany,
    /// A unique attribute's value is taken.
    Uniqueness,
    /// The change is not allowed by the attribute's mutability.
    Mutability,
    /// The request body is not valid SCIM.
    InvalidSyntax,
    /// A PATCH path or attribute path is malformed or unknown.
    InvalidPath,
    /// A PATCH path matched nothing where it must.
    NoTarget,
    /// A value is of the wrong type or out of bounds.
    InvalidValue,
    /// The request's version (ETag) is not one the server understands.
    InvalidVers,
}

impl ScimType {
    /// The name in an error body.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ScimType::InvalidFilter => "invalidFilter",
            ScimType::TooMany => "tooMany",
            ScimType::Uniqueness => "uniqueness",
            ScimType::Mutability => "mutability",
            ScimType::InvalidSyntax => "invalidSyntax",
            ScimType::InvalidPath => "invalidPath",
            ScimType::NoTarget => "noTarget",
            ScimType::InvalidValue => "invalidValue",
            ScimType::InvalidVers => "invalidVers",
        }
    }
}

/// Why a SCIM request failed.
#[cfg_attr(feature = "internals", visibility::make(pub))]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum Error {
    /// 400: the request is wrong; `scim_type` says how.
    #[error("{detail}")]
    BadRequest {
        /// The kind of mistake.
        scim_type: ScimType,
        /// What is wrong, for the client.
        detail: String,
    },
    /// 401: no token, or not a valid one.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// 404: no such resource or endpoint.
    #[error("{0}")]
    NotFound(String),
    /// 405: the endpoint does not take this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409: a unique attribute's value is taken.
    #[error("{0}")]
    Conflict(String),
    /// 412: `If-Match` names another version.
    #[error("{0}")]
    PreconditionFailed(String),
    /// 413: the body or the bulk request is larger than advertised.
    #[error("{0}")]
    TooLarge(String),
    /// 429: the token has as many requests in progress as it may; try again after
    /// `retry_after_seconds`.
    #[error("{detail}")]
    TooManyRequests {
        /// What limit was reached, for the client.
        detail: String,
        /// The `Retry-After` header's value.
        retry_after_seconds: u32,
    },
    /// 501: an endpoint this server does not implement.
    #[error("{0}")]
    NotImplemented(String),
    /// 503: the engine is shutting down.
    #[error("the service is shutting down")]
    Unavailable,
    /// 503: the log cannot be written now (a full disk, a failing database); nothing was
    /// changed. Try again after `retry_after_seconds`.
    #[error("the log cannot be written now; nothing was changed: try again in {retry_after_seconds} s")]
    LogUnavailable {
        /// The `Retry-After` header's value.
        retry_after_seconds: u32,
    },
    /// 503: the server is running as much of this kind of work as it takes; try again after
    /// `retry_after_seconds`.
    #[error("{detail}")]
    Busy {
        /// What is busy, for the client.
        detail: String,
        /// The `Retry-After` header's value.
        retry_after_seconds: u32,
    },
    /// 500: a failure of the server; the cause is logged, never returned.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// 400 `invalidValue`.
    pub(crate) fn invalid_value(detail: impl Into<String>) -> Error {
        Error::bad(ScimType::InvalidValue, detail)
    }

    /// 400 `invalidSyntax`.
    pub(crate) fn invalid_syntax(detail: impl Into<String>) -> Error {
        Error::bad(ScimType::InvalidSyntax, detail)
    }

    /// 400 `invalidFilter`.
    pub(crate) fn invalid_filter(detail: impl Into<String>) -> Error {
        Error::bad(ScimType::InvalidFilter, detail)
    }

    /// 400 `invalidPath`.
    pub(crate) fn invalid_path(detail: impl Into<String>) -> Error {
        Error::bad(ScimType::InvalidPath, detail)
    }

    /// 400 `noTarget`.
    pub(crate) fn no_target(detail: impl Into<String>) -> Error {
        Error::bad(ScimType::NoTarget, detail)
    }

    /// 400 `mutability`.
    pub(crate) fn mutability(detail: impl Into<String>) -> Error {
        Error::bad(ScimType::Mutability, detail)
    }

    /// 400 with a detail error type.
    pub(crate) fn bad(scim_type: ScimType, detail: impl Into<String>) -> Error {
        Error::BadRequest {
            scim_type,
            detail: detail.into(),
        }
    }

    /// The HTTP status.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Error::Unavailable | Error::LogUnavailable { .. } | Error::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The detail error type, if the status has one.
    pub(crate) fn scim_type(&self) -> Option<ScimType> {
        match self {
            Error::BadRequest { scim_type, .. } => Some(*scim_type),
            Error::Conflict(_) => Some(ScimType::Uniqueness),
            _ => None,
        }
    }

    /// The body's `detail`: the message for client errors, a fixed text for internal ones.
    fn detail(&self) -> String {
        match self {
            Error::Internal(_) => "internal error".to_owned(),
            other => other.to_string(),
        }
    }

    /// The error body.
    pub(crate) fn body(&self) -> ErrorBody {
        ErrorBody {
            schemas: [ERROR_URN],
            status: self.status().as_u16().to_string(),
            scim_type: self.scim_type().map(ScimType::as_str),
            detail: self.detail(),
        }
    }
}

/// An RFC 7644 error body.
#[derive(Debug, Serialize)]
pub(crate) struct ErrorBody {
    schemas: [&'static str; 1],
    status: String,
    #[serde(rename = "scimType", skip_serializing_if = "Option::is_none")]
    scim_type: Option<&'static str>,
    detail: String,
}

impl From<Rejection> for Error {
    fn from(rejection: Rejection) -> Error {
        match rejection {
            Rejection::UserNameTaken { user_name, .. } => {
                Error::Conflict(format!("userName {user_name:?} is already taken"))
            }
            Rejection::UserNotFound(user) => Error::NotFound(format!("User {user} not found")),
            Rejection::GroupNotFound(group) => Error::NotFound(format!("Group {group} not found")),
            Rejection::VersionMismatch { expected, actual } => Error::PreconditionFailed(format!(
                "the resource is at version W/\"{}\", not W/\"{}\"",
                actual.0, expected.0
            )),
            Rejection::MemberNotFound(member) => {
                Error::invalid_value(format!("member {} does not exist", member_id(member)))
            }
            owned @ Rejection::OwnedExternalId { .. } => Error::mutability(owned.to_string()),
            last @ Rejection::LastOwner { .. } => Error::mutability(last.to_string()),
            other => Error::invalid_value(other.to_string()),
        }
    }
}

fn member_id(member: idpsync_engine::ids::Member) -> String {
    match member {
        idpsync_engine::ids::Member::User(user) => user.to_string(),
        idpsync_engine::ids::Member::Group(group) => group.to_string(),
    }
}

impl From<SubmitError> for Error {
    fn from(error: SubmitError) -> Error {
        match error {
            SubmitError::Rejected(rejection) => rejection.into(),
            SubmitError::Storage(cause) => Error::LogUnavailable {
                retry_after_seconds: retry_after_seconds(cause.retry_after()),
            },
            SubmitError::Closed => Error::Unavailable,
        }
    }
}

/// A `Retry-After` value: whole seconds, at least one.
pub(crate) fn retry_after_seconds(wait: std::time::Duration) -> u32 {
    u32::try_from(wait.as_secs().max(1)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_follow_rfc_7644() {
        let body = serde_json::to_value(Error::invalid_filter("bad").body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"schemas": [ERROR_URN], "status": "400", "scimType": "invalidFilter", "detail": "bad"})
        );
        let body = serde_json::to_value(Error::NotFound("gone".into()).body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"schemas": [ERROR_URN], "status": "404", "detail": "gone"})
        );
    }

    #[test]
    fn internal_causes_never_reach_the_body() {
        let body = serde_json::to_value(Error::Internal("disk on fire at /var/x".into()).body()).unwrap();
        assert_eq!(body["detail"], "internal error");
        assert_eq!(body["status"], "500");
    }

    #[test]
    fn rejections_map_to_scim_statuses() {
        let taken: Error = Rejection::UserNameTaken {
            user_name: "a".into(),
            existing: idpsync_engine::ids::UserId::new(),
        }
        .into();
        assert_eq!(
            (taken.status(), taken.scim_type()),
            (StatusCode::CONFLICT, Some(ScimType::Uniqueness))
        );
        let stale: Error = Rejection::VersionMismatch {
            expected: idpsync_engine::ids::Seq(1),
            actual: idpsync_engine::ids::Seq(2),
        }
        .into();
        assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    }
}
