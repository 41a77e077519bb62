//! Read state: moving the caller's read marker in a channel or thread
//! (never backwards, except "mark unread from here"; a seq beyond the
//! channel's head is clamped to it) and the caller's unread counts.

use super::channel_id;
use super::messages::message_id;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Path, User};
use crate::state::AppState;
use crate::views::{MarkerView, UnreadsView};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use switchboard_core::commands::reads::MoveMarker;
use switchboard_core::validate::Seq;
use utoipa::ToSchema;

const TAG: &str = "reads";

#[derive(Deserialize, ToSchema)]
#[schema(as = MarkRead)]
pub(super) struct MarkReadReq {
    /// Read up to and including this seq (clamped to the channel's head).
    #[schema(value_type = u64, minimum = 0, maximum = 9223372036854775807_u64)]
    seq: Seq,
    /// The thread's marker instead of the channel's.
    thread_root_id: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = MarkUnread)]
pub(super) struct MarkUnreadReq {
    /// The first seq to show as unread again (the marker becomes seq − 1).
    #[schema(value_type = u64, minimum = 1, maximum = 9223372036854775807_u64)]
    seq: Seq,
}

/// Mark a channel (or a thread) read up to a seq.
///
/// A seq at or below the current marker changes nothing (200 with the
/// current marker, nothing appended); one beyond the channel's head is
/// clamped to the head.
#[utoipa::path(post, path = "/v1/channels/{id}/read", tag = TAG, security(("user" = [])),
    request_body = MarkReadReq,
    responses((status = 200, description = "the marker now", body = MarkerView)))]
pub(super) async fn mark_read(
    State(s): State<AppState>,
    User(u): User,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<MarkReadReq>,
) -> ApiResult<Json<MarkerView>> {
    let cmd = MoveMarker {
        channel_id: channel_id(&id)?,
        seq: req.seq.get(),
        thread_root_id: req.thread_root_id.as_deref().map(message_id).transpose()?,
        unread: false,
    };
    let (channel, root) = (cmd.channel_id.to_string(), cmd.thread_root_id.clone());
    let last_read_seq = s.commands.move_marker(&u, cmd).await?;
    Ok(Json(MarkerView {
        channel_id: channel,
        last_read_seq,
        thread_root_id: root.map(|r| r.to_string()),
    }))
}

/// Mark a channel unread from a seq on ("mark unread from here").
///
/// The marker becomes seq − 1, even when that is backwards: the one way a
/// marker moves back.
#[utoipa::path(post, path = "/v1/channels/{id}/unread", tag = TAG, security(("user" = [])),
    request_body = MarkUnreadReq,
    responses((status = 200, description = "the marker now", body = MarkerView)))]
pub(super) async fn mark_unread(
    State(s): State<AppState>,
    User(u): User,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<MarkUnreadReq>,
) -> ApiResult<Json<MarkerView>> {
    let cmd = MoveMarker {
        channel_id: channel_id(&id)?,
        seq: req.seq.get(),
        thread_root_id: None,
        unread: true,
    };
    let channel = cmd.channel_id.to_string();
    let last_read_seq = s.commands.move_marker(&u, cmd).await?;
    Ok(Json(MarkerView {
        channel_id: channel,
        last_read_seq,
        thread_root_id: None,
    }))
}

/// The caller's unread and mention counts.
///
/// For every channel the caller is a member of now, and every thread it
/// follows there (started, replied in, or mentioned in).
#[utoipa::path(get, path = "/v1/unreads", tag = TAG, security(("user" = [])),
    responses((status = 200, description = "unread counts", body = UnreadsView)))]
pub(super) async fn unreads(State(s): State<AppState>, User(u): User) -> ApiResult<Response> {
    let summary = s.commands.unread_summary(&u).await?;
    let view = UnreadsView::from_summary(summary);
    // A member of hundreds of channels gets a body of tens of KiB: sized
    // once (about 110 bytes a channel, 130 a thread) instead of grown by
    // doubling from 128 bytes.
    let mut body = Vec::with_capacity(32 + view.channels.len() * 128 + view.threads.len() * 144);
    serde_json::to_writer(&mut body, &view)
        .map_err(|e| ApiError::internal("serializing unreads", &e))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
