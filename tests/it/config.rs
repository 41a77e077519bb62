//! `serve --config <file.toml>` (README "Configuration file"): flags >
//! environment > file > defaults; the settings in force are logged at
//! start with secrets redacted; an unknown key stops `serve`.

use crate::harness::{bin, Api, Nats, OPERATOR};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

/// `switchboard serve` with a config file, `extra` flags and `env`; stdout
/// lines and stderr lines arrive on the receiver as ("out"|"err", line).
pub(crate) fn spawn(
    nats: &Nats,
    data: &std::path::Path,
    file: &std::path::Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (Child, Receiver<(&'static str, String)>) {
    let mut cmd = Command::new(bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--nats", &nats.url()])
        .arg("--data")
        .arg(data)
        .arg("--config")
        .arg(file)
        .args(extra)
        .env("SWITCHBOARD_ADMIN_TOKEN", OPERATOR)
        .env("RUST_LOG", "info,async_nats=warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn switchboard");
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().expect("stdout");
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx2.send(("out", l));
        }
    });
    let err = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(("err", l));
        }
    });
    (child, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flags_beat_env_beat_file_beat_defaults_and_secrets_are_redacted() {
    let nats = Nats::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("switchboard.toml");
    std::fs::write(
        &file,
        r#"
# file only
heartbeat-ms = 7000
ws_queue = 77
limit-posts = "1:2"
opensearch-url = "http://search:hunter2@opensearch.internal:9200"
# overridden by the environment
limit-edits = "1:1"
# overridden by a flag
limit-uploads = "1:1"
webhook-allow-private = true
"#,
    )
    .expect("write config");
    let (mut child, rx) = spawn(
        &nats,
        &dir.path().join("data"),
        &file,
        &["--limit-uploads", "3:30"],
        &[("SWITCHBOARD_LIMIT_EDITS", "5:50")],
    );
    let mut lines = Vec::new();
    let base = loop {
        let (_, l) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("serve started");
        if let Some(url) = l.strip_prefix("switchboard listening on ") {
            break url.trim().to_string();
        }
        lines.push(l);
    };
    let settings = lines
        .iter()
        .find(|l| l.contains("effective configuration"))
        .unwrap_or_else(|| panic!("the settings are logged: {lines:#?}"))
        .clone();
    for want in [
        "heartbeat_ms = 7000 (file)",
        "ws_queue = 77 (file)",
        "limit_posts = 1:2 (file)",
        "limit_edits = 5:50 (env)",
        "limit_uploads = 3:30 (flag)",
        "webhook_allow_private = true (file)",
        "limit_typing = 10:50 (default)",
        "opensearch_url = http://***@opensearch.internal:9200 (file)",
        "admin_token = <redacted> (env)",
    ] {
        assert!(settings.contains(want), "{want} in {settings}");
    }
    for secret in ["hunter2", OPERATOR] {
        assert!(
            lines.iter().all(|l| !l.contains(secret)),
            "{secret} printed"
        );
    }

    // The file's limit is in force: two posts, then 429.
    let api = Api::new(&base);
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "admin").await;
    let ch = api.channel(&ada, "general", false).await;
    api.send(&ada, &ch, "1").await.expect(201);
    api.send(&ada, &ch, "2").await.expect(201);
    api.send(&ada, &ch, "3")
        .await
        .expect_err(429, "rate_limited");
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unknown_or_malformed_setting_stops_serve() {
    let nats = Nats::start();
    let dir = tempfile::tempdir().expect("temp dir");
    for (body, says) in [
        ("listne = \"127.0.0.1:9\"\n", "unknown setting `listne`"),
        ("limit-posts = [1, 2]\n", "`limit-posts` must be a string"),
        ("limit-posts = \"fast\"\n", "limit-posts"),
        ("not toml", "not a valid TOML table"),
    ] {
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, body).expect("write config");
        let (mut child, rx) = spawn(&nats, &dir.path().join("data"), &file, &[], &[]);
        let status = child.wait().expect("serve exits");
        assert!(!status.success(), "{body}");
        // Both readers end at EOF, so this ends once the process has.
        let output: Vec<String> = rx.iter().map(|(_, l)| l).collect();
        assert!(
            output.iter().any(|l| l.contains(says)),
            "{body}: {output:#?}"
        );
        assert!(output.iter().all(|l| !l.contains("listening")), "{body}");
    }
}

/// `--metrics-listen`: `/metrics` without a token on its own address (and
/// only `/metrics` there).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_listen_serves_metrics_without_a_token() {
    let nats = Nats::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("empty.toml");
    std::fs::write(&file, "").expect("write config");
    let (mut child, rx) = spawn(
        &nats,
        &dir.path().join("data"),
        &file,
        &["--metrics-listen", "127.0.0.1:0"],
        &[],
    );
    let (mut api_base, mut metrics_url) = (None, None);
    while api_base.is_none() || metrics_url.is_none() {
        let (_, l) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("serve started");
        if let Some(u) = l.strip_prefix("switchboard listening on ") {
            api_base = Some(u.trim().to_string());
        } else if let Some(u) = l.strip_prefix("switchboard metrics on ") {
            metrics_url = Some(u.trim().to_string());
        }
    }
    let metrics_url = metrics_url.expect("metrics url");
    let api_base = api_base.expect("api");
    let http = reqwest::Client::new();
    // Something to count (a fresh server has recorded nothing yet).
    let r = http.get(format!("{api_base}/healthz")).send().await;
    assert_eq!(r.expect("GET /healthz").status().as_u16(), 200);
    let r = http.get(&metrics_url).send().await.expect("GET /metrics");
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().await.expect("text");
    assert!(
        text.contains(
            "switchboard_http_request_duration_seconds_count{method=\"GET\",route=\"/healthz\""
        ),
        "{text}"
    );
    let other = metrics_url.replace("/metrics", "/v1/me");
    let r = http.get(&other).send().await.expect("GET");
    assert_eq!(r.status().as_u16(), 404, "only /metrics there");
    // The API listener still wants the operator token.
    let r = http
        .get(format!("{api_base}/metrics"))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status().as_u16(), 401);
    let _ = child.kill();
    let _ = child.wait();
}
