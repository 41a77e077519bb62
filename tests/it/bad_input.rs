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
        .expect_err(409, "channel_archived");
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

/// Regression: `after_seq`/`before` above i64::MAX wrapped negative in the
/// read models and returned the whole history.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seqs_above_i64_max_are_refused() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "admin").await;
    let ch = api.channel(&ada, "general", false).await;
    for i in 0..3 {
        api.send(&ada, &ch, &format!("m{i}")).await.expect(201);
    }
    for q in [
        "after_seq=9223372036854775808",
        "after_seq=18446744073709551615",
        "after_seq=18446744073709551616",
        "before=9223372036854775808",
        "before=18446744073709551615",
        "after_seq=1.5",
        "after_seq=%2B1",
        "after_seq=",
    ] {
        let r = api
            .get(&format!("/v1/channels/{ch}/messages?{q}"), &ada)
            .await;
        r.expect_err(400, "invalid_request");
        assert!(
            r.body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("9223372036854775807")),
            "{q}: the message says the range: {}",
            r.body
        );
    }
    for q in [
        "after_seq=9223372036854775808",
        "after_seq=18446744073709551615",
    ] {
        api.get(&format!("/v1/channels/{ch}/events?{q}"), &ada)
            .await
            .expect_err(400, "invalid_request");
    }
    // The largest valid seq is simply past the end.
    let max = "9223372036854775807";
    let page = api
        .get(&format!("/v1/channels/{ch}/messages?after_seq={max}"), &ada)
        .await
        .expect(200);
    assert_eq!(page["messages"], json!([]));
    let page = api
        .get(&format!("/v1/channels/{ch}/events?after_seq={max}"), &ada)
        .await
        .expect(200);
    assert_eq!(page["events"], json!([]));
    let page = api
        .get(&format!("/v1/channels/{ch}/messages?before={max}"), &ada)
        .await
        .expect(200);
    assert_eq!(page["messages"].as_array().map(Vec::len), Some(3));
}

/// Names of request types (and Rust words) that must never reach a client.
fn assert_no_type_names(r: &crate::harness::Resp) {
    let message = r.body["error"]["message"].as_str().unwrap_or("");
    for leak in [
        "PostMessageReq",
        "CreateChannel",
        "CreateUser",
        "CreateWorkspace",
        "struct",
        "::",
        "u64",
        "String",
        "Vec<",
    ] {
        assert!(!message.contains(leak), "names a Rust type: {}", r.body);
    }
}

/// Regressions: 405s had an empty body and bad paths a text/plain one,
/// error messages named Rust types, arrays were read as structs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_error_is_json_and_names_no_rust_type() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "admin").await;
    let ch = api.channel(&ada, "general", false).await;
    let len = nats.log_len().await;
    let auth = format!("Bearer {ada}");
    let is_json = |h: &reqwest::header::HeaderMap| {
        h.get("content-type").and_then(|v| v.to_str().ok()) == Some("application/json")
    };

    for (method, path) in [
        (Method::DELETE, "/v1/channels"),
        (Method::POST, "/v1/me"),
        (Method::PUT, "/v1/messages"),
    ] {
        let (r, h) = api
            .with_headers(method, path, &[("authorization", &auth)], None)
            .await;
        r.expect_err(405, "method_not_allowed");
        assert!(is_json(&h), "{path}: {h:?}");
        assert!(h.get("allow").is_some(), "{path}: the Allow header stays");
    }
    for path in ["/v1/channels/%FF", "/v1/channels/%C3%28/messages"] {
        let (r, h) = api
            .with_headers(Method::GET, path, &[("authorization", &auth)], None)
            .await;
        r.expect_err(400, "invalid_request");
        assert!(is_json(&h), "{path}: {h:?}");
    }
    for (method, path, auth) in [
        (Method::GET, "/v1/nope", None),
        (Method::POST, "/nope", Some(auth.as_str())),
        (Method::GET, "/v1/channels/", Some(auth.as_str())),
    ] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        let (r, h) = api.with_headers(method, path, &headers, None).await;
        r.expect_err(404, "not_found");
        assert!(is_json(&h), "{path}: {h:?}");
    }

    let raw = |path: &'static str, body: String| {
        api.raw(Method::POST, path, &ada, "application/json", body)
    };
    // A JSON array in a struct's field order is not a message.
    for body in [
        json!([ch, "hi", null, null, []]),
        json!([ch, "hi"]),
        json!("hi"),
    ] {
        let r = raw("/v1/messages", body.to_string()).await;
        r.expect_err(422, "invalid_request");
        assert_no_type_names(&r);
    }
    let r = raw("/v1/messages", json!({"channel_id": ch}).to_string()).await;
    r.expect_err(422, "invalid_request");
    assert_no_type_names(&r);
    assert!(r.body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("`text`")));
    for (path, body) in [
        ("/v1/messages", json!({"channel_id": 7, "text": "x"})),
        (
            "/v1/messages",
            json!({"channel_id": ch, "text": "x", "attachment_ids": "a"}),
        ),
        ("/v1/channels", json!({"name": 5})),
        ("/v1/channels", json!(["general", false])),
        ("/v1/workspaces", json!({"name": ["x"]})),
    ] {
        let r = raw(path, body.to_string()).await;
        r.expect_err(422, "invalid_request");
        assert_no_type_names(&r);
    }
    let r = api
        .post(
            &format!("/v1/workspaces/{ws}/users"),
            &ada,
            json!(["zed", "Zed", "member"]),
        )
        .await;
    r.expect_err(422, "invalid_request");
    assert_no_type_names(&r);

    assert_eq!(nats.log_len().await, len, "nothing reached the log");
}

/// Regression: `bearer x` and `BEARER x` were refused (RFC 7235: the scheme
/// is case-insensitive).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bearer_scheme_is_case_insensitive() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "admin").await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let value = format!("{scheme} {ada}");
        let (r, _) = api
            .with_headers(Method::GET, "/v1/me", &[("authorization", &value)], None)
            .await;
        assert_eq!(r.status, 200, "{scheme}: {}", r.body);
    }
    for value in [format!("Basic {ada}"), format!("Bearer{ada}"), ada.clone()] {
        let (r, _) = api
            .with_headers(Method::GET, "/v1/me", &[("authorization", &value)], None)
            .await;
        r.expect_err(401, "unauthorized");
    }
}

/// Regression: names and texts made only of zero-width or bidi/format
/// characters were accepted (they render as blank).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invisible_only_names_and_texts_are_blank() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "admin").await;
    let ch = api.channel(&ada, "general", false).await;
    let len = nats.log_len().await;
    let blanks = [
        "\u{200B}",
        "\u{200B}\u{200C}\u{200D}\u{200E}\u{200F}",
        "\u{202A}\u{202E}\u{202C}",
        "\u{2060}\u{2063}",
        "\u{2066}\u{2069}",
        "\u{FEFF}",
        " \u{200B}\n\u{FEFF} ",
    ];
    for b in blanks {
        api.send(&ada, &ch, b)
            .await
            .expect_err(400, "invalid_request");
        api.post(
            &format!("/v1/workspaces/{ws}/users"),
            crate::harness::OPERATOR,
            json!({"handle": "zed", "display_name": b}),
        )
        .await
        .expect_err(400, "invalid_request");
        api.post(
            "/v1/workspaces",
            crate::harness::OPERATOR,
            json!({"name": b}),
        )
        .await
        .expect_err(400, "invalid_request");
        api.post("/v1/channels", &ada, json!({"name": "new", "topic": b}))
            .await
            .expect_err(400, "invalid_request");
    }
    assert_eq!(nats.log_len().await, len, "nothing reached the log");
    // Visible text around them is still text.
    api.send(&ada, &ch, "hi\u{200B}").await.expect(201);
}
