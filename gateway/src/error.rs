//! The one error type of the HTTP API: a status, a code from the fixed
//! set of API.md ([`ErrorCode`]) and a human message. Internal details are
//! logged, never sent: serde messages are rewritten so they name no Rust
//! type ([`client_message`]), and [`json_errors`] gives every error
//! response the API's JSON shape, including those axum answers by itself.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use std::fmt;
use switchboard_core::DomainError;
use switchboard_projections::ReadError;
use switchboard_streams::{AppendError, LogError};
use utoipa::ToSchema;

/// What went wrong, for a client to branch on (the `code` of an error
/// body, or of a real-time `error` frame). The status goes with the call
/// site: `invalid_request` is a 400 or a 422, `forbidden` and
/// `not_a_member` are both 403.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 401: no valid credential.
    Unauthorized,
    /// 403: authenticated, not allowed.
    Forbidden,
    /// 403: not a member of a channel whose existence the caller may know.
    NotAMember,
    /// 404: also where revealing existence would leak across tenants or
    /// private channels.
    NotFound,
    /// 400 (malformed) or 422 (well-formed, wrong shape).
    InvalidRequest,
    /// 409.
    Conflict,
    /// 413.
    PayloadTooLarge,
    /// 429, with `Retry-After`.
    RateLimited,
    /// 503, with `Retry-After`: the log could not be written or read.
    Unavailable,
    /// 405; the `Allow` header lists the methods that are.
    MethodNotAllowed,
    /// 500; details are in the server log only.
    Internal,
    /// A real-time connection follows as many channels as it may.
    TooManySubscriptions,
    /// 409: the channel is archived; its conversation is read-only.
    ChannelArchived,
    /// 409: the message carries as many distinct reactions as it may.
    TooManyReactions,
    /// 403: the server is read-only (`serve --read-only`): no write, no
    /// real-time stream.
    ReadOnly,
}

impl ErrorCode {
    /// Every code, for tests and documentation.
    pub const ALL: [ErrorCode; 15] = [
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotAMember,
        ErrorCode::NotFound,
        ErrorCode::InvalidRequest,
        ErrorCode::Conflict,
        ErrorCode::PayloadTooLarge,
        ErrorCode::RateLimited,
        ErrorCode::Unavailable,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Internal,
        ErrorCode::TooManySubscriptions,
        ErrorCode::ChannelArchived,
        ErrorCode::TooManyReactions,
        ErrorCode::ReadOnly,
    ];

    /// The wire form (the same as its serde form).
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotAMember => "not_a_member",
            ErrorCode::NotFound => "not_found",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Internal => "internal",
            ErrorCode::TooManySubscriptions => "too_many_subscriptions",
            ErrorCode::ChannelArchived => "channel_archived",
            ErrorCode::TooManyReactions => "too_many_reactions",
            ErrorCode::ReadOnly => "read_only",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compares with the wire form, for code that still holds codes as text.
impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// The body of every error response.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// For people; names no internal type.
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    /// `Retry-After` seconds of a 429 (a 503 always says 1).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// 403 `read_only`: this server serves a read-only view.
    pub fn read_only() -> Self {
        ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::ReadOnly,
            "this server is read-only (serve --read-only): it serves the read models \
             as of a past log position and accepts no writes and no real-time streams",
        )
    }

    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    /// 429 `rate_limited` with `Retry-After` (whole seconds, at least 1).
    pub fn rate_limited(wait: std::time::Duration) -> Self {
        let secs = crate::login_limits::retry_after_secs(wait);
        ApiError {
            retry_after: Some(secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                format!("too many attempts; try again in {secs} s"),
            )
        }
    }
    /// 401 with a reason (wrong credentials at sign-in).
    pub fn unauthorized_because(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, message)
    }
    /// Well-formed but the wrong shape (a body field missing or mistyped).
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidRequest,
            message,
        )
    }
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "a valid bearer token is required",
        )
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("{what} not found"),
        )
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, ErrorCode::Conflict, message)
    }
    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            "the request body is too large",
        )
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            message,
        )
    }
    pub fn internal(context: &str, err: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %err, "{context}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
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
            DomainError::NotAMember => {
                ApiError::new(StatusCode::FORBIDDEN, ErrorCode::NotAMember, msg)
            }
            DomainError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, msg)
            }
            DomainError::Conflict(_) => ApiError::conflict(msg),
            DomainError::Archived => {
                ApiError::new(StatusCode::CONFLICT, ErrorCode::ChannelArchived, msg)
            }
            DomainError::TooManyReactions(_) => {
                ApiError::new(StatusCode::CONFLICT, ErrorCode::TooManyReactions, msg)
            }
        }
    }
}

impl From<ReadError> for ApiError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Busy => {
                ApiError::unavailable("the read model is momentarily locked; retry shortly")
            }
            e => ApiError::internal("read model query failed", &e),
        }
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
                    "the log did not confirm the write in time, nor whether it was stored: \
                     it may still be stored. Retrying with the same client_msg_id is safe \
                     (it returns the original if there is one); without a client_msg_id, \
                     check the channel's events before sending again",
                )
            }
            AppendError::Conflict => {
                ApiError::conflict("too many concurrent writes to this channel; retry")
            }
            AppendError::Failed(_) => ApiError::internal("append failed", &e),
            AppendError::ReadOnly => ApiError::read_only(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }

        // For the metrics (errors by code), read by `observe`.
        resp.extensions_mut().insert(self.code);
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The last word on error bodies (a `map_response` layer over the whole
/// router). Handlers and extractors answer with [`ApiError`], but axum
/// answers some requests itself — 405 with an empty body from the method
/// router, text/plain rejections of extractors used directly. Any error
/// response that is not JSON gets the API's shape here, keeping its status
/// and headers (`Allow`, `Retry-After`); its original text is dropped
/// because it may name internal types.
pub async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error())
        || crate::extract::is_json_content_type(resp.headers())
    {
        return resp;
    }
    let (code, message) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            ErrorCode::MethodNotAllowed,
            "this method is not allowed on this path; the Allow header lists those that are",
        ),
        StatusCode::NOT_FOUND => (ErrorCode::NotFound, "route not found"),
        StatusCode::UNAUTHORIZED => (ErrorCode::Unauthorized, "a valid bearer token is required"),
        StatusCode::FORBIDDEN => (ErrorCode::Forbidden, "forbidden"),
        StatusCode::PAYLOAD_TOO_LARGE => {
            (ErrorCode::PayloadTooLarge, "the request body is too large")
        }
        StatusCode::TOO_MANY_REQUESTS => {
            (ErrorCode::RateLimited, "too many requests; try again later")
        }
        StatusCode::SERVICE_UNAVAILABLE => (ErrorCode::Unavailable, "try again"),
        s if s.is_server_error() => (ErrorCode::Internal, "internal error"),
        _ => (ErrorCode::InvalidRequest, "the request is malformed"),
    };
    let (parts, _) = resp.into_parts();
    let mut out = ApiError::new(status, code, message).into_response();
    for name in parts.headers.keys() {
        if name == header::CONTENT_TYPE || name == header::CONTENT_LENGTH {
            continue;
        }
        out.headers_mut().remove(name);
        for value in parts.headers.get_all(name) {
            out.headers_mut().append(name.clone(), value.clone());
        }
    }
    out
}

/// Rewrites a serde error message for a client: serde says "expected
/// struct PostMessageReq" or "expected u64" where a client needs "expected
/// an object" or "expected a non-negative integer". serde_json's
/// " at line L column C" suffix is dropped too (callers name the field).
pub fn client_message(serde_msg: &str) -> String {
    let msg = strip_position(serde_msg).replace("unknown variant ", "unknown value ");
    let msg = msg.as_str();
    // Longest first: "struct variant X" before "struct X".
    const PHRASES: &[(&str, &str)] = &[
        ("internally tagged enum ", "an object with a known type"),
        ("adjacently tagged enum ", "an object"),
        ("untagged enum ", "the expected shape"),
        ("struct variant ", "an object"),
        ("tuple variant ", "an array"),
        ("newtype variant ", "a value"),
        ("unit variant ", "a value"),
        ("tuple struct ", "an array"),
        ("newtype struct ", "a value"),
        ("unit struct ", "null"),
        ("struct ", "an object"),
        ("enum ", "one of the allowed values"),
    ];
    let is_ident = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '<' | '>');
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    let mut at_word_start = true;
    while let Some(c) = rest.chars().next() {
        if at_word_start {
            if let Some((p, with)) = PHRASES.iter().find(|(p, _)| rest.starts_with(p)) {
                let after = &rest[p.len()..];
                let name_len = after.find(|c| !is_ident(c)).unwrap_or(after.len());
                if name_len > 0 {
                    out.push_str(with);
                    rest = &after[name_len..];
                    at_word_start = false;
                    continue;
                }
            }
            let word_len = rest.find(|c| !is_ident(c)).unwrap_or(rest.len());
            if let Some(with) = primitive(&rest[..word_len]) {
                out.push_str(with);
                rest = &rest[word_len..];
                at_word_start = false;
                continue;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
        at_word_start = !is_ident(c);
    }
    out
}

/// How a client should read serde's name of a primitive type.
fn primitive(word: &str) -> Option<&'static str> {
    match word {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => Some("a non-negative integer"),
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => Some("an integer"),
        "f32" | "f64" => Some("a number"),
        _ => None,
    }
}

fn strip_position(msg: &str) -> &str {
    if let Some(i) = msg.rfind(" at line ") {
        let tail = &msg[i + " at line ".len()..];
        let mut words = tail.split(' ');
        let shape = (words.next(), words.next(), words.next(), words.next());
        if let (Some(l), Some("column"), Some(c), None) = shape {
            if [l, c]
                .iter()
                .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            {
                return &msg[..i];
            }
        }
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::{client_message, ApiError, ErrorCode};
    use axum::response::IntoResponse;

    #[test]
    fn codes_serialize_as_their_wire_form() {
        for code in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_value(code).ok(),
                Some(serde_json::Value::from(code.as_str()))
            );
            assert_eq!(code, code.as_str());
        }
    }

    #[tokio::test]
    async fn error_body_keeps_its_shape() {
        let resp = ApiError::not_found("channel").into_response();
        assert_eq!(resp.status(), 404);
        let bytes = axum::body::to_bytes(resp.into_body(), 1024)
            .await
            .expect("body");
        assert_eq!(
            &bytes[..],
            br#"{"error":{"code":"not_found","message":"channel not found"}}"#
        );
    }

    #[test]
    fn serde_messages_name_no_rust_types() {
        for (serde, want) in [
            (
                "invalid type: sequence, expected struct PostMessageReq at line 1 column 0",
                "invalid type: sequence, expected an object",
            ),
            (
                "invalid length 2, expected struct PostMessageReq with 5 elements",
                "invalid length 2, expected an object with 5 elements",
            ),
            (
                "invalid type: string \"x\", expected u64 at line 1 column 12",
                "invalid type: string \"x\", expected a non-negative integer",
            ),
            (
                "invalid type: sequence, expected internally tagged enum ClientFrame",
                "invalid type: sequence, expected an object with a known type",
            ),
            ("missing field `text`", "missing field `text`"),
            (
                "unknown variant `x`, expected `online` or `away`",
                "unknown value `x`, expected `online` or `away`",
            ),
            // Words that merely contain a type name are left alone.
            ("field `u64x` of destruct", "field `u64x` of destruct"),
        ] {
            assert_eq!(client_message(serde), want);
        }
    }
}
