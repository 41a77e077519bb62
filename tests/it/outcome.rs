//! The 503 "outcome unknown" hole: a publish the gateway handed to the
//! NATS client, whose ack did not come in time, used to be answered 503
//! and could still be stored afterwards (async-nats flushes what it holds;
//! a frozen nats-server reads what sits in its socket when it thaws).
//! Provoked here by freezing nats-server (SIGSTOP) around a post: the
//! publish sits unread in the server's socket past the ack timeout.
//!
//! Now the gateway reconciles before it answers — it re-publishes the same
//! bytes (same `Nats-Msg-Id`, same expected subject head, so at most one
//! copy can ever be stored) and reads the stream's verdict — so a server
//! that comes back within the reconcile window turns the "unknown" into a
//! 201 for the one stored message. Past the window the answer is still
//! 503 "unknown", and the client's view and the log agree: a retry with
//! the same `client_msg_id` returns the one stored message.

use crate::harness::{Api, Nats, Server};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn texts(events: &[Value], prefix: &str) -> Vec<(String, u64)> {
    events
        .iter()
        .filter_map(|e| {
            let t = e["text"].as_str().filter(|t| t.starts_with(prefix))?;
            Some((t.to_string(), e["seq"].as_u64().expect("seq")))
        })
        .collect()
}

async fn post(api: &Api, token: &str, ch: &str, text: &str, cmid: Option<&str>) -> (u16, Value) {
    let mut body = json!({"channel_id": ch, "text": text});
    if let Some(c) = cmid {
        body["client_msg_id"] = json!(c);
    }
    let r = api.post("/v1/messages", token, body).await;
    (r.status, r.body)
}

/// The ack is late (nats-server frozen past the 1 s ack timeout) but the
/// server thaws inside the reconcile window: the post is answered 201, not
/// 503, and is stored exactly once — with and without `client_msg_id`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_ack_is_reconciled_into_one_stored_message_and_a_201() {
    let nats = Nats::start();
    let server = Server::start_with(
        &nats,
        &[
            "--append-ack-timeout-ms",
            "1000",
            "--append-reconcile-ms",
            "20000",
        ],
    );
    let api = server.api();
    let ws_id = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws_id, "ada", "admin").await;
    let ch = api.channel(&ada, "general", false).await;
    api.send(&ada, &ch, "warm").await.expect(201);

    for (text, cmid) in [("late-with-id", Some("c-late")), ("late-without-id", None)] {
        nats.pause();
        let task = {
            let (api, ada, ch) = (api.clone(), ada.clone(), ch.clone());
            tokio::spawn(async move { post(&api, &ada, &ch, text, cmid).await })
        };
        // Past the ack timeout (and a re-published copy's): the old code
        // answered 503 here, with the publish still in the socket.
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        assert!(
            !task.is_finished(),
            "{text}: answered while the log was frozen"
        );
        nats.resume();
        let (status, body) = tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("answered after the thaw")
            .expect("post task");
        assert_eq!(status, 201, "{text}: {body}");
        let events = api.all_events(&ada, &ch).await;
        let stored = texts(&events, text);
        assert_eq!(
            stored,
            [(text.to_string(), body["seq"].as_u64().expect("seq"))],
            "{text}: stored once, at the seq the 201 gave"
        );
    }
    // The subject's cached head followed: the next post lands right after.
    let next = api.send(&ada, &ch, "next").await.expect(201);
    let events = api.all_events(&ada, &ch).await;
    assert_eq!(
        next["seq"].as_u64(),
        events.last().and_then(|e| e["seq"].as_u64())
    );
    let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "dense");
}

/// Frozen past the reconcile window too: the answer is 503 `unavailable`
/// saying the outcome is unknown; once the server thaws the publish is
/// stored, and a retry with the same `client_msg_id` returns that message
/// (200, the same id and seq) — exactly one in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_reconcile_window_a_503_then_a_retry_yields_exactly_one() {
    let nats = Nats::start();
    let server = Server::start_with(
        &nats,
        &[
            "--append-ack-timeout-ms",
            "500",
            "--append-reconcile-ms",
            "1000",
        ],
    );
    let api = server.api();
    let ws_id = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws_id, "ada", "admin").await;
    let ch = api.channel(&ada, "general", false).await;
    api.send(&ada, &ch, "warm").await.expect(201);
    let before = nats.log_len().await;

    nats.pause();
    let (status, body) = post(&api, &ada, &ch, "frozen", Some("c-frozen")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("client_msg_id"), "{message}");
    nats.resume();

    // The publish the client was told about is stored after the 503: the
    // unknown outcome, as documented.
    let deadline = Instant::now() + Duration::from_secs(15);
    while nats.log_len().await <= before {
        assert!(Instant::now() < deadline, "the frozen publish never landed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = api
        .post(
            "/v1/messages",
            &ada,
            json!({"channel_id": ch, "text": "frozen", "client_msg_id": "c-frozen"}),
        )
        .await;
    assert_eq!(
        r.status, 200,
        "the retry returns the original: {:?}",
        r.body
    );
    let events = api.all_events(&ada, &ch).await;
    let stored = texts(&events, "frozen");
    assert_eq!(
        stored,
        [("frozen".to_string(), r.body["seq"].as_u64().expect("seq"))],
        "exactly one, the one the retry returned"
    );
    assert_eq!(nats.log_len().await, before + 1, "nothing else appended");
}

/// The connection dies with the publish unread (nats-server frozen, then
/// killed with -9 and restarted on the same store): the first copy is lost
/// with the dead socket, the client reconnects, and the re-published copy
/// is the one stored — a 201, exactly one message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_lost_with_its_connection_is_republished_once() {
    let mut nats = Nats::start();
    let server = Server::start_with(
        &nats,
        &[
            "--append-ack-timeout-ms",
            "1000",
            "--append-reconcile-ms",
            "20000",
        ],
    );
    let api = server.api();
    let ws_id = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws_id, "ada", "admin").await;
    let ch = api.channel(&ada, "general", false).await;
    api.send(&ada, &ch, "warm").await.expect(201);

    nats.pause();
    let task = {
        let (api, ada, ch) = (api.clone(), ada.clone(), ch.clone());
        tokio::spawn(async move { post(&api, &ada, &ch, "lost-once", Some("c-lost")).await })
    };
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(!task.is_finished(), "answered while the log was frozen");
    nats.restart(); // kill -9 of the frozen server, then the same store again
    let (status, body) = tokio::time::timeout(Duration::from_secs(25), task)
        .await
        .expect("answered after the restart")
        .expect("post task");
    assert_eq!(status, 201, "{body}");
    let events = api.all_events(&ada, &ch).await;
    assert_eq!(
        texts(&events, "lost-once"),
        [("lost-once".to_string(), body["seq"].as_u64().expect("seq"))],
        "stored once, at the seq the 201 gave"
    );
}
