//! Replays one Switchboard workspace from the log and prints per-channel
//! message counts as JSON: the Rust twin of `examples/python/replay.py`
//! (same arguments, same output; see docs/replay.md, "The examples").
//!
//! ```text
//! cargo run --release --example replay -- --nats nats://user:pass@127.0.0.1:4222 --workspace W1
//! cargo run --release --example replay -- --nats ... --workspace W1 --since 2026-11-28T12:00:00Z
//! ```
//!
//! The replay is bounded: it stops after the workspace's events pending
//! when its consumer was created. It needs no stream info, only an ephemeral
//! pull consumer filtered to `sb.<W>.>` and its messages (docs/replay.md,
//! "Permissions a replay needs").
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
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use switchboard_core::events::{envelope::Body, Envelope};

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
    /// Start at the first event stored at or after this RFC 3339 time.
    #[arg(long, conflicts_with = "start_seq")]
    since: Option<String>,
    /// Start at this stream sequence.
    #[arg(long)]
    start_seq: Option<u64>,
    /// Fail when no event arrives for this many seconds.
    #[arg(long, default_value_t = 30.0)]
    idle_timeout: f64,
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

/// The fold: per-channel counts and the dense-sequence check.
#[derive(Default)]
struct Replay {
    from_start: bool,
    events: u64,
    /// The stream sequence of the last event applied.
    stream_seq: u64,
    unknown: u64,
    undecodable: u64,
    channels: BTreeMap<String, ChannelCounts>,
    /// subject → the last `channel_seq` seen on it.
    last_seq: HashMap<String, u64>,
    gaps: Vec<Value>,
    /// message id → (channel, deleted) for the messages a history lists.
    listed: HashMap<String, (String, bool)>,
}

impl Replay {
    fn apply(&mut self, subject: &str, stream_seq: u64, payload: &[u8]) {
        self.events += 1;
        let Ok(env) = Envelope::decode(payload) else {
            self.undecodable += 1;
            return;
        };
        self.check_dense(subject, stream_seq, env.channel_seq);
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
        fold.apply(msg.subject.as_str(), seq, &msg.payload);
        fold.stream_seq = seq;
        remaining = remaining.saturating_sub(1);
        if remaining == 0 || pending == 0 {
            return Ok(true);
        }
    }
}

async fn run(args: Args) -> Result<Value> {
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
    // No stream info: a replay credential may not read the stream's state
    // (it spans every workspace).
    let stream = js.get_stream_no_info(&args.stream).await?;
    let (deliver_policy, start) = match (&args.since, args.start_seq) {
        (Some(since), _) => {
            let t =
                time::OffsetDateTime::parse(since, &time::format_description::well_known::Rfc3339)
                    .with_context(|| format!("--since {since:?} is not an RFC 3339 time"))?;
            (
                DeliverPolicy::ByStartTime { start_time: t },
                json!({"deliver_policy": "by_start_time", "since": since}),
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
    let mut out = Map::new();
    out.insert("workspace".into(), json!(args.workspace));
    out.insert("stream".into(), json!(args.stream));
    out.insert("start".into(), start);
    out.insert("replay_secs".into(), json!(began.elapsed().as_secs_f64()));
    Ok(fold.report(out))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let out = run(args).await?;
    println!("{}", serde_json::to_string_pretty(&out)?);
    let gaps = out["gaps"].as_array().is_some_and(|g| !g.is_empty());
    if gaps {
        std::process::exit(3);
    }
    Ok(())
}
