//! The v1 routes. The route table below builds both the router and the
//! OpenAPI document, so the published reference cannot drift from what is
//! served.

use crate::commands::messages::NewPost;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Auth, Path, User};
use crate::openapi::{self, Op};
use crate::paging::{self, ListQuery};
use crate::state::AppState;
use crate::views::{channel_json, event_json, user_json, workspace_json, MessageView};
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use switchboard_core::commands::members::MemberCommand;
use switchboard_core::ids::{ChannelId, MessageId, UserId};
use switchboard_core::validate::{parse_limit, ClientMsgId, MessageText, Seq};
use switchboard_projections::history::Page;

/// Largest request body (a 40,000-character message in 4-byte UTF-8 fits).
const BODY_LIMIT: usize = 256 * 1024;

pub struct Route {
    pub path: &'static str,
    pub ops: &'static [Op],
    pub handler: fn() -> MethodRouter<AppState>,
}

const USER: &str = "user";
const OPERATOR: &str = "operator";

pub static ROUTES: &[Route] = &[
    Route {
        path: "/healthz",
        ops: &[Op::new("get", "Liveness: 200 while the process is up", "none")],
        handler: || get(healthz),
    },
    Route {
        path: "/readyz",
        ops: &[Op::new("get", "Readiness: JetStream reachable and projectors caught up to the head seen at start-up", "none")],
        handler: || get(readyz),
    },
    Route {
        path: "/v1/openapi.json",
        ops: &[Op::new("get", "This document", "none")],
        handler: || get(openapi_doc),
    },
    Route {
        path: "/v1/workspaces",
        ops: &[Op::new("post", "Create a workspace", OPERATOR).body(r#"{"name":"string"}"#).created()],
        handler: || post(create_workspace),
    },
    Route {
        path: "/v1/workspaces/{ws}/users",
        ops: &[Op::new("post", "Add a user; the response carries its token, shown once", "operator, or an admin of the workspace")
            .body(r#"{"handle":"string","display_name":"string","role":"member|admin"}"#).created()],
        handler: || post(create_user),
    },
    Route {
        path: "/v1/me",
        ops: &[Op::new("get", "The caller's user and workspace", USER)],
        handler: || get(me),
    },
    Route {
        path: "/v1/users",
        ops: &[Op::new("get", "The workspace's users in handle order; limit 1-1000 (default 200), cursor = a next_cursor", USER)
            .params(&["limit", "cursor"])],
        handler: || get(users),
    },
    Route {
        path: "/v1/channels",
        ops: &[
            Op::new("get", "Channels the caller may see (public ones and those it belongs to) in name order; limit 1-1000 (default 1000), cursor = a next_cursor", USER)
                .params(&["limit", "cursor"]),
            Op::new("post", "Create a channel; the creator becomes a member", USER)
                .body(r#"{"name":"string","private":"bool","topic":"string?"}"#).created(),
        ],
        handler: || get(list_channels).post(create_channel),
    },
    Route {
        path: "/v1/channels/{id}",
        ops: &[Op::new("get", "A channel (public, or private and the caller is a member)", USER)],
        handler: || get(get_channel),
    },
    Route {
        path: "/v1/channels/{id}/members",
        ops: &[
            Op::new("get", "A channel's members in user id order; limit 1-1000 (default 200), cursor = a next_cursor", USER)
                .params(&["limit", "cursor"]),
            Op::new("post", "Invite a user (private channels: members only)", USER).body(r#"{"user_id":"string"}"#),
        ],
        handler: || get(list_members).post(invite_member),
    },
    Route {
        path: "/v1/channels/{id}/members/{user}",
        ops: &[Op::new("delete", "Remove a member (workspace admin or channel creator; anyone for themself)", USER)],
        handler: || axum::routing::delete(remove_member),
    },
    Route {
        path: "/v1/channels/{id}/join",
        ops: &[Op::new("post", "Join a public channel", USER)],
        handler: || post(join),
    },
    Route {
        path: "/v1/channels/{id}/leave",
        ops: &[Op::new("post", "Leave a channel", USER)],
        handler: || post(leave),
    },
    Route {
        path: "/v1/channels/{id}/archive",
        ops: &[Op::new("post", "Archive a channel (admin or creator); it becomes read-only", USER)],
        handler: || post(archive),
    },
    Route {
        path: "/v1/dms",
        ops: &[Op::new("post", "The direct-message channel for exactly this set of users (caller included)", USER)
            .body(r#"{"user_ids":["string"]}"#)],
        handler: || post(open_dm),
    },
    Route {
        path: "/v1/messages",
        ops: &[Op::new("post", "Post a message; answered after the log acknowledged it. Same client_msg_id → same message", USER)
            .body(r#"{"channel_id":"string","text":"string","client_msg_id":"string?","thread_root_id":"string?"}"#).created()],
        handler: || post(post_message),
    },
    Route {
        path: "/v1/channels/{id}/messages",
        ops: &[Op::new("get", "History: ?before=<seq> newest first, or ?after_seq=<seq> oldest first; limit 1-200 (default 50)", USER)
            .params(&["before", "after_seq", "limit"])],
        handler: || get(list_messages),
    },
    Route {
        path: "/v1/channels/{id}/events",
        ops: &[Op::new("get", "Every event of the channel after after_seq, in order (resume / gap fill); limit 1-1000 (default 200)", USER)
            .params(&["after_seq", "limit"])],
        handler: || get(list_events),
    },
    Route {
        path: "/v1/realtime",
        ops: &[Op::new("get", "WebSocket upgrade: hello, subscribe {channel_id: last_seen_seq} (replay then live), unsubscribe, typing, ping, presence; event, resync, typing, presence, error frames. Auth by header or ?ticket=", USER)],
        handler: || get(crate::realtime::ws::upgrade),
    },
    Route {
        path: "/v1/realtime/tickets",
        ops: &[Op::new("post", "A single-use ticket (valid 30 s) for ?ticket= on /v1/realtime or /v1/sse", USER)],
        handler: || post(issue_ticket),
    },
    Route {
        path: "/v1/sse",
        ops: &[Op::new("get", "The real-time frames as Server-Sent Events: ?channels=<id>:<seq>,…; each id is a cursor for Last-Event-ID", USER)
            .params(&["channels", "ticket"])],
        handler: || get(crate::realtime::sse::stream),
    },
    Route {
        path: "/v1/presence",
        ops: &[Op::new("get", "Presence (online, away, offline) of users of the caller's workspace: ?user_ids=a,b", USER).params(&["user_ids"])],
        handler: || get(presence),
    },
];

/// Requests in progress at once; past that new ones are shed with 503
/// instead of queueing without bound.
const MAX_IN_FLIGHT: usize = 4096;
/// A request that has not produced its response by then gets 503. Longer
/// than the append path's own 5 s ack timeout, so it only catches hangs;
/// real-time streams are not affected (their response starts at once).
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Builds the router from [`ROUTES`].
pub fn app(state: AppState) -> Router {
    let mut router = Router::new();
    for r in ROUTES {
        router = router.route(r.path, (r.handler)());
    }
    let limits = tower::ServiceBuilder::new()
        .layer(axum::error_handling::HandleErrorLayer::new(
            |err: tower::BoxError| async move {
                if err.is::<tower::timeout::error::Elapsed>() {
                    ApiError::unavailable("the request took too long; try again")
                } else {
                    ApiError::unavailable("the server is overloaded; try again")
                }
            },
        ))
        .load_shed()
        .concurrency_limit(MAX_IN_FLIGHT)
        .timeout(REQUEST_TIMEOUT);
    router
        .fallback(|| async { ApiError::not_found("route") })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(limits)
        .layer(axum::middleware::map_response(crate::error::json_errors))
        .with_state(state)
}

// ----- helpers -----

fn channel_id(raw: &str) -> ApiResult<ChannelId> {
    Ok(ChannelId::parse(raw)?)
}

type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

fn params(q: Params) -> ApiResult<HashMap<String, String>> {
    q.map(|Query(m)| m)
        .map_err(|e| ApiError::invalid(e.body_text()))
}

/// A seq query parameter: 0..=i64::MAX (larger ones would wrap negative
/// in the read models and page from the wrong end).
fn seq_param(p: &HashMap<String, String>, name: &str) -> ApiResult<Option<u64>> {
    Ok(p.get(name)
        .map(|v| Seq::parse(name, v))
        .transpose()?
        .map(Seq::get))
}

fn limit_param(p: &HashMap<String, String>) -> ApiResult<Option<i64>> {
    p.get("limit")
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| ApiError::invalid("limit must be an integer"))
        })
        .transpose()
}

fn ok_seq(seq: u64) -> Json<Value> {
    Json(json!({"ok": true, "seq": seq}))
}

// ----- handlers -----

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(s): State<AppState>) -> Response {
    let c = &s.commands;
    let acl = c.acl_progress.current();
    let history = c.history_progress.current();
    let connected = c.log.is_connected();
    // A projector whose last batch failed (fold conflict, panic, store
    // error) is retrying with backoff: not ready. The detail is logged; the
    // probe only says which projector is stalled.
    let stalled: Vec<&str> = [("acl", &c.acl_progress), ("history", &c.history_progress)]
        .into_iter()
        .filter(|(_, p)| p.health().is_some())
        .map(|(name, _)| name)
        .collect();
    let body = json!({
        "jetstream": connected,
        "startup_head": s.startup_head,
        "projectors": {"acl": acl, "history": history},
        "stalled": stalled,
    });
    if connected && stalled.is_empty() && acl >= s.startup_head && history >= s.startup_head {
        (StatusCode::OK, Json(body)).into_response()
    } else {
        let mut err = ApiError::unavailable(
            "not ready: JetStream unreachable, a projector stalled or catching up",
        )
        .into_response();
        *err.body_mut() = axum::body::Body::from(
            json!({"error": {"code": "unavailable", "message": "not ready"}, "status": body})
                .to_string(),
        );
        err
    }
}

async fn openapi_doc() -> Json<Value> {
    Json(openapi::document(ROUTES))
}

#[derive(Deserialize)]
struct CreateWorkspace {
    name: String,
}

async fn create_workspace(
    State(s): State<AppState>,
    auth: Auth,
    ApiJson(req): ApiJson<CreateWorkspace>,
) -> ApiResult<impl IntoResponse> {
    if !matches!(auth, Auth::Operator) {
        return Err(ApiError::forbidden(
            "only the operator token may create workspaces",
        ));
    }
    let w = s.commands.create_workspace(&req.name).await?;
    Ok((StatusCode::CREATED, Json(workspace_json(&w))))
}

#[derive(Deserialize)]
struct CreateUser {
    handle: String,
    display_name: String,
    role: Option<String>,
}

async fn create_user(
    State(s): State<AppState>,
    auth: Auth,
    Path(ws): Path<String>,
    ApiJson(req): ApiJson<CreateUser>,
) -> ApiResult<impl IntoResponse> {
    let by = match auth {
        Auth::Operator => None,
        Auth::User(u) => Some(u),
    };
    let (user, token) = s
        .commands
        .create_user(
            by.as_ref(),
            &ws,
            &req.handle,
            &req.display_name,
            req.role.as_deref(),
        )
        .await?;
    let mut body = user_json(&user);
    body["token"] = Value::String(token);
    Ok((StatusCode::CREATED, Json(body)))
}

async fn me(State(s): State<AppState>, User(u): User) -> ApiResult<Json<Value>> {
    let (user, ws) = s.commands.me(&u).await?;
    Ok(Json(json!({
        "user": user_json(&user),
        "workspace": ws.as_ref().map(workspace_json),
    })))
}

async fn users(State(s): State<AppState>, User(u): User, q: Params) -> ApiResult<Json<Value>> {
    let page = ListQuery::parse(&params(q)?, paging::DEFAULT_LIMIT)?;
    let users = s.commands.users(&u, &page).await?;
    Ok(Json(json!({
        "users": users.items.iter().map(user_json).collect::<Vec<_>>(),
        "next_cursor": users.next_cursor,
    })))
}

#[derive(Deserialize)]
struct CreateChannel {
    name: String,
    #[serde(default)]
    private: bool,
    topic: Option<String>,
}

async fn create_channel(
    State(s): State<AppState>,
    User(u): User,
    ApiJson(req): ApiJson<CreateChannel>,
) -> ApiResult<impl IntoResponse> {
    let ch = s
        .commands
        .create_channel(&u, &req.name, req.private, req.topic.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(channel_json(&ch))))
}

async fn list_channels(
    State(s): State<AppState>,
    User(u): User,
    q: Params,
) -> ApiResult<Json<Value>> {
    let page = ListQuery::parse(&params(q)?, paging::DEFAULT_CHANNELS_LIMIT)?;
    let chans = s.commands.channels(&u, &page).await?;
    Ok(Json(json!({
        "channels": chans.items.iter().map(channel_json).collect::<Vec<_>>(),
        "next_cursor": chans.next_cursor,
    })))
}

async fn get_channel(
    State(s): State<AppState>,
    User(u): User,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = channel_id(&id)?;
    Ok(Json(channel_json(
        &s.commands.channel(&u, id.as_str()).await?,
    )))
}

async fn list_members(
    State(s): State<AppState>,
    User(u): User,
    Path(id): Path<String>,
    q: Params,
) -> ApiResult<Json<Value>> {
    let id = channel_id(&id)?;
    let page = ListQuery::parse(&params(q)?, paging::DEFAULT_LIMIT)?;
    let members = s.commands.members(&u, id.as_str(), &page).await?;
    let next_cursor = members.next_cursor;
    let members: Vec<Value> = members
        .items
        .iter()
        .map(|m| {
            json!({"user_id": m.id, "handle": m.handle, "display_name": m.display_name, "role": m.role})
        })
        .collect();
    Ok(Json(
        json!({"members": members, "next_cursor": next_cursor}),
    ))
}

#[derive(Deserialize)]
struct Invite {
    user_id: String,
}

async fn invite_member(
    s: State<AppState>,
    User(u): User,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<Invite>,
) -> ApiResult<Json<Value>> {
    let target = UserId::parse(&req.user_id)?;
    membership(s, u, &id, MemberCommand::Invite(target)).await
}

async fn remove_member(
    s: State<AppState>,
    User(u): User,
    Path((id, user)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let target = UserId::parse(&user)?;
    membership(s, u, &id, MemberCommand::Remove(target)).await
}

async fn join(s: State<AppState>, User(u): User, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    membership(s, u, &id, MemberCommand::Join).await
}

async fn leave(
    s: State<AppState>,
    User(u): User,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    membership(s, u, &id, MemberCommand::Leave).await
}

async fn membership(
    State(s): State<AppState>,
    u: crate::extract::UserCtx,
    id: &str,
    cmd: MemberCommand,
) -> ApiResult<Json<Value>> {
    let id = channel_id(id)?;
    Ok(ok_seq(s.commands.change_membership(&u, &id, cmd).await?))
}

async fn archive(
    State(s): State<AppState>,
    User(u): User,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = channel_id(&id)?;
    Ok(ok_seq(s.commands.archive(&u, &id).await?))
}

#[derive(Deserialize)]
struct Dms {
    user_ids: Vec<String>,
}

async fn open_dm(
    State(s): State<AppState>,
    User(u): User,
    ApiJson(req): ApiJson<Dms>,
) -> ApiResult<impl IntoResponse> {
    let (ch, created) = s.commands.open_dm(&u, &req.user_ids).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(channel_json(&ch))))
}

#[derive(Deserialize)]
struct PostMessageReq {
    channel_id: String,
    text: String,
    client_msg_id: Option<String>,
    thread_root_id: Option<String>,
    #[serde(default)]
    attachment_ids: Vec<String>,
}

async fn post_message(
    State(s): State<AppState>,
    User(u): User,
    ApiJson(req): ApiJson<PostMessageReq>,
) -> ApiResult<(StatusCode, Json<MessageView>)> {
    if !req.attachment_ids.is_empty() {
        return Err(ApiError::invalid(
            "attachment_ids: file uploads are not available yet",
        ));
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
    };
    let (msg, created) = s.commands.post_message(&u, post).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(msg)))
}

async fn list_messages(
    State(s): State<AppState>,
    User(u): User,
    Path(id): Path<String>,
    q: Params,
) -> ApiResult<Json<Value>> {
    let id = channel_id(&id)?;
    let p = params(q)?;
    let limit = parse_limit(limit_param(&p)?)?;
    let page = match (seq_param(&p, "before")?, seq_param(&p, "after_seq")?) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "use either before or after_seq, not both",
            ))
        }
        (before, None) => Page::Before(before),
        (None, Some(after)) => Page::After(after),
    };
    let (rows, has_more) = s.commands.messages(&u, id.as_str(), page, limit).await?;
    let messages: Vec<MessageView> = rows.into_iter().map(MessageView::from_row).collect();
    Ok(Json(json!({"messages": messages, "has_more": has_more})))
}

async fn list_events(
    State(s): State<AppState>,
    User(u): User,
    Path(id): Path<String>,
    q: Params,
) -> ApiResult<Json<Value>> {
    let id = channel_id(&id)?;
    let p = params(q)?;
    let after = seq_param(&p, "after_seq")?.unwrap_or(0);
    let limit = match limit_param(&p)? {
        None => 200,
        Some(n) if (1..=1000).contains(&n) => n as u32,
        Some(_) => return Err(ApiError::invalid("limit must be between 1 and 1000")),
    };
    let (events, head) = s.commands.events(&u, id.as_str(), after, limit).await?;
    Ok(Json(json!({
        "events": events.into_iter().map(event_json).collect::<Vec<_>>(),
        "head_seq": head,
    })))
}

async fn issue_ticket(State(s): State<AppState>, User(u): User) -> ApiResult<impl IntoResponse> {
    let ticket = crate::commands::new_token().replacen("sbt_", "rtk_", 1);
    s.realtime.tickets.issue(u, ticket.clone());
    Ok((
        StatusCode::CREATED,
        Json(json!({"ticket": ticket, "expires_in_ms": 30_000})),
    ))
}

async fn presence(State(s): State<AppState>, User(u): User, q: Params) -> ApiResult<Json<Value>> {
    let p = params(q)?;
    let ids: Vec<String> = p
        .get("user_ids")
        .map(|v| {
            v.split(',')
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if ids.is_empty() || ids.len() > 500 {
        return Err(ApiError::invalid(
            "user_ids: 1-500 comma-separated user ids",
        ));
    }
    for id in &ids {
        UserId::parse(id)?;
    }
    // Only users of the caller's workspace exist for it.
    let ws = u.caller.workspace_id.clone();
    let known: Vec<String> = {
        let ids = ids.clone();
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
    let statuses = s.realtime.presence_of(&ws, &known).await;
    let users: Vec<Value> = statuses
        .into_iter()
        .map(|(id, status)| json!({"user_id": id, "status": status}))
        .collect();
    Ok(Json(json!({"users": users})))
}
