//! Signed head checkpoints: every so often, the heads (channel_seq, stream
//! seq, digest) of every subject of a workspace, signed with an ed25519 key
//! kept outside the replayable log, are appended on
//! `sb.<workspace>.checkpoint`. A chain that no longer reaches a head a
//! checkpoint names lost its tail (`switchboard verify-log`).
//!
//! The key is a 32-byte seed in `<data>/keys/checkpoint.ed25519` (mode
//! 0600), its public half (hex) in `<data>/keys/checkpoint.pub`.

use crate::log::{Log, LogError};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::path::Path;
use switchboard_core::events::{hex, HeadsCheckpoint, SubjectHead};

/// The checkpoint subject of a workspace.
pub fn subject(ws: &str) -> String {
    format!("sb.{ws}.checkpoint")
}

/// True for a checkpoint subject.
pub fn is_checkpoint(subject: &str) -> bool {
    subject.ends_with(".checkpoint") && subject.split('.').count() == 3
}

/// The text a checkpoint signs.
pub fn canonical(heads: &[SubjectHead]) -> Vec<u8> {
    let mut out = Vec::new();
    for h in heads {
        out.extend_from_slice(
            format!(
                "{} {} {} {}\n",
                h.subject,
                h.channel_seq,
                h.stream_seq,
                hex(&h.digest)
            )
            .as_bytes(),
        );
    }
    out
}

/// The signing key.
pub struct CheckpointKey(SigningKey);

impl CheckpointKey {
    /// Loads the key under `<data>/keys/`, creating it from `seed` (32
    /// random bytes from the caller) when there is none.
    pub fn load_or_create(data: &Path, seed: [u8; 32]) -> std::io::Result<CheckpointKey> {
        let dir = data.join("keys");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("checkpoint.ed25519");
        let seed = match std::fs::read(&path) {
            Ok(bytes) => <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is not a 32-byte ed25519 seed", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Written whole beside it, then linked into place (which
                // never replaces a key another process made meanwhile): a
                // crash mid-write leaves no empty key that would stop the
                // next start (review finding).
                let tmp = dir.join("checkpoint.ed25519.tmp");
                let _ = std::fs::remove_file(&tmp);
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                let mut file = opts.open(&tmp)?;
                std::io::Write::write_all(&mut file, &seed)?;
                file.sync_all()?;
                let linked = std::fs::hard_link(&tmp, &path);
                let _ = std::fs::remove_file(&tmp);
                match linked {
                    Ok(()) => seed,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        return CheckpointKey::load_or_create(data, seed)
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        let key = CheckpointKey(SigningKey::from_bytes(&seed));
        std::fs::write(dir.join("checkpoint.pub"), key.public_hex() + "\n")?;
        Ok(key)
    }

    /// The public key, hex.
    pub fn public_hex(&self) -> String {
        hex(self.0.verifying_key().as_bytes())
    }

    /// A signed checkpoint of `heads`.
    pub fn sign(&self, heads: Vec<SubjectHead>) -> HeadsCheckpoint {
        let signature = self.0.sign(&canonical(&heads)).to_bytes().to_vec();
        HeadsCheckpoint {
            heads,
            signature,
            public_key: self.0.verifying_key().as_bytes().to_vec(),
        }
    }
}

/// Checks a checkpoint's signature against `key` (32 bytes).
pub fn verify(cp: &HeadsCheckpoint, key: &[u8; 32]) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(key) else {
        return false;
    };
    let Ok(sig) = <[u8; 64]>::try_from(cp.signature.as_slice()) else {
        return false;
    };
    key.verify_strict(
        &canonical(&cp.heads),
        &ed25519_dalek::Signature::from_bytes(&sig),
    )
    .is_ok()
}

/// Parses a hex public key.
pub fn parse_public(hex_key: &str) -> Option<[u8; 32]> {
    let s = hex_key.trim();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The current heads of every subject of every workspace (checkpoint
/// subjects excluded), by workspace.
pub async fn heads(log: &Log) -> Result<BTreeMap<String, Vec<SubjectHead>>, LogError> {
    let unavailable = |e: &dyn std::fmt::Display| LogError::Unavailable(e.to_string());
    let mut info = log
        .stream()
        .info_with_subjects("sb.>")
        .await
        .map_err(|e| unavailable(&e))?;
    let mut subjects = Vec::new();
    while let Some(s) = info.next().await {
        let (subject, _) = s.map_err(|e| unavailable(&e))?;
        if !is_checkpoint(&subject) {
            subjects.push(subject);
        }
    }
    subjects.sort();
    let mut out: BTreeMap<String, Vec<SubjectHead>> = BTreeMap::new();
    for subject in subjects {
        let Some(ws) = subject.split('.').nth(1).map(str::to_owned) else {
            continue;
        };
        let head = log.fetch_head(&subject).await?;
        let Some(digest) = head.digest else { continue };
        out.entry(ws).or_default().push(SubjectHead {
            subject,
            channel_seq: head.subject_seq,
            stream_seq: head.stream_seq,
            digest: digest.to_vec(),
        });
    }
    Ok(out)
}
