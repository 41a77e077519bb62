//! `switchboard-bench push`: post → webhook delivery latency. Open-loop
//! posts at `--rate` over `--channels` channels; every `1/--mention-every`
//! of them mentions a user who is not connected, so each of those is a
//! notification the server must POST to the workspace's webhook — a
//! receiver in this process on 127.0.0.1. Latency runs from each post's
//! *scheduled* time to the receiver getting its webhook (first attempt;
//! the receiver answers 200 at once).
//!
//! The server must allow loopback webhooks (`serve
//! --webhook-allow-private`). Every expected delivery is waited for
//! (bounded) and the count printed next to the percentiles.

use crate::client::{self, post_message};
use crate::schedule::{open_loop, Schedule};
use crate::stats::{Figure, Figures, LatencySummary, Runs};
use anyhow::{bail, Context, Result};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use clap::Parser;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser, Debug, Clone)]
pub struct PushArgs {
    /// Base URL of the running server (loopback only; started with
    /// `--webhook-allow-private`).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Operator token of that server.
    #[arg(long, env = "SWITCHBOARD_ADMIN_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Posts per second (open loop).
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// One post in this many mentions the (offline) target: 20 = 5%.
    #[arg(long, default_value_t = 20)]
    pub mention_every: u64,
    /// Channels the posts are spread over.
    #[arg(long, default_value_t = 16)]
    pub channels: usize,
    /// Seconds of posting per run.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// How long to wait for the last webhooks after posting stops.
    #[arg(long, default_value_t = 30.0)]
    pub drain: f64,
    /// Repetitions; each is printed, then the median of each figure.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

/// One run of `push`.
#[derive(Debug, Clone)]
pub struct PushRun {
    pub rate: f64,
    pub posted: u64,
    pub post_errors: u64,
    /// Mentions among the accepted posts: the webhooks owed.
    pub expected: u64,
    /// Webhooks received for them (first attempt each).
    pub latency: LatencySummary,
    pub post_latency: LatencySummary,
    pub secs: f64,
}

impl Figures for PushRun {
    fn figures(&self) -> Vec<Figure> {
        vec![
            Figure::new(
                "posts accepted",
                self.posted as f64 / self.secs.max(1e-9),
                "msgs/s",
            ),
            Figure::new(
                "webhooks received / owed",
                self.latency.samples as f64 / self.expected.max(1) as f64,
                "ratio",
            ),
            Figure::new("post→webhook p50", crate::stats::ms(self.latency.p50), "ms"),
            Figure::new("post→webhook p99", crate::stats::ms(self.latency.p99), "ms"),
            Figure::new("post→webhook max", crate::stats::ms(self.latency.max), "ms"),
            Figure::new(
                "POST p99 (same run)",
                crate::stats::ms(self.post_latency.p99),
                "ms",
            ),
        ]
    }
}

/// What the receiver saw: the first arrival of each tagged post.
#[derive(Default)]
struct Seen {
    first: HashMap<u64, Instant>,
    requests: u64,
}

async fn hook(State(seen): State<Arc<Mutex<Seen>>>, body: String) -> StatusCode {
    let at = Instant::now();
    let n = serde_json::from_str::<Value>(&body).ok().and_then(|v| {
        v["text"]
            .as_str()
            .and_then(|t| t.split_whitespace().find_map(|w| w.strip_prefix("#n")))
            .and_then(|n| n.parse::<u64>().ok())
    });
    let mut s = seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    s.requests += 1;
    if let Some(n) = n {
        s.first.entry(n).or_insert(at);
    }
    StatusCode::OK
}

pub async fn run(a: PushArgs) -> Result<Runs<PushRun>> {
    client::require_loopback(&a.url)?;
    let http = client::http(512)?;
    let base = a.url.trim_end_matches('/').to_string();
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the webhook receiver")?;
    let hook_url = format!("http://{}/hook", listener.local_addr()?);
    let app = axum::Router::new()
        .route("/hook", post(hook))
        .with_state(seen.clone());
    let receiver = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut runs = Vec::new();
    for i in 1..=a.runs.max(1) {
        println!("run {i}:");
        // A fresh workspace per run: its own webhook, target and channels.
        let ws = client::fresh_workspace(&http, &base, &a.token, "push").await?;
        let sender = client::user(&http, &base, &a.token, &ws, "sender", "admin").await?;
        let target = client::user(&http, &base, &a.token, &ws, "target", "member").await?;
        let mut channels = Vec::new();
        for c in 0..a.channels.max(1) {
            let ch = client::channel(&http, &base, &sender, &format!("push-{c}")).await?;
            client::post(
                &http,
                &format!("{base}/v1/channels/{ch}/join"),
                &target,
                json!({}),
            )
            .await?;
            channels.push(ch);
        }
        let r = http
            .put(format!("{base}/v1/admin/push"))
            .bearer_auth(&sender)
            .json(&json!({"url": hook_url}))
            .send()
            .await
            .context("PUT /v1/admin/push")?;
        if !r.status().is_success() {
            let body = r.text().await.unwrap_or_default();
            bail!("setting the webhook: {body} (is serve running with --webhook-allow-private?)");
        }
        {
            let mut s = seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *s = Seen::default();
        }
        let every = a.mention_every.max(1);
        let schedule = Schedule::new(
            Instant::now(),
            a.rate,
            Duration::from_secs_f64(a.duration.max(0.0)),
        );
        let url = format!("{base}/v1/messages");
        let accepted_mentions: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
        let out = open_loop(schedule, 4096, |n, due| {
            let (http, url, token) = (http.clone(), url.clone(), sender.clone());
            let ch = channels[n as usize % channels.len()].clone();
            let mentions = accepted_mentions.clone();
            async move {
                let mention = n % every == 0;
                let text = if mention {
                    format!("@target look #n{n}")
                } else {
                    format!("bench message #n{n}")
                };
                let ok = post_message(&http, &url, &token, json!({"channel_id": ch, "text": text}))
                    .await;
                if ok && mention {
                    mentions
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(n, due);
                }
                ok
            }
        })
        .await?;
        let owed = accepted_mentions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        // Wait (bounded) for every owed webhook.
        let deadline = Instant::now() + Duration::from_secs_f64(a.drain.max(0.0));
        loop {
            let got = {
                let s = seen
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                owed.keys().filter(|n| s.first.contains_key(n)).count()
            };
            if got == owed.len() || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (latencies, requests) = {
            let s = seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let l: Vec<Duration> = owed
                .iter()
                .filter_map(|(n, due)| s.first.get(n).map(|at| at.saturating_duration_since(*due)))
                .collect();
            (l, s.requests)
        };
        let run = PushRun {
            rate: a.rate,
            posted: out.latencies.len() as u64,
            post_errors: out.errors,
            expected: owed.len() as u64,
            latency: LatencySummary::of(latencies),
            post_latency: LatencySummary::of(out.latencies),
            secs: out.send_secs,
        };
        println!(
            "  {} posts accepted of {} scheduled at {:.0}/s ({} errors), {} mentioned the offline target",
            run.posted, out.scheduled, run.rate, run.post_errors, run.expected
        );
        println!(
            "  post→webhook {} of {} owed ({} requests received)",
            run.latency.line(),
            run.expected,
            requests
        );
        println!("  POST latency {}", run.post_latency.line());
        runs.push(run);
    }
    receiver.abort();
    let runs = Runs { runs };
    runs.print_summary();
    Ok(runs)
}
