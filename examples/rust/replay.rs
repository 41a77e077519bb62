//! Replays one Switchboard workspace from the log and prints per-channel
//! message counts as JSON: the Rust twin of `examples/python/replay.py`
//! (same arguments, same output; see docs/replay.md, "The examples").
//! While it replays it checks each subject's hash chain
//! (`Envelope.prev_digest`) and every signed head checkpoint
//! (docs/replay.md, "Tamper evidence").
//!
//! ```text
//! cargo run --release --example replay -- --nats nats://user:pass@127.0.0.1:4222 --workspace W1
//! cargo run --release --example replay -- --nats ... --workspace W1 --since 2026-11-28T12:00:00Z
//! cargo run --release --example replay -- --nats ... --workspace W1 --public-key data/keys/checkpoint.pub
//! ```
//!
//! Exit status: 0 when everything checked out; 3 a gap in `channel_seq`;
//! 4 a broken hash chain; 5 a signed checkpoint names a head the log no
//! longer holds, or holds with other content; 6 a checkpoint whose
//! signature does not verify. When several apply, the highest.
//!
//! The replay is bounded: it stops after the workspace's events pending
//! when its consumer was created. It needs an ephemeral pull consumer
//! filtered to `sb.<W>.>` and its messages, and with `--since` the
//! stream's info and direct (or message) gets (docs/replay.md,
//! "Permissions a replay needs").
//!
//! `--since` is exact by the envelopes' own `ts_ms`, whatever times the
//! stream stored the messages at (a replay credential's copy stores its
//! creation time for every event copied then): a binary search over the
//! stream's sequences (gets of the next `sb.<W>.>` message) finds the first
//! position whose event is at or after `since - --since-margin`, a consumer
//! starts there, and events before `since` are skipped until each subject's
//! first one at or after it.
//!
//! The types come from `switchboard_core::events` (prost code generated
//! from `core/proto/switchboard/v1/events.proto`); a consumer outside this
//! repository generates the same with `prost-build` from that file.

use anyhow::{bail, Context, Result};
use async_nats::jetstream::{
    self,
    consumer::{pull, AckPolicy, DeliverPolicy},
};
use clap::Parser;
use futures_util::StreamExt;
use prost::Message as _;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};
use switchboard_core::events::{envelope::Body, Envelope, HeadsCheckpoint};
use switchboard_streams::{checkpoint, payload_digest};

#[derive(Parser, Debug)]
#[command(about = "Replay one Switchboard workspace; print per-channel counts as JSON.")]
struct Args {
    /// NATS URL; credentials may be in it (nats://user:password@host:port).
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats: String,
    /// The workspace id W (subject filter sb.W.>).
    #[arg(long)]
    workspace: String,
    /// The log's JetStream stream.
    #[arg(long, default_value = "SB")]
    stream: String,
    /// Prefix of this client's reply subjects; replay credentials grant
    /// subscribe on `<prefix>.>` for a prefix of their own.
    #[arg(long, default_value = "_INBOX")]
    inbox_prefix: String,
    /// Start at the first event whose envelope `ts_ms` is at or after this
    /// RFC 3339 time.
    #[arg(long, conflicts_with = "start_seq")]
    since: Option<String>,
    /// With --since, the search for the start position aims this many
    /// seconds earlier (events of different subjects may be stored up to
    /// that much out of `ts_ms` order).
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_SINCE_MARGIN_SECS)]
    since_margin: f64,
    /// Start at this stream sequence.
    #[arg(long)]
    start_seq: Option<u64>,
    /// Fail when no event arrives for this many seconds.
    #[arg(long, default_value_t = 30.0)]
    idle_timeout: f64,
    /// A checkpoint public key to trust: 64 hex digits (comma-separated or
    /// repeated, one per signing gateway, as `switchboard verify-log
    /// --public-key` takes them), or a file holding them, e.g.
    /// `<data>/keys/checkpoint.pub`. Without one, a checkpoint is checked
    /// against the key it carries, which proves nothing.
    #[arg(long = "public-key", value_name = "KEY|FILE", value_delimiter = ',')]
    public_key: Vec<String>,
}

/// `--since`: how much earlier than `since` the start position is searched
/// for. `ts_ms` is the decision's time, taken before the append; events of
/// different subjects reach the stream in roughly, not exactly, `ts_ms`
/// order.
const DEFAULT_SINCE_MARGIN_SECS: f64 = 60.0;

/// Exit statuses (docs/replay.md, "Tamper evidence"); the highest applies.
const EXIT_GAP: i32 = 3;
const EXIT_CHAIN: i32 = 4;
const EXIT_CHECKPOINT_HEAD: i32 = 5;
const EXIT_CHECKPOINT_SIGNATURE: i32 = 6;

/// The trusted keys from `--public-key` values: hex keys, or files
/// holding them (comma- or whitespace-separated).
fn parse_keys(values: &[String]) -> Result<Vec<[u8; 32]>> {
    let mut keys = Vec::new();
    for value in values {
        if let Some(k) = checkpoint::parse_public(value) {
            keys.push(k);
            continue;
        }
        let text = std::fs::read_to_string(value).with_context(|| {
            format!("--public-key {value:?}: neither 64 hex digits nor a readable file")
        })?;
        for k in text.split(|c: char| c == ',' || c.is_whitespace()) {
            if k.is_empty() {
                continue;
            }
            keys.push(
                checkpoint::parse_public(k).with_context(|| {
                    format!("--public-key {value:?}: {k:?} is not 64 hex digits")
                })?,
            );
        }
    }
    Ok(keys)
}

/// The last envelope seen on a subject (streams/src/chain.rs, `Tip`).
struct Tip {
    channel_seq: u64,
    digest: [u8; 32],
    stream_seq: u64,
    chained: bool,
}

/// One channel's counts (docs/replay.md, "What the counts mean").
#[derive(Default)]
struct ChannelCounts {
    messages: u64,
    deleted: u64,
    replies: u64,
    events: u64,
    last_channel_seq: u64,
}

/// The fold: per-channel counts, the dense-sequence check, each subject's
/// hash chain and the signed head checkpoints.
#[derive(Default)]
struct Replay {
    from_start: bool,
    /// Trusted checkpoint keys; none: each checkpoint's own.
    keys: Vec<[u8; 32]>,
    events: u64,
    /// The stream sequence of the last event applied.
    stream_seq: u64,
    /// The stream sequence of the first event kept, and its sequence in
    /// the log (a replay stream's copy names it in `Nats-Stream-Source`;
    /// checkpoints name log sequences).
    first_stream_seq: Option<u64>,
    first_log_seq: Option<u64>,
    /// `--since` in ms: an event whose `ts_ms` is earlier is skipped, until
    /// a subject's first event at or after it (from there on the subject's
    /// events are all kept: the chain and `channel_seq` stay whole).
    since_ms: Option<i64>,
    /// Events delivered but skipped as before `since`, and per subject the
    /// highest `channel_seq` skipped (before the replay's start).
    skipped: u64,
    skipped_heads: HashMap<String, u64>,
    unknown: u64,
    undecodable: u64,
    /// Subjects on which a payload that is no envelope was delivered.
    undecodable_subjects: HashSet<String>,
    tips: HashMap<String, Tip>,
    /// subject → channel_seq → digest of every envelope seen, and the
    /// first channel_seq seen (what a checkpoint's heads are compared to).
    seen: HashMap<String, HashMap<u64, [u8; 32]>>,
    base: HashMap<String, u64>,
    chain_checked: u64,
    chain_unchained: u64,
    chain_bases: u64,
    chain_findings: Vec<Value>,
    cp_read: u64,
    cp_verified: u64,
    heads_checked: u64,
    heads_unchecked: u64,
    cp_findings: Vec<Value>,
    channels: BTreeMap<String, ChannelCounts>,
    /// subject → the last `channel_seq` seen on it.
    last_seq: HashMap<String, u64>,
    gaps: Vec<Value>,
    /// message id → (channel, deleted) for the messages a history lists.
    listed: HashMap<String, (String, bool)>,
}

impl Replay {
    /// With `--since`: is this delivered event at or after the start? A
    /// subject's events are kept from its first one whose `ts_ms` is at or
    /// after `since` on (`ts_ms` is monotonic per subject); a payload that
    /// is no envelope has no time: kept once an event was kept.
    fn keep(&mut self, subject: &str, env: Option<&Envelope>) -> bool {
        let Some(since) = self.since_ms else {
            return true;
        };
        if self.tips.contains_key(subject) {
            return true;
        }
        let Some(env) = env else {
            return self.first_stream_seq.is_some();
        };
        if env.ts_ms >= since {
            return true;
        }
        self.skipped += 1;
        let h = self.skipped_heads.entry(subject.to_string()).or_default();
        *h = (*h).max(env.channel_seq);
        false
    }

    fn apply(&mut self, subject: &str, stream_seq: u64, payload: &[u8], log_seq: Option<u64>) {
        let env = Envelope::decode(payload).ok();
        if !self.keep(subject, env.as_ref()) {
            return;
        }
        self.events += 1;
        if self.first_stream_seq.is_none() {
            self.first_stream_seq = Some(stream_seq);
            self.first_log_seq = Some(log_seq.unwrap_or(stream_seq));
        }
        let Some(env) = env else {
            // Quarantined: part of neither channel_seq nor the chain.
            self.undecodable += 1;
            self.undecodable_subjects.insert(subject.to_string());
            return;
        };
        self.check_dense(subject, stream_seq, env.channel_seq);
        self.check_chain(subject, stream_seq, &env, payload_digest(payload));
        if let Some(Body::HeadsCheckpoint(cp)) = &env.body {
            if checkpoint::is_checkpoint(subject) {
                self.check_checkpoint(subject, stream_seq, env.channel_seq, cp);
            }
        }
        let parts: Vec<&str> = subject.split('.').collect();
        let channel = match parts.as_slice() {
            ["sb", _, "ch", c] => Some(c.to_string()),
            _ => None,
        };
        if let Some(c) = &channel {
            let ch = self.channels.entry(c.clone()).or_default();
            ch.events += 1;
            ch.last_channel_seq = ch.last_channel_seq.max(env.channel_seq);
        }
        match (env.body, channel) {
            // A oneof case newer than this build's schema decodes as no body:
            // skip it.
            (None, _) => self.unknown += 1,
            (Some(Body::ChannelCreated(_)), _) => {
                self.channels.entry(env.channel_id).or_default();
            }
            (Some(Body::MessagePosted(p)), Some(c)) => {
                let ch = self.channels.entry(c.clone()).or_default();
                if p.thread_root_id.is_empty() || p.also_send_to_channel {
                    ch.messages += 1;
                    self.listed.insert(p.message_id, (c, false));
                } else {
                    ch.replies += 1;
                }
            }
            (Some(Body::MessageDeleted(d)), Some(_)) => {
                if let Some((c, deleted)) = self.listed.get_mut(&d.message_id) {
                    if !*deleted {
                        *deleted = true;
                        self.channels.entry(c.clone()).or_default().deleted += 1;
                    }
                }
            }
            _ => {}
        }
    }

    fn check_dense(&mut self, subject: &str, stream_seq: u64, seq: u64) {
        let last = self.last_seq.get(subject).copied();
        let expected = match last {
            None if self.from_start => Some(1),
            None => None,
            Some(l) => Some(l + 1),
        };
        if let Some(expected) = expected.filter(|e| *e != seq) {
            self.gaps.push(json!({
                "subject": subject, "expected": expected, "got": seq, "stream_seq": stream_seq,
            }));
        }
        self.last_seq
            .insert(subject.to_string(), last.map_or(seq, |l| l.max(seq)));
    }

    /// `prev_digest` is the SHA-256 of the previous envelope's stored
    /// payload on the subject, as `switchboard verify-log` checks it.
    /// Replaying from a time or a sequence, the first event seen on a
    /// subject starts its chain (its `prev_digest` cannot be checked).
    fn check_chain(&mut self, subject: &str, stream_seq: u64, env: &Envelope, digest: [u8; 32]) {
        let tip = self.tips.get(subject);
        let chained = !env.prev_digest.is_empty();
        let problem = match tip {
            None if !self.from_start => {
                self.chain_bases += 1;
                None
            }
            None if chained => Some(
                "the subject's first event names a previous event (removed before it?)".to_string(),
            ),
            None => None,
            Some(t) if !chained && t.chained => {
                Some("no prev_digest after chained events (forged?)".to_string())
            }
            Some(_) if !chained => {
                self.chain_unchained += 1;
                None
            }
            Some(t) if env.prev_digest[..] != t.digest[..] => Some(format!(
                "prev_digest does not match the previous event (stream seq {}): forged, or an event was removed or inserted",
                t.stream_seq
            )),
            Some(_) => {
                self.chain_checked += 1;
                None
            }
        };
        if let Some(problem) = problem {
            self.chain_findings.push(json!({
                "subject": subject, "channel_seq": env.channel_seq,
                "stream_seq": stream_seq, "problem": problem,
            }));
        }
        let chained = chained || tip.is_some_and(|t| t.chained);
        self.tips.insert(
            subject.to_string(),
            Tip {
                channel_seq: env.channel_seq,
                digest,
                stream_seq,
                chained,
            },
        );
        self.seen
            .entry(subject.to_string())
            .or_default()
            .insert(env.channel_seq, digest);
        self.base
            .entry(subject.to_string())
            .or_insert(env.channel_seq);
    }

    /// The signature verifies with a trusted key (any; with none, the
    /// checkpoint's own), and each head it names that this replay covers
    /// is the event seen at that (subject, channel_seq).
    fn check_checkpoint(
        &mut self,
        subject: &str,
        stream_seq: u64,
        channel_seq: u64,
        cp: &HeadsCheckpoint,
    ) {
        self.cp_read += 1;
        let good = if self.keys.is_empty() {
            <[u8; 32]>::try_from(cp.public_key.as_slice()).is_ok_and(|k| checkpoint::verify(cp, &k))
        } else {
            self.keys.iter().any(|k| checkpoint::verify(cp, k))
        };
        if !good {
            self.cp_findings.push(json!({
                "subject": subject, "channel_seq": channel_seq, "stream_seq": stream_seq,
                "kind": "signature",
                "problem": "a checkpoint whose signature does not verify (forged)",
            }));
            return;
        }
        self.cp_verified += 1;
        for h in &cp.heads {
            let digest = self
                .seen
                .get(&h.subject)
                .and_then(|s| s.get(&h.channel_seq));
            let finding = match digest {
                Some(d) if d[..] == h.digest[..] => {
                    self.heads_checked += 1;
                    None
                }
                Some(_) => Some((
                    "rewritten",
                    format!(
                        "differs from the head the checkpoint at stream seq {stream_seq} signed: rewritten"
                    ),
                )),
                None if self.covers(&h.subject, h.channel_seq, h.stream_seq) => Some((
                    "removed",
                    format!(
                        "the checkpoint at stream seq {stream_seq} names this head, which the log no longer holds: events removed (the subject now ends at channel_seq {})",
                        self.tips.get(&h.subject).map_or(0, |t| t.channel_seq)
                    ),
                )),
                None => {
                    self.heads_unchecked += 1;
                    None
                }
            };
            if let Some((kind, problem)) = finding {
                self.cp_findings.push(json!({
                    "subject": h.subject, "channel_seq": h.channel_seq,
                    "stream_seq": h.stream_seq, "kind": kind, "problem": problem,
                }));
            }
        }
    }

    /// True when this replay should have delivered the head (it comes
    /// before its checkpoint in stream order): from the start always; from
    /// a time or a sequence when the subject's first event seen is at or
    /// before it, or when nothing of the subject was seen though the head's
    /// stream seq (the log's) is within the replay; never a head skipped as
    /// before `--since`.
    fn covers(&self, subject: &str, channel_seq: u64, stream_seq: u64) -> bool {
        if self.from_start {
            return true;
        }
        if self
            .skipped_heads
            .get(subject)
            .is_some_and(|s| channel_seq <= *s)
        {
            return false;
        }
        match self.base.get(subject) {
            Some(base) => channel_seq >= *base,
            None => {
                self.first_log_seq.is_some_and(|f| stream_seq >= f)
                    && !self.undecodable_subjects.contains(subject)
            }
        }
    }

    fn exit_status(&self) -> i32 {
        if self.cp_findings.iter().any(|f| f["kind"] == "signature") {
            EXIT_CHECKPOINT_SIGNATURE
        } else if !self.cp_findings.is_empty() {
            EXIT_CHECKPOINT_HEAD
        } else if !self.chain_findings.is_empty() {
            EXIT_CHAIN
        } else if !self.gaps.is_empty() {
            EXIT_GAP
        } else {
            0
        }
    }

    fn report(self, mut out: Map<String, Value>) -> Value {
        let channels: Map<String, Value> = self
            .channels
            .into_iter()
            .map(|(id, c)| {
                let v = json!({
                    "messages": c.messages,
                    "deleted": c.deleted,
                    "live": c.messages - c.deleted,
                    "replies": c.replies,
                    "events": c.events,
                    "last_channel_seq": c.last_channel_seq,
                });
                (id, v)
            })
            .collect();
        out.insert("events".into(), json!(self.events));
        out.insert("unknown".into(), json!(self.unknown));
        out.insert("undecodable".into(), json!(self.undecodable));
        out.insert("channels".into(), Value::Object(channels));
        out.insert("gaps".into(), Value::Array(self.gaps));
        out.insert(
            "chain".into(),
            json!({
                "checked": self.chain_checked,
                "unchained": self.chain_unchained,
                "bases": self.chain_bases,
                "findings": self.chain_findings,
            }),
        );
        out.insert(
            "checkpoints".into(),
            json!({
                "read": self.cp_read,
                "verified": self.cp_verified,
                "trusted_keys": self.keys.len(),
                "heads_checked": self.heads_checked,
                "heads_unchecked": self.heads_unchecked,
                "findings": self.cp_findings,
            }),
        );
        Value::Object(out)
    }
}

/// Folds events from one consumer: `true` when the replay is complete,
/// `false` when a delivery was missed (the caller starts over after the
/// last event folded).
async fn consume(
    client: &async_nats::Client,
    stream: &jetstream::stream::Stream<()>,
    args: &Args,
    deliver_policy: DeliverPolicy,
    fold: &mut Replay,
    idle: Duration,
) -> Result<bool> {
    // An ephemeral pull consumer, filtered to the workspace, no acks, in
    // memory, gone by itself 30 s after its last pull. Named, so that the
    // create request's subject carries the filter
    // ($JS.API.CONSUMER.CREATE.<stream>.<name>.sb.<W>.>).
    let inbox = client.new_inbox();
    let name = format!("replay_{}", inbox.rsplit('.').next().unwrap_or("x"));
    let consumer = stream
        .create_consumer(pull::Config {
            name: Some(name),
            filter_subject: format!("sb.{}.>", args.workspace),
            deliver_policy,
            ack_policy: AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            memory_storage: true,
            num_replicas: 1,
            ..Default::default()
        })
        .await
        .context("creating the consumer")?;
    // The workspace's events from the start position as of now: the
    // replay stops after them (bounded while writers go on).
    let mut remaining = consumer.cached_info().num_pending;
    if remaining == 0 {
        return Ok(true); // nothing of the workspace from there on
    }
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(1000)
        .messages()
        .await
        .context("consuming")?;
    let mut expected = 1;
    loop {
        let Ok(next) = tokio::time::timeout(idle, messages.next()).await else {
            bail!("no event for {idle:?}");
        };
        let Some(msg) = next else {
            return Ok(false);
        };
        let msg = msg.context("receiving")?;
        let info = msg
            .info()
            .map_err(|e| anyhow::anyhow!("message info: {e}"))?;
        if info.consumer_sequence != expected {
            return Ok(false);
        }
        expected += 1;
        let (seq, pending) = (info.stream_sequence, info.pending);
        let log_seq = msg
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Stream-Source"))
            .and_then(|v| v.as_str().split(' ').nth(1)?.parse().ok());
        fold.apply(msg.subject.as_str(), seq, &msg.payload, log_seq);
        fold.stream_seq = seq;
        remaining = remaining.saturating_sub(1);
        if remaining == 0 || pending == 0 {
            return Ok(true);
        }
    }
}

/// Where a replay `--since` starts: the lowest stream sequence from which
/// the workspace's next event has an envelope `ts_ms` at or after `since -
/// --since-margin`, found by a binary search over the stream's sequence
/// range (its info) with gets of the next `sb.<W>.>` message at or after a
/// sequence (direct gets when the stream allows them, else message gets).
/// The stream's stored times play no part. `ts_ms` is only roughly ordered
/// across subjects: with every event stored less than the margin out of
/// order, no event at or after `since` is before the start found (a
/// payload that is no envelope counts as at or after).
async fn find_start(
    stream: &jetstream::stream::Stream<()>,
    args: &Args,
    since: &str,
    since_ms: i64,
) -> Result<(u64, Value)> {
    let info = stream.get_info().await.context("the stream's info")?;
    let direct = info.config.allow_direct;
    let target = since_ms - (args.since_margin * 1000.0) as i64;
    let subject = format!("sb.{}.>", args.workspace);
    let (mut lo, mut hi) = (
        info.state.first_sequence.max(1),
        info.state.last_sequence + 1,
    );
    let mut probes = 0u64;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        probes += 1;
        // The workspace's first message at or after `mid`, if any.
        let next = if direct {
            match stream
                .direct_get_builder()
                .sequence(mid)
                .next_by_subject(subject.clone())
                .send()
                .await
            {
                Ok(m) => Some((m.sequence, m.payload)),
                Err(e) if e.kind() == jetstream::stream::DirectGetErrorKind::NotFound => None,
                Err(e) => return Err(e).context("direct get"),
            }
        } else {
            match stream
                .raw_message_builder()
                .sequence(mid)
                .next_by_subject(subject.clone())
                .send()
                .await
            {
                Ok(m) => Some((m.sequence, m.payload)),
                Err(e) if e.kind() == jetstream::stream::RawMessageErrorKind::NoMessageFound => {
                    None
                }
                Err(e) => return Err(e).context("message get"),
            }
        };
        match next {
            Some((seq, payload)) => match Envelope::decode(payload) {
                Ok(env) if env.ts_ms < target => lo = seq + 1,
                _ => hi = mid,
            },
            None => hi = mid,
        }
    }
    let how = if direct {
        "direct gets"
    } else {
        "message gets"
    };
    Ok((
        lo,
        json!({
            "deliver_policy": "by_start_sequence", "since": since, "start_seq": lo,
            "found_by": format!("envelope ts_ms (binary search, {how})"),
            "margin_secs": args.since_margin, "probes": probes,
        }),
    ))
}

async fn run(args: Args, keys: Vec<[u8; 32]>) -> Result<(Value, i32)> {
    // async-nats does not take credentials from the URL: a replay
    // credential's `nats://user:password@host` is split here.
    let (url, creds) = switchboard_streams::split_userinfo(&args.nats);
    let options = match creds {
        Some((user, password)) => {
            async_nats::ConnectOptions::with_user_and_password(user, password)
        }
        None => async_nats::ConnectOptions::new(),
    };
    let client = options
        .connection_timeout(Duration::from_secs(5))
        .max_reconnects(Some(10))
        .custom_inbox_prefix(&args.inbox_prefix)
        .connect(url.as_str())
        .await
        .context("connecting to NATS")?;
    let js = jetstream::new(client.clone());
    // Stream info only for --since (the search's sequence range).
    let stream = js.get_stream_no_info(&args.stream).await?;
    let mut since_ms = None;
    let (deliver_policy, mut start) = match (&args.since, args.start_seq) {
        (Some(since), _) => {
            let t =
                time::OffsetDateTime::parse(since, &time::format_description::well_known::Rfc3339)
                    .with_context(|| format!("--since {since:?} is not an RFC 3339 time"))?;
            let ms = i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
                .with_context(|| format!("--since {since:?} is out of range"))?;
            since_ms = Some(ms);
            let (seq, start) = find_start(&stream, &args, since, ms).await?;
            (
                DeliverPolicy::ByStartSequence {
                    start_sequence: seq,
                },
                start,
            )
        }
        (None, Some(seq)) if seq > 0 => (
            DeliverPolicy::ByStartSequence {
                start_sequence: seq,
            },
            json!({"deliver_policy": "by_start_sequence", "start_seq": seq}),
        ),
        _ => (DeliverPolicy::All, json!({"deliver_policy": "all"})),
    };
    let mut fold = Replay {
        from_start: matches!(deliver_policy, DeliverPolicy::All),
        since_ms,
        keys,
        ..Default::default()
    };
    let idle = Duration::try_from_secs_f64(args.idle_timeout).context("--idle-timeout")?;
    let began = Instant::now();
    let mut done = false;
    let mut deliver_policy = deliver_policy;
    while !done {
        if fold.stream_seq > 0 {
            // A delivery was lost (a reconnect, say): the ordered-consumer
            // discipline, by hand: a new consumer from the next stream
            // sequence (the old one expires by itself).
            deliver_policy = DeliverPolicy::ByStartSequence {
                start_sequence: fold.stream_seq + 1,
            };
        }
        done = consume(&client, &stream, &args, deliver_policy, &mut fold, idle).await?;
    }
    if since_ms.is_some() {
        start["skipped"] = json!(fold.skipped);
    }
    let mut out = Map::new();
    out.insert("workspace".into(), json!(args.workspace));
    out.insert("stream".into(), json!(args.stream));
    out.insert("start".into(), start);
    out.insert("replay_secs".into(), json!(began.elapsed().as_secs_f64()));
    let status = fold.exit_status();
    Ok((fold.report(out), status))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    // A bad key is a bad argument (status 2, as clap's own).
    let keys = parse_keys(&args.public_key).unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        std::process::exit(2)
    });
    if !(args.since_margin >= 0.0 && args.since_margin.is_finite()) {
        eprintln!("error: --since-margin must be a number of seconds, 0 or more");
        std::process::exit(2)
    }
    let (out, status) = run(args, keys).await?;
    println!("{}", serde_json::to_string_pretty(&out)?);
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    for g in list(&out["gaps"]) {
        eprintln!(
            "replay: {} stream seq {}: channel_seq {}, expected {} (gap)",
            g["subject"].as_str().unwrap_or(""),
            g["stream_seq"],
            g["got"],
            g["expected"]
        );
    }
    for f in list(&out["chain"]["findings"])
        .into_iter()
        .chain(list(&out["checkpoints"]["findings"]))
    {
        eprintln!(
            "replay: {} channel_seq {} (stream seq {}): {}",
            f["subject"].as_str().unwrap_or(""),
            f["channel_seq"],
            f["stream_seq"],
            f["problem"].as_str().unwrap_or("")
        );
    }
    let bases = out["chain"]["bases"].as_u64().unwrap_or(0);
    if bases > 0 {
        eprintln!(
            "replay: started mid-stream: the first event seen on each of {bases} subject(s) starts its hash chain (its prev_digest names an event not replayed and is not checked)"
        );
    }
    if out["checkpoints"]["read"].as_u64() > Some(0) && out["checkpoints"]["trusted_keys"] == 0 {
        eprintln!("replay: no --public-key: checkpoints were checked against the key each carries, which proves nothing");
    }
    if status != 0 {
        std::process::exit(status);
    }
    Ok(())
}
