//! Messages: posting (answered once the log holds it; idempotent by
//! `client_msg_id`), editing and deleting, a channel's history pages, and
//! its raw events after a seq (the resume / gap-fill path).

use super::{channel_id, created_or_ok};
use crate::commands::messages::NewPost;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Path, Query, User};
use crate::query::{self, EventsLimit, HistoryLimit};
use crate::state::AppState;
use crate::views::{event_json, EventPage, MessagePage, MessageView};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use switchboard_core::commands::conversation::MessageCommand;
use switchboard_core::commands::files::MAX_ATTACHMENTS;
use switchboard_core::ids::{ChannelId, FileId, MessageId};
use switchboard_core::validate::{ClientMsgId, MessageText, Seq};
use switchboard_projections::history::Page;
use utoipa::{IntoParams, ToSchema};

const TAG: &str = "messages";

#[derive(Deserialize, ToSchema)]
#[schema(as = PostMessage)]
pub(super) struct PostMessageReq {
    channel_id: String,
    /// 1 to 40,000 characters, not only invisible ones.
    text: String,
    /// The client's id for this post: a retry with the same one returns the
    /// original message instead of posting again.
    client_msg_id: Option<String>,
    /// Post as a reply in this message's thread.
    thread_root_id: Option<String>,
    /// A reply that also shows in the channel's history (replies only).
    #[serde(default)]
    also_send_to_channel: bool,
    /// Files to attach (at most 10): the caller's own uploads to this
    /// channel that no message carries yet.
    #[serde(default)]
    attachment_ids: Vec<String>,
}

/// Post a message.
///
/// Answered after the log acknowledged it. The same `client_msg_id`
/// returns the same message.
#[utoipa::path(post, path = "/v1/messages", tag = TAG, security(("user" = [])),
    request_body = PostMessageReq,
    responses(
        (status = 201, description = "posted", body = MessageView),
        (status = 200, description = "posted earlier with this client_msg_id", body = MessageView),
    ))]
pub(super) async fn post_message(
    State(s): State<AppState>,
    User(u): User,
    ApiJson(req): ApiJson<PostMessageReq>,
) -> ApiResult<(StatusCode, Json<MessageView>)> {
    if req.attachment_ids.len() > MAX_ATTACHMENTS {
        return Err(ApiError::invalid(format!(
            "attachment_ids: at most {MAX_ATTACHMENTS} files"
        )));
    }
    let post = NewPost {
        channel_id: ChannelId::parse(&req.channel_id)?,
        text: MessageText::parse(&req.text)?,
        client_msg_id: req
            .client_msg_id
            .as_deref()
            .map(ClientMsgId::parse)
            .transpose()?,
        thread_root_id: req
            .thread_root_id
            .as_deref()
            .map(MessageId::parse)
            .transpose()?,
        also_send_to_channel: req.also_send_to_channel,
        attachment_ids: req
            .attachment_ids
            .iter()
            .map(|f| FileId::parse(f))
            .collect::<Result<_, _>>()?,
    };
    let (msg, created) = s.commands.post_message(&u, post).await?;
    Ok((created_or_ok(created), Json(msg)))
}

/// A message id from a path segment.
pub(super) fn message_id(raw: &str) -> ApiResult<MessageId> {
    Ok(MessageId::parse(raw)?)
}

#[derive(Deserialize, ToSchema)]
#[schema(as = EditMessage)]
pub(super) struct EditMessageReq {
    /// The new text: 1 to 40,000 characters, not only invisible ones.
    text: String,
}

/// Edit a message (its author only).
///
/// The text is replaced and its mentions resolved anew; `edited_ts` is set.
/// A deleted message cannot be edited (409 `conflict`), nor one in an
/// archived channel (409 `channel_archived`). The same text again appends
/// nothing.
#[utoipa::path(patch, path = "/v1/messages/{id}", tag = TAG, security(("user" = [])),
    request_body = EditMessageReq,
    responses((status = 200, description = "the edited message", body = MessageView)))]
pub(super) async fn edit_message(
    State(s): State<AppState>,
    User(u): User,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<EditMessageReq>,
) -> ApiResult<Json<MessageView>> {
    let id = message_id(&id)?;
    let cmd = MessageCommand::Edit(MessageText::parse(&req.text)?);
    Ok(Json(s.commands.message_command(&u, &id, cmd).await?))
}

/// Delete a message (its author, or a workspace admin).
///
/// Leaves a tombstone: the text, mentions, reactions and pin are gone from
/// every read path; a thread root keeps its replies. Deleting a deleted
/// message appends nothing and answers the same.
#[utoipa::path(delete, path = "/v1/messages/{id}", tag = TAG, security(("user" = [])),
    responses((status = 200, description = "the tombstone", body = MessageView)))]
pub(super) async fn delete_message(
    State(s): State<AppState>,
    User(u): User,
    Path(id): Path<String>,
) -> ApiResult<Json<MessageView>> {
    let id = message_id(&id)?;
    Ok(Json(
        s.commands
            .message_command(&u, &id, MessageCommand::Delete)
            .await?,
    ))
}

/// `?before=` or `?after_seq=` (not both), and a page size.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct HistoryQuery {
    /// Newest first: the page before this seq (the latest page when
    /// neither this nor `after_seq` is given).
    #[serde(default, deserialize_with = "query::seq")]
    #[param(value_type = Option<u64>)]
    before: Option<Seq>,
    /// Oldest first: the page after this seq.
    #[serde(default, deserialize_with = "query::seq")]
    #[param(value_type = Option<u64>)]
    after_seq: Option<Seq>,
    #[serde(default)]
    #[param(inline)]
    limit: HistoryLimit,
}

impl HistoryQuery {
    fn page(&self) -> ApiResult<Page> {
        match (self.before, self.after_seq) {
            (Some(_), Some(_)) => Err(ApiError::invalid(
                "use either before or after_seq, not both",
            )),
            (before, None) => Ok(Page::Before(before.map(Seq::get))),
            (None, Some(after)) => Ok(Page::After(after.get())),
        }
    }
}

/// A channel's history.
///
/// Newest first before a seq, or oldest first after one. Thread replies
/// appear in their thread, not here.
#[utoipa::path(get, path = "/v1/channels/{id}/messages", tag = TAG,
    security(("user" = [])),
    params(HistoryQuery),
    responses((status = 200, description = "a page", body = MessagePage)))]
pub(super) async fn list_messages(
    State(s): State<AppState>,
    User(u): User,
    Path(id): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> ApiResult<Json<MessagePage>> {
    let id = channel_id(&id)?;
    let page = q.page()?;
    let (rows, has_more) = s.commands.messages(&u, &id, page, q.limit.get()).await?;
    let messages = rows.into_iter().map(MessageView::from_row).collect();
    Ok(Json(MessagePage { messages, has_more }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct EventsQuery {
    /// Events after this seq (0, the default: from the start).
    #[serde(default, deserialize_with = "query::seq")]
    #[param(value_type = Option<u64>)]
    after_seq: Option<Seq>,
    #[serde(default)]
    #[param(inline)]
    limit: EventsLimit,
}

/// A channel's events.
///
/// Every event of the channel after `after_seq`, in order: the resume and
/// gap-fill path.
#[utoipa::path(get, path = "/v1/channels/{id}/events", tag = TAG,
    security(("user" = [])),
    params(EventsQuery),
    responses((status = 200, description = "the events", body = EventPage)))]
pub(super) async fn list_events(
    State(s): State<AppState>,
    User(u): User,
    Path(id): Path<String>,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Json<EventPage>> {
    let id = channel_id(&id)?;
    let after = q.after_seq.map_or(0, Seq::get);
    let (events, head_seq) = s.commands.events(&u, &id, after, q.limit.get()).await?;
    let events = events.into_iter().map(event_json).collect();
    Ok(Json(EventPage { events, head_seq }))
}
