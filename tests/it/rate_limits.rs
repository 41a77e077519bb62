//! Rate limits (README "Rate limits"): a token over its limit gets `429
//! rate_limited` with `Retry-After` and nothing reaches the log; a client
//! without a token is limited by address; a WebSocket client that floods
//! gets an `error` frame, then a close (1008).

use crate::harness::{Api, Nats, Server, Ws};
use crate::realtime::{setup, T};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A post with the token in a header of our own, to read `Retry-After`.
async fn post_with_headers(api: &Api, token: Option<&str>, ch: &str) -> (u16, Value, Option<u64>) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    let body = json!({"channel_id": ch, "text": "over the limit?"}).to_string();
    let (r, h) = api
        .with_headers(Method::POST, "/v1/messages", &headers, Some(body))
        .await;
    let retry = h
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (r.status, r.body, retry)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn over_the_limit_is_429_with_retry_after_and_nothing_appended() {
    let nats = Nats::start();
    let server = Server::start_with(&nats, &["--limit-posts", "1:3", "--limit-edits", "1:2"]);
    let api = server.api();
    let (_, ada, bob, ch) = setup(&api).await;

    let mut first = None;
    for i in 0..3 {
        let m = api.send(&ada, &ch, &format!("m{i}")).await.expect(201);
        first.get_or_insert(m["id"].as_str().expect("id").to_string());
    }
    let msg = first.expect("a message");
    let log_before = nats.log_len().await;
    let head_before = api.all_events(&ada, &ch).await.len();

    let (status, body, retry) = post_with_headers(&api, Some(&ada), &ch).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    let retry = retry.expect("a Retry-After of whole seconds");
    assert!((1..=2).contains(&retry), "Retry-After {retry}");

    // Edits and reactions have their own limit: two, then 429.
    let react = format!("/v1/messages/{msg}/reactions");
    api.post(&react, &ada, json!({"emoji": "tada"}))
        .await
        .expect(200);
    api.patch(
        &format!("/v1/messages/{msg}"),
        &ada,
        json!({"text": "edited"}),
    )
    .await
    .expect(200);
    let log_mid = nats.log_len().await;
    api.post(&react, &ada, json!({"emoji": "eyes"}))
        .await
        .expect_err(429, "rate_limited");
    api.patch(
        &format!("/v1/messages/{msg}"),
        &ada,
        json!({"text": "again"}),
    )
    .await
    .expect_err(429, "rate_limited");
    api.delete(&format!("/v1/messages/{msg}"), &ada)
        .await
        .expect_err(429, "rate_limited");
    assert_eq!(
        nats.log_len().await,
        log_mid,
        "refused edits appended nothing"
    );

    // Without a token the address is the key: 401s use it up, then 429.
    let mut anonymous = Vec::new();
    for _ in 0..4 {
        anonymous.push(post_with_headers(&api, None, &ch).await.0);
    }
    assert_eq!(anonymous, [401, 401, 401, 429]);

    // bob's token has its own budget, and reads are not limited.
    api.get(&format!("/v1/channels/{ch}/messages"), &ada)
        .await
        .expect(200);
    api.send(&bob, &ch, "bob is fine").await.expect(201);
    let after_bob = nats.log_len().await;
    assert_eq!(after_bob, log_mid + 1, "only bob's post was appended");

    // The log holds nothing of the refused requests: ada's refused post
    // and edits are absent from the channel's events.
    let events = api.all_events(&ada, &ch).await;
    assert_eq!(
        events.len(),
        head_before + 3,
        "ada's reaction and edit + bob's post"
    );
    assert!(
        events
            .iter()
            .all(|e| e["text"] != "over the limit?" && e["text"] != "again"),
        "{events:?}"
    );
    assert!(log_before < log_mid);

    // It is a rate, not a ban: after Retry-After ada posts again.
    let start = Instant::now();
    let ok = loop {
        let r = api.send(&ada, &ch, "later").await;
        if r.status == 201 || start.elapsed() > Duration::from_secs(5) {
            break r.status;
        }
        assert_eq!(r.status, 429, "{}", r.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(ok, 201);
    assert!(start.elapsed() <= Duration::from_secs(retry + 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_websocket_flood_gets_an_error_frame_then_a_close() {
    let nats = Nats::start();
    let server = Server::start_with(
        &nats,
        &["--limit-ws-frames", "5:20", "--limit-typing", "1:2"],
    );
    let api = server.api();
    let (_, ada, bob, ch) = setup(&api).await;

    // Typing past the user's limit: an error frame, the socket stays open.
    let mut w = Ws::connect(&server.base, &bob).await;
    w.subscribe(&[(&ch, 1)]).await;
    for _ in 0..3 {
        w.send(json!({"type": "typing", "channel_id": ch})).await;
    }
    let frames = w.frames_until(T, |f| f["type"] == "error").await;
    let err = frames.last().expect("a frame");
    assert_eq!(
        (&err["type"], &err["code"], &err["channel_id"]),
        (&json!("error"), &json!("rate_limited"), &json!(ch)),
        "{frames:?}"
    );
    w.send(json!({"type": "ping"})).await;
    let pong = w.frames_until(T, |f| f["type"] == "pong").await;
    assert!(
        pong.iter().any(|f| f["type"] == "pong"),
        "still open: {pong:?}"
    );
    w.close().await;

    // 100 pings at once: past the 20-frame burst the client is told, then
    // closed with 1008 (policy violation).
    let mut w = Ws::connect(&server.base, &ada).await;
    let burst: Vec<Value> = (0..100).map(|_| json!({"type": "ping"})).collect();
    w.send_burst(&burst).await;
    let frames = w
        .frames_until(T, |f| f["type"] == "error" && f["code"] == "rate_limited")
        .await;
    let pongs = frames.iter().filter(|f| f["type"] == "pong").count();
    assert!(
        frames.last().is_some_and(|f| f["code"] == "rate_limited"),
        "an error frame: {frames:?}"
    );
    assert!(
        (1..100).contains(&pongs),
        "answered until the limit: {pongs}"
    );
    assert_eq!(w.close_code(T).await, Some(Some(1008)), "then a close");

    // Another connection of the same user has its own frame budget.
    let mut again = Ws::connect(&server.base, &ada).await;
    again.send(json!({"type": "ping"})).await;
    let pong = again.frames_until(T, |f| f["type"] == "pong").await;
    assert!(pong.iter().any(|f| f["type"] == "pong"), "{pong:?}");
}
