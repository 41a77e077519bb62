//! The read side's bounds: list reads come in pages (`limit`, opaque
//! `cursor`, `next_cursor`), and unknown tokens do not each cost a
//! JetStream round trip.

use crate::harness::{Api, Nats, Server};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Every item of a paginated list, following `next_cursor`; also returns
/// how many pages it took.
async fn all_pages(
    api: &Api,
    token: &str,
    path: &str,
    field: &str,
    limit: u32,
) -> (Vec<Value>, usize) {
    let sep = if path.contains('?') { '&' } else { '?' };
    let (mut out, mut pages) = (Vec::new(), 0);
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            None => format!("{path}{sep}limit={limit}"),
            Some(c) => format!("{path}{sep}limit={limit}&cursor={c}"),
        };
        let b = api.get(&url, token).await.expect(200);
        let items = b[field].as_array().expect("a list").clone();
        assert!(items.len() <= limit as usize, "{b}");
        out.extend(items);
        pages += 1;
        match b["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => {
                assert!(b["next_cursor"].is_null(), "{b}");
                return (out, pages);
            }
        }
        assert!(pages < 100, "pages never end");
    }
}

fn strings(items: &[Value], key: &str) -> Vec<String> {
    items
        .iter()
        .map(|v| v[key].as_str().expect("a string").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_reads_page_with_limit_and_cursor() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "admin").await;
    let mut ids = Vec::new();
    for h in ["zed", "bob", "kim", "eve", "lee", "ann"] {
        ids.push(api.user(&ws, h, "member").await.0);
    }
    let general = api.channel(&ada, "general", false).await;
    for id in &ids {
        api.post(
            &format!("/v1/channels/{general}/members"),
            &ada,
            json!({"user_id": id}),
        )
        .await
        .expect(200);
    }
    for name in ["zulu", "alpha", "mike"] {
        api.channel(&ada, name, false).await;
    }
    api.channel(&ada, "hidden", true).await;

    // Without parameters: the old shape, plus next_cursor null.
    let all = api.get("/v1/users", &ada).await.expect(200);
    assert_eq!(all["users"].as_array().map(Vec::len), Some(7));
    assert!(all["next_cursor"].is_null(), "{all}");

    // Users: handle order, every one once, across pages of 1, 2, 3.
    for limit in [1, 2, 3, 7] {
        let (users, pages) = all_pages(&api, &ada, "/v1/users", "users", limit).await;
        assert_eq!(
            strings(&users, "handle"),
            ["ada", "ann", "bob", "eve", "kim", "lee", "zed"],
            "limit {limit}"
        );
        assert_eq!(pages, 7usize.div_ceil(limit as usize));
    }

    // Members: user id order, every member once.
    let path = format!("/v1/channels/{general}/members");
    let (one_page, _) = all_pages(&api, &ada, &path, "members", 1000).await;
    assert_eq!(one_page.len(), 7);
    for limit in [1, 3] {
        let (members, _) = all_pages(&api, &ada, &path, "members", limit).await;
        let got = strings(&members, "user_id");
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(got, sorted, "user id order");
        assert_eq!(got, strings(&one_page, "user_id"));
        assert_eq!(got.iter().collect::<BTreeSet<_>>().len(), 7);
    }

    // Channels: name order, the caller's private one included.
    for limit in [1, 2, 1000] {
        let (chans, _) = all_pages(&api, &ada, "/v1/channels", "channels", limit).await;
        assert_eq!(
            strings(&chans, "name"),
            ["alpha", "general", "hidden", "mike", "zulu"],
            "limit {limit}"
        );
    }

    // Bad limits and cursors are 400s; a cursor of one list does not fit
    // another's key.
    for q in [
        "limit=0",
        "limit=1001",
        "limit=x",
        "cursor=nothex",
        "cursor=abc",
    ] {
        api.get(&format!("/v1/users?{q}"), &ada)
            .await
            .expect_err(400, "invalid_request");
        api.get(&format!("/v1/channels?{q}"), &ada)
            .await
            .expect_err(400, "invalid_request");
        api.get(&format!("{path}?{q}"), &ada)
            .await
            .expect_err(400, "invalid_request");
    }
    let chan_cursor = api.get("/v1/channels?limit=1", &ada).await.expect(200)["next_cursor"]
        .as_str()
        .expect("more channels")
        .to_string();
    api.get(&format!("/v1/users?cursor={chan_cursor}"), &ada)
        .await
        .expect_err(400, "invalid_request");
}

/// A flood of requests with made-up tokens used to cost one JetStream
/// request each (the ACL model was caught up to the log head, asked of the
/// server, before every 401). Now the head is asked by one request at a
/// time, at most every 50 ms, and shared by everyone waiting — while a
/// token minted a moment ago, through this gateway or another, still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_tokens_do_not_each_cost_a_jetstream_request() {
    let nats = Nats::start_monitored();
    let a = Server::start(&nats);
    let b = Server::start(&nats);
    let (api, other) = (a.api(), b.api());
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "admin").await;
    api.get("/v1/me", &ada).await.expect(200);
    api.get("/v1/me", "sbt_warm_up")
        .await
        .expect_err(401, "unauthorized");

    const CLIENTS: usize = 50;
    const EACH: usize = 10;
    let before = nats.varz("in_msgs").await;
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let api = api.clone();
        tasks.spawn(async move {
            let mut statuses = Vec::new();
            for i in 0..EACH {
                let r = api.get("/v1/me", &format!("sbt_bogus_{c}_{i}")).await;
                statuses.push((r.status, r.code().to_string()));
            }
            statuses
        });
    }
    let mut answered = 0;
    while let Some(statuses) = tasks.join_next().await {
        for (status, code) in statuses.expect("client task") {
            assert_eq!((status, code.as_str()), (401, "unauthorized"));
            answered += 1;
        }
    }
    let took = start.elapsed();
    let received = nats.varz("in_msgs").await - before;
    println!(
        "{answered} requests with unknown tokens in {took:?}: NATS received {received} messages"
    );
    assert_eq!(answered, CLIENTS * EACH);
    assert!(
        received < (CLIENTS * EACH / 5) as u64,
        "{received} messages reached NATS for {answered} bad tokens"
    );

    // The same bad token again is answered from the negative cache.
    let start = Instant::now();
    api.get("/v1/me", "sbt_bogus_0_0")
        .await
        .expect_err(401, "unauthorized");
    assert!(start.elapsed() < Duration::from_secs(2));

    // Tokens minted a moment ago work at once: through another gateway on
    // the same NATS, and through this one.
    let (_, via_b) = other.user(&ws, "bea", "member").await;
    api.get("/v1/me", &via_b).await.expect(200);
    let (_, via_a) = api.user(&ws, "cal", "member").await;
    api.get("/v1/me", &via_a).await.expect(200);
}
