//! Read markers and unread counts over HTTP against the real binary: a
//! scripted mixed history with exact `unread_count`/`mention_count` after
//! each step, thread counts, a DM, `@here` with the reader offline and
//! online, markers that never go back except by "mark unread", clamping to
//! the head, live `read_marker` frames on every connection of the user,
//! and outsiders who learn nothing and move nothing.
//! (Muting is covered by the fold's unit tests; its route is another
//! change's.)

use crate::harness::{Api, Nats, Server, Ws};
use serde_json::{json, Value};
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

/// (unread_count, mention_count) of `channel` for `token`; `None` when
/// the channel is not listed.
async fn counts(api: &Api, token: &str, channel: &str) -> Option<(u64, u64)> {
    let b = api.get("/v1/unreads", token).await.expect(200);
    b["channels"]
        .as_array()
        .expect("channels")
        .iter()
        .find(|c| c["channel_id"] == channel)
        .map(|c| {
            (
                c["unread_count"].as_u64().expect("unread_count"),
                c["mention_count"].as_u64().expect("mention_count"),
            )
        })
}

async fn thread(api: &Api, token: &str, root: &str) -> Option<(u64, u64)> {
    let b = api.get("/v1/unreads", token).await.expect(200);
    b["threads"]
        .as_array()
        .expect("threads")
        .iter()
        .find(|t| t["root_id"] == root)
        .map(|t| {
            (
                t["unread_replies"].as_u64().expect("unread_replies"),
                t["mention_count"].as_u64().expect("mention_count"),
            )
        })
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

async fn post(api: &Api, token: &str, body: Value) -> Value {
    api.post("/v1/messages", token, body).await.expect(201)
}

async fn read(api: &Api, token: &str, ch: &str, body: Value) -> Value {
    api.post(&format!("/v1/channels/{ch}/read"), token, body)
        .await
        .expect(200)
}

/// Waits for a `read_marker` frame with this seq; panics after [`T`].
async fn marker_frame(ws: &mut Ws, ch: &str, seq: u64) -> Value {
    let frames = ws
        .frames_until(T, |f| {
            f["type"] == "read_marker" && f["channel_id"] == ch && f["seq"].as_u64() == Some(seq)
        })
        .await;
    frames
        .into_iter()
        .find(|f| f["type"] == "read_marker" && f["seq"].as_u64() == Some(seq))
        .unwrap_or_else(|| panic!("no read_marker frame for seq {seq}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scripted_history_gives_exact_counts_and_markers_move_live() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (ada_id, ada) = api.user(&ws, "ada", "member").await;
    let (bob_id, bob) = api.user(&ws, "bob", "member").await;
    let (_, carol) = api.user(&ws, "carol", "member").await;
    let ch = api.channel(&bob, "general", false).await;
    for t in [&ada, &carol] {
        api.post(&format!("/v1/channels/{ch}/join"), t, json!({}))
            .await
            .expect(200);
    }
    // ada joined at seq 1, carol at 2: nothing is unread for ada.
    assert_eq!(counts(&api, &ada, &ch).await, Some((0, 0)));

    // Own posts never count; others' do.
    let hi = id(&post(&api, &ada, json!({"channel_id": ch, "text": "hi"})).await); // 3
    assert_eq!(counts(&api, &ada, &ch).await, Some((0, 0)));
    post(&api, &bob, json!({"channel_id": ch, "text": "hello"})).await; // 4
    assert_eq!(counts(&api, &ada, &ch).await, Some((1, 0)));
    post(&api, &carol, json!({"channel_id": ch, "text": "@ada look"})).await; // 5
    assert_eq!(counts(&api, &ada, &ch).await, Some((2, 1)));

    // A deleted message stops counting at once.
    let oops = id(&post(&api, &bob, json!({"channel_id": ch, "text": "oops @ada"})).await); // 6
    assert_eq!(counts(&api, &ada, &ch).await, Some((3, 2)));
    api.delete(&format!("/v1/messages/{oops}"), &bob)
        .await
        .expect(200); // 7
    assert_eq!(counts(&api, &ada, &ch).await, Some((2, 1)));

    // Edits adding and removing a mention; the edits themselves don't count.
    let plain = id(&post(&api, &bob, json!({"channel_id": ch, "text": "plain"})).await); // 8
    assert_eq!(counts(&api, &ada, &ch).await, Some((3, 1)));
    api.patch(
        &format!("/v1/messages/{plain}"),
        &bob,
        json!({"text": "now @ada"}),
    )
    .await
    .expect(200); // 9
    assert_eq!(counts(&api, &ada, &ch).await, Some((3, 2)));
    api.patch(
        &format!("/v1/messages/{plain}"),
        &bob,
        json!({"text": "never mind"}),
    )
    .await
    .expect(200); // 10
    assert_eq!(counts(&api, &ada, &ch).await, Some((3, 1)));
    // Reactions don't count either.
    api.post(
        &format!("/v1/messages/{plain}/reactions"),
        &bob,
        json!({"emoji": "eyes"}),
    )
    .await
    .expect(200); // 11
    assert_eq!(counts(&api, &ada, &ch).await, Some((3, 1)));

    // Thread replies: in the thread only, unless also sent to the channel.
    post(
        &api,
        &bob,
        json!({"channel_id": ch, "text": "in thread", "thread_root_id": hi}),
    )
    .await; // 12
    assert_eq!(counts(&api, &ada, &ch).await, Some((3, 1)));
    assert_eq!(
        thread(&api, &ada, &hi).await,
        Some((1, 0)),
        "ada started it"
    );
    post(
        &api,
        &carol,
        json!({"channel_id": ch, "text": "@ada see", "thread_root_id": hi,
               "also_send_to_channel": true}),
    )
    .await; // 13
    assert_eq!(counts(&api, &ada, &ch).await, Some((4, 2)));
    assert_eq!(thread(&api, &ada, &hi).await, Some((2, 1)));

    // @channel.
    post(
        &api,
        &bob,
        json!({"channel_id": ch, "text": "@channel standup"}),
    )
    .await; // 14
    assert_eq!(counts(&api, &ada, &ch).await, Some((5, 3)));

    // @here while ada is offline: counts, no mention.
    post(
        &api,
        &bob,
        json!({"channel_id": ch, "text": "@here anyone?"}),
    )
    .await; // 15
    assert_eq!(counts(&api, &ada, &ch).await, Some((6, 3)));
    // ada comes online (a WebSocket open): @here mentions her.
    let mut w1 = Ws::connect(&server.base, &ada).await;
    let here = post(&api, &bob, json!({"channel_id": ch, "text": "@here again"})).await; // 16
    assert_eq!(here["seq"], 16);
    assert_eq!(counts(&api, &ada, &ch).await, Some((7, 4)));
    // carol (joined at 2) is offline: @here did not address her; her own
    // posts and bob's reply kept in the thread don't count; @channel does.
    assert_eq!(counts(&api, &carol, &ch).await, Some((6, 1)));

    // Reading the channel: everything read; the thread keeps its own marker.
    let b = read(&api, &ada, &ch, json!({"seq": 16})).await;
    assert_eq!(b, json!({"channel_id": ch, "last_read_seq": 16}));
    marker_frame(&mut w1, &ch, 16).await;
    assert_eq!(counts(&api, &ada, &ch).await, Some((0, 0)));
    assert_eq!(thread(&api, &ada, &hi).await, Some((2, 1)));
    let b = read(&api, &ada, &ch, json!({"seq": 13, "thread_root_id": hi})).await;
    assert_eq!(
        b,
        json!({"channel_id": ch, "last_read_seq": 13, "thread_root_id": hi})
    );
    let f = marker_frame(&mut w1, &ch, 13).await;
    assert_eq!(f["thread_root_id"], hi.as_str());
    assert_eq!(thread(&api, &ada, &hi).await, Some((0, 0)));

    // Never backwards: a lower seq changes nothing and appends nothing.
    let before = nats.log_len().await;
    let b = read(&api, &ada, &ch, json!({"seq": 4})).await;
    assert_eq!(b["last_read_seq"], 16);
    assert_eq!(nats.log_len().await, before, "nothing appended");
    assert_eq!(counts(&api, &ada, &ch).await, Some((0, 0)));

    // Mark unread from 15: marker 14; 15 (offline @here) and 16 (online
    // @here) are unread again, one of them a mention. Both of ada's
    // connections see it live.
    let mut w2 = Ws::connect(&server.base, &ada).await;
    let b = api
        .post(
            &format!("/v1/channels/{ch}/unread"),
            &ada,
            json!({"seq": 15}),
        )
        .await
        .expect(200);
    assert_eq!(b["last_read_seq"], 14);
    marker_frame(&mut w1, &ch, 14).await;
    marker_frame(&mut w2, &ch, 14).await;
    assert_eq!(counts(&api, &ada, &ch).await, Some((2, 1)));

    // Beyond the head: clamped to the head; again live on both.
    let b = read(&api, &ada, &ch, json!({"seq": 1_000_000})).await;
    assert_eq!(b["last_read_seq"], 16);
    marker_frame(&mut w1, &ch, 16).await;
    marker_frame(&mut w2, &ch, 16).await;
    assert_eq!(counts(&api, &ada, &ch).await, Some((0, 0)));
    // A marker move of another user reaches none of ada's connections.
    read(&api, &carol, &ch, json!({"seq": 2})).await;
    read(&api, &bob, &ch, json!({"seq": 5})).await;
    let stray = w1
        .frames_until(Duration::from_millis(500), |f| f["type"] == "read_marker")
        .await;
    assert!(
        !stray.iter().any(|f| f["type"] == "read_marker"),
        "{stray:?}"
    );

    // A DM: every message is a mention.
    let dm = api
        .post("/v1/dms", &bob, json!({"user_ids": [ada_id]}))
        .await
        .expect(201)["id"]
        .as_str()
        .expect("id")
        .to_string();
    for text in ["psst", "you there?"] {
        post(&api, &bob, json!({"channel_id": dm, "text": text})).await;
    }
    assert_eq!(counts(&api, &ada, &dm).await, Some((2, 2)));
    assert_eq!(counts(&api, &bob, &dm).await, Some((0, 0)));

    // A member who leaves: the channel disappears from her unreads, and
    // she can no longer move a marker there.
    api.post(&format!("/v1/channels/{ch}/leave"), &carol, json!({}))
        .await
        .expect(200);
    assert_eq!(counts(&api, &carol, &ch).await, None);
    api.post(
        &format!("/v1/channels/{ch}/read"),
        &carol,
        json!({"seq": 3}),
    )
    .await
    .expect_err(403, "not_a_member");
    let _ = bob_id;
    w1.close().await;
    w2.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outsiders_get_nothing_and_move_nothing() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "admin").await;
    let (_, dave) = api.user(&ws, "dave", "member").await;
    let other = api.workspace("Other").await;
    let (_, eve) = api.user(&other, "eve", "admin").await;
    let public = api.channel(&ada, "general", false).await;
    let secret = api.channel(&ada, "secret", true).await;
    let root = id(&post(&api, &ada, json!({"channel_id": public, "text": "root"})).await);
    let foreign = id(&post(&api, &ada, json!({"channel_id": secret, "text": "s"})).await);
    post(
        &api,
        &ada,
        json!({"channel_id": secret, "text": "more @channel"}),
    )
    .await;

    let before = nats.log_len().await;
    // Unreads list only channels one is a member of.
    for tok in [&dave, &eve] {
        let b = api.get("/v1/unreads", tok).await.expect(200);
        assert_eq!(b, json!({"channels": [], "threads": []}), "{b}");
    }
    // Markers: a public channel's non-member 403; a private channel's
    // non-member, another workspace, an unknown channel 404.
    api.post(
        &format!("/v1/channels/{public}/read"),
        &dave,
        json!({"seq": 1}),
    )
    .await
    .expect_err(403, "not_a_member");
    api.post(
        &format!("/v1/channels/{public}/unread"),
        &dave,
        json!({"seq": 1}),
    )
    .await
    .expect_err(403, "not_a_member");
    for (tok, ch) in [(&dave, &secret), (&eve, &secret), (&eve, &public)] {
        for route in ["read", "unread"] {
            api.post(
                &format!("/v1/channels/{ch}/{route}"),
                tok,
                json!({"seq": 1}),
            )
            .await
            .expect_err(404, "not_found");
        }
    }
    api.post(
        "/v1/channels/CNOSUCHCHANNEL0000000000000/read",
        &ada,
        json!({"seq": 1}),
    )
    .await
    .expect_err(404, "not_found");
    // A thread's marker: a non-member of the public channel 403, another
    // workspace 404.
    api.post(
        &format!("/v1/channels/{public}/read"),
        &dave,
        json!({"seq": 1, "thread_root_id": root}),
    )
    .await
    .expect_err(403, "not_a_member");
    api.post(
        &format!("/v1/channels/{public}/read"),
        &eve,
        json!({"seq": 1, "thread_root_id": root}),
    )
    .await
    .expect_err(404, "not_found");
    // A thread root of another channel, or no such root: 404.
    api.post(
        &format!("/v1/channels/{public}/read"),
        &ada,
        json!({"seq": 1, "thread_root_id": foreign}),
    )
    .await
    .expect_err(404, "not_found");
    // Bad input (a missing or mistyped field 422, a bad id 400): nothing
    // appended.
    for (body, status) in [
        (json!({}), 422),
        (json!({"seq": -1}), 422),
        (json!({"seq": "3"}), 422),
        (json!({"seq": 1, "thread_root_id": "a.b"}), 400),
    ] {
        api.post(&format!("/v1/channels/{public}/read"), &ada, body.clone())
            .await
            .expect_err(status, "invalid_request");
    }
    api.post(
        &format!("/v1/channels/{public}/unread"),
        &ada,
        json!({"seq": 0}),
    )
    .await
    .expect_err(400, "invalid_request");
    assert_eq!(nats.log_len().await, before, "nothing appended");
    // No token: 401.
    let r = api
        .call(reqwest::Method::GET, "/v1/unreads", None, None)
        .await;
    assert_eq!(r.status, 401);
    // ada sees both channels (her own posts: nothing unread).
    let b = api.get("/v1/unreads", &ada).await.expect(200);
    let ids: Vec<&str> = b["channels"]
        .as_array()
        .expect("channels")
        .iter()
        .filter_map(|c| c["channel_id"].as_str())
        .collect();
    assert_eq!(ids.len(), 2, "{b}");
    assert!(ids.contains(&public.as_str()) && ids.contains(&secret.as_str()));
}
