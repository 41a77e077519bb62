//! The one error type of the HTTP API: a status, a snake_case code from
//! API.md and a human message. Internal details are logged, never sent.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use switchboard_core::DomainError;
use switchboard_projections::ReadError;
use switchboard_streams::{AppendError, LogError};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required",
        )
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
    pub fn internal(context: &str, err: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %err, "{context}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        let msg = e.to_string();
        match e {
            DomainError::Invalid(_) => ApiError::invalid(msg),
            DomainError::Forbidden(_) => ApiError::forbidden(msg),
            DomainError::NotAMember => ApiError::new(StatusCode::FORBIDDEN, "not_a_member", msg),
            DomainError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", msg),
            DomainError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "conflict", msg),
        }
    }
}

impl From<ReadError> for ApiError {
    fn from(e: ReadError) -> Self {
        ApiError::internal("read model query failed", &e)
    }
}

impl From<LogError> for ApiError {
    fn from(e: LogError) -> Self {
        match e {
            LogError::Unavailable(m) => {
                tracing::warn!(error = %m, "log unavailable");
                ApiError::unavailable("the log is unreachable; try again")
            }
            LogError::Corrupt(_) => ApiError::internal("log read", &e),
        }
    }
}

impl From<AppendError> for ApiError {
    fn from(e: AppendError) -> Self {
        match e {
            AppendError::Unavailable(m) => {
                tracing::warn!(error = %m, "append refused: log unavailable");
                ApiError::unavailable("the log could not be written; nothing was stored")
            }
            AppendError::Unknown(m) => {
                tracing::warn!(error = %m, "append outcome unknown");
                ApiError::unavailable(
                    "the log did not confirm the write in time; it may or may not be stored. \
                     Retrying with the same client_msg_id is safe",
                )
            }
            AppendError::Conflict => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "too many concurrent writes to this channel; retry",
            ),
            AppendError::Failed(_) => ApiError::internal("append failed", &e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
