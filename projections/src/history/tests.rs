//! Given events, expect rows: the history fold on in-memory SQLite.

use super::*;
use crate::testkit::*;
use switchboard_core::events::ChannelKind;
use switchboard_streams::LogEvent;

const CH: &str = "C1";

fn model() -> Model<History> {
    Model::new()
}

fn msg(m: &Model<History>, id: &str) -> MessageRow {
    message(m.conn(), id)
        .expect("query")
        .unwrap_or_else(|| panic!("message {id} exists"))
}

fn all_events(m: &Model<History>) -> Vec<EventRow> {
    events(m.conn(), CH, 0, 1_000).expect("query")
}

/// Every `text` any stored event body of the channel still carries.
fn texts_in_events(m: &Model<History>) -> Vec<String> {
    all_events(m)
        .iter()
        .filter_map(|e| {
            e.body
                .get("text")
                .and_then(|t| t.as_str())
                .map(String::from)
        })
        .filter(|t| !t.is_empty())
        .collect()
}

#[test]
fn a_post_makes_a_message_row_and_an_event_row() {
    let (mut m, mut f) = (model(), Feed::new());
    let cp = m.apply(&[f.ch(CH, "alice", posted("M1", "hello"))]);
    assert_eq!(cp, 1);
    assert_eq!(m.checkpoint(), 1);

    let row = msg(&m, "M1");
    assert_eq!(
        (row.channel_id.as_str(), row.seq, row.ts_ms),
        (CH, 1, 1_000)
    );
    assert_eq!(
        (row.sender_id.as_str(), row.text.as_str()),
        ("alice", "hello")
    );
    assert_eq!(
        (row.reply_count, row.edited_ms, row.deleted),
        (0, None, false)
    );
    assert_eq!(row.thread_root_id, None);

    let evs = all_events(&m);
    assert_eq!(evs.len(), 1);
    assert_eq!((evs[0].seq, evs[0].kind.as_str()), (1, "message_posted"));
    assert_eq!(evs[0].actor_id, "alice");
    assert_eq!(evs[0].body["text"], "hello");
    assert_eq!(evs[0].body["message_id"], "M1");
}

#[test]
fn events_off_channel_subjects_are_not_history() {
    let (mut m, mut f) = (model(), Feed::new());
    let cp = m.apply(&[
        f.ws("", "", workspace_created("acme")),
        f.user("alice", read_marker(CH, 3)),
    ]);
    assert_eq!(cp, 2, "skipped events still move the checkpoint");
    assert_eq!(m.int("SELECT COUNT(*) FROM events", []), 0);
}

#[test]
fn thread_replies_bump_the_roots_reply_count() {
    let (mut m, mut f) = (model(), Feed::new());
    m.apply(&[
        f.ch(CH, "alice", posted("R", "root")),
        f.ch(CH, "bob", reply("A", "R", "one")),
    ]);
    m.apply(&[f.ch(CH, "carol", reply("B", "R", "two"))]);
    assert_eq!(msg(&m, "R").reply_count, 2);
    assert_eq!(msg(&m, "A").thread_root_id.as_deref(), Some("R"));
    // Replies are not top-level messages.
    let (page, more) = messages(m.conn(), CH, Page::Before(None), 10).expect("query");
    assert_eq!(
        page.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["R"]
    );
    assert!(!more);
}

#[test]
fn a_batch_applied_twice_is_applied_once() {
    let mut f = Feed::new();
    let batch = [
        f.ch(CH, "alice", posted("R", "root")),
        f.ch(CH, "bob", reply("A", "R", "one")),
        f.ch(CH, "bob", reacted("R", "+1")),
        f.ch(CH, "alice", edited("R", "root, edited")),
    ];
    let (mut once, mut twice) = (model(), model());
    once.apply(&batch);
    twice.apply(&batch);
    let cp = twice.apply(&batch);
    assert_eq!(cp, 4);
    assert_eq!(msg(&twice, "R").reply_count, 1);
    assert_eq!(twice.checksum(), once.checksum());
}

#[test]
fn a_post_folded_twice_bumps_the_reply_count_once() {
    // Below the checkpoint: the fold itself is idempotent for posts.
    let (mut m, mut f) = (model(), Feed::new());
    let root = f.ch(CH, "alice", posted("R", "root"));
    let answer = f.ch(CH, "bob", reply("A", "R", "one"));
    m.apply(&[root]);
    let tx = m.conn_mut().transaction().expect("transaction");
    for _ in 0..2 {
        let env = answer.envelope.as_ref().expect("envelope");
        History::apply(&tx, answer.stream_seq, &answer.subject, env).expect("apply");
    }
    tx.commit().expect("commit");
    assert_eq!(msg(&m, "R").reply_count, 1);
}

#[test]
fn a_second_post_with_the_same_client_msg_id_keeps_the_first() {
    let (mut m, mut f) = (model(), Feed::new());
    m.apply(&[
        f.ch(CH, "alice", posted_with_client_id("M1", "first", "k1")),
        f.ch(CH, "alice", posted_with_client_id("M2", "second", "k1")),
    ]);
    let first = message_by_client_id(m.conn(), CH, "alice", "k1")
        .expect("query")
        .expect("found");
    assert_eq!((first.id.as_str(), first.text.as_str()), ("M1", "first"));
    assert!(message(m.conn(), "M2").expect("query").is_none());
    // Both events stay in the channel's history.
    assert_eq!(all_events(&m).len(), 2);
}

#[test]
fn an_edit_updates_text_and_edited_ms() {
    let (mut m, mut f) = (model(), Feed::new());
    m.apply(&[f.ch(CH, "alice", posted("M1", "helo"))]);
    m.apply(&[f.ch(CH, "alice", edited("M1", "hello"))]);
    let row = msg(&m, "M1");
    assert_eq!(row.text, "hello");
    assert_eq!(row.edited_ms, Some(2_000));
    let evs = all_events(&m);
    assert_eq!(evs[1].kind, "message_edited");
    assert_eq!(evs[1].body["text"], "hello");
}

#[test]
fn a_delete_scrubs_the_text_from_messages_and_every_stored_event() {
    let (mut m, mut f) = (model(), Feed::new());
    m.apply(&[
        f.ch(CH, "alice", posted("M1", "secret")),
        f.ch(CH, "alice", edited("M1", "more secret")),
        f.ch(CH, "bob", posted("M2", "kept")),
    ]);
    m.apply(&[f.ch(CH, "alice", deleted("M1"))]);
    let row = msg(&m, "M1");
    assert!(row.deleted);
    assert_eq!(row.text, "");
    assert_eq!(texts_in_events(&m), ["kept"]);
    let evs = all_events(&m);
    assert_eq!(evs[0].body["deleted"], true);
    assert_eq!(evs[1].body["deleted"], true);
    assert_eq!(evs[3].kind, "message_deleted");
}

/// Regression: the event body used to be stored before the fold looked at
/// the event, so an edit appended after the delete (an edit that raced the
/// tombstone) put its text back into `events`.
#[test]
fn a_late_edit_after_a_delete_does_not_bring_the_text_back() {
    let (mut m, mut f) = (model(), Feed::new());
    m.apply(&[
        f.ch(CH, "alice", posted("M1", "secret")),
        f.ch(CH, "alice", deleted("M1")),
    ]);
    m.apply(&[f.ch(CH, "alice", edited("M1", "late secret"))]);
    let row = msg(&m, "M1");
    assert_eq!(
        (row.text.as_str(), row.deleted, row.edited_ms),
        ("", true, None)
    );
    assert!(texts_in_events(&m).is_empty(), "{:?}", all_events(&m));
    let late = &all_events(&m)[2];
    assert_eq!(late.kind, "message_edited");
    assert_eq!(late.body["deleted"], true);
    // The stored bytes are the ones the tombstone writes for an edit it
    // scrubs, whichever of the two came first.
    let scrubbed_before = {
        let (mut m, mut f) = (model(), Feed::new());
        m.apply(&[
            f.ch(CH, "alice", posted("M1", "secret")),
            f.ch(CH, "alice", edited("M1", "late secret")),
            f.ch(CH, "alice", deleted("M1")),
        ]);
        all_events(&m)[1].body.clone()
    };
    assert_eq!(late.body, scrubbed_before);
}

#[test]
fn a_late_edit_in_the_same_batch_as_the_delete_is_scrubbed_too() {
    let (mut m, mut f) = (model(), Feed::new());
    m.apply(&[
        f.ch(CH, "alice", posted("M1", "secret")),
        f.ch(CH, "alice", deleted("M1")),
        f.ch(CH, "alice", edited("M1", "late secret")),
    ]);
    assert!(texts_in_events(&m).is_empty(), "{:?}", all_events(&m));
    let blob = m.int("SELECT COUNT(*) FROM events WHERE body LIKE '%secret%'", []);
    assert_eq!(blob, 0);
}

#[test]
fn reactions_are_added_and_removed_per_user_and_emoji() {
    let (mut m, mut f) = (model(), Feed::new());
    m.apply(&[
        f.ch(CH, "alice", posted("M1", "hi")),
        f.ch(CH, "bob", reacted("M1", "+1")),
        f.ch(CH, "carol", reacted("M1", "+1")),
        f.ch(CH, "carol", reacted("M1", "+1")),
        f.ch(CH, "bob", reacted("M1", "eyes")),
    ]);
    let row = msg(&m, "M1");
    assert_eq!(row.reactions.len(), 2);
    assert_eq!(row.reactions[0].emoji, "+1");
    assert_eq!(row.reactions[0].count, 2);
    assert_eq!(row.reactions[0].user_ids, ["bob", "carol"]);

    m.apply(&[f.ch(CH, "bob", unreacted("M1", "+1"))]);
    let row = msg(&m, "M1");
    assert_eq!(row.reactions[0].user_ids, ["carol"]);
    assert_eq!(row.reactions[1].emoji, "eyes");
}

/// A page's reactions, one message at a time (the query the page-wide one
/// replaced), as the reference the page must equal.
fn reactions_one_by_one(m: &Model<History>, id: &str) -> Vec<(String, usize, Vec<String>)> {
    let mut stmt = m
        .conn()
        .prepare_cached(
            "SELECT emoji, user_id, MIN(seq) OVER (PARTITION BY emoji) AS first
             FROM reactions WHERE message_id = ?1 ORDER BY first, seq",
        )
        .expect("prepare");
    let mut out: Vec<(String, usize, Vec<String>)> = Vec::new();
    let rows = stmt
        .query_map([id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .expect("query");
    for row in rows {
        let (emoji, user) = row.expect("row");
        match out.last_mut() {
            Some(last) if last.0 == emoji => {
                last.1 += 1;
                last.2.push(user);
            }
            _ => out.push((emoji, 1, vec![user])),
        }
    }
    out
}

#[test]
fn a_pages_reactions_come_from_one_query_and_match_the_per_message_ones() {
    let (mut m, mut f) = (model(), Feed::new());
    let mut batch = Vec::new();
    for i in 0..30 {
        batch.push(f.ch(CH, "alice", posted(&format!("M{i:02}"), "hi")));
    }
    // Reactions on every third message, emojis and users out of order.
    for i in (0..30).step_by(3) {
        let id = format!("M{i:02}");
        for (user, emoji) in [
            ("carol", "eyes"),
            ("bob", "+1"),
            ("alice", "eyes"),
            ("dave", "+1"),
            ("bob", "zzz"),
        ] {
            batch.push(f.ch(CH, user, reacted(&id, emoji)));
        }
    }
    batch.push(f.ch(CH, "dave", unreacted("M03", "+1")));
    m.apply(&batch);

    let (page, more) = messages(m.conn(), CH, Page::Before(None), 20).expect("page");
    assert!(more);
    assert_eq!(page.len(), 20);
    let mut with = 0;
    for row in &page {
        let got: Vec<(String, usize, Vec<String>)> = row
            .reactions
            .iter()
            .map(|r| (r.emoji.clone(), r.count, r.user_ids.clone()))
            .collect();
        assert_eq!(got, reactions_one_by_one(&m, &row.id), "message {}", row.id);
        with += usize::from(!got.is_empty());
    }
    assert_eq!(with, 6, "M10..M29: M12, M15, … M27 have reactions");
    // First-reacted order: carol's `eyes` came first, then bob's `+1`
    // (dave's `+1` is gone); users in the order they reacted.
    let m03 = msg(&m, "M03");
    assert_eq!(m03.reactions[0].emoji, "eyes");
    assert_eq!(m03.reactions[0].user_ids, ["carol", "alice"]);
    assert_eq!(m03.reactions[1].user_ids, ["bob"]);

    // The page query walks the primary key per id, never the whole table.
    let plan: Vec<String> = m
        .conn()
        .prepare(
            "EXPLAIN QUERY PLAN SELECT message_id, emoji, user_id,
                    MIN(seq) OVER (PARTITION BY message_id, emoji) AS first
             FROM reactions
             WHERE message_id IN (SELECT value FROM json_each(?1))
             ORDER BY message_id, first, seq",
        )
        .expect("prepare")
        .query_map(["[]"], |r| r.get::<_, String>(3))
        .expect("plan")
        .collect::<Result<_, _>>()
        .expect("plan rows");
    assert!(
        plan.iter()
            .any(|p| p.contains("SEARCH reactions USING PRIMARY KEY")),
        "{plan:?}"
    );
}

#[test]
fn a_reaction_on_a_deleted_message_is_ignored() {
    let (mut m, mut f) = (model(), Feed::new());
    m.apply(&[
        f.ch(CH, "alice", posted("M1", "hi")),
        f.ch(CH, "alice", deleted("M1")),
        f.ch(CH, "bob", reacted("M1", "+1")),
    ]);
    assert!(msg(&m, "M1").reactions.is_empty());
    assert_eq!(m.int("SELECT COUNT(*) FROM reactions", []), 0);
    // The event itself is history.
    assert_eq!(all_events(&m)[2].kind, "reaction_added");
}

#[test]
fn a_delete_removes_the_messages_reactions() {
    let (mut m, mut f) = (model(), Feed::new());
    m.apply(&[
        f.ch(CH, "alice", posted("M1", "hi")),
        f.ch(CH, "alice", posted("M2", "there")),
        f.ch(CH, "bob", reacted("M1", "+1")),
        f.ch(CH, "bob", reacted("M2", "+1")),
    ]);
    m.apply(&[f.ch(CH, "alice", deleted("M1"))]);
    assert!(msg(&m, "M1").reactions.is_empty());
    assert_eq!(msg(&m, "M2").reactions.len(), 1);
}

#[test]
fn head_seq_is_the_last_channel_seq_applied() {
    let (mut m, mut f) = (model(), Feed::new());
    assert_eq!(head_seq(m.conn(), CH).expect("query"), 0);
    m.apply(&[
        f.ch(CH, "alice", posted("M1", "hi")),
        f.ws(
            "C2",
            "alice",
            channel_created("other", ChannelKind::Channel, &[]),
        ),
        f.ch("C2", "alice", joined("bob")),
        f.ch(CH, "alice", joined("bob")),
        f.ch(CH, "bob", reacted("M1", "+1")),
    ]);
    assert_eq!(head_seq(m.conn(), CH).expect("query"), 3);
    assert_eq!(head_seq(m.conn(), "C2").expect("query"), 1);
    assert_eq!(m.checkpoint(), 5);
    let after = events(m.conn(), CH, 1, 10).expect("query");
    assert_eq!(
        after.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["member_joined", "reaction_added"]
    );
}

#[test]
fn thread_roots_carry_latest_reply_and_the_first_five_distinct_repliers() {
    let (mut m, mut f) = (model(), Feed::new());
    m.apply(&[f.ch(CH, "alice", posted("R", "root"))]);
    let repliers = ["bob", "carol", "bob", "dave", "erin", "frank", "gina"];
    let batch: Vec<_> = repliers
        .iter()
        .enumerate()
        .map(|(i, u)| f.ch(CH, u, reply(&format!("A{i}"), "R", "re")))
        .collect();
    m.apply(&batch);
    let root = msg(&m, "R");
    assert_eq!(root.reply_count, 7);
    assert_eq!(
        root.reply_user_ids,
        ["bob", "carol", "dave", "erin", "frank"]
    );
    assert_eq!(root.latest_reply_ms, Some(8_000));
    let plain = msg(&m, "A0");
    assert_eq!(
        (plain.latest_reply_ms, plain.reply_user_ids.len()),
        (None, 0)
    );
}

#[test]
fn replies_page_oldest_first_and_only_those_also_sent_show_in_the_channel() {
    let (mut m, mut f) = (model(), Feed::new());
    m.apply(&[
        f.ch(CH, "alice", posted("R", "root")),
        f.ch(CH, "bob", reply("A", "R", "one")),
        f.ch(
            CH,
            "bob",
            reply_to_channel("B", "R", "two, also in the channel"),
        ),
        f.ch(CH, "carol", reply("C", "R", "three")),
        f.ch(CH, "carol", posted("X", "top level")),
    ]);
    let (page, more) = messages(m.conn(), CH, Page::After(0), 10).expect("query");
    let ids: Vec<&str> = page.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["R", "B", "X"]);
    assert!(!more);
    assert!(page[1].also_in_channel && !page[0].also_in_channel);

    let (first, more) = replies(m.conn(), "R", 0, 2).expect("query");
    assert_eq!(
        first.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["A", "B"]
    );
    assert!(more);
    let after = first.last().map(|r| r.seq as u64).expect("a reply");
    let (rest, more) = replies(m.conn(), "R", after, 2).expect("query");
    assert_eq!(
        rest.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["C"]
    );
    assert!(!more);
    // The flag is about replies: a top-level post never carries it.
    assert!(!msg(&m, "X").also_in_channel);
}

#[test]
fn a_deleted_root_keeps_its_replies() {
    let (mut m, mut f) = (model(), Feed::new());
    m.apply(&[
        f.ch(CH, "alice", posted("R", "root secret")),
        f.ch(CH, "bob", reply("A", "R", "one")),
        f.ch(CH, "alice", deleted("R")),
    ]);
    let root = msg(&m, "R");
    assert!(root.deleted && root.text.is_empty());
    assert_eq!(root.reply_count, 1);
    let (thread, _) = replies(m.conn(), "R", 0, 10).expect("query");
    assert_eq!(thread.len(), 1);
    assert_eq!(thread[0].text, "one");
}

#[test]
fn mentions_are_stored_replaced_by_an_edit_and_scrubbed_by_a_tombstone() {
    let (mut m, mut f) = (model(), Feed::new());
    m.apply(&[f.ch(
        CH,
        "alice",
        posted_mentioning("M1", "@bob @here", mentions(&["bob"], false, true)),
    )]);
    let row = msg(&m, "M1");
    assert_eq!(
        row.mentions,
        MentionsRow {
            user_ids: vec!["bob".into()],
            channel: false,
            here: true
        }
    );
    assert_eq!(all_events(&m)[0].body["mentions"]["user_ids"][0], "bob");

    m.apply(&[f.ch(
        CH,
        "alice",
        edited_mentioning("M1", "@carol @channel", mentions(&["carol"], true, false)),
    )]);
    let row = msg(&m, "M1");
    assert_eq!(row.mentions.user_ids, ["carol"]);
    assert!(row.mentions.channel && !row.mentions.here);
    assert_eq!(all_events(&m)[1].body["mentions"]["channel"], true);

    m.apply(&[f.ch(CH, "alice", deleted("M1"))]);
    assert_eq!(msg(&m, "M1").mentions, MentionsRow::default());
    for e in &all_events(&m)[..2] {
        assert_eq!(
            e.body["mentions"],
            json!({"user_ids": [], "channel": false, "here": false})
        );
    }
    // An event without mentions (written before they existed) reads as none.
    m.apply(&[f.ch(CH, "bob", posted("M2", "plain"))]);
    assert_eq!(msg(&m, "M2").mentions, MentionsRow::default());
}

#[test]
fn reactions_are_listed_in_first_reacted_order() {
    let (mut m, mut f) = (model(), Feed::new());
    m.apply(&[
        f.ch(CH, "alice", posted("M1", "hi")),
        f.ch(CH, "carol", reacted("M1", "zzz")),
        f.ch(CH, "bob", reacted("M1", "+1")),
        f.ch(CH, "alice", reacted("M1", "zzz")),
        f.ch(CH, "alice", reacted("M1", "👍🏽")),
    ]);
    let row = msg(&m, "M1");
    let order: Vec<(&str, Vec<&str>)> = row
        .reactions
        .iter()
        .map(|r| {
            (
                r.emoji.as_str(),
                r.user_ids.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            ("zzz", vec!["carol", "alice"]),
            ("+1", vec!["bob"]),
            ("👍🏽", vec!["alice"]),
        ]
    );
    // The emoji moves to where its earliest remaining reaction puts it.
    m.apply(&[f.ch(CH, "carol", unreacted("M1", "zzz"))]);
    let emoji: Vec<String> = msg(&m, "M1")
        .reactions
        .into_iter()
        .map(|r| r.emoji)
        .collect();
    assert_eq!(emoji, ["+1", "zzz", "👍🏽"]);
    assert_eq!(
        reaction_facts(m.conn(), "M1", "alice", "zzz").expect("query"),
        (true, true, 3)
    );
    assert_eq!(
        reaction_facts(m.conn(), "M1", "bob", "zzz").expect("query"),
        (false, true, 3)
    );
    assert_eq!(
        reaction_facts(m.conn(), "M1", "bob", "new").expect("query"),
        (false, false, 3)
    );
}

#[test]
fn pins_are_flagged_listed_newest_first_and_dropped_by_a_tombstone() {
    let (mut m, mut f) = (model(), Feed::new());
    m.apply(&[
        f.ch(CH, "alice", posted("M1", "one")),
        f.ch(CH, "alice", posted("M2", "two")),
        f.ch(CH, "alice", posted("M3", "three")),
        f.ch(CH, "bob", pin("M1")),
        f.ch(CH, "bob", pin("M3")),
        f.ch(CH, "bob", pin("M1")),
    ]);
    let ids = |m: &Model<History>| {
        pinned(m.conn(), CH)
            .expect("query")
            .into_iter()
            .map(|r| r.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&m), ["M3", "M1"], "a repeated pin keeps its place");
    assert!(msg(&m, "M1").pinned && !msg(&m, "M2").pinned);
    assert_eq!(pin_count(m.conn(), CH).expect("query"), 2);
    m.apply(&[f.ch(CH, "bob", unpin("M3"))]);
    assert_eq!(ids(&m), ["M1"]);
    m.apply(&[f.ch(CH, "alice", deleted("M1"))]);
    assert!(ids(&m).is_empty());
    assert!(!msg(&m, "M1").pinned);
    // A pin of a deleted message, or of another channel's, pins nothing.
    m.apply(&[f.ch(CH, "bob", pin("M1")), f.ch("C2", "bob", pin("M2"))]);
    assert!(ids(&m).is_empty());
    let kinds: Vec<String> = all_events(&m).into_iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&"message_pinned".to_string()));
    assert!(kinds.contains(&"message_unpinned".to_string()));
}

#[test]
fn topic_changes_are_channel_events_and_renames_are_not() {
    let (mut m, mut f) = (model(), Feed::new());
    m.apply(&[
        f.ch(CH, "alice", topic_set("plans")),
        f.ws(CH, "alice", renamed("town", 1)),
    ]);
    let evs = all_events(&m);
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].kind, "channel_topic_set");
    assert_eq!(evs[0].body, json!({"topic": "plans"}));
}

#[test]
fn a_file_of_an_older_schema_is_refolded_from_the_start() {
    let (mut m, mut f) = (model(), Feed::new());
    m.apply(&[f.ch(CH, "alice", posted("M1", "hi"))]);
    assert_eq!(m.checkpoint(), 1);
    m.conn()
        .execute_batch("PRAGMA user_version = 1")
        .expect("pragma");
    crate::runner::migrate_model::<History>(m.conn()).expect("migrate");
    assert_eq!(m.checkpoint(), 0, "the log is folded again");
    assert_eq!(m.int("SELECT COUNT(*) FROM messages", []), 0);
    assert_eq!(m.int("PRAGMA user_version", []), SCHEMA_VERSION);
    // Opening a current file changes nothing.
    m.apply(&[f.ch(CH, "alice", posted("M2", "again"))]);
    crate::runner::migrate_model::<History>(m.conn()).expect("migrate");
    assert_eq!(m.checkpoint(), 2);
    assert_eq!(m.int("SELECT COUNT(*) FROM messages", []), 1);
}

#[test]
fn uploads_are_attached_by_their_uploaders_post_and_gone_with_its_tombstone() {
    let (mut m, mut f) = (model(), Feed::new());
    m.apply(&[
        f.ch(CH, "alice", uploaded("F1", "a.txt", 3)),
        f.ch(CH, "alice", uploaded("F2", "b.txt", 4)),
        f.ch(CH, "bob", uploaded("F3", "c.txt", 5)),
    ]);
    let f1 = file(m.conn(), "F1").expect("query").expect("F1 exists");
    assert_eq!(
        (f1.uploader_id.as_str(), f1.size, f1.message_id, f1.deleted),
        ("alice", 3, None, false)
    );
    // Alice attaches her F2 and F1 (in that order) and, in vain, Bob's F3.
    m.apply(&[f.ch(
        CH,
        "alice",
        posted_with_files("M1", "hi", &["F2", "F1", "F3"]),
    )]);
    let row = msg(&m, "M1");
    let names: Vec<&str> = row.attachments.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["b.txt", "a.txt"]);
    assert_eq!(row.attachments[0].size, 4);
    let got = files(m.conn(), &["F1".into(), "F3".into(), "F9".into()]).expect("query");
    assert_eq!(got.len(), 2);
    for r in got {
        let want = (r.id == "F1").then(|| "M1".to_string());
        assert_eq!(r.message_id, want, "{}", r.id);
    }
    // A second post cannot take F1 over.
    m.apply(&[f.ch(CH, "alice", posted_with_files("M2", "again", &["F1"]))]);
    assert!(msg(&m, "M2").attachments.is_empty());
    assert_eq!(deleted_files(m.conn(), 0, 10).expect("query"), []);
    m.apply(&[f.ch(CH, "alice", deleted("M1"))]);
    assert!(msg(&m, "M1").attachments.is_empty());
    let gone = deleted_files(m.conn(), 0, 10).expect("query");
    let ids: Vec<&str> = gone.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(ids, ["F1", "F2"]);
    assert!(file(m.conn(), "F2").expect("query").expect("row").deleted);
    assert!(!file(m.conn(), "F3").expect("query").expect("row").deleted);
    assert_eq!(deleted_files(m.conn(), gone[0].0, 10).expect("query"), []);
}

#[test]
fn an_expired_upload_is_gone_and_cannot_be_attached() {
    let (mut m, mut f) = (model(), Feed::new());
    m.apply(&[
        f.ch(CH, "alice", uploaded("F1", "a.txt", 3)),
        f.ch(CH, "alice", uploaded("F2", "b.txt", 3)),
    ]);
    assert_eq!(
        unattached_before(m.conn(), 10_000, 10)
            .expect("query")
            .len(),
        2
    );
    m.apply(&[f.ch(CH, "alice", posted_with_files("M1", "hi", &["F2"]))]);
    m.apply(&[f.ch(CH, "", expired("F1")), f.ch(CH, "", expired("F2"))]);
    assert!(file(m.conn(), "F1").expect("query").expect("row").deleted);
    assert!(
        !file(m.conn(), "F2").expect("query").expect("row").deleted,
        "attached: kept"
    );
    let gone = deleted_files(m.conn(), 0, 10).expect("query");
    assert_eq!(gone.len(), 1);
    assert_eq!(unattached_before(m.conn(), 10_000, 10).expect("query"), []);
}

// ----- erasure -----

fn erased_model() -> (Model<History>, Vec<LogEvent>) {
    let mut f = Feed::new();
    let story = erasure_story(&mut f);
    (assert_erasure_folds_alike::<History>(&story), story)
}

#[test]
fn live_and_rebuilt_after_an_erasure_have_one_checksum() {
    // Every split of live / erased folding (assert_erasure_folds_alike),
    // and a few extra orders: deletes, edits, pins, reactions, replies.
    let mut f = Feed::new();
    let story = erasure_story(&mut f);
    assert_erasure_folds_alike::<History>(&story);
    // An erased edit of an erased post, an erasure naming the author.
    let mut f = Feed::new();
    let evs = vec![
        f.ch(CH, "alice", posted("A", "one")),
        f.ch(CH, "alice", edited("A", "two")),
        f.ch(CH, "bob", posted("B", "three")),
        f.ch(CH, "alice", content_erased(i64::MAX, &["alice"], &[], 100)),
    ];
    let m = assert_erasure_folds_alike::<History>(&evs);
    assert!(msg(&m, "A").erased);
    assert_eq!(msg(&m, "A").edited_ms, Some(2_000));
    assert!(!msg(&m, "B").erased);
}

#[test]
fn an_erased_message_is_scrubbed_like_a_tombstone_but_marked_erased() {
    let (m, _) = erased_model();
    let m1 = msg(&m, "M1");
    assert!(m1.erased && !m1.deleted, "{m1:?}");
    assert_eq!(m1.text, "");
    assert_eq!(m1.mentions, MentionsRow::default());
    assert!(m1.attachments.is_empty() && m1.reactions.is_empty() && !m1.pinned);
    // Structure stays: edited, its thread (a held reply, one after).
    assert!(m1.edited_ms.is_some());
    assert_eq!(m1.reply_count, 3);
    assert!(msg(&m, "R1").erased);
    let m2 = msg(&m, "M2");
    assert!(m2.deleted && m2.erased);
    for kept in ["R2", "M3", "R3"] {
        let row = msg(&m, kept);
        assert!(!row.erased && !row.text.is_empty(), "{row:?}");
    }
    let x1 = message(m.conn(), "X1").expect("query").expect("X1");
    assert!(!x1.erased && x1.text.contains(ERASED_WORD));
    // No stored event of C1 carries a covered text.
    let texts = texts_in_events(&m);
    assert!(
        texts
            .iter()
            .all(|t| !t.contains(ERASED_WORD) || t.starts_with("after")),
        "{texts:?}"
    );
    let evs = all_events(&m);
    let m1_events: Vec<_> = evs
        .iter()
        .filter(|e| e.body["message_id"] == "M1" && e.kind.starts_with("message_"))
        .filter(|e| e.kind != "message_pinned")
        .collect();
    assert_eq!(m1_events.len(), 2, "the post and the edit");
    for e in m1_events {
        assert_eq!(e.body["erased"], true, "{:?}", e.body);
        assert_eq!(e.body.get("deleted"), None);
        assert_eq!(e.body["text"], "");
        assert_eq!(e.body["mentions"]["user_ids"], json!([]));
    }
    let m2_post = evs
        .iter()
        .find(|e| e.body["message_id"] == "M2" && e.kind == "message_posted")
        .expect("M2's post");
    assert_eq!(
        (&m2_post.body["deleted"], &m2_post.body["erased"]),
        (&json!(true), &json!(true))
    );
    // The erasure's own event says what it erased.
    let cut = evs
        .iter()
        .find(|e| e.kind == "content_erased")
        .expect("stored");
    assert_eq!(cut.body["reason"], "retention");
    assert_eq!(cut.body["except_author_ids"], json!(["carol"]));
    // Nothing may react to or pin an erased message afterwards.
    assert_eq!(
        m.int("SELECT COUNT(*) FROM reactions WHERE message_id = 'M1'", []),
        0
    );
}

#[test]
fn an_erased_messages_files_are_deleted_for_the_reaper() {
    let (m, story) = erased_model();
    let cut_seq = story
        .iter()
        .find(|e| {
            matches!(
                e.envelope.as_ref().and_then(|e| e.body.as_ref()),
                Some(Body::ContentErased(_))
            )
        })
        .expect("an erasure")
        .stream_seq;
    assert_eq!(
        deleted_files(m.conn(), 0, 10).expect("query"),
        [(cut_seq, "F1".to_string())]
    );
    let f1 = file(m.conn(), "F1").expect("query").expect("F1");
    assert!(f1.deleted);
    assert_eq!(
        deleted_files_after(m.conn(), cut_seq, "F1", 10).expect("query"),
        []
    );
    assert_eq!(
        deleted_files_after(m.conn(), cut_seq, "", 10).expect("query"),
        [(cut_seq, "F1".to_string())]
    );
}

#[test]
fn an_erasure_covers_what_its_predicate_says_and_nothing_else() {
    let mut f = Feed::new();
    let evs = vec![
        f.ch(CH, "alice", posted("A1", "a1")),   // seq 1, ts 1000
        f.ch(CH, "carol", posted("C1m", "c1")),  // seq 2, ts 2000
        f.ch("C9", "alice", posted("O1", "o1")), // another channel
        f.ch(CH, "alice", posted("A2", "a2")),   // seq 3, ts 4000
        f.ch(CH, "bob", posted("B1", "b1")),     // seq 4, ts 5000
        f.ch(CH, "alice", posted("A3", "a3")),   // seq 5, ts 6000
        // Before 6000 (A3 at exactly 6000: kept), through seq 3 (B1 kept),
        // carol held.
        f.ch(CH, "", content_erased(6_000, &[], &["carol"], 3)),
        // A user's erasure: bob's only.
        f.ch(CH, "", content_erased(i64::MAX, &["bob"], &[], 100)),
    ];
    let m = assert_erasure_folds_alike::<History>(&evs);
    let erased = |id: &str| message(m.conn(), id).expect("query").expect("row").erased;
    assert!(erased("A1") && erased("A2") && erased("B1"));
    assert!(!erased("C1m") && !erased("A3") && !erased("O1"));
    assert_eq!(msg(&m, "A3").text, "a3");
}

#[test]
fn a_post_that_arrives_erased_is_stored_scrubbed() {
    let (mut m, mut f) = (model(), Feed::new());
    m.apply(&[
        f.ch(CH, "alice", posted_erased("M1")),
        f.ch(CH, "alice", edited_erased("M1")),
    ]);
    let row = msg(&m, "M1");
    assert!(row.erased && !row.deleted && row.text.is_empty());
    assert_eq!(row.edited_ms, Some(2_000));
    assert!(all_events(&m).iter().all(|e| e.body["erased"] == true));
    // What the live frames carry (event_body) says so too.
    let erased_post = posted_erased("M1");
    let (id, body) = event_body(&erased_post);
    assert_eq!(id, Some("M1"));
    assert_eq!((&body["erased"], &body["text"]), (&json!(true), &json!("")));
    assert_eq!(event_body(&posted("M2", "hi")).1.get("erased"), None);
}

#[test]
fn the_model_holds_no_erased_text_on_disk() {
    assert_erasure_leaves_no_trace::<History>();
}
