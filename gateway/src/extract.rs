//! Request extractors whose rejections speak API.md's error shape:
//! [`ApiJson`] for bodies, [`Query`] for query strings, [`Path`] for path
//! parameters and [`Auth`] for the bearer token. Rejection texts are our
//! own: axum's and serde's name internal Rust types ("…PostMessageReq…"),
//! which a client must not see.

use crate::error::{client_message, ApiError};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::{DeserializeOwned, IgnoredAny};
use switchboard_core::authz::Caller;
use switchboard_projections::acl::UserView;

/// A JSON object body. Malformed JSON → 400; well-formed but the wrong
/// shape (not an object, missing or mistyped fields) → 422; too large →
/// 413; as `invalid_request` / `payload_too_large`.
///
/// Only objects are accepted: serde would otherwise read an array as a
/// struct's fields in order (`["C1","hi",null,null,[]]` as a message),
/// which no client means and which dodges field-level checks.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        if !is_json_content_type(req.headers()) {
            return Err(ApiError::invalid(
                "expected a JSON body with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::payload_too_large()
            } else {
                ApiError::invalid("the request body could not be read")
            }
        })?;
        parse_object(&bytes).map(ApiJson)
    }
}

fn malformed(e: &serde_json::Error) -> ApiError {
    ApiError::invalid(format!("the body is not valid JSON: {e}"))
}

/// Parses a body that must be one JSON object into `T`.
pub fn parse_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(match serde_json::from_slice::<IgnoredAny>(bytes) {
            Ok(_) => ApiError::unprocessable("the body must be a JSON object"),
            Err(e) => malformed(&e),
        });
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        if e.inner().classify() != serde_json::error::Category::Data {
            return malformed(e.inner());
        }
        ApiError::unprocessable(field_message(&e, "body"))
    })?;
    de.end().map_err(|e| malformed(&e))?;
    Ok(value)
}

/// `<field>: <what is wrong>`, naming `whole` when the whole input is.
fn field_message<E: std::fmt::Display>(e: &serde_path_to_error::Error<E>, whole: &str) -> String {
    let message = client_message(&e.inner().to_string());
    match e.path().to_string() {
        p if p == "." => format!("{whole}: {message}"),
        p => format!("{p}: {message}"),
    }
}

/// A typed query string (a struct of optional or defaulted fields). A
/// value of the wrong type or out of range, a missing required parameter
/// or a repeated one → 400 `invalid_request` naming the parameter.
/// Unknown parameters are ignored.
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parse_query(parts.uri.query().unwrap_or("")).map(Query)
    }
}

/// Parses a query string (without the `?`) into `T`.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| ApiError::invalid(field_message(&e, "query")))
}

/// `application/json` or `application/<something>+json`, any parameters.
pub(crate) fn is_json_content_type(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.split_once('/') {
        Some(("application", sub)) => sub == "json" || sub.ends_with("+json"),
        _ => false,
    }
}

/// Path parameters. A segment that is not valid UTF-8 once
/// percent-decoded (`/v1/channels/%FF`) → 400 `invalid_request`.
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => Err(match e.kind() {
                ErrorKind::InvalidUtf8InPathParam { key } => ApiError::invalid(format!(
                    "path: `{key}` is not valid UTF-8 once percent-decoded"
                )),
                _ => ApiError::invalid("path: a parameter is malformed"),
            }),
            // The route and the handler disagree: a bug here, not the client's.
            Err(e) => Err(ApiError::internal("path parameters", &e)),
        }
    }
}

/// An authenticated user.
#[derive(Debug, Clone)]
pub struct UserCtx {
    pub user: UserView,
    pub caller: Caller,
    /// The token the request presented.
    pub token: std::sync::Arc<TokenRef>,
}

/// The token a request presented: its id (never the secret), kind and
/// expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRef {
    pub id: String,
    /// Behind a browser's cookie session (else an API token).
    pub session: bool,
    /// Unix ms after which the token is refused; 0 = never.
    pub expires_ms: i64,
}

/// Who made the request.
#[derive(Debug, Clone)]
pub enum Auth {
    /// The server operator (`SWITCHBOARD_ADMIN_TOKEN`).
    Operator,
    User(UserCtx),
}

impl Auth {
    /// The request's user; the operator token has none.
    pub fn user(self) -> Result<UserCtx, ApiError> {
        match self {
            Auth::User(u) => Ok(u),
            Auth::Operator => Err(ApiError::forbidden(
                "the operator token belongs to no user; use a user's token",
            )),
        }
    }
}

/// A user-only endpoint's caller.
pub struct User(pub UserCtx);

/// The token of an `Authorization: Bearer <token>` header. The scheme is
/// case-insensitive (RFC 7235 §2.1): `bearer x` and `BEARER x` work too.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The browser session cookie (HttpOnly; its value is a session token).
pub const SESSION_COOKIE: &str = "sb_session";
/// The cookie holding the session's CSRF token, readable by the page.
pub const CSRF_COOKIE: &str = "sb_csrf";
/// The header a cookie-authenticated write must carry: the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The value of cookie `name` (the first one, across `Cookie` headers).
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// Where the request's credential came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource {
    Bearer,
    /// The session cookie: writes need the CSRF header, WebSocket upgrades
    /// a same-origin `Origin`.
    Cookie,
}

/// The request's credential: an `Authorization: Bearer` header, else the
/// session cookie.
pub fn credential(headers: &HeaderMap) -> Option<(&str, CredentialSource)> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        return v
            .to_str()
            .ok()
            .and_then(bearer_token)
            .map(|t| (t, CredentialSource::Bearer));
    }
    cookie(headers, SESSION_COOKIE).map(|t| (t, CredentialSource::Cookie))
}

/// Double-submit CSRF check of a cookie-authenticated request: a method
/// that may change state must carry `X-CSRF-Token` equal to the
/// session's CSRF token (derived from the session token, which another
/// site can neither read nor plant).
fn check_csrf(parts: &Parts, session_token: &str) -> Result<(), ApiError> {
    if parts.method.is_safe() {
        return Ok(());
    }
    let sent = parts
        .headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let want = crate::commands::sessions::csrf_token(session_token);
    if switchboard_core::secret::constant_time_eq(sent, &want) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "a cookie-authenticated write needs the X-CSRF-Token header \
             (the csrf_token from sign-in, also in the sb_csrf cookie)",
        ))
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (token, source) = credential(&parts.headers).ok_or_else(ApiError::unauthorized)?;
        if source == CredentialSource::Cookie {
            check_csrf(parts, token)?;
        }
        state.commands.authenticate(token).await
    }
}

impl FromRequestParts<AppState> for User {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Auth::from_request_parts(parts, state)
            .await?
            .user()
            .map(User)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct PostMessageReq {
        channel_id: String,
        text: String,
        client_msg_id: Option<String>,
    }

    fn err(body: &str) -> ApiError {
        match parse_object::<PostMessageReq>(body.as_bytes()) {
            Ok(v) => panic!("{body} was accepted: {v:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn only_objects_and_no_type_names() {
        assert!(parse_object::<PostMessageReq>(br#" {"channel_id":"C1","text":"hi"} "#).is_ok());
        for (body, status) in [
            (r#"["C1","hi",null]"#, 422),
            (r#"["C1","hi"]"#, 422),
            ("\"x\"", 422),
            ("7", 422),
            ("null", 422),
            ("", 400),
            ("[1,", 400),
            ("{\"channel_id\":", 400),
            (r#"{"channel_id":"C1","text":"hi"} x"#, 400),
            (r#"{"channel_id":"C1"}"#, 422),
            (r#"{"channel_id":7,"text":"hi"}"#, 422),
        ] {
            let e = err(body);
            assert_eq!(
                (e.status.as_u16(), e.code),
                (status, ErrorCode::InvalidRequest),
                "{body}"
            );
            for leak in ["PostMessageReq", "struct", "String", "u64", "alloc"] {
                assert!(!e.message.contains(leak), "{body}: {}", e.message);
            }
        }
        assert_eq!(
            err(r#"{"channel_id":"C1"}"#).message,
            "body: missing field `text`"
        );
        assert!(err(r#"{"channel_id":7,"text":"x"}"#)
            .message
            .starts_with("channel_id: invalid type: integer `7`"));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for v in ["Bearer t1", "bearer t1", "BEARER t1", "bEaReR   t1 "] {
            assert_eq!(bearer_token(v), Some("t1"), "{v}");
        }
        for v in ["Bearer", "Bearer ", "Basic t1", "Bearert1", "t1"] {
            assert_eq!(bearer_token(v), None, "{v}");
        }
    }

    #[test]
    fn json_content_types() {
        let ok = |ct: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, ct.parse().expect("header"));
            is_json_content_type(&h)
        };
        assert!(ok("application/json"));
        assert!(ok("application/json; charset=utf-8"));
        assert!(ok("Application/JSON"));
        assert!(ok("application/cloudevents+json"));
        assert!(!ok("text/json"));
        assert!(!ok("text/plain"));
    }
}
