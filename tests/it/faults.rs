//! Failures: kill -9 of `serve` mid-burst, and nats-server going away.

use crate::harness::{Nats, Server};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_mid_burst_loses_nothing_acknowledged_and_applies_once() {
    let nats = Nats::start();
    let mut server = Server::start(&nats);
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "admin").await;
    let ch = api.channel(&ada, "burst", false).await;
    let root = api.send(&ada, &ch, "root").await.expect(201)["id"]
        .as_str()
        .expect("id")
        .to_string();

    // Writers post top-level messages and thread replies until the server
    // dies; every 201 is recorded.
    let stop = Arc::new(AtomicBool::new(false));
    let acked_n = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (api, ada, ch, root, stop, acked_n) = (
            api.clone(),
            ada.clone(),
            ch.clone(),
            root.clone(),
            stop.clone(),
            acked_n.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) && i < 2_000 {
                let mut body = json!({"channel_id": ch, "text": format!("w{w}-{i}")});
                if w % 2 == 1 {
                    body["thread_root_id"] = json!(root);
                }
                match api
                    .try_call(
                        reqwest::Method::POST,
                        "/v1/messages",
                        Some(&ada),
                        Some(body),
                    )
                    .await
                {
                    Ok(r) if r.status == 201 => {
                        acked.push(r.body["id"].as_str().expect("id").to_string());
                        acked_n.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(_) => break, // the server is gone
                }
                i += 1;
            }
            (w % 2 == 1, acked)
        }));
    }
    // Kill it mid-burst: once a few hundred posts were acknowledged.
    let burst = Instant::now();
    while acked_n.load(Ordering::Relaxed) < 300 {
        assert!(
            burst.elapsed() < Duration::from_secs(20),
            "the burst never got going"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    let mut acked_top = HashSet::new();
    let mut acked_replies = HashSet::new();
    for t in tasks {
        let (reply, ids) = t.await.expect("writer");
        for id in ids {
            if reply {
                acked_replies.insert(id);
            } else {
                acked_top.insert(id);
            }
        }
    }
    assert!(
        acked_top.len() + acked_replies.len() > 20,
        "the burst was under way when the server died"
    );

    server.restart();
    let api = server.api();
    let head = nats.log_len().await;
    let ready = Instant::now();
    while api
        .call(reqwest::Method::GET, "/readyz", None, None)
        .await
        .status
        != 200
    {
        assert!(
            ready.elapsed() < Duration::from_secs(20),
            "never ready after restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = api.all_events(&ada, &ch).await;
    let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "dense after restart"
    );
    assert_eq!(
        // workspace, user, its token verifier, channel
        seqs.len() as u64 + 4,
        head,
        "every logged event is projected"
    );
    let mut seen: HashMap<String, usize> = HashMap::new();
    for e in &events {
        *seen
            .entry(e["message_id"].as_str().unwrap_or_default().to_string())
            .or_default() += 1;
    }
    for id in acked_top.iter().chain(acked_replies.iter()) {
        assert_eq!(
            seen.get(id),
            Some(&1),
            "acknowledged message {id} is there exactly once"
        );
    }
    // Exactly-once application across the crash: the root's reply count
    // (an increment, not idempotent) equals the replies in the log.
    let replies_in_log = events
        .iter()
        .filter(|e| e["thread_root_id"] == root.as_str())
        .count();
    assert!(replies_in_log >= acked_replies.len());
    let page = api
        .get(
            &format!("/v1/channels/{ch}/messages?after_seq=0&limit=1"),
            &ada,
        )
        .await
        .expect(200);
    assert_eq!(page["messages"][0]["id"], root.as_str());
    assert_eq!(
        page["messages"][0]["reply_count"].as_u64(),
        Some(replies_in_log as u64)
    );
    // And the server still takes writes at the next seq.
    let m = api.send(&ada, &ch, "after crash").await.expect(201);
    assert_eq!(m["seq"].as_u64(), Some(seqs.len() as u64 + 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nats_down_gives_503_and_recovery_needs_no_restart() {
    let mut nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "admin").await;
    let ch = api.channel(&ada, "general", false).await;
    api.send(&ada, &ch, "before").await.expect(201);

    nats.stop();
    // Every post while NATS is down is refused with 503 `unavailable`.
    let mut refused_not_stored = Vec::new();
    for i in 0..5 {
        let text = format!("during outage {i}");
        let r = api.send(&ada, &ch, &text).await;
        r.expect_err(503, "unavailable");
        if r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("nothing was stored"))
        {
            refused_not_stored.push(text);
        }
    }
    assert!(
        !refused_not_stored.is_empty(),
        "a disconnected log is reported as such"
    );
    let ready = api.call(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, 503);

    nats.restart();
    let start = Instant::now();
    let seq = loop {
        let r = api.send(&ada, &ch, "after").await;
        if r.status == 201 {
            break r.body["seq"].as_u64().expect("seq");
        }
        r.expect_err(503, "unavailable");
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "writes never recovered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // A publish async-nats had buffered while disconnected would be flushed
    // on the reconnect ahead of anything sent later on the same connection,
    // so once "last" is stored, any such publish would be too: check that
    // nothing refused as "not stored" was appended.
    api.send(&ada, &ch, "last").await.expect(201);
    let events = api.all_events(&ada, &ch).await;
    let texts: Vec<&str> = events.iter().filter_map(|e| e["text"].as_str()).collect();
    for t in &refused_not_stored {
        assert!(
            !texts.contains(&t.as_str()),
            "{t:?} was refused with 503 but stored later"
        );
    }
    assert_eq!(texts.first(), Some(&"before"));
    assert_eq!(texts.last(), Some(&"last"));
    let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    assert!(seq >= 2);
}
