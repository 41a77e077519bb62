//! Browser sign-in: password sign-in to a session cookie, sign-out (here
//! or everywhere), passwords set by an admin, by the user or through an
//! invite link.

use crate::commands::sessions::OpenedSession;
use crate::error::ApiResult;
use crate::extract::{ApiJson, Path, Query, User, CSRF_COOKIE, SESSION_COOKIE};
use crate::state::AppState;
use crate::views::{user_json, UserJson};
use axum::extract::State;
use axum::http::{header, Extensions, HeaderMap, HeaderValue, StatusCode};
use axum::response::{AppendHeaders, IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use switchboard_core::time::rfc3339_ms;
use utoipa::{IntoParams, ToSchema};

const TAG: &str = "auth";

#[derive(Deserialize, ToSchema)]
pub(super) struct Login {
    /// The workspace id.
    workspace: String,
    handle: String,
    password: String,
}

/// A signed-in browser session. The session token itself is only in the
/// HttpOnly `sb_session` cookie.
#[derive(Serialize, ToSchema)]
pub(super) struct SessionJson {
    user: UserJson,
    /// Send it as `X-CSRF-Token` on every cookie-authenticated write (it is
    /// also in the `sb_csrf` cookie).
    csrf_token: String,
    expires_at: String,
}

/// The client address sign-in attempts are limited by (an IPv6 client by
/// its /64).
fn address(ext: &Extensions) -> String {
    match crate::tls::peer_ip(ext) {
        // One IPv6 host commonly holds a whole /64: limit the prefix.
        Some(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Some(ip) => ip.to_string(),
        None => "unknown".into(),
    }
}

/// Whether cookies get `Secure`: this listener serves TLS (`--tls-cert`),
/// the request came over TLS to a proxy (`X-Forwarded-Proto: https`), or
/// the operator says all do (`SWITCHBOARD_COOKIE_SECURE=1`).
fn secure(headers: &HeaderMap, tls: bool) -> bool {
    tls || forwarded_secure(headers)
}

fn forwarded_secure(headers: &HeaderMap) -> bool {
    static ALWAYS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ALWAYS.get_or_init(|| {
        std::env::var("SWITCHBOARD_COOKIE_SECURE").is_ok_and(|v| v == "1" || v == "true")
    }) || headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

fn cookie(name: &str, value: &str, max_age_s: i64, http_only: bool, secure: bool) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; Max-Age={max_age_s}; SameSite=Lax");
    if http_only {
        c.push_str("; HttpOnly");
    }
    if secure {
        c.push_str("; Secure");
    }
    // Values are hex or the fixed names above: always a valid header.
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static("sb_invalid=1"))
}

fn signed_in(s: OpenedSession, headers: &HeaderMap, tls: bool) -> Response {
    let secure = secure(headers, tls);
    let max_age = ((s.expires_ms - crate::commands::now_ms()) / 1000).max(0);
    (
        AppendHeaders([
            (
                header::SET_COOKIE,
                cookie(SESSION_COOKIE, &s.token, max_age, true, secure),
            ),
            (
                header::SET_COOKIE,
                cookie(CSRF_COOKIE, &s.csrf, max_age, false, secure),
            ),
        ]),
        Json(SessionJson {
            user: user_json(&s.user),
            csrf_token: s.csrf,
            expires_at: rfc3339_ms(s.expires_ms),
        }),
    )
        .into_response()
}

fn browser(headers: &HeaderMap) -> String {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("browser")
        .to_string()
}

/// Sign in with a password.
///
/// Sets the HttpOnly session cookie `sb_session` (`Secure` over TLS,
/// `SameSite=Lax`) and the `sb_csrf` cookie. Attempts are limited per
/// account and per client address: past the limit, `429` with
/// `Retry-After`, whatever the password.
#[utoipa::path(post, path = "/v1/auth/login", tag = TAG,
    request_body = Login,
    responses((status = 200, description = "signed in; the session is in the cookie", body = SessionJson)))]
pub(super) async fn login(
    State(s): State<AppState>,
    ext: Extensions,
    headers: HeaderMap,
    ApiJson(req): ApiJson<Login>,
) -> ApiResult<Response> {
    let session = s
        .commands
        .login(
            &req.workspace,
            &req.handle,
            &req.password,
            &address(&ext),
            &browser(&headers),
        )
        .await?;
    Ok(signed_in(session, &headers, s.tls_enabled))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct LogoutQuery {
    /// Sign out every session of the user (API tokens are kept).
    #[serde(default)]
    everywhere: bool,
}

#[derive(Serialize, ToSchema)]
pub(super) struct SignedOut {
    signed_out: bool,
}

/// Sign out.
///
/// Revokes the session (or, `?everywhere=true`, every session of the
/// user) on every gateway and clears the cookies. Called with a bearer
/// token instead of the cookie, it revokes that token.
#[utoipa::path(post, path = "/v1/auth/logout", tag = TAG, security(("user" = []), ("session" = [])),
    params(LogoutQuery),
    responses((status = 200, description = "signed out", body = SignedOut)))]
pub(super) async fn logout(
    State(s): State<AppState>,
    User(u): User,
    Query(q): Query<LogoutQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    s.commands.logout(&u, q.everywhere).await?;
    let secure = secure(&headers, s.tls_enabled);
    Ok((
        AppendHeaders([
            (
                header::SET_COOKIE,
                cookie(SESSION_COOKIE, "", 0, true, secure),
            ),
            (
                header::SET_COOKIE,
                cookie(CSRF_COOKIE, "", 0, false, secure),
            ),
        ]),
        Json(SignedOut { signed_out: true }),
    )
        .into_response())
}

#[derive(Deserialize, ToSchema)]
pub(super) struct AcceptInvite {
    /// The code from the invite link.
    invite: String,
    /// The new password (8 to 256 characters).
    password: String,
}

/// Accept an invite: set a password and sign in.
///
/// The invite is spent (single use). Limited like sign-in.
#[utoipa::path(post, path = "/v1/auth/invite", tag = TAG,
    request_body = AcceptInvite,
    responses((status = 200, description = "password set and signed in", body = SessionJson)))]
pub(super) async fn accept_invite(
    State(s): State<AppState>,
    ext: Extensions,
    headers: HeaderMap,
    ApiJson(req): ApiJson<AcceptInvite>,
) -> ApiResult<Response> {
    let session = s
        .commands
        .accept_invite(
            &req.invite,
            &req.password,
            &address(&ext),
            &browser(&headers),
        )
        .await?;
    Ok(signed_in(session, &headers, s.tls_enabled))
}

#[derive(Serialize, ToSchema)]
pub(super) struct Invite {
    /// The single-use code; the link is the client's to build around it.
    invite: String,
    expires_at: String,
}

/// Invite a user to set a password (workspace admins).
#[utoipa::path(post, path = "/v1/users/{id}/invite", tag = TAG, security(("user" = [])),
    params(("id" = String, Path, description = "user id")),
    responses((status = 201, description = "the invite code, shown once", body = Invite)))]
pub(super) async fn invite(
    State(s): State<AppState>,
    User(u): User,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Invite>)> {
    let (code, expires) = s.commands.invite(&u, &id).await?;
    Ok((
        StatusCode::CREATED,
        Json(Invite {
            invite: code,
            expires_at: rfc3339_ms(expires),
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
pub(super) struct SetPassword {
    /// 8 to 256 characters.
    password: String,
    /// `PUT /v1/me/password` only: required when a password is set.
    current_password: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct PasswordSetJson {
    password_set: bool,
}

/// Set a user's password (workspace admins).
#[utoipa::path(put, path = "/v1/users/{id}/password", tag = TAG, security(("user" = [])),
    params(("id" = String, Path, description = "user id")),
    request_body = SetPassword,
    responses((status = 200, description = "set", body = PasswordSetJson)))]
pub(super) async fn set_user_password(
    State(s): State<AppState>,
    User(u): User,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<SetPassword>,
) -> ApiResult<Json<PasswordSetJson>> {
    s.commands
        .set_password(&u, Some(&id), &req.password, None)
        .await?;
    Ok(Json(PasswordSetJson { password_set: true }))
}

/// Set the caller's own password (with `current_password` when one is
/// set).
#[utoipa::path(put, path = "/v1/me/password", tag = TAG, security(("user" = []), ("session" = [])),
    request_body = SetPassword,
    responses((status = 200, description = "set", body = PasswordSetJson)))]
pub(super) async fn set_my_password(
    State(s): State<AppState>,
    User(u): User,
    ApiJson(req): ApiJson<SetPassword>,
) -> ApiResult<Json<PasswordSetJson>> {
    s.commands
        .set_password(&u, None, &req.password, req.current_password.as_deref())
        .await?;
    Ok(Json(PasswordSetJson { password_set: true }))
}
