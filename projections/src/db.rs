//! SQLite plumbing: one writer connection per read model (WAL,
//! `synchronous=NORMAL`), a small pool of read connections, and checksums.
//!
//! # Where reads run, and why they never wait long
//!
//! Two kinds of read, two places:
//!
//! - **Point reads** (a token, a channel's facts, a membership, one
//!   message, a head seq) run inline on the calling tokio worker
//!   ([`Readers::read`]). They are indexed lookups on cached statements,
//!   single-digit microseconds; handing each to another thread cost more
//!   than the query (the thread hand-offs were ~30% of `serve`'s CPU under
//!   `bench send`, README "Benchmarks").
//! - **Pages** (users, members, channels, history and event pages) run on
//!   tokio's blocking pool, at most [`PAGE_READS_AT_ONCE`] per read model
//!   at a time ([`Readers::read_page`]). Every page is bounded (at most
//!   1,000 rows, keyset-paginated), but 1,000 rows still take a few
//!   milliseconds, which on a two-core machine is long enough to stall the
//!   WebSocket writers and heartbeats sharing a worker. Further page reads
//!   queue asynchronously for a permit (no thread, no connection held).
//!
//! Neither kind waits for the projector's writer. In WAL mode a reader
//! reads a snapshot (the database file plus the WAL frames committed when
//! its transaction began) and takes no lock a writer holds: an open write
//! transaction, a commit and the writer's automatic PASSIVE checkpoints
//! never make a reader wait (`tests::wal_readers_do_not_wait_for_the_writer`
//! runs a reader with no busy timeout at all beside an open write
//! transaction and a checkpoint). SQLite answers a WAL reader `SQLITE_BUSY`
//! only while another connection runs WAL recovery (opening the file after
//! a crash — done by the writer before serving starts), while the *last*
//! connection to the file closes and cleans up (the writer stays open for
//! the process' life), or beside a connection in exclusive locking mode
//! (none here). (When every WAL read-mark slot is held by readers of
//! different snapshots, SQLite retries internally with short sleeps; reads
//! here are short, so slots free within microseconds.) So readers get a short busy timeout, [`READ_BUSY_TIMEOUT`]:
//! such a moment is waited out briefly and otherwise answered as
//! [`ReadError::Busy`] (a retryable 503) instead of holding a worker for the
//! 10 s the writer's own timeout allows.

use crate::ReadError;
use rusqlite::{types::ValueRef, Connection, OpenFlags};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// How long the writer waits for a lock (another process folding into the
/// same file, a checkpoint): it runs on the blocking pool.
const WRITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a reader waits on a lock before answering
/// [`ReadError::Busy`] (see the module docs for when that can happen).
pub const READ_BUSY_TIMEOUT: Duration = Duration::from_millis(100);

/// Page reads of one read model running at once on the blocking pool.
pub const PAGE_READS_AT_ONCE: usize = 4;

/// Rows a read may return and still run inline: below this a page costs
/// about what the hand-off to the blocking pool would (a 50-message page
/// with reactions: ~0.2 ms in a debug build).
pub const INLINE_ROWS: u32 = 64;

/// Read connections kept open per read model between reads.
const POOLED_READERS: usize = 16;

fn tune(conn: &Connection, busy: Duration) -> rusqlite::Result<()> {
    conn.busy_timeout(busy)?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    Ok(())
}

/// Opens the read model's writer connection, creating the file if needed.
pub fn open_writer(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    tune(&conn, WRITE_BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // NORMAL in WAL mode: a power loss may lose the last transactions but
    // never corrupts; the checkpoint rolls back with them, so the projector
    // re-applies them from the log.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

/// A pool of read-only connections to one read model (see the module docs
/// for which reads run where).
#[derive(Clone)]
pub struct Readers {
    path: PathBuf,
    pool: Arc<Mutex<Vec<Connection>>>,
    pages: Arc<Semaphore>,
}

impl Readers {
    pub fn new(path: &Path) -> Readers {
        Readers {
            path: path.to_path_buf(),
            pool: Arc::new(Mutex::new(Vec::new())),
            pages: Arc::new(Semaphore::new(PAGE_READS_AT_ONCE)),
        }
    }

    fn checkout(&self) -> rusqlite::Result<Connection> {
        let pooled = self
            .pool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        match pooled {
            Some(c) => Ok(c),
            None => {
                let c = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                tune(&c, READ_BUSY_TIMEOUT)?;
                c.set_prepared_statement_cache_capacity(64);
                Ok(c)
            }
        }
    }

    fn checkin(&self, conn: Connection) {
        let mut pool = self
            .pool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if pool.len() < POOLED_READERS {
            pool.push(conn);
        }
    }

    /// Runs a point read `f` inline with a pooled connection: an indexed
    /// lookup of a few rows (see the module docs). Anything that returns a
    /// page goes through [`Readers::read_page`].
    pub async fn read<R, F>(&self, f: F) -> Result<R, ReadError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        self.read_blocking(f)
    }

    /// Runs a page read `f` (up to 1,000 rows) on the blocking pool, at
    /// most [`PAGE_READS_AT_ONCE`] of this model at a time; later ones
    /// wait for a turn without holding a thread.
    pub async fn read_page<R, F>(&self, f: F) -> Result<R, ReadError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        let permit = self
            .pages
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| ReadError::Join(e.to_string()))?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let out = this.read_blocking(f);
            drop(permit);
            out
        })
        .await
        .map_err(|e| ReadError::Join(e.to_string()))?
    }

    /// Runs a page read `f` over this model and `other` in one hand-off to
    /// the blocking pool (two models a single answer needs, e.g. the ACL
    /// model's channel list and the unread model's counts: one thread
    /// wake-up instead of two). Holds this model's page permit only.
    pub async fn read_page_with<R, F>(&self, other: &Readers, f: F) -> Result<R, ReadError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection, &Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        let permit = self
            .pages
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| ReadError::Join(e.to_string()))?;
        let (this, other) = (self.clone(), other.clone());
        tokio::task::spawn_blocking(move || {
            let out = this.read_pair_blocking(&other, f);
            drop(permit);
            out
        })
        .await
        .map_err(|e| ReadError::Join(e.to_string()))?
    }

    /// Runs a read of at most `rows` rows: inline up to [`INLINE_ROWS`]
    /// (a gap fill, a default history page), else as [`Readers::read_page`].
    pub async fn read_rows<R, F>(&self, rows: u32, f: F) -> Result<R, ReadError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        if rows <= INLINE_ROWS {
            self.read(f).await
        } else {
            self.read_page(f).await
        }
    }

    fn read_pair_blocking<R>(
        &self,
        other: &Readers,
        f: impl FnOnce(&Connection, &Connection) -> rusqlite::Result<R>,
    ) -> Result<R, ReadError> {
        let conn = self.checkout().map_err(ReadError::from_sqlite)?;
        let out = match other.checkout() {
            Ok(o) => {
                let out = f(&conn, &o);
                other.checkin(o);
                out
            }
            Err(e) => Err(e),
        };
        self.checkin(conn);
        out.map_err(ReadError::from_sqlite)
    }

    /// Runs `f` synchronously (for CLI tools and tests).
    pub fn read_blocking<R>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<R>,
    ) -> Result<R, ReadError> {
        let conn = self.checkout().map_err(ReadError::from_sqlite)?;
        let out = f(&conn);
        self.checkin(conn);
        out.map_err(ReadError::from_sqlite)
    }
}

/// SHA-256 over every row of `tables` (each `(name, order by)`), with
/// column types tagged so `1` and `'1'` differ.
pub fn checksum_of(conn: &Connection, tables: &[(&str, &str)]) -> rusqlite::Result<String> {
    let mut h = Sha256::new();
    for (table, order) in tables {
        h.update(table.as_bytes());
        let mut stmt = conn.prepare(&format!("SELECT * FROM {table} ORDER BY {order}"))?;
        let cols = stmt.column_count();
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            for i in 0..cols {
                match row.get_ref(i)? {
                    ValueRef::Null => h.update([0u8]),
                    ValueRef::Integer(v) => {
                        h.update([1u8]);
                        h.update(v.to_le_bytes());
                    }
                    ValueRef::Real(v) => {
                        h.update([2u8]);
                        h.update(v.to_le_bytes());
                    }
                    ValueRef::Text(t) | ValueRef::Blob(t) => {
                        h.update([3u8]);
                        h.update((t.len() as u64).to_le_bytes());
                        h.update(t);
                    }
                }
            }
            h.update([0xFFu8]);
        }
    }
    Ok(switchboard_core::secret::hex(&h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(c: &Connection) -> rusqlite::Result<i64> {
        c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
    }

    /// The claim of the module docs: a WAL reader that may not wait at all
    /// (busy timeout zero) reads beside an open write transaction, a commit
    /// and a checkpoint, each time from the last committed snapshot.
    #[test]
    fn wal_readers_do_not_wait_for_the_writer() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("m.db");
        let mut w = open_writer(&path).expect("writer");
        w.execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);")
            .expect("seed");
        let r =
            Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("reader");
        r.busy_timeout(Duration::ZERO).expect("no busy wait");

        let tx = w
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .expect("begin immediate");
        for i in 0..10_000 {
            tx.execute("INSERT INTO t VALUES (?1)", [i])
                .expect("insert");
        }
        assert_eq!(count(&r).expect("read beside an open write"), 1);
        // A read transaction that stays open across the commit…
        r.execute_batch("BEGIN").expect("begin read");
        assert_eq!(count(&r).expect("snapshot"), 1);
        tx.commit().expect("commit while a reader is open");
        assert_eq!(count(&r).expect("same snapshot"), 1);
        // …and a checkpoint, which copies what it can and leaves the
        // reader's frames alone.
        w.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .expect("checkpoint beside a reader");
        r.execute_batch("COMMIT").expect("end read");
        assert_eq!(count(&r).expect("read the new snapshot"), 10_001);

        // A wait a reader can meet: a connection in exclusive locking mode
        // (which it can only enter while alone with the file). The reader
        // gives up after its short busy timeout, as `Busy`.
        drop(r);
        w.pragma_update(None, "locking_mode", "EXCLUSIVE")
            .expect("exclusive");
        w.execute("INSERT INTO t VALUES (0)", [])
            .expect("take the lock");
        let readers = Readers::new(&path);
        let start = std::time::Instant::now();
        let err = readers
            .read_blocking(count)
            .expect_err("an exclusive writer blocks readers");
        assert!(matches!(err, ReadError::Busy), "{err:?}");
        assert!(
            start.elapsed() < READ_BUSY_TIMEOUT * 10,
            "{:?}",
            start.elapsed()
        );
    }
}
