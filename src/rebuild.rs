//! `switchboard rebuild`: replay the log into fresh read models and prove
//! the fold is pure — each rebuilt model's checksum must equal the live
//! model's at the same log position.
//!
//! With `--until <RFC 3339 time | stream seq>` it materializes every read
//! model as of that moment instead: the log's prefix up to the bound is
//! folded (nothing after it: later edits, deletes, membership changes are
//! not applied) into `--out` (default `<data>/as-of-<seq>`), with an
//! `as-of.json` beside the models saying which bound they hold, ready for
//! `serve --read-only --data <out>`.

use crate::Common;
use anyhow::{bail, Context, Result};
use clap::Args;
use futures_util::StreamExt;
use std::path::{Path, PathBuf};
use std::time::Instant;
use switchboard_projections::acl::Acl;
use switchboard_projections::audit::Audit;
use switchboard_projections::history::History;
use switchboard_projections::notifications::Notifications;
use switchboard_projections::push::Push;
use switchboard_projections::search::Search;
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
    /// Materialize the read models as of this moment: an RFC 3339 time
    /// (every event up to the first one stamped later) or a stream
    /// sequence. Writes them to --out (default `<data>/as-of-<seq>`),
    /// keeps them, and compares nothing; serve them with
    /// `serve --read-only --data <out>`.
    #[arg(long)]
    until: Option<String>,
}

/// What `rebuild --until` wrote beside the models (`as-of.json`), read by
/// `serve --read-only`.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct AsOf {
    /// The bound as given.
    pub until: String,
    /// The last stream sequence folded (0: none).
    pub position: u64,
    /// The server time of that event (epoch ms; 0 when none).
    pub position_ts_ms: i64,
    /// The data directory whose log was replayed (where `serve
    /// --read-only` finds the log's nats-server when not given --nats).
    pub source_data: PathBuf,
    /// The log's stream.
    pub stream: String,
}

/// The file name of [`AsOf`] in a read-only data directory.
pub const AS_OF_FILE: &str = "as-of.json";

/// Reads `dir`'s [`AsOf`], if it has one.
pub fn read_as_of(dir: &Path) -> Result<Option<AsOf>> {
    let path = dir.join(AS_OF_FILE);
    match std::fs::read(&path) {
        Ok(b) => Ok(Some(
            serde_json::from_slice(&b).with_context(|| format!("reading {}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// A `--until` bound as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Every event up to and including this stream sequence.
    Seq(u64),
    /// Every event before the first one whose server time is later.
    Time(i64),
}

impl Until {
    pub fn parse(text: &str) -> Result<Until> {
        let t = text.trim();
        if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(Until::Seq(t.parse().context("--until: stream sequence")?));
        }
        switchboard_core::time::parse_rfc3339_ms(t)
            .map(Until::Time)
            .with_context(|| {
                format!(
                    "--until {t:?}: an RFC 3339 time (2026-11-28T12:00:00Z) or a stream sequence"
                )
            })
    }
}

/// The last stream sequence (and its event's time) within `until`: the log
/// is read from the start and stops at the first event past the bound
/// (its sequence above a `Seq`, or its server time after a `Time`: the
/// bound is a prefix of the log, in log order).
pub async fn resolve_until(log: &Log, until: Until) -> Result<(u64, i64)> {
    let head = log.last_seq().await?;
    if head == 0 {
        return Ok((0, 0));
    }
    let mut events = log.replay(1).await?;
    let mut last = (0, 0);
    loop {
        let ev = match tokio::time::timeout(std::time::Duration::from_secs(30), events.next()).await
        {
            Ok(Some(ev)) => ev?,
            Ok(None) => bail!("the log ended early"),
            Err(_) => bail!("the log stopped delivering while looking for the bound"),
        };
        let ts = ev.envelope.as_ref().map_or(last.1, |e| e.ts_ms);
        let past = match until {
            Until::Seq(n) => ev.stream_seq > n,
            Until::Time(t) => ev.envelope.as_ref().is_some_and(|e| e.ts_ms > t),
        };
        if past {
            break;
        }
        last = (ev.stream_seq, ts);
        if ev.stream_seq >= head {
            break;
        }
    }
    Ok(last)
}

/// Rebuilds projector `P` into `out` up to stream sequence `position`.
pub async fn rebuild_at<P: Projector>(log: &Log, out: &Path, position: u64) -> Result<Outcome> {
    let start = Instant::now();
    let r = rebuild::<P>(log, &out.join(format!("{}.db", P::NAME)), position)
        .await
        .map_err(|e| anyhow::anyhow!("rebuilding {}: {e}", P::NAME))?;
    Ok(Outcome {
        name: P::NAME,
        position,
        events: r.events,
        rebuilt: r.checksum,
        live: None,
        secs: start.elapsed().as_secs_f64(),
    })
}

/// `rebuild --until`: every read model as of the bound, kept in `out`.
async fn run_until(args: &RebuildArgs, until: &str) -> Result<()> {
    let bound = Until::parse(until)?;
    let (log, local) = args.common.open_log_as(true, true).await?;
    let result = async {
        let (position, position_ts_ms) = resolve_until(&log, bound).await?;
        let out = match &args.out {
            Some(dir) => dir.clone(),
            None => args.common.data.join(format!("as-of-{position}")),
        };
        if out.join(AS_OF_FILE).exists()
            || std::fs::read_dir(&out).is_ok_and(|mut d| d.next().is_some())
        {
            bail!(
                "{} is not empty: rebuild --until writes into a new directory",
                out.display()
            );
        }
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        let outcomes = [
            rebuild_at::<Acl>(&log, &out, position).await?,
            rebuild_at::<History>(&log, &out, position).await?,
            rebuild_at::<Unreads>(&log, &out, position).await?,
            rebuild_at::<Push>(&log, &out, position).await?,
            rebuild_at::<Notifications>(&log, &out, position).await?,
            rebuild_at::<Search>(&log, &out, position).await?,
            rebuild_at::<Audit>(&log, &out, position).await?,
        ];
        let source_data =
            std::fs::canonicalize(&args.common.data).unwrap_or_else(|_| args.common.data.clone());
        let as_of = AsOf {
            until: until.to_string(),
            position,
            position_ts_ms,
            source_data,
            stream: args.common.stream.clone(),
        };
        std::fs::write(out.join(AS_OF_FILE), serde_json::to_vec_pretty(&as_of)?)
            .with_context(|| format!("writing {}", out.join(AS_OF_FILE).display()))?;
        for o in outcomes {
            println!(
                "{:<13} position={} events={} rebuilt={} ({:.2}s)",
                o.name, o.position, o.events, o.rebuilt, o.secs
            );
        }
        println!(
            "as of log position {position} ({}): {}",
            switchboard_core::time::rfc3339_ms(position_ts_ms),
            out.display()
        );
        println!(
            "serve it: switchboard serve --read-only --data {}",
            out.display()
        );
        Ok(())
    }
    .await;
    if let Some(n) = local {
        n.stop().await;
    }
    result
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
    if let Some(until) = &args.until {
        return run_until(&args, until).await;
    }
    let (log, local) = args.common.open_log_as(true, true).await?;
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
        rebuild_one::<Search>(&log, &args.common.data, &out).await,
        rebuild_one::<Audit>(&log, &args.common.data, &out).await,
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

#[derive(Args)]
pub struct ReindexSearchArgs {
    #[command(flatten)]
    common: Common,
    /// OpenSearch's URL (`http://localhost:9200`).
    #[arg(long, env = "SWITCHBOARD_OPENSEARCH_URL")]
    opensearch_url: String,
}

/// `switchboard reindex-search`: replays the log into a fresh local search
/// model (under --data, removed afterwards), empties the OpenSearch
/// indexes and sends every document, then the checkpoint — the log head
/// at the start. A running gateway's indexer then resumes from there
/// (restart it if it was running during the reindex).
#[cfg(feature = "opensearch")]
pub async fn reindex_search(args: ReindexSearchArgs) -> Result<()> {
    use switchboard_projections::search::indexer;
    use switchboard_projections::search::opensearch::OpenSearchBackend;
    use switchboard_projections::Readers;
    let (log, local) = args.common.open_log_as(true, true).await?;
    let out = args
        .common
        .data
        .join(format!("reindex-{}", std::process::id()));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let result = async {
        let head = log.last_seq().await?;
        let start = Instant::now();
        let path = out.join(format!("{}.db", Search::NAME));
        rebuild::<Search>(&log, &path, head)
            .await
            .map_err(|e| anyhow::anyhow!("replaying the log: {e}"))?;
        let backend = OpenSearchBackend::connect(&args.opensearch_url)?;
        backend.reset().await?;
        let sent = indexer::reindex(&backend, &Readers::new(&path), head).await?;
        println!(
            "reindexed {sent} documents into OpenSearch through log position {head} ({:.2}s)",
            start.elapsed().as_secs_f64()
        );
        anyhow::Ok(())
    }
    .await;
    let _ = std::fs::remove_dir_all(&out);
    if let Some(n) = local {
        n.stop().await;
    }
    result
}

#[cfg(not(feature = "opensearch"))]
pub async fn reindex_search(args: ReindexSearchArgs) -> Result<()> {
    let _ = (&args.common.data, &args.opensearch_url);
    bail!("this build has no OpenSearch backend: build with `--features opensearch`")
}
