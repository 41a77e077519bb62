//! `switchboard bench fanout`: real-time delivery under load against a
//! running server. C WebSocket connections follow M channels of K members
//! (connection i is member (i / M) % K of channel i % M); senders post R
//! msgs/s round-robin over the channels; every connection measures
//! send→receive latency from a timestamp in the text. Reports latency,
//! deliveries/s (and missing ones), and the server's RSS growth per
//! connection. `--rate 0` only connects C idle connections and measures
//! memory.

use crate::bench::{fresh_workspace, ms, percentile, post};
use anyhow::{Context, Result};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

#[derive(Args)]
pub struct FanoutArgs {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Operator token of the server.
    #[arg(long, env = "SWITCHBOARD_ADMIN_TOKEN", hide_env_values = true)]
    token: String,
    /// WebSocket connections.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Members of each channel.
    #[arg(long, default_value_t = 50)]
    channel_size: usize,
    /// Channels (default: connections / channel-size, at least 1).
    #[arg(long)]
    channels: Option<usize>,
    /// Messages per second over all channels (0: idle connections only).
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Server process id for RSS (default: the `switchboard serve` found in /proc).
    #[arg(long)]
    pid: Option<u32>,
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

fn find_server() -> Option<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        (pid != me && cmd.contains("switchboard") && cmd.contains(" serve")).then_some(pid)
    })
}

pub async fn run(a: FanoutArgs) -> Result<()> {
    let http = reqwest::Client::new();
    let base = a.url.trim_end_matches('/').to_string();
    let m = a
        .channels
        .unwrap_or(a.connections / a.channel_size.max(1))
        .max(1);
    let k = a.channel_size.max(1);
    let pid = a.pid.or_else(find_server);
    let ws = fresh_workspace(&http, &base, &a.token, "fanout").await?;

    // K users, each a member of all M channels.
    let setup = Instant::now();
    let mut tokens = Vec::with_capacity(k);
    for i in 0..k {
        let u = post(
            &http,
            &format!("{base}/v1/workspaces/{ws}/users"),
            &a.token,
            json!({"handle": format!("u{i}"), "display_name": format!("User {i}")}),
        )
        .await?;
        tokens.push(u["token"].as_str().context("token")?.to_string());
    }
    let mut channels = Vec::with_capacity(m);
    for c in 0..m {
        let ch = post(
            &http,
            &format!("{base}/v1/channels"),
            &tokens[0],
            json!({"name": format!("fan-{c}")}),
        )
        .await?;
        channels.push(ch["id"].as_str().context("channel id")?.to_string());
    }
    let joins: Vec<_> = channels
        .iter()
        .cloned()
        .map(|ch| {
            let (http, base, tokens) = (http.clone(), base.clone(), tokens.clone());
            tokio::spawn(async move {
                for t in tokens.iter().skip(1) {
                    post(
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
        j.await??;
    }
    // Clients resume from where they are: the channel heads now.
    let mut heads = Vec::with_capacity(m);
    for ch in &channels {
        let r = http
            .get(format!("{base}/v1/channels/{ch}"))
            .bearer_auth(&tokens[0])
            .send()
            .await?;
        let v: Value = r.json().await?;
        heads.push(v["head_seq"].as_u64().unwrap_or(0));
    }
    println!(
        "setup: {k} users, {m} channels of {k} members, in {:.1}s",
        setup.elapsed().as_secs_f64()
    );
    // Let the server settle before measuring its memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_before = pid.and_then(rss_kib);

    // Connections.
    let start = Instant::now();
    let latencies = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let delivered = Arc::new(AtomicU64::new(0));
    let resyncs = Arc::new(AtomicU64::new(0));
    let ws_base = base.replacen("http://", "ws://", 1);
    let mut conns = Vec::with_capacity(a.connections);
    let connect_t = Instant::now();
    for i in 0..a.connections {
        let ch = channels[i % m].clone();
        let head = heads[i % m];
        let token = tokens[(i / m) % k].clone();
        let mut req = format!("{ws_base}/v1/realtime").into_client_request()?;
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
        let (mut sock, _) = tokio_tungstenite::connect_async(req)
            .await
            .with_context(|| format!("connection {i} (raise `ulimit -n` for many connections)"))?;
        sock.send(Message::Text(
            json!({"type": "subscribe", "channels": {ch.clone(): head}})
                .to_string()
                .into(),
        ))
        .await?;
        let (lat, del, rs) = (latencies.clone(), delivered.clone(), resyncs.clone());
        conns.push(tokio::spawn(async move {
            let mut local = Vec::new();
            while let Some(Ok(msg)) = sock.next().await {
                let Message::Text(t) = msg else { continue };
                let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else {
                    continue;
                };
                match v["type"].as_str() {
                    Some("event") => {
                        if let Some(sent) = v["event"]["text"]
                            .as_str()
                            .and_then(|t| t.strip_prefix("t="))
                            .and_then(|t| t.parse::<u64>().ok())
                        {
                            let now = start.elapsed().as_micros() as u64;
                            local.push(Duration::from_micros(now.saturating_sub(sent)));
                            del.fetch_add(1, Ordering::Relaxed);
                            if local.len() >= 64 {
                                lat.lock()
                                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                                    .append(&mut local);
                            }
                        }
                    }
                    Some("resync") => {
                        rs.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
            lat.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .append(&mut local);
        }));
    }
    println!(
        "connected {} WebSockets in {:.1}s",
        a.connections,
        connect_t.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_after = pid.and_then(rss_kib);
    if let (Some(b), Some(af)) = (rss_before, rss_after) {
        println!(
            "server RSS: {} MiB before, {} MiB with {} connections: {:.1} KiB per connection",
            b / 1024,
            af / 1024,
            a.connections,
            (af.saturating_sub(b)) as f64 / a.connections as f64
        );
    }
    if a.rate <= 0.0 {
        return Ok(());
    }

    // Senders: the rate spread over 8 tasks, round-robin over channels.
    let senders = 8usize;
    let interval = Duration::from_secs_f64(senders as f64 / a.rate);
    let sent = Arc::new(AtomicU64::new(0));
    let post_lat = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let send_start = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..senders {
        let (http, base, channels, token, sent) = (
            http.clone(),
            base.clone(),
            channels.clone(),
            tokens[0].clone(),
            sent.clone(),
        );
        let post_lat = post_lat.clone();
        let dur = Duration::from_secs(a.duration);
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while send_start.elapsed() < dur {
                let due =
                    send_start + interval.mul_f64(s as f64 / senders as f64) + interval * n as u32;
                tokio::time::sleep_until(due.into()).await;
                let ch = &channels[(n as usize * senders + s) % channels.len()];
                let text = format!("t={}", start.elapsed().as_micros());
                let t = Instant::now();
                if post(
                    &http,
                    &format!("{base}/v1/messages"),
                    &token,
                    json!({"channel_id": ch, "text": text}),
                )
                .await
                .is_ok()
                {
                    post_lat
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(t.elapsed());
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                n += 1;
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let send_secs = send_start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    for c in &conns {
        c.abort();
    }
    for c in conns {
        let _ = c.await;
    }
    let mut lat = std::mem::take(
        &mut *latencies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    lat.sort();
    let sent = sent.load(Ordering::Relaxed);
    let per_msg = a.connections as f64 / m as f64;
    let expected = (sent as f64 * per_msg) as u64;
    let got = delivered.load(Ordering::Relaxed);
    println!(
        "sent {sent} msgs in {send_secs:.1}s ({:.0}/s) into {m} channels; {got} of {expected} deliveries ({:.0} deliveries/s), {} resyncs",
        sent as f64 / send_secs,
        got as f64 / send_secs,
        resyncs.load(Ordering::Relaxed)
    );
    let mut pl = std::mem::take(
        &mut *post_lat
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    pl.sort();
    println!(
        "POST /v1/messages latency p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        ms(percentile(&pl, 0.5)),
        ms(percentile(&pl, 0.99)),
        ms(percentile(&pl, 1.0))
    );
    println!(
        "send→receive latency p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        ms(percentile(&lat, 1.0))
    );
    Ok(())
}
