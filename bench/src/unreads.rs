//! `switchboard-bench unreads`: `GET /v1/unreads` for a user in many
//! channels over a large folded log, and the unread projector's fold rate
//! next to the history projector's in the same run.
//!
//! Against a running `switchboard serve`: creates a fresh workspace,
//! `--users` users and `--channels` channels over HTTP (every user a
//! member of every channel; user 1 is the reader), then appends
//! `--messages` posts straight into the server's log, round-robin over the
//! channels (as `history` does: valid envelopes, dense `channel_seq`):
//! every fourth a thread reply (the reader replies in `--threads` threads,
//! so it follows them; a few replies are also sent to the channel), 5% of
//! top-level posts mention the reader, 0.5% say `@channel`, 2% are the
//! reader's own, 1% are deleted again and 1% edited to mention the reader
//! (top-level posts; an edit of a reply would make the reader follow its
//! thread, which the bench counts too).
//! Both projectors fold the same events at once; each one's rate is events
//! per second from the first append to the last event it applied.
//!
//! Once `/readyz` shows every projector at the last append (no fold
//! shares the cores with the reads), the reader marks each channel read
//! up to 90% of its new events
//! (HTTP), and, closed loop, one request at a time, `GET /v1/unreads`
//! (client-side latency on 127.0.0.1, request to full body; every answer
//! checked to list every channel and thread), each followed by the same
//! query through the projection's own functions on read-only connections
//! to the server's read models (the SQLite floor: the ACL model's channel
//! list, then `unreads::unreads`).

use crate::client::{self, post, str_field};
use crate::history::{id_bytes, open_read_only};
use crate::stats::{ms, Figure, Figures, LatencySummary, Runs};
use crate::NatsTarget;
use anyhow::{bail, Context, Result};
use async_nats::jetstream;
use clap::Parser;
use futures_util::{stream, StreamExt, TryStreamExt};
use prost::Message as _;
use serde_json::{json, Value};
use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};
use switchboard_core::events::Mentions;
use switchboard_core::events::{
    envelope::Body, Envelope, MessageDeleted, MessageEdited, MessagePosted,
};
use switchboard_core::ids::{EventId, MessageId};
use switchboard_projections::{acl, history, unreads};

/// Setup requests in flight.
const SETUP_CONCURRENCY: usize = 16;

#[derive(Parser, Debug, Clone)]
pub struct UnreadsArgs {
    /// Base URL of the running server (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Operator token of that server.
    #[arg(long, env = "SWITCHBOARD_ADMIN_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Messages to write (thread replies included; deletes and edits
    /// come on top).
    #[arg(long, default_value_t = 1_000_000)]
    pub messages: u64,
    /// Channels the reader is in (all of the bench's channels).
    #[arg(long, default_value_t = 500)]
    pub channels: u64,
    /// Users (all members of every channel; at least 2).
    #[arg(long, default_value_t = 4)]
    pub users: u64,
    /// Threads the reader replies in (and so follows).
    #[arg(long, default_value_t = 200)]
    pub threads: u64,
    /// `GET /v1/unreads` per run.
    #[arg(long, default_value_t = 1_000)]
    pub samples: u64,
    /// Repetitions of the reads; each is printed, then the median of each
    /// figure (the log is generated and folded once).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Longest wait for the projectors to fold the log, in seconds.
    #[arg(long, default_value_t = 1_800)]
    pub fold_timeout: u64,
    /// The server's nats-server and data directory (its `acl.db`,
    /// `history.db` and `unreads.db` are read).
    #[command(flatten)]
    pub nats: NatsTarget,
}

/// One run of `unreads`.
#[derive(Debug, Clone)]
pub struct UnreadsRun {
    /// Events appended (posts, deletes, edits).
    pub events: u64,
    /// First run only: events/s from the first append until each
    /// projector had applied the last.
    pub unreads_fold_rate: Option<f64>,
    pub history_fold_rate: Option<f64>,
    /// Channels and threads in every answer.
    pub channels: usize,
    pub threads: usize,
    pub http: LatencySummary,
    /// The same requests as the server timed them (`Server-Timing`).
    pub server: LatencySummary,
    pub raw: LatencySummary,
    /// Answers that were not 200 or did not list every channel and thread.
    pub errors: u64,
}

impl Figures for UnreadsRun {
    fn figures(&self) -> Vec<Figure> {
        let mut f = Vec::new();
        if let Some(r) = self.unreads_fold_rate {
            f.push(Figure::new("unreads fold, append → applied", r, "events/s"));
        }
        if let Some(r) = self.history_fold_rate {
            f.push(Figure::new("history fold, append → applied", r, "events/s"));
        }
        f.push(Figure::new(
            "GET /v1/unreads HTTP p50",
            ms(self.http.p50),
            "ms",
        ));
        f.push(Figure::new(
            "GET /v1/unreads HTTP p99",
            ms(self.http.p99),
            "ms",
        ));
        f.push(Figure::new(
            "GET /v1/unreads server-side p50",
            ms(self.server.p50),
            "ms",
        ));
        f.push(Figure::new(
            "GET /v1/unreads server-side p99",
            ms(self.server.p99),
            "ms",
        ));
        f.push(Figure::new("unreads SQLite p50", ms(self.raw.p50), "ms"));
        f.push(Figure::new("unreads SQLite p99", ms(self.raw.p99), "ms"));
        f
    }
}

struct Chan {
    id: String,
    base_seq: u64,
}

pub async fn run(a: UnreadsArgs) -> Result<Runs<UnreadsRun>> {
    client::require_loopback(&a.url)?;
    let http = client::http(SETUP_CONCURRENCY * 2)?;
    let base = a.url.trim_end_matches('/').to_string();
    let nats_url = match a.nats.nats.as_deref() {
        Some(u) => u.to_string(),
        None => crate::nats::started_by_serve(&a.nats.data).with_context(|| {
            format!(
                "no nats-server started by `serve` on {} (give --data or --nats)",
                a.nats.data.display()
            )
        })?,
    };
    client::require_loopback(&nats_url)?;
    let path = |name: &str| a.nats.data.join(format!("{name}.db"));
    for name in ["acl", "history", "unreads"] {
        if !path(name).exists() {
            bail!(
                "{}: no read model (is --data the server's?)",
                path(name).display()
            );
        }
    }

    // Setup over HTTP.
    let t = Instant::now();
    let ws = client::fresh_workspace(&http, &base, &a.token, "bench-unreads").await?;
    let mut users: Vec<(String, String)> = Vec::new();
    for i in 0..a.users.max(2) {
        let role = if i == 0 { "admin" } else { "member" };
        let u = post(
            &http,
            &format!("{base}/v1/workspaces/{ws}/users"),
            &a.token,
            json!({"handle": format!("unr{i}"), "display_name": format!("unr{i}"), "role": role}),
        )
        .await?;
        users.push((
            str_field(&u, "id")?.to_string(),
            str_field(&u, "token")?.to_string(),
        ));
    }
    let owner = users[0].1.clone();
    let (reader_id, reader) = users[1].clone();
    let others: Vec<String> = users
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 1)
        .map(|(_, u)| u.0.clone())
        .collect();
    let ids: Vec<String> = stream::iter(0..a.channels.max(1))
        .map(|c| {
            let (http, base, owner) = (&http, &base, &owner);
            async move { client::channel(http, base, owner, &format!("unr-{c}")).await }
        })
        .buffered(SETUP_CONCURRENCY)
        .try_collect()
        .await?;
    let invites: Vec<(String, String)> = ids
        .iter()
        .flat_map(|c| users[1..].iter().map(move |(u, _)| (c.clone(), u.clone())))
        .collect();
    stream::iter(invites)
        .map(|(c, u)| {
            let (http, base, owner) = (&http, &base, &owner);
            async move {
                post(
                    http,
                    &format!("{base}/v1/channels/{c}/members"),
                    owner,
                    json!({"user_id": u}),
                )
                .await
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect::<Vec<Value>>()
        .await?;

    let conn = switchboard_streams::connect(&nats_url).await?;
    let js = jetstream::new(conn.client.clone());
    let log = switchboard_streams::Log::open(conn, switchboard_streams::LogConfig::default())
        .await
        .context("opening the server's log")?;
    let mut chans = Vec::with_capacity(ids.len());
    for id in ids {
        let head = log.fetch_head(&format!("sb.{ws}.ch.{id}")).await?;
        chans.push(Chan {
            id,
            base_seq: head.subject_seq,
        });
    }
    println!(
        "setup: workspace {ws}, {} users, {} channels in {:.1}s",
        users.len(),
        chans.len(),
        t.elapsed().as_secs_f64()
    );

    // Append, pipelined, round-robin over the channels.
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let n_chans = chans.len();
    let mut heads: Vec<(u64, u64)> = chans.iter().map(|c| (c.base_seq, c.base_seq)).collect();
    let mut posted: Vec<u64> = vec![0; n_chans];
    let mut root_now: Vec<Option<String>> = vec![None; n_chans];
    let mut reader_threads: HashSet<String> = HashSet::new();
    // Threads the reader follows: replied in, or mentioned in a reply.
    let mut followed: HashSet<String> = HashSet::new();
    let mut events = 0u64;
    let mut last = (0usize, 0u64);
    let mut inflight = VecDeque::new();
    let ws_ref = &ws;
    let mut envelope = |c: usize, actor: &str, body: Body, heads: &mut Vec<(u64, u64)>| {
        let (seq, fence) = heads[c];
        let seq = seq + 1;
        let fence = if matches!(body, Body::MessagePosted(_)) {
            fence
        } else {
            seq
        };
        heads[c] = (seq, fence);
        events += 1;
        Envelope {
            event_id: EventId::generate(nonce + events / 1000, id_bytes(nonce, events)).to_string(),
            workspace_id: ws_ref.clone(),
            channel_id: chans[c].id.clone(),
            actor_id: actor.to_string(),
            ts_ms: (nonce + events / 1000) as i64,
            channel_seq: seq,
            fence_seq: fence,
            request_id: String::new(),

            prev_digest: Vec::new(),
            body: Some(body),
        }
    };
    let mention_reader = || Mentions {
        user_ids: vec![reader_id.clone()],
        ..Default::default()
    };
    let start = Instant::now();
    let mut last_stream_seq = 0u64;
    for i in 0..a.messages {
        let c = (i % n_chans as u64) as usize;
        let j = posted[c];
        posted[c] += 1;
        let mid = MessageId::generate(nonce, id_bytes(nonce ^ 0x5A5A, i)).to_string();
        let reply_to = if j % 4 == 3 {
            root_now[c].clone()
        } else {
            None
        };
        let other = others[(j % others.len() as u64) as usize].clone();
        let sender = match &reply_to {
            Some(root)
                if (reader_threads.len() as u64) < a.threads
                    && !reader_threads.contains(root)
                    && j % 8 == 7 =>
            {
                reader_threads.insert(root.clone());
                followed.insert(root.clone());
                reader_id.clone()
            }
            Some(_) => other,
            None if j % 50 == 10 => reader_id.clone(),
            None => other,
        };
        let mentions = match (&reply_to, j % 200) {
            (None, 2) => Mentions {
                channel: true,
                ..Default::default()
            },
            (None, k) if k % 20 == 1 => mention_reader(),
            _ => Mentions::default(),
        };
        let mut batch = Vec::new();
        let body = Body::MessagePosted(MessagePosted {
            message_id: mid.clone(),
            text: format!("benchmark message number {j} in this channel, with typical chat length"),
            thread_root_id: reply_to.clone().unwrap_or_default(),
            also_send_to_channel: reply_to.is_some() && j % 40 == 3,
            mentions: Some(mentions),
            ..Default::default()
        });
        batch.push(envelope(c, &sender, body, &mut heads));
        if reply_to.is_none() && sender != reader_id && j % 20 == 0 {
            root_now[c] = Some(mid.clone());
        }
        if j % 100 == 5 {
            let body = Body::MessageDeleted(MessageDeleted {
                message_id: mid.clone(),
            });
            batch.push(envelope(c, &sender, body, &mut heads));
        } else if j % 100 == 9 && sender != reader_id {
            let body = Body::MessageEdited(MessageEdited {
                message_id: mid.clone(),
                text: format!("benchmark message number {j}, edited to mention the reader"),
                mentions: Some(mention_reader()),
                ..Default::default()
            });
            batch.push(envelope(c, &sender, body, &mut heads));
            if let Some(root) = &reply_to {
                followed.insert(root.clone());
            }
        }
        for env in batch {
            last = (c, env.channel_seq);
            let subject = format!("sb.{ws}.ch.{}", chans[c].id);
            let ack = js.publish(subject, env.encode_to_vec().into()).await?;
            inflight.push_back(ack);
            if inflight.len() >= 1024 {
                if let Some(ack) = inflight.pop_front() {
                    last_stream_seq = last_stream_seq.max(ack.await?.sequence);
                }
            }
        }
    }
    while let Some(ack) = inflight.pop_front() {
        last_stream_seq = last_stream_seq.max(ack.await?.sequence);
    }
    let append_secs = start.elapsed().as_secs_f64();
    println!(
        "appended {events} events ({} messages) in {append_secs:.1}s = {:.0} events/s",
        a.messages,
        events as f64 / append_secs.max(1e-9)
    );

    // Wait for both projectors: the last event appended is the last applied.
    let hist = open_read_only(&path("history"))?;
    let unr = open_read_only(&path("unreads"))?;
    let acl_db = open_read_only(&path("acl"))?;
    let deadline = Duration::from_secs(a.fold_timeout);
    let (last_chan, last_seq) = (chans[last.0].id.clone(), last.1);
    let (mut hist_secs, mut unr_secs) = (None, None);
    while events > 0 && (hist_secs.is_none() || unr_secs.is_none()) {
        if start.elapsed() > deadline {
            bail!("the projectors had not applied the log within {deadline:?}");
        }
        if hist_secs.is_none() && history::head_seq(&hist, &last_chan)? >= last_seq {
            hist_secs = Some(start.elapsed().as_secs_f64());
        }
        if unr_secs.is_none() && unreads::head_seq(&unr, &last_chan)? >= last_seq {
            unr_secs = Some(start.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rate = |secs: Option<f64>| events as f64 / secs.unwrap_or(0.0).max(1e-9);
    let (unreads_fold_rate, history_fold_rate) = (rate(unr_secs), rate(hist_secs));
    println!(
        "folded {events} events: unreads {unreads_fold_rate:.0} events/s, history {history_fold_rate:.0} events/s (append → applied)"
    );
    // The reads are timed on a server at rest: every other projector
    // (search, notifications, …) has applied the log too, so their folding
    // does not share the two cores with the requests.
    let all_secs = all_projectors_at(&a.url, last_stream_seq, start, deadline).await?;
    println!("every projector had applied the log {all_secs:.1}s after the first append");

    // The reader reads 90% of what was appended in each channel.
    let marks: Vec<(String, u64)> = chans
        .iter()
        .zip(&heads)
        .map(|(c, (head, _))| (c.id.clone(), c.base_seq + (head - c.base_seq) * 9 / 10))
        .collect();
    stream::iter(marks)
        .map(|(c, seq)| {
            let (http, base, reader) = (&http, &base, &reader);
            async move {
                post(
                    http,
                    &format!("{base}/v1/channels/{c}/read"),
                    reader,
                    json!({"seq": seq}),
                )
                .await
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect::<Vec<Value>>()
        .await?;

    // Reads.
    let want_threads = followed.len();
    let http = client::http(4)?;
    let url = format!("{base}/v1/unreads");
    let mut runs = Vec::new();
    for run in 1..=a.runs.max(1) {
        let (mut h, mut s, mut r, mut errors) = (Vec::new(), Vec::new(), Vec::new(), 0u64);
        for _ in 0..a.samples {
            let t = Instant::now();
            let channels = acl::channels_of(&acl_db, &reader_id)?;
            let summary = unreads::unreads(&unr, &reader_id, &channels)?;
            r.push(t.elapsed());
            if summary.channels.len() != n_chans || summary.threads.len() != want_threads {
                eprintln!(
                    "the read model lists {} channels and {} threads, not {n_chans} and {want_threads}",
                    summary.channels.len(),
                    summary.threads.len()
                );
                errors += 1;
            }
            let t = Instant::now();
            let ok = match http.get(&url).bearer_auth(&reader).send().await {
                Ok(resp) if resp.status().is_success() => {
                    if let Some(d) = server_duration(resp.headers()) {
                        s.push(d);
                    }
                    match resp.bytes().await {
                        Ok(b) => {
                            h.push(t.elapsed());
                            let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
                            v["channels"].as_array().map(Vec::len) == Some(n_chans)
                                && v["threads"].as_array().map(Vec::len) == Some(want_threads)
                        }
                        Err(_) => false,
                    }
                }
                _ => false,
            };
            if !ok {
                errors += 1;
            }
        }
        let r = UnreadsRun {
            events,
            unreads_fold_rate: (run == 1).then_some(unreads_fold_rate),
            history_fold_rate: (run == 1).then_some(history_fold_rate),
            channels: n_chans,
            threads: want_threads,
            http: LatencySummary::of(h),
            server: LatencySummary::of(s),
            raw: LatencySummary::of(r),
            errors,
        };
        println!(
            "run {run} (client on 127.0.0.1, one request at a time; {} channels, {} threads):",
            r.channels, r.threads
        );
        println!(
            "  GET /v1/unreads HTTP   {}  errors {}",
            r.http.line(),
            r.errors
        );
        println!("  server-side            {}", r.server.line());
        println!("  unreads SQLite         {}", r.raw.line());
        runs.push(r);
    }
    let runs = Runs { runs };
    runs.print_summary();
    Ok(runs)
}

/// The server's own time for a request, from `Server-Timing: app;dur=<ms>`.
fn server_duration(headers: &reqwest::header::HeaderMap) -> Option<std::time::Duration> {
    let v = headers.get("server-timing")?.to_str().ok()?;
    let ms: f64 = v
        .split(';')
        .find_map(|p| p.trim().strip_prefix("dur="))?
        .parse()
        .ok()?;
    std::time::Duration::try_from_secs_f64(ms / 1000.0).ok()
}

/// Waits until `/readyz` shows every projector at `seq` or beyond; the
/// seconds since `start` when it did.
async fn all_projectors_at(
    base: &str,
    seq: u64,
    start: Instant,
    deadline: Duration,
) -> Result<f64> {
    let http = client::http(1)?;
    loop {
        if start.elapsed() > deadline {
            bail!("the projectors had not all applied the log within {deadline:?}");
        }
        let body: Value = match http.get(format!("{base}/readyz")).send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        // Ready: `{"projectors": …}`; not ready: `{"status": {"projectors": …}}`.
        let projectors = body
            .get("projectors")
            .or_else(|| body.pointer("/status/projectors"))
            .and_then(Value::as_object);
        if let Some(p) = projectors {
            if !p.is_empty() && p.values().all(|v| v.as_u64().is_some_and(|s| s >= seq)) {
                return Ok(start.elapsed().as_secs_f64());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
