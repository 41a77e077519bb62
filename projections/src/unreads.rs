//! The unread model: read markers (per user, channel and thread), what
//! counts as unread and as a mention, and per-channel indexes that let
//! `GET /v1/unreads` count both without scanning history.
//!
//! Invariant: the cost of folding a post does not depend on how many
//! members its channel has. Nothing is written per member on a post;
//! counts are computed on read from per-channel running ordinals:
//! - every channel-level message (a top-level post, or a reply also sent
//!   to the channel) gets `ord`, the channel's running count of such
//!   messages, and `sord`, its sender's running count in that channel;
//! - unread for user U with marker K = (ord at head − ord at K)
//!   − (U's sord at head − U's sord at K) − others' deleted after K; the
//!   values at K are recorded on the marker row when it moves (they never
//!   change afterwards: every message up to K precedes the marker in the
//!   log), so a count is one lookup of U's latest sord and a range count
//!   over a small table of deleted messages;
//! - mentions are sparse rows (channel, user, seq) — `*` for `@channel` —
//!   counted by range after the marker.
//!
//! Rules (the README lists them too): only messages count (not joins,
//! edits, reactions); the caller's own messages never count; deleted
//! messages stop counting at once; a thread reply counts in its thread,
//! and in the channel only when also sent to the channel; a mention is the
//! user in `mentions.user_ids`, `@channel`/`@everyone`, or `@here` when
//! the user is in `here_user_ids`; every message of a DM counts as a
//! mention; a muted channel (and its threads) reports no mentions; an edit
//! re-resolves the message's mentions. A join (or invite) moves the
//! user's channel marker to the join's seq: history from before one's
//! membership is not unread. A user follows a thread they started (once
//! it has a reply), replied in, or were mentioned in (root or reply).

use crate::runner::Projector;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::Serialize;
use switchboard_core::events::{Body, ChannelKind, Envelope, Mentions};
use switchboard_streams::subjects;

pub struct Unreads;

/// The mention row user id that stands for `@channel` / `@everyone`.
const EVERYONE: &str = "*";

impl Projector for Unreads {
    const NAME: &'static str = "unreads";
    const TABLES: &'static [(&'static str, &'static str)] = &[
        ("channels", "id"),
        ("msgs", "channel_id, seq"),
        ("own", "channel_id, sender_id, seq"),
        ("deleted", "channel_id, seq"),
        ("mentions", "channel_id, user_id, seq"),
        ("markers", "user_id, channel_id, root_id"),
        ("follows", "user_id, root_id"),
        ("muted", "user_id, channel_id"),
    ];

    fn migrate(conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch(
            "-- ord: channel-level messages so far; head_seq: the channel's
             -- latest channel_seq; latest_ts: the latest channel-level
             -- message's time.
             -- last_del / last_all: the latest seq of a deleted
             -- channel-level message / of an @channel (hints that let a
             -- count skip a range that cannot hold anything).
             CREATE TABLE IF NOT EXISTS channels (
                 id TEXT PRIMARY KEY,
                 direct INTEGER NOT NULL DEFAULT 0,
                 head_seq INTEGER NOT NULL DEFAULT 0,
                 ord INTEGER NOT NULL DEFAULT 0,
                 latest_ts INTEGER NOT NULL DEFAULT 0,
                 last_del INTEGER NOT NULL DEFAULT 0,
                 last_all INTEGER NOT NULL DEFAULT 0
             ) WITHOUT ROWID;
             -- Every message; ord/sord only for channel-level ones.
             CREATE TABLE IF NOT EXISTS msgs (
                 channel_id TEXT NOT NULL,
                 seq INTEGER NOT NULL,
                 id TEXT NOT NULL,
                 sender_id TEXT NOT NULL,
                 root_id TEXT,
                 ord INTEGER,
                 sord INTEGER,
                 deleted INTEGER NOT NULL DEFAULT 0,
                 PRIMARY KEY (channel_id, seq)
             ) WITHOUT ROWID;
             CREATE UNIQUE INDEX IF NOT EXISTS msgs_by_id ON msgs (id);
             CREATE INDEX IF NOT EXISTS msgs_ord ON msgs (channel_id, seq, ord)
                 WHERE ord IS NOT NULL;
             CREATE INDEX IF NOT EXISTS msgs_by_thread
                 ON msgs (root_id, seq, sender_id, deleted)
                 WHERE root_id IS NOT NULL;
             -- Each sender's channel-level messages with their running
             -- count (sord): the caller's own messages after a marker are
             -- two lookups here.
             CREATE TABLE IF NOT EXISTS own (
                 channel_id TEXT NOT NULL,
                 sender_id TEXT NOT NULL,
                 seq INTEGER NOT NULL,
                 sord INTEGER NOT NULL,
                 PRIMARY KEY (channel_id, sender_id, seq)
             ) WITHOUT ROWID;
             -- Deleted channel-level messages (subtracted from the ordinals).
             CREATE TABLE IF NOT EXISTS deleted (
                 channel_id TEXT NOT NULL,
                 seq INTEGER NOT NULL,
                 sender_id TEXT NOT NULL,
                 PRIMARY KEY (channel_id, seq)
             ) WITHOUT ROWID;
             -- One row per mentioned user (or '*') and live message.
             CREATE TABLE IF NOT EXISTS mentions (
                 channel_id TEXT NOT NULL,
                 user_id TEXT NOT NULL,
                 seq INTEGER NOT NULL,
                 sender_id TEXT NOT NULL,
                 root_id TEXT NOT NULL,
                 in_channel INTEGER NOT NULL,
                 PRIMARY KEY (channel_id, user_id, seq)
             ) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS mentions_by_msg ON mentions (channel_id, seq);
             CREATE INDEX IF NOT EXISTS mentions_by_thread ON mentions (root_id, user_id, seq)
                 WHERE root_id <> '';
             -- root_id '': the channel's marker. For a channel marker at K,
             -- ord_at / own_at: the channel's ord and the user's sord as of
             -- K (fixed once K is folded: every message up to K came
             -- before the marker in the log), so a count needs no lookup
             -- of them. own_head: the user's latest sord in the channel;
             -- last_mentioned: the latest channel-level message naming
             -- the user (a hint). A user's own post or a mention makes
             -- the row (seq 0) if there is none yet: one row of the
             -- poster or of each mentioned user, never one per member.
             CREATE TABLE IF NOT EXISTS markers (
                 user_id TEXT NOT NULL,
                 channel_id TEXT NOT NULL,
                 root_id TEXT NOT NULL,
                 seq INTEGER NOT NULL,
                 ord_at INTEGER NOT NULL DEFAULT 0,
                 own_at INTEGER NOT NULL DEFAULT 0,
                 own_head INTEGER NOT NULL DEFAULT 0,
                 last_mentioned INTEGER NOT NULL DEFAULT 0,
                 PRIMARY KEY (user_id, channel_id, root_id)
             ) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS follows (
                 user_id TEXT NOT NULL,
                 root_id TEXT NOT NULL,
                 channel_id TEXT NOT NULL,
                 PRIMARY KEY (user_id, root_id)
             ) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS muted (
                 user_id TEXT NOT NULL,
                 channel_id TEXT NOT NULL,
                 PRIMARY KEY (user_id, channel_id)
             ) WITHOUT ROWID;",
        )
    }

    fn apply(
        tx: &Transaction<'_>,
        _stream_seq: u64,
        subject: &str,
        env: &Envelope,
    ) -> rusqlite::Result<()> {
        let Some(body) = &env.body else { return Ok(()) };
        if let Some(user) = user_of(subject) {
            return apply_user_event(tx, user, body);
        }
        if let Body::ChannelCreated(b) = body {
            tx.prepare_cached(
                "INSERT INTO channels (id, direct) VALUES (?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET direct = excluded.direct",
            )?
            .execute(params![
                env.channel_id,
                b.kind == ChannelKind::Direct as i32
            ])?;
            return Ok(());
        }
        if !subjects::is_channel(subject) {
            return Ok(());
        }
        let ch = env.channel_id.as_str();
        let seq = env.channel_seq as i64;
        tx.prepare_cached(
            "INSERT INTO channels (id, head_seq) VALUES (?1, ?2)
             ON CONFLICT (id) DO UPDATE SET head_seq = MAX(head_seq, excluded.head_seq)",
        )?
        .execute(params![ch, seq])?;
        match body {
            Body::MemberJoined(b) => fold_join(tx, ch, &b.user_id, seq),
            Body::MemberInvited(b) => fold_join(tx, ch, &b.user_id, seq),
            Body::MessagePosted(b) => {
                let root = (!b.thread_root_id.is_empty()).then_some(b.thread_root_id.as_str());
                let in_channel = root.is_none() || b.also_send_to_channel;
                fold_post(
                    tx,
                    env,
                    &b.message_id,
                    root,
                    in_channel,
                    b.mentions.as_ref(),
                )
            }
            Body::MessageEdited(b) => {
                let Some(m) = message_of(tx, &b.message_id)? else {
                    return Ok(());
                };
                if m.deleted || m.channel_id != ch {
                    return Ok(());
                }
                tx.prepare_cached("DELETE FROM mentions WHERE channel_id = ?1 AND seq = ?2")?
                    .execute(params![ch, m.seq])?;
                insert_mentions(tx, &m, b.mentions.as_ref())?;
                if let Some(root) = &m.root_id {
                    follow_mentioned(tx, ch, root, m.seq)?;
                }
                Ok(())
            }
            Body::MessageDeleted(b) => {
                let Some(m) = message_of(tx, &b.message_id)? else {
                    return Ok(());
                };
                if m.deleted || m.channel_id != ch {
                    return Ok(());
                }
                tx.prepare_cached(
                    "UPDATE msgs SET deleted = 1 WHERE channel_id = ?1 AND seq = ?2",
                )?
                .execute(params![ch, m.seq])?;
                tx.prepare_cached("DELETE FROM mentions WHERE channel_id = ?1 AND seq = ?2")?
                    .execute(params![ch, m.seq])?;
                if m.in_channel {
                    tx.prepare_cached(
                        "INSERT OR IGNORE INTO deleted (channel_id, seq, sender_id)
                         VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![ch, m.seq, m.sender_id])?;
                    tx.prepare_cached(
                        "UPDATE channels SET last_del = MAX(last_del, ?2) WHERE id = ?1",
                    )?
                    .execute(params![ch, m.seq])?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// The user of a user subject (`sb.<ws>.user.<user>`).
fn user_of(subject: &str) -> Option<&str> {
    let mut p = subject.split('.');
    match (p.next(), p.next(), p.next(), p.next(), p.next()) {
        (Some("sb"), Some(_), Some("user"), Some(u), None) => Some(u),
        _ => None,
    }
}

fn apply_user_event(tx: &Transaction<'_>, user: &str, body: &Body) -> rusqlite::Result<()> {
    match body {
        Body::ReadMarkerMoved(b) => {
            let to = b.seq.min(i64::MAX as u64) as i64;
            move_marker(tx, user, &b.channel_id, &b.thread_root_id, to, b.backwards)?;
        }
        Body::ChannelPreferencesSet(b) => {
            if b.muted {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO muted (user_id, channel_id) VALUES (?1, ?2)",
                )?
                .execute(params![user, b.channel_id])?;
            } else {
                tx.prepare_cached("DELETE FROM muted WHERE user_id = ?1 AND channel_id = ?2")?
                    .execute(params![user, b.channel_id])?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// A join: what came before it is not unread for the joiner.
fn fold_join(tx: &Transaction<'_>, ch: &str, user: &str, seq: i64) -> rusqlite::Result<()> {
    move_marker(tx, user, ch, "", seq, false)
}

/// Moves a marker to `to` (only forward unless `backwards`), recording for
/// a channel marker the ordinals as of `to`.
fn move_marker(
    tx: &Transaction<'_>,
    user: &str,
    ch: &str,
    root: &str,
    to: i64,
    backwards: bool,
) -> rusqlite::Result<()> {
    let current: Option<i64> = tx
        .prepare_cached(
            "SELECT seq FROM markers WHERE user_id = ?1 AND channel_id = ?2 AND root_id = ?3",
        )?
        .query_row(params![user, ch, root], |r| r.get(0))
        .optional()?;
    let to = match current {
        Some(cur) if !backwards && cur >= to => return Ok(()),
        Some(cur) if cur == to => return Ok(()),
        _ => to,
    };
    let (ord_at, own_at) = if root.is_empty() {
        let ord: Option<i64> = tx
            .prepare_cached(
                "SELECT ord FROM msgs INDEXED BY msgs_ord
                 WHERE channel_id = ?1 AND seq <= ?2 AND ord IS NOT NULL
                 ORDER BY seq DESC LIMIT 1",
            )?
            .query_row(params![ch, to], |r| r.get(0))
            .optional()?;
        let own: Option<i64> = tx
            .prepare_cached(
                "SELECT sord FROM own WHERE channel_id = ?1 AND sender_id = ?2 AND seq <= ?3
                 ORDER BY seq DESC LIMIT 1",
            )?
            .query_row(params![ch, user, to], |r| r.get(0))
            .optional()?;
        (ord.unwrap_or(0), own.unwrap_or(0))
    } else {
        (0, 0)
    };
    tx.prepare_cached(
        "INSERT INTO markers (user_id, channel_id, root_id, seq, ord_at, own_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT DO UPDATE SET seq = excluded.seq, ord_at = excluded.ord_at,
                                   own_at = excluded.own_at",
    )?
    .execute(params![user, ch, root, to, ord_at, own_at])?;
    Ok(())
}

/// A message as this model has it.
struct Msg {
    channel_id: String,
    seq: i64,
    sender_id: String,
    root_id: Option<String>,
    in_channel: bool,
    deleted: bool,
}

fn message_of(conn: &Connection, id: &str) -> rusqlite::Result<Option<Msg>> {
    conn.prepare_cached(
        "SELECT channel_id, seq, sender_id, root_id, ord IS NOT NULL, deleted
         FROM msgs WHERE id = ?1",
    )?
    .query_row([id], |r| {
        Ok(Msg {
            channel_id: r.get(0)?,
            seq: r.get(1)?,
            sender_id: r.get(2)?,
            root_id: r.get(3)?,
            in_channel: r.get(4)?,
            deleted: r.get(5)?,
        })
    })
    .optional()
}

fn fold_post(
    tx: &Transaction<'_>,
    env: &Envelope,
    id: &str,
    root: Option<&str>,
    in_channel: bool,
    mentions: Option<&Mentions>,
) -> rusqlite::Result<()> {
    let ch = env.channel_id.as_str();
    let seq = env.channel_seq as i64;
    let sender = env.actor_id.as_str();
    if message_of(tx, id)?.is_some() {
        // A second post with one id cannot be decided; keep the first.
        return Ok(());
    }
    let (ord, sord) = if in_channel {
        let ord: i64 = tx
            .prepare_cached(
                "UPDATE channels SET ord = ord + 1, latest_ts = MAX(latest_ts, ?2)
                 WHERE id = ?1 RETURNING ord",
            )?
            .query_row(params![ch, env.ts_ms], |r| r.get(0))?;
        let last: Option<i64> = tx
            .prepare_cached(
                "SELECT sord FROM own WHERE channel_id = ?1 AND sender_id = ?2
                 ORDER BY seq DESC LIMIT 1",
            )?
            .query_row(params![ch, sender], |r| r.get(0))
            .optional()?;
        let sord = last.unwrap_or(0) + 1;
        tx.prepare_cached(
            "INSERT INTO own (channel_id, sender_id, seq, sord) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![ch, sender, env.channel_seq as i64, sord])?;
        tx.prepare_cached(
            "INSERT INTO markers (user_id, channel_id, root_id, seq, own_head)
             VALUES (?1, ?2, '', 0, ?3)
             ON CONFLICT DO UPDATE SET own_head = excluded.own_head",
        )?
        .execute(params![sender, ch, sord])?;
        (Some(ord), Some(sord))
    } else {
        (None, None)
    };
    tx.prepare_cached(
        "INSERT INTO msgs (channel_id, seq, id, sender_id, root_id, ord, sord)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![ch, seq, id, sender, root, ord, sord])?;
    let m = Msg {
        channel_id: ch.to_string(),
        seq,
        sender_id: sender.to_string(),
        root_id: root.map(String::from),
        in_channel,
        deleted: false,
    };
    insert_mentions(tx, &m, mentions)?;
    if let Some(root) = root {
        // The replier, the root's author, and whoever the root or this
        // reply mentions by name (or @here) follow the thread.
        let mut follow = tx.prepare_cached(
            "INSERT OR IGNORE INTO follows (user_id, root_id, channel_id) VALUES (?1, ?2, ?3)",
        )?;
        follow.execute(params![sender, root, ch])?;
        if let Some(r) = message_of(tx, root)? {
            follow.execute(params![r.sender_id, root, ch])?;
            follow_mentioned(tx, ch, root, r.seq)?;
        }
        follow_mentioned(tx, ch, root, seq)?;
    }
    Ok(())
}

/// Users mentioned by name or @here in the message at `seq` follow `root`.
fn follow_mentioned(tx: &Transaction<'_>, ch: &str, root: &str, seq: i64) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO follows (user_id, root_id, channel_id)
         SELECT user_id, ?2, ?1 FROM mentions
         WHERE channel_id = ?1 AND seq = ?3 AND user_id <> '*'",
    )?
    .execute(params![ch, root, seq])?;
    Ok(())
}

fn insert_mentions(
    tx: &Transaction<'_>,
    m: &Msg,
    mentions: Option<&Mentions>,
) -> rusqlite::Result<()> {
    let Some(mentions) = mentions else {
        return Ok(());
    };
    let mut stmt = tx.prepare_cached(
        "INSERT OR IGNORE INTO mentions (channel_id, user_id, seq, sender_id, root_id, in_channel)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let root = m.root_id.as_deref().unwrap_or("");
    let here: &[String] = if mentions.here {
        &mentions.here_user_ids
    } else {
        &[]
    };
    let everyone = mentions.channel.then_some(EVERYONE);
    for user in mentions
        .user_ids
        .iter()
        .chain(here)
        .map(String::as_str)
        .chain(everyone)
    {
        stmt.execute(params![
            m.channel_id,
            user,
            m.seq,
            m.sender_id,
            root,
            m.in_channel
        ])?;
        if !m.in_channel {
            continue;
        }
        if user == EVERYONE {
            tx.prepare_cached("UPDATE channels SET last_all = MAX(last_all, ?2) WHERE id = ?1")?
                .execute(params![m.channel_id, m.seq])?;
        } else {
            tx.prepare_cached(
                "INSERT INTO markers (user_id, channel_id, root_id, seq, last_mentioned)
                 VALUES (?1, ?2, '', 0, ?3)
                 ON CONFLICT DO UPDATE SET
                     last_mentioned = MAX(last_mentioned, excluded.last_mentioned)",
            )?
            .execute(params![user, m.channel_id, m.seq])?;
        }
    }
    Ok(())
}

// ----- queries -----

/// The user's marker in a channel (`root` `""`) or thread: 0 if none.
pub fn marker(conn: &Connection, user: &str, channel: &str, root: &str) -> rusqlite::Result<u64> {
    let seq: Option<i64> = conn
        .prepare_cached(
            "SELECT seq FROM markers WHERE user_id = ?1 AND channel_id = ?2 AND root_id = ?3",
        )?
        .query_row([user, channel, root], |r| r.get(0))
        .optional()?;
    Ok(seq.unwrap_or(0).max(0) as u64)
}

/// The channel's head `channel_seq` as this model has it (0: none).
pub fn head_seq(conn: &Connection, channel: &str) -> rusqlite::Result<u64> {
    let seq: Option<i64> = conn
        .prepare_cached("SELECT head_seq FROM channels WHERE id = ?1")?
        .query_row([channel], |r| r.get(0))
        .optional()?;
    Ok(seq.unwrap_or(0).max(0) as u64)
}

/// One channel's unread state for one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelUnread {
    pub channel_id: String,
    pub last_read_seq: u64,
    pub head_seq: u64,
    pub unread_count: u64,
    pub mention_count: u64,
    /// The latest channel-level message's time (ms; 0: none yet).
    pub latest_ts: i64,
}

/// One followed thread's unread state for one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThreadUnread {
    pub root_id: String,
    pub channel_id: String,
    pub unread_replies: u64,
    pub mention_count: u64,
}

/// What `GET /v1/unreads` answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UnreadSummary {
    pub channels: Vec<ChannelUnread>,
    pub threads: Vec<ThreadUnread>,
}

/// The unread state of `user` in `channels` (the channels it is a member
/// of now, from the ACL model; distinct ids) and in the threads it follows
/// there, in channel id (then root id) order. Per channel a fixed number
/// of index lookups and range counts over sparse rows (deletes,
/// mentions), whatever the channel's size or history; per followed thread
/// a range over its replies after the thread's marker.
pub fn unreads(
    conn: &Connection,
    user: &str,
    channels: &[String],
) -> rusqlite::Result<UnreadSummary> {
    let list = serde_json::Value::from(channels.to_vec()).to_string();
    // `my` is materialized so each channel's marker is looked up once.
    // A message mentioning the user both by name and by @channel is one
    // mention: '*' rows count only where the user has no row of its own.
    let mut stmt = conn.prepare_cached(
        "WITH my AS MATERIALIZED (
             SELECT c.id, c.direct, c.head_seq, c.ord, c.latest_ts, c.last_del, c.last_all,
                    COALESCE(mk.seq, 0) AS mk, COALESCE(mk.ord_at, 0) AS ord_at,
                    COALESCE(mk.own_at, 0) AS own_at, COALESCE(mk.own_head, 0) AS own_head,
                    COALESCE(mk.last_mentioned, 0) AS last_mentioned,
                    (mu.user_id IS NOT NULL) AS muted
             FROM json_each(?1) j
             JOIN channels c ON c.id = j.value
             LEFT JOIN markers mk
                 ON mk.user_id = ?2 AND mk.channel_id = c.id AND mk.root_id = ''
             LEFT JOIN muted mu ON mu.user_id = ?2 AND mu.channel_id = c.id
         )
         SELECT id, mk, head_seq, latest_ts, direct, muted,
             CASE WHEN head_seq <= mk THEN 0 ELSE
                 ord - ord_at - (own_head - own_at)
                 - CASE WHEN last_del <= mk THEN 0 ELSE
                       (SELECT COUNT(*) FROM deleted
                        WHERE channel_id = my.id AND seq > my.mk AND sender_id <> ?2)
                   END
             END,
             CASE WHEN head_seq <= mk OR muted OR direct THEN 0 ELSE
                 CASE WHEN last_mentioned <= mk THEN 0 ELSE
                     (SELECT COUNT(*) FROM mentions
                      WHERE channel_id = my.id AND user_id = ?2 AND seq > my.mk
                        AND in_channel = 1 AND sender_id <> ?2)
                 END
                 + CASE WHEN last_all <= mk THEN 0 ELSE
                     (SELECT COUNT(*) FROM mentions e
                      WHERE e.channel_id = my.id AND e.user_id = '*' AND e.seq > my.mk
                        AND e.in_channel = 1 AND e.sender_id <> ?2
                        AND NOT EXISTS (SELECT 1 FROM mentions x WHERE x.channel_id = my.id
                                            AND x.user_id = ?2 AND x.seq = e.seq))
                 END
             END
         FROM my ORDER BY id",
    )?;
    let rows = stmt.query_map(params![list, user], |r| {
        let unread = r.get::<_, i64>(6)?.max(0) as u64;
        let (direct, muted): (bool, bool) = (r.get(4)?, r.get(5)?);
        let mention_count = match (muted, direct) {
            (true, _) => 0,
            (false, true) => unread,
            (false, false) => r.get::<_, i64>(7)?.max(0) as u64,
        };
        Ok(ChannelUnread {
            channel_id: r.get(0)?,
            last_read_seq: r.get::<_, i64>(1)?.max(0) as u64,
            head_seq: r.get::<_, i64>(2)?.max(0) as u64,
            unread_count: unread,
            mention_count,
            latest_ts: r.get(3)?,
        })
    })?;
    let channels_out = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    let mut stmt = conn.prepare_cached(
        "WITH mine AS MATERIALIZED (
             SELECT f.root_id, f.channel_id, COALESCE(mk.seq, 0) AS mk,
                    COALESCE(c.direct, 0) AS direct, (mu.user_id IS NOT NULL) AS muted
             FROM follows f
             LEFT JOIN markers mk ON mk.user_id = ?2 AND mk.channel_id = f.channel_id
                                 AND mk.root_id = f.root_id
             LEFT JOIN channels c ON c.id = f.channel_id
             LEFT JOIN muted mu ON mu.user_id = ?2 AND mu.channel_id = f.channel_id
             WHERE f.user_id = ?2 AND f.channel_id IN (SELECT value FROM json_each(?1))
         )
         SELECT root_id, channel_id, direct, muted,
             (SELECT COUNT(*) FROM msgs INDEXED BY msgs_by_thread
              WHERE root_id = mine.root_id AND seq > mine.mk AND sender_id <> ?2
                AND deleted = 0),
             CASE WHEN muted OR direct THEN 0 ELSE
                 (SELECT COUNT(*) FROM mentions INDEXED BY mentions_by_thread
                  WHERE root_id = mine.root_id AND root_id <> '' AND user_id = ?2
                    AND seq > mine.mk AND sender_id <> ?2)
                 + (SELECT COUNT(*) FROM mentions e INDEXED BY mentions_by_thread
                    WHERE e.root_id = mine.root_id AND e.root_id <> '' AND e.user_id = '*'
                      AND e.seq > mine.mk AND e.sender_id <> ?2
                      AND NOT EXISTS (SELECT 1 FROM mentions x
                                      WHERE x.channel_id = e.channel_id
                                        AND x.user_id = ?2 AND x.seq = e.seq))
             END
         FROM mine ORDER BY channel_id, root_id",
    )?;
    let rows = stmt.query_map(params![list, user], |r| {
        let unread = r.get::<_, i64>(4)?.max(0) as u64;
        let (direct, muted): (bool, bool) = (r.get(2)?, r.get(3)?);
        let mention_count = match (muted, direct) {
            (true, _) => 0,
            (false, true) => unread,
            (false, false) => r.get::<_, i64>(5)?.max(0) as u64,
        };
        Ok(ThreadUnread {
            root_id: r.get(0)?,
            channel_id: r.get(1)?,
            unread_replies: unread,
            mention_count,
        })
    })?;
    let threads = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(UnreadSummary {
        channels: channels_out,
        threads,
    })
}

#[cfg(test)]
mod tests;
