//! `switchboard-bench fanout`: real-time delivery under load against a
//! running server. C WebSocket connections follow M channels of K members
//! (connection i is member (i / M) % K of channel i % M); an open-loop
//! sender posts R msgs/s round-robin over the channels, each message
//! stamped with its scheduled time; every connection measures scheduled
//! send → receive. Then the same shape with no Switchboard in the path
//! (`floor`): core NATS and a WebSocket echo. Reports latency with its
//! sample count against the deliveries owed, deliveries/s, the sender's
//! backlog, the ratio to the floors, and (`--rate 0`, or with `--pid`) the
//! server's RSS growth per connection.

use crate::client::{self, post_message};
use crate::fleet::{expected, followers, stamp, Fleet, PathRun};
use crate::floor::{self, Shape};
use crate::schedule::{open_loop, Schedule};
use crate::stats::{ms, Figure, Figures, Runs};
use crate::NatsTarget;
use anyhow::{Context, Result};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser, Debug, Clone)]
pub struct FanoutArgs {
    /// Base URL of the running server (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Operator token of the server.
    #[arg(long, env = "SWITCHBOARD_ADMIN_TOKEN", hide_env_values = true)]
    pub token: String,
    /// WebSocket connections.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Members of each channel.
    #[arg(long, default_value_t = 50)]
    pub channel_size: usize,
    /// Channels (default: connections / channel-size, at least 1).
    #[arg(long)]
    pub channels: Option<usize>,
    /// Messages per second over all channels, open loop (0: idle
    /// connections only, to measure memory).
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Most POSTs in flight; a send due while all are busy starts late.
    #[arg(long, default_value_t = 4096)]
    pub max_in_flight: usize,
    /// After sending, wait for missing deliveries until none arrived for
    /// this many seconds.
    #[arg(long, default_value_t = 2.0)]
    pub quiet: f64,
    /// Skip the core NATS and WebSocket echo floors.
    #[arg(long)]
    pub no_floor: bool,
    /// Server process id for RSS, measured in the first run (default with
    /// `--rate 0`: the `switchboard serve` found in /proc).
    #[arg(long)]
    pub pid: Option<u32>,
    /// Repetitions; each is printed, then the median of each figure.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    #[command(flatten)]
    pub nats: NatsTarget,
}

/// One run of `fanout`.
#[derive(Debug, Clone, Default)]
pub struct FanoutRun {
    pub connections: usize,
    pub channels: usize,
    pub connect_secs: f64,
    pub rss_kib_per_connection: Option<f64>,
    /// Through Switchboard (`None` with `--rate 0`).
    pub switchboard: Option<PathRun>,
    pub nats_floor: Option<PathRun>,
    pub ws_floor: Option<PathRun>,
}

impl Figures for FanoutRun {
    fn figures(&self) -> Vec<Figure> {
        let mut f = Vec::new();
        if let Some(s) = &self.switchboard {
            f.push(Figure::new(
                "deliveries",
                s.deliveries_per_sec(),
                "deliveries/s",
            ));
            f.push(Figure::new(
                "missing deliveries",
                s.expected.saturating_sub(s.delivered) as f64,
                "deliveries",
            ));
            f.push(Figure::new("resyncs", s.resyncs as f64, "frames"));
            f.push(Figure::new("send→receive p50", ms(s.latency.p50), "ms"));
            f.push(Figure::new("send→receive p99", ms(s.latency.p99), "ms"));
            f.push(Figure::new("send→receive max", ms(s.latency.max), "ms"));
            f.push(Figure::new("POST p99", ms(s.send_latency.p99), "ms"));
            f.push(Figure::new("sender backlog max", ms(s.backlog.max), "ms"));
            for (name, floor) in [("NATS", &self.nats_floor), ("WS echo", &self.ws_floor)] {
                let Some(fl) = floor else { continue };
                f.push(Figure::new(
                    format!("{name} floor p50"),
                    ms(fl.latency.p50),
                    "ms",
                ));
                f.push(Figure::new(
                    format!("{name} floor p99"),
                    ms(fl.latency.p99),
                    "ms",
                ));
                f.push(Figure::new(
                    format!("p50 / {name} floor"),
                    ratio(s.latency.p50, fl.latency.p50),
                    "ratio",
                ));
                f.push(Figure::new(
                    format!("p99 / {name} floor"),
                    ratio(s.latency.p99, fl.latency.p99),
                    "ratio",
                ));
            }
        }
        if let Some(kib) = self.rss_kib_per_connection {
            f.push(Figure::new("server RSS per connection", kib, "KiB"));
        }
        f
    }
}

fn ratio(a: Duration, b: Duration) -> f64 {
    if b.is_zero() {
        f64::NAN
    } else {
        a.as_secs_f64() / b.as_secs_f64()
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A `switchboard serve` process on this machine (argv[0] named
/// `switchboard`, an argument `serve`).
fn find_server() -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let mut args = cmd.split(|b| *b == 0);
        let exe = String::from_utf8_lossy(args.next()?).into_owned();
        let is_server =
            (exe == "switchboard" || exe.ends_with("/switchboard")) && args.any(|a| a == b"serve");
        is_server.then_some(pid)
    })
}

/// The workspace the runs share: K users, each a member of all M channels.
struct Setup {
    tokens: Vec<String>,
    channels: Vec<String>,
}

async fn setup(
    http: &reqwest::Client,
    base: &str,
    operator: &str,
    m: usize,
    k: usize,
) -> Result<Setup> {
    let ws = client::fresh_workspace(http, base, operator, "fanout").await?;
    let mut tokens = Vec::with_capacity(k);
    for i in 0..k {
        tokens.push(client::user(http, base, operator, &ws, &format!("u{i}"), "member").await?);
    }
    let mut channels = Vec::with_capacity(m);
    for c in 0..m {
        channels.push(client::channel(http, base, &tokens[0], &format!("fan-{c}")).await?);
    }
    let joins: Vec<_> = channels
        .iter()
        .cloned()
        .map(|ch| {
            let (http, base, tokens) = (http.clone(), base.to_string(), tokens.clone());
            tokio::spawn(async move {
                for t in tokens.iter().skip(1) {
                    client::post(
                        &http,
                        &format!("{base}/v1/channels/{ch}/join"),
                        t,
                        json!({}),
                    )
                    .await?;
                }
                Ok::<_, anyhow::Error>(())
            })
        })
        .collect();
    for j in joins {
        j.await.context("join task")??;
    }
    Ok(Setup { tokens, channels })
}

pub async fn run(a: FanoutArgs) -> Result<Runs<FanoutRun>> {
    client::require_loopback(&a.url)?;
    let http = client::http(256)?;
    let base = a.url.trim_end_matches('/').to_string();
    let m = a
        .channels
        .unwrap_or(a.connections / a.channel_size.max(1))
        .max(1);
    let k = a.channel_size.max(1);
    let pid = a
        .pid
        .or_else(|| (a.rate <= 0.0).then(find_server).flatten());
    let t = Instant::now();
    let s = setup(&http, &base, &a.token, m, k).await?;
    println!(
        "setup: {k} users, {m} channels of {k} members, in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let floors = a.rate > 0.0 && !a.no_floor;
    let (nats_url, _scratch) = if floors {
        let (u, s) = crate::nats::resolve(a.nats.nats.as_deref(), &a.nats.data).await?;
        (Some(u), s)
    } else {
        (None, None)
    };
    let shape = Shape {
        connections: a.connections,
        groups: m,
        rate: a.rate,
        duration: Duration::from_secs_f64(a.duration.max(0.0)),
        max_in_flight: a.max_in_flight,
        quiet: Duration::from_secs_f64(a.quiet.max(0.1)),
    };
    let mut runs = Vec::new();
    for i in 1..=a.runs.max(1) {
        println!("run {i}:");
        // RSS is measured in the first run only: the server keeps the
        // memory a run's closed connections freed and reuses it for the
        // next run's, so later runs would show almost no growth.
        let rss_pid = if i == 1 { pid } else { None };
        if i > 1 && pid.is_some() {
            println!("  (server RSS: first run only)");
        }
        let mut r = one_run(&a, &http, &base, &s, shape, rss_pid).await?;
        if let Some(url) = &nats_url {
            let n = floor::nats(url, shape).await?;
            println!(
                "  floor, core NATS ({} subscribers): {}",
                a.connections,
                n.latency_line()
            );
            r.nats_floor = Some(n);
            let w = floor::websocket(shape).await?;
            println!(
                "  floor, WebSocket echo (tokio-tungstenite, in-process server): {}",
                w.latency_line()
            );
            r.ws_floor = Some(w);
            print_ratios(&r);
        }
        runs.push(r);
    }
    let runs = Runs { runs };
    runs.print_summary();
    Ok(runs)
}

fn print_ratios(r: &FanoutRun) {
    let Some(s) = &r.switchboard else { return };
    for (name, floor) in [
        ("core NATS", &r.nats_floor),
        ("WebSocket echo", &r.ws_floor),
    ] {
        if let Some(f) = floor {
            println!(
                "  Switchboard / {name}: p50 {:.2} / {:.2} ms = {:.1}×, p99 {:.2} / {:.2} ms = {:.1}×",
                ms(s.latency.p50),
                ms(f.latency.p50),
                ratio(s.latency.p50, f.latency.p50),
                ms(s.latency.p99),
                ms(f.latency.p99),
                ratio(s.latency.p99, f.latency.p99),
            );
        }
    }
}

/// Connects the fleet, sends (unless `--rate 0`), drains and joins.
async fn one_run(
    a: &FanoutArgs,
    http: &reqwest::Client,
    base: &str,
    s: &Setup,
    shape: Shape,
    pid: Option<u32>,
) -> Result<FanoutRun> {
    let m = s.channels.len();
    let k = s.tokens.len();
    // Clients resume from where the channels are now.
    let mut heads = Vec::with_capacity(m);
    for ch in &s.channels {
        heads.push(client::head_seq(http, base, &s.tokens[0], ch).await?);
    }
    if pid.is_some() {
        // Let the server settle before measuring its memory.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let rss_before = pid.and_then(rss_kib);
    let epoch = Instant::now();
    let mut fleet = Fleet::new(epoch);
    let connect_t = Instant::now();
    for i in 0..a.connections {
        let ch = s.channels[i % m].clone();
        let mut sock = client::realtime(base, &s.tokens[(i / m) % k])
            .await
            .with_context(|| format!("connection {i} (raise `ulimit -n` for many connections)"))?;
        sock.send(Message::text(
            json!({"type": "subscribe", "channels": {ch: heads[i % m]}}).to_string(),
        ))
        .await?;
        let (mut tally, stop) = fleet.tally();
        fleet.push(tokio::spawn(async move {
            // Registered once: a fresh `cancelled()` per frame would lock
            // the token shared by every receiver on each frame.
            let stopped = stop.cancelled();
            tokio::pin!(stopped);
            loop {
                let frame = tokio::select! {
                    _ = &mut stopped => break,
                    f = sock.next() => f,
                };
                let t = match frame {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(_)) => continue,
                    _ => {
                        tally.received.failed += 1;
                        break;
                    }
                };
                let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else {
                    continue;
                };
                match v["type"].as_str() {
                    Some("event") => {
                        tally.record(v["event"]["text"].as_str().unwrap_or(""));
                    }
                    Some("resync") => tally.received.resyncs += 1,
                    _ => {}
                }
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), sock.close(None)).await;
            tally.received
        }));
    }
    let connect_secs = connect_t.elapsed().as_secs_f64();
    println!(
        "  connected {} WebSockets in {connect_secs:.1}s",
        a.connections
    );
    let mut run = FanoutRun {
        connections: a.connections,
        channels: m,
        connect_secs,
        ..Default::default()
    };
    // Subscriptions settle (and the server's memory with them).
    tokio::time::sleep(Duration::from_secs(1)).await;
    if let (Some(b), Some(af)) = (rss_before, pid.and_then(rss_kib)) {
        let per = af.saturating_sub(b) as f64 / a.connections.max(1) as f64;
        println!(
            "  server RSS: {} MiB before, {} MiB with {} connections: {per:.1} KiB per connection",
            b / 1024,
            af / 1024,
            a.connections
        );
        run.rss_kib_per_connection = Some(per);
    }
    if a.rate <= 0.0 {
        fleet.finish().await;
        return Ok(run);
    }
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..m).map(|_| AtomicU64::new(0)).collect());
    let url = format!("{base}/v1/messages");
    let out = open_loop(
        Schedule::new(Instant::now(), a.rate, shape.duration),
        shape.max_in_flight,
        |n, due| {
            let c = n as usize % m;
            let (http, url, token, sent) =
                (http.clone(), url.clone(), s.tokens[0].clone(), sent.clone());
            let body = json!({"channel_id": s.channels[c], "text": stamp(epoch, due)});
            async move {
                let ok = post_message(&http, &url, &token, body).await;
                if ok {
                    sent[c].fetch_add(1, Ordering::Relaxed);
                }
                ok
            }
        },
    )
    .await?;
    let want = expected(&sent, &followers(a.connections, m));
    fleet.drain(want, shape.quiet).await;
    let delivered = fleet.delivered();
    let got = fleet.finish().await;
    let p = PathRun::new(out, want, delivered, got);
    println!(
        "  sent {} of {} scheduled msgs in {:.1}s ({:.0}/s) into {m} channels, {} errors; {} of {} deliveries ({:.0}/s), {} resyncs",
        p.sent,
        p.scheduled,
        p.send_secs,
        p.sent as f64 / p.send_secs.max(1e-9),
        p.send_errors,
        p.delivered,
        p.expected,
        p.deliveries_per_sec(),
        p.resyncs
    );
    println!(
        "  POST latency from schedule: {} of {} sent",
        p.send_latency.line(),
        p.sent
    );
    println!(
        "  sender behind schedule: p99 {:.2} ms  max {:.2} ms",
        ms(p.backlog.p99),
        ms(p.backlog.max)
    );
    println!("  send→receive: {}", p.latency_line());
    run.switchboard = Some(p);
    Ok(run)
}
