//! Feeding an external search backend (OpenSearch) from the log.
//!
//! The local `Search` model stays the document source: it folds posts,
//! attachments, reactions, threads, edits and deletes into documents (one
//! fold, one set of rules). The indexer reads the log from the backend's
//! own checkpoint, collects the messages each batch of events touches,
//! waits until the local model has applied the batch, reads those
//! messages' documents from it (a message it no longer has becomes a
//! delete) and hands them to the backend with the batch's last sequence
//! as the new checkpoint.
//!
//! Invariant: the backend's checkpoint never passes what it acknowledged
//! (`SearchBackend::apply` writes it after the bulk requests succeed); on
//! any failure the indexer pauses and resumes from that checkpoint.
//! Re-sending a document is harmless (it replaces itself by id), so a
//! crash between a bulk request and its checkpoint costs a resend, not a
//! gap. Backpressure: the log is read one bounded batch at a time, the
//! next only once the backend acknowledged the previous one.
//!
//! An erasure (`ContentErased`) names no messages: the local model records
//! which documents it deleted (`erased_docs`), and the indexer sends those
//! as deletes, then asks the backend to expunge deleted documents from
//! its storage ([`SearchBackend::expunge`]).

use super::backend::{docs_for, BackendError, DocOp, SearchBackend};
use crate::{Progress, Readers};
use futures_util::StreamExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::events::{Body, Envelope};
use switchboard_streams::{subjects, Log, LogEvent};
use tokio_util::sync::CancellationToken;

/// Most events per batch.
pub const BATCH: usize = 500;
/// How long a batch waits for more events once it has one.
const LINGER: Duration = Duration::from_millis(100);
/// Pause after a failure before resuming from the checkpoint.
const PAUSE: Duration = Duration::from_secs(2);

/// The `(workspace, message)` pairs whose search document an event may
/// change: the message posted, edited, deleted or reacted to, and the
/// root of a reply (it is now in a thread).
pub fn touched(subject: &str, env: &Envelope) -> Vec<(String, String)> {
    if !subjects::is_channel(subject) {
        return Vec::new();
    }
    let ws = env.workspace_id.clone();
    let one = |id: &str| vec![(ws.clone(), id.to_string())];
    match &env.body {
        Some(Body::MessagePosted(b)) => {
            let mut v = one(&b.message_id);
            if !b.thread_root_id.is_empty() {
                v.push((ws.clone(), b.thread_root_id.clone()));
            }
            v
        }
        Some(Body::MessageEdited(b)) => one(&b.message_id),
        Some(Body::MessageDeleted(b)) => one(&b.message_id),
        Some(Body::ReactionAdded(b)) => one(&b.message_id),
        Some(Body::ReactionRemoved(b)) => one(&b.message_id),
        _ => Vec::new(),
    }
}

/// The stream seqs of the erasures (`ContentErased` on a channel subject)
/// among `events`.
pub fn erasures_in(events: &[LogEvent]) -> Vec<u64> {
    events
        .iter()
        .filter(|ev| subjects::is_channel(&ev.subject))
        .filter(|ev| {
            ev.envelope
                .as_ref()
                .is_some_and(|e| matches!(e.body, Some(Body::ContentErased(_))))
        })
        .map(|ev| ev.stream_seq)
        .collect()
}

/// The distinct pairs `events` touch, in first-touch order.
pub fn touched_by(events: &[LogEvent]) -> Vec<(String, String)> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for ev in events {
        let Some(env) = &ev.envelope else { continue };
        for pair in touched(&ev.subject, env) {
            if seen.insert(pair.clone()) {
                out.push(pair);
            }
        }
    }
    out
}

/// Sends one batch: waits for the local model to reach `last`, reads the
/// documents, applies them with checkpoint `last`.
async fn send_batch(
    backend: &dyn SearchBackend,
    local: &Readers,
    local_progress: &Progress,
    events: &[LogEvent],
    cancel: &CancellationToken,
) -> Result<u64, BackendError> {
    let last = events.last().map_or(0, |e| e.stream_seq);
    while !local_progress.wait_for(last, Duration::from_secs(5)).await {
        if cancel.is_cancelled() {
            return Err(BackendError::Backend("stopping".into()));
        }
        tracing::debug!(last, "search indexer waiting for the local search model");
    }
    let (ops, erased) = ops_for(local, events).await?;
    backend.apply(ops, last).await?;
    if erased {
        backend.expunge().await?;
    }
    Ok(last)
}

/// What a batch of `events` sends to the backend, read from the local
/// model once it has applied them: the current documents of the messages
/// they touch (deletes for the gone ones), then deletes for the documents
/// their erasures removed; and whether there were any of the latter (the
/// backend then expunges).
pub async fn ops_for(
    local: &Readers,
    events: &[LogEvent],
) -> Result<(Vec<DocOp>, bool), BackendError> {
    let ids = touched_by(events);
    let erasures = erasures_in(events);
    if ids.is_empty() && erasures.is_empty() {
        return Ok((Vec::new(), false));
    }
    local
        .read_page(move |c| {
            let mut ops = docs_for(c, &ids)?;
            let mut erased = false;
            for seq in erasures {
                for (workspace_id, message_id) in super::erased_docs(c, seq)? {
                    erased = true;
                    ops.push(DocOp::Delete {
                        workspace_id,
                        message_id,
                    });
                }
            }
            Ok((ops, erased))
        })
        .await
        .map_err(BackendError::Read)
}

/// Runs until `cancel`: keeps `backend` caught up with the log (see the
/// module docs). `local` / `local_progress`: the `Search` model; `acked`
/// follows the backend's checkpoint (for `/readyz`).
pub async fn run(
    backend: Arc<dyn SearchBackend>,
    log: Log,
    local: Readers,
    local_progress: Progress,
    acked: Arc<AtomicU64>,
    cancel: CancellationToken,
) {
    while !cancel.is_cancelled() {
        let checkpoint = match backend.checkpoint().await {
            Ok(cp) => {
                acked.store(cp, Ordering::Relaxed);
                cp
            }
            Err(e) => {
                tracing::warn!(error = %e, "search backend checkpoint unreadable; retrying");
                pause(&cancel).await;
                continue;
            }
        };
        let mut events = match log.replay(checkpoint + 1).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "search indexer cannot read the log; retrying");
                pause(&cancel).await;
                continue;
            }
        };
        loop {
            let first = tokio::select! {
                _ = cancel.cancelled() => return,
                n = events.next() => n,
            };
            let mut batch = match first {
                Some(Ok(ev)) => vec![ev],
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "search indexer: log read failed; resuming from the checkpoint");
                    pause(&cancel).await;
                    break;
                }
                None => break,
            };
            let deadline = tokio::time::Instant::now() + LINGER;
            while batch.len() < BATCH {
                match tokio::time::timeout_at(deadline, events.next()).await {
                    Ok(Some(Ok(ev))) => batch.push(ev),
                    _ => break,
                }
            }
            match send_batch(&*backend, &local, &local_progress, &batch, &cancel).await {
                Ok(cp) => acked.store(cp, Ordering::Relaxed),
                Err(e) => {
                    tracing::warn!(error = %e, "search backend refused a batch; resuming from its checkpoint");
                    pause(&cancel).await;
                    break;
                }
            }
        }
    }
}

async fn pause(cancel: &CancellationToken) {
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = tokio::time::sleep(PAUSE) => {}
    }
}

/// Reindexes `backend` from a `Search` model rebuilt from the log (at
/// `model`, caught up to `through`): every document, in id order, then
/// the checkpoint `through`. The backend should be empty (reset) first.
/// Returns the number of documents sent.
pub async fn reindex(
    backend: &dyn SearchBackend,
    model: &Readers,
    through: u64,
) -> Result<u64, BackendError> {
    let mut after = 0i64;
    let mut sent = 0u64;
    loop {
        let page = model
            .read_page(move |c| -> rusqlite::Result<(Vec<DocOp>, i64)> {
                let rows: Vec<(i64, String, String)> = c
                    .prepare(
                        "SELECT id, workspace_id, message_id FROM docs WHERE id > ?1
                         ORDER BY id LIMIT ?2",
                    )?
                    .query_map(rusqlite::params![after, BATCH as i64], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                let last = rows.last().map_or(after, |r| r.0);
                let ids: Vec<(String, String)> = rows.into_iter().map(|(_, w, m)| (w, m)).collect();
                Ok((docs_for(c, &ids)?, last))
            })
            .await
            .map_err(BackendError::Read)?;
        let (ops, last) = page;
        if ops.is_empty() {
            break;
        }
        sent += ops.len() as u64;
        // The checkpoint stays 0 until the last page: an interrupted
        // reindex starts over rather than resuming in the middle.
        backend.apply(ops, 0).await?;
        after = last;
    }
    backend.apply(Vec::new(), through).await?;
    backend.settle().await?;
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::backend::Fts5Backend;
    use crate::search::Search;
    use crate::testkit::*;

    #[test]
    fn events_touch_their_message_and_a_reply_its_root() {
        let mut f = Feed::new();
        let root = f.ch("C1", "U1", posted("M1", "hello"));
        let reply = f.ch("C1", "U2", reply("M2", "M1", "hi"));
        let edit = f.ch("C1", "U1", edited("M1", "hello again"));
        let del = f.ch("C1", "U1", deleted("M2"));
        let other = f.ws("", "U1", workspace_created("w"));
        let pair = |m: &str| (WS.to_string(), m.to_string());
        assert_eq!(touched_by(std::slice::from_ref(&root)), vec![pair("M1")]);
        assert_eq!(
            touched_by(std::slice::from_ref(&reply)),
            vec![pair("M2"), pair("M1")]
        );
        assert_eq!(
            touched_by(&[root, reply, edit, del, other]),
            vec![pair("M1"), pair("M2")]
        );
    }

    #[tokio::test]
    async fn a_batch_sends_current_documents_and_deletes_for_gone_ones() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let local_path = dir.path().join("local.sqlite");
        let (mut local_conn, _) = crate::open_model::<Search>(&local_path).expect("model");
        let mut f = Feed::new();
        let events = vec![
            f.ch("C1", "U1", posted("M1", "kept words")),
            f.ch("C1", "U1", posted("M2", "gone words")),
            f.ch("C1", "U1", deleted("M2")),
        ];
        crate::apply_batch::<Search>(&mut local_conn, &events).expect("fold");
        let local = Readers::new(&local_path);
        let ids = touched_by(&events);
        let ops = local
            .read_page(move |c| docs_for(c, &ids))
            .await
            .expect("docs");
        assert!(matches!(&ops[0], DocOp::Upsert(d) if d.text == "kept words"));
        assert_eq!(
            ops[1],
            DocOp::Delete {
                workspace_id: WS.into(),
                message_id: "M2".into()
            }
        );
        // Reindexing into another backend: the live documents, then the
        // checkpoint.
        let remote_path = dir.path().join("remote.sqlite");
        let (remote_conn, _) = crate::open_model::<Search>(&remote_path).expect("model");
        let remote = Fts5Backend::writable(Readers::new(&remote_path), remote_conn);
        let n = reindex(&remote, &local, 3).await.expect("reindex");
        assert_eq!(n, 1);
        assert_eq!(remote.checkpoint().await.expect("checkpoint"), 3);
    }

    #[tokio::test]
    async fn an_erasure_sends_deletes_for_the_documents_it_removed() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let local_path = dir.path().join("local.sqlite");
        let (mut local_conn, _) = crate::open_model::<Search>(&local_path).expect("model");
        let remote_path = dir.path().join("remote.sqlite");
        let (remote_conn, _) = crate::open_model::<Search>(&remote_path).expect("model");
        let remote = Fts5Backend::writable(Readers::new(&remote_path), remote_conn);
        let local = Readers::new(&local_path);
        let mut f = Feed::new();
        let story = erasure_story(&mut f);
        let cut = story
            .iter()
            .position(|e| {
                matches!(
                    e.envelope.as_ref().and_then(|e| e.body.as_ref()),
                    Some(Body::ContentErased(_))
                )
            })
            .expect("an erasure");
        // Everything before the erasure reaches the remote index…
        let (before, after) = story.split_at(cut);
        crate::apply_batch::<Search>(&mut local_conn, before).expect("fold");
        let (ops, erased) = ops_for(&local, before).await.expect("ops");
        assert!(!erased);
        remote.apply(ops, 0).await.expect("apply");
        let in_remote = |id: &'static str| {
            Readers::new(&remote_path).read_blocking(move |c| {
                c.query_row(
                    "SELECT COUNT(*) FROM docs WHERE message_id = ?1",
                    [id],
                    |r| r.get::<_, i64>(0),
                )
            })
        };
        assert_eq!(in_remote("M1").expect("count"), 1);
        // …then the erasure's batch deletes what it covered there too.
        crate::apply_batch::<Search>(&mut local_conn, after).expect("fold");
        let (ops, erased) = ops_for(&local, after).await.expect("ops");
        assert!(erased);
        for gone in ["M1", "R1"] {
            assert!(
                ops.contains(&DocOp::Delete {
                    workspace_id: WS.into(),
                    message_id: gone.into()
                }),
                "{gone}: {ops:?}"
            );
        }
        remote.apply(ops, 0).await.expect("apply");
        remote.expunge().await.expect("expunge");
        for (id, n) in [("M1", 0), ("R1", 0), ("R2", 1), ("M3", 1), ("R3", 1)] {
            assert_eq!(in_remote(id).expect("count"), n, "{id}");
        }
    }
}
