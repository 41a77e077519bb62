//! Many writers, several processes, one channel: `channel_seq` stays dense
//! and every acknowledged message is in history exactly once, in order.

use crate::harness::{Nats, Server};
use std::collections::{BTreeMap, HashSet};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_eight_writers_each_keep_seq_dense() {
    const WRITERS: usize = 8;
    const PER_WRITER: usize = 25;
    let nats = Nats::start();
    let a = Server::start(&nats);
    let b = Server::start(&nats);
    let (api_a, api_b) = (a.api(), b.api());
    let ws = api_a.workspace("Acme").await;
    let (_, ada) = api_a.user(&ws, "ada", "admin").await;
    let ch = api_a.channel(&ada, "firehose", false).await;

    let mut tasks = Vec::new();
    for w in 0..WRITERS * 2 {
        let api = if w % 2 == 0 {
            api_a.clone()
        } else {
            api_b.clone()
        };
        let (ada, ch) = (ada.clone(), ch.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..PER_WRITER {
                let text = format!("w{w}-{i}");
                let r = api.send(&ada, &ch, &text).await;
                assert_eq!(r.status, 201, "{}", r.body);
                acked.push((
                    r.body["seq"].as_u64().expect("seq"),
                    r.body["id"].as_str().expect("id").to_string(),
                    text,
                ));
            }
            acked
        }));
    }
    let mut acked: BTreeMap<u64, (String, String)> = BTreeMap::new();
    for t in tasks {
        for (seq, id, text) in t.await.expect("writer") {
            assert!(
                acked.insert(seq, (id, text)).is_none(),
                "seq {seq} acknowledged twice"
            );
        }
    }
    let n = (WRITERS * 2 * PER_WRITER) as u64;
    assert_eq!(
        acked.keys().copied().collect::<Vec<_>>(),
        (1..=n).collect::<Vec<_>>(),
        "acknowledged seqs are exactly 1..N"
    );

    // Both servers' read models converge to the same dense history.
    for api in [&api_a, &api_b] {
        api.wait_head(&ada, &ch, n).await;
        let events = api.all_events(&ada, &ch).await;
        let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
        assert_eq!(seqs, (1..=n).collect::<Vec<_>>());
        let mut seen = HashSet::new();
        for e in &events {
            let seq = e["seq"].as_u64().expect("seq");
            let (id, text) = &acked[&seq];
            assert_eq!(e["message_id"].as_str(), Some(id.as_str()));
            assert_eq!(e["text"].as_str(), Some(text.as_str()));
            assert!(seen.insert(id.clone()), "message {id} twice");
        }
        // And the message history holds each once, in seq order.
        let mut after = 0;
        let mut count = 0;
        loop {
            let page = api
                .get(
                    &format!("/v1/channels/{ch}/messages?after_seq={after}&limit=200"),
                    &ada,
                )
                .await
                .expect(200);
            let msgs = page["messages"].as_array().expect("messages").clone();
            for m in &msgs {
                let seq = m["seq"].as_u64().expect("seq");
                assert!(seq > after, "history out of order");
                assert_eq!(m["id"].as_str(), Some(acked[&seq].0.as_str()));
                after = seq;
                count += 1;
            }
            if page["has_more"] != true {
                break;
            }
        }
        assert_eq!(count, n);
    }
    assert_eq!(
        nats.log_len().await,
        4 + n,
        "log holds workspace, user (and its token verifier), channel and the N messages"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_creators_get_one_channel_per_name() {
    let nats = Nats::start();
    let a = Server::start(&nats);
    let b = Server::start(&nats);
    let (api_a, api_b) = (a.api(), b.api());
    let ws = api_a.workspace("Acme").await;
    let (_, ada) = api_a.user(&ws, "ada", "admin").await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let api = if i % 2 == 0 {
            api_a.clone()
        } else {
            api_b.clone()
        };
        let ada = ada.clone();
        tasks.push(tokio::spawn(async move {
            api.post("/v1/channels", &ada, serde_json::json!({"name": "dup"}))
                .await
        }));
    }
    let mut created = 0;
    for t in tasks {
        let r = t.await.expect("task");
        match r.status {
            201 => created += 1,
            _ => r.expect_err(409, "conflict"),
        }
    }
    assert_eq!(created, 1, "exactly one creator wins");
}
