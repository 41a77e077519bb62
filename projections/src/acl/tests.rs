//! Given events, expect rows: the membership/ACL fold on in-memory SQLite.

use super::*;
use crate::testkit::*;
use crate::BatchError;
use switchboard_core::ids::{ChannelId, UserId};

fn model() -> Model<Acl> {
    Model::new()
}

/// A workspace with users alice, bob and carol and a public channel `C1`
/// ("general") alice created.
fn setup(m: &mut Model<Acl>, f: &mut Feed) {
    m.apply(&[
        f.ws("", "", workspace_created("acme")),
        f.ws("", "", user_added("alice", "alice", "t-alice")),
        f.ws("", "alice", user_added("bob", "bob", "t-bob")),
        f.ws("", "alice", user_added("carol", "carol", "t-carol")),
        f.ws(
            "C1",
            "alice",
            channel_created("general", ChannelKind::Channel, &["alice"]),
        ),
    ]);
}

fn view(m: &Model<Acl>, ch: &str) -> ChannelView {
    channel_view(m.conn(), "alice", ch)
        .expect("query")
        .unwrap_or_else(|| panic!("channel {ch} exists"))
}

fn member_ids(m: &Model<Acl>, ch: &str) -> Vec<String> {
    members(m.conn(), ch, "", MAX_PAGE)
        .expect("query")
        .rows
        .into_iter()
        .map(|u| u.id)
        .collect()
}

fn since_seq(m: &Model<Acl>, ch: &str, user: &str) -> i64 {
    m.int(
        "SELECT since_seq FROM members WHERE channel_id = ?1 AND user_id = ?2",
        [ch, user],
    )
}

#[test]
fn workspace_user_and_channel_created_make_rows() {
    let (mut m, mut f) = (model(), Feed::new());
    setup(&mut m, &mut f);
    assert_eq!(m.checkpoint(), 5);
    let ws = workspace(m.conn(), WS).expect("query").expect("workspace");
    assert_eq!(ws.name, "acme");

    let bob = user(m.conn(), WS, "bob").expect("query").expect("bob");
    assert_eq!(
        (bob.handle.as_str(), bob.display_name.as_str()),
        ("bob", "BOB")
    );
    assert!(!bob.is_admin());
    let by_token = token_by_hash(m.conn(), "t-bob").expect("query");
    assert_eq!(
        by_token.map(|(u, t)| (u.id, t.id, t.name)),
        Some(("bob".into(), "Tbob".into(), INITIAL_TOKEN_NAME.into()))
    );
    assert!(user(m.conn(), "W2", "bob").expect("query").is_none());
    assert_eq!(
        users(m.conn(), WS, "", MAX_PAGE).expect("query").rows.len(),
        3
    );

    let c = view(&m, "C1");
    assert_eq!(
        (c.name.as_str(), c.creator_id.as_str()),
        ("general", "alice")
    );
    assert!(!c.private && !c.direct && !c.archived);
    assert_eq!((c.member_count, c.head_seq), (1, 0));
    assert!(c.is_member);
    assert_eq!(
        channel_id_by_name(m.conn(), WS, "general").expect("query"),
        Some("C1".to_string())
    );
    assert_eq!(since_seq(&m, "C1", "alice"), 0);
}

#[test]
fn channel_created_makes_every_listed_user_a_member() {
    let (mut m, mut f) = (model(), Feed::new());
    setup(&mut m, &mut f);
    m.apply(&[f.ws(
        "D1",
        "alice",
        channel_created("dm-1", ChannelKind::Direct, &["bob", "alice", "bob"]),
    )]);
    assert_eq!(member_ids(&m, "D1"), ["alice", "bob"]);
    assert_eq!(since_seq(&m, "D1", "bob"), 0);
    let dm = view(&m, "D1");
    assert!(dm.direct && dm.private);
}

#[test]
fn join_leave_and_rejoin_move_since_seq() {
    let (mut m, mut f) = (model(), Feed::new());
    setup(&mut m, &mut f);
    m.apply(&[
        f.ch("C1", "alice", posted("M1", "hi")),
        f.ch("C1", "bob", joined("bob")),
    ]);
    assert_eq!(member_ids(&m, "C1"), ["alice", "bob"]);
    assert_eq!(since_seq(&m, "C1", "bob"), 2);

    m.apply(&[f.ch("C1", "bob", left("bob"))]);
    assert_eq!(member_ids(&m, "C1"), ["alice"]);
    assert!(!AclDirectory(m.conn())
        .is_member(
            &ChannelId::from_trusted("C1".into()),
            &UserId::from_trusted("bob".into())
        )
        .expect("query"));

    m.apply(&[f.ch("C1", "bob", joined("bob"))]);
    assert_eq!(since_seq(&m, "C1", "bob"), 4, "a rejoin starts anew");
}

#[test]
fn a_join_while_already_a_member_keeps_since_seq() {
    let (mut m, mut f) = (model(), Feed::new());
    setup(&mut m, &mut f);
    m.apply(&[
        f.ch("C1", "bob", joined("bob")),
        f.ch("C1", "alice", invited("bob")),
    ]);
    assert_eq!(since_seq(&m, "C1", "bob"), 1);
}

#[test]
fn invite_and_remove() {
    let (mut m, mut f) = (model(), Feed::new());
    setup(&mut m, &mut f);
    m.apply(&[f.ch("C1", "alice", invited("carol"))]);
    assert!(AclDirectory(m.conn())
        .is_member(
            &ChannelId::from_trusted("C1".into()),
            &UserId::from_trusted("carol".into())
        )
        .expect("query"));
    assert_eq!(since_seq(&m, "C1", "carol"), 1);
    assert_eq!(
        small_channels_of(m.conn(), "carol", 10).expect("query"),
        ["C1"]
    );
    m.apply(&[f.ch("C1", "alice", removed("carol"))]);
    assert_eq!(member_ids(&m, "C1"), ["alice"]);
}

#[test]
fn archive_marks_the_channel() {
    let (mut m, mut f) = (model(), Feed::new());
    setup(&mut m, &mut f);
    m.apply(&[f.ch("C1", "alice", archived())]);
    assert!(view(&m, "C1").archived);
    let facts = AclDirectory(m.conn())
        .channel(&ChannelId::from_trusted("C1".into()))
        .expect("query")
        .expect("facts");
    assert!(facts.archived);
}

#[test]
fn head_seq_follows_every_event_on_the_channel_subject() {
    let (mut m, mut f) = (model(), Feed::new());
    setup(&mut m, &mut f);
    m.apply(&[
        f.ch("C1", "alice", posted("M1", "hi")),
        f.ch("C1", "bob", joined("bob")),
        f.ch("C1", "bob", reacted("M1", "+1")),
        f.ch("C9", "bob", posted("M2", "nowhere")),
        f.ws("", "alice", user_added("dave", "dave", "t-dave")),
        f.user("bob", read_marker("C1", 3)),
    ]);
    assert_eq!(view(&m, "C1").head_seq, 3);
    assert!(!channel_exists(m.conn(), "C9").expect("query"));
    assert_eq!(m.checkpoint(), 11);
}

#[test]
fn a_batch_applied_twice_is_applied_once() {
    let mut f = Feed::new();
    let (mut once, mut twice) = (model(), model());
    setup(&mut once, &mut f);
    let mut f2 = Feed::new();
    setup(&mut twice, &mut f2);
    let batch = [
        f.ws(
            "C2",
            "alice",
            channel_created("random", ChannelKind::Channel, &["alice"]),
        ),
        f.ws("", "alice", user_added("dave", "dave", "t-dave")),
        f.ch("C1", "bob", joined("bob")),
        f.ch("C1", "bob", left("bob")),
        f.ch("C2", "alice", invited("dave")),
    ];
    once.apply(&batch);
    twice.apply(&batch);
    assert_eq!(twice.apply(&batch), 10);
    assert_eq!(twice.checksum(), once.checksum());
    // And both halves of a batch that straddles the checkpoint.
    let mut f3 = Feed::new();
    let mut split = model();
    setup(&mut split, &mut f3);
    split.apply(&batch[..2]);
    split.apply(&batch);
    assert_eq!(split.checksum(), once.checksum());
}

/// A fold-time conflict is a bug that stops the projector: the event is
/// not dropped, the batch rolls back and the checkpoint stays put.
#[test]
fn a_second_channel_with_a_taken_name_fails_the_batch() {
    let (mut m, mut f) = (model(), Feed::new());
    setup(&mut m, &mut f);
    let before = m.checksum();
    let fine = f.ws(
        "C2",
        "bob",
        channel_created("random", ChannelKind::Channel, &["bob"]),
    );
    let clash = f.ws(
        "C3",
        "bob",
        channel_created("general", ChannelKind::Channel, &["bob"]),
    );
    let err = m
        .try_apply(&[fine.clone(), clash.clone()])
        .expect_err("a taken name must not fold");
    match err {
        BatchError::Fold {
            stream_seq,
            subject,
            ..
        } => {
            assert_eq!(stream_seq, clash.stream_seq);
            assert_eq!(subject, clash.subject);
        }
        other => panic!("expected a fold error, got {other}"),
    }
    assert_eq!(m.checkpoint(), 5, "the checkpoint does not move");
    assert_eq!(m.checksum(), before, "the whole batch rolled back");
    assert!(!channel_exists(m.conn(), "C2").expect("query"));
    // Retrying fails the same way: the projector stalls on the event.
    assert!(m.try_apply(&[clash]).is_err());
    assert_eq!(m.checkpoint(), 5);
    // The events before it still fold on their own.
    assert_eq!(m.apply(&[fine]), 6);
}

#[test]
fn a_second_channel_with_a_taken_id_fails() {
    let (mut m, mut f) = (model(), Feed::new());
    setup(&mut m, &mut f);
    let clash = f.ws(
        "C1",
        "bob",
        channel_created("other", ChannelKind::Channel, &["bob"]),
    );
    assert!(matches!(
        m.try_apply(&[clash]),
        Err(BatchError::Fold { .. })
    ));
    assert_eq!(m.checkpoint(), 5);
    assert_eq!(view(&m, "C1").name, "general");
}

#[test]
fn a_user_with_a_taken_handle_token_or_id_fails() {
    for clash in [
        user_added("bob2", "bob", "t-bob2"),
        user_added("bob2", "bob2", "t-bob"),
        user_added("bob", "bob2", "t-bob2"),
    ] {
        let (mut m, mut f) = (model(), Feed::new());
        setup(&mut m, &mut f);
        let ev = f.ws("", "alice", clash);
        assert!(
            matches!(m.try_apply(&[ev]), Err(BatchError::Fold { .. })),
            "{:?}",
            handles(&m)
        );
        assert_eq!(m.checkpoint(), 5);
        assert_eq!(
            users(m.conn(), WS, "", MAX_PAGE).expect("query").rows.len(),
            3
        );
    }
}

fn handles(m: &Model<Acl>) -> Vec<String> {
    users(m.conn(), WS, "", MAX_PAGE)
        .expect("query")
        .rows
        .into_iter()
        .map(|u| u.handle)
        .collect()
}

#[test]
fn a_rename_is_void_when_the_channel_changed_after_it_was_decided() {
    let (mut m, mut f) = (model(), Feed::new());
    setup(&mut m, &mut f);
    // Decided against the channel as it was; then the channel is archived
    // (on its own subject) before the rename (on the workspace subject)
    // is folded.
    let observed = f.fence("C1");
    m.apply(&[f.ch("C1", "alice", archived())]);
    assert!(f.fence("C1") > observed);
    m.apply(&[f.ws("C1", "alice", renamed("town-square", observed))]);
    assert_eq!(view(&m, "C1").name, "general", "the rename is void");
    assert_eq!(
        channel_id_by_name(m.conn(), WS, "town-square").expect("query"),
        None,
        "a void rename takes no name"
    );
    // A post does not move the fence: a rename decided before it holds.
    let observed = f.fence("C1");
    m.apply(&[f.ch("C1", "alice", posted("M1", "hi"))]);
    assert_eq!(f.fence("C1"), observed);
    m.apply(&[f.ws("C1", "alice", renamed("town-square", observed))]);
    assert_eq!(view(&m, "C1").name, "town-square");
}

#[test]
fn a_rename_onto_a_taken_name_fails() {
    let (mut m, mut f) = (model(), Feed::new());
    setup(&mut m, &mut f);
    m.apply(&[f.ws(
        "C2",
        "alice",
        channel_created("random", ChannelKind::Channel, &["alice"]),
    )]);
    let rename = f.ws("C2", "alice", renamed("general", f.fence("C2")));
    assert!(m.try_apply(&[rename]).is_err());
    assert_eq!(view(&m, "C2").name, "random");
}

#[test]
fn a_rename_on_the_workspace_subject_renames_the_envelopes_channel() {
    let (mut m, mut f) = (model(), Feed::new());
    setup(&mut m, &mut f);
    m.apply(&[f.ws("C1", "alice", renamed("town-square", f.fence("C1")))]);
    let c = view(&m, "C1");
    assert_eq!(c.name, "town-square");
    // Not a channel event: the channel's head does not move.
    assert_eq!(c.head_seq, 0);
    assert_eq!(
        channel_id_by_name(m.conn(), WS, "town-square").expect("query"),
        Some("C1".to_string())
    );
    assert_eq!(
        channel_id_by_name(m.conn(), WS, "general").expect("query"),
        None
    );
    // The old name is free again.
    m.apply(&[f.ws(
        "C2",
        "bob",
        channel_created("general", ChannelKind::Channel, &["bob"]),
    )]);
    assert_eq!(view(&m, "C2").name, "general");
}

#[test]
fn a_topic_set_replaces_the_topic() {
    let (mut m, mut f) = (model(), Feed::new());
    setup(&mut m, &mut f);
    m.apply(&[f.ch("C1", "alice", topic_set("launch plans"))]);
    assert_eq!(view(&m, "C1").topic, "launch plans");
    assert_eq!(
        channel_topic(m.conn(), "C1").expect("query").as_deref(),
        Some("launch plans")
    );
    m.apply(&[f.ch("C1", "alice", topic_set(""))]);
    let c = view(&m, "C1");
    assert_eq!((c.topic.as_str(), c.head_seq), ("", 2));
}

#[test]
fn members_by_handle_finds_only_members_of_the_channel() {
    let (mut m, mut f) = (model(), Feed::new());
    setup(&mut m, &mut f);
    m.apply(&[f.ch("C1", "bob", joined("bob"))]);
    let found =
        members_by_handle(m.conn(), WS, "C1", ["alice", "bob", "carol", "nobody"]).expect("query");
    assert_eq!(
        found,
        [
            ("alice".to_string(), "alice".to_string()),
            ("bob".to_string(), "bob".to_string())
        ]
    );
    assert!(members_by_handle(m.conn(), "W2", "C1", ["alice"])
        .expect("query")
        .is_empty());
}

#[test]
fn dm_names_are_not_in_the_channel_namespace() {
    let (mut m, mut f) = (model(), Feed::new());
    setup(&mut m, &mut f);
    m.apply(&[
        f.ws(
            "D1",
            "alice",
            channel_created("general", ChannelKind::Direct, &["alice", "bob"]),
        ),
        f.ws(
            "D2",
            "alice",
            channel_created("general", ChannelKind::Direct, &["alice", "carol"]),
        ),
    ]);
    assert!(view(&m, "D1").direct && view(&m, "D2").direct);
    assert_eq!(
        channel_id_by_name(m.conn(), WS, "general").expect("query"),
        Some("C1".to_string())
    );
    let (mut m, mut f) = (model(), Feed::new());
    setup(&mut m, &mut f);
    m.apply(&[f.ws(
        "D1",
        "alice",
        channel_created("dm-x", ChannelKind::Direct, &["alice", "bob"]),
    )]);
    assert_eq!(
        channel_id_by_name(m.conn(), WS, "dm-x").expect("query"),
        None
    );
}

/// Every row of a keyset listing, page by page, resuming after `key` of
/// the last row of each page.
fn all_pages<T>(limit: u32, mut page: impl FnMut(Option<&T>, u32) -> Listing<T>) -> (Vec<T>, usize)
where
    T: Clone,
{
    let (mut out, mut pages): (Vec<T>, usize) = (Vec::new(), 0);
    let mut last: Option<T> = None;
    loop {
        let l = page(last.as_ref(), limit);
        pages += 1;
        assert!(l.rows.len() <= limit as usize);
        out.extend(l.rows.iter().cloned());
        last = l.rows.last().cloned();
        if !l.more {
            return (out, pages);
        }
        assert!(pages < 1000, "paging never ends");
    }
}

/// A workspace with `n` users u000.. (handles in reverse order of ids),
/// all in public channel `C1`.
fn crowd(n: usize) -> (Model<Acl>, Feed) {
    let (mut m, mut f) = (model(), Feed::new());
    let mut batch = vec![f.ws("", "", workspace_created("acme"))];
    let ids: Vec<String> = (0..n).map(|i| format!("u{i:03}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let handle = format!("h{:03}", n - i);
        batch.push(f.ws("", "", user_added(id, &handle, &format!("t-{id}"))));
    }
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    batch.push(f.ws(
        "C1",
        "u000",
        channel_created("general", ChannelKind::Channel, &refs),
    ));
    m.apply(&batch);
    (m, f)
}

#[test]
fn users_and_members_page_through_everyone_once_in_key_order() {
    let (m, _) = crowd(25);
    for limit in [1, 2, 7, 25, 26, MAX_PAGE] {
        let (users, _) = all_pages(limit, |last: Option<&UserView>, l| {
            let after = last.map_or("", |u| u.handle.as_str());
            super::users(m.conn(), WS, after, l).expect("users")
        });
        let handles: Vec<&str> = users.iter().map(|u| u.handle.as_str()).collect();
        let mut sorted = handles.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(handles, sorted, "handle order, no repeats (limit {limit})");
        assert_eq!(handles.len(), 25);

        let (members, pages) = all_pages(limit, |last: Option<&UserView>, l| {
            let after = last.map_or("", |u| u.id.as_str());
            super::members(m.conn(), "C1", after, l).expect("members")
        });
        let ids: Vec<&str> = members.iter().map(|u| u.id.as_str()).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(ids, sorted, "user id order, no repeats (limit {limit})");
        assert_eq!(ids.len(), 25);
        assert_eq!(pages, 25usize.div_ceil(limit as usize).max(1));
    }
    // A limit past the cap is the cap; zero is one row.
    assert_eq!(
        super::users(m.conn(), WS, "", 0).expect("users").rows.len(),
        1
    );
    assert_eq!(
        super::users(m.conn(), WS, "", u32::MAX)
            .expect("users")
            .rows
            .len(),
        25
    );
    // Another workspace's listing is empty, whatever the cursor.
    assert!(super::users(m.conn(), "W2", "", 10)
        .expect("users")
        .rows
        .is_empty());
}

#[test]
fn a_member_leaving_between_pages_shifts_nothing() {
    let (mut m, mut f) = crowd(10);
    let first = super::members(m.conn(), "C1", "", 4).expect("page 1");
    assert!(first.more);
    let after = first.rows.last().map(|u| u.id.clone()).expect("a row");
    // One member of the first page leaves, and one of the rest.
    m.apply(&[
        f.ch("C1", "u000", removed("u001")),
        f.ch("C1", "u000", removed("u007")),
    ]);
    let rest = super::members(m.conn(), "C1", &after, 100).expect("page 2");
    let ids: Vec<&str> = rest.rows.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(ids, ["u004", "u005", "u006", "u008", "u009"]);
    assert!(!rest.more);
}

#[test]
fn visible_channels_page_by_name_and_skip_others_private_ones() {
    let (mut m, mut f) = (model(), Feed::new());
    setup(&mut m, &mut f);
    m.apply(&[
        f.ws(
            "C2",
            "bob",
            channel_created("board", ChannelKind::Channel, &["bob"]),
        ),
        f.ws(
            "C3",
            "alice",
            channel_created("alpha", ChannelKind::Channel, &["alice"]),
        ),
        f.ws(
            "C4",
            "alice",
            channel_created("zeta", ChannelKind::Channel, &["alice"]),
        ),
        f.ws(
            "D1",
            "alice",
            channel_created("dm", ChannelKind::Direct, &["alice", "bob"]),
        ),
    ]);
    // The test feed makes only DMs private; C2 is a private channel.
    m.conn_mut()
        .execute("UPDATE channels SET private = 1 WHERE id = 'C2'", [])
        .expect("private");
    let names = |viewer: &str, limit: u32| -> Vec<String> {
        let (rows, _) = all_pages(limit, |last: Option<&ChannelView>, l| {
            let after = last.map(|c| (c.name.as_str(), c.id.as_str()));
            visible_channels(m.conn(), WS, viewer, after, l).expect("channels")
        });
        rows.into_iter().map(|c| c.name).collect()
    };
    for limit in [1, 2, 10] {
        assert_eq!(names("alice", limit), ["alpha", "dm", "general", "zeta"]);
        assert_eq!(
            names("bob", limit),
            ["alpha", "board", "dm", "general", "zeta"]
        );
        assert_eq!(names("carol", limit), ["alpha", "general", "zeta"]);
    }
}

#[test]
fn small_channels_count_members_only_up_to_the_bound() {
    let (m, _) = crowd(12);
    assert_eq!(
        small_channels_of(m.conn(), "u003", 12).expect("query"),
        ["C1"]
    );
    assert!(small_channels_of(m.conn(), "u003", 11)
        .expect("query")
        .is_empty());
    assert!(small_channels_of(m.conn(), "u003", 0)
        .expect("query")
        .is_empty());
}

#[test]
fn readable_channels_are_public_ones_and_current_memberships() {
    let (mut m, mut f) = (model(), Feed::new());
    setup(&mut m, &mut f);
    let private = Body::ChannelCreated(switchboard_core::events::ChannelCreated {
        name: "secret".into(),
        private: true,
        topic: String::new(),
        kind: ChannelKind::Channel as i32,
        member_ids: vec!["alice".into(), "bob".into()],
    });
    m.apply(&[
        f.ws("P1", "alice", private),
        f.ws(
            "D1",
            "alice",
            channel_created("D1", ChannelKind::Direct, &["alice", "carol"]),
        ),
    ]);
    let readable = |m: &Model<Acl>, u: &str| {
        let mut ids = readable_channel_ids(m.conn(), WS, u).expect("query");
        ids.sort();
        ids
    };
    assert_eq!(readable(&m, "alice"), ["C1", "D1", "P1"]);
    assert_eq!(readable(&m, "bob"), ["C1", "P1"], "public without joining");
    assert_eq!(readable(&m, "carol"), ["C1", "D1"]);
    m.apply(&[f.ch("P1", "bob", left("bob"))]);
    assert_eq!(readable(&m, "bob"), ["C1"], "left: gone at once");
    assert!(readable_channel_ids(m.conn(), "W2", "alice")
        .expect("query")
        .is_empty());
}

/// A `TokenIssued` of the old format (hash inline; still folded).
#[allow(deprecated)] // the old format, on purpose
fn issued(id: &str, user: &str, hash: &str, kind: TokenKind, expires: i64) -> Body {
    Body::TokenIssued(events::TokenIssued {
        token_id: id.into(),
        user_id: user.into(),
        name: format!("n-{id}"),
        token_hash: hash.into(),
        expires_at_ms: expires,
        kind: kind as i32,
    })
}

fn token_ids(m: &Model<Acl>, user: &str) -> Vec<String> {
    tokens_of(m.conn(), WS, user)
        .expect("query")
        .into_iter()
        .map(|t| t.id)
        .collect()
}

#[test]
fn tokens_are_issued_revoked_and_signed_out() {
    let (mut m, mut f) = (model(), Feed::new());
    setup(&mut m, &mut f);
    m.apply(&[
        f.ws("", "bob", issued("T2", "bob", "h2", TokenKind::Api, 99)),
        f.ws("", "", issued("T3", "bob", "h3", TokenKind::Session, 0)),
        f.ws("", "", issued("T4", "bob", "h4", TokenKind::Session, 0)),
    ]);
    assert_eq!(token_ids(&m, "bob"), ["T2", "T3", "T4", "Tbob"]);
    let (u, t) = token_by_hash(m.conn(), "h2").expect("query").expect("live");
    assert_eq!(
        (u.id.as_str(), t.expires_ms, t.kind.as_str()),
        ("bob", 99, "api")
    );
    assert_eq!(
        token(m.conn(), "W2", "T2").expect("query").map(|t| t.id),
        None
    );
    m.apply(&[f.ws(
        "",
        "bob",
        Body::TokenRevoked(events::TokenRevoked {
            token_id: "T2".into(),
            user_id: "bob".into(),
        }),
    )]);
    assert!(token_by_hash(m.conn(), "h2").expect("query").is_none());
    // Sign out everywhere: sessions go, API tokens stay.
    m.apply(&[f.ws(
        "",
        "bob",
        Body::SessionsRevoked(events::SessionsRevoked {
            user_id: "bob".into(),
        }),
    )]);
    assert_eq!(token_ids(&m, "bob"), ["Tbob"]);
    assert_eq!(token_ids(&m, "alice"), ["Talice"]);
}

#[test]
fn deactivation_revokes_every_token_and_keeps_the_user_listed() {
    let (mut m, mut f) = (model(), Feed::new());
    setup(&mut m, &mut f);
    m.apply(&[
        f.ws("", "bob", issued("T2", "bob", "h2", TokenKind::Api, 0)),
        f.ws(
            "",
            "alice",
            Body::UserDeactivated(events::UserDeactivated {
                user_id: "bob".into(),
            }),
        ),
    ]);
    assert!(token_ids(&m, "bob").is_empty());
    assert!(token_by_hash(m.conn(), "t-bob").expect("query").is_none());
    let bob = user(m.conn(), WS, "bob")
        .expect("query")
        .expect("still listed");
    assert!(bob.deactivated);
    m.apply(&[
        f.ws(
            "",
            "alice",
            Body::UserReactivated(events::UserReactivated {
                user_id: "bob".into(),
            }),
        ),
        f.ws(
            "",
            "alice",
            Body::UserRoleSet(events::UserRoleSet {
                user_id: "bob".into(),
                role: Role::Admin as i32,
            }),
        ),
    ]);
    let bob = user(m.conn(), WS, "bob").expect("query").expect("bob");
    assert!(!bob.deactivated && bob.is_admin());
    // Revoked tokens stay revoked.
    assert!(token_by_hash(m.conn(), "t-bob").expect("query").is_none());
    assert_eq!(active_admins(m.conn(), WS).expect("query"), 1);
}

/// A `TokenIssued` as written now: no hash (its `TokenVerifier` precedes
/// it on `sbv.<ws>.tokens`).
fn issued_now(id: &str, user: &str) -> Body {
    Body::TokenIssued(events::TokenIssued {
        token_id: id.into(),
        user_id: user.into(),
        name: format!("n-{id}"),
        kind: TokenKind::Api as i32,
        ..Default::default()
    })
}

#[test]
fn tokens_go_live_from_their_verifier_and_old_inline_hashes_still_verify() {
    let (mut m, mut f) = (model(), Feed::new());
    setup(&mut m, &mut f); // old format: hashes inline
    assert!(token_by_hash(m.conn(), "t-bob").expect("query").is_some());
    m.apply(&[
        // A user added now: the verifier of its initial token first.
        f.verifier("Tdave", "dave", "t-dave"),
        f.ws("", "alice", user_added_now("dave", "dave")),
        // A token issued now.
        f.verifier("T7", "bob", "h7"),
        f.ws("", "bob", issued_now("T7", "bob")),
        // An issue that was refused: its verifier is never used.
        f.verifier("T8", "bob", "h8"),
        // A TokenIssued without a verifier makes no token.
        f.ws("", "bob", issued_now("T9", "bob")),
    ]);
    let (u, _) = token_by_hash(m.conn(), "t-dave")
        .expect("query")
        .expect("live");
    assert_eq!(u.id, "dave");
    let (u, t) = token_by_hash(m.conn(), "h7").expect("query").expect("live");
    assert_eq!((u.id.as_str(), t.id.as_str()), ("bob", "T7"));
    assert!(token_by_hash(m.conn(), "h8").expect("query").is_none());
    assert_eq!(token_ids(&m, "bob"), ["T7", "Tbob"]);
    // Used verifiers are taken out; the unused one stays.
    assert_eq!(
        m.int("SELECT COUNT(*) FROM token_verifiers", []),
        1,
        "only T8's verifier is left"
    );
}

#[test]
fn retention_and_holds_make_rows_and_forever_or_a_lift_removes_them() {
    use switchboard_core::events::{HoldScope, LegalHoldLifted, LegalHoldPlaced, RetentionSet};
    let (mut m, mut f) = (model(), Feed::new());
    setup(&mut m, &mut f);
    let ws = WS.to_string();
    let retention = |channel: &str, days: u32, secs: u64| {
        Body::RetentionSet(RetentionSet {
            channel_id: channel.into(),
            days,
            max_age_secs: secs,
        })
    };
    m.apply(&[
        f.ws("", "alice", retention("", 90, 0)),
        f.ws("", "alice", retention("C1", 0, 3600)),
        f.ws("", "alice", retention("C1", 30, 0)),
        f.ws(
            "",
            "alice",
            Body::LegalHoldPlaced(LegalHoldPlaced {
                hold_id: "H1".into(),
                scope: HoldScope::User as i32,
                target_id: "bob".into(),
                reason: "matter 17".into(),
            }),
        ),
        f.ws(
            "",
            "alice",
            Body::LegalHoldPlaced(LegalHoldPlaced {
                hold_id: "H2".into(),
                scope: HoldScope::Channel as i32,
                target_id: "C1".into(),
                reason: "audit".into(),
            }),
        ),
    ]);
    let policies = retention_of(m.conn(), &ws).expect("query");
    let got: Vec<(&str, u32, u64)> = policies
        .iter()
        .map(|p| (p.channel_id.as_str(), p.days, p.max_age_secs))
        .collect();
    // The channel's second setting replaced its first.
    assert_eq!(got, [("", 90, 0), ("C1", 30, 0)]);
    assert_eq!(policies[0].set_by, "alice");
    let h = holds(m.conn(), &ws).expect("query");
    assert!(!h.workspace);
    assert!(h.users.contains("bob") && h.channels.contains("C1"));
    assert!(h.message_held("C2", "bob") && h.message_held("C1", "carol"));
    assert!(!h.message_held("C2", "carol"));
    // Forever removes a policy; a lift removes a hold; another
    // workspace's holds are not this one's.
    m.apply(&[
        f.ws("", "alice", retention("C1", 0, 0)),
        f.ws(
            "",
            "alice",
            Body::LegalHoldLifted(LegalHoldLifted {
                hold_id: "H1".into(),
            }),
        ),
    ]);
    let got: Vec<String> = retention_of(m.conn(), &ws)
        .expect("query")
        .into_iter()
        .map(|p| p.channel_id)
        .collect();
    assert_eq!(got, [""]);
    let left: Vec<String> = holds_of(m.conn(), &ws)
        .expect("query")
        .into_iter()
        .map(|v| format!("{} {} {}", v.id, v.scope, v.target_id))
        .collect();
    assert_eq!(left, ["H2 channel C1"]);
    assert!(holds_of(m.conn(), "another").expect("query").is_empty());
}
