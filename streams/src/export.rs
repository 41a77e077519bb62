//! Verifiable exports: a workspace's events as JSON lines plus a manifest.
//!
//! Invariant kept here: every line of `events.jsonl` carries its number
//! (`line`, 1, 2, 3, …) and the SHA-256 of the line before it (`prev`, hex;
//! 64 zeros for line 1), so the file is a hash chain; `manifest.json` holds
//! the chain's head (the SHA-256 of the last line), the line and byte
//! counts, the stream positions covered, the counts per event kind, the
//! export's parameters and a digest of itself. [`verify`] recomputes all of
//! it and names the first line (or manifest field) that does not fit: an
//! altered, removed, inserted, reordered or truncated line, or an edited
//! manifest. An export continues where it stopped ([`export`] into the
//! same directory): the manifest says how far the log was scanned, the
//! chain goes on from its head.
//!
//! What it does not prove: who made the export. Someone who rewrites every
//! line after an edit *and* the manifest produces a consistent export; keep
//! the manifest's `chain_head` somewhere else (the log records it in an
//! `ExportMade` event), or compare with the log (`switchboard verify-log`).

use crate::log::{payload_digest, Log, LogError, RawEvent, ScanStart};
use crate::subjects;
use futures_util::StreamExt;
use prost::Message as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use switchboard_core::events::{hex, Envelope};
use thiserror::Error;

/// The events file of an export directory.
pub const EVENTS_FILE: &str = "events.jsonl";
/// The manifest file of an export directory.
pub const MANIFEST_FILE: &str = "manifest.json";
const FORMAT: &str = "switchboard-export-v1";
/// Lines between two manifest checkpoints (what a crash can cost).
const CHECKPOINT_LINES: u64 = 50_000;

/// What an export covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportParams {
    pub workspace: String,
    /// One channel only; `None`: the whole workspace (every subject).
    pub channel: Option<String>,
    /// Events with a server timestamp at or after this (ms since epoch).
    pub since_ms: Option<i64>,
    /// Events with a server timestamp before this (ms since epoch).
    pub until_ms: Option<i64>,
    /// Also copy each uploaded file's bytes to `attachments/<file_id>`
    /// (their SHA-256 is in the `file_uploaded` line; `verify` checks it).
    #[serde(default)]
    pub attachments: bool,
}

impl ExportParams {
    /// The subject filter this export reads.
    pub fn filter(&self) -> String {
        match &self.channel {
            Some(ch) => subjects::channel(&self.workspace, ch),
            None => subjects::workspace_filter(&self.workspace),
        }
    }
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    /// The JetStream stream read.
    pub stream: String,
    pub params: ExportParams,
    /// Stream sequence of the first and last exported event (0: none).
    pub first_stream_seq: u64,
    pub last_stream_seq: u64,
    /// The log was read up to and including this stream sequence (events
    /// past the time window included); a resumed export starts after it.
    pub scanned_to: u64,
    pub lines: u64,
    /// Size of `events.jsonl` covered by this manifest.
    pub bytes: u64,
    /// Lines per event kind (`quarantined` for payloads that were not
    /// Switchboard envelopes).
    pub counts: BTreeMap<String, u64>,
    /// Hex SHA-256 of the last line (64 zeros when there is none).
    pub chain_head: String,
    /// The files written to `attachments/` (`--attachments`): `verify`
    /// reports one that is gone (review finding: a deleted file went
    /// unnoticed). Left out of the JSON when empty, so manifests written
    /// before it keep their digest.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub attachment_files: std::collections::BTreeSet<String>,
    /// Hex SHA-256 of this manifest with `digest` empty (keys sorted, no
    /// spaces).
    pub digest: String,
}

impl Manifest {
    fn new(stream: &str, params: ExportParams) -> Manifest {
        Manifest {
            format: FORMAT.into(),
            stream: stream.into(),
            params,
            first_stream_seq: 0,
            last_stream_seq: 0,
            scanned_to: 0,
            lines: 0,
            bytes: 0,
            counts: BTreeMap::new(),
            chain_head: hex(&[0; 32]),
            attachment_files: Default::default(),
            digest: String::new(),
        }
    }

    /// The manifest's own digest (over every field but `digest`).
    pub fn compute_digest(&self) -> String {
        let mut m = self.clone();
        m.digest = String::new();
        let value = serde_json::to_value(&m).unwrap_or_default();
        hex(&Sha256::digest(value.to_string().as_bytes()))
    }
}

/// Why an export or a verification could not be done.
#[derive(Debug, Error)]
pub enum ExportError {
    /// Reading the log failed; the export can be resumed later.
    #[error("{0}")]
    Log(#[from] LogError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The directory holds an export that cannot be continued.
    #[error("{0}")]
    Invalid(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One line of `events.jsonl`.
#[derive(Serialize)]
struct Line<'a> {
    line: u64,
    prev: &'a str,
    stream_seq: u64,
    subject: &'a str,
    /// When the stream stored it, ms since epoch.
    stored_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel_seq: Option<u64>,
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<&'a Envelope>,
    /// For a quarantined payload: its SHA-256 and length (not its bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_len: Option<usize>,
}

/// How an export run ended.
#[derive(Debug, Clone)]
pub struct ExportReport {
    pub manifest: Manifest,
    /// Lines this run added.
    pub added: u64,
    /// The run continued an earlier export in the same directory.
    pub resumed: bool,
}

/// Exports the events matching `params` into `dir` (created if needed),
/// up to the log's head when the export starts. When `dir` already holds
/// an export with the same workspace and channel, it is checked and
/// continued: new lines extend its chain.
pub async fn export(
    log: &Log,
    params: ExportParams,
    dir: &Path,
) -> Result<ExportReport, ExportError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let events_path = dir.join(EVENTS_FILE);
    let manifest_path = dir.join(MANIFEST_FILE);
    let (mut manifest, resumed) = if manifest_path.exists() {
        let old = read_manifest(&manifest_path)?;
        if old.params.workspace != params.workspace || old.params.channel != params.channel {
            return Err(ExportError::Invalid(format!(
                "{} holds an export of another workspace or channel",
                dir.display()
            )));
        }
        // A resume continues the same export: the lines already written
        // and how far the log was read were decided with these parameters
        // (review finding: a wider `--until` on resume silently skipped
        // the events the first run had read past and left out).
        if old.params != params {
            return Err(ExportError::Invalid(format!(
                "{} holds an export with other parameters ({}); resume it with the same \
                 --since/--until/--attachments, or start a new one",
                dir.display(),
                serde_json::to_string(&old.params).unwrap_or_default()
            )));
        }
        // The lines the manifest covers must verify; anything written after
        // its last checkpoint (a crash) is dropped and exported again.
        let findings = verify_prefix(&events_path, &old)?;
        if let Some(f) = findings.first() {
            return Err(ExportError::Invalid(format!(
                "the export in {} does not verify ({f}); start a new one",
                dir.display()
            )));
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&events_path)
            .map_err(io(&events_path))?;
        file.set_len(old.bytes).map_err(io(&events_path))?;
        (old, true)
    } else {
        (Manifest::new(&log.config().stream, params.clone()), false)
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&events_path)
        .map_err(io(&events_path))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);

    let end = log.last_seq().await?;
    let start = if manifest.scanned_to > 0 {
        ScanStart::Seq(manifest.scanned_to + 1)
    } else if let Some(since) = params.since_ms {
        ScanStart::TimeMs(since)
    } else {
        ScanStart::Seq(1)
    };
    let mut added = 0u64;
    let mut since_checkpoint = 0u64;
    if manifest.scanned_to < end {
        let (pending, mut events) = log.scan(start, params.filter()).await?;
        let mut left = pending;
        let mut head_hex = manifest.chain_head.clone();
        let mut buf = Vec::with_capacity(1024);
        while left > 0 {
            let Some(next) = events.next().await else {
                break;
            };
            let (pending, raw) = next?;
            left = pending;
            if raw.stream_seq > end {
                break;
            }
            manifest.scanned_to = raw.stream_seq;
            buf.clear();
            // Texts opened: an erased one is exported sealed, its text empty.
            let envelope = log.open_payload(raw.payload.as_ref()).await?;
            let Some(kind) = render(
                &raw,
                envelope,
                &params,
                manifest.lines + 1,
                &head_hex,
                &mut buf,
            )?
            else {
                continue;
            };
            if params.attachments && kind == "file_uploaded" {
                if let Some(id) = save_attachment(log, &raw, dir).await? {
                    manifest.attachment_files.insert(id);
                }
            }
            let digest = Sha256::digest(&buf);
            buf.push(b'\n');
            out.write_all(&buf).map_err(io(&events_path))?;
            head_hex = hex(&digest);
            manifest.lines += 1;
            manifest.bytes += buf.len() as u64;
            if manifest.first_stream_seq == 0 {
                manifest.first_stream_seq = raw.stream_seq;
            }
            manifest.last_stream_seq = raw.stream_seq;
            *manifest.counts.entry(kind.to_string()).or_default() += 1;
            added += 1;
            since_checkpoint += 1;
            if since_checkpoint == CHECKPOINT_LINES {
                since_checkpoint = 0;
                manifest.chain_head = head_hex.clone();
                checkpoint(&mut out, &events_path, &manifest_path, &mut manifest)?;
            }
        }
        manifest.chain_head = head_hex;
    }
    manifest.scanned_to = manifest.scanned_to.max(end);
    checkpoint(&mut out, &events_path, &manifest_path, &mut manifest)?;
    Ok(ExportReport {
        manifest,
        added,
        resumed,
    })
}

/// Copies the bytes of the file a `file_uploaded` event names (if the
/// object store still has them: expired uploads are gone); its id when
/// written.
async fn save_attachment(
    log: &Log,
    raw: &RawEvent,
    dir: &Path,
) -> Result<Option<String>, ExportError> {
    use switchboard_core::events::Body;
    use tokio::io::AsyncReadExt;
    let Some(Body::FileUploaded(f)) = Envelope::decode(raw.payload.as_ref())
        .ok()
        .and_then(|e| e.body)
    else {
        return Ok(None);
    };
    if f.file_id.is_empty() || !f.file_id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Ok(None);
    }
    let js = async_nats::jetstream::new(log.client().clone());
    let bucket = format!("{}_files", log.config().stream);
    let Ok(store) = js.get_object_store(&bucket).await else {
        return Ok(None);
    };
    let Ok(mut obj) = store.get(f.file_id.as_str()).await else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    obj.read_to_end(&mut bytes)
        .await
        .map_err(|e| LogError::Unavailable(format!("reading file {}: {e}", f.file_id)))?;
    let at = dir.join("attachments");
    std::fs::create_dir_all(&at).map_err(io(&at))?;
    let path = at.join(&f.file_id);
    std::fs::write(&path, bytes).map_err(io(&path))?;
    Ok(Some(f.file_id))
}

/// Writes one event's line into `buf` (no newline); its kind, or `None`
/// when the event is outside the time window.
fn render(
    raw: &RawEvent,
    envelope: Option<Envelope>,
    params: &ExportParams,
    line: u64,
    prev: &str,
    buf: &mut Vec<u8>,
) -> Result<Option<&'static str>, ExportError> {
    let ts = envelope.as_ref().map_or(raw.time_ms, |e| e.ts_ms);
    if params.since_ms.is_some_and(|s| ts < s) || params.until_ms.is_some_and(|u| ts >= u) {
        return Ok(None);
    }
    let kind = match envelope.as_ref().and_then(|e| e.body.as_ref()) {
        Some(body) => body.kind(),
        None if envelope.is_some() => "unknown",
        None => "quarantined",
    };
    let quarantined = envelope.is_none();
    let l = Line {
        line,
        prev,
        stream_seq: raw.stream_seq,
        subject: &raw.subject,
        stored_ms: raw.time_ms,
        channel_seq: envelope.as_ref().map(|e| e.channel_seq),
        kind,
        event: envelope.as_ref(),
        payload_sha256: quarantined.then(|| hex(&payload_digest(&raw.payload))),
        payload_len: quarantined.then_some(raw.payload.len()),
    };
    serde_json::to_writer(&mut *buf, &l)
        .map_err(|e| ExportError::Invalid(format!("encoding line {line}: {e}")))?;
    Ok(Some(kind))
}

/// Flushes the lines, then writes the manifest (atomically: temp + rename).
fn checkpoint(
    out: &mut BufWriter<std::fs::File>,
    events_path: &Path,
    manifest_path: &Path,
    manifest: &mut Manifest,
) -> Result<(), ExportError> {
    out.flush().map_err(io(events_path))?;
    out.get_ref().sync_data().map_err(io(events_path))?;
    manifest.digest = manifest.compute_digest();
    let tmp = manifest_path.with_extension("json.tmp");
    let text =
        serde_json::to_string_pretty(manifest).map_err(|e| ExportError::Invalid(e.to_string()))?;
    std::fs::write(&tmp, text).map_err(io(&tmp))?;
    std::fs::rename(&tmp, manifest_path).map_err(io(manifest_path))?;
    Ok(())
}

fn read_manifest(path: &Path) -> Result<Manifest, ExportError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&text)
        .map_err(|e| ExportError::Invalid(format!("{}: not a manifest: {e}", path.display())))
}

/// What [`verify`] found wrong, each naming where.
pub type Findings = Vec<String>;

/// Checks an export directory; an empty list means it verifies.
pub fn verify(dir: &Path) -> Result<Findings, ExportError> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&manifest_path).map_err(io(&manifest_path))?;
    let manifest: Manifest = match serde_json::from_str(&text) {
        Ok(m) => m,
        Err(e) => return Ok(vec![format!("manifest.json: edited (not a manifest: {e})")]),
    };
    let mut findings = Vec::new();
    if manifest.compute_digest() != manifest.digest {
        findings.push("manifest.json: edited (its digest does not match its contents)".into());
    }
    findings.extend(check_lines(&dir.join(EVENTS_FILE), &manifest, false)?);
    if findings.is_empty() && manifest.params.attachments {
        findings.extend(check_attachments(dir, &manifest)?);
    }
    Ok(findings)
}

/// Each file in `attachments/` has the SHA-256 its `file_uploaded` line
/// states.
fn check_attachments(dir: &Path, manifest: &Manifest) -> Result<Findings, ExportError> {
    let events = dir.join(EVENTS_FILE);
    let file = std::fs::File::open(&events).map_err(io(&events))?;
    let mut findings = Vec::new();
    for (i, l) in BufReader::new(file).lines().enumerate() {
        let l = l.map_err(io(&events))?;
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&l) else {
            continue;
        };
        let f = &v["event"]["body"]["file_uploaded"];
        let (Some(id), Some(sha)) = (f["file_id"].as_str(), f["sha256"].as_str()) else {
            continue;
        };
        if !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            continue;
        }
        let path = dir.join("attachments").join(id);
        match std::fs::read(&path) {
            Ok(bytes) => {
                if hex(&Sha256::digest(&bytes)) != sha {
                    findings.push(format!(
                        "attachments/{id}: altered (its SHA-256 is not the one line {} states)",
                        i + 1
                    ));
                }
            }
            Err(_) if manifest.attachment_files.contains(id) => findings.push(format!(
                "attachments/{id}: removed (line {} names it and the export wrote it)",
                i + 1
            )),
            Err(_) => {}
        }
    }
    Ok(findings)
}

/// The lines the manifest covers (and nothing after them) verify.
fn verify_prefix(events_path: &Path, manifest: &Manifest) -> Result<Findings, ExportError> {
    let mut findings = Vec::new();
    if manifest.compute_digest() != manifest.digest {
        findings.push("manifest.json: edited (its digest does not match its contents)".into());
    }
    findings.extend(check_lines(events_path, manifest, true)?);
    Ok(findings)
}

/// What one line says about itself.
struct Seen {
    /// SHA-256 of the line's bytes.
    hash: [u8; 32],
    /// Its `line` and `prev` fields, when it parses.
    number: Option<u64>,
    prev: Option<String>,
    stream_seq: u64,
    kind: String,
}

fn seen(bytes: &[u8]) -> Seen {
    let v: Option<serde_json::Value> = serde_json::from_slice(bytes).ok();
    let field = |k: &str| v.as_ref().and_then(|v| v.get(k));
    Seen {
        hash: Sha256::digest(bytes).into(),
        number: field("line").and_then(|n| n.as_u64()),
        prev: field("prev").and_then(|p| p.as_str()).map(str::to_owned),
        stream_seq: field("stream_seq").and_then(|n| n.as_u64()).unwrap_or(0),
        kind: field("type")
            .and_then(|p| p.as_str())
            .unwrap_or_default()
            .to_owned(),
    }
}

/// Line numbers `before`, `this`, `next` that say "this and next swapped".
fn swapped(before: Option<u64>, this: Option<u64>, next: Option<u64>) -> bool {
    matches!((before, this, next), (Some(a), Some(b), Some(c)) if b == a + 2 && c == a + 1)
}

/// Walks the chain and names the first break, then compares the manifest's
/// summary with what the lines hold. With `prefix`, only the manifest's
/// `bytes` are read (a resumed export drops anything after them).
fn check_lines(
    events_path: &Path,
    manifest: &Manifest,
    prefix: bool,
) -> Result<Findings, ExportError> {
    let file = std::fs::File::open(events_path).map_err(io(events_path))?;
    let reader: Box<dyn BufRead> = if prefix {
        Box::new(BufReader::new(std::io::Read::take(file, manifest.bytes)))
    } else {
        Box::new(BufReader::new(file))
    };
    let mut lines: Vec<Seen> = Vec::new();
    let mut bytes = 0u64;
    for l in reader.split(b'\n') {
        let l = l.map_err(io(events_path))?;
        bytes += l.len() as u64 + 1;
        lines.push(seen(&l));
    }
    let zeros = hex(&[0; 32]);
    let hash_hex = |i: usize| -> String {
        if i == 0 {
            zeros.clone()
        } else {
            hex(&lines[i - 1].hash)
        }
    };
    let num = |i: usize| -> Option<u64> {
        if i == 0 {
            Some(0)
        } else {
            lines.get(i - 1).and_then(|s| s.number)
        }
    };
    let mut findings = Vec::new();
    let mut i = 1;
    while i <= lines.len() && findings.is_empty() {
        let s = &lines[i - 1];
        let chained = s.prev.as_deref() == Some(hash_hex(i - 1).as_str());
        let follows = matches!((num(i - 1), s.number), (Some(a), Some(b)) if b == a + 1);
        if s.number.is_none() || s.prev.is_none() {
            findings.push(format!("line {i}: altered (not a valid export line)"));
        } else if chained && follows {
            i += 1;
            continue;
        } else if swapped(num(i - 1), s.number, num(i + 1)) {
            findings.push(format!(
                "lines {i} and {}: reordered (their events come in the wrong order)",
                i + 1
            ));
        } else if i < lines.len() && lines[i].prev.as_deref() == Some(hash_hex(i - 1).as_str()) {
            findings.push(format!(
                "line {i}: inserted (line {} chains to line {} before it)",
                i + 1,
                i - 1
            ));
        } else if i >= 2 && s.prev.as_deref() == Some(hash_hex(i - 2).as_str()) {
            findings.push(format!(
                "line {}: inserted (line {i} chains to line {} before it)",
                i - 1,
                i - 2
            ));
        } else if let (Some(a), Some(b)) = (num(i - 1), s.number) {
            if b > a + 1 {
                findings.push(format!(
                    "line {i}: {} line(s) removed before it (event #{} follows #{a})",
                    b - a - 1,
                    b
                ));
            } else if b == a + 1 && i >= 2 {
                findings.push(format!(
                    "line {}: altered (its hash is not the one line {i} chains to)",
                    i - 1
                ));
            } else {
                findings.push(format!("line {i}: out of place (numbered #{b} after #{a})"));
            }
        } else if i >= 2 {
            findings.push(format!(
                "line {}: altered (its hash is not the one line {i} chains to)",
                i - 1
            ));
        } else {
            findings.push(format!("line {i}: altered (line 1 must chain to zeros)"));
        }
    }
    if !findings.is_empty() {
        return Ok(findings);
    }
    let n = lines.len() as u64;
    let head = lines.last().map_or(zeros, |s| hex(&s.hash));
    if n < manifest.lines {
        findings.push(format!(
            "line {}: truncated (the file ends after line {n}; the manifest covers {} lines)",
            n + 1,
            manifest.lines
        ));
    } else if n > manifest.lines && !prefix {
        findings.push(format!(
            "line {}: not covered by the manifest (it covers {} lines)",
            manifest.lines + 1,
            manifest.lines
        ));
    } else if head != manifest.chain_head {
        findings.push(format!(
            "line {n}: altered (its hash is not the manifest's chain_head)"
        ));
    }
    if !findings.is_empty() {
        return Ok(findings);
    }
    // The summary fields must describe the lines.
    let mut counts = BTreeMap::new();
    for s in &lines {
        *counts.entry(s.kind.clone()).or_insert(0u64) += 1;
    }
    let first = lines.first().map_or(0, |s| s.stream_seq);
    let last = lines.last().map_or(0, |s| s.stream_seq);
    let checks = [
        ("counts", counts == manifest.counts),
        ("first_stream_seq", first == manifest.first_stream_seq),
        ("last_stream_seq", last == manifest.last_stream_seq),
        ("bytes", prefix || bytes == manifest.bytes),
        (
            "scanned_to",
            manifest.scanned_to >= manifest.last_stream_seq,
        ),
        ("format", manifest.format == FORMAT),
    ];
    for (field, ok) in checks {
        if !ok {
            findings.push(format!(
                "manifest.json: edited (`{field}` does not match the events)"
            ));
        }
    }
    Ok(findings)
}
