//! Real-time delivery over real WebSocket and SSE clients against the real
//! binary: resume, gaps, slow readers, live membership, auth, typing,
//! presence, several gateways.

use crate::harness::{event_seqs, Api, Nats, Server, Sse, Ws};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

pub(crate) const T: Duration = Duration::from_secs(15);

pub(crate) async fn setup(api: &Api) -> (String, String, String, String) {
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "admin").await;
    let (_, bob) = api.user(&ws, "bob", "member").await;
    let ch = api.channel(&ada, "general", false).await;
    api.post(&format!("/v1/channels/{ch}/join"), &bob, json!({}))
        .await
        .expect(200);
    (ws, ada, bob, ch)
}

fn assert_contiguous(seqs: &[u64], from: u64, what: &str) {
    let want: Vec<u64> = (from..from + seqs.len() as u64).collect();
    assert_eq!(seqs, want.as_slice(), "{what}: in order, no gap, no repeat");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resume_after_disconnect_during_burst_is_exactly_once_in_order() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let (_, ada, bob, ch) = setup(&api).await;
    const N: u64 = 150;
    // seq 1 is bob's join; messages are 2..=N+1.
    let writer = {
        let (api, ada, ch) = (api.clone(), ada.clone(), ch.clone());
        tokio::spawn(async move {
            for i in 0..N {
                api.send(&ada, &ch, &format!("m{i}")).await.expect(201);
                if i % 10 == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        })
    };
    let mut first = Ws::connect(&server.base, &bob).await;
    first.subscribe(&[(&ch, 0)]).await;
    let got = first
        .frames_until(T, |f| f["type"] == "event" && f["seq"].as_u64() >= Some(40))
        .await;
    let seen1 = event_seqs(&got, &ch);
    assert_contiguous(&seen1, 1, "first connection");
    first.close().await; // disconnect in the middle of the burst
    let last = *seen1.last().expect("saw events");
    // Stay away while the burst goes on.
    api.wait_head(&ada, &ch, last + 10).await;

    let mut second = Ws::connect(&server.base, &bob).await;
    second.subscribe(&[(&ch, last)]).await;
    let got = second
        .frames_until(T, |f| {
            f["type"] == "event" && f["seq"].as_u64() == Some(N + 1)
        })
        .await;
    let seen2 = event_seqs(&got, &ch);
    assert_contiguous(&seen2, last + 1, "second connection");
    assert_eq!(seen2.last(), Some(&(N + 1)));
    writer.await.expect("writer");
    // Event frames carry the /events shape.
    let msg = got.iter().find(|f| f["type"] == "event").expect("an event");
    assert_eq!(msg["event"]["type"], "message_posted");
    assert!(msg["event"]["text"]
        .as_str()
        .is_some_and(|t| t.starts_with('m')));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_reader_gets_resync_and_others_get_everything() {
    let nats = Nats::start();
    // A tiny outbound queue so that a reader that stops reading overflows
    // quickly; large frames fill the socket buffers.
    let server = Server::start_with(&nats, &["--ws-queue", "4"]);
    let api = server.api();
    let (_, ada, bob, ch) = setup(&api).await;
    let mut fast = Ws::connect(&server.base, &ada).await;
    fast.subscribe_live(&ch, 1).await;
    let mut slow = Ws::connect(&server.base, &bob).await;
    slow.subscribe_live(&ch, 1).await;

    const N: u64 = 250;
    let big = "x".repeat(30_000);
    let fast_ch = ch.clone();
    let fast_reader = tokio::spawn(async move {
        let frames = fast
            .frames_until(Duration::from_secs(60), |f| {
                f["seq"].as_u64() == Some(N + 1)
            })
            .await;
        assert!(
            frames.iter().all(|f| f["type"] != "resync"),
            "the fast reader is never resynced"
        );
        event_seqs(&frames, &fast_ch)
    });
    for i in 0..N {
        api.send(&ada, &ch, &format!("{i} {big}")).await.expect(201);
    }
    let fast_seqs = fast_reader.await.expect("fast reader");
    assert_contiguous(&fast_seqs, 2, "the fast reader, unaffected by the slow one");

    // The slow reader now reads what it has: some events, then a resync
    // with the last seq it was sent; /events fills the rest.
    let frames = slow.frames_until(Duration::from_secs(10), |_| false).await;
    let resync = frames
        .iter()
        .find(|f| f["type"] == "resync")
        .expect("the slow reader was resynced");
    assert_eq!(resync["channel_id"], ch.as_str());
    let after = resync["after_seq"].as_u64().expect("after_seq");
    let mut have: Vec<u64> = event_seqs(&frames, &ch);
    let fetched = api.all_events(&bob, &ch).await;
    have.extend(
        fetched
            .iter()
            .filter_map(|e| e["seq"].as_u64())
            .filter(|s| *s > after),
    );
    have.sort_unstable();
    have.dedup();
    assert_contiguous(&have, 2, "slow reader after /events");
    assert_eq!(have.last(), Some(&(N + 1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn removal_stops_delivery_and_join_starts_it() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let (ws, ada, bob, ch) = setup(&api).await;
    let bob_id = api.get("/v1/me", &bob).await.expect(200)["user"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (_, carol) = api.user(&ws, "carol", "member").await;

    let mut b = Ws::connect(&server.base, &bob).await;
    b.subscribe_live(&ch, 1).await;
    let mut c = Ws::connect(&server.base, &carol).await; // not a member yet
    api.send(&ada, &ch, "before").await.expect(201);
    let removal = api
        .delete(&format!("/v1/channels/{ch}/members/{bob_id}"), &ada)
        .await
        .expect(200)["seq"]
        .as_u64()
        .expect("seq");
    api.post(&format!("/v1/channels/{ch}/join"), &carol, json!({}))
        .await
        .expect(200);
    for i in 0..5 {
        api.send(&ada, &ch, &format!("after {i}")).await.expect(201);
    }
    let last = api.send(&ada, &ch, "last").await.expect(201)["seq"]
        .as_u64()
        .expect("seq");

    let frames = b.frames_until(Duration::from_secs(2), |_| false).await;
    let seqs = event_seqs(&frames, &ch);
    assert_eq!(
        seqs.last(),
        Some(&removal),
        "bob's delivery stops at his removal: {seqs:?}"
    );
    assert!(
        !frames.iter().any(|f| f.to_string().contains("after ")),
        "nothing after the removal"
    );

    // carol joined without reconnecting or subscribing: events flow.
    let frames = c.frames_until(T, |f| f["seq"].as_u64() == Some(last)).await;
    let seqs = event_seqs(&frames, &ch);
    assert_eq!(seqs.last(), Some(&last), "carol gets events after her join");
    assert_contiguous(&seqs, removal + 1, "carol from her join on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outsiders_and_bad_tickets_get_nothing() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let (ws, ada, bob, public) = setup(&api).await;
    let private = api.channel(&ada, "secret", true).await;
    let other = api.workspace("Other").await;
    let (_, eve) = api.user(&other, "eve", "admin").await;
    let (_, carol) = api.user(&ws, "carol", "member").await;
    api.send(&ada, &private, "secret text").await.expect(201);

    for (token, ch) in [
        (&bob, &private),
        (&eve, &private),
        (&eve, &public),
        (&carol, &public),
    ] {
        let mut w = Ws::connect(&server.base, token).await;
        w.subscribe(&[(ch, 0)]).await;
        let frames = w.frames_until(Duration::from_millis(800), |_| false).await;
        assert_eq!(frames.len(), 1, "only an error: {frames:?}");
        assert_eq!(frames[0]["type"], "error");
        assert_eq!(frames[0]["code"], "not_a_member");
        assert_eq!(frames[0]["channel_id"], ch.as_str());
    }
    // Tickets: single use, and bad ones are refused before the upgrade.
    let ticket = api
        .post("/v1/realtime/tickets", &ada, json!({}))
        .await
        .expect(201)["ticket"]
        .as_str()
        .expect("ticket")
        .to_string();
    let mut w = Ws::connect_ticket(&server.base, &ticket)
        .await
        .expect("ticket accepted");
    assert_eq!(w.frame(T).await.expect("hello")["type"], "hello");
    assert_eq!(
        Ws::connect_ticket(&server.base, &ticket).await.err(),
        Some(401),
        "used ticket"
    );
    assert_eq!(
        Ws::connect_ticket(&server.base, "rtk_bogus").await.err(),
        Some(401),
        "bad ticket"
    );
    // No credentials at all.
    assert_eq!(Ws::connect_ticket(&server.base, "").await.err(), Some(401));
    // A user who left stops receiving and cannot resubscribe.
    api.post(&format!("/v1/channels/{public}/leave"), &bob, json!({}))
        .await
        .expect(200);
    let mut w2 = Ws::connect(&server.base, &bob).await;
    w2.subscribe(&[(&public, 0)]).await;
    let frames = w2.frames_until(Duration::from_millis(800), |_| false).await;
    assert!(frames.iter().all(|f| f["type"] == "error"), "{frames:?}");
    // Presence of another workspace's user is not visible.
    let eve_id = api.get("/v1/me", &eve).await.expect(200)["user"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let p = api
        .get(&format!("/v1/presence?user_ids={eve_id}"), &ada)
        .await
        .expect(200);
    assert_eq!(p["users"].as_array().map(Vec::len), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn typing_is_throttled_and_members_only() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let (ws, ada, bob, ch) = setup(&api).await;
    let (_, carol) = api.user(&ws, "carol", "member").await;
    let mut a = Ws::connect(&server.base, &ada).await;
    a.subscribe_live(&ch, 1).await;
    let mut b = Ws::connect(&server.base, &bob).await;
    b.subscribe_live(&ch, 1).await;
    let mut c = Ws::connect(&server.base, &carol).await;
    c.subscribe(&[(&ch, 1)]).await; // refused: not a member
    let refused = c.frames_until(T, |f| f["type"] == "error").await;
    assert!(
        refused.iter().any(|f| f["code"] == "not_a_member"),
        "{refused:?}"
    );
    for _ in 0..5 {
        b.send(json!({"type": "typing", "channel_id": ch})).await;
    }
    c.send(json!({"type": "typing", "channel_id": ch})).await;
    let frames = a.frames_until(Duration::from_secs(1), |_| false).await;
    let typing: Vec<_> = frames.iter().filter(|f| f["type"] == "typing").collect();
    assert_eq!(typing.len(), 1, "throttled to one per 3 s: {frames:?}");
    assert_eq!(typing[0]["channel_id"], ch.as_str());
    let carol_frames = c.frames_until(Duration::from_millis(500), |_| false).await;
    assert!(
        carol_frames.iter().all(|f| f["type"] == "error"),
        "a non-member sees no typing: {carol_frames:?}"
    );
    // Typing never reaches the log.
    let events = api.all_events(&ada, &ch).await;
    assert!(events.iter().all(|e| e["type"] != "typing"));
    // ping → pong
    b.send(json!({"type": "ping"})).await;
    let f = b
        .frames_until(Duration::from_secs(2), |f| f["type"] == "pong")
        .await;
    assert!(f.iter().any(|f| f["type"] == "pong"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn presence_follows_connections_and_expires_after_missed_heartbeats() {
    let nats = Nats::start();
    let server = Server::start_with(&nats, &["--heartbeat-ms", "300"]);
    let api = server.api();
    let (_, ada, bob, ch) = setup(&api).await;
    let bob_id = api.get("/v1/me", &bob).await.expect(200)["user"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let mut a = Ws::connect(&server.base, &ada).await;
    a.subscribe_live(&ch, 1).await;
    let status = |api: Api, ada: String, bob_id: String| async move {
        api.get(&format!("/v1/presence?user_ids={bob_id}"), &ada)
            .await
            .expect(200)["users"][0]["status"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(
        status(api.clone(), ada.clone(), bob_id.clone()).await,
        "offline"
    );
    // bob connects: online, and ada (sharing a small channel) is told.
    let mut b = Ws::connect(&server.base, &bob).await;
    let f = a
        .frames_until(T, |f| f["type"] == "presence" && f["status"] == "online")
        .await;
    assert!(f
        .iter()
        .any(|f| f["type"] == "presence" && f["user_id"] == bob_id.as_str()));
    assert_eq!(
        status(api.clone(), ada.clone(), bob_id.clone()).await,
        "online"
    );
    b.send(json!({"type": "presence", "status": "away"})).await;
    let f = a
        .frames_until(T, |f| f["type"] == "presence" && f["status"] == "away")
        .await;
    assert!(f.iter().any(|f| f["status"] == "away"));
    assert_eq!(
        status(api.clone(), ada.clone(), bob_id.clone()).await,
        "away"
    );
    // bob's client stops answering (it no longer reads, so no pongs): after
    // two missed heartbeats the server closes it and bob is offline.
    let f = a
        .frames_until(Duration::from_secs(5), |f| {
            f["type"] == "presence" && f["status"] == "offline"
        })
        .await;
    assert!(
        f.iter().any(|f| f["status"] == "offline"),
        "offline after missed heartbeats"
    );
    assert_eq!(
        status(api.clone(), ada.clone(), bob_id.clone()).await,
        "offline"
    );
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateways_kill9_and_reconnect_lose_nothing() {
    let nats = Nats::start();
    let a = Server::start(&nats);
    let mut b = Server::start(&nats);
    let api_a = a.api();
    let (_, ada, bob, ch) = setup(&api_a).await;
    // bob listens on gateway B; ada posts through A.
    let mut w = Ws::connect(&b.base, &bob).await;
    w.subscribe_live(&ch, 1).await;
    const N: u64 = 120;
    let writer = {
        let (api, ada, ch) = (api_a.clone(), ada.clone(), ch.clone());
        tokio::spawn(async move {
            for i in 0..N {
                api.send(&ada, &ch, &format!("m{i}")).await.expect(201);
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        })
    };
    let frames = w.frames_until(T, |f| f["seq"].as_u64() >= Some(30)).await;
    let first = event_seqs(&frames, &ch);
    assert_contiguous(&first, 2, "through gateway B");
    b.kill9();
    let frames_tail = w.frames_until(Duration::from_millis(300), |_| false).await;
    let mut seen = first.clone();
    seen.extend(event_seqs(&frames_tail, &ch));
    assert_contiguous(&seen, 2, "before B died");
    let last = *seen.last().expect("events");
    // Reconnect to A with the last seq seen.
    let mut w = Ws::connect(&a.base, &bob).await;
    w.subscribe(&[(&ch, last)]).await;
    writer.await.expect("writer");
    let frames = w
        .frames_until(T, |f| f["seq"].as_u64() == Some(N + 1))
        .await;
    let rest = event_seqs(&frames, &ch);
    assert_contiguous(&rest, last + 1, "after reconnecting to A");
    assert_eq!(rest.last(), Some(&(N + 1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sse_last_event_id_resumes_every_channel() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let (_, ada, bob, c1) = setup(&api).await;
    let c2 = api.channel(&ada, "random", false).await;
    api.post(&format!("/v1/channels/{c2}/join"), &bob, json!({}))
        .await
        .expect(200);
    for i in 0..5 {
        api.send(&ada, &c1, &format!("one {i}")).await.expect(201);
        api.send(&ada, &c2, &format!("two {i}")).await.expect(201);
    }
    let mut sse = Sse::connect(&server.base, &bob, &format!("{c1}:0,{c2}:0"), None).await;
    let hello = sse.next(T).await.expect("hello");
    assert_eq!(hello.data["type"], "hello");
    let mut got: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut last_id = String::new();
    // Read 8 events, then drop the stream.
    for _ in 0..8 {
        let ev = sse.next(T).await.expect("event");
        assert_eq!(ev.data["type"], "event", "{:?}", ev.data);
        got.entry(ev.data["channel_id"].as_str().expect("ch").to_string())
            .or_default()
            .push(ev.data["seq"].as_u64().expect("seq"));
        last_id = ev.id.expect("every event has an id");
    }
    drop(sse);
    for i in 5..10 {
        api.send(&ada, &c1, &format!("one {i}")).await.expect(201);
        api.send(&ada, &c2, &format!("two {i}")).await.expect(201);
    }
    // Resume: Last-Event-ID wins over the channels parameter.
    let mut sse = Sse::connect(
        &server.base,
        &bob,
        &format!("{c1}:0,{c2}:0"),
        Some(&last_id),
    )
    .await;
    assert_eq!(sse.next(T).await.expect("hello").data["type"], "hello");
    let (h1, h2) = (11u64, 11u64); // join + 10 messages each
    while got.get(&c1).and_then(|v| v.last()) != Some(&h1)
        || got.get(&c2).and_then(|v| v.last()) != Some(&h2)
    {
        let ev = sse.next(T).await.expect("resumed event");
        if ev.data["type"] != "event" {
            continue;
        }
        got.entry(ev.data["channel_id"].as_str().expect("ch").to_string())
            .or_default()
            .push(ev.data["seq"].as_u64().expect("seq"));
    }
    assert_contiguous(&got[&c1], 1, "channel 1 across the reconnect");
    assert_contiguous(&got[&c2], 1, "channel 2 across the reconnect");
}

/// Regression: replay stopped at a user's old `member_left` even though the
/// user had rejoined since, leaving a silent, dead subscription.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rejoined_user_replays_past_its_old_leave() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let (_, ada, bob, ch) = setup(&api).await;
    api.send(&ada, &ch, "one").await.expect(201);
    api.post(&format!("/v1/channels/{ch}/leave"), &bob, json!({}))
        .await
        .expect(200);
    api.send(&ada, &ch, "while away").await.expect(201);
    api.post(&format!("/v1/channels/{ch}/join"), &bob, json!({}))
        .await
        .expect(200);
    let last = api.send(&ada, &ch, "back").await.expect(201)["seq"]
        .as_u64()
        .expect("seq");
    let mut w = Ws::connect(&server.base, &bob).await;
    w.subscribe(&[(&ch, 0)]).await;
    let frames = w.frames_until(T, |f| f["seq"].as_u64() == Some(last)).await;
    assert_contiguous(
        &event_seqs(&frames, &ch),
        1,
        "replay from 0 through the old leave",
    );
    // And live events still flow after the replay.
    let next = api.send(&ada, &ch, "live").await.expect(201)["seq"]
        .as_u64()
        .expect("seq");
    let frames = w.frames_until(T, |f| f["seq"].as_u64() == Some(next)).await;
    assert_eq!(event_seqs(&frames, &ch), vec![next]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sse_outsiders_get_errors_and_no_events() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let (ws, ada, bob, public) = setup(&api).await;
    let private = api.channel(&ada, "secret", true).await;
    api.send(&ada, &private, "secret text").await.expect(201);
    api.send(&ada, &public, "public text").await.expect(201);
    let (_, eve) = api
        .user(&api.workspace("Other").await, "eve", "admin")
        .await;
    let (_, carol) = api.user(&ws, "carol", "member").await;
    api.post(&format!("/v1/channels/{public}/leave"), &bob, json!({}))
        .await
        .expect(200);
    for (who, token, ch) in [
        ("other workspace", &eve, &public),
        ("other workspace", &eve, &private),
        ("non-member of a private channel", &carol, &private),
        ("user who left", &bob, &public),
    ] {
        let mut sse = Sse::connect(&server.base, token, &format!("{ch}:0"), None).await;
        assert_eq!(sse.next(T).await.expect("hello").data["type"], "hello");
        let first = sse.next(T).await.expect("a frame");
        assert_eq!(first.data["type"], "error", "{who}: {:?}", first.data);
        assert_eq!(first.data["code"], "not_a_member");
        let more = sse.next(Duration::from_millis(600)).await;
        assert!(more.is_none(), "{who} got more: {more:?}");
    }
    // No credentials: refused before any stream.
    let r = reqwest::get(format!("{}/v1/sse?channels={public}:0", server.base))
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 401);
}
