//! Files: upload → attach → download, who may see a file, what a post may
//! attach, the size limit (declared and streamed), and a deleted message's
//! file.

use crate::harness::{Api, Nats, Server};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use switchboard_core::secret::StreamHash;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

fn sha256(b: &[u8]) -> String {
    let mut h = StreamHash::default();
    h.update(b);
    h.finish_hex()
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `POST /v1/files` with a raw body: (status, JSON body).
async fn upload(api: &Api, token: &str, ch: &str, name: &str, body: Vec<u8>) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/v1/files?name={}&channel_id={ch}",
            api.base,
            percent(name)
        ))
        .bearer_auth(token)
        .header("content-type", "text/plain; charset=utf-8")
        .body(body)
        .send()
        .await
        .expect("upload");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// `GET /v1/files/{id}`: (status, headers, bytes).
async fn download(api: &Api, token: &str, id: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let resp = reqwest::Client::new()
        .get(format!("{}/v1/files/{id}", api.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("download");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.expect("body").to_vec();
    (status, headers, body)
}

/// An upload with a chunked body (no Content-Length), over a raw
/// connection: the status code.
async fn upload_chunked(base: &str, token: &str, ch: &str, chunks: usize, chunk: usize) -> u16 {
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /v1/files?name=big.bin&channel_id={ch} HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.expect("write head");
    let data = bytes(chunk);
    for _ in 0..chunks {
        // The server may answer and close before the whole body is sent.
        if s.write_all(format!("{:x}\r\n", data.len()).as_bytes())
            .await
            .is_err()
            || s.write_all(&data).await.is_err()
            || s.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"))
}

/// The names of the objects in the files bucket.
async fn objects(nats: &Nats) -> Vec<String> {
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    let store = js.get_object_store("SB_files").await.expect("files bucket");
    let mut list = store.list().await.expect("list");
    let mut names = Vec::new();
    while let Some(o) = list.next().await {
        let o = o.expect("object info");
        if !o.deleted {
            names.push(o.name);
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upload_attach_download_round_trip() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "member").await;
    let (_, bob) = api.user(&ws, "bob", "member").await;
    let ch = api.channel(&ada, "general", false).await;
    api.post(&format!("/v1/channels/{ch}/join"), &bob, json!({}))
        .await
        .expect(200);
    // Larger than the 256 KiB limit of JSON bodies.
    let data = bytes(700 * 1024 + 13);
    let (status, f) = upload(&api, &ada, &ch, "résumé 1.txt", data.clone()).await;
    assert_eq!(status, 201, "{f}");
    let id = f["id"].as_str().expect("id").to_string();
    assert_eq!(f["name"], "résumé 1.txt");
    assert_eq!(f["size"], data.len());
    assert_eq!(f["content_type"], "text/plain; charset=utf-8");

    // Not attached yet: only its uploader sees it.
    assert_eq!(download(&api, &bob, &id).await.0, 404);
    assert_eq!(download(&api, &ada, &id).await.0, 200);

    let post = json!({"channel_id": ch, "text": "the file", "attachment_ids": [id],
                      "client_msg_id": "with-a-file"});
    let m = api
        .post("/v1/messages", &ada, post.clone())
        .await
        .expect(201);
    assert_eq!(m["attachments"], json!([f]));
    // A retry answers the original (its file is attached to it by now).
    let again = api.post("/v1/messages", &ada, post).await.expect(200);
    assert_eq!(
        (&again["id"], &again["attachments"]),
        (&m["id"], &json!([f]))
    );
    let page = api
        .get(&format!("/v1/channels/{ch}/messages"), &bob)
        .await
        .expect(200);
    assert_eq!(page["messages"][0]["attachments"], json!([f]));

    let (status, h, got) = download(&api, &bob, &id).await;
    assert_eq!(status, 200);
    assert_eq!(got.len(), data.len());
    assert_eq!(sha256(&got), sha256(&data));
    assert_eq!(h["content-length"], data.len().to_string().as_str());
    assert_eq!(
        h["content-disposition"],
        "attachment; filename*=UTF-8''r%C3%A9sum%C3%A9%201.txt"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["content-security-policy"], "default-src 'none'; sandbox");
    assert_eq!(h["content-type"], "text/plain; charset=utf-8");

    // A range.
    let resp = reqwest::Client::new()
        .get(format!("{}/v1/files/{id}", api.base))
        .bearer_auth(&bob)
        .header("range", "bytes=1000-1999")
        .send()
        .await
        .expect("range");
    assert_eq!(resp.status().as_u16(), 206);
    assert_eq!(
        resp.headers()["content-range"],
        format!("bytes 1000-1999/{}", data.len()).as_str()
    );
    assert_eq!(resp.headers()["content-length"], "1000");
    assert_eq!(
        resp.bytes().await.expect("bytes").as_ref(),
        &data[1000..2000]
    );

    let events = api.all_events(&ada, &ch).await;
    let up = events
        .iter()
        .find(|e| e["type"] == "file_uploaded")
        .expect("a file_uploaded event");
    assert_eq!(up["sha256"], sha256(&data).as_str());
    assert_eq!(up["file_id"], id.as_str());
    assert_eq!(objects(&nats).await, [id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outsiders_get_404_and_nothing_is_appended() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let other = api.workspace("Other").await;
    let (_, ada) = api.user(&ws, "ada", "member").await;
    let (_, bob) = api.user(&ws, "bob", "member").await;
    let (_, eve) = api.user(&other, "eve", "admin").await;
    let secret = api.channel(&ada, "secret", false).await;
    api.post(&format!("/v1/channels/{secret}/join"), &bob, json!({}))
        .await
        .expect(200);
    let private = api.channel(&ada, "private", true).await;
    let (_, f) = upload(&api, &ada, &secret, "a.txt", bytes(10)).await;
    let (_, g) = upload(&api, &ada, &private, "b.txt", bytes(10)).await;
    let (fid, gid) = (f["id"].as_str().expect("id"), g["id"].as_str().expect("id"));
    for (file, ch) in [(fid, &secret), (gid, &private)] {
        api.post(
            "/v1/messages",
            &ada,
            json!({"channel_id": ch, "text": "x", "attachment_ids": [file]}),
        )
        .await
        .expect(201);
    }
    assert_eq!(download(&api, &bob, fid).await.0, 200);
    api.post(&format!("/v1/channels/{secret}/leave"), &bob, json!({}))
        .await
        .expect(200);
    let head = nats.log_len().await;
    let stored = objects(&nats).await.len();
    // Another workspace, a non-member of a private channel, a user who left.
    for (token, file) in [(&eve, fid), (&eve, gid), (&bob, gid), (&bob, fid)] {
        let (status, _, body) = download(&api, token, file).await;
        assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
        assert!(!body.windows(10).any(|w| w == bytes(10).as_slice()));
    }
    for (token, ch) in [(&eve, &secret), (&eve, &private), (&bob, &private)] {
        let (status, body) = upload(&api, token, ch, "x.txt", bytes(5)).await;
        assert_eq!(status, 404, "{body}");
    }
    // A file id of the wrong shape is 404 as well.
    assert_eq!(download(&api, &ada, "not%20an%20id").await.0, 404);
    assert_eq!(nats.log_len().await, head, "nothing was appended");
    assert_eq!(objects(&nats).await.len(), stored, "nothing was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_own_unattached_files_are_attached() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "member").await;
    let (_, bob) = api.user(&ws, "bob", "member").await;
    let ch = api.channel(&ada, "general", false).await;
    let elsewhere = api.channel(&ada, "elsewhere", false).await;
    api.post(&format!("/v1/channels/{ch}/join"), &bob, json!({}))
        .await
        .expect(200);
    let id = |v: Value| v["id"].as_str().expect("id").to_string();
    let bobs = id(upload(&api, &bob, &ch, "b.txt", bytes(3)).await.1);
    let adas = id(upload(&api, &ada, &ch, "a.txt", bytes(3)).await.1);
    let other = id(upload(&api, &ada, &elsewhere, "c.txt", bytes(3)).await.1);
    api.post(
        "/v1/messages",
        &ada,
        json!({"channel_id": ch, "text": "mine", "attachment_ids": [adas]}),
    )
    .await
    .expect(201);
    let head = nats.log_len().await;
    let post =
        |files: Vec<&str>| json!({"channel_id": ch, "text": "again", "attachment_ids": files});
    api.post("/v1/messages", &ada, post(vec![&bobs]))
        .await
        .expect_err(404, "not_found");
    api.post("/v1/messages", &ada, post(vec![&other]))
        .await
        .expect_err(404, "not_found");
    api.post("/v1/messages", &ada, post(vec![&adas]))
        .await
        .expect_err(409, "conflict");
    api.post("/v1/messages", &bob, post(vec![&bobs, &bobs]))
        .await
        .expect_err(400, "invalid_request");
    let eleven: Vec<&str> = std::iter::repeat_n(bobs.as_str(), 11).collect();
    api.post("/v1/messages", &bob, post(eleven))
        .await
        .expect_err(400, "invalid_request");
    api.post("/v1/messages", &bob, post(vec!["F-nothing"]))
        .await
        .expect_err(404, "not_found");
    assert_eq!(nats.log_len().await, head, "the log is unchanged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn over_the_limit_is_413_and_nothing_is_stored() {
    let nats = Nats::start();
    let server = Server::start_with(&nats, &["--max-file-bytes", "100000"]);
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "member").await;
    let ch = api.channel(&ada, "general", false).await;
    let (status, _) = upload(&api, &ada, &ch, "ok.bin", bytes(100_000)).await;
    assert_eq!(status, 201, "exactly the limit is fine");
    let head = nats.log_len().await;
    let stored = objects(&nats).await;
    let (status, body) = upload(&api, &ada, &ch, "big.bin", bytes(100_001)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    // Chunked: no Content-Length, the limit is found while streaming.
    assert_eq!(upload_chunked(&server.base, &ada, &ch, 30, 8192).await, 413);
    assert_eq!(nats.log_len().await, head, "nothing was appended");
    assert_eq!(objects(&nats).await, stored, "nothing was kept");
    // A chunked upload within the limit is stored.
    assert_eq!(upload_chunked(&server.base, &ada, &ch, 3, 8192).await, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deleted_messages_file_is_gone() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "member").await;
    let ch = api.channel(&ada, "general", false).await;
    let (_, f) = upload(&api, &ada, &ch, "a.txt", bytes(1000)).await;
    let fid = f["id"].as_str().expect("id").to_string();
    let (_, keep) = upload(&api, &ada, &ch, "keep.txt", bytes(10)).await;
    let m = api
        .post(
            "/v1/messages",
            &ada,
            json!({"channel_id": ch, "text": "x", "attachment_ids": [fid]}),
        )
        .await
        .expect(201);
    let mid = m["id"].as_str().expect("id");
    assert_eq!(download(&api, &ada, &fid).await.0, 200);
    let gone = api
        .delete(&format!("/v1/messages/{mid}"), &ada)
        .await
        .expect(200);
    assert_eq!(gone["attachments"], json!([]));
    assert_eq!(download(&api, &ada, &fid).await.0, 404);
    // The object is deleted by the server's reaction to the tombstone.
    let start = Instant::now();
    let want = vec![keep["id"].as_str().expect("id").to_string()];
    loop {
        if objects(&nats).await == want {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the deleted message's object is still stored"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A `/proc/<pid>/status` field in KiB (`VmHWM`: peak resident set).
fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim_start_matches(':').split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{field} in {status}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_large_upload_is_streamed_not_buffered() {
    let nats = Nats::start();
    let server = Server::start_with(&nats, &["--max-file-bytes", "209715200"]);
    let pid = server.pid().expect("pid");
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "member").await;
    let ch = api.channel(&ada, "general", false).await;
    // Warm up every path once, then measure the peak across 100 MiB.
    assert_eq!(
        upload(&api, &ada, &ch, "warm.bin", bytes(1 << 20)).await.0,
        201
    );
    let before = proc_kib(pid, "VmHWM");
    let size = 100 << 20;
    let (status, f) = upload(&api, &ada, &ch, "big.bin", bytes(size)).await;
    assert_eq!(status, 201, "{f}");
    assert_eq!(f["size"], size);
    let grown_mib = proc_kib(pid, "VmHWM").saturating_sub(before) / 1024;
    assert!(
        grown_mib < 40,
        "the server's peak RSS grew by {grown_mib} MiB for a 100 MiB upload"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_posts_attach_a_file_once() {
    // Through two `serve` processes: a post that attached files must be
    // seen by the next decision on the subject in the other process too.
    let nats = Nats::start();
    let server = Server::start(&nats);
    let other = Server::start(&nats);
    let api = server.api();
    let apis = [server.api(), other.api()];
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "member").await;
    let ch = api.channel(&ada, "general", false).await;
    for round in 0..10 {
        let (_, f) = upload(&api, &ada, &ch, "a.txt", bytes(10)).await;
        let fid = f["id"].as_str().expect("id").to_string();
        let posts = (0..8).map(|i| {
            let (api, ada, ch, fid) = (apis[i % 2].clone(), ada.clone(), ch.clone(), fid.clone());
            tokio::spawn(async move {
                api.post(
                    "/v1/messages",
                    &ada,
                    json!({"channel_id": ch, "text": format!("r{round} p{i}"),
                           "attachment_ids": [fid]}),
                )
                .await
            })
        });
        let mut codes = Vec::new();
        for p in posts.collect::<Vec<_>>() {
            codes.push(p.await.expect("task").status);
        }
        codes.sort();
        assert_eq!(
            codes,
            [201, 409, 409, 409, 409, 409, 409, 409],
            "round {round}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unattached_uploads_expire() {
    let nats = Nats::start();
    let server = Server::start_with(&nats, &["--unattached-file-ttl-secs", "1"]);
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "member").await;
    let ch = api.channel(&ada, "general", false).await;
    let id = |v: Value| v["id"].as_str().expect("id").to_string();
    let lonely = id(upload(&api, &ada, &ch, "a.txt", bytes(10)).await.1);
    let kept = id(upload(&api, &ada, &ch, "b.txt", bytes(10)).await.1);
    api.post(
        "/v1/messages",
        &ada,
        json!({"channel_id": ch, "text": "x", "attachment_ids": [kept]}),
    )
    .await
    .expect(201);
    let start = Instant::now();
    while download(&api, &ada, &lonely).await.0 != 404 || objects(&nats).await != [kept.clone()] {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the unattached upload never expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(download(&api, &ada, &kept).await.0, 200, "attached: kept");
    api.post(
        "/v1/messages",
        &ada,
        json!({"channel_id": ch, "text": "late", "attachment_ids": [lonely]}),
    )
    .await
    .expect_err(404, "not_found");
    let events = api.all_events(&ada, &ch).await;
    let expired: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "file_expired")
        .collect();
    assert_eq!(expired.len(), 1, "{events:?}");
    assert_eq!(expired[0]["file_id"], lonely.as_str());
}

/// One part of a hand-built multipart body: name, filename, content type,
/// bytes.
type Part<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [u8]);

/// A multipart/form-data body by hand; (the request's Content-Type, the
/// body).
fn multipart(parts: &[Part<'_>]) -> (String, Vec<u8>) {
    let boundary = "sb-boundary-7f3a9c";
    let mut body = Vec::new();
    for (name, filename, ct, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let mut disposition = format!("Content-Disposition: form-data; name=\"{name}\"");
        if let Some(f) = filename {
            disposition.push_str(&format!("; filename=\"{f}\""));
        }
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(b"\r\n");
        if let Some(ct) = ct {
            body.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// `POST /v1/files?{query}` with a multipart body: (status, JSON body).
async fn upload_multipart(
    api: &Api,
    token: &str,
    query: &str,
    (ct, body): (String, Vec<u8>),
) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/files?{query}", api.base))
        .bearer_auth(token)
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .expect("upload");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multipart_upload_round_trip() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "member").await;
    let ch = api.channel(&ada, "general", false).await;
    // Larger than the JSON body limit and than several read buffers.
    let data = bytes(700 * 1024 + 13);
    // The channel from a text part before the file; an unrelated part is
    // skipped; the name and type from the file part.
    let body = multipart(&[
        ("note", None, None, b"ignored"),
        ("channel_id", None, None, ch.as_bytes()),
        ("file", Some("report 1.pdf"), Some("application/pdf"), &data),
    ]);
    let (status, f) = upload_multipart(&api, &ada, "", body).await;
    assert_eq!(status, 201, "{f}");
    assert_eq!(f["name"], "report 1.pdf");
    assert_eq!(f["size"], data.len());
    assert_eq!(f["content_type"], "application/pdf");
    let id = f["id"].as_str().expect("id").to_string();
    let (status, h, got) = download(&api, &ada, &id).await;
    assert_eq!(status, 200);
    assert_eq!(got.len(), data.len());
    assert_eq!(sha256(&got), sha256(&data));
    assert_eq!(h["content-type"], "application/pdf");
    let events = api.all_events(&ada, &ch).await;
    let up = events
        .iter()
        .find(|e| e["type"] == "file_uploaded" && e["file_id"] == id.as_str())
        .expect("a file_uploaded event");
    assert_eq!(up["sha256"], sha256(&data).as_str());

    // The query's name and channel win; no part Content-Type → octet-stream.
    let small = bytes(1000);
    let body = multipart(&[("file", Some("ignored.txt"), None, &small)]);
    let (status, g) =
        upload_multipart(&api, &ada, &format!("name=given.bin&channel_id={ch}"), body).await;
    assert_eq!(status, 201, "{g}");
    assert_eq!(g["name"], "given.bin");
    assert_eq!(g["content_type"], "application/octet-stream");
    let (_, _, got) = download(&api, &ada, g["id"].as_str().expect("id")).await;
    assert_eq!(sha256(&got), sha256(&small));

    // Raw uploads still work beside it.
    let (status, r) = upload(&api, &ada, &ch, "raw.txt", bytes(10)).await;
    assert_eq!((status, &r["name"]), (201, &json!("raw.txt")));

    // The reference documents both bodies.
    let doc = api.get("/v1/openapi.json", &ada).await.expect(200);
    let content = &doc["paths"]["/v1/files"]["post"]["requestBody"]["content"];
    assert!(content["application/octet-stream"].is_object(), "{content}");
    assert!(content["multipart/form-data"].is_object(), "{content}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_multipart_is_400_and_nothing_is_kept() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "member").await;
    let ch = api.channel(&ada, "general", false).await;
    let head = nats.log_len().await;
    let stored = objects(&nats).await;
    let query = format!("channel_id={ch}");

    // The body ends mid-part (no closing boundary), after 300 KiB of file.
    let (ct, mut body) = multipart(&[("file", Some("a.bin"), None, &bytes(300 * 1024))]);
    body.truncate(body.len() - 200);
    let (status, e) = upload_multipart(&api, &ada, &query, (ct, body)).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (400, Some("invalid_request")),
        "{e}"
    );
    // No `file` part.
    let body = multipart(&[("other", Some("a.bin"), None, b"abc")]);
    let (status, e) = upload_multipart(&api, &ada, &query, body).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (400, Some("invalid_request")),
        "{e}"
    );
    // No boundary.
    let (_, body) = multipart(&[("file", Some("a.bin"), None, b"abc")]);
    let (status, _) = upload_multipart(
        &api,
        &ada,
        &query,
        ("multipart/form-data".to_string(), body),
    )
    .await;
    assert_eq!(status, 400);
    // No channel at all.
    let body = multipart(&[("file", Some("a.bin"), None, b"abc")]);
    assert_eq!(upload_multipart(&api, &ada, "", body).await.0, 400);

    assert_eq!(nats.log_len().await, head, "nothing was appended");
    assert_eq!(objects(&nats).await, stored, "nothing was kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multipart_over_the_limit_is_413_and_nothing_is_stored() {
    let nats = Nats::start();
    let server = Server::start_with(&nats, &["--max-file-bytes", "100000"]);
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "member").await;
    let ch = api.channel(&ada, "general", false).await;
    let query = format!("channel_id={ch}");
    // The limit is the file's size, not the body's.
    let body = multipart(&[("file", Some("ok.bin"), None, &bytes(100_000))]);
    let (status, f) = upload_multipart(&api, &ada, &query, body).await;
    assert_eq!(status, 201, "exactly the limit is fine: {f}");
    let head = nats.log_len().await;
    let stored = objects(&nats).await;
    let body = multipart(&[("file", Some("big.bin"), None, &bytes(100_001))]);
    let (status, e) = upload_multipart(&api, &ada, &query, body).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (413, Some("payload_too_large")),
        "{e}"
    );
    assert_eq!(nats.log_len().await, head, "nothing was appended");
    assert_eq!(objects(&nats).await, stored, "nothing was kept");
}
