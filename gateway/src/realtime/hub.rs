//! The per-gateway hub: one core-NATS subscription per channel that any
//! local connection needs (not one per user), on the stream's RePublish
//! subject, fanned out to local connections through a broadcast channel.
//! The hub fills gaps it sees in the dense `seq` from the history model
//! before passing anything later on.

use crate::commands::Commands;
use crate::views::event_json;
use futures_util::StreamExt;
use prost::Message as _;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use switchboard_core::events::{Body, Envelope};
use switchboard_projections::history::{self, EventRow};
use tokio::sync::{broadcast, watch};

use super::subjects;
use super::Session;

/// How many items a channel's broadcast keeps for slow local receivers
/// before they lag (and are resynced).
const FEED_CAPACITY: usize = 1024;

/// A stored channel event, serialized once for every local receiver.
#[derive(Debug)]
pub struct RtEvent {
    pub channel_id: Arc<str>,
    pub seq: u64,
    pub stream_seq: u64,
    /// The user a membership event is about (joined/left/invited/removed).
    pub about_user: Option<String>,
    pub kind: &'static str,
    pub frame: Arc<str>,
    /// When it was appended (ms since the epoch), for the delivery latency.
    pub ts_ms: i64,
}

#[derive(Debug, Clone)]
pub enum Item {
    Event(Arc<RtEvent>),
    /// Typing or presence: never logged, dropped rather than queued.
    Ephemeral {
        from_user: String,
        frame: Arc<str>,
    },
}

/// One channel's subscription; dropped (and unsubscribed) with its last
/// local receiver. The feed task owns the only strong sender, so when the
/// task ends every receiver sees `Closed` and re-attaches to a new feed.
pub struct Feed {
    tx: broadcast::WeakSender<Item>,
    /// 0 = subscribing, 1 = subscribed on the server, 2 = ended.
    state: watch::Receiver<u8>,
    task: tokio::task::JoinHandle<()>,
}

impl Feed {
    /// A receiver of this feed, or `None` when the feed has ended.
    pub fn subscribe(&self) -> Option<broadcast::Receiver<Item>> {
        self.tx.upgrade().map(|tx| tx.subscribe())
    }

    fn ended(&self) -> bool {
        *self.state.borrow() == 2 || self.task.is_finished()
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub struct Hub {
    client: async_nats::Client,
    core: Arc<Commands>,
    feeds: Mutex<HashMap<String, Weak<Feed>>>,
    /// Local sessions by user, for "you joined a channel" notes: one
    /// gateway-wide subscription instead of one per connection.
    followers: Mutex<HashMap<String, Vec<Weak<Session>>>>,
}

/// Builds the `event` frame of a stored event.
pub fn event_frame(channel_id: &str, row: EventRow) -> (Arc<str>, u64) {
    let seq = row.seq as u64;
    let frame = serde_json::json!({
        "type": "event",
        "channel_id": channel_id,
        "seq": seq,
        "event": event_json(row),
    });
    (Arc::from(frame.to_string()), seq)
}

fn about_user(body: &Body) -> Option<String> {
    match body {
        Body::MemberJoined(b) => Some(b.user_id.clone()),
        Body::MemberLeft(b) => Some(b.user_id.clone()),
        Body::MemberInvited(b) => Some(b.user_id.clone()),
        Body::MemberRemoved(b) => Some(b.user_id.clone()),
        _ => None,
    }
}

/// An [`RtEvent`] from an envelope as the stream stored it.
pub fn rt_event(env: &Envelope, stream_seq: u64) -> Option<RtEvent> {
    let body = env.body.as_ref()?;
    let (_, payload) = history::event_body(body);
    let row = EventRow {
        seq: env.channel_seq as i64,
        kind: body.kind().to_string(),
        ts_ms: env.ts_ms,
        actor_id: env.actor_id.clone(),
        body: payload,
    };
    let (frame, seq) = event_frame(&env.channel_id, row);
    Some(RtEvent {
        ts_ms: env.ts_ms,
        channel_id: Arc::from(env.channel_id.as_str()),
        seq,
        stream_seq,
        about_user: about_user(body),
        kind: body.kind(),
        frame,
    })
}

/// The `read_marker` frame of a stored `ReadMarkerMoved`.
pub fn marker_frame(env: &Envelope) -> Option<(String, String)> {
    let Some(Body::ReadMarkerMoved(m)) = &env.body else {
        return None;
    };
    let mut frame = serde_json::json!({
        "type": "read_marker",
        "channel_id": m.channel_id,
        "seq": m.seq,
    });
    if !m.thread_root_id.is_empty() {
        frame["thread_root_id"] = m.thread_root_id.clone().into();
    }
    let key = format!("read_marker {} {}", m.channel_id, m.thread_root_id);
    Some((key, frame.to_string()))
}

/// An [`RtEvent`] from a history row (gap fill and replay).
pub fn rt_event_from_row(channel_id: &str, row: EventRow) -> RtEvent {
    let kind = match row.kind.as_str() {
        "member_left" => "member_left",
        "member_removed" => "member_removed",
        _ => "other",
    };
    let about = row
        .body
        .get("user_id")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let ts_ms = row.ts_ms;
    let (frame, seq) = event_frame(channel_id, row);
    RtEvent {
        ts_ms,
        channel_id: Arc::from(channel_id),
        seq,
        stream_seq: 0,
        about_user: about,
        kind,
        frame,
    }
}

impl Hub {
    pub fn new(client: async_nats::Client, core: Arc<Commands>) -> Hub {
        Hub {
            client,
            core,
            feeds: Mutex::new(HashMap::new()),
            followers: Mutex::new(HashMap::new()),
        }
    }

    /// Routes join notes (`rt.<ws>.joined.<user>`) to that user's local
    /// sessions, which start following the channel from the join's seq.
    pub async fn start_join_router(self: &Arc<Self>) {
        let Ok(mut sub) = self.client.subscribe("rt.*.joined.*").await else {
            tracing::warn!("realtime: cannot subscribe to join notes");
            return;
        };
        let hub = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                let Some(hub) = hub.upgrade() else { break };
                let Some(user) = m.subject.split('.').nth(3) else {
                    continue;
                };
                let Ok(v) = serde_json::from_slice::<serde_json::Value>(&m.payload) else {
                    continue;
                };
                let (Some(ch), Some(seq)) = (v["channel_id"].as_str(), v["seq"].as_u64()) else {
                    continue;
                };
                for session in hub.sessions_of(user) {
                    let ch = ch.to_string();
                    tokio::spawn(
                        async move { session.follow_joined(ch, seq.saturating_sub(1)).await },
                    );
                }
            }
        });
    }

    /// Routes stored read-marker moves (`dlv.sb.<ws>.user.<user>`, one
    /// wildcard subscription per gateway) to every local session of that
    /// user as `{"type":"read_marker","channel_id","seq","thread_root_id"?}`
    /// — the connection whose user made the change included (clients
    /// de-duplicate by value). Only what the stream stored is delivered.
    pub async fn start_marker_router(self: &Arc<Self>) {
        let Ok(mut sub) = self.client.subscribe("dlv.sb.*.user.*").await else {
            tracing::warn!("realtime: cannot subscribe to read markers");
            return;
        };
        let hub = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                let Some(hub) = hub.upgrade() else { break };
                if !super::republished(&m) {
                    continue;
                }
                let mut parts = m.subject.split('.');
                let (Some(ws), Some(user)) = (parts.nth(2), parts.nth(1)) else {
                    continue;
                };
                let Ok(env) = Envelope::decode(m.payload.as_ref()) else {
                    continue;
                };
                let Some((key, frame)) = marker_frame(&env) else {
                    continue;
                };
                for session in hub.sessions_of(user) {
                    if session.user.caller.workspace_id.as_str() == ws {
                        session.queue_latest(key.clone(), frame.clone());
                    }
                }
            }
        });
    }

    /// Routes due notifications (`rt.<ws>.notify.<user>`, see `push`) to
    /// that user's local sessions as `notification` frames. A session whose
    /// queue is full misses the frame (it stays in `GET /v1/notifications`).
    pub async fn start_notify_router(self: &Arc<Self>) {
        let Ok(mut sub) = self.client.subscribe("rt.*.notify.*").await else {
            tracing::warn!("realtime: cannot subscribe to notifications");
            return;
        };
        let hub = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                let Some(hub) = hub.upgrade() else { break };
                let mut parts = m.subject.split('.');
                let (Some(ws), Some(user)) = (parts.nth(1), parts.nth(1)) else {
                    continue;
                };
                let Some(frame) = super::own_frame(&m, &["notification"]) else {
                    continue;
                };
                let frame: Arc<str> = Arc::from(frame.to_string());
                for session in hub.sessions_of(user) {
                    if session.user.caller.workspace_id.as_str() == ws {
                        session.send_ephemeral(frame.clone());
                    }
                }
            }
        });
    }

    /// Whether one of the connections of `user` of workspace `ws` on this
    /// gateway follows `channel` right now.
    pub fn user_follows(&self, ws: &str, user: &str, channel: &str) -> bool {
        self.sessions_of(user)
            .iter()
            .any(|s| s.user.caller.workspace_id.as_str() == ws && s.is_subscribed(channel))
    }

    /// Every open session on this gateway that follows joins (each does,
    /// once its first frame went out).
    pub fn all_sessions(&self) -> Vec<Arc<Session>> {
        let mut f = self
            .followers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f.retain(|_, list| {
            list.retain(|w| w.strong_count() > 0);
            !list.is_empty()
        });
        f.values()
            .flat_map(|list| list.iter().filter_map(Weak::upgrade))
            .collect()
    }

    pub(super) fn sessions_of(&self, user: &str) -> Vec<Arc<Session>> {
        let mut f = self
            .followers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(list) = f.get_mut(user) else {
            return Vec::new();
        };
        list.retain(|w| w.strong_count() > 0);
        let out: Vec<_> = list.iter().filter_map(Weak::upgrade).collect();
        if list.is_empty() {
            f.remove(user);
        }
        out
    }

    /// Registers a session to follow its user's joins.
    pub fn follow_joins(&self, session: &Arc<Session>) {
        let mut f = self
            .followers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let list = f
            .entry(session.user.caller.user_id.to_string())
            .or_default();
        list.retain(|w| w.strong_count() > 0);
        list.push(Arc::downgrade(session));
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Channels this gateway holds a subscription for.
    pub fn feed_count(&self) -> usize {
        let feeds = self
            .feeds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        feeds.values().filter(|w| w.strong_count() > 0).count()
    }

    /// The channel's feed, subscribed on the server when this returns: every
    /// event the stream stores from now on reaches it. Concurrent callers
    /// share one feed and all wait for its subscription; an ended feed is
    /// replaced.
    pub async fn feed(&self, ws: &str, channel: &str) -> Result<Arc<Feed>, String> {
        let feed = {
            let mut feeds = self
                .feeds
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match feeds.get(channel).and_then(Weak::upgrade) {
                Some(f) if !f.ended() => f,
                _ => {
                    feeds.retain(|_, w| w.strong_count() > 0);
                    let (tx, _) = broadcast::channel(FEED_CAPACITY);
                    let (state_tx, state) = watch::channel(0u8);
                    let weak = tx.downgrade();
                    let task = tokio::spawn(run_feed(
                        self.client.clone(),
                        self.core.clone(),
                        ws.to_string(),
                        channel.to_string(),
                        tx,
                        state_tx,
                    ));
                    let feed = Arc::new(Feed {
                        tx: weak,
                        state,
                        task,
                    });
                    feeds.insert(channel.to_string(), Arc::downgrade(&feed));
                    feed
                }
            }
        };
        let mut state = feed.state.clone();
        let ready = tokio::time::timeout(Duration::from_secs(5), state.wait_for(|s| *s != 0))
            .await
            .map(|r| r.map(|s| *s == 1));
        match ready {
            Ok(Ok(true)) => Ok(feed),
            _ => Err("could not subscribe to the channel's deliveries".into()),
        }
    }
}

async fn run_feed(
    client: async_nats::Client,
    core: Arc<Commands>,
    ws: String,
    channel: String,
    tx: broadcast::Sender<Item>,
    state: watch::Sender<u8>,
) {
    let subs = async {
        let d = client.subscribe(subjects::delivered(&ws, &channel)).await?;
        let t = client.subscribe(subjects::typing(&ws, &channel)).await?;
        let p = client.subscribe(subjects::presence(&ws, &channel)).await?;
        client.flush().await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((d, t, p))
    };
    let (mut delivered, mut typing, mut presence) = match subs.await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, %channel, "realtime: subscribe failed");
            let _ = state.send(2);
            return;
        }
    };
    // Start from what history holds now: anything stored later arrives on
    // the subscription, and a reconnect is caught up from here.
    let mut last = history_head(&core, &channel).await;
    let _ = state.send(1);
    let mut connects = core.log.connects();
    connects.mark_unchanged();
    loop {
        tokio::select! {
            Ok(()) = connects.changed() => {
                // Whatever was stored while the connection was down was not
                // republished to us: fill it from history.
                if let Ok(head) = core.log.last_seq().await {
                    core.history_progress.wait_for(head, Duration::from_secs(5)).await;
                }
                let upto = history_head(&core, &channel).await;
                last = fill(&core, &channel, &tx, last, upto + 1).await;
            }
            m = delivered.next() => {
                let Some(m) = m else { break };
                if !super::republished(&m) {
                    continue;
                }
                // Its text opened; a key that cannot be reached now skips
                // the event here and the next one fills the gap from history.
                let Ok(Some(env)) = core.log.open_payload(m.payload.as_ref()).await else {
                    continue;
                };
                let stream_seq = m
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("Nats-Sequence"))
                    .and_then(|v| v.as_str().parse::<u64>().ok())
                    .unwrap_or(0);
                let seq = env.channel_seq;
                if seq <= last {
                    continue; // already passed on
                }
                if seq > last + 1 {
                    // The subscription missed something (slow consumer or a
                    // reconnect): fill from history before going on.
                    core.history_progress
                        .wait_for(stream_seq.saturating_sub(1), Duration::from_secs(3))
                        .await;
                    last = fill(&core, &channel, &tx, last, seq).await;
                }
                if let Some(ev) = rt_event(&env, stream_seq) {
                    last = seq;
                    let _ = tx.send(Item::Event(Arc::new(ev)));
                }
            }
            m = typing.next() => {
                let Some(m) = m else { break };
                relay_ephemeral(&tx, &m, "typing");
            }
            m = presence.next() => {
                let Some(m) = m else { break };
                relay_ephemeral(&tx, &m, "presence");
            }
        }
    }
    let _ = state.send(2);
}

async fn history_head(core: &Commands, channel: &str) -> u64 {
    let ch = channel.to_string();
    core.history
        .read(move |c| history::head_seq(c, &ch))
        .await
        .unwrap_or(0)
}

/// Broadcasts history events after `last` and before `before`; returns the
/// new last seq passed on.
async fn fill(
    core: &Commands,
    channel: &str,
    tx: &broadcast::Sender<Item>,
    last: u64,
    before: u64,
) -> u64 {
    let now = fill_rows(core, channel, tx, last, before).await;
    if now > last {
        crate::metrics::gap_filled("hub", now - last);
    }
    now
}

async fn fill_rows(
    core: &Commands,
    channel: &str,
    tx: &broadcast::Sender<Item>,
    mut last: u64,
    before: u64,
) -> u64 {
    while last + 1 < before {
        let (ch, from) = (channel.to_string(), last);
        let limit = (before - last - 1).min(500) as u32;
        let rows = core
            .history
            .read_rows(limit, move |c| history::events(c, &ch, from, limit))
            .await
            .unwrap_or_default();
        if rows.is_empty() {
            break;
        }
        for row in rows {
            let ev = rt_event_from_row(channel, row);
            if ev.seq != last + 1 {
                return last;
            }
            last = ev.seq;
            let _ = tx.send(Item::Event(Arc::new(ev)));
        }
    }
    last
}

fn relay_ephemeral(tx: &broadcast::Sender<Item>, m: &async_nats::Message, ty: &str) {
    let Some(v) = super::own_frame(m, &[ty]) else {
        return;
    };
    let from_user = v["user_id"].as_str().unwrap_or_default().to_string();
    let _ = tx.send(Item::Ephemeral {
        from_user,
        frame: Arc::from(v.to_string()),
    });
}
