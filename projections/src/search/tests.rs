//! Given events, expect documents and query answers: the search fold and
//! query on in-memory SQLite.

use super::*;
use crate::testkit::*;
use switchboard_core::search::parse;

const CH: &str = "C1";
const OTHER: &str = "C2";

fn model() -> Model<Search> {
    Model::new()
}

fn scope(readable: &[&str]) -> Scope {
    Scope {
        workspace_id: WS.into(),
        readable: readable.iter().map(|c| c.to_string()).collect(),
        ..Scope::default()
    }
}

/// The message ids `q` finds in `readable`, best first.
fn find_in(m: &Model<Search>, q: &str, s: &Scope) -> Vec<String> {
    let q = parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
    let s = s.clone().with_flags(&q.filters);
    search(m.conn(), &q, &s, None, 1_000_000, 100)
        .expect("search runs")
        .hits
        .into_iter()
        .map(|h| h.message_id)
        .collect()
}

fn find(m: &Model<Search>, q: &str) -> Vec<String> {
    let mut ids = find_in(m, q, &scope(&[CH, OTHER]));
    ids.sort();
    ids
}

#[test]
fn the_bundled_sqlite_has_fts5_and_its_tokenizers() {
    let c = Connection::open_in_memory().expect("sqlite");
    c.execute_batch(
        "CREATE VIRTUAL TABLE w USING fts5(t, tokenize = 'unicode61 remove_diacritics 2');
         CREATE VIRTUAL TABLE g USING fts5(t, tokenize = 'trigram');
         INSERT INTO w VALUES ('Café crème'); INSERT INTO g VALUES ('東京タワー');",
    )
    .expect("fts5 with unicode61 and trigram");
    let n = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).expect(sql) };
    assert_eq!(n("SELECT COUNT(*) FROM w WHERE w MATCH 'cafe creme'"), 1);
    assert_eq!(n("SELECT COUNT(*) FROM g WHERE g MATCH '東京タ'"), 1);
    // Why the index uses bigrams instead: a trigram index cannot match a
    // two-character word.
    assert_eq!(n("SELECT COUNT(*) FROM g WHERE g MATCH '東京'"), 0);
}

/// Schema v4: a root's first reply marks the root's row and leaves its
/// index entries alone (no `zthread` term anywhere; the root's terms are
/// the ones it was posted with), and `is:thread` still finds the root.
#[test]
fn a_first_reply_marks_the_root_without_reindexing_it() {
    let (mut m, mut f) = (model(), Feed::new());
    m.apply(&[f.ch(CH, "alice", posted("R", "standup notes"))]);
    let terms_before = m.int(
        "SELECT COUNT(*) FROM fts_terms WHERE doc = (SELECT id FROM docs WHERE message_id = 'R')",
        [],
    );
    m.apply(&[
        f.ch(CH, "bob", reply("A", "R", "standup moved")),
        f.ch(CH, "carol", reply("B", "R", "standup again")),
    ]);
    assert_eq!(
        m.int("SELECT has_replies FROM docs WHERE message_id = 'R'", []),
        1
    );
    assert_eq!(
        m.int(
            "SELECT COUNT(*) FROM fts_terms WHERE doc = (SELECT id FROM docs WHERE message_id = 'R')",
            [],
        ),
        terms_before
    );
    assert_eq!(
        m.int("SELECT COUNT(*) FROM fts_terms WHERE term = 'zthread'", []),
        0
    );
    assert_eq!(
        m.int("SELECT COUNT(*) FROM docs WHERE meta LIKE '%zthread%'", []),
        0
    );
    assert_eq!(find(&m, "standup is:thread"), ["A", "B", "R"]);
    // A post nobody replied to is not in a thread.
    m.apply(&[f.ch(CH, "alice", posted("S", "standup alone"))]);
    assert_eq!(find(&m, "standup is:thread"), ["A", "B", "R"]);
    assert_eq!(find(&m, "standup"), ["A", "B", "R", "S"]);
}

#[test]
fn posts_replies_and_file_names_are_found() {
    let (mut m, mut f) = (model(), Feed::new());
    m.apply(&[
        f.ch(CH, "alice", posted("R", "the deploy train leaves at noon")),
        f.ch(
            CH,
            "bob",
            reply("A", "R", "deployment blocked by flaky tests"),
        ),
        f.ch(CH, "bob", uploaded("F1", "quarterly-report.pdf", 10)),
        f.ch(CH, "bob", posted_with_files("P", "see attached", &["F1"])),
        // Someone else's upload cannot be attached: its name is not indexed.
        f.ch(CH, "carol", uploaded("F2", "salaries.xlsx", 10)),
        f.ch(CH, "bob", posted_with_files("Q", "also this", &["F2"])),
    ]);
    assert_eq!(find(&m, "train"), ["R"]);
    assert_eq!(find(&m, "flaky"), ["A"]);
    assert_eq!(find(&m, "quarterly"), ["P"]);
    assert_eq!(find(&m, "report pdf"), ["P"]);
    assert!(find(&m, "salaries").is_empty());
    assert_eq!(
        m.int("SELECT has_file FROM docs WHERE message_id = 'P'", []),
        1
    );
    assert_eq!(
        m.int("SELECT has_file FROM docs WHERE message_id = 'Q'", []),
        0
    );
    // The root of a thread with replies and the reply are "in a thread".
    assert_eq!(find(&m, "deploy* is:thread"), ["A", "R"]);
    assert!(find(&m, "attached is:thread").is_empty());
}

#[test]
fn edits_replace_the_text_and_deletes_remove_the_document() {
    let (mut m, mut f) = (model(), Feed::new());
    m.apply(&[
        f.ch(CH, "alice", posted("M1", "the password is hunter2")),
        f.ch(CH, "alice", uploaded("F1", "secret-plan.txt", 10)),
        f.ch(
            CH,
            "alice",
            posted_with_files("M2", "plan attached", &["F1"]),
        ),
        f.ch(CH, "bob", reacted("M2", "+1")),
    ]);
    assert_eq!(find(&m, "hunter2"), ["M1"]);
    m.apply(&[f.ch(CH, "alice", edited("M1", "nothing to see"))]);
    assert!(find(&m, "hunter2").is_empty(), "old text gone");
    assert_eq!(find(&m, "nothing"), ["M1"]);
    // The attachment's name survives an edit of the text.
    m.apply(&[f.ch(CH, "alice", edited("M2", "the plan, revised"))]);
    assert_eq!(find(&m, "secret"), ["M2"]);
    assert_eq!(find(&m, "revised"), ["M2"]);

    m.apply(&[
        f.ch(CH, "alice", deleted("M2")),
        f.ch(CH, "alice", deleted("M1")),
    ]);
    for q in ["nothing", "secret", "plan", "revised", "hunter2"] {
        assert!(find(&m, q).is_empty(), "{q}");
    }
    assert_eq!(m.int("SELECT COUNT(*) FROM docs", []), 0);
    assert_eq!(m.int("SELECT COUNT(*) FROM files", []), 0);
    assert_eq!(m.int("SELECT COUNT(*) FROM reactions", []), 0);
    assert_eq!(
        m.int("SELECT COUNT(*) FROM fts_terms", []),
        0,
        "index empty"
    );
    // An edit or a reaction racing past the tombstone brings nothing back.
    m.apply(&[
        f.ch(CH, "alice", edited("M1", "resurrected hunter2")),
        f.ch(CH, "bob", reacted("M1", "+1")),
    ]);
    assert!(find(&m, "resurrected").is_empty());
    assert_eq!(m.int("SELECT COUNT(*) FROM reactions", []), 0);
    m.conn()
        .execute("INSERT INTO fts (fts) VALUES ('integrity-check')", [])
        .expect("index agrees with docs");
}

#[test]
fn reactions_set_and_clear_has_reaction() {
    let (mut m, mut f) = (model(), Feed::new());
    m.apply(&[
        f.ch(CH, "alice", posted("M1", "ship it")),
        f.ch(CH, "bob", reacted("M1", "+1")),
        f.ch(CH, "carol", reacted("M1", "+1")),
    ]);
    assert_eq!(find(&m, "ship has:reaction"), ["M1"]);
    m.apply(&[f.ch(CH, "bob", unreacted("M1", "+1"))]);
    assert_eq!(find(&m, "ship has:reaction"), ["M1"], "carol's remains");
    m.apply(&[f.ch(CH, "carol", unreacted("M1", "+1"))]);
    assert!(find(&m, "ship has:reaction").is_empty());
    assert_eq!(find(&m, "ship"), ["M1"]);
}

#[test]
fn words_fold_case_and_diacritics_prefixes_phrases_exclusions() {
    let (mut m, mut f) = (model(), Feed::new());
    m.apply(&[
        f.ch(CH, "alice", posted("M1", "Meet at the Café Crème")),
        f.ch(CH, "alice", posted("M2", "cafe closed, deploying later")),
        f.ch(CH, "alice", posted("M3", "the release train is late")),
        f.ch(CH, "alice", posted("M4", "train the release")),
    ]);
    assert_eq!(find(&m, "cafe"), ["M1", "M2"]);
    assert_eq!(find(&m, "CAFÉ"), ["M1", "M2"]);
    assert_eq!(find(&m, "creme"), ["M1"]);
    assert_eq!(find(&m, "deploy*"), ["M2"]);
    assert!(find(&m, "deploy").is_empty());
    assert_eq!(find(&m, "\"release train\""), ["M3"]);
    assert_eq!(find(&m, "release train"), ["M3", "M4"]);
    assert_eq!(find(&m, "release -late"), ["M4"]);
    assert_eq!(find(&m, "cafe -\"café crème\""), ["M2"]);
}

#[test]
fn unspaced_scripts_are_found_by_substring() {
    let (mut m, mut f) = (model(), Feed::new());
    m.apply(&[
        f.ch(CH, "alice", posted("J", "明日は東京タワーに行きます")),
        f.ch(CH, "alice", posted("Z", "我们在北京开会")),
        f.ch(CH, "alice", posted("K", "서울에서 만나요")),
        f.ch(CH, "alice", posted("X", "tokyo tower")),
        f.ch(CH, "alice", uploaded("F", "東京地図.png", 1)),
        f.ch(CH, "alice", posted_with_files("P", "map", &["F"])),
    ]);
    assert_eq!(find(&m, "東京"), ["J", "P"]);
    assert_eq!(find(&m, "東京タワー"), ["J"]);
    assert_eq!(find(&m, "タワー"), ["J"]);
    assert_eq!(find(&m, "京"), ["J", "P", "Z"], "北京 has 京 too");
    assert_eq!(find(&m, "北京"), ["Z"]);
    assert_eq!(find(&m, "开会"), ["Z"]);
    assert_eq!(find(&m, "서울"), ["K"]);
    assert_eq!(find(&m, "地図"), ["P"]);
    assert!(find(&m, "大阪").is_empty());
    assert!(find(&m, "東京 -タワー").contains(&"P".to_string()));
    assert_eq!(find(&m, "tower"), ["X"]);
    // The snippet is the text with the match marked.
    let q = parse("東京").expect("parse");
    let found = search(m.conn(), &q, &scope(&[CH]), None, 0, 10).expect("search");
    let j = found.hits.iter().find(|h| h.message_id == "J").expect("J");
    assert_eq!(j.snippet, "明日は\u{E000}東京\u{E001}タワーに行きます");
}

#[test]
fn filters_narrow_inside_the_query() {
    let (mut m, mut f) = (model(), Feed::new());
    m.apply(&[
        f.ch(CH, "alice", posted("A1", "status update")),
        f.ch(
            CH,
            "bob",
            posted_mentioning("B1", "status @carol", mentions(&["carol"], false, false)),
        ),
        f.ch(OTHER, "bob", posted("B2", "status see https://example.com")),
    ]);
    let s = scope(&[CH, OTHER]);
    let with = |edit: &dyn Fn(&mut Scope)| {
        let mut s = s.clone();
        edit(&mut s);
        let mut ids = find_in(&m, "status", &s);
        ids.sort();
        ids
    };
    assert_eq!(with(&|_| {}), ["A1", "B1", "B2"]);
    assert_eq!(
        with(&|s| s.senders = Some(vec!["bob".into()])),
        ["B1", "B2"]
    );
    assert_eq!(with(&|s| s.channels = Some(vec![OTHER.into()])), ["B2"]);
    assert_eq!(with(&|s| s.mentions = Some(vec!["carol".into()])), ["B1"]);
    assert_eq!(with(&|s| s.has_link = true), ["B2"]);
    // Feed timestamps are 1,000 ms per stream seq: A1 at 1,000.
    assert_eq!(with(&|s| s.until_ms = Some(2_000)), ["A1"]);
    assert_eq!(with(&|s| s.since_ms = Some(2_000)), ["B1", "B2"]);
    // Readable channels bound everything, filters included.
    assert_eq!(with(&|s| s.readable = vec![CH.into()]), ["A1", "B1"]);
    assert!(with(&|s| {
        s.readable = vec![CH.into()];
        s.channels = Some(vec![OTHER.into()]);
    })
    .is_empty());
    assert!(with(&|s| s.readable = vec![]).is_empty());
    assert!(with(&|s| s.workspace_id = "W2".into()).is_empty());
    // Mentions follow edits.
    m.apply(&[f.ch(CH, "bob", edited("B1", "status nobody"))]);
    let mut s2 = s.clone();
    s2.mentions = Some(vec!["carol".into()]);
    assert!(find_in(&m, "status", &s2).is_empty());
}

#[test]
fn hostile_input_is_only_ever_text() {
    let (mut m, mut f) = (model(), Feed::new());
    m.apply(&[f.ch(
        CH,
        "alice",
        posted("M1", "near the table, drop it: a^b OR c"),
    )]);
    for q in [
        "NEAR(",
        "NEAR(a b, 2)",
        "a^b",
        "^drop",
        "col:umn",
        "x:y z",
        "\"unbalanced\" \"",
        "'; DROP TABLE docs; --",
        "OR AND NOT",
        "\"\"\"\"",
        "a\"b",
        "table*",
        "{text} : drop",
        "grams : x",
        "-drop near",
        "\u{0}near",
    ] {
        // Whatever the parser accepts, the index runs without error.
        if let Ok(parsed) = parse(q) {
            search(m.conn(), &parsed, &scope(&[CH]), None, 0, 10)
                .unwrap_or_else(|e| panic!("{q:?} → {}: {e}", fts_match(&parsed)));
        }
    }
    assert_eq!(find(&m, "NEAR("), ["M1"]);
    assert_eq!(find(&m, "'; DROP TABLE"), ["M1"]);
    assert_eq!(find(&m, "OR"), ["M1"]);
    assert_eq!(m.int("SELECT COUNT(*) FROM docs", []), 1);
}

#[test]
fn pages_are_stable_while_new_messages_arrive() {
    let (mut m, mut f) = (model(), Feed::new());
    let batch: Vec<_> = (0..25)
        .map(|i| f.ch(CH, "alice", posted(&format!("M{i:02}"), "weekly report")))
        .collect();
    m.apply(&batch);
    let q = parse("report").expect("parse");
    let s = scope(&[CH]);
    let first = search(m.conn(), &q, &s, None, 100_000, 10).expect("page 1");
    assert_eq!(first.total_estimate, 25);
    // Same score, newer first (recency, then rowid).
    assert_eq!(first.hits[0].message_id, "M24");
    let mut seen: Vec<String> = first.hits.iter().map(|h| h.message_id.clone()).collect();
    let mut cursor = first.next;
    let mut pages = 1;
    while let Some(c) = cursor {
        // New matching messages (longer ones, scoring differently) and a
        // shift of the corpus statistics between pages.
        let more: Vec<_> = (0..5)
            .map(|i| {
                f.ch(
                    CH,
                    "bob",
                    posted(&format!("N{pages}{i}"), "report report again"),
                )
            })
            .collect();
        m.apply(&more);
        let page = search(m.conn(), &q, &s, Some(c), 0, 10).expect("next page");
        seen.extend(page.hits.iter().map(|h| h.message_id.clone()));
        cursor = page.next;
        pages += 1;
        assert!(pages < 10);
    }
    let expected: Vec<String> = (0..25).rev().map(|i| format!("M{i:02}")).collect();
    assert_eq!(
        seen, expected,
        "every original hit once, in order, nothing new"
    );
    assert_eq!(pages, 3);
}

#[test]
fn ranking_blends_relevance_and_recency() {
    let (mut m, mut f) = (model(), Feed::new());
    m.apply(&[
        f.ch(CH, "alice", posted("OLD", "outage outage outage")),
        f.ch(
            CH,
            "alice",
            posted("NEW", "outage in a long message about other things too"),
        ),
    ]);
    let q = parse("outage").expect("parse");
    let s = scope(&[CH]);
    // Right after posting, the denser match ranks first.
    let now = search(m.conn(), &q, &s, None, 3_000, 10).expect("search");
    assert_eq!(now.hits[0].message_id, "OLD");
    assert!(now.hits[0].score > now.hits[1].score && now.hits[1].score > 0.0);
    // The recency factor is 1 now, 0.75 a half-life ago, towards 0.5.
    assert!((blend(2.0, 0, 0) - 2.0).abs() < 1e-9);
    let half = (RECENCY_HALF_LIFE_DAYS * 86_400_000.0) as i64;
    assert!((blend(2.0, 0, half) - 1.5).abs() < 1e-9);
    assert!(blend(2.0, 0, half * 100) >= 1.0);
    assert!(blend(2.0, half, 0) == 2.0, "the future is now");
}

#[test]
fn snippets_mark_matches() {
    let (mut m, mut f) = (model(), Feed::new());
    m.apply(&[f.ch(
        CH,
        "alice",
        posted("M1", "Deploy <b>now</b> \u{E000}please"),
    )]);
    let q = parse("now").expect("parse");
    let found = search(m.conn(), &q, &scope(&[CH]), None, 0, 10).expect("search");
    assert_eq!(
        found.hits[0].snippet,
        "Deploy <b>\u{E000}now\u{E001}</b> \u{FFFD}please"
    );
}

#[test]
fn cursors_round_trip_and_refuse_garbage() {
    let c = Cursor {
        snapshot: 42,
        ref_ms: 1_700_000_000_000,
        score: 1.25,
        rowid: 7,
    };
    assert_eq!(Cursor::decode(&c.encode()), Some(c));
    for bad in [
        "",
        "v1",
        "v1.1.2.3",
        "v2.1.2.3ff.4",
        "v1.a.2.3.4",
        "v1.1.2.7ff8000000000000.4",
        "v1.1.2.3.4.5",
    ] {
        assert_eq!(Cursor::decode(bad), None, "{bad}");
    }
}

#[test]
fn the_fold_is_the_same_in_any_batching() {
    let mut f = Feed::new();
    let events = vec![
        f.ch(CH, "alice", posted("R", "root of 東京 things")),
        f.ch(CH, "bob", reply("A", "R", "a reply")),
        f.ch(CH, "bob", uploaded("F", "notes.txt", 3)),
        f.ch(CH, "bob", posted_with_files("P", "files", &["F"])),
        f.ch(CH, "carol", reacted("P", "+1")),
        f.ch(CH, "alice", edited("R", "root edited https://x.y")),
        f.ch(OTHER, "bob", posted("O", "elsewhere")),
        f.ch(CH, "bob", deleted("A")),
        f.ch(CH, "carol", unreacted("P", "+1")),
    ];
    let mut whole = model();
    whole.apply(&events);
    let mut one_by_one = model();
    for e in &events {
        one_by_one.apply(std::slice::from_ref(e));
    }
    assert_eq!(whole.checksum(), one_by_one.checksum());
    // And twice is once.
    one_by_one.apply(&events);
    assert_eq!(whole.checksum(), one_by_one.checksum());
    assert_eq!(whole.int("SELECT COUNT(*) FROM docs", []), 3);
}

#[test]
fn filter_facets_are_index_terms_kept_in_step() {
    let (mut m, mut f) = (model(), Feed::new());
    m.apply(&[
        f.ch(CH, "alice", posted("R", "standup notes")),
        f.ch(CH, "bob", reply("A", "R", "standup reply")),
        f.ch(OTHER, "bob-2_x", posted("L", "standup https://x.y")),
    ]);
    // A root becomes "in a thread" with its first reply; ids with - and _
    // are one token.
    assert_eq!(find(&m, "standup is:thread"), ["A", "R"]);
    let mut s = scope(&[CH, OTHER]);
    s.senders = Some(vec!["bob-2_x".into()]);
    assert_eq!(find_in(&m, "standup", &s), ["L"]);
    s.senders = Some(vec!["bob".into()]);
    assert_eq!(find_in(&m, "standup", &s), ["A"]);
    // The filter terms do not leak into snippets.
    let q = parse("standup has:link").expect("parse");
    let s = scope(&[CH, OTHER]).with_flags(&q.filters);
    let found = search(m.conn(), &q, &s, None, 0, 10).expect("search");
    assert_eq!(found.hits[0].snippet, "\u{E000}standup\u{E001} https://x.y");
    // Losing the link by an edit drops the facet.
    m.apply(&[f.ch(OTHER, "bob-2_x", edited("L", "standup, no link"))]);
    assert!(find(&m, "standup has:link").is_empty());
    m.conn()
        .execute("INSERT INTO fts (fts) VALUES ('integrity-check')", [])
        .expect("index agrees with docs");
}

// ----- erasure -----

#[test]
fn erased_messages_leave_the_index_alike_live_and_rebuilt() {
    let mut f = Feed::new();
    let story = erasure_story(&mut f);
    let m = assert_erasure_folds_alike::<Search>(&story);
    // Covered: M1, R1 (M2 was deleted before). Kept: R2 (held), M3 (at
    // the cut-off), X1 (another channel), R3 (after).
    assert_eq!(find(&m, ERASED_WORD), ["M3", "X1"]);
    assert_eq!(find(&m, "held"), ["R2"]);
    assert_eq!(find(&m, "plan"), Vec::<String>::new());
    let docs = |id: &str| m.int("SELECT COUNT(*) FROM docs WHERE message_id = ?1", [id]);
    assert_eq!((docs("M1"), docs("R1"), docs("M2")), (0, 0, 0));
    assert_eq!((docs("R2"), docs("R3")), (1, 1));
    // The upload's name went with its message, its reactions too.
    assert_eq!(m.int("SELECT COUNT(*) FROM files", []), 0);
    assert_eq!(m.int("SELECT COUNT(*) FROM reactions", []), 0);
    // No term of an erased text is left in the index's vocabulary.
    assert_eq!(
        m.int(
            "SELECT COUNT(*) FROM fts_terms WHERE term IN ('plan', 'bob', 'v2')",
            []
        ),
        0
    );
    // What the external indexer sends as deletes.
    let cut = story
        .iter()
        .find(|e| {
            matches!(
                e.envelope.as_ref().and_then(|e| e.body.as_ref()),
                Some(Body::ContentErased(_))
            )
        })
        .expect("an erasure");
    assert_eq!(
        erased_docs(m.conn(), cut.stream_seq).expect("query"),
        [
            (WS.to_string(), "M1".to_string()),
            (WS.to_string(), "R1".to_string())
        ]
    );
    assert_eq!(
        indexer::erasures_in(&story),
        [cut.stream_seq],
        "the indexer finds the erasure in its batch"
    );
}

#[test]
fn an_erasure_by_author_keeps_the_others_and_other_channels() {
    let mut f = Feed::new();
    let evs = vec![
        f.ch(CH, "alice", posted("A1", "apple one")),
        f.ch(CH, "bob", posted("B1", "apple two")),
        f.ch(OTHER, "alice", posted("A2", "apple three")),
        f.ch(CH, "alice", edited("A1", "apple one edited")),
        f.ch(CH, "", content_erased(i64::MAX, &["alice"], &[], 100)),
    ];
    let m = assert_erasure_folds_alike::<Search>(&evs);
    assert_eq!(find(&m, "apple"), ["A2", "B1"]);
}

#[test]
fn the_model_holds_no_erased_text_on_disk() {
    assert_erasure_leaves_no_trace::<Search>();
}
