//! Real-time delivery: WebSocket (`/v1/realtime`) and SSE (`/v1/sse`).
//!
//! Invariants kept here (DESIGN.md "Real-time delivery"):
//! - a gateway holds one core-NATS subscription per channel that any of its
//!   connections needs, on the stream's RePublish subject (`dlv.sb.…`), so
//!   only events the stream stored are delivered;
//! - per channel, events reach a connection in `seq` order, at least once,
//!   de-duplicable by (channel, seq): gaps seen by the hub or a connection
//!   are filled from the history read model before anything later is sent;
//! - a slow connection never delays others: its outbound queue is bounded,
//!   and on overflow it gets `resync {channel_id, after_seq}` instead of
//!   the events it could not take;
//! - after a user leaves or is removed, nothing after that event's seq
//!   reaches its connections; after a join, delivery starts without a
//!   reconnect;
//! - what one client can make a gateway hold or do is bounded: frame size,
//!   channels per connection ([`MAX_CHANNELS_PER_CONNECTION`]), typing and
//!   presence rates;
//! - a stream whose token is revoked, expires, or whose user is
//!   deactivated is ended (see [`access`]): WebSocket close 1008, the SSE
//!   response ends;
//! - shutdown ends every stream: each WebSocket and SSE loop selects on
//!   [`Realtime::closing`]; a WebSocket gets a close frame 1001 (going
//!   away), an SSE response ends, and new streams are refused with 503.
//!   Clients resume elsewhere from their last seqs.
//! - only what the stream republished is taken from `dlv.sb.…`
//!   ([`republished`]): a JetStream push consumer (which a replay
//!   credential may create on its own workspace) can deliver to any
//!   subject, `dlv.sb.<another ws>.…` included; its deliveries carry a
//!   `$JS.ACK` reply and no `Nats-Stream` header, the stream's republish
//!   the opposite.

/// True for a message the log stream republished (no reply subject, a
/// `Nats-Stream` header), false for anything else published on a `dlv.`
/// subject, e.g. a push consumer's delivery (see the module docs).
/// Whether `m` is a gateway's own `rt.…` frame of one of `types`: a plain
/// publish (no reply subject, no headers — not a JetStream delivery or an
/// API answer someone aimed here) of a JSON object whose `type` is one of
/// them. Review finding: a replay credential can point a push consumer's
/// deliver subject, or a request's reply-to, at any subject, and the
/// routers relayed whatever came as a frame.
pub fn own_frame(m: &async_nats::Message, types: &[&str]) -> Option<serde_json::Value> {
    if m.reply.is_some() || m.headers.is_some() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&m.payload).ok()?;
    let ty = v.get("type")?.as_str()?;
    types.contains(&ty).then_some(v)
}

pub fn republished(m: &async_nats::Message) -> bool {
    m.reply.is_none()
        && m.headers
            .as_ref()
            .is_some_and(|h| h.get("Nats-Stream").is_some())
}

pub mod access;
pub mod frames;
mod hub;
mod session;
pub mod sse;
pub mod throttle;
pub mod tickets;
pub mod ws;

pub use hub::Hub;
pub use session::Session;

use std::time::Duration;

/// Most channels one connection (WebSocket or SSE) may follow, counting
/// those it follows because the user joined them while connected. Each
/// costs a forwarder task and a hub receiver; past this, subscribing is
/// refused with a `too_many_subscriptions` error frame (SSE: a 400).
pub const MAX_CHANNELS_PER_CONNECTION: usize = 100;

/// Settings of real-time delivery.
#[derive(Debug, Clone)]
pub struct RealtimeConfig {
    /// Server ping interval; a connection silent for two intervals is closed.
    pub heartbeat: Duration,
    /// Frames a connection may have queued before it is resynced.
    pub outbound_queue: usize,
    /// Channels with at most this many members carry presence frames; in
    /// larger ones clients ask `GET /v1/presence` for whom they display.
    pub presence_fanout_max_members: i64,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        RealtimeConfig {
            heartbeat: Duration::from_secs(15),
            outbound_queue: 512,
            presence_fanout_max_members: 100,
        }
    }
}

/// Ephemeral (never logged) subjects.
pub mod subjects {
    /// Typing indicators of a channel.
    pub fn typing(ws: &str, ch: &str) -> String {
        format!("rt.{ws}.typing.{ch}")
    }
    /// Presence changes relayed through a (small) channel.
    pub fn presence(ws: &str, ch: &str) -> String {
        format!("rt.{ws}.presence.{ch}")
    }
    /// "You joined channel X at seq N": lets a user's open connections
    /// follow the channel without reconnecting.
    pub fn joined(ws: &str, user: &str) -> String {
        format!("rt.{ws}.joined.{user}")
    }
    /// A due notification for one user's open connections (push delivery).
    pub fn notify(ws: &str, user: &str) -> String {
        format!("rt.{ws}.notify.{user}")
    }
    /// Stored channel events, as the stream republishes them.
    pub fn delivered(ws: &str, ch: &str) -> String {
        format!("dlv.sb.{ws}.ch.{ch}")
    }
}

use crate::commands::Commands;
use crate::extract::UserCtx;
use async_nats::jetstream::kv;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use switchboard_projections::acl;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The real-time side of one gateway.
pub struct Realtime {
    pub hub: Arc<Hub>,
    pub tickets: Arc<tickets::Tickets>,
    pub config: RealtimeConfig,
    pub typing: Arc<Mutex<HashMap<(String, String), Instant>>>,
    core: Arc<Commands>,
    presence: Option<kv::Store>,
    /// This gateway's open connections per user, and the user's status.
    local: Mutex<HashMap<String, (usize, &'static str)>>,
    /// Cancelled when the gateway begins to shut down: every stream ends.
    pub closing: CancellationToken,
    /// The WebSocket sessions (which outlive their HTTP request, so the
    /// server's graceful shutdown does not wait for them; this does).
    sessions: TaskTracker,
}

/// Presence KV bucket; keys `<workspace>.<user>`, values a status, expiring
/// after three missed heartbeats of the gateway that holds the connection.
pub const PRESENCE_BUCKET: &str = "sb_presence";

impl Realtime {
    /// Real-time delivery for one gateway, ending its streams when
    /// `closing` is cancelled.
    pub async fn new(
        core: Arc<Commands>,
        config: RealtimeConfig,
        closing: CancellationToken,
    ) -> Realtime {
        let client = core.log.client().clone();
        let js = async_nats::jetstream::new(client.clone());
        let presence = js
            .create_key_value(kv::Config {
                bucket: PRESENCE_BUCKET.to_string(),
                history: 1,
                max_age: config.heartbeat * 3,
                ..Default::default()
            })
            .await;
        let presence = match presence {
            Ok(p) => Some(p),
            Err(_) => js.get_key_value(PRESENCE_BUCKET).await.ok(),
        };
        if presence.is_none() {
            tracing::warn!("presence bucket unavailable; presence is disabled");
        }
        let hub = Arc::new(Hub::new(client, core.clone()));
        hub.start_join_router().await;
        hub.start_marker_router().await;
        hub.start_notify_router().await;
        Realtime {
            hub,
            tickets: Arc::new(tickets::Tickets::default()),
            config,
            typing: Arc::new(Mutex::new(HashMap::new())),
            core,
            presence,
            local: Mutex::new(HashMap::new()),
            closing,
            sessions: TaskTracker::new(),
        }
    }

    /// Runs a WebSocket session as a tracked task (see [`Realtime::closed`]).
    pub fn track<F>(&self, session: F) -> tokio_util::task::task_tracker::TrackedFuture<F>
    where
        F: std::future::Future<Output = ()>,
    {
        self.sessions.track_future(session)
    }

    /// Ends every stream (if shutdown has not begun yet) and waits until
    /// the WebSocket sessions have sent their close frames and cleaned up,
    /// at most `timeout`. Returns whether they all finished.
    pub async fn closed(&self, timeout: std::time::Duration) -> bool {
        self.closing.cancel();
        self.sessions.close();
        tokio::time::timeout(timeout, self.sessions.wait())
            .await
            .is_ok()
    }

    /// Opens a session for `user` (either transport): marks the user
    /// online and returns the session, its outbound queue and the `hello`
    /// frame to send first.
    pub async fn open_session(
        &self,
        user: UserCtx,
    ) -> (
        Arc<Session>,
        tokio::sync::mpsc::Receiver<Box<session::Out>>,
        String,
    ) {
        let (session, out) = Session::new(
            self.core.clone(),
            self.hub.clone(),
            user,
            &self.config,
            self.typing.clone(),
        );
        self.presence_connected(&session.user).await;
        let hello = serde_json::json!({
            "type": "hello",
            "session_id": session.id,
            "heartbeat_ms": self.config.heartbeat.as_millis() as u64,
        })
        .to_string();
        (session, out, hello)
    }

    fn key(user: &UserCtx) -> String {
        format!("{}.{}", user.caller.workspace_id, user.caller.user_id)
    }

    async fn put_status(&self, user: &UserCtx, status: &str) {
        if let Some(kv) = &self.presence {
            let _ = kv.put(Self::key(user), status.to_string().into()).await;
        }
    }

    /// Relays a status change through the user's channels that have at
    /// most `presence_fanout_max_members` members (the documented bound:
    /// a change costs at most one publish per such channel, never a loop
    /// over a whole workspace).
    async fn announce(&self, user: &UserCtx, status: &str) {
        let (me, max) = (
            user.caller.user_id.clone(),
            self.config.presence_fanout_max_members,
        );
        let channels = self
            .core
            .acl
            .read_page(move |c| acl::small_channels_of(c, &me, max))
            .await
            .unwrap_or_default();
        let frame = serde_json::json!({"type": "presence", "user_id": user.caller.user_id, "status": status}).to_string();
        for ch in channels {
            let subject = subjects::presence(&user.caller.workspace_id, &ch);
            let _ = self
                .hub
                .client()
                .publish(subject, frame.clone().into())
                .await;
        }
    }

    pub async fn presence_connected(&self, user: &UserCtx) {
        let first = {
            let mut local = self
                .local
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let e = local
                .entry(user.caller.user_id.to_string())
                .or_insert((0, "online"));
            e.0 += 1;
            e.0 == 1
        };
        if first {
            self.put_status(user, "online").await;
            self.announce(user, "online").await;
        }
    }

    pub async fn presence_heartbeat(&self, user: &UserCtx) {
        let status = {
            let local = self
                .local
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            local.get(user.caller.user_id.as_str()).map(|e| e.1)
        };
        if let Some(s) = status {
            self.put_status(user, s).await;
        }
    }

    /// A status the user's client set. An unchanged status is not written
    /// or announced again (connections already coalesce their changes, see
    /// [`throttle`]).
    pub async fn presence_set(&self, user: &UserCtx, status: &'static str) {
        let changed = {
            let mut local = self
                .local
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match local.get_mut(user.caller.user_id.as_str()) {
                Some(e) if e.1 != status => {
                    e.1 = status;
                    true
                }
                _ => false,
            }
        };
        if changed {
            self.put_status(user, status).await;
            self.announce(user, status).await;
        }
    }

    pub async fn presence_disconnected(&self, user: &UserCtx) {
        let last = {
            let mut local = self
                .local
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match local.get_mut(user.caller.user_id.as_str()) {
                Some(e) if e.0 > 1 => {
                    e.0 -= 1;
                    false
                }
                Some(_) => {
                    local.remove(user.caller.user_id.as_str());
                    true
                }
                None => false,
            }
        };
        if last {
            if let Some(kv) = &self.presence {
                let _ = kv.delete(Self::key(user)).await;
            }
            self.announce(user, "offline").await;
        }
    }

    /// Current status of users of the caller's workspace: `online`, `away`
    /// or `offline` (no live key: never connected, disconnected, or its
    /// gateway stopped heartbeating).
    pub async fn presence_of(&self, ws: &str, user_ids: &[String]) -> Vec<(String, String)> {
        let mut out = Vec::with_capacity(user_ids.len());
        for u in user_ids {
            let status = match &self.presence {
                Some(kv) => kv
                    .get(format!("{ws}.{u}"))
                    .await
                    .ok()
                    .flatten()
                    .and_then(|b| String::from_utf8(b.to_vec()).ok())
                    .unwrap_or_else(|| "offline".to_string()),
                None => "offline".to_string(),
            };
            out.push((u.clone(), status));
        }
        out
    }
}
