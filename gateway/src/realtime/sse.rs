//! `GET /v1/sse?channels=<id>:<seq>,…`: the same frames as the WebSocket,
//! as Server-Sent Events. Each SSE `id` is a cursor over every subscribed
//! channel (`<id>:<seq>,…`); sent back as `Last-Event-ID` it resumes each
//! channel where it stopped and takes precedence over `channels`.
//! A cursor with a seq that is not an integer 0..=i64::MAX, or with more
//! than [`MAX_CHANNELS_PER_CONNECTION`] channels, is refused with 400
//! before anything opens (and before a `?ticket=` is spent).
//! The stream ends when the gateway shuts down ([`super::Realtime::closing`]).

use super::session::{Out, Session};
use super::MAX_CHANNELS_PER_CONNECTION;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use switchboard_core::validate::Seq;
use switchboard_core::ChannelId;
use tokio::sync::mpsc;

/// Parses `<id>:<seq>,<id>:<seq>`.
pub fn parse_cursor(s: &str) -> Result<BTreeMap<String, u64>, ApiError> {
    let mut out = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, seq) = part.split_once(':').unwrap_or((part, "0"));
        let id = ChannelId::parse(id)?.into_string();
        let seq = Seq::parse("channels: each seq", seq)?;
        out.insert(id, seq.get());
    }
    if out.len() > MAX_CHANNELS_PER_CONNECTION {
        return Err(ApiError::invalid(format!(
            "at most {MAX_CHANNELS_PER_CONNECTION} channels per stream"
        )));
    }
    Ok(out)
}

fn cursor_string(c: &BTreeMap<String, u64>) -> String {
    c.iter()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub async fn stream(State(state): State<AppState>, req: axum::extract::Request) -> Response {
    if state.realtime.closing.is_cancelled() {
        return super::ws::shutting_down().into_response();
    }
    let (mut parts, _) = req.into_parts();
    let credential = match super::ws::realtime_credential(&mut parts, &state).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let headers: &HeaderMap = &parts.headers;
    let q: axum::extract::Query<HashMap<String, String>> =
        axum::extract::Query::try_from_uri(&parts.uri)
            .unwrap_or_else(|_| axum::extract::Query(HashMap::new()));
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty());
    let cursor = match resume.or(q.get("channels").map(String::as_str)) {
        Some(s) => match parse_cursor(s) {
            Ok(c) => c,
            Err(e) => return e.into_response(),
        },
        None => {
            return ApiError::invalid("channels=<channel_id>:<seq>,… is required").into_response()
        }
    };
    let user = match credential.redeem(&state) {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    let rt = state.realtime.clone();
    let (session, out, hello) = rt.open_session(user).await;
    session.send_text(hello).await;
    for (ch, seq) in &cursor {
        session.subscribe(ch.clone(), *seq).await;
    }
    session.follow_joins();
    if !matches!(
        state.commands.still_authorized(&session.user).await,
        Ok(true)
    ) {
        session.revoked.cancel();
    }
    // SSE has no pongs: the open stream itself keeps presence alive.
    let beat = {
        let (rt, user) = (rt.clone(), session.user.clone());
        tokio::spawn(async move {
            let mut t = tokio::time::interval(rt.config.heartbeat);
            loop {
                t.tick().await;
                rt.presence_heartbeat(&user).await;
            }
        })
    };
    let guard = Guard {
        rt: rt.clone(),
        session: session.clone(),
        beat,
        said_reconnect: false,

        _open: crate::metrics::Connection::open("sse"),
    };
    let events = futures_util::stream::unfold(
        (
            session,
            out,
            cursor,
            BTreeSet::new(),
            VecDeque::new(),
            guard,
        ),
        step,
    );
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(rt.config.heartbeat))
        .into_response()
}

/// Ends the session and marks the user's presence gone when the stream is
/// dropped.
struct Guard {
    rt: Arc<super::Realtime>,
    session: Arc<Session>,
    beat: tokio::task::JoinHandle<()>,
    /// The `reconnect` frame is queued (shutdown began); end after it.
    said_reconnect: bool,

    /// Counted in `switchboard_open_connections{transport="sse"}`.
    _open: crate::metrics::Connection,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.beat.abort();
        self.session.close();
        let (rt, user) = (self.rt.clone(), self.session.user.clone());
        tokio::spawn(async move { rt.presence_disconnected(&user).await });
    }
}

/// The stream's state: session, queue, cursor, channels whose cursor is
/// frozen at a resync's `after_seq`, frames ready to go, guard.
type StepState = (
    Arc<Session>,
    mpsc::Receiver<Box<Out>>,
    BTreeMap<String, u64>,
    BTreeSet<String>,
    VecDeque<Arc<str>>,
    Guard,
);

async fn step(state: StepState) -> Option<(Result<Event, Infallible>, StepState)> {
    let (session, mut out, mut cursor, mut frozen, mut pending, mut guard) = state;
    loop {
        if let Some(text) = pending.pop_front() {
            let event = Event::default()
                .id(cursor_string(&cursor))
                .data(text.as_ref());
            return Some((Ok(event), (session, out, cursor, frozen, pending, guard)));
        }
        if guard.said_reconnect {
            return None;
        }
        tokio::select! {
            biased;
            // Shutdown ends the response (the server's graceful shutdown
            // waits for it) after a `reconnect` frame whose id is the
            // cursor so far; the client resumes with Last-Event-ID.
            // Its `retry:` field makes a browser's EventSource wait the
            // same spread delay before it reconnects by itself.
            () = guard.rt.closing.cancelled() => {
                guard.said_reconnect = true;
                let after_ms = super::frames::reconnect_delay_ms();
                let event = Event::default()
                    .id(cursor_string(&cursor))
                    .retry(std::time::Duration::from_millis(after_ms))
                    .data(super::frames::reconnect_frame(after_ms));
                return Some((Ok(event), (session, out, cursor, frozen, pending, guard)));
            }
            // The token was revoked or expired, or the user deactivated.
            () = session.revoked.cancelled() => return None,
            _ = session.wake.notified() => {
                for (ch, after, frame) in session.take_resyncs() {
                    // The cursor must never claim what the client did not
                    // get: it stays at after_seq for the rest of this
                    // stream (a resume re-sends the rest; seqs de-duplicate).
                    let c = cursor.entry(ch.clone()).or_insert(after);
                    *c = (*c).min(after);
                    frozen.insert(ch);
                    pending.push_back(Arc::from(frame));
                }
                for frame in session.take_owed() {
                    pending.push_back(Arc::from(frame));
                }
            }
            o = out.recv() => {
                let o = o?;
                if let Some(ch) = &o.channel {
                    if !frozen.contains(ch.as_ref()) {
                        cursor.insert(ch.to_string(), o.seq);
                    }
                }
                pending.push_back(o.text);
            }
        }
    }
}
