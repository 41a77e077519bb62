//! Bad input gets API.md's error shape and appends nothing.

use crate::harness::{Nats, Server};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_is_refused_and_appends_nothing() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "admin").await;
    let (_, bob) = api.user(&ws, "bob", "member").await;
    let ch = api.channel(&ada, "general", false).await;
    let private = api.channel(&ada, "private", true).await;
    let archived = api.channel(&ada, "old", false).await;
    api.post(&format!("/v1/channels/{archived}/archive"), &ada, json!({}))
        .await
        .expect(200);
    let other_ws = api.workspace("Other").await;
    let (_, eve) = api.user(&other_ws, "eve", "admin").await;
    let foreign = api.channel(&eve, "theirs", false).await;
    api.send(&ada, &ch, "ok").await.expect(201);
    let len = nats.log_len().await;

    let raw = |body: &str| {
        api.raw(
            Method::POST,
            "/v1/messages",
            &ada,
            "application/json",
            body.to_string(),
        )
    };
    raw("{not json").await.expect_err(400, "invalid_request");
    raw("").await.expect_err(400, "invalid_request");
    raw("[1,2]").await.expect_err(422, "invalid_request");
    raw(&json!({"text": "no channel"}).to_string())
        .await
        .expect_err(422, "invalid_request");
    raw(&json!({"channel_id": ch}).to_string())
        .await
        .expect_err(422, "invalid_request");
    raw(&json!({"channel_id": ch, "text": 42}).to_string())
        .await
        .expect_err(422, "invalid_request");
    raw(&json!({"channel_id": 7, "text": "x"}).to_string())
        .await
        .expect_err(422, "invalid_request");
    api.raw(
        Method::POST,
        "/v1/messages",
        &ada,
        "text/plain",
        json!({"channel_id": ch, "text": "x"}).to_string(),
    )
    .await
    .expect_err(400, "invalid_request");

    let post = |channel: &str, text: String| {
        api.post(
            "/v1/messages",
            &ada,
            json!({"channel_id": channel, "text": text}),
        )
    };
    post(&ch, String::new())
        .await
        .expect_err(400, "invalid_request");
    post(&ch, " \n\t ".into())
        .await
        .expect_err(400, "invalid_request");
    post(&ch, "a".repeat(40_001))
        .await
        .expect_err(400, "invalid_request");
    post(&ch, "é".repeat(40_000)).await.expect(201); // the limit is in characters
    let len = len + 1;
    post("a.b", "x".into())
        .await
        .expect_err(400, "invalid_request");
    post("sb.*", "x".into())
        .await
        .expect_err(400, "invalid_request");
    post("C>", "x".into())
        .await
        .expect_err(400, "invalid_request");
    post(&foreign, "x".into())
        .await
        .expect_err(404, "not_found");
    post("C00000000000000000000000000", "x".into())
        .await
        .expect_err(404, "not_found");
    post(&archived, "x".into())
        .await
        .expect_err(409, "conflict");
    api.send(&bob, &private, "x")
        .await
        .expect_err(404, "not_found");
    api.send(&bob, &ch, "x")
        .await
        .expect_err(403, "not_a_member");
    api.post(
        "/v1/messages",
        &ada,
        json!({"channel_id": ch, "text": "x", "client_msg_id": "has space"}),
    )
    .await
    .expect_err(400, "invalid_request");
    api.post(
        "/v1/messages",
        &ada,
        json!({"channel_id": ch, "text": "x", "thread_root_id": "Mnope"}),
    )
    .await
    .expect_err(404, "not_found");
    let huge = json!({"channel_id": ch, "text": "x".repeat(300_000)}).to_string();
    raw(&huge).await.expect_err(413, "payload_too_large");

    for q in [
        "limit=0",
        "limit=201",
        "limit=abc",
        "before=-1",
        "after_seq=x",
        "before=3&after_seq=1",
    ] {
        api.get(&format!("/v1/channels/{ch}/messages?{q}"), &ada)
            .await
            .expect_err(400, "invalid_request");
    }
    for q in ["limit=0", "limit=1001", "after_seq=-5"] {
        api.get(&format!("/v1/channels/{ch}/events?{q}"), &ada)
            .await
            .expect_err(400, "invalid_request");
    }
    api.get("/v1/channels/bad.id/messages", &ada)
        .await
        .expect_err(400, "invalid_request");

    api.post("/v1/channels", &ada, json!({"name": "general"}))
        .await
        .expect_err(409, "conflict");
    api.post("/v1/channels", &ada, json!({"name": "Has Spaces"}))
        .await
        .expect_err(400, "invalid_request");
    api.post("/v1/channels", &ada, json!({"name": ""}))
        .await
        .expect_err(400, "invalid_request");
    api.post("/v1/channels", &ada, json!({"private": true}))
        .await
        .expect_err(422, "invalid_request");
    api.post(
        &format!("/v1/workspaces/{ws}/users"),
        &ada,
        json!({"handle": "ada", "display_name": "Dup"}),
    )
    .await
    .expect_err(409, "conflict");
    api.post(
        &format!("/v1/workspaces/{ws}/users"),
        &ada,
        json!({"handle": "zed", "display_name": "Z", "role": "god"}),
    )
    .await
    .expect_err(400, "invalid_request");
    api.post(&format!("/v1/channels/{ch}/join"), &ada, json!({}))
        .await
        .expect_err(409, "conflict");
    api.post(
        &format!("/v1/channels/{ch}/members"),
        &ada,
        json!({"user_id": "Unobody"}),
    )
    .await
    .expect_err(404, "not_found");
    api.post(
        "/v1/workspaces",
        crate::harness::OPERATOR,
        json!({"name": "   "}),
    )
    .await
    .expect_err(400, "invalid_request");
    let unknown = api.call(Method::GET, "/v1/nope", Some(&ada), None).await;
    unknown.expect_err(404, "not_found");

    assert_eq!(nats.log_len().await, len, "no bad request reached the log");
}
