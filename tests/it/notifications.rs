//! Notifications and preferences end to end: who is told about a post,
//! what an edit, a delete, a removal and an acknowledgement do to it,
//! preferences and their validation, and outsiders.

use crate::harness::{Api, Nats, Server};
use serde_json::{json, Value};

/// The caller's notifications (pending ones, or all with `all`), as
/// (kind, message_id, state).
async fn queue(api: &Api, token: &str, all: bool) -> Vec<(String, String, String)> {
    let b = api
        .get(&format!("/v1/notifications?all={all}&limit=1000"), token)
        .await
        .expect(200);
    b["notifications"]
        .as_array()
        .expect("notifications")
        .iter()
        .map(|n| {
            (
                n["kind"].as_str().expect("kind").to_string(),
                n["message_id"].as_str().expect("message_id").to_string(),
                n["state"].as_str().expect("state").to_string(),
            )
        })
        .collect()
}

fn n(kind: &str, message: &str, state: &str) -> (String, String, String) {
    (kind.to_string(), message.to_string(), state.to_string())
}

struct Team {
    api: Api,
    ids: Vec<String>,
    tokens: Vec<String>,
    general: String,
}

/// A workspace with ada (admin), bob, cat and dan, all in `general`.
async fn team(server: &Server) -> Team {
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let mut ids = Vec::new();
    let mut tokens = Vec::new();
    for (h, role) in [
        ("ada", "admin"),
        ("bob", "member"),
        ("cat", "member"),
        ("dan", "member"),
    ] {
        let (id, t) = api.user(&ws, h, role).await;
        ids.push(id);
        tokens.push(t);
    }
    let general = api.channel(&tokens[0], "general", false).await;
    for t in &tokens[1..] {
        api.post(&format!("/v1/channels/{general}/join"), t, json!({}))
            .await
            .expect(200);
    }
    Team {
        api,
        ids,
        tokens,
        general,
    }
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn who_is_told_mentions_dms_keywords_levels_mute_and_at_channel() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let Team {
        api,
        ids,
        tokens,
        general,
        ..
    } = team(&server).await;
    let (ada, bob, cat, dan) = (&tokens[0], &tokens[1], &tokens[2], &tokens[3]);

    // A mention: the mentioned user only; never the sender.
    let m1 = id(&api.send(ada, &general, "hi @bob").await.expect(201));
    assert_eq!(
        queue(&api, bob, false).await,
        [n("mention", &m1, "pending")]
    );
    for t in [ada, cat, dan] {
        assert!(queue(&api, t, true).await.is_empty());
    }
    let page = api.get("/v1/notifications", bob).await.expect(200);
    let first = &page["notifications"][0];
    assert_eq!(first["id"], format!("{m1}-{}", ids[1]));
    assert_eq!(first["channel_id"], general.as_str());
    assert_eq!(first["text"], "hi @bob");
    assert_eq!(first["seq"], 4);
    assert!(first["ts"].as_str().expect("ts").ends_with('Z'));
    assert_eq!(page["next_cursor"], Value::Null);

    // A DM: every message.
    let dm = id(&api
        .post("/v1/dms", ada, json!({"user_ids": [ids[1]]}))
        .await
        .expect(201));
    let m2 = id(&api.send(ada, &dm, "psst").await.expect(201));
    assert_eq!(queue(&api, bob, false).await[0], n("dm", &m2, "pending"));

    // A keyword: whole words, any case.
    let p = api
        .put(
            "/v1/me/preferences",
            cat,
            json!({"keywords": ["  Deploy ", "on call"]}),
        )
        .await
        .expect(200);
    assert_eq!(p["keywords"], json!(["deploy", "on call"]));
    let m3 = id(&api.send(ada, &general, "we DEPLOY at 5").await.expect(201));
    api.send(ada, &general, "a redeployment").await.expect(201);
    assert_eq!(
        queue(&api, cat, false).await,
        [n("keyword", &m3, "pending")]
    );

    // notify=all: every message of the channel.
    let c = api
        .put(
            &format!("/v1/channels/{general}/preferences"),
            dan,
            json!({"notify": "all"}),
        )
        .await
        .expect(200);
    assert_eq!(
        (c["notify"].as_str(), c["muted"].as_bool()),
        (Some("all"), Some(false))
    );
    let m4 = id(&api.send(bob, &general, "plain words").await.expect(201));
    assert_eq!(
        queue(&api, dan, false).await[0],
        n("message", &m4, "pending")
    );

    // Muted: nothing, even a mention; @channel tells the others.
    api.put(
        &format!("/v1/channels/{general}/preferences"),
        bob,
        json!({"muted": true}),
    )
    .await
    .expect(200);
    let before = queue(&api, bob, true).await.len();
    api.send(ada, &general, "@bob again").await.expect(201);
    let m5 = id(&api
        .send(ada, &general, "@channel standup")
        .await
        .expect(201));
    assert_eq!(queue(&api, bob, true).await.len(), before);
    assert_eq!(
        queue(&api, cat, false).await[0],
        n("channel", &m5, "pending")
    );
    assert_eq!(
        queue(&api, dan, false).await[0],
        n("channel", &m5, "pending")
    );
    assert!(
        queue(&api, ada, true).await.is_empty(),
        "the sender is never told"
    );
    let g = api
        .get(&format!("/v1/channels/{general}/preferences"), bob)
        .await
        .expect(200);
    assert_eq!(
        (g["muted"].as_bool(), g["notify"].as_str()),
        (Some(true), Some("default"))
    );

    // Pages, newest first.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10 {
        let path = match &after {
            Some(c) => format!("/v1/notifications?limit=1&after={c}"),
            None => "/v1/notifications?limit=1".to_string(),
        };
        let b = api.get(&path, dan).await.expect(200);
        for x in b["notifications"].as_array().expect("list") {
            seen.push(x["message_id"].as_str().expect("id").to_string());
        }
        match b["next_cursor"].as_str() {
            Some(c) => after = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.first(), Some(&m5));
    assert_eq!(seen.len(), queue(&api, dan, false).await.len());
    api.get("/v1/notifications?after=zz", dan)
        .await
        .expect_err(400, "invalid_request");
    api.get("/v1/notifications?limit=0", dan)
        .await
        .expect_err(400, "invalid_request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn edits_deletes_removals_and_acks_change_the_queue() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let Team {
        api,
        ids,
        tokens,
        general,
        ..
    } = team(&server).await;
    let (ada, bob, cat, dan) = (&tokens[0], &tokens[1], &tokens[2], &tokens[3]);

    // An edit that removes a mention withdraws it; one that adds a mention
    // creates one.
    let m = id(&api.send(ada, &general, "look @bob").await.expect(201));
    assert_eq!(queue(&api, bob, false).await.len(), 1);
    api.patch(
        &format!("/v1/messages/{m}"),
        ada,
        json!({"text": "look @cat"}),
    )
    .await
    .expect(200);
    assert!(queue(&api, bob, true).await.is_empty(), "withdrawn");
    assert_eq!(queue(&api, cat, false).await, [n("mention", &m, "pending")]);
    let cat_page = api.get("/v1/notifications", cat).await.expect(200);
    assert_eq!(cat_page["notifications"][0]["text"], "look @cat");

    // A delete withdraws.
    api.delete(&format!("/v1/messages/{m}"), ada)
        .await
        .expect(200);
    assert!(queue(&api, cat, true).await.is_empty());

    // Removed from a private channel before reading: gone, and nothing
    // new comes.
    let secret = api.channel(ada, "secret", true).await;
    api.post(
        &format!("/v1/channels/{secret}/members"),
        ada,
        json!({"user_id": ids[2]}),
    )
    .await
    .expect(200);
    api.send(ada, &secret, "psst @cat").await.expect(201);
    assert_eq!(queue(&api, cat, false).await.len(), 1);
    api.delete(&format!("/v1/channels/{secret}/members/{}", ids[2]), ada)
        .await
        .expect(200);
    assert!(queue(&api, cat, true).await.is_empty());

    // A user who left sees nothing new, even for @channel.
    api.post(&format!("/v1/channels/{general}/leave"), dan, json!({}))
        .await
        .expect(200);
    api.send(ada, &general, "@channel after dan left")
        .await
        .expect(201);
    assert!(queue(&api, dan, true).await.is_empty());

    // Acks: only the caller's own; the rest is ignored.
    let a = id(&api.send(ada, &general, "@bob @cat one").await.expect(201));
    let b = id(&api.send(ada, &general, "@bob two").await.expect(201));
    let (bob_a, cat_a) = (format!("{a}-{}", ids[1]), format!("{a}-{}", ids[2]));
    let log = nats.log_len().await;
    let r = api
        .post(
            "/v1/notifications/ack",
            bob,
            json!({"ids": [bob_a, cat_a, "M0-U0"]}),
        )
        .await
        .expect(200);
    assert_eq!(r["acked"], json!([bob_a]));
    assert_eq!(nats.log_len().await, log + 1);
    // (bob also has the @channel from before.)
    let pending = queue(&api, bob, false).await;
    assert!(!pending.iter().any(|x| x.1 == a), "{pending:?}");
    assert_eq!(pending[0], n("mention", &b, "pending"));
    assert_eq!(
        queue(&api, cat, false).await[0],
        n("mention", &a, "pending")
    );
    let all = queue(&api, bob, true).await;
    assert!(all.contains(&n("mention", &a, "acked")), "{all:?}");
    // Nothing left to acknowledge: nothing appended.
    let r = api
        .post("/v1/notifications/ack", bob, json!({"ids": [bob_a, cat_a]}))
        .await
        .expect(200);
    assert_eq!(r["acked"], json!([]));
    assert_eq!(nats.log_len().await, log + 1);
    // Malformed.
    let many: Vec<String> = (0..501).map(|i| format!("M{i}-U")).collect();
    for body in [
        json!({"ids": many}),
        json!({"ids": ["a.b"]}),
        json!({"ids": [""]}),
    ] {
        api.post("/v1/notifications/ack", bob, body)
            .await
            .expect_err(400, "invalid_request");
    }
    for body in [json!({"ids": "x"}), json!({}), json!({"ids": [7]})] {
        let r = api.post("/v1/notifications/ack", bob, body).await;
        assert_eq!((r.status, r.code()), (422, "invalid_request"), "{}", r.body);
    }
    assert_eq!(nats.log_len().await, log + 1, "refusals append nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn preferences_update_partially_and_refuse_bad_input() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let Team {
        api,
        tokens,
        general,
        ..
    } = team(&server).await;
    let (ada, bob) = (&tokens[0], &tokens[1]);

    let p = api.get("/v1/me/preferences", bob).await.expect(200);
    assert_eq!(
        p,
        json!({"dnd_until": null, "dnd_schedule": null, "time_zone": "UTC",
               "keywords": [], "dnd_active_until": null})
    );
    let p = api
        .put(
            "/v1/me/preferences",
            bob,
            json!({"time_zone": "Europe/Berlin", "dnd_schedule": {"start": "22:00", "end": "07:00"},
                   "dnd_until": "2999-01-01T12:00:00Z"}),
        )
        .await
        .expect(200);
    assert_eq!(p["time_zone"], "Europe/Berlin");
    assert_eq!(p["dnd_schedule"], json!({"start": "22:00", "end": "07:00"}));
    assert_eq!(p["dnd_until"], "2999-01-01T12:00:00.000Z");
    assert_eq!(p["dnd_active_until"], "2999-01-01T12:00:00.000Z");
    // Partial: the rest stays.
    let p = api
        .put(
            "/v1/me/preferences",
            bob,
            json!({"keywords": ["lunch"], "dnd_until": null}),
        )
        .await
        .expect(200);
    assert_eq!(p["time_zone"], "Europe/Berlin");
    assert_eq!(p["dnd_schedule"]["start"], "22:00");
    assert_eq!(
        (p["dnd_until"].clone(), p["keywords"].clone()),
        (Value::Null, json!(["lunch"]))
    );
    assert_eq!(api.get("/v1/me/preferences", bob).await.expect(200), p);

    // Unchanged: nothing appended.
    let log = nats.log_len().await;
    api.put("/v1/me/preferences", bob, json!({"keywords": ["LUNCH"]}))
        .await
        .expect(200);
    api.put("/v1/me/preferences", bob, json!({}))
        .await
        .expect(200);
    api.put(
        &format!("/v1/channels/{general}/preferences"),
        bob,
        json!({"notify": "default", "muted": false}),
    )
    .await
    .expect(200);
    assert_eq!(nats.log_len().await, log);

    // Bad input names its field; nothing appended.
    let keywords: Vec<String> = (0..51).map(|i| format!("k{i}")).collect();
    for (body, field) in [
        (json!({"time_zone": "Mars/Base"}), "time_zone"),
        (json!({"dnd_until": "tomorrow"}), "dnd_until"),
        (
            json!({"dnd_schedule": {"start": "25:00", "end": "07:00"}}),
            "dnd_schedule.start",
        ),
        (
            json!({"dnd_schedule": {"start": "07:00", "end": "07:00"}}),
            "dnd_schedule",
        ),
        (json!({"keywords": keywords}), "keywords"),
        (json!({"keywords": ["x".repeat(65)]}), "keywords[0]"),
        (json!({"keywords": ["ok", "  "]}), "keywords[1]"),
    ] {
        let r = api.put("/v1/me/preferences", bob, body.clone()).await;
        r.expect_err(400, "invalid_request");
        let msg = r.body["error"]["message"].as_str().expect("message");
        assert!(msg.starts_with(field), "{body}: {msg}");
    }
    let r = api
        .put("/v1/me/preferences", bob, json!({"keywords": "lunch"}))
        .await;
    assert_eq!((r.status, r.code()), (422, "invalid_request"));
    assert!(r.body["error"]["message"]
        .as_str()
        .expect("m")
        .starts_with("keywords"));
    let r = api
        .put(
            &format!("/v1/channels/{general}/preferences"),
            bob,
            json!({"notify": "loud"}),
        )
        .await;
    r.expect_err(400, "invalid_request");
    assert!(r.body["error"]["message"]
        .as_str()
        .expect("m")
        .starts_with("notify"));
    assert_eq!(nats.log_len().await, log);

    // Channel settings: members only.
    let secret = api.channel(ada, "secret", true).await;
    let open = api.channel(ada, "open", false).await;
    for (ch, status, code) in [(&secret, 404, "not_found"), (&open, 403, "not_a_member")] {
        let path = format!("/v1/channels/{ch}/preferences");
        api.put(&path, bob, json!({"muted": true}))
            .await
            .expect_err(status, code);
        api.get(&path, bob).await.expect_err(status, code);
    }
    assert_eq!(
        nats.log_len().await,
        log + 2,
        "two channels created, nothing else"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outsiders_never_see_notifications() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let Team {
        api,
        ids,
        tokens,
        general,
        ..
    } = team(&server).await;
    let (ada, bob) = (&tokens[0], &tokens[1]);
    // Another workspace's user with a keyword every post here contains.
    let other_ws = api.workspace("Other").await;
    let (_, eve) = api.user(&other_ws, "eve", "admin").await;
    api.put("/v1/me/preferences", &eve, json!({"keywords": ["secret"]}))
        .await
        .expect(200);
    // A non-member of a private channel with the same keyword.
    let (_, fay) = api.user(&server_ws(&api, ada).await, "fay", "member").await;
    api.put("/v1/me/preferences", &fay, json!({"keywords": ["secret"]}))
        .await
        .expect(200);
    let secret = api.channel(ada, "secret", true).await;
    api.post(
        &format!("/v1/channels/{secret}/members"),
        ada,
        json!({"user_id": ids[1]}),
    )
    .await
    .expect(200);
    let m = id(&api
        .send(ada, &secret, "the secret plan @channel @fay")
        .await
        .expect(201));
    api.send(ada, &general, "a secret in general")
        .await
        .expect(201);
    assert_eq!(queue(&api, bob, false).await, [n("channel", &m, "pending")]);
    assert!(queue(&api, &eve, true).await.is_empty());
    assert!(queue(&api, &fay, true).await.is_empty());
    // Nobody else can acknowledge bob's notification.
    let bobs = format!("{m}-{}", ids[1]);
    for t in [&eve, &fay, ada] {
        let r = api
            .post("/v1/notifications/ack", t, json!({"ids": [bobs]}))
            .await
            .expect(200);
        assert_eq!(r["acked"], json!([]));
    }
    assert_eq!(queue(&api, bob, false).await, [n("channel", &m, "pending")]);
    // Another workspace's channel settings are not found.
    api.get(&format!("/v1/channels/{general}/preferences"), &eve)
        .await
        .expect_err(404, "not_found");
    // No token.
    let r = api
        .call(reqwest::Method::GET, "/v1/notifications", None, None)
        .await;
    assert_eq!(r.status, 401);
}

/// The caller's workspace id.
async fn server_ws(api: &Api, token: &str) -> String {
    api.get("/v1/me", token).await.expect(200)["workspace"]["id"]
        .as_str()
        .expect("ws")
        .to_string()
}

/// The read-state and notification models agree through the real routes:
/// `@here` notifies the member who is online and not the one who is not;
/// a read marker moved with `POST …/read` turns a pending notification
/// into a read one; a channel muted with `PUT …/preferences` keeps its
/// unread count, loses its mention badge and notifies nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_markers_mutes_and_here_reach_both_models() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let t = team(&server).await;
    let (api, general) = (&t.api, t.general.as_str());
    let (ada, bob, cat) = (&t.tokens[0], &t.tokens[1], &t.tokens[2]);

    // ada is online (a WebSocket open), cat is not.
    let online = crate::harness::Ws::connect(&server.base, ada).await;
    let here = id(&api
        .post(
            "/v1/messages",
            bob,
            json!({"channel_id": general, "text": "@here standup"}),
        )
        .await
        .expect(201));
    assert_eq!(
        queue(api, ada, false).await,
        vec![n("here", &here, "pending")]
    );
    assert_eq!(queue(api, cat, false).await, vec![]);
    online.close().await;

    // cat is mentioned, then reads past it: read, no longer pending.
    let m = api
        .post(
            "/v1/messages",
            bob,
            json!({"channel_id": general, "text": "@cat a question"}),
        )
        .await
        .expect(201);
    let (mention, seq) = (id(&m), m["seq"].as_u64().expect("seq"));
    assert_eq!(
        queue(api, cat, false).await,
        vec![n("mention", &mention, "pending")]
    );
    api.post(
        &format!("/v1/channels/{general}/read"),
        cat,
        json!({"seq": seq}),
    )
    .await
    .expect(200);
    assert_eq!(queue(api, cat, false).await, vec![]);
    assert_eq!(
        queue(api, cat, true).await,
        vec![n("mention", &mention, "read")]
    );

    // cat mutes the channel: the next mention counts as unread, with no
    // mention badge and no notification.
    api.put(
        &format!("/v1/channels/{general}/preferences"),
        cat,
        json!({"muted": true}),
    )
    .await
    .expect(200);
    api.post(
        "/v1/messages",
        bob,
        json!({"channel_id": general, "text": "@cat again"}),
    )
    .await
    .expect(201);
    let unreads = api.get("/v1/unreads", cat).await.expect(200);
    let row = unreads["channels"]
        .as_array()
        .expect("channels")
        .iter()
        .find(|c| c["channel_id"] == general)
        .cloned()
        .expect("general listed");
    assert_eq!(
        (row["unread_count"].as_u64(), row["mention_count"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(queue(api, cat, false).await, vec![]);
}
