//! Test harness: a real nats-server per test, the real binary, an HTTP
//! client, and a fixture builder. Everything is killed and cleaned on Drop.

#![allow(dead_code)]

use reqwest::Method;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

pub const OPERATOR: &str = "test-operator-token";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Whether every thread of process `pid` is in the stopped state (`T` in
/// `/proc/<pid>/task/*/stat`).
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    let mut any = false;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue; // a thread that just exited
        };
        // "<tid> (<comm>) <state> …": the state follows the last ')'.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next());
        if state != Some('T') {
            return false;
        }
        any = true;
    }
    any
}

fn wait_port(port: u16, timeout: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A nats-server with JetStream on a free port and a temp store.
pub struct Nats {
    pub port: u16,
    /// The HTTP monitoring port (`-m`), when started with one.
    pub monitor: Option<u16>,
    dir: TempDir,
    child: Option<Child>,
}

impl Nats {
    pub fn start() -> Nats {
        Self::start_inner(None)
    }

    /// Also serves the monitoring endpoints (`/varz`, …) on a free port.
    pub fn start_monitored() -> Nats {
        Self::start_inner(Some(free_port()))
    }

    fn start_inner(monitor: Option<u16>) -> Nats {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut n = Nats {
            port: free_port(),
            monitor,
            dir,
            child: None,
        };
        n.spawn();
        n
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new("nats-server");
        cmd.args(["-a", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(m) = self.monitor {
            cmd.args(["-m", &m.to_string()]);
        }
        let child = cmd
            .args(["-js", "-sd"])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server on PATH (see README)");
        self.child = Some(child);
        assert!(
            wait_port(self.port, Duration::from_secs(15)),
            "nats-server did not start"
        );
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The JetStream store directory (`-sd`).
    pub fn store_dir(&self) -> &Path {
        self.dir.path()
    }

    /// kill -9 of nats-server.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and store.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Freezes nats-server (SIGSTOP): connections stay open, nothing is
    /// answered, publishes wait in the socket. [`Nats::resume`] thaws it.
    ///
    /// Returns only once every thread of the process is stopped: `kill`
    /// returns as soon as the signal is queued, and the kernel wakes one
    /// thread to start the group stop, so on a loaded machine the other
    /// threads may run on (and acknowledge publishes) for a while after.
    pub fn pause(&self) {
        self.signal("-STOP");
        let pid = self.child.as_ref().expect("nats-server running").id();
        let start = Instant::now();
        while !all_threads_stopped(pid) {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "nats-server {pid} did not stop within 20 s of SIGSTOP"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Thaws a paused nats-server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("nats-server running").id();
        let sent = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill {sig} {pid} failed");
    }

    /// A counter of the server's `/varz` (e.g. `in_msgs`: messages the
    /// server received from clients, JetStream API requests included).
    /// Needs [`Nats::start_monitored`].
    pub async fn varz(&self, field: &str) -> u64 {
        let port = self.monitor.expect("started with Nats::start_monitored");
        let v: Value = reqwest::get(format!("http://127.0.0.1:{port}/varz"))
            .await
            .expect("GET /varz")
            .json()
            .await
            .expect("varz JSON");
        v[field]
            .as_u64()
            .unwrap_or_else(|| panic!("varz has no counter {field}: {v}"))
    }

    /// The log's last stream sequence, asked of JetStream directly.
    pub async fn log_len(&self) -> u64 {
        let client = async_nats::connect(self.url())
            .await
            .expect("connect to nats");
        let js = async_nats::jetstream::new(client);
        let stream = js.get_stream("SB").await.expect("stream SB exists");
        stream
            .get_info()
            .await
            .expect("stream info")
            .state
            .last_sequence
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A `switchboard serve` process.
pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub data: PathBuf,
    _own_dir: Option<TempDir>,
    nats_url: String,
    extra: Vec<String>,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_switchboard")
}

impl Server {
    pub fn start(nats: &Nats) -> Server {
        Self::start_with(nats, &[])
    }

    pub fn start_with(nats: &Nats, extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let mut s = Server {
            child: None,
            base: String::new(),
            data,
            _own_dir: Some(dir),
            nats_url: nats.url(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        s.spawn();
        s
    }

    /// A server on an existing data directory (e.g. `serve --read-only`
    /// of models `rebuild --until` wrote); the directory is not removed.
    pub fn start_on(nats: &Nats, data: &Path, extra: &[&str]) -> Server {
        let mut s = Server {
            child: None,
            base: String::new(),
            data: data.to_path_buf(),
            _own_dir: None,
            nats_url: nats.url(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        s.spawn();
        s
    }

    /// A server that runs its own nats-server (no `--nats`: the one
    /// `serve` starts under `<data>/nats`, with authorization).
    pub fn start_embedded(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let mut s = Server {
            child: None,
            base: String::new(),
            data,
            _own_dir: Some(dir),
            nats_url: String::new(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        s.spawn();
        s
    }

    /// For a [`Server::start_embedded`]: its nats-server's URL (without
    /// credentials) and the platform's password.
    pub fn embedded_nats(&self) -> (String, String) {
        let dir = self.data.join("nats");
        let url = std::fs::read_to_string(dir.join("url")).expect("nats url file");
        let password =
            std::fs::read_to_string(dir.join("platform.password")).expect("platform password");
        (url.trim().to_string(), password.trim().to_string())
    }

    fn spawn(&mut self) {
        let nats_args: Vec<&str> = if self.nats_url.is_empty() {
            Vec::new()
        } else {
            vec!["--nats", &self.nats_url]
        };
        let mut child = Command::new(bin())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(&nats_args)
            .arg("--data")
            .arg(&self.data)
            .args(&self.extra)
            .env("SWITCHBOARD_ADMIN_TOKEN", OPERATOR)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn switchboard");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("switchboard listening on ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        self.base = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("switchboard printed its address");
        self.child = Some(child);
    }

    /// The server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// kill -9 of the server.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM (through `kill`, no libc) and waits up to `timeout`
    /// for the process to exit. Returns its exit status, or `None` if it
    /// was still running then (it is killed with -9 in that case).
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        self.sigterm();
        self.wait_exit(timeout)
    }

    /// Sends SIGTERM (through `kill`) and returns at once.
    pub fn sigterm(&self) {
        self.signal("-TERM");
    }

    /// Sends a signal (`"-HUP"`, …) through `kill` and returns at once.
    pub fn signal(&self, sig: &str) {
        let pid = self.pid().expect("switchboard running");
        let sent = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill {sig} failed");
    }

    /// The exit status if the process has exited (without waiting).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().expect("wait for switchboard"))
    }

    /// Waits up to `timeout` for the process to exit; its exit status, or
    /// `None` if it was still running then (it is killed with -9 then).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(status) = c.try_wait().expect("wait for switchboard") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }

    /// Starts it again on the same data dir.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    pub fn api(&self) -> Api {
        Api::new(&self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        // An embedded nats-server outlives a serve killed with -9: stop
        // it by the pid it wrote.
        if self.nats_url.is_empty() {
            if let Some(pid) = std::fs::read_to_string(self.data.join("nats").join("nats.pid"))
                .ok()
                .and_then(|p| p.trim().parse::<u32>().ok())
                .filter(|pid| {
                    std::fs::read(format!("/proc/{pid}/cmdline"))
                        .is_ok_and(|c| String::from_utf8_lossy(&c).contains("nats-server"))
                })
            {
                let _ = Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

/// A response: status and JSON body (Null when not JSON).
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub body: Value,
}

impl Resp {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    pub fn id(&self) -> String {
        self.body["id"]
            .as_str()
            .expect("response has an id")
            .to_string()
    }
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status, status, "unexpected response: {}", self.body);
        self.body
    }
    #[track_caller]
    pub fn expect_err(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status, self.code()),
            (status, code),
            "unexpected response: {}",
            self.body
        );
    }
}

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    pub base: String,
}

impl Api {
    pub fn new(base: &str) -> Api {
        Api {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
            base: base.to_string(),
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        self.try_call(method, path, token, body)
            .await
            .expect("HTTP request")
    }

    pub async fn try_call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<Resp, reqwest::Error> {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        Ok(Resp {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        })
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: &str,
        content_type: &str,
        body: String,
    ) -> Resp {
        let resp = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("HTTP request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        Resp {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }

    /// A request with exactly these headers (no bearer added); returns the
    /// response and its headers.
    pub async fn with_headers(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> (Resp, reqwest::header::HeaderMap) {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await.expect("HTTP request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        (Resp { status, body }, headers)
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.call(Method::GET, path, Some(token), None).await
    }
    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }
    pub async fn delete(&self, path: &str, token: &str) -> Resp {
        self.call(Method::DELETE, path, Some(token), None).await
    }
    pub async fn put(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }
    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    pub async fn workspace(&self, name: &str) -> String {
        self.post("/v1/workspaces", OPERATOR, json!({ "name": name }))
            .await
            .expect(201)["id"]
            .as_str()
            .expect("id")
            .to_string()
    }

    /// Creates a user; returns (id, token).
    pub async fn user(&self, ws: &str, handle: &str, role: &str) -> (String, String) {
        let b = self
            .post(
                &format!("/v1/workspaces/{ws}/users"),
                OPERATOR,
                json!({"handle": handle, "display_name": handle.to_uppercase(), "role": role}),
            )
            .await
            .expect(201);
        (
            b["id"].as_str().expect("id").to_string(),
            b["token"].as_str().expect("token").to_string(),
        )
    }

    pub async fn channel(&self, token: &str, name: &str, private: bool) -> String {
        self.post(
            "/v1/channels",
            token,
            json!({"name": name, "private": private}),
        )
        .await
        .expect(201)["id"]
            .as_str()
            .expect("id")
            .to_string()
    }

    pub async fn send(&self, token: &str, channel: &str, text: &str) -> Resp {
        self.post(
            "/v1/messages",
            token,
            json!({"channel_id": channel, "text": text}),
        )
        .await
    }

    /// Every event of a channel (all pages).
    pub async fn all_events(&self, token: &str, channel: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let b = self
                .get(
                    &format!("/v1/channels/{channel}/events?after_seq={after}&limit=1000"),
                    token,
                )
                .await
                .expect(200);
            let events = b["events"].as_array().expect("events").clone();
            if events.is_empty() {
                return out;
            }
            after = events.last().and_then(|e| e["seq"].as_u64()).expect("seq");
            out.extend(events);
        }
    }

    /// Waits until a channel's head (as `/events` sees it) reaches `seq`.
    pub async fn wait_head(&self, token: &str, channel: &str, seq: u64) {
        let start = Instant::now();
        loop {
            let b = self
                .get(
                    &format!("/v1/channels/{channel}/events?after_seq=0&limit=1"),
                    token,
                )
                .await
                .expect(200);
            if b["head_seq"].as_u64().unwrap_or(0) >= seq {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "head never reached {seq}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Runs the binary with arguments; returns (success, stdout, stderr).
pub fn run_cli(args: &[&str], data: &Path, nats: &str) -> (bool, String, String) {
    let out = Command::new(bin())
        .args(args)
        .arg("--data")
        .arg(data)
        .args(["--nats", nats])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run switchboard");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// ----- real-time clients -----

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

pub struct Ws {
    inner: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

fn ws_url(base: &str, query: &str) -> String {
    format!(
        "{}/v1/realtime{query}",
        base.replacen("http://", "ws://", 1)
    )
}

impl Ws {
    /// Connects with a bearer token and reads the hello frame.
    pub async fn connect(base: &str, token: &str) -> Ws {
        let mut req = ws_url(base, "").into_client_request().expect("request");
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        let (inner, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("websocket connect");
        let mut ws = Ws { inner };
        let hello = ws.frame(Duration::from_secs(5)).await.expect("hello");
        assert_eq!(hello["type"], "hello", "{hello}");
        ws
    }

    /// Connects with a bearer token and reads the hello frame;
    /// Err(status) when refused before the upgrade.
    pub async fn try_connect(base: &str, token: &str) -> Result<Ws, u16> {
        let mut req = ws_url(base, "").into_client_request().expect("request");
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        match tokio_tungstenite::connect_async(req).await {
            Ok((inner, _)) => {
                let mut ws = Ws { inner };
                let hello = ws.frame(Duration::from_secs(5)).await.expect("hello");
                assert_eq!(hello["type"], "hello", "{hello}");
                Ok(ws)
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
            Err(e) => panic!("unexpected websocket error {e}"),
        }
    }

    /// Connects with a prepared request (own headers) and reads the hello
    /// frame; Err(status) when refused before the upgrade.
    pub async fn from_request(
        req: tokio_tungstenite::tungstenite::handshake::client::Request,
    ) -> Result<Ws, u16> {
        match tokio_tungstenite::connect_async(req).await {
            Ok((inner, _)) => {
                let mut ws = Ws { inner };
                let hello = ws.frame(Duration::from_secs(5)).await.expect("hello");
                assert_eq!(hello["type"], "hello", "{hello}");
                Ok(ws)
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
            Err(e) => panic!("unexpected websocket error {e}"),
        }
    }

    /// Connects with a ticket; Err(status) when refused before the upgrade.
    pub async fn connect_ticket(base: &str, ticket: &str) -> Result<Ws, u16> {
        match tokio_tungstenite::connect_async(ws_url(base, &format!("?ticket={ticket}"))).await {
            Ok((inner, _)) => Ok(Ws { inner }),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
            Err(e) => panic!("unexpected websocket error {e}"),
        }
    }

    pub async fn send(&mut self, v: Value) {
        self.inner
            .send(Message::Text(v.to_string().into()))
            .await
            .expect("ws send");
    }

    /// Sends a text frame as is (not necessarily valid JSON).
    pub async fn send_text(&mut self, text: &str) {
        self.inner
            .send(Message::Text(text.into()))
            .await
            .expect("ws send");
    }

    /// Sends several frames in one write (a burst the server reads back
    /// to back).
    pub async fn send_burst(&mut self, frames: &[Value]) {
        for f in frames {
            self.inner
                .feed(Message::Text(f.to_string().into()))
                .await
                .expect("ws feed");
        }
        self.inner.flush().await.expect("ws flush");
    }

    /// Writes raw bytes on the socket, under the WebSocket framing (for
    /// frames a well-behaved client library would not send).
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        let tcp = self.inner.get_mut();
        tcp.write_all(bytes).await.expect("raw write");
        tcp.flush().await.expect("raw flush");
    }

    /// Whether the server closes the connection (a close frame, EOF or a
    /// reset) within `timeout`; other frames are skipped.
    pub async fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            match tokio::time::timeout(left, self.inner.next()).await {
                Err(_) => return false,
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// The close frame's code if the server closes the connection within
    /// `timeout` (`Some(None)`: closed without a close frame); other frames
    /// are skipped. `None`: still open.
    pub async fn close_code(&mut self, timeout: Duration) -> Option<Option<u16>> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.inner.next()).await {
                Err(_) => return None,
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return Some(frame.map(|f| u16::from(f.code)))
                }
                Ok(None) | Ok(Some(Err(_))) => return Some(None),
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    pub async fn subscribe(&mut self, channels: &[(&str, u64)]) {
        let map: serde_json::Map<String, Value> = channels
            .iter()
            .map(|(c, s)| (c.to_string(), json!(s)))
            .collect();
        self.send(json!({"type": "subscribe", "channels": map}))
            .await;
    }

    /// Subscribes to `channel` so that event `seq` (which must exist) is
    /// replayed, and waits for it: once it arrives the channel's live feed is
    /// in place (a forwarder registers its subscription before replaying),
    /// so no fixed sleep is needed before posting. Returns the frames read.
    pub async fn subscribe_live(&mut self, channel: &str, seq: u64) -> Vec<Value> {
        assert!(seq >= 1, "replay needs an existing event");
        self.subscribe(&[(channel, seq - 1)]).await;
        let frames = self
            .frames_until(Duration::from_secs(10), |f| {
                f["type"] == "event" && f["channel_id"] == channel && f["seq"].as_u64() == Some(seq)
            })
            .await;
        assert!(
            frames.iter().any(|f| f["seq"].as_u64() == Some(seq)),
            "event {seq} of {channel} was never replayed: {frames:?}"
        );
        frames
    }

    /// The next JSON frame, or None on timeout or close.
    pub async fn frame(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.inner.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    return serde_json::from_str(t.as_str()).ok();
                }
                Ok(Some(Ok(_))) => continue,
                _ => return None,
            }
        }
    }

    /// Collects frames until `pred` says stop or the timeout passes.
    pub async fn frames_until(
        &mut self,
        timeout: Duration,
        mut stop: impl FnMut(&Value) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.frame(left).await {
                Some(f) => {
                    let done = stop(&f);
                    out.push(f);
                    if done {
                        break;
                    }
                }
                None => break,
            }
        }
        out
    }

    pub async fn close(mut self) {
        let _ = self.inner.close(None).await;
    }
}

/// `(seq)` of the event frames of `channel`, in arrival order.
pub fn event_seqs(frames: &[Value], channel: &str) -> Vec<u64> {
    frames
        .iter()
        .filter(|f| f["type"] == "event" && f["channel_id"] == channel)
        .filter_map(|f| f["seq"].as_u64())
        .collect()
}

/// One Server-Sent Event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<String>,
    pub data: Value,
    /// The event's `retry:` field (ms), when it has one.
    pub retry: Option<u64>,
}

pub struct Sse {
    resp: reqwest::Response,
    buf: String,
}

/// How an SSE stream stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum SseEnd {
    /// The response body ended cleanly (the server finished it).
    Ended,
    /// The connection broke mid-body.
    Broken,
    /// Still open when the time was up.
    Open,
}

impl Sse {
    /// Reads (and drops) events until the stream stops or `timeout` passes.
    pub async fn end_within(&mut self, timeout: Duration) -> SseEnd {
        let deadline = Instant::now() + timeout;
        loop {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return SseEnd::Open;
            };
            match tokio::time::timeout(left, self.resp.chunk()).await {
                Err(_) => return SseEnd::Open,
                Ok(Ok(Some(_))) => continue,
                Ok(Ok(None)) => return SseEnd::Ended,
                Ok(Err(_)) => return SseEnd::Broken,
            }
        }
    }

    pub async fn connect(
        base: &str,
        token: &str,
        channels: &str,
        last_event_id: Option<&str>,
    ) -> Sse {
        let client = reqwest::Client::new();
        let mut req = client
            .get(format!("{base}/v1/sse?channels={channels}"))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let resp = req.send().await.expect("sse connect");
        assert_eq!(resp.status().as_u16(), 200);
        Sse {
            resp,
            buf: String::new(),
        }
    }

    /// The status an SSE request with this token gets (200: it opened;
    /// the stream is dropped at once).
    pub async fn status(base: &str, token: &str, channels: &str) -> u16 {
        reqwest::Client::new()
            .get(format!("{base}/v1/sse?channels={channels}"))
            .bearer_auth(token)
            .send()
            .await
            .expect("sse connect")
            .status()
            .as_u16()
    }

    pub async fn next(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut id = None;
                let mut retry = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("retry:") {
                        retry = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return Some(SseEvent {
                    id,
                    data: serde_json::from_str(&data).unwrap_or(Value::Null),
                    retry,
                });
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.resp.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                _ => return None,
            }
        }
    }
}
