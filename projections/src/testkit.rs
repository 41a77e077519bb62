//! Given-events-expect-rows tests without a server: a [`Feed`] numbers
//! envelopes the way the log does (stream seq, dense per-subject seq) and a
//! [`Model`] folds them into in-memory SQLite through the runner's own
//! `apply_batch`, checkpoint included.

use crate::runner::{apply_batch, checkpoint_of, migrate_model, BatchError, Projector};
use crate::sql::Connection;
use std::collections::HashMap;
use switchboard_core::events::{self, Body, ChannelKind, Envelope, Role};
use switchboard_streams::{subjects, LogEvent};

/// The workspace every test event lives in.
pub const WS: &str = "W1";

/// A read model of `P` in memory.
pub struct Model<P: Projector> {
    conn: Connection,
    _p: std::marker::PhantomData<P>,
}

impl<P: Projector> Model<P> {
    pub fn new() -> Model<P> {
        let conn = Connection::open_in_memory().expect("in-memory SQLite");
        migrate_model::<P>(&conn).expect("migrate");
        Model {
            conn,
            _p: std::marker::PhantomData,
        }
    }

    /// Folds `batch` as the runner does; returns the new checkpoint.
    pub fn try_apply(&mut self, batch: &[LogEvent]) -> Result<u64, BatchError> {
        apply_batch::<P>(&mut self.conn, batch)
    }

    /// Folds `batch`, which must succeed.
    pub fn apply(&mut self, batch: &[LogEvent]) -> u64 {
        self.try_apply(batch).expect("batch applies")
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// For folding below the checkpoint, straight through `P::apply`.
    pub fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    pub fn checkpoint(&self) -> u64 {
        checkpoint_of::<P>(&self.conn).expect("checkpoint")
    }

    /// The checksum over the read model's tables (not the checkpoint).
    pub fn checksum(&self) -> String {
        crate::checksum_of(&self.conn, P::TABLES).expect("checksum")
    }

    /// One integer from `sql` (for rows no query function exposes).
    pub fn int(&self, sql: &str, params: impl rusqlite::Params) -> i64 {
        self.conn.query_row(sql, params, |r| r.get(0)).expect(sql)
    }
}

/// Numbers events like the log: stream seqs 1, 2, 3, … and a dense seq per
/// subject (`channel_seq`), and the subject's `fence_seq` (moved by every
/// event but a post). Timestamps derive from the stream seq.
#[derive(Default)]
pub struct Feed {
    stream_seq: u64,
    subject_seqs: HashMap<String, u64>,
    fences: HashMap<String, u64>,
}

impl Feed {
    pub fn new() -> Feed {
        Feed::default()
    }

    fn event(&mut self, subject: String, channel: &str, actor: &str, body: Body) -> LogEvent {
        self.stream_seq += 1;
        let seq = self.subject_seqs.entry(subject.clone()).or_default();
        *seq += 1;
        let fence = self.fences.entry(subject.clone()).or_default();
        if !matches!(body, Body::MessagePosted(_)) {
            *fence = *seq;
        }
        let fence_seq = *fence;
        LogEvent {
            stream_seq: self.stream_seq,
            pending: 0,
            subject,
            envelope: Some(Envelope {
                event_id: format!("E{}", self.stream_seq),
                workspace_id: WS.to_string(),
                channel_id: channel.to_string(),
                actor_id: actor.to_string(),
                ts_ms: 1_000 * self.stream_seq as i64,
                channel_seq: *seq,
                fence_seq,
                request_id: String::new(),

                prev_digest: Vec::new(),
                body: Some(body),
            }),
        }
    }

    /// An event on the workspace subject (`channel` is set only for
    /// `ChannelCreated`).
    pub fn ws(&mut self, channel: &str, actor: &str, body: Body) -> LogEvent {
        self.event(subjects::workspace(WS), channel, actor, body)
    }

    /// An event on `channel`'s subject.
    pub fn ch(&mut self, channel: &str, actor: &str, body: Body) -> LogEvent {
        self.event(subjects::channel(WS, channel), channel, actor, body)
    }

    /// A `TokenVerifier` on the workspace's verifier subject
    /// (`sbv.<ws>.tokens`, outside the replayable `sb.>`).
    pub fn verifier(&mut self, token_id: &str, user: &str, hash: &str) -> LogEvent {
        let body = Body::TokenVerifier(events::TokenVerifier {
            token_id: token_id.into(),
            user_id: user.into(),
            token_hash: hash.into(),
        });
        self.event(subjects::verifiers(WS), "", "", body)
    }

    /// An event on `user`'s subject.
    pub fn user(&mut self, user: &str, body: Body) -> LogEvent {
        self.event(subjects::user(WS, user), "", user, body)
    }
}

// ----- event bodies -----

pub fn workspace_created(name: &str) -> Body {
    Body::WorkspaceCreated(events::WorkspaceCreated { name: name.into() })
}

/// A `UserAdded` as logs written before token verifiers moved out of the
/// replayable log have it: the initial token's hash inline (still folded).
#[allow(deprecated)] // the old format, on purpose
pub fn user_added(id: &str, handle: &str, token_hash: &str) -> Body {
    Body::UserAdded(events::UserAdded {
        user_id: id.into(),
        handle: handle.into(),
        display_name: handle.to_uppercase(),
        role: Role::Member as i32,
        token_hash: token_hash.into(),
    })
}

/// A `UserAdded` as written now: no hash (its `TokenVerifier` precedes it).
pub fn user_added_now(id: &str, handle: &str) -> Body {
    Body::UserAdded(events::UserAdded {
        user_id: id.into(),
        handle: handle.into(),
        display_name: handle.to_uppercase(),
        role: Role::Member as i32,
        ..Default::default()
    })
}

pub fn channel_created(name: &str, kind: ChannelKind, members: &[&str]) -> Body {
    Body::ChannelCreated(events::ChannelCreated {
        name: name.into(),
        private: kind == ChannelKind::Direct,
        topic: String::new(),
        kind: kind as i32,
        member_ids: members.iter().map(|m| m.to_string()).collect(),
    })
}

pub fn archived() -> Body {
    Body::ChannelArchived(events::ChannelArchived {})
}

pub fn joined(user: &str) -> Body {
    Body::MemberJoined(events::MemberJoined {
        user_id: user.into(),
    })
}

pub fn left(user: &str) -> Body {
    Body::MemberLeft(events::MemberLeft {
        user_id: user.into(),
    })
}

pub fn invited(user: &str) -> Body {
    Body::MemberInvited(events::MemberInvited {
        user_id: user.into(),
    })
}

pub fn removed(user: &str) -> Body {
    Body::MemberRemoved(events::MemberRemoved {
        user_id: user.into(),
    })
}

pub fn posted(id: &str, text: &str) -> Body {
    Body::MessagePosted(events::MessagePosted {
        message_id: id.into(),
        text: text.into(),
        ..Default::default()
    })
}

pub fn posted_with_client_id(id: &str, text: &str, client_msg_id: &str) -> Body {
    Body::MessagePosted(events::MessagePosted {
        message_id: id.into(),
        text: text.into(),
        client_msg_id: client_msg_id.into(),
        ..Default::default()
    })
}

pub fn reply(id: &str, root: &str, text: &str) -> Body {
    Body::MessagePosted(events::MessagePosted {
        message_id: id.into(),
        text: text.into(),
        thread_root_id: root.into(),
        ..Default::default()
    })
}

pub fn edited(id: &str, text: &str) -> Body {
    Body::MessageEdited(events::MessageEdited {
        message_id: id.into(),
        text: text.into(),
        mentions: None,
        ..Default::default()
    })
}

/// A post whose text's key is destroyed, as the reader hands it on: no
/// text, the `Sealed` kept (see `MessagePosted::is_erased`).
pub fn posted_erased(id: &str) -> Body {
    Body::MessagePosted(events::MessagePosted {
        message_id: id.into(),
        sealed: Some(events::Sealed::default()),
        ..Default::default()
    })
}

/// An edit whose text's key is destroyed (see [`posted_erased`]).
pub fn edited_erased(id: &str) -> Body {
    Body::MessageEdited(events::MessageEdited {
        message_id: id.into(),
        sealed: Some(events::Sealed::default()),
        ..Default::default()
    })
}

/// An erasure of the channel's messages posted before `before_ts_ms` by
/// `authors` (everyone when empty) except `except`, up to `through`.
pub fn content_erased(before_ts_ms: i64, authors: &[&str], except: &[&str], through: u64) -> Body {
    Body::ContentErased(events::ContentErased {
        reason: events::ErasureReason::Retention as i32,
        policy: "channel retention 1 days".into(),
        before_ts_ms,
        author_ids: authors.iter().map(|a| a.to_string()).collect(),
        except_author_ids: except.iter().map(|a| a.to_string()).collect(),
        through_channel_seq: through,
        key_refs: Vec::new(),
    })
}

/// The events as the reader hands them on once the erasures among them
/// destroyed their keys (what a rebuild after the erasure folds): every
/// post and edit of a message that a `ContentErased` among `events` covers
/// (on the post's channel, by the post's channel seq, time and sender)
/// has no text and keeps a `Sealed`; its mentions stay (they are not
/// sealed).
pub fn as_erased(events: &[LogEvent]) -> Vec<LogEvent> {
    let mut posts: HashMap<String, (String, u64, i64, String)> = HashMap::new();
    for env in events.iter().filter_map(|ev| ev.envelope.as_ref()) {
        if let Some(Body::MessagePosted(b)) = &env.body {
            posts.entry(b.message_id.clone()).or_insert((
                env.channel_id.clone(),
                env.channel_seq,
                env.ts_ms,
                env.actor_id.clone(),
            ));
        }
    }
    let mut covered = std::collections::HashSet::new();
    for env in events.iter().filter_map(|ev| ev.envelope.as_ref()) {
        if let Some(Body::ContentErased(e)) = &env.body {
            for (id, (ch, seq, ts, author)) in &posts {
                if *ch == env.channel_id && e.covers(*seq, *ts, author) {
                    covered.insert(id.clone());
                }
            }
        }
    }
    let mut out = events.to_vec();
    for env in out.iter_mut().filter_map(|ev| ev.envelope.as_mut()) {
        match env.body.as_mut() {
            Some(Body::MessagePosted(b)) if covered.contains(&b.message_id) => {
                b.text.clear();
                b.sealed = Some(events::Sealed::default());
            }
            Some(Body::MessageEdited(b)) if covered.contains(&b.message_id) => {
                b.text.clear();
                b.sealed = Some(events::Sealed::default());
            }
            _ => {}
        }
    }
    out
}

/// The invariant of erasure in every read model: folding `events` live
/// (texts, then the erasures), one event per batch, ends in the same rows
/// as folding them erased ([`as_erased`], a rebuild after the erasure) and
/// as every projector that lagged and saw them erased only from event `k`
/// on. Panics naming the first `k` whose checksum differs; returns the
/// live model.
pub fn assert_erasure_folds_alike<P: Projector>(events: &[LogEvent]) -> Model<P> {
    let mut live = Model::<P>::new();
    for ev in events {
        live.apply(std::slice::from_ref(ev));
    }
    let want = live.checksum();
    let erased = as_erased(events);
    for k in 0..=events.len() {
        let mut lagged = Model::<P>::new();
        let mut batch = events[..k].to_vec();
        batch.extend_from_slice(&erased[k..]);
        lagged.apply(&batch);
        assert_eq!(
            lagged.checksum(),
            want,
            "{}: erased from event {k} on folds to other rows than live",
            P::NAME
        );
    }
    live
}

/// A post that arrives erased but still says whom it mentioned.
pub fn posted_erased_mentioning(id: &str, m: events::Mentions) -> Body {
    Body::MessagePosted(events::MessagePosted {
        message_id: id.into(),
        mentions: Some(m),
        sealed: Some(events::Sealed::default()),
        ..Default::default()
    })
}

pub fn mentions(user_ids: &[&str], channel: bool, here: bool) -> events::Mentions {
    events::Mentions {
        user_ids: user_ids.iter().map(|u| u.to_string()).collect(),
        channel,
        here,
        here_user_ids: Vec::new(),
    }
}

pub fn posted_mentioning(id: &str, text: &str, m: events::Mentions) -> Body {
    Body::MessagePosted(events::MessagePosted {
        message_id: id.into(),
        text: text.into(),
        mentions: Some(m),
        ..Default::default()
    })
}

pub fn edited_mentioning(id: &str, text: &str, m: events::Mentions) -> Body {
    Body::MessageEdited(events::MessageEdited {
        message_id: id.into(),
        text: text.into(),
        mentions: Some(m),
        ..Default::default()
    })
}

/// A thread reply that is also sent to the channel.
pub fn reply_to_channel(id: &str, root: &str, text: &str) -> Body {
    Body::MessagePosted(events::MessagePosted {
        message_id: id.into(),
        text: text.into(),
        thread_root_id: root.into(),
        also_send_to_channel: true,
        ..Default::default()
    })
}

pub fn pin(id: &str) -> Body {
    Body::MessagePinned(events::MessagePinned {
        message_id: id.into(),
    })
}

pub fn unpin(id: &str) -> Body {
    Body::MessageUnpinned(events::MessageUnpinned {
        message_id: id.into(),
    })
}

pub fn topic_set(topic: &str) -> Body {
    Body::ChannelTopicSet(events::ChannelTopicSet {
        topic: topic.into(),
    })
}

/// A rename decided against a channel whose fence was `observed`.
pub fn renamed(name: &str, observed: u64) -> Body {
    Body::ChannelRenamed(events::ChannelRenamed {
        name: name.into(),
        observed_fence_seq: observed,
    })
}

impl Feed {
    /// The `fence_seq` a channel's subject has now.
    pub fn fence(&self, channel: &str) -> u64 {
        let subject = switchboard_streams::subjects::channel(WS, channel);
        self.fences.get(&subject).copied().unwrap_or(0)
    }
}

pub fn deleted(id: &str) -> Body {
    Body::MessageDeleted(events::MessageDeleted {
        message_id: id.into(),
    })
}

pub fn reacted(id: &str, emoji: &str) -> Body {
    Body::ReactionAdded(events::ReactionAdded {
        message_id: id.into(),
        emoji: emoji.into(),
    })
}

pub fn unreacted(id: &str, emoji: &str) -> Body {
    Body::ReactionRemoved(events::ReactionRemoved {
        message_id: id.into(),
        emoji: emoji.into(),
    })
}

pub fn read_marker(channel: &str, seq: u64) -> Body {
    Body::ReadMarkerMoved(events::ReadMarkerMoved {
        channel_id: channel.into(),
        seq,
        ..Default::default()
    })
}

/// A thread's marker.
pub fn thread_marker(channel: &str, root: &str, seq: u64) -> Body {
    Body::ReadMarkerMoved(events::ReadMarkerMoved {
        channel_id: channel.into(),
        seq,
        thread_root_id: root.into(),
        backwards: false,
    })
}

/// "Mark unread": the marker moves to `seq`, even backwards.
pub fn marker_back(channel: &str, seq: u64) -> Body {
    Body::ReadMarkerMoved(events::ReadMarkerMoved {
        channel_id: channel.into(),
        seq,
        thread_root_id: String::new(),
        backwards: true,
    })
}

pub fn muted(channel: &str, muted: bool) -> Body {
    Body::ChannelPreferencesSet(events::ChannelPreferencesSet {
        channel_id: channel.into(),
        muted,
        notify: 0,
    })
}

/// `mentions` with `@here` addressing `here_users`.
pub fn here_mentions(here_users: &[&str]) -> events::Mentions {
    events::Mentions {
        user_ids: Vec::new(),
        channel: false,
        here: true,
        here_user_ids: here_users.iter().map(|u| u.to_string()).collect(),
    }
}

pub fn reply_mentioning(id: &str, root: &str, also: bool, m: events::Mentions) -> Body {
    Body::MessagePosted(events::MessagePosted {
        message_id: id.into(),
        text: "reply".into(),
        thread_root_id: root.into(),
        also_send_to_channel: also,
        mentions: Some(m),
        ..Default::default()
    })
}

pub fn uploaded(id: &str, name: &str, size: u64) -> Body {
    Body::FileUploaded(events::FileUploaded {
        file_id: id.into(),
        name: name.into(),
        size,
        content_type: "text/plain".into(),
        sha256: "ab".into(),
    })
}

pub fn expired(id: &str) -> Body {
    Body::FileExpired(events::FileExpired { file_id: id.into() })
}

pub fn posted_with_files(id: &str, text: &str, files: &[&str]) -> Body {
    Body::MessagePosted(events::MessagePosted {
        message_id: id.into(),
        text: text.into(),
        attachment_ids: files.iter().map(|f| f.to_string()).collect(),
        ..Default::default()
    })
}

/// The word the erasure stories erase (unique, to look for in files).
pub const ERASED_WORD: &str = "zebracorn7781";

/// A channel's life around one erasure, for every model's erasure tests.
/// C1: alice, bob, carol and dan are members; dan's keyword is
/// [`ERASED_WORD`]. alice posts M1 (an upload F1 attached, mentioning
/// bob), bob replies R1, carol replies R2, bob reacts to and pins M1,
/// alice edits M1 (now mentioning dan), posts M2 (mentioning bob) and
/// deletes it, bob reads up to M1; alice posts M3 at exactly the erasure's
/// `before_ts_ms` and X1 in C2. Then the erasure (retention, carol held,
/// through M3's seq) of C1, which covers M1, R1 and M2 — not R2 (carol is
/// held), M3 (not before the cut-off) nor X1 (another channel). After it,
/// dan reacts to M1 and bob replies R3 to M1. Every text but R2's holds
/// [`ERASED_WORD`].
pub fn erasure_story(f: &mut Feed) -> Vec<LogEvent> {
    let w = ERASED_WORD;
    let mut ev = vec![
        f.ws(
            "C1",
            "alice",
            channel_created("general", ChannelKind::Channel, &["alice"]),
        ),
        f.ws(
            "C2",
            "alice",
            channel_created("random", ChannelKind::Channel, &["alice"]),
        ),
        f.ch("C1", "bob", joined("bob")),
        f.ch("C1", "carol", joined("carol")),
        f.ch("C1", "dan", joined("dan")),
        f.user(
            "dan",
            Body::UserPreferencesSet(events::UserPreferencesSet {
                keywords: vec![w.to_string()],
                ..Default::default()
            }),
        ),
        f.ch("C1", "alice", uploaded("F1", &format!("{w}.txt"), 3)),
        f.ch(
            "C1",
            "alice",
            Body::MessagePosted(events::MessagePosted {
                message_id: "M1".into(),
                text: format!("the {w} plan"),
                attachment_ids: vec!["F1".into()],
                mentions: Some(mentions(&["bob"], false, false)),
                ..Default::default()
            }),
        ),
        f.ch("C1", "bob", reply("R1", "M1", &format!("bob on {w}"))),
        f.ch("C1", "carol", reply("R2", "M1", "carol, held")),
        f.ch("C1", "bob", reacted("M1", "+1")),
        f.ch("C1", "bob", pin("M1")),
        f.ch(
            "C1",
            "alice",
            edited_mentioning(
                "M1",
                &format!("the {w} plan, v2 @dan"),
                mentions(&["dan"], false, false),
            ),
        ),
        f.ch(
            "C1",
            "alice",
            posted_mentioning("M2", &format!("{w} @bob"), mentions(&["bob"], false, false)),
        ),
        f.ch("C1", "alice", deleted("M2")),
        f.user("bob", read_marker("C1", 5)),
    ];
    let m3 = f.ch(
        "C1",
        "alice",
        posted("M3", &format!("after the window {w}")),
    );
    let (cut, m3_seq) = m3
        .envelope
        .as_ref()
        .map(|e| (e.ts_ms, e.channel_seq))
        .expect("an envelope");
    ev.push(m3);
    ev.push(f.ch("C2", "alice", posted("X1", &format!("{w} elsewhere"))));
    ev.push(f.ch("C1", "", content_erased(cut, &[], &["carol"], m3_seq)));
    ev.push(f.ch("C1", "dan", reacted("M1", "x")));
    ev.push(f.ch("C1", "bob", reply("R3", "M1", "later")));
    ev
}

/// Whether any file of `dir` (a model's database, `-wal`, `-shm`) holds
/// `word`'s bytes.
pub fn files_contain(dir: &std::path::Path, word: &str) -> bool {
    let needle = word.as_bytes();
    std::fs::read_dir(dir)
        .expect("read the model's directory")
        .map(|e| std::fs::read(e.expect("a dir entry").path()).expect("read a file"))
        .any(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
}

/// Text gone from disk: a file-backed model of `P` (opened as the runner
/// opens it) folds posts, a reply and an edit carrying [`ERASED_WORD`]
/// (keyword "plan" for dan, so notifications hold the text), the word is
/// found in its directory (the control), then an erasure covering them is
/// folded and no file of the directory holds the word any more.
pub fn assert_erasure_leaves_no_trace<P: Projector>() {
    let w = ERASED_WORD;
    // Without its first byte: an FTS5 leaf stores a term after the prefix
    // it shares with the term before it (here `z`, as in the `zc…`/`zs…`
    // facet tokens), so the whole word never appears in an index page.
    let needle = &w[1..];
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join(format!("{}.sqlite", P::NAME));
    let (mut conn, _) = crate::open_model::<P>(&path).expect("open the model");
    let mut f = Feed::new();
    let before = vec![
        f.ws(
            "C1",
            "alice",
            channel_created("general", ChannelKind::Channel, &["alice"]),
        ),
        f.ch("C1", "bob", joined("bob")),
        f.ch("C1", "dan", joined("dan")),
        f.user(
            "dan",
            Body::UserPreferencesSet(events::UserPreferencesSet {
                keywords: vec!["plan".into()],
                ..Default::default()
            }),
        ),
        f.ch(
            "C1",
            "alice",
            posted_mentioning(
                "M1",
                &format!("plan {w} @bob"),
                mentions(&["bob"], false, false),
            ),
        ),
        f.ch("C1", "bob", reply("R1", "M1", &format!("{w} indeed plan"))),
        f.ch("C1", "alice", edited("M1", &format!("plan {w} v2"))),
        f.ch("C1", "carol", posted("K1", "kept words")),
    ];
    apply_batch::<P>(&mut conn, &before).expect("fold the posts");
    assert!(
        files_contain(dir.path(), needle),
        "{}: the control failed: the word is not in the files before the erasure",
        P::NAME
    );
    let cut = f.ch(
        "C1",
        "",
        content_erased(i64::MAX, &["alice", "bob"], &[], 100),
    );
    apply_batch::<P>(&mut conn, &[cut]).expect("fold the erasure");
    assert!(
        !files_contain(dir.path(), needle),
        "{}: the erased word is still in a file of the model",
        P::NAME
    );
}
