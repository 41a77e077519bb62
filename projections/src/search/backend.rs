//! The search read path behind a backend-agnostic trait: index a document,
//! replace or delete it by message id, query with the permission filter,
//! and keep a checkpoint of the log position the index reflects.
//!
//! Invariant: every backend answers a query only with documents of the
//! caller's workspace in the caller's readable channels ([`Scope`]); the
//! permission filter is part of the backend's own query, never applied to
//! its results afterwards. A checkpoint is written only after the
//! documents up to it were acknowledged by the backend.
//!
//! Two implementations: [`Fts5Backend`] (SQLite FTS5, the default; the
//! live gateway folds it with the `Search` projector and reads it through
//! [`Readers`]) and, with the `opensearch` cargo feature,
//! `opensearch::OpenSearchBackend`.

use super::{fts_write, grams, meta_tokens, refresh_meta, Cursor, Facets, Found, Scope};
use crate::Readers;
use futures_util::future::BoxFuture;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::{Arc, Mutex};
use switchboard_core::search::Query;

/// A search document: one live message, as every backend indexes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchDoc {
    /// The stream sequence of the post: a stable, increasing id (the
    /// FTS5 rowid; the tie-break of a result order in OpenSearch).
    pub id: i64,
    pub message_id: String,
    pub workspace_id: String,
    pub channel_id: String,
    pub sender_id: String,
    pub ts_ms: i64,
    /// The thread root, for a reply.
    pub thread_root_id: Option<String>,
    /// A reply, or a root with replies (`is:thread`).
    pub in_thread: bool,
    pub has_file: bool,
    pub has_link: bool,
    pub has_reaction: bool,
    /// User ids the message mentions.
    pub mentions: Vec<String>,
    pub text: String,
    /// Attachment names, one a line.
    pub files: String,
}

/// A change to the index, by message id.
#[derive(Debug, Clone, PartialEq)]
pub enum DocOp {
    /// Index the document, replacing any with its message id (a post, an
    /// edit, a new reaction or reply).
    Upsert(SearchDoc),
    /// Remove the document (a delete); nothing if there is none.
    Delete {
        workspace_id: String,
        message_id: String,
    },
}

/// What a query asks of a backend.
#[derive(Debug, Clone)]
pub struct SearchArgs {
    pub query: Query,
    pub scope: Scope,
    pub cursor: Option<Cursor>,
    /// Now, for a first page (recency is measured from it).
    pub ref_ms: i64,
    pub limit: usize,
}

/// A backend failure.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("search index: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A read of the FTS5 model failed (busy, or broken).
    #[error(transparent)]
    Read(#[from] crate::ReadError),
    /// The backend refused or failed a request (after retries where they
    /// apply).
    #[error("search backend: {0}")]
    Backend(String),
    /// The operation does not apply to this handle (e.g. writing through a
    /// read-only FTS5 handle, which the projector writes).
    #[error("search backend: {0}")]
    Unsupported(&'static str),
}

/// A search backend (see the module docs).
pub trait SearchBackend: Send + Sync {
    /// `fts5` or `opensearch`.
    fn name(&self) -> &'static str;
    /// Applies `ops` in order, then records `through_seq` as the
    /// checkpoint — only once every op was acknowledged.
    fn apply(&self, ops: Vec<DocOp>, through_seq: u64) -> BoxFuture<'_, Result<(), BackendError>>;
    /// The log position the index reflects (0: nothing indexed).
    fn checkpoint(&self) -> BoxFuture<'_, Result<u64, BackendError>>;
    /// One page of results, permission-filtered inside the query.
    fn search(&self, args: SearchArgs) -> BoxFuture<'_, Result<Found, BackendError>>;
    /// Makes everything applied so far visible to searches (FTS5: at
    /// once; OpenSearch: a refresh, otherwise within its 1 s interval).
    fn settle(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async { Ok(()) })
    }
    /// After deletes for an erasure were applied: makes the backend drop
    /// deleted documents from its storage, not only from results
    /// (OpenSearch: a refresh, a force merge expunging deletes and a
    /// flush). FTS5: nothing here (the projector merges its index after
    /// the erasure's batch).
    fn expunge(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async { Ok(()) })
    }
}

/// The FTS5 backend: the `Search` model's file. Searches go through
/// `readers`; writes through `writer`, when this handle has one (the live
/// gateway's does not: the projector folds the file).
#[derive(Clone)]
pub struct Fts5Backend {
    readers: Readers,
    writer: Option<Arc<Mutex<Connection>>>,
}

impl Fts5Backend {
    /// A read-only handle over the projector's file.
    pub fn reader(readers: Readers) -> Fts5Backend {
        Fts5Backend {
            readers,
            writer: None,
        }
    }

    /// A handle that also writes (tests, tools): `conn` must be the model
    /// file `readers` reads, migrated.
    pub fn writable(readers: Readers, conn: Connection) -> Fts5Backend {
        Fts5Backend {
            readers,
            writer: Some(Arc::new(Mutex::new(conn))),
        }
    }
}

/// Applies one op to the FTS5 model in `tx`.
pub fn apply_fts5(tx: &rusqlite::Transaction<'_>, op: &DocOp) -> rusqlite::Result<()> {
    match op {
        DocOp::Delete { message_id, .. } => {
            fts_write(tx, message_id, true)?;
            tx.prepare_cached("DELETE FROM docs WHERE message_id = ?1")?
                .execute([message_id])?;
        }
        DocOp::Upsert(d) => {
            fts_write(tx, &d.message_id, true)?;
            tx.prepare_cached("DELETE FROM docs WHERE message_id = ?1")?
                .execute([&d.message_id])?;
            let meta = meta_tokens(&Facets {
                sender: &d.sender_id,
                channel: &d.channel_id,
                has_link: d.has_link,
                has_file: d.has_file,
                mentions: &d.mentions,
            });
            tx.prepare_cached(
                "INSERT OR REPLACE INTO docs (id, message_id, workspace_id, channel_id,
                     sender_id, ts_ms, seq, thread_root_id, has_replies, has_file, has_link,
                     has_reaction, mentions, text, files, grams, meta)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                     ?16)",
            )?
            .execute(params![
                d.id,
                d.message_id,
                d.workspace_id,
                d.channel_id,
                d.sender_id,
                d.ts_ms,
                d.thread_root_id,
                d.in_thread && d.thread_root_id.is_none(),
                d.has_file,
                d.has_link,
                d.has_reaction,
                json!(d.mentions).to_string(),
                d.text,
                d.files,
                grams(&d.text, &d.files),
                meta,
            ])?;
            refresh_meta(tx, &d.message_id)?;
            fts_write(tx, &d.message_id, false)?;
        }
    }
    Ok(())
}

/// The documents for `(workspace_id, message_id)` pairs as the FTS5 model
/// has them now (absent ones are deleted, or were never posted): what the
/// OpenSearch indexer sends.
pub fn docs_for(conn: &Connection, ids: &[(String, String)]) -> rusqlite::Result<Vec<DocOp>> {
    let mut out = Vec::with_capacity(ids.len());
    let mut stmt = conn.prepare_cached(
        "SELECT id, workspace_id, channel_id, sender_id, ts_ms, thread_root_id,
                thread_root_id IS NOT NULL OR has_replies = 1, has_file, has_link,
                has_reaction, mentions, text, files
         FROM docs WHERE message_id = ?1",
    )?;
    for (workspace_id, message_id) in ids {
        let doc = stmt
            .query_row([message_id], |r| {
                let mentions: String = r.get(10)?;
                Ok(SearchDoc {
                    id: r.get(0)?,
                    message_id: message_id.clone(),
                    workspace_id: r.get(1)?,
                    channel_id: r.get(2)?,
                    sender_id: r.get(3)?,
                    ts_ms: r.get(4)?,
                    thread_root_id: r.get(5)?,
                    in_thread: r.get(6)?,
                    has_file: r.get(7)?,
                    has_link: r.get(8)?,
                    has_reaction: r.get(9)?,
                    mentions: serde_json::from_str(&mentions).unwrap_or_default(),
                    text: r.get(11)?,
                    files: r.get(12)?,
                })
            })
            .optional()?;
        out.push(match doc {
            Some(d) => DocOp::Upsert(d),
            None => DocOp::Delete {
                workspace_id: workspace_id.clone(),
                message_id: message_id.clone(),
            },
        });
    }
    Ok(out)
}

impl SearchBackend for Fts5Backend {
    fn name(&self) -> &'static str {
        "fts5"
    }

    fn apply(&self, ops: Vec<DocOp>, through_seq: u64) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            let Some(writer) = self.writer.clone() else {
                return Err(BackendError::Unsupported(
                    "this FTS5 handle is read-only (the projector writes it)",
                ));
            };
            tokio::task::spawn_blocking(move || -> Result<(), BackendError> {
                let mut conn = writer
                    .lock()
                    .map_err(|_| BackendError::Backend("writer poisoned".into()))?;
                let tx = conn.transaction()?;
                for op in &ops {
                    apply_fts5(&tx, op)?;
                }
                tx.execute(
                    "INSERT INTO checkpoint (projector, seq) VALUES ('search', ?1)
                     ON CONFLICT (projector) DO UPDATE SET seq = excluded.seq",
                    [through_seq as i64],
                )?;
                tx.commit()?;
                Ok(())
            })
            .await
            .map_err(|e| BackendError::Backend(format!("task: {e}")))?
        })
    }

    fn checkpoint(&self) -> BoxFuture<'_, Result<u64, BackendError>> {
        Box::pin(async move {
            self.readers
                .read_page(|c| {
                    c.query_row(
                        "SELECT COALESCE(MAX(seq), 0) FROM checkpoint WHERE projector = 'search'",
                        [],
                        |r| r.get::<_, i64>(0),
                    )
                })
                .await
                .map(|s| s.max(0) as u64)
                .map_err(BackendError::Read)
        })
    }

    fn search(&self, args: SearchArgs) -> BoxFuture<'_, Result<Found, BackendError>> {
        Box::pin(async move {
            self.readers
                .read_page(move |c| {
                    super::search(
                        c,
                        &args.query,
                        &args.scope,
                        args.cursor,
                        args.ref_ms,
                        args.limit,
                    )
                })
                .await
                .map_err(BackendError::Read)
        })
    }
}

#[cfg(test)]
mod suite;
