//! The history read model: every channel event (the resume/gap-fill path),
//! messages with their threads (reply count, latest reply, first repliers),
//! edits, tombstones, reactions (in first-reacted order), mentions and
//! pins, and each channel's head `channel_seq`.
//!
//! A tombstone (`MessageDeleted`) makes the model forget the text: the
//! message row and every stored event that carried the text (and the
//! mentions derived from it) are scrubbed, and a text-carrying event for the
//! message that arrives after the tombstone is stored already scrubbed. A
//! tombstone also drops the message's reactions and its pin; a deleted
//! thread root keeps its replies.
//!
//! An erasure (`ContentErased`, README "Erasure in the read models")
//! scrubs every message of its channel it covers exactly as a tombstone
//! does, files included, but marks it `erased` rather than `deleted` (the
//! stored event bodies get `"erased": true` where a tombstone sets
//! `"deleted": true`). A post or edit whose text could not be opened
//! (`is_erased()`, its key destroyed) is stored already scrubbed and
//! erased; its erasure, folded after it, marks its files. Either way the
//! final rows are the same: live (text, then the erasure) and rebuilt
//! (erased text, then the erasure) yield one checksum.

use crate::runner::Projector;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::LazyLock;
use switchboard_core::events::{Body, Envelope, Mentions};
use switchboard_streams::subjects;

pub struct History;

/// Stores a channel event: a post or edit body scrubbed when it arrives
/// erased (?9) or its message is deleted or erased already.
static INSERT_EVENT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT OR IGNORE INTO events
             (channel_id, seq, stream_seq, type, ts_ms, actor_id, message_id, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7,
             CASE WHEN ?4 IN ('message_posted', 'message_edited')
                       AND (?9 OR EXISTS (SELECT 1 FROM messages WHERE id = ?7
                                          AND (deleted = 1 OR erased <> 0)))
                  THEN {}
                  ELSE ?8 END)",
        scrubbed_body(
            "?8",
            "EXISTS (SELECT 1 FROM messages WHERE id = ?7 AND deleted = 1)",
            "?9 OR EXISTS (SELECT 1 FROM messages WHERE id = ?7 AND erased <> 0)",
        )
    )
});

/// Rewrites message ?1's stored posts and edits scrubbed (see [`scrub_events`]).
static SCRUB_EVENTS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE events SET body = {}
         WHERE message_id = ?1 AND type IN ('message_posted', 'message_edited')",
        scrubbed_body(
            "body",
            "EXISTS (SELECT 1 FROM messages WHERE id = ?1 AND deleted = 1)",
            "EXISTS (SELECT 1 FROM messages WHERE id = ?1 AND erased <> 0)",
        )
    )
});

/// The schema's version (`PRAGMA user_version`). A file written by an
/// older version is emptied and refolded from the log when opened: the
/// read model is a cache of the log, and the fold of the new version must
/// see every event again (a replay is what `switchboard rebuild` proves
/// equal).
const SCHEMA_VERSION: i64 = 4;

/// How many repliers a thread root lists (the first distinct ones).
pub const REPLY_USERS: i64 = 5;

/// The stored form of "mentions nobody" (also what a tombstone leaves).
const NO_MENTIONS: &str = r#"{"channel":false,"here":false,"user_ids":[]}"#;

/// `messages.erased`: not erased.
const NOT_ERASED: i64 = 0;
/// `messages.erased`: erased, and the `ContentErased` covering it folded.
const ERASED: i64 = 1;
/// `messages.erased`: its post arrived erased (its key destroyed) and no
/// `ContentErased` covering it has been folded yet (which marks its files
/// deleted; a live fold marks them at the same event).
const ERASED_UNANNOUNCED: i64 = 2;

/// The scrubbed form of a stored post or edit body `body`: no text, no
/// mentions, and `"deleted": true` when `deleted`, `"erased": true` when
/// `erased` (SQL expressions), always in that order whatever order the
/// delete and the erasure were folded in, so the stored JSON is the same.
fn scrubbed_body(body: &str, deleted: &str, erased: &str) -> String {
    let base = format!(
        "json_set(json_remove({body}, '$.deleted', '$.erased'), '$.text', '', \
         '$.mentions', json('{NO_MENTIONS}'))"
    );
    format!(
        "(CASE WHEN ({deleted}) AND ({erased})
                   THEN json_set({base}, '$.deleted', json('true'), '$.erased', json('true'))
              WHEN ({deleted}) THEN json_set({base}, '$.deleted', json('true'))
              WHEN ({erased}) THEN json_set({base}, '$.erased', json('true'))
              ELSE {base} END)"
    )
}

impl Projector for History {
    const NAME: &'static str = "history";
    const TABLES: &'static [(&'static str, &'static str)] = &[
        ("events", "channel_id, seq"),
        ("messages", "id"),
        ("reactions", "message_id, emoji, user_id"),
        ("files", "id"),
    ];
    const HOLDS_TEXT: bool = true;

    fn migrate(conn: &Connection) -> rusqlite::Result<()> {
        crate::runner::refold_if_older(
            conn,
            Self::NAME,
            SCHEMA_VERSION,
            &[
                "TABLE events",
                "TABLE messages",
                "TABLE reactions",
                "TABLE files",
            ],
        )?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS events (
                 channel_id TEXT NOT NULL,
                 seq INTEGER NOT NULL,
                 stream_seq INTEGER NOT NULL,
                 type TEXT NOT NULL,
                 ts_ms INTEGER NOT NULL,
                 actor_id TEXT NOT NULL,
                 message_id TEXT,
                 body TEXT NOT NULL,
                 PRIMARY KEY (channel_id, seq)
             ) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS events_by_message ON events (message_id)
                 WHERE message_id IS NOT NULL;
             CREATE TABLE IF NOT EXISTS messages (
                 id TEXT PRIMARY KEY,
                 channel_id TEXT NOT NULL,
                 seq INTEGER NOT NULL,
                 ts_ms INTEGER NOT NULL,
                 sender_id TEXT NOT NULL,
                 text TEXT NOT NULL,
                 thread_root_id TEXT,
                 reply_count INTEGER NOT NULL DEFAULT 0,
                 edited_ms INTEGER,
                 deleted INTEGER NOT NULL DEFAULT 0,
                 client_msg_id TEXT,
                 attachments TEXT NOT NULL DEFAULT '[]',
                 also_in_channel INTEGER NOT NULL DEFAULT 0,
                 latest_reply_ms INTEGER,
                 reply_user_ids TEXT NOT NULL DEFAULT '[]',
                 mentions TEXT NOT NULL,
                 pinned_seq INTEGER,
                 erased INTEGER NOT NULL DEFAULT 0
             );
             CREATE UNIQUE INDEX IF NOT EXISTS messages_by_seq ON messages (channel_id, seq);
             CREATE UNIQUE INDEX IF NOT EXISTS messages_by_client
                 ON messages (channel_id, sender_id, client_msg_id)
                 WHERE client_msg_id IS NOT NULL;
             CREATE INDEX IF NOT EXISTS messages_by_thread ON messages (thread_root_id, seq)
                 WHERE thread_root_id IS NOT NULL;
             CREATE INDEX IF NOT EXISTS messages_pinned ON messages (channel_id, pinned_seq)
                 WHERE pinned_seq IS NOT NULL;
             -- What an erasure may still have to do (erased <> 1), by
             -- time. A user's erasure (rare) filters the channel's by
             -- sender: no index per sender on the hot insert path.
             CREATE INDEX IF NOT EXISTS messages_to_erase ON messages (channel_id, ts_ms)
                 WHERE erased <> 1;
             DROP INDEX IF EXISTS messages_to_erase_by_sender;
             -- seq: the channel seq of the reaction's event (first-reacted order).
             CREATE TABLE IF NOT EXISTS reactions (
                 message_id TEXT NOT NULL,
                 emoji TEXT NOT NULL,
                 user_id TEXT NOT NULL,
                 seq INTEGER NOT NULL,
                 PRIMARY KEY (message_id, emoji, user_id)
             ) WITHOUT ROWID;
             -- Uploads (FileUploaded); message_id: the post that attached
             -- the file; deleted_seq: the stream seq of that post's
             -- tombstone (the object is then deleted from the bucket).
             CREATE TABLE IF NOT EXISTS files (
                 id TEXT PRIMARY KEY,
                 workspace_id TEXT NOT NULL,
                 channel_id TEXT NOT NULL,
                 uploader_id TEXT NOT NULL,
                 name TEXT NOT NULL,
                 size INTEGER NOT NULL,
                 content_type TEXT NOT NULL,
                 sha256 TEXT NOT NULL,
                 ts_ms INTEGER NOT NULL,
                 message_id TEXT,
                 deleted_seq INTEGER
             ) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS files_by_message ON files (message_id)
                 WHERE message_id IS NOT NULL;
             CREATE INDEX IF NOT EXISTS files_deleted ON files (deleted_seq)
                 WHERE deleted_seq IS NOT NULL;",
        )?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
    }

    fn apply(
        tx: &Transaction<'_>,
        stream_seq: u64,
        subject: &str,
        env: &Envelope,
    ) -> rusqlite::Result<()> {
        if !subjects::is_channel(subject) {
            return Ok(());
        }
        let Some(body) = &env.body else { return Ok(()) };
        let ch = env.channel_id.as_str();
        let (message_id, payload) = event_body(body);
        let arrived_erased = match body {
            Body::MessagePosted(b) => b.is_erased(),
            Body::MessageEdited(b) => b.is_erased(),
            _ => false,
        };
        // An event carrying text for a message already tombstoned (an edit
        // that raced the delete) or erased is stored scrubbed, the same way
        // the tombstone or erasure scrubs the events before it, so the text
        // never reaches the file in any order of edit, delete and erasure;
        // a post or edit that arrives erased is stored scrubbed and erased.
        tx.prepare_cached(&INSERT_EVENT)?.execute(params![
            ch,
            env.channel_seq as i64,
            stream_seq as i64,
            body.kind(),
            env.ts_ms,
            env.actor_id,
            message_id,
            payload.to_string(),
            arrived_erased
        ])?;
        match body {
            Body::MessagePosted(b) => {
                let root = (!b.thread_root_id.is_empty()).then_some(b.thread_root_id.as_str());
                let client = (!b.client_msg_id.is_empty()).then_some(b.client_msg_id.as_str());
                // OR IGNORE: a second post with the same client_msg_id (only
                // possible if a retry raced past the de-dup window) keeps the
                // first as the message; its event stays in `events`.
                // A post that arrives erased is stored as its erasure leaves
                // a live one: no text, attachments or mentions (its files
                // are still attached below, for the erasure to mark).
                let erased = b.is_erased();
                let mentions = if erased {
                    NO_MENTIONS.to_string()
                } else {
                    mentions_json(b.mentions.as_ref()).to_string()
                };
                let inserted = tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO messages
                             (id, channel_id, seq, ts_ms, sender_id, text, thread_root_id,
                              client_msg_id, attachments, also_in_channel, mentions, erased)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8,
                             CASE WHEN ?12 <> 0 THEN '[]' ELSE
                             (SELECT json_group_array(json_object('id', id, 'name', name,
                                         'size', size, 'content_type', content_type))
                              FROM (SELECT f.* FROM json_each(?9) j
                                    JOIN files f ON f.id = j.value
                                    WHERE f.channel_id = ?2 AND f.uploader_id = ?5
                                      AND f.message_id IS NULL AND f.deleted_seq IS NULL
                                    ORDER BY j.key)) END,
                             ?10, ?11, ?12)",
                    )?
                    .execute(params![
                        b.message_id,
                        ch,
                        env.channel_seq as i64,
                        env.ts_ms,
                        env.actor_id,
                        if erased { "" } else { b.text.as_str() },
                        root,
                        client,
                        json!(b.attachment_ids).to_string(),
                        root.is_some() && b.also_send_to_channel,
                        mentions,
                        if erased {
                            ERASED_UNANNOUNCED
                        } else {
                            NOT_ERASED
                        }
                    ])?;
                if inserted == 1 && !b.attachment_ids.is_empty() {
                    tx.prepare_cached(
                        "UPDATE files SET message_id = ?1
                         WHERE id IN (SELECT value FROM json_each(?2))
                           AND channel_id = ?3 AND uploader_id = ?4 AND message_id IS NULL
                           AND deleted_seq IS NULL",
                    )?
                    .execute(params![
                        b.message_id,
                        json!(b.attachment_ids).to_string(),
                        ch,
                        env.actor_id
                    ])?;
                }
                if inserted == 1 {
                    if let Some(root) = root {
                        // The first REPLY_USERS distinct repliers, in order.
                        tx.prepare_cached(
                            "UPDATE messages SET
                                 reply_count = reply_count + 1,
                                 latest_reply_ms = MAX(COALESCE(latest_reply_ms, ?2), ?2),
                                 reply_user_ids = CASE
                                     WHEN json_array_length(reply_user_ids) < ?4
                                          AND NOT EXISTS (SELECT 1 FROM json_each(reply_user_ids)
                                                          WHERE value = ?3)
                                     THEN json_insert(reply_user_ids, '$[#]', ?3)
                                     ELSE reply_user_ids END
                             WHERE id = ?1",
                        )?
                        .execute(params![
                            root,
                            env.ts_ms,
                            env.actor_id,
                            REPLY_USERS
                        ])?;
                    }
                }
            }
            Body::MessageEdited(b) => {
                // An erased edit, or an edit of an erased message, still
                // marks the message edited; its text goes nowhere. (An
                // erased edit of a message not yet erased keeps the text
                // the row has until the erasure scrubs it.)
                tx.prepare_cached(
                    "UPDATE messages SET
                         text = CASE WHEN ?5 OR erased <> 0 THEN text ELSE ?2 END,
                         edited_ms = ?3,
                         mentions = CASE WHEN ?5 OR erased <> 0 THEN mentions ELSE ?4 END
                     WHERE id = ?1 AND deleted = 0",
                )?
                .execute(params![
                    b.message_id,
                    b.text,
                    env.ts_ms,
                    mentions_json(b.mentions.as_ref()).to_string(),
                    b.is_erased()
                ])?;
            }
            Body::MessageDeleted(b) => {
                tx.prepare_cached(
                    "UPDATE messages SET text = '', deleted = 1, attachments = '[]',
                         mentions = ?2, pinned_seq = NULL
                     WHERE id = ?1",
                )?
                .execute(params![b.message_id, NO_MENTIONS])?;
                tx.prepare_cached(
                    "UPDATE files SET deleted_seq = ?2
                     WHERE message_id = ?1 AND deleted_seq IS NULL",
                )?
                .execute(params![b.message_id, stream_seq as i64])?;
                // Keep in step with the scrub in the INSERT INTO events above.
                scrub_events(tx, &b.message_id)?;
                tx.prepare_cached("DELETE FROM reactions WHERE message_id = ?1")?
                    .execute([&b.message_id])?;
            }
            Body::ReactionAdded(b) => {
                // OR IGNORE: a repeated reaction keeps its first seq.
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO reactions (message_id, emoji, user_id, seq)
                     SELECT ?1, ?2, ?3, ?4 WHERE EXISTS
                         (SELECT 1 FROM messages WHERE id = ?1 AND deleted = 0 AND erased = 0)",
                )?
                .execute(params![
                    b.message_id,
                    b.emoji,
                    env.actor_id,
                    env.channel_seq as i64
                ])?;
            }
            Body::ReactionRemoved(b) => {
                tx.prepare_cached(
                    "DELETE FROM reactions WHERE message_id = ?1 AND emoji = ?2 AND user_id = ?3",
                )?
                .execute(params![b.message_id, b.emoji, env.actor_id])?;
            }
            Body::MessagePinned(b) => {
                // A pin keeps its first seq (the pin list is newest first).
                tx.prepare_cached(
                    "UPDATE messages SET pinned_seq = ?3
                     WHERE id = ?1 AND channel_id = ?2 AND deleted = 0 AND erased = 0
                       AND pinned_seq IS NULL",
                )?
                .execute(params![b.message_id, ch, env.channel_seq as i64])?;
            }
            Body::MessageUnpinned(b) => {
                tx.prepare_cached(
                    "UPDATE messages SET pinned_seq = NULL WHERE id = ?1 AND channel_id = ?2",
                )?
                .execute(params![b.message_id, ch])?;
            }
            Body::FileExpired(b) => {
                tx.prepare_cached(
                    "UPDATE files SET deleted_seq = ?2
                     WHERE id = ?1 AND channel_id = ?3 AND message_id IS NULL
                       AND deleted_seq IS NULL",
                )?
                .execute(params![b.file_id, stream_seq as i64, ch])?;
            }
            Body::FileUploaded(b) => {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO files (id, workspace_id, channel_id, uploader_id, name,
                         size, content_type, sha256, ts_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?
                .execute(params![
                    b.file_id,
                    env.workspace_id,
                    ch,
                    env.actor_id,
                    b.name,
                    b.size as i64,
                    b.content_type,
                    b.sha256,
                    env.ts_ms
                ])?;
            }
            Body::ContentErased(e) => erase(tx, ch, stream_seq, e)?,
            _ => {}
        }
        Ok(())
    }
}

/// Rewrites the stored post and edit events of `message_id` scrubbed, as
/// its row says it is (deleted, erased).
fn scrub_events(tx: &Transaction<'_>, message_id: &str) -> rusqlite::Result<()> {
    tx.prepare_cached(&SCRUB_EVENTS)?.execute([message_id])?;
    Ok(())
}

/// A `ContentErased` on channel `ch`: every message of the channel it
/// covers, not yet erased by an erasure, is scrubbed as a tombstone
/// scrubs (text, mentions, attachments, stored events, reactions, pin; its
/// files marked deleted at this stream seq for the reaper) and marked
/// erased. The candidates come from an index of the channel's messages
/// not yet erased, by time: the cost follows the messages before the
/// erasure's time bound not yet erased (a user's erasure, with no time
/// bound, reads the channel's; rare), not the channel's whole history.
fn erase(
    tx: &Transaction<'_>,
    ch: &str,
    stream_seq: u64,
    e: &switchboard_core::events::ContentErased,
) -> rusqlite::Result<()> {
    let covered = crate::runner::covered_by(
        tx,
        "SELECT id, seq, ts_ms, sender_id FROM messages INDEXED BY messages_to_erase WHERE channel_id = ?1 AND ts_ms < ?2 AND erased <> 1",
        ch,
        e,
    )?;
    for id in covered {
        tx.prepare_cached(
            "UPDATE messages SET text = '', erased = ?2, attachments = '[]', mentions = ?3,
                 pinned_seq = NULL
             WHERE id = ?1",
        )?
        .execute(params![id, ERASED, NO_MENTIONS])?;
        tx.prepare_cached(
            "UPDATE files SET deleted_seq = ?2 WHERE message_id = ?1 AND deleted_seq IS NULL",
        )?
        .execute(params![id, stream_seq as i64])?;
        scrub_events(tx, &id)?;
        tx.prepare_cached("DELETE FROM reactions WHERE message_id = ?1")?
            .execute([&id])?;
    }
    Ok(())
}

/// The JSON of a message's mentions, as stored and as served.
pub fn mentions_json(m: Option<&Mentions>) -> serde_json::Value {
    let m = m.cloned().unwrap_or_default();
    json!({"user_ids": m.user_ids, "channel": m.channel, "here": m.here})
}

/// The event-specific part of an `/events` entry, and the message it
/// concerns (if any).
///
/// A post or edit that arrives erased (its key destroyed) is given as
/// history stores it: no text, no mentions, `"erased": true`.
pub fn event_body(body: &Body) -> (Option<&str>, serde_json::Value) {
    let erased = match body {
        Body::MessagePosted(b) => b.is_erased(),
        Body::MessageEdited(b) => b.is_erased(),
        _ => false,
    };
    let (id, mut value) = event_body_of(body);
    if erased {
        value["text"] = json!("");
        value["mentions"] = mentions_json(None);
        value["erased"] = json!(true);
    }
    (id, value)
}

fn event_body_of(body: &Body) -> (Option<&str>, serde_json::Value) {
    match body {
        Body::MessagePosted(b) => (
            Some(&b.message_id),
            json!({
                "message_id": b.message_id,
                "text": b.text,
                "client_msg_id": none_if_empty(&b.client_msg_id),
                "thread_root_id": none_if_empty(&b.thread_root_id),
                "attachment_ids": b.attachment_ids,
                "also_send_to_channel": b.also_send_to_channel,
                "mentions": mentions_json(b.mentions.as_ref()),
            }),
        ),
        Body::MessageEdited(b) => (
            Some(&b.message_id),
            json!({
                "message_id": b.message_id,
                "text": b.text,
                "mentions": mentions_json(b.mentions.as_ref()),
            }),
        ),
        Body::MessageDeleted(b) => (Some(&b.message_id), json!({"message_id": b.message_id})),
        Body::ReactionAdded(b) => (
            Some(&b.message_id),
            json!({"message_id": b.message_id, "emoji": b.emoji}),
        ),
        Body::ReactionRemoved(b) => (
            Some(&b.message_id),
            json!({"message_id": b.message_id, "emoji": b.emoji}),
        ),
        Body::MemberJoined(b) => (None, json!({"user_id": b.user_id})),
        Body::MemberLeft(b) => (None, json!({"user_id": b.user_id})),
        Body::MemberInvited(b) => (None, json!({"user_id": b.user_id})),
        Body::MemberRemoved(b) => (None, json!({"user_id": b.user_id})),
        Body::MessagePinned(b) => (Some(&b.message_id), json!({"message_id": b.message_id})),
        Body::MessageUnpinned(b) => (Some(&b.message_id), json!({"message_id": b.message_id})),
        Body::ChannelRenamed(b) => (None, json!({"name": b.name})),
        Body::ChannelTopicSet(b) => (None, json!({"topic": b.topic})),
        Body::FileExpired(b) => (None, json!({"file_id": b.file_id})),
        Body::ContentErased(b) => (
            None,
            json!({"reason": erasure_reason(b.reason), "policy": b.policy,
                   "before_ts_ms": b.before_ts_ms, "author_ids": b.author_ids,
                   "except_author_ids": b.except_author_ids,
                   "through_channel_seq": b.through_channel_seq}),
        ),
        Body::FileUploaded(b) => (
            None,
            json!({"file_id": b.file_id, "name": b.name, "size": b.size,
                   "content_type": b.content_type, "sha256": b.sha256}),
        ),
        _ => (None, json!({})),
    }
}

/// An erasure's reason as the API names it.
pub fn erasure_reason(reason: i32) -> &'static str {
    use switchboard_core::events::ErasureReason;
    match ErasureReason::try_from(reason) {
        Ok(ErasureReason::Retention) => "retention",
        Ok(ErasureReason::UserRequest) => "user_request",
        _ => "unspecified",
    }
}

fn none_if_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

// ----- queries -----

#[derive(Debug, Clone, Serialize)]
pub struct Reaction {
    pub emoji: String,
    pub count: usize,
    pub user_ids: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct MessageRow {
    pub id: String,
    pub channel_id: String,
    pub seq: i64,
    pub ts_ms: i64,
    pub sender_id: String,
    pub text: String,
    pub thread_root_id: Option<String>,
    pub reply_count: i64,
    pub edited_ms: Option<i64>,
    pub deleted: bool,
    pub client_msg_id: Option<String>,
    pub attachments: Vec<FileRef>,
    pub reactions: Vec<Reaction>,
    /// A thread reply also shown in the channel's history.
    pub also_in_channel: bool,
    pub latest_reply_ms: Option<i64>,
    /// The first [`REPLY_USERS`] distinct repliers.
    pub reply_user_ids: Vec<String>,
    pub mentions: MentionsRow,
    pub pinned: bool,
    /// The text was erased (retention, right to erasure): `text` is empty,
    /// as for a deleted message, but the message was not deleted. A view
    /// shows it as `"erased": true`.
    pub erased: bool,
}

/// A file as a message shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FileRef {
    pub id: String,
    pub name: String,
    pub size: u64,
    pub content_type: String,
}

/// An upload, as the history model has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRow {
    pub id: String,
    pub workspace_id: String,
    pub channel_id: String,
    pub uploader_id: String,
    pub name: String,
    pub size: u64,
    pub content_type: String,
    pub sha256: String,
    pub ts_ms: i64,
    /// The post that attached it.
    pub message_id: Option<String>,
    /// That post is deleted (the file is gone).
    pub deleted: bool,
}

const FILE_COLS: &str = "id, workspace_id, channel_id, uploader_id, name, size, content_type,
     sha256, ts_ms, message_id, deleted_seq IS NOT NULL";

fn file_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FileRow> {
    Ok(FileRow {
        id: r.get(0)?,
        workspace_id: r.get(1)?,
        channel_id: r.get(2)?,
        uploader_id: r.get(3)?,
        name: r.get(4)?,
        size: r.get::<_, i64>(5)?.max(0) as u64,
        content_type: r.get(6)?,
        sha256: r.get(7)?,
        ts_ms: r.get(8)?,
        message_id: r.get(9)?,
        deleted: r.get(10)?,
    })
}

/// One upload.
pub fn file(conn: &Connection, id: &str) -> rusqlite::Result<Option<FileRow>> {
    conn.prepare_cached(&format!("SELECT {FILE_COLS} FROM files WHERE id = ?1"))?
        .query_row([id], file_row)
        .optional()
}

/// The uploads among `ids` that exist.
pub fn files(conn: &Connection, ids: &[String]) -> rusqlite::Result<Vec<FileRow>> {
    let ids = json!(ids).to_string();
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {FILE_COLS} FROM files WHERE id IN (SELECT value FROM json_each(?1))"
    ))?;
    let rows = stmt.query_map([ids], file_row)?;
    rows.collect()
}

/// Uploads no message attached, still there, uploaded before `before_ms`
/// (oldest first, at most `limit`): `(workspace_id, channel_id, id)`.
pub fn unattached_before(
    conn: &Connection,
    before_ms: i64,
    limit: u32,
) -> rusqlite::Result<Vec<(String, String, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT workspace_id, channel_id, id FROM files
         WHERE message_id IS NULL AND deleted_seq IS NULL AND ts_ms < ?1
         ORDER BY ts_ms, id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![before_ms, limit], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })?;
    rows.collect()
}

/// Files deleted (their message's tombstone, or expired unattached) at a
/// stream sequence after `after` (oldest first, at most `limit`): `(deleted_seq, id)`.
pub fn deleted_files(
    conn: &Connection,
    after: u64,
    limit: u32,
) -> rusqlite::Result<Vec<(u64, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT deleted_seq, id FROM files WHERE deleted_seq > ?1
         ORDER BY deleted_seq, id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![after as i64, limit], |r| {
        Ok((r.get::<_, i64>(0)?.max(0) as u64, r.get(1)?))
    })?;
    rows.collect()
}

/// Files deleted at a position after `(after_seq, after_id)` in
/// `(deleted_seq, id)` order, at most `limit`: as [`deleted_files`], but a
/// keyset that never stalls when more than `limit` files share one
/// `deleted_seq` (an erasure marks every covered message's files at its
/// own stream seq).
pub fn deleted_files_after(
    conn: &Connection,
    after_seq: u64,
    after_id: &str,
    limit: u32,
) -> rusqlite::Result<Vec<(u64, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT deleted_seq, id FROM files
         WHERE deleted_seq IS NOT NULL AND (deleted_seq, id) > (?1, ?2)
         ORDER BY deleted_seq, id LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![after_seq as i64, after_id, limit], |r| {
        Ok((r.get::<_, i64>(0)?.max(0) as u64, r.get(1)?))
    })?;
    rows.collect()
}

/// Who a message mentions (resolved when it was posted or last edited).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct MentionsRow {
    pub user_ids: Vec<String>,
    pub channel: bool,
    pub here: bool,
}

#[derive(Debug, Clone)]
pub struct EventRow {
    pub seq: i64,
    pub kind: String,
    pub ts_ms: i64,
    pub actor_id: String,
    pub body: serde_json::Value,
}

const MSG_COLS: &str = "id, channel_id, seq, ts_ms, sender_id, text, thread_root_id, reply_count,
     edited_ms, deleted, client_msg_id, attachments, also_in_channel, latest_reply_ms,
     reply_user_ids, mentions, pinned_seq IS NOT NULL, erased <> 0";

fn message_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MessageRow> {
    let attachments: String = r.get(11)?;
    let repliers: String = r.get(14)?;
    let mentions: String = r.get(15)?;
    Ok(MessageRow {
        id: r.get(0)?,
        channel_id: r.get(1)?,
        seq: r.get(2)?,
        ts_ms: r.get(3)?,
        sender_id: r.get(4)?,
        text: r.get(5)?,
        thread_root_id: r.get(6)?,
        reply_count: r.get(7)?,
        edited_ms: r.get(8)?,
        deleted: r.get(9)?,
        client_msg_id: r.get(10)?,
        attachments: serde_json::from_str(&attachments).unwrap_or_default(),
        reactions: Vec::new(),
        also_in_channel: r.get(12)?,
        latest_reply_ms: r.get(13)?,
        reply_user_ids: serde_json::from_str(&repliers).unwrap_or_default(),
        mentions: serde_json::from_str(&mentions).unwrap_or_default(),
        pinned: r.get(16)?,
        erased: r.get(17)?,
    })
}

/// Fills in the reactions of `rows` with one query for the whole page
/// (the ids go in as one JSON array): per message, one entry per emoji in
/// emoji order, its user ids in order.
fn with_reactions(
    conn: &Connection,
    mut rows: Vec<MessageRow>,
) -> rusqlite::Result<Vec<MessageRow>> {
    if rows.is_empty() {
        return Ok(rows);
    }
    let index: HashMap<&str, usize> = rows
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id.as_str(), i))
        .collect();
    let ids = serde_json::Value::from(index.keys().copied().collect::<Vec<_>>()).to_string();
    let mut found: Vec<(usize, String, String)> = Vec::new();
    {
        // One query per page. First-reacted order: per message, emoji by
        // their earliest current reaction, the users of each in the order
        // they reacted.
        let mut stmt = conn.prepare_cached(
            "SELECT message_id, emoji, user_id,
                    MIN(seq) OVER (PARTITION BY message_id, emoji) AS first
             FROM reactions
             WHERE message_id IN (SELECT value FROM json_each(?1))
             ORDER BY message_id, first, seq",
        )?;
        let mut q = stmt.query([&ids])?;
        while let Some(r) = q.next()? {
            let id: String = r.get(0)?;
            if let Some(&i) = index.get(id.as_str()) {
                found.push((i, r.get(1)?, r.get(2)?));
            }
        }
    }
    for (i, emoji, user) in found {
        let reactions = &mut rows[i].reactions;
        match reactions.last_mut() {
            Some(last) if last.emoji == emoji => {
                last.user_ids.push(user);
                last.count += 1;
            }
            _ => reactions.push(Reaction {
                emoji,
                count: 1,
                user_ids: vec![user],
            }),
        }
    }
    Ok(rows)
}

/// Which page of a channel's top-level messages.
#[derive(Debug, Clone, Copy)]
pub enum Page {
    /// Newest first, strictly before `seq` (the latest page when `None`).
    Before(Option<u64>),
    /// Oldest first, strictly after `seq`.
    After(u64),
}

/// A page of a channel's messages (thread replies excluded, unless also
/// sent to the channel), and whether there are more in the same direction.
pub fn messages(
    conn: &Connection,
    channel: &str,
    page: Page,
    limit: u32,
) -> rusqlite::Result<(Vec<MessageRow>, bool)> {
    let (sql, bound) = match page {
        Page::Before(before) => (
            format!(
                "SELECT {MSG_COLS} FROM messages
                 WHERE channel_id = ?1 AND seq < ?2
                   AND (thread_root_id IS NULL OR also_in_channel = 1)
                 ORDER BY seq DESC LIMIT ?3"
            ),
            before.map_or(i64::MAX, |s| s as i64),
        ),
        Page::After(after) => (
            format!(
                "SELECT {MSG_COLS} FROM messages
                 WHERE channel_id = ?1 AND seq > ?2
                   AND (thread_root_id IS NULL OR also_in_channel = 1)
                 ORDER BY seq ASC LIMIT ?3"
            ),
            after as i64,
        ),
    };
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows: Vec<MessageRow> = stmt
        .query_map(params![channel, bound, i64::from(limit) + 1], message_row)?
        .collect::<Result<_, _>>()?;
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    Ok((with_reactions(conn, rows)?, has_more))
}

pub fn message(conn: &Connection, id: &str) -> rusqlite::Result<Option<MessageRow>> {
    let row = conn
        .prepare_cached(&format!("SELECT {MSG_COLS} FROM messages WHERE id = ?1"))?
        .query_row([id], message_row)
        .optional()?;
    Ok(with_reactions(conn, row.into_iter().collect())?.pop())
}

/// The message a sender posted into a channel with a client idempotency key.
pub fn message_by_client_id(
    conn: &Connection,
    channel: &str,
    sender: &str,
    client_msg_id: &str,
) -> rusqlite::Result<Option<MessageRow>> {
    let row = conn
        .prepare_cached(&format!(
            "SELECT {MSG_COLS} FROM messages
                 WHERE channel_id = ?1 AND sender_id = ?2 AND client_msg_id = ?3"
        ))?
        .query_row([channel, sender, client_msg_id], message_row)
        .optional()?;
    Ok(with_reactions(conn, row.into_iter().collect())?.pop())
}

/// A page of a thread's replies after `after_seq`, oldest first, and
/// whether there are more.
pub fn replies(
    conn: &Connection,
    root: &str,
    after_seq: u64,
    limit: u32,
) -> rusqlite::Result<(Vec<MessageRow>, bool)> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MSG_COLS} FROM messages
         WHERE thread_root_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
    ))?;
    let mut rows: Vec<MessageRow> = stmt
        .query_map(
            params![root, after_seq as i64, i64::from(limit) + 1],
            message_row,
        )?
        .collect::<Result<_, _>>()?;
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    Ok((with_reactions(conn, rows)?, has_more))
}

/// A channel's pinned messages, the most recently pinned first.
pub fn pinned(conn: &Connection, channel: &str) -> rusqlite::Result<Vec<MessageRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MSG_COLS} FROM messages
         WHERE channel_id = ?1 AND pinned_seq IS NOT NULL ORDER BY pinned_seq DESC"
    ))?;
    let rows: Vec<MessageRow> = stmt
        .query_map([channel], message_row)?
        .collect::<Result<_, _>>()?;
    with_reactions(conn, rows)
}

/// How many messages of a channel are pinned.
pub fn pin_count(conn: &Connection, channel: &str) -> rusqlite::Result<usize> {
    let n: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM messages WHERE channel_id = ?1 AND pinned_seq IS NOT NULL",
        )?
        .query_row([channel], |r| r.get(0))?;
    Ok(n as usize)
}

/// For a reaction decision: whether `user` reacted to `message` with
/// `emoji`, whether anyone did, and how many distinct emoji it carries.
pub fn reaction_facts(
    conn: &Connection,
    message: &str,
    user: &str,
    emoji: &str,
) -> rusqlite::Result<(bool, bool, usize)> {
    conn.prepare_cached(
        "SELECT
             EXISTS (SELECT 1 FROM reactions WHERE message_id = ?1 AND emoji = ?3 AND user_id = ?2),
             EXISTS (SELECT 1 FROM reactions WHERE message_id = ?1 AND emoji = ?3),
             (SELECT COUNT(DISTINCT emoji) FROM reactions WHERE message_id = ?1)",
    )?
    .query_row([message, user, emoji], |r| {
        let distinct: i64 = r.get(2)?;
        Ok((r.get(0)?, r.get(1)?, distinct as usize))
    })
}

/// Every event of a channel after `after_seq`, in order, at most `limit`.
pub fn events(
    conn: &Connection,
    channel: &str,
    after_seq: u64,
    limit: u32,
) -> rusqlite::Result<Vec<EventRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, type, ts_ms, actor_id, body FROM events
         WHERE channel_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![channel, after_seq as i64, i64::from(limit)], |r| {
        let body: String = r.get(4)?;
        Ok(EventRow {
            seq: r.get(0)?,
            kind: r.get(1)?,
            ts_ms: r.get(2)?,
            actor_id: r.get(3)?,
            body: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
        })
    })?;
    rows.collect()
}

/// The channel's head `channel_seq` as this model has applied it.
pub fn head_seq(conn: &Connection, channel: &str) -> rusqlite::Result<u64> {
    let seq: Option<i64> = conn
        .prepare_cached("SELECT MAX(seq) FROM events WHERE channel_id = ?1")?
        .query_row([channel], |r| r.get(0))?;
    Ok(seq.unwrap_or(0) as u64)
}

#[cfg(test)]
mod tests;
