//! The JSON the OpenSearch backend sends, asserted without a server.

use super::*;
use switchboard_core::search::parse;

fn doc(id: i64, message_id: &str, text: &str) -> SearchDoc {
    SearchDoc {
        id,
        message_id: message_id.into(),
        workspace_id: "W1".into(),
        channel_id: "C1".into(),
        sender_id: "U1".into(),
        ts_ms: 1_000,
        thread_root_id: None,
        in_thread: false,
        has_file: false,
        has_link: false,
        has_reaction: false,
        mentions: vec!["U2".into()],
        text: text.into(),
        files: String::new(),
    }
}

fn scope() -> Scope {
    Scope {
        workspace_id: "W1".into(),
        readable: vec!["C1".into(), "C2".into()],
        ..Scope::default()
    }
}

#[test]
fn the_template_maps_every_field_explicitly() {
    let t = index_template();
    assert_eq!(t["index_patterns"], json!(["switchboard-messages*"]));
    let m = &t["template"]["mappings"];
    assert_eq!(m["dynamic"], "strict");
    assert_eq!(m["_routing"]["required"], true);
    for (field, kind) in [
        ("workspace", "keyword"),
        ("channel", "keyword"),
        ("sender", "keyword"),
        ("thread", "keyword"),
        ("mentions", "keyword"),
        ("ts", "date"),
        ("has_file", "boolean"),
        ("has_link", "boolean"),
        ("has_reaction", "boolean"),
        ("in_thread", "boolean"),
        ("text", "text"),
        ("files", "text"),
    ] {
        assert_eq!(m["properties"][field]["type"], kind, "{field}");
    }
    assert_eq!(m["properties"]["text"]["analyzer"], "folded");
    assert_eq!(m["properties"]["text"]["fields"]["cjk"]["analyzer"], "cjk");
    assert_eq!(
        t["template"]["settings"]["analysis"]["analyzer"]["folded"],
        json!({"type": "custom", "tokenizer": "standard",
               "filter": ["lowercase", "asciifolding"]})
    );
    // Every field a document has is mapped (strict mapping would refuse
    // it otherwise).
    let src = doc_source(&doc(1, "M1", "x"));
    for key in src.as_object().expect("an object").keys() {
        assert!(m["properties"].get(key).is_some(), "{key} unmapped");
    }
}

#[test]
fn bulk_bodies_route_by_workspace_and_key_by_message_id() {
    let ops = vec![
        DocOp::Upsert(doc(7, "M1", "héllo")),
        DocOp::Delete {
            workspace_id: "W1".into(),
            message_id: "M2".into(),
        },
    ];
    let bodies = bulk_bodies(&ops);
    assert_eq!(bodies.len(), 1);
    let lines: Vec<Value> = bodies[0]
        .0
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert!(bodies[0].0.ends_with('\n'));
    assert_eq!(
        lines[0],
        json!({"index": {"_index": "switchboard-messages", "_id": "M1", "routing": "W1"}})
    );
    assert_eq!(lines[1]["text"], "héllo");
    assert_eq!(lines[1]["id"], 7);
    assert_eq!(lines[1]["mentions"], json!(["U2"]));
    assert_eq!(
        lines[2],
        json!({"delete": {"_index": "switchboard-messages", "_id": "M2", "routing": "W1"}})
    );
    assert_eq!(lines.len(), 3);
    assert_eq!(bodies[0].1, ops);

    // Bounded batches: by count, then by bytes.
    let many: Vec<DocOp> = (0..1_201)
        .map(|i| DocOp::Upsert(doc(i, &format!("M{i}"), "x")))
        .collect();
    let sizes: Vec<usize> = bulk_bodies(&many).iter().map(|b| b.1.len()).collect();
    assert_eq!(sizes, vec![500, 500, 201]);
    let big = "y".repeat(BULK_MAX_BYTES / 2);
    let heavy: Vec<DocOp> = (0..3)
        .map(|i| DocOp::Upsert(doc(i, &format!("M{i}"), &big)))
        .collect();
    let sizes: Vec<usize> = bulk_bodies(&heavy).iter().map(|b| b.1.len()).collect();
    assert_eq!(sizes, vec![1, 1, 1]);
}

#[test]
fn bulk_outcomes_sort_items_into_acked_retry_and_failed() {
    let response = json!({"errors": true, "items": [
        {"index": {"_id": "a", "status": 201}},
        {"index": {"_id": "b", "status": 429}},
        {"delete": {"_id": "c", "status": 404}},
        {"index": {"_id": "d", "status": 503}},
        {"index": {"_id": "e", "status": 400, "error": {"type": "mapper_parsing_exception"}}},
        {"delete": {"_id": "f", "status": 200}}
    ]});
    let o = bulk_outcomes(&response);
    assert_eq!(o[0], ItemOutcome::Acked);
    assert_eq!(o[1], ItemOutcome::Retry);
    assert_eq!(o[2], ItemOutcome::Acked);
    assert_eq!(o[3], ItemOutcome::Retry);
    assert!(matches!(&o[4], ItemOutcome::Failed(why) if why.contains("mapper_parsing")));
    assert_eq!(o[5], ItemOutcome::Acked);
    assert!(retryable(429) && retryable(500) && retryable(503));
    assert!(!retryable(400) && !retryable(404) && !retryable(200));
}

#[test]
fn retries_back_off_exponentially_with_a_cap_and_a_limit() {
    let p = RetryPolicy::default();
    let ms = |n| p.delay(n).map(|d| d.as_millis());
    assert_eq!(ms(0), None);
    assert_eq!(ms(1), Some(100));
    assert_eq!(ms(2), Some(200));
    assert_eq!(ms(3), Some(400));
    assert_eq!(ms(7), Some(6_400));
    assert_eq!(ms(8), Some(10_000));
    assert_eq!(ms(9), Some(10_000));
    assert_eq!(ms(10), None);
    let long = RetryPolicy { attempts: 100, ..p };
    assert_eq!(long.delay(60).map(|d| d.as_millis()), Some(10_000));
}

#[test]
fn a_query_is_a_bool_query_with_the_permission_filter_inside() {
    let q = parse(r#"deploy* "exact words" café -draft"#).expect("a query");
    let body = search_body(&q, &scope(), None, 5_000, 20);
    let fs = &body["query"]["function_score"];
    let b = &fs["query"]["bool"];
    assert_eq!(
        b["must"],
        json!([
            {"bool": {"should": [
                {"prefix": {"text": {"value": "deploy", "case_insensitive": true}}},
                {"prefix": {"files": {"value": "deploy", "case_insensitive": true}}}
            ], "minimum_should_match": 1}},
            {"multi_match": {"query": "exact words", "type": "phrase", "fields": ["text", "files"]}},
            {"multi_match": {"query": "café", "type": "phrase", "fields": ["text", "files"]}}
        ])
    );
    assert_eq!(
        b["must_not"],
        json!([{"multi_match": {"query": "draft", "type": "phrase", "fields": ["text", "files"]}}])
    );
    assert_eq!(
        b["filter"],
        json!([
            {"term": {"workspace": "W1"}},
            {"terms": {"channel": ["C1", "C2"]}},
            {"range": {"ts": {"lte": 5_000}}}
        ])
    );
    // Ranking: BM25 times 0.5 + 0.5 · 2^(−age/30d).
    assert_eq!(
        fs["functions"],
        json!([
            {"weight": 0.5},
            {"exp": {"ts": {"origin": "5000", "scale": "30d", "decay": 0.5}}, "weight": 0.5}
        ])
    );
    assert_eq!(fs["score_mode"], "sum");
    assert_eq!(fs["boost_mode"], "multiply");
    assert_eq!(body["size"], 21);
    assert_eq!(body["sort"], json!([{"_score": "desc"}, {"id": "desc"}]));
    assert!(body.get("search_after").is_none());
    assert_eq!(body["highlight"]["pre_tags"], json!(["\u{E000}"]));
}

#[test]
fn filters_become_term_terms_and_range_filters() {
    let q = parse("x has:file has:link has:reaction is:thread").expect("a query");
    let s = Scope {
        channels: Some(vec!["C2".into()]),
        senders: Some(vec!["U1".into()]),
        mentions: Some(vec!["U3".into(), "U4".into()]),
        since_ms: Some(100),
        until_ms: Some(200),
        ..scope()
    }
    .with_flags(&q.filters);
    let f = filter_clauses(&s, 9_000);
    assert_eq!(
        Value::Array(f),
        json!([
            {"term": {"workspace": "W1"}},
            {"terms": {"channel": ["C1", "C2"]}},
            {"range": {"ts": {"lte": 9_000}}},
            {"terms": {"channel": ["C2"]}},
            {"terms": {"sender": ["U1"]}},
            {"terms": {"mentions": ["U3", "U4"]}},
            {"range": {"ts": {"gte": 100, "lt": 200}}},
            {"term": {"has_file": true}},
            {"term": {"has_link": true}},
            {"term": {"has_reaction": true}},
            {"term": {"in_thread": true}}
        ])
    );
    // Only one side of a date range.
    let s = Scope {
        until_ms: Some(200),
        ..scope()
    };
    assert_eq!(
        filter_clauses(&s, 1)[3],
        json!({"range": {"ts": {"lt": 200}}})
    );
}

#[test]
fn unspaced_text_uses_the_cjk_fields_and_syntax_stays_text() {
    let q = parse("東京 NEAR(a").expect("a query");
    let body = search_body(&q, &scope(), None, 1, 5);
    let must = &body["query"]["function_score"]["query"]["bool"]["must"];
    assert_eq!(
        must[0],
        json!({"multi_match": {"query": "東京", "type": "phrase", "fields": ["text.cjk", "files.cjk"]}})
    );
    assert_eq!(must[1]["multi_match"]["query"], "NEAR(a");
}

#[test]
fn a_next_page_continues_after_the_cursor() {
    let q = parse("x").expect("a query");
    let c = Cursor {
        snapshot: 0,
        ref_ms: 77,
        score: 1.5,
        rowid: 42,
    };
    let body = search_body(&q, &scope(), Some(&c), 77, 10);
    assert_eq!(body["search_after"], json!([1.5, 42]));
    let response = json!({"hits": {"total": {"value": 3, "relation": "eq"}, "hits": [
        {"_id": "M1", "_source": {"message_id": "M1"}, "sort": [2.0, 9],
         "highlight": {"text": ["a \u{E000}x\u{E001}"]}},
        {"_id": "M2", "_source": {"message_id": "M2"}, "sort": [1.0, 8]}
    ]}});
    let (hits, total) = parse_hits(&response);
    assert_eq!(total, 3);
    assert_eq!(
        hits,
        vec![
            ("M1".to_string(), 9, 2.0, "a \u{E000}x\u{E001}".to_string()),
            ("M2".to_string(), 8, 1.0, String::new())
        ]
    );
}

#[test]
fn the_checkpoint_is_a_small_document() {
    assert_eq!(checkpoint_doc(12), json!({"seq": 12}));
    assert_eq!(
        checkpoint_mapping()["mappings"]["properties"]["seq"]["type"],
        "long"
    );
}
