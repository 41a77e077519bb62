//! Channels and membership: create, list, read and update channels, join,
//! leave, invite, remove, archive, and direct-message channels. Membership
//! changes answer with the seq of the event they appended.

use super::{channel_id, created_or_ok};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Path, Query, User, UserCtx};
use crate::paging::{self, ListParams};
use crate::state::AppState;
use crate::views::{channel_json, member_json, Appended, ChannelJson, ChannelList, MemberList};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use switchboard_core::commands::members::MemberCommand;
use switchboard_core::ids::UserId;
use switchboard_core::validate::{parse_topic, ChannelName};
use utoipa::ToSchema;

const TAG: &str = "channels";

#[derive(Deserialize, ToSchema)]
pub(super) struct CreateChannel {
    /// Unique per workspace.
    name: String,
    #[serde(default)]
    private: bool,
    topic: Option<String>,
}

/// Create a channel; the creator becomes a member.
#[utoipa::path(post, path = "/v1/channels", tag = TAG, security(("user" = [])),
    request_body = CreateChannel,
    responses((status = 201, description = "created", body = ChannelJson)))]
pub(super) async fn create_channel(
    State(s): State<AppState>,
    User(u): User,
    ApiJson(req): ApiJson<CreateChannel>,
) -> ApiResult<(StatusCode, Json<ChannelJson>)> {
    let ch = s
        .commands
        .create_channel(&u, &req.name, req.private, req.topic.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(channel_json(&ch))))
}

/// A page of the channels the caller may see (public ones and those it
/// belongs to), in name order.
#[utoipa::path(get, path = "/v1/channels", tag = TAG, security(("user" = [])), params(ListParams),
    responses((status = 200, description = "the channels", body = ChannelList)))]
pub(super) async fn list_channels(
    State(s): State<AppState>,
    User(u): User,
    Query(q): Query<ListParams>,
) -> ApiResult<Json<ChannelList>> {
    let page = q.page(paging::DEFAULT_CHANNELS_LIMIT)?;
    let page = s.commands.channels(&u, &page).await?;
    Ok(Json(ChannelList {
        channels: page.items.iter().map(channel_json).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// A channel (public, or private and the caller is a member).
#[utoipa::path(get, path = "/v1/channels/{id}", tag = TAG, security(("user" = [])),
    responses((status = 200, description = "the channel", body = ChannelJson)))]
pub(super) async fn get_channel(
    State(s): State<AppState>,
    User(u): User,
    Path(id): Path<String>,
) -> ApiResult<Json<ChannelJson>> {
    let id = channel_id(&id)?;
    Ok(Json(channel_json(&s.commands.channel(&u, &id).await?)))
}

#[derive(Deserialize, ToSchema)]
pub(super) struct UpdateChannel {
    /// A new name, unique per workspace.
    name: Option<String>,
    /// A new topic, at most 250 characters; `""` clears it.
    topic: Option<String>,
}

/// Rename a channel or set its topic.
///
/// Workspace admins, or the channel's creator while a member; not direct
/// messages, not archived channels (409 `channel_archived`). A field equal
/// to the current value appends nothing.
#[utoipa::path(patch, path = "/v1/channels/{id}", tag = TAG, security(("user" = [])),
    request_body = UpdateChannel,
    responses((status = 200, description = "the channel afterwards", body = ChannelJson)))]
pub(super) async fn update_channel(
    State(s): State<AppState>,
    User(u): User,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateChannel>,
) -> ApiResult<Json<ChannelJson>> {
    let id = channel_id(&id)?;
    if req.name.is_none() && req.topic.is_none() {
        return Err(ApiError::invalid("give a name, a topic, or both"));
    }
    let name = req.name.as_deref().map(ChannelName::parse).transpose()?;
    let topic = match req.topic.as_deref() {
        Some(t) => Some(parse_topic(Some(t))?),
        None => None,
    };
    let ch = s
        .commands
        .update_channel(&u, &id, name.as_ref(), topic.as_deref())
        .await?;
    Ok(Json(channel_json(&ch)))
}

/// A page of a channel's members, in user id order.
#[utoipa::path(get, path = "/v1/channels/{id}/members", tag = TAG, security(("user" = [])), params(ListParams),
    responses((status = 200, description = "the members", body = MemberList)))]
pub(super) async fn list_members(
    State(s): State<AppState>,
    User(u): User,
    Path(id): Path<String>,
    Query(q): Query<ListParams>,
) -> ApiResult<Json<MemberList>> {
    let id = channel_id(&id)?;
    let page = s
        .commands
        .members(&u, &id, &q.page(paging::DEFAULT_LIMIT)?)
        .await?;
    Ok(Json(MemberList {
        members: page.items.iter().map(member_json).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[derive(Deserialize, ToSchema)]
pub(super) struct Invite {
    user_id: String,
}

/// Invite a user (private channels: members only).
#[utoipa::path(post, path = "/v1/channels/{id}/members", tag = TAG, security(("user" = [])),
    request_body = Invite,
    responses((status = 200, description = "invited", body = Appended)))]
pub(super) async fn invite_member(
    s: State<AppState>,
    User(u): User,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<Invite>,
) -> ApiResult<Json<Appended>> {
    let target = UserId::parse(&req.user_id)?;
    membership(s, u, &id, MemberCommand::Invite(target)).await
}

/// Remove a member.
///
/// Workspace admins and the channel's creator; anyone for themself.
#[utoipa::path(delete, path = "/v1/channels/{id}/members/{user}", tag = TAG,
    security(("user" = [])),
    responses((status = 200, description = "removed", body = Appended)))]
pub(super) async fn remove_member(
    s: State<AppState>,
    User(u): User,
    Path((id, user)): Path<(String, String)>,
) -> ApiResult<Json<Appended>> {
    let target = UserId::parse(&user)?;
    membership(s, u, &id, MemberCommand::Remove(target)).await
}

/// Join a public channel.
#[utoipa::path(post, path = "/v1/channels/{id}/join", tag = TAG, security(("user" = [])),
    responses((status = 200, description = "joined", body = Appended)))]
pub(super) async fn join(
    s: State<AppState>,
    User(u): User,
    Path(id): Path<String>,
) -> ApiResult<Json<Appended>> {
    membership(s, u, &id, MemberCommand::Join).await
}

/// Leave a channel.
#[utoipa::path(post, path = "/v1/channels/{id}/leave", tag = TAG, security(("user" = [])),
    responses((status = 200, description = "left", body = Appended)))]
pub(super) async fn leave(
    s: State<AppState>,
    User(u): User,
    Path(id): Path<String>,
) -> ApiResult<Json<Appended>> {
    membership(s, u, &id, MemberCommand::Leave).await
}

async fn membership(
    State(s): State<AppState>,
    u: UserCtx,
    id: &str,
    cmd: MemberCommand,
) -> ApiResult<Json<Appended>> {
    let id = channel_id(id)?;
    let seq = s.commands.change_membership(&u, &id, cmd).await?;
    Ok(Json(Appended::at(seq)))
}

/// Archive a channel (admin or creator); it becomes read-only.
#[utoipa::path(post, path = "/v1/channels/{id}/archive", tag = TAG, security(("user" = [])),
    responses((status = 200, description = "archived", body = Appended)))]
pub(super) async fn archive(
    State(s): State<AppState>,
    User(u): User,
    Path(id): Path<String>,
) -> ApiResult<Json<Appended>> {
    let id = channel_id(&id)?;
    Ok(Json(Appended::at(s.commands.archive(&u, &id).await?)))
}

#[derive(Deserialize, ToSchema)]
pub(super) struct Dms {
    /// The other users (the caller is always included).
    user_ids: Vec<String>,
}

/// Open a direct-message channel.
///
/// The channel of exactly this set of users, the caller included; the
/// same set always gets the same channel.
#[utoipa::path(post, path = "/v1/dms", tag = TAG, security(("user" = [])),
    request_body = Dms,
    responses(
        (status = 201, description = "created now", body = ChannelJson),
        (status = 200, description = "it existed", body = ChannelJson),
    ))]
pub(super) async fn open_dm(
    State(s): State<AppState>,
    User(u): User,
    ApiJson(req): ApiJson<Dms>,
) -> ApiResult<(StatusCode, Json<ChannelJson>)> {
    let (ch, created) = s.commands.open_dm(&u, &req.user_ids).await?;
    Ok((created_or_ok(created), Json(channel_json(&ch))))
}
