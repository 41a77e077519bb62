//! `switchboard-bench history`: history reads over a large folded log.
//!
//! Against a running `switchboard serve`: creates a fresh workspace, a few
//! users and `--channels` channels over HTTP (every user a member), then
//! appends `--messages` posts (every fourth a thread reply, some also sent
//! to the channel), plus reactions and edits, straight into the server's
//! own log (valid envelopes: dense `channel_seq` continuing each channel's
//! head, `fence_seq` moved by every non-post event), round-robin over the
//! channels. The server's history projector folds them; the fold rate is
//! events per second from the first append to the last event applied in
//! `<data>/history.db`.
//!
//! Then, closed loop, one request at a time, a member's
//! `GET /v1/channels/{id}/messages?limit=50` (latest page), the same with
//! `before` near the start of the channel (a deep page) and
//! `GET /v1/messages/{root}/replies`, each followed by the same query run
//! by the projection's own functions (`history::messages`/`replies`) on a
//! read-only connection to the server's read model: the floor. Latencies
//! are the client's on 127.0.0.1 (request to full body). Each run repeats
//! the reads; the log is generated and folded once.

use crate::client::{self, post, str_field};
use crate::stats::{ms, Figure, Figures, LatencySummary, Runs};
use crate::NatsTarget;
use anyhow::{bail, Context, Result};
use async_nats::jetstream;
use clap::Parser;
use futures_util::{stream, StreamExt, TryStreamExt};
use prost::Message as _;
use rusqlite::{Connection, OpenFlags};
use serde_json::{json, Value};
use std::collections::{HashSet, VecDeque};
use std::path::Path;
use std::time::{Duration, Instant};
use switchboard_core::events::{
    envelope::Body, Envelope, MessageEdited, MessagePosted, ReactionAdded,
};
use switchboard_core::ids::{EventId, MessageId};
use switchboard_projections::history::{self, Page};

/// Page size of every read.
const LIMIT: u32 = 50;
/// Setup requests in flight.
const SETUP_CONCURRENCY: usize = 16;
const EMOJI: [&str; 4] = ["+1", "tada", "eyes", "heart"];

#[derive(Parser, Debug, Clone)]
pub struct HistoryArgs {
    /// Base URL of the running server (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Operator token of that server.
    #[arg(long, env = "SWITCHBOARD_ADMIN_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Messages to write (thread replies included; reactions and edits
    /// come on top).
    #[arg(long, default_value_t = 1_000_000)]
    pub messages: u64,
    /// Channels they are spread over (one workspace).
    #[arg(long, default_value_t = 1_000)]
    pub channels: u64,
    /// Users (all members of every channel).
    #[arg(long, default_value_t = 4)]
    pub users: u64,
    /// Reads of each kind per run.
    #[arg(long, default_value_t = 1_000)]
    pub samples: u64,
    /// Repetitions of the reads; each is printed, then the median of each
    /// figure (the log is generated and folded once).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Longest wait for the projector to fold the log, in seconds.
    #[arg(long, default_value_t = 1_800)]
    pub fold_timeout: u64,
    /// The server's nats-server (`--nats`, else the one `serve` started on
    /// `--data`) and data directory (its `history.db` is read).
    #[command(flatten)]
    pub nats: NatsTarget,
}

/// One kind of read: through HTTP and straight from the read model.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadPair {
    pub http: LatencySummary,
    pub raw: LatencySummary,
    /// HTTP reads that failed (not 200, or rows differing from the raw
    /// query's count).
    pub errors: u64,
}

/// One run of `history`.
#[derive(Debug, Clone)]
pub struct HistoryRun {
    /// Messages the read model holds for the bench's channels.
    pub folded_messages: u64,
    /// Events appended (messages, reactions, edits).
    pub events: u64,
    /// First run only: appended events / seconds from the first append
    /// until the projector had applied the last.
    pub fold_rate: Option<f64>,
    pub latest: ReadPair,
    pub deep: ReadPair,
    pub replies: ReadPair,
}

impl Figures for HistoryRun {
    fn figures(&self) -> Vec<Figure> {
        let mut f = Vec::new();
        if let Some(r) = self.fold_rate {
            f.push(Figure::new("history fold, append → applied", r, "events/s"));
        }
        for (name, p) in [
            ("latest page", &self.latest),
            ("deep page", &self.deep),
            ("replies", &self.replies),
        ] {
            f.push(Figure::new(
                format!("{name} HTTP p50"),
                ms(p.http.p50),
                "ms",
            ));
            f.push(Figure::new(
                format!("{name} HTTP p99"),
                ms(p.http.p99),
                "ms",
            ));
            f.push(Figure::new(
                format!("{name} SQLite p50"),
                ms(p.raw.p50),
                "ms",
            ));
            f.push(Figure::new(
                format!("{name} SQLite p99"),
                ms(p.raw.p99),
                "ms",
            ));
        }
        f
    }
}

/// A bench channel: its id, the `channel_seq` before the bench's first
/// event, and its thread roots.
struct Chan {
    id: String,
    base_seq: u64,
    roots: Vec<String>,
}

/// xorshift64*: deterministic choices without a dependency.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

pub(crate) fn id_bytes(nonce: u64, i: u64) -> [u8; 10] {
    let mut b = [0u8; 10];
    b[..2].copy_from_slice(&nonce.to_be_bytes()[6..]);
    b[2..].copy_from_slice(&i.to_be_bytes());
    b
}

pub async fn run(a: HistoryArgs) -> Result<Runs<HistoryRun>> {
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
    let db_path = a.nats.data.join("history.db");
    if !db_path.exists() {
        bail!(
            "{}: no history model (is --data the server's?)",
            db_path.display()
        );
    }

    // Setup over HTTP: a workspace, users, channels, memberships.
    let t = Instant::now();
    let ws = client::fresh_workspace(&http, &base, &a.token, "bench-history").await?;
    let mut users: Vec<(String, String)> = Vec::new();
    for i in 0..a.users.max(1) {
        let role = if i == 0 { "admin" } else { "member" };
        let u = post(
            &http,
            &format!("{base}/v1/workspaces/{ws}/users"),
            &a.token,
            json!({"handle": format!("hist{i}"), "display_name": format!("hist{i}"), "role": role}),
        )
        .await?;
        users.push((
            str_field(&u, "id")?.to_string(),
            str_field(&u, "token")?.to_string(),
        ));
    }
    let owner = users[0].1.clone();
    let ids: Vec<String> = stream::iter(0..a.channels.max(1))
        .map(|c| {
            let (http, base, owner) = (&http, &base, &owner);
            async move { client::channel(http, base, owner, &format!("hist-{c}")).await }
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
            roots: Vec::new(),
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
    let mut heads: Vec<(u64, u64)> = chans.iter().map(|c| (c.base_seq, c.base_seq)).collect();
    let mut posted: Vec<u64> = vec![0; chans.len()];
    let mut last_msg: Vec<Option<(String, String)>> = vec![None; chans.len()];
    let mut root_now: Vec<Option<String>> = vec![None; chans.len()];
    let mut events = 0u64;
    let mut last = (0usize, 0u64);
    let mut inflight = VecDeque::new();
    let ws_ref = &ws;
    let mut envelope =
        |c: usize, chan: &Chan, actor: &str, body: Body, heads: &mut Vec<(u64, u64)>| {
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
                event_id: EventId::generate(nonce + events / 1000, id_bytes(nonce, events))
                    .to_string(),
                workspace_id: ws_ref.clone(),
                channel_id: chan.id.clone(),
                actor_id: actor.to_string(),
                ts_ms: (nonce + events / 1000) as i64,
                channel_seq: seq,
                fence_seq: fence,
                request_id: String::new(),

                prev_digest: Vec::new(),
                body: Some(body),
            }
        };
    let start = Instant::now();
    let n_chans = chans.len();
    for i in 0..a.messages {
        let c = (i % n_chans as u64) as usize;
        let j = posted[c];
        posted[c] += 1;
        let u = (j % users.len() as u64) as usize;
        let mut batch = Vec::new();
        let mid = MessageId::generate(nonce, id_bytes(nonce ^ 0xA5A5, i)).to_string();
        let reply_to = if j % 4 == 3 {
            root_now[c].clone()
        } else {
            None
        };
        let is_root = reply_to.is_none();
        let body = Body::MessagePosted(MessagePosted {
            message_id: mid.clone(),
            text: format!("benchmark message number {j} in this channel, with typical chat length"),
            thread_root_id: reply_to.clone().unwrap_or_default(),
            also_send_to_channel: reply_to.is_some() && j % 40 == 3,
            ..Default::default()
        });
        batch.push(envelope(c, &chans[c], &users[u].0, body, &mut heads));
        if is_root && j % 20 == 0 {
            root_now[c] = Some(mid.clone());
            chans[c].roots.push(mid.clone());
        }
        if j % 7 == 6 {
            if let Some((m, _)) = &last_msg[c] {
                let r = (u + 1) % users.len();
                let body = Body::ReactionAdded(ReactionAdded {
                    message_id: m.clone(),
                    emoji: EMOJI[(j % 4) as usize].to_string(),
                });
                batch.push(envelope(c, &chans[c], &users[r].0, body, &mut heads));
            }
        }
        if j % 50 == 49 {
            let body = Body::MessageEdited(MessageEdited {
                message_id: mid.clone(),
                text: format!("benchmark message number {j}, edited"),
                ..Default::default()
            });
            batch.push(envelope(c, &chans[c], &users[u].0, body, &mut heads));
        }
        last_msg[c] = Some((mid, users[u].0.clone()));
        for env in batch {
            last = (c, env.channel_seq);
            let subject = format!("sb.{ws}.ch.{}", chans[c].id);
            let ack = js.publish(subject, env.encode_to_vec().into()).await?;
            inflight.push_back(ack);
            if inflight.len() >= 1024 {
                if let Some(ack) = inflight.pop_front() {
                    ack.await?;
                }
            }
        }
    }
    while let Some(ack) = inflight.pop_front() {
        ack.await?;
    }
    let append_secs = start.elapsed().as_secs_f64();
    println!(
        "appended {events} events ({} messages) in {append_secs:.1}s = {:.0} events/s",
        a.messages,
        events as f64 / append_secs.max(1e-9)
    );

    // Wait for the projector: the last event appended is the last applied.
    let db = open_read_only(&db_path)?;
    let deadline = Duration::from_secs(a.fold_timeout);
    let (last_chan, last_seq) = (&chans[last.0].id, last.1);
    while events > 0 && history::head_seq(&db, last_chan)? < last_seq {
        if start.elapsed() > deadline {
            bail!("the projector had not applied the log within {deadline:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fold_secs = start.elapsed().as_secs_f64();
    let fold_rate = events as f64 / fold_secs.max(1e-9);
    let ours: HashSet<&str> = chans.iter().map(|c| c.id.as_str()).collect();
    let mut folded_messages = 0u64;
    {
        let mut stmt =
            db.prepare("SELECT channel_id, COUNT(*) FROM messages GROUP BY channel_id")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let ch: String = r.get(0)?;
            if ours.contains(ch.as_str()) {
                folded_messages += r.get::<_, i64>(1)? as u64;
            }
        }
    }
    println!(
        "folded: {folded_messages} messages; {events} events applied {fold_secs:.1}s after the first append = {fold_rate:.0} events/s"
    );
    if folded_messages != a.messages {
        bail!(
            "the read model holds {folded_messages} of the {} messages",
            a.messages
        );
    }

    // Reads.
    let reader = users.get(1).unwrap_or(&users[0]).1.clone();
    let http = client::http(4)?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ nonce);
    let mut runs = Vec::new();
    for run in 1..=a.runs.max(1) {
        let mut latest = Reads::default();
        let mut deep = Reads::default();
        let mut replies = Reads::default();
        for _ in 0..a.samples {
            let ch = &chans[rng.below(chans.len() as u64) as usize];
            let url = format!("{base}/v1/channels/{}/messages?limit={LIMIT}", ch.id);
            let n = latest.raw(|| history::messages(&db, &ch.id, Page::Before(None), LIMIT))?;
            latest.http(&http, &url, &reader, "messages", n).await;

            let before = ch.base_seq + 2 * u64::from(LIMIT) + 1;
            let url = format!(
                "{base}/v1/channels/{}/messages?limit={LIMIT}&before={before}",
                ch.id
            );
            let n =
                deep.raw(|| history::messages(&db, &ch.id, Page::Before(Some(before)), LIMIT))?;
            deep.http(&http, &url, &reader, "messages", n).await;

            if ch.roots.is_empty() {
                continue;
            }
            let root = &ch.roots[rng.below(ch.roots.len() as u64) as usize];
            let url = format!("{base}/v1/messages/{root}/replies?limit={LIMIT}");
            let n = replies.raw(|| history::replies(&db, root, 0, LIMIT))?;
            replies.http(&http, &url, &reader, "messages", n).await;
        }
        let r = HistoryRun {
            folded_messages,
            events,
            fold_rate: (run == 1).then_some(fold_rate),
            latest: latest.summary(),
            deep: deep.summary(),
            replies: replies.summary(),
        };
        println!("run {run} (client on 127.0.0.1, one request at a time, limit {LIMIT}):");
        for (name, p) in [
            ("latest page", &r.latest),
            ("deep page (before near the start)", &r.deep),
            ("thread replies", &r.replies),
        ] {
            println!("  {name}:");
            println!("    HTTP   {}  errors {}", p.http.line(), p.errors);
            println!("    SQLite {}", p.raw.line());
        }
        runs.push(r);
    }
    let runs = Runs { runs };
    runs.print_summary();
    Ok(runs)
}

pub(crate) fn open_read_only(path: &Path) -> Result<Connection> {
    let db = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {} read-only", path.display()))?;
    db.busy_timeout(Duration::from_secs(5))?;
    Ok(db)
}

#[derive(Default)]
struct Reads {
    http: Vec<Duration>,
    raw: Vec<Duration>,
    errors: u64,
}

impl Reads {
    /// Times the projection's own query; the rows it returned.
    fn raw<T>(&mut self, q: impl FnOnce() -> rusqlite::Result<(Vec<T>, bool)>) -> Result<usize> {
        let t = Instant::now();
        let (rows, _) = q()?;
        self.raw.push(t.elapsed());
        Ok(rows.len())
    }

    /// Times a GET to its full body; an error unless 200 with `rows` rows
    /// under `field`.
    async fn http(
        &mut self,
        http: &reqwest::Client,
        url: &str,
        token: &str,
        field: &str,
        rows: usize,
    ) {
        let t = Instant::now();
        let ok = match http.get(url).bearer_auth(token).send().await {
            Ok(r) if r.status().is_success() => match r.bytes().await {
                Ok(b) => {
                    let d = t.elapsed();
                    let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
                    let n = v[field].as_array().map_or(usize::MAX, Vec::len);
                    self.http.push(d);
                    n == rows
                }
                Err(_) => false,
            },
            _ => false,
        };
        if !ok {
            self.errors += 1;
        }
    }

    fn summary(self) -> ReadPair {
        ReadPair {
            http: LatencySummary::of(self.http),
            raw: LatencySummary::of(self.raw),
            errors: self.errors,
        }
    }
}
