//! `GET /v1/realtime`: the WebSocket transport. The socket is split into a
//! reader task (client frames, parsed into [`ClientFrame`]; presence
//! changes coalesced) and a writer loop (queued frames, owed resyncs,
//! heartbeats).
//!
//! What one client can make the server hold is bounded: a message and a
//! single frame are at most [`MAX_FRAME`] bytes (tungstenite would
//! otherwise buffer a frame announced as 16 MiB for as long as the client
//! trickles it), a connection follows at most
//! [`super::MAX_CHANNELS_PER_CONNECTION`] channels, and presence frames
//! cost at most one change per [`PRESENCE_INTERVAL`]. A connection sends
//! at most its frame budget ([`crate::limits::RateLimits::ws_frames`]):
//! past it, it gets an `error` frame `rate_limited` and a close (1008);
//! typing frames past the user's typing limit get an `error` frame and
//! are dropped.

use super::frames::{self, ClientFrame, Status};
use super::session::Session;
use super::throttle::{Coalescer, PRESENCE_INTERVAL};
use crate::error::ApiError;
use crate::extract::UserCtx;
use crate::limits::{Class, Key, Limiter};
use crate::state::AppState;
use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Largest client message, and largest single frame: chat frames are
/// small, and a frame is buffered whole before it is checked.
pub const MAX_FRAME: usize = 64 * 1024;

/// Who is opening a real-time stream, before anything is spent.
pub enum Credential {
    /// A single-use ticket that was live when checked.
    Ticket(String),
    User(UserCtx),
}

/// The caller of a real-time endpoint: a bearer token, or a single-use
/// `?ticket=` (browsers). A missing, bad or used ticket is refused with 401
/// before any upgrade; a live one is only checked here and spent by
/// [`Credential::redeem`] once the stream is certain to open.
pub async fn realtime_credential(
    parts: &mut Parts,
    state: &AppState,
) -> Result<Credential, ApiError> {
    let q: Query<HashMap<String, String>> =
        Query::try_from_uri(&parts.uri).unwrap_or_else(|_| Query(HashMap::new()));
    if let Some(ticket) = q.get("ticket") {
        return if state.realtime.tickets.is_live(ticket) {
            Ok(Credential::Ticket(ticket.clone()))
        } else {
            Err(ApiError::unauthorized())
        };
    }
    if let Some((_, crate::extract::CredentialSource::Cookie)) =
        crate::extract::credential(&parts.headers)
    {
        // A browser always sends `Origin` with a WebSocket upgrade, but
        // not with a same-origin EventSource request.
        let websocket = parts.headers.contains_key(axum::http::header::UPGRADE);
        same_origin(&parts.headers, websocket)?;
    }
    crate::extract::User::from_request_parts(parts, state)
        .await
        .map(|crate::extract::User(u)| Credential::User(u))
}

/// A browser sends its cookies with a WebSocket upgrade from any site, and
/// the upgrade is not subject to CORS: a cookie-authenticated stream is
/// only opened for a page of this origin (`Origin`'s host equals `Host`).
/// Without `Origin`: refused when `required` (a WebSocket), else allowed
/// (a same-origin EventSource sends none; a cross-origin one always does).
fn same_origin(headers: &axum::http::HeaderMap, required: bool) -> Result<(), ApiError> {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok());
    let origin_host = headers
        .get(axum::http::header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest.trim_end_matches('/'));
    match (host, origin_host) {
        (Some(h), Some(o)) if h.eq_ignore_ascii_case(o) => Ok(()),
        (_, None) if !required && !headers.contains_key(axum::http::header::ORIGIN) => Ok(()),
        _ => Err(ApiError::forbidden(
            "a cookie-authenticated WebSocket must come from this site's own origin",
        )),
    }
}

impl Credential {
    /// The user; spends a ticket (401 if another request spent it since).
    pub fn redeem(self, state: &AppState) -> Result<UserCtx, ApiError> {
        match self {
            Credential::User(u) => Ok(u),
            Credential::Ticket(t) => state
                .realtime
                .tickets
                .redeem(&t)
                .ok_or_else(ApiError::unauthorized),
        }
    }
}

pub async fn upgrade(State(state): State<AppState>, req: axum::extract::Request) -> Response {
    if state.realtime.closing.is_cancelled() {
        return shutting_down().into_response();
    }
    let (mut parts, _body) = req.into_parts();
    let credential = match realtime_credential(&mut parts, &state).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
        Ok(ws) => ws,
        Err(_) => {
            return ApiError::invalid(
                "this endpoint is a WebSocket: send a GET with Connection: upgrade, \
                 Upgrade: websocket, Sec-WebSocket-Version: 13 and Sec-WebSocket-Key",
            )
            .into_response()
        }
    };
    let user = match credential.redeem(&state) {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    // tungstenite's defaults are 128 KiB read and write buffers per socket;
    // chat frames are small, and 20k idle connections must fit in memory
    // (a larger client frame grows the buffer to fit it).
    let rt = state.realtime.clone();
    ws.read_buffer_size(512)
        .write_buffer_size(4 * 1024)
        .max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        .on_upgrade(move |socket| rt.track(run(socket, state, user)))
}

/// The answer to a stream opened while the gateway shuts down.
pub fn shutting_down() -> ApiError {
    ApiError::unavailable("the server is shutting down; reconnect (to another gateway)")
}

/// How long the close frame sent at shutdown may take to go out.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

fn ms_since(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}

async fn run(socket: WebSocket, state: AppState, user: UserCtx) {
    let rt = state.realtime.clone();
    let _open = crate::metrics::Connection::open("ws");
    // What a connection awaits only at its start and end, and what it
    // awaits rarely (a presence write, a client frame's handling), is
    // boxed: the two tasks of an idle connection hold only the state of
    // waiting, not the largest future they might ever await.
    let (session, mut out, hello) = Box::pin(rt.open_session(user)).await;
    let (mut sink, mut stream) = socket.split();
    let stall = rt.config.heartbeat * 2;
    if !send(&mut sink, Message::Text(hello.into()), stall).await {
        Box::pin(rt.presence_disconnected(&session.user)).await;
        return;
    }
    session.follow_joins();
    // Revoked between authentication and registration: the access router
    // could not see this session yet.
    if !matches!(
        Box::pin(state.commands.still_authorized(&session.user)).await,
        Ok(true)
    ) {
        session.revoked.cancel();
    }
    let start = Instant::now();
    let last_heard = Arc::new(AtomicU64::new(0));

    // Reader: client frames, and the coalesced presence change once due.
    // A read error (a frame over MAX_FRAME, a protocol error) ends it, and
    // with it the connection.
    let mut reader = {
        let session = session.clone();
        let last_heard = last_heard.clone();
        let rt = rt.clone();
        let limits = state.limits.clone();
        tokio::spawn(async move {
            let mut presence = Coalescer::<Status>::new(PRESENCE_INTERVAL);
            let frames = limits.connection();
            let typing_key = limits.key(&(
                session.user.caller.workspace_id.as_str(),
                session.user.caller.user_id.as_str(),
            ));
            loop {
                let msg = tokio::select! {
                    m = stream.next() => m,
                    () = sleep_until(presence.deadline()) => {
                        if let Some(s) = presence.take_due(tokio::time::Instant::now()) {
                            Box::pin(rt.presence_set(&session.user, s.as_str())).await;
                        }
                        continue;
                    }
                };
                let Some(Ok(msg)) = msg else { break };
                last_heard.store(ms_since(start), Ordering::Relaxed);
                if matches!(msg, Message::Text(_) | Message::Binary(_))
                    && frames.as_ref().is_some_and(|f| !f.allow())
                {
                    return ReaderExit::Flooded;
                }
                match msg {
                    Message::Text(t) => {
                        let limit = (&*limits, typing_key);
                        Box::pin(handle_frame(
                            &session,
                            &rt,
                            &mut presence,
                            limit,
                            t.as_str(),
                        ))
                        .await
                    }
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            ReaderExit::Done
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
            () = rt.closing.cancelled() => {
                // Going away: a `reconnect` frame says so (and when to come
                // back, spread per connection), then the close 1001. The
                // client reconnects (elsewhere) with its last seqs; frames
                // still queued here are replayed then.
                let reconnect = frames::reconnect_frame(frames::reconnect_delay_ms());
                send(&mut sink, Message::Text(reconnect.into()), CLOSE_GRACE).await;
                let bye = CloseFrame {
                    code: close_code::AWAY,
                    reason: "server shutting down".into(),
                };
                send(&mut sink, Message::Close(Some(bye)), CLOSE_GRACE).await;
                false
            }
            () = session.revoked.cancelled() => {
                // The token was revoked or expired, or the user deactivated.
                let bye = CloseFrame {
                    code: close_code::POLICY,
                    reason: "token revoked or expired".into(),
                };
                send(&mut sink, Message::Close(Some(bye)), CLOSE_GRACE).await;
                false
            }
            _ = session.wake.notified() => {
                let mut ok = true;
                let resyncs = session.take_resyncs().into_iter().map(|(_, _, f)| f);
                for frame in resyncs.chain(session.take_owed()) {
                    ok = send(&mut sink, Message::Text(frame.into()), stall).await;
                    if !ok {
                        break;
                    }
                }
                ok
            }
            o = out.recv() => match o {
                Some(o) => send_queued(&mut sink, o, &mut out, stall).await,
                None => false,
            },
            _ = ticker.tick() => {
                if ms_since(start).saturating_sub(last_heard.load(Ordering::Relaxed)) > limit {
                    tracing::debug!(session = %session.id, "missed two heartbeats; closing");
                    false
                } else {
                    Box::pin(rt.presence_heartbeat(&session.user)).await;
                    send(&mut sink, Message::Ping(Vec::new().into()), stall).await
                }
            }
            exit = &mut reader => {
                if let Ok(ReaderExit::Flooded) = exit {
                    tracing::debug!(session = %session.id, "frame flood; closing");
                    let error = frames::error_frame(
                        "rate_limited",
                        None,
                        "too many frames; this connection is closed, reconnect later",
                    );
                    if send(&mut sink, Message::Text(error.into()), CLOSE_GRACE).await {
                        let bye = CloseFrame {
                            code: close_code::POLICY,
                            reason: "rate limited".into(),
                        };
                        send(&mut sink, Message::Close(Some(bye)), CLOSE_GRACE).await;
                    }
                }
                false
            }
        };
        if !ok {
            break;
        }
    }
    reader.abort();
    session.close();
    let _ = tokio::time::timeout(CLOSE_GRACE, sink.close()).await;
    Box::pin(rt.presence_disconnected(&session.user)).await;
}

/// Seconds from `ts_ms` (ms since the epoch) to now; 0 if in the future
/// (another gateway's clock).
fn seconds_since(ts_ms: i64) -> f64 {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    (now_ms - ts_ms).max(0) as f64 / 1000.0
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Why the reader stopped.
enum ReaderExit {
    /// The socket ended or failed, or the client closed it.
    Done,
    /// The client sent more frames than its connection may: it is told
    /// (`error` `rate_limited`) and closed (1008).
    Flooded,
}

async fn handle_frame(
    session: &Arc<Session>,
    rt: &super::Realtime,
    presence: &mut Coalescer<Status>,
    (limits, typing_key): (&Limiter, Key),
    text: &str,
) {
    let frame = match frames::parse(text) {
        Ok(f) => f,
        Err(message) => return invalid(session, &message).await,
    };
    match frame {
        ClientFrame::Subscribe { channels } => {
            for (ch, seq) in channels {
                if switchboard_core::ChannelId::parse(&ch).is_err() {
                    session
                        .send_text(
                            json!({"type": "error", "code": "not_a_member", "channel_id": ch})
                                .to_string(),
                        )
                        .await;
                    continue;
                }
                session.subscribe(ch, seq.get()).await;
            }
        }
        ClientFrame::Unsubscribe { channels } => {
            for ch in channels {
                session.unsubscribe(&ch);
            }
        }
        ClientFrame::Typing { channel_id } => match limits.check(Class::Typing, typing_key) {
            Ok(()) => session.typing(&channel_id).await,
            Err(l) => {
                let message = format!(
                    "too many typing frames; retry in {} s",
                    l.retry_after_secs()
                );
                let f = frames::error_frame("rate_limited", Some(&channel_id), &message);
                session.send_text(f).await
            }
        },
        ClientFrame::Ping => session.send_text(json!({"type": "pong"}).to_string()).await,
        ClientFrame::Presence { status } => {
            if let Some(s) = presence.offer(status, tokio::time::Instant::now()) {
                rt.presence_set(&session.user, s.as_str()).await;
            }
        }
    }
}

async fn invalid(session: &Session, message: &str) {
    session
        .send_text(frames::error_frame("invalid_request", None, message))
        .await;
}

/// Most frames written before one flush.
const MAX_BATCH: usize = 32;

/// Sends `first` and the frames queued behind it (up to [`MAX_BATCH`]) with
/// one flush: a connection that fell behind catches up in one write
/// instead of one per frame. False when the socket failed or the client
/// has not taken them within `stall`.
async fn send_queued<S>(
    sink: &mut S,
    first: Box<super::session::Out>,
    out: &mut tokio::sync::mpsc::Receiver<Box<super::session::Out>>,
    stall: std::time::Duration,
) -> bool
where
    S: futures_util::Sink<Message> + Unpin,
{
    let mut live = [0i64; MAX_BATCH];
    let mut n = 0;
    let write = async {
        let mut o = first;
        loop {
            sink.feed(Message::Text(o.text.as_ref().into())).await?;
            live[n] = o.live_ts_ms;
            n += 1;
            if n == MAX_BATCH {
                break;
            }
            match out.try_recv() {
                Ok(next) => o = next,
                Err(_) => break,
            }
        }
        sink.flush().await
    };
    let ok = matches!(tokio::time::timeout(stall, write).await, Ok(Ok(())));
    if ok {
        for &ts in live[..n].iter().filter(|&&ts| ts > 0) {
            crate::metrics::delivered(seconds_since(ts));
        }
    }
    ok
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
