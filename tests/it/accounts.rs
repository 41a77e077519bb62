//! Accounts and sessions: several tokens per user, revocation on every
//! gateway within a second (open streams closed), expiry, deactivation on
//! every read and write path (REST, WebSocket, SSE), reactivation, roles,
//! and outsiders (another workspace's admin, a plain member).

use crate::harness::{Api, Nats, Server, Sse, SseEnd, Ws};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Polls `GET /v1/me` with `token` until it answers 401, at most `within`;
/// returns how long that took.
async fn refused_within(api: &Api, token: &str, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if api.get("/v1/me", token).await.status == 401 {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Polls until `GET /v1/me` with `token` answers 200 (a token minted
/// through another gateway is accepted once that gateway has folded it).
async fn accepted(api: &Api, token: &str) {
    for _ in 0..100 {
        if api.get("/v1/me", token).await.status == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("token never accepted at {}", api.base);
}

fn new_token(b: &Value) -> (String, String) {
    (
        b["id"].as_str().expect("id").to_string(),
        b["token"].as_str().expect("token").to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revoked_token_is_refused_on_every_gateway_within_a_second_and_its_streams_close() {
    let nats = Nats::start();
    let (a, b) = (Server::start(&nats), Server::start(&nats));
    let (api_a, api_b) = (a.api(), b.api());
    let ws = api_a.workspace("Acme").await;
    let (_, ada) = api_a.user(&ws, "ada", "admin").await;
    let (bob_id, bob) = api_a.user(&ws, "bob", "member").await;
    let ch = api_a.channel(&ada, "general", false).await;
    api_a
        .post(&format!("/v1/channels/{ch}/join"), &bob, json!({}))
        .await
        .expect(200);

    // A second token for bob: shown once, listed without its secret.
    let issued = api_a
        .post("/v1/tokens", &bob, json!({"name": "laptop"}))
        .await
        .expect(201);
    let (laptop_id, laptop) = new_token(&issued);
    assert_eq!(issued["name"], "laptop");
    assert_eq!(issued["user_id"], bob_id.as_str());
    assert!(issued["expires_at"].is_null());
    let list = api_a.get("/v1/tokens", &bob).await.expect(200);
    let tokens = list["tokens"].as_array().expect("tokens");
    assert_eq!(tokens.len(), 2, "{list}");
    assert!(tokens.iter().any(|t| t["id"] == laptop_id.as_str()));
    let text = list.to_string();
    assert!(!text.contains(&laptop) && !text.contains(&bob) && !text.contains("hash"));

    // Both gateways accept it (and cache it), and streams are open on both.
    accepted(&api_a, &laptop).await;
    accepted(&api_b, &laptop).await;
    let mut ws_b = Ws::connect(&api_b.base, &laptop).await;
    ws_b.subscribe(&[(&ch, 0)]).await;
    let mut ws_a = Ws::connect(&api_a.base, &laptop).await;
    let mut sse_b = Sse::connect(&api_b.base, &laptop, &format!("{ch}:0"), None).await;
    assert!(sse_b.next(Duration::from_secs(5)).await.is_some(), "hello");
    let mut bob_ws = Ws::connect(&api_b.base, &bob).await;

    // Revoked through A with bob's other token.
    let log_before = nats.log_len().await;
    api_a
        .delete(&format!("/v1/tokens/{laptop_id}"), &bob)
        .await
        .expect(200);
    assert_eq!(nats.log_len().await, log_before + 1, "one event");
    let second = Duration::from_secs(1);
    let (ra, rb) = tokio::join!(
        refused_within(&api_a, &laptop, second),
        refused_within(&api_b, &laptop, second)
    );
    assert!(ra.is_some() && rb.is_some(), "refused: A {ra:?}, B {rb:?}");
    assert_eq!(ws_b.close_code(second).await, Some(Some(1008)));
    assert_eq!(ws_a.close_code(second).await, Some(Some(1008)));
    assert_eq!(sse_b.end_within(second).await, SseEnd::Ended);
    assert_eq!(Ws::try_connect(&api_b.base, &laptop).await.err(), Some(401));
    assert_eq!(
        Sse::status(&api_a.base, &laptop, &format!("{ch}:0")).await,
        401
    );
    api_b
        .send(&laptop, &ch, "still here?")
        .await
        .expect_err(401, "unauthorized");

    // The other token and its socket are untouched.
    assert!(bob_ws
        .close_code(Duration::from_millis(300))
        .await
        .is_none());
    api_b.get("/v1/me", &bob).await.expect(200);
    // A second revocation is a 404 (it is gone), and appends nothing.
    let log_before = nats.log_len().await;
    api_b
        .delete(&format!("/v1/tokens/{laptop_id}"), &bob)
        .await
        .expect_err(404, "not_found");
    assert_eq!(nats.log_len().await, log_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_tokens_are_refused_and_their_sockets_closed() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (_, bob) = api.user(&ws, "bob", "member").await;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let expires = switchboard_core::time::rfc3339_ms(now_ms + 2_000);
    let issued = api
        .post(
            "/v1/tokens",
            &bob,
            json!({"name": "short", "expires_at": expires}),
        )
        .await
        .expect(201);
    assert_eq!(issued["expires_at"], expires.as_str());
    let (_, short) = new_token(&issued);
    api.get("/v1/me", &short).await.expect(200);
    let mut socket = Ws::connect(&api.base, &short).await;
    // Refused from the expiry on (the cached session too), socket closed.
    let refused = refused_within(&api, &short, Duration::from_secs(4)).await;
    assert!(refused.is_some(), "expired token still accepted");
    assert_eq!(
        socket.close_code(Duration::from_secs(2)).await,
        Some(Some(1008))
    );
    // An expiry in the past, or not a timestamp: 400, nothing appended.
    let log_before = nats.log_len().await;
    for bad in [json!("2020-01-01T00:00:00Z"), json!("tomorrow"), json!(5)] {
        let r = api
            .post("/v1/tokens", &bob, json!({"name": "x", "expires_at": bad}))
            .await;
        assert!(matches!(r.status, 400 | 422), "{bad}: {}", r.body);
    }
    for bad in [
        json!({}),
        json!({"name": ""}),
        json!({"name": "x".repeat(500)}),
    ] {
        let r = api.post("/v1/tokens", &bob, bad.clone()).await;
        assert!(matches!(r.status, 400 | 422), "{bad}: {}", r.body);
    }
    assert_eq!(nats.log_len().await, log_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_are_their_owners_and_their_workspace_admins_only() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "admin").await;
    let (bob_id, bob) = api.user(&ws, "bob", "member").await;
    let (_, carol) = api.user(&ws, "carol", "member").await;
    let other = api.workspace("Evil Corp").await;
    let (_, eve) = api.user(&other, "eve", "admin").await;
    let (laptop_id, _) = new_token(
        &api.post("/v1/tokens", &bob, json!({"name": "laptop"}))
            .await
            .expect(201),
    );
    let log_before = nats.log_len().await;

    // Another workspace's admin and a plain member: nothing to list or
    // revoke, nothing to mint, and the token looks like one that never was.
    for (who, token) in [("eve", &eve), ("carol", &carol)] {
        api.get(&format!("/v1/tokens?user_id={bob_id}"), token)
            .await
            .expect_err(404, "not_found");
        api.delete(&format!("/v1/tokens/{laptop_id}"), token)
            .await
            .expect_err(404, "not_found");
        let r = api
            .post(
                "/v1/tokens",
                token,
                json!({"name": "mine now", "user_id": bob_id}),
            )
            .await;
        assert!(matches!(r.status, 403 | 404), "{who}: {}", r.body);
        let own = api.get("/v1/tokens", token).await.expect(200);
        assert!(
            !own.to_string().contains(&laptop_id),
            "{who} sees bob's token"
        );
    }
    api.delete("/v1/tokens/T-nope", &ada)
        .await
        .expect_err(404, "not_found");
    api.delete("/v1/tokens/a.b", &ada)
        .await
        .expect_err(404, "not_found");
    assert_eq!(nats.log_len().await, log_before, "refusals append nothing");
    api.get("/v1/me", &bob).await.expect(200);

    // The workspace admin lists bob's tokens, revokes one, mints one.
    let listed = api
        .get(&format!("/v1/tokens?user_id={bob_id}"), &ada)
        .await
        .expect(200);
    assert_eq!(listed["tokens"].as_array().map(Vec::len), Some(2));
    api.delete(&format!("/v1/tokens/{laptop_id}"), &ada)
        .await
        .expect(200);
    let (_, minted) = new_token(
        &api.post(
            "/v1/tokens",
            &ada,
            json!({"name": "for bob", "user_id": bob_id}),
        )
        .await
        .expect(201),
    );
    let me = api.get("/v1/me", &minted).await.expect(200);
    assert_eq!(me["user"]["id"], bob_id.as_str(), "{me}");
    // Last use is recorded (once the bucket exists: the listing made it).
    api.get("/v1/me", &minted).await.expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deactivated_user_is_refused_on_every_path_and_closed_everywhere() {
    let nats = Nats::start();
    let (a, b) = (Server::start(&nats), Server::start(&nats));
    let (api_a, api_b) = (a.api(), b.api());
    let ws = api_a.workspace("Acme").await;
    let (_, ada) = api_a.user(&ws, "ada", "admin").await;
    let (bob_id, bob) = api_a.user(&ws, "bob", "member").await;
    let other = api_a.workspace("Evil Corp").await;
    let (_, eve) = api_a.user(&other, "eve", "admin").await;
    let ch = api_a.channel(&ada, "general", false).await;
    api_a
        .post(&format!("/v1/channels/{ch}/join"), &bob, json!({}))
        .await
        .expect(200);
    let posted = api_a.send(&bob, &ch, "bob was here").await.expect(201);
    let (_, laptop) = new_token(
        &api_a
            .post("/v1/tokens", &bob, json!({"name": "laptop"}))
            .await
            .expect(201),
    );
    accepted(&api_b, &bob).await;
    accepted(&api_b, &laptop).await;
    let mut ws_b = Ws::connect(&api_b.base, &bob).await;
    ws_b.subscribe(&[(&ch, 0)]).await;
    let mut sse_a = Sse::connect(&api_a.base, &laptop, &format!("{ch}:0"), None).await;
    assert!(sse_a.next(Duration::from_secs(5)).await.is_some(), "hello");
    let ticket = api_b
        .post("/v1/realtime/tickets", &bob, json!({}))
        .await
        .expect(201)["ticket"]
        .as_str()
        .expect("ticket")
        .to_string();

    // Only an admin of bob's workspace may; eve's answer reveals nothing.
    let log_before = nats.log_len().await;
    api_a
        .post(&format!("/v1/users/{bob_id}/deactivate"), &eve, json!({}))
        .await
        .expect_err(404, "not_found");
    api_a
        .post(
            &format!("/v1/users/{bob_id}/deactivate"),
            &laptop,
            json!({}),
        )
        .await
        .expect_err(403, "forbidden");
    assert_eq!(nats.log_len().await, log_before);
    let user = api_a
        .post(&format!("/v1/users/{bob_id}/deactivate"), &ada, json!({}))
        .await
        .expect(200);
    assert_eq!(user["deactivated"], true, "{user}");
    // Again: nothing more to do, nothing appended.
    api_a
        .post(&format!("/v1/users/{bob_id}/deactivate"), &ada, json!({}))
        .await
        .expect(200);
    assert_eq!(nats.log_len().await, log_before + 1);

    // Streams on both gateways close at once; every token is refused.
    let second = Duration::from_secs(1);
    assert_eq!(ws_b.close_code(second).await, Some(Some(1008)));
    assert_eq!(sse_a.end_within(second).await, SseEnd::Ended);
    for api in [&api_a, &api_b] {
        for token in [&bob, &laptop] {
            assert!(
                refused_within(api, token, second).await.is_some(),
                "{} still accepts a deactivated user's token",
                api.base
            );
            // Every read and write path: REST, WebSocket, SSE.
            for (method, path, body) in crate::outsiders::probes(&ch, &bob_id) {
                let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
                let r = api.call(m, &path, Some(token), body).await;
                assert_eq!(r.status, 401, "{method} {path}: {}", r.body);
            }
            for path in [
                "/v1/channels".to_string(),
                "/v1/users".to_string(),
                "/v1/unreads".to_string(),
                "/v1/tokens".to_string(),
                "/v1/notifications".to_string(),
                "/v1/search?q=bob".to_string(),
            ] {
                api.get(&path, token).await.expect_err(401, "unauthorized");
            }
            assert_eq!(Ws::try_connect(&api.base, token).await.err(), Some(401));
            assert_eq!(Sse::status(&api.base, token, &format!("{ch}:0")).await, 401);
        }
    }
    assert_eq!(
        Ws::connect_ticket(&api_b.base, &ticket).await.err(),
        Some(401),
        "a ticket issued before the deactivation"
    );
    assert_eq!(nats.log_len().await, log_before + 1, "no write got through");

    // Still listed, marked, and in history.
    let users = api_b.get("/v1/users", &ada).await.expect(200);
    let listed = users["users"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["id"] == bob_id.as_str())
        .cloned()
        .expect("bob listed");
    assert_eq!(listed["deactivated"], true);
    let members = api_b
        .get(&format!("/v1/channels/{ch}/members"), &ada)
        .await
        .expect(200);
    assert!(
        members["members"]
            .as_array()
            .expect("members")
            .iter()
            .any(|m| m["user_id"] == bob_id.as_str() && m["deactivated"] == true),
        "{members}"
    );
    let history = api_b
        .get(&format!("/v1/channels/{ch}/messages"), &ada)
        .await
        .expect(200);
    assert!(history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .any(|m| m["id"] == posted["id"] && m["sender_id"] == bob_id.as_str()));
    // No new token for a deactivated user.
    api_a
        .post(
            "/v1/tokens",
            &ada,
            json!({"name": "sneaky", "user_id": bob_id}),
        )
        .await
        .expect_err(409, "conflict");

    // Reactivated: old tokens stay revoked; a new one works everywhere.
    let user = api_b
        .post(&format!("/v1/users/{bob_id}/reactivate"), &ada, json!({}))
        .await
        .expect(200);
    assert_eq!(user["deactivated"], false);
    api_a
        .get("/v1/me", &bob)
        .await
        .expect_err(401, "unauthorized");
    let (_, fresh) = new_token(
        &api_a
            .post(
                "/v1/tokens",
                &ada,
                json!({"name": "welcome back", "user_id": bob_id}),
            )
            .await
            .expect(201),
    );
    accepted(&api_b, &fresh).await;
    api_b
        .get(&format!("/v1/channels/{ch}/messages"), &fresh)
        .await
        .expect(200);
    api_a.send(&fresh, &ch, "back").await.expect(201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn roles_change_as_events_and_the_last_admin_stays() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (ada_id, ada) = api.user(&ws, "ada", "admin").await;
    let (bob_id, bob) = api.user(&ws, "bob", "member").await;
    let (carol_id, carol) = api.user(&ws, "carol", "member").await;
    let other = api.workspace("Evil Corp").await;
    let (_, eve) = api.user(&other, "eve", "admin").await;
    let log_before = nats.log_len().await;

    // Refusals first: nothing appended.
    api.patch(
        &format!("/v1/users/{carol_id}"),
        &bob,
        json!({"role": "admin"}),
    )
    .await
    .expect_err(403, "forbidden");
    api.patch(
        &format!("/v1/users/{carol_id}"),
        &eve,
        json!({"role": "admin"}),
    )
    .await
    .expect_err(404, "not_found");
    api.patch(
        &format!("/v1/users/{carol_id}"),
        &ada,
        json!({"role": "owner"}),
    )
    .await
    .expect_err(400, "invalid_request");
    api.patch(
        &format!("/v1/users/{ada_id}"),
        &ada,
        json!({"role": "member"}),
    )
    .await
    .expect_err(409, "conflict");
    api.post(&format!("/v1/users/{ada_id}/deactivate"), &ada, json!({}))
        .await
        .expect_err(409, "conflict");
    assert_eq!(nats.log_len().await, log_before);

    // bob becomes admin and can act as one at once (his cached session
    // is refreshed), then ada steps down; bob is now the last admin.
    api.get("/v1/me", &bob).await.expect(200);
    let u = api
        .patch(
            &format!("/v1/users/{bob_id}"),
            &ada,
            json!({"role": "admin"}),
        )
        .await
        .expect(200);
    assert_eq!(u["role"], "admin");
    api.get(&format!("/v1/tokens?user_id={carol_id}"), &bob)
        .await
        .expect(200);
    api.patch(
        &format!("/v1/users/{ada_id}"),
        &ada,
        json!({"role": "member"}),
    )
    .await
    .expect(200);
    api.get(&format!("/v1/tokens?user_id={carol_id}"), &ada)
        .await
        .expect_err(404, "not_found");
    api.patch(
        &format!("/v1/users/{bob_id}"),
        &bob,
        json!({"role": "member"}),
    )
    .await
    .expect_err(409, "conflict");
    // The same role again appends nothing.
    let before = nats.log_len().await;
    api.patch(
        &format!("/v1/users/{bob_id}"),
        &bob,
        json!({"role": "admin"}),
    )
    .await
    .expect(200);
    assert_eq!(nats.log_len().await, before);
    let me = api.get("/v1/me", &ada).await.expect(200);
    assert_eq!(me["user"]["role"], "member");
    api.get("/v1/me", &carol).await.expect(200);
}
