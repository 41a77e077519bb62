//! `switchboard-projections`: read models folded from the log.
//!
//! Each projector owns one SQLite file. Its runner reads the log from the
//! checkpoint on, folds a batch of events and writes the new checkpoint
//! **in the same transaction**, so a crash never applies an event twice or
//! skips one, and two processes folding into one file cannot double-apply
//! (the checkpoint is re-read inside `BEGIN IMMEDIATE`). The fold is a pure
//! function of (rows, event): replaying the log into an empty file yields
//! the same rows, which `checksum` makes checkable.

pub mod acl;
pub mod audit;
mod db;
pub mod history;
pub mod notifications;
pub mod push;
mod runner;
pub mod search;
#[cfg(test)]
mod testkit;
pub mod unreads;

pub use db::{
    checksum_of, open_writer, Readers, INLINE_ROWS, PAGE_READS_AT_ONCE, READ_BUSY_TIMEOUT,
};
pub use runner::{
    apply_batch, live_checksum, open_model, rebuild, BatchError, Progress, Projector, Rebuilt,
    Runner,
};

/// Errors of the read side.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The query failed: a bug or a broken store; not worth retrying.
    #[error("read model: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The file was locked for longer than
    /// [`READ_BUSY_TIMEOUT`](crate::READ_BUSY_TIMEOUT) (see `db`'s module
    /// docs for when): nothing is wrong with the request; retry shortly.
    #[error("read model busy")]
    Busy,
    /// The blocking task running a page read panicked or was cancelled.
    #[error("read model task failed: {0}")]
    Join(String),
}

impl ReadError {
    /// Sorts a SQLite error into [`ReadError::Busy`] or [`ReadError::Sqlite`].
    pub fn from_sqlite(e: rusqlite::Error) -> ReadError {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                ReadError::Busy
            }
            _ => ReadError::Sqlite(e),
        }
    }
}

/// The SQLite types read-model closures receive.
pub mod sql {
    pub use rusqlite::{Connection, Error, Result};
}
