//! The unread model: read markers (per user, channel and thread), what
//! counts as unread and as a mention, and per-channel indexes that let
//! `GET /v1/unreads` count both without scanning history.
//!
//! Invariant: the cost of folding a post does not depend on how many
//! members its channel has. Nothing is written per member on a post;
//! counts are computed on read from running ordinals, plus a small table
//! of corrections for the rare changes to the past:
//! - every channel-level message (a top-level post, or a reply also sent
//!   to the channel) gets `ord`, the channel's running count of such
//!   messages, and `sord`, its sender's running count in that channel;
//! - every channel-level post that mentions someone gets, per mention
//!   key, a running ordinal in `ment`: the key is `*` when it says
//!   `@channel`/`@everyone` (the channel's count, `channels.all_ord`),
//!   else each user it names or `@here` addresses other than its sender
//!   (that user's count, `markers.men_head`) — never both, so a message
//!   that names the user and says `@channel` is one mention; the sender's
//!   own `@channel` posts are counted too (`own.aord`) and subtracted;
//! - the values of all these ordinals as of a channel marker K are
//!   recorded on the marker row when it moves. They never change
//!   afterwards: every message up to K precedes the marker in the log, and
//!   ordinals are only ever appended by new posts (whose seq is above
//!   every marker);
//! - what changes a message at or before the head afterwards — a delete,
//!   an edit that adds or removes a mention — is a row in `fixes`
//!   (channel, seq, key, sender, delta ±1; key `''` for the message
//!   itself), kept so that ordinal + fix is exactly the message's current
//!   state (a fix back to the ordinal's state deletes the row). Counting a
//!   channel is then arithmetic on the channel and marker rows plus, only
//!   where the hints say the channel or the user has fixes after the
//!   marker, one range over them (the sums over fixes after K of
//!   messages not sent by the user):
//!
//! ```text
//! unread   = (ord − ord_at) − (own_head − own_at) + Σ fixes('')
//! mentions = (all_ord − all_at) − (own_all_head − own_all_at)
//!          + (men_head − men_at) + Σ fixes('*' | user)
//! ```
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
//!
//! Erasure: a message an erasure (`ContentErased`) covers stops counting
//! (unread and mention, channel and thread) exactly as a deleted message
//! does; the fold applies the delete's corrections to each covered
//! message, found through an index of the channel's live messages by
//! time (or by author and time), so its cost follows the covered
//! messages. A post or edit whose text arrives erased (`is_erased()`) is
//! folded as any other: erasure takes text, and this model reads none —
//! only who posted where, in which thread, mentioning whom (`mentions`,
//! which stays in the clear beside the sealed text). Thread follows a
//! covered message made stay.

use crate::runner::Projector;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::Serialize;
use std::collections::BTreeSet;
use switchboard_core::events::{Body, ChannelKind, Envelope, Mentions};
use switchboard_streams::subjects;

pub struct Unreads;

/// The mention row user id that stands for `@channel` / `@everyone`.
const EVERYONE: &str = "*";

/// The `fixes` key of a message itself (its delete).
const MESSAGE: &str = "";

/// The schema's version (`PRAGMA user_version`). A file written by an
/// older version (0: before versions; 2: without `markers.user_fix`) is
/// emptied and refolded from the log when opened: the model is a cache of
/// the log.
const SCHEMA_VERSION: i64 = 4;

/// Every table this model has had, dropped when the schema changes.
const ALL_TABLES: &[&str] = &[
    "TABLE channels",
    "TABLE msgs",
    "TABLE own",
    "TABLE deleted",
    "TABLE mentions",
    "TABLE ment",
    "TABLE fixes",
    "TABLE markers",
    "TABLE follows",
    "TABLE muted",
];

impl Projector for Unreads {
    const NAME: &'static str = "unreads";
    const TABLES: &'static [(&'static str, &'static str)] = &[
        ("channels", "id"),
        ("msgs", "channel_id, seq"),
        ("own", "channel_id, sender_id, seq"),
        ("mentions", "channel_id, user_id, seq"),
        ("ment", "channel_id, key, seq"),
        ("fixes", "channel_id, seq, key"),
        ("markers", "user_id, channel_id, root_id"),
        ("follows", "user_id, root_id"),
        ("muted", "user_id, channel_id"),
    ];

    fn migrate(conn: &Connection) -> rusqlite::Result<()> {
        crate::runner::refold_if_older(conn, Self::NAME, SCHEMA_VERSION, ALL_TABLES)?;
        conn.execute_batch(
            "-- ord: channel-level messages so far; all_ord: those of them
             -- posted with @channel; head_seq: the channel's latest
             -- channel_seq; latest_ts: the latest channel-level message's
             -- time; last_fix: the highest seq of a channel-wide fix (key
             -- '' or '*'; a hint: a count after a marker at or above it and
             -- at or above the user's markers.user_fix reads no fixes).
             CREATE TABLE IF NOT EXISTS channels (
                 id TEXT PRIMARY KEY,
                 direct INTEGER NOT NULL DEFAULT 0,
                 head_seq INTEGER NOT NULL DEFAULT 0,
                 ord INTEGER NOT NULL DEFAULT 0,
                 all_ord INTEGER NOT NULL DEFAULT 0,
                 latest_ts INTEGER NOT NULL DEFAULT 0,
                 last_fix INTEGER NOT NULL DEFAULT 0
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
                 ts_ms INTEGER NOT NULL DEFAULT 0,
                 PRIMARY KEY (channel_id, seq)
             ) WITHOUT ROWID;
             -- An erasure's candidates: live messages by time (a user's
             -- erasure filters them by sender).
             CREATE INDEX IF NOT EXISTS msgs_live_by_ts ON msgs (channel_id, ts_ms)
                 WHERE deleted = 0;
             DROP INDEX IF EXISTS msgs_live_by_sender;
             CREATE UNIQUE INDEX IF NOT EXISTS msgs_by_id ON msgs (id);
             CREATE INDEX IF NOT EXISTS msgs_ord ON msgs (channel_id, seq, ord)
                 WHERE ord IS NOT NULL;
             CREATE INDEX IF NOT EXISTS msgs_by_thread
                 ON msgs (root_id, seq, sender_id, deleted)
                 WHERE root_id IS NOT NULL;
             -- Each sender's channel-level messages with their running
             -- count (sord) and the running count of those posted with
             -- @channel (aord), as of posting.
             CREATE TABLE IF NOT EXISTS own (
                 channel_id TEXT NOT NULL,
                 sender_id TEXT NOT NULL,
                 seq INTEGER NOT NULL,
                 sord INTEGER NOT NULL,
                 aord INTEGER NOT NULL,
                 PRIMARY KEY (channel_id, sender_id, seq)
             ) WITHOUT ROWID;
             -- The mentions of every live message as it says now: one row
             -- per mentioned user (by name or @here) and '*' for @channel
             -- (thread counts and follows read these).
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
             CREATE INDEX IF NOT EXISTS mentions_by_thread
                 ON mentions (root_id, user_id, seq, sender_id, channel_id)
                 WHERE root_id <> '';
             -- Channel-level mention ordinals as posted: key '*' (the
             -- post said @channel; ord = channels.all_ord then) or a user
             -- named or addressed by @here, not the sender (ord = that
             -- user's markers.men_head then). Appended by posts only.
             CREATE TABLE IF NOT EXISTS ment (
                 channel_id TEXT NOT NULL,
                 key TEXT NOT NULL,
                 seq INTEGER NOT NULL,
                 ord INTEGER NOT NULL,
                 PRIMARY KEY (channel_id, key, seq)
             ) WITHOUT ROWID;
             -- Corrections to the ordinals for channel-level messages:
             -- key '' −1 for a deleted message; key '*' or a user ±1 for
             -- a mention an edit or delete took away or an edit added.
             -- A row exists only while the message's state differs from
             -- what its ordinals say.
             CREATE TABLE IF NOT EXISTS fixes (
                 channel_id TEXT NOT NULL,
                 seq INTEGER NOT NULL,
                 key TEXT NOT NULL,
                 sender_id TEXT NOT NULL,
                 delta INTEGER NOT NULL,
                 PRIMARY KEY (channel_id, seq, key)
             ) WITHOUT ROWID;
             -- root_id '': the channel's marker. For a channel marker at K,
             -- the *_at columns are the ordinals as of K (ord_at: the
             -- channel's ord; own_at / own_all_at: the user's sord / aord;
             -- men_at: the user's mention ordinal; all_at: the channel's
             -- all_ord), fixed once K is folded. own_head / own_all_head /
             -- men_head: the user's latest sord / aord / mention ordinal in
             -- the channel; user_fix: the highest seq of a fix under the
             -- user's key (a hint, as channels.last_fix). A user's own
             -- post, a mention or a fix of one makes the row (seq 0) if
             -- there is none yet: one row of the poster or of each
             -- mentioned user, never one per member.
             CREATE TABLE IF NOT EXISTS markers (
                 user_id TEXT NOT NULL,
                 channel_id TEXT NOT NULL,
                 root_id TEXT NOT NULL,
                 seq INTEGER NOT NULL,
                 ord_at INTEGER NOT NULL DEFAULT 0,
                 own_at INTEGER NOT NULL DEFAULT 0,
                 own_all_at INTEGER NOT NULL DEFAULT 0,
                 men_at INTEGER NOT NULL DEFAULT 0,
                 all_at INTEGER NOT NULL DEFAULT 0,
                 own_head INTEGER NOT NULL DEFAULT 0,
                 own_all_head INTEGER NOT NULL DEFAULT 0,
                 men_head INTEGER NOT NULL DEFAULT 0,
                 user_fix INTEGER NOT NULL DEFAULT 0,
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
        )?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
    }

    fn apply(
        tx: &Transaction<'_>,
        _stream_seq: u64,
        subject: &str,
        env: &Envelope,
    ) -> rusqlite::Result<()> {
        let Some(body) = &env.body else { return Ok(()) };
        if let Some(user) = subjects::user_of(subject) {
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
                let before = if m.in_channel {
                    mention_keys_now(tx, &m)?
                } else {
                    BTreeSet::new()
                };
                tx.prepare_cached("DELETE FROM mentions WHERE channel_id = ?1 AND seq = ?2")?
                    .execute(params![ch, m.seq])?;
                insert_mentions(tx, &m, b.mentions.as_ref())?;
                if m.in_channel {
                    let after = mention_keys(b.mentions.as_ref(), &m.sender_id);
                    for key in before.symmetric_difference(&after) {
                        set_mention(tx, &m, key, after.contains(key))?;
                    }
                }
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
                stop_counting(tx, &m)
            }
            Body::ContentErased(e) => erase(tx, ch, e),
            _ => Ok(()),
        }
    }
}

/// A live message stops counting, as a delete makes it: its mentions are
/// corrected away, the message itself too (channel-level ones), and it
/// is marked deleted (threads count live replies only).
fn stop_counting(tx: &Transaction<'_>, m: &Msg) -> rusqlite::Result<()> {
    if m.in_channel {
        for key in mention_keys_now(tx, m)? {
            set_mention(tx, m, &key, false)?;
        }
        put_fix(tx, m, MESSAGE, -1)?;
    }
    tx.prepare_cached("UPDATE msgs SET deleted = 1 WHERE channel_id = ?1 AND seq = ?2")?
        .execute(params![m.channel_id, m.seq])?;
    tx.prepare_cached("DELETE FROM mentions WHERE channel_id = ?1 AND seq = ?2")?
        .execute(params![m.channel_id, m.seq])?;
    Ok(())
}

/// A `ContentErased` on channel `ch`: every live message it covers stops
/// counting ([`stop_counting`]).
fn erase(
    tx: &Transaction<'_>,
    ch: &str,
    e: &switchboard_core::events::ContentErased,
) -> rusqlite::Result<()> {
    let row = |r: &rusqlite::Row<'_>| -> rusqlite::Result<Msg> {
        Ok(Msg {
            channel_id: r.get(0)?,
            seq: r.get(1)?,
            sender_id: r.get(2)?,
            root_id: r.get(3)?,
            in_channel: r.get(4)?,
            deleted: r.get(5)?,
        })
    };
    let mut covered: Vec<Msg> = Vec::new();
    let mut take = |m: Msg, ts_ms: i64| {
        if e.covers(m.seq.max(0) as u64, ts_ms, &m.sender_id) {
            covered.push(m);
        }
    };
    if e.author_ids.is_empty() {
        let mut stmt = tx.prepare_cached(
            "SELECT channel_id, seq, sender_id, root_id, ord IS NOT NULL, deleted, ts_ms
             FROM msgs INDEXED BY msgs_live_by_ts
             WHERE channel_id = ?1 AND ts_ms < ?2 AND deleted = 0",
        )?;
        let rows = stmt.query_map(params![ch, e.before_ts_ms], |r| Ok((row(r)?, r.get(6)?)))?;
        for found in rows {
            let (m, ts) = found?;
            take(m, ts);
        }
    } else {
        let authors: BTreeSet<&String> = e.author_ids.iter().collect();
        let mut stmt = tx.prepare_cached(
            "SELECT channel_id, seq, sender_id, root_id, ord IS NOT NULL, deleted, ts_ms
             FROM msgs INDEXED BY msgs_live_by_ts
             WHERE channel_id = ?1 AND sender_id = ?2 AND ts_ms < ?3 AND deleted = 0",
        )?;
        for author in authors {
            let rows = stmt.query_map(params![ch, author, e.before_ts_ms], |r| {
                Ok((row(r)?, r.get(6)?))
            })?;
            for found in rows {
                let (m, ts) = found?;
                take(m, ts);
            }
        }
    }
    for m in &covered {
        stop_counting(tx, m)?;
    }
    Ok(())
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

/// The latest `ment` ordinal of `key` in `ch` at or before `to` (0: none).
fn ment_at(tx: &Transaction<'_>, ch: &str, key: &str, to: i64) -> rusqlite::Result<i64> {
    let ord: Option<i64> = tx
        .prepare_cached(
            "SELECT ord FROM ment WHERE channel_id = ?1 AND key = ?2 AND seq <= ?3
             ORDER BY seq DESC LIMIT 1",
        )?
        .query_row(params![ch, key, to], |r| r.get(0))
        .optional()?;
    Ok(ord.unwrap_or(0))
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
    let mut at = [0i64; 5];
    if root.is_empty() {
        let ord: Option<i64> = tx
            .prepare_cached(
                "SELECT ord FROM msgs INDEXED BY msgs_ord
                 WHERE channel_id = ?1 AND seq <= ?2 AND ord IS NOT NULL
                 ORDER BY seq DESC LIMIT 1",
            )?
            .query_row(params![ch, to], |r| r.get(0))
            .optional()?;
        let own: Option<(i64, i64)> = tx
            .prepare_cached(
                "SELECT sord, aord FROM own WHERE channel_id = ?1 AND sender_id = ?2
                 AND seq <= ?3 ORDER BY seq DESC LIMIT 1",
            )?
            .query_row(params![ch, user, to], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let (own_at, own_all_at) = own.unwrap_or((0, 0));
        at = [
            ord.unwrap_or(0),
            own_at,
            own_all_at,
            ment_at(tx, ch, user, to)?,
            ment_at(tx, ch, EVERYONE, to)?,
        ];
    }
    tx.prepare_cached(
        "INSERT INTO markers (user_id, channel_id, root_id, seq,
                              ord_at, own_at, own_all_at, men_at, all_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT DO UPDATE SET seq = excluded.seq, ord_at = excluded.ord_at,
             own_at = excluded.own_at, own_all_at = excluded.own_all_at,
             men_at = excluded.men_at, all_at = excluded.all_at",
    )?
    .execute(params![
        user, ch, root, to, at[0], at[1], at[2], at[3], at[4]
    ])?;
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

/// The keys a channel-level message with `mentions` is counted under:
/// `*` alone if it says @channel, else every user it names or addresses
/// by @here but its sender. A user mentioned both ways is counted once
/// (under `*`), and a sender never mentions themself.
fn mention_keys(mentions: Option<&Mentions>, sender: &str) -> BTreeSet<String> {
    let Some(m) = mentions else {
        return BTreeSet::new();
    };
    if m.channel {
        return BTreeSet::from([EVERYONE.to_string()]);
    }
    let here: &[String] = if m.here { &m.here_user_ids } else { &[] };
    m.user_ids
        .iter()
        .chain(here)
        .filter(|u| u.as_str() != sender && u.as_str() != EVERYONE)
        .cloned()
        .collect()
}

/// [`mention_keys`] of a live message as its `mentions` rows say now.
fn mention_keys_now(tx: &Transaction<'_>, m: &Msg) -> rusqlite::Result<BTreeSet<String>> {
    let users: Vec<String> = tx
        .prepare_cached("SELECT user_id FROM mentions WHERE channel_id = ?1 AND seq = ?2")?
        .query_map(params![m.channel_id, m.seq], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if users.iter().any(|u| u == EVERYONE) {
        return Ok(BTreeSet::from([EVERYONE.to_string()]));
    }
    Ok(users.into_iter().filter(|u| *u != m.sender_id).collect())
}

/// Makes the channel-level message `m` count (`on`) or not under mention
/// `key` from now on: a fix of the difference to what its ordinals say.
fn set_mention(tx: &Transaction<'_>, m: &Msg, key: &str, on: bool) -> rusqlite::Result<()> {
    let counted: bool = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM ment WHERE channel_id = ?1 AND key = ?2 AND seq = ?3)",
        )?
        .query_row(params![m.channel_id, key, m.seq], |r| r.get(0))?;
    put_fix(tx, m, key, i64::from(on) - i64::from(counted))
}

/// Sets the fix of `m` under `key` to `delta` (0: none).
fn put_fix(tx: &Transaction<'_>, m: &Msg, key: &str, delta: i64) -> rusqlite::Result<()> {
    if delta == 0 {
        tx.prepare_cached("DELETE FROM fixes WHERE channel_id = ?1 AND seq = ?2 AND key = ?3")?
            .execute(params![m.channel_id, m.seq, key])?;
        return Ok(());
    }
    tx.prepare_cached(
        "INSERT INTO fixes (channel_id, seq, key, sender_id, delta) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT DO UPDATE SET delta = excluded.delta",
    )?
    .execute(params![m.channel_id, m.seq, key, m.sender_id, delta])?;
    if key == MESSAGE || key == EVERYONE {
        tx.prepare_cached("UPDATE channels SET last_fix = MAX(last_fix, ?2) WHERE id = ?1")?
            .execute(params![m.channel_id, m.seq])?;
    } else {
        tx.prepare_cached(
            "INSERT INTO markers (user_id, channel_id, root_id, seq, user_fix)
             VALUES (?1, ?2, '', 0, ?3)
             ON CONFLICT DO UPDATE SET user_fix = MAX(user_fix, excluded.user_fix)",
        )?
        .execute(params![key, m.channel_id, m.seq])?;
    }
    Ok(())
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
        let keys = mention_keys(mentions, sender);
        let everyone = keys.contains(EVERYONE);
        let (ord, all_ord): (i64, i64) = tx
            .prepare_cached(
                "UPDATE channels SET ord = ord + 1, all_ord = all_ord + ?3,
                                     latest_ts = MAX(latest_ts, ?2)
                 WHERE id = ?1 RETURNING ord, all_ord",
            )?
            .query_row(params![ch, env.ts_ms, everyone], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        let last: Option<(i64, i64)> = tx
            .prepare_cached(
                "SELECT sord, aord FROM own WHERE channel_id = ?1 AND sender_id = ?2
                 ORDER BY seq DESC LIMIT 1",
            )?
            .query_row(params![ch, sender], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let (sord, aord) = last.unwrap_or((0, 0));
        let (sord, aord) = (sord + 1, aord + i64::from(everyone));
        tx.prepare_cached(
            "INSERT INTO own (channel_id, sender_id, seq, sord, aord)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![ch, sender, seq, sord, aord])?;
        tx.prepare_cached(
            "INSERT INTO markers (user_id, channel_id, root_id, seq, own_head, own_all_head)
             VALUES (?1, ?2, '', 0, ?3, ?4)
             ON CONFLICT DO UPDATE SET own_head = excluded.own_head,
                                       own_all_head = excluded.own_all_head",
        )?
        .execute(params![sender, ch, sord, aord])?;
        let mut ment = tx.prepare_cached(
            "INSERT INTO ment (channel_id, key, seq, ord) VALUES (?1, ?2, ?3, ?4)",
        )?;
        if everyone {
            ment.execute(params![ch, EVERYONE, seq, all_ord])?;
        } else {
            for user in &keys {
                let n: i64 = tx
                    .prepare_cached(
                        "INSERT INTO markers (user_id, channel_id, root_id, seq, men_head)
                         VALUES (?1, ?2, '', 0, 1)
                         ON CONFLICT DO UPDATE SET men_head = men_head + 1
                         RETURNING men_head",
                    )?
                    .query_row(params![user, ch], |r| r.get(0))?;
                ment.execute(params![ch, user, seq, n])?;
            }
        }
        (Some(ord), Some(sord))
    } else {
        (None, None)
    };
    tx.prepare_cached(
        "INSERT INTO msgs (channel_id, seq, id, sender_id, root_id, ord, sord, ts_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![ch, seq, id, sender, root, ord, sord, env.ts_ms])?;
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

/// The message's `mentions` rows (what it says now).
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

/// `unreads`' per-channel statement (?1: the channel ids as a JSON
/// list, ?2: the user). `my` is materialized so each channel's rows are
/// read once. `fixes` is read only where the hints say it has rows after
/// the marker, in one range for both counts: the sum is packed as
/// `mention fixes × 2³² + unread fixes` (see [`unpack_fixes`]).
pub(crate) const CHANNELS_SQL: &str = "WITH my AS MATERIALIZED (
             SELECT c.id, c.direct, c.head_seq, c.latest_ts,
                    COALESCE(mk.seq, 0) AS mk,
                    MAX(c.last_fix, COALESCE(mk.user_fix, 0)) AS last_fix,
                    c.ord - COALESCE(mk.ord_at, 0)
                        - (COALESCE(mk.own_head, 0) - COALESCE(mk.own_at, 0)) AS unread,
                    c.all_ord - COALESCE(mk.all_at, 0)
                        - (COALESCE(mk.own_all_head, 0) - COALESCE(mk.own_all_at, 0))
                        + COALESCE(mk.men_head, 0) - COALESCE(mk.men_at, 0) AS mentioned,
                    (mu.user_id IS NOT NULL) AS muted
             FROM json_each(?1) j
             JOIN channels c ON c.id = j.value
             LEFT JOIN markers mk
                 ON mk.user_id = ?2 AND mk.channel_id = c.id AND mk.root_id = ''
             LEFT JOIN muted mu ON mu.user_id = ?2 AND mu.channel_id = c.id
         )
         SELECT id, mk, head_seq, latest_ts, direct, muted,
             CASE WHEN head_seq <= mk THEN 0 ELSE unread END,
             CASE WHEN head_seq <= mk THEN 0 ELSE mentioned END,
             CASE WHEN head_seq <= mk OR last_fix <= mk THEN 0 ELSE
                 (SELECT SUM(CASE WHEN f.key = '' THEN f.delta ELSE f.delta * 4294967296 END)
                  FROM fixes f
                  WHERE f.channel_id = my.id AND f.seq > my.mk
                    AND f.key IN ('', '*', ?2) AND f.sender_id <> ?2)
             END
         FROM my ORDER BY id";

/// The (unread, mention) parts of a packed sum of fixes (the unread part
/// is at most the channel's messages in magnitude, far below 2³¹).
fn unpack_fixes(packed: i64) -> (i64, i64) {
    const SHIFT: i64 = 1 << 32;
    let mentions = (packed + SHIFT / 2).div_euclid(SHIFT);
    (packed - mentions * SHIFT, mentions)
}

/// `unreads`' per-thread statement (same parameters).
pub(crate) const THREADS_SQL: &str = "WITH mine AS MATERIALIZED (
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
         FROM mine ORDER BY channel_id, root_id";

/// The unread state of `user` in `channels` (the channels it is a member
/// of now, from the ACL model; distinct ids) and in the threads it follows
/// there, in channel id (then root id) order. Per channel: arithmetic on
/// its row and the user's marker row, plus one range over the fixes after
/// the marker only where there are any (rare: deletes, edits changing a
/// mention); whatever the channel's size or history. Per followed thread:
/// a range over its replies after the thread's marker.
pub fn unreads(
    conn: &Connection,
    user: &str,
    channels: &[String],
) -> rusqlite::Result<UnreadSummary> {
    let list = serde_json::to_string(channels)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    let mut stmt = conn.prepare_cached(CHANNELS_SQL)?;
    let mut channels_out = Vec::with_capacity(channels.len());
    let rows = stmt.query_map(params![list, user], |r| {
        let (fix_unread, fix_mentions) = unpack_fixes(r.get::<_, Option<i64>>(8)?.unwrap_or(0));
        let unread = (r.get::<_, i64>(6)? + fix_unread).max(0) as u64;
        let (direct, muted): (bool, bool) = (r.get(4)?, r.get(5)?);
        let mention_count = match (muted, direct) {
            (true, _) => 0,
            (false, true) => unread,
            (false, false) => (r.get::<_, i64>(7)? + fix_mentions).max(0) as u64,
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
    for row in rows {
        channels_out.push(row?);
    }
    let mut stmt = conn.prepare_cached(THREADS_SQL)?;
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
