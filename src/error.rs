//! The one place where errors become HTTP responses.
//!
//! Handlers return [`ApiError`]. Client mistakes carry a status, a stable snake_case `code` and a
//! message that says how to fix the request. Anything else (a store failure, a bug) is logged
//! here and leaves as an opaque 500, so internals never leak to callers.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found (or not visible to this token)"),
        )
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn internal(context: impl std::fmt::Display) -> Self {
        tracing::error!(error = %context, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the server log has the details",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::not_found("object"),
            StoreError::Conflict(msg) => ApiError::conflict("conflict", msg),
            StoreError::Internal(msg) => ApiError::internal(format!("store: {msg}")),
            StoreError::Unavailable(msg) => {
                tracing::warn!(error = %msg, "store unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the store cannot be reached just now and nothing of this request was stored; send it again shortly (events already stored are answered as duplicates)",
                )
            }
            StoreError::Full(msg) => {
                tracing::error!(error = %msg, "store full");
                ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "insufficient_storage",
                    "the store's disk is full and nothing of this request was stored; send it again once the operator has made room",
                )
            }
            StoreError::StaleConfig(_) => ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "configuration_changing",
                "the configuration is changing on another node; send the request again",
            ),
        }
    }
}

/// The body of every error response.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, snake_case: what went wrong, for programs.
    pub code: String,
    /// What went wrong and how to fix the request, for people.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The answer to a request whose handler panicked (a bug): 500 in the envelope, logged.
pub fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic");
    ApiError::internal(format!("a handler panicked: {what}")).into_response()
}

/// The last word on every error response: one that left a handler or extractor without the
/// envelope (axum's own 405, a path that is not UTF-8, a range that cannot be served…) gets it,
/// keeping its status and its text as the message. HTML pages (the console's) pass untouched.
pub async fn envelope_every_error(resp: Response) -> Response {
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !(status.is_client_error() || status.is_server_error())
        || content_type.starts_with("application/json")
        || content_type.starts_with("text/html")
    {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let (code, fallback) = match status.as_u16() {
        400 => ("bad_request", "the request is malformed"),
        403 => ("forbidden", "not allowed"),
        404 => ("no_route", "no such endpoint; the API lives under /v1 (see /v1/openapi.json)"),
        405 => ("method_not_allowed", "this endpoint does not take that method; see /v1/openapi.json (the Allow header lists the methods it takes)"),
        413 => ("payload_too_large", "the body is larger than this endpoint takes"),
        415 => ("unsupported_media_type", "send the body with the Content-Type this endpoint takes"),
        416 => ("range_not_satisfiable", "the Range asked for lies outside the file; ask for bytes within its length"),
        422 => ("unprocessable", "the request could not be processed"),
        _ if status.is_server_error() => ("internal", "internal error; the server log has the details"),
        _ => ("error", "the request failed"),
    };
    let message = if text.is_empty() || status.is_server_error() {
        fallback.to_string()
    } else {
        text
    };
    let mut out = ApiError::new(status, code, message).into_response();
    for (name, value) in parts.headers.iter() {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            out.headers_mut().append(name.clone(), value.clone());
        }
    }
    out
}
