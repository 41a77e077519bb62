//! The audit log (`GET /v1/admin/audit`): an entry for each audited
//! action with its actor, target, time and request id; filters and pages;
//! readable by the workspace's active admins only.

use crate::harness::{Api, Nats, Server, OPERATOR};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn entries(page: &Value) -> Vec<Value> {
    page["entries"].as_array().expect("entries").clone()
}

/// Every entry of the caller's workspace, following cursors (pages of 3).
async fn all_pages(api: &Api, token: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let path = match &cursor {
            Some(c) => format!("/v1/admin/audit?limit=3&cursor={c}"),
            None => "/v1/admin/audit?limit=3".to_string(),
        };
        let page = api.get(&path, token).await.expect(200);
        out.extend(entries(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
    panic!("more than 100 pages");
}

/// Waits until the audit log holds an entry with `action` for `target`.
async fn wait_for(api: &Api, token: &str, action: &str, target: &str) -> Value {
    let start = Instant::now();
    loop {
        let page = api
            .get(&format!("/v1/admin/audit?action={action}&limit=500"), token)
            .await
            .expect(200);
        if let Some(e) = entries(&page)
            .into_iter()
            .find(|e| e["target_user_id"] == target || e["channel_id"] == target)
        {
            return e;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no {action} entry for {target}: {page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audit_entries_for_each_action_admins_only() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (ada_id, ada) = api.user(&ws, "ada", "admin").await;
    let (bob_id, bob) = api.user(&ws, "bob", "member").await;
    let (carl_id, carl) = api.user(&ws, "carl", "member").await;
    let (zed_id, zed) = api.user(&ws, "zed", "admin").await;
    let other = api.workspace("Other").await;
    let (_, eve) = api.user(&other, "eve", "admin").await;

    // A user added by an admin, with the proxy's request id.
    let (added, headers) = api
        .with_headers(
            Method::POST,
            &format!("/v1/workspaces/{ws}/users"),
            &[
                ("authorization", &format!("Bearer {ada}")),
                ("content-type", "application/json"),
                ("x-request-id", "audit-req-0001"),
            ],
            Some(json!({"handle": "dave", "display_name": "Dave", "role": "member"}).to_string()),
        )
        .await;
    let dave_id = added.expect(201)["id"].as_str().expect("id").to_string();
    assert_eq!(headers["x-request-id"], "audit-req-0001");
    // Role changes, a token issued and revoked, sessions revoked, a
    // password set, a deactivation and reactivation, push configured.
    for role in ["admin", "member"] {
        api.patch(&format!("/v1/users/{bob_id}"), &ada, json!({"role": role}))
            .await
            .expect(200);
    }
    let token = api
        .post("/v1/tokens", &bob, json!({"name": "ci"}))
        .await
        .expect(201);
    let token_id = token["id"].as_str().expect("token id").to_string();
    api.delete(&format!("/v1/tokens/{token_id}"), &ada)
        .await
        .expect(200);
    api.post("/v1/auth/logout?everywhere=true", &carl, json!({}))
        .await
        .expect(200);
    api.put(
        &format!("/v1/users/{carl_id}/password"),
        &ada,
        json!({"password": "correct horse battery"}),
    )
    .await
    .expect(200);
    api.post(&format!("/v1/users/{carl_id}/deactivate"), &ada, json!({}))
        .await
        .expect(200);
    api.post(&format!("/v1/users/{carl_id}/reactivate"), &ada, json!({}))
        .await
        .expect(200);
    api.call(
        Method::PUT,
        "/v1/admin/push",
        Some(&ada),
        Some(json!({"url": "https://93.184.215.14/hook"})),
    )
    .await
    .expect(200);
    // A private channel's membership; a public one's is not audited.
    let secret = api.channel(&ada, "secret", true).await;
    let general = api.channel(&ada, "general", false).await;
    api.post(&format!("/v1/channels/{general}/join"), &bob, json!({}))
        .await
        .expect(200);
    api.post(
        &format!("/v1/channels/{secret}/members"),
        &ada,
        json!({"user_id": bob_id}),
    )
    .await
    .expect(200);
    api.delete(&format!("/v1/channels/{secret}/members/{bob_id}"), &ada)
        .await
        .expect(200);
    api.post(
        &format!("/v1/channels/{secret}/members"),
        &ada,
        json!({"user_id": dave_id}),
    )
    .await
    .expect(200);
    // A delete by an admin of someone else's message; one of its own.
    let bobs = api.send(&bob, &general, "spam").await.expect(201)["id"]
        .as_str()
        .expect("id")
        .to_string();
    let own = api.send(&ada, &general, "oops").await.expect(201)["id"]
        .as_str()
        .expect("id")
        .to_string();
    api.delete(&format!("/v1/messages/{bobs}"), &ada)
        .await
        .expect(200);
    api.delete(&format!("/v1/messages/{own}"), &ada)
        .await
        .expect(200);
    api.post(&format!("/v1/channels/{secret}/archive"), &ada, json!({}))
        .await
        .expect(200);

    // Each action, with its actor and target.
    let e = wait_for(&api, &ada, "user_added", &dave_id).await;
    assert_eq!(e["actor_id"], ada_id.as_str());
    assert_eq!(e["request_id"], "audit-req-0001");
    assert!(e["ts"].as_str().expect("ts").ends_with('Z'), "{e}");
    assert_eq!(e["detail"]["handle"], "dave");
    let e = wait_for(&api, &ada, "token_issued", &bob_id).await;
    assert_eq!(e["actor_id"], bob_id.as_str());
    assert_eq!(e["detail"]["token_id"], token_id.as_str());
    assert!(!e
        .to_string()
        .contains(&token["token"].as_str().expect("secret")[4..]));
    let e = wait_for(&api, &ada, "token_revoked", &bob_id).await;
    assert_eq!(e["actor_id"], ada_id.as_str());
    for (action, target) in [
        ("sessions_revoked", carl_id.as_str()),
        ("password_set", carl_id.as_str()),
        ("user_deactivated", carl_id.as_str()),
        ("user_reactivated", carl_id.as_str()),
        ("member_invited", bob_id.as_str()),
        ("member_removed", bob_id.as_str()),
        ("member_invited", dave_id.as_str()),
        ("channel_created", secret.as_str()),
        ("channel_archived", secret.as_str()),
    ] {
        let e = wait_for(&api, &ada, action, target).await;
        assert!(
            e["request_id"].as_str().is_some_and(|r| !r.is_empty()),
            "{e}"
        );
    }
    let deleted = wait_for(&api, &ada, "message_deleted_by_other", &bob_id).await;
    assert_eq!(deleted["message_id"], bobs.as_str());
    assert_eq!(deleted["actor_id"], ada_id.as_str());
    let roles = api
        .get("/v1/admin/audit?action=user_role_set", &ada)
        .await
        .expect(200);
    let roles: Vec<String> = entries(&roles)
        .iter()
        .map(|e| e["detail"]["role"].as_str().expect("role").to_string())
        .collect();
    assert_eq!(roles, ["member", "admin"], "newest first");
    let push = api
        .get("/v1/admin/audit?action=push_configured", &ada)
        .await
        .expect(200);
    assert_eq!(entries(&push).len(), 1);

    // Not audited: public membership, a delete of one's own message.
    let all = all_pages(&api, &ada).await;
    assert!(!all.iter().any(|e| e["action"] == "member_joined"));
    assert!(!all.iter().any(|e| e["message_id"] == own.as_str()));
    // Pages of 3 are the whole log, newest first, without repeats.
    let seqs: Vec<u64> = all
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "{seqs:?}");
    let whole = api.get("/v1/admin/audit?limit=500", &ada).await.expect(200);
    assert_eq!(entries(&whole), all);
    assert!(whole["next_cursor"].is_null());

    // Filters: by actor, by time.
    let by_bob = api
        .get(&format!("/v1/admin/audit?actor={bob_id}"), &ada)
        .await
        .expect(200);
    assert!(!entries(&by_bob).is_empty());
    assert!(entries(&by_bob)
        .iter()
        .all(|e| e["actor_id"] == bob_id.as_str()));
    let newest = all[0]["ts"].as_str().expect("ts").to_string();
    let since = api
        .get(&format!("/v1/admin/audit?since={newest}"), &ada)
        .await
        .expect(200);
    assert!(entries(&since)
        .iter()
        .all(|e| e["ts"].as_str() >= Some(newest.as_str())));
    let until = api
        .get("/v1/admin/audit?until=2000-01-01T00:00:00Z", &ada)
        .await
        .expect(200);
    assert!(entries(&until).is_empty());

    // Bad filters: 400, naming the parameter.
    for bad in [
        "action=coffee_made",
        "since=yesterday",
        "until=2026-13-01T00:00:00Z",
        "since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z",
        "cursor=zzz",
        "limit=0",
        "limit=501",
        "actor=not%20an%20id",
    ] {
        let r = api.get(&format!("/v1/admin/audit?{bad}"), &ada).await;
        r.expect_err(400, "invalid_request");
    }

    // Readers: a member gets 403, another workspace's admin only its own
    // workspace's entries, the operator token no user's view, a
    // deactivated admin 401.
    api.get("/v1/admin/audit", &bob)
        .await
        .expect_err(403, "forbidden");
    let theirs = api.get("/v1/admin/audit?limit=500", &eve).await.expect(200);
    let acme_ids = [&ada_id, &bob_id, &carl_id, &zed_id, &dave_id];
    for e in entries(&theirs) {
        for id in acme_ids {
            assert!(!e.to_string().contains(id.as_str()), "leak: {e}");
        }
    }
    assert!(entries(&theirs)
        .iter()
        .all(|e| e["action"] == "workspace_created" || e["action"] == "user_added"));
    api.get(&format!("/v1/admin/audit?actor={ada_id}"), &eve)
        .await
        .expect(200)["entries"]
        .as_array()
        .expect("entries")
        .is_empty()
        .then_some(())
        .expect("ada's actions are not in eve's workspace");
    assert_ne!(api.get("/v1/admin/audit", OPERATOR).await.status, 200);
    api.get("/v1/admin/audit", &zed).await.expect(200);
    api.post(&format!("/v1/users/{zed_id}/deactivate"), &ada, json!({}))
        .await
        .expect(200);
    api.get("/v1/admin/audit", &zed)
        .await
        .expect_err(401, "unauthorized");
}
