//! `switchboard verify-log`: checks every subject's hash chain in the log
//! itself (`Envelope.prev_digest`, `channel_seq`), with no export.
//!
//! Invariant checked: on each subject, every Switchboard event's
//! `channel_seq` is the previous event's plus one, and its `prev_digest` is
//! the SHA-256 of the previous event's stored payload. A removed event
//! (not at the tail), an inserted or forged event with a wrong digest, and
//! a reordering all break it; a payload that is not an envelope is reported
//! as quarantined. Events appended before the chain existed carry no
//! digest and are counted as unchained (allowed only before a subject's
//! first chained event).
//!
//! Signed head checkpoints (`crate::checkpoint`, on
//! `sb.<W>.checkpoint`) cover the tails: each head a checkpoint names
//! (subject, channel_seq, digest) must still be in the chain, so removing a
//! subject's last events is detected; a checkpoint whose signature does not
//! verify is reported. Events after a subject's last checkpoint are
//! counted as `uncovered` (a forger who computes the right digest is only
//! caught once a checkpoint signed before the forgery disagrees).

use crate::checkpoint;
use crate::log::{payload_digest, Log, LogError, ScanStart};
use crate::subjects;
use futures_util::StreamExt;
use prost::Message as _;
use std::collections::HashMap;
use switchboard_core::events::{Body, Envelope, HeadsCheckpoint};

/// What [`verify_log`] found.
#[derive(Debug, Default)]
pub struct ChainReport {
    pub subjects: usize,
    pub events: u64,
    /// Events from before the chain (no `prev_digest`).
    pub unchained: u64,
    /// Each problem, naming the subject and stream sequence.
    pub findings: Vec<String>,
    /// Signed checkpoints read (and verified).
    pub checkpoints: u64,
    /// Events no checkpoint covers yet (after their subject's last one).
    pub uncovered: u64,
}

struct Tip {
    channel_seq: u64,
    digest: [u8; 32],
    stream_seq: u64,
    chained: bool,
}

/// Reads every event of `workspace` up to the log's head now and checks
/// each subject's chain.
/// `key`: the checkpoint public key to trust; `None`: each checkpoint's
/// own (which proves nothing against someone holding the log's keys).
pub async fn verify_log(
    log: &Log,
    workspace: &str,
    keys: &[[u8; 32]],
) -> Result<ChainReport, LogError> {
    let mut reached: HashMap<(String, u64), [u8; 32]> = HashMap::new();
    let mut checkpoints: Vec<(u64, HeadsCheckpoint)> = Vec::new();
    let mut report = ChainReport::default();
    let end = log.last_seq().await?;
    let (mut left, mut events) = log
        .scan(ScanStart::Seq(1), subjects::workspace_filter(workspace))
        .await?;
    let mut tips: HashMap<String, Tip> = HashMap::new();
    while left > 0 {
        let Some(next) = events.next().await else {
            break;
        };
        let (pending, raw) = next?;
        left = pending;
        if raw.stream_seq > end {
            break;
        }
        let Ok(env) = Envelope::decode(raw.payload.as_ref()) else {
            report.findings.push(format!(
                "{} stream seq {}: not a Switchboard envelope (quarantined; published by something else)",
                raw.subject, raw.stream_seq
            ));
            continue;
        };
        report.events += 1;
        let digest = payload_digest(&raw.payload);
        reached.insert((raw.subject.clone(), env.channel_seq), digest);
        if let Some(Body::HeadsCheckpoint(cp)) = &env.body {
            if checkpoint::is_checkpoint(&raw.subject) {
                // Any trusted key (one per gateway that signs); with none,
                // only the checkpoint's own (the caller says it is untrusted).
                let own = <[u8; 32]>::try_from(cp.public_key.as_slice()).ok();
                let good = if keys.is_empty() {
                    own.is_some_and(|k| checkpoint::verify(cp, &k))
                } else {
                    keys.iter().any(|k| checkpoint::verify(cp, k))
                };
                if good {
                    checkpoints.push((raw.stream_seq, cp.clone()));
                } else {
                    report.findings.push(format!(
                        "{} stream seq {}: a checkpoint whose signature does not verify (forged)",
                        raw.subject, raw.stream_seq
                    ));
                }
            }
        }
        let tip = tips.get(&raw.subject);
        let (expected_seq, prev) = match tip {
            Some(t) => (t.channel_seq + 1, Some(t)),
            None => (1, None),
        };
        let at = format!(
            "{} stream seq {} (channel_seq {})",
            raw.subject, raw.stream_seq, env.channel_seq
        );
        if env.channel_seq != expected_seq {
            report.findings.push(format!(
                "{at}: expected channel_seq {expected_seq}: events removed, inserted or reordered before it"
            ));
        }
        let chained = !env.prev_digest.is_empty();
        match (prev, chained) {
            (None, false) => {}
            (None, true) => report.findings.push(format!(
                "{at}: the subject's first event names a previous event (removed before it?)"
            )),
            (Some(p), false) if p.chained => report.findings.push(format!(
                "{at}: no prev_digest after chained events (forged?)"
            )),
            (Some(_), false) => report.unchained += 1,
            (Some(p), true) if env.prev_digest[..] != p.digest[..] => {
                report.findings.push(format!(
                    "{at}: prev_digest does not match the previous event (stream seq {}): forged, or an event was removed or inserted",
                    p.stream_seq
                ))
            }
            (Some(_), true) => {}
        }
        tips.insert(
            raw.subject,
            Tip {
                channel_seq: env.channel_seq,
                digest,
                stream_seq: raw.stream_seq,
                chained: chained || prev.is_some_and(|p| p.chained),
            },
        );
    }
    report.subjects = tips.len();
    report.checkpoints = checkpoints.len() as u64;
    let mut covered: HashMap<&str, u64> = HashMap::new();
    for (at, cp) in &checkpoints {
        for h in &cp.heads {
            let c = covered.entry(h.subject.as_str()).or_default();
            *c = (*c).max(h.channel_seq);
            match reached.get(&(h.subject.clone(), h.channel_seq)) {
                None => report.findings.push(format!(
                    "{} stream seq {}: the checkpoint at stream seq {at} names this head (channel_seq {}), which the log no longer holds: events removed from the subject's tail (it now ends at channel_seq {})",
                    h.subject,
                    h.stream_seq,
                    h.channel_seq,
                    tips.get(&h.subject).map_or(0, |t| t.channel_seq)
                )),
                Some(d) if d[..] != h.digest[..] => report.findings.push(format!(
                    "{} stream seq {}: differs from the head the checkpoint at stream seq {at} signed (channel_seq {}): rewritten",
                    h.subject, h.stream_seq, h.channel_seq
                )),
                Some(_) => {}
            }
        }
    }
    for (subject, tip) in &tips {
        if checkpoint::is_checkpoint(subject) {
            continue;
        }
        let c = covered.get(subject.as_str()).copied().unwrap_or(0);
        report.uncovered += tip.channel_seq.saturating_sub(c);
    }
    Ok(report)
}
