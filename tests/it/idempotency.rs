//! `client_msg_id`: a retried send returns the original message, within
//! JetStream's de-dup window and beyond it.

use crate::harness::{Nats, Server};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retry_by_client_msg_id_within_and_after_the_window() {
    let nats = Nats::start();
    // A short de-dup window so the test can outlive it.
    let server = Server::start_with(&nats, &["--duplicate-window-ms", "800"]);
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "admin").await;
    let ch = api.channel(&ada, "general", false).await;
    let body = json!({"channel_id": ch, "text": "once", "client_msg_id": "retry-1"});

    let first = api
        .post("/v1/messages", &ada, body.clone())
        .await
        .expect(201);
    let len = nats.log_len().await;

    // Within the window: the same message, nothing appended.
    let again = api.post("/v1/messages", &ada, body.clone()).await;
    assert!(again.status == 200 || again.status == 201);
    assert_eq!(again.body["id"], first["id"]);
    assert_eq!(again.body["seq"], first["seq"]);
    assert_eq!(nats.log_len().await, len);

    // Concurrent retries: all get the original.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (api, ada, body) = (api.clone(), ada.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            api.post("/v1/messages", &ada, body).await
        }));
    }
    for t in tasks {
        let r = t.await.expect("task");
        assert_eq!(r.body["id"], first["id"], "{}", r.body);
    }
    assert_eq!(nats.log_len().await, len);

    // Beyond the window: the history projection remembers.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let late = api.post("/v1/messages", &ada, body.clone()).await;
    assert_eq!(late.status, 200, "{}", late.body);
    assert_eq!(late.body["id"], first["id"]);
    assert_eq!(late.body["seq"], first["seq"]);
    assert_eq!(nats.log_len().await, len);

    // A different key is a different message; the same key from another
    // user is that user's own message.
    let other = api
        .post(
            "/v1/messages",
            &ada,
            json!({"channel_id": ch, "text": "twice", "client_msg_id": "retry-2"}),
        )
        .await
        .expect(201);
    assert_ne!(other["id"], first["id"]);
    let (bob_id, bob) = api.user(&ws, "bob", "member").await;
    api.post(&format!("/v1/channels/{ch}/join"), &bob, json!({}))
        .await
        .expect(200);
    let bobs = api
        .post("/v1/messages", &bob, body.clone())
        .await
        .expect(201);
    assert_eq!(bobs["sender_id"], bob_id.as_str());
    assert_ne!(bobs["id"], first["id"]);
    // Another user's write is visible once projected (read-your-writes is
    // per user): wait for the head to reach it.
    api.wait_head(&ada, &ch, bobs["seq"].as_u64().expect("seq"))
        .await;

    let page = api
        .get(&format!("/v1/channels/{ch}/messages"), &ada)
        .await
        .expect(200);
    let once = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["text"] == "once")
        .count();
    assert_eq!(once, 2, "ada's once and bob's once, nothing more");
}
