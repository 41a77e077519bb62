//! The log: stream setup, the sequenced append path and replay.
//!
//! Invariant kept here: every subject's events carry a dense sequence
//! (`Envelope.channel_seq` = 1, 2, 3, … with no gap and no repeat), even with
//! many processes appending to one subject at once. Each append states the
//! stream sequence of the subject's last event
//! (`Nats-Expected-Last-Subject-Sequence`); the stream rejects it if another
//! writer got there first, and the writer re-reads the head and retries.
//! Within one process, appends to one subject are serialized by a lock so
//! they don't race each other.
//!
//! "A 503 means what it says": an append is only handed to the NATS client
//! while it is connected. The client would otherwise buffer the publish and
//! flush it after a reconnect, long after the request was answered.
//!
//! The head is read without decoding its body: every append carries its
//! `channel_seq` and `fence_seq` in headers ([`HDR_CHANNEL_SEQ`],
//! [`HDR_FENCE_SEQ`]). A payload on a subject that is not a Switchboard
//! envelope (published by something else that could reach NATS) is
//! quarantined: it takes no `channel_seq`, it is not part of the subject's
//! hash chain (`Envelope.prev_digest`), readers skip it, and the next
//! append chains onto the last real event before it. One such payload
//! never fails a channel's appends.
//!
//! An append whose ack does not come is reconciled before anyone is told
//! "unknown": every copy of one append carries the same
//! `Nats-Expected-Last-Subject-Sequence`, so at most one copy can ever be
//! stored (right after that head) — the same bytes are published again
//! through the same connection, behind any copy still queued in the
//! client, and the stream's answer to that copy settles the fate of all
//! earlier ones (see [`Log::append_at`]).

use crate::keyring::Keyring;
use async_nats::connection::State;
use async_nats::jetstream::{
    self,
    consumer::{pull::OrderedConfig, DeliverPolicy},
    context::PublishErrorKind,
    message::PublishMessage,
    stream::{Config as StreamConfig, DirectGetErrorKind, Republish, StorageType},
};
use async_nats::{Client, ConnectOptions, Event};
use bytes::Bytes;
use futures_util::{Stream as FutStream, StreamExt};
use prost::Message as _;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_core::events::{Body, Envelope};
use thiserror::Error;
use tokio::sync::watch;

use crate::subjects;

/// Header carrying an appended event's `channel_seq` (decimal), so the
/// head of a subject is known without decoding its body.
pub const HDR_CHANNEL_SEQ: &str = "Sb-Channel-Seq";
/// Header carrying an appended event's `fence_seq` (decimal).
pub const HDR_FENCE_SEQ: &str = "Sb-Fence-Seq";
/// How many quarantined payloads in a row the head look-up steps over
/// before it gives up on a subject.
const MAX_QUARANTINED_RUN: usize = 1_000;

/// SHA-256 of a stored payload: what the next event's `prev_digest` holds.
pub fn payload_digest(payload: &[u8]) -> [u8; 32] {
    Sha256::digest(payload).into()
}

/// How the log's stream is set up.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// JetStream stream name.
    pub stream: String,
    /// JetStream de-duplication window for `Nats-Msg-Id`.
    pub duplicate_window: Duration,
    /// How long an append waits for the stream's acknowledgement.
    pub ack_timeout: Duration,
    /// Stream replicas (1 on one machine, 3 on a cluster).
    pub replicas: usize,
    /// After an append's ack did not come in `ack_timeout`, how long the
    /// append may spend finding out whether it was stored (see
    /// [`Log::append_at`]) before it answers [`AppendError::Unknown`].
    pub reconcile_timeout: Duration,
    /// The length of a content key's slot (see `keyring`), ms.
    pub key_period_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            stream: "SB".into(),
            duplicate_window: Duration::from_secs(120),
            ack_timeout: Duration::from_secs(5),
            replicas: 1,
            reconcile_timeout: Duration::from_secs(10),
            key_period_ms: crate::keyring::DEFAULT_PERIOD_MS,
        }
    }
}

/// Where a subject stands: the stream sequence of its last event and that
/// event's dense subject sequence. `Head::EMPTY` for a subject with no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub stream_seq: u64,
    pub subject_seq: u64,
    /// The head event's `fence_seq` (see the `.proto`).
    pub fence_seq: u64,
    /// SHA-256 of the last Switchboard event's raw payload on the subject
    /// (`None` when it has none): the next event's `prev_digest`.
    pub digest: Option<[u8; 32]>,
}

impl Head {
    pub const EMPTY: Head = Head {
        stream_seq: 0,
        subject_seq: 0,
        fence_seq: 0,
        digest: None,
    };

    /// The `fence_seq` of an event with `body` appended after this head:
    /// every event but a post moves the fence to itself, and so does a post
    /// that attaches files (it changes what the next post may attach).
    fn fence_after(&self, body: Option<&Body>) -> u64 {
        match body {
            Some(Body::MessagePosted(p)) if p.attachment_ids.is_empty() => self.fence_seq,
            _ => self.subject_seq + 1,
        }
    }
}

/// What a decision is made against (see [`Log::append_decided`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Basis {
    /// The subject's head the event will be appended after.
    pub head: Head,
    /// The read models the decision consults must have applied the log up
    /// to this stream sequence: the head as last read from the server, or
    /// the last event appended here that can change decisions (anything but
    /// a post), whichever is later; every event after it on the subject is
    /// a post this process appended.
    pub must_see: u64,
    /// The decision is being re-made against a freshly read head because
    /// the previous attempt was about to refuse: catch the read models up
    /// to the log head before refusing again.
    pub recheck: bool,
}

/// What a decision made of its basis.
// One value per decision, moved once: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Decision<T> {
    /// Append this event (its `channel_seq` is `basis.head.subject_seq + 1`)
    /// with this de-duplication key (default: the event id).
    Append {
        envelope: Envelope,
        msg_id: Option<String>,
    },
    /// Nothing to append; the answer is `T` (e.g. an existing result).
    Done(T),
    /// About to refuse against a cached head: decide again on a fresh one.
    Recheck,
}

/// How a decided append ended.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Outcome<T> {
    Appended(Appended),
    Done(T),
}

/// A subject head this process knows, and where it last read it from the
/// server (see [`Basis::must_see`]).
#[derive(Debug, Clone, Copy)]
struct KnownHead {
    head: Head,
    read_at: u64,
}

/// A stored event, as the append path returns it.
#[derive(Debug, Clone)]
pub struct Appended {
    pub stream_seq: u64,
    pub envelope: Envelope,
    /// The stream already held an event with this idempotency key within its
    /// de-duplication window; `envelope` is that original event.
    pub duplicate: bool,
    /// SHA-256 of the stored payload (the next event's `prev_digest`).
    pub digest: [u8; 32],
}

/// Why an append did not succeed. The variant says what is known about the
/// event's fate.
#[derive(Debug, Error)]
pub enum AppendError {
    /// The log is not reachable and the event was never handed to it: it is
    /// not stored and will not be stored later. Report 503.
    #[error("the log is unavailable: {0}")]
    Unavailable(String),
    /// The event was sent but no acknowledgement came: it may or may not be
    /// stored. A retry with the same idempotency key is safe.
    #[error("the log did not acknowledge in time: {0}")]
    Unknown(String),
    /// Another writer appended to the subject first (optimistic concurrency).
    /// Re-read the state, decide again, retry.
    #[error("the subject moved past the expected head")]
    Conflict,
    /// The stream answered with an error that retrying will not fix.
    #[error("the log refused the event: {0}")]
    Failed(String),
    /// This handle is read-only ([`Log::read_only_at`]): nothing was sent.
    #[error("this server is read-only: nothing is appended")]
    ReadOnly,
}

/// How a reconciliation settled an unacknowledged append.
enum Reconciled {
    /// The stream answered a copy: stored now, or a duplicate of an
    /// earlier copy.
    Acked(jetstream::publish::PublishAck),
    /// An earlier copy is stored (found after the head it expected).
    /// Boxed: an envelope is far larger than an ack.
    Found(Box<Appended>),
}

/// Errors of reads from the log.
#[derive(Debug, Error)]
pub enum LogError {
    #[error("the log is unavailable: {0}")]
    Unavailable(String),
    #[error("stored event at stream sequence {0} is not a valid envelope")]
    Corrupt(u64),
}

/// One event read back from the log during replay.
#[derive(Debug, Clone)]
pub struct LogEvent {
    pub stream_seq: u64,
    /// Events after this one in the log (matching the reader's filter) not
    /// yet delivered to the reader when it was read: a consumer's lag. 0
    /// where unknown.
    pub pending: u64,
    pub subject: String,
    /// `None` when the stored payload is not a valid envelope (something
    /// other than Switchboard published under `sb.>`); consumers skip it.
    pub envelope: Option<Envelope>,
}

/// One stored message, undecoded.
#[derive(Debug, Clone)]
pub struct RawEvent {
    pub stream_seq: u64,
    pub subject: String,
    pub payload: Bytes,
    /// When the stream stored it, milliseconds since the epoch.
    pub time_ms: i64,
}

/// Where [`Log::scan`] starts.
#[derive(Debug, Clone, Copy)]
pub enum ScanStart {
    /// At this stream sequence (0 or 1: the beginning).
    Seq(u64),
    /// At the first message stored at or after this time (ms since epoch).
    TimeMs(i64),
}

/// Raw messages with the count still pending after each.
pub type RawStream = Pin<Box<dyn FutStream<Item = Result<(u64, RawEvent), LogError>> + Send>>;

pub type ReplayStream = Pin<Box<dyn FutStream<Item = Result<LogEvent, LogError>> + Send>>;

/// A NATS connection and a counter of its (re)connects, so long-lived
/// readers can restart their subscriptions right after a reconnect instead
/// of waiting for missed heartbeats.
#[derive(Clone)]
pub struct Nats {
    pub client: Client,
    pub connects: watch::Receiver<u64>,
}

/// Connects to NATS. Reconnects forever with a short, capped back-off so
/// that a restarted nats-server is picked up within about a second.
///
/// `url` may carry credentials (`nats://user:password@host:port`, the form
/// `serve`'s own nats-server and `admin replay-credentials` use): the NATS
/// client ignores userinfo in a URL, so it is taken out here and sent as
/// user and password.
pub async fn connect(url: &str) -> Result<Nats, LogError> {
    let (tx, connects) = watch::channel(0u64);
    let tx = Arc::new(tx);
    let (url, credentials) = split_userinfo(url);
    let options = match credentials {
        Some((user, password)) => ConnectOptions::with_user_and_password(user, password),
        None => ConnectOptions::new(),
    };
    let client = options
        .name("switchboard")
        .max_reconnects(None)
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(2))
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((attempts as u64 * 100).min(1_000))
        })
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                match event {
                    Event::Connected => {
                        tracing::info!("nats: connected");
                        if *tx.borrow() > 0 {
                            metrics::counter!("switchboard_nats_reconnects_total").increment(1);
                        }
                        tx.send_modify(|n| *n += 1);
                    }
                    Event::Disconnected => {
                        metrics::counter!("switchboard_nats_disconnects_total").increment(1);
                        tracing::warn!("nats: disconnected")
                    }
                    other => tracing::info!("nats: {other}"),
                }
            }
        })
        .connect(url.as_str())
        .await
        .map_err(|e| LogError::Unavailable(e.to_string()))?;
    Ok(Nats { client, connects })
}

/// Splits `nats://user:password@host:port` into the URL without its
/// userinfo and the (user, password) pair, percent-decoded. Every URL of a
/// comma-separated list loses its userinfo; the first one found is used.
pub fn split_userinfo(url: &str) -> (String, Option<(String, String)>) {
    let mut found = None;
    let urls: Vec<String> = url
        .split(',')
        .map(|one| {
            let (scheme, rest) = match one.split_once("://") {
                Some((s, r)) => (Some(s), r),
                None => (None, one),
            };
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let Some(at) = rest[..authority_end].rfind('@') else {
                return one.to_string();
            };
            let userinfo = &rest[..at];
            if found.is_none() {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                found = Some((percent_decode(user), percent_decode(password)));
            }
            match scheme {
                Some(s) => format!("{s}://{}", &rest[at + 1..]),
                None => rest[at + 1..].to_string(),
            }
        })
        .collect();
    (urls.join(","), found)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Records `switchboard_append_duration_seconds` when an
/// [`Log::append_decided`] ends, whichever way: from taking the subject's
/// lock to the answer, decisions and retries included.
struct AppendTimer(std::time::Instant);

impl Drop for AppendTimer {
    fn drop(&mut self) {
        metrics::histogram!("switchboard_append_duration_seconds")
            .record(self.0.elapsed().as_secs_f64());
    }
}

const MAX_APPEND_ATTEMPTS: usize = 64;
/// Subjects whose head this process keeps cached (one small entry each).
const MAX_CACHED_HEADS: usize = 100_000;

/// Handle to the log. Cheap to clone.
#[derive(Clone)]
pub struct Log {
    inner: Arc<Inner>,
    /// Set by [`Log::read_only_at`]: the head this handle reports, and no
    /// appends.
    read_only: Option<u64>,
}

struct Inner {
    client: Client,
    connects: watch::Receiver<u64>,
    js: jetstream::Context,
    stream: jetstream::stream::Stream,
    /// The content keys message texts are sealed with.
    keyring: Keyring,
    config: LogConfig,
    /// Per-subject head cache, each behind its own async lock so appends to
    /// one subject from this process are serialized.
    heads: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<KnownHead>>>>>,
    /// Highest stream sequence this process has had acknowledged.
    last_acked: AtomicU64,
}

impl Log {
    /// Creates (or updates) the stream and returns a handle. Idempotent.
    pub async fn open(nats: Nats, config: LogConfig) -> Result<Log, LogError> {
        let Nats { client, connects } = nats;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(config.ack_timeout);
        let wanted = StreamConfig {
            name: config.stream.clone(),
            subjects: vec![
                subjects::ALL.to_string(),
                subjects::VERIFIERS_ALL.to_string(),
            ],
            storage: StorageType::File,
            // Nobody deletes or purges the log (README "Replay
            // credentials"): the erasure path (future) will lift these
            // under its own credential.
            deny_delete: true,
            deny_purge: true,
            num_replicas: config.replicas,
            duplicate_window: config.duplicate_window,
            allow_direct: true,
            republish: Some(Republish {
                source: subjects::ALL.to_string(),
                destination: subjects::REPUBLISH_DEST.to_string(),
                headers_only: false,
            }),
            ..Default::default()
        };
        let unavailable = |e: &dyn std::fmt::Display| LogError::Unavailable(e.to_string());
        let stream = js
            .get_or_create_stream(wanted.clone())
            .await
            .map_err(|e| unavailable(&e))?;
        let have = &stream.cached_info().config;
        let stream = if have.duplicate_window != wanted.duplicate_window
            || have.republish != wanted.republish
            || have.allow_direct != wanted.allow_direct
            || have.subjects != wanted.subjects
            || have.deny_delete != wanted.deny_delete
            || have.deny_purge != wanted.deny_purge
        {
            js.update_stream(wanted)
                .await
                .map_err(|e| unavailable(&e))?;
            js.get_stream(&config.stream)
                .await
                .map_err(|e| unavailable(&e))?
        } else {
            stream
        };
        let keyring = Keyring::open_bucket(
            &js,
            &config.stream,
            config.replicas,
            true,
            config.key_period_ms,
        )
        .await
        .map_err(|e| unavailable(&e))?;
        Ok(Log::of(client, connects, js, stream, keyring, config))
    }

    /// Opens the log stream as it is: never creates it and never changes
    /// its configuration — for the tools that only read it (`serve
    /// --read-only`, `rebuild`, `export`, `verify-log`), whose own flags
    /// (a de-duplication window, say) must not reconfigure a live log.
    pub async fn open_existing(nats: Nats, config: LogConfig) -> Result<Log, LogError> {
        let Nats { client, connects } = nats;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(config.ack_timeout);
        let stream = js
            .get_stream(&config.stream)
            .await
            .map_err(|e| LogError::Unavailable(format!("the log stream {}: {e}", config.stream)))?;
        let keyring = Keyring::open_bucket(
            &js,
            &config.stream,
            config.replicas,
            false,
            config.key_period_ms,
        )
        .await
        .map_err(|e| LogError::Unavailable(e.to_string()))?;
        Ok(Log::of(client, connects, js, stream, keyring, config))
    }

    fn of(
        client: Client,
        connects: watch::Receiver<u64>,
        js: jetstream::Context,
        stream: jetstream::stream::Stream,
        keyring: Keyring,
        config: LogConfig,
    ) -> Log {
        Log {
            inner: Arc::new(Inner {
                client,
                connects,
                js,
                stream,
                keyring,
                config,
                heads: Mutex::new(HashMap::new()),
                last_acked: AtomicU64::new(0),
            }),
            read_only: None,
        }
    }

    /// This handle, read-only as of stream sequence `bound` (a server
    /// serving read models frozen there, `serve --read-only`): every
    /// append is refused ([`AppendError::ReadOnly`]) before anything is
    /// sent, and [`Log::last_seq`] reports at most `bound`, so nothing
    /// waits for read models to pass it.
    pub fn read_only_at(self, bound: u64) -> Log {
        Log {
            read_only: Some(bound),
            ..self
        }
    }

    /// Whether this handle is read-only ([`Log::read_only_at`]).
    pub fn is_read_only(&self) -> bool {
        self.read_only.is_some()
    }

    /// The log's JetStream stream.
    pub fn stream(&self) -> &jetstream::stream::Stream {
        &self.inner.stream
    }

    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Changes on every (re)connect to NATS.
    pub fn connects(&self) -> watch::Receiver<u64> {
        self.inner.connects.clone()
    }

    pub fn config(&self) -> &LogConfig {
        &self.inner.config
    }

    pub fn is_connected(&self) -> bool {
        self.inner.client.connection_state() == State::Connected
    }

    /// Highest stream sequence this process has seen acknowledged.
    pub fn last_acked(&self) -> u64 {
        self.inner.last_acked.load(Ordering::Acquire)
    }

    /// Raises [`Log::last_acked`] to `seq`: a process that (re)starts marks
    /// the head it found, so its reads are never staler than that.
    pub fn note_acked(&self, seq: u64) {
        self.inner.last_acked.fetch_max(seq, Ordering::AcqRel);
    }

    /// The stream's last sequence, asked of the server.
    pub async fn last_seq(&self) -> Result<u64, LogError> {
        if !self.is_connected() {
            return Err(LogError::Unavailable("not connected to NATS".into()));
        }
        let info = self
            .inner
            .stream
            .get_info()
            .await
            .map_err(|e| LogError::Unavailable(e.to_string()))?;
        Ok(match self.read_only {
            Some(bound) => info.state.last_sequence.min(bound),
            None => info.state.last_sequence,
        })
    }

    /// Reads the current head of `subject` from the stream.
    pub async fn fetch_head(&self, subject: &str) -> Result<Head, LogError> {
        if !self.is_connected() {
            return Err(LogError::Unavailable("not connected to NATS".into()));
        }
        let msg = match self.inner.stream.direct_get_last_for_subject(subject).await {
            Ok(msg) => msg,
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => return Ok(Head::EMPTY),
            Err(e) => return Err(LogError::Unavailable(e.to_string())),
        };
        if let Some(head) = head_of(&msg.headers, &msg.payload, msg.sequence) {
            return Ok(head);
        }
        // Quarantined: not an envelope. Appends are conditional on its
        // stream sequence (it is the subject's last message) but continue
        // the sequence and the chain of the last real event before it.
        let stream_seq = msg.sequence;
        let mut below = msg.sequence;
        for _ in 0..MAX_QUARANTINED_RUN {
            tracing::warn!(
                subject,
                stream_seq = below,
                "quarantined a payload that is not an envelope"
            );
            metrics::counter!("switchboard_quarantined_payloads_total").increment(1);
            match self.last_before(subject, below).await? {
                None => {
                    return Ok(Head {
                        stream_seq,
                        ..Head::EMPTY
                    })
                }
                Some((headers, payload, seq)) => match head_of(&headers, &payload, seq) {
                    Some(head) => return Ok(Head { stream_seq, ..head }),
                    None => below = seq,
                },
            }
        }
        Err(LogError::Corrupt(below))
    }

    /// The last message on `subject` strictly below stream sequence
    /// `below` (a batched direct get, `multi_last` with `up_to_seq`,
    /// nats-server >= 2.11): its headers, payload and stream sequence.
    async fn last_before(
        &self,
        subject: &str,
        below: u64,
    ) -> Result<Option<(async_nats::HeaderMap, Bytes, u64)>, LogError> {
        let unavailable = |e: &dyn std::fmt::Display| LogError::Unavailable(e.to_string());
        if below <= 1 {
            return Ok(None);
        }
        let client = &self.inner.client;
        let inbox = client.new_inbox();
        let mut sub = client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| unavailable(&e))?;
        let request = format!(
            r#"{{"multi_last":[{}],"up_to_seq":{},"batch":1}}"#,
            json_string(subject),
            below - 1
        );
        client
            .publish_with_reply(
                format!("$JS.API.DIRECT.GET.{}", self.inner.config.stream),
                inbox,
                request.into(),
            )
            .await
            .map_err(|e| unavailable(&e))?;
        let mut found = None;
        let deadline = tokio::time::Instant::now() + self.inner.config.ack_timeout;
        loop {
            let msg = tokio::time::timeout_at(deadline, sub.next())
                .await
                .map_err(|_| LogError::Unavailable("no answer to a direct get".into()))?
                .ok_or_else(|| LogError::Unavailable("direct get subscription closed".into()))?;
            match msg.status {
                // 204: end of the batch; 404: nothing at or below.
                Some(s) if s.as_u16() == 204 || s.as_u16() == 404 => break,
                Some(s) if s.as_u16() >= 300 => {
                    return Err(LogError::Unavailable(format!(
                        "direct get answered {s}: {}",
                        msg.description.unwrap_or_default()
                    )))
                }
                _ => {
                    let headers = msg.headers.unwrap_or_default();
                    let seq = headers
                        .get("Nats-Sequence")
                        .and_then(|v| v.as_str().parse::<u64>().ok())
                        .ok_or_else(|| {
                            LogError::Unavailable("direct get without a sequence".into())
                        })?;
                    if seq < below {
                        found = Some((headers, msg.payload, seq));
                    }
                }
            }
        }
        Ok(found)
    }

    /// Reads one stored event by stream sequence (its text opened).
    pub async fn get(&self, stream_seq: u64) -> Result<LogEvent, LogError> {
        let raw = self.get_raw(stream_seq).await?;
        Ok(LogEvent {
            stream_seq: raw.stream_seq,
            pending: 0,
            envelope: self.open_payload(raw.payload.as_ref()).await?,
            subject: raw.subject,
        })
    }

    /// The content keys of this log.
    pub fn keyring(&self) -> &Keyring {
        &self.inner.keyring
    }

    /// Decodes a stored payload and opens its sealed text (see
    /// [`Keyring::open`]); `None` for a payload that is not an envelope.
    pub async fn open_payload(&self, payload: &[u8]) -> Result<Option<Envelope>, LogError> {
        open_payload(&self.inner.keyring, payload).await
    }

    /// Reads one stored message by stream sequence, undecoded: its subject,
    /// headers and raw payload (for verification).
    pub async fn get_raw(&self, stream_seq: u64) -> Result<RawEvent, LogError> {
        let msg = self
            .inner
            .stream
            .direct_get(stream_seq)
            .await
            .map_err(|e| LogError::Unavailable(e.to_string()))?;
        Ok(RawEvent {
            stream_seq: msg.sequence,
            subject: msg.subject.to_string(),
            payload: msg.payload,
            time_ms: (msg.time.unix_timestamp_nanos() / 1_000_000) as i64,
        })
    }

    /// Appends `envelope` to `subject` if and only if the subject is still at
    /// `expected` (its `channel_seq` must be `expected.subject_seq + 1`).
    /// `msg_id` is the JetStream de-duplication key.
    ///
    /// When the ack does not come within the ack timeout, the outcome is
    /// reconciled (for at most `reconcile_timeout`) before it is reported:
    /// the same bytes, with the same `msg_id` and expected head, are
    /// published again once the connection is up. That copy travels the
    /// one connection behind the first (and behind any copy async-nats
    /// still buffers from a disconnect), so when the stream answers it,
    /// the earlier copies have been dealt with:
    /// - stored → the first copy was lost or refused for a reason that
    ///   no longer holds; this one is the event (and no earlier copy can
    ///   land after it: the subject is past `expected` now);
    /// - duplicate → an earlier copy was stored; its event is returned;
    /// - wrong last sequence → the subject moved past `expected`: the
    ///   event is stored iff it is the subject's first event after
    ///   `expected` (one direct get tells, whatever the de-dup window);
    ///   if not, it is not stored and never will be ([`AppendError::Conflict`]).
    ///
    /// Only when that does not settle it in time is the answer
    /// [`AppendError::Unknown`]; an earlier copy may then still land.
    pub async fn append_at(
        &self,
        subject: &str,
        expected: Head,
        envelope: Envelope,
        msg_id: &str,
    ) -> Result<Appended, AppendError> {
        debug_assert_eq!(envelope.channel_seq, expected.subject_seq + 1);
        if self.read_only.is_some() {
            return Err(AppendError::ReadOnly);
        }
        if !self.is_connected() {
            return Err(AppendError::Unavailable("not connected to NATS".into()));
        }
        let payload = Bytes::from(envelope.encode_to_vec());
        let digest = payload_digest(&payload);
        let ack = match self
            .publish_once(
                subject,
                expected,
                envelope.fence_seq,
                payload.clone(),
                msg_id,
            )
            .await
        {
            Err(AppendError::Unknown(why)) => {
                tracing::warn!(subject, msg_id, error = %why, "append not acknowledged; reconciling");
                match self
                    .reconcile(
                        subject,
                        expected,
                        envelope.fence_seq,
                        payload,
                        msg_id,
                        &envelope.event_id,
                        why,
                    )
                    .await?
                {
                    Reconciled::Acked(ack) => ack,
                    Reconciled::Found(stored) => {
                        self.inner
                            .last_acked
                            .fetch_max(stored.stream_seq, Ordering::AcqRel);
                        return Ok(*stored);
                    }
                }
            }
            other => other?,
        };
        self.inner
            .last_acked
            .fetch_max(ack.sequence, Ordering::AcqRel);
        if ack.duplicate {
            let original = self
                .get(ack.sequence)
                .await
                .map_err(|e| AppendError::Unknown(e.to_string()))?;
            let stored = original
                .envelope
                .ok_or_else(|| AppendError::Failed("duplicate of an undecodable event".into()))?;
            // A copy of this very append (reconciliation) is not a
            // duplicate of an earlier request: this request stored it.
            let duplicate = stored.event_id != envelope.event_id;
            let digest = payload_digest(&stored.encode_to_vec());
            return Ok(Appended {
                stream_seq: ack.sequence,
                envelope: stored,
                duplicate,
                digest,
            });
        }
        Ok(Appended {
            stream_seq: ack.sequence,
            envelope,
            duplicate: false,
            digest,
        })
    }

    /// One publish of `payload` conditional on `expected`, and its ack.
    async fn publish_once(
        &self,
        subject: &str,
        expected: Head,
        fence_seq: u64,
        payload: Bytes,
        msg_id: &str,
    ) -> Result<jetstream::publish::PublishAck, AppendError> {
        let channel_seq = expected.subject_seq + 1;
        let publish = PublishMessage::build()
            .header(HDR_CHANNEL_SEQ, channel_seq.to_string().as_str())
            .header(HDR_FENCE_SEQ, fence_seq.to_string().as_str())
            .payload(payload)
            .message_id(msg_id)
            .expected_last_subject_sequence(expected.stream_seq);
        let ack_future = self
            .inner
            .js
            .send_publish(subject.to_string(), publish)
            .await
            .map_err(|e| match e.kind() {
                PublishErrorKind::MaxPayloadExceeded => AppendError::Failed(e.to_string()),
                // Not handed to the connection: nothing was sent.
                _ => AppendError::Unavailable(e.to_string()),
            })?;
        ack_future.await.map_err(|e| match e.kind() {
            PublishErrorKind::WrongLastSequence => AppendError::Conflict,
            PublishErrorKind::StreamNotFound => AppendError::Failed(e.to_string()),
            _ => AppendError::Unknown(e.to_string()),
        })
    }

    /// Settles an append whose ack did not come (see [`Log::append_at`]).
    #[allow(clippy::too_many_arguments)]
    async fn reconcile(
        &self,
        subject: &str,
        expected: Head,
        fence_seq: u64,
        payload: Bytes,
        msg_id: &str,
        event_id: &str,
        mut why: String,
    ) -> Result<Reconciled, AppendError> {
        let deadline = tokio::time::Instant::now() + self.inner.config.reconcile_timeout;
        let mut connects = self.connects();
        loop {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(subject, msg_id, error = %why, "append outcome still unknown");
                return Err(AppendError::Unknown(why));
            }
            if !self.is_connected() {
                // Wait for the reconnect (the client reconnects by itself),
                // polling too: the counter moves on connect only.
                connects.mark_unchanged();
                let wait = tokio::time::sleep(Duration::from_millis(50));
                tokio::select! {
                    _ = connects.changed() => {}
                    () = wait => {}
                }
                continue;
            }
            let attempt = tokio::time::timeout_at(
                deadline,
                self.publish_once(subject, expected, fence_seq, payload.clone(), msg_id),
            )
            .await;
            match attempt {
                Err(_) => why = "no ack before the reconcile deadline".into(),
                Ok(Ok(ack)) => return Ok(Reconciled::Acked(ack)),
                // publish_once never answers it (only append_at does).
                Ok(Err(AppendError::ReadOnly)) => return Err(AppendError::ReadOnly),
                Ok(Err(AppendError::Conflict)) => {
                    // Stored iff it is the subject's first event after
                    // `expected`: only one event can follow a head.
                    let next = tokio::time::timeout_at(
                        deadline,
                        self.inner
                            .stream
                            .direct_get_next_for_subject(subject, Some(expected.stream_seq + 1)),
                    )
                    .await;
                    match next {
                        Ok(Ok(msg)) => {
                            let env = Envelope::decode(msg.payload.as_ref()).ok();
                            return match env {
                                Some(env) if env.event_id == event_id => {
                                    Ok(Reconciled::Found(Box::new(Appended {
                                        stream_seq: msg.sequence,
                                        envelope: env,
                                        duplicate: false,

                                        digest: payload_digest(&msg.payload),
                                    })))
                                }
                                // Another event follows the head: this one
                                // was refused, and every copy with it.
                                _ => Err(AppendError::Conflict),
                            };
                        }
                        Ok(Err(e)) => why = e.to_string(),
                        Err(_) => why = "no answer to the look-up before the deadline".into(),
                    }
                }
                Ok(Err(AppendError::Unknown(w))) => why = w,
                Ok(Err(AppendError::Unavailable(w))) => {
                    // Not handed over (disconnected meanwhile, or too many
                    // acks pending): try again shortly.
                    why = w;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                // "No responders" while JetStream recovers after a
                // restart: transient here (the first copy was accepted
                // for sending, so the stream existed and the size was
                // fine). Retried until the deadline like the rest.
                Ok(Err(AppendError::Failed(w))) => {
                    why = w;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Appends the event `make(next_subject_seq)` to `subject`, retrying on
    /// concurrency conflicts (bounded). `msg_id` defaults to the event id.
    /// For events that need no decision (nothing about the subject's state
    /// can make them wrong); everything else goes through
    /// [`Log::append_decided`].
    pub async fn append(
        &self,
        subject: &str,
        msg_id: Option<&str>,
        make: impl Fn(u64) -> Envelope,
    ) -> Result<Appended, AppendError> {
        let outcome = self
            .append_decided::<(), AppendError, _, _>(subject, |basis| {
                let envelope = make(basis.head.subject_seq + 1);
                let msg_id = msg_id.map(str::to_owned);
                async move { Ok(Decision::Append { envelope, msg_id }) }
            })
            .await?;
        match outcome {
            Outcome::Appended(a) => Ok(a),
            Outcome::Done(()) => Err(AppendError::Failed("no event was decided".into())),
        }
    }

    /// Decides and appends, re-deciding on every conflict.
    ///
    /// `decide` gets the [`Basis`] it must decide against: the subject's head
    /// (the event it makes carries `head.subject_seq + 1`) and the stream
    /// sequence its read models must have applied first. The append is
    /// conditional on that head; when another writer moved the subject
    /// first, the head is re-read and `decide` is called again, so a
    /// decision is never appended after an event it did not see. A decision
    /// may also end without an event ([`Decision::Done`]), or ask to be
    /// re-made against a freshly read head before it refuses
    /// ([`Decision::Recheck`]; the next basis has `recheck` set), so a
    /// refusal is never based on a stale cached head.
    pub async fn append_decided<T, E, F, Fut>(
        &self,
        subject: &str,
        mut decide: F,
    ) -> Result<Outcome<T>, E>
    where
        E: From<AppendError>,
        F: FnMut(Basis) -> Fut,
        Fut: std::future::Future<Output = Result<Decision<T>, E>>,
    {
        let _timer = AppendTimer(std::time::Instant::now());
        let slot = self.head_slot(subject);
        let mut cached = slot.lock().await;
        let mut recheck = false;
        for attempt in 0..MAX_APPEND_ATTEMPTS {
            let known = match *cached {
                Some(k) => k,
                None => {
                    let head = self.fetch_head(subject).await.map_err(|e| match e {
                        LogError::Unavailable(m) => AppendError::Unavailable(m),
                        LogError::Corrupt(_) => AppendError::Failed(e.to_string()),
                    })?;
                    let k = KnownHead {
                        head,
                        read_at: head.stream_seq,
                    };
                    *cached = Some(k);
                    k
                }
            };
            let basis = Basis {
                head: known.head,
                must_see: known.read_at,
                recheck,
            };
            let (mut envelope, msg_id) = match decide(basis).await {
                Ok(Decision::Append { envelope, msg_id }) => (envelope, msg_id),
                Ok(Decision::Done(t)) => return Ok(Outcome::Done(t)),
                Ok(Decision::Recheck) if !recheck => {
                    recheck = true;
                    *cached = None;
                    continue;
                }
                Ok(Decision::Recheck) => {
                    return Err(
                        AppendError::Failed("a re-checked decision asked again".into()).into(),
                    )
                }
                Err(e) => return Err(e),
            };
            if self.read_only.is_some() {
                return Err(AppendError::ReadOnly.into());
            }
            // Sealed per attempt (a fresh nonce each time); the text never
            // reaches the stream in the clear. The caller gets it back open.
            let decided_body = envelope.body.clone();
            self.inner
                .keyring
                .seal(&mut envelope)
                .await
                .map_err(|e| AppendError::Unavailable(e.to_string()))?;
            envelope.fence_seq = known.head.fence_after(envelope.body.as_ref());
            envelope.prev_digest = known.head.digest.map(Vec::from).unwrap_or_default();
            let fence_seq = envelope.fence_seq;
            let id = msg_id.unwrap_or_else(|| envelope.event_id.clone());
            match self.append_at(subject, known.head, envelope, &id).await {
                Ok(mut appended) => {
                    // The caller gets the event as decided: its text open
                    // (a duplicate's stored text is opened).
                    if !appended.duplicate {
                        appended.envelope.body = decided_body;
                    } else if let Err(e) = self.inner.keyring.open(&mut appended.envelope).await {
                        tracing::warn!(error = %e, "append: the stored text could not be opened");
                    }
                    if !appended.duplicate {
                        // The next decision on this subject must see this
                        // event if it can change decisions (it moved the
                        // fence); a post cannot, so after one the read
                        // models need not reach more than before. Set here,
                        // under the subject's lock, so no later decision in
                        // this process can slip in before it is required.
                        let read_at = if fence_seq == known.head.fence_seq {
                            known.read_at
                        } else {
                            appended.stream_seq
                        };
                        *cached = Some(KnownHead {
                            head: Head {
                                stream_seq: appended.stream_seq,
                                subject_seq: known.head.subject_seq + 1,
                                fence_seq,
                                digest: Some(appended.digest),
                            },
                            read_at,
                        });
                    }
                    return Ok(Outcome::Appended(appended));
                }
                Err(AppendError::Conflict) => {
                    metrics::counter!("switchboard_append_retries_total").increment(1);
                    // Another writer won the race: back off a little, more
                    // with each attempt, so two writers don't collide in
                    // lock-step; then read the new head and decide again at
                    // once (the head is read after the pause: the shorter
                    // the time from reading it to publishing, the better the
                    // chance against a busy writer). When only posts came in
                    // between (the fence did not move), the state the
                    // decision read is still current: the read models need
                    // not catch up to the new head first, so a moderator is
                    // not starved by a busy channel.
                    let spread = (attempt as u64 + 1).min(20) * 200;
                    tokio::time::sleep(Duration::from_micros(jitter(spread))).await;
                    let head = self.fetch_head(subject).await.map_err(|e| match e {
                        LogError::Unavailable(m) => AppendError::Unavailable(m),
                        LogError::Corrupt(_) => AppendError::Failed(e.to_string()),
                    })?;
                    let read_at = if head.fence_seq == known.head.fence_seq {
                        known.read_at
                    } else {
                        head.stream_seq
                    };
                    *cached = Some(KnownHead { head, read_at });
                }
                Err(e) => {
                    *cached = None;
                    return Err(e.into());
                }
            }
        }
        Err(AppendError::Conflict.into())
    }

    fn head_slot(&self, subject: &str) -> Arc<tokio::sync::Mutex<Option<KnownHead>>> {
        let mut heads = self
            .inner
            .heads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if heads.len() >= MAX_CACHED_HEADS && !heads.contains_key(subject) {
            // Forget heads no append is using right now; a forgotten head is
            // re-read from the stream on the next append to its subject.
            heads.retain(|_, slot| Arc::strong_count(slot) > 1);
        }
        heads.entry(subject.to_string()).or_default().clone()
    }

    /// Streams every event from `start_seq` (inclusive; 0 or 1 = from the
    /// beginning) in stream order, following the log as it grows. Backed by
    /// an ordered consumer: no server-side state to clean up, and it
    /// re-creates itself after a gap or a reconnect.
    pub async fn replay(&self, start_seq: u64) -> Result<ReplayStream, LogError> {
        self.replay_filtered(start_seq, String::new()).await
    }

    /// Every stored message matching `filter` from `start` on, undecoded,
    /// and how many there were when the reader was created (so a reader
    /// knows where "now" ends without waiting for the next event).
    pub async fn scan(
        &self,
        start: ScanStart,
        filter: String,
    ) -> Result<(u64, RawStream), LogError> {
        let deliver_policy = match start {
            ScanStart::Seq(seq) => DeliverPolicy::ByStartSequence {
                start_sequence: seq.max(1),
            },
            ScanStart::TimeMs(ms) => DeliverPolicy::ByStartTime {
                start_time: time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
                    .map_err(|e| LogError::Unavailable(e.to_string()))?,
            },
        };
        let mut consumer = self
            .inner
            .stream
            .create_consumer(OrderedConfig {
                deliver_policy,
                filter_subject: filter,
                ..Default::default()
            })
            .await
            .map_err(|e| LogError::Unavailable(e.to_string()))?;
        let pending = consumer
            .info()
            .await
            .map_err(|e| LogError::Unavailable(e.to_string()))?
            .num_pending;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| LogError::Unavailable(e.to_string()))?;
        Ok((
            pending,
            Box::pin(messages.map(|m| {
                let m = m.map_err(|e| LogError::Unavailable(e.to_string()))?;
                let info = m.info().map_err(|e| LogError::Unavailable(e.to_string()))?;
                let (stream_seq, pending) = (info.stream_sequence, info.pending);
                let time_ms = (info.published.unix_timestamp_nanos() / 1_000_000) as i64;
                Ok((
                    pending,
                    RawEvent {
                        stream_seq,
                        subject: m.subject.to_string(),
                        payload: m.payload.clone(),
                        time_ms,
                    },
                ))
            })),
        ))
    }

    /// Like [`Log::replay`], limited to subjects matching `filter`.
    pub async fn replay_filtered(
        &self,
        start_seq: u64,
        filter: String,
    ) -> Result<ReplayStream, LogError> {
        let consumer = self
            .inner
            .stream
            .create_consumer(OrderedConfig {
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: start_seq.max(1),
                },
                filter_subject: filter,
                ..Default::default()
            })
            .await
            .map_err(|e| LogError::Unavailable(e.to_string()))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| LogError::Unavailable(e.to_string()))?;
        let keyring = self.inner.keyring.clone();
        Ok(Box::pin(messages.then(move |m| {
            let keyring = keyring.clone();
            async move {
                let m = m.map_err(|e| LogError::Unavailable(e.to_string()))?;
                let info = m.info().map_err(|e| LogError::Unavailable(e.to_string()))?;
                let (stream_seq, pending) = (info.stream_sequence, info.pending);
                Ok(LogEvent {
                    stream_seq,
                    pending,
                    subject: m.subject.to_string(),
                    envelope: open_payload(&keyring, m.payload.as_ref()).await?,
                })
            }
        })))
    }
}

/// Decodes a stored payload and opens its sealed text with `keyring`.
/// `None`: not an envelope. An error: the keys could not be reached (the
/// caller retries; a text is never taken as erased on a failure).
pub async fn open_payload(keyring: &Keyring, payload: &[u8]) -> Result<Option<Envelope>, LogError> {
    let Ok(mut env) = Envelope::decode(payload) else {
        return Ok(None);
    };
    keyring
        .open(&mut env)
        .await
        .map_err(|e| LogError::Unavailable(e.to_string()))?;
    Ok(Some(env))
}

/// Largest `channel_seq` taken as genuine: far beyond any real subject,
/// and far from `u64::MAX`, so the next one (`+ 1`) cannot overflow.
const MAX_SUBJECT_SEQ: u64 = 1 << 62;

/// The head a stored message makes. `None`: not a Switchboard event
/// (quarantined). The body is decoded and must agree with the
/// `Sb-Channel-Seq`/`Sb-Fence-Seq` headers when it has them: the headers
/// alone would let any publisher on the subject set the next
/// `channel_seq` (review finding: a forged header opened a permanent gap).
/// A message that does not decode is skipped, never an error, so a
/// foreign payload at the head does not wedge the subject.
fn head_of(headers: &async_nats::HeaderMap, payload: &[u8], stream_seq: u64) -> Option<Head> {
    let num = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.as_str().parse::<u64>().ok())
    };
    let env = Envelope::decode(payload).ok()?;
    if env.channel_seq == 0 || env.channel_seq > MAX_SUBJECT_SEQ {
        return None;
    }
    match (num(HDR_CHANNEL_SEQ), num(HDR_FENCE_SEQ)) {
        (Some(seq), Some(fence)) if seq != env.channel_seq || fence != env.fence_seq => {
            return None
        }
        _ => {}
    }
    Some(Head {
        stream_seq,
        subject_seq: env.channel_seq,
        fence_seq: env.fence_seq,
        digest: Some(payload_digest(payload)),
    })
}

#[cfg(test)]
mod head_tests {
    use super::*;

    fn env(seq: u64, fence: u64) -> Vec<u8> {
        Envelope {
            event_id: "E1".into(),
            channel_seq: seq,
            fence_seq: fence,
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn headers(seq: &str, fence: &str) -> async_nats::HeaderMap {
        let mut h = async_nats::HeaderMap::new();
        h.insert(HDR_CHANNEL_SEQ, seq);
        h.insert(HDR_FENCE_SEQ, fence);
        h
    }

    #[test]
    fn a_head_is_what_its_body_says_and_forged_headers_are_quarantined() {
        let good = head_of(&headers("3", "2"), &env(3, 2), 40).expect("a head");
        assert_eq!(
            (good.stream_seq, good.subject_seq, good.fence_seq),
            (40, 3, 2)
        );
        // Before the headers existed: the body alone.
        let old = head_of(&async_nats::HeaderMap::new(), &env(3, 2), 40).expect("a head");
        assert_eq!(old.subject_seq, 3);
        // Headers claiming another seq than the body: not trusted.
        assert!(head_of(&headers("1000000", "2"), &env(3, 2), 40).is_none());
        assert!(head_of(&headers("3", "9"), &env(3, 2), 40).is_none());
        // A body that is no envelope, whatever the headers say.
        assert!(head_of(&headers("7", "0"), b"\xff\xffnot protobuf", 40).is_none());
        // A seq whose successor would overflow.
        assert!(head_of(&headers(&u64::MAX.to_string(), "0"), &env(u64::MAX, 0), 40).is_none());
        assert!(head_of(&async_nats::HeaderMap::new(), &env(0, 0), 40).is_none());
    }
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A cheap pseudo-random number below `bound` (back-off spread only).
fn jitter(bound: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(bound);
    h.finish() % bound.max(1)
}

#[cfg(test)]
mod url_tests {
    #[test]
    fn userinfo_is_split_off() {
        let (url, creds) = super::split_userinfo("nats://replay_x:p%40ss@127.0.0.1:4222");
        assert_eq!(url, "nats://127.0.0.1:4222");
        assert_eq!(creds, Some(("replay_x".into(), "p@ss".into())));
        let (url, creds) = super::split_userinfo("nats://127.0.0.1:4222");
        assert_eq!(url, "nats://127.0.0.1:4222");
        assert_eq!(creds, None);
        let (url, creds) = super::split_userinfo("nats://a:b@h1:1,nats://a:b@h2:2");
        assert_eq!(url, "nats://h1:1,nats://h2:2");
        assert_eq!(creds, Some(("a".into(), "b".into())));
        assert_eq!(super::percent_decode("%é%4"), "%é%4");
    }
}
