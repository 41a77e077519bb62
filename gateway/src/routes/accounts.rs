//! Accounts: a user's tokens (`/v1/tokens`), and what workspace admins do
//! to users (deactivate, reactivate, change the role).

use crate::commands::accounts::{AccountCommand, TokenListing};
use crate::error::ApiResult;
use crate::extract::{ApiJson, Path, Query, User};
use crate::state::AppState;
use crate::views::{user_json, UserJson};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use switchboard_core::events::Role;
use switchboard_core::time::rfc3339_ms;
use switchboard_projections::acl::TokenView;
use utoipa::{IntoParams, ToSchema};

const TAG: &str = "accounts";

#[derive(Deserialize, ToSchema)]
pub(super) struct CreateToken {
    /// A label: the device or app that will hold it (1-80 characters).
    name: String,
    /// RFC 3339; the token is refused from then on. Absent or null: never.
    expires_at: Option<String>,
    /// Workspace admins may issue a token for another (active) user of
    /// their workspace; absent: the caller's own.
    user_id: Option<String>,
}

/// A token (never its secret, except once, in [`NewToken`]).
#[derive(Serialize, ToSchema)]
pub(super) struct TokenJson {
    id: String,
    user_id: String,
    name: String,
    /// `api` (made with `POST /v1/tokens`, or a user's first token) or
    /// `session` (behind a browser's sign-in cookie).
    kind: String,
    created_at: String,
    /// `null`: never expires.
    expires_at: Option<String>,
    /// The last use any gateway recorded (minute resolution); `null` if
    /// none was.
    last_used_at: Option<String>,
}

fn token_json(t: &TokenView, last_used_ms: Option<i64>) -> TokenJson {
    TokenJson {
        id: t.id.clone(),
        user_id: t.user_id.clone(),
        name: t.name.clone(),
        kind: t.kind.clone(),
        created_at: rfc3339_ms(t.created_ms),
        expires_at: (t.expires_ms != 0).then(|| rfc3339_ms(t.expires_ms)),
        last_used_at: last_used_ms.map(rfc3339_ms),
    }
}

/// A token just issued; `token` is the secret, shown this once.
#[derive(Serialize, ToSchema)]
pub(super) struct NewToken {
    #[serde(flatten)]
    view: TokenJson,
    /// The secret: send it as `Authorization: Bearer <token>`.
    token: String,
}

#[derive(Serialize, ToSchema)]
pub(super) struct TokenList {
    tokens: Vec<TokenJson>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct TokensQuery {
    /// Workspace admins: list this user's tokens instead of their own.
    user_id: Option<String>,
}

/// Issue a token.
///
/// The response carries the token's secret, shown once. Tokens are
/// events in the log (only their SHA-256 is stored).
#[utoipa::path(post, path = "/v1/tokens", tag = TAG, security(("user" = [])),
    request_body = CreateToken,
    responses((status = 201, description = "issued", body = NewToken)))]
pub(super) async fn create_token(
    State(s): State<AppState>,
    User(u): User,
    ApiJson(req): ApiJson<CreateToken>,
) -> ApiResult<(StatusCode, Json<NewToken>)> {
    let (token, secret) = s
        .commands
        .issue_token(
            &u,
            req.user_id.as_deref(),
            &req.name,
            req.expires_at.as_deref(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(NewToken {
            view: token_json(&token, None),
            token: secret,
        }),
    ))
}

/// List tokens.
///
/// The caller's live tokens, or (workspace admins, `?user_id=`) another
/// user's. Revoked and deactivated users' tokens are not listed.
#[utoipa::path(get, path = "/v1/tokens", tag = TAG, security(("user" = [])),
    params(TokensQuery),
    responses((status = 200, description = "the tokens", body = TokenList)))]
pub(super) async fn list_tokens(
    State(s): State<AppState>,
    User(u): User,
    Query(q): Query<TokensQuery>,
) -> ApiResult<Json<TokenList>> {
    let tokens = s.commands.list_tokens(&u, q.user_id.as_deref()).await?;
    Ok(Json(TokenList {
        tokens: tokens
            .iter()
            .map(
                |TokenListing {
                     token,
                     last_used_ms,
                 }| token_json(token, *last_used_ms),
            )
            .collect(),
    }))
}

#[derive(Serialize, ToSchema)]
pub(super) struct Revoked {
    id: String,
    revoked: bool,
}

/// Revoke a token.
///
/// Its owner or a workspace admin. Every gateway refuses it within a
/// second, and its open WebSocket and SSE streams are closed. Another
/// user's token (for a non-admin) or another workspace's answers 404.
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = TAG, security(("user" = [])),
    params(("id" = String, Path, description = "token id")),
    responses((status = 200, description = "revoked", body = Revoked)))]
pub(super) async fn revoke_token(
    State(s): State<AppState>,
    User(u): User,
    Path(id): Path<String>,
) -> ApiResult<Json<Revoked>> {
    s.commands.revoke_token(&u, &id).await?;
    Ok(Json(Revoked { id, revoked: true }))
}

/// Deactivate a user (workspace admins).
///
/// Every token of the user is revoked and its streams closed; the user
/// stays in member lists and history, marked `deactivated`. The last
/// active admin cannot be deactivated (409).
#[utoipa::path(post, path = "/v1/users/{id}/deactivate", tag = TAG, security(("user" = [])),
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, description = "the user, deactivated", body = UserJson)))]
pub(super) async fn deactivate(
    State(s): State<AppState>,
    User(u): User,
    Path(id): Path<String>,
) -> ApiResult<Json<UserJson>> {
    let user = s
        .commands
        .change_account(&u, &id, AccountCommand::Deactivate)
        .await?;
    Ok(Json(user_json(&user)))
}

/// Reactivate a user (workspace admins).
///
/// Tokens revoked by the deactivation stay revoked: issue a new one
/// (`POST /v1/tokens` with `user_id`) or let the user sign in.
#[utoipa::path(post, path = "/v1/users/{id}/reactivate", tag = TAG, security(("user" = [])),
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, description = "the user, active", body = UserJson)))]
pub(super) async fn reactivate(
    State(s): State<AppState>,
    User(u): User,
    Path(id): Path<String>,
) -> ApiResult<Json<UserJson>> {
    let user = s
        .commands
        .change_account(&u, &id, AccountCommand::Reactivate)
        .await?;
    Ok(Json(user_json(&user)))
}

#[derive(Deserialize, ToSchema)]
pub(super) struct UpdateUser {
    /// `member` or `admin`.
    #[schema(value_type = super::tenants::Role)]
    role: String,
}

/// Change a user's role (workspace admins).
///
/// The workspace's last active admin cannot be demoted (409).
#[utoipa::path(patch, path = "/v1/users/{id}", tag = TAG, security(("user" = [])),
    params(("id" = String, Path, description = "user id")),
    request_body = UpdateUser,
    responses((status = 200, description = "the user", body = UserJson)))]
pub(super) async fn update_user(
    State(s): State<AppState>,
    User(u): User,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateUser>,
) -> ApiResult<Json<UserJson>> {
    let role = Role::parse(&req.role)?;
    let user = s
        .commands
        .change_account(&u, &id, AccountCommand::SetRole(role))
        .await?;
    Ok(Json(user_json(&user)))
}
