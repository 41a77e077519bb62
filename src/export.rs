//! `switchboard export` and `switchboard verify`: a workspace's events as
//! hash-chained JSON lines with a manifest, and the check that names the
//! first line (or manifest field) that was altered, removed, inserted,
//! reordered or truncated. The format and the chain are
//! `switchboard_streams::export`'s.

use crate::Common;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::time::Instant;
use switchboard_core::ids::{ChannelId, WorkspaceId};
use switchboard_core::time::parse_rfc3339_ms;
use switchboard_streams::checkpoint;
use switchboard_streams::export::{self, ExportParams};

#[derive(Args)]
pub struct ExportArgs {
    #[command(flatten)]
    common: Common,
    /// The workspace to export.
    #[arg(long)]
    workspace: String,
    /// Only this channel's events.
    #[arg(long)]
    channel: Option<String>,
    /// RFC 3339: events from then on.
    #[arg(long)]
    since: Option<String>,
    /// RFC 3339: events before then.
    #[arg(long)]
    until: Option<String>,
    /// Also copy uploaded files' bytes to `--out/attachments/<file_id>`
    /// (verified against the SHA-256 their `file_uploaded` line states).
    #[arg(long)]
    attachments: bool,
    /// The export directory; an export already there is continued.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// An export directory (`events.jsonl` + `manifest.json`).
    dir: PathBuf,
}

fn time(flag: &str, v: Option<&str>) -> Result<Option<i64>> {
    v.map(|s| {
        parse_rfc3339_ms(s).with_context(|| format!("{flag} must be an RFC 3339 time, not {s:?}"))
    })
    .transpose()
}

/// Runs an export (or continues one) and prints its manifest summary.
pub async fn run(args: ExportArgs) -> Result<()> {
    WorkspaceId::parse(&args.workspace).map_err(|e| anyhow::anyhow!("--workspace: {e}"))?;
    if let Some(c) = &args.channel {
        ChannelId::parse(c).map_err(|e| anyhow::anyhow!("--channel: {e}"))?;
    }
    let params = ExportParams {
        workspace: args.workspace.clone(),
        channel: args.channel.clone(),
        since_ms: time("--since", args.since.as_deref())?,
        until_ms: time("--until", args.until.as_deref())?,
        attachments: args.attachments,
    };
    std::fs::create_dir_all(&args.common.data)?;
    let (log, local_nats) = args.common.open_log_as(true, true).await?;
    let started = Instant::now();
    let result = export::export(&log, params, &args.out).await;
    let outcome = match result {
        Ok(report) => {
            let secs = started.elapsed().as_secs_f64();
            switchboard_gateway::exports::record(&log, "", "", &report.manifest)
                .await
                .context("recording the export in the log")?;
            let m = &report.manifest;
            println!(
                "{}",
                serde_json::json!({
                    "out": args.out.display().to_string(),
                    "resumed": report.resumed,
                    "added_lines": report.added,
                    "lines": m.lines,
                    "first_stream_seq": m.first_stream_seq,
                    "last_stream_seq": m.last_stream_seq,
                    "chain_head": m.chain_head,
                    "secs": secs,
                })
            );
            Ok(())
        }
        Err(e) => Err(anyhow::anyhow!("export failed: {e}")),
    };
    if let Some(n) = local_nats {
        n.stop().await;
    }
    outcome
}

/// Verifies an export directory: prints `ok` or each finding, one a line,
/// and fails when there is any.
pub fn verify(args: VerifyArgs) -> Result<()> {
    let findings =
        export::verify(&args.dir).with_context(|| format!("verifying {}", args.dir.display()))?;
    if findings.is_empty() {
        println!("ok: {} verifies", args.dir.display());
        return Ok(());
    }
    for f in &findings {
        println!("{f}");
    }
    bail!("{} does not verify: {}", args.dir.display(), findings[0])
}

#[derive(Args)]
pub struct VerifyLogArgs {
    #[command(flatten)]
    common: Common,
    /// The workspace whose subjects are checked.
    #[arg(long)]
    workspace: String,
    /// The checkpoint public keys to trust (hex; comma-separated or
    /// repeated: one per gateway that signs). Default: the one in
    /// `<data>/keys/checkpoint.pub`. With none, checkpoints are checked
    /// against their own key only, and a log that has checkpoints fails:
    /// a self-signed checkpoint proves nothing.
    #[arg(long, value_delimiter = ',')]
    public_key: Vec<String>,
}

/// Checks every subject's hash chain of a workspace in the log; prints a
/// summary and each finding, and fails when there is any.
pub async fn verify_log(args: VerifyLogArgs) -> Result<()> {
    WorkspaceId::parse(&args.workspace).map_err(|e| anyhow::anyhow!("--workspace: {e}"))?;
    std::fs::create_dir_all(&args.common.data)?;
    let (log, local_nats) = args.common.open_log_as(true, true).await?;
    let texts: Vec<String> = if args.public_key.is_empty() {
        std::fs::read_to_string(args.common.data.join("keys/checkpoint.pub"))
            .ok()
            .into_iter()
            .collect()
    } else {
        args.public_key.clone()
    };
    let keys = texts
        .iter()
        .map(|k| checkpoint::parse_public(k))
        .collect::<Option<Vec<_>>>()
        .context("a checkpoint public key is not 64 hex digits")?;
    let result = switchboard_streams::chain::verify_log(&log, &args.workspace, &keys).await;
    if let Some(n) = local_nats {
        n.stop().await;
    }
    let report = result.context("reading the log")?;
    for f in &report.findings {
        println!("{f}");
    }
    println!(
        "{}",
        serde_json::json!({
            "workspace": args.workspace,
            "subjects": report.subjects,
            "events": report.events,
            "unchained": report.unchained,
            "checkpoints": report.checkpoints,
            "uncovered": report.uncovered,
            "trusted_keys": keys.len(),
            "findings": report.findings.len(),
        })
    );
    match report.findings.first() {
        None if keys.is_empty() && report.checkpoints > 0 => bail!(
            "the log of {} has checkpoints but no key to trust was given: pass \
             --public-key (the key each signing serve prints and keeps in \
             <data>/keys/checkpoint.pub)",
            args.workspace
        ),
        None => Ok(()),
        Some(f) => bail!("the log of {} does not verify: {f}", args.workspace),
    }
}
