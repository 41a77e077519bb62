//! One client connection's delivery state, independent of the transport
//! (WebSocket or SSE): which channels it follows, its bounded outbound
//! queue, and the resyncs owed to it.

use super::hub::{rt_event_from_row, Feed, Hub, Item, RtEvent};
use super::{subjects, RealtimeConfig, MAX_CHANNELS_PER_CONNECTION};
use crate::commands::Commands;
use crate::extract::UserCtx;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard_core::authz::Action;
use switchboard_core::ids::ChannelId;
use switchboard_projections::history;
use tokio::sync::{broadcast, mpsc, Notify};

/// A frame for the transport to send. `channel`/`seq` are set on `event`
/// frames (SSE builds its resume cursor from them).
#[derive(Debug, Clone)]
pub struct Out {
    pub channel: Option<Arc<str>>,
    pub seq: u64,
    pub text: Arc<str>,
    /// A live event's append time (ms since the epoch), for the delivery
    /// latency; 0 for replayed events and other frames.
    pub live_ts_ms: i64,
}

impl Out {
    fn text(s: String) -> Box<Out> {
        Box::new(Out {
            channel: None,
            seq: 0,
            live_ts_ms: 0,
            text: Arc::from(s),
        })
    }
}

/// The connection is gone.
struct Gone;

enum Live {
    Stop,
    FeedEnded,
}

/// The minimum spacing of one user's typing signals in one channel.
pub const TYPING_INTERVAL: Duration = Duration::from_secs(3);

pub struct Session {
    pub id: String,
    pub user: UserCtx,
    core: Arc<Commands>,
    hub: Arc<Hub>,
    /// Boxed: the channel's first block holds 32 slots from the start,
    /// 8 bytes each instead of an `Out`'s 48 (most connections are idle).
    out: mpsc::Sender<Box<Out>>,
    resyncs: Mutex<BTreeMap<String, u64>>,
    /// Frames that found the queue full, latest per key (a read marker's
    /// channel and thread), sent when the writer wakes: what a slow
    /// connection is owed stays bounded by the keys, not by the changes.
    owed: Mutex<BTreeMap<String, String>>,
    pub wake: Notify,
    subs: Mutex<HashMap<String, tokio::task::JoinHandle<()>>>,
    typing: Arc<Mutex<HashMap<(String, String), Instant>>>,
    /// Cancelled when the connection's token stops being good (revoked,
    /// expired, its user deactivated): the transport ends the stream.
    pub revoked: tokio_util::sync::CancellationToken,
}

impl Session {
    pub fn new(
        core: Arc<Commands>,
        hub: Arc<Hub>,
        user: UserCtx,
        cfg: &RealtimeConfig,
        typing: Arc<Mutex<HashMap<(String, String), Instant>>>,
    ) -> (Arc<Session>, mpsc::Receiver<Box<Out>>) {
        let (tx, rx) = mpsc::channel(cfg.outbound_queue.max(1));
        let id = crate::commands::new_token().replacen("sbt_", "s_", 1);
        (
            Arc::new(Session {
                id,
                user,
                core,
                hub,
                out: tx,
                resyncs: Mutex::new(BTreeMap::new()),
                owed: Mutex::new(BTreeMap::new()),
                wake: Notify::new(),
                subs: Mutex::new(HashMap::new()),
                typing,
                revoked: tokio_util::sync::CancellationToken::new(),
            }),
            rx,
        )
    }

    /// Queues a control frame (hello, error, pong), waiting for room.
    pub async fn send_text(&self, text: String) {
        let _ = self.out.send(Out::text(text)).await;
    }

    /// Queues a frame that is not a channel event (a `read_marker`)
    /// without waiting, so a gateway-wide router is never held up by one
    /// slow connection. When the queue is full the frame is owed instead:
    /// only the latest one per `key` is kept, and the writer sends it when
    /// it wakes (possibly after frames queued later, which is why a marker
    /// frame carries the marker's value, not a change).
    pub fn queue_latest(&self, key: String, text: String) {
        if let Err(mpsc::error::TrySendError::Full(out)) = self.out.try_send(Out::text(text)) {
            self.owed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(key, out.text.to_string());
            self.wake.notify_one();
        }
    }

    /// The frames owed by [`Session::queue_latest`], each key once.
    pub fn take_owed(&self) -> Vec<String> {
        let mut o = self
            .owed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        std::mem::take(&mut *o).into_values().collect()
    }

    /// Queues a frame that is not a channel event (a notification) without
    /// waiting; a full queue drops it.
    pub fn send_ephemeral(&self, text: Arc<str>) {
        let _ = self.out.try_send(Box::new(Out {
            channel: None,
            seq: 0,
            text,
            live_ts_ms: 0,
        }));
    }

    fn owe_resync(&self, channel: &str, after: u64) {
        let mut r = self
            .resyncs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let e = r.entry(channel.to_string()).or_insert(after);
        *e = (*e).min(after);
        drop(r);
        self.wake.notify_one();
    }

    /// The resync frames owed, each channel once.
    pub fn take_resyncs(&self) -> Vec<(String, u64, String)> {
        let mut r = self
            .resyncs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let owed: Vec<_> = std::mem::take(&mut *r)
            .into_iter()
            .map(|(ch, after)| {
                let frame = json!({"type": "resync", "channel_id": ch, "after_seq": after});
                (ch, after, frame.to_string())
            })
            .collect();
        if !owed.is_empty() {
            crate::metrics::resyncs(owed.len());
        }
        owed
    }

    pub fn is_subscribed(&self, channel: &str) -> bool {
        let subs = self
            .subs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        subs.get(channel).is_some_and(|t| !t.is_finished())
    }

    /// Follows `channel` from `after` on: first every stored event after it,
    /// then live ones, in seq order. A caller who may not read the channel
    /// gets an `error` frame and nothing else of it.
    pub async fn subscribe(self: &Arc<Self>, channel: String, after: u64) {
        self.subscribe_inner(channel, after, false).await
    }

    /// Follows a channel the user just joined, unless the client already
    /// follows it (its own subscription, from its own seq, wins).
    pub async fn follow_joined(self: &Arc<Self>, channel: String, after: u64) {
        self.subscribe_inner(channel, after, true).await
    }

    /// Whether following `channel` keeps the connection within
    /// [`MAX_CHANNELS_PER_CONNECTION`] (re-subscribing to a followed
    /// channel always does). Ended forwarders are dropped first.
    fn has_room(subs: &mut HashMap<String, tokio::task::JoinHandle<()>>, channel: &str) -> bool {
        subs.retain(|_, t| !t.is_finished());
        subs.contains_key(channel) || subs.len() < MAX_CHANNELS_PER_CONNECTION
    }

    async fn refuse_too_many(&self, channel: &str) {
        let message = format!(
            "at most {MAX_CHANNELS_PER_CONNECTION} channels per connection; unsubscribe from one first"
        );
        self.send_text(super::frames::error_frame(
            "too_many_subscriptions",
            Some(channel),
            &message,
        ))
        .await;
    }

    async fn subscribe_inner(self: &Arc<Self>, channel: String, after: u64, if_absent: bool) {
        // Checked before the membership query (so a flood of subscribes
        // past the cap costs nothing) and again under the lock below.
        let room = {
            let mut subs = self
                .subs
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Self::has_room(&mut subs, &channel)
        };
        if !room {
            return self.refuse_too_many(&channel).await;
        }
        // Channels are keyed by their string here; a malformed id is just
        // a channel nobody can read.
        let authorized = match ChannelId::parse(&channel) {
            Ok(id) => self
                .core
                .authorize(&self.user, &id, Action::Read)
                .await
                .map(drop),
            Err(_) => Err(crate::error::ApiError::not_found("channel")),
        };
        if let Err(e) = authorized {
            let code = if e.code == "unavailable" {
                "unavailable"
            } else {
                "not_a_member"
            };
            self.send_text(
                json!({"type": "error", "code": code, "channel_id": channel}).to_string(),
            )
            .await;
            return;
        }
        let refused = {
            let mut subs = self
                .subs
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if if_absent && subs.get(&channel).is_some_and(|t| !t.is_finished()) {
                return;
            }
            if Self::has_room(&mut subs, &channel) {
                let this = self.clone();
                let ch = channel.clone();
                let task = tokio::spawn(async move { this.forward(ch, after).await });
                if let Some(old) = subs.insert(channel.clone(), task) {
                    old.abort();
                }
                false
            } else {
                true
            }
        };
        if refused {
            self.refuse_too_many(&channel).await;
        }
    }

    /// Ends every forwarder (they hold the session, so this, not Drop,
    /// is what frees a closed connection's subscriptions).
    pub fn close(&self) {
        let mut subs = self
            .subs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (_, t) in subs.drain() {
            t.abort();
        }
    }

    pub fn unsubscribe(&self, channel: &str) {
        let mut subs = self
            .subs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(t) = subs.remove(channel) {
            t.abort();
        }
    }

    /// Sends a stored event: in order, waiting for room (replay and gap
    /// fill). Returns false when the connection is gone.
    async fn send_event(&self, ev: &RtEvent) -> bool {
        self.out
            .send(Box::new(Out {
                channel: Some(ev.channel_id.clone()),
                seq: ev.seq,
                text: ev.frame.clone(),
                live_ts_ms: 0,
            }))
            .await
            .is_ok()
    }

    /// Sends history rows after `delivered` up to `until` (inclusive), in
    /// order, waiting for room. Returns the new delivered seq; `Err` when
    /// the connection is gone. A read error owes the client a resync.
    async fn send_from_history(
        &self,
        channel: &str,
        mut delivered: u64,
        until: u64,
    ) -> Result<u64, Gone> {
        while delivered < until {
            let (ch, from) = (channel.to_string(), delivered);
            let limit = (until - delivered).min(500) as u32;
            let rows = match self
                .core
                .history
                .read_rows(limit, move |c| history::events(c, &ch, from, limit))
                .await
            {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, %channel, "realtime: history read failed");
                    self.owe_resync(channel, delivered);
                    return Ok(delivered);
                }
            };
            if rows.is_empty() {
                break;
            }
            for row in rows {
                let ev = rt_event_from_row(channel, row);
                if ev.seq != delivered + 1 {
                    return Ok(delivered);
                }
                if !self.send_event(&ev).await {
                    return Err(Gone);
                }
                delivered = ev.seq;
            }
        }
        Ok(delivered)
    }

    fn removes_me(&self, ev: &RtEvent) -> bool {
        matches!(ev.kind, "member_left" | "member_removed")
            && ev.about_user.as_deref() == Some(self.user.caller.user_id.as_str())
    }

    /// Ends this channel for the connection with an error frame.
    async fn refuse(&self, channel: &str, code: &str) {
        self.stop_following(channel);
        self.send_text(json!({"type": "error", "code": code, "channel_id": channel}).to_string())
            .await;
    }

    /// Checks membership as of stream sequence `at`; refuses the channel
    /// when the user may no longer read it. Returns whether to go on.
    async fn still_member(&self, channel: &str, at: u64) -> bool {
        let Ok(id) = ChannelId::parse(channel) else {
            self.refuse(channel, "not_a_member").await;
            return false;
        };
        match self.core.may_read_at(&self.user, &id, at).await {
            Ok(true) => true,
            Ok(false) => {
                self.refuse(channel, "not_a_member").await;
                false
            }
            Err(_) => {
                self.refuse(channel, "unavailable").await;
                false
            }
        }
    }

    async fn forward(self: Arc<Self>, channel: String, after: u64) {
        let mut delivered = after;
        // Attach to the channel's feed, catch up from history, then follow
        // live events; if the feed ends (its NATS subscription closed),
        // attach again and catch up from where delivery stopped. The
        // catch-up is boxed: this task lives as long as the subscription,
        // and while it idles in `follow_live` it should hold only what
        // following needs, not the state of a history replay.
        loop {
            // The feed is held while following: dropping the last handle
            // ends it.
            let Some((_feed, mut rx)) = Box::pin(self.attach(&channel, &mut delivered)).await
            else {
                return;
            };
            match self.follow_live(&channel, &mut rx, &mut delivered).await {
                Live::Stop => return,
                Live::FeedEnded => continue,
            }
        }
    }

    /// Attaches to `channel`'s feed and replays history after `delivered`
    /// up to the channel's head; `None` when delivery ends (no feed, not a
    /// member, the connection gone).
    async fn attach(
        &self,
        channel: &str,
        delivered: &mut u64,
    ) -> Option<(Arc<Feed>, broadcast::Receiver<Item>)> {
        let ws = self.user.caller.workspace_id.clone();
        loop {
            let feed = match self.hub.feed(&ws, channel).await {
                Ok(f) => f,
                Err(_) => {
                    self.refuse(channel, "unavailable").await;
                    return None;
                }
            };
            let Some(rx) = feed.subscribe() else {
                continue;
            };
            // Everything stored before the subscription is in the log up to
            // its head now: wait until both models hold it, check membership
            // as of then (a removal meanwhile ends delivery), and replay.
            let head = self.core.log.last_seq().await.ok();
            let caught_up = match head {
                Some(h) => {
                    self.core
                        .history_progress
                        .wait_for(h, Duration::from_secs(5))
                        .await
                }
                None => false,
            };
            if !self.still_member(channel, head.unwrap_or(0)).await {
                return None;
            }
            if !caught_up {
                // Replay may miss the newest events: tell the client to check.
                self.owe_resync(channel, *delivered);
            }
            let ch_head = {
                let ch = channel.to_string();
                self.core
                    .history
                    .read(move |c| history::head_seq(c, &ch))
                    .await
                    .unwrap_or(0)
            };
            // Past leaves and rejoins in the replayed range do not stop it:
            // membership was just checked as of the head.
            return match self.send_from_history(channel, *delivered, ch_head).await {
                Ok(d) => {
                    if d > *delivered {
                        crate::metrics::resumed(d - *delivered);
                    }
                    *delivered = d;
                    Some((feed, rx))
                }
                Err(Gone) => None,
            };
        }
    }

    async fn follow_live(
        &self,
        channel: &str,
        rx: &mut broadcast::Receiver<Item>,
        delivered: &mut u64,
    ) -> Live {
        loop {
            match rx.recv().await {
                Ok(Item::Event(ev)) => {
                    if ev.seq <= *delivered {
                        continue;
                    }
                    if ev.seq > *delivered + 1
                        && !Box::pin(self.fill_gap(channel, delivered, &ev)).await
                    {
                        return Live::Stop;
                    }
                    match self.out.try_send(Box::new(Out {
                        channel: Some(ev.channel_id.clone()),
                        seq: ev.seq,
                        text: ev.frame.clone(),
                        live_ts_ms: ev.ts_ms,
                    })) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            // Slow reader: it gets a resync instead of this
                            // event and fetches /events itself.
                            self.owe_resync(channel, *delivered);
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => return Live::Stop,
                    }
                    *delivered = ev.seq;
                    if self.removes_me(&ev) {
                        self.stop_following(channel);
                        return Live::Stop;
                    }
                }
                Ok(Item::Ephemeral { from_user, frame }) => {
                    if from_user != self.user.caller.user_id.as_str() {
                        let _ = self.out.try_send(Box::new(Out {
                            channel: None,
                            seq: 0,
                            live_ts_ms: 0,
                            text: frame,
                        }));
                    }
                }
                // Lagged: the next event shows the gap, which is filled then.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return Live::FeedEnded,
            }
        }
    }

    /// A gap before live event `ev` (this receiver lagged, or the hub
    /// skipped): fills it from history before anything later, and re-checks
    /// membership as of `ev` — a removal may be in the range. False when
    /// delivery ends. (Boxed by its caller: rare, and larger than following.)
    async fn fill_gap(&self, channel: &str, delivered: &mut u64, ev: &RtEvent) -> bool {
        let before = ev.stream_seq.saturating_sub(1);
        self.core
            .history_progress
            .wait_for(before, Duration::from_secs(3))
            .await;
        if !self.still_member(channel, before).await {
            return false;
        }
        match self
            .send_from_history(channel, *delivered, ev.seq - 1)
            .await
        {
            Ok(d) => {
                crate::metrics::gap_filled("connection", d - *delivered);
                *delivered = d
            }
            Err(Gone) => return false,
        }
        if *delivered + 1 < ev.seq {
            self.owe_resync(channel, *delivered);
        }
        true
    }

    fn stop_following(&self, channel: &str) {
        let mut subs = self
            .subs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        subs.remove(channel);
    }

    /// A typing signal: only in channels this connection follows (members
    /// only), at most once per user and channel per [`TYPING_INTERVAL`].
    pub async fn typing(&self, channel: &str) {
        if !self.is_subscribed(channel) {
            self.send_text(
                json!({"type": "error", "code": "not_a_member", "channel_id": channel}).to_string(),
            )
            .await;
            return;
        }
        let key = (self.user.caller.user_id.to_string(), channel.to_string());
        {
            let mut t = self
                .typing
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if t.get(&key).is_some_and(|at| at.elapsed() < TYPING_INTERVAL) {
                return;
            }
            if t.len() > 100_000 {
                t.retain(|_, at| at.elapsed() < TYPING_INTERVAL);
            }
            t.insert(key, Instant::now());
        }
        let frame =
            json!({"type": "typing", "channel_id": channel, "user_id": self.user.caller.user_id});
        let subject = subjects::typing(&self.user.caller.workspace_id, channel);
        let _ = self
            .hub
            .client()
            .publish(subject, frame.to_string().into())
            .await;
    }

    /// Follows channels this user joins (or is invited to) while connected.
    pub fn follow_joins(self: &Arc<Self>) {
        self.hub.follow_joins(self);
    }
}
