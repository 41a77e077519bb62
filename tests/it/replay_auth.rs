//! Replay credentials and the authorization of `serve`'s own nats-server
//! (README "Replay credentials"): a replay user of workspace A reads A's
//! events and nothing else, cannot write, delete or purge anything, nor
//! read a KV bucket; nobody connects anonymously; token verifiers are not
//! in any message on `sb.>`.

use crate::harness::*;
use async_nats::jetstream::{self, consumer::pull::OrderedConfig, consumer::DeliverPolicy};
use async_nats::{ConnectOptions, Event, ServerError};
use futures_util::StreamExt;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard_core::events::{Body, Envelope};
use switchboard_streams::keyring::Keyring;

/// Runs `switchboard admin replay-credentials …` on the server's data dir
/// (no `--nats`: the embedded server); returns its JSON.
pub(crate) fn replay_credentials(server: &Server, args: &[&str]) -> Value {
    let out = Command::new(bin())
        .args(["admin", "replay-credentials"])
        .args(args)
        .arg("--data")
        .arg(&server.data)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run switchboard");
    assert!(
        out.status.success(),
        "replay-credentials failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// A NATS connection that records the server's permission errors.
struct Conn {
    client: async_nats::Client,
    errors: Arc<Mutex<Vec<String>>>,
}

impl Conn {
    async fn open(url: &str, inbox_prefix: Option<&str>) -> Conn {
        let (bare, creds) = switchboard_streams::split_userinfo(url);
        let (user, password) = creds.expect("credentials in the URL");
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        let mut options = ConnectOptions::with_user_and_password(user, password)
            .event_callback(move |e| {
                let sink = sink.clone();
                async move {
                    if let Event::ServerError(ServerError::Other(m)) = e {
                        sink.lock().expect("lock").push(m.to_lowercase());
                    }
                }
            })
            .request_timeout(Some(Duration::from_millis(700)));
        if let Some(p) = inbox_prefix {
            options = options.custom_inbox_prefix(p);
        }
        let client = options.connect(bare).await.expect("connect");
        Conn { client, errors }
    }

    /// Waits (bounded) for a permission error naming `subject`.
    async fn refused(&self, subject: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        let needle = subject.to_lowercase();
        while Instant::now() < deadline {
            if self
                .errors
                .lock()
                .expect("lock")
                .iter()
                .any(|e| e.contains("permissions violation") && e.contains(&needle))
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// A request that must be refused by permissions: no answer, and a
    /// permission error for `subject`.
    async fn request_refused(&self, subject: &str, body: Value) {
        let answer = self
            .client
            .request(subject.to_string(), body.to_string().into())
            .await;
        assert!(answer.is_err(), "{subject} answered: {answer:?}");
        assert!(
            self.refused(subject).await,
            "no permission error for {subject}"
        );
    }
}

/// Reads every message of `filter` from the start through an ordered
/// consumer named `name`, until `count` or the deadline.
async fn read_all(
    js: &jetstream::Context,
    stream: &str,
    name: &str,
    filter: &str,
    count: usize,
) -> Result<Vec<(String, Vec<u8>)>, String> {
    let stream = js
        .get_stream_no_info(stream)
        .await
        .map_err(|e| e.to_string())?;
    let consumer = stream
        .create_consumer(OrderedConfig {
            name: Some(name.to_string()),
            filter_subject: filter.to_string(),
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while out.len() < count {
        match tokio::time::timeout_at(deadline, messages.next()).await {
            Ok(Some(Ok(m))) => {
                let pending = m.info().map_or(1, |i| i.pending);
                out.push((m.subject.to_string(), m.payload.to_vec()));
                if pending == 0 {
                    break;
                }
            }
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(None) | Err(_) => break,
        }
    }
    Ok(out)
}

async fn texts(keys: &Keyring, messages: &[(String, Vec<u8>)]) -> Vec<String> {
    let mut out = Vec::new();
    for (_, p) in messages {
        // Texts are sealed in the log (README, "Retention, legal hold and
        // erasure"): what a replay user receives holds none in the clear;
        // the platform's keys open them.
        assert!(
            !p.windows(6).any(|w| w == b" says " || w == b"secret"),
            "a text in the clear"
        );
        let env = switchboard_streams::open_payload(keys, p).await;
        if let Ok(Some(Envelope {
            body: Some(Body::MessagePosted(m)),
            ..
        })) = env
        {
            assert!(m.sealed.is_none(), "the platform's keys open it");
            out.push(m.text);
        }
    }
    out
}

/// The content keys of the embedded server's log (the platform's
/// credentials).
async fn platform_keys(server: &Server, stream: &str) -> Keyring {
    let (url, password) = server.embedded_nats();
    let platform = Conn::open(
        &url.replace("nats://", &format!("nats://switchboard:{password}@")),
        None,
    )
    .await;
    let js = jetstream::new(platform.client.clone());
    Keyring::open_bucket(&js, stream, 1, false, 86_400_000)
        .await
        .expect("the key stream")
}

/// Two workspaces with a post each; returns (A, B, B's admin token, B's
/// channel).
async fn two_workspaces(api: &Api) -> (String, String, String, String) {
    let a = api.workspace("alpha").await;
    let b = api.workspace("beta").await;
    let (_, ada) = api.user(&a, "ada", "admin").await;
    let (_, bea) = api.user(&b, "bea", "admin").await;
    let ca = api.channel(&ada, "general", false).await;
    let cb = api.channel(&bea, "general", false).await;
    api.send(&ada, &ca, "alpha says hi").await.expect(201);
    api.send(&bea, &cb, "beta secret").await.expect(201);
    (a, b, bea, cb)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replay_credential_reads_its_workspace_and_nothing_else() {
    let server = Server::start_embedded(&[]);
    let api = server.api();
    let (a, b, bea, cb) = two_workspaces(&api).await;
    let creds = replay_credentials(&server, &["--workspace", &a]);
    let (url, stream) = (
        creds["url"].as_str().expect("url"),
        creds["stream"].as_str().expect("stream"),
    );
    assert_eq!(creds["filter"], format!("sb.{a}.>"));
    assert!(url.starts_with("nats://replay_"), "{url}");
    let (platform_url, platform_pw) = server.embedded_nats();
    let platform = Conn::open(
        &platform_url.replace("nats://", &format!("nats://switchboard:{platform_pw}@")),
        None,
    )
    .await;
    let pjs = jetstream::new(platform.client.clone());
    let before = pjs
        .get_stream(stream)
        .await
        .expect("stream")
        .info()
        .await
        .expect("info")
        .state
        .messages;

    let replay = Conn::open(url, creds["inbox_prefix"].as_str()).await;
    let js = jetstream::new(replay.client.clone());

    // A's events, from the start, through an ordered consumer.
    let filter = format!("sb.{a}.>");
    let mine = read_all(&js, stream, "r1", &filter, 1000)
        .await
        .expect("replay of A");
    assert!(mine.len() >= 4, "A's events: {}", mine.len());
    assert!(mine.iter().all(|(s, _)| s.starts_with(&format!("sb.{a}."))));
    let keys = platform_keys(&server, stream).await;
    assert_eq!(texts(&keys, &mine).await, ["alpha says hi"]);
    // The replay stream (in the replay account) is a copy: the same
    // payloads, in the same order, as the log's `sb.<A>.>`, and the
    // writer's headers kept (`Sb-Channel-Seq`), plus the log position
    // (`Nats-Stream-Source`: its second field is the log's sequence).
    let logged = read_all(&pjs, stream, "plat1", &filter, 1000)
        .await
        .expect("the platform's replay of A");
    assert_eq!(mine, logged, "the replay stream differs from the log");
    let first = js
        .get_stream_no_info(stream)
        .await
        .expect("stream")
        .create_consumer(OrderedConfig {
            name: Some("h1".into()),
            filter_subject: filter.clone(),
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .expect("consumer")
        .messages()
        .await
        .expect("messages")
        .next()
        .await
        .expect("a message")
        .expect("a message");
    let headers = first.headers.clone().expect("headers");
    assert_eq!(headers.get("Sb-Channel-Seq").map(|v| v.as_str()), Some("1"));
    assert!(headers.get("Sb-Fence-Seq").is_some(), "{headers:?}");
    assert!(headers.get("Nats-Msg-Id").is_some(), "{headers:?}");
    let source = headers
        .get("Nats-Stream-Source")
        .expect("Nats-Stream-Source")
        .as_str()
        .to_string();
    assert!(source.starts_with(stream), "{source}");
    // Stream info of its own stream: only A's events are in it.
    let own = js
        .get_stream(stream)
        .await
        .expect("stream info of its own stream")
        .info()
        .await
        .expect("info")
        .clone();
    assert_eq!(own.state.messages, mine.len() as u64);

    // B's subjects: refused, through the API subject and through a body
    // whose filter differs from the subject's.
    let other = read_all(&js, stream, "r2", &format!("sb.{b}.>"), 1).await;
    assert!(other.is_err(), "B's events were readable: {other:?}");
    assert!(
        replay
            .refused(&format!("$JS.API.CONSUMER.CREATE.{stream}.r2.sb.{b}.>"))
            .await
    );
    let smuggled = replay
        .client
        .request(
            format!("$JS.API.CONSUMER.CREATE.{stream}.r3.sb.{a}.>"),
            json!({"stream_name": stream, "config": {"name": "r3",
                "filter_subject": format!("sb.{b}.>"), "deliver_policy": "all",
                "ack_policy": "none", "mem_storage": true}})
            .to_string()
            .into(),
        )
        .await
        .expect("an answer");
    let answer: Value = serde_json::from_slice(&smuggled.payload).expect("JSON");
    assert!(answer["error"].is_object(), "{answer}");
    // A push consumer of A's events delivering to another workspace's
    // real-time subject: the server accepts it (it does not check a deliver
    // subject against permissions), but in the replay account, where no
    // platform subject is; and the gateway takes only what the stream
    // republished anyway. B's subscribers never see A's events.
    let mut ws_b = Ws::connect(&server.base, &bea).await;
    ws_b.subscribe_live(&cb, 1).await;
    let target = format!("dlv.sb.{b}.ch.{cb}");
    let pushed = replay
        .client
        .request(
            format!("$JS.API.CONSUMER.CREATE.{stream}.p1.sb.{a}.>"),
            json!({"stream_name": stream, "config": {"name": "p1",
                "filter_subject": format!("sb.{a}.>"), "deliver_policy": "all",
                "deliver_subject": target, "ack_policy": "none", "mem_storage": true}})
            .to_string()
            .into(),
        )
        .await
        .expect("an answer");
    let answer: Value = serde_json::from_slice(&pushed.payload).expect("JSON");
    assert!(
        answer["error"].is_null(),
        "the server now refuses it: {answer}"
    );
    api.send(&bea, &cb, "beta two").await.expect(201);
    let mut frames = ws_b
        .frames_until(Duration::from_secs(5), |f| {
            f.to_string().contains("beta two")
        })
        .await;
    while let Some(f) = ws_b.frame(Duration::from_millis(700)).await {
        frames.push(f);
    }
    let seen = serde_json::to_string(&frames).expect("json");
    assert!(seen.contains("beta two"), "{seen}");
    assert!(
        !seen.contains("alpha says hi"),
        "A's event reached B: {seen}"
    );
    // Nor can a request's reply-to, nor a push delivery, put a frame on
    // B's sockets through the `rt.…` routers (review finding: an API
    // answer aimed at rt.<B>.notify.<U> or rt.<B>.typing.<C> became a
    // frame): only the gateways' own JSON frames are relayed.
    let me_b = api.get("/v1/me", &bea).await.expect(200);
    let bea_id = me_b["user"]["id"].as_str().expect("id").to_string();
    for reply in [
        format!("rt.{b}.notify.{bea_id}"),
        format!("rt.{b}.typing.{cb}"),
        format!("rt.{b}.presence.{cb}"),
    ] {
        replay
            .client
            .publish_with_reply(
                format!("$JS.API.CONSUMER.INFO.{stream}.p1"),
                reply,
                "".into(),
            )
            .await
            .expect("publish");
    }
    replay.client.flush().await.expect("flush");
    let mut after = Vec::new();
    while let Some(f) = ws_b.frame(Duration::from_millis(1_000)).await {
        after.push(f);
    }
    let after = serde_json::to_string(&after).expect("json");
    assert!(
        !after.contains("io.nats.jetstream"),
        "a JetStream answer reached B's socket: {after}"
    );
    // Unfiltered consumers, durable consumers by the old subject, lists,
    // and the platform's API its stream's source reaches: refused.
    for subject in [
        format!("$JS.API.CONSUMER.CREATE.{stream}"),
        format!("$JS.API.CONSUMER.DURABLE.CREATE.{stream}.d1"),
        "$JS.API.STREAM.LIST".to_string(),
        format!("$JS.API.CONSUMER.LIST.{stream}"),
        format!("$JS.SBLOG.API.CONSUMER.CREATE.{stream}.x.sb.{a}.>"),
    ] {
        replay.request_refused(&subject, json!({"seq": 1})).await;
    }

    // No publish anywhere on sb.>, its own workspace included.
    for subject in [format!("sb.{a}.ch.x"), format!("sb.{b}.ws")] {
        replay
            .client
            .publish(subject.clone(), "forged".into())
            .await
            .expect("sent");
        replay.client.flush().await.expect("flush");
        assert!(replay.refused(&subject).await, "publish to {subject}");
    }

    // No delete, purge or stream administration.
    for subject in [
        format!("$JS.API.STREAM.PURGE.{stream}"),
        format!("$JS.API.STREAM.MSG.DELETE.{stream}"),
        format!("$JS.API.STREAM.DELETE.{stream}"),
        format!("$JS.API.STREAM.UPDATE.{stream}"),
        "$JS.API.STREAM.CREATE.X".to_string(),
    ] {
        replay.request_refused(&subject, json!({"seq": 1})).await;
    }

    // No KV: neither through the API nor by subscribing.
    for bucket in ["sb_presence", "sb_passwords", "sb_token_use", "sb_push"] {
        replay
            .request_refused(
                &format!("$JS.API.DIRECT.GET.KV_{bucket}"),
                json!({"seq": 1}),
            )
            .await;
        replay
            .request_refused(&format!("$JS.API.STREAM.INFO.KV_{bucket}"), json!({}))
            .await;
    }
    for subject in ["$KV.>", "sb.>", "dlv.>", "_INBOX.>", ">"] {
        let _sub = replay
            .client
            .subscribe(subject.to_string())
            .await
            .expect("sent");
        replay.client.flush().await.expect("flush");
        assert!(replay.refused(subject).await, "subscribe to {subject}");
    }

    // Nothing was added or removed.
    let mut log_stream = pjs.get_stream(stream).await.expect("stream");
    let after = log_stream.info().await.expect("info").clone();
    assert_eq!(
        after.state.messages,
        before + 1,
        "only B's \"beta two\" was added"
    );
    assert!(after.config.deny_delete && after.config.deny_purge);

    // Revoked: the connection is closed and the credential refused.
    let user = creds["user"].as_str().expect("user");
    let listed = replay_credentials(&server, &["--list"]);
    assert!(listed
        .as_array()
        .expect("list")
        .iter()
        .any(|u| u["user"] == user));
    // A consumer the holder made to outlive the credential (long inactive
    // threshold, a name it knows): revoking removes it, so another
    // credential of the same holder cannot pull A's events on by name
    // (review finding).
    let replay_stream = js.get_stream_no_info(stream).await.expect("stream handle");
    replay_stream
        .create_consumer(jetstream::consumer::pull::Config {
            name: Some("keepme".into()),
            filter_subject: filter.clone(),
            inactive_threshold: Duration::from_secs(3_600),
            ..Default::default()
        })
        .await
        .expect("a consumer of its own workspace");
    replay_stream
        .consumer_info("keepme")
        .await
        .expect("it exists");
    // The last credential of A: its replay stream and account go with it.
    let revoked = replay_credentials(&server, &["--revoke", user]);
    assert_eq!(revoked["applied_to_running_server"], true);
    assert_eq!(revoked["replay_stream_deleted"], true, "{revoked}");
    assert!(
        revoked["consumers_deleted"].as_u64() >= Some(1),
        "{revoked}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while replay.client.connection_state() == async_nats::connection::State::Connected {
        assert!(Instant::now() < deadline, "revoked connection still open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (bare, creds) = switchboard_streams::split_userinfo(url);
    let (u, p) = creds.expect("creds");
    let again = ConnectOptions::with_user_and_password(u, p)
        .connect(bare)
        .await;
    assert!(again.is_err(), "a revoked credential connected");
    // A new credential of A gets a fresh replay stream: A's events again,
    // nothing the revoked user left.
    let fresh = replay_credentials(&server, &["--workspace", &a]);
    assert_eq!(fresh["replay_stream_caught_up"], true, "{fresh}");
    let replay = Conn::open(
        fresh["url"].as_str().expect("url"),
        fresh["inbox_prefix"].as_str(),
    )
    .await;
    let js = jetstream::new(replay.client.clone());
    let again = read_all(&js, stream, "r9", &filter, 1000)
        .await
        .expect("replay of A");
    assert_eq!(texts(&keys, &again).await, ["alpha says hi"]);
    assert!(
        js.get_stream_no_info(stream)
            .await
            .expect("stream handle")
            .consumer_info("keepme")
            .await
            .is_err(),
        "the revoked user's consumer outlived it"
    );
}

/// Regression (issue 10, "tried as a new user"): anyone on the address
/// could connect to serve's nats-server and read every tenant, append
/// forged envelopes, delete and purge. Now it needs credentials, and even
/// the platform's own may not delete or purge the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serves_nats_server_refuses_anonymous_connections_and_nobody_purges_the_log() {
    let server = Server::start_embedded(&[]);
    let api = server.api();
    two_workspaces(&api).await;
    let (url, password) = server.embedded_nats();
    let anonymous = async_nats::connect(url.as_str()).await;
    assert!(anonymous.is_err(), "anonymous connection accepted");
    let guessed = ConnectOptions::with_user_and_password("switchboard".into(), "guess".into())
        .connect(url.as_str())
        .await;
    assert!(guessed.is_err(), "a wrong password was accepted");
    // The password file is the owner's only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["platform.password", "nats-server.conf"] {
            let mode = std::fs::metadata(server.data.join("nats").join(f))
                .expect("file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{f} is readable by others: {mode:o}");
        }
    }
    let platform = Conn::open(
        &url.replace("nats://", &format!("nats://switchboard:{password}@")),
        None,
    )
    .await;
    for subject in [
        "$JS.API.STREAM.PURGE.SB",
        "$JS.API.STREAM.MSG.DELETE.SB",
        "$JS.API.STREAM.DELETE.SB",
    ] {
        platform.request_refused(subject, json!({"seq": 1})).await;
    }
    // The stream itself denies them too (for a server the operator runs).
    let info = jetstream::new(platform.client.clone())
        .get_stream("SB")
        .await
        .expect("stream")
        .info()
        .await
        .expect("info")
        .clone();
    assert!(info.config.deny_delete && info.config.deny_purge);
    // The platform still works.
    let (_, ada) = api.user(&api.workspace("gamma").await, "g", "admin").await;
    let ch = api.channel(&ada, "general", false).await;
    api.send(&ada, &ch, "still fine").await.expect(201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn token_verifiers_are_in_no_message_on_sb_and_tokens_still_work() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let ws = api.workspace("acme").await;
    let (_, ada) = api.user(&ws, "ada", "admin").await;
    let (_, bob) = api.user(&ws, "bob", "member").await;
    let issued = api
        .post("/v1/tokens", &bob, json!({"name": "laptop"}))
        .await
        .expect(201);
    let laptop = issued["token"].as_str().expect("token").to_string();
    api.get("/v1/me", &laptop).await.expect(200);
    api.get("/v1/me", &ada).await.expect(200);
    let hashes: Vec<String> = [&ada, &bob, &laptop]
        .iter()
        .map(|t| switchboard_core::secret::hex(&Sha256::digest(t.as_bytes())))
        .collect();

    let client = async_nats::connect(nats.url()).await.expect("connect");
    let js = jetstream::new(client);
    let all = read_all(&js, "SB", "all", "sb.>", 1000)
        .await
        .expect("replay");
    assert!(all.len() >= 4, "{}", all.len());
    for (subject, payload) in &all {
        for h in &hashes {
            assert!(
                !payload.windows(h.len()).any(|w| w == h.as_bytes()),
                "a token hash in a message on {subject}"
            );
        }
    }
    // They are on sbv.<ws>.tokens, which replay credentials cannot read.
    let verifiers = read_all(&js, "SB", "v", "sbv.>", 3).await.expect("replay");
    assert_eq!(verifiers.len(), 3);
    // And rebuild still reproduces the live read models.
    let (ok, out, err) = run_cli(&["rebuild"], &server.data, &nats.url());
    assert!(ok, "rebuild failed: {out}\n{err}");
    assert_eq!(
        out.matches(" match ").count(),
        7,
        "every read model matches: {out}"
    );
}

/// A log stream created before this change (no `sbv.>`, deletes and purges
/// allowed) is upgraded in place at start, and `admin` reaches a running
/// embedded server with the platform's credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_old_log_stream_is_upgraded_to_deny_delete_and_purge() {
    let nats = Nats::start();
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let js = jetstream::new(client);
    js.create_stream(jetstream::stream::Config {
        name: "SB".into(),
        subjects: vec!["sb.>".into()],
        ..Default::default()
    })
    .await
    .expect("old stream");
    let server = Server::start(&nats);
    let ws = server.api().workspace("acme").await;
    server.api().user(&ws, "ada", "admin").await;
    let info = js
        .get_stream("SB")
        .await
        .expect("stream")
        .info()
        .await
        .expect("info")
        .clone();
    assert!(info.config.deny_delete && info.config.deny_purge);
    assert!(info.config.subjects.contains(&"sbv.>".to_string()));
    assert!(js
        .get_stream("SB")
        .await
        .expect("stream")
        .purge()
        .await
        .is_err());

    let embedded = Server::start_embedded(&[]);
    let out = Command::new(bin())
        .args(["admin", "create-workspace", "--name", "beta", "--data"])
        .arg(&embedded.data)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run switchboard");
    assert!(
        out.status.success(),
        "admin on a running embedded server: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every stream of the platform's account: name → (messages, last seq).
async fn platform_streams(
    js: &jetstream::Context,
) -> std::collections::BTreeMap<String, (u64, u64)> {
    let mut names = js.stream_names();
    let mut out = std::collections::BTreeMap::new();
    while let Some(name) = names.next().await {
        let name = name.expect("stream name");
        let info = js
            .get_stream(&name)
            .await
            .expect("stream")
            .info()
            .await
            .expect("info")
            .clone();
        out.insert(name, (info.state.messages, info.state.last_sequence));
    }
    out
}

/// Regression (HIGH review finding, issue 10 item 2): nats-server checks
/// neither a push consumer's deliver subject nor a request's reply subject
/// against the creator's permissions, so a replay user of workspace A that
/// lived in the platform's account could make the server publish into any
/// subject of it: into KV buckets and into B's log subjects, which streams
/// then store. Replay users now live in an account of their own: whatever
/// they make the server publish lands there. The platform's streams (the
/// log, every KV bucket, the object store) and B's history are unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replay_credential_cannot_make_the_server_publish_into_the_platforms_subjects() {
    let server = Server::start_embedded(&[]);
    let api = server.api();
    let (a, b, bea, cb) = two_workspaces(&api).await;
    let history = |api: &Api| {
        let (bea, cb) = (bea.clone(), cb.clone());
        let api = api.clone();
        async move {
            api.get(&format!("/v1/channels/{cb}/messages"), &bea)
                .await
                .expect(200)
        }
    };
    let history_before = history(&api).await;
    let creds = replay_credentials(&server, &["--workspace", &a]);
    let (url, stream) = (
        creds["url"].as_str().expect("url"),
        creds["stream"].as_str().expect("stream"),
    );
    let (platform_url, platform_pw) = server.embedded_nats();
    let platform = Conn::open(
        &platform_url.replace("nats://", &format!("nats://switchboard:{platform_pw}@")),
        None,
    )
    .await;
    let pjs = jetstream::new(platform.client.clone());
    let before = platform_streams(&pjs).await;
    assert!(before.contains_key(stream), "{before:?}");
    let mut targets = vec![format!("sb.{b}.ch.{cb}"), format!("sbv.{b}.tokens")];
    targets.extend(
        before
            .keys()
            .filter_map(|s| s.strip_prefix("KV_"))
            .map(|bucket| format!("$KV.{bucket}.injected")),
    );
    assert!(targets.len() > 2, "no KV bucket to aim at: {before:?}");
    // A literal subscriber on each target (any platform component, or an
    // operator's `nats sub`) makes a push consumer aimed at it deliver.
    let mut subs = Vec::new();
    for t in &targets {
        subs.push(platform.client.subscribe(t.clone()).await.expect("sub"));
    }
    platform.client.flush().await.expect("flush");

    let log_consumers = || async {
        let mut names: Vec<String> = pjs
            .get_stream(stream)
            .await
            .expect("log")
            .consumer_names()
            .map(|n| n.expect("name"))
            .collect()
            .await;
        names.sort();
        names
    };
    let consumers_before = log_consumers().await;
    let replay = Conn::open(url, creds["inbox_prefix"].as_str()).await;
    // Through the import its stream's source uses: a consumer of its own
    // whose info (a JSON body shaped like a create request, with a
    // platform deliver subject) is answered into the platform's
    // consumer-create API. nats-server does not route an API answer into
    // an API request (a service-import cycle), and the user may not
    // publish there itself.
    let evil = json!({"name": "evil", "filter_subject": format!("sb.{a}.ws"),
        "deliver_policy": "all", "ack_policy": "none",
        "deliver_subject": format!("sb.{b}.ch.{cb}")});
    let answer = replay
        .client
        .request(
            format!("$JS.API.CONSUMER.CREATE.{stream}.evil.sb.{a}.ws"),
            json!({"stream_name": stream, "config": evil})
                .to_string()
                .into(),
        )
        .await
        .expect("an answer");
    let answer: Value = serde_json::from_slice(&answer.payload).expect("JSON");
    assert!(answer["error"].is_null(), "{answer}");
    replay
        .client
        .publish_with_reply(
            format!("$JS.API.CONSUMER.INFO.{stream}.evil"),
            format!("$JS.SBLOG.API.CONSUMER.CREATE.{stream}.evil.sb.{a}.ws"),
            "".into(),
        )
        .await
        .expect("publish");
    replay
        .client
        .publish(
            format!("$JS.SBLOG.API.CONSUMER.CREATE.{stream}.evil.sb.{a}.ws"),
            json!({"stream_name": stream, "config": evil})
                .to_string()
                .into(),
        )
        .await
        .expect("publish");
    replay.client.flush().await.expect("flush");
    assert!(
        replay
            .refused(&format!("$JS.SBLOG.API.CONSUMER.CREATE.{stream}.evil"))
            .await
    );
    for (i, target) in targets.iter().enumerate() {
        // A push consumer of A's events delivering into the target.
        let answer = replay
            .client
            .request(
                format!("$JS.API.CONSUMER.CREATE.{stream}.inj{i}.sb.{a}.>"),
                json!({"stream_name": stream, "config": {"name": format!("inj{i}"),
                    "filter_subject": format!("sb.{a}.>"), "deliver_policy": "all",
                    "deliver_subject": target, "ack_policy": "none",
                    "idle_heartbeat": 100_000_000, "flow_control": true,
                    "mem_storage": true}})
                .to_string()
                .into(),
            )
            .await;
        // Refused or accepted (then in the replay account): either is fine.
        let _ = answer;
        // A request whose answer goes to the target.
        replay
            .client
            .publish_with_reply(
                format!("$JS.API.CONSUMER.INFO.{stream}.inj{i}"),
                target.clone(),
                "".into(),
            )
            .await
            .expect("publish");
        replay
            .client
            .publish_with_reply("$JS.API.INFO".to_string(), target.clone(), "".into())
            .await
            .expect("publish");
    }
    replay.client.flush().await.expect("flush");

    // Bounded: nothing appears within 3 s (before the fix the replies were
    // stored at once and the deliveries within a heartbeat).
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        let now = platform_streams(&pjs).await;
        assert_eq!(
            now, before,
            "a replay credential made the server publish into the platform's streams"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for mut sub in subs {
        let got = tokio::time::timeout(Duration::from_millis(100), sub.next()).await;
        assert!(
            got.is_err(),
            "the platform's subscriber on {} got {:?}",
            sub_subject(&got),
            got
        );
    }
    assert_eq!(history(&api).await, history_before, "B's history changed");
    assert_eq!(
        log_consumers().await,
        consumers_before,
        "a consumer was created on the log"
    );
}

fn sub_subject(got: &Result<Option<async_nats::Message>, tokio::time::error::Elapsed>) -> String {
    match got {
        Ok(Some(m)) => m.subject.to_string(),
        _ => String::new(),
    }
}

/// A credential issued while `serve` is stopped takes effect at the next
/// start, which creates its replay stream (it catches up on its own); an
/// existing replay stream keeps following the log across the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_credential_issued_while_serve_is_stopped_replays_after_the_next_start() {
    let mut server = Server::start_embedded(&[]);
    let api = server.api();
    let (a, b, bea, cb) = two_workspaces(&api).await;
    let first = replay_credentials(&server, &["--workspace", &b]);
    assert_eq!(first["replay_stream_caught_up"], true, "{first}");
    assert!(server.terminate(Duration::from_secs(20)).is_some());
    let creds = replay_credentials(&server, &["--workspace", &a]);
    assert_eq!(creds["applied_to_running_server"], false, "{creds}");
    assert!(creds["replay_stream_events"].is_null(), "{creds}");
    server.restart();
    let api = server.api();
    api.send(&bea, &cb, "beta after restart").await.expect(201);
    let stream = creds["stream"].as_str().expect("stream");
    let keys = platform_keys(&server, stream).await;
    let read = |c: &Value, ws: &str, want: &'static str| {
        let (url, prefix) = (
            c["url"].as_str().expect("url").to_string(),
            c["inbox_prefix"].as_str().expect("prefix").to_string(),
        );
        let filter = format!("sb.{ws}.>");
        let keys = keys.clone();
        async move {
            let replay = Conn::open(&url, Some(&prefix)).await;
            let js = jetstream::new(replay.client.clone());
            let deadline = Instant::now() + Duration::from_secs(15);
            for i in 0.. {
                let got = match read_all(&js, stream, &format!("w{i}"), &filter, 1000).await {
                    Ok(m) => texts(&keys, &m).await,
                    Err(_) => Vec::new(),
                };
                if got.iter().any(|t| t == want) {
                    return got;
                }
                assert!(Instant::now() < deadline, "{want} not replayed: {got:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            unreachable!()
        }
    };
    assert_eq!(read(&creds, &a, "alpha says hi").await, ["alpha says hi"]);
    assert_eq!(
        read(&first, &b, "beta after restart").await,
        ["beta secret", "beta after restart"]
    );
}
