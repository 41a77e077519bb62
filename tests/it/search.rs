//! `GET /v1/search` on the real binary: the query language and ranking on
//! a scripted corpus, every permission case (by the caller's *current*
//! membership), pages that stay put while messages arrive, and bad
//! queries answered 400 (never 500, never an index error).

use crate::harness::{Api, Nats, Resp, Server};
use serde_json::{json, Value};

/// `/v1/search?` with every parameter percent-encoded.
fn path(params: &[(&str, &str)]) -> String {
    let url = reqwest::Url::parse_with_params("http://x/v1/search", params).expect("url");
    format!("/v1/search?{}", url.query().unwrap_or(""))
}

async fn search(api: &Api, token: &str, params: &[(&str, &str)]) -> Resp {
    api.get(&path(params), token).await
}

/// The ids `q` finds for `token` (sorted), asserting a 200.
async fn ids(api: &Api, token: &str, q: &str) -> Vec<String> {
    ids_with(api, token, &[("q", q)]).await
}

async fn ids_with(api: &Api, token: &str, params: &[(&str, &str)]) -> Vec<String> {
    let body = search(api, token, params).await.expect(200);
    let mut out: Vec<String> = body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["message"]["id"].as_str().expect("id").to_string())
        .collect();
    out.sort();
    out
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

async fn post(api: &Api, token: &str, body: Value) -> String {
    api.post("/v1/messages", token, body).await.expect(201)["id"]
        .as_str()
        .expect("id")
        .to_string()
}

async fn say(api: &Api, token: &str, ch: &str, text: &str) -> String {
    post(api, token, json!({"channel_id": ch, "text": text})).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn search_language_filters_snippets_and_ranking() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (_ada_id, ada) = api.user(&ws, "ada", "admin").await;
    let (bob_id, bob) = api.user(&ws, "bob", "member").await;
    let general = api.channel(&ada, "general", false).await;
    let random = api.channel(&ada, "random", false).await;
    for ch in [&general, &random] {
        api.post(&format!("/v1/channels/{ch}/join"), &bob, json!({}))
            .await
            .expect(200);
    }
    let cafe = say(&api, &ada, &general, "Meet at the Café Crème at noon").await;
    let cafe2 = say(
        &api,
        &bob,
        &general,
        "cafe closed today, deploying tomorrow",
    )
    .await;
    let jp = say(&api, &ada, &general, "明日は東京タワーに行きます").await;
    let rel = say(
        &api,
        &ada,
        &general,
        "the release train is late https://ci.example.com",
    )
    .await;
    let rel2 = say(&api, &bob, &random, "train the release").await;
    let file: Value = reqwest::Client::new()
        .post(format!(
            "{}/v1/files?name=quarterly-notes.pdf&channel_id={general}",
            api.base
        ))
        .bearer_auth(&bob)
        .body(vec![b'x'; 100])
        .send()
        .await
        .expect("upload")
        .json()
        .await
        .expect("upload answer");
    let file_id = file["id"].as_str().expect("file id");
    let reply = post(
        &api,
        &bob,
        json!({"channel_id": general, "text": "release notes attached",
               "thread_root_id": rel, "attachment_ids": [file_id]}),
    )
    .await;
    let mention = say(&api, &ada, &general, "@bob please review the release").await;
    api.post(
        &format!("/v1/messages/{rel2}/reactions"),
        &ada,
        json!({"emoji": "+1"}),
    )
    .await
    .expect(200);

    // Words, diacritics, unspaced scripts, prefixes, phrases, exclusions.
    assert_eq!(
        ids(&api, &bob, "cafe").await,
        sorted(vec![cafe.clone(), cafe2.clone()])
    );
    assert_eq!(
        ids(&api, &bob, "CAFÉ").await,
        sorted(vec![cafe.clone(), cafe2.clone()])
    );
    assert_eq!(ids(&api, &bob, "東京").await, vec![jp.clone()]);
    assert_eq!(ids(&api, &bob, "タワー").await, vec![jp.clone()]);
    assert_eq!(ids(&api, &bob, "deploy*").await, vec![cafe2.clone()]);
    assert_eq!(
        ids(&api, &bob, "\"release train\"").await,
        vec![rel.clone()]
    );
    assert_eq!(
        ids(&api, &bob, "release -late").await,
        sorted(vec![rel2.clone(), reply.clone(), mention.clone()])
    );
    // File names.
    assert_eq!(ids(&api, &bob, "quarterly").await, vec![reply.clone()]);
    // Filters.
    let f = |q: &str| format!("release {q}");
    assert_eq!(ids(&api, &bob, &f("in:#random")).await, vec![rel2.clone()]);
    assert_eq!(
        ids(&api, &bob, &f("from:@bob")).await,
        sorted(vec![rel2.clone(), reply.clone()])
    );
    assert_eq!(ids(&api, &bob, &f("has:link")).await, vec![rel.clone()]);
    assert_eq!(ids(&api, &bob, &f("has:file")).await, vec![reply.clone()]);
    assert_eq!(
        ids(&api, &bob, &f("has:reaction")).await,
        vec![rel2.clone()]
    );
    assert_eq!(
        ids(&api, &bob, &f("is:thread")).await,
        sorted(vec![rel.clone(), reply.clone()])
    );
    assert_eq!(
        ids(&api, &bob, &f("mentions:@bob")).await,
        vec![mention.clone()]
    );
    // The API.md parameters are aliases of the filters.
    assert_eq!(
        ids_with(&api, &bob, &[("q", "release"), ("channel_id", &random)]).await,
        vec![rel2.clone()]
    );
    assert_eq!(
        ids_with(&api, &bob, &[("q", "release"), ("from", &bob_id)]).await,
        sorted(vec![rel2.clone(), reply.clone()])
    );
    // Dates, in the caller's zone: today (UTC) has them all.
    let today = api
        .get(&format!("/v1/channels/{general}/messages?limit=1"), &ada)
        .await
        .expect(200)["messages"][0]["ts"]
        .as_str()
        .expect("ts")[..10]
        .to_string();
    assert_eq!(ids(&api, &bob, &f(&format!("on:{today}"))).await.len(), 4);
    assert!(ids(&api, &bob, &f(&format!("before:{today}")))
        .await
        .is_empty());
    assert!(ids(&api, &bob, &f(&format!("after:{today}")))
        .await
        .is_empty());
    assert_eq!(
        ids_with(
            &api,
            &bob,
            &[("q", "release"), ("after", "2000-01-01"), ("tz", "+09:00")]
        )
        .await
        .len(),
        4
    );
    assert_eq!(
        ids_with(
            &api,
            &bob,
            &[
                ("q", "release"),
                ("after", "2000-01-01"),
                ("tz", "Europe/Paris")
            ]
        )
        .await
        .len(),
        4
    );
    assert_eq!(
        ids_with(
            &api,
            &bob,
            &[
                ("q", "release"),
                ("before", "2000-01-01"),
                ("tz_offset", "-300")
            ]
        )
        .await
        .len(),
        0
    );

    // Results: the message view, an HTML snippet, a score, an estimate.
    let body = search(&api, &bob, &[("q", "café")]).await.expect(200);
    let hit = body["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|r| r["message"]["id"] == cafe.as_str())
        .expect("café found");
    assert_eq!(hit["message"]["text"], "Meet at the Café Crème at noon");
    assert_eq!(hit["message"]["channel_id"], general.as_str());
    assert_eq!(
        hit["snippet"],
        "Meet at the <mark>Café</mark> Crème at noon"
    );
    assert!(hit["score"].as_f64().expect("score") > 0.0);
    assert_eq!(body["total_estimate"], 2);
    assert_eq!(body["next_cursor"], Value::Null);
    let body = search(&api, &bob, &[("q", "東京")]).await.expect(200);
    assert_eq!(
        body["results"][0]["snippet"],
        "明日は<mark>東京</mark>タワーに行きます"
    );
    let evil = say(&api, &ada, &general, "<script>alert('x')</script> marker").await;
    let body = search(&api, &bob, &[("q", "marker")]).await.expect(200);
    assert_eq!(body["results"][0]["message"]["id"], evil.as_str());
    assert_eq!(
        body["results"][0]["snippet"],
        "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; <mark>marker</mark>"
    );

    // Ranking: the denser match first when both are fresh.
    let dense = say(&api, &ada, &random, "outage outage outage").await;
    let sparse = say(
        &api,
        &ada,
        &random,
        "an outage mentioned once in a much longer message about many other things",
    )
    .await;
    let body = search(&api, &bob, &[("q", "outage")]).await.expect(200);
    let order: Vec<&str> = body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["message"]["id"].as_str().expect("id"))
        .collect();
    assert_eq!(order, [dense.as_str(), sparse.as_str()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn search_finds_only_what_the_caller_can_read_now() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (ada_id, ada) = api.user(&ws, "ada", "admin").await;
    let (bob_id, bob) = api.user(&ws, "bob", "member").await;
    let (cy_id, cy) = api.user(&ws, "cy", "member").await;
    let other = api.workspace("Other").await;
    let (_, eve) = api.user(&other, "eve", "admin").await;

    // A public channel: found by every member of the workspace, joined or
    // not; never by another workspace.
    let general = api.channel(&ada, "general", false).await;
    let public = say(&api, &ada, &general, "zebra crossing in public").await;
    for t in [&ada, &bob, &cy] {
        assert_eq!(ids(&api, t, "zebra").await, vec![public.clone()]);
    }
    assert!(ids(&api, &eve, "zebra").await.is_empty());
    let eves = api.channel(&eve, "general", false).await;
    let eve_msg = say(&api, &eve, &eves, "zebra from elsewhere").await;
    assert_eq!(ids(&api, &eve, "zebra").await, [eve_msg]);
    assert_eq!(ids(&api, &ada, "zebra").await, vec![public.clone()]);

    // A private channel: its current members only.
    let secret = api.channel(&ada, "secret", true).await;
    api.post(
        &format!("/v1/channels/{secret}/members"),
        &ada,
        json!({"user_id": bob_id}),
    )
    .await
    .expect(200);
    let plan = say(&api, &ada, &secret, "okapi plan, top secret").await;
    assert_eq!(ids(&api, &ada, "okapi").await, vec![plan.clone()]);
    assert_eq!(ids(&api, &bob, "okapi").await, vec![plan.clone()]);
    assert!(ids(&api, &cy, "okapi").await.is_empty());
    assert!(ids(&api, &eve, "okapi").await.is_empty());
    // Naming it does not help a non-member, and says no more than a
    // channel that does not exist.
    let r = search(&api, &cy, &[("q", "okapi in:#secret")]).await;
    r.expect_err(400, "invalid_request");
    let nope = search(&api, &cy, &[("q", "okapi in:#nope")]).await;
    assert_eq!(
        r.body["error"]["message"]
            .as_str()
            .map(|m| m.replace("secret", "nope")),
        nope.body["error"]["message"].as_str().map(String::from)
    );
    let r = search(&api, &cy, &[("q", "okapi"), ("channel_id", &secret)]).await;
    r.expect_err(400, "invalid_request");
    assert!(!r.body.to_string().contains("okapi plan"));

    // Leaving stops it on the next query.
    api.post(&format!("/v1/channels/{secret}/leave"), &bob, json!({}))
        .await
        .expect(200);
    assert!(ids(&api, &bob, "okapi").await.is_empty());
    // A message posted before cy joined is found once cy is in (as Slack
    // does); removal stops it again.
    api.post(
        &format!("/v1/channels/{secret}/members"),
        &ada,
        json!({"user_id": cy_id}),
    )
    .await
    .expect(200);
    assert_eq!(ids(&api, &cy, "okapi").await, vec![plan.clone()]);
    api.delete(&format!("/v1/channels/{secret}/members/{cy_id}"), &ada)
        .await
        .expect(200);
    assert!(ids(&api, &cy, "okapi").await.is_empty());

    // DMs and group DMs: their members only; in:@user is the 1:1 DM.
    let dm = api
        .post("/v1/dms", &ada, json!({"user_ids": [bob_id]}))
        .await
        .expect(201)["id"]
        .as_str()
        .expect("dm")
        .to_string();
    let group = api
        .post("/v1/dms", &ada, json!({"user_ids": [bob_id, cy_id]}))
        .await
        .expect(201)["id"]
        .as_str()
        .expect("group")
        .to_string();
    let in_dm = say(&api, &ada, &dm, "walrus between us").await;
    let in_group = say(&api, &bob, &group, "walrus for three").await;
    assert_eq!(
        ids(&api, &ada, "walrus").await,
        sorted(vec![in_dm.clone(), in_group.clone()])
    );
    assert_eq!(
        ids(&api, &bob, "walrus").await,
        sorted(vec![in_dm.clone(), in_group.clone()])
    );
    assert_eq!(ids(&api, &cy, "walrus").await, vec![in_group.clone()]);
    assert!(ids(&api, &eve, "walrus").await.is_empty());
    assert_eq!(ids(&api, &bob, "walrus in:@ada").await, vec![in_dm.clone()]);
    assert_eq!(ids(&api, &ada, "walrus in:@bob").await, vec![in_dm.clone()]);
    assert!(ids(&api, &cy, "walrus in:@ada").await.is_empty());
    let _ = ada_id;

    // Edits replace the indexed text; deletes are never found.
    api.patch(
        &format!("/v1/messages/{public}"),
        &ada,
        json!({"text": "giraffe crossing in public"}),
    )
    .await
    .expect(200);
    assert!(ids(&api, &bob, "zebra").await.is_empty());
    assert_eq!(ids(&api, &bob, "giraffe").await, vec![public.clone()]);
    api.delete(&format!("/v1/messages/{public}"), &ada)
        .await
        .expect(200);
    assert!(ids(&api, &bob, "giraffe").await.is_empty());
    assert!(ids(&api, &bob, "crossing").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn search_pages_stay_stable_while_messages_arrive() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "admin").await;
    let ch = api.channel(&ada, "general", false).await;
    // The default backend, as /readyz reports it.
    let ready = api.call(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.body["search_backend"], "fts5", "{}", ready.body);
    assert!(ready.body["search_backend_lag"].is_null(), "{}", ready.body);
    let mut posted = Vec::new();
    for i in 0..25 {
        posted.push(say(&api, &ada, &ch, &format!("weekly report {i}")).await);
    }
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0.. {
        assert!(page < 10, "pages end");
        let mut params = vec![("q", "report".to_string()), ("limit", "10".to_string())];
        if let Some(c) = &cursor {
            params.push(("cursor", c.clone()));
        }
        let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let body = search(&api, &ada, &p).await.expect(200);
        if page == 0 {
            assert_eq!(body["total_estimate"], 25);
        }
        seen.extend(
            body["results"]
                .as_array()
                .expect("results")
                .iter()
                .map(|r| r["message"]["id"].as_str().expect("id").to_string()),
        );
        // New matches arrive between pages; they are not in this search.
        for j in 0..4 {
            say(&api, &ada, &ch, &format!("report again, page {page} {j}")).await;
        }
        cursor = body["next_cursor"].as_str().map(String::from);
        if cursor.is_none() {
            break;
        }
    }
    posted.reverse();
    assert_eq!(seen, posted, "each original match once, newest first");
    // A new search sees the new ones.
    let body = search(&api, &ada, &[("q", "report"), ("limit", "1")])
        .await
        .expect(200);
    assert_eq!(body["total_estimate"], 25 + 3 * 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_search_queries_are_400_and_hostile_ones_are_text() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "admin").await;
    let ch = api.channel(&ada, "general", false).await;
    let m = say(&api, &ada, &ch, "near the table: drop it, a^b or c").await;

    let long = "a".repeat(1001);
    let ten_kb = "word ".repeat(2048);
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("q", "")], "empty"),
        (vec![("q", "   ")], "empty"),
        (vec![], "q"),
        (vec![("q", "^")], "nothing to search for"),
        (vec![("q", ":")], "nothing to search for"),
        (vec![("q", "*")], "a * ends a word"),
        (vec![("q", "\"")], "unbalanced"),
        (vec![("q", "\"near the")], "unbalanced"),
        (vec![("q", "-table")], "exclusions alone"),
        (vec![("q", "from:@ada has:link")], "filters alone"),
        (vec![("q", &long)], "at most 1000 characters"),
        (vec![("q", &ten_kb)], "at most 1000 characters"),
        (vec![("q", "near foo:bar")], "unknown filter"),
        (vec![("q", "near in:#nope")], "no channel #nope"),
        (vec![("q", "near from:@nobody")], "no user @nobody"),
        (vec![("q", "near on:2026-13-01")], "on: expects a date"),
        (vec![("q", "near"), ("tz", "Mars/Olympus_Mons")], "tz:"),
        (vec![("q", "near"), ("tz_offset", "9999")], "tz_offset"),
        (vec![("q", "near"), ("cursor", "garbage")], "cursor"),
        (vec![("q", "near"), ("limit", "0")], "limit"),
        (vec![("q", "near"), ("limit", "101")], "limit"),
        (vec![("q", "near"), ("channel_id", "a.b")], "channel_id"),
        (vec![("q", "near"), ("before", "soon")], "before"),
    ];
    for (params, needle) in &cases {
        let r = search(&api, &ada, params).await;
        r.expect_err(400, "invalid_request");
        let msg = r.body["error"]["message"].as_str().unwrap_or("");
        assert!(msg.contains(needle), "{params:?}: {msg}");
    }
    // Index syntax and SQL in user input are just text: 200, and the match
    // is the literal words.
    for q in [
        "NEAR(",
        "NEAR(near table)",
        "near*",
        "a^b",
        "^near",
        "\"NEAR(\"",
        "near : table",
        "'; DROP TABLE docs; --",
        "\" OR 1=1 --\"",
        "table OR",
        "AND NOT near",
        "{text files} : near",
        "near\u{0}table",
    ] {
        let r = search(&api, &ada, &[("q", q)]).await;
        assert_eq!(r.status, 200, "{q:?}: {}", r.body);
    }
    assert_eq!(ids(&api, &ada, "NEAR(").await, vec![m.clone()]);
    assert_eq!(ids(&api, &ada, "'; DROP TABLE").await, vec![m.clone()]);
    assert_eq!(ids(&api, &ada, "table").await, [m]);
}

/// The backend is chosen by configuration; a bad choice stops at startup
/// with the reason, before anything is served.
#[tokio::test]
async fn search_backend_configuration_is_checked_at_startup() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let unused = "nats://127.0.0.1:1";
    let (ok, _, err) =
        crate::harness::run_cli(&["serve", "--search", "opensearch"], dir.path(), unused);
    assert!(!ok);
    assert!(err.contains("needs --opensearch-url"), "{err}");
    let (ok, _, err) =
        crate::harness::run_cli(&["serve", "--search", "elastic"], dir.path(), unused);
    assert!(!ok);
    assert!(err.contains("elastic"), "{err}");
}
