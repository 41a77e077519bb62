//! One backend-agnostic suite: the same scripted corpus and permission
//! cases against every [`SearchBackend`] — FTS5 always, OpenSearch when
//! the `opensearch` feature is built and `OPENSEARCH_URL` is set (no mock
//! stands in for it).

use super::*;
use crate::search::Search;
use switchboard_core::search::parse;

const NOW: i64 = 1_000_000_000;
const DAY: i64 = 86_400_000;

struct Corpus {
    ws: String,
    other_ws: String,
}

fn doc(c: &Corpus, id: i64, mid: &str, channel: &str, text: &str) -> SearchDoc {
    SearchDoc {
        id,
        message_id: format!("{}-{mid}", c.ws),
        workspace_id: c.ws.clone(),
        channel_id: channel.into(),
        sender_id: "U1".into(),
        ts_ms: NOW - DAY * (20 - id),
        thread_root_id: None,
        in_thread: false,
        has_file: false,
        has_link: false,
        has_reaction: false,
        mentions: Vec::new(),
        text: text.into(),
        files: String::new(),
    }
}

async fn find(b: &dyn SearchBackend, c: &Corpus, q: &str, readable: &[&str]) -> Vec<String> {
    find_scoped(b, c, q, readable, |s| s).await
}

async fn find_scoped(
    b: &dyn SearchBackend,
    c: &Corpus,
    q: &str,
    readable: &[&str],
    narrow: impl FnOnce(Scope) -> Scope,
) -> Vec<String> {
    let query = parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
    let scope = narrow(
        Scope {
            workspace_id: c.ws.clone(),
            readable: readable.iter().map(|r| r.to_string()).collect(),
            ..Scope::default()
        }
        .with_flags(&query.filters),
    );
    let found = b
        .search(SearchArgs {
            query,
            scope,
            cursor: None,
            ref_ms: NOW,
            limit: 50,
        })
        .await
        .unwrap_or_else(|e| panic!("{}: {q}: {e}", b.name()));
    let prefix = format!("{}-", c.ws);
    let mut ids: Vec<String> = found
        .hits
        .into_iter()
        .map(|h| h.message_id.trim_start_matches(&prefix).to_string())
        .collect();
    ids.sort();
    ids
}

/// The suite: `ws` is a workspace id no earlier run used.
pub async fn run(b: &dyn SearchBackend, ws: &str) {
    let c = Corpus {
        ws: ws.to_string(),
        other_ws: format!("{ws}x"),
    };
    let mut ops = vec![
        // C1: public, C2: private (the caller is in it), C3: private (not).
        DocOp::Upsert(doc(&c, 1, "m1", "C1", "Café deploy tonight")),
        DocOp::Upsert(SearchDoc {
            sender_id: "U2".into(),
            has_file: true,
            files: "plan.pdf".into(),
            mentions: vec!["U3".into()],
            ..doc(&c, 2, "m2", "C2", "the deployment plan")
        }),
        DocOp::Upsert(doc(&c, 3, "m3", "C3", "deploy secrets")),
        DocOp::Upsert(doc(&c, 4, "m5", "C1", "東京タワー visit")),
        DocOp::Upsert(doc(&c, 5, "m6", "C1", "the old wording")),
        DocOp::Upsert(doc(&c, 6, "m7", "C1", "soon deleted deploy")),
        DocOp::Upsert(SearchDoc {
            in_thread: true,
            has_link: true,
            has_reaction: true,
            thread_root_id: Some("x".into()),
            ..doc(&c, 7, "m8", "C1", "reply with https://example.com")
        }),
    ];
    // Another workspace, same channel id and words.
    ops.push(DocOp::Upsert(SearchDoc {
        workspace_id: c.other_ws.clone(),
        message_id: format!("{}-m4", c.other_ws),
        ..doc(&c, 8, "m4", "C1", "deploy elsewhere")
    }));
    b.apply(ops, 10).await.expect("apply");
    // An edit and a delete, by message id.
    b.apply(
        vec![
            DocOp::Upsert(doc(&c, 5, "m6", "C1", "the new wording")),
            DocOp::Delete {
                workspace_id: c.ws.clone(),
                message_id: format!("{}-m7", c.ws),
            },
        ],
        12,
    )
    .await
    .expect("apply");
    b.settle().await.expect("settle");
    let name = b.name();
    assert_eq!(b.checkpoint().await.expect("checkpoint"), 12, "{name}");

    let both = ["C1", "C2"];
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    // Words, folding, prefixes, phrases, exclusions.
    assert_eq!(find(b, &c, "cafe", &both).await, s(&["m1"]), "{name}");
    assert_eq!(
        find(b, &c, "deploy*", &both).await,
        s(&["m1", "m2"]),
        "{name}"
    );
    assert_eq!(
        find(b, &c, "\"deploy tonight\"", &both).await,
        s(&["m1"]),
        "{name}"
    );
    assert!(
        find(b, &c, "\"tonight deploy\"", &both).await.is_empty(),
        "{name}"
    );
    assert_eq!(
        find(b, &c, "deploy* -plan", &both).await,
        s(&["m1"]),
        "{name}"
    );
    assert_eq!(find(b, &c, "東京", &both).await, s(&["m5"]), "{name}");
    assert_eq!(find(b, &c, "plan.pdf", &both).await, s(&["m2"]), "{name}");
    // Permissions: an unreadable channel and another workspace never; a
    // channel left is not searched on the next query.
    assert!(find(b, &c, "secrets", &both).await.is_empty(), "{name}");
    assert!(find(b, &c, "elsewhere", &both).await.is_empty(), "{name}");
    assert_eq!(find(b, &c, "deploy*", &["C1"]).await, s(&["m1"]), "{name}");
    assert!(find(b, &c, "deploy*", &[]).await.is_empty(), "{name}");
    // Edits replace the text; deletes are gone.
    assert!(find(b, &c, "old", &both).await.is_empty(), "{name}");
    assert_eq!(find(b, &c, "new", &both).await, s(&["m6"]), "{name}");
    assert!(find(b, &c, "deleted", &both).await.is_empty(), "{name}");
    // Filters.
    let from_u2 = find_scoped(b, &c, "deploy*", &both, |s| Scope {
        senders: Some(vec!["U2".into()]),
        ..s
    });
    assert_eq!(from_u2.await, s(&["m2"]), "{name}");
    let mentions = find_scoped(b, &c, "deploy*", &both, |s| Scope {
        mentions: Some(vec!["U3".into()]),
        ..s
    });
    assert_eq!(mentions.await, s(&["m2"]), "{name}");
    let in_c2 = find_scoped(b, &c, "deploy*", &both, |s| Scope {
        channels: Some(vec!["C2".into()]),
        ..s
    });
    assert_eq!(in_c2.await, s(&["m2"]), "{name}");
    assert_eq!(
        find(b, &c, "deploy* has:file", &both).await,
        s(&["m2"]),
        "{name}"
    );
    for q in ["reply has:link", "reply has:reaction", "reply is:thread"] {
        assert_eq!(find(b, &c, q, &both).await, s(&["m8"]), "{name}: {q}");
    }
    // Dates: [since, until).
    let m1_ts = NOW - DAY * 19;
    let window = find_scoped(b, &c, "deploy*", &both, |s| Scope {
        since_ms: Some(m1_ts),
        until_ms: Some(m1_ts + 1),
        ..s
    });
    assert_eq!(window.await, s(&["m1"]), "{name}");

    // Paging: one result a page, each once, then no cursor.
    let query = parse("deploy*").expect("a query");
    let scope = Scope {
        workspace_id: c.ws.clone(),
        readable: s(&both),
        ..Scope::default()
    };
    let mut seen = Vec::new();
    let mut cursor = None;
    for _ in 0..5 {
        let page = b
            .search(SearchArgs {
                query: query.clone(),
                scope: scope.clone(),
                cursor,
                ref_ms: NOW,
                limit: 1,
            })
            .await
            .expect("a page");
        seen.extend(page.hits.into_iter().map(|h| h.message_id));
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        vec![format!("{}-m1", c.ws), format!("{}-m2", c.ws)],
        "{name}"
    );
}

#[tokio::test]
async fn the_suite_passes_on_fts5() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("search.sqlite");
    let (conn, _) = crate::open_model::<Search>(&path).expect("the model");
    let backend = Fts5Backend::writable(Readers::new(&path), conn);
    run(&backend, "Wsuite").await;
    // A read-only handle refuses writes.
    let ro = Fts5Backend::reader(Readers::new(&path));
    assert!(matches!(
        ro.apply(Vec::new(), 1).await,
        Err(BackendError::Unsupported(_))
    ));
}

#[tokio::test]
async fn the_suite_passes_on_opensearch() {
    let Ok(url) = std::env::var("OPENSEARCH_URL") else {
        println!("skipping OpenSearch: OPENSEARCH_URL not set");
        return;
    };
    #[cfg(feature = "opensearch")]
    {
        use crate::search::opensearch::OpenSearchBackend;
        let backend = OpenSearchBackend::connect(&url).expect("a client");
        // The template and indexes, if missing; the corpus lives in a
        // workspace of its own (a test server is still the right target:
        // the suite writes the checkpoint document).
        backend.install().await.expect("install the indexes");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        run(&backend, &format!("Wsuite{nanos}")).await;
    }
    #[cfg(not(feature = "opensearch"))]
    {
        let _ = url;
        println!("skipping OpenSearch: built without the `opensearch` feature");
    }
}
