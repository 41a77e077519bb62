//! `switchboard-bench all`: every benchmark of the README, `--runs` times
//! each, then the README's table: the machine, the versions, and each
//! figure's median (min–max) with the command that reproduces it.
//! `deploy/bench-all.sh` starts a server and runs this in one command.

use crate::fanout::{self, FanoutArgs};
use crate::history::{self, HistoryArgs};
use crate::rebuild::{self, RebuildArgs};
use crate::send::{self, SendArgs};
use crate::stats::{FigureSpread, Figures, Runs};
use crate::NatsTarget;
use anyhow::Result;
use clap::Parser;

#[derive(Parser, Debug, Clone)]
pub struct AllArgs {
    /// Base URL of the running server (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Operator token of the server.
    #[arg(long, env = "SWITCHBOARD_ADMIN_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Repetitions of each benchmark.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Seconds of load per phase.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Open-loop `send` rate (default: half the closed-loop median).
    #[arg(long)]
    pub open_rate: Option<f64>,
    #[arg(long, default_value_t = 1000)]
    pub fanout_connections: usize,
    #[arg(long, default_value_t = 1000.0)]
    pub fanout_rate: f64,
    /// Idle connections for the memory figure.
    #[arg(long, default_value_t = 2000)]
    pub idle_connections: usize,
    #[arg(long, default_value_t = 100_000)]
    pub rebuild_events: u64,
    /// Messages for `history` (over 100 channels; 0 skips it). Small by
    /// default: the README's figure at 1M is `history` on its own.
    #[arg(long, default_value_t = 50_000)]
    pub history_messages: u64,
    /// Server process id, for RSS (default: the `switchboard serve` in /proc).
    #[arg(long)]
    pub pid: Option<u32>,
    /// Switchboard commit to print (default: `git rev-parse` here).
    #[arg(long)]
    pub commit: Option<String>,
    #[command(flatten)]
    pub nats: NatsTarget,
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub measurement: String,
    pub figure: FigureSpread,
    pub command: String,
}

/// Markdown: `| measurement | median (min–max) | command |`, the command
/// on the first row of each benchmark (the rows below it share it).
pub fn table(rows: &[Row], runs: usize) -> String {
    let mut s =
        format!("| measurement | median (min–max) of {runs} runs | command |\n|---|---|---|\n");
    let mut last_command = "";
    for r in rows {
        let command = if r.command == last_command {
            String::new()
        } else {
            format!("`{}`", r.command)
        };
        last_command = &r.command;
        s.push_str(&format!(
            "| {}: {} | {} {} | {command} |\n",
            r.measurement,
            r.figure.name,
            r.figure.text(),
            r.figure.unit,
        ));
    }
    s
}

fn figure_rows<T: Figures>(measurement: &str, command: &str, runs: &Runs<T>) -> Vec<Row> {
    runs.summary()
        .into_iter()
        .map(|figure| Row {
            measurement: measurement.to_string(),
            figure,
            command: command.to_string(),
        })
        .collect()
}

fn first_line(cmd: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(cmd).args(args).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text.lines().next()?.trim().to_string();
    (out.status.success() && !line.is_empty()).then_some(line)
}

/// Cores, CPU model and memory, from /proc.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let cores = if cores > 0 {
        cores
    } else {
        std::thread::available_parallelism().map_or(0, |n| n.get())
    };
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU".to_string(), |(_, m)| m.trim().to_string());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))?
                .split_whitespace()
                .nth(1)?
                .parse::<f64>()
                .ok()
        })
        .map_or("?".to_string(), |kib| {
            format!("{:.0}", kib / 1024.0 / 1024.0)
        });
    format!("{cores} cores ({model}), {mem_gib} GiB")
}

pub async fn run(a: AllArgs) -> Result<Vec<Row>> {
    let commit = a.commit.clone().unwrap_or_else(|| {
        let head = first_line("git", &["rev-parse", "--short", "HEAD"]);
        let dirty = first_line("git", &["status", "--porcelain"]).is_some();
        head.map_or("unknown".into(), |h| {
            if dirty {
                format!("{h}-dirty")
            } else {
                h
            }
        })
    });
    let header = format!(
        "machine: {}\n{}\nswitchboard: commit {commit}\ndate: {}{}",
        machine(),
        first_line("nats-server", &["--version"]).unwrap_or_else(|| "nats-server: unknown".into()),
        first_line("date", &["-u", "+%Y-%m-%d"]).unwrap_or_default(),
        if cfg!(debug_assertions) {
            "\nWARNING: debug build of the load generator; figures are not representative"
        } else {
            ""
        }
    );
    println!("{header}\n");
    let (runs, dur) = (a.runs.max(1), a.duration);
    let mut rows = Vec::new();

    // First, on the fresh server: RSS growth per connection is only
    // meaningful before other connections have come and gone.
    println!("== fanout, idle connections");
    let idle = FanoutArgs {
        url: a.url.clone(),
        token: a.token.clone(),
        connections: a.idle_connections,
        channel_size: 50,
        channels: None,
        rate: 0.0,
        duration: dur,
        max_in_flight: 4096,
        quiet: 2.0,
        no_floor: true,
        pid: a.pid,
        // RSS is measured in the first run only (see `fanout`).
        runs: 1,
        nats: a.nats.clone(),
    };
    let r = fanout::run(idle.clone()).await?;
    rows.extend(figure_rows(
        &format!("{} idle WebSocket connections", a.idle_connections),
        &format!(
            "switchboard-bench fanout --connections {} --channel-size 50 --rate 0 --runs 1",
            a.idle_connections
        ),
        &r,
    ));

    let closed = SendArgs {
        url: a.url.clone(),
        token: a.token.clone(),
        concurrency: 32,
        channels: 16,
        duration: dur,
        rate: None,
        max_in_flight: 4096,
        no_raw: false,
        runs,
        nats: a.nats.clone(),
    };
    println!("\n== send, closed loop");
    let r = send::run(closed.clone()).await?;
    rows.extend(figure_rows(
        "POST /v1/messages, closed loop, 32 clients, 16 channels",
        &format!(
            "switchboard-bench send --concurrency 32 --channels 16 --duration {dur} --runs {runs}"
        ),
        &r,
    ));
    let half = r.get("POST accepted").map_or(1000.0, |f| {
        ((f.spread.median / 2.0) / 100.0).floor() * 100.0
    });
    let rate = a.open_rate.unwrap_or(half).max(100.0);
    println!("\n== send, open loop at {rate:.0}/s");
    let open = SendArgs {
        rate: Some(rate),
        no_raw: true,
        ..closed
    };
    let r = send::run(open).await?;
    rows.extend(figure_rows(
        &format!("POST /v1/messages, open loop at {rate:.0}/s"),
        &format!("switchboard-bench send --channels 16 --duration {dur} --rate {rate:.0} --no-raw --runs {runs}"),
        &r,
    ));

    println!("\n== rebuild");
    let r = rebuild::run(RebuildArgs {
        events: a.rebuild_events,
        channels: 50,
        runs,
    })
    .await?;
    rows.extend(figure_rows(
        &format!("rebuild, {} message events", a.rebuild_events),
        &format!(
            "switchboard-bench rebuild --events {} --channels 50 --runs {runs}",
            a.rebuild_events
        ),
        &r,
    ));

    if a.history_messages > 0 {
        println!("\n== history");
        let r = history::run(HistoryArgs {
            url: a.url.clone(),
            token: a.token.clone(),
            messages: a.history_messages,
            channels: 100,
            users: 4,
            samples: 500,
            runs,
            fold_timeout: 1_800,
            nats: a.nats.clone(),
        })
        .await?;
        rows.extend(figure_rows(
            &format!("history, {} messages in 100 channels", a.history_messages),
            &format!(
                "switchboard-bench history --messages {} --channels 100 --samples 500 --runs {runs}",
                a.history_messages
            ),
            &r,
        ));
    }

    let fan = FanoutArgs {
        connections: a.fanout_connections,
        rate: a.fanout_rate,
        no_floor: false,
        // Memory was measured on idle connections, above.
        pid: None,
        runs,
        ..idle
    };
    println!("\n== fanout");
    let r = fanout::run(fan).await?;
    rows.extend(figure_rows(
        &format!(
            "fan-out, {} connections, channels of 50, {:.0} msgs/s",
            a.fanout_connections, a.fanout_rate
        ),
        &format!(
            "switchboard-bench fanout --connections {} --channel-size 50 --rate {:.0} --duration {dur} --runs {runs}",
            a.fanout_connections, a.fanout_rate
        ),
        &r,
    ));

    println!("\n{header}\n\n{}", table(&rows, runs));
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Spread;

    fn row(name: &str, unit: &'static str, median: f64, command: &str) -> Row {
        Row {
            measurement: "POST".into(),
            figure: FigureSpread {
                name: name.into(),
                unit,
                spread: Spread {
                    median,
                    min: median - 0.5,
                    max: median + 0.75,
                    runs: 3,
                },
            },
            command: command.into(),
        }
    }

    #[test]
    fn table_has_a_row_per_figure_and_each_benchmarks_command() {
        let rows = vec![
            row("p50", "ms", 1.0, "switchboard-bench send --runs 3"),
            row("p99", "ms", 2.5, "switchboard-bench send --runs 3"),
            row(
                "rate",
                "events/s",
                1000.0,
                "switchboard-bench rebuild --runs 3",
            ),
        ];
        assert_eq!(
            table(&rows, 3),
            "| measurement | median (min–max) of 3 runs | command |\n|---|---|---|\n\
             | POST: p50 | 1.00 (0.50–1.75) ms | `switchboard-bench send --runs 3` |\n\
             | POST: p99 | 2.50 (2.00–3.25) ms |  |\n\
             | POST: rate | 1,000 (1,000–1,001) events/s | `switchboard-bench rebuild --runs 3` |\n"
        );
    }

    #[test]
    fn machine_names_cores() {
        assert!(machine().contains("cores"));
    }
}
