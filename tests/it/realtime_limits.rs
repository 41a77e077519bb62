//! Regression tests for what an outside client could make the real-time
//! side do (found by probing a running server): oversized frames, presence
//! floods, seqs that read as "replay everything", unbounded subscriptions,
//! tickets spent by a request that never became a stream. Real nats-server,
//! real binary, real WebSocket/SSE clients; every wait is on a condition.

use crate::harness::{event_seqs, Api, Nats, Server, Ws};
use crate::realtime::{setup, T};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

async fn user_id(api: &Api, token: &str) -> String {
    api.get("/v1/me", token).await.expect(200)["user"]["id"]
        .as_str()
        .expect("id")
        .to_string()
}

async fn ticket(api: &Api, token: &str) -> String {
    api.post("/v1/realtime/tickets", token, json!({}))
        .await
        .expect(201)["ticket"]
        .as_str()
        .expect("ticket")
        .to_string()
}

/// Waits until `w` follows `ch` live: posts a message and waits for it.
async fn wait_live(api: &Api, w: &mut Ws, token: &str, ch: &str) {
    let seq = api.send(token, ch, "ready?").await.expect(201)["seq"]
        .as_u64()
        .expect("seq");
    let frames = w
        .frames_until(T, |f| {
            f["type"] == "event" && f["channel_id"] == ch && f["seq"].as_u64() == Some(seq)
        })
        .await;
    assert!(
        event_seqs(&frames, ch).contains(&seq),
        "not following {ch}: {frames:?}"
    );
}

fn assert_no_type_names(message: &str) {
    for leak in ["u64", "i64", "struct", "enum ", "Seq", "ClientFrame", "::"] {
        assert!(
            !message.contains(leak),
            "message names a Rust type: {message}"
        );
    }
}

/// Regression: `max_frame_size` stayed at tungstenite's 16 MiB, so a
/// client could announce a huge frame and trickle it, held in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ws_frame_over_64k_closes_the_connection_and_others_carry_on() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let (_, ada, bob, _) = setup(&api).await;
    let mut w = Ws::connect(&server.base, &bob).await;
    // A masked text frame announcing 1 MiB, of which only 1 KiB is sent:
    // the server must refuse it on the header, not wait for the rest.
    let mut frame = vec![0x81, 0xFF];
    frame.extend((1u64 << 20).to_be_bytes());
    frame.extend([0x12, 0x34, 0x56, 0x78]);
    frame.extend(vec![b'x'; 1024]);
    w.send_raw(&frame).await;
    assert!(
        w.closed_within(Duration::from_secs(5)).await,
        "a frame over the cap closes the connection at once"
    );
    // The server stays healthy; a frame just under the cap is fine.
    api.call(Method::GET, "/healthz", None, None)
        .await
        .expect(200);
    let mut a = Ws::connect(&server.base, &ada).await;
    a.send(json!({"type": "ping", "pad": "x".repeat(60 * 1024)}))
        .await;
    let frames = a.frames_until(T, |f| f["type"] == "pong").await;
    assert!(frames.iter().any(|f| f["type"] == "pong"), "{frames:?}");
}

/// Regression: every client presence frame was a KV write and a fan-out
/// (300 frames → 300 presence frames to every member of a small channel).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn presence_burst_is_coalesced_and_the_last_status_wins() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let (_, ada, bob, ch) = setup(&api).await;
    let bob_id = user_id(&api, &bob).await;
    let mut a = Ws::connect(&server.base, &ada).await;
    a.subscribe(&[(&ch, 1)]).await;
    wait_live(&api, &mut a, &ada, &ch).await;
    let mut b = Ws::connect(&server.base, &bob).await;
    let is_bob = |f: &Value, status: &str| {
        f["type"] == "presence" && f["user_id"] == bob_id.as_str() && f["status"] == status
    };
    let f = a.frames_until(T, |f| is_bob(f, "online")).await;
    assert!(f.iter().any(|f| is_bob(f, "online")), "{f:?}");

    // 300 frames in one write, alternating; the last one says away.
    let burst: Vec<Value> = (0..300)
        .map(|i| json!({"type": "presence", "status": if i % 2 == 0 { "online" } else { "away" }}))
        .collect();
    b.send_burst(&burst).await;
    let f = a.frames_until(T, |f| is_bob(f, "away")).await;
    assert!(f.iter().any(|f| is_bob(f, "away")), "away arrives: {f:?}");
    let status = api
        .get(&format!("/v1/presence?user_ids={bob_id}"), &ada)
        .await
        .expect(200);
    assert_eq!(status["users"][0]["status"], "away", "{status}");

    // bob leaves: everything published for him before comes before his
    // offline, so counting up to it counts every presence frame he cost.
    b.close().await;
    let rest = a.frames_until(T, |f| is_bob(f, "offline")).await;
    assert!(rest.iter().any(|f| is_bob(f, "offline")), "{rest:?}");
    let from_burst: Vec<&str> = f
        .iter()
        .chain(&rest)
        .filter(|f| f["type"] == "presence" && f["user_id"] == bob_id.as_str())
        .filter_map(|f| f["status"].as_str())
        .filter(|s| *s != "offline")
        .collect();
    assert!(
        (1..=3).contains(&from_burst.len()),
        "300 presence frames cost at most a few changes: {from_burst:?}"
    );
    assert_eq!(from_burst.last(), Some(&"away"), "the last status wins");
}

/// Regression: subscribe seqs that were negative, strings, floats or
/// ≥ 2^64 became 0 — a full replay — instead of an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ws_subscribe_with_invalid_seqs_is_refused_and_replays_nothing() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let (_, ada, bob, ch) = setup(&api).await;
    for i in 0..3 {
        api.send(&ada, &ch, &format!("m{i}")).await.expect(201);
    }
    let head = 4; // bob's join and three messages
    let mut w = Ws::connect(&server.base, &bob).await;
    for bad in [
        "-1",
        "\"5\"",
        "1.5",
        "1e3",
        "null",
        "9223372036854775808",
        "18446744073709551615",
        "18446744073709551616",
    ] {
        w.send_text(&format!(
            r#"{{"type":"subscribe","channels":{{"{ch}":{bad}}}}}"#
        ))
        .await;
        let frames = w.frames_until(T, |f| f["type"] == "error").await;
        let err = frames.last().expect("a frame");
        assert_eq!(err["type"], "error", "{bad}: {frames:?}");
        assert_eq!(err["code"], "invalid_request", "{bad}: {err}");
        assert_no_type_names(err["message"].as_str().unwrap_or(""));
        assert!(event_seqs(&frames, &ch).is_empty(), "{bad}: {frames:?}");
    }
    // A frame with one bad seq among good ones subscribes to nothing.
    w.send_text(&format!(
        r#"{{"type":"subscribe","channels":{{"{ch}":0,"C0000000000000000000000000Z":-1}}}}"#
    ))
    .await;
    let frames = w.frames_until(T, |f| f["type"] == "error").await;
    assert_eq!(
        frames.last().map(|f| &f["code"]),
        Some(&json!("invalid_request"))
    );
    // Only what a valid subscribe asks for arrives: nothing was replayed.
    w.subscribe(&[(&ch, head)]).await;
    wait_live(&api, &mut w, &ada, &ch).await;
    let next = api.send(&ada, &ch, "next").await.expect(201)["seq"]
        .as_u64()
        .expect("seq");
    let frames = w.frames_until(T, |f| f["seq"].as_u64() == Some(next)).await;
    assert_eq!(event_seqs(&frames, &ch), vec![next]);
}

/// Regression: SSE `channels=<id>:<seq>` accepted seqs above i64::MAX.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sse_invalid_seqs_and_too_many_channels_are_refused() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let (_, _, bob, ch) = setup(&api).await;
    let auth = format!("Bearer {bob}");
    for bad in [
        "-1",
        "1.5",
        "x",
        "9223372036854775808",
        "18446744073709551615",
        "18446744073709551616",
    ] {
        let (r, _) = api
            .with_headers(
                Method::GET,
                &format!("/v1/sse?channels={ch}:{bad}"),
                &[("authorization", &auth)],
                None,
            )
            .await;
        r.expect_err(400, "invalid_request");
    }
    // The same cap as a WebSocket connection.
    let many: Vec<String> = (0..101).map(|i| format!("C{i:026}:0")).collect();
    let (r, _) = api
        .with_headers(
            Method::GET,
            &format!("/v1/sse?channels={}", many.join(",")),
            &[("authorization", &auth)],
            None,
        )
        .await;
    r.expect_err(400, "invalid_request");
}

/// Regression: one WebSocket connection could follow any number of
/// channels (one took 1,000); SSE was capped at 100.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ws_subscriptions_are_capped_per_connection() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let (_, ada, _, general) = setup(&api).await;
    let mut channels = vec![general.clone()];
    for i in 0..100 {
        channels.push(api.channel(&ada, &format!("c{i}"), false).await);
    }
    let mut w = Ws::connect(&server.base, &ada).await;
    let all: Vec<(&str, u64)> = channels.iter().map(|c| (c.as_str(), 0)).collect();
    w.subscribe(&all).await;
    let frames = w
        .frames_until(T, |f| f["code"] == "too_many_subscriptions")
        .await;
    let errors: Vec<&Value> = frames.iter().filter(|f| f["type"] == "error").collect();
    assert_eq!(errors.len(), 1, "one channel past the cap: {errors:?}");
    assert_eq!(errors[0]["code"], "too_many_subscriptions");
    let refused = errors[0]["channel_id"]
        .as_str()
        .expect("channel_id")
        .to_string();
    let kept = channels
        .iter()
        .find(|c| **c != refused)
        .expect("a kept channel")
        .clone();
    // The refused channel delivers nothing; the others do.
    api.send(&ada, &refused, "not for you").await.expect(201);
    wait_live(&api, &mut w, &ada, &kept).await;
    // Adding one more is refused too; unsubscribing makes room.
    w.subscribe(&[(&refused, 0)]).await;
    let frames = w.frames_until(T, |f| f["type"] == "error").await;
    assert!(event_seqs(&frames, &refused).is_empty(), "{frames:?}");
    assert_eq!(
        frames.last().map(|f| &f["code"]),
        Some(&json!("too_many_subscriptions"))
    );
    w.send(json!({"type": "unsubscribe", "channels": [kept]}))
        .await;
    w.subscribe(&[(&refused, 0)]).await;
    let frames = w
        .frames_until(T, |f| f["channel_id"] == refused.as_str())
        .await;
    assert_eq!(
        event_seqs(&frames, &refused),
        vec![1],
        "after an unsubscribe the channel fits: {frames:?}"
    );
}

/// Regression: a plain GET (no WebSocket upgrade) with a ticket spent it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ticket_is_not_spent_by_a_request_that_does_not_open_a_stream() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let (_, _, bob, ch) = setup(&api).await;
    let t = ticket(&api, &bob).await;
    let (r, headers) = api
        .with_headers(Method::GET, &format!("/v1/realtime?ticket={t}"), &[], None)
        .await;
    r.expect_err(400, "invalid_request");
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let mut w = Ws::connect_ticket(&server.base, &t)
        .await
        .expect("the ticket survived the failed upgrade");
    assert_eq!(w.frame(T).await.expect("hello")["type"], "hello");
    assert_eq!(
        Ws::connect_ticket(&server.base, &t).await.err(),
        Some(401),
        "spent by the upgrade that happened"
    );
    // SSE: a refused cursor does not spend it either.
    let t = ticket(&api, &bob).await;
    let (r, _) = api
        .with_headers(
            Method::GET,
            &format!("/v1/sse?ticket={t}&channels={ch}:-1"),
            &[],
            None,
        )
        .await;
    r.expect_err(400, "invalid_request");
    let url = format!("{}/v1/sse?ticket={t}&channels={ch}:0", server.base);
    let first = reqwest::get(&url).await.expect("sse");
    assert_eq!(first.status().as_u16(), 200);
    let second = reqwest::get(&url).await.expect("sse");
    assert_eq!(second.status().as_u16(), 401);
    drop(first);
}
