//! `GET /metrics` (README "Metrics and tracing"): each family's value
//! moves when the matching thing happens, on a real server; the page needs
//! the operator token; every response carries `x-request-id`.

use crate::harness::{Api, Nats, Server, Sse, Ws, OPERATOR};
use crate::realtime::{setup, T};
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};

/// One sample line: name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let value: f64 = value.parse().ok()?;
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|p| !p.is_empty())
                .filter_map(|p| {
                    let (k, v) = p.split_once("=\"")?;
                    Some((k.to_string(), v.trim_end_matches('"').to_string()))
                })
                .collect();
            Some((name.to_string(), labels, value))
        })
        .collect()
}

/// The sum of `name`'s samples whose labels include all of `want`.
fn value(text: &str, name: &str, want: &[(&str, &str)]) -> f64 {
    samples(text)
        .into_iter()
        .filter(|(n, labels, _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

fn has(text: &str, name: &str, want: &[(&str, &str)]) -> bool {
    samples(text).iter().any(|(n, labels, _)| {
        n == name
            && want
                .iter()
                .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
    })
}

async fn scrape(api: &Api) -> String {
    let r = reqwest::Client::new()
        .get(format!("{}/metrics", api.base))
        .bearer_auth(OPERATOR)
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(r.status().as_u16(), 200);
    let ct = r.headers()["content-type"].to_str().expect("content type");
    assert!(ct.starts_with("text/plain"), "{ct}");
    r.text().await.expect("metrics text")
}

/// Scrapes until `pred` holds (bounded); returns the last page.
async fn scrape_until(api: &Api, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let text = scrape(api).await;
        if pred(&text) {
            return text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{what} never moved:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_metric_family_moves_when_its_thing_happens() {
    let mut nats = Nats::start();
    let server = Server::start_with(&nats, &["--ws-queue", "4", "--limit-tickets", "1:1"]);
    let api = server.api();
    let (_, ada, bob, ch) = setup(&api).await;

    // Access: operator only.
    api.call(Method::GET, "/metrics", None, None)
        .await
        .expect_err(401, "unauthorized");
    api.get("/metrics", &ada).await.expect_err(403, "forbidden");

    // HTTP latency per route template and status.
    let me = ("route", "/v1/me");
    let count = "switchboard_http_request_duration_seconds_count";
    let before = value(&scrape(&api).await, count, &[me, ("status", "200")]);
    api.get("/v1/me", &ada).await.expect(200);
    api.get("/v1/me", &ada).await.expect(200);
    let text = scrape(&api).await;
    assert_eq!(value(&text, count, &[me, ("status", "200")]), before + 2.0);
    assert!(
        !text.contains("route=\"/v1/channels/C"),
        "routes are templates"
    );
    assert!(
        text.contains("switchboard_http_request_duration_seconds_bucket{"),
        "a histogram, with buckets"
    );

    // Append latency; send errors by code.
    let appends = "switchboard_append_duration_seconds_count";
    let before_appends = value(&text, appends, &[]);
    let bad = ("code", "invalid_request");
    let before_bad = value(&text, "switchboard_send_errors_total", &[bad]);
    api.send(&ada, &ch, "counted").await.expect(201);
    api.post("/v1/messages", &ada, json!({"channel_id": ch}))
        .await
        .expect_err(422, "invalid_request");
    let text = scrape(&api).await;
    assert!(value(&text, appends, &[]) > before_appends);
    assert_eq!(
        value(&text, "switchboard_send_errors_total", &[bad]),
        before_bad + 1.0
    );

    // Rate-limit rejections.
    let limited = ("class", "tickets");
    let before_limited = value(&text, "switchboard_rate_limited_total", &[limited]);
    api.post("/v1/realtime/tickets", &ada, json!({}))
        .await
        .expect(201);
    api.post("/v1/realtime/tickets", &ada, json!({}))
        .await
        .expect_err(429, "rate_limited");
    let text = scrape(&api).await;
    assert_eq!(
        value(&text, "switchboard_rate_limited_total", &[limited]),
        before_limited + 1.0
    );

    // Open connections (ws, sse); a resume; delivery latency.
    let open = "switchboard_open_connections";
    let ws_open = value(&text, open, &[("transport", "ws")]);
    let sse_open = value(&text, open, &[("transport", "sse")]);
    let resumes = value(&text, "switchboard_realtime_resumes_total", &[]);
    let delivered = "switchboard_delivery_latency_seconds_count";
    let before_delivered = value(&text, delivered, &[]);
    let mut w = Ws::connect(&server.base, &bob).await;
    w.subscribe_live(&ch, 1).await; // replays seq 1..: a resume
    let sse = Sse::connect(&server.base, &ada, &format!("{ch}:0"), None).await;
    let text = scrape_until(&api, "open connections and resumes", |t| {
        value(t, open, &[("transport", "ws")]) == ws_open + 1.0
            && value(t, open, &[("transport", "sse")]) == sse_open + 1.0
            && value(t, "switchboard_realtime_resumes_total", &[]) > resumes
    })
    .await;
    assert!(
        value(
            &text,
            "switchboard_realtime_replayed_events_total",
            &[("reason", "resume")]
        ) >= 1.0
    );
    let seq = api.send(&ada, &ch, "live").await.expect(201)["seq"]
        .as_u64()
        .expect("seq");
    let got = w.frames_until(T, |f| f["seq"].as_u64() == Some(seq)).await;
    assert!(got.iter().any(|f| f["seq"].as_u64() == Some(seq)));
    scrape_until(&api, "delivery latency", |t| {
        value(t, delivered, &[]) > before_delivered
    })
    .await;
    w.close().await;
    drop(sse);
    scrape_until(&api, "connections closing", |t| {
        value(t, open, &[("transport", "ws")]) == ws_open
            && value(t, open, &[("transport", "sse")]) == sse_open
    })
    .await;

    // Projector lag: every projector reports, and is caught up.
    let text = scrape(&api).await;
    for p in [
        "acl",
        "history",
        "unreads",
        "notifications",
        "search",
        "push",
    ] {
        for family in [
            "switchboard_projector_lag_events",
            "switchboard_projector_lag_seconds",
        ] {
            assert!(
                has(&text, family, &[("projector", p)]),
                "{family} {p}:\n{text}"
            );
        }
    }

    // Resyncs: a reader that stops reading while 250 large events go out.
    let resyncs = value(&text, "switchboard_realtime_resyncs_total", &[]);
    let mut slow = Ws::connect(&server.base, &bob).await;
    slow.subscribe_live(&ch, 1).await;
    let big = "x".repeat(30_000);
    for i in 0..250 {
        api.send(&ada, &ch, &format!("{i} {big}")).await.expect(201);
    }
    let frames = slow
        .frames_until(Duration::from_secs(10), |f| f["type"] == "resync")
        .await;
    assert!(frames.iter().any(|f| f["type"] == "resync"), "resynced");
    scrape_until(&api, "resyncs", |t| {
        value(t, "switchboard_realtime_resyncs_total", &[]) > resyncs
    })
    .await;

    // NATS reconnects.
    let text = scrape(&api).await;
    let reconnects = value(&text, "switchboard_nats_reconnects_total", &[]);
    nats.restart();
    scrape_until(&api, "NATS reconnects", |t| {
        value(t, "switchboard_nats_reconnects_total", &[]) > reconnects
    })
    .await;
}

/// Append retries: two gateways post to one channel in turn, so each
/// one's cached head is stale on its next post and the append conflicts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn append_retries_are_counted() {
    let nats = Nats::start();
    let a = Server::start(&nats);
    let b = Server::start(&nats);
    let (api_a, api_b) = (a.api(), b.api());
    let (_, ada, _, ch) = setup(&api_a).await;
    let retries = "switchboard_append_retries_total";
    let before =
        value(&scrape(&api_a).await, retries, &[]) + value(&scrape(&api_b).await, retries, &[]);
    for i in 0..4 {
        let api = if i % 2 == 0 { &api_a } else { &api_b };
        api.send(&ada, &ch, &format!("turn {i}")).await.expect(201);
    }
    let after =
        value(&scrape(&api_a).await, retries, &[]) + value(&scrape(&api_b).await, retries, &[]);
    assert!(after > before, "{before} -> {after}");
}

/// `x-request-id`: a well-formed one from a proxy comes back; anything
/// else is replaced by a generated one; every response has one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_response_carries_a_request_id() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let id = |h: &reqwest::header::HeaderMap| {
        h.get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (_, h) = api
        .with_headers(
            Method::GET,
            "/healthz",
            &[("x-request-id", "edge-42.a")],
            None,
        )
        .await;
    assert_eq!(id(&h).as_deref(), Some("edge-42.a"));
    let (_, h) = api
        .with_headers(
            Method::GET,
            "/healthz",
            &[("x-request-id", "bad id!")],
            None,
        )
        .await;
    let generated = id(&h).expect("an id");
    assert!(
        generated != "bad id!" && generated.len() == 24,
        "{generated}"
    );
    let (r, h) = api
        .with_headers(Method::GET, "/no/such/route", &[], None)
        .await;
    assert_eq!(r.status, 404);
    let other = id(&h).expect("errors carry one too");
    assert_ne!(other, generated);
}

/// `--log-format json`: one JSON object per line, and the lines written
/// while a request is handled carry its request id (here the access log
/// at debug).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn json_log_lines_carry_the_request_id() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let nats = Nats::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(crate::harness::bin())
        .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
        .args(["--nats", &nats.url(), "--data"])
        .arg(dir.path().join("data"))
        .env("SWITCHBOARD_ADMIN_TOKEN", OPERATOR)
        .env("RUST_LOG", "warn,switchboard_gateway::observe=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn switchboard");
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    let tx_out = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("switchboard listening on ") {
                let _ = tx_out.send(("url", url.trim().to_string()));
            }
        }
    });
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(("log", line));
        }
    });
    let mut base = None;
    let mut logs = Vec::new();
    while base.is_none() {
        match rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server started")
        {
            ("url", u) => base = Some(u),
            (_, l) => logs.push(l),
        }
    }
    let api = Api::new(&base.expect("url"));
    let (r, _) = api
        .with_headers(
            Method::GET,
            "/healthz",
            &[("x-request-id", "trace-me-7")],
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        if let Some(l) = logs.iter().find(|l| l.contains("trace-me-7")) {
            break l.clone();
        }
        let left = deadline
            .checked_duration_since(Instant::now())
            .expect("a log line with the request id");
        if let Ok((_, l)) = rx.recv_timeout(left) {
            logs.push(l);
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(v["span"]["id"], "trace-me-7", "{v}");
    assert_eq!(v["span"]["route"], "/healthz", "{v}");
    assert_eq!(v["fields"]["status"], 200, "{v}");
}

/// Review finding: the `method` label came from the request, so a client
/// could add a new series per made-up method. Only standard methods are
/// labels; anything else counts as `OTHER`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_methods_do_not_add_series() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    for i in 0..3 {
        let m = Method::from_bytes(format!("M{i:05}").as_bytes()).expect("method token");
        let r = reqwest::Client::new()
            .request(m, format!("{}/v1/channels", api.base))
            .send()
            .await
            .expect("request");
        assert!(r.status().is_client_error(), "{}", r.status());
    }
    let text = scrape_until(&api, "OTHER requests", |t| t.contains("method=\"OTHER\"")).await;
    assert!(!text.contains("M00000"), "{text}");
}
