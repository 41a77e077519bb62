//! `switchboard-bench replay`: the replay examples' throughput
//! (docs/replay.md) against raw JetStream replay measured in the same run.
//!
//! One workspace's log (`--events` events over `--channels` channels:
//! posts, thread replies, deletes, each subject's `channel_seq` dense) is
//! published once into a scratch nats-server (the stream as `Log::open`
//! sets it up). Each run then replays the whole workspace three ways, each
//! with an ordered consumer filtered to `sb.<W>.>` from the first event to
//! the last:
//! - raw: async-nats in this process, counting messages, no decode (the
//!   floor: what the server and one client connection deliver);
//! - the Rust example (`examples/rust/replay.rs`, its release binary);
//! - the Python example (`examples/python/replay.py` in the virtualenv of
//!   its `setup.sh`).
//!
//! The examples run as separate processes and report their own replay
//! time (from the consumer's creation to the last event; process start and
//! connecting not included), which is what events/s is computed from. Each
//! example's counts are checked against what was generated, so a fast
//! replay that miscounted fails the benchmark.

use crate::stats::{Figure, Figures, Runs};
use anyhow::{bail, Context, Result};
use async_nats::jetstream::{self, consumer::pull::OrderedConfig, consumer::DeliverPolicy};
use clap::Parser;
use futures_util::StreamExt;
use prost::Message as _;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use switchboard_core::events::{envelope::Body, Envelope, MessageDeleted, MessagePosted};

/// The benchmark's workspace.
const WS: &str = "Wbench";

#[derive(Parser, Debug, Clone)]
pub struct ReplayArgs {
    /// Events to generate (all in one workspace).
    #[arg(long, default_value_t = 200_000)]
    pub events: u64,
    /// Channels they are spread over.
    #[arg(long, default_value_t = 50)]
    pub channels: u64,
    /// Repetitions; each is printed, then the median of each figure.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// The Rust example's binary. Default: `examples/replay` beside this
    /// binary (`cargo build --release --example replay`).
    #[arg(long)]
    pub rust_example: Option<PathBuf>,
    /// The Python example's interpreter (its set-up's virtualenv).
    #[arg(long, default_value = "examples/python/.venv/bin/python")]
    pub python: PathBuf,
    /// The Python example's script.
    #[arg(long, default_value = "examples/python/replay.py")]
    pub python_script: PathBuf,
    /// Leave the Python example out (not set up on this machine).
    #[arg(long)]
    pub no_python: bool,
}

/// One run of `replay`: seconds each replay of `events` events took.
#[derive(Debug, Clone)]
pub struct ReplayRun {
    pub events: u64,
    pub raw_secs: f64,
    pub rust_secs: f64,
    pub python_secs: Option<f64>,
}

fn rate(events: u64, secs: f64) -> f64 {
    events as f64 / secs.max(1e-9)
}

impl Figures for ReplayRun {
    fn figures(&self) -> Vec<Figure> {
        let raw = rate(self.events, self.raw_secs);
        let rust = rate(self.events, self.rust_secs);
        let mut f = vec![
            Figure::new(
                "raw JetStream replay (ordered consumer, no decode)",
                raw,
                "events/s",
            ),
            Figure::new("Rust example replay", rust, "events/s"),
            Figure::new("ratio Rust example/raw", rust / raw, "ratio"),
        ];
        if let Some(secs) = self.python_secs {
            let py = rate(self.events, secs);
            f.push(Figure::new("Python example replay", py, "events/s"));
            f.push(Figure::new("ratio Python example/raw", py / raw, "ratio"));
        }
        f
    }
}

/// What a correct replay of the generated log reports.
#[derive(Debug, Default, PartialEq)]
struct Expected {
    events: u64,
    messages: u64,
    deleted: u64,
    replies: u64,
}

/// `events` events over `channels` channels of [`WS`]: in each channel,
/// every 10th event a thread reply to the channel's first post and every
/// 20th a delete of a post 5 events earlier; the rest posts.
fn generate(events: u64, channels: u64) -> (Vec<(String, Envelope)>, Expected) {
    let channels = channels.max(1);
    let mut seqs = vec![0u64; channels as usize];
    let mut exp = Expected {
        events,
        ..Default::default()
    };
    let out = (0..events)
        .map(|i| {
            let c = (i % channels) as usize;
            seqs[c] += 1;
            let seq = seqs[c];
            let root = format!("M{c}-1");
            let body = if seq > 5 && seq % 20 == 0 {
                exp.deleted += 1;
                Body::MessageDeleted(MessageDeleted {
                    message_id: format!("M{c}-{}", seq - 5),
                })
            } else if seq > 1 && seq % 10 == 0 {
                exp.replies += 1;
                Body::MessagePosted(MessagePosted {
                    message_id: format!("M{c}-{seq}"),
                    text: format!("reply {i} in a thread, with some typical chat length text"),
                    thread_root_id: root,
                    ..Default::default()
                })
            } else {
                exp.messages += 1;
                Body::MessagePosted(MessagePosted {
                    message_id: format!("M{c}-{seq}"),
                    text: format!(
                        "benchmark message number {i} with some typical chat length text"
                    ),
                    ..Default::default()
                })
            };
            let env = Envelope {
                event_id: format!("E{i}"),
                workspace_id: WS.into(),
                channel_id: format!("C{c}"),
                actor_id: "Ubench".into(),
                ts_ms: 1_700_000_000_000 + i as i64,
                channel_seq: seq,
                body: Some(body),
                ..Default::default()
            };
            (format!("sb.{WS}.ch.C{c}"), env)
        })
        .collect();
    (out, exp)
}

pub async fn run(a: ReplayArgs) -> Result<Runs<ReplayRun>> {
    let rust_example = match &a.rust_example {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .context("this binary's path")?
            .parent()
            .context("this binary's directory")?
            .join("examples/replay"),
    };
    if !rust_example.exists() {
        bail!(
            "{} missing: cargo build --release --example replay (or --rust-example PATH)",
            rust_example.display()
        );
    }
    if !a.no_python && !a.python.exists() {
        bail!(
            "{} missing: run examples/python/setup.sh (or --python PATH, or --no-python)",
            a.python.display()
        );
    }

    let nats = crate::nats::ScratchNats::start().await?;
    let conn = switchboard_streams::connect(&nats.url).await?;
    let js = jetstream::new(conn.client.clone());
    let log = switchboard_streams::Log::open(conn, switchboard_streams::LogConfig::default())
        .await
        .context("opening the scratch log")?;
    let (events, expected) = generate(a.events, a.channels);
    let gen = Instant::now();
    let mut inflight = VecDeque::new();
    for (subject, env) in events {
        inflight.push_back(js.publish(subject, env.encode_to_vec().into()).await?);
        if inflight.len() >= 1024 {
            if let Some(ack) = inflight.pop_front() {
                ack.await?;
            }
        }
    }
    while let Some(ack) = inflight.pop_front() {
        ack.await?;
    }
    let head = log.last_seq().await?;
    println!(
        "generated {head} events ({} posts, {} thread replies, {} deletes) over {} channels in {:.2}s",
        expected.messages,
        expected.replies,
        expected.deleted,
        a.channels.max(1),
        gen.elapsed().as_secs_f64()
    );

    let mut runs = Vec::new();
    for i in 1..=a.runs.max(1) {
        let (n, raw_secs) = raw_replay(&js, head).await?;
        if n != expected.events {
            bail!(
                "raw replay delivered {n} events, expected {}",
                expected.events
            );
        }
        let rust_secs = example(&rust_example, &[], &nats.url, &expected).await?;
        let python_secs = if a.no_python {
            None
        } else {
            Some(
                example(
                    &a.python,
                    std::slice::from_ref(&a.python_script),
                    &nats.url,
                    &expected,
                )
                .await?,
            )
        };
        let run = ReplayRun {
            events: expected.events,
            raw_secs,
            rust_secs,
            python_secs,
        };
        println!("run {i}:");
        for f in run.figures() {
            println!(
                "  {}: {} {}",
                f.name,
                crate::stats::fmt_value(f.value, f.unit),
                f.unit
            );
        }
        runs.push(run);
    }
    let runs = Runs { runs };
    runs.print_summary();
    Ok(runs)
}

/// Replays the workspace with an ordered consumer, counting messages
/// without decoding them; returns (events, seconds).
async fn raw_replay(js: &jetstream::Context, head: u64) -> Result<(u64, f64)> {
    let stream = js.get_stream("SB").await?;
    let t = Instant::now();
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: format!("sb.{WS}.>"),
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let (mut n, mut bytes) = (0u64, 0usize);
    loop {
        let Ok(next) = tokio::time::timeout(Duration::from_secs(30), messages.next()).await else {
            bail!("raw replay: no message for 30 s after {n}");
        };
        let msg = next.context("raw replay ended early")??;
        let info = msg.info().map_err(|e| anyhow::anyhow!("{e}"))?;
        n += 1;
        bytes += msg.payload.len();
        if info.stream_sequence >= head || info.pending == 0 {
            break;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    tracing::debug!(n, bytes, "raw replay");
    Ok((n, secs))
}

/// Runs one example over the workspace, checks its counts, returns its
/// own replay seconds.
async fn example(program: &PathBuf, leading: &[PathBuf], url: &str, exp: &Expected) -> Result<f64> {
    let out = tokio::process::Command::new(program)
        .args(leading)
        .args(["--nats", url, "--workspace", WS])
        .output()
        .await
        .with_context(|| format!("running {}", program.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}): {}",
            program.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("the example's JSON")?;
    let sum = |k: &str| -> u64 {
        v["channels"]
            .as_object()
            .map(|c| c.values().filter_map(|c| c[k].as_u64()).sum())
            .unwrap_or(0)
    };
    let got = Expected {
        events: v["events"].as_u64().unwrap_or(0),
        messages: sum("messages"),
        deleted: sum("deleted"),
        replies: sum("replies"),
    };
    if &got != exp || v["gaps"].as_array().is_none_or(|g| !g.is_empty()) {
        bail!(
            "{} counted {got:?}, expected {exp:?} (gaps: {})",
            program.display(),
            v["gaps"]
        );
    }
    v["replay_secs"]
        .as_f64()
        .context("the example's replay_secs")
}

#[cfg(test)]
mod tests {
    #[test]
    fn generated_counts_add_up() {
        let (events, exp) = super::generate(1_000, 10);
        assert_eq!(events.len(), 1_000);
        assert_eq!(exp.messages + exp.replies + exp.deleted, 1_000);
        // 100 per channel: seq 20, 40, 60, 80, 100 delete; 10, 30, 50, 70, 90 reply.
        assert_eq!((exp.deleted, exp.replies), (50, 50));
    }
}
