//! `switchboard-bench export`: `switchboard export`'s rate (decode, JSON,
//! hash chain, file writes, manifest) next to a raw JetStream replay of the
//! same events (the same ordered consumer, counting messages and touching
//! nothing), measured in the same run. Target: export >= 0.3 of raw.
//!
//! The log is generated once into a scratch nats-server; each run exports
//! into a fresh directory, and the export is verified (`verify`) so the
//! figure is of a correct export.

use crate::stats::{Figure, Figures, Runs};
use anyhow::{bail, Context, Result};
use async_nats::jetstream;
use clap::Parser;
use futures_util::StreamExt;
use prost::Message as _;
use std::collections::VecDeque;
use std::time::Instant;
use switchboard_streams::export::{self, ExportParams};
use switchboard_streams::ScanStart;

#[derive(Parser, Debug, Clone)]
pub struct ExportArgs {
    /// Message events to generate.
    #[arg(long, default_value_t = 200_000)]
    pub events: u64,
    /// Channels they are spread over.
    #[arg(long, default_value_t = 50)]
    pub channels: u64,
    /// Repetitions; each is printed, then the median of each figure.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

/// One run of `export`.
#[derive(Debug, Clone)]
pub struct ExportRun {
    pub events: u64,
    pub export_secs: f64,
    pub raw_secs: f64,
}

impl ExportRun {
    pub fn export_rate(&self) -> f64 {
        self.events as f64 / self.export_secs.max(1e-9)
    }
    pub fn raw_rate(&self) -> f64 {
        self.events as f64 / self.raw_secs.max(1e-9)
    }
}

impl Figures for ExportRun {
    fn figures(&self) -> Vec<Figure> {
        vec![
            Figure::new("export (JSONL + chain)", self.export_rate(), "events/s"),
            Figure::new("raw JetStream replay", self.raw_rate(), "events/s"),
            Figure::new(
                "ratio export/raw",
                self.export_rate() / self.raw_rate(),
                "ratio",
            ),
        ]
    }
}

pub async fn run(a: ExportArgs) -> Result<Runs<ExportRun>> {
    let nats = crate::nats::ScratchNats::start().await?;
    let conn = switchboard_streams::connect(&nats.url).await?;
    let js = jetstream::new(conn.client.clone());
    let log = switchboard_streams::Log::open(conn, switchboard_streams::LogConfig::default())
        .await
        .context("opening the scratch log")?;
    let gen = Instant::now();
    let mut inflight = VecDeque::new();
    for (subject, env) in crate::rebuild::generate(a.events, a.channels) {
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
        "generated {head} events in {:.2}s",
        gen.elapsed().as_secs_f64()
    );
    let params = ExportParams {
        workspace: "Wbench".into(),
        channel: None,
        since_ms: None,
        until_ms: None,
        attachments: false,
    };
    let dir = tempfile::tempdir().context("temp dir for the exports")?;
    let mut runs = Vec::new();
    for i in 1..=a.runs.max(1) {
        // Raw: the same ordered consumer, count only.
        let t = Instant::now();
        let (mut left, mut stream) = log.scan(ScanStart::Seq(1), params.filter()).await?;
        let mut raw = 0u64;
        while left > 0 {
            let Some(m) = stream.next().await else { break };
            let (pending, ev) = m?;
            raw += 1;
            left = pending;
            std::hint::black_box(ev.payload.len());
        }
        drop(stream);
        let raw_secs = t.elapsed().as_secs_f64();

        let out = dir.path().join(format!("run{i}"));
        let t = Instant::now();
        let report = export::export(&log, params.clone(), &out).await?;
        let export_secs = t.elapsed().as_secs_f64();
        let findings = export::verify(&out)?;
        if !findings.is_empty() || report.manifest.lines != raw {
            bail!(
                "the export does not verify or misses events ({} lines, {raw} raw): {findings:?}",
                report.manifest.lines
            );
        }
        let run = ExportRun {
            events: raw,
            export_secs,
            raw_secs,
        };
        println!("run {i}:");
        println!(
            "  export: {} events in {:.2}s = {:.0} events/s ({} bytes, verified)",
            run.events,
            run.export_secs,
            run.export_rate(),
            report.manifest.bytes
        );
        println!(
            "  raw JetStream replay (ordered consumer): {:.2}s = {:.0} events/s",
            run.raw_secs,
            run.raw_rate()
        );
        println!(
            "  ratio export/raw = {:.3}",
            run.export_rate() / run.raw_rate()
        );
        runs.push(run);
    }
    let runs = Runs { runs };
    runs.print_summary();
    Ok(runs)
}
