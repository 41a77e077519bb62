//! Pins: a channel's members pin and unpin its messages (at most 100 per
//! channel); pinning a pinned message or unpinning one that is not pinned
//! appends nothing and answers 200 like the first time.

use super::channel_id;
use super::messages::message_id;
use crate::error::ApiResult;
use crate::extract::{Path, User};
use crate::state::AppState;
use crate::views::{MessageView, PinList};
use axum::extract::State;
use axum::Json;
use switchboard_core::commands::conversation::MessageCommand;

const TAG: &str = "pins";

/// Pin a message of this channel.
#[utoipa::path(post, path = "/v1/channels/{id}/pins/{message_id}", tag = TAG,
    security(("user" = [])),
    responses((status = 200, description = "the pinned message", body = MessageView)))]
pub(super) async fn pin(
    State(s): State<AppState>,
    User(u): User,
    Path((id, message)): Path<(String, String)>,
) -> ApiResult<Json<MessageView>> {
    let cmd = MessageCommand::Pin(channel_id(&id)?);
    let message = message_id(&message)?;
    Ok(Json(s.commands.message_command(&u, &message, cmd).await?))
}

/// Unpin a message of this channel.
#[utoipa::path(delete, path = "/v1/channels/{id}/pins/{message_id}", tag = TAG,
    security(("user" = [])),
    responses((status = 200, description = "the unpinned message", body = MessageView)))]
pub(super) async fn unpin(
    State(s): State<AppState>,
    User(u): User,
    Path((id, message)): Path<(String, String)>,
) -> ApiResult<Json<MessageView>> {
    let cmd = MessageCommand::Unpin(channel_id(&id)?);
    let message = message_id(&message)?;
    Ok(Json(s.commands.message_command(&u, &message, cmd).await?))
}

/// A channel's pinned messages, the most recently pinned first.
#[utoipa::path(get, path = "/v1/channels/{id}/pins", tag = TAG,
    security(("user" = [])),
    responses((status = 200, description = "the pinned messages", body = PinList)))]
pub(super) async fn list_pins(
    State(s): State<AppState>,
    User(u): User,
    Path(id): Path<String>,
) -> ApiResult<Json<PinList>> {
    let id = channel_id(&id)?;
    let rows = s.commands.pins(&u, &id).await?;
    let messages = rows.into_iter().map(MessageView::from_row).collect();
    Ok(Json(PinList { messages }))
}
