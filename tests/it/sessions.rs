//! Browser sign-in: passwords set by an admin and by invite, the session
//! cookie for reads, CSRF refusal of cookie writes without the token, the
//! Origin check on cookie WebSocket upgrades, sign-out (here and
//! everywhere), and brute-force lockout per account and per address.

use crate::harness::{Api, Nats, Resp, Server, Ws};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const PASSWORD: &str = "correct horse battery";

async fn login(api: &Api, ws: &str, handle: &str, password: &str) -> (Resp, HeaderMap) {
    login_with(api, ws, handle, password, &[]).await
}

async fn login_with(
    api: &Api,
    ws: &str,
    handle: &str,
    password: &str,
    extra: &[(&str, &str)],
) -> (Resp, HeaderMap) {
    let mut headers = vec![("content-type", "application/json")];
    headers.extend_from_slice(extra);
    api.with_headers(
        Method::POST,
        "/v1/auth/login",
        &headers,
        Some(json!({"workspace": ws, "handle": handle, "password": password}).to_string()),
    )
    .await
}

/// The `Set-Cookie` line for `name`.
fn set_cookie(h: &HeaderMap, name: &str) -> String {
    h.get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {h:?}"))
        .to_string()
}

fn cookie_value(line: &str) -> String {
    line.split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_string())
        .expect("cookie value")
}

/// A signed-in browser: its `Cookie` header and CSRF token.
struct Browser {
    cookie: String,
    csrf: String,
}

async fn sign_in(api: &Api, ws: &str, handle: &str, password: &str) -> Browser {
    let (r, h) = login(api, ws, handle, password).await;
    let body = r.expect(200);
    let session = cookie_value(&set_cookie(&h, "sb_session"));
    let csrf = cookie_value(&set_cookie(&h, "sb_csrf"));
    assert_eq!(body["csrf_token"], csrf.as_str());
    Browser {
        cookie: format!("sb_session={session}; sb_csrf={csrf}"),
        csrf,
    }
}

impl Browser {
    async fn call(
        &self,
        api: &Api,
        m: Method,
        path: &str,
        body: Option<Value>,
        csrf: bool,
    ) -> Resp {
        let mut h = vec![("cookie", self.cookie.as_str())];
        if body.is_some() {
            h.push(("content-type", "application/json"));
        }
        if csrf {
            h.push(("x-csrf-token", self.csrf.as_str()));
        }
        api.with_headers(m, path, &h, body.map(|b| b.to_string()))
            .await
            .0
    }

    /// A WebSocket upgrade with the cookie and this `Origin`.
    async fn websocket(&self, base: &str, origin: Option<&str>) -> Result<Ws, u16> {
        let url = format!("{}/v1/realtime", base.replacen("http://", "ws://", 1));
        let mut req = url.into_client_request().expect("request");
        req.headers_mut()
            .insert("cookie", self.cookie.parse().expect("header"));
        if let Some(o) = origin {
            req.headers_mut()
                .insert("origin", o.parse().expect("header"));
        }
        Ws::from_request(req).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn password_sign_in_gives_a_cookie_session_with_csrf_and_origin_checks() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (ada_id, ada) = api.user(&ws, "ada", "admin").await;
    let (bob_id, bob) = api.user(&ws, "bob", "member").await;
    let other = api.workspace("Evil Corp").await;
    let (_, eve) = api.user(&other, "eve", "admin").await;
    let ch = api.channel(&ada, "general", false).await;
    api.post(&format!("/v1/channels/{ch}/join"), &bob, json!({}))
        .await
        .expect(200);

    // Only an admin of bob's workspace sets his password; nothing else
    // is appended; the event holds no hash.
    let before = nats.log_len().await;
    let set = |t: &str| {
        let (api, path) = (api.clone(), format!("/v1/users/{bob_id}/password"));
        let t = t.to_string();
        async move { api.put(&path, &t, json!({"password": PASSWORD})).await }
    };
    set(&eve).await.expect_err(404, "not_found");
    api.put(
        &format!("/v1/users/{ada_id}/password"),
        &bob,
        json!({"password": PASSWORD}),
    )
    .await
    .expect_err(403, "forbidden");
    // One's own password is changed only with the current one (review
    // finding: the admin route let a member set its own without it, so a
    // stolen token or session could take the account over).
    set(&bob).await.expect_err(400, "invalid_request");
    api.put(
        &format!("/v1/users/{ada_id}/password"),
        &ada,
        json!({"password": PASSWORD}),
    )
    .await
    .expect_err(400, "invalid_request");
    api.put(
        &format!("/v1/users/{bob_id}/password"),
        &ada,
        json!({"password": "short"}),
    )
    .await
    .expect_err(400, "invalid_request");
    assert_eq!(nats.log_len().await, before);
    set(&ada).await.expect(200);
    assert_eq!(nats.log_len().await, before + 1);
    let raw = last_raw_event(&nats, &format!("sb.{ws}.ws")).await;
    assert!(
        !raw.windows(7).any(|w| w == b"$argon2") && !raw.windows(5).any(|w| w == b"horse"),
        "the log holds the password or its hash"
    );

    // Wrong password, unknown handle, other workspace: one answer.
    for (w, h, p) in [
        (ws.as_str(), "bob", "wrong password"),
        (ws.as_str(), "nobody", PASSWORD),
        (other.as_str(), "bob", PASSWORD),
    ] {
        let (r, headers) = login(&api, w, h, p).await;
        r.expect_err(401, "unauthorized");
        assert!(headers.get("set-cookie").is_none());
    }

    // Sign in: HttpOnly, SameSite=Lax session cookie; Secure over TLS.
    let (r, h) = login(&api, &ws, "bob", PASSWORD).await;
    let user = r.expect(200);
    assert_eq!(user["user"]["id"], bob_id.as_str());
    let line = set_cookie(&h, "sb_session");
    assert!(
        line.contains("HttpOnly") && line.contains("SameSite=Lax") && !line.contains("Secure"),
        "{line}"
    );
    assert!(!set_cookie(&h, "sb_csrf").contains("HttpOnly"));
    // (ada's account: every attempt counts against bob's limit of five.
    // Her first password needs no current one.)
    api.put("/v1/me/password", &ada, json!({"password": PASSWORD}))
        .await
        .expect(200);
    let (_, h) = login_with(
        &api,
        &ws,
        "ada",
        PASSWORD,
        &[("x-forwarded-proto", "https")],
    )
    .await;
    assert!(set_cookie(&h, "sb_session").contains("Secure"));

    let browser = sign_in(&api, &ws, "bob", PASSWORD).await;
    // Reads with the cookie alone.
    let me = browser
        .call(&api, Method::GET, "/v1/me", None, false)
        .await
        .expect(200);
    assert_eq!(me["user"]["id"], bob_id.as_str());
    browser
        .call(
            &api,
            Method::GET,
            &format!("/v1/channels/{ch}/messages"),
            None,
            false,
        )
        .await
        .expect(200);
    let tokens = browser
        .call(&api, Method::GET, "/v1/tokens", None, false)
        .await
        .expect(200);
    assert!(tokens["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .any(|t| t["kind"] == "session"));

    // Writes need the CSRF header; without it (or with a wrong one)
    // nothing is appended.
    let before = nats.log_len().await;
    let post = json!({"channel_id": ch, "text": "from the browser"});
    browser
        .call(
            &api,
            Method::POST,
            "/v1/messages",
            Some(post.clone()),
            false,
        )
        .await
        .expect_err(403, "forbidden");
    let wrong = Browser {
        cookie: browser.cookie.clone(),
        csrf: "0".repeat(64),
    };
    wrong
        .call(&api, Method::POST, "/v1/messages", Some(post.clone()), true)
        .await
        .expect_err(403, "forbidden");
    assert_eq!(nats.log_len().await, before);
    browser
        .call(&api, Method::POST, "/v1/messages", Some(post), true)
        .await
        .expect(201);

    // WebSocket with the cookie: same origin only.
    let own = api.base.clone();
    assert_eq!(
        browser
            .websocket(&api.base, Some("https://evil.example"))
            .await
            .err(),
        Some(403)
    );
    assert_eq!(browser.websocket(&api.base, None).await.err(), Some(403));
    let mut socket = browser
        .websocket(&api.base, Some(&own))
        .await
        .expect("same-origin websocket");

    // Sign out: this session is refused everywhere, its socket closed.
    let other_session = sign_in(&api, &ws, "bob", PASSWORD).await;
    browser
        .call(&api, Method::POST, "/v1/auth/logout", None, false)
        .await
        .expect_err(403, "forbidden");
    let (r, h) = api
        .with_headers(
            Method::POST,
            "/v1/auth/logout",
            &[("cookie", &browser.cookie), ("x-csrf-token", &browser.csrf)],
            None,
        )
        .await;
    r.expect(200);
    assert!(set_cookie(&h, "sb_session").contains("Max-Age=0"));
    browser
        .call(&api, Method::GET, "/v1/me", None, false)
        .await
        .expect_err(401, "unauthorized");
    assert_eq!(
        socket.close_code(Duration::from_secs(1)).await,
        Some(Some(1008))
    );
    other_session
        .call(&api, Method::GET, "/v1/me", None, false)
        .await
        .expect(200);

    // Sign out everywhere: every session goes, API tokens stay.
    let third = sign_in(&api, &ws, "bob", PASSWORD).await;
    let (r, _) = api
        .with_headers(
            Method::POST,
            "/v1/auth/logout?everywhere=true",
            &[("cookie", &third.cookie), ("x-csrf-token", &third.csrf)],
            None,
        )
        .await;
    r.expect(200);
    for b in [&other_session, &third] {
        b.call(&api, Method::GET, "/v1/me", None, false)
            .await
            .expect_err(401, "unauthorized");
    }
    api.get("/v1/me", &bob).await.expect(200);

    // A deactivated user cannot sign in.
    api.post(&format!("/v1/users/{bob_id}/deactivate"), &ada, json!({}))
        .await
        .expect(200);
    let (r, _) = login(&api, &ws, "bob", PASSWORD).await;
    assert!(matches!(r.status, 401 | 429), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn brute_force_is_locked_out_per_account_and_per_address() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "admin").await;
    let (bob_id, _) = api.user(&ws, "bob", "member").await;
    let (carol_id, _) = api.user(&ws, "carol", "member").await;
    for id in [&bob_id, &carol_id] {
        api.put(
            &format!("/v1/users/{id}/password"),
            &ada,
            json!({"password": PASSWORD}),
        )
        .await
        .expect(200);
    }
    let before = nats.log_len().await;
    // bob's account: five attempts, then even the right password waits.
    for _ in 0..5 {
        login(&api, &ws, "bob", "guess guess")
            .await
            .0
            .expect_err(401, "unauthorized");
    }
    let (r, h) = login(&api, &ws, "bob", PASSWORD).await;
    r.expect_err(429, "rate_limited");
    let retry: u64 = h
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(h.get("set-cookie").is_none());
    // Another account from the same address is not locked by it.
    sign_in(&api, &ws, "carol", PASSWORD).await;
    // The address: a spray over many handles is stopped too.
    let mut limited = None;
    for i in 0..40 {
        let (r, h) = login(&api, &ws, &format!("user{i}"), "guess guess").await;
        if r.status == 429 {
            limited = Some(h);
            break;
        }
        r.expect_err(401, "unauthorized");
    }
    let h = limited.expect("the address was never limited");
    assert!(h.get("retry-after").is_some());
    // Only the successful sign-in appended (its session token and the
    // token's verifier).
    assert_eq!(nats.log_len().await, before + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_invite_link_sets_a_password_once_and_signs_in() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "admin").await;
    let (bob_id, bob) = api.user(&ws, "bob", "member").await;
    let other = api.workspace("Evil Corp").await;
    let (_, eve) = api.user(&other, "eve", "admin").await;

    api.post(&format!("/v1/users/{bob_id}/invite"), &eve, json!({}))
        .await
        .expect_err(404, "not_found");
    api.post(&format!("/v1/users/{bob_id}/invite"), &bob, json!({}))
        .await
        .expect_err(403, "forbidden");
    let invite = api
        .post(&format!("/v1/users/{bob_id}/invite"), &ada, json!({}))
        .await
        .expect(201)["invite"]
        .as_str()
        .expect("invite")
        .to_string();
    let accept = |pw: &str| {
        let body = json!({"invite": invite, "password": pw}).to_string();
        let api = api.clone();
        async move {
            api.with_headers(
                Method::POST,
                "/v1/auth/invite",
                &[("content-type", "application/json")],
                Some(body),
            )
            .await
        }
    };
    // A bad password does not spend it.
    accept("short").await.0.expect_err(400, "invalid_request");
    let (r, h) = accept(PASSWORD).await;
    assert_eq!(r.expect(200)["user"]["id"], bob_id.as_str());
    let session = cookie_value(&set_cookie(&h, "sb_session"));
    assert!(!session.is_empty());
    accept("another password")
        .await
        .0
        .expect_err(404, "not_found");

    // The password works; changing it needs the current one.
    let browser = sign_in(&api, &ws, "bob", PASSWORD).await;
    browser
        .call(
            &api,
            Method::PUT,
            "/v1/me/password",
            Some(json!({"password": "new password 2"})),
            true,
        )
        .await
        .expect_err(403, "forbidden");
    browser
        .call(
            &api,
            Method::PUT,
            "/v1/me/password",
            Some(json!({"password": "new password 2", "current_password": PASSWORD})),
            true,
        )
        .await
        .expect(200);
    login(&api, &ws, "bob", PASSWORD)
        .await
        .0
        .expect_err(401, "unauthorized");
    sign_in(&api, &ws, "bob", "new password 2").await;
}

/// The raw payload of the last event on `subject`, read straight from the
/// stream (as a replaying consumer would).
async fn last_raw_event(nats: &Nats, subject: &str) -> Vec<u8> {
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream("SB").await.expect("stream");
    stream
        .get_last_raw_message_by_subject(subject)
        .await
        .expect("last event")
        .payload
        .to_vec()
}
