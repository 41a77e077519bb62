//! The fetch → fold → commit loop shared by every projector.
//!
//! A batch of events and the checkpoint commit together or not at all. An
//! event the fold cannot apply (a UNIQUE conflict, a panic) is a bug in the
//! fold or in the decision that accepted it: the runner logs it, reports it
//! through [`Progress::health`] and retries from the checkpoint with
//! backoff, never skipping past it.

use crate::db::{checksum_of, open_writer};
use futures_util::StreamExt;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::time::Duration;
use switchboard_core::events::{Body, Envelope};
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
/// Pause before re-reading the log after a read failed (NATS away).
const LOG_RETRY: Duration = Duration::from_millis(300);
/// First and longest pause before retrying a batch that failed to fold.
const FOLD_RETRY_FIRST: Duration = Duration::from_millis(300);
const FOLD_RETRY_MAX: Duration = Duration::from_secs(5);

/// A read model: its schema and its pure fold.
pub trait Projector: Send + Sync + 'static {
    /// Name of the projector (its checkpoint row and file name).
    const NAME: &'static str;
    /// The tables (and their ORDER BY) that make up the read model, for
    /// checksums. The checkpoint table is not part of it.
    const TABLES: &'static [(&'static str, &'static str)];
    /// Whether the model stores message text. Its writer then runs with
    /// `PRAGMA secure_delete=ON` (what a fold overwrites or deletes is
    /// zeroed in the file, not left in free space), and a batch that erased
    /// text ([`Projector::erases_text`]) is purged from the files after it
    /// commits (see [`apply_batch`]).
    const HOLDS_TEXT: bool = false;
    /// Creates the schema; idempotent.
    fn migrate(conn: &Connection) -> rusqlite::Result<()>;
    /// Whether folding `env` erased message text from the model (a
    /// `ContentErased`, for a model that [holds text](Projector::HOLDS_TEXT)).
    fn erases_text(env: &Envelope) -> bool {
        Self::HOLDS_TEXT && matches!(env.body, Some(Body::ContentErased(_)))
    }
    /// Runs after a batch that erased text committed, before the WAL is
    /// checkpointed and truncated: whatever else the model must do so the
    /// erased text leaves its files (e.g. merging an FTS5 index, whose old
    /// segments still hold the erased terms). Must not change what the
    /// model's [`Projector::TABLES`] hold.
    fn after_erasure(_conn: &Connection) -> rusqlite::Result<()> {
        Ok(())
    }
    /// Folds one event. Must depend only on the rows and the event (no
    /// clock, no randomness) so a replay yields the same rows.
    fn apply(
        tx: &Transaction<'_>,
        stream_seq: u64,
        subject: &str,
        env: &Envelope,
    ) -> rusqlite::Result<()>;
}

/// Empties a read model written by an older schema (its `PRAGMA
/// user_version` below `version`) so it is refolded from the log: drops
/// each of `objects` (`"TABLE name"`, `"TRIGGER name"`, …) and the
/// projector's checkpoint. The model is a cache of the log; the new fold
/// must see every event again (what `switchboard rebuild` proves equal).
/// The caller creates the new schema and sets `user_version` after.
pub(crate) fn refold_if_older(
    conn: &Connection,
    projector: &str,
    version: i64,
    objects: &[&str],
) -> rusqlite::Result<()> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found < version {
        for o in objects {
            conn.execute_batch(&format!("DROP {} IF EXISTS {};", kind_of(o), name_of(o)))?;
        }
        conn.execute("DELETE FROM checkpoint WHERE projector = ?1", [projector])?;
    }
    Ok(())
}

fn kind_of(object: &str) -> &str {
    object.split_whitespace().next().unwrap_or("TABLE")
}

fn name_of(object: &str) -> &str {
    object.split_whitespace().nth(1).unwrap_or(object)
}

/// Why a batch was not applied. Either way its transaction rolled back:
/// nothing of the batch is in the read model and the checkpoint did not
/// move.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The fold rejected this event (e.g. it collides with an existing row
    /// on a UNIQUE constraint). The log holds it, so this is a bug in the
    /// fold or in the decision that appended it: retrying fails the same
    /// way until the code is fixed, and the projector stalls on it.
    #[error("folding stream seq {stream_seq} ({subject}) failed: {source}")]
    Fold {
        stream_seq: u64,
        subject: String,
        #[source]
        source: rusqlite::Error,
    },
    /// The read model's store failed (busy, I/O, disk full) outside any
    /// one event's fold; may clear on retry.
    #[error("read model store: {0}")]
    Store(#[from] rusqlite::Error),
}

/// How far a projector has applied the log (a stream sequence), and
/// whether it is stuck.
#[derive(Clone)]
pub struct Progress {
    applied: watch::Receiver<u64>,
    health: watch::Receiver<Option<String>>,
}

impl Progress {
    pub fn current(&self) -> u64 {
        *self.applied.borrow()
    }

    /// `None` while the projector folds normally; `Some(last error)` while
    /// its last batch failed (a fold conflict, a panic in the fold, the
    /// store failing) and it is retrying with backoff, i.e. stalled at
    /// [`Progress::current`]. Cleared by the next batch that commits.
    pub fn health(&self) -> Option<String> {
        self.health.borrow().clone()
    }

    /// Waits until the projector has applied stream sequence `seq`, at most
    /// `timeout`. Returns whether it got there.
    pub async fn wait_for(&self, seq: u64, timeout: Duration) -> bool {
        let mut rx = self.applied.clone();
        tokio::time::timeout(timeout, rx.wait_for(|applied| *applied >= seq))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// The runner's side of [`Progress`].
struct Reporter {
    applied: watch::Sender<u64>,
    health: watch::Sender<Option<String>>,
}

impl Reporter {
    fn new(checkpoint: u64) -> (Reporter, Progress) {
        let (applied, applied_rx) = watch::channel(checkpoint);
        let (health, health_rx) = watch::channel(None);
        (
            Reporter { applied, health },
            Progress {
                applied: applied_rx,
                health: health_rx,
            },
        )
    }

    fn committed(&self, checkpoint: u64) {
        self.applied.send_replace(checkpoint);
        self.health.send_if_modified(|h| h.take().is_some());
    }

    fn failing(&self, why: String) {
        self.health.send_replace(Some(why));
    }
}

/// Exponential backoff between retries of a failing batch, so an event
/// that can never be folded costs a retry every few seconds, not a hot
/// loop.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Backoff {
        Backoff(FOLD_RETRY_FIRST)
    }

    fn reset(&mut self) {
        self.0 = FOLD_RETRY_FIRST;
    }

    /// The pause before the next retry; doubles up to [`FOLD_RETRY_MAX`].
    fn next_delay(&mut self) -> Duration {
        let d = self.0;
        self.0 = (d * 2).min(FOLD_RETRY_MAX);
        d
    }
}

/// Sleeps `d` unless `cancel` fires first.
async fn pause(cancel: &CancellationToken, d: Duration) {
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = tokio::time::sleep(d) => {}
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
/// are skipped. Returns the new checkpoint; on error nothing of the batch
/// is applied (the transaction rolls back when dropped). When the batch
/// erased text ([`Projector::erases_text`]), the erased text is then
/// purged from the model's files (see `purge_erased`).
///
/// Public so that a benchmark's baseline folds with exactly the runner's
/// statements and commits, minus the log (`switchboard-bench rebuild`).
pub fn apply_batch<P: Projector>(
    conn: &mut Connection,
    batch: &[LogEvent],
) -> Result<u64, BatchError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut checkpoint = read_checkpoint(&tx, P::NAME)?;
    let mut erased = false;
    for ev in batch {
        if ev.stream_seq <= checkpoint {
            continue;
        }
        match &ev.envelope {
            Some(env) => {
                P::apply(&tx, ev.stream_seq, &ev.subject, env).map_err(|source| {
                    BatchError::Fold {
                        stream_seq: ev.stream_seq,
                        subject: ev.subject.clone(),
                        source,
                    }
                })?;
                erased |= P::erases_text(env);
            }
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
    if erased {
        purge_erased::<P>(conn);
    }
    Ok(checkpoint)
}

/// How many times [`purge_erased`] tries to truncate the WAL while readers
/// still hold older snapshots (each try waits up to the writer's busy
/// timeout).
const PURGE_TRIES: usize = 3;

/// After a committed batch that erased text: the model's own purge
/// ([`Projector::after_erasure`]), then a `wal_checkpoint(TRUNCATE)`, so
/// the page images that held the text leave the `-wal` file (with
/// `secure_delete` the database file no longer holds it once the pages
/// are checkpointed). The batch is committed whatever happens here: a
/// failure is logged (the next erasure purges again; the WAL is rewritten
/// from its start after the next full checkpoint anyway).
fn purge_erased<P: Projector>(conn: &Connection) {
    if let Err(e) = P::after_erasure(conn) {
        tracing::error!(projector = P::NAME, error = %e, "purging erased text from the model failed");
    }
    for attempt in 1..=PURGE_TRIES {
        // (busy, WAL frames, frames checkpointed); busy = 1 when a reader
        // kept the checkpoint from finishing.
        match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            r.get::<_, i64>(0)
        }) {
            Ok(0) => return,
            Ok(_) if attempt < PURGE_TRIES => continue,
            Ok(_) => tracing::warn!(
                projector = P::NAME,
                "readers kept the WAL from being truncated after an erasure; the next erasure retries"
            ),
            Err(e) => {
                tracing::error!(projector = P::NAME, error = %e, "truncating the WAL after an erasure failed");
                return;
            }
        }
    }
}

/// Creates the checkpoint table and the projector's schema; idempotent.
pub(crate) fn migrate_model<P: Projector>(conn: &Connection) -> rusqlite::Result<()> {
    migrate_checkpoint(conn)?;
    P::migrate(conn)
}

/// Opens (creating if needed) a read model file and migrates it; returns
/// the writer connection and its checkpoint.
pub fn open_model<P: Projector>(path: &Path) -> rusqlite::Result<(Connection, u64)> {
    let conn = open_writer(path)?;
    if P::HOLDS_TEXT {
        conn.pragma_update(None, "secure_delete", "ON")?;
    }
    migrate_model::<P>(&conn)?;
    let cp = read_checkpoint(&conn, P::NAME)?;
    Ok((conn, cp))
}

/// The checkpoint the model at `conn` has committed.
#[cfg(test)]
pub(crate) fn checkpoint_of<P: Projector>(conn: &Connection) -> rusqlite::Result<u64> {
    read_checkpoint(conn, P::NAME)
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
    writer: Writer<P>,
    checkpoint: u64,
    reporter: Reporter,
}

impl<P: Projector> Runner<P> {
    pub fn open(path: &Path) -> rusqlite::Result<(Runner<P>, Progress)> {
        let (conn, checkpoint) = open_model::<P>(path)?;
        let (reporter, progress) = Reporter::new(checkpoint);
        Ok((
            Runner {
                writer: Writer::new(path, conn),
                checkpoint,
                reporter,
            },
            progress,
        ))
    }

    /// Follows the log until `cancel` fires. Failures (NATS gone, SQLite
    /// busy, an event the fold rejects, a panic in the fold) are logged
    /// and retried from the last checkpoint; a failing fold is retried
    /// with exponential backoff and reported by [`Progress::health`].
    pub async fn run(self, log: Log, cancel: CancellationToken) {
        let Runner {
            mut writer,
            mut checkpoint,
            reporter,
        } = self;
        let mut backoff = Backoff::new();
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
                    pause(&cancel, LOG_RETRY).await;
                    continue;
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
                        pause(&cancel, LOG_RETRY).await;
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
                let lag = batch.last().map(|ev| {
                    let ts_ms = ev.envelope.as_ref().map_or(0, |e| e.ts_ms);
                    (ev.pending, ts_ms)
                });
                match writer.fold(batch).await {
                    Ok(cp) => {
                        checkpoint = cp;
                        reporter.committed(cp);
                        backoff.reset();
                        if let Some((pending, ts_ms)) = lag {
                            record_lag(P::NAME, pending, ts_ms);
                        }
                    }
                    Err(why) => {
                        // Nothing of the batch was committed: drop the
                        // events read ahead and re-read from the
                        // checkpoint after the pause.
                        reporter.failing(why);
                        pause(&cancel, backoff.next_delay()).await;
                        break;
                    }
                }
            }
        }
        tracing::info!(projector = P::NAME, checkpoint, "projector stopped");
    }
}

/// `switchboard_projector_lag_events` (events in the log not yet applied,
/// as the consumer saw it when it read the batch's last one) and
/// `switchboard_projector_lag_seconds` (how old that last event was when
/// committed; 0 once nothing is pending). Gauges keep their value while
/// the projector is idle, which is right: idle means caught up.
fn record_lag(projector: &'static str, pending: u64, ts_ms: i64) {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let seconds = if pending == 0 || ts_ms <= 0 {
        0.0
    } else {
        (now_ms - ts_ms).max(0) as f64 / 1000.0
    };
    metrics::gauge!("switchboard_projector_lag_events", "projector" => projector)
        .set(pending as f64);
    metrics::gauge!("switchboard_projector_lag_seconds", "projector" => projector).set(seconds);
}

/// The projector's writer connection, which folds batches on the blocking
/// pool. A panic in the fold takes the connection with it (its open
/// transaction rolls back as it drops); the next batch reopens the file.
struct Writer<P: Projector> {
    path: PathBuf,
    conn: Option<Connection>,
    _p: std::marker::PhantomData<P>,
}

impl<P: Projector> Writer<P> {
    fn new(path: &Path, conn: Connection) -> Writer<P> {
        Writer {
            path: path.to_path_buf(),
            conn: Some(conn),
            _p: std::marker::PhantomData,
        }
    }

    /// Applies `batch` and its checkpoint in one transaction, returning the
    /// new checkpoint. On failure nothing was committed; the failure is
    /// logged at error level here and returned as a message for
    /// [`Progress::health`].
    async fn fold(&mut self, batch: Vec<LogEvent>) -> Result<u64, String> {
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => Self::reopen(self.path.clone()).await?,
        };
        let first = batch.first().map_or(0, |ev| ev.stream_seq);
        let last = batch.last().map_or(0, |ev| ev.stream_seq);
        let joined = tokio::task::spawn_blocking(move || {
            let r = apply_batch::<P>(&mut conn, &batch);
            (conn, r)
        })
        .await;
        let err = match joined {
            Ok((conn, r)) => {
                self.conn = Some(conn);
                match r {
                    Ok(cp) => return Ok(cp),
                    Err(e) => e,
                }
            }
            Err(e) => {
                let why = panic_message(e);
                tracing::error!(
                    projector = P::NAME,
                    first_seq = first,
                    last_seq = last,
                    error = %why,
                    "fold task failed; reopening the read model and retrying from the checkpoint"
                );
                return Err(format!(
                    "fold of stream seqs {first}..={last} failed: {why}"
                ));
            }
        };
        match &err {
            BatchError::Fold {
                stream_seq,
                subject,
                source,
            } => tracing::error!(
                projector = P::NAME,
                seq = stream_seq,
                subject = %subject,
                error = %source,
                "the fold rejected an event the log holds; stalled on it, retrying with backoff"
            ),
            BatchError::Store(e) => tracing::error!(
                projector = P::NAME,
                first_seq = first,
                last_seq = last,
                error = %e,
                "read model store failed; retrying from the checkpoint"
            ),
        }
        Err(err.to_string())
    }

    /// Opens the file again after a panic took the connection.
    /// (Takes the path, not `&self`: the writer's connection is not `Sync`,
    /// and the runner's future must stay `Send`.)
    async fn reopen(path: PathBuf) -> Result<Connection, String> {
        let why = match tokio::task::spawn_blocking(move || open_model::<P>(&path)).await {
            Ok(Ok((conn, _))) => return Ok(conn),
            Ok(Err(e)) => e.to_string(),
            Err(e) => panic_message(e),
        };
        tracing::error!(projector = P::NAME, error = %why, "cannot reopen the read model; retrying with backoff");
        Err(format!("cannot reopen the read model: {why}"))
    }
}

/// What a failed blocking task said: the panic's message if it panicked.
fn panic_message(e: tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return e.to_string();
    }
    let payload = e.into_panic();
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string payload".to_string());
    format!("panicked: {msg}")
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

#[cfg(test)]
mod tests;

/// The ids of the messages of channel `ch` that the erasure `e` covers.
/// `select` reads `(id, seq, ts_ms, sender_id)` of the channel's candidates
/// with `?1` = the channel and `?2` = `e.before_ts_ms` (through an index by
/// channel and time); [`ContentErased::covers`] decides the rest (authors,
/// held authors, `through_channel_seq`), the same for every model.
///
/// [`ContentErased::covers`]: switchboard_core::events::ContentErased::covers
pub(crate) fn covered_by(
    tx: &rusqlite::Transaction<'_>,
    select: &str,
    ch: &str,
    e: &switchboard_core::events::ContentErased,
) -> rusqlite::Result<Vec<String>> {
    let mut stmt = tx.prepare_cached(select)?;
    let rows = stmt.query_map(rusqlite::params![ch, e.before_ts_ms], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    let mut ids = Vec::new();
    for row in rows {
        let (id, seq, ts_ms, sender) = row?;
        if e.covers(seq.max(0) as u64, ts_ms, &sender) {
            ids.push(id);
        }
    }
    Ok(ids)
}
