//! The replay examples (docs/replay.md) against a real server: the Python
//! consumer (`examples/python/replay.py`, set up by
//! `examples/python/setup.sh`) and the Rust one (`examples/rust/replay.rs`,
//! built by cargo with the tests) replay one workspace from the start and
//! from a timestamp, and their per-channel counts equal what the HTTP
//! history shows — and nothing of the other workspace is counted.
//!
//! With `CI` set, a missing Python set-up fails the test (CI runs the
//! set-up first); elsewhere the Python half is skipped with a note.

use crate::harness::{Api, Nats, Server};
use async_nats::jetstream;
use prost::Message as _;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use switchboard_core::events::{Body, Envelope, MessagePosted};
use switchboard_core::time::rfc3339_ms;

/// Per channel: (messages, deleted), the replay's `messages` and `deleted`.
type Counts = BTreeMap<String, (u64, u64)>;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python of the example's virtualenv, if set up. In CI its absence
/// is a failure, not a skip.
fn python() -> Option<PathBuf> {
    let py = root().join("examples/python/.venv/bin/python");
    let ready = py.exists()
        && root()
            .join("examples/python/gen/switchboard/v1/events_pb2.py")
            .exists();
    if ready {
        return Some(py);
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(
        !ci,
        "CI: the Python replay example is not set up: run examples/python/setup.sh"
    );
    eprintln!("skipping the Python replay example: run examples/python/setup.sh first");
    None
}

/// The Rust example's binary: cargo builds examples with the tests, next
/// to the test binary's `deps/` directory.
fn rust_example() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let bin = dir.join("examples").join("replay");
    assert!(
        bin.exists(),
        "{} missing: cargo builds examples with the tests (cargo build --example replay)",
        bin.display()
    );
    bin
}

/// Runs an example (program + leading args) with `args`; returns its exit
/// code and its JSON.
fn run_example(cmd: &[PathBuf], args: &[&str]) -> (i32, Value) {
    let out = Command::new(&cmd[0])
        .args(&cmd[1..])
        .args(args)
        .output()
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "{cmd:?} {args:?}: no JSON ({e}); status {:?}\nstdout: {stdout}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

/// The examples to run: the Rust one always, the Python one when set up.
fn examples() -> Vec<(&'static str, Vec<PathBuf>)> {
    let mut ex = vec![("rust", vec![rust_example()])];
    if let Some(py) = python() {
        ex.push(("python", vec![py, root().join("examples/python/replay.py")]));
    }
    ex
}

fn replay_counts(v: &Value) -> Counts {
    v["channels"]
        .as_object()
        .expect("channels")
        .iter()
        .map(|(id, c)| {
            let n = |k: &str| c[k].as_u64().expect("count");
            assert_eq!(n("live"), n("messages") - n("deleted"), "{c}");
            (id.clone(), (n("messages"), n("deleted")))
        })
        .collect()
}

/// The HTTP history's counts for each channel: every entry of
/// `GET /v1/channels/{id}/messages` (all pages; tombstones are entries)
/// whose `ts` is at or after `since`, and of those the deleted ones.
async fn http_counts(api: &Api, token: &str, channels: &[&str], since: &str) -> Counts {
    let mut out = Counts::new();
    for ch in channels {
        let (mut messages, mut deleted, mut after) = (0, 0, 0);
        loop {
            let page = api
                .get(
                    &format!("/v1/channels/{ch}/messages?after_seq={after}&limit=200"),
                    token,
                )
                .await
                .expect(200);
            let rows = page["messages"].as_array().expect("messages");
            for m in rows {
                // rfc3339_ms: fixed width, so the strings order as times.
                if m["ts"].as_str().expect("ts") >= since {
                    messages += 1;
                    deleted += u64::from(m["deleted"].as_bool().expect("deleted"));
                }
                after = m["seq"].as_u64().expect("seq");
            }
            if !page["has_more"].as_bool().expect("has_more") {
                break;
            }
        }
        out.insert(ch.to_string(), (messages, deleted));
    }
    out
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

async fn post(api: &Api, token: &str, body: Value) -> String {
    api.post("/v1/messages", token, body).await.expect(201)["id"]
        .as_str()
        .expect("id")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_and_rust_examples_count_one_workspace_as_the_http_history_does() {
    let nats = Nats::start();
    let server = Server::start_with(&nats, &["--rate-limits", "off"]);
    let api = server.api();
    let a = api.workspace("Acme").await;
    let (_, ada) = api.user(&a, "ada", "admin").await;
    let b = api.workspace("Beta").await;
    let (_, bea) = api.user(&b, "bea", "admin").await;
    let general = api.channel(&ada, "general", false).await;
    let random = api.channel(&ada, "random", false).await;
    let secret = api.channel(&ada, "secret", true).await;
    let empty = api.channel(&ada, "empty", false).await;
    let other = api.channel(&bea, "general", false).await;

    // Before the timestamp: posts, a thread reply (in its thread only),
    // one also sent to the channel, a delete; the other workspace posts too.
    let mut general_ids = Vec::new();
    for i in 0..5 {
        general_ids.push(
            post(
                &api,
                &ada,
                json!({"channel_id": general, "text": format!("g{i}")}),
            )
            .await,
        );
    }
    post(
        &api,
        &ada,
        json!({"channel_id": general, "text": "reply", "thread_root_id": general_ids[0]}),
    )
    .await;
    post(
        &api,
        &ada,
        json!({"channel_id": general, "text": "reply too",
        "thread_root_id": general_ids[0], "also_send_to_channel": true}),
    )
    .await;
    api.delete(&format!("/v1/messages/{}", general_ids[1]), &ada)
        .await
        .expect(200);
    for i in 0..3 {
        post(
            &api,
            &ada,
            json!({"channel_id": random, "text": format!("r{i}")}),
        )
        .await;
    }
    for i in 0..4 {
        post(
            &api,
            &bea,
            json!({"channel_id": other, "text": format!("b{i}")}),
        )
        .await;
    }

    // The timestamp: after every event above was stored, before any below
    // (the sleeps only separate the clock readings by a few ms).
    tokio::time::sleep(Duration::from_millis(20)).await;
    let since = rfc3339_ms(now_ms());
    tokio::time::sleep(Duration::from_millis(20)).await;

    for i in 0..2 {
        post(
            &api,
            &ada,
            json!({"channel_id": general, "text": format!("g-late{i}")}),
        )
        .await;
    }
    let late = post(&api, &ada, json!({"channel_id": random, "text": "r-late"})).await;
    api.delete(&format!("/v1/messages/{late}"), &ada)
        .await
        .expect(200);
    // A delete, after the timestamp, of a message posted before it.
    api.delete(&format!("/v1/messages/{}", general_ids[2]), &ada)
        .await
        .expect(200);
    for i in 0..3 {
        post(
            &api,
            &ada,
            json!({"channel_id": secret, "text": format!("s{i}")}),
        )
        .await;
    }
    post(&api, &bea, json!({"channel_id": other, "text": "b-late"})).await;

    let channels = [
        general.as_str(),
        random.as_str(),
        secret.as_str(),
        empty.as_str(),
    ];
    let all = http_counts(&api, &ada, &channels, "").await;
    let recent = http_counts(&api, &ada, &channels, &since).await;
    // What was posted: the history and the test agree first.
    assert_eq!(all[&general], (5 + 1 + 2, 2));
    assert_eq!(all[&random], (3 + 1, 1));
    assert_eq!(all[&secret], (3, 0));
    assert_eq!(all[&empty], (0, 0));
    assert_eq!(recent[&general], (2, 0));
    assert_eq!(recent[&random], (1, 1));
    assert_eq!(recent[&secret], (3, 0));

    let url = nats.url();
    let ran: Vec<&str> = examples().iter().map(|(n, _)| *n).collect();
    for (name, cmd) in examples() {
        let (code, v) = run_example(&cmd, &["--nats", &url, "--workspace", &a]);
        assert_eq!(code, 0, "{name}: {v}");
        assert_eq!(replay_counts(&v), all, "{name} from the start: {v}");
        assert_eq!(v["gaps"], json!([]), "{name}");
        assert_eq!(
            (v["unknown"].as_u64(), v["undecodable"].as_u64()),
            (Some(0), Some(0)),
            "{name}"
        );
        assert!(
            !v["channels"]
                .as_object()
                .expect("channels")
                .contains_key(&other),
            "{name}"
        );
        // Of the 2 replies posted in general, one is in its thread only.
        assert_eq!(v["channels"][&general]["replies"], 1, "{name}");

        let (code, v) = run_example(
            &cmd,
            &["--nats", &url, "--workspace", &a, "--since", &since],
        );
        assert_eq!(code, 0, "{name}: {v}");
        // Channels with no event since are not listed.
        let mut want = recent.clone();
        want.remove(&empty);
        assert_eq!(replay_counts(&v), want, "{name} since {since}: {v}");
        assert_eq!(v["gaps"], json!([]), "{name}");

        let (code, v) = run_example(&cmd, &["--nats", &url, "--workspace", &b]);
        assert_eq!(code, 0, "{name}: {v}");
        assert_eq!(
            replay_counts(&v),
            Counts::from([(other.clone(), (5, 0))]),
            "{name}: {v}"
        );

        // A workspace with no event: the replay ends at once, empty.
        let (code, v) = run_example(&cmd, &["--nats", &url, "--workspace", "Wnone"]);
        assert_eq!((code, v["events"].as_u64()), (0, Some(0)), "{name}: {v}");
    }
    eprintln!("replay examples run: {ran:?}");
}

/// An envelope on `sb.Wx.ch.C1` with this `channel_seq` and body.
fn envelope(seq: u64, body: Option<Body>) -> Vec<u8> {
    Envelope {
        event_id: format!("E{seq}"),
        workspace_id: "Wx".into(),
        channel_id: "C1".into(),
        channel_seq: seq,
        body,
        ..Default::default()
    }
    .encode_to_vec()
}

/// The compatibility rules as a consumer keeps them, on a hand-made log:
/// a oneof case newer than the consumer's schema is skipped (and counted
/// as unknown), a payload that is no envelope is counted as undecodable,
/// and a hole in `channel_seq` is reported as a gap (exit status 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_skip_unknown_cases_and_report_gaps() {
    let nats = Nats::start();
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let js = jetstream::new(client);
    js.create_stream(jetstream::stream::Config {
        name: "SB".into(),
        subjects: vec!["sb.>".into()],
        ..Default::default()
    })
    .await
    .expect("stream");
    let posted = |id: &str| {
        Some(Body::MessagePosted(MessagePosted {
            message_id: id.into(),
            text: "hi".into(),
            ..Default::default()
        }))
    };
    // channel_seq 1, 2, (unknown case) 3, (3 is missing after it) 5.
    let mut unknown = envelope(3, None);
    // Field 999 (a future oneof case), length-delimited, empty.
    unknown.extend_from_slice(&[0xba, 0x3e, 0x00]);
    let payloads = [
        envelope(1, posted("M1")),
        envelope(2, posted("M2")),
        unknown,
        b"\xff\xff not an envelope".to_vec(),
        envelope(5, posted("M5")),
    ];
    for p in payloads {
        js.publish("sb.Wx.ch.C1", p.into())
            .await
            .expect("publish")
            .await
            .expect("ack");
    }
    for (name, cmd) in examples() {
        // (Own reply subjects, as replay credentials will require.)
        let (code, v) = run_example(
            &cmd,
            &[
                "--nats",
                &nats.url(),
                "--workspace",
                "Wx",
                "--inbox-prefix",
                "_INBOX_Wx",
            ],
        );
        assert_eq!(code, 3, "{name}: a gap exits 3: {v}");
        assert_eq!(v["events"], 5, "{name}: {v}");
        assert_eq!(
            (v["unknown"].as_u64(), v["undecodable"].as_u64()),
            (Some(1), Some(1)),
            "{name}"
        );
        assert_eq!(v["channels"]["C1"]["messages"], 3, "{name}: {v}");
        assert_eq!(
            v["gaps"],
            json!([{"subject": "sb.Wx.ch.C1", "expected": 4, "got": 5, "stream_seq": 5}]),
            "{name}"
        );
        // From a stream sequence: the first event of a subject is the base.
        let (code, v) = run_example(
            &cmd,
            &[
                "--nats",
                &nats.url(),
                "--workspace",
                "Wx",
                "--start-seq",
                "5",
            ],
        );
        assert_eq!((code, v["events"].as_u64()), (0, Some(1)), "{name}: {v}");
        // From a time, on a stream without direct gets (message gets find
        // the start): these envelopes' ts_ms is 0, so from the epoch on
        // everything is replayed (the gap still found), from now on nothing.
        let on = |since: &str| {
            run_example(
                &cmd,
                &[
                    "--nats",
                    &nats.url(),
                    "--workspace",
                    "Wx",
                    "--since",
                    since,
                    "--since-margin",
                    "0",
                ],
            )
        };
        let (code, v) = on("1970-01-01T00:00:00Z");
        assert_eq!((code, v["events"].as_u64()), (3, Some(5)), "{name}: {v}");
        assert_eq!(v["start"]["start_seq"], 1, "{name}: {v}");
        assert!(
            v["start"]["found_by"]
                .as_str()
                .is_some_and(|f| f.contains("message gets")),
            "{name}: {v}"
        );
        let (code, v) = on(&rfc3339_ms(now_ms()));
        assert_eq!((code, v["events"].as_u64()), (0, Some(0)), "{name}: {v}");
    }
}

/// `switchboard-bench replay` at a small size: every replay delivers the
/// whole workspace and both examples' counts match what it generated (the
/// benchmark fails otherwise).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_replay_checks_every_replays_counts() {
    use clap::Parser;
    let rust = rust_example();
    let mut args = vec![
        "replay".to_string(),
        "--events".into(),
        "2000".into(),
        "--channels".into(),
        "7".into(),
        "--runs".into(),
        "1".into(),
        "--rust-example".into(),
        rust.display().to_string(),
    ];
    let py = python();
    match &py {
        Some(py) => {
            args.push("--python".into());
            args.push(py.display().to_string());
            args.push("--python-script".into());
            args.push(
                root()
                    .join("examples/python/replay.py")
                    .display()
                    .to_string(),
            );
        }
        None => args.push("--no-python".into()),
    }
    let a = switchboard_bench::replay::ReplayArgs::try_parse_from(&args).expect("arguments");
    let runs = switchboard_bench::replay::run(a)
        .await
        .expect("bench replay");
    assert_eq!(runs.runs.len(), 1);
    let run = &runs.runs[0];
    assert_eq!(run.events, 2000);
    assert_eq!(run.python_secs.is_some(), py.is_some());
    assert!(run.raw_secs > 0.0 && run.rust_secs > 0.0);
}

/// Both examples replay with a least-privilege replay credential of the
/// platform's own nats-server (issue 10 item 2: `admin
/// replay-credentials`; the URL carries the credentials, the inbox prefix
/// is the credential's own): they need no stream info and no
/// permission beyond what the credential grants, count what the HTTP
/// history shows, and a credential of another workspace gets nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_replay_with_a_replay_credential() {
    let server = Server::start_embedded(&["--rate-limits", "off"]);
    let api = server.api();
    let a = api.workspace("Acme").await;
    let (_, ada) = api.user(&a, "ada", "admin").await;
    let b = api.workspace("Beta").await;
    let (_, bea) = api.user(&b, "bea", "admin").await;
    let general = api.channel(&ada, "general", false).await;
    let secret = api.channel(&ada, "secret", true).await;
    let other = api.channel(&bea, "general", false).await;
    for (ch, n) in [(&general, 4), (&secret, 2)] {
        for i in 0..n {
            post(
                &api,
                &ada,
                json!({"channel_id": ch, "text": format!("m{i}")}),
            )
            .await;
        }
    }
    post(
        &api,
        &bea,
        json!({"channel_id": other, "text": "beta only"}),
    )
    .await;
    let want = http_counts(&api, &ada, &[&general, &secret], "").await;

    let creds = |ws: &str| crate::replay_auth::replay_credentials(&server, &["--workspace", ws]);
    let (ca, cb) = (creds(&a), creds(&b));
    for (name, cmd) in examples() {
        let args = |c: &Value| {
            vec![
                "--nats".to_string(),
                c["url"].as_str().expect("url").to_string(),
                "--inbox-prefix".to_string(),
                c["inbox_prefix"].as_str().expect("prefix").to_string(),
                "--stream".to_string(),
                c["stream"].as_str().expect("stream").to_string(),
                "--workspace".to_string(),
            ]
        };
        let mut mine = args(&ca);
        mine.push(a.clone());
        let mine: Vec<&str> = mine.iter().map(String::as_str).collect();
        let (code, v) = run_example(&cmd, &mine);
        assert_eq!(code, 0, "{name}: {v}");
        assert_eq!(replay_counts(&v), want, "{name}: {v}");
        assert!(!v.to_string().contains(&other), "{name}: {v}");

        // B's credential asking for A's workspace: refused, nothing read.
        let mut theirs = args(&cb);
        theirs.push(a.clone());
        let theirs: Vec<&str> = theirs.iter().map(String::as_str).collect();
        let out = Command::new(&cmd[0])
            .args(&cmd[1..])
            .args(&theirs)
            .output()
            .expect("run the example");
        assert!(!out.status.success(), "{name}: B's credential read A");
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains(&general),
            "{name}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// `--since` through a replay credential (regression): the replay
/// stream's copy stores every event it copied when it was created with
/// that moment's time, so a start by stored time (JetStream's
/// `by_start_time`) replayed everything posted before the credential. The
/// examples find the start by the envelopes' own `ts_ms` (a binary search
/// over the stream's sequences) and skip what is earlier: from a time
/// between two batches of posts, before or after the credential's issue,
/// they count only the later batch, as the HTTP history does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_replay_since_a_time_with_a_replay_credential() {
    let server = Server::start_embedded(&["--rate-limits", "off"]);
    let api = server.api();
    let a = api.workspace("Acme").await;
    let (_, ada) = api.user(&a, "ada", "admin").await;
    let general = api.channel(&ada, "general", false).await;
    let random = api.channel(&ada, "random", false).await;
    let mut early = Vec::new();
    for (ch, n) in [(&general, 4), (&random, 2)] {
        for i in 0..n {
            early.push(
                post(
                    &api,
                    &ada,
                    json!({"channel_id": ch, "text": format!("early{i}")}),
                )
                .await,
            );
        }
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let before_credential = rfc3339_ms(now_ms());
    tokio::time::sleep(Duration::from_millis(20)).await;
    // The copy is made now: the early events are stored at this time.
    let c = crate::replay_auth::replay_credentials(&server, &["--workspace", &a]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let after_credential = rfc3339_ms(now_ms());
    tokio::time::sleep(Duration::from_millis(20)).await;
    for i in 0..3 {
        post(
            &api,
            &ada,
            json!({"channel_id": general, "text": format!("late{i}")}),
        )
        .await;
    }
    let late = post(&api, &ada, json!({"channel_id": random, "text": "late"})).await;
    api.delete(&format!("/v1/messages/{late}"), &ada)
        .await
        .expect(200);
    // A delete, after the time, of a message posted before it: not counted.
    api.delete(&format!("/v1/messages/{}", early[0]), &ada)
        .await
        .expect(200);

    let channels = [general.as_str(), random.as_str()];
    let all = http_counts(&api, &ada, &channels, "").await;
    let base = [
        "--nats".to_string(),
        c["url"].as_str().expect("url").to_string(),
        "--inbox-prefix".to_string(),
        c["inbox_prefix"].as_str().expect("prefix").to_string(),
        "--stream".to_string(),
        c["stream"].as_str().expect("stream").to_string(),
        "--workspace".to_string(),
        a.clone(),
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter()
            .cloned()
            .chain(extra.iter().map(|s| s.to_string()))
            .collect()
    };
    let run = |cmd: &[PathBuf], args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_checked(cmd, &args)
    };
    // The copy follows the log within moments: wait until it holds all.
    let rust = vec![rust_example()];
    let waited = std::time::Instant::now();
    loop {
        let (code, v, err) = run(&rust, with(&[]));
        assert_eq!(code, 0, "{v}\n{err}");
        if replay_counts(&v) == all {
            break;
        }
        assert!(waited.elapsed() < Duration::from_secs(20), "{v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let ran: Vec<&str> = examples().iter().map(|(n, _)| *n).collect();
    for since in [&before_credential, &after_credential] {
        let want = http_counts(&api, &ada, &channels, since).await;
        // Only the later posts (one of them deleted).
        assert_eq!(
            want,
            Counts::from([(general.clone(), (3, 0)), (random.clone(), (1, 1))]),
            "since {since}"
        );
        for (name, cmd) in examples() {
            // The default margin (the search aims a minute earlier: it
            // starts at the beginning here, the filter skips the rest) and
            // none (the search itself lands after the early events).
            for margin in [None, Some("0")] {
                let mut extra = vec!["--since", since.as_str()];
                extra.extend(margin.iter().flat_map(|m| ["--since-margin", *m]));
                let (code, v, err) = run(&cmd, with(&extra));
                assert_eq!(
                    code, 0,
                    "{name} since {since} margin {margin:?}: {v}\n{err}"
                );
                assert_eq!(
                    replay_counts(&v),
                    want,
                    "{name} since {since} margin {margin:?}: {v}"
                );
                assert_eq!(v["gaps"], json!([]), "{name}: {v}");
                assert_eq!(findings(&v), (&json!([]), &json!([])), "{name}: {v}");
                let start = &v["start"];
                assert_eq!(start["deliver_policy"], "by_start_sequence", "{name}: {v}");
                assert_eq!(start["since"], since.as_str(), "{name}: {v}");
                let start_seq = start["start_seq"].as_u64().expect("start_seq");
                if margin.is_some() {
                    assert!(
                        start_seq > 1,
                        "{name}: the search found the later events: {v}"
                    );
                } else {
                    assert!(start["skipped"].as_u64() > Some(0), "{name}: {v}");
                }
            }
        }
    }
    eprintln!("replay examples run: {ran:?}");
}

/// Runs an example (program + leading args) with `args`: its exit code,
/// its JSON and its standard error.
fn run_checked(cmd: &[PathBuf], args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(&cmd[0])
        .args(&cmd[1..])
        .args(args)
        .output()
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "{cmd:?} {args:?}: no JSON ({e}); status {:?}\nstdout: {stdout}\nstderr: {stderr}",
            out.status
        )
    });
    (out.status.code().unwrap_or(-1), v, stderr)
}

/// The chain and checkpoint findings of a replay, for messages.
fn findings(v: &Value) -> (&Value, &Value) {
    (&v["chain"]["findings"], &v["checkpoints"]["findings"])
}

/// (subject, channel_seq, kind) of each checkpoint finding.
fn checkpoint_findings(v: &Value) -> Vec<(String, u64, String)> {
    v["checkpoints"]["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["subject"].as_str().expect("subject").to_string(),
                f["channel_seq"].as_u64().expect("seq"),
                f["kind"].as_str().expect("kind").to_string(),
            )
        })
        .collect()
}

/// Issue 10, "Tests": the examples (the Python one in CI) check each
/// subject's hash chain (`prev_digest`) and the signed head checkpoints
/// while they replay a real workspace's log: a clean log passes (from the
/// start, with the key as a file or in hex among others, and from a time,
/// where each subject's first event seen starts its chain); a key that
/// did not sign the checkpoints exits 6; a channel's tail removed under a
/// checkpoint that signed it exits 5; a checkpoint signed by another key
/// exits 6; a forged append with a wrong `prev_digest` published straight
/// to the stream exits 4 naming its channel and seq.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_check_the_hash_chain_and_the_checkpoints() {
    let nats = Nats::start();
    let server = Server::start_with(
        &nats,
        &["--rate-limits", "off", "--checkpoint-interval", "0.2"],
    );
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "admin").await;
    let general = api.channel(&ada, "general", false).await;
    let random = api.channel(&ada, "random", false).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            post(
                &api,
                &ada,
                json!({"channel_id": general, "text": format!("g{i}")}),
            )
            .await,
        );
    }
    api.delete(&format!("/v1/messages/{}", ids[0]), &ada)
        .await
        .expect(200);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let since = rfc3339_ms(now_ms());
    tokio::time::sleep(Duration::from_millis(20)).await;
    for i in 0..3 {
        post(
            &api,
            &ada,
            json!({"channel_id": random, "text": format!("r{i}")}),
        )
        .await;
        post(
            &api,
            &ada,
            json!({"channel_id": general, "text": format!("late{i}")}),
        )
        .await;
    }
    let want = http_counts(&api, &ada, &[&general, &random], "").await;
    let key_file = server.data.join("keys/checkpoint.pub");
    let key = std::fs::read_to_string(&key_file).expect("public key");
    let key = key.trim();
    let key_path = key_file.to_str().expect("utf-8");
    let url = nats.url();

    // Wait until a signed checkpoint covers every event (verify-log says
    // so), then the examples check it all.
    let scratch = tempfile::tempdir().expect("temp dir");
    let start = std::time::Instant::now();
    loop {
        let (ok, out, err) = crate::harness::run_cli(
            &["verify-log", "--workspace", &ws, "--public-key", key],
            scratch.path(),
            &url,
        );
        assert!(ok, "a clean log verifies: {out}{err}");
        let summary: Value =
            serde_json::from_str(out.lines().last().unwrap_or("{}")).expect("summary");
        if summary["uncovered"] == 0 && summary["checkpoints"].as_u64() >= Some(1) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{summary}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let on = |url: &str, extra: &[&str]| -> Vec<String> {
        ["--nats", url, "--workspace", ws.as_str()]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    };
    let run = |cmd: &[PathBuf], args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_checked(cmd, &args)
    };
    let two_keys = format!("{},{key}", "ab".repeat(32));
    let stranger = "ab".repeat(32);
    let ran: Vec<&str> = examples().iter().map(|(n, _)| *n).collect();
    for (name, cmd) in examples() {
        for extra in [
            vec!["--public-key", key_path],
            vec!["--public-key", two_keys.as_str()],
        ] {
            let (code, v, err) = run(&cmd, on(&url, &extra));
            assert_eq!(code, 0, "{name} {extra:?}: {v}\n{err}");
            assert_eq!(findings(&v), (&json!([]), &json!([])), "{name}: {v}");
            assert_eq!(replay_counts(&v), want, "{name}: {v}");
            let chain = &v["chain"];
            // Every event after each subject's first chains to the one
            // before.
            assert!(chain["checked"].as_u64() >= Some(10), "{name}: {v}");
            assert_eq!(
                (chain["bases"].as_u64(), chain["unchained"].as_u64()),
                (Some(0), Some(0)),
                "{name}: {v}"
            );
            let cps = &v["checkpoints"];
            assert!(cps["verified"].as_u64() >= Some(1), "{name}: {v}");
            assert_eq!(cps["read"], cps["verified"], "{name}: {v}");
            // The workspace subject and both channels, at least.
            assert!(cps["heads_checked"].as_u64() >= Some(3), "{name}: {v}");
            assert_eq!(cps["heads_unchecked"], 0, "{name}: {v}");
        }
        // From a time: each subject's first event seen starts its chain
        // (said on stderr); heads signed before it are not checked.
        let (code, v, err) = run(
            &cmd,
            on(&url, &["--since", &since, "--public-key", key_path]),
        );
        assert_eq!(code, 0, "{name}: {v}\n{err}");
        assert_eq!(findings(&v), (&json!([]), &json!([])), "{name}: {v}");
        assert!(v["chain"]["bases"].as_u64() >= Some(2), "{name}: {v}");
        assert!(err.contains("started mid-stream"), "{name}: {err}");
        assert!(
            v["checkpoints"]["heads_checked"].as_u64() >= Some(2),
            "{name}: {v}"
        );
        // A key that did not sign them: every checkpoint is refused.
        let (code, v, _) = run(&cmd, on(&url, &["--public-key", &stranger]));
        assert_eq!(code, 6, "{name}: {v}");
        assert_eq!(v["checkpoints"]["verified"], 0, "{name}: {v}");
        // No key: checked against their own key only (said on stderr).
        let (code, v, err) = run(&cmd, on(&url, &[]));
        assert_eq!(
            (code, v["checkpoints"]["trusted_keys"].as_u64()),
            (0, Some(0)),
            "{name}: {v}"
        );
        assert!(err.contains("no --public-key"), "{name}: {err}");
    }

    let client = async_nats::connect(&url).await.expect("nats");
    let js = jetstream::new(client);
    let general_subject = format!("sb.{ws}.ch.{general}");
    let cp_subject = format!("sb.{ws}.checkpoint");

    // A channel's last two events removed (from a copy: the log stream
    // denies deletes, see chain_export's tamperable_copy): no gap and no
    // broken link, but the checkpoint that signed them names what is gone.
    let (copy, copy_js) = crate::chain_export::tamperable_copy(&js).await;
    let stream = copy_js.get_stream("SB").await.expect("stream");
    let mut removed = Vec::new();
    for _ in 0..2 {
        let m = stream
            .direct_get_last_for_subject(&general_subject)
            .await
            .expect("last");
        removed.push(
            Envelope::decode(m.payload.as_ref())
                .expect("envelope")
                .channel_seq,
        );
        stream.delete_message(m.sequence).await.expect("delete");
    }
    for (name, cmd) in examples() {
        let (code, v, err) = run(&cmd, on(&copy.url(), &["--public-key", key_path]));
        assert_eq!(code, 5, "{name}: {v}\n{err}");
        assert_eq!(findings(&v).0, &json!([]), "{name}: {v}");
        assert_eq!(v["gaps"], json!([]), "{name}: {v}");
        let named = checkpoint_findings(&v);
        assert!(
            named.contains(&(general_subject.clone(), removed[0], "removed".into())),
            "{name}: {v}"
        );
        assert!(
            named.iter().all(|(s, seq, k)| s == &general_subject
                && removed.contains(seq)
                && k == "removed"),
            "{name}: {v}"
        );
        assert!(
            err.contains(&format!("{general_subject} channel_seq {}", removed[0])),
            "{name}: {err}"
        );
    }
    drop(copy);

    // A checkpoint signed by another key, well formed otherwise (next
    // channel_seq, chained to the last checkpoint), on a copy.
    let (copy, copy_js) = crate::chain_export::tamperable_copy(&js).await;
    let stream = copy_js.get_stream("SB").await.expect("stream");
    let last = stream
        .direct_get_last_for_subject(&cp_subject)
        .await
        .expect("last checkpoint");
    let last_env = Envelope::decode(last.payload.as_ref()).expect("envelope");
    let heads = match last_env.body {
        Some(Body::HeadsCheckpoint(cp)) => cp.heads,
        other => panic!("not a checkpoint: {other:?}"),
    };
    let other_dir = tempfile::tempdir().expect("temp dir");
    let forger =
        switchboard_streams::checkpoint::CheckpointKey::load_or_create(other_dir.path(), [7; 32])
            .expect("key");
    let forged = Envelope {
        event_id: "Eforged".into(),
        workspace_id: ws.clone(),
        channel_seq: last_env.channel_seq + 1,
        prev_digest: switchboard_streams::payload_digest(&last.payload).to_vec(),
        body: Some(Body::HeadsCheckpoint(forger.sign(heads))),
        ..Default::default()
    };
    let forged_seq = copy_js
        .publish(cp_subject.clone(), forged.encode_to_vec().into())
        .await
        .expect("publish")
        .await
        .expect("stored")
        .sequence;
    for (name, cmd) in examples() {
        let (code, v, err) = run(&cmd, on(&copy.url(), &["--public-key", key_path]));
        assert_eq!(code, 6, "{name}: {v}\n{err}");
        assert_eq!(
            findings(&v),
            (
                &json!([]),
                &json!([{"subject": cp_subject, "channel_seq": last_env.channel_seq + 1,
                         "stream_seq": forged_seq, "kind": "signature",
                         "problem": "a checkpoint whose signature does not verify (forged)"}])
            ),
            "{name}: {v}"
        );
    }
    drop(copy);

    // A forged append on the live log, published straight to the stream:
    // the next channel_seq but a prev_digest it could not know. The server
    // appends after it (chained to it), so only the forged link breaks.
    let head = js
        .get_stream("SB")
        .await
        .expect("stream")
        .direct_get_last_for_subject(&general_subject)
        .await
        .expect("head");
    let head_seq = Envelope::decode(head.payload.as_ref())
        .expect("envelope")
        .channel_seq;
    let forged = Envelope {
        event_id: "Eforged".into(),
        workspace_id: ws.clone(),
        channel_id: general.clone(),
        channel_seq: head_seq + 1,
        prev_digest: vec![0; 32],
        body: Some(Body::MessagePosted(MessagePosted {
            message_id: "Mforged".into(),
            text: "forged".into(),
            ..Default::default()
        })),
        ..Default::default()
    };
    let forged_seq = js
        .publish(general_subject.clone(), forged.encode_to_vec().into())
        .await
        .expect("publish")
        .await
        .expect("stored")
        .sequence;
    let after = api
        .send(&ada, &general, "after the forgery")
        .await
        .expect(201);
    assert_eq!(after["seq"].as_u64(), Some(head_seq + 2), "{after}");
    for (name, cmd) in examples() {
        let (code, v, err) = run(&cmd, on(&url, &["--public-key", key_path]));
        assert_eq!(code, 4, "{name}: {v}\n{err}");
        assert_eq!(v["gaps"], json!([]), "{name}: {v}");
        let chain = findings(&v).0.as_array().expect("findings");
        assert_eq!(chain.len(), 1, "{name}: {v}");
        assert_eq!(
            (
                chain[0]["subject"].as_str(),
                chain[0]["channel_seq"].as_u64(),
                chain[0]["stream_seq"].as_u64()
            ),
            (
                Some(general_subject.as_str()),
                Some(head_seq + 1),
                Some(forged_seq)
            ),
            "{name}: {v}"
        );
        assert!(
            err.contains(&format!(
                "{general_subject} channel_seq {} (stream seq {forged_seq}): prev_digest does not match",
                head_seq + 1
            )),
            "{name}: {err}"
        );
    }
    eprintln!("chain and checkpoint checks run by: {ran:?}");
}
