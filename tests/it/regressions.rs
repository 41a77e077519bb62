//! Regression tests for defects found by probing the running server as an
//! outside attacker would; each is named after the defect it pins.

use crate::harness::{Nats, Server};
use serde_json::json;
use switchboard_core::secret::token_hash;

/// DMs lived in the channel-name namespace (`dm-` + a hash of workspace and
/// member ids): a member could learn whether two people have a DM (creating
/// a channel of that name answered 409), or create it first — after which
/// `POST /v1/dms` answered 201 with a channel nobody could use, appending a
/// new event on every retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dms_have_their_own_identity_space() {
    let nats = Nats::start();
    let s = Server::start(&nats);
    let api = s.api();
    let ws = api.workspace("Acme").await;
    let (ada_id, ada) = api.user(&ws, "ada", "member").await;
    let (bob_id, bob) = api.user(&ws, "bob", "member").await;
    let (_, eve) = api.user(&ws, "eve", "member").await;
    let mut set = [ada_id.clone(), bob_id.clone()];
    set.sort();
    let old_name = format!(
        "dm-{}",
        &token_hash(&format!("{ws}\n{}", set.join("\n")))[..26]
    );

    // Eve takes the name a DM of ada and bob used to have, before it exists.
    api.channel(&eve, &old_name, false).await;
    let dm = api
        .post("/v1/dms", &ada, json!({"user_ids": [bob_id]}))
        .await
        .expect(201);
    let dm_id = dm["id"].as_str().expect("id").to_string();
    assert_eq!(dm["is_member"], true, "{dm}");
    // The DM works for both, and only for them.
    api.send(&ada, &dm_id, "hi bob").await.expect(201);
    api.send(&bob, &dm_id, "hi ada").await.expect(201);
    api.send(&eve, &dm_id, "let me in")
        .await
        .expect_err(404, "not_found");
    // A retry answers the same channel and appends nothing.
    let len = nats.log_len().await;
    let again = api
        .post("/v1/dms", &bob, json!({"user_ids": [ada_id]}))
        .await
        .expect(200);
    assert_eq!(again["id"], dm["id"]);
    assert_eq!(nats.log_len().await, len);
    // Nobody learns of the DM by probing channel names: the DM's own name
    // is not a valid channel name, and other names are free.
    let name = dm["name"].as_str().expect("name").to_string();
    api.post(
        "/v1/channels",
        &eve,
        json!({"name": name, "private": false}),
    )
    .await
    .expect_err(400, "invalid_request");
    let (_, carol) = api.user(&ws, "carol", "member").await;
    api.post("/v1/dms", &carol, json!({"user_ids": [ada_id]}))
        .await
        .expect(201);
    api.channel(&eve, "dm-anything", false).await;
}

/// Archived channels refused leaving and removal (409), so access to an
/// archived private channel could never be revoked; and a creator who had
/// left a public channel could still archive it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archived_channels_can_be_left_and_left_creators_cannot_archive() {
    let nats = Nats::start();
    let s = Server::start(&nats);
    let api = s.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "member").await;
    let (bob_id, bob) = api.user(&ws, "bob", "member").await;
    let (carol_id, carol) = api.user(&ws, "carol", "member").await;

    let secret = api.channel(&ada, "secret", true).await;
    for id in [&bob_id, &carol_id] {
        api.post(
            &format!("/v1/channels/{secret}/members"),
            &ada,
            json!({"user_id": id}),
        )
        .await
        .expect(200);
    }
    api.send(&bob, &secret, "before the archive")
        .await
        .expect(201);
    api.post(&format!("/v1/channels/{secret}/archive"), &ada, json!({}))
        .await
        .expect(200);
    // The creator removes bob; carol leaves by herself.
    api.delete(&format!("/v1/channels/{secret}/members/{bob_id}"), &ada)
        .await
        .expect(200);
    api.post(&format!("/v1/channels/{secret}/leave"), &carol, json!({}))
        .await
        .expect(200);
    for t in [&bob, &carol] {
        api.get(&format!("/v1/channels/{secret}/messages"), t)
            .await
            .expect_err(404, "not_found");
    }
    // Still read-only for who is left.
    api.send(&ada, &secret, "after")
        .await
        .expect_err(409, "channel_archived");

    let open = api.channel(&ada, "open", false).await;
    api.post(&format!("/v1/channels/{open}/leave"), &ada, json!({}))
        .await
        .expect(200);
    api.post(&format!("/v1/channels/{open}/archive"), &ada, json!({}))
        .await
        .expect_err(403, "forbidden");
}
