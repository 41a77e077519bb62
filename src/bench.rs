//! `switchboard bench`: measurements, not tests. Each reports a ratio
//! against a baseline measured in the same run on the same machine.
//!
//! - `bench send`: POST /v1/messages against a running server (accepted
//!   msgs/s, latency p50/p99/max), then the raw JetStream publish rate with
//!   the same scheme (expected-last-subject-sequence on M channel subjects,
//!   pipelined), and the ratio.
//! - `bench rebuild`: the history projection's rebuild rate from the log vs
//!   a raw SQLite batched insert of the same rows.

use crate::Common;
use anyhow::{bail, Context, Result};
use async_nats::jetstream::{self, context::PublishAckFuture};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Subcommand)]
pub enum Bench {
    /// POST /v1/messages throughput and latency vs raw JetStream publishes.
    Send(SendArgs),
    /// History projection rebuild rate vs raw SQLite inserts.
    Rebuild(RebuildArgs),
    /// Real-time fan-out: send→receive latency, deliveries/s, server RSS
    /// per connection (`--rate 0`: idle connections only).
    Fanout(crate::fanout::FanoutArgs),
}

#[derive(Args)]
pub struct SendArgs {
    #[command(flatten)]
    common: Common,
    /// Base URL of the running server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Operator token of that server.
    #[arg(long, env = "SWITCHBOARD_ADMIN_TOKEN", hide_env_values = true)]
    token: String,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Channels the load is spread over.
    #[arg(long, default_value_t = 16)]
    channels: usize,
    /// Seconds per phase.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Open-loop target rate in msgs/s for the HTTP phase (closed loop,
    /// as fast as possible, when absent).
    #[arg(long)]
    rate: Option<f64>,
    /// Skip the raw JetStream phase.
    #[arg(long)]
    no_raw: bool,
}

#[derive(Args)]
pub struct RebuildArgs {
    /// Message events to generate.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Channels they are spread over.
    #[arg(long, default_value_t = 50)]
    channels: u64,
}

pub async fn run(b: Bench) -> Result<()> {
    match b {
        Bench::Send(a) => send(a).await,
        Bench::Rebuild(a) => rebuild(a).await,
        Bench::Fanout(a) => crate::fanout::run(a).await,
    }
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Creates a workspace named `<prefix>-<ms>` with the operator token.
pub async fn fresh_workspace(
    http: &reqwest::Client,
    base: &str,
    operator: &str,
    prefix: &str,
) -> Result<String> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let ws = post(
        http,
        &format!("{base}/v1/workspaces"),
        operator,
        json!({"name": format!("{prefix}-{stamp}")}),
    )
    .await?;
    Ok(ws["id"].as_str().context("workspace id")?.to_string())
}

pub async fn post(http: &reqwest::Client, url: &str, token: &str, body: Value) -> Result<Value> {
    let r = http.post(url).bearer_auth(token).json(&body).send().await?;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{url}: {status} {v}");
    }
    Ok(v)
}

async fn send(a: SendArgs) -> Result<()> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(a.concurrency * 2)
        .build()?;
    let base = a.url.trim_end_matches('/').to_string();
    let ws_id = &fresh_workspace(&http, &base, &a.token, "bench")
        .await
        .context(
            "creating the bench workspace (is the server running, and the operator token right?)",
        )?;
    let user = post(
        &http,
        &format!("{base}/v1/workspaces/{ws_id}/users"),
        &a.token,
        json!({"handle": "bench", "display_name": "Bench", "role": "admin"}),
    )
    .await?;
    let token = user["token"].as_str().context("token")?.to_string();
    let mut channels = Vec::new();
    for i in 0..a.channels.max(1) {
        let c = post(
            &http,
            &format!("{base}/v1/channels"),
            &token,
            json!({"name": format!("bench-{i}")}),
        )
        .await?;
        channels.push(c["id"].as_str().context("channel id")?.to_string());
    }

    // HTTP phase.
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut tasks = Vec::new();
    let interval = a
        .rate
        .map(|r| Duration::from_secs_f64(a.concurrency as f64 / r.max(1.0)));
    for w in 0..a.concurrency {
        let (http, token, stop) = (http.clone(), token.clone(), stop.clone());
        let url = format!("{base}/v1/messages");
        let channel = channels[w % channels.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut k = 0u32;
            // Spread open-loop workers' phases over one interval.
            let phase = interval.map(|i| i.mul_f64(w as f64 / a.concurrency as f64));
            while !stop.load(Ordering::Relaxed) {
                if let (Some(i), Some(p)) = (interval, phase) {
                    let due = start + p + i * k;
                    tokio::time::sleep_until(due.into()).await;
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                }
                k += 1;
                let t = Instant::now();
                let body = json!({"channel_id": channel, "text": format!("bench message {w}-{k}")});
                match http.post(&url).bearer_auth(&token).json(&body).send().await {
                    Ok(r) if r.status().as_u16() == 201 => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed());
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    tokio::time::sleep(Duration::from_secs(a.duration)).await;
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        lat.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    lat.sort();
    let http_rate = lat.len() as f64 / elapsed;
    println!(
        "POST /v1/messages: {} accepted in {:.1}s = {:.0} msgs/s (concurrency {}, channels {}, {}), errors {}",
        lat.len(),
        elapsed,
        http_rate,
        a.concurrency,
        channels.len(),
        a.rate.map_or("closed loop".to_string(), |r| format!("target {r:.0}/s")),
        errors
    );
    println!(
        "  latency p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        ms(percentile(&lat, 0.50)),
        ms(percentile(&lat, 0.99)),
        ms(percentile(&lat, 1.0))
    );
    if a.no_raw {
        return Ok(());
    }
    let (log, _local) = a.common.open_log(true).await?;
    let raw = raw_publish(
        log.client().clone(),
        a.channels.max(1),
        Duration::from_secs(a.duration),
    )
    .await?;
    println!(
        "raw JetStream publish (expected-last-subject-seq, {} subjects, pipelined): {:.0} msgs/s",
        a.channels.max(1),
        raw
    );
    println!("ratio POST/raw = {:.3}", http_rate / raw);
    Ok(())
}

/// Publishes to `channels` subjects of a scratch stream as fast as the
/// stream acknowledges, each publish conditional on the subject's last
/// stream sequence (predicted: this is the stream's only writer), with up
/// to 512 publishes in flight.
async fn raw_publish(
    client: async_nats::Client,
    channels: usize,
    duration: Duration,
) -> Result<f64> {
    let js = jetstream::new(client);
    let name = "SBBENCH_RAW";
    let _ = js.delete_stream(name).await;
    js.create_stream(jetstream::stream::Config {
        name: name.to_string(),
        subjects: vec!["sbbench.>".to_string()],
        storage: jetstream::stream::StorageType::File,
        duplicate_window: Duration::from_secs(120),
        allow_direct: true,
        ..Default::default()
    })
    .await
    .context("creating the scratch stream")?;
    let subjects: Vec<String> = (0..channels)
        .map(|i| format!("sbbench.ws.ch.c{i}"))
        .collect();
    let mut last_on_subject = vec![0u64; channels];
    let mut next_stream_seq = 1u64;
    let mut inflight: VecDeque<PublishAckFuture> = VecDeque::new();
    let payload = bytes::Bytes::from(vec![b'x'; 160]);
    let start = Instant::now();
    let mut acked = 0u64;
    let mut i = 0usize;
    while start.elapsed() < duration {
        let s = i % channels;
        i += 1;
        let msg = async_nats::jetstream::message::PublishMessage::build()
            .payload(payload.clone())
            .message_id(format!("raw-{next_stream_seq}"))
            .expected_last_subject_sequence(last_on_subject[s]);
        inflight.push_back(js.send_publish(subjects[s].clone(), msg).await?);
        last_on_subject[s] = next_stream_seq;
        next_stream_seq += 1;
        if inflight.len() >= 512 {
            if let Some(f) = inflight.pop_front() {
                f.await.context("raw publish")?;
                acked += 1;
            }
        }
    }
    while let Some(f) = inflight.pop_front() {
        f.await.context("raw publish")?;
        acked += 1;
    }
    let rate = acked as f64 / start.elapsed().as_secs_f64();
    let _ = js.delete_stream(name).await;
    Ok(rate)
}

async fn rebuild(a: RebuildArgs) -> Result<()> {
    use prost::Message as _;
    use switchboard_core::events::{envelope::Body, Envelope, MessagePosted};
    use switchboard_projections::history::History;
    use switchboard_projections::Projector;

    let dir = tempfile_dir()?;
    let local = crate::nats::LocalNats::start(&dir).await?;
    let nats = switchboard_streams::connect(&local.url).await?;
    let js = jetstream::new(nats.client.clone());
    let log =
        switchboard_streams::Log::open(nats, switchboard_streams::LogConfig::default()).await?;

    // Generate the log: `events` message events over `channels` channels,
    // published pipelined (the append path's conditional publish is
    // measured by `bench send`; here only the replay side matters).
    let mut envs = Vec::with_capacity(a.events as usize);
    let mut seqs = vec![0u64; a.channels as usize];
    for i in 0..a.events {
        let c = (i % a.channels) as usize;
        seqs[c] += 1;
        envs.push((
            format!("sb.Wbench.ch.C{c}"),
            Envelope {
                event_id: format!("E{i}"),
                workspace_id: "Wbench".into(),
                channel_id: format!("C{c}"),
                actor_id: "Ubench".into(),
                ts_ms: 1_700_000_000_000 + i as i64,
                channel_seq: seqs[c],
                fence_seq: 0,
                body: Some(Body::MessagePosted(MessagePosted {
                    message_id: format!("M{i}"),
                    text: format!(
                        "benchmark message number {i} with some typical chat length text"
                    ),
                    ..Default::default()
                })),
            },
        ));
    }
    let gen = Instant::now();
    let mut inflight = VecDeque::new();
    for (subject, env) in &envs {
        inflight.push_back(
            js.publish(subject.clone(), env.encode_to_vec().into())
                .await?,
        );
        if inflight.len() >= 1024 {
            if let Some(f) = inflight.pop_front() {
                f.await?;
            }
        }
    }
    while let Some(f) = inflight.pop_front() {
        f.await?;
    }
    let head = log.last_seq().await?;
    println!(
        "generated {} events in {:.2}s",
        head,
        gen.elapsed().as_secs_f64()
    );

    // Projection rebuild from the log.
    let out = dir.join("rebuilt");
    std::fs::create_dir_all(&out)?;
    let t = Instant::now();
    let r = switchboard_projections::rebuild::<History>(&log, &out.join("history.db"), head)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let rebuild_secs = t.elapsed().as_secs_f64();
    let rebuild_rate = r.events as f64 / rebuild_secs;

    // Raw SQLite: the same rows (events + messages), batched inserts of
    // 2,000 per transaction, same schema and pragmas.
    let raw_path = dir.join("raw.db");
    let mut conn = switchboard_projections::open_writer(&raw_path)?;
    History::migrate(&conn)?;
    let t = Instant::now();
    for chunk in envs.chunks(2_000) {
        let tx = conn.transaction()?;
        {
            let mut ev = tx.prepare(
                "INSERT INTO events (channel_id, seq, stream_seq, type, ts_ms, actor_id, message_id, body)
                 VALUES (?1, ?2, ?3, 'message_posted', ?4, ?5, ?6, ?7)",
            )?;
            let mut msg = tx.prepare(
                "INSERT INTO messages (id, channel_id, seq, ts_ms, sender_id, text, thread_root_id, client_msg_id, attachment_ids)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, NULL, '[]')",
            )?;
            for (i, (_, env)) in chunk.iter().enumerate() {
                let Some(Body::MessagePosted(b)) = &env.body else {
                    continue;
                };
                let body =
                    json!({"message_id": b.message_id, "text": b.text, "client_msg_id": null,
                                  "thread_root_id": null, "attachment_ids": []})
                    .to_string();
                ev.execute(rusqlite::params![
                    env.channel_id,
                    env.channel_seq as i64,
                    i as i64,
                    env.ts_ms,
                    env.actor_id,
                    b.message_id,
                    body
                ])?;
                msg.execute(rusqlite::params![
                    b.message_id,
                    env.channel_id,
                    env.channel_seq as i64,
                    env.ts_ms,
                    env.actor_id,
                    b.text
                ])?;
            }
        }
        tx.execute(
            "INSERT OR REPLACE INTO checkpoint (projector, seq) VALUES ('raw', 0)",
            [],
        )
        .or_else(|_| Ok::<usize, rusqlite::Error>(0))?;
        tx.commit()?;
    }
    let raw_secs = t.elapsed().as_secs_f64();
    let raw_rate = envs.len() as f64 / raw_secs;
    println!(
        "history rebuild from the log: {} events in {:.2}s = {:.0} events/s (checksum {})",
        r.events,
        rebuild_secs,
        rebuild_rate,
        &r.checksum[..16]
    );
    println!(
        "raw SQLite batched insert of the same rows: {} in {:.2}s = {:.0} rows/s",
        envs.len(),
        raw_secs,
        raw_rate
    );
    println!("ratio rebuild/raw = {:.3}", rebuild_rate / raw_rate);
    local.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("switchboard-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
