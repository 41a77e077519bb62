//! The notification-queue read model: for every message, who is told, and
//! what became of each notification since (read, acknowledged, withdrawn).
//!
//! The fold keeps its own copy of what the decision needs — channels (is it
//! a DM), membership (the ACL fold's own logic, [`crate::acl::fold_membership`]),
//! user and channel preferences, read markers and thread participants — so
//! a notification is decided from the log alone and a replay yields the
//! same rows.
//!
//! Recipients of a post (README "Notifications and preferences"): the
//! users it mentions, every member of a DM, members whose keywords the text
//! contains (whole words, case-insensitive), members with notify=all (for
//! messages shown in the channel), every member for `@channel`/`@everyone`
//! in a channel of at most [`CHANNEL_MENTION_CAP`] members, the members
//! `@here` addressed, and for a thread reply the root's author and earlier
//! repliers; minus the sender, users who are not members, and users who
//! muted the channel or set notify=nothing (notify=mentions also drops
//! the every-message reasons: notify=all's `message` and a DM's `dm`).
//!
//! Cost invariant: a post costs what its recipients cost, not what the
//! channel's size is. Mentions, `@here` and thread participants are looked
//! up one by one; keywords through an index by their first word (one
//! lookup per distinct word of the text); notify=all through an index of
//! channel preferences; only `@channel` walks the members, and only in
//! channels at or under the cap (the count stops at cap + 1).
//!
//! Each notification's state moves `pending` → `read` (a read marker
//! passed it) → `acked` (the user dismissed it), or to `withdrawn` (the
//! message was deleted, an edit took away the reason, the user left the
//! channel). `withdrawn` is final.
//!
//! An erasure (`ContentErased`) deletes every notification of the messages
//! of its channel it covers, whatever their state, and a post whose text
//! arrives erased (`is_erased()`) notifies nobody (its message row and
//! thread participation are kept: replies to it still notify). Why delete
//! rather than withdraw: who is told, and why, was partly decided from the
//! text (keywords, and the reason ranked first among several), which an
//! erased post no longer has, so the only state both fold orders (text
//! then erasure; erased text then erasure) reach alike is "none". An
//! edit that arrives erased, or of an erased message, changes nothing.

use crate::acl::{fold_membership, MembershipChange, MEMBERS_SCHEMA};
use crate::runner::Projector;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use switchboard_core::events::{
    Body, ChannelKind, ChannelPreferencesSet, DndSchedule, Envelope, Mentions, NotifyLevel,
    UserPreferencesSet,
};
use switchboard_streams::subjects;

pub struct Notifications;

/// `@channel`/`@everyone` notify every member only in channels with at most
/// this many members (Slack asks before notifying more); in larger ones
/// they notify nobody by themselves (the mention still counts in unread
/// badges).
pub const CHANNEL_MENTION_CAP: i64 = 1_000;

/// The schema's version (`PRAGMA user_version`); an older file is emptied
/// and refolded.
const SCHEMA_VERSION: i64 = 2;

/// A user's notification preferences (the last `UserPreferencesSet`, or
/// the defaults: no DND, UTC, no keywords).
pub type UserPrefs = UserPreferencesSet;
/// A user's settings for one channel (defaults: not muted, notify default).
pub type ChannelPrefs = ChannelPreferencesSet;

/// Why a user is told; also the order of precedence when several apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Every message of a DM.
    Dm,
    /// Mentioned by handle.
    Mention,
    /// `@here` while active.
    Here,
    /// `@channel` / `@everyone`.
    Channel,
    /// One of the user's keywords.
    Keyword,
    /// A reply in a thread the user started or replied to.
    Thread,
    /// Notify=all: any message of the channel.
    Message,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Dm => "dm",
            Kind::Mention => "mention",
            Kind::Here => "here",
            Kind::Channel => "channel",
            Kind::Keyword => "keyword",
            Kind::Thread => "thread",
            Kind::Message => "message",
        }
    }

    /// Reasons that come from the text (and go with an edit).
    fn comes_from_text(self) -> bool {
        matches!(
            self,
            Kind::Mention | Kind::Here | Kind::Channel | Kind::Keyword
        )
    }

    /// Reasons that apply to every message (dropped by notify=mentions).
    fn every_message(self) -> bool {
        matches!(self, Kind::Dm | Kind::Message)
    }
}

impl Projector for Notifications {
    const NAME: &'static str = "notifications";
    const TABLES: &'static [(&'static str, &'static str)] = &[
        ("notifications", "id"),
        ("channels", "id"),
        ("members", "channel_id, user_id"),
        ("messages", "id"),
        ("thread_users", "root_id, user_id"),
        ("user_prefs", "user_id"),
        ("keywords", "workspace_id, first_word, user_id, keyword"),
        ("channel_prefs", "channel_id, user_id"),
        ("read_markers", "user_id, channel_id, thread_root_id"),
    ];
    const HOLDS_TEXT: bool = true;

    fn migrate(conn: &Connection) -> rusqlite::Result<()> {
        crate::runner::refold_if_older(
            conn,
            Self::NAME,
            SCHEMA_VERSION,
            &[
                "TABLE notifications",
                "TABLE channels",
                "TABLE members",
                "TABLE messages",
                "TABLE thread_users",
                "TABLE user_prefs",
                "TABLE keywords",
                "TABLE channel_prefs",
                "TABLE read_markers",
            ],
        )?;
        conn.execute_batch(MEMBERS_SCHEMA)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS notifications (
                 id TEXT PRIMARY KEY,
                 workspace_id TEXT NOT NULL,
                 user_id TEXT NOT NULL,
                 kind TEXT NOT NULL,
                 channel_id TEXT NOT NULL,
                 message_id TEXT NOT NULL,
                 thread_root_id TEXT,
                 in_channel INTEGER NOT NULL,
                 seq INTEGER NOT NULL,
                 stream_seq INTEGER NOT NULL,
                 text TEXT NOT NULL,
                 ts_ms INTEGER NOT NULL,
                 state TEXT NOT NULL
             );
             CREATE INDEX IF NOT EXISTS notifications_by_stream
                 ON notifications (stream_seq, id);
             CREATE INDEX IF NOT EXISTS notifications_by_user
                 ON notifications (user_id, stream_seq, id);
             CREATE INDEX IF NOT EXISTS notifications_pending
                 ON notifications (user_id, stream_seq, id) WHERE state = 'pending';
             CREATE INDEX IF NOT EXISTS notifications_by_channel
                 ON notifications (user_id, channel_id, seq);
             CREATE INDEX IF NOT EXISTS notifications_by_message
                 ON notifications (message_id);
             CREATE INDEX IF NOT EXISTS notifications_by_thread
                 ON notifications (user_id, thread_root_id, seq)
                 WHERE thread_root_id IS NOT NULL;
             CREATE TABLE IF NOT EXISTS channels (
                 id TEXT PRIMARY KEY,
                 workspace_id TEXT NOT NULL,
                 direct INTEGER NOT NULL
             ) WITHOUT ROWID;
             -- Every post: who sent it where (the text is not kept here).
             CREATE TABLE IF NOT EXISTS messages (
                 id TEXT PRIMARY KEY,
                 channel_id TEXT NOT NULL,
                 seq INTEGER NOT NULL,
                 ts_ms INTEGER NOT NULL,
                 sender_id TEXT NOT NULL,
                 thread_root_id TEXT,
                 in_channel INTEGER NOT NULL,
                 client_msg_id TEXT,
                 deleted INTEGER NOT NULL DEFAULT 0,
                 erased INTEGER NOT NULL DEFAULT 0
             ) WITHOUT ROWID;
             -- An erasure's candidates: not yet erased, by time (a user's
             -- erasure filters them by sender).
             CREATE INDEX IF NOT EXISTS messages_to_erase ON messages (channel_id, ts_ms)
                 WHERE erased = 0;
             DROP INDEX IF EXISTS messages_to_erase_by_sender;
             CREATE UNIQUE INDEX IF NOT EXISTS messages_by_client
                 ON messages (channel_id, sender_id, client_msg_id)
                 WHERE client_msg_id IS NOT NULL;
             -- Who replied in a thread (its root's author is in messages).
             CREATE TABLE IF NOT EXISTS thread_users (
                 root_id TEXT NOT NULL,
                 user_id TEXT NOT NULL,
                 PRIMARY KEY (root_id, user_id)
             ) WITHOUT ROWID;
             -- dnd_start/dnd_end: minutes after local midnight, NULL = no schedule.
             CREATE TABLE IF NOT EXISTS user_prefs (
                 user_id TEXT PRIMARY KEY,
                 workspace_id TEXT NOT NULL,
                 dnd_until_ms INTEGER NOT NULL,
                 dnd_start INTEGER,
                 dnd_end INTEGER,
                 time_zone TEXT NOT NULL,
                 keywords TEXT NOT NULL
             ) WITHOUT ROWID;
             -- Keywords by their first word: a post looks up its own words.
             CREATE TABLE IF NOT EXISTS keywords (
                 workspace_id TEXT NOT NULL,
                 first_word TEXT NOT NULL,
                 user_id TEXT NOT NULL,
                 keyword TEXT NOT NULL,
                 PRIMARY KEY (workspace_id, first_word, user_id, keyword)
             ) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS keywords_by_user ON keywords (user_id);
             -- Only non-default settings have a row.
             CREATE TABLE IF NOT EXISTS channel_prefs (
                 channel_id TEXT NOT NULL,
                 user_id TEXT NOT NULL,
                 muted INTEGER NOT NULL,
                 notify TEXT NOT NULL,
                 PRIMARY KEY (channel_id, user_id)
             ) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS channel_prefs_by_notify
                 ON channel_prefs (channel_id, notify, user_id);
             -- thread_root_id '' is the channel's own marker.
             CREATE TABLE IF NOT EXISTS read_markers (
                 user_id TEXT NOT NULL,
                 channel_id TEXT NOT NULL,
                 thread_root_id TEXT NOT NULL,
                 seq INTEGER NOT NULL,
                 PRIMARY KEY (user_id, channel_id, thread_root_id)
             ) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS read_markers_by_thread
                 ON read_markers (user_id, thread_root_id);",
        )?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
    }

    fn apply(
        tx: &Transaction<'_>,
        stream_seq: u64,
        subject: &str,
        env: &Envelope,
    ) -> rusqlite::Result<()> {
        let Some(body) = &env.body else { return Ok(()) };
        if let Some(user) = subjects::user_of(subject) {
            return fold_user_event(tx, &env.workspace_id, user, body);
        }
        let ch = env.channel_id.as_str();
        if let Body::ChannelCreated(b) = body {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO channels (id, workspace_id, direct) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![
                ch,
                env.workspace_id,
                b.kind() == ChannelKind::Direct
            ])?;
        }
        match fold_membership(tx, ch, env.channel_seq as i64, body)? {
            Some(MembershipChange::Removed(user)) => {
                // Gone with the membership: nothing of the channel is
                // shown or delivered to a user who can no longer read it.
                tx.prepare_cached(
                    "UPDATE notifications SET state = 'withdrawn'
                     WHERE user_id = ?1 AND channel_id = ?2 AND state IN ('pending', 'read')",
                )?
                .execute(params![user, ch])?;
                return Ok(());
            }
            Some(_) => return Ok(()),
            None => {}
        }
        if !subjects::is_channel(subject) {
            return Ok(());
        }
        match body {
            Body::MessagePosted(b) => {
                let post = Post {
                    message_id: &b.message_id,
                    channel_id: ch,
                    seq: env.channel_seq as i64,
                    ts_ms: env.ts_ms,
                    sender: &env.actor_id,
                    root: (!b.thread_root_id.is_empty()).then_some(b.thread_root_id.as_str()),
                    in_channel: b.thread_root_id.is_empty() || b.also_send_to_channel,
                };
                let client = (!b.client_msg_id.is_empty()).then_some(b.client_msg_id.as_str());
                // OR IGNORE: a second post with the same client_msg_id
                // (a retry that raced past the de-dup window) is not a
                // message, as in the history model.
                let inserted = tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO messages
                             (id, channel_id, seq, ts_ms, sender_id, thread_root_id,
                              in_channel, client_msg_id, erased)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    )?
                    .execute(params![
                        post.message_id,
                        ch,
                        post.seq,
                        post.ts_ms,
                        post.sender,
                        post.root,
                        post.in_channel,
                        client,
                        b.is_erased()
                    ])?;
                if inserted == 0 {
                    return Ok(());
                }
                let told = if b.is_erased() {
                    BTreeMap::new()
                } else {
                    recipients(tx, &post, &b.text, b.mentions.as_ref())?
                };
                for (user, kind) in &told {
                    insert(
                        tx,
                        &env.workspace_id,
                        &post,
                        user,
                        *kind,
                        &b.text,
                        stream_seq,
                    )?;
                }
                if let Some(root) = post.root {
                    tx.prepare_cached(
                        "INSERT OR IGNORE INTO thread_users (root_id, user_id) VALUES (?1, ?2)",
                    )?
                    .execute(params![root, post.sender])?;
                }
            }
            Body::MessageEdited(b) if b.is_erased() => {}
            Body::MessageEdited(b) => edit(tx, env, stream_seq, b)?,
            Body::ContentErased(e) => erase(tx, ch, e)?,
            Body::MessageDeleted(b) => {
                tx.prepare_cached("UPDATE messages SET deleted = 1 WHERE id = ?1")?
                    .execute([&b.message_id])?;
                // A tombstone: the text goes from every row, whatever its state.
                tx.prepare_cached(
                    "UPDATE notifications SET text = '',
                         state = CASE WHEN state IN ('pending', 'read') THEN 'withdrawn'
                                      ELSE state END
                     WHERE message_id = ?1",
                )?
                .execute([&b.message_id])?;
            }
            _ => {}
        }
        Ok(())
    }
}

fn fold_user_event(
    tx: &Transaction<'_>,
    ws: &str,
    user: &str,
    body: &Body,
) -> rusqlite::Result<()> {
    match body {
        Body::UserPreferencesSet(p) => {
            let (start, end) = match &p.dnd_schedule {
                Some(s) => (Some(s.start_minute), Some(s.end_minute)),
                None => (None, None),
            };
            tx.prepare_cached(
                "INSERT OR REPLACE INTO user_prefs
                     (user_id, workspace_id, dnd_until_ms, dnd_start, dnd_end, time_zone, keywords)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                user,
                ws,
                p.dnd_until_ms,
                start,
                end,
                p.time_zone,
                serde_json::Value::from(p.keywords.clone()).to_string()
            ])?;
            tx.prepare_cached("DELETE FROM keywords WHERE user_id = ?1")?
                .execute([user])?;
            for kw in &p.keywords {
                // The decision stored it trimmed and lowercased; one with
                // no word in it could never match a whole word.
                let Some(first) = words(kw).next() else {
                    continue;
                };
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO keywords (workspace_id, first_word, user_id, keyword)
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![ws, first, user, kw])?;
            }
        }
        Body::ChannelPreferencesSet(p) => {
            let notify = p.notify();
            if !p.muted && notify == NotifyLevel::Default {
                tx.prepare_cached(
                    "DELETE FROM channel_prefs WHERE channel_id = ?1 AND user_id = ?2",
                )?
                .execute(params![p.channel_id, user])?;
            } else {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO channel_prefs (channel_id, user_id, muted, notify)
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![
                    p.channel_id,
                    user,
                    p.muted,
                    notify_str(notify)
                ])?;
            }
        }
        Body::ReadMarkerMoved(m) => {
            let seq = m.seq as i64;
            if m.backwards {
                // Marked unread from here: the marker moves back, but what
                // was read stays read (notifications do not come back).
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO read_markers (user_id, channel_id, thread_root_id, seq)
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![user, m.channel_id, m.thread_root_id, seq])?;
                return Ok(());
            }
            tx.prepare_cached(
                "INSERT INTO read_markers (user_id, channel_id, thread_root_id, seq)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (user_id, channel_id, thread_root_id)
                 DO UPDATE SET seq = MAX(seq, excluded.seq)",
            )?
            .execute(params![user, m.channel_id, m.thread_root_id, seq])?;
            if m.thread_root_id.is_empty() {
                // The channel's marker reads what the channel shows.
                tx.prepare_cached(
                    "UPDATE notifications SET state = 'read'
                     WHERE user_id = ?1 AND channel_id = ?2 AND seq <= ?3
                       AND state = 'pending' AND in_channel = 1",
                )?
                .execute(params![user, m.channel_id, seq])?;
            } else {
                // A thread's marker: the root id says which thread (the
                // channel id is not needed to find it).
                tx.prepare_cached(
                    "UPDATE notifications SET state = 'read'
                     WHERE user_id = ?1 AND thread_root_id = ?3 AND seq <= ?2
                       AND state = 'pending'",
                )?
                .execute(params![user, seq, m.thread_root_id])?;
            }
        }
        Body::NotificationsAcked(a) => {
            // Only the user's own: an id of someone else's matches nothing.
            for id in &a.ids {
                tx.prepare_cached(
                    "UPDATE notifications SET state = 'acked'
                     WHERE id = ?1 AND user_id = ?2 AND state IN ('pending', 'read')",
                )?
                .execute(params![id, user])?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// A message as the fold decides about it.
struct Post<'a> {
    message_id: &'a str,
    channel_id: &'a str,
    seq: i64,
    ts_ms: i64,
    sender: &'a str,
    root: Option<&'a str>,
    /// A top-level message, or a reply also sent to the channel.
    in_channel: bool,
}

/// Who is told about `post` with `text` and `mentions`, and why (the
/// highest-ranked reason of each that its settings let through), after
/// every exclusion.
fn recipients(
    tx: &Transaction<'_>,
    post: &Post<'_>,
    text: &str,
    mentions: Option<&Mentions>,
) -> rusqlite::Result<BTreeMap<String, Kind>> {
    let ch = post.channel_id;
    let mut why: BTreeMap<String, BTreeSet<Kind>> = BTreeMap::new();
    let mut add = |user: &str, kind: Kind| {
        why.entry(user.to_string()).or_default().insert(kind);
    };
    let Some((ws, direct)) = tx
        .prepare_cached("SELECT workspace_id, direct FROM channels WHERE id = ?1")?
        .query_row([ch], |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?)))
        .optional()?
    else {
        return Ok(BTreeMap::new());
    };
    if direct {
        // A DM's membership is fixed and small.
        for user in member_ids(tx, ch, i64::MAX)? {
            add(&user, Kind::Dm);
        }
    }
    if let Some(m) = mentions {
        for user in &m.user_ids {
            add(user, Kind::Mention);
        }
        if m.here {
            for user in &m.here_user_ids {
                add(user, Kind::Here);
            }
        }
        // Counted only up to the cap + 1: a big channel costs no more.
        if m.channel && member_count_upto(tx, ch, CHANNEL_MENTION_CAP + 1)? <= CHANNEL_MENTION_CAP {
            for user in member_ids(tx, ch, CHANNEL_MENTION_CAP)? {
                add(&user, Kind::Channel);
            }
        }
    }
    for user in keyword_users(tx, &ws, text)? {
        add(&user, Kind::Keyword);
    }
    if let Some(root) = post.root {
        let author: Option<String> = tx
            .prepare_cached("SELECT sender_id FROM messages WHERE id = ?1")?
            .query_row([root], |r| r.get(0))
            .optional()?;
        if let Some(author) = author {
            add(&author, Kind::Thread);
        }
        let mut stmt = tx.prepare_cached("SELECT user_id FROM thread_users WHERE root_id = ?1")?;
        for user in stmt.query_map([root], |r| r.get::<_, String>(0))? {
            add(&user?, Kind::Thread);
        }
    }
    if post.in_channel {
        let mut stmt = tx.prepare_cached(
            "SELECT user_id FROM channel_prefs WHERE channel_id = ?1 AND notify = 'all'",
        )?;
        for user in stmt.query_map([ch], |r| r.get::<_, String>(0))? {
            add(&user?, Kind::Message);
        }
    }
    why.remove(post.sender);
    let mut told = BTreeMap::new();
    for (user, kinds) in why {
        if !is_member(tx, ch, &user)? {
            continue;
        }
        let (muted, notify) = channel_setting(tx, ch, &user)?;
        let heard = kinds.into_iter().find(|kind| match notify {
            _ if muted => false,
            NotifyLevel::Nothing => false,
            NotifyLevel::Mentions => !kind.every_message(),
            NotifyLevel::All | NotifyLevel::Default => true,
        });
        // The highest-ranked reason the user's settings let through.
        if let Some(kind) = heard {
            told.insert(user, kind);
        }
    }
    Ok(told)
}

/// A `ContentErased` on channel `ch`: the messages it covers are marked
/// erased and their notifications deleted. Candidates come from the
/// channel's messages not yet erased, by time.
fn erase(
    tx: &Transaction<'_>,
    ch: &str,
    e: &switchboard_core::events::ContentErased,
) -> rusqlite::Result<()> {
    let covered = crate::runner::covered_by(
        tx,
        "SELECT id, seq, ts_ms, sender_id FROM messages INDEXED BY messages_to_erase WHERE channel_id = ?1 AND ts_ms < ?2 AND erased = 0",
        ch,
        e,
    )?;
    for id in covered {
        tx.prepare_cached("UPDATE messages SET erased = 1 WHERE id = ?1")?
            .execute([&id])?;
        tx.prepare_cached("DELETE FROM notifications WHERE message_id = ?1")?
            .execute([&id])?;
    }
    Ok(())
}

/// An edit: the text of the message's notifications follows it; a
/// notification whose user no longer has any reason is withdrawn; a user
/// the new text gives a reason (a new mention, `@here`, `@channel`, a
/// keyword) and who has no notification of this message gets one.
fn edit(
    tx: &Transaction<'_>,
    env: &Envelope,
    stream_seq: u64,
    b: &switchboard_core::events::MessageEdited,
) -> rusqlite::Result<()> {
    type Facts = (String, i64, i64, String, Option<String>, bool);
    let facts: Option<Facts> = tx
        .prepare_cached(
            "SELECT channel_id, seq, ts_ms, sender_id, thread_root_id, in_channel
             FROM messages WHERE id = ?1 AND deleted = 0 AND erased = 0",
        )?
        .query_row([&b.message_id], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .optional()?;
    // Unknown, deleted (an edit that raced the delete), or of another channel.
    let Some((ch, seq, ts_ms, sender, root, in_channel)) = facts else {
        return Ok(());
    };
    if ch != env.channel_id {
        return Ok(());
    }
    let post = Post {
        message_id: &b.message_id,
        channel_id: &ch,
        seq,
        ts_ms,
        sender: &sender,
        root: root.as_deref(),
        in_channel,
    };
    let told = recipients(tx, &post, &b.text, b.mentions.as_ref())?;
    let existing: Vec<(String, String)> = tx
        .prepare_cached("SELECT user_id, state FROM notifications WHERE message_id = ?1")?
        .query_map([&b.message_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut have = BTreeSet::new();
    for (user, state) in existing {
        let live = state == "pending" || state == "read";
        match told.get(&user) {
            Some(kind) if live => {
                tx.prepare_cached(
                    "UPDATE notifications SET text = ?3, kind = ?4
                     WHERE message_id = ?1 AND user_id = ?2",
                )?
                .execute(params![b.message_id, user, b.text, kind.as_str()])?;
            }
            None if live => {
                tx.prepare_cached(
                    "UPDATE notifications SET text = ?3, state = 'withdrawn'
                     WHERE message_id = ?1 AND user_id = ?2",
                )?
                .execute(params![b.message_id, user, b.text])?;
            }
            _ => {
                tx.prepare_cached(
                    "UPDATE notifications SET text = ?3 WHERE message_id = ?1 AND user_id = ?2",
                )?
                .execute(params![b.message_id, user, b.text])?;
            }
        }
        have.insert(user);
    }
    for (user, kind) in &told {
        if kind.comes_from_text() && !have.contains(user) {
            insert(
                tx,
                &env.workspace_id,
                &post,
                user,
                *kind,
                &b.text,
                stream_seq,
            )?;
        }
    }
    Ok(())
}

/// A new notification of `post` for `user`: pending, or read already when
/// the user's marker (the channel's, or the thread's for a reply) is past it.
fn insert(
    tx: &Transaction<'_>,
    ws: &str,
    post: &Post<'_>,
    user: &str,
    kind: Kind,
    text: &str,
    stream_seq: u64,
) -> rusqlite::Result<()> {
    let id = format!("{}-{}", post.message_id, user);
    tx.prepare_cached(
        "INSERT OR IGNORE INTO notifications
             (id, workspace_id, user_id, kind, channel_id, message_id, thread_root_id,
              in_channel, seq, stream_seq, text, ts_ms, state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,
             CASE WHEN (?8 = 1 AND EXISTS (SELECT 1 FROM read_markers
                                           WHERE user_id = ?3 AND channel_id = ?5
                                             AND thread_root_id = '' AND seq >= ?9))
                       OR EXISTS (SELECT 1 FROM read_markers
                                  WHERE user_id = ?3 AND thread_root_id = ?7 AND seq >= ?9)
                  THEN 'read' ELSE 'pending' END)",
    )?
    .execute(params![
        id,
        ws,
        user,
        kind.as_str(),
        post.channel_id,
        post.message_id,
        post.root,
        post.in_channel,
        post.seq,
        stream_seq as i64,
        text,
        post.ts_ms
    ])?;
    Ok(())
}

/// Up to `limit` members of `ch`.
fn member_ids(tx: &Transaction<'_>, ch: &str, limit: i64) -> rusqlite::Result<Vec<String>> {
    let mut stmt =
        tx.prepare_cached("SELECT user_id FROM members WHERE channel_id = ?1 LIMIT ?2")?;
    let rows = stmt.query_map(params![ch, limit], |r| r.get(0))?;
    rows.collect()
}

/// How many members `ch` has, counting no further than `limit`.
fn member_count_upto(tx: &Transaction<'_>, ch: &str, limit: i64) -> rusqlite::Result<i64> {
    tx.prepare_cached(
        "SELECT COUNT(*) FROM (SELECT 1 FROM members WHERE channel_id = ?1 LIMIT ?2)",
    )?
    .query_row(params![ch, limit], |r| r.get(0))
}

fn is_member(conn: &Connection, ch: &str, user: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM members WHERE channel_id = ?1 AND user_id = ?2)",
    )?
    .query_row([ch, user], |r| r.get(0))
}

fn channel_setting(
    conn: &Connection,
    ch: &str,
    user: &str,
) -> rusqlite::Result<(bool, NotifyLevel)> {
    Ok(conn
        .prepare_cached(
            "SELECT muted, notify FROM channel_prefs WHERE channel_id = ?1 AND user_id = ?2",
        )?
        .query_row([ch, user], |r| {
            Ok((r.get::<_, bool>(0)?, notify_level(&r.get::<_, String>(1)?)))
        })
        .optional()?
        .unwrap_or((false, NotifyLevel::Default)))
}

/// The users of `ws` with a keyword that `text` contains as whole words:
/// one index lookup per distinct word of the text.
fn keyword_users(tx: &Transaction<'_>, ws: &str, text: &str) -> rusqlite::Result<BTreeSet<String>> {
    let lower = text.to_lowercase();
    let distinct: BTreeSet<&str> = words(&lower).collect();
    let mut users = BTreeSet::new();
    let mut stmt = tx.prepare_cached(
        "SELECT user_id, keyword FROM keywords WHERE workspace_id = ?1 AND first_word = ?2",
    )?;
    for word in distinct {
        let rows = stmt.query_map(params![ws, word], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        for row in rows {
            let (user, keyword) = row?;
            if contains_whole(&lower, &keyword) {
                users.insert(user);
            }
        }
    }
    Ok(users)
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The words of `text`: maximal runs of letters, digits and `_`.
pub fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !is_word_char(c))
        .filter(|w| !w.is_empty())
}

/// Whether `text` contains `keyword` (both lowercased) as whole words: not
/// preceded or followed by a letter, digit or `_` where the keyword itself
/// starts or ends with one ("cat" is in "the cat." but not in "concat").
pub fn contains_whole(text: &str, keyword: &str) -> bool {
    if keyword.is_empty() {
        return false;
    }
    let starts_word = keyword.chars().next().is_some_and(is_word_char);
    let ends_word = keyword.chars().next_back().is_some_and(is_word_char);
    let mut from = 0;
    while let Some(pos) = text[from..].find(keyword) {
        let start = from + pos;
        let end = start + keyword.len();
        let before_ok =
            !starts_word || !text[..start].chars().next_back().is_some_and(is_word_char);
        let after_ok = !ends_word || !text[end..].chars().next().is_some_and(is_word_char);
        if before_ok && after_ok {
            return true;
        }
        // Resume one character on.
        from = start + text[start..].chars().next().map_or(1, char::len_utf8);
    }
    false
}

fn notify_str(level: NotifyLevel) -> &'static str {
    match level {
        NotifyLevel::Default => "default",
        NotifyLevel::All => "all",
        NotifyLevel::Mentions => "mentions",
        NotifyLevel::Nothing => "nothing",
    }
}

fn notify_level(s: &str) -> NotifyLevel {
    match s {
        "all" => NotifyLevel::All,
        "mentions" => NotifyLevel::Mentions,
        "nothing" => NotifyLevel::Nothing,
        _ => NotifyLevel::Default,
    }
}

// ----- queries -----

/// One notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotificationRow {
    /// `<message_id>-<user_id>`: one notification per message and user.
    pub id: String,
    pub workspace_id: String,
    /// Who is told.
    pub user_id: String,
    /// `mention`, `dm`, `keyword`, `channel`, `here`, `thread` or `message`.
    pub kind: String,
    pub channel_id: String,
    pub message_id: String,
    /// The message's channel seq.
    pub seq: u64,
    /// The stream seq of the event that created the notification (the post,
    /// or the edit that added the reason).
    pub stream_seq: u64,
    /// The message's text (latest edit); empty once deleted.
    pub text: String,
    /// When the message was posted, ms since the epoch.
    pub ts_ms: i64,
    /// `pending`, `read`, `acked` or `withdrawn`.
    pub state: String,
}

const COLS: &str =
    "id, workspace_id, user_id, kind, channel_id, message_id, seq, stream_seq, text, ts_ms, state";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<NotificationRow> {
    Ok(NotificationRow {
        id: r.get(0)?,
        workspace_id: r.get(1)?,
        user_id: r.get(2)?,
        kind: r.get(3)?,
        channel_id: r.get(4)?,
        message_id: r.get(5)?,
        seq: r.get::<_, i64>(6)?.max(0) as u64,
        stream_seq: r.get::<_, i64>(7)?.max(0) as u64,
        text: r.get(8)?,
        ts_ms: r.get(9)?,
        state: r.get(10)?,
    })
}

/// Every notification created by an event after stream seq `stream_seq`,
/// in (stream_seq, id) order, in any state, at most `limit`. For delivery:
/// a consumer remembers the last stream seq it handled.
pub fn created_after(
    conn: &Connection,
    stream_seq: u64,
    limit: usize,
) -> rusqlite::Result<Vec<NotificationRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM notifications WHERE stream_seq > ?1 ORDER BY stream_seq, id LIMIT ?2"
    ))?;
    let rows = stmt.query_map(
        params![
            i64::try_from(stream_seq).unwrap_or(i64::MAX),
            i64::try_from(limit).unwrap_or(i64::MAX)
        ],
        row,
    )?;
    rows.collect()
}

/// One notification by id.
pub fn get(conn: &Connection, id: &str) -> rusqlite::Result<Option<NotificationRow>> {
    conn.prepare_cached(&format!("SELECT {COLS} FROM notifications WHERE id = ?1"))?
        .query_row([id], row)
        .optional()
}

/// `user`'s preferences in `ws` (the defaults when none were set).
pub fn prefs(conn: &Connection, ws: &str, user: &str) -> rusqlite::Result<UserPrefs> {
    Ok(conn
        .prepare_cached(
            "SELECT dnd_until_ms, dnd_start, dnd_end, time_zone, keywords
             FROM user_prefs WHERE user_id = ?1 AND workspace_id = ?2",
        )?
        .query_row([user, ws], |r| {
            let start: Option<u32> = r.get(1)?;
            let end: Option<u32> = r.get(2)?;
            let keywords: String = r.get(4)?;
            Ok(UserPrefs {
                dnd_until_ms: r.get(0)?,
                dnd_schedule: start
                    .zip(end)
                    .map(|(start_minute, end_minute)| DndSchedule {
                        start_minute,
                        end_minute,
                    }),
                time_zone: r.get(3)?,
                keywords: serde_json::from_str(&keywords).unwrap_or_default(),
            })
        })
        .optional()?
        .unwrap_or_default())
}

/// `user`'s settings for `channel` (the defaults when none were set).
pub fn channel_prefs(
    conn: &Connection,
    user: &str,
    channel: &str,
) -> rusqlite::Result<ChannelPrefs> {
    let (muted, notify) = channel_setting(conn, channel, user)?;
    Ok(ChannelPrefs {
        channel_id: channel.to_string(),
        muted,
        notify: notify as i32,
    })
}

/// Where a page of [`list`] resumes: the (stream_seq, id) of the last row
/// of the previous page.
pub type Cursor = (u64, String);

/// `user`'s notifications in `ws`, newest first (by the stream seq that
/// created them, then id, both descending), after `after`, at most `limit`
/// (1..=1000); `pending` ones only, or with `all` also `read` and `acked`
/// ones. Never `withdrawn` ones, and only of channels the user is a member
/// of now. Returns the rows and whether more follow.
pub fn list(
    conn: &Connection,
    ws: &str,
    user: &str,
    after: Option<&Cursor>,
    all: bool,
    limit: u32,
) -> rusqlite::Result<(Vec<NotificationRow>, bool)> {
    let limit = limit.clamp(1, 1000);
    let (seq, id) = match after {
        Some((s, i)) => (i64::try_from(*s).unwrap_or(i64::MAX), i.as_str()),
        // Past every row: ids are never empty and compare above "".
        None => (i64::MAX, ""),
    };
    let states = if all {
        "n.state IN ('pending', 'read', 'acked')"
    } else {
        "n.state = 'pending'"
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {} FROM notifications n
         WHERE n.user_id = ?1 AND n.workspace_id = ?2 AND {states}
           AND (n.stream_seq < ?3 OR (n.stream_seq = ?3 AND (?4 = '' OR n.id < ?4)))
           AND EXISTS (SELECT 1 FROM members m WHERE m.channel_id = n.channel_id
                                                AND m.user_id = n.user_id)
         ORDER BY n.stream_seq DESC, n.id DESC LIMIT ?5",
        COLS.split(", ")
            .map(|c| format!("n.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    ))?;
    let mut rows = stmt
        .query_map(params![user, ws, seq, id, i64::from(limit) + 1], row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    Ok((rows, more))
}

#[cfg(test)]
mod tests;
