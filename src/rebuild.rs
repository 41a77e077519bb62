//! `switchboard rebuild`: replay the log into fresh read models and prove
//! the fold is pure — each rebuilt model's checksum must equal the live
//! model's at the same log position.

use crate::Common;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use std::time::Instant;
use switchboard_projections::acl::Acl;
use switchboard_projections::history::History;
use switchboard_projections::notifications::Notifications;
use switchboard_projections::push::Push;
use switchboard_projections::unreads::Unreads;
use switchboard_projections::{live_checksum, rebuild, Projector};
use switchboard_streams::Log;

#[derive(Args)]
pub struct RebuildArgs {
    #[command(flatten)]
    common: Common,
    /// Where to write the rebuilt read models (default: a temporary dir
    /// under --data, removed afterwards).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// One read model's outcome.
pub struct Outcome {
    pub name: &'static str,
    pub position: u64,
    pub events: u64,
    pub rebuilt: String,
    pub live: Option<String>,
    pub secs: f64,
}

/// Rebuilds projector `P` into `out`, up to the live model's checkpoint
/// when a live model exists under `data`, else up to the log head.
pub async fn rebuild_one<P: Projector>(log: &Log, data: &Path, out: &Path) -> Result<Outcome> {
    let live_path = data.join(format!("{}.db", P::NAME));
    let live = if live_path.exists() {
        let mut conn = rusqlite::Connection::open_with_flags(
            &live_path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        Some(
            live_checksum::<P>(&mut conn)
                .with_context(|| format!("reading {}", live_path.display()))?,
        )
    } else {
        None
    };
    let position = match &live {
        Some((cp, _)) => *cp,
        None => log.last_seq().await?,
    };
    let start = Instant::now();
    let r = rebuild::<P>(log, &out.join(format!("{}.db", P::NAME)), position)
        .await
        .map_err(|e| anyhow::anyhow!("rebuilding {}: {e}", P::NAME))?;
    Ok(Outcome {
        name: P::NAME,
        position,
        events: r.events,
        rebuilt: r.checksum,
        live: live.map(|(_, s)| s),
        secs: start.elapsed().as_secs_f64(),
    })
}

pub async fn run(args: RebuildArgs) -> Result<()> {
    let (log, local) = args.common.open_log(true).await?;
    let (out, temporary) = match &args.out {
        Some(dir) => (dir.clone(), false),
        None => (
            args.common
                .data
                .join(format!("rebuild-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let outcomes = [
        rebuild_one::<Acl>(&log, &args.common.data, &out).await,
        rebuild_one::<History>(&log, &args.common.data, &out).await,
        rebuild_one::<Unreads>(&log, &args.common.data, &out).await,
        rebuild_one::<Push>(&log, &args.common.data, &out).await,
        rebuild_one::<Notifications>(&log, &args.common.data, &out).await,
    ];
    if temporary {
        let _ = std::fs::remove_dir_all(&out);
    }
    if let Some(n) = local {
        n.stop().await;
    }
    let mut mismatch = false;
    for o in outcomes {
        let o = o?;
        let verdict = match &o.live {
            Some(live) if *live == o.rebuilt => "match",
            Some(_) => {
                mismatch = true;
                "MISMATCH"
            }
            None => "no live model",
        };
        println!(
            "{:<13} position={} events={} rebuilt={} live={} {} ({:.2}s)",
            o.name,
            o.position,
            o.events,
            o.rebuilt,
            o.live.as_deref().unwrap_or("-"),
            verdict,
            o.secs
        );
    }
    if mismatch {
        bail!("a rebuilt read model differs from the live one");
    }
    Ok(())
}
