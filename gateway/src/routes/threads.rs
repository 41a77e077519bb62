//! Threads: a root's replies, oldest first. (Replies are posted with
//! `POST /v1/messages` and `thread_root_id`.)

use super::messages::message_id;
use crate::error::ApiResult;
use crate::extract::{Path, Query, User};
use crate::query::{self, HistoryLimit};
use crate::state::AppState;
use crate::views::{MessagePage, MessageView};
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use switchboard_core::validate::Seq;
use utoipa::IntoParams;

const TAG: &str = "threads";

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct RepliesQuery {
    /// Replies after this seq (0, the default: from the first).
    #[serde(default, deserialize_with = "query::seq")]
    #[param(value_type = Option<u64>)]
    after_seq: Option<Seq>,
    #[serde(default)]
    #[param(inline)]
    limit: HistoryLimit,
}

/// A thread's replies.
///
/// Oldest first, after `after_seq`. Members of the channel only. A deleted
/// root keeps its replies.
#[utoipa::path(get, path = "/v1/messages/{id}/replies", tag = TAG,
    security(("user" = [])),
    params(RepliesQuery),
    responses((status = 200, description = "a page of replies", body = MessagePage)))]
pub(super) async fn list_replies(
    State(s): State<AppState>,
    User(u): User,
    Path(id): Path<String>,
    Query(q): Query<RepliesQuery>,
) -> ApiResult<Json<MessagePage>> {
    let id = message_id(&id)?;
    let after = q.after_seq.map_or(0, Seq::get);
    let (rows, has_more) = s.commands.replies(&u, &id, after, q.limit.get()).await?;
    let messages = rows.into_iter().map(MessageView::from_row).collect();
    Ok(Json(MessagePage { messages, has_more }))
}
