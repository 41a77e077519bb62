//! The HTTP face of real time: the WebSocket and SSE endpoints (their
//! loops live in [`crate::realtime`]; these only document and mount them),
//! single-use tickets for browsers, and presence queries.

use crate::error::ApiResult;
use crate::extract::{Query, User};
use crate::query::UserIds;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

const TAG: &str = "realtime";

/// Authentication of a stream: a header, or a ticket for browsers.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // parsed by crate::realtime; here for the document
pub(super) struct TicketQuery {
    /// A ticket from `POST /v1/realtime/tickets`, instead of an
    /// Authorization header; spent when the stream opens.
    ticket: Option<String>,
}

/// The real-time WebSocket.
///
/// Frames: hello, subscribe `{channel_id: last_seen_seq}` (replay then
/// live), unsubscribe, typing, ping, presence; event, resync, typing,
/// presence, error.
#[utoipa::path(get, path = "/v1/realtime", tag = TAG, security(("user" = []), ()),
    params(TicketQuery),
    responses((status = 101, description = "switching to the WebSocket protocol")))]
pub(super) async fn websocket(state: State<AppState>, req: Request) -> Response {
    crate::realtime::ws::upgrade(state, req).await
}

/// `?channels=` and `?ticket=` of an SSE stream.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // parsed by crate::realtime::sse; here for the document
pub(super) struct SseQuery {
    /// `<channel_id>:<seq>,…`: the channels to follow, each after its
    /// seq. Required unless a `Last-Event-ID` header resumes.
    channels: Option<String>,
    /// As on `/v1/realtime`.
    ticket: Option<String>,
}

/// The real-time frames as Server-Sent Events.
///
/// Each event's id is a cursor that, sent back as `Last-Event-ID`, resumes
/// every channel.
#[utoipa::path(get, path = "/v1/sse", tag = TAG, security(("user" = []), ()),
    params(SseQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "a cursor to resume from; wins over `channels`")),
    responses((status = 200, description = "an event stream; each `data` is a frame's JSON",
        content_type = "text/event-stream", body = String)))]
pub(super) async fn sse(state: State<AppState>, req: Request) -> Response {
    crate::realtime::sse::stream(state, req).await
}

/// A single-use ticket.
#[derive(Serialize, ToSchema)]
pub(super) struct Ticket {
    /// For `?ticket=` on `/v1/realtime` or `/v1/sse`.
    ticket: String,
    expires_in_ms: u64,
}

/// Issue a real-time ticket.
///
/// Single use, valid 30 s, for `?ticket=` on `/v1/realtime` or `/v1/sse`.
#[utoipa::path(post, path = "/v1/realtime/tickets", tag = TAG, security(("user" = [])),
    responses((status = 201, description = "issued", body = Ticket)))]
pub(super) async fn issue_ticket(
    State(s): State<AppState>,
    User(u): User,
) -> ApiResult<(StatusCode, Json<Ticket>)> {
    let ticket = crate::commands::new_token().replacen("sbt_", "rtk_", 1);
    s.realtime.tickets.issue(u, ticket.clone());
    Ok((
        StatusCode::CREATED,
        Json(Ticket {
            ticket,
            expires_in_ms: 30_000,
        }),
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct PresenceQuery {
    #[param(inline)]
    user_ids: UserIds,
}

/// Presence of users.
#[derive(Serialize, ToSchema)]
pub(super) struct PresenceList {
    /// The asked-for users of the caller's workspace (others are left out).
    users: Vec<UserPresence>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct UserPresence {
    user_id: String,
    /// `online`, `away` or `offline`.
    status: String,
}

/// Presence of users.
///
/// Online, away or offline, for users of the caller's workspace.
#[utoipa::path(get, path = "/v1/presence", tag = TAG, security(("user" = [])),
    params(PresenceQuery),
    responses((status = 200, description = "their presence", body = PresenceList)))]
pub(super) async fn presence(
    State(s): State<AppState>,
    User(u): User,
    Query(q): Query<PresenceQuery>,
) -> ApiResult<Json<PresenceList>> {
    let ids: Vec<String> = q
        .user_ids
        .0
        .into_iter()
        .map(|id| id.into_string())
        .collect();
    // Only users of the caller's workspace exist for it.
    let ws = u.caller.workspace_id.clone();
    let known: Vec<String> = {
        let ws = ws.clone();
        s.commands
            .acl
            .read_rows(ids.len() as u32, move |c| {
                let mut out = Vec::new();
                for id in ids {
                    if switchboard_projections::acl::user(c, &ws, &id)?.is_some() {
                        out.push(id);
                    }
                }
                Ok(out)
            })
            .await?
    };
    let users = s
        .realtime
        .presence_of(&ws, &known)
        .await
        .into_iter()
        .map(|(user_id, status)| UserPresence { user_id, status })
        .collect();
    Ok(Json(PresenceList { users }))
}
