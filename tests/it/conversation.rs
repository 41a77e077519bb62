//! The conversation over HTTP against the real binary: edits, deletes,
//! reactions, threads, pins, channel details and mentions — each feature
//! end to end, its refusals with their status and code, and a log that did
//! not grow for anything refused or already in place.

use crate::harness::{Api, Nats, Server, Ws};
use serde_json::{json, Value};
use std::time::Duration;

/// A workspace: ada (admin) created the public `general`, bob and carol
/// joined it, dave is in the workspace but not in the channel.
struct World {
    ws: String,
    ada: String,
    ada_id: String,
    bob: String,
    bob_id: String,
    carol: String,
    carol_id: String,
    dave: String,
    ch: String,
}

async fn world(api: &Api) -> World {
    let ws = api.workspace("Acme").await;
    let (ada_id, ada) = api.user(&ws, "ada", "admin").await;
    let (bob_id, bob) = api.user(&ws, "bob", "member").await;
    let (carol_id, carol) = api.user(&ws, "carol", "member").await;
    let (_, dave) = api.user(&ws, "dave", "member").await;
    let ch = api.channel(&ada, "general", false).await;
    for t in [&bob, &carol] {
        api.post(&format!("/v1/channels/{ch}/join"), t, json!({}))
            .await
            .expect(200);
    }
    World {
        ws,
        ada,
        ada_id,
        bob,
        bob_id,
        carol,
        carol_id,
        dave,
        ch,
    }
}

/// Percent-encodes a path segment (everything but `A-Za-z0-9-_`).
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

/// The channel page (oldest first) as `token` reads it.
async fn page(api: &Api, token: &str, ch: &str) -> Vec<Value> {
    api.get(
        &format!("/v1/channels/{ch}/messages?after_seq=0&limit=200"),
        token,
    )
    .await
    .expect(200)["messages"]
        .as_array()
        .expect("messages")
        .clone()
}

async fn find(api: &Api, token: &str, ch: &str, message: &str) -> Value {
    page(api, token, ch)
        .await
        .into_iter()
        .find(|m| m["id"] == message)
        .unwrap_or_else(|| panic!("{message} is in the channel page"))
}

fn emoji_of(m: &Value) -> Vec<(String, Vec<String>)> {
    m["reactions"]
        .as_array()
        .expect("reactions")
        .iter()
        .map(|r| {
            let users = r["user_ids"]
                .as_array()
                .expect("user_ids")
                .iter()
                .map(|u| u.as_str().unwrap_or("").to_string())
                .collect();
            (r["emoji"].as_str().unwrap_or("").to_string(), users)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn edits_by_the_author_and_deletes_by_the_author_or_an_admin() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let w = world(&api).await;
    let m = api.send(&w.bob, &w.ch, "helo").await.expect(201);
    let m_id = id(&m);
    let path = format!("/v1/messages/{m_id}");

    let edited = api
        .patch(&path, &w.bob, json!({"text": "hello"}))
        .await
        .expect(200);
    assert_eq!(edited["text"], "hello");
    assert!(edited["edited_ts"].is_string(), "{edited}");
    let seen = find(&api, &w.carol, &w.ch, &m_id).await;
    assert_eq!(
        (&seen["text"], &seen["edited_ts"]),
        (&json!("hello"), &edited["edited_ts"])
    );

    let len = nats.log_len().await;
    // The same text again changes nothing.
    api.patch(&path, &w.bob, json!({"text": "hello"}))
        .await
        .expect(200);
    api.patch(&path, &w.carol, json!({"text": "mine now"}))
        .await
        .expect_err(403, "forbidden");
    // Not even an admin edits someone else's words.
    api.patch(&path, &w.ada, json!({"text": "admin says"}))
        .await
        .expect_err(403, "forbidden");
    for bad in [json!({"text": ""}), json!({"text": " \u{200B} "})] {
        api.patch(&path, &w.bob, bad)
            .await
            .expect_err(400, "invalid_request");
    }
    api.patch(&path, &w.bob, json!({"text": "a".repeat(40_001)}))
        .await
        .expect_err(400, "invalid_request");
    api.patch(&path, &w.bob, json!({}))
        .await
        .expect_err(422, "invalid_request");
    api.patch(
        "/v1/messages/M0000000000000000000000000",
        &w.bob,
        json!({"text": "x"}),
    )
    .await
    .expect_err(404, "not_found");
    api.patch("/v1/messages/a.b", &w.bob, json!({"text": "x"}))
        .await
        .expect_err(400, "invalid_request");
    api.delete(&path, &w.carol)
        .await
        .expect_err(403, "forbidden");
    api.delete("/v1/messages/M0000000000000000000000000", &w.ada)
        .await
        .expect_err(404, "not_found");
    assert_eq!(nats.log_len().await, len, "nothing refused was appended");

    // An admin deletes; a second delete appends nothing and answers the same.
    let gone = api.delete(&path, &w.ada).await.expect(200);
    assert_eq!(
        (&gone["deleted"], &gone["text"]),
        (&json!(true), &json!(""))
    );
    let len = nats.log_len().await;
    let again = api.delete(&path, &w.bob).await.expect(200);
    assert_eq!(again["deleted"], true);
    assert_eq!(nats.log_len().await, len, "a second delete appends nothing");
    // A deleted message is not edited back to life.
    api.patch(&path, &w.bob, json!({"text": "back"}))
        .await
        .expect_err(409, "conflict");
    assert_eq!(nats.log_len().await, len);
    let events = api.all_events(&w.bob, &w.ch).await;
    assert!(
        !events.iter().any(|e| e.to_string().contains("helo")),
        "the text is gone from /events: {events:?}"
    );
    assert!(events.iter().any(|e| e["type"] == "message_edited"));
    assert!(events.iter().any(|e| e["type"] == "message_deleted"));

    // The author deletes their own; archived channels refuse edits and deletes.
    let own = id(&api.send(&w.carol, &w.ch, "oops").await.expect(201));
    api.delete(&format!("/v1/messages/{own}"), &w.carol)
        .await
        .expect(200);
    let kept = id(&api.send(&w.carol, &w.ch, "kept").await.expect(201));
    api.post(&format!("/v1/channels/{}/archive", w.ch), &w.ada, json!({}))
        .await
        .expect(200);
    let len = nats.log_len().await;
    api.patch(
        &format!("/v1/messages/{kept}"),
        &w.carol,
        json!({"text": "late"}),
    )
    .await
    .expect_err(409, "channel_archived");
    api.delete(&format!("/v1/messages/{kept}"), &w.carol)
        .await
        .expect_err(409, "channel_archived");
    assert_eq!(nats.log_len().await, len);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn threads_page_their_replies_and_roots_carry_their_summary_everywhere() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let w = world(&api).await;
    let root = id(&api.send(&w.ada, &w.ch, "root").await.expect(201));
    let reply = |token: &str, text: &str, also: bool| {
        let (api, token) = (api.clone(), token.to_string());
        let body = json!({"channel_id": w.ch, "text": text, "thread_root_id": root,
                          "also_send_to_channel": also});
        async move { api.post("/v1/messages", &token, body).await }
    };
    let mut replies = Vec::new();
    for (token, text, also) in [
        (&w.bob, "one", false),
        (&w.carol, "two", true),
        (&w.bob, "three", false),
        (&w.ada, "four", false),
    ] {
        replies.push(reply(token, text, also).await.expect(201));
    }
    assert_eq!(replies[1]["also_send_to_channel"], true);

    // The root, on the channel page in both directions.
    let newest = api
        .get(&format!("/v1/channels/{}/messages", w.ch), &w.bob)
        .await
        .expect(200);
    for listed in [
        newest["messages"].as_array().expect("page").clone(),
        page(&api, &w.bob, &w.ch).await,
    ] {
        let r = listed.iter().find(|m| m["id"] == root).expect("root");
        assert_eq!(r["reply_count"], 4);
        assert_eq!(r["latest_reply_ts"], replies[3]["ts"]);
        assert_eq!(r["reply_user_ids"], json!([w.bob_id, w.carol_id, w.ada_id]));
        // Only the reply also sent to the channel shows there.
        let ids: Vec<&str> = listed.iter().filter_map(|m| m["id"].as_str()).collect();
        assert!(ids.contains(&replies[1]["id"].as_str().expect("id")));
        assert!(!ids.contains(&replies[0]["id"].as_str().expect("id")));
    }

    // The thread, oldest first, in pages.
    let first = api
        .get(&format!("/v1/messages/{root}/replies?limit=3"), &w.carol)
        .await
        .expect(200);
    let texts = |p: &Value| -> Vec<String> {
        p["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["text"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(texts(&first), ["one", "two", "three"]);
    assert_eq!(first["has_more"], true);
    let after = first["messages"][2]["seq"].as_u64().expect("seq");
    let rest = api
        .get(
            &format!("/v1/messages/{root}/replies?after_seq={after}"),
            &w.carol,
        )
        .await
        .expect(200);
    assert_eq!(
        (texts(&rest), &rest["has_more"]),
        (vec!["four".to_string()], &json!(false))
    );

    // Refused: a reply to a reply, also_send_to_channel without a thread,
    // bad paging; nothing appended.
    let len = nats.log_len().await;
    api.post(
        "/v1/messages",
        &w.bob,
        json!({"channel_id": w.ch, "text": "deep", "thread_root_id": replies[0]["id"]}),
    )
    .await
    .expect_err(400, "invalid_request");
    api.post(
        "/v1/messages",
        &w.bob,
        json!({"channel_id": w.ch, "text": "x", "also_send_to_channel": true}),
    )
    .await
    .expect_err(400, "invalid_request");
    for q in ["limit=0", "limit=201", "after_seq=-1", "after_seq=x"] {
        api.get(&format!("/v1/messages/{root}/replies?{q}"), &w.bob)
            .await
            .expect_err(400, "invalid_request");
    }
    api.get("/v1/messages/M0000000000000000000000000/replies", &w.bob)
        .await
        .expect_err(404, "not_found");
    api.get(&format!("/v1/messages/{root}/replies"), &w.dave)
        .await
        .expect_err(403, "not_a_member");
    assert_eq!(nats.log_len().await, len);

    // A deleted root keeps its replies reachable.
    api.delete(&format!("/v1/messages/{root}"), &w.ada)
        .await
        .expect(200);
    let r = find(&api, &w.bob, &w.ch, &root).await;
    assert_eq!((&r["deleted"], &r["text"]), (&json!(true), &json!("")));
    assert_eq!(r["reply_count"], 4);
    let thread = api
        .get(&format!("/v1/messages/{root}/replies"), &w.bob)
        .await
        .expect(200);
    assert_eq!(texts(&thread), ["one", "two", "three", "four"]);
    // …but takes no new ones.
    reply(&w.bob, "five", false)
        .await
        .expect_err(400, "invalid_request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reactions_are_idempotent_validated_ordered_and_capped() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let w = world(&api).await;
    let m = id(&api.send(&w.ada, &w.ch, "react to me").await.expect(201));
    let add = |token: &str, emoji: &str| {
        let (api, token) = (api.clone(), token.to_string());
        let (path, body) = (
            format!("/v1/messages/{m}/reactions"),
            json!({ "emoji": emoji }),
        );
        async move { api.post(&path, &token, body).await }
    };
    let remove = |token: &str, emoji: &str| {
        let (api, token) = (api.clone(), token.to_string());
        let path = format!("/v1/messages/{m}/reactions/{}", enc(emoji));
        async move { api.delete(&path, &token).await }
    };
    let first = add(&w.bob, "+1").await.expect(200);
    assert_eq!(
        emoji_of(&first),
        [("+1".to_string(), vec![w.bob_id.clone()])]
    );
    let len = nats.log_len().await;
    add(&w.bob, "+1").await.expect(200);
    assert_eq!(
        nats.log_len().await,
        len,
        "a repeated reaction appends nothing"
    );

    let family = "👨\u{200D}👩\u{200D}👧\u{200D}👦";
    add(&w.carol, "👍🏽").await.expect(200);
    add(&w.ada, family).await.expect(200);
    let now = add(&w.carol, "+1").await.expect(200);
    assert_eq!(
        emoji_of(&now),
        [
            ("+1".to_string(), vec![w.bob_id.clone(), w.carol_id.clone()]),
            ("👍🏽".to_string(), vec![w.carol_id.clone()]),
            (family.to_string(), vec![w.ada_id.clone()]),
        ],
        "first-reacted order"
    );
    assert_eq!(now["reactions"][0]["count"], 2);
    let after = remove(&w.bob, "+1").await.expect(200);
    assert_eq!(after["reactions"][0]["user_ids"], json!([w.carol_id]));
    let seen = find(&api, &w.bob, &w.ch, &m).await;
    assert_eq!(emoji_of(&seen), emoji_of(&after), "history shows the same");

    let len = nats.log_len().await;
    remove(&w.bob, "+1").await.expect(200);
    remove(&w.bob, "eyes").await.expect(200);
    assert_eq!(
        nats.log_len().await,
        len,
        "removing an absent reaction appends nothing"
    );
    for bad in [
        "<script>",
        &"a".repeat(200),
        &"😀".repeat(200),
        "👍👍",
        "",
        "A",
        "a b",
    ] {
        add(&w.bob, bad).await.expect_err(400, "invalid_request");
    }
    remove(&w.bob, "<script>")
        .await
        .expect_err(400, "invalid_request");
    api.post(
        &format!("/v1/messages/{m}/reactions"),
        &w.bob,
        json!({"emoji": 7}),
    )
    .await
    .expect_err(422, "invalid_request");
    add(&w.dave, "+1").await.expect_err(403, "not_a_member");
    assert_eq!(nats.log_len().await, len);

    // 50 distinct emoji at most; an emoji already there is still fine.
    for i in 0..47 {
        add(&w.bob, &format!("e{i}")).await.expect(200);
    }
    let len = nats.log_len().await;
    let full = add(&w.bob, "one_too_many").await;
    full.expect_err(409, "too_many_reactions");
    assert_eq!(nats.log_len().await, len);
    add(&w.ada, "e3").await.expect(200);

    // Not on deleted messages, not in archived channels.
    let gone = id(&api.send(&w.ada, &w.ch, "bye").await.expect(201));
    api.delete(&format!("/v1/messages/{gone}"), &w.ada)
        .await
        .expect(200);
    let len = nats.log_len().await;
    api.post(
        &format!("/v1/messages/{gone}/reactions"),
        &w.bob,
        json!({"emoji": "+1"}),
    )
    .await
    .expect_err(409, "conflict");
    api.post(&format!("/v1/channels/{}/archive", w.ch), &w.ada, json!({}))
        .await
        .expect(200);
    let len2 = nats.log_len().await;
    add(&w.carol, "tada")
        .await
        .expect_err(409, "channel_archived");
    remove(&w.carol, "👍🏽")
        .await
        .expect_err(409, "channel_archived");
    assert_eq!(nats.log_len().await, len2);
    assert_eq!(len + 1, len2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pins_are_listed_flagged_and_idempotent() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let w = world(&api).await;
    let other = api.channel(&w.ada, "other", false).await;
    let m1 = id(&api.send(&w.ada, &w.ch, "first").await.expect(201));
    let m2 = id(&api.send(&w.bob, &w.ch, "second").await.expect(201));
    let elsewhere = id(&api.send(&w.ada, &other, "elsewhere").await.expect(201));
    let pin = |token: &str, m: &str| {
        let (api, token) = (api.clone(), token.to_string());
        let path = format!("/v1/channels/{}/pins/{m}", w.ch);
        async move { api.post(&path, &token, json!({})).await }
    };
    let unpin = |token: &str, m: &str| {
        let (api, token) = (api.clone(), token.to_string());
        let path = format!("/v1/channels/{}/pins/{m}", w.ch);
        async move { api.delete(&path, &token).await }
    };
    let pins = |token: &str| {
        let (api, token) = (api.clone(), token.to_string());
        let path = format!("/v1/channels/{}/pins", w.ch);
        async move { api.get(&path, &token).await }
    };
    let listed = |v: Value| -> Vec<String> {
        v["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(id)
            .collect()
    };

    assert_eq!(pin(&w.bob, &m1).await.expect(200)["pinned"], true);
    let len = nats.log_len().await;
    pin(&w.carol, &m1).await.expect(200);
    assert_eq!(nats.log_len().await, len, "a repeated pin appends nothing");
    pin(&w.carol, &m2).await.expect(200);
    assert_eq!(
        listed(pins(&w.bob).await.expect(200)),
        [m2.clone(), m1.clone()]
    );
    assert_eq!(find(&api, &w.carol, &w.ch, &m1).await["pinned"], true);

    let unpinned = unpin(&w.bob, &m1).await.expect(200);
    assert_eq!(unpinned["pinned"], false);
    let len = nats.log_len().await;
    unpin(&w.bob, &m1).await.expect(200);
    assert_eq!(nats.log_len().await, len, "unpinning twice appends nothing");
    assert_eq!(listed(pins(&w.bob).await.expect(200)), vec![m2.clone()]);

    // Refused: another channel's message, outsiders, bad ids.
    pin(&w.bob, &elsewhere).await.expect_err(404, "not_found");
    pin(&w.dave, &m1).await.expect_err(403, "not_a_member");
    pins(&w.dave).await.expect_err(403, "not_a_member");
    pin(&w.bob, "M0000000000000000000000000")
        .await
        .expect_err(404, "not_found");
    pin(&w.bob, "a.b").await.expect_err(400, "invalid_request");
    api.post("/v1/channels/a.b/pins/M1", &w.bob, json!({}))
        .await
        .expect_err(400, "invalid_request");
    assert_eq!(nats.log_len().await, len);

    // A tombstone unpins.
    api.delete(&format!("/v1/messages/{m2}"), &w.bob)
        .await
        .expect(200);
    assert!(listed(pins(&w.bob).await.expect(200)).is_empty());
    pin(&w.bob, &m2).await.expect_err(409, "conflict");
    api.post(&format!("/v1/channels/{}/archive", w.ch), &w.ada, json!({}))
        .await
        .expect(200);
    pin(&w.bob, &m1).await.expect_err(409, "channel_archived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn channel_details_are_changed_by_admins_and_creators_and_names_stay_unique() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let w = world(&api).await;
    let random = api.channel(&w.carol, "random", false).await;
    api.post(&format!("/v1/channels/{random}/join"), &w.bob, json!({}))
        .await
        .expect(200);
    let patch = |token: &str, ch: &str, body: Value| {
        let (api, token) = (api.clone(), token.to_string());
        let path = format!("/v1/channels/{ch}");
        async move { api.patch(&path, &token, body).await }
    };

    // The creator renames; an admin sets the topic.
    let renamed = patch(&w.carol, &random, json!({"name": "lobby"}))
        .await
        .expect(200);
    assert_eq!(renamed["name"], "lobby");
    let topic = patch(&w.ada, &random, json!({"topic": "  Launch plans "}))
        .await
        .expect(200);
    assert_eq!(
        (&topic["name"], &topic["topic"]),
        (&json!("lobby"), &json!("Launch plans"))
    );
    let read = api
        .get(&format!("/v1/channels/{random}"), &w.bob)
        .await
        .expect(200);
    assert_eq!(
        (&read["name"], &read["topic"]),
        (&json!("lobby"), &json!("Launch plans"))
    );
    let events = api.all_events(&w.bob, &random).await;
    let set = events
        .iter()
        .find(|e| e["type"] == "channel_topic_set")
        .expect("a topic event");
    assert_eq!(set["topic"], "Launch plans");
    // The old name is free again.
    api.channel(&w.dave, "random", false).await;

    let len = nats.log_len().await;
    // Unchanged values append nothing.
    patch(
        &w.carol,
        &random,
        json!({"name": "lobby", "topic": "Launch plans"}),
    )
    .await
    .expect(200);
    // Refused, with nothing appended.
    patch(&w.bob, &random, json!({"topic": "mine"}))
        .await
        .expect_err(403, "forbidden");
    patch(&w.carol, &random, json!({"name": "general"}))
        .await
        .expect_err(409, "conflict");
    for bad in [
        json!({}),
        json!({"name": "Bad Name"}),
        json!({"name": ""}),
        json!({"topic": "x".repeat(251)}),
        json!({"topic": "\u{200B}"}),
    ] {
        patch(&w.carol, &random, bad)
            .await
            .expect_err(400, "invalid_request");
    }
    patch(&w.carol, &random, json!({"name": 5}))
        .await
        .expect_err(422, "invalid_request");
    let dm = api
        .post("/v1/dms", &w.bob, json!({"user_ids": [w.carol_id]}))
        .await
        .expect(201);
    let len = len + 1;
    patch(&w.bob, &id(&dm), json!({"topic": "us"}))
        .await
        .expect_err(400, "invalid_request");
    assert_eq!(nats.log_len().await, len);

    // A creator who left has no say; an archived channel is frozen.
    api.post(&format!("/v1/channels/{random}/leave"), &w.carol, json!({}))
        .await
        .expect(200);
    let len = nats.log_len().await;
    patch(&w.carol, &random, json!({"topic": "still mine?"}))
        .await
        .expect_err(403, "forbidden");
    api.post(&format!("/v1/channels/{random}/archive"), &w.ada, json!({}))
        .await
        .expect(200);
    patch(&w.ada, &random, json!({"name": "attic"}))
        .await
        .expect_err(409, "channel_archived");
    assert_eq!(nats.log_len().await, len + 1);
}

/// Names are decided on the workspace subject whether a create or a rename
/// takes them: a rename and a create of the same name racing through two
/// processes never both win, and the ACL fold (which stops on a UNIQUE
/// collision) never stalls.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rename_racing_a_create_through_two_processes_takes_the_name_once() {
    let nats = Nats::start();
    let a = Server::start(&nats);
    let b = Server::start(&nats);
    let (api_a, api_b) = (a.api(), b.api());
    let ws = api_a.workspace("Acme").await;
    let (_, ada) = api_a.user(&ws, "ada", "admin").await;
    for round in 0..10 {
        let ch = api_a.channel(&ada, &format!("old-{round}"), false).await;
        let name = format!("race-{round}");
        let rename = {
            let (api, ada, ch, name) = (api_a.clone(), ada.clone(), ch.clone(), name.clone());
            tokio::spawn(async move {
                api.patch(&format!("/v1/channels/{ch}"), &ada, json!({ "name": name }))
                    .await
            })
        };
        let create = {
            let (api, ada, name) = (api_b.clone(), ada.clone(), name.clone());
            tokio::spawn(async move {
                api.post(
                    "/v1/channels",
                    &ada,
                    json!({ "name": name, "private": false }),
                )
                .await
            })
        };
        let (r, c) = (rename.await.expect("rename"), create.await.expect("create"));
        let wins = [r.status == 200, c.status == 201];
        assert_eq!(
            wins.iter().filter(|w| **w).count(),
            1,
            "round {round}: rename {} {}, create {} {}",
            r.status,
            r.body,
            c.status,
            c.body
        );
        for loser in [&r, &c] {
            if loser.status != 200 && loser.status != 201 {
                loser.expect_err(409, "conflict");
            }
        }
    }
    // Both processes' ACL models apply everything (none stalls on a UNIQUE
    // collision) and hold exactly one channel per raced name.
    for api in [&api_a, &api_b] {
        let start = std::time::Instant::now();
        loop {
            let list = api.get("/v1/channels", &ada).await.expect(200);
            let mut names: Vec<String> = list["channels"]
                .as_array()
                .expect("channels")
                .iter()
                .filter_map(|c| c["name"].as_str())
                .filter(|n| n.starts_with("race-"))
                .map(String::from)
                .collect();
            names.sort();
            names.dedup();
            let ready = api.call(reqwest::Method::GET, "/readyz", None, None).await;
            assert_eq!(ready.status, 200, "{}", ready.body);
            if names.len() == 10 {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "only {names:?} reached {}",
                api.base
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mentions_are_resolved_against_members_when_posted_or_edited() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let w = world(&api).await;
    let m = api
        .send(
            &w.ada,
            &w.ch,
            "@bob and @Carol, @dave (not here) and @ghost: see `@carol` — @here",
        )
        .await
        .expect(201);
    assert_eq!(
        m["mentions"],
        json!({"user_ids": [w.bob_id, w.carol_id], "channel": false, "here": true})
    );
    // A non-member and a handle that does not exist look the same.
    let dave = api.send(&w.ada, &w.ch, "hi @dave").await.expect(201);
    let ghost = api.send(&w.ada, &w.ch, "hi @ghost").await.expect(201);
    assert_eq!(dave["mentions"], ghost["mentions"]);
    assert_eq!(dave["mentions"]["user_ids"], json!([]));

    // Resolved when decided: dave joining later does not change the post.
    api.post(&format!("/v1/channels/{}/join", w.ch), &w.dave, json!({}))
        .await
        .expect(200);
    let seen = find(&api, &w.bob, &w.ch, &id(&dave)).await;
    assert_eq!(seen["mentions"]["user_ids"], json!([]));
    // An edit resolves anew, against the members now.
    let edited = api
        .patch(
            &format!("/v1/messages/{}", id(&dave)),
            &w.ada,
            json!({"text": "hi @dave, @everyone"}),
        )
        .await
        .expect(200);
    assert_eq!(edited["mentions"]["channel"], true);
    assert_eq!(
        edited["mentions"]["user_ids"].as_array().map(Vec::len),
        Some(1)
    );
    let events = api.all_events(&w.bob, &w.ch).await;
    let edit = events
        .iter()
        .rev()
        .find(|e| e["type"] == "message_edited")
        .expect("edit event");
    assert_eq!(edit["mentions"], edited["mentions"]);
    let post = events
        .iter()
        .find(|e| e["type"] == "message_posted")
        .expect("post event");
    assert_eq!(post["mentions"], m["mentions"]);
}

/// Every new route, for another workspace's user, a non-member of a
/// private channel and a user who left it: 404/403, no data, no event.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outsiders_get_nothing_from_the_conversation_routes() {
    const SECRET: &str = "the secret plan";
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let w = world(&api).await;
    let private = api.channel(&w.ada, "board", true).await;
    let (bob_id, carol_id) = (w.bob_id.clone(), w.carol_id.clone());
    for u in [&bob_id, &carol_id] {
        api.post(
            &format!("/v1/channels/{private}/members"),
            &w.ada,
            json!({ "user_id": u }),
        )
        .await
        .expect(200);
    }
    let m = id(&api.send(&w.ada, &private, SECRET).await.expect(201));
    api.post(
        &format!("/v1/messages/{m}/reactions"),
        &w.bob,
        json!({"emoji": "+1"}),
    )
    .await
    .expect(200);
    api.post(
        &format!("/v1/channels/{private}/pins/{m}"),
        &w.bob,
        json!({}),
    )
    .await
    .expect(200);
    // carol leaves; dave never was a member; eve is in another workspace.
    api.post(
        &format!("/v1/channels/{private}/leave"),
        &w.carol,
        json!({}),
    )
    .await
    .expect(200);
    let other = api.workspace("Evil Corp").await;
    let (_, eve) = api.user(&other, "eve", "admin").await;
    let len = nats.log_len().await;

    let probes = conversation_probes(&private, &m);
    for (who, token) in [("eve", &eve), ("dave", &w.dave), ("carol (left)", &w.carol)] {
        for (method, path, body) in &probes {
            let r = api
                .call(method.clone(), path, Some(token.as_str()), body.clone())
                .await;
            r.expect_err(404, "not_found");
            let text = r.body.to_string();
            assert!(!text.contains(SECRET), "{who} {method} {path}: {text}");
        }
    }
    // Neither another workspace's admin nor an admin of this one who
    // cannot see the private channel deletes there.
    let (_, root) = api.user(&other, "root", "admin").await;
    let (_, zed) = api.user(&w.ws, "zed", "admin").await;
    for admin in [&root, &zed] {
        api.delete(&format!("/v1/messages/{m}"), admin)
            .await
            .expect_err(404, "not_found");
    }
    assert_eq!(
        nats.log_len().await,
        len + 4,
        "only the new users (each with its token verifier) were appended"
    );

    // A public channel's content is for members: 403.
    let public_m = id(&api.send(&w.ada, &w.ch, SECRET).await.expect(201));
    let len = nats.log_len().await;
    for (method, path, body) in [
        (
            reqwest::Method::PATCH,
            format!("/v1/messages/{public_m}"),
            Some(json!({"text": "x"})),
        ),
        (
            reqwest::Method::DELETE,
            format!("/v1/messages/{public_m}"),
            None,
        ),
        (
            reqwest::Method::POST,
            format!("/v1/messages/{public_m}/reactions"),
            Some(json!({"emoji": "+1"})),
        ),
        (
            reqwest::Method::GET,
            format!("/v1/messages/{public_m}/replies"),
            None,
        ),
        (
            reqwest::Method::GET,
            format!("/v1/channels/{}/pins", w.ch),
            None,
        ),
        (
            reqwest::Method::POST,
            format!("/v1/channels/{}/pins/{public_m}", w.ch),
            Some(json!({})),
        ),
    ] {
        let r = api
            .call(method.clone(), &path, Some(w.dave.as_str()), body)
            .await;
        r.expect_err(403, "not_a_member");
        assert!(!r.body.to_string().contains(SECRET), "{method} {path}");
    }
    api.patch(
        &format!("/v1/channels/{}", w.ch),
        &w.dave,
        json!({"topic": "x"}),
    )
    .await
    .expect_err(403, "forbidden");
    // Without a token: 401.
    let r = api
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/messages/{public_m}"),
            None,
            None,
        )
        .await;
    r.expect_err(401, "unauthorized");
    assert_eq!(nats.log_len().await, len);
}

/// A second client sees an edit, a reaction, a pin and a delete live, each
/// as an `event` frame with its own fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_client_sees_edits_reactions_pins_and_deletes_live() {
    const T: Duration = Duration::from_secs(15);
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let w = world(&api).await;
    let mut bob = Ws::connect(&server.base, &w.bob).await;
    // seq 1 and 2: bob's and carol's joins.
    bob.subscribe_live(&w.ch, 2).await;

    let m = id(&api.send(&w.ada, &w.ch, "draft @bob").await.expect(201));
    api.patch(
        &format!("/v1/messages/{m}"),
        &w.ada,
        json!({"text": "final @carol"}),
    )
    .await
    .expect(200);
    api.post(
        &format!("/v1/messages/{m}/reactions"),
        &w.carol,
        json!({"emoji": "🎉"}),
    )
    .await
    .expect(200);
    api.post(
        &format!("/v1/channels/{}/pins/{m}", w.ch),
        &w.carol,
        json!({}),
    )
    .await
    .expect(200);
    api.delete(&format!("/v1/messages/{m}"), &w.ada)
        .await
        .expect(200);

    let frames = bob
        .frames_until(T, |f| f["event"]["type"] == "message_deleted")
        .await;
    let events: Vec<&Value> = frames
        .iter()
        .filter(|f| f["type"] == "event" && f["channel_id"] == w.ch.as_str())
        .map(|f| &f["event"])
        .collect();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "message_posted",
            "message_edited",
            "reaction_added",
            "message_pinned",
            "message_deleted"
        ],
        "{frames:?}"
    );
    let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert_eq!(seqs, [3, 4, 5, 6, 7]);
    assert_eq!(events[0]["mentions"]["user_ids"], json!([w.bob_id]));
    assert_eq!(
        (&events[1]["message_id"], &events[1]["text"]),
        (&json!(m), &json!("final @carol"))
    );
    assert_eq!(events[1]["mentions"]["user_ids"], json!([w.carol_id]));
    assert_eq!(
        (&events[2]["emoji"], &events[2]["actor_id"]),
        (&json!("🎉"), &json!(w.carol_id))
    );
    assert_eq!(events[3]["message_id"], m);
    assert_eq!(events[4]["message_id"], m);
    bob.close().await;
    // A late reader replays the same events, the text scrubbed.
    let replay = api.all_events(&w.bob, &w.ch).await;
    assert!(!replay.iter().any(|e| e.to_string().contains("final")));
}

/// Every conversation route, aimed at message `m` of `channel`.
fn conversation_probes(channel: &str, m: &str) -> Vec<(reqwest::Method, String, Option<Value>)> {
    vec![
        (
            reqwest::Method::PATCH,
            format!("/v1/messages/{m}"),
            Some(json!({"text": "x"})),
        ),
        (reqwest::Method::DELETE, format!("/v1/messages/{m}"), None),
        (
            reqwest::Method::POST,
            format!("/v1/messages/{m}/reactions"),
            Some(json!({"emoji": "+1"})),
        ),
        (
            reqwest::Method::DELETE,
            format!("/v1/messages/{m}/reactions/%2B1"),
            None,
        ),
        (
            reqwest::Method::GET,
            format!("/v1/messages/{m}/replies"),
            None,
        ),
        (
            reqwest::Method::POST,
            format!("/v1/channels/{channel}/pins/{m}"),
            Some(json!({})),
        ),
        (
            reqwest::Method::DELETE,
            format!("/v1/channels/{channel}/pins/{m}"),
            None,
        ),
        (
            reqwest::Method::GET,
            format!("/v1/channels/{channel}/pins"),
            None,
        ),
        (
            reqwest::Method::PATCH,
            format!("/v1/channels/{channel}"),
            Some(json!({"topic": "x"})),
        ),
        (
            reqwest::Method::POST,
            "/v1/messages".to_string(),
            Some(json!({"channel_id": channel, "text": "x", "thread_root_id": m})),
        ),
    ]
}

/// A DM's outsiders (same workspace, not in the DM) get nothing from the
/// conversation routes, exactly like a private channel's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dm_outsiders_get_nothing_from_the_conversation_routes() {
    const SECRET: &str = "just between us";
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let w = world(&api).await;
    let dm = id(&api
        .post("/v1/dms", &w.ada, json!({"user_ids": [w.bob_id]}))
        .await
        .expect(201));
    let m = id(&api.send(&w.ada, &dm, SECRET).await.expect(201));
    api.post(
        &format!("/v1/messages/{m}/reactions"),
        &w.bob,
        json!({"emoji": "+1"}),
    )
    .await
    .expect(200);
    let len = nats.log_len().await;
    for (method, path, body) in conversation_probes(&dm, &m) {
        for token in [&w.carol, &w.dave] {
            let r = api
                .call(method.clone(), &path, Some(token.as_str()), body.clone())
                .await;
            r.expect_err(404, "not_found");
            assert!(!r.body.to_string().contains(SECRET), "{method} {path}");
        }
    }
    assert_eq!(nats.log_len().await, len, "nothing was appended");
}
