//! The management API's one error type and the extractors that report their rejections in it.
//!
//! Every error is a JSON body `{"error": {"code": "...", "message": "..."}}` with a status that
//! says what kind of mistake it is. Bad input explains itself; internal failures say only that
//! something went wrong, and carry their cause in a response extension for the logging
//! middleware ([`log_failures`]), never in the body.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use idpsync_engine::{EngineError, Rejection, SubmitError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

/// A failed API request.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// A `Retry-After` header, in seconds, for errors that pass.
    retry_after_seconds: Option<u32>,
}

/// The cause of a 500, for the logging middleware.
#[derive(Clone, Debug)]
struct InternalCause(String);

impl ApiError {
    /// An error with this status, machine-readable code and message for people.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after_seconds: None,
        }
    }

    /// The same error, telling the client to try again after this many seconds.
    pub fn retry_after(mut self, seconds: u32) -> ApiError {
        self.retry_after_seconds = Some(seconds);
        self
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 404: what the request names does not exist.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 401: no valid admin token.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 429: the token has as many requests in progress as it may; the response says when to
    /// try again.
    pub fn too_many_requests(message: impl Into<String>, retry_after_seconds: u32) -> ApiError {
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", message).retry_after(retry_after_seconds)
    }

    /// 500: a failure that is not the caller's; `cause` is logged, not returned.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", cause.to_string())
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// What went wrong, for people.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The body of every error: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody<'a> {
    /// What went wrong.
    pub error: ErrorDetail<'a>,
}

/// What went wrong: a code for programs, a message for people.
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail<'a> {
    /// Machine-readable: `bad_request`, `unauthorized`, `not_found`, `user_not_found`,
    /// `binding_shape`, `hold_superseded`, `log_unavailable`, …
    #[schema(example = "not_found")]
    pub code: &'a str,
    /// For people.
    pub message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let internal = self.status == StatusCode::INTERNAL_SERVER_ERROR;
        let message = if internal {
            "something went wrong; the server log has the cause"
        } else {
            self.message.as_str()
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"idpsync\", error=\"invalid_token\""),
            );
        }
        if let Some(seconds) = self.retry_after_seconds {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if internal {
            response.extensions_mut().insert(InternalCause(self.message));
        }
        response
    }
}

/// Middleware: logs the cause of every 500 the API answered.
pub async fn log_failures(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    if let Some(InternalCause(cause)) = response.extensions().get::<InternalCause>() {
        tracing::error!(%method, %path, %cause, "management API request failed");
    }
    response
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> ApiError {
        let (status, code) = match &rejection {
            Rejection::UserNotFound(_) => (StatusCode::NOT_FOUND, "user_not_found"),
            Rejection::GroupNotFound(_) => (StatusCode::UNPROCESSABLE_ENTITY, "group_not_found"),
            Rejection::MemberNotFound(_) => (StatusCode::UNPROCESSABLE_ENTITY, "member_not_found"),
            Rejection::BindingNotFound(_) => (StatusCode::NOT_FOUND, "binding_not_found"),
            Rejection::UserNameTaken { .. } => (StatusCode::CONFLICT, "user_name_taken"),
            Rejection::UserErased(_) => (StatusCode::CONFLICT, "user_erased"),
            Rejection::VersionMismatch { .. } => (StatusCode::PRECONDITION_FAILED, "version_mismatch"),
            Rejection::BindingShape { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "binding_shape"),
            Rejection::HoldSuperseded { .. } => (StatusCode::CONFLICT, "hold_superseded"),
            Rejection::HoldExpired { .. } => (StatusCode::CONFLICT, "hold_expired"),
            Rejection::ChangeNotFound { .. } => (StatusCode::NOT_FOUND, "change_not_found"),
            Rejection::NotARevocation { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "not_a_revocation"),
            Rejection::LastOwner { .. } => (StatusCode::CONFLICT, "last_owner"),
            _ => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
        };
        ApiError::new(status, code, rejection.to_string())
    }
}

impl From<SubmitError> for ApiError {
    fn from(error: SubmitError) -> ApiError {
        match error {
            SubmitError::Rejected(rejection) => rejection.into(),
            SubmitError::Storage(cause) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "log_unavailable",
                format!("the log could not be written, nothing was changed: {cause}"),
            )
            .retry_after(u32::try_from(cause.retry_after().as_secs().max(1)).unwrap_or(u32::MAX)),
            SubmitError::Closed => shutting_down(),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> ApiError {
        match error {
            EngineError::UnknownTenant(tenant) => ApiError::not_found(format!("tenant {tenant} does not exist")),
            EngineError::Closed => shutting_down(),
            other => ApiError::internal(other),
        }
    }
}

fn shutting_down() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "shutting_down",
        "the service is shutting down; try again shortly",
    )
}

/// `axum::Json`, with rejections as [`ApiError`]s.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with `Content-Type: application/json`",
        ),
        other => ApiError::bad_request(format!("invalid JSON body: {}", other.body_text())),
    }
}

/// `axum::extract::Query`, with rejections as [`ApiError`]s.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

fn query_rejection(rejection: QueryRejection) -> ApiError {
    ApiError::bad_request(format!("invalid query string: {}", rejection.body_text()))
}
