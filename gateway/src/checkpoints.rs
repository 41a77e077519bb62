//! The periodic signed head checkpoints `serve` appends (see
//! `switchboard_streams::checkpoint`): one per workspace whose heads moved
//! since the last one, every interval.

use crate::commands::now_ms;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;
use switchboard_core::events::{Body, Envelope, SubjectHead};
use switchboard_core::ids::EventId;
use switchboard_streams::checkpoint::{self, CheckpointKey};
use switchboard_streams::Log;
use tokio_util::sync::CancellationToken;

/// Loads (or creates) the key under `<data>/keys/` and starts the task;
/// returns the public key (hex).
pub fn spawn(
    log: Log,
    data: &Path,
    every: Duration,
    stop: CancellationToken,
) -> std::io::Result<String> {
    let key = CheckpointKey::load_or_create(data, crate::commands::random())?;
    let public = key.public_hex();
    tokio::spawn(async move {
        let mut last: HashMap<String, Vec<SubjectHead>> = HashMap::new();
        // The first one after one interval, not at start: a restarted
        // process does not sign heads the log's last checkpoint holds.
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = once(&log, &key, &mut last).await {
                tracing::warn!(error = %e, "head checkpoint failed; retried next interval");
            }
        }
    });
    Ok(public)
}

/// Appends a checkpoint for every workspace whose heads moved.
pub async fn once(
    log: &Log,
    key: &CheckpointKey,
    last: &mut HashMap<String, Vec<SubjectHead>>,
) -> Result<(), String> {
    let heads = checkpoint::heads(log).await.map_err(|e| e.to_string())?;
    for (ws, heads) in heads {
        if !last.contains_key(&ws) {
            // What the log's last checkpoint of this workspace signed.
            if let Some(signed) = last_signed(log, &ws).await {
                last.insert(ws.clone(), signed);
            }
        }
        if last.get(&ws) == Some(&heads) {
            continue;
        }
        let body = Body::HeadsCheckpoint(key.sign(heads.clone()));
        log.append(&checkpoint::subject(&ws), None, |seq| Envelope {
            event_id: EventId::generate(now_ms() as u64, crate::commands::random()).into_string(),
            workspace_id: ws.clone(),
            channel_id: String::new(),
            actor_id: String::new(),
            ts_ms: now_ms(),
            channel_seq: seq,
            fence_seq: 0,
            prev_digest: Vec::new(),
            // Housekeeping: no request caused it.
            request_id: String::new(),
            body: Some(body.clone()),
        })
        .await
        .map_err(|e| e.to_string())?;
        last.insert(ws, heads);
    }
    Ok(())
}

/// The heads of the last checkpoint on the workspace's checkpoint subject.
async fn last_signed(log: &Log, ws: &str) -> Option<Vec<SubjectHead>> {
    let head = log.fetch_head(&checkpoint::subject(ws)).await.ok()?;
    if head.stream_seq == 0 {
        return None;
    }
    match log.get(head.stream_seq).await.ok()?.envelope?.body? {
        Body::HeadsCheckpoint(cp) => Some(cp.heads),
        _ => None,
    }
}
