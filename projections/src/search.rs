//! The search read model: one document per live message (thread replies
//! included), indexed with SQLite FTS5, and the permission-filtered query
//! over it.
//!
//! # Documents
//!
//! `docs` holds one row per message that is not deleted, keyed by the
//! stream sequence of its post (deterministic, so a rebuild yields the
//! same rowids, and increasing, so "the index as of page one" is a rowid
//! bound). Besides the text it keeps what filters need: workspace,
//! channel, sender, time, channel seq, thread root, whether the message
//! has files, a link or a reaction, is part of a thread, and whom it
//! mentions. An edit replaces the text (the old text is no longer in the
//! index); a tombstone deletes the document, its file names and reactions.
//!
//! An erasure (`ContentErased`) deletes the document of every message of
//! its channel it covers, as a tombstone does, and records the message ids
//! in `erased_docs` (keyed by the erasure's stream seq; ids only, not part
//! of the checksum) for the external-backend indexer, which cannot tell
//! from the event which messages it covered. A post whose text arrives
//! erased (`is_erased()`) makes no document and drops the uploads it
//! attaches, what its erasure does to a live one; an erased edit changes
//! nothing. After a batch with an erasure the index is merged (FTS5
//! `optimize`), so no segment still holds an erased term.
//!
//! # The index
//!
//! `fts` is an FTS5 *external-content* table over `docs` (`content=docs`):
//! the index stores only terms and positions, the text lives once, in
//! `docs`, and `snippet()` reads it from there. (A contentless table could
//! not produce snippets, and a regular one would store the text twice.)
//! The fold writes both in step (`index_doc` / `unindex_doc`): FTS5
//! needs a row's *old* values to remove its terms, so they are removed
//! before the `docs` row changes. Four columns:
//! - `text` and `files` (attachment names), tokenized by
//!   `unicode61 remove_diacritics 2` (case and diacritics folded:
//!   `cafe` finds `café`);
//! - `grams`: for text in scripts written without spaces (Chinese,
//!   Japanese, Korean, Thai…) the overlapping character bigrams of
//!   [`switchboard_core::search::segment`], so `東京` finds `東京タワー`.
//!   Empty for other text. (A trigram tokenizer, the other built-in
//!   option, cannot match queries shorter than three characters, and most
//!   Chinese and Japanese words are two.)
//! - `meta`: the filter facets as tokens (`meta_tokens`), so filters are
//!   terms the index intersects rather than rows read and dropped (all
//!   but `is:thread` and `has:reaction`, facts that change after a post
//!   and are read from the row).
//!
//! Prefix indexes of 2, 3 and 4 characters serve `abc*` queries.
//! # Queries
//!
//! [`search`] runs one statement: the FTS5 `MATCH` (every user term
//! quoted as a literal by [`fts_match`], the filters added by
//! [`fts_match_scoped`], passed as a parameter), joined to
//! `docs`, constrained *in the same statement* to the caller's readable
//! channels (a JSON array, `IN (SELECT value FROM json_each(?))`), the
//! workspace, the filters and the snapshot bound, walking matches newest
//! first and stopping at [`CANDIDATES`] readable ones. Those are ranked by
//! BM25-style relevance of their own text (`rank`) blended with recency
//! ([`blend`]), and paged with a cursor.

use crate::runner::Projector;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde_json::json;
use switchboard_core::events::{Body, Envelope};
use switchboard_core::search::{has_link, segment, segment_query, Query, Term, TermKind};
use switchboard_streams::subjects;

pub struct Search;

/// The schema's version: an older file is emptied and refolded.
const SCHEMA_VERSION: i64 = 5;

/// Most matches a query ranks: the newest readable ones (see the README
/// "Search" section for what that means for very common words).
pub const CANDIDATES: usize = 500;

/// Snippet markers as FTS5 writes them: private-use characters the
/// indexed text never contains (the fold replaces them), turned into
/// `<mark>`/`</mark>` by the gateway after HTML-escaping the rest.
pub const MARK_OPEN: char = '\u{E000}';
pub const MARK_CLOSE: char = '\u{E001}';

/// Days for the recency factor to fall halfway from 1 to its floor.
pub const RECENCY_HALF_LIFE_DAYS: f64 = 30.0;

impl Projector for Search {
    const NAME: &'static str = "search";
    /// The content tables and the index's logical content (every term
    /// instance, through `fts5vocab`), which must equal a rebuild's. The
    /// index's own pages depend on batch boundaries (segment merges), so
    /// they are not compared byte for byte.
    const TABLES: &'static [(&'static str, &'static str)] = &[
        ("docs", "id"),
        ("files", "id"),
        ("reactions", "message_id, emoji, user_id"),
        ("fts_terms", "term, doc, col, offset"),
    ];
    const HOLDS_TEXT: bool = true;

    fn migrate(conn: &Connection) -> rusqlite::Result<()> {
        crate::runner::refold_if_older(
            conn,
            Self::NAME,
            SCHEMA_VERSION,
            &[
                "TABLE fts_terms",
                "TABLE fts",
                "TABLE docs",
                "TABLE files",
                "TABLE reactions",
                "TABLE erased_docs",
                "TRIGGER docs_ai",
                "TRIGGER docs_ad",
                "TRIGGER docs_au",
            ],
        )?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS docs (
                 id INTEGER PRIMARY KEY,
                 message_id TEXT NOT NULL UNIQUE,
                 workspace_id TEXT NOT NULL,
                 channel_id TEXT NOT NULL,
                 sender_id TEXT NOT NULL,
                 ts_ms INTEGER NOT NULL,
                 seq INTEGER NOT NULL,
                 thread_root_id TEXT,
                 has_replies INTEGER NOT NULL DEFAULT 0,
                 has_file INTEGER NOT NULL,
                 has_link INTEGER NOT NULL,
                 has_reaction INTEGER NOT NULL DEFAULT 0,
                 mentions TEXT NOT NULL,
                 text TEXT NOT NULL,
                 files TEXT NOT NULL,
                 grams TEXT NOT NULL,
                 meta TEXT NOT NULL
             );
             CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(
                 text, files, grams, meta,
                 content = 'docs', content_rowid = 'id',
                 tokenize = 'unicode61 remove_diacritics 2',
                 prefix = '2 3 4'
             );
             CREATE VIRTUAL TABLE IF NOT EXISTS fts_terms USING fts5vocab(fts, instance);
             -- Uploads, for the names of a post's attachments.
             CREATE TABLE IF NOT EXISTS files (
                 id TEXT PRIMARY KEY,
                 channel_id TEXT NOT NULL,
                 uploader_id TEXT NOT NULL,
                 name TEXT NOT NULL,
                 message_id TEXT
             ) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS files_by_message ON files (message_id)
                 WHERE message_id IS NOT NULL;
             -- The workspace's first document (for the total estimate).
             CREATE INDEX IF NOT EXISTS docs_by_workspace ON docs (workspace_id, id);
             -- An erasure's candidates: by time (a user's erasure filters
             -- them by sender).
             CREATE INDEX IF NOT EXISTS docs_by_channel_ts ON docs (channel_id, ts_ms);
             DROP INDEX IF EXISTS docs_by_sender_ts;
             -- The documents each erasure deleted (for the external indexer).
             CREATE TABLE IF NOT EXISTS erased_docs (
                 stream_seq INTEGER NOT NULL,
                 workspace_id TEXT NOT NULL,
                 message_id TEXT NOT NULL,
                 PRIMARY KEY (stream_seq, message_id)
             ) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS reactions (
                 message_id TEXT NOT NULL,
                 emoji TEXT NOT NULL,
                 user_id TEXT NOT NULL,
                 PRIMARY KEY (message_id, emoji, user_id)
             ) WITHOUT ROWID;",
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
        match body {
            Body::FileUploaded(b) => {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO files (id, channel_id, uploader_id, name)
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![b.file_id, ch, env.actor_id, b.name])?;
            }
            Body::FileExpired(b) => {
                tx.prepare_cached("DELETE FROM files WHERE id = ?1 AND message_id IS NULL")?
                    .execute([&b.file_id])?;
            }
            Body::MessagePosted(b) if b.is_erased() => {
                // Nothing of an erased post is indexed; its uploads go as
                // its erasure takes a live post's, and a reply still puts
                // its root in a thread.
                let ids = json!(b.attachment_ids).to_string();
                tx.prepare_cached(
                    "DELETE FROM files WHERE id IN (SELECT value FROM json_each(?1))
                       AND channel_id = ?2 AND uploader_id = ?3 AND message_id IS NULL",
                )?
                .execute(params![ids, ch, env.actor_id])?;
                if !b.thread_root_id.is_empty() {
                    tx.prepare_cached(
                        "UPDATE docs SET has_replies = 1 WHERE message_id = ?1 AND has_replies = 0",
                    )?
                    .execute([&b.thread_root_id])?;
                }
            }
            Body::MessageEdited(b) if b.is_erased() => {}
            Body::ContentErased(e) => erase(tx, ch, stream_seq, &env.workspace_id, e)?,
            Body::MessagePosted(b) => {
                // The attachments the history model accepts: the sender's
                // own unattached uploads to this channel, in the post's order.
                let ids = json!(b.attachment_ids).to_string();
                let names: Vec<String> = if b.attachment_ids.is_empty() {
                    Vec::new()
                } else {
                    let mut stmt = tx.prepare_cached(
                        "SELECT f.name FROM json_each(?1) j JOIN files f ON f.id = j.value
                         WHERE f.channel_id = ?2 AND f.uploader_id = ?3 AND f.message_id IS NULL
                         ORDER BY j.key",
                    )?;
                    let rows = stmt.query_map(params![ids, ch, env.actor_id], |r| r.get(0))?;
                    rows.collect::<rusqlite::Result<_>>()?
                };
                let text = indexable(&b.text);
                let files = indexable(&names.join("\n"));
                let grams = grams(&text, &files);
                let root = (!b.thread_root_id.is_empty()).then_some(b.thread_root_id.as_str());
                let mentions = b
                    .mentions
                    .as_ref()
                    .map_or_else(Vec::new, |m| m.user_ids.clone());
                let meta = meta_tokens(&Facets {
                    sender: &env.actor_id,
                    channel: ch,
                    has_link: has_link(&b.text),
                    has_file: !names.is_empty(),
                    mentions: &mentions,
                });
                // OR IGNORE: a second post of the same message id (a raced
                // retry) keeps the first, as the history model does.
                let inserted = tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO docs (id, message_id, workspace_id, channel_id,
                             sender_id, ts_ms, seq, thread_root_id, has_file, has_link,
                             mentions, text, files, grams, meta)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,
                             ?15)",
                    )?
                    .execute(params![
                        stream_seq as i64,
                        b.message_id,
                        env.workspace_id,
                        ch,
                        env.actor_id,
                        env.ts_ms,
                        env.channel_seq as i64,
                        root,
                        !names.is_empty(),
                        has_link(&b.text),
                        json!(mentions).to_string(),
                        text,
                        files,
                        grams,
                        meta,
                    ])?;
                if inserted == 1 {
                    tx.prepare_cached(
                        "INSERT INTO fts (rowid, text, files, grams, meta)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![
                        stream_seq as i64,
                        text,
                        files,
                        grams,
                        meta
                    ])?;
                    if !names.is_empty() {
                        tx.prepare_cached(
                            "UPDATE files SET message_id = ?1
                             WHERE id IN (SELECT value FROM json_each(?2))
                               AND channel_id = ?3 AND uploader_id = ?4 AND message_id IS NULL",
                        )?
                        .execute(params![
                            b.message_id,
                            ids,
                            ch,
                            env.actor_id
                        ])?;
                    }
                    if let Some(root) = root {
                        // The root is now part of a thread: a row fact
                        // `is:thread` reads, not an index term, so the
                        // root is not re-indexed (an FTS5 delete flushes
                        // the transaction's pending terms into a segment
                        // of their own: re-indexing each root at its first
                        // reply made most of the fold's cost).
                        tx.prepare_cached(
                            "UPDATE docs SET has_replies = 1
                             WHERE message_id = ?1 AND has_replies = 0",
                        )?
                        .execute([root])?;
                    }
                }
            }
            Body::MessageEdited(b) => {
                let text = indexable(&b.text);
                let mentions = b
                    .mentions
                    .as_ref()
                    .map_or_else(Vec::new, |m| m.user_ids.clone());
                // The grams follow the new text, then the file names, as
                // at a post.
                let grams = grams_of_row(tx, &b.message_id, &text)?;
                unindex_doc(tx, &b.message_id)?;
                tx.prepare_cached(
                    "UPDATE docs SET text = ?2, has_link = ?3, mentions = ?4, grams = ?5
                     WHERE message_id = ?1",
                )?
                .execute(params![
                    b.message_id,
                    text,
                    has_link(&b.text),
                    json!(mentions).to_string(),
                    grams,
                ])?;
                refresh_meta(tx, &b.message_id)?;
                index_doc(tx, &b.message_id)?;
            }
            Body::MessageDeleted(b) => {
                unindex_doc(tx, &b.message_id)?;
                tx.prepare_cached("DELETE FROM docs WHERE message_id = ?1")?
                    .execute([&b.message_id])?;
                tx.prepare_cached("DELETE FROM files WHERE message_id = ?1")?
                    .execute([&b.message_id])?;
                tx.prepare_cached("DELETE FROM reactions WHERE message_id = ?1")?
                    .execute([&b.message_id])?;
            }
            Body::ReactionAdded(b) => {
                let added = tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO reactions (message_id, emoji, user_id)
                         SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM docs WHERE message_id = ?1)",
                    )?
                    .execute(params![b.message_id, b.emoji, env.actor_id])?;
                if added == 1 {
                    tx.prepare_cached(
                        "UPDATE docs SET has_reaction = 1 WHERE message_id = ?1 AND has_reaction = 0",
                    )?
                    .execute([&b.message_id])?;
                }
            }
            Body::ReactionRemoved(b) => {
                let removed = tx
                    .prepare_cached(
                        "DELETE FROM reactions WHERE message_id = ?1 AND emoji = ?2 AND user_id = ?3",
                    )?
                    .execute(params![b.message_id, b.emoji, env.actor_id])?;
                if removed == 1 {
                    tx.prepare_cached(
                        "UPDATE docs SET has_reaction =
                             EXISTS (SELECT 1 FROM reactions WHERE message_id = ?1)
                         WHERE message_id = ?1",
                    )?
                    .execute([&b.message_id])?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// FTS5 removes a document's terms by adding delete entries to a new
    /// segment; the old segments keep the terms until merged. `optimize`
    /// merges every segment into one without them (with `secure_delete`
    /// the pages it frees are zeroed). It rewrites the whole index: an
    /// erasure costs in proportion to the index once per batch.
    fn after_erasure(conn: &Connection) -> rusqlite::Result<()> {
        conn.execute("INSERT INTO fts (fts) VALUES ('optimize')", [])?;
        Ok(())
    }
}

/// A `ContentErased` on channel `ch`: deletes the documents (with their
/// file names and reactions) of the messages it covers, found through the
/// channel's documents by time, and records them
/// in `erased_docs` under `stream_seq`.
fn erase(
    tx: &Transaction<'_>,
    ch: &str,
    stream_seq: u64,
    ws: &str,
    e: &switchboard_core::events::ContentErased,
) -> rusqlite::Result<()> {
    let covered = crate::runner::covered_by(
        tx,
        "SELECT message_id, seq, ts_ms, sender_id FROM docs INDEXED BY docs_by_channel_ts WHERE channel_id = ?1 AND ts_ms < ?2",
        ch,
        e,
    )?;
    for id in covered {
        unindex_doc(tx, &id)?;
        tx.prepare_cached("DELETE FROM docs WHERE message_id = ?1")?
            .execute([&id])?;
        tx.prepare_cached("DELETE FROM files WHERE message_id = ?1")?
            .execute([&id])?;
        tx.prepare_cached("DELETE FROM reactions WHERE message_id = ?1")?
            .execute([&id])?;
        tx.prepare_cached(
            "INSERT OR IGNORE INTO erased_docs (stream_seq, workspace_id, message_id)
             VALUES (?1, ?2, ?3)",
        )?
        .execute(params![stream_seq as i64, ws, id])?;
    }
    Ok(())
}

/// The messages whose documents the erasure at `stream_seq` deleted:
/// `(workspace_id, message_id)`.
pub fn erased_docs(conn: &Connection, stream_seq: u64) -> rusqlite::Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT workspace_id, message_id FROM erased_docs WHERE stream_seq = ?1
         ORDER BY message_id",
    )?;
    let rows = stmt.query_map([stream_seq as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// Adds a document's current text to the index (nothing if there is no
/// such document). The index is written by the fold's own statements, not
/// by triggers on `docs`: through triggers the same inserts took about
/// twice as long (measured; FTS5 flushing its pending terms at each
/// trigger's savepoint is the likely cause).
fn index_doc(tx: &Transaction<'_>, message_id: &str) -> rusqlite::Result<()> {
    fts_write(tx, message_id, false)
}

/// Writes one `docs` row's values into the index (`delete`: removes
/// them), as a plain `VALUES` insert.
fn fts_write(tx: &Transaction<'_>, message_id: &str, delete: bool) -> rusqlite::Result<()> {
    type Row = (i64, String, String, String, String);
    let row: Option<Row> = tx
        .prepare_cached("SELECT id, text, files, grams, meta FROM docs WHERE message_id = ?1")?
        .query_row([message_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()?;
    let Some((id, text, files, grams, meta)) = row else {
        return Ok(());
    };
    if delete {
        tx.prepare_cached(
            "INSERT INTO fts (fts, rowid, text, files, grams, meta)
             VALUES ('delete', ?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![id, text, files, grams, meta])?;
    } else {
        tx.prepare_cached(
            "INSERT INTO fts (rowid, text, files, grams, meta) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![id, text, files, grams, meta])?;
    }
    Ok(())
}

/// What filters can ask of a document, as index tokens.
struct Facets<'a> {
    sender: &'a str,
    channel: &'a str,
    has_link: bool,
    has_file: bool,
    mentions: &'a [String],
}

/// An id as one token the tokenizer keeps whole (ids may hold `-` and
/// `_`, which separate tokens): a two-letter kind and the id's bytes in hex.
fn id_token(kind: &str, id: &str) -> String {
    use std::fmt::Write as _;
    let mut t = String::with_capacity(kind.len() + id.len() * 2);
    t.push_str(kind);
    for b in id.bytes() {
        let _ = write!(t, "{b:02x}");
    }
    t
}

/// The `meta` column: the document's filterable facts as tokens, so the
/// `from:`, `in:`, `mentions:`, `has:file` and `has:link` filters are
/// terms the index intersects with the words instead of rows it would read
/// and drop. `is:thread` is not among them: a root joins a thread at its
/// first reply, and changing an indexed term means re-indexing the whole
/// document; the filter reads the row (`thread_root_id`, `has_replies`)
/// of the word matches instead, as `has:reaction` does.
fn meta_tokens(f: &Facets<'_>) -> String {
    let mut t = vec![id_token("zs", f.sender), id_token("zc", f.channel)];
    if f.has_link {
        t.push("zlink".into());
    }
    if f.has_file {
        t.push("zfile".into());
    }
    t.extend(f.mentions.iter().map(|m| id_token("zm", m)));
    t.join(" ")
}

/// Recomputes a document's `meta` from its row (before it is re-indexed).
fn refresh_meta(tx: &Transaction<'_>, message_id: &str) -> rusqlite::Result<()> {
    type Row = (String, String, bool, bool, String);
    let row: Option<Row> = tx
        .prepare_cached(
            "SELECT sender_id, channel_id, has_link, has_file, mentions
             FROM docs WHERE message_id = ?1",
        )?
        .query_row([message_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()?;
    let Some((sender, channel, has_link, has_file, mentions)) = row else {
        return Ok(());
    };
    let mentions: Vec<String> = serde_json::from_str(&mentions).unwrap_or_default();
    let meta = meta_tokens(&Facets {
        sender: &sender,
        channel: &channel,
        has_link,
        has_file,
        mentions: &mentions,
    });
    tx.prepare_cached("UPDATE docs SET meta = ?2 WHERE message_id = ?1")?
        .execute(params![message_id, meta])?;
    Ok(())
}

/// Removes a document's terms from the index, given the values it was
/// indexed with (an external-content table needs them); call before
/// changing or deleting the `docs` row.
fn unindex_doc(tx: &Transaction<'_>, message_id: &str) -> rusqlite::Result<()> {
    fts_write(tx, message_id, true)
}

/// Text as indexed: the snippet markers cannot occur in it, so a marker
/// in a snippet is always one FTS5 wrote.
fn indexable(text: &str) -> String {
    if text.contains([MARK_OPEN, MARK_CLOSE]) {
        text.replace([MARK_OPEN, MARK_CLOSE], "\u{FFFD}")
    } else {
        text.to_string()
    }
}

/// The `grams` column of a document: the bigrams of its text, then of its
/// file names.
fn grams(text: &str, files: &str) -> String {
    let (t, f) = (segment(text), segment(files));
    match (t.is_empty(), f.is_empty()) {
        (_, true) => t,
        (true, false) => f,
        (false, false) => format!("{t} {f}"),
    }
}

fn grams_of_row(tx: &Transaction<'_>, message_id: &str, text: &str) -> rusqlite::Result<String> {
    let files: Option<String> = tx
        .prepare_cached("SELECT files FROM docs WHERE message_id = ?1")?
        .query_row([message_id], |r| r.get(0))
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    Ok(grams(text, files.as_deref().unwrap_or("")))
}

// ----- queries -----

/// An FTS5 string literal: the text in double quotes, inner quotes
/// doubled. Inside one, nothing is syntax (`NEAR(`, `^`, `:`, `*`,
/// `AND`/`OR`/`NOT` are text for the tokenizer).
fn literal(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// One term as an FTS5 expression: words, prefixes and phrases against the
/// `text` and `files` columns; text of unspaced scripts against `grams`.
fn term_expr(t: &Term) -> String {
    if t.is_unspaced() {
        let (grams, prefix) = segment_query(&t.text);
        let star = if prefix || t.kind == TermKind::Prefix {
            " *"
        } else {
            ""
        };
        return format!("grams : {}{star}", literal(&grams));
    }
    let star = if t.kind == TermKind::Prefix { " *" } else { "" };
    format!("{{text files}} : {}{star}", literal(&t.text))
}

/// The FTS5 `MATCH` expression of a parsed query: every term quoted as a
/// literal, all terms required, each exclusion `NOT`-ed. Only this
/// function writes FTS5 syntax; it is passed as a bound parameter.
pub fn fts_match(q: &Query) -> String {
    let all: Vec<String> = q.terms.iter().map(term_expr).collect();
    let mut expr = format!("({})", all.join(" AND "));
    for t in &q.excluded {
        expr.push_str(&format!(" NOT ({})", term_expr(t)));
    }
    expr
}

/// [`fts_match`] narrowed by the resolved filters of `scope`, as `meta`
/// terms the index intersects (see `meta_tokens`). The tokens are hex
/// and fixed words, quoted all the same.
pub fn fts_match_scoped(q: &Query, scope: &Scope) -> String {
    let mut expr = format!("({})", fts_match(q));
    let any = |kind: &str, ids: &[String]| {
        let alts: Vec<String> = ids.iter().map(|id| literal(&id_token(kind, id))).collect();
        format!(" AND (meta : ({}))", alts.join(" OR "))
    };
    for (kind, ids) in [
        ("zc", &scope.channels),
        ("zs", &scope.senders),
        ("zm", &scope.mentions),
    ] {
        match ids {
            Some(ids) if !ids.is_empty() => expr.push_str(&any(kind, ids)),
            _ => {}
        }
    }
    for (on, token) in [(scope.has_link, "zlink"), (scope.has_file, "zfile")] {
        if on {
            expr.push_str(&format!(" AND (meta : {})", literal(token)));
        }
    }
    expr
}

/// What a query may see and which documents it asks for, resolved by the
/// caller (channel names, handles, dates) against the ACL model.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub workspace_id: String,
    /// The channels the caller may read now; nothing outside is returned.
    pub readable: Vec<String>,
    /// `in:` filters resolved to channel ids (`None`: any readable one).
    pub channels: Option<Vec<String>>,
    /// `from:` resolved to user ids.
    pub senders: Option<Vec<String>>,
    /// `mentions:` resolved to user ids.
    pub mentions: Option<Vec<String>>,
    /// `[from, until)` epoch milliseconds.
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub has_file: bool,
    pub has_link: bool,
    pub has_reaction: bool,
    pub is_thread: bool,
}

impl Scope {
    /// Adds the `has:` and `is:` flags of parsed filters.
    pub fn with_flags(mut self, f: &switchboard_core::search::Filters) -> Scope {
        self.has_file |= f.has_file;
        self.has_link |= f.has_link;
        self.has_reaction |= f.has_reaction;
        self.is_thread |= f.is_thread;
        self
    }
}

/// Where a result page continues: the snapshot the first page saw (the
/// highest document rowid then, and the time recency is measured from)
/// and the last result handed out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cursor {
    pub snapshot: i64,
    pub ref_ms: i64,
    pub score: f64,
    pub rowid: i64,
}

impl Cursor {
    /// The opaque text form (`v1.` and four fields).
    pub fn encode(&self) -> String {
        format!(
            "v1.{}.{}.{:x}.{}",
            self.snapshot,
            self.ref_ms,
            self.score.to_bits(),
            self.rowid
        )
    }

    pub fn decode(s: &str) -> Option<Cursor> {
        let mut parts = s.strip_prefix("v1.")?.split('.');
        let snapshot = parts.next()?.parse().ok()?;
        let ref_ms = parts.next()?.parse().ok()?;
        let score = f64::from_bits(u64::from_str_radix(parts.next()?, 16).ok()?);
        let rowid = parts.next()?.parse().ok()?;
        if parts.next().is_some() || !score.is_finite() {
            return None;
        }
        Some(Cursor {
            snapshot,
            ref_ms,
            score,
            rowid,
        })
    }
}

/// One result: the message, where it was in the index, its snippet (with
/// [`MARK_OPEN`]/[`MARK_CLOSE`] around matches) and its blended score.
#[derive(Debug, Clone)]
pub struct Hit {
    pub message_id: String,
    pub rowid: i64,
    pub score: f64,
    pub snippet: String,
}

/// A page of results.
#[derive(Debug, Clone)]
pub struct Found {
    pub hits: Vec<Hit>,
    pub next: Option<Cursor>,
    /// Exact when fewer than [`CANDIDATES`] matched, else extrapolated.
    pub total_estimate: u64,
}

/// The blended score: relevance (`rank::relevance`, higher is better)
/// times a recency factor from 1 (now) falling towards 0.5
/// (`0.5 + 0.5 · 2^(−age_days / 30)`).
pub fn blend(relevance: f64, ts_ms: i64, ref_ms: i64) -> f64 {
    let age_days = ((ref_ms - ts_ms).max(0) as f64) / 86_400_000.0;
    let recency = 0.5 + 0.5 * (-age_days / RECENCY_HALF_LIFE_DAYS).exp2();
    relevance * recency
}

/// The highest document rowid now (a first page's snapshot).
pub fn snapshot(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT COALESCE(MAX(id), 0) FROM docs", [], |r| r.get(0))
}

/// One page of results for `query` within `scope`, continuing `cursor`
/// (or starting a new snapshot at `ref_ms`).
pub fn search(
    conn: &Connection,
    query: &Query,
    scope: &Scope,
    cursor: Option<Cursor>,
    ref_ms: i64,
    limit: usize,
) -> rusqlite::Result<Found> {
    let (snap, ref_ms) = match cursor {
        Some(c) => (c.snapshot, c.ref_ms),
        None => (snapshot(conn)?, ref_ms),
    };
    let fts = fts_match_scoped(query, scope);
    let opt_json = |v: &Option<Vec<String>>| v.as_ref().map(|v| json!(v).to_string());
    // CROSS JOIN keeps the FTS table outermost: matches are walked newest
    // first (rowid order) and every filter, the permission one included,
    // applies before the LIMIT, inside this one statement.
    let mut stmt = conn.prepare_cached(
        "SELECT d.id, d.message_id, d.ts_ms, d.text, d.files
         FROM fts CROSS JOIN docs d ON d.id = fts.rowid
         WHERE fts MATCH ?1
           AND fts.rowid <= ?2
           AND d.workspace_id = ?3
           AND d.channel_id IN (SELECT value FROM json_each(?4))
           AND (?5 IS NULL OR d.channel_id IN (SELECT value FROM json_each(?5)))
           AND (?6 IS NULL OR d.sender_id IN (SELECT value FROM json_each(?6)))
           AND (?7 IS NULL OR EXISTS (SELECT 1 FROM json_each(d.mentions) m
                                      WHERE m.value IN (SELECT value FROM json_each(?7))))
           AND (?8 IS NULL OR d.ts_ms >= ?8)
           AND (?9 IS NULL OR d.ts_ms < ?9)
           AND (?10 = 0 OR d.has_file = 1)
           AND (?11 = 0 OR d.has_link = 1)
           AND (?12 = 0 OR d.has_reaction = 1)
           AND (?13 = 0 OR d.thread_root_id IS NOT NULL OR d.has_replies = 1)
         ORDER BY fts.rowid DESC
         LIMIT ?14",
    )?;
    let rows = stmt.query_map(
        params![
            fts,
            snap,
            scope.workspace_id,
            json!(scope.readable).to_string(),
            opt_json(&scope.channels),
            opt_json(&scope.senders),
            opt_json(&scope.mentions),
            scope.since_ms,
            scope.until_ms,
            scope.has_file,
            scope.has_link,
            scope.has_reaction,
            scope.is_thread,
            CANDIDATES as i64,
        ],
        |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        },
    )?;
    let found: Vec<(i64, String, i64, String, String)> = rows.collect::<rusqlite::Result<_>>()?;
    let docs: Vec<rank::Doc<'_>> = found
        .iter()
        .map(|f| rank::Doc {
            text: &f.3,
            files: &f.4,
        })
        .collect();
    let relevance = rank::relevance(query, &docs);
    let mut ranked: Vec<(i64, String, f64)> = found
        .iter()
        .zip(relevance)
        .map(|(f, rel)| (f.0, f.1.clone(), blend(rel, f.2, ref_ms)))
        .collect();
    let total_estimate = match ranked.iter().map(|r| r.0).min() {
        Some(oldest) if ranked.len() >= CANDIDATES => {
            // Readable matches per rowid among the newest, extrapolated over
            // the rowids since this workspace's first document (not over
            // the whole file: other workspaces' history must not show).
            let first: i64 = conn
                .prepare_cached("SELECT MIN(id) FROM docs WHERE workspace_id = ?1")?
                .query_row([&scope.workspace_id], |r| r.get::<_, Option<i64>>(0))?
                .unwrap_or(oldest)
                .min(oldest);
            let span = (snap - oldest + 1).max(1) as f64;
            let whole = (snap - first + 1).max(1) as f64;
            ((ranked.len() as f64) * whole / span).round() as u64
        }
        _ => ranked.len() as u64,
    };
    ranked.sort_by(|a, b| b.2.total_cmp(&a.2).then(b.0.cmp(&a.0)));
    let start = match cursor {
        None => 0,
        // After the cursor's row where it still is (its score may have
        // moved with the corpus statistics; the order moves less), else
        // after where its (score, rowid) would sort.
        Some(c) => match ranked.iter().position(|r| r.0 == c.rowid) {
            Some(i) => i + 1,
            None => ranked
                .iter()
                .position(|r| r.2 < c.score || (r.2 == c.score && r.0 < c.rowid))
                .unwrap_or(ranked.len()),
        },
    };
    let page: Vec<&(i64, String, f64)> = ranked.iter().skip(start).take(limit).collect();
    let next = (start + page.len() < ranked.len())
        .then(|| page.last())
        .flatten()
        .map(|last| Cursor {
            snapshot: snap,
            ref_ms,
            score: last.2,
            rowid: last.0,
        });
    let unspaced = query.terms.iter().any(Term::is_unspaced);
    // Snippets from the words alone: the filters' `meta` terms would make
    // FTS5 pick that column.
    let words = fts_match(query);
    let mut hits = Vec::with_capacity(page.len());
    for (rowid, message_id, score) in page {
        let snippet = if unspaced {
            text_snippet(conn, *rowid, query)?
        } else {
            conn.prepare_cached(
                "SELECT snippet(fts, -1, char(57344), char(57345), '…', 24)
                 FROM fts WHERE fts MATCH ?1 AND rowid = ?2",
            )?
            .query_row(params![words, rowid], |r| r.get::<_, Option<String>>(0))
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })?
            .unwrap_or_default()
        };
        hits.push(Hit {
            message_id: message_id.clone(),
            rowid: *rowid,
            score: *score,
            snippet,
        });
    }
    Ok(Found {
        hits,
        next,
        total_estimate,
    })
}

/// Characters of context around the first match in [`text_snippet`].
const SNIPPET_CONTEXT: usize = 40;

/// A snippet for queries with unspaced-script terms (their matches are in
/// the bigram column, which is not readable text): the message text with
/// every literal occurrence of a term marked, cut around the first one.
fn text_snippet(conn: &Connection, rowid: i64, query: &Query) -> rusqlite::Result<String> {
    let text: String = conn
        .prepare_cached("SELECT text FROM docs WHERE id = ?1")?
        .query_row([rowid], |r| r.get(0))?;
    let chars: Vec<char> = text.chars().collect();
    let lower: Vec<char> = chars
        .iter()
        .map(|c| c.to_lowercase().next().unwrap_or(*c))
        .collect();
    let mut marked = vec![false; chars.len()];
    for t in &query.terms {
        let needle: Vec<char> = t.text.chars().flat_map(char::to_lowercase).collect();
        if needle.is_empty() || needle.len() > lower.len() {
            continue;
        }
        for i in 0..=(lower.len() - needle.len()) {
            if lower[i..i + needle.len()] == needle[..] {
                marked[i..i + needle.len()]
                    .iter_mut()
                    .for_each(|m| *m = true);
            }
        }
    }
    let first = marked.iter().position(|m| *m).unwrap_or(0);
    let from = first.saturating_sub(SNIPPET_CONTEXT);
    let to = (first + SNIPPET_CONTEXT * 2).min(chars.len());
    let mut out = String::new();
    if from > 0 {
        out.push('…');
    }
    let mut open = false;
    for i in from..to {
        if marked[i] != open {
            out.push(if marked[i] { MARK_OPEN } else { MARK_CLOSE });
            open = marked[i];
        }
        out.push(chars[i]);
    }
    if open {
        out.push(MARK_CLOSE);
    }
    if to < chars.len() {
        out.push('…');
    }
    Ok(out)
}

pub mod backend;
pub mod indexer;
pub mod opensearch;
mod rank;

#[cfg(test)]
mod tests;
