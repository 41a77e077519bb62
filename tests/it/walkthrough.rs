//! The README walkthrough, end to end, against the real binary.

use crate::harness::{Nats, Server, OPERATOR};
use serde_json::json;

#[tokio::test]
async fn readme_walkthrough() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();

    // Health first.
    let h = api.call(reqwest::Method::GET, "/healthz", None, None).await;
    assert_eq!(h.status, 200);

    // Workspace and users (the operator token creates them).
    let ws = api.workspace("Acme").await;
    let (ada_id, ada) = api.user(&ws, "ada", "admin").await;
    let (bob_id, bob) = api.user(&ws, "bob", "member").await;

    let me = api.get("/v1/me", &bob).await.expect(200);
    assert_eq!(me["user"]["id"], bob_id);
    assert_eq!(me["user"]["handle"], "bob");
    assert_eq!(me["workspace"]["id"], ws);
    let users = api.get("/v1/users", &ada).await.expect(200);
    assert_eq!(users["users"].as_array().map(Vec::len), Some(2));

    // A workspace admin may add users to its own workspace.
    let carol = api
        .post(
            &format!("/v1/workspaces/{ws}/users"),
            &ada,
            json!({"handle": "carol", "display_name": "Carol"}),
        )
        .await
        .expect(201);
    assert_eq!(carol["role"], "member");
    assert!(carol["token"].as_str().is_some_and(|t| t.len() > 20));

    // A channel; the creator is a member; bob joins.
    let ch = api
        .post(
            "/v1/channels",
            &ada,
            json!({"name": "general", "private": false, "topic": "all hands"}),
        )
        .await
        .expect(201);
    let ch_id = ch["id"].as_str().expect("id").to_string();
    assert_eq!(ch["is_member"], true);
    assert_eq!(ch["topic"], "all hands");
    api.post(&format!("/v1/channels/{ch_id}/join"), &bob, json!({}))
        .await
        .expect(200);
    let members = api
        .get(&format!("/v1/channels/{ch_id}/members"), &ada)
        .await
        .expect(200);
    let ids: Vec<&str> = members["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["user_id"].as_str())
        .collect();
    assert!(ids.contains(&ada_id.as_str()) && ids.contains(&bob_id.as_str()));

    // Post: the response carries id and seq; seq is dense per channel
    // (seq 1 was bob's join).
    let mut sent = Vec::new();
    for i in 1..=5 {
        let m = api
            .send(&ada, &ch_id, &format!("hello {i}"))
            .await
            .expect(201);
        assert_eq!(m["seq"], 1 + i);
        assert_eq!(m["sender_id"], ada_id);
        assert!(m["ts"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.len() == 24));
        sent.push(m["id"].as_str().expect("id").to_string());
    }
    let reply = api
        .post(
            "/v1/messages",
            &bob,
            json!({"channel_id": ch_id, "text": "a reply", "thread_root_id": sent[0]}),
        )
        .await
        .expect(201);
    assert_eq!(reply["thread_root_id"], sent[0].as_str());

    // History: newest first, paged with before; thread replies are not in
    // the channel page but counted on the root.
    let page = api
        .get(&format!("/v1/channels/{ch_id}/messages?limit=2"), &bob)
        .await
        .expect(200);
    let texts: Vec<&str> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(texts, ["hello 5", "hello 4"]);
    assert_eq!(page["has_more"], true);
    let before = page["messages"][1]["seq"].as_u64().expect("seq");
    let page2 = api
        .get(
            &format!("/v1/channels/{ch_id}/messages?before={before}&limit=10"),
            &bob,
        )
        .await
        .expect(200);
    let texts: Vec<&str> = page2["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(texts, ["hello 3", "hello 2", "hello 1"]);
    assert_eq!(page2["has_more"], false);
    assert_eq!(page2["messages"][2]["reply_count"], 1);
    let after = api
        .get(
            &format!("/v1/channels/{ch_id}/messages?after_seq=3&limit=2"),
            &bob,
        )
        .await
        .expect(200);
    let texts: Vec<&str> = after["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(texts, ["hello 3", "hello 4"]);
    assert_eq!(after["has_more"], true);

    // Resume via events: everything after seq 4, in order, with the head.
    let ev = api
        .get(&format!("/v1/channels/{ch_id}/events?after_seq=4"), &bob)
        .await
        .expect(200);
    let seqs: Vec<u64> = ev["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["seq"].as_u64())
        .collect();
    assert_eq!(seqs, [5, 6, 7]);
    assert_eq!(ev["head_seq"], 7);
    assert_eq!(ev["events"][0]["type"], "message_posted");
    assert_eq!(ev["events"][0]["text"], "hello 4");
    let first = api
        .get(
            &format!("/v1/channels/{ch_id}/events?after_seq=0&limit=1"),
            &bob,
        )
        .await
        .expect(200);
    assert_eq!(first["events"][0]["type"], "member_joined");
    assert_eq!(first["events"][0]["user_id"], bob_id);

    // The channel list shows the head and membership.
    let list = api.get("/v1/channels", &bob).await.expect(200);
    let general = list["channels"]
        .as_array()
        .expect("channels")
        .iter()
        .find(|c| c["id"] == ch_id.as_str())
        .cloned()
        .expect("listed");
    assert_eq!(general["head_seq"], 7);
    assert_eq!(general["member_count"], 2);
    assert_eq!(general["is_member"], true);

    // DMs: the same set always gets the same channel.
    let dm = api
        .post("/v1/dms", &ada, json!({"user_ids": [bob_id]}))
        .await
        .expect(201);
    let dm_again = api
        .post("/v1/dms", &bob, json!({"user_ids": [ada_id]}))
        .await
        .expect(200);
    assert_eq!(dm["id"], dm_again["id"]);
    let dm_id = dm["id"].as_str().expect("id").to_string();
    api.send(&bob, &dm_id, "psst").await.expect(201);

    // Archive: read-only afterwards.
    api.post(&format!("/v1/channels/{ch_id}/archive"), &ada, json!({}))
        .await
        .expect(200);
    api.send(&ada, &ch_id, "too late")
        .await
        .expect_err(409, "channel_archived");
    api.get(&format!("/v1/channels/{ch_id}/messages"), &bob)
        .await
        .expect(200);

    // The reference document lists the routes.
    let doc = api
        .call(reqwest::Method::GET, "/v1/openapi.json", None, None)
        .await
        .expect(200);
    for path in [
        "/v1/messages",
        "/v1/channels/{id}/events",
        "/v1/workspaces/{ws}/users",
        "/v1/dms",
    ] {
        assert!(doc["paths"][path].is_object(), "openapi lists {path}");
    }
    let ready = api.call(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    // The operator token is no user.
    api.get("/v1/me", OPERATOR)
        .await
        .expect_err(403, "forbidden");
}

#[tokio::test]
async fn restart_keeps_everything() {
    let nats = Nats::start();
    let mut server = Server::start(&nats);
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "admin").await;
    let ch = api.channel(&ada, "general", false).await;
    for i in 0..20 {
        api.send(&ada, &ch, &format!("m{i}")).await.expect(201);
    }
    server.restart();
    let api = server.api();
    let page = api
        .get(&format!("/v1/channels/{ch}/messages?limit=200"), &ada)
        .await
        .expect(200);
    assert_eq!(page["messages"].as_array().map(Vec::len), Some(20));
    let m = api.send(&ada, &ch, "after restart").await.expect(201);
    assert_eq!(m["seq"], 21);
}
