//! Retention, legal holds and the right to erasure (issue 10 item 7):
//! message texts are sealed in the log under per-slot keys; erasing
//! destroys the keys (secure erase in the key bucket), announces the
//! erasure in the log, and every read model forgets the text. The text is
//! then nowhere under the data directories, the NATS store included, and
//! `rebuild`'s checksums still equal the live models'.

use crate::harness::{run_cli, Api, Nats, Server};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push(p.display().to_string());
                }
            }
        }
    }
    found
}

fn unique(word: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{word}{n}")
}

async fn message(api: &Api, token: &str, channel: &str, id: &str) -> Value {
    let page = api
        .get(&format!("/v1/channels/{channel}/messages?limit=100"), token)
        .await
        .expect(200);
    page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| m["id"] == id)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Waits (bounded) until `check` holds for the message.
async fn wait_message(
    api: &Api,
    token: &str,
    channel: &str,
    id: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let m = message(api, token, channel, id).await;
        if check(&m) || Instant::now() > deadline {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn erased(m: &Value) -> bool {
    m["erased"] == true && m["text"] == ""
}

/// The content keys as stored: (subject, raw value).
async fn stored_keys(nats: &Nats) -> Vec<(String, Vec<u8>)> {
    use futures_util::TryStreamExt;
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream("SB_keys").await.expect("the key stream");
    let subjects: Vec<(String, usize)> = stream
        .info_with_subjects("sbkeys.SB.>")
        .await
        .expect("subjects")
        .try_collect()
        .await
        .expect("subjects");
    let mut out = Vec::new();
    for (subject, _) in subjects {
        let m = stream
            .direct_get_last_for_subject(subject.clone())
            .await
            .expect("a key");
        out.push((subject, m.payload.to_vec()));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn erasing_a_user_removes_the_text_from_every_file_and_keeps_the_log_verifiable() {
    let mut nats = Nats::start();
    let mut server = Server::start_with(
        &nats,
        &["--retention-interval", "0", "--checkpoint-interval", "0"],
    );
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "admin").await;
    let (bob_id, bob) = api.user(&ws, "bob", "member").await;
    let general = api.channel(&ada, "general", false).await;
    api.post(&format!("/v1/channels/{general}/join"), &bob, json!({}))
        .await
        .expect(200);
    let gone = unique("zebracorn");
    let kept = unique("keepsake");
    let edited = unique("okapiword");
    let attached = unique("attachedbytes");
    let file = reqwest::Client::new()
        .post(format!(
            "{}/v1/files?name=notes.txt&channel_id={general}",
            api.base
        ))
        .bearer_auth(&bob)
        .header("content-type", "text/plain")
        .body(attached.clone().into_bytes())
        .send()
        .await
        .expect("upload");
    assert_eq!(file.status().as_u16(), 201);
    let file: Value = file.json().await.expect("json");
    let file_id = file["id"].as_str().expect("file id").to_string();
    let bobs = api
        .post(
            "/v1/messages",
            &bob,
            json!({"channel_id": general, "text": format!("{gone} is my secret"),
                   "attachment_ids": [file_id]}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .expect("id")
        .to_string();
    api.patch(
        &format!("/v1/messages/{bobs}"),
        &bob,
        json!({"text": format!("{gone} {edited} edited")}),
    )
    .await
    .expect(200);
    let adas = api
        .send(&ada, &general, &format!("{kept} stays"))
        .await
        .expect(201)["id"]
        .as_str()
        .expect("id")
        .to_string();
    let m = wait_message(&api, &ada, &general, &bobs, |m| m["edited_ts"].is_string()).await;
    assert!(
        m["text"].as_str().is_some_and(|t| t.contains(&edited)),
        "{m}"
    );

    // The attachment's bytes are in the object store (the control).
    assert!(!files_containing(nats.store_dir(), attached.as_bytes()).is_empty());
    // Sealed: the text is in no file of the NATS store, even now.
    assert_eq!(
        files_containing(nats.store_dir(), gone.as_bytes()),
        Vec::<String>::new()
    );
    assert_eq!(
        files_containing(nats.store_dir(), kept.as_bytes()),
        Vec::<String>::new()
    );
    // The read models have it (the control for the scan below).
    assert!(!files_containing(&server.data, gone.as_bytes()).is_empty());
    let keys = stored_keys(&nats).await;
    let bob_keys: Vec<&(String, Vec<u8>)> =
        keys.iter().filter(|(n, _)| n.contains(&bob_id)).collect();
    assert_eq!(bob_keys.len(), 1, "one slot of bob's: {keys:?}");
    assert!(!files_containing(nats.store_dir(), &bob_keys[0].1).is_empty());

    // An export made before the erasure holds the text in the clear.
    let job = api
        .post("/v1/admin/exports", &ada, json!({}))
        .await
        .expect(202);
    let job = job["id"].as_str().expect("job id").to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let j = api
            .get(&format!("/v1/admin/exports/{job}"), &ada)
            .await
            .expect(200);
        if j["status"] == "done" {
            break;
        }
        assert!(Instant::now() < deadline, "export not done: {j}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!files_containing(&server.data.join("exports"), gone.as_bytes()).is_empty());

    // Erasure needs an admin, a deactivated user, and no hold.
    api.post("/v1/admin/erasures", &bob, json!({"user_id": bob_id}))
        .await
        .expect_err(403, "forbidden");
    api.post("/v1/admin/erasures", &ada, json!({"user_id": bob_id}))
        .await
        .expect_err(409, "conflict");
    api.post(&format!("/v1/users/{bob_id}/deactivate"), &ada, json!({}))
        .await
        .expect(200);
    let hold = api
        .post(
            "/v1/admin/legal-holds",
            &ada,
            json!({"scope": "user", "target_id": bob_id, "reason": "matter 17"}),
        )
        .await
        .expect(201);
    api.post("/v1/admin/erasures", &ada, json!({"user_id": bob_id}))
        .await
        .expect_err(409, "conflict");
    api.delete(
        &format!("/v1/admin/legal-holds/{}", hold["id"].as_str().expect("id")),
        &ada,
    )
    .await
    .expect(200);
    let report = api
        .post("/v1/admin/erasures", &ada, json!({"user_id": bob_id}))
        .await
        .expect(200);
    assert_eq!(report["erased_channels"], json!([general]), "{report}");
    assert_eq!(report["keys_destroyed"], 1);

    let m = wait_message(&api, &ada, &general, &bobs, erased).await;
    assert!(erased(&m), "bob's message is erased: {m}");
    // The export is withdrawn: its files are gone, the job says why.
    let j = api
        .get(&format!("/v1/admin/exports/{job}"), &ada)
        .await
        .expect(200);
    assert_eq!(j["status"], "failed", "{j}");
    assert!(j.to_string().contains("withdrawn"), "{j}");
    let a = message(&api, &ada, &general, &adas).await;
    assert_eq!(a["text"], format!("{kept} stays"));
    // Search finds nothing of it.
    let hits = api
        .get(&format!("/v1/search?q={gone}"), &ada)
        .await
        .expect(200);
    assert_eq!(hits["results"], json!([]), "{hits}");
    // The erasure is announced in the channel's log.
    let events = api.all_events(&ada, &general).await;
    let announced = events
        .iter()
        .find(|e| e["type"] == "content_erased")
        .unwrap_or_else(|| panic!("a content_erased event: {events:?}"));
    assert!(announced.to_string().contains(&bob_id), "{announced}");
    // A second run finds nothing left.
    let again = api
        .post("/v1/admin/erasures", &ada, json!({"user_id": bob_id}))
        .await
        .expect(200);
    assert_eq!(again["erased_channels"], json!([]));

    // The attachment is reaped with a secure erase of its chunks.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !files_containing(nats.store_dir(), attached.as_bytes()).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the erased message's attachment is still in the NATS store"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Gone from disk, the NATS store included (after a restart of both).
    server.terminate(Duration::from_secs(20));
    nats.restart();
    for (what, dir) in [
        ("nats store", nats.store_dir()),
        ("data", server.data.as_path()),
    ] {
        assert_eq!(
            files_containing(dir, gone.as_bytes()),
            Vec::<String>::new(),
            "erased text in the {what}"
        );
        assert_eq!(
            files_containing(dir, edited.as_bytes()),
            Vec::<String>::new(),
            "erased edit in the {what}"
        );
        assert_eq!(
            files_containing(dir, attached.as_bytes()),
            Vec::<String>::new(),
            "the erased message's attachment in the {what}"
        );
        assert_eq!(
            files_containing(dir, &bob_keys[0].1),
            Vec::<String>::new(),
            "the destroyed key in the {what}"
        );
    }
    assert!(!files_containing(&server.data, kept.as_bytes()).is_empty());

    // The log still verifies, and a rebuild equals the live models.
    let (ok, out, err) = run_cli(
        &["verify-log", "--workspace", &ws],
        &server.data,
        &nats.url(),
    );
    assert!(ok, "verify-log: {out}\n{err}");
    let (ok, out, err) = run_cli(&["rebuild"], &server.data, &nats.url());
    assert!(ok, "rebuild failed: {out}\n{err}");
    assert!(
        !out.contains("DIFFER") && out.matches(" match ").count() >= 7,
        "{out}"
    );
    server.restart();
    let m = message(&server.api(), &ada, &general, &bobs).await;
    assert!(erased(&m), "still erased after a restart: {m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retention_erases_expired_slots_unless_a_hold_blocks_it() {
    let nats = Nats::start();
    let mut server = Server::start_with(
        &nats,
        &[
            "--retention-interval",
            "0",
            "--key-period-secs",
            "1",
            "--checkpoint-interval",
            "0",
        ],
    );
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "admin").await;
    let (_, bob) = api.user(&ws, "bob", "member").await;
    let general = api.channel(&ada, "general", false).await;
    let other = api.channel(&ada, "other", false).await;
    // Bad input changes nothing.
    for body in [
        json!({"days": 1, "max_age_secs": 5}),
        json!({}),
        json!({"max_age_secs": 0}),
        json!({"days": 100000}),
        json!({"days": 1, "colour": "red"}),
    ] {
        let r = api.put("/v1/admin/retention", &ada, body.clone()).await;
        // 400 for wrong values, 422 for a wrong shape.
        assert!(
            matches!(r.status, 400 | 422) && r.code() == "invalid_request",
            "{body}: {} {}",
            r.status,
            r.body
        );
    }
    api.put("/v1/admin/retention", &bob, json!({"days": 1}))
        .await
        .expect_err(403, "forbidden");
    let none = api.get("/v1/admin/retention", &ada).await.expect(200);
    assert_eq!(none["policies"], json!([]), "bad input changed nothing");
    api.put(
        "/v1/admin/retention",
        &ada,
        json!({"channel_id": "Cnosuch", "days": 1}),
    )
    .await
    .expect_err(404, "not_found");
    let set = api
        .put(
            "/v1/admin/retention",
            &ada,
            json!({"channel_id": general, "max_age_secs": 2}),
        )
        .await
        .expect(200);
    assert_eq!(set["policies"][0]["max_age_secs"], 2, "{set}");

    let old = unique("oldword");
    let elsewhere = unique("elsewhere");
    let id = api.send(&ada, &general, &old).await.expect(201)["id"]
        .as_str()
        .expect("id")
        .to_string();
    api.send(&ada, &other, &elsewhere).await.expect(201);
    let hold = api
        .post(
            "/v1/admin/legal-holds",
            &ada,
            json!({"scope": "channel", "target_id": general, "reason": "audit"}),
        )
        .await
        .expect(201);
    // A hold blocks deletes too.
    api.delete(&format!("/v1/messages/{id}"), &ada)
        .await
        .expect_err(409, "conflict");
    tokio::time::sleep(Duration::from_millis(4_000)).await;
    let run = api
        .post("/v1/admin/retention/run", &ada, json!({}))
        .await
        .expect(200);
    assert_eq!(run["erased_channels"], json!([]), "{run}");
    assert_eq!(run["held_channels"], json!([general]), "{run}");
    assert_eq!(message(&api, &ada, &general, &id).await["text"], old);

    api.delete(
        &format!("/v1/admin/legal-holds/{}", hold["id"].as_str().expect("id")),
        &ada,
    )
    .await
    .expect(200);
    let run = api
        .post("/v1/admin/retention/run", &ada, json!({}))
        .await
        .expect(200);
    assert_eq!(run["erased_channels"], json!([general]), "{run}");
    let m = wait_message(&api, &ada, &general, &id, erased).await;
    assert!(erased(&m), "{m}");
    // The other channel has no policy: untouched. A new post is kept.
    let fresh = unique("freshword");
    let fid = api.send(&ada, &general, &fresh).await.expect(201)["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(message(&api, &ada, &general, &fid).await["text"], fresh);
    let events = api.all_events(&ada, &general).await;
    let e = events
        .iter()
        .find(|e| e["type"] == "content_erased")
        .expect("announced");
    assert!(e.to_string().contains("channel retention 2 seconds"), "{e}");
    // The expired text is on no disk; the fresh one is (the control).
    server.terminate(Duration::from_secs(20));
    for dir in [nats.store_dir(), server.data.as_path()] {
        assert_eq!(files_containing(dir, old.as_bytes()), Vec::<String>::new());
    }
    assert!(!files_containing(&server.data, fresh.as_bytes()).is_empty());
    let (ok, out, err) = run_cli(&["rebuild"], &server.data, &nats.url());
    assert!(ok, "rebuild failed: {out}\n{err}");
    assert!(
        !out.contains("DIFFER") && out.matches(" match ").count() >= 7,
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_server_runs_retention_by_itself() {
    let nats = Nats::start();
    let server = Server::start_with(
        &nats,
        &["--retention-interval", "0.5", "--key-period-secs", "1"],
    );
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "admin").await;
    let general = api.channel(&ada, "general", false).await;
    api.put("/v1/admin/retention", &ada, json!({"max_age_secs": 1}))
        .await
        .expect(200);
    let id = api
        .send(&ada, &general, "ephemeral words")
        .await
        .expect(201)["id"]
        .as_str()
        .expect("id")
        .to_string();
    let m = wait_message(&api, &ada, &general, &id, erased).await;
    assert!(erased(&m), "erased by the workspace default: {m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outsiders_cannot_see_or_touch_retention_holds_or_erasures() {
    let nats = Nats::start();
    let server = Server::start_with(&nats, &["--retention-interval", "0"]);
    let api = server.api();
    let a = api.workspace("A").await;
    let b = api.workspace("B").await;
    let (_, ada) = api.user(&a, "ada", "admin").await;
    let (amy_id, amy) = api.user(&a, "amy", "member").await;
    let (_, bea) = api.user(&b, "bea", "admin").await;
    let general = api.channel(&ada, "general", false).await;
    let hold = api
        .post(
            "/v1/admin/legal-holds",
            &ada,
            json!({"scope": "workspace", "reason": "matter 1"}),
        )
        .await
        .expect(201);
    let hid = hold["id"].as_str().expect("id");
    // A member of A: nothing.
    for (m, path) in [
        ("GET", "/v1/admin/retention"),
        ("GET", "/v1/admin/legal-holds"),
        ("POST", "/v1/admin/retention/run"),
    ] {
        let r = if m == "GET" {
            api.get(path, &amy).await
        } else {
            api.post(path, &amy, json!({})).await
        };
        assert_eq!(r.status, 403, "{m} {path}: {}", r.body);
    }
    api.delete(&format!("/v1/admin/legal-holds/{hid}"), &amy)
        .await
        .expect_err(403, "forbidden");
    // B's admin: sees none of A's, and cannot reach A's things by id.
    let holds = api.get("/v1/admin/legal-holds", &bea).await.expect(200);
    assert_eq!(holds["holds"], json!([]));
    api.delete(&format!("/v1/admin/legal-holds/{hid}"), &bea)
        .await
        .expect_err(404, "not_found");
    api.post(
        "/v1/admin/legal-holds",
        &bea,
        json!({"scope": "channel", "target_id": general, "reason": "x"}),
    )
    .await
    .expect_err(404, "not_found");
    api.put(
        "/v1/admin/retention",
        &bea,
        json!({"channel_id": general, "days": 1}),
    )
    .await
    .expect_err(404, "not_found");
    api.post("/v1/admin/erasures", &bea, json!({"user_id": amy_id}))
        .await
        .expect_err(404, "not_found");
    let policies = api.get("/v1/admin/retention", &bea).await.expect(200);
    assert_eq!(policies["policies"], json!([]));
    // A's hold is still there.
    let holds = api.get("/v1/admin/legal-holds", &ada).await.expect(200);
    assert_eq!(holds["holds"].as_array().map(Vec::len), Some(1));
}
