//! Tenancy and membership on every path: another workspace's token, a
//! non-member of a private channel, and a user who left get 403/404 and
//! no data.

use crate::harness::{Api, Nats, Resp, Server, OPERATOR};
use serde_json::json;

const SECRET: &str = "the secret plan";

/// Every channel-scoped path, with a write body where it takes one.
pub(crate) fn probes(
    ch: &str,
    victim: &str,
) -> Vec<(&'static str, String, Option<serde_json::Value>)> {
    vec![
        ("GET", format!("/v1/channels/{ch}"), None),
        ("GET", format!("/v1/channels/{ch}/members"), None),
        ("GET", format!("/v1/channels/{ch}/members?limit=1000"), None),
        ("GET", format!("/v1/channels/{ch}/messages"), None),
        (
            "GET",
            format!("/v1/channels/{ch}/messages?after_seq=0"),
            None,
        ),
        ("GET", format!("/v1/channels/{ch}/events?after_seq=0"), None),
        (
            "POST",
            "/v1/messages".to_string(),
            Some(json!({"channel_id": ch, "text": "intruder"})),
        ),
        (
            "POST",
            format!("/v1/channels/{ch}/members"),
            Some(json!({"user_id": victim})),
        ),
        (
            "DELETE",
            format!("/v1/channels/{ch}/members/{victim}"),
            None,
        ),
        (
            "POST",
            format!("/v1/channels/{ch}/archive"),
            Some(json!({})),
        ),
        ("POST", format!("/v1/channels/{ch}/leave"), Some(json!({}))),
        ("GET", format!("/v1/channels/{ch}/preferences"), None),
        (
            "PUT",
            format!("/v1/channels/{ch}/preferences"),
            Some(json!({"muted": true})),
        ),
    ]
}

async fn call(
    api: &Api,
    method: &str,
    path: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> Resp {
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    api.call(m, path, Some(token), body).await
}

fn assert_no_leak(r: &Resp, what: &str) {
    let text = r.body.to_string();
    assert!(!text.contains(SECRET), "{what} leaked content: {text}");
    assert!(
        r.body.get("messages").is_none()
            && r.body.get("events").is_none()
            && r.body.get("members").is_none(),
        "{what} returned data: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outsiders_get_nothing_on_any_path() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (ada_id, ada) = api.user(&ws, "ada", "admin").await;
    let (_, bob) = api.user(&ws, "bob", "member").await;
    let (_, carol) = api.user(&ws, "carol", "member").await;
    let other_ws = api.workspace("Evil Corp").await;
    let (_, eve) = api.user(&other_ws, "eve", "admin").await;

    let public = api.channel(&ada, "town-square", false).await;
    let private = api.channel(&ada, "board", true).await;
    api.send(&ada, &public, SECRET).await.expect(201);
    api.send(&ada, &private, SECRET).await.expect(201);
    let log_before = nats.log_len().await;
    // Cursors of Acme's lists, as a member got them (one row per page).
    let next = |b: serde_json::Value| b["next_cursor"].as_str().expect("a next page").to_string();
    let users_cursor = next(api.get("/v1/users?limit=1", &ada).await.expect(200));
    let channels_cursor = next(api.get("/v1/channels?limit=1", &ada).await.expect(200));
    api.post(&format!("/v1/channels/{public}/join"), &carol, json!({}))
        .await
        .expect(200);
    let members_cursor = next(
        api.get(&format!("/v1/channels/{public}/members?limit=1"), &ada)
            .await
            .expect(200),
    );
    api.post(&format!("/v1/channels/{public}/leave"), &carol, json!({}))
        .await
        .expect(200);
    let log_before = log_before + 2;
    assert_eq!(nats.log_len().await, log_before);

    // 1. Another workspace: everything is "not found", for both channels.
    for ch in [&public, &private] {
        for (method, path, body) in probes(ch, &ada_id) {
            let r = call(&api, method, &path, &eve, body).await;
            r.expect_err(404, "not_found");
            assert_no_leak(&r, &format!("eve {method} {path}"));
        }
        let r = call(
            &api,
            "POST",
            &format!("/v1/channels/{ch}/join"),
            &eve,
            Some(json!({})),
        )
        .await;
        r.expect_err(404, "not_found");
    }
    let listed = api.get("/v1/channels", &eve).await.expect(200);
    assert_eq!(listed["channels"].as_array().map(Vec::len), Some(0));
    let users = api.get("/v1/users", &eve).await.expect(200);
    assert_eq!(
        users["users"].as_array().map(Vec::len),
        Some(1),
        "eve sees only her workspace"
    );
    // Acme's cursors position Eve in her own lists, never in Acme's.
    for path in [
        format!("/v1/users?cursor={users_cursor}"),
        format!("/v1/users?limit=1000&cursor={users_cursor}"),
    ] {
        let page = api.get(&path, &eve).await.expect(200);
        for u in page["users"].as_array().expect("users") {
            assert_eq!(u["workspace_id"], other_ws.as_str(), "{path}: {page}");
        }
    }
    let page = api
        .get(&format!("/v1/channels?cursor={channels_cursor}"), &eve)
        .await
        .expect(200);
    assert_eq!(page["channels"].as_array().map(Vec::len), Some(0), "{page}");
    assert!(page["next_cursor"].is_null(), "{page}");
    for ch in [&public, &private] {
        let r = api
            .get(
                &format!("/v1/channels/{ch}/members?cursor={members_cursor}"),
                &eve,
            )
            .await;
        r.expect_err(404, "not_found");
        assert_no_leak(&r, "eve members with a cursor");
    }
    // Eve is an admin, but of another workspace.
    api.post(
        &format!("/v1/workspaces/{ws}/users"),
        &eve,
        json!({"handle": "mole", "display_name": "Mole"}),
    )
    .await
    .expect_err(404, "not_found");
    // A DM with a user of another workspace does not exist.
    api.post("/v1/dms", &eve, json!({"user_ids": [ada_id]}))
        .await
        .expect_err(404, "not_found");

    // 2. A non-member of a private channel: not found, it does not exist
    //    for carol; and it is not in her list.
    for (method, path, body) in probes(&private, &ada_id) {
        let r = call(&api, method, &path, &carol, body).await;
        r.expect_err(404, "not_found");
        assert_no_leak(&r, &format!("carol {method} {path}"));
    }
    call(
        &api,
        "POST",
        &format!("/v1/channels/{private}/join"),
        &carol,
        Some(json!({})),
    )
    .await
    .expect_err(404, "not_found");
    let listed = api.get("/v1/channels", &carol).await.expect(200);
    assert!(
        !listed.to_string().contains(&private),
        "private channel listed to a non-member"
    );
    // Page by page, and from Ada's cursor, too.
    let mut cursor = String::new();
    loop {
        let page = api
            .get(&format!("/v1/channels?limit=1&cursor={cursor}"), &carol)
            .await
            .expect(200);
        assert!(!page.to_string().contains(&private), "{page}");
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    let page = api
        .get(&format!("/v1/channels?cursor={channels_cursor}"), &carol)
        .await
        .expect(200);
    assert!(!page.to_string().contains(&private), "{page}");
    let r = api
        .get(
            &format!("/v1/channels/{private}/members?cursor={members_cursor}&limit=5"),
            &carol,
        )
        .await;
    r.expect_err(404, "not_found");
    assert_no_leak(&r, "carol private members with a cursor");

    // 3. A user who left: bob joins the public channel, is invited to the
    //    private one, reads both, then leaves / is removed.
    api.post(&format!("/v1/channels/{public}/join"), &bob, json!({}))
        .await
        .expect(200);
    api.post(
        &format!("/v1/channels/{private}/members"),
        &ada,
        json!({"user_id": bob_id_of(&api, &bob).await}),
    )
    .await
    .expect(200);
    for ch in [&public, &private] {
        let page = api
            .get(&format!("/v1/channels/{ch}/messages"), &bob)
            .await
            .expect(200);
        assert!(page.to_string().contains(SECRET), "members read content");
    }
    api.post(&format!("/v1/channels/{public}/leave"), &bob, json!({}))
        .await
        .expect(200);
    let bob_id = bob_id_of(&api, &bob).await;
    api.delete(&format!("/v1/channels/{private}/members/{bob_id}"), &ada)
        .await
        .expect(200);
    let log_mid = nats.log_len().await;
    for path in [
        format!("/v1/channels/{public}/messages"),
        format!("/v1/channels/{public}/events?after_seq=0"),
    ] {
        let r = api.get(&path, &bob).await;
        r.expect_err(403, "not_a_member");
        assert_no_leak(&r, &path);
    }
    api.send(&bob, &public, "still here?")
        .await
        .expect_err(403, "not_a_member");
    api.get(&format!("/v1/channels/{public}/preferences"), &bob)
        .await
        .expect_err(403, "not_a_member");
    for (method, path, body) in probes(&private, &ada_id) {
        let r = call(&api, method, &path, &bob, body).await;
        r.expect_err(404, "not_found");
        assert_no_leak(&r, &format!("bob (removed) {method} {path}"));
    }
    // Non-admin, non-creator cannot archive or remove in a public channel.
    call(
        &api,
        "POST",
        &format!("/v1/channels/{public}/archive"),
        &carol,
        Some(json!({})),
    )
    .await
    .expect_err(403, "forbidden");

    // 4. Tokens: none, bad, and user tokens on operator paths.
    let none = api.call(reqwest::Method::GET, "/v1/me", None, None).await;
    none.expect_err(401, "unauthorized");
    api.get("/v1/me", "sbt_not_a_real_token")
        .await
        .expect_err(401, "unauthorized");
    api.get(&format!("/v1/channels/{public}/messages"), "garbage")
        .await
        .expect_err(401, "unauthorized");
    api.post("/v1/workspaces", &ada, json!({"name": "mine"}))
        .await
        .expect_err(403, "forbidden");
    api.post(
        &format!("/v1/workspaces/{ws}/users"),
        &bob,
        json!({"handle": "x", "display_name": "X"}),
    )
    .await
    .expect_err(403, "forbidden");
    api.post(
        &format!("/v1/workspaces/{other_ws}/users"),
        OPERATOR,
        json!({"handle": "ok", "display_name": "Ok"}),
    )
    .await
    .expect(201);

    // Nothing an outsider did reached the log (only the legitimate
    // membership changes of part 3 and the operator's user).
    assert_eq!(
        log_mid,
        log_before + 4,
        "join, invite, leave, remove; nothing else"
    );
    // The operator's user and its token verifier.
    assert_eq!(nats.log_len().await, log_mid + 2);
}

async fn bob_id_of(api: &Api, token: &str) -> String {
    api.get("/v1/me", token).await.expect(200)["user"]["id"]
        .as_str()
        .expect("id")
        .to_string()
}
