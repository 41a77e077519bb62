//! The log as a product: a foreign payload never wedges a channel, and
//! `switchboard export` / `verify` detect every kind of tampering.

use crate::harness::{bin, run_cli, Nats, Server};
use serde_json::{json, Value};
use std::path::Path;

/// One non-envelope payload published to a channel subject (by anyone who
/// can reach NATS) made every later `POST /v1/messages` to that channel
/// answer 500 forever: the append path decoded the head's body to learn the
/// channel's sequence. Now the sequence travels in a header and the foreign
/// message is quarantined (skipped, never a position of the channel).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_payload_at_the_head_does_not_wedge_the_channel() {
    let nats = Nats::start();
    let mut s = Server::start(&nats);
    let api = s.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "member").await;
    let ch = api.channel(&ada, "general", false).await;
    let first = api.send(&ada, &ch, "before").await.expect(201);
    let seq = first["seq"].as_u64().expect("seq");

    let client = async_nats::connect(nats.url()).await.expect("nats");
    let js = async_nats::jetstream::new(client);
    js.publish(format!("sb.{ws}.ch.{ch}"), "not an envelope".into())
        .await
        .expect("publish")
        .await
        .expect("stored");

    for (i, text) in ["after one", "after two"].iter().enumerate() {
        let m = api.send(&ada, &ch, text).await.expect(201);
        assert_eq!(m["seq"].as_u64(), Some(seq + 1 + i as u64), "{m}");
    }
    // A restarted server (no cached head) appends after it as well.
    js.publish(format!("sb.{ws}.ch.{ch}"), vec![0xff, 0x01, 0x02].into())
        .await
        .expect("publish")
        .await
        .expect("stored");
    s.restart();
    let api = s.api();
    let m = api.send(&ada, &ch, "after restart").await.expect(201);
    assert_eq!(m["seq"].as_u64(), Some(seq + 3), "{m}");
    api.wait_head(&ada, &ch, seq + 3).await;
    let page = api
        .get(
            &format!("/v1/channels/{ch}/messages?after_seq=0&limit=100"),
            &ada,
        )
        .await
        .expect(200);
    let texts: Vec<_> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        texts,
        ["before", "after one", "after two", "after restart"],
        "{texts:?}"
    );
}

/// Runs `switchboard verify DIR`: (success, stdout + stderr).
fn verify(dir: &Path) -> (bool, String) {
    let out = std::process::Command::new(bin())
        .arg("verify")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run switchboard verify");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn export(nats: &Nats, data: &Path, args: &[&str]) -> Value {
    let mut all = vec!["export"];
    all.extend_from_slice(args);
    let (ok, out, err) = run_cli(&all, data, &nats.url());
    assert!(ok, "export failed: {out}{err}");
    serde_json::from_str(out.trim()).expect("export prints JSON")
}

fn lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("events.jsonl"))
        .expect("events.jsonl")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(dir: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(dir.join("events.jsonl"), text).expect("write");
}

/// A copy of the export in `src`, tampered with by `tamper`.
fn tampered(src: &Path, tamper: impl FnOnce(&Path)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for f in ["events.jsonl", "manifest.json"] {
        std::fs::copy(src.join(f), dir.path().join(f)).expect("copy");
    }
    tamper(dir.path());
    dir
}

/// One way to tamper with an export directory.
type Tamper = Box<dyn FnOnce(&Path)>;

/// Export → verify → tamper in six ways → verify names each; a second
/// export into the same directory continues the chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_detects_six_kinds_of_tampering_and_resumes() {
    let nats = Nats::start();
    let s = Server::start(&nats);
    let api = s.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "admin").await;
    let ch = api.channel(&ada, "general", false).await;
    let other = api.channel(&ada, "random", false).await;
    for i in 0..6 {
        api.send(&ada, &ch, &format!("message {i}"))
            .await
            .expect(201);
    }
    api.send(&ada, &other, "elsewhere").await.expect(201);
    let data = tempfile::tempdir().expect("temp dir");
    let out = tempfile::tempdir().expect("temp dir");
    let dir = out.path().join("export");
    let dir_s = dir.to_str().expect("utf-8");

    let first = export(&nats, data.path(), &["--workspace", &ws, "--out", dir_s]);
    assert_eq!(first["resumed"], false, "{first}");
    let n = first["lines"].as_u64().expect("lines");
    assert!(n >= 10, "{first}");
    let (ok, msg) = verify(&dir);
    assert!(ok, "{msg}");
    let all = lines(&dir);
    assert_eq!(all.len() as u64, n);
    let line: Value = serde_json::from_str(&all[0]).expect("json");
    assert_eq!(line["line"], 1);
    assert_eq!(line["subject"], format!("sb.{ws}.ws"));
    assert!(line["stream_seq"].as_u64().is_some() && line["event"]["workspace_id"] == ws.as_str());
    assert!(all.iter().any(|l| l.contains("\"message 3\"")));

    // Resumable: new events (and the first export's `export_made`) are
    // appended; the chain goes on.
    api.send(&ada, &ch, "later").await.expect(201);
    let second = export(&nats, data.path(), &["--workspace", &ws, "--out", dir_s]);
    assert_eq!(second["resumed"], true, "{second}");
    assert_eq!(second["added_lines"].as_u64(), Some(2), "{second}");
    assert_eq!(second["lines"].as_u64(), Some(n + 2));
    let (ok, msg) = verify(&dir);
    assert!(ok, "{msg}");
    let all = lines(&dir);
    assert!(
        all[n as usize].contains("\"export_made\""),
        "{}",
        all[n as usize]
    );
    assert!(all[n as usize + 1].contains("\"later\""));

    // A resume with other parameters is refused and changes nothing
    // (review finding: a wider --until skipped what the first run had
    // read past).
    let before = lines(&dir);
    let (ok, stdout, err) = run_cli(
        &[
            "export",
            "--workspace",
            &ws,
            "--until",
            "2999-01-01T00:00:00Z",
            "--out",
            dir_s,
        ],
        data.path(),
        &nats.url(),
    );
    assert!(!ok, "{stdout}");
    assert!(err.contains("other parameters"), "{err}");
    assert_eq!(lines(&dir), before);

    // One channel only.
    let ch_dir = out.path().join("channel");
    export(
        &nats,
        data.path(),
        &[
            "--workspace",
            &ws,
            "--channel",
            &ch,
            "--out",
            ch_dir.to_str().expect("utf-8"),
        ],
    );
    let subject = format!("\"subject\":\"sb.{ws}.ch.{ch}\"");
    let ch_lines = lines(&ch_dir);
    assert!(ch_lines.len() >= 7, "{ch_lines:?}");
    assert!(
        ch_lines.iter().all(|l| l.contains(&subject)),
        "{ch_lines:?}"
    );
    assert!(verify(&ch_dir).0);

    let cases: Vec<(&str, Tamper, &str)> = vec![
        (
            "edit a line",
            Box::new(|d: &Path| {
                let mut l = lines(d);
                l[4] = l[4].replacen("\"sb.", "\"sb.x", 1);
                write_lines(d, &l);
            }),
            "line 5: altered",
        ),
        (
            "drop a line",
            Box::new(|d: &Path| {
                let mut l = lines(d);
                l.remove(4);
                write_lines(d, &l);
            }),
            "line 5: 1 line(s) removed",
        ),
        (
            "insert a line",
            Box::new(|d: &Path| {
                // A forged line that chains to line 4 and takes its number.
                let mut l = lines(d);
                let forged = l[4].replacen("\"sb.", "\"sb.x", 1);
                l.insert(4, forged);
                write_lines(d, &l);
            }),
            "line 5: inserted",
        ),
        (
            "swap two lines",
            Box::new(|d: &Path| {
                let mut l = lines(d);
                l.swap(4, 5);
                write_lines(d, &l);
            }),
            "lines 5 and 6: reordered",
        ),
        (
            "truncate",
            Box::new(|d: &Path| {
                let mut l = lines(d);
                l.truncate(l.len() - 2);
                write_lines(d, &l);
            }),
            "truncated",
        ),
        (
            "edit the manifest",
            Box::new(|d: &Path| {
                let p = d.join("manifest.json");
                let mut m: Value =
                    serde_json::from_str(&std::fs::read_to_string(&p).expect("read"))
                        .expect("json");
                m["first_stream_seq"] = json!(2);
                std::fs::write(&p, m.to_string()).expect("write");
            }),
            "manifest.json: edited",
        ),
    ];
    for (what, tamper, expected) in cases {
        let t = tampered(&dir, tamper);
        let (ok, msg) = verify(t.path());
        assert!(!ok, "{what}: verified anyway");
        assert!(
            msg.contains(expected),
            "{what}: expected {expected:?} in {msg}"
        );
    }
}

/// The export job over HTTP: an admin starts it, polls it, downloads a
/// directory that verifies; members, another workspace's admin and
/// anonymous callers get nothing; bad input is refused with nothing
/// appended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_job_is_for_the_workspace_admins_only() {
    let nats = Nats::start();
    let s = Server::start(&nats);
    let api = s.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "admin").await;
    let (_, bob) = api.user(&ws, "bob", "member").await;
    let other = api.workspace("Other").await;
    let (_, mallory) = api.user(&other, "mallory", "admin").await;
    let ch = api.channel(&ada, "general", false).await;
    api.send(&ada, &ch, "exported").await.expect(201);

    let len = nats.log_len().await;
    api.post("/v1/admin/exports", &ada, json!({"since": "yesterday"}))
        .await
        .expect_err(400, "invalid_request");
    api.post("/v1/admin/exports", &ada, json!({"channel_id": "a.b"}))
        .await
        .expect_err(400, "invalid_request");
    api.post("/v1/admin/exports", &bob, json!({}))
        .await
        .expect_err(403, "forbidden");
    assert_eq!(nats.log_len().await, len);

    let job = api
        .post("/v1/admin/exports", &ada, json!({"channel_id": ch}))
        .await
        .expect(202);
    let id = job["id"].as_str().expect("id").to_string();
    let path = format!("/v1/admin/exports/{id}");
    let start = std::time::Instant::now();
    let done = loop {
        let j = api.get(&path, &ada).await.expect(200);
        if j["status"] != "running" {
            break j;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(20), "{j}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["channel_id"], ch.as_str());

    // Outsiders: a member, another workspace's admin, nobody.
    api.get(&path, &bob).await.expect_err(403, "forbidden");
    api.get(&path, &mallory).await.expect_err(404, "not_found");
    api.get(&format!("{path}/events.jsonl"), &mallory)
        .await
        .expect_err(404, "not_found");
    api.get(&format!("{path}/events.jsonl"), &bob)
        .await
        .expect_err(403, "forbidden");
    api.get(&path, "nope").await.expect_err(401, "unauthorized");

    // The download verifies.
    let dir = tempfile::tempdir().expect("temp dir");
    let http = reqwest::Client::new();
    for f in ["events.jsonl", "manifest.json"] {
        let r = http
            .get(format!("{}{path}/{f}", s.base))
            .bearer_auth(&ada)
            .send()
            .await
            .expect("download");
        assert_eq!(r.status(), 200);
        let bytes = r.bytes().await.expect("body");
        std::fs::write(dir.path().join(f), bytes).expect("write");
    }
    let (ok, msg) = verify(dir.path());
    assert!(ok, "{msg}");
    let text = std::fs::read_to_string(dir.path().join("events.jsonl")).expect("read");
    assert!(text.contains("\"exported\""));

    // The export is in the log, for the audit log.
    let log = switchboard_streams::Log::open(
        switchboard_streams::connect(&nats.url())
            .await
            .expect("nats"),
        Default::default(),
    )
    .await
    .expect("log");
    let head = log.fetch_head(&format!("sb.{ws}.ws")).await.expect("head");
    let env = log
        .get(head.stream_seq)
        .await
        .expect("get")
        .envelope
        .expect("envelope");
    match env.body {
        Some(switchboard_core::events::Body::ExportMade(e)) => {
            assert_eq!(e.export_id, id);
            assert_eq!(e.channel_id, ch);
            assert!(e.lines >= 1, "{e:?}");
        }
        other => panic!("expected export_made, got {other:?}"),
    }
}

/// `switchboard verify-log`: a clean log verifies; an event removed from
/// the middle of a channel and a forged append (wrong `prev_digest`), both
/// made with a direct NATS connection, are named by subject and seq.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_log_detects_a_removed_and_a_forged_event() {
    let nats = Nats::start();
    let s = Server::start(&nats);
    let api = s.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "admin").await;
    let ch = api.channel(&ada, "general", false).await;
    let mut seqs = Vec::new();
    for i in 0..4 {
        api.send(&ada, &ch, &format!("m{i}")).await.expect(201);
    }
    let data = tempfile::tempdir().expect("temp dir");
    let (ok, out, err) = run_cli(
        &["verify-log", "--workspace", &ws],
        data.path(),
        &nats.url(),
    );
    assert!(ok, "a clean log verifies: {out}{err}");

    let client = async_nats::connect(nats.url()).await.expect("nats");
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream("SB").await.expect("stream");
    let subject = format!("sb.{ws}.ch.{ch}");
    let mut at = 1;
    while let Ok(m) = stream.direct_get_next_for_subject(&subject, Some(at)).await {
        seqs.push(m.sequence);
        at = m.sequence + 1;
    }
    assert!(seqs.len() >= 4, "{seqs:?}");

    // A forged append: a valid envelope with the next channel_seq, but a
    // prev_digest it could not know (the tail here: nothing chains to it).
    let forged = switchboard_core::events::Envelope {
        event_id: "Eforged".into(),
        workspace_id: ws.clone(),
        channel_id: ch.clone(),
        channel_seq: seqs.len() as u64 + 1,
        prev_digest: vec![0; 32],
        ..Default::default()
    };
    let forged_seq = js
        .publish(subject.clone(), prost_encode(&forged).into())
        .await
        .expect("publish")
        .await
        .expect("stored")
        .sequence;
    let (ok, out, _) = run_cli(
        &["verify-log", "--workspace", &ws],
        data.path(),
        &nats.url(),
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("{subject} stream seq {forged_seq}")) && out.contains("prev_digest"),
        "{out}"
    );

    // A removed event in the middle: the next one no longer chains. (The
    // log stream denies deletes: it is removed from a copy, as it would be
    // from the store under the server.)
    let (copy, copy_js) = tamperable_copy(&js).await;
    let removed = seqs[1];
    copy_js
        .get_stream("SB")
        .await
        .expect("stream")
        .delete_message(removed)
        .await
        .expect("delete");
    let (ok, out, _) = run_cli(
        &["verify-log", "--workspace", &ws],
        data.path(),
        &copy.url(),
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("{subject} stream seq {}", seqs[2])),
        "{out}"
    );

    // One running export per workspace (review finding: jobs were
    // unbounded): with the log frozen, a second one waits its turn (429).
    nats.pause();
    let held = api
        .post("/v1/admin/exports", &ada, json!({}))
        .await
        .expect(202);
    let second = api.post("/v1/admin/exports", &ada, json!({})).await;
    nats.resume();
    second.expect_err(429, "rate_limited");
    let held_path = format!("/v1/admin/exports/{}", held["id"].as_str().expect("id"));
    let start = std::time::Instant::now();
    loop {
        let j = api.get(&held_path, &ada).await.expect(200);
        if j["status"] != "running" {
            break;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(30), "{j}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn prost_encode(env: &switchboard_core::events::Envelope) -> Vec<u8> {
    switchboard_streams::encode_envelope(env)
}

/// Signed head checkpoints: removing a channel's last events (with a
/// direct NATS connection) leaves a checkpoint naming a head the chain no
/// longer reaches; a checkpoint signed with another key is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_log_detects_a_tail_deletion_through_checkpoints() {
    let nats = Nats::start();
    let s = Server::start_with(&nats, &["--checkpoint-interval", "0.2"]);
    let api = s.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "admin").await;
    let ch = api.channel(&ada, "general", false).await;
    let mut last = Vec::new();
    for i in 0..5 {
        let m = api.send(&ada, &ch, &format!("m{i}")).await.expect(201);
        last.push(m["seq"].as_u64().expect("seq"));
    }
    let key = std::fs::read_to_string(s.data.join("keys/checkpoint.pub")).expect("public key");
    assert_eq!(key.trim().len(), 64);
    let scratch = tempfile::tempdir().expect("temp dir");
    let verify_log_on = |url: &str| {
        run_cli(
            &["verify-log", "--workspace", &ws, "--public-key", key.trim()],
            scratch.path(),
            url,
        )
    };
    let verify_log = || verify_log_on(&nats.url());
    // Wait until a checkpoint covers every event, and the log verifies.
    let start = std::time::Instant::now();
    loop {
        let (ok, out, err) = verify_log();
        assert!(ok, "a clean log verifies: {out}{err}");
        let summary: Value =
            serde_json::from_str(out.lines().last().unwrap_or("{}")).expect("summary");
        if summary["uncovered"] == 0 && summary["checkpoints"].as_u64() >= Some(1) {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "{summary}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    // Without a key to trust a log with checkpoints does not pass (a
    // self-signed checkpoint proves nothing); several keys may be given,
    // one per signing gateway (review finding).
    let (ok, _, err) = run_cli(
        &["verify-log", "--workspace", &ws],
        scratch.path(),
        &nats.url(),
    );
    assert!(!ok && err.contains("no key to trust"), "{err}");
    let keys = format!("{},{}", "ab".repeat(32), key.trim());
    let (ok, out, err) = run_cli(
        &["verify-log", "--workspace", &ws, "--public-key", &keys],
        scratch.path(),
        &nats.url(),
    );
    assert!(ok, "{out}{err}");

    // Remove the channel's last two events (from a copy: the log stream
    // denies deletes; see `tamperable_copy`).
    let client = async_nats::connect(nats.url()).await.expect("nats");
    let (copy, js) = tamperable_copy(&async_nats::jetstream::new(client)).await;
    let verify_log = || verify_log_on(&copy.url());
    let stream = js.get_stream("SB").await.expect("stream");
    let subject = format!("sb.{ws}.ch.{ch}");
    for _ in 0..2 {
        let m = stream
            .direct_get_last_for_subject(&subject)
            .await
            .expect("last");
        stream.delete_message(m.sequence).await.expect("delete");
    }
    let (ok, out, _) = verify_log();
    assert!(!ok, "{out}");
    assert!(
        out.contains(&subject) && out.contains("removed from the subject's tail"),
        "{out}"
    );

    // A checkpoint signed with another key.
    let other = tempfile::tempdir().expect("temp dir");
    let forger =
        switchboard_streams::checkpoint::CheckpointKey::load_or_create(other.path(), [7; 32])
            .expect("key");
    let forged = switchboard_core::events::Envelope {
        event_id: "Eforged".into(),
        workspace_id: ws.clone(),
        channel_seq: 1_000,
        body: Some(switchboard_core::events::Body::HeadsCheckpoint(
            forger.sign(Vec::new()),
        )),
        ..Default::default()
    };
    let seq = js
        .publish(format!("sb.{ws}.checkpoint"), prost_encode(&forged).into())
        .await
        .expect("publish")
        .await
        .expect("stored")
        .sequence;
    let (ok, out, _) = verify_log();
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "sb.{ws}.checkpoint stream seq {seq}: a checkpoint whose signature does not verify"
        )),
        "{out}"
    );
}

/// `export --attachments` copies each uploaded file's bytes beside the
/// lines; `verify` checks them against the SHA-256 the log states.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_with_attachments_verifies_the_files() {
    let nats = Nats::start();
    let s = Server::start(&nats);
    let api = s.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "admin").await;
    let ch = api.channel(&ada, "general", false).await;
    let r = reqwest::Client::new()
        .post(format!(
            "{}/v1/files?name=notes.txt&channel_id={ch}",
            s.base
        ))
        .bearer_auth(&ada)
        .header("content-type", "text/plain; charset=utf-8")
        .body("the minutes of the meeting")
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status(), 201);
    let f: Value = r.json().await.expect("json");
    let id = f["id"].as_str().expect("id").to_string();
    let data = tempfile::tempdir().expect("temp dir");
    let out = tempfile::tempdir().expect("temp dir");
    let dir = out.path().join("x");
    export(
        &nats,
        data.path(),
        &[
            "--workspace",
            &ws,
            "--attachments",
            "--out",
            dir.to_str().expect("utf-8"),
        ],
    );
    let copy = dir.join("attachments").join(&id);
    assert_eq!(
        std::fs::read_to_string(&copy).expect("attachment"),
        "the minutes of the meeting"
    );
    assert!(verify(&dir).0);
    std::fs::write(&copy, "the minutes, edited").expect("write");
    let (ok, msg) = verify(&dir);
    assert!(
        !ok && msg.contains(&format!("attachments/{id}: altered")),
        "{msg}"
    );
    // A removed file is named too (review finding: it went unnoticed).
    std::fs::remove_file(&copy).expect("remove");
    let (ok, msg) = verify(&dir);
    assert!(
        !ok && msg.contains(&format!("attachments/{id}: removed")),
        "{msg}"
    );
}

/// The log stream denies deletes and purges, and that flag cannot be
/// lifted: an attacker who removes events does it under the server, in its
/// store. This stands in for that: a copy of the log (same subjects,
/// payloads, headers and stream sequences) on a nats-server of its own,
/// whose stream allows deletes.
pub(crate) async fn tamperable_copy(
    src: &async_nats::jetstream::Context,
) -> (Nats, async_nats::jetstream::Context) {
    let copy = Nats::start();
    let client = async_nats::connect(copy.url()).await.expect("nats");
    let js = async_nats::jetstream::new(client);
    let mut stream = src.get_stream("SB").await.expect("stream");
    let info = stream.info().await.expect("info").clone();
    let mut config = info.config.clone();
    config.deny_delete = false;
    config.deny_purge = false;
    config.republish = None;
    js.create_stream(config).await.expect("copy stream");
    for seq in info.state.first_sequence..=info.state.last_sequence {
        let m = stream.get_raw_message(seq).await.expect("message");
        let mut headers = async_nats::HeaderMap::new();
        for (name, values) in m.headers.iter() {
            if name.to_string().starts_with("Nats-Expected") {
                continue;
            }
            for v in values {
                headers.append(name.clone(), v.clone());
            }
        }
        let ack = js
            .publish_with_headers(m.subject.clone(), headers, m.payload.clone())
            .await
            .expect("publish")
            .await
            .expect("ack");
        assert_eq!(ack.sequence, seq, "the copy keeps the stream sequences");
    }
    (copy, js)
}
