//! SQLite plumbing: one writer connection per read model (WAL,
//! `synchronous=NORMAL`), a small pool of read connections, and checksums.

use crate::ReadError;
use rusqlite::{types::ValueRef, Connection, OpenFlags};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn tune(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    Ok(())
}

/// Opens the read model's writer connection, creating the file if needed.
pub fn open_writer(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    tune(&conn)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // NORMAL in WAL mode: a power loss may lose the last transactions but
    // never corrupts; the checkpoint rolls back with them, so the projector
    // re-applies them from the log.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

/// A pool of read-only connections to one read model (see [`Readers::read`]
/// for why queries run inline).
#[derive(Clone)]
pub struct Readers {
    path: PathBuf,
    pool: Arc<Mutex<Vec<Connection>>>,
}

impl Readers {
    pub fn new(path: &Path) -> Readers {
        Readers {
            path: path.to_path_buf(),
            pool: Arc::new(Mutex::new(Vec::new())),
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
                tune(&c)?;
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
        if pool.len() < 16 {
            pool.push(conn);
        }
    }

    /// Runs `f` with a pooled connection. Reads are indexed point or range
    /// queries on cached statements (tens of microseconds; WAL readers never
    /// wait for the writer), so they run inline: handing each to the
    /// blocking pool cost more in thread wake-ups than the query itself
    /// (profiled under `bench send`).
    pub async fn read<R, F>(&self, f: F) -> Result<R, ReadError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        self.read_blocking(f)
    }

    /// Runs `f` synchronously (for CLI tools and tests).
    pub fn read_blocking<R>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<R>,
    ) -> Result<R, ReadError> {
        let conn = self.checkout()?;
        let out = f(&conn);
        self.checkin(conn);
        out.map_err(ReadError::from)
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
