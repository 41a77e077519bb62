//! The load generators (`switchboard-bench`) against a real server and
//! nats-server: short, low-rate, loopback-only runs that check the
//! benchmarks count what they claim to — every delivery a sample, every
//! scheduled send a sample or an error.

use crate::harness::{bin, Nats, Server, OPERATOR};
use clap::Parser;
use switchboard_bench::{
    fanout::FanoutArgs, rebuild::RebuildArgs, send::SendArgs, unreads::UnreadsArgs,
};

/// Regression: `bench fanout` moved each connection's samples to the
/// shared list every 64 and aborted the receivers at the end, so a
/// connection's last (n mod 64) were lost — at low rates all of them, and
/// it printed p50/p99/max = 0.00. Here each connection gets 10 messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fanout_counts_every_delivery_as_a_sample_and_measures_both_floors() {
    let nats = Nats::start();
    let server = Server::start_with(&nats, &["--rate-limits", "off"]);
    let nats_url = nats.url();
    let args = FanoutArgs::try_parse_from([
        "fanout",
        "--url",
        &server.base,
        "--token",
        OPERATOR,
        "--connections",
        "12",
        "--channel-size",
        "4",
        "--rate",
        "30",
        "--duration",
        "1",
        "--quiet",
        "1",
        "--runs",
        "1",
        "--nats",
        &nats_url,
    ])
    .expect("arguments");
    let runs = switchboard_bench::fanout::run(args).await.expect("fanout");
    assert_eq!(runs.runs.len(), 1);
    let run = &runs.runs[0];
    assert_eq!(run.channels, 3);
    let sb = run.switchboard.as_ref().expect("a loaded run");
    assert_eq!((sb.scheduled, sb.sent, sb.send_errors), (30, 30, 0));
    // 30 messages over 3 channels, each followed by 4 connections.
    assert_eq!(sb.expected, 120);
    assert_eq!(sb.delivered, sb.expected, "{sb:?}");
    assert_eq!(sb.latency.samples, sb.delivered, "{sb:?}");
    assert_eq!(sb.send_latency.samples, sb.sent);
    assert_eq!((sb.resyncs, sb.failed_receivers), (0, 0));
    assert!(sb.latency.p50 > std::time::Duration::ZERO);
    for floor in [&run.nats_floor, &run.ws_floor] {
        let f = floor.as_ref().expect("floor measured");
        assert_eq!((f.scheduled, f.sent, f.expected), (30, 30, 120), "{f:?}");
        assert_eq!(f.delivered, f.expected, "{f:?}");
        assert_eq!(f.latency.samples, f.delivered, "{f:?}");
        assert_eq!(f.failed_receivers, 0, "{f:?}");
    }
    let summary = runs.summary();
    assert!(summary.iter().any(|f| f.name == "p99 / NATS floor"));
    assert!(summary.iter().any(|f| f.name == "p99 / WS echo floor"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn open_loop_send_accounts_for_every_scheduled_send_in_each_run() {
    let nats = Nats::start();
    let server = Server::start_with(&nats, &["--rate-limits", "off"]);
    let nats_url = nats.url();
    let args = SendArgs::try_parse_from([
        "send",
        "--url",
        &server.base,
        "--token",
        OPERATOR,
        "--channels",
        "3",
        "--rate",
        "40",
        "--duration",
        "0.5",
        "--runs",
        "2",
        "--nats",
        &nats_url,
    ])
    .expect("arguments");
    let runs = switchboard_bench::send::run(args).await.expect("send");
    assert_eq!(runs.runs.len(), 2);
    for r in &runs.runs {
        assert_eq!(r.scheduled, Some(20));
        assert_eq!((r.accepted, r.errors), (20, 0), "{r:?}");
        assert_eq!(r.latency.samples, r.accepted);
        assert_eq!(r.backlog.map(|b| b.samples), Some(20));
        assert!(r.raw_rate.is_some_and(|raw| raw > 0.0), "{r:?}");
    }
    let accepted = runs.get("POST accepted").expect("a rate figure");
    assert_eq!(accepted.spread.runs, 2);
    assert!(runs.get("ratio POST/raw").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuild_baseline_folds_the_same_rows_as_the_rebuild() {
    let args = RebuildArgs::try_parse_from([
        "rebuild",
        "--events",
        "3001",
        "--channels",
        "7",
        "--runs",
        "1",
    ])
    .expect("arguments");
    // The run fails if the baseline's checksum differs from the rebuild's.
    let runs = switchboard_bench::rebuild::run(args)
        .await
        .expect("rebuild");
    assert_eq!(runs.runs[0].events, 3001);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn search_bench_indexes_every_message_and_samples_every_query_kind() {
    let args = switchboard_bench::search::SearchArgs::try_parse_from([
        "search",
        "--messages",
        "5000",
        "--channels",
        "40",
        "--samples",
        "5",
    ])
    .expect("arguments");
    let run = switchboard_bench::search::run(args)
        .await
        .expect("search bench");
    assert_eq!(run.messages, 5000);
    assert!(run.index_secs > 0.0 && run.raw_secs > 0.0);
    assert_eq!(run.queries.len(), 10, "5 kinds × 2 readers");
    for f in &run.queries {
        assert_eq!(f.latency.samples, 5, "{} {}", f.reader, f.kind);
    }
    // The corpus matches its own words.
    let single = run
        .queries
        .iter()
        .find(|f| f.kind == "single word" && f.reader.contains("2,000"))
        .expect("single-word figure");
    assert!(single.mean_hits > 0.0);
}

/// The shipped binary ships the server, not the load generators.
#[test]
fn the_switchboard_binary_has_no_bench_command() {
    let out = std::process::Command::new(bin())
        .arg("--help")
        .output()
        .expect("run switchboard --help");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("serve") && help.contains("rebuild"), "{help}");
    assert!(!help.contains("bench"), "{help}");
}

/// `history` against a real server: every generated message is folded,
/// and each read kind has one sample per request, HTTP and SQLite alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_folds_every_message_and_samples_every_read() {
    let nats = Nats::start();
    let server = Server::start_with(&nats, &["--rate-limits", "off"]);
    let nats_url = nats.url();
    let data = server.data.display().to_string();
    let args = switchboard_bench::history::HistoryArgs::try_parse_from([
        "history",
        "--url",
        &server.base,
        "--token",
        OPERATOR,
        "--messages",
        "2000",
        "--channels",
        "20",
        "--users",
        "3",
        "--samples",
        "40",
        "--runs",
        "2",
        "--fold-timeout",
        "120",
        "--nats",
        &nats_url,
        "--data",
        &data,
    ])
    .expect("arguments");
    let runs = switchboard_bench::history::run(args)
        .await
        .expect("history");
    assert_eq!(runs.runs.len(), 2);
    for (i, run) in runs.runs.iter().enumerate() {
        assert_eq!(run.folded_messages, 2000, "{run:?}");
        // 2,000 posts, a reaction every 7th and an edit every 50th per channel.
        assert!(run.events > 2000, "{run:?}");
        assert_eq!(run.fold_rate.is_some(), i == 0, "{run:?}");
        for pair in [&run.latest, &run.deep, &run.replies] {
            assert_eq!(pair.errors, 0, "{run:?}");
            assert_eq!(pair.http.samples, 40, "{run:?}");
            assert_eq!(pair.raw.samples, 40, "{run:?}");
            assert!(pair.http.p50 > std::time::Duration::ZERO, "{run:?}");
        }
    }
    let summary = runs.summary();
    assert!(summary.iter().any(|f| f.name == "latest page HTTP p99"));
    assert_eq!(
        runs.get("history fold, append → applied")
            .map(|f| f.spread.runs),
        Some(1)
    );
}

/// `bench unreads` at a tiny size: both projectors fold everything, every
/// `GET /v1/unreads` lists every channel and followed thread, and the
/// SQLite floor agrees with it (no errors), in each run.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unreads_bench_folds_everything_and_every_answer_lists_every_channel() {
    let nats = Nats::start();
    let server = Server::start_with(&nats, &["--rate-limits", "off"]);
    let nats_url = nats.url();
    let data = server.data.to_string_lossy().to_string();
    let args = UnreadsArgs::try_parse_from([
        "unreads",
        "--url",
        &server.base,
        "--token",
        OPERATOR,
        "--messages",
        "3000",
        "--channels",
        "12",
        "--threads",
        "5",
        "--samples",
        "20",
        "--runs",
        "2",
        "--nats",
        &nats_url,
        "--data",
        &data,
    ])
    .expect("arguments");
    let runs = switchboard_bench::unreads::run(args)
        .await
        .expect("unreads");
    assert_eq!(runs.runs.len(), 2);
    for r in &runs.runs {
        // 5 threads replied in, plus those of replies edited to mention her.
        assert_eq!((r.channels, r.errors), (12, 0), "{r:?}");
        assert!(r.threads >= 5, "{r:?}");
        assert_eq!(r.http.samples, 20);
        assert_eq!(r.server.samples, 20, "every answer carries Server-Timing");
        assert!(r.server.p50 <= r.http.p50, "{r:?}");
        assert_eq!(r.raw.samples, 20);
        assert!(r.events > 3000);
    }
    assert!(runs.runs[0].unreads_fold_rate.is_some_and(|r| r > 0.0));
    assert!(runs.runs[0].history_fold_rate.is_some_and(|r| r > 0.0));
    assert!(runs.runs[1].unreads_fold_rate.is_none());
}
