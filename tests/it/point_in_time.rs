//! Point in time: `switchboard rebuild --until <time | seq>` materializes
//! every read model as of that moment, and `serve --read-only` serves it
//! through the ordinary API — edits and deletes made later are not
//! visible, nothing can be written, and who may read what is still
//! checked (as of that moment).

use crate::harness::{run_cli, Api, Nats, Server, Ws};
use serde_json::{json, Value};
use std::time::Duration;

fn message<'a>(page: &'a Value, id: &str) -> Option<&'a Value> {
    page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| m["id"] == id)
}

/// The `rebuilt=` checksums a `rebuild` printed, in order.
fn checksums(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("rebuilt="))
        })
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn as_of_rebuild_served_read_only_shows_the_past_and_refuses_writes() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (_ada_id, ada) = api.user(&ws, "ada", "admin").await;
    let (bob_id, bob) = api.user(&ws, "bob", "member").await;
    let other_ws = api.workspace("Other").await;
    let (_, eve) = api.user(&other_ws, "eve", "admin").await;
    let general = api.channel(&ada, "general", false).await;
    let secret = api.channel(&ada, "secret", true).await;
    api.post(&format!("/v1/channels/{general}/join"), &bob, json!({}))
        .await
        .expect(200);
    let kept = api.send(&ada, &general, "original text").await.expect(201);
    let kept_id = kept["id"].as_str().expect("id").to_string();
    let doomed = api.send(&bob, &general, "soon deleted").await.expect(201);
    let doomed_id = doomed["id"].as_str().expect("id").to_string();
    let hidden = api.send(&ada, &secret, "private words").await.expect(201);
    let until = hidden["ts"].as_str().expect("ts").to_string();
    let bound = nats.log_len().await;
    // Later events carry a later millisecond than the bound's.
    tokio::time::sleep(Duration::from_millis(20)).await;
    api.patch(
        &format!("/v1/messages/{kept_id}"),
        &ada,
        json!({"text": "edited text"}),
    )
    .await
    .expect(200);
    api.delete(&format!("/v1/messages/{doomed_id}"), &bob)
        .await
        .expect(200);
    api.send(&ada, &general, "said later").await.expect(201);
    // bob is let into the secret channel after the bound.
    api.post(
        &format!("/v1/channels/{secret}/members"),
        &ada,
        json!({"user_id": bob_id}),
    )
    .await
    .expect(200);
    let late_token = api
        .post("/v1/tokens", &ada, json!({"name": "later"}))
        .await
        .expect(201)["token"]
        .as_str()
        .expect("token")
        .to_string();

    // As of the time of the last event before the edit.
    let out_dir = tempfile::tempdir().expect("tmp");
    let by_time = out_dir.path().join("by-time");
    let (ok, out, err) = run_cli(
        &[
            "rebuild",
            "--until",
            &until,
            "--out",
            by_time.to_str().expect("path"),
        ],
        &server.data,
        &nats.url(),
    );
    assert!(ok, "rebuild --until failed: {out}\n{err}");
    assert!(
        out.contains(&format!("as of log position {bound} ")),
        "the bound is the last event at or before {until} (seq {bound}): {out}"
    );
    // The same bound given as a stream sequence folds the same rows.
    let by_seq = out_dir.path().join("by-seq");
    let (ok, out_seq, err) = run_cli(
        &[
            "rebuild",
            "--until",
            &bound.to_string(),
            "--out",
            by_seq.to_str().expect("path"),
        ],
        &server.data,
        &nats.url(),
    );
    assert!(ok, "rebuild --until <seq> failed: {out_seq}\n{err}");
    assert_eq!(checksums(&out), checksums(&out_seq));
    assert_eq!(checksums(&out).len(), 7, "every read model: {out}");
    // Refuses to write over an existing directory, and a bad bound.
    let (ok, _, _) = run_cli(
        &[
            "rebuild",
            "--until",
            "1",
            "--out",
            by_seq.to_str().expect("path"),
        ],
        &server.data,
        &nats.url(),
    );
    assert!(!ok, "an existing output directory is refused");
    let (ok, _, err) = run_cli(
        &["rebuild", "--until", "last tuesday"],
        &server.data,
        &nats.url(),
    );
    assert!(!ok && err.contains("RFC 3339"), "{err}");

    let past = Server::start_on(&nats, &by_time, &["--read-only"]);
    let old = past.api();
    let head_before = nats.log_len().await;

    // The message as it was: its text before the edit, the deleted one
    // still there, the later one not yet.
    let page = old
        .get(&format!("/v1/channels/{general}/messages"), &ada)
        .await
        .expect(200);
    let m = message(&page, &kept_id).expect("kept message");
    assert_eq!(m["text"], "original text");
    assert!(m["edited_ts"].is_null(), "{m}");
    let d = message(&page, &doomed_id).expect("the later-deleted message");
    assert_eq!(d["text"], "soon deleted");
    assert_eq!(d["deleted"], false);
    assert_eq!(page["messages"].as_array().expect("messages").len(), 2);
    // The live server has both changes (the test is not vacuous).
    let live = api
        .get(&format!("/v1/channels/{general}/messages"), &ada)
        .await
        .expect(200);
    assert_eq!(
        message(&live, &kept_id).expect("kept")["text"],
        "edited text"
    );
    assert!(message(&live, &doomed_id).is_none_or(|m| m["deleted"] == true));

    // Who may read what, as of then: bob was not in the secret channel.
    old.get(&format!("/v1/channels/{secret}/messages"), &bob)
        .await
        .expect_err(404, "not_found");
    let live_secret = api
        .get(&format!("/v1/channels/{secret}/messages"), &bob)
        .await;
    assert_eq!(live_secret.status, 200, "bob is a member now");
    // Another workspace's user gets nothing; a token issued later and a
    // made-up one are unknown.
    old.get(&format!("/v1/channels/{general}/messages"), &eve)
        .await
        .expect_err(404, "not_found");
    old.get(&format!("/v1/channels/{general}/messages"), &late_token)
        .await
        .expect_err(401, "unauthorized");
    old.get("/v1/me", "sbt_nobody")
        .await
        .expect_err(401, "unauthorized");
    // Search answers from the as-of model too.
    let found = old.get("/v1/search?q=original", &ada).await.expect(200);
    assert!(found.to_string().contains(&kept_id), "{found}");

    // Every write is refused, before any decision: nothing is appended.
    let refused = [
        old.send(&ada, &general, "new").await,
        old.patch(
            &format!("/v1/messages/{kept_id}"),
            &ada,
            json!({"text": "rewrite history"}),
        )
        .await,
        old.delete(&format!("/v1/messages/{kept_id}"), &ada).await,
        old.post(&format!("/v1/channels/{general}/leave"), &bob, json!({}))
            .await,
        old.post(
            "/v1/channels",
            &ada,
            json!({"name": "new", "private": false}),
        )
        .await,
        old.post("/v1/tokens", &ada, json!({"name": "x"})).await,
        old.post("/v1/realtime/tickets", &ada, json!({})).await,
        old.post(
            &format!("/v1/workspaces/{ws}/users"),
            crate::harness::OPERATOR,
            json!({"handle": "zed", "display_name": "Zed", "role": "member"}),
        )
        .await,
    ];
    for r in refused {
        r.expect_err(403, "read_only");
    }
    // Real time is refused too (it would be live, not as of then).
    assert_eq!(Ws::try_connect(&past.base, &ada).await.err(), Some(403));
    let sse = old
        .get(&format!("/v1/sse?channels={general}:0"), &ada)
        .await;
    sse.expect_err(403, "read_only");
    assert_eq!(nats.log_len().await, head_before, "nothing was appended");
    // Reads keep working after the refusals; the live server's later
    // writes do not reach the view: no projector runs there.
    old.get("/v1/me", &ada).await.expect(200);
    api.send(&ada, &general, "after the view started")
        .await
        .expect(201);
    let again = old
        .get(&format!("/v1/channels/{general}/messages"), &ada)
        .await
        .expect(200);
    assert_eq!(again["messages"], page["messages"]);
    let ready = old.get("/readyz", "").await.expect(200);
    for (name, applied) in ready["projectors"].as_object().expect("projectors") {
        assert_eq!(applied.as_u64(), Some(bound), "{name}: {ready}");
    }

    // The accounts as they are now decide too: bob, deactivated on the
    // live server after the view's moment, no longer gets into the view
    // (review finding: a revoked or deactivated account read the past).
    old.get(&format!("/v1/channels/{general}/messages"), &bob)
        .await
        .expect(200);
    api.post(&format!("/v1/users/{bob_id}/deactivate"), &ada, json!({}))
        .await
        .expect(200);
    // (The live server's ACL model folds the deactivation a moment later.)
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = old
            .get(&format!("/v1/channels/{general}/messages"), &bob)
            .await;
        if r.status == 401 {
            break;
        }
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert!(
            std::time::Instant::now() < deadline,
            "a deactivated user still reads the view"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    old.get(&format!("/v1/channels/{general}/messages"), &ada)
        .await
        .expect(200);
    let _: &Api = &old;
}
