//! `switchboard-bench rebuild`: the history projection's rebuild rate from
//! the log vs a baseline folding the same events with no log in front.
//!
//! The baseline calls the projection's own commit path
//! (`switchboard_projections::apply_batch::<History>`: the real fold's
//! statements, 2,000 events per transaction with the checkpoint, as the
//! runner batches them) on envelopes already decoded in memory. So the
//! ratio is what reading and decoding the log costs the rebuild, and the
//! baseline cannot drift from the projection: both must end with the same
//! checksum, which is checked. (The previous harness retyped two INSERTs,
//! which skipped the fold's scrub checks and could silently diverge.)
//!
//! The log is generated once into a scratch nats-server (never the
//! server's); each run rebuilds into fresh files.

use crate::stats::{Figure, Figures, Runs};
use anyhow::{bail, Context, Result};
use async_nats::jetstream;
use clap::Parser;
use prost::Message as _;
use std::collections::VecDeque;
use std::time::Instant;
use switchboard_core::events::{envelope::Body, Envelope, MessagePosted};
use switchboard_projections::history::History;
use switchboard_projections::{apply_batch, live_checksum, open_model};
use switchboard_streams::LogEvent;

/// Events per transaction in the baseline: the runner's largest batch.
const BATCH: usize = 2_000;

#[derive(Parser, Debug, Clone)]
pub struct RebuildArgs {
    /// Message events to generate.
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,
    /// Channels they are spread over.
    #[arg(long, default_value_t = 50)]
    pub channels: u64,
    /// Repetitions; each is printed, then the median of each figure.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

/// One run of `rebuild`.
#[derive(Debug, Clone)]
pub struct RebuildRun {
    pub events: u64,
    pub rebuild_secs: f64,
    pub baseline_secs: f64,
    pub checksum: String,
}

impl RebuildRun {
    pub fn rebuild_rate(&self) -> f64 {
        self.events as f64 / self.rebuild_secs.max(1e-9)
    }
    pub fn baseline_rate(&self) -> f64 {
        self.events as f64 / self.baseline_secs.max(1e-9)
    }
}

impl Figures for RebuildRun {
    fn figures(&self) -> Vec<Figure> {
        vec![
            Figure::new(
                "history rebuild from the log",
                self.rebuild_rate(),
                "events/s",
            ),
            Figure::new(
                "same fold, no log (apply_batch)",
                self.baseline_rate(),
                "events/s",
            ),
            Figure::new(
                "ratio rebuild/baseline",
                self.rebuild_rate() / self.baseline_rate(),
                "ratio",
            ),
        ]
    }
}

/// `events` message events round-robin over `channels` channels, with the
/// subject each is published on.
pub(crate) fn generate(events: u64, channels: u64) -> Vec<(String, Envelope)> {
    let channels = channels.max(1);
    let mut seqs = vec![0u64; channels as usize];
    (0..events)
        .map(|i| {
            let c = (i % channels) as usize;
            seqs[c] += 1;
            (
                format!("sb.Wbench.ch.C{c}"),
                Envelope {
                    event_id: format!("E{i}"),
                    workspace_id: "Wbench".into(),
                    channel_id: format!("C{c}"),
                    actor_id: "Ubench".into(),
                    ts_ms: 1_700_000_000_000 + i as i64,
                    channel_seq: seqs[c],
                    fence_seq: 0,
                    request_id: String::new(),

                    prev_digest: Vec::new(),
                    body: Some(Body::MessagePosted(MessagePosted {
                        message_id: format!("M{i}"),
                        text: format!(
                            "benchmark message number {i} with some typical chat length text"
                        ),
                        ..Default::default()
                    })),
                },
            )
        })
        .collect()
}

pub async fn run(a: RebuildArgs) -> Result<Runs<RebuildRun>> {
    let nats = crate::nats::ScratchNats::start().await?;
    let conn = switchboard_streams::connect(&nats.url).await?;
    let js = jetstream::new(conn.client.clone());
    let log = switchboard_streams::Log::open(conn, switchboard_streams::LogConfig::default())
        .await
        .context("opening the scratch log")?;

    // Generate the log, pipelined (the append path's conditional publish
    // is `send`'s subject; here only the replay side matters), keeping
    // each event as the log will hand it back.
    let gen = Instant::now();
    let mut events: Vec<LogEvent> = Vec::with_capacity(a.events as usize);
    let mut inflight = VecDeque::new();
    for (subject, env) in generate(a.events, a.channels) {
        let ack = js
            .publish(subject.clone(), env.encode_to_vec().into())
            .await?;
        inflight.push_back((ack, subject, env));
        if inflight.len() >= 1024 {
            if let Some((ack, subject, env)) = inflight.pop_front() {
                events.push(logged(ack.await?.sequence, subject, env));
            }
        }
    }
    while let Some((ack, subject, env)) = inflight.pop_front() {
        events.push(logged(ack.await?.sequence, subject, env));
    }
    let events = std::sync::Arc::new(events);
    let head = log.last_seq().await?;
    println!(
        "generated {head} events in {:.2}s",
        gen.elapsed().as_secs_f64()
    );

    let dir = tempfile::tempdir().context("temp dir for the rebuilt models")?;
    let mut runs = Vec::new();
    for i in 1..=a.runs.max(1) {
        let out = dir.path().join(format!("run{i}"));
        std::fs::create_dir_all(&out)?;
        let t = Instant::now();
        let r = switchboard_projections::rebuild::<History>(&log, &out.join("history.db"), head)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let rebuild_secs = t.elapsed().as_secs_f64();

        let path = out.join("baseline.db");
        let t = Instant::now();
        let evs = events.clone();
        let sum = tokio::task::spawn_blocking(move || baseline(&path, &evs))
            .await
            .context("baseline task")??;
        let baseline_secs = t.elapsed().as_secs_f64();
        if sum != r.checksum {
            bail!(
                "the baseline's rows differ from the rebuild's ({sum} vs {})",
                r.checksum
            );
        }
        let run = RebuildRun {
            events: r.events,
            rebuild_secs,
            baseline_secs,
            checksum: r.checksum,
        };
        println!("run {i}:");
        println!(
            "  history rebuild from the log: {} events in {:.2}s = {:.0} events/s (checksum {})",
            run.events,
            run.rebuild_secs,
            run.rebuild_rate(),
            run.checksum.get(..16).unwrap_or(&run.checksum)
        );
        println!(
            "  same fold with no log (apply_batch, {BATCH} per transaction): {} in {:.2}s = {:.0} events/s, same checksum",
            events.len(),
            run.baseline_secs,
            run.baseline_rate()
        );
        println!(
            "  ratio rebuild/baseline = {:.3}",
            run.rebuild_rate() / run.baseline_rate()
        );
        runs.push(run);
    }
    let runs = Runs { runs };
    runs.print_summary();
    Ok(runs)
}

fn logged(stream_seq: u64, subject: String, env: Envelope) -> LogEvent {
    LogEvent {
        stream_seq,
        pending: 0,
        subject,
        envelope: Some(env),
    }
}

/// Folds `events` into a fresh model at `path` through the projection's
/// own commit path; returns the model's checksum.
fn baseline(path: &std::path::Path, events: &[LogEvent]) -> Result<String> {
    let (mut conn, _) = open_model::<History>(path)?;
    for chunk in events.chunks(BATCH) {
        apply_batch::<History>(&mut conn, chunk)?;
    }
    Ok(live_checksum::<History>(&mut conn)?.1)
}
