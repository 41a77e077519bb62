//! Push delivery settings (workspace admins): the webhook due
//! notifications are POSTed to, and the notifications given up on.

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Query, User};
use crate::push::{DeadLetter, Push};
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

const TAG: &str = "push";

#[derive(Deserialize, ToSchema)]
pub(super) struct SetPush {
    /// An `http://` or `https://` URL (at most 2048 bytes).
    url: String,
    /// A Standard Webhooks secret, `whsec_<base64 key of 24-64 bytes>`;
    /// generated when absent.
    secret: Option<String>,
}

/// The push webhook as set (the secret is shown only when set).
#[derive(Serialize, ToSchema)]
pub(super) struct PushSettings {
    url: String,
    secret: String,
}

/// The push webhook (never its secret); `url` is `""` when none is set.
#[derive(Serialize, ToSchema)]
pub(super) struct PushUrlView {
    url: String,
}

#[derive(Serialize, ToSchema)]
pub(super) struct DeadLetters {
    dead: Vec<DeadLetter>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct DeadQuery {
    #[serde(default)]
    #[param(inline)]
    limit: crate::query::Limit<100, 1000>,
}

fn push(s: &AppState) -> ApiResult<&Push> {
    s.push
        .as_deref()
        .ok_or_else(|| ApiError::unavailable("push delivery is not running on this server"))
}

/// Set the workspace's push webhook (workspace admins).
///
/// Each due notification is POSTed to `url`, signed per the Standard
/// Webhooks spec with `secret`. Loopback, private and link-local
/// addresses are refused unless the operator allows them.
#[utoipa::path(put, path = "/v1/admin/push", tag = TAG, security(("user" = [])),
    request_body = SetPush,
    responses((status = 200, description = "the webhook and its secret", body = PushSettings)))]
pub(super) async fn set_push(
    State(s): State<AppState>,
    User(u): User,
    ApiJson(req): ApiJson<SetPush>,
) -> ApiResult<Json<PushSettings>> {
    let (url, secret) = s
        .commands
        .configure_push(push(&s)?, &u, Some(&req.url), req.secret.as_deref())
        .await?;
    Ok(Json(PushSettings {
        url,
        secret: secret.unwrap_or_default(),
    }))
}

/// The workspace's push webhook URL (workspace admins; never the secret).
#[utoipa::path(get, path = "/v1/admin/push", tag = TAG, security(("user" = [])),
    responses((status = 200, description = "the webhook URL", body = PushUrlView)))]
pub(super) async fn get_push(
    State(s): State<AppState>,
    User(u): User,
) -> ApiResult<Json<PushUrlView>> {
    let url = s.commands.push_url(push(&s)?, &u).await?;
    Ok(Json(PushUrlView { url }))
}

/// Remove the workspace's push webhook (workspace admins).
#[utoipa::path(delete, path = "/v1/admin/push", tag = TAG, security(("user" = [])),
    responses((status = 200, description = "no webhook", body = PushUrlView)))]
pub(super) async fn delete_push(
    State(s): State<AppState>,
    User(u): User,
) -> ApiResult<Json<PushUrlView>> {
    let (url, _) = s.commands.configure_push(push(&s)?, &u, None, None).await?;
    Ok(Json(PushUrlView { url }))
}

/// Notifications whose webhook kept failing, newest first (workspace admins).
#[utoipa::path(get, path = "/v1/admin/push/dead", tag = TAG, security(("user" = [])),
    params(DeadQuery),
    responses((status = 200, description = "dead-lettered notifications", body = DeadLetters)))]
pub(super) async fn list_dead(
    State(s): State<AppState>,
    User(u): User,
    Query(q): Query<DeadQuery>,
) -> ApiResult<Json<DeadLetters>> {
    let dead = s
        .commands
        .dead_letters(push(&s)?, &u, q.limit.get())
        .await?;
    Ok(Json(DeadLetters { dead }))
}
