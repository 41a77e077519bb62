//! Given events, expect notifications: the notification-queue fold on
//! in-memory SQLite.

use super::*;
use crate::testkit::*;
use switchboard_core::events::{self, ChannelKind};
use switchboard_streams::LogEvent;

const CH: &str = "C1";

fn model() -> Model<Notifications> {
    Model::new()
}

/// A channel `C1` with ada (creator), bob, cat and dan as members.
fn setup(f: &mut Feed) -> Vec<LogEvent> {
    vec![
        f.ws(
            CH,
            "ada",
            channel_created("general", ChannelKind::Channel, &["ada"]),
        ),
        f.ch(CH, "bob", joined("bob")),
        f.ch(CH, "cat", joined("cat")),
        f.ch(CH, "ada", invited("dan")),
    ]
}

/// (user, kind, state) of every notification of `message`, by user.
fn of(m: &Model<Notifications>, message: &str) -> Vec<(String, String, String)> {
    let mut stmt = m
        .conn()
        .prepare(
            "SELECT user_id, kind, state FROM notifications WHERE message_id = ?1 ORDER BY user_id",
        )
        .expect("prepare");
    stmt.query_map([message], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("rows")
}

fn t(rows: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    rows.iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

fn here(users: &[&str]) -> events::Mentions {
    events::Mentions {
        here: true,
        here_user_ids: users.iter().map(|u| u.to_string()).collect(),
        ..Default::default()
    }
}

fn user_prefs(keywords: &[&str]) -> Body {
    Body::UserPreferencesSet(events::UserPreferencesSet {
        keywords: keywords.iter().map(|k| k.to_string()).collect(),
        ..Default::default()
    })
}

fn channel_pref(channel: &str, muted: bool, notify: NotifyLevel) -> Body {
    Body::ChannelPreferencesSet(events::ChannelPreferencesSet {
        channel_id: channel.into(),
        muted,
        notify: notify as i32,
    })
}

fn acked(ids: &[&str]) -> Body {
    Body::NotificationsAcked(events::NotificationsAcked {
        ids: ids.iter().map(|i| i.to_string()).collect(),
    })
}

fn marker(channel: &str, seq: u64, root: &str, backwards: bool) -> Body {
    Body::ReadMarkerMoved(events::ReadMarkerMoved {
        channel_id: channel.into(),
        seq,
        thread_root_id: root.into(),
        backwards,
    })
}

#[test]
fn a_mention_tells_the_mentioned_user_only() {
    let (mut m, mut f) = (model(), Feed::new());
    let mut batch = setup(&mut f);
    batch.push(f.ch(
        CH,
        "ada",
        posted_mentioning("M1", "hi @bob", mentions(&["bob"], false, false)),
    ));
    batch.push(f.ch(CH, "ada", posted("M2", "nobody")));
    m.apply(&batch);
    assert_eq!(of(&m, "M1"), t(&[("bob", "mention", "pending")]));
    assert_eq!(of(&m, "M2"), vec![]);
    let row = get(m.conn(), "M1-bob").expect("get").expect("row");
    assert_eq!(
        (
            row.channel_id.as_str(),
            row.seq,
            row.stream_seq,
            row.text.as_str()
        ),
        (CH, 4, 5, "hi @bob")
    );
    assert_eq!((row.ts_ms, row.workspace_id.as_str()), (5_000, WS));
}

#[test]
fn the_sender_and_non_members_are_never_told() {
    let (mut m, mut f) = (model(), Feed::new());
    let mut batch = setup(&mut f);
    // Mentions are resolved against members, but the fold checks again.
    batch.push(f.ch(
        CH,
        "ada",
        posted_mentioning("M1", "@ada @eve", mentions(&["ada", "eve"], false, false)),
    ));
    m.apply(&batch);
    assert_eq!(of(&m, "M1"), vec![]);
}

#[test]
fn every_message_of_a_dm_tells_the_other_members() {
    let (mut m, mut f) = (model(), Feed::new());
    m.apply(&[
        f.ws(
            "D1",
            "ada",
            channel_created("D1", ChannelKind::Direct, &["ada", "bob", "cat"]),
        ),
        f.ch("D1", "ada", posted("M1", "psst")),
        f.user("cat", channel_pref("D1", false, NotifyLevel::Mentions)),
        f.ch("D1", "bob", posted("M2", "psst again")),
        f.ch(
            "D1",
            "bob",
            posted_mentioning("M3", "@cat", mentions(&["cat"], false, false)),
        ),
    ]);
    assert_eq!(
        of(&m, "M1"),
        t(&[("bob", "dm", "pending"), ("cat", "dm", "pending")])
    );
    // notify=mentions drops the every-message reason, not a mention.
    assert_eq!(of(&m, "M2"), t(&[("ada", "dm", "pending")]));
    assert_eq!(
        of(&m, "M3"),
        t(&[("ada", "dm", "pending"), ("cat", "mention", "pending")])
    );
}

#[test]
fn keywords_match_whole_words_case_insensitively() {
    let (mut m, mut f) = (model(), Feed::new());
    let mut batch = setup(&mut f);
    batch.push(f.user("bob", user_prefs(&["deploy", "release train"])));
    batch.push(f.user("cat", user_prefs(&["deploy"])));
    batch.push(f.user("eve", user_prefs(&["deploy"]))); // not a member
    batch.push(f.ch(CH, "ada", posted("M1", "Starting the DEPLOY now")));
    batch.push(f.ch(CH, "ada", posted("M2", "redeploy, deployment, deploy_x")));
    batch.push(f.ch(
        CH,
        "ada",
        posted("M3", "the Release  train; the release train!"),
    ));
    batch.push(f.ch(CH, "cat", posted("M4", "deploy")));
    m.apply(&batch);
    assert_eq!(
        of(&m, "M1"),
        t(&[("bob", "keyword", "pending"), ("cat", "keyword", "pending")])
    );
    assert_eq!(of(&m, "M2"), vec![]);
    assert_eq!(of(&m, "M3"), t(&[("bob", "keyword", "pending")]));
    assert_eq!(of(&m, "M4"), t(&[("bob", "keyword", "pending")]));
    // New preferences replace the keywords.
    m.apply(&[
        f.user("bob", user_prefs(&[])),
        f.ch(CH, "ada", posted("M5", "deploy")),
    ]);
    assert_eq!(of(&m, "M5"), t(&[("cat", "keyword", "pending")]));
}

#[test]
fn notify_levels_and_mute() {
    let (mut m, mut f) = (model(), Feed::new());
    let mut batch = setup(&mut f);
    batch.push(f.user("bob", channel_pref(CH, false, NotifyLevel::All)));
    batch.push(f.user("cat", channel_pref(CH, true, NotifyLevel::All)));
    batch.push(f.user("dan", channel_pref(CH, false, NotifyLevel::Nothing)));
    batch.push(f.ch(CH, "ada", posted("M1", "plain")));
    batch.push(f.ch(
        CH,
        "ada",
        posted_mentioning(
            "M2",
            "@bob @cat @dan",
            mentions(&["bob", "cat", "dan"], false, false),
        ),
    ));
    batch.push(f.user("bob", channel_pref(CH, false, NotifyLevel::Mentions)));
    batch.push(f.ch(CH, "ada", posted("M3", "plain again")));
    // Back to the default: the settings row goes.
    batch.push(f.user("cat", channel_pref(CH, false, NotifyLevel::Default)));
    batch.push(f.ch(
        CH,
        "ada",
        posted_mentioning("M4", "@cat", mentions(&["cat"], false, false)),
    ));
    m.apply(&batch);
    assert_eq!(of(&m, "M1"), t(&[("bob", "message", "pending")]));
    assert_eq!(of(&m, "M2"), t(&[("bob", "mention", "pending")]));
    assert_eq!(of(&m, "M3"), vec![]);
    assert_eq!(of(&m, "M4"), t(&[("cat", "mention", "pending")]));
    let p = channel_prefs(m.conn(), "bob", CH).expect("prefs");
    assert_eq!((p.muted, p.notify()), (false, NotifyLevel::Mentions));
    let p = channel_prefs(m.conn(), "cat", CH).expect("prefs");
    assert_eq!((p.muted, p.notify()), (false, NotifyLevel::Default));
    assert_eq!(m.int("SELECT COUNT(*) FROM channel_prefs", []), 2);
}

#[test]
fn at_channel_tells_every_member_of_a_small_channel_and_at_here_the_active_ones() {
    let (mut m, mut f) = (model(), Feed::new());
    let mut batch = setup(&mut f);
    batch.push(f.ch(
        CH,
        "ada",
        posted_mentioning("M1", "@channel", mentions(&[], true, false)),
    ));
    batch.push(f.ch(
        CH,
        "ada",
        posted_mentioning("M2", "@here", here(&["ada", "cat", "eve"])),
    ));
    m.apply(&batch);
    assert_eq!(
        of(&m, "M1"),
        t(&[
            ("bob", "channel", "pending"),
            ("cat", "channel", "pending"),
            ("dan", "channel", "pending")
        ])
    );
    assert_eq!(of(&m, "M2"), t(&[("cat", "here", "pending")]));
}

#[test]
fn at_channel_notifies_nobody_above_the_cap_but_mentions_still_do() {
    let (mut m, mut f) = (model(), Feed::new());
    let mut batch = vec![f.ws(
        CH,
        "ada",
        channel_created("big", ChannelKind::Channel, &["ada"]),
    )];
    for i in 0..CHANNEL_MENTION_CAP {
        let u = format!("u{i}");
        batch.push(f.ch(CH, &u, joined(&u)));
    }
    batch.push(f.ch(
        CH,
        "ada",
        posted_mentioning("M1", "@channel @u7", mentions(&["u7"], true, false)),
    ));
    m.apply(&batch);
    // 1,001 members: over the cap.
    assert_eq!(of(&m, "M1"), t(&[("u7", "mention", "pending")]));
    // One leaves: 1,000 members, at the cap.
    m.apply(&[
        f.ch(CH, "u1", left("u1")),
        f.ch(
            CH,
            "ada",
            posted_mentioning("M2", "@channel", mentions(&[], true, false)),
        ),
    ]);
    assert_eq!(of(&m, "M2").len() as i64, CHANNEL_MENTION_CAP - 1);
}

#[test]
fn thread_replies_tell_the_root_author_and_earlier_repliers() {
    let (mut m, mut f) = (model(), Feed::new());
    let mut batch = setup(&mut f);
    batch.push(f.ch(CH, "ada", posted("R", "root")));
    batch.push(f.ch(CH, "bob", reply("T1", "R", "first")));
    batch.push(f.ch(CH, "cat", reply("T2", "R", "second")));
    batch.push(f.user("bob", channel_pref(CH, true, NotifyLevel::Default)));
    batch.push(f.ch(CH, "dan", reply_to_channel("T3", "R", "third")));
    m.apply(&batch);
    assert_eq!(of(&m, "T1"), t(&[("ada", "thread", "pending")]));
    assert_eq!(
        of(&m, "T2"),
        t(&[("ada", "thread", "pending"), ("bob", "thread", "pending")])
    );
    // Bob muted the channel.
    assert_eq!(
        of(&m, "T3"),
        t(&[("ada", "thread", "pending"), ("cat", "thread", "pending")])
    );
}

#[test]
fn notify_all_covers_the_channel_not_thread_only_replies() {
    let (mut m, mut f) = (model(), Feed::new());
    let mut batch = setup(&mut f);
    batch.push(f.user("dan", channel_pref(CH, false, NotifyLevel::All)));
    batch.push(f.ch(CH, "ada", posted("R", "root")));
    batch.push(f.ch(CH, "bob", reply("T1", "R", "in the thread")));
    batch.push(f.ch(
        CH,
        "bob",
        reply_to_channel("T2", "R", "also in the channel"),
    ));
    m.apply(&batch);
    assert_eq!(of(&m, "R"), t(&[("dan", "message", "pending")]));
    assert_eq!(of(&m, "T1"), t(&[("ada", "thread", "pending")]));
    assert_eq!(
        of(&m, "T2"),
        t(&[("ada", "thread", "pending"), ("dan", "message", "pending")])
    );
}

#[test]
fn an_edit_withdraws_a_removed_mention_and_adds_a_new_one() {
    let (mut m, mut f) = (model(), Feed::new());
    let mut batch = setup(&mut f);
    batch.push(f.ch(
        CH,
        "ada",
        posted_mentioning("M1", "hi @bob", mentions(&["bob"], false, false)),
    ));
    batch.push(f.ch(
        CH,
        "ada",
        edited_mentioning("M1", "hi @cat", mentions(&["cat"], false, false)),
    ));
    m.apply(&batch);
    assert_eq!(
        of(&m, "M1"),
        t(&[
            ("bob", "mention", "withdrawn"),
            ("cat", "mention", "pending")
        ])
    );
    let cat = get(m.conn(), "M1-cat").expect("get").expect("row");
    assert_eq!(
        (cat.stream_seq, cat.seq, cat.text.as_str()),
        (6, 4, "hi @cat")
    );
    // Mentioned again: a withdrawn notification stays withdrawn.
    m.apply(&[f.ch(
        CH,
        "ada",
        edited_mentioning("M1", "@bob @cat", mentions(&["bob", "cat"], false, false)),
    )]);
    assert_eq!(
        of(&m, "M1"),
        t(&[
            ("bob", "mention", "withdrawn"),
            ("cat", "mention", "pending")
        ])
    );
    // An edit keeps a notification that still has a reason (a DM's).
    let mut dm = vec![
        f.ws(
            "D1",
            "ada",
            channel_created("D1", ChannelKind::Direct, &["ada", "bob"]),
        ),
        f.ch(
            "D1",
            "ada",
            posted_mentioning("M2", "@bob", mentions(&["bob"], false, false)),
        ),
    ];
    dm.push(f.ch("D1", "ada", edited("M2", "never mind")));
    m.apply(&dm);
    assert_eq!(of(&m, "M2"), t(&[("bob", "dm", "pending")]));
    assert_eq!(
        get(m.conn(), "M2-bob").expect("get").expect("row").text,
        "never mind"
    );
}

#[test]
fn a_delete_withdraws_and_forgets_the_text() {
    let (mut m, mut f) = (model(), Feed::new());
    let mut batch = setup(&mut f);
    batch.push(f.ch(
        CH,
        "ada",
        posted_mentioning("M1", "secret @bob", mentions(&["bob"], false, false)),
    ));
    batch.push(f.user("bob", acked(&["M1-bob"])));
    batch.push(f.ch(
        CH,
        "ada",
        posted_mentioning("M2", "secret @bob", mentions(&["bob"], false, false)),
    ));
    batch.push(f.ch(CH, "ada", deleted("M1")));
    batch.push(f.ch(CH, "ada", deleted("M2")));
    // An edit that raced the delete brings nothing back.
    batch.push(f.ch(
        CH,
        "ada",
        edited_mentioning("M2", "secret @cat", mentions(&["cat"], false, false)),
    ));
    m.apply(&batch);
    assert_eq!(of(&m, "M1"), t(&[("bob", "mention", "acked")]));
    assert_eq!(of(&m, "M2"), t(&[("bob", "mention", "withdrawn")]));
    assert_eq!(
        m.int("SELECT COUNT(*) FROM notifications WHERE text != ''", []),
        0
    );
}

#[test]
fn leaving_or_removal_withdraws_and_nothing_new_comes() {
    let (mut m, mut f) = (model(), Feed::new());
    let mut batch = setup(&mut f);
    batch.push(f.ch(
        CH,
        "ada",
        posted_mentioning("M1", "@bob @cat", mentions(&["bob", "cat"], false, false)),
    ));
    batch.push(f.ch(CH, "bob", left("bob")));
    batch.push(f.ch(CH, "ada", removed("cat")));
    batch.push(f.ch(
        CH,
        "ada",
        posted_mentioning("M2", "@channel", mentions(&[], true, false)),
    ));
    m.apply(&batch);
    assert_eq!(
        of(&m, "M1"),
        t(&[
            ("bob", "mention", "withdrawn"),
            ("cat", "mention", "withdrawn")
        ])
    );
    assert_eq!(of(&m, "M2"), t(&[("dan", "channel", "pending")]));
    let (rows, _) = list(m.conn(), WS, "bob", None, true, 50).expect("list");
    assert!(rows.is_empty());
}

#[test]
fn read_markers_read_notifications_and_never_bring_them_back() {
    let (mut m, mut f) = (model(), Feed::new());
    let mut batch = setup(&mut f);
    let at = |id: &str| posted_mentioning(id, "@bob", mentions(&["bob"], false, false));
    batch.push(f.ch(CH, "ada", at("M1"))); // seq 4
    batch.push(f.ch(CH, "ada", at("M2"))); // seq 5
    batch.push(f.ch(CH, "cat", posted("R", "root"))); // seq 6
    batch.push(f.ch(
        CH,
        "ada",
        Body::MessagePosted(events::MessagePosted {
            message_id: "T1".into(),
            text: "@bob".into(),
            thread_root_id: "R".into(),
            mentions: Some(mentions(&["bob"], false, false)),
            ..Default::default()
        }),
    )); // seq 7, thread only
    batch.push(f.user("bob", marker(CH, 4, "", false)));
    m.apply(&batch);
    let states = |m: &Model<Notifications>| ["M1", "M2", "T1"].map(|id| of(m, id)[0].2.clone());
    assert_eq!(states(&m), ["read", "pending", "pending"]);
    // The channel's marker does not read a thread-only reply.
    m.apply(&[f.user("bob", marker(CH, 7, "", false))]);
    assert_eq!(states(&m), ["read", "read", "pending"]);
    m.apply(&[f.user("bob", marker(CH, 7, "R", false))]);
    assert_eq!(states(&m), ["read", "read", "read"]);
    // Mark unread from here: the marker moves back, the states stay.
    m.apply(&[f.user("bob", marker(CH, 3, "", true))]);
    assert_eq!(states(&m), ["read", "read", "read"]);
    // A notification created behind the marker (an edit adding a mention
    // to a message the user already read) is read from the start.
    m.apply(&[
        f.user("cat", marker(CH, 5, "", false)),
        f.ch(
            CH,
            "ada",
            edited_mentioning("M2", "@bob @cat", mentions(&["bob", "cat"], false, false)),
        ),
    ]);
    assert_eq!(
        of(&m, "M2")[1],
        ("cat".into(), "mention".into(), "read".into())
    );
    let pending = list(m.conn(), WS, "bob", None, false, 50).expect("list").0;
    assert!(pending.is_empty());
}

#[test]
fn acks_acknowledge_only_the_users_own_notifications() {
    let (mut m, mut f) = (model(), Feed::new());
    let mut batch = setup(&mut f);
    batch.push(f.ch(
        CH,
        "ada",
        posted_mentioning("M1", "@bob @cat", mentions(&["bob", "cat"], false, false)),
    ));
    batch.push(f.user("bob", acked(&["M1-bob", "M1-cat", "nope"])));
    m.apply(&batch);
    assert_eq!(
        of(&m, "M1"),
        t(&[("bob", "mention", "acked"), ("cat", "mention", "pending")])
    );
}

#[test]
fn lists_page_newest_first_and_created_after_in_stream_order() {
    let (mut m, mut f) = (model(), Feed::new());
    let mut batch = setup(&mut f);
    for i in 0..5 {
        batch.push(f.ch(
            CH,
            "ada",
            posted_mentioning(
                &format!("M{i}"),
                "@bob @cat",
                mentions(&["bob", "cat"], false, false),
            ),
        ));
    }
    batch.push(f.user("bob", acked(&["M3-bob"])));
    m.apply(&batch);
    let (page, more) = list(m.conn(), WS, "bob", None, false, 2).expect("page 1");
    assert_eq!(
        page.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["M4-bob", "M2-bob"]
    );
    assert!(more);
    let last = page
        .last()
        .map(|r| (r.stream_seq, r.id.clone()))
        .expect("last");
    let (page, more) = list(m.conn(), WS, "bob", Some(&last), false, 2).expect("page 2");
    assert_eq!(
        page.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["M1-bob", "M0-bob"]
    );
    assert!(!more);
    let (all, _) = list(m.conn(), WS, "bob", None, true, 50).expect("all");
    assert_eq!(all.len(), 5);
    // Another workspace's view of the same user id is empty.
    assert!(list(m.conn(), "W2", "bob", None, true, 50)
        .expect("w2")
        .0
        .is_empty());

    let created = created_after(m.conn(), 0, 100).expect("created");
    let keys: Vec<_> = created
        .iter()
        .map(|r| (r.stream_seq, r.id.as_str()))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(created.len(), 10);
    let after = created_after(m.conn(), created[3].stream_seq, 100).expect("after");
    assert_eq!(after.len(), 6);
    assert_eq!(created_after(m.conn(), 0, 3).expect("limit").len(), 3);
}

#[test]
fn preferences_default_and_replace_whole() {
    let (mut m, mut f) = (model(), Feed::new());
    assert_eq!(
        prefs(m.conn(), WS, "bob").expect("defaults"),
        UserPrefs::default()
    );
    let set = events::UserPreferencesSet {
        dnd_until_ms: 42,
        dnd_schedule: Some(DndSchedule {
            start_minute: 1320,
            end_minute: 420,
        }),
        time_zone: "Europe/Berlin".into(),
        keywords: vec!["deploy".into(), "on call".into()],
    };
    m.apply(&[f.user("bob", Body::UserPreferencesSet(set.clone()))]);
    assert_eq!(prefs(m.conn(), WS, "bob").expect("set"), set);
    assert_eq!(
        prefs(m.conn(), "W2", "bob").expect("other ws"),
        UserPrefs::default()
    );
    m.apply(&[f.user("bob", user_prefs(&["x"]))]);
    let p = prefs(m.conn(), WS, "bob").expect("replaced");
    assert_eq!(
        (p.dnd_until_ms, p.dnd_schedule, p.keywords),
        (0, None, vec!["x".to_string()])
    );
}

#[test]
fn a_replay_folds_the_same_rows() {
    let mut f = Feed::new();
    let mut batch = setup(&mut f);
    batch.push(f.user("cat", user_prefs(&["lunch"])));
    batch.push(f.user("dan", channel_pref(CH, false, NotifyLevel::All)));
    batch.push(f.ch(
        CH,
        "ada",
        posted_mentioning("M1", "lunch @bob", mentions(&["bob"], false, false)),
    ));
    batch.push(f.ch(CH, "bob", reply("T1", "M1", "yes")));
    batch.push(f.user("bob", marker(CH, 5, "", false)));
    batch.push(f.ch(CH, "ada", edited("M1", "lunch?")));
    batch.push(f.ch(CH, "ada", removed("dan")));
    let (mut a, mut b) = (model(), model());
    a.apply(&batch);
    for e in &batch {
        b.apply(std::slice::from_ref(e));
    }
    assert_eq!(a.checksum(), b.checksum());
    // Applying the batch again changes nothing (the checkpoint skips it).
    a.apply(&batch);
    assert_eq!(a.checksum(), b.checksum());
}

#[test]
fn whole_word_matching() {
    for (text, kw, hit) in [
        ("the cat sat", "cat", true),
        ("concat", "cat", false),
        ("cats", "cat", false),
        ("cat.", "cat", true),
        ("(cat)", "cat", true),
        ("c++ rocks", "c++", true),
        ("ac++", "c++", false),
        ("on call today", "on call", true),
        ("on  call", "on call", false),
        ("größe straße", "straße", true),
        ("cat_x", "cat", false),
        ("", "cat", false),
        ("x", "", false),
    ] {
        assert_eq!(contains_whole(text, kw), hit, "{text:?} / {kw:?}");
    }
    assert_eq!(
        words("Hi, @bob! x_y").collect::<Vec<_>>(),
        ["Hi", "bob", "x_y"]
    );
}

#[test]
fn user_subjects() {
    assert_eq!(
        switchboard_streams::subjects::user_of("sb.W1.user.U1"),
        Some("U1")
    );
    assert_eq!(switchboard_streams::subjects::user_of("sb.W1.ch.C1"), None);
    assert_eq!(
        switchboard_streams::subjects::user_of("sb.W1.user.U1.x"),
        None
    );
}

#[test]
#[ignore = "a measurement: cargo test --release -p switchboard-projections measure_post_cost -- --ignored --nocapture"]
fn measure_post_cost_by_channel_size() {
    for (members, text, channel) in [
        (50usize, "hello @u3 we deploy the release today", false),
        (20_000, "hello @u3 we deploy the release today", false),
        (50, "hello @u3 we deploy the release today @channel", true),
        (
            20_000,
            "hello @u3 we deploy the release today @channel",
            true,
        ),
    ] {
        let (mut m, mut f) = (model(), Feed::new());
        let mut batch = vec![f.ws(
            CH,
            "ada",
            channel_created("big", ChannelKind::Channel, &["ada"]),
        )];
        for i in 0..members {
            let u = format!("u{i}");
            batch.push(f.ch(CH, &u, joined(&u)));
        }
        for i in 0..20 {
            batch.push(f.user(&format!("u{i}"), user_prefs(&["deploy"])));
        }
        m.apply(&batch);
        let posts: Vec<_> = (0..5_000)
            .map(|i| {
                f.ch(
                    CH,
                    "ada",
                    posted_mentioning(&format!("M{i}"), text, mentions(&["u3"], channel, false)),
                )
            })
            .collect();
        let start = std::time::Instant::now();
        for chunk in posts.chunks(2_000) {
            m.apply(chunk);
        }
        let us = start.elapsed().as_micros() as f64 / posts.len() as f64;
        println!(
            "members={members} @channel={channel} per post {us:.1} µs, rows={}",
            m.int("SELECT COUNT(*) FROM notifications", [])
        );
    }
}

// ----- erasure -----

#[test]
fn an_erasure_takes_every_notification_of_the_covered_messages() {
    let mut f = Feed::new();
    let story = erasure_story(&mut f);
    let m = assert_erasure_folds_alike::<Notifications>(&story);
    for gone in ["M1", "R1", "M2"] {
        assert_eq!(of(&m, gone), t(&[]), "{gone}");
    }
    // The held reply kept its notifications (the root's author, the thread).
    assert_eq!(
        of(&m, "R2"),
        t(&[("alice", "thread", "pending"), ("bob", "thread", "pending")])
    );
    // Not covered: dan's keyword on M3 stays.
    assert_eq!(of(&m, "M3"), t(&[("dan", "keyword", "pending")]));
    // A reply after the erasure still notifies the erased root's author
    // and its thread.
    assert_eq!(
        of(&m, "R3"),
        t(&[
            ("alice", "thread", "pending"),
            ("carol", "thread", "pending")
        ])
    );
    assert_eq!(
        m.int(
            "SELECT COUNT(*) FROM notifications WHERE text LIKE '%' || ?1 || '%'
             AND message_id IN ('M1', 'R1', 'M2')",
            [ERASED_WORD]
        ),
        0
    );
}

#[test]
fn an_erased_post_notifies_nobody_and_an_erased_edit_changes_nothing() {
    let (mut m, mut f) = (model(), Feed::new());
    let mut batch = setup(&mut f);
    batch.push(f.ch(
        CH,
        "ada",
        posted_erased_mentioning("M1", mentions(&["bob"], false, false)),
    ));
    batch.push(f.ch(CH, "ada", edited_erased("M1")));
    m.apply(&batch);
    assert_eq!(of(&m, "M1"), t(&[]));
}

#[test]
fn the_model_holds_no_erased_text_on_disk() {
    assert_erasure_leaves_no_trace::<Notifications>();
}
