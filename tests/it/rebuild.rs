//! `switchboard rebuild` reproduces the live read models bit for bit.

use crate::harness::{run_cli, Nats, Server};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuild_checksums_equal_live_after_mixed_workload() {
    let nats = Nats::start();
    let mut server = Server::start(&nats);
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (ada_id, ada) = api.user(&ws, "ada", "admin").await;
    let (bob_id, bob) = api.user(&ws, "bob", "member").await;
    let general = api.channel(&ada, "general", false).await;
    let secret = api.channel(&ada, "secret", true).await;
    api.post(&format!("/v1/channels/{general}/join"), &bob, json!({}))
        .await
        .expect(200);
    api.post(
        &format!("/v1/channels/{secret}/members"),
        &ada,
        json!({"user_id": bob_id}),
    )
    .await
    .expect(200);
    let mut root = String::new();
    for i in 0..60 {
        let (tok, ch) = if i % 3 == 0 {
            (&bob, &secret)
        } else {
            (&ada, &general)
        };
        let mut body =
            json!({"channel_id": ch, "text": format!("m{i}"), "client_msg_id": format!("c{i}")});
        if i % 7 == 0 && !root.is_empty() && ch == &general {
            body["thread_root_id"] = json!(root);
        }
        let m = api.post("/v1/messages", tok, body).await.expect(201);
        if i == 1 {
            root = m["id"].as_str().expect("id").to_string();
        }
    }
    // The conversation: mentions, replies also sent to the channel, edits,
    // reactions added and removed, notification settings and an
    // acknowledgement, pins and unpins, deletes (of a pinned,
    // reacted-to thread root too), a topic and a rename.
    let m = |v: serde_json::Value| v["id"].as_str().expect("id").to_string();
    // Notification settings: keywords, DND, a muted channel, notify=all.
    api.put(
        "/v1/me/preferences",
        &bob,
        json!({"keywords": ["look"], "time_zone": "Europe/Berlin",
               "dnd_schedule": {"start": "22:00", "end": "07:00"}}),
    )
    .await
    .expect(200);
    api.put(
        &format!("/v1/channels/{secret}/preferences"),
        &bob,
        json!({"muted": true}),
    )
    .await
    .expect(200);
    api.put(
        &format!("/v1/channels/{general}/preferences"),
        &ada,
        json!({"notify": "all"}),
    )
    .await
    .expect(200);
    let talk = m(api
        .send(&ada, &general, "@bob look @here")
        .await
        .expect(201));
    api.post(
        "/v1/messages",
        &bob,
        json!({"channel_id": general, "text": "also here @ada", "thread_root_id": root,
               "also_send_to_channel": true}),
    )
    .await
    .expect(201);
    api.patch(
        &format!("/v1/messages/{talk}"),
        &ada,
        json!({"text": "@bob look @channel"}),
    )
    .await
    .expect(200);
    for (tok, emoji) in [
        (&bob, "+1"),
        (&ada, "👍🏽"),
        (&ada, "+1"),
        (&bob, "🏳️\u{200D}🌈"),
    ] {
        api.post(
            &format!("/v1/messages/{talk}/reactions"),
            tok,
            json!({ "emoji": emoji }),
        )
        .await
        .expect(200);
    }
    api.delete(&format!("/v1/messages/{talk}/reactions/%2B1"), &bob)
        .await
        .expect(200);
    let queued = api.get("/v1/notifications", &bob).await.expect(200);
    let ids: Vec<&str> = queued["notifications"]
        .as_array()
        .expect("notifications")
        .iter()
        .filter_map(|n| n["id"].as_str())
        .collect();
    assert!(!ids.is_empty(), "bob was mentioned");
    api.post("/v1/notifications/ack", &bob, json!({ "ids": ids }))
        .await
        .expect(200);
    for id in [&talk, &root] {
        api.post(
            &format!("/v1/channels/{general}/pins/{id}"),
            &bob,
            json!({}),
        )
        .await
        .expect(200);
    }
    api.delete(&format!("/v1/channels/{general}/pins/{talk}"), &ada)
        .await
        .expect(200);
    api.post(
        &format!("/v1/messages/{root}/reactions"),
        &bob,
        json!({"emoji": "eyes"}),
    )
    .await
    .expect(200);
    // Files: uploads, a post attaching two, one never attached, and the
    // tombstone of a post that carried one.
    let mut files = Vec::new();
    for (i, tok) in [&ada, &ada, &ada, &bob].into_iter().enumerate() {
        let f: serde_json::Value = reqwest::Client::new()
            .post(format!(
                "{}/v1/files?name=f{i}.txt&channel_id={general}",
                api.base
            ))
            .bearer_auth(tok)
            .body(vec![b'x'; 1000 * (i + 1)])
            .send()
            .await
            .expect("upload")
            .json()
            .await
            .expect("upload answer");
        files.push(m(f));
    }
    api.post(
        "/v1/messages",
        &ada,
        json!({"channel_id": general, "text": "two files", "attachment_ids": [files[0], files[1]]}),
    )
    .await
    .expect(201);
    let doomed = m(api
        .post(
            "/v1/messages",
            &bob,
            json!({"channel_id": general, "text": "one file", "attachment_ids": [files[3]]}),
        )
        .await
        .expect(201));
    api.delete(&format!("/v1/messages/{doomed}"), &bob)
        .await
        .expect(200);
    api.delete(&format!("/v1/messages/{root}"), &ada)
        .await
        .expect(200);
    api.patch(
        &format!("/v1/channels/{general}"),
        &ada,
        json!({"name": "town-square", "topic": "everything"}),
    )
    .await
    .expect(200);
    api.delete(&format!("/v1/channels/{secret}/members/{bob_id}"), &ada)
        .await
        .expect(200);
    api.post(&format!("/v1/channels/{general}/leave"), &bob, json!({}))
        .await
        .expect(200);
    api.post("/v1/dms", &ada, json!({"user_ids": [bob_id]}))
        .await
        .expect(201);
    api.post(&format!("/v1/channels/{secret}/archive"), &ada, json!({}))
        .await
        .expect(200);
    let _ = ada_id;
    // Read markers: channel, thread, forward, back, clamped.
    api.post(
        &format!("/v1/channels/{general}/read"),
        &ada,
        json!({"seq": 5}),
    )
    .await
    .expect(200);
    api.post(
        &format!("/v1/channels/{general}/read"),
        &ada,
        json!({"seq": 1_000_000}),
    )
    .await
    .expect(200);
    api.post(
        &format!("/v1/channels/{general}/unread"),
        &ada,
        json!({"seq": 3}),
    )
    .await
    .expect(200);
    api.post(
        &format!("/v1/channels/{general}/read"),
        &ada,
        json!({"seq": 9, "thread_root_id": root}),
    )
    .await
    .expect(200);
    // Push configuration (the push model): set, changed, removed, set.
    for url in ["https://93.184.215.14/a", "https://93.184.215.14/b"] {
        api.call(
            reqwest::Method::PUT,
            "/v1/admin/push",
            Some(&ada),
            Some(json!({"url": url})),
        )
        .await
        .expect(200);
    }
    api.delete("/v1/admin/push", &ada).await.expect(200);
    api.call(
        reqwest::Method::PUT,
        "/v1/admin/push",
        Some(&ada),
        Some(json!({"url": "https://93.184.215.14/c"})),
    )
    .await
    .expect(200);

    // While the server runs: live and rebuilt agree at the live position.
    let (ok, out, err) = run_cli(&["rebuild"], &server.data, &nats.url());
    assert!(ok, "rebuild failed: {out}\n{err}");
    assert_eq!(
        out.matches(" match ").count(),
        7,
        "every read model matches: {out}"
    );

    // After a crash and restart as well.
    server.restart();
    server.api().get("/v1/me", &ada).await.expect(200);
    let (ok, out, err) = run_cli(&["rebuild"], &server.data, &nats.url());
    assert!(ok, "rebuild failed: {out}\n{err}");
    assert_eq!(out.matches(" match ").count(), 7, "{out}");
    let position = nats.log_len().await;
    assert!(
        out.contains(&format!("position={position}")),
        "rebuilt to the head: {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_cli_creates_workspaces_and_users_offline() {
    let nats = Nats::start();
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let (ok, out, err) = run_cli(
        &["admin", "create-workspace", "--name", "Offline"],
        &data,
        &nats.url(),
    );
    assert!(ok, "{err}");
    let ws: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    let ws_id = ws["id"].as_str().expect("id");
    let (ok, out, err) = run_cli(
        &[
            "admin",
            "create-user",
            "--workspace",
            ws_id,
            "--handle",
            "root",
            "--display-name",
            "Root",
            "--role",
            "admin",
        ],
        &data,
        &nats.url(),
    );
    assert!(ok, "{err}");
    let user: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    let token = user["token"].as_str().expect("token");
    // The handle is taken now.
    let (ok, _, err) = run_cli(
        &[
            "admin",
            "create-user",
            "--workspace",
            ws_id,
            "--handle",
            "root",
            "--display-name",
            "Again",
        ],
        &data,
        &nats.url(),
    );
    assert!(!ok && err.contains("conflict"), "{err}");
    // A server on another data dir (fresh read models from the log)
    // accepts the token.
    let server = Server::start(&nats);
    let me = server.api().get("/v1/me", token).await.expect(200);
    assert_eq!(me["workspace"]["name"], "Offline");
    assert_eq!(me["user"]["role"], "admin");
}
