//! Graceful shutdown: SIGTERM tells real-time clients to reconnect (a
//! `reconnect` frame, then a close frame 1001 "going away" / the end of
//! the event stream), stops accepting connections, answers every request
//! it had accepted, leaves every projector's checkpoint at the log head,
//! and the process exits cleanly.

use crate::harness::{event_seqs, Nats, Server, Sse, SseEnd, Ws};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_realtime_streams_and_exits_promptly() {
    let nats = Nats::start();
    let mut server = Server::start(&nats);
    let api = server.api();
    let ws_id = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws_id, "ada", "admin").await;
    let ch = api.channel(&ada, "general", false).await;
    api.send(&ada, &ch, "hello").await.expect(201);

    // Both streams are open and delivering.
    let mut ws = Ws::connect(&server.base, &ada).await;
    ws.subscribe(&[(&ch, 0)]).await;
    let frames = ws
        .frames_until(Duration::from_secs(10), |f| f["type"] == "event")
        .await;
    assert_eq!(event_seqs(&frames, &ch), [1], "{frames:?}");
    let mut sse = Sse::connect(&server.base, &ada, &format!("{ch}:0"), None).await;
    let mut got = Vec::new();
    while let Some(ev) = sse.next(Duration::from_secs(10)).await {
        let is_event = ev.data["type"] == "event";
        got.push(ev.data);
        if is_event {
            break;
        }
    }
    assert_eq!(event_seqs(&got, &ch), [1], "{got:?}");

    let start = Instant::now();
    let exited = tokio::task::spawn_blocking(move || server.terminate(Duration::from_secs(15)));
    // Each stream's last frame says to reconnect, then it closes.
    let ws_bye = async {
        let frames = ws
            .frames_until(Duration::from_secs(15), |f| f["type"] == "reconnect")
            .await;
        (frames, ws.close_code(Duration::from_secs(15)).await)
    };
    let sse_bye = async {
        let mut last = None;
        while let Some(ev) = sse.next(Duration::from_secs(15)).await {
            let done = ev.data["type"] == "reconnect";
            last = Some(ev);
            if done {
                break;
            }
        }
        (last, sse.end_within(Duration::from_secs(15)).await)
    };
    let ((ws_frames, ws_closed), (sse_last, sse_end)) = tokio::join!(ws_bye, sse_bye);
    let reconnect = ws_frames.last().expect("a frame before the close");
    assert_eq!(reconnect["type"], "reconnect", "{ws_frames:?}");
    assert_eq!(reconnect["reason"], "server_shutting_down");
    assert!(reconnect["after_ms"].as_u64().is_some_and(|ms| ms < 1_000));
    let sse_last = sse_last.expect("an SSE event before the end");
    assert_eq!(sse_last.data["type"], "reconnect", "{:?}", sse_last.data);
    // EventSource's own reconnect waits the same spread delay.
    assert_eq!(sse_last.retry, sse_last.data["after_ms"].as_u64());
    // Its id is the cursor to resume from: the channel at seq 1.
    assert_eq!(sse_last.id.as_deref(), Some(format!("{ch}:1").as_str()));
    let status = exited.await.expect("terminate task");
    let took = start.elapsed();
    println!("exit after SIGTERM in {took:?}: {status:?}, ws {ws_closed:?}, sse {sse_end:?}");
    let status = status.expect("serve exited after SIGTERM (within 15 s)");
    assert!(status.success(), "clean exit: {status:?}");
    assert_eq!(ws_closed, Some(Some(1001)), "a close frame, going away");
    assert_eq!(sse_end, SseEnd::Ended, "the event stream ends cleanly");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

/// Every request the server had accepted when SIGTERM came is answered:
/// posts held up in flight (nats-server frozen, so their appends wait for
/// an ack) all get their 201 once it thaws, the listener refuses new
/// connections meanwhile, the process waits for them and exits 0, every
/// 201'd message is in the log exactly once after a restart (seqs dense),
/// and every read model's checkpoint is the log head at exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_every_request_in_flight_then_exits() {
    const IN_FLIGHT: usize = 24;
    let nats = Nats::start();
    let mut server = Server::start_with(&nats, &["--drain-timeout", "30"]);
    let api = server.api();
    let ws_id = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws_id, "ada", "admin").await;
    let ch = api.channel(&ada, "general", false).await;
    api.send(&ada, &ch, "before").await.expect(201);

    nats.pause();
    let posts: Vec<_> = (0..IN_FLIGHT)
        .map(|i| {
            let (api, ada, ch) = (api.clone(), ada.clone(), ch.clone());
            tokio::spawn(async move {
                let cmid = format!("drain-{i}");
                let body = json!({"channel_id": ch, "text": cmid, "client_msg_id": cmid});
                (
                    cmid,
                    api.try_call(
                        reqwest::Method::POST,
                        "/v1/messages",
                        Some(&ada),
                        Some(body),
                    )
                    .await,
                )
            })
        })
        .collect();
    // The posts reach the server and wait on the frozen nats-server for
    // their acks (5 s ack timeout; nats thaws well before). No condition
    // to poll from outside: give the loopback connections a moment.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    if posts.iter().any(|p| p.is_finished()) {
        let mut early = Vec::new();
        for p in posts.into_iter().filter(|p| p.is_finished()) {
            let (cmid, r) = p.await.expect("post task");
            early.push(format!("{cmid}: {:?}", r.map(|r| (r.status, r.body))));
        }
        panic!("posts wait for the log, but these were answered: {early:?}");
    }
    let signalled = Instant::now();
    server.sigterm();

    // No new connections once the signal is handled, while the accepted
    // requests are still waiting.
    let addr = server.base.trim_start_matches("http://").to_string();
    let refused = async {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if tokio::net::TcpStream::connect(&addr).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
    .await;
    assert!(refused, "the listener still accepts after SIGTERM");
    assert!(server.exited().is_none(), "serve waits for its requests");
    nats.resume();

    let mut answered = BTreeMap::new();
    for p in posts {
        let (cmid, r) = tokio::time::timeout(Duration::from_secs(30), p)
            .await
            .expect("every post answered within 30 s")
            .expect("post task");
        let r = r.unwrap_or_else(|e| panic!("{cmid}: no answer: {e}"));
        assert_eq!(r.status, 201, "{cmid}: {:?}", r.body);
        answered.insert(cmid, r.body["seq"].as_u64().expect("seq"));
    }
    let status = tokio::task::block_in_place(|| server.wait_exit(Duration::from_secs(30)))
        .expect("serve exited after draining");
    assert!(status.success(), "clean exit: {status:?}");
    println!(
        "{IN_FLIGHT} posts answered and exit {:?} after SIGTERM",
        signalled.elapsed()
    );

    // Every read model committed the log head before the exit.
    let head = nats.log_len().await;
    for model in [
        "acl",
        "history",
        "unreads",
        "notifications",
        "search",
        "push",
    ] {
        let path = server.data.join(format!("{model}.db"));
        let conn = rusqlite::Connection::open(&path).expect("open read model");
        let cp: i64 = conn
            .query_row("SELECT MAX(seq) FROM checkpoint", [], |r| r.get(0))
            .expect("checkpoint");
        assert_eq!(cp as u64, head, "{model}'s checkpoint at exit");
    }

    server.restart();
    let api = server.api();
    let events = api.all_events(&ada, &ch).await;
    let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "dense");
    let mut stored: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for e in &events {
        if let Some(text) = e["text"].as_str().filter(|t| t.starts_with("drain-")) {
            stored
                .entry(text.to_string())
                .or_default()
                .push(e["seq"].as_u64().expect("seq"));
        }
    }
    let want: BTreeMap<String, Vec<u64>> = answered
        .iter()
        .map(|(c, s)| (c.clone(), vec![*s]))
        .collect();
    assert_eq!(stored, want, "every answered post once, at its seq");
    let _: Value = api.send(&ada, &ch, "after").await.expect(201);
}
