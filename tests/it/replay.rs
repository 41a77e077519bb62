//! The log is the product: the events of a thread with edits, reactions,
//! a pin and a delete, read straight from the stream as an analytics
//! consumer would, fold (with the projection's own fold, into a fresh
//! model) into exactly the views the API shows.

use crate::harness::{Nats, Server};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;
use switchboard_gateway::views::MessageView;
use switchboard_projections::history::{self, History};
use switchboard_projections::{apply_batch, open_model};
use switchboard_streams::{connect, subjects, Log, LogConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_threads_events_replayed_from_the_stream_fold_into_the_api_views() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "admin").await;
    let (_, bob) = api.user(&ws, "bob", "member").await;
    let ch = api.channel(&ada, "general", false).await;
    api.post(&format!("/v1/channels/{ch}/join"), &bob, json!({}))
        .await
        .expect(200);
    let root = api.send(&ada, &ch, "plan @bob").await.expect(201)["id"]
        .as_str()
        .expect("id")
        .to_string();
    let mut replies = Vec::new();
    for (who, text) in [(&bob, "one"), (&ada, "two"), (&bob, "three")] {
        let r = api
            .post(
                "/v1/messages",
                who,
                json!({"channel_id": ch, "text": text, "thread_root_id": root}),
            )
            .await
            .expect(201);
        replies.push(r["id"].as_str().expect("id").to_string());
    }
    api.patch(
        &format!("/v1/messages/{root}"),
        &ada,
        json!({"text": "plan B @bob"}),
    )
    .await
    .expect(200);
    for (who, emoji) in [(&bob, "+1"), (&ada, "eyes"), (&ada, "+1")] {
        api.post(
            &format!("/v1/messages/{root}/reactions"),
            who,
            json!({"emoji": emoji}),
        )
        .await
        .expect(200);
    }
    api.post(
        &format!("/v1/messages/{}/reactions", replies[0]),
        &ada,
        json!({"emoji": "tada"}),
    )
    .await
    .expect(200);
    api.post(&format!("/v1/channels/{ch}/pins/{root}"), &bob, json!({}))
        .await
        .expect(200);
    api.delete(&format!("/v1/messages/{}", replies[1]), &ada)
        .await
        .expect(200);

    // What the API shows (it has applied every write it acknowledged).
    let api_replies = api
        .get(&format!("/v1/messages/{root}/replies?limit=200"), &bob)
        .await
        .expect(200)["messages"]
        .clone();
    let page = api
        .get(&format!("/v1/channels/{ch}/messages?limit=200"), &bob)
        .await
        .expect(200);
    let api_root = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| m["id"] == root.as_str())
        .expect("the root is in the channel page")
        .clone();

    // The channel's events, straight from the stream.
    let log = Log::open(
        connect(&nats.url()).await.expect("nats"),
        LogConfig::default(),
    )
    .await
    .expect("log");
    let head = log.last_seq().await.expect("head");
    let mut stream = log
        .replay_filtered(1, subjects::channel(&ws, &ch))
        .await
        .expect("replay");
    let mut events = Vec::new();
    let channel_head = api.all_events(&bob, &ch).await.len();
    while events.len() < channel_head {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("the stream holds every event /events shows")
            .expect("stream open")
            .expect("event");
        assert!(ev.stream_seq <= head);
        events.push(ev);
    }

    // Folded by the projection's own fold into a fresh model.
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut conn, _) = open_model::<History>(&dir.path().join("history.db")).expect("model");
    apply_batch::<History>(&mut conn, &events).expect("fold");
    let view = |row: history::MessageRow| -> Value {
        serde_json::to_value(MessageView::from_row(row)).expect("json")
    };
    let folded_root = view(
        history::message(&conn, &root)
            .expect("query")
            .expect("the root folded"),
    );
    let (rows, _) = history::replies(&conn, &root, 0, 200).expect("replies");
    let folded_replies: Vec<Value> = rows.into_iter().map(view).collect();

    assert_eq!(folded_root, api_root);
    assert_eq!(Value::from(folded_replies), api_replies);
    // And the views say what happened: the edit, the reactions in
    // first-reacted order, the pin, the delete scrubbed.
    assert_eq!(api_root["text"], "plan B @bob");
    assert_eq!(api_root["reactions"][0]["emoji"], "+1");
    assert_eq!(api_root["reactions"][0]["count"], 2);
    assert_eq!(api_root["pinned"], true);
    assert_eq!(api_root["reply_count"], 3);
    assert_eq!(api_replies[1]["deleted"], true);
    assert_eq!(api_replies[1]["text"], "");
    // The original events are still in the log, at their seqs; the
    // deleted reply's text is in the stream (erasure is another issue) but
    // in no folded view.
    assert!(events
        .iter()
        .any(|e| e.envelope.as_ref().is_some_and(|env| env
            .body
            .as_ref()
            .is_some_and(|b| b.kind() == "message_edited"))));
}
