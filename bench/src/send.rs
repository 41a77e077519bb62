//! `switchboard-bench send`: POST /v1/messages against a running server,
//! then the raw JetStream publish rate with the same scheme
//! (expected-last-subject-sequence on one subject per channel, pipelined)
//! in the same run, and the ratio.
//!
//! Without `--rate` the HTTP phase is closed loop (`--concurrency` clients,
//! each sending when its last answer came): a throughput figure, whose
//! latencies are only those of the requests the clients got to send. With
//! `--rate` it is open loop (see `schedule`): latency counts from each
//! send's scheduled time and the sender's backlog is reported.

use crate::client::{self, post_message};
use crate::schedule::{open_loop, Schedule};
use crate::stats::{Figure, Figures, LatencySummary, Runs};
use crate::NatsTarget;
use anyhow::{Context, Result};
use async_nats::jetstream::{self, context::PublishAckFuture};
use clap::Parser;
use serde_json::json;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug, Clone)]
pub struct SendArgs {
    /// Base URL of the running server (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Operator token of that server.
    #[arg(long, env = "SWITCHBOARD_ADMIN_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Concurrent HTTP clients (closed loop).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Channels the load is spread over.
    #[arg(long, default_value_t = 16)]
    pub channels: usize,
    /// Seconds per phase.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Open-loop rate in msgs/s for the HTTP phase (closed loop when absent).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Open loop: most requests in flight; a send due while all are busy
    /// starts late and shows as backlog.
    #[arg(long, default_value_t = 4096)]
    pub max_in_flight: usize,
    /// Skip the raw JetStream phase.
    #[arg(long)]
    pub no_raw: bool,
    /// Repetitions; each is printed, then the median of each figure.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    #[command(flatten)]
    pub nats: NatsTarget,
}

/// One run of `send`.
#[derive(Debug, Clone)]
pub struct SendRun {
    /// The open-loop target rate (`None`: closed loop).
    pub target_rate: Option<f64>,
    /// Open loop: the sends the schedule held.
    pub scheduled: Option<u64>,
    pub accepted: u64,
    pub errors: u64,
    pub secs: f64,
    pub latency: LatencySummary,
    /// Open loop: how late sends started against the schedule.
    pub backlog: Option<LatencySummary>,
    /// Raw JetStream publishes per second, same run.
    pub raw_rate: Option<f64>,
}

impl SendRun {
    pub fn rate(&self) -> f64 {
        self.accepted as f64 / self.secs.max(1e-9)
    }
}

impl Figures for SendRun {
    fn figures(&self) -> Vec<Figure> {
        let mut f = vec![
            Figure::new("POST accepted", self.rate(), "msgs/s"),
            Figure::new("POST p50", crate::stats::ms(self.latency.p50), "ms"),
            Figure::new("POST p99", crate::stats::ms(self.latency.p99), "ms"),
            Figure::new("POST max", crate::stats::ms(self.latency.max), "ms"),
        ];
        if let Some(b) = &self.backlog {
            f.push(Figure::new(
                "sender backlog max",
                crate::stats::ms(b.max),
                "ms",
            ));
        }
        if let Some(raw) = self.raw_rate {
            f.push(Figure::new("raw JetStream publish", raw, "msgs/s"));
            f.push(Figure::new("ratio POST/raw", self.rate() / raw, "ratio"));
        }
        f
    }
}

pub async fn run(a: SendArgs) -> Result<Runs<SendRun>> {
    client::require_loopback(&a.url)?;
    let http = client::http(a.concurrency.max(64) * 2)?;
    let base = a.url.trim_end_matches('/').to_string();
    let ws = client::fresh_workspace(&http, &base, &a.token, "bench").await?;
    let token = client::user(&http, &base, &a.token, &ws, "bench", "admin").await?;
    let mut channels = Vec::new();
    for i in 0..a.channels.max(1) {
        channels.push(client::channel(&http, &base, &token, &format!("bench-{i}")).await?);
    }
    let (nats_url, _scratch) = if a.no_raw {
        (String::new(), None)
    } else {
        crate::nats::resolve(a.nats.nats.as_deref(), &a.nats.data).await?
    };
    let duration = Duration::from_secs_f64(a.duration.max(0.0));
    let mut runs = Vec::new();
    for i in 1..=a.runs.max(1) {
        println!("run {i}:");
        let mut r = match a.rate {
            None => closed_loop(&http, &base, &token, &channels, a.concurrency, duration).await,
            Some(rate) => {
                let s = Schedule::new(Instant::now(), rate, duration);
                let url = format!("{base}/v1/messages");
                let out = open_loop(s, a.max_in_flight, |n, _| {
                    let (http, url, token) = (http.clone(), url.clone(), token.clone());
                    let ch = channels[n as usize % channels.len()].clone();
                    async move {
                        let body = json!({"channel_id": ch, "text": format!("bench message {n}")});
                        post_message(&http, &url, &token, body).await
                    }
                })
                .await?;
                SendRun {
                    target_rate: Some(rate),
                    scheduled: Some(out.scheduled),
                    accepted: out.latencies.len() as u64,
                    errors: out.errors,
                    secs: out.send_secs,
                    latency: LatencySummary::of(out.latencies),
                    backlog: Some(out.backlog),
                    raw_rate: None,
                }
            }
        };
        print_http(&r, a.concurrency, channels.len());
        if !a.no_raw {
            let raw = raw_publish(&nats_url, channels.len(), duration).await?;
            println!(
                "  raw JetStream publish (expected-last-subject-seq, {} subjects, 512 in flight): {raw:.0} msgs/s",
                channels.len()
            );
            println!("  ratio POST/raw = {:.3}", r.rate() / raw);
            r.raw_rate = Some(raw);
        }
        runs.push(r);
    }
    let runs = Runs { runs };
    runs.print_summary();
    Ok(runs)
}

fn print_http(r: &SendRun, concurrency: usize, channels: usize) {
    let mode = match (r.target_rate, r.scheduled) {
        (Some(rate), Some(n)) => format!("open loop, {n} scheduled at {rate:.0}/s"),
        _ => format!("closed loop, {concurrency} clients"),
    };
    println!(
        "  POST /v1/messages: {} accepted in {:.1}s = {:.0} msgs/s ({mode}, {channels} channels), errors {}",
        r.accepted,
        r.secs,
        r.rate(),
        r.errors
    );
    println!("  latency {} of {} accepted", r.latency.line(), r.accepted);
    if let Some(b) = &r.backlog {
        println!(
            "  sender behind schedule: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            crate::stats::ms(b.p50),
            crate::stats::ms(b.p99),
            crate::stats::ms(b.max)
        );
    }
}

/// `concurrency` clients, each posting as soon as its last answer came,
/// for `duration`; every request started is joined and counted.
async fn closed_loop(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    channels: &[String],
    concurrency: usize,
    duration: Duration,
) -> SendRun {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let url = format!("{base}/v1/messages");
    let mut tasks = Vec::new();
    for w in 0..concurrency.max(1) {
        let (http, token, stop, url) = (http.clone(), token.to_string(), stop.clone(), url.clone());
        let channel = channels[w % channels.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) {
                k += 1;
                let t = Instant::now();
                let body = json!({"channel_id": channel, "text": format!("bench message {w}-{k}")});
                if post_message(&http, &url, &token, body).await {
                    lat.push(t.elapsed());
                } else {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        match t.await {
            Ok((l, e)) => {
                lat.extend(l);
                errors += e;
            }
            Err(_) => errors += 1,
        }
    }
    SendRun {
        target_rate: None,
        scheduled: None,
        accepted: lat.len() as u64,
        errors,
        secs: start.elapsed().as_secs_f64(),
        latency: LatencySummary::of(lat),
        backlog: None,
        raw_rate: None,
    }
}

/// Publishes to `channels` subjects of a scratch stream as fast as the
/// stream acknowledges, each publish conditional on the subject's last
/// stream sequence (predicted: this is the stream's only writer), with up
/// to 512 publishes in flight. Returns acknowledged publishes per second.
pub async fn raw_publish(nats_url: &str, channels: usize, duration: Duration) -> Result<f64> {
    let client = crate::nats::connect(nats_url).await.with_context(|| {
        format!(
            "connecting to NATS at {}",
            switchboard_streams::split_userinfo(nats_url).0
        )
    })?;
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
    let channels = channels.max(1);
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
        let msg = jetstream::message::PublishMessage::build()
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
