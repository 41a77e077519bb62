//! Reactions: one per (user, message, emoji). Adding one that is there or
//! removing one that is not appends nothing and answers 200 like the
//! first time.

use super::messages::message_id;
use crate::error::ApiResult;
use crate::extract::{ApiJson, Path, User};
use crate::state::AppState;
use crate::views::MessageView;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use switchboard_core::commands::conversation::MessageCommand;
use switchboard_core::validate::Emoji;
use utoipa::ToSchema;

const TAG: &str = "reactions";

#[derive(Deserialize, ToSchema)]
#[schema(as = AddReaction)]
pub(super) struct AddReactionReq {
    /// A shortcode (1-64 of `a-z`, `0-9`, `_`, `+`, `-`) or one Unicode
    /// emoji (ZWJ sequences and skin tones included).
    emoji: String,
}

/// React to a message (members; at most 50 distinct emoji per message).
#[utoipa::path(post, path = "/v1/messages/{id}/reactions", tag = TAG,
    security(("user" = [])),
    request_body = AddReactionReq,
    responses((status = 200, description = "the message with its reactions", body = MessageView)))]
pub(super) async fn add_reaction(
    State(s): State<AppState>,
    User(u): User,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<AddReactionReq>,
) -> ApiResult<Json<MessageView>> {
    let id = message_id(&id)?;
    let cmd = MessageCommand::React(Emoji::parse(&req.emoji)?);
    Ok(Json(s.commands.message_command(&u, &id, cmd).await?))
}

/// Remove the caller's reaction (the emoji percent-encoded in the path).
#[utoipa::path(delete, path = "/v1/messages/{id}/reactions/{emoji}", tag = TAG,
    security(("user" = [])),
    responses((status = 200, description = "the message with its reactions", body = MessageView)))]
pub(super) async fn remove_reaction(
    State(s): State<AppState>,
    User(u): User,
    Path((id, emoji)): Path<(String, String)>,
) -> ApiResult<Json<MessageView>> {
    let id = message_id(&id)?;
    let cmd = MessageCommand::Unreact(Emoji::parse(&emoji)?);
    Ok(Json(s.commands.message_command(&u, &id, cmd).await?))
}
