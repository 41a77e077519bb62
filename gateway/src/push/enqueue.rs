//! The enqueuer: follows the notifications model and puts each new
//! 'pending' notification on the work queue as a job.
//!
//! Every gateway runs one; a job's `Nats-Msg-Id` is the notification id, so
//! the queue keeps one job per notification inside its de-duplication window
//! however many gateways (or restarts) publish it. The cursor (the stream
//! sequence of the last notification enqueued) lives in the `sb_push` KV
//! bucket, shared, so a restarted gateway resumes where the fleet got to;
//! publishing a job again after a crash is harmless.

use super::deliver::Job;
use super::Push;
use crate::commands::ReadModel;
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use std::time::Duration;
use switchboard_projections::notifications;
use switchboard_projections::Readers;
use tokio_util::sync::CancellationToken;

/// The cursor's key in the secrets bucket (no workspace id starts with `_`).
const CURSOR_KEY: &str = "_enqueued";
/// Notifications read per batch.
const BATCH: u32 = 500;

/// Runs until `cancel`.
pub async fn run_enqueuer(push: std::sync::Arc<Push>, notes: ReadModel, cancel: CancellationToken) {
    let ReadModel {
        readers: notes,
        progress,
    } = notes;
    let mut cursor: Option<u64> = None;
    loop {
        let step = async {
            let from = match cursor {
                Some(c) => c,
                None => push.load_cursor().await?,
            };
            cursor = Some(from);
            let done = enqueue_batch(&push, &notes, from).await?;
            if let Some(next) = done.next {
                cursor = Some(next);
                push.save_cursor(next).await;
            }
            Ok::<bool, String>(done.full)
        };
        let full = tokio::select! {
            () = cancel.cancelled() => return,
            r = step => r,
        };
        match full {
            Ok(true) => continue,
            Ok(false) => {
                // Caught up: wait for the model to fold something new.
                let seen = progress.current();
                tokio::select! {
                    () = cancel.cancelled() => return,
                    _ = progress.wait_for(seen + 1, Duration::from_secs(1)) => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "push: enqueuer");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

struct Batch {
    /// The new cursor, when it moved.
    next: Option<u64>,
    /// The batch was full: read again at once.
    full: bool,
}

async fn enqueue_batch(push: &Push, notes: &Readers, after: u64) -> Result<Batch, String> {
    let rows = notes
        .read_rows(BATCH, move |c| {
            notifications::created_after(c, after, BATCH as usize)
        })
        .await
        .map_err(|e| e.to_string())?;
    let full = rows.len() as u32 >= BATCH;
    let Some(last) = rows.last().map(|r| r.stream_seq) else {
        return Ok(Batch { next: None, full });
    };
    // One message makes many notifications with one stream sequence: a
    // full batch may have cut the last one's short, so leave it for the
    // next batch (unless it is all there is).
    let upto = if full && rows.iter().any(|r| r.stream_seq != last) {
        last - 1
    } else {
        last
    };
    let mut acks: Vec<PublishAckFuture> = Vec::new();
    for row in rows
        .iter()
        .filter(|r| r.stream_seq <= upto && r.state == "pending")
    {
        let job = Job {
            id: row.id.clone(),
            workspace_id: row.workspace_id.clone(),
            user_id: row.user_id.clone(),
            stream_seq: row.stream_seq,
        };
        let payload = serde_json::to_vec(&job).map_err(|e| e.to_string())?;
        let msg = PublishMessage::build()
            .payload(payload.into())
            .message_id(&row.id);
        let subject = format!("push.{}.{}", row.workspace_id, row.user_id);
        let ack = push
            .js
            .send_publish(subject, msg)
            .await
            .map_err(|e| format!("enqueueing {}: {e}", row.id))?;
        acks.push(ack);
    }
    for ack in acks {
        ack.await
            .map_err(|e| format!("enqueue not acknowledged: {e}"))?;
    }
    Ok(Batch {
        next: Some(upto),
        full,
    })
}

impl Push {
    async fn load_cursor(&self) -> Result<u64, String> {
        match self.secrets.get(CURSOR_KEY).await {
            Ok(Some(b)) => Ok(std::str::from_utf8(&b)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0)),
            Ok(None) => Ok(0),
            Err(e) => Err(format!("reading the push cursor: {e}")),
        }
    }

    /// Moves the shared cursor forward (never back: another gateway may be
    /// ahead).
    async fn save_cursor(&self, seq: u64) {
        match self.load_cursor().await {
            Ok(stored) if stored >= seq => {}
            _ => {
                if let Err(e) = self.secrets.put(CURSOR_KEY, seq.to_string().into()).await {
                    tracing::debug!(error = %e, "push: saving the cursor");
                }
            }
        }
    }
}
