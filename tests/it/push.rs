//! Push delivery end to end: a real webhook receiver on 127.0.0.1 (an axum
//! server started by the test, recording every request), the real binary,
//! real nats-server. Signatures are verified with the test's own
//! HMAC-SHA256 (not the server's code).

use crate::harness::{Nats, Server, Ws};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use futures_util::StreamExt;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A key whose `whsec_` form the tests set as the secret.
const KEY: [u8; 32] = *b"0123456789abcdef0123456789abcdef";

fn secret() -> String {
    format!("whsec_{}", B64.encode(KEY))
}

/// Fast retries so tests stay short.
const FAST: &[&str] = &[
    "--webhook-allow-private",
    "--push-backoff-ms",
    "150",
    "--push-backoff-max-ms",
    "600",
];

/// HMAC-SHA256 (RFC 2104), written here so the test checks the server's
/// signatures against an independent implementation.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Hit {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
    /// What the receiver answered.
    status: u16,
    at: Instant,
}

impl Hit {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("JSON body")
    }

    /// Checks the Standard Webhooks signature with [`KEY`].
    fn signed(&self) -> bool {
        let msg = format!("{}.{}.{}", self.id, self.timestamp, self.body);
        let want = format!("v1,{}", B64.encode(hmac_sha256(&KEY, msg.as_bytes())));
        self.signature.split(' ').any(|s| s == want)
    }
}

#[derive(Default)]
struct Recorded {
    hits: Vec<Hit>,
    /// Attempts per webhook-id so far.
    attempts: HashMap<String, usize>,
    /// Answer 500 to the first this-many attempts of each id.
    fail_first: usize,
    /// Answer 503 to everything.
    failing: bool,
}

/// A webhook receiver on a fixed loopback port that can go down (nothing
/// listens: connections are refused) and come back up.
struct Receiver {
    port: u16,
    rec: Arc<Mutex<Recorded>>,
    stop: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
}

async fn hook(
    State(rec): State<Arc<Mutex<Recorded>>>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let mut r = rec.lock().expect("lock");
    let id = h("webhook-id");
    let n = {
        let e = r.attempts.entry(id.clone()).or_default();
        *e += 1;
        *e
    };
    let status = if r.failing {
        503
    } else if n <= r.fail_first {
        500
    } else {
        200
    };
    r.hits.push(Hit {
        id,
        timestamp: h("webhook-timestamp"),
        signature: h("webhook-signature"),
        body,
        status,
        at: Instant::now(),
    });
    StatusCode::from_u16(status).expect("status")
}

impl Receiver {
    async fn start() -> Receiver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut r = Receiver {
            port,
            rec: Arc::default(),
            stop: None,
        };
        r.up().await;
        r
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    async fn up(&mut self) {
        if self.stop.is_some() {
            return;
        }
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("bind the receiver's port again");
        let app = Router::new()
            .route("/hook", post(hook))
            .with_state(self.rec.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        self.stop = Some((tx, task));
    }

    async fn down(&mut self) {
        if let Some((tx, task)) = self.stop.take() {
            let _ = tx.send(());
            let _ = task.await;
        }
    }

    fn set(&self, f: impl FnOnce(&mut Recorded)) {
        f(&mut self.rec.lock().expect("lock"));
    }

    fn hits(&self) -> Vec<Hit> {
        self.rec.lock().expect("lock").hits.clone()
    }

    /// Successful deliveries (2xx answered) for notifications of `user`.
    fn delivered_to(&self, user: &str) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| h.status == 200 && h.json()["user_id"] == user)
            .collect()
    }

    /// Waits (bounded) until `user` got `n` successful deliveries.
    async fn wait_delivered(&self, user: &str, n: usize, within: Duration) -> Vec<Hit> {
        let start = Instant::now();
        loop {
            let d = self.delivered_to(user);
            if d.len() >= n {
                return d;
            }
            assert!(
                start.elapsed() < within,
                "{user} got {} of {n} deliveries in {within:?}; hits: {:?}",
                d.len(),
                self.hits()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A workspace with admin ada, bob and carol in `general`; push set to
/// the receiver with [`secret`].
struct World {
    ws: String,
    ada: String,
    bob_id: String,
    bob: String,
    carol_id: String,
    general: String,
}

async fn world(server: &Server, receiver: &Receiver) -> World {
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "admin").await;
    let (bob_id, bob) = api.user(&ws, "bob", "member").await;
    let (carol_id, carol) = api.user(&ws, "carol", "member").await;
    let general = api.channel(&ada, "general", false).await;
    for t in [&bob, &carol] {
        api.post(&format!("/v1/channels/{general}/join"), t, json!({}))
            .await
            .expect(200);
    }
    let set = api
        .call(
            reqwest::Method::PUT,
            "/v1/admin/push",
            Some(&ada),
            Some(json!({"url": receiver.url(), "secret": secret()})),
        )
        .await
        .expect(200);
    assert_eq!(set["url"], receiver.url());
    assert_eq!(set["secret"], secret());
    World {
        ws,
        ada,
        bob_id,
        bob,
        carol_id,
        general,
    }
}

async fn put_push(server: &Server, token: &str, body: Value) -> crate::harness::Resp {
    server
        .api()
        .call(
            reqwest::Method::PUT,
            "/v1/admin/push",
            Some(token),
            Some(body),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn push_retries_until_acknowledged_once_per_id_with_valid_signature() {
    let nats = Nats::start();
    let server = Server::start_with(&nats, FAST);
    let receiver = Receiver::start().await;
    receiver.set(|r| r.fail_first = 3);
    let w = world(&server, &receiver).await;
    let api = server.api();
    // Bob has a connection open but does not follow the channel: he gets
    // the live frame, and the webhook is not suppressed.
    let mut ws = Ws::connect(&server.base, &w.bob).await;
    let m = api
        .send(&w.ada, &w.general, "lunch? @bob")
        .await
        .expect(201);
    let msg_id = m["id"].as_str().expect("id").to_string();
    let dm = api
        .post("/v1/dms", &w.ada, json!({"user_ids": [w.carol_id]}))
        .await
        .expect(201)["id"]
        .as_str()
        .expect("dm id")
        .to_string();
    api.send(&w.ada, &dm, "psst").await.expect(201);

    let bob = receiver
        .wait_delivered(&w.bob_id, 1, Duration::from_secs(30))
        .await;
    receiver
        .wait_delivered(&w.carol_id, 1, Duration::from_secs(30))
        .await;
    // Nothing more comes: each id was acknowledged once.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let hits = receiver.hits();
    let mut by_id: HashMap<String, Vec<&Hit>> = HashMap::new();
    for h in &hits {
        by_id.entry(h.id.clone()).or_default().push(h);
    }
    assert_eq!(by_id.len(), 2, "two notifications: {hits:?}");
    for (id, attempts) in &by_id {
        let statuses: Vec<u16> = attempts.iter().map(|h| h.status).collect();
        // At-least-once: a redelivery inside the retries is allowed; a
        // second success, or anything after the success, is not.
        assert!(
            statuses.len() >= 4
                && statuses.last() == Some(&200)
                && statuses.iter().filter(|s| **s == 200).count() == 1,
            "{id}: retried until a 2xx, then never again: {statuses:?}"
        );
        for h in attempts {
            assert!(h.signed(), "valid signature on every attempt: {h:?}");
            let ts: i64 = h.timestamp.parse().expect("unix seconds");
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_secs() as i64;
            assert!((now - ts).abs() < 60, "a current timestamp");
            assert_eq!(
                h.json()["id"],
                id.as_str(),
                "webhook-id is the notification id"
            );
        }
        // Backoff: retries spread out, not in a burst.
        let gaps: Vec<Duration> = attempts.windows(2).map(|p| p[1].at - p[0].at).collect();
        assert!(
            gaps.iter().all(|g| *g >= Duration::from_millis(60)),
            "{gaps:?}"
        );
    }
    let body = bob[0].json();
    assert_eq!(body["workspace_id"], w.ws);
    assert_eq!(body["user_id"], w.bob_id);
    assert_eq!(body["channel_id"], w.general);
    assert_eq!(body["message_id"], msg_id);
    assert_eq!(body["text"], "lunch? @bob");
    assert!(body["kind"].is_string() && body["ts"].is_string(), "{body}");
    // A tampered body does not verify.
    let mut forged = bob[0].clone();
    forged.body = forged.body.replace("lunch", "dinner");
    assert!(!forged.signed());

    // The live frame reached bob's open connection, once.
    let frames = ws
        .frames_until(Duration::from_secs(5), |f| f["type"] == "notification")
        .await;
    let live: Vec<&Value> = frames
        .iter()
        .filter(|f| f["type"] == "notification")
        .collect();
    assert_eq!(live.len(), 1, "{frames:?}");
    assert_eq!(live[0]["message_id"], msg_id);
    assert_eq!(live[0]["channel_id"], w.general);
    assert_eq!(live[0]["id"], body["id"]);
    let more = ws
        .frames_until(Duration::from_millis(500), |f| f["type"] == "notification")
        .await;
    assert!(
        more.iter().all(|f| f["type"] != "notification"),
        "one live frame per notification, not one per attempt: {more:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pending_deliveries_survive_kill9_of_serve() {
    let nats = Nats::start();
    let mut server = Server::start_with(&nats, FAST);
    let mut receiver = Receiver::start().await;
    let w = world(&server, &receiver).await;
    receiver.set(|r| r.failing = true);
    let api = server.api();
    for i in 0..3 {
        api.send(&w.ada, &w.general, &format!("@bob #{i}"))
            .await
            .expect(201);
    }
    // Attempts are being made and failing.
    let start = Instant::now();
    while receiver.hits().len() < 3 {
        assert!(start.elapsed() < Duration::from_secs(20), "attempts made");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    receiver.down().await;
    server.kill9();
    receiver.set(|r| r.failing = false);
    receiver.up().await;
    server.restart();
    let got = receiver
        .wait_delivered(&w.bob_id, 3, Duration::from_secs(40))
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got_after = receiver.delivered_to(&w.bob_id);
    assert_eq!(got_after.len(), 3, "each once: {got:?}");
    let mut texts: Vec<String> = got_after
        .iter()
        .map(|h| h.json()["text"].as_str().expect("text").to_string())
        .collect();
    texts.sort();
    assert_eq!(texts, ["@bob #0", "@bob #1", "@bob #2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn removed_member_and_edited_away_mention_get_nothing() {
    let nats = Nats::start();
    let server = Server::start_with(&nats, FAST);
    let receiver = Receiver::start().await;
    let w = world(&server, &receiver).await;
    let api = server.api();
    // A private channel bob is in, and the receiver down while the
    // notifications are pending.
    let secret_ch = api.channel(&w.ada, "plans", true).await;
    for u in [&w.bob_id, &w.carol_id] {
        api.post(
            &format!("/v1/channels/{secret_ch}/members"),
            &w.ada,
            json!({"user_id": u}),
        )
        .await
        .expect(200);
    }
    // The receiver fails everything (503): both jobs are pending, tried
    // and retried, when the removal and the edit happen.
    receiver.set(|r| r.failing = true);
    api.send(&w.ada, &secret_ch, "@bob read this")
        .await
        .expect(201);
    let m = api
        .send(&w.ada, &w.general, "@carol and @bob")
        .await
        .expect(201);
    let edited = m["id"].as_str().expect("id").to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    while receiver.hits().len() < 3 {
        assert!(Instant::now() < deadline, "the workers never tried");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Bob is removed from the private channel; the mention of carol is
    // edited away (bob's stays).
    api.delete(
        &format!("/v1/channels/{secret_ch}/members/{}", w.bob_id),
        &w.ada,
    )
    .await
    .expect(200);
    api.patch(
        &format!("/v1/messages/{edited}"),
        &w.ada,
        json!({"text": "and @bob"}),
    )
    .await
    .expect(200);
    // An attempt judged before the edit may still be on its way (it is
    // being delivered, not undelivered): keep failing until bob's job has
    // been judged again after the edit (its text is the new one), plus a
    // margin for such an attempt to land, then answer again.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !receiver
        .hits()
        .iter()
        .any(|h| h.json()["text"] == "and @bob")
    {
        assert!(Instant::now() < deadline, "bob's job was never retried");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    receiver.set(|r| r.failing = false);
    // A control notification to carol after the fact: once it is in,
    // every earlier job has had its turn several times.
    api.send(&w.ada, &w.general, "@carol control")
        .await
        .expect(201);
    receiver
        .wait_delivered(&w.carol_id, 1, Duration::from_secs(30))
        .await;
    receiver
        .wait_delivered(&w.bob_id, 1, Duration::from_secs(30))
        .await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let carol: Vec<String> = receiver
        .delivered_to(&w.carol_id)
        .iter()
        .map(|h| h.json()["text"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        carol,
        ["@carol control"],
        "the edited-away mention was withdrawn"
    );
    let bob: Vec<String> = receiver
        .delivered_to(&w.bob_id)
        .iter()
        .map(|h| h.json()["text"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        bob,
        ["and @bob"],
        "nothing from the channel bob was removed from"
    );
    assert!(
        receiver
            .hits()
            .iter()
            .all(|h| h.status != 200 || h.json()["channel_id"] != secret_ch.as_str()),
        "nothing about the private channel delivered after the removal"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn do_not_disturb_holds_then_releases() {
    let nats = Nats::start();
    let server = Server::start_with(&nats, FAST);
    let receiver = Receiver::start().await;
    let w = world(&server, &receiver).await;
    let api = server.api();
    let until_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
        + 3_000;
    let until = rfc3339_ms(until_ms);
    api.call(
        reqwest::Method::PUT,
        "/v1/me/preferences",
        Some(&w.bob),
        Some(json!({"dnd_until": until})),
    )
    .await
    .expect(200);
    api.send(&w.ada, &w.general, "@bob @carol now")
        .await
        .expect(201);
    // Carol (no DND) gets hers at once; bob's is held.
    receiver
        .wait_delivered(&w.carol_id, 1, Duration::from_secs(10))
        .await;
    assert!(receiver.delivered_to(&w.bob_id).is_empty());
    receiver
        .wait_delivered(&w.bob_id, 1, Duration::from_secs(20))
        .await;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    assert!(now_ms >= until_ms, "released only after DND ended");
    assert_eq!(
        receiver
            .hits()
            .iter()
            .filter(|h| h.json()["user_id"] == w.bob_id)
            .count(),
        1,
        "held, not attempted"
    );
}

/// ms since the epoch as RFC 3339 UTC with milliseconds.
fn rfc3339_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn active_user_gets_the_live_frame_but_no_webhook() {
    let nats = Nats::start();
    let server = Server::start_with(&nats, FAST);
    let receiver = Receiver::start().await;
    let w = world(&server, &receiver).await;
    let api = server.api();
    let mut ws = Ws::connect(&server.base, &w.bob).await;
    ws.subscribe_live(&w.general, 1).await;
    api.send(&w.ada, &w.general, "@bob @carol look")
        .await
        .expect(201);
    let frames = ws
        .frames_until(Duration::from_secs(10), |f| f["type"] == "notification")
        .await;
    assert!(
        frames.iter().any(|f| f["type"] == "notification"),
        "{frames:?}"
    );
    receiver
        .wait_delivered(&w.carol_id, 1, Duration::from_secs(10))
        .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        receiver
            .hits()
            .iter()
            .all(|h| h.json()["user_id"] != w.bob_id),
        "bob is looking at the channel: no webhook"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn undeliverable_notifications_are_dead_lettered_for_admins() {
    let nats = Nats::start();
    let mut args = FAST.to_vec();
    args.extend(["--push-retry-for-secs", "2"]);
    let server = Server::start_with(&nats, &args);
    let receiver = Receiver::start().await;
    receiver.set(|r| r.failing = true);
    let w = world(&server, &receiver).await;
    let api = server.api();
    let m = api.send(&w.ada, &w.general, "@bob hello").await.expect(201);
    let start = Instant::now();
    let dead = loop {
        let d = api.get("/v1/admin/push/dead", &w.ada).await.expect(200);
        if !d["dead"].as_array().expect("dead").is_empty() {
            break d;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "dead-lettered in time"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let d = &dead["dead"][0];
    assert_eq!(d["user_id"], w.bob_id);
    assert_eq!(d["message_id"], m["id"]);
    assert_eq!(d["reason"], "retry_window_exceeded");
    assert_eq!(d["last_status"], 503);
    assert!(d["attempts"].as_u64().expect("attempts") >= 2, "{d}");
    // Given up: no more attempts.
    let n = receiver.hits().len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.hits().len(), n, "no attempt after the dead letter");
    // Members and other workspaces' admins see none of it.
    api.get("/v1/admin/push/dead", &w.bob)
        .await
        .expect_err(403, "forbidden");
    let other = api.workspace("Other").await;
    let (_, eve) = api.user(&other, "eve", "admin").await;
    let theirs = api.get("/v1/admin/push/dead", &eve).await.expect(200);
    assert_eq!(theirs["dead"], json!([]));
    api.get("/v1/admin/push/dead?limit=0", &w.ada)
        .await
        .expect_err(400, "invalid_request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn push_config_is_admin_only_validated_and_its_secret_never_logged() {
    let nats = Nats::start();
    // No --webhook-allow-private: private addresses are refused.
    let server = Server::start(&nats);
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "admin").await;
    let (_, bob) = api.user(&ws, "bob", "member").await;
    let other = api.workspace("Other").await;
    let (_, eve) = api.user(&other, "eve", "admin").await;
    let before = nats.log_len().await;
    let long = format!("https://example.com/{}", "a".repeat(2100));
    for bad in [
        json!({"url": "ftp://example.com/hook"}),
        json!({"url": "example.com/hook"}),
        json!({"url": "http://"}),
        json!({"url": "http://user:pw@example.com/"}),
        json!({"url": long}),
        json!({"url": "http://127.0.0.1:9/hook"}),
        json!({"url": "http://localhost:9/hook"}),
        json!({"url": "http://10.1.2.3/hook"}),
        json!({"url": "http://169.254.169.254/latest"}),
        json!({"url": "http://[::1]/hook"}),
        json!({"url": "https://203.0.113.9/hook", "secret": "not-a-secret"}),
        json!({"url": "https://203.0.113.9/hook", "secret": "whsec_c2hvcnQ="}),
    ] {
        put_push(&server, &ada, bad.clone())
            .await
            .expect_err(400, "invalid_request");
    }
    put_push(&server, &bob, json!({"url": "https://93.184.215.14/hook"}))
        .await
        .expect_err(403, "forbidden");
    assert_eq!(
        nats.log_len().await,
        before,
        "nothing appended for a refusal"
    );

    // A generated secret, shown once; GET never shows it.
    let set = put_push(&server, &ada, json!({"url": "https://93.184.215.14/hook"}))
        .await
        .expect(200);
    let generated = set["secret"].as_str().expect("secret").to_string();
    let key = B64
        .decode(generated.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("base64");
    assert_eq!(key.len(), 32);
    let got = api.get("/v1/admin/push", &ada).await.expect(200);
    assert_eq!(got, json!({"url": "https://93.184.215.14/hook"}));
    api.get("/v1/admin/push", &bob)
        .await
        .expect_err(403, "forbidden");
    // Another workspace's admin sees and changes only its own.
    assert_eq!(
        api.get("/v1/admin/push", &eve).await.expect(200),
        json!({"url": ""})
    );
    api.delete("/v1/admin/push", &eve).await.expect(200);
    assert_eq!(
        api.get("/v1/admin/push", &ada).await.expect(200)["url"],
        "https://93.184.215.14/hook"
    );
    // A given secret.
    put_push(
        &server,
        &ada,
        json!({"url": "https://93.184.215.14/v2", "secret": secret()}),
    )
    .await
    .expect(200);
    // The same URL again (a new secret) appends nothing; so does removing
    // a webhook another workspace never had.
    let len = nats.log_len().await;
    put_push(&server, &ada, json!({"url": "https://93.184.215.14/v2"}))
        .await
        .expect(200);
    put_push(
        &server,
        &ada,
        json!({"url": "https://93.184.215.14/v2", "secret": secret()}),
    )
    .await
    .expect(200);
    api.delete("/v1/admin/push", &eve).await.expect(200);
    assert_eq!(nats.log_len().await, len, "no event for no change");
    api.delete("/v1/admin/push", &bob)
        .await
        .expect_err(403, "forbidden");
    assert_eq!(
        api.delete("/v1/admin/push", &ada).await.expect(200),
        json!({"url": ""})
    );
    assert_eq!(
        api.get("/v1/admin/push", &ada).await.expect(200),
        json!({"url": ""})
    );

    // The push model is a projector like the others: /readyz lists it.
    let ready = api
        .call(reqwest::Method::GET, "/readyz", None, None)
        .await
        .expect(200);
    assert!(ready["projectors"]["push"].as_u64().is_some(), "{ready}");

    // Replay the workspace's events as a consumer would: the URLs are
    // there, the secrets nowhere.
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream("SB").await.expect("stream");
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            filter_subject: format!("sb.{ws}.>"),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut msgs = consumer.messages().await.expect("messages");
    let mut payloads = Vec::new();
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), msgs.next())
            .await
            .expect("replay in time")
            .expect("a message")
            .expect("ok");
        let pending = m.info().expect("info").pending;
        payloads.push(m.payload.to_vec());
        if pending == 0 {
            break;
        }
    }
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    assert!(payloads
        .iter()
        .any(|p| contains(p, b"https://93.184.215.14/v2")));
    for p in &payloads {
        for s in [
            generated.as_bytes(),
            secret().as_bytes(),
            &key[..],
            &KEY[..],
            b"whsec_",
        ] {
            assert!(!contains(p, s), "a secret in the log");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateways_share_the_queue_without_double_sends() {
    let nats = Nats::start();
    let one = Server::start_with(&nats, FAST);
    let two = Server::start_with(&nats, FAST);
    let receiver = Receiver::start().await;
    receiver.set(|r| r.fail_first = 1);
    let w = world(&one, &receiver).await;
    // Posts through both gateways; both enqueue every notification and
    // both pull from the one queue.
    for i in 0..20 {
        let api = if i % 2 == 0 { one.api() } else { two.api() };
        api.send(&w.ada, &w.general, &format!("@bob @carol #{i}"))
            .await
            .expect(201);
    }
    receiver
        .wait_delivered(&w.bob_id, 20, Duration::from_secs(40))
        .await;
    receiver
        .wait_delivered(&w.carol_id, 20, Duration::from_secs(40))
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut per_id: HashMap<String, Vec<u16>> = HashMap::new();
    for h in receiver.hits() {
        per_id.entry(h.id.clone()).or_default().push(h.status);
    }
    assert_eq!(per_id.len(), 40);
    for (id, statuses) in per_id {
        assert!(
            statuses.len() >= 2
                && statuses.last() == Some(&200)
                && statuses.iter().filter(|s| **s == 200).count() == 1,
            "{id}: a failure, then one success and no double send: {statuses:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pending_deliveries_survive_a_nats_server_restart() {
    let mut nats = Nats::start();
    let server = Server::start_with(&nats, FAST);
    let receiver = Receiver::start().await;
    let w = world(&server, &receiver).await;
    receiver.set(|r| r.failing = true);
    server
        .api()
        .send(&w.ada, &w.general, "@bob before the restart")
        .await
        .expect(201);
    let start = Instant::now();
    while receiver.hits().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(20), "an attempt made");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    nats.restart();
    receiver.set(|r| r.failing = false);
    let got = receiver
        .wait_delivered(&w.bob_id, 1, Duration::from_secs(40))
        .await;
    assert_eq!(got[0].json()["text"], "@bob before the restart");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(receiver.delivered_to(&w.bob_id).len(), 1);
}

/// A gateway whose push-configuration model is behind the log (its store
/// is stalled, as by a slow disk, while the webhook is set through another
/// gateway) must not take "no webhook configured" from that stale model:
/// the job waits for the model to reach it and is then POSTed, once.
/// (Before the fix the worker read the URL without waiting, found none,
/// marked the notification done and acknowledged the job: lost.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_with_a_lagging_push_model_still_delivers() {
    let nats = Nats::start();
    let mut one = Server::start_with(&nats, FAST);
    let two = Server::start_with(&nats, FAST);
    let receiver = Receiver::start().await;
    // Stall gateway two's push projector: another process holds its model
    // file's write lock, so no batch commits (readers still read, and see
    // no webhook).
    let lock = rusqlite::Connection::open(two.data.join("push.db")).expect("open push.db");
    lock.execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    // The webhook is set through gateway one (its model sees it); then
    // gateway one goes away, so gateway two's workers take every job.
    let w = world(&one, &receiver).await;
    one.kill9();
    let api = two.api();
    let mut ws = Ws::connect(&two.base, &w.bob).await;
    api.send(&w.ada, &w.general, "@bob while two's push model lags")
        .await
        .expect(201);
    // The live frame is the worker's step just before it reads the
    // webhook URL: the job is in gateway two's hands with the model stalled.
    let frames = ws
        .frames_until(Duration::from_secs(30), |f| f["type"] == "notification")
        .await;
    assert!(
        frames.iter().any(|f| f["type"] == "notification"),
        "gateway two worked the job: {frames:?}"
    );
    // A margin for a worker that judges on the stale model to finish
    // judging (milliseconds), then the projector may commit again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(receiver.hits().is_empty(), "nothing POSTed while it lags");
    lock.execute_batch("ROLLBACK").expect("release the lock");
    drop(lock);
    let got = receiver
        .wait_delivered(&w.bob_id, 1, Duration::from_secs(40))
        .await;
    assert_eq!(got[0].json()["text"], "@bob while two's push model lags");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.hits().len(), 1, "once: {:?}", receiver.hits());
    let more = ws
        .frames_until(Duration::from_millis(300), |f| f["type"] == "notification")
        .await;
    assert!(
        more.iter().all(|f| f["type"] != "notification"),
        "one live frame: {more:?}"
    );
}
