//! `GET /v1/realtime`: the WebSocket transport. The socket is split into a
//! reader task (client frames) and a writer loop (queued frames, owed
//! resyncs, heartbeats).

use super::session::Session;
use crate::error::ApiError;
use crate::extract::UserCtx;
use crate::state::AppState;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequest, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The caller of a real-time endpoint: a bearer token, or a single-use
/// `?ticket=` (browsers). A missing, bad or used ticket is refused with 401
/// before any upgrade.
pub async fn realtime_caller(parts: &mut Parts, state: &AppState) -> Result<UserCtx, ApiError> {
    let q: Query<HashMap<String, String>> =
        Query::try_from_uri(&parts.uri).unwrap_or_else(|_| Query(HashMap::new()));
    if let Some(ticket) = q.get("ticket") {
        return state
            .realtime
            .tickets
            .redeem(ticket)
            .ok_or_else(ApiError::unauthorized);
    }
    crate::extract::User::from_request_parts(parts, state)
        .await
        .map(|crate::extract::User(u)| u)
}

pub async fn upgrade(State(state): State<AppState>, req: axum::extract::Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let user = match realtime_caller(&mut parts, &state).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    let req = axum::extract::Request::from_parts(parts, body);
    let ws = match WebSocketUpgrade::from_request(req, &state).await {
        Ok(ws) => ws,
        Err(r) => return ApiError::invalid(r.body_text()).into_response(),
    };
    // tungstenite's defaults are 128 KiB read and write buffers per socket;
    // chat frames are small, and 20k idle connections must fit in memory.
    ws.read_buffer_size(2 * 1024)
        .write_buffer_size(4 * 1024)
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| run(socket, state, user))
}

fn ms_since(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}

async fn run(socket: WebSocket, state: AppState, user: UserCtx) {
    let rt = state.realtime.clone();
    let (session, mut out, hello) = rt.open_session(user).await;
    let (mut sink, mut stream) = socket.split();
    let stall = rt.config.heartbeat * 2;
    if !send(&mut sink, Message::Text(hello.into()), stall).await {
        rt.presence_disconnected(&session.user).await;
        return;
    }
    session.follow_joins();
    let start = Instant::now();
    let last_heard = Arc::new(AtomicU64::new(0));

    // Reader: client frames.
    let mut reader = {
        let session = session.clone();
        let last_heard = last_heard.clone();
        let rt = rt.clone();
        tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                last_heard.store(ms_since(start), Ordering::Relaxed);
                match msg {
                    Message::Text(t) => handle_frame(&session, &rt, t.as_str()).await,
                    Message::Close(_) => break,
                    _ => {}
                }
            }
        })
    };

    // Writer: queued frames, owed resyncs, heartbeats. A client that
    // stops reading stalls a send at most `stall`; then it is closed.
    let mut ticker = tokio::time::interval(rt.config.heartbeat);
    ticker.tick().await;
    let limit = rt.config.heartbeat.as_millis() as u64 * 2;
    loop {
        let ok = tokio::select! {
            biased;
            _ = session.wake.notified() => {
                let mut ok = true;
                for (_, _, frame) in session.take_resyncs() {
                    ok = send(&mut sink, Message::Text(frame.into()), stall).await;
                    if !ok {
                        break;
                    }
                }
                ok
            }
            o = out.recv() => match o {
                Some(o) => send(&mut sink, Message::Text(o.text.as_ref().into()), stall).await,
                None => false,
            },
            _ = ticker.tick() => {
                if ms_since(start).saturating_sub(last_heard.load(Ordering::Relaxed)) > limit {
                    tracing::debug!(session = %session.id, "missed two heartbeats; closing");
                    false
                } else {
                    rt.presence_heartbeat(&session.user).await;
                    send(&mut sink, Message::Ping(Vec::new().into()), stall).await
                }
            }
            _ = &mut reader => false,
        };
        if !ok {
            break;
        }
    }
    reader.abort();
    session.close();
    let _ = sink.close().await;
    rt.presence_disconnected(&session.user).await;
}

async fn handle_frame(session: &Arc<Session>, rt: &super::Realtime, text: &str) {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        session
            .send_text(json!({"type": "error", "code": "invalid_request", "message": "frames are JSON objects"}).to_string())
            .await;
        return;
    };
    match v["type"].as_str() {
        Some("subscribe") => {
            let Some(map) = v["channels"].as_object() else {
                return invalid(
                    session,
                    "subscribe needs channels: {channel_id: last_seen_seq}",
                )
                .await;
            };
            for (ch, seq) in map {
                if switchboard_core::ChannelId::parse(ch).is_err() {
                    session
                        .send_text(
                            json!({"type": "error", "code": "not_a_member", "channel_id": ch})
                                .to_string(),
                        )
                        .await;
                    continue;
                }
                session
                    .subscribe(ch.clone(), seq.as_u64().unwrap_or(0))
                    .await;
            }
        }
        Some("unsubscribe") => {
            for ch in v["channels"].as_array().into_iter().flatten() {
                if let Some(ch) = ch.as_str() {
                    session.unsubscribe(ch);
                }
            }
        }
        Some("typing") => match v["channel_id"].as_str() {
            Some(ch) => session.typing(ch).await,
            None => invalid(session, "typing needs channel_id").await,
        },
        Some("ping") => session.send_text(json!({"type": "pong"}).to_string()).await,
        Some("presence") => match v["status"].as_str() {
            Some("online") => rt.presence_set(&session.user, "online").await,
            Some("away") => rt.presence_set(&session.user, "away").await,
            _ => invalid(session, "presence status must be online or away").await,
        },
        _ => invalid(session, "unknown frame type").await,
    }
}

async fn invalid(session: &Session, message: &str) {
    session
        .send_text(
            json!({"type": "error", "code": "invalid_request", "message": message}).to_string(),
        )
        .await;
}

/// Sends one frame; false when the socket failed or the client has not
/// taken it within `stall`.
async fn send<S>(sink: &mut S, msg: Message, stall: std::time::Duration) -> bool
where
    S: futures_util::Sink<Message> + Unpin,
{
    matches!(
        tokio::time::timeout(stall, sink.send(msg)).await,
        Ok(Ok(()))
    )
}
