//! The fetch → fold → commit loop shared by every projector.

use crate::db::{checksum_of, open_writer};
use futures_util::StreamExt;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};
use std::path::Path;
use std::time::Duration;
use switchboard_core::events::Envelope;
use switchboard_streams::{Log, LogError, LogEvent, ReplayStream};
use tokio::sync::mpsc;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Most events folded in one transaction.
const BATCH: usize = 2_000;
/// A batch at least this large means the log is busy: the next batch may
/// wait up to [`LINGER`] to fill.
const BUSY_BATCH: usize = 2;
const LINGER: Duration = Duration::from_millis(10);

/// A read model: its schema and its pure fold.
pub trait Projector: Send + Sync + 'static {
    /// Name of the projector (its checkpoint row and file name).
    const NAME: &'static str;
    /// The tables (and their ORDER BY) that make up the read model, for
    /// checksums. The checkpoint table is not part of it.
    const TABLES: &'static [(&'static str, &'static str)];
    /// Creates the schema; idempotent.
    fn migrate(conn: &Connection) -> rusqlite::Result<()>;
    /// Folds one event. Must depend only on the rows and the event (no
    /// clock, no randomness) so a replay yields the same rows.
    fn apply(
        tx: &Transaction<'_>,
        stream_seq: u64,
        subject: &str,
        env: &Envelope,
    ) -> rusqlite::Result<()>;
}

/// How far a projector has applied the log (a stream sequence).
#[derive(Clone)]
pub struct Progress(watch::Receiver<u64>);

impl Progress {
    pub fn current(&self) -> u64 {
        *self.0.borrow()
    }

    /// Waits until the projector has applied stream sequence `seq`, at most
    /// `timeout`. Returns whether it got there.
    pub async fn wait_for(&self, seq: u64, timeout: Duration) -> bool {
        let mut rx = self.0.clone();
        tokio::time::timeout(timeout, rx.wait_for(|applied| *applied >= seq))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

fn migrate_checkpoint(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS checkpoint (
             projector TEXT PRIMARY KEY,
             seq INTEGER NOT NULL
         );",
    )
}

fn read_checkpoint(conn: &Connection, name: &str) -> rusqlite::Result<u64> {
    let seq: Option<i64> = conn
        .query_row(
            "SELECT seq FROM checkpoint WHERE projector = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()?;
    Ok(seq.unwrap_or(0) as u64)
}

/// Applies `batch` and moves the checkpoint, in one transaction. Events at
/// or below the checkpoint (already applied, possibly by another process)
/// are skipped. Returns the new checkpoint.
fn apply_batch<P: Projector>(conn: &mut Connection, batch: &[LogEvent]) -> rusqlite::Result<u64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut checkpoint = read_checkpoint(&tx, P::NAME)?;
    for ev in batch {
        if ev.stream_seq <= checkpoint {
            continue;
        }
        match &ev.envelope {
            Some(env) => P::apply(&tx, ev.stream_seq, &ev.subject, env)?,
            None => tracing::warn!(
                projector = P::NAME,
                seq = ev.stream_seq,
                subject = %ev.subject,
                "skipping an event that is not a valid envelope"
            ),
        }
        checkpoint = ev.stream_seq;
    }
    tx.execute(
        "INSERT INTO checkpoint (projector, seq) VALUES (?1, ?2)
         ON CONFLICT (projector) DO UPDATE SET seq = excluded.seq",
        rusqlite::params![P::NAME, checkpoint as i64],
    )?;
    tx.commit()?;
    Ok(checkpoint)
}

/// Opens (creating if needed) a read model file and migrates it.
fn open_model<P: Projector>(path: &Path) -> rusqlite::Result<(Connection, u64)> {
    let conn = open_writer(path)?;
    migrate_checkpoint(&conn)?;
    P::migrate(&conn)?;
    let cp = read_checkpoint(&conn, P::NAME)?;
    Ok((conn, cp))
}

/// Checkpoint and checksum of a read model, read in one snapshot.
pub fn live_checksum<P: Projector>(conn: &mut Connection) -> rusqlite::Result<(u64, String)> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
    let cp = read_checkpoint(&tx, P::NAME)?;
    let sum = checksum_of(&tx, P::TABLES)?;
    tx.commit()?;
    Ok((cp, sum))
}

/// A projector bound to its file, ready to run.
pub struct Runner<P: Projector> {
    conn: Connection,
    checkpoint: u64,
    progress: watch::Sender<u64>,
    _p: std::marker::PhantomData<P>,
}

impl<P: Projector> Runner<P> {
    pub fn open(path: &Path) -> rusqlite::Result<(Runner<P>, Progress)> {
        let (conn, checkpoint) = open_model::<P>(path)?;
        let (tx, rx) = watch::channel(checkpoint);
        Ok((
            Runner {
                conn,
                checkpoint,
                progress: tx,
                _p: std::marker::PhantomData,
            },
            Progress(rx),
        ))
    }

    /// Follows the log until `cancel` fires. Transient failures (NATS gone,
    /// SQLite busy) are logged and retried from the last checkpoint.
    pub async fn run(self, log: Log, cancel: CancellationToken) {
        let Runner {
            conn,
            mut checkpoint,
            progress,
            ..
        } = self;
        let mut conn = Some(conn);
        let backoff = Duration::from_millis(300);
        let mut connects = log.connects();
        let mut last_batch = 0usize;
        while !cancel.is_cancelled() {
            connects.mark_unchanged();
            let replay = tokio::select! {
                _ = cancel.cancelled() => break,
                r = log.replay(checkpoint + 1) => r,
            };
            let mut events = match replay {
                Ok(s) => Pump::new(s),
                Err(e) => {
                    tracing::warn!(projector = P::NAME, error = %e, "cannot read the log; retrying");
                    tokio::select! { _ = cancel.cancelled() => break, _ = tokio::time::sleep(backoff) => continue }
                }
            };
            loop {
                let first = tokio::select! {
                    _ = cancel.cancelled() => break,
                    // After a reconnect the consumer may be gone with the
                    // old server: start a fresh one from the checkpoint now
                    // rather than after its missed heartbeats.
                    Ok(()) = connects.changed() => break,
                    n = events.next() => n,
                };
                let mut batch = match first {
                    Some(Ok(ev)) => vec![ev],
                    Some(Err(e)) => {
                        tracing::warn!(projector = P::NAME, error = %e, "log read failed; resuming from checkpoint");
                        tokio::time::sleep(backoff).await;
                        break;
                    }
                    None => break,
                };
                // Under load, linger briefly so one transaction carries
                // many events (commits, not rows, dominate the fold's cost);
                // when idle, apply at once so reads see writes sooner.
                let deadline = tokio::time::Instant::now() + LINGER;
                while batch.len() < BATCH {
                    match events.try_next() {
                        Some(Ok(ev)) => batch.push(ev),
                        Some(Err(_)) => break,
                        None if last_batch >= BUSY_BATCH => {
                            match tokio::time::timeout_at(deadline, events.next()).await {
                                Ok(Some(Ok(ev))) => batch.push(ev),
                                _ => break,
                            }
                        }
                        None => break,
                    }
                }
                last_batch = batch.len();
                let Some(mut c) = conn.take() else { return };
                let (c, result) = match tokio::task::spawn_blocking(move || {
                    let r = apply_batch::<P>(&mut c, &batch);
                    (c, r)
                })
                .await
                {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::error!(projector = P::NAME, error = %e, "fold task panicked; projector stops");
                        return;
                    }
                };
                conn = Some(c);
                match result {
                    Ok(cp) => {
                        checkpoint = cp;
                        progress.send_replace(cp);
                    }
                    Err(e) => {
                        tracing::error!(projector = P::NAME, error = %e, "fold failed; retrying from checkpoint");
                        tokio::time::sleep(backoff).await;
                        break;
                    }
                }
            }
        }
        tracing::info!(projector = P::NAME, checkpoint, "projector stopped");
    }
}

/// Outcome of a rebuild.
#[derive(Debug, Clone)]
pub struct Rebuilt {
    pub checkpoint: u64,
    pub events: u64,
    pub checksum: String,
}

/// Replays the log from the start into a fresh read model at `path` until
/// stream sequence `up_to` is applied. The file must not exist.
pub async fn rebuild<P: Projector>(
    log: &Log,
    path: &Path,
    up_to: u64,
) -> Result<Rebuilt, Box<dyn std::error::Error + Send + Sync>> {
    if path.exists() {
        return Err(format!("{} already exists", path.display()).into());
    }
    let (conn, _) = open_model::<P>(path)?;
    let mut conn = Some(conn);
    let mut checkpoint = 0;
    let mut count = 0u64;
    if up_to > 0 {
        let mut events = Pump::new(log.replay(1).await?);
        while checkpoint < up_to {
            let mut batch = Vec::with_capacity(BATCH);
            match tokio::time::timeout(Duration::from_secs(30), events.next()).await {
                Ok(Some(ev)) => batch.push(ev?),
                Ok(None) => return Err("the log ended early".into()),
                Err(_) => return Err("the log stopped delivering during rebuild".into()),
            }
            while batch.len() < BATCH {
                match events.try_next() {
                    Some(Ok(ev)) => batch.push(ev),
                    _ => break,
                }
            }
            batch.retain(|ev| ev.stream_seq <= up_to);
            count += batch.len() as u64;
            let mut c = conn.take().ok_or("lost connection")?;
            let (c, r) = tokio::task::spawn_blocking(move || {
                let r = apply_batch::<P>(&mut c, &batch);
                (c, r)
            })
            .await?;
            checkpoint = r?;
            conn = Some(c);
        }
    }
    let mut c = conn.take().ok_or("lost connection")?;
    let (cp, checksum) = live_checksum::<P>(&mut c)?;
    Ok(Rebuilt {
        checkpoint: cp.max(checkpoint),
        events: count,
        checksum,
    })
}

/// Reads the log on its own task into a bounded queue, so the next events
/// arrive while a batch is being folded (the consumer only asks the server
/// for more when polled).
struct Pump {
    rx: mpsc::Receiver<Result<LogEvent, LogError>>,
    task: tokio::task::JoinHandle<()>,
}

impl Pump {
    fn new(mut stream: ReplayStream) -> Pump {
        let (tx, rx) = mpsc::channel(BATCH * 4);
        let task = tokio::spawn(async move {
            while let Some(item) = stream.next().await {
                if tx.send(item).await.is_err() {
                    break;
                }
            }
        });
        Pump { rx, task }
    }

    async fn next(&mut self) -> Option<Result<LogEvent, LogError>> {
        self.rx.recv().await
    }

    fn try_next(&mut self) -> Option<Result<LogEvent, LogError>> {
        self.rx.try_recv().ok()
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        self.task.abort();
    }
}
