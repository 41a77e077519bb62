//! `switchboard-bench`: Switchboard's load generators, kept out of the
//! shipped `switchboard` binary. Measurements, not tests: each benchmark
//! reports against a baseline or floor measured in the same run on the
//! same machine, repeats `--runs` times and prints the median, and returns
//! its runs so tests can check them.
//!
//! Invariants every benchmark keeps:
//! - every sample is counted: receivers and senders are stopped by a
//!   signal and joined, never aborted, and each percentile prints how many
//!   samples it covers next to how many were expected (`stats`, `fleet`);
//! - latency under a target rate is open loop: measured from the scheduled
//!   send time, with the sender's backlog reported (`schedule`);
//! - traffic goes to this machine only (loopback URLs) and is bounded in
//!   count and time.

pub mod all;
pub mod client;
pub mod export;
pub mod fanout;
pub mod fleet;
pub mod floor;
pub mod history;
pub mod nats;
pub mod push;
pub mod rebuild;
pub mod replay;
pub mod schedule;
pub mod search;
pub mod send;
pub mod stats;
pub mod unreads;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "switchboard-bench",
    version,
    about = "Load generators and benchmarks for Switchboard (see README \"Benchmarks\")"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// POST /v1/messages throughput and latency vs raw JetStream publishes.
    Send(send::SendArgs),
    /// Real-time fan-out: send→receive latency against core NATS and
    /// WebSocket floors, deliveries/s, server RSS per connection
    /// (`--rate 0`: idle connections only).
    Fanout(fanout::FanoutArgs),
    /// History projection rebuild rate vs the same fold with no log.
    Rebuild(rebuild::RebuildArgs),
    /// `switchboard export` rate vs raw JetStream replay of the same events.
    Export(export::ExportArgs),
    /// History reads (latest page, deep page, thread replies) over a large
    /// folded log, vs the same queries on the read model; the fold rate.
    History(history::HistoryArgs),
    /// GET /v1/unreads for a user in many channels over a large folded
    /// log, vs the same query on the read models; both fold rates.
    Unreads(unreads::UnreadsArgs),
    /// Post → webhook delivery latency (a receiver in this process; the
    /// server must run with --webhook-allow-private).
    Push(push::PushArgs),
    /// Search indexing rate vs raw FTS5, and query p50/p99 for readers of
    /// 200 and 2,000 channels, over a generated multilingual corpus.
    Search(search::SearchArgs),
    /// Replay throughput of the replay examples (Rust, Python) vs raw
    /// JetStream replay of the same workspace (docs/replay.md).
    Replay(replay::ReplayArgs),
    /// Every benchmark, then the README's table (machine, versions, each
    /// figure's median with its command).
    All(all::AllArgs),
}

/// The nats-server a raw baseline or floor runs on.
#[derive(Args, Debug, Clone)]
pub struct NatsTarget {
    /// NATS URL (loopback). Default: the nats-server a `switchboard serve`
    /// started on --data, else a scratch one.
    #[arg(long, env = "NATS_URL")]
    pub nats: Option<String>,
    /// The server's data directory (to find the nats-server it started).
    #[arg(long, env = "SWITCHBOARD_DATA", default_value = "./data")]
    pub data: PathBuf,
}

/// Runs one command; the figures are printed as it goes.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Send(a) => send::run(a).await.map(drop),
        Command::Fanout(a) => fanout::run(a).await.map(drop),
        Command::Rebuild(a) => rebuild::run(a).await.map(drop),
        Command::Export(a) => export::run(a).await.map(drop),
        Command::History(a) => history::run(a).await.map(drop),
        Command::Unreads(a) => unreads::run(a).await.map(drop),
        Command::Push(a) => push::run(a).await.map(drop),
        Command::Search(a) => search::run(a).await.map(drop),
        Command::Replay(a) => replay::run(a).await.map(drop),
        Command::All(a) => all::run(a).await.map(drop),
    }
}
