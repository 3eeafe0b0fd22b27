//! The fleet link's durable state, one SQLite file per agent identity: the [ledger](super::ledger)
//! of run ids, the [outbox](super::outbox) of messages not yet acknowledged, and what the
//! air-gapped [kits](super::kit) settled. One file, so a
//! run's final result enters the outbox and the ledger in one transaction: a crash leaves
//! either both or neither.
//!
//! `synchronous = FULL` in WAL mode: a commit is on disk before the agent acts on it (a run id
//! recorded before the run starts, a result before it is published), which is the whole point
//! of the file. One kind of commit is not flushed ([`FleetStore::transaction_unsynced`]): the
//! removal of an entry the server acknowledged. Losing it to a power cut only re-publishes a
//! message the stream and the controller deduplicate by its `Nats-Msg-Id`; and WAL frames are
//! written in order, so the next flushed commit carries it to disk anyway. That keeps a fast run
//! at two flushes (its claim, its result) where it took four.

use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ledger (
    run TEXT PRIMARY KEY,
    accepted_ms INTEGER NOT NULL,
    keep_until_ms INTEGER NOT NULL,
    result BLOB
);
CREATE INDEX IF NOT EXISTS ledger_by_expiry ON ledger (keep_until_ms);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    payload BLOB NOT NULL,
    queued_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_by_kind ON outbox (kind, id);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS kit_settled (
    sha256 TEXT PRIMARY KEY,
    outcome TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("fleet state {path}: {source}")]
    Db {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("fleet state {path}: a stored message is unreadable: {message}")]
    Corrupt { path: PathBuf, message: String },
}

/// The ledger and the outbox of one agent identity.
pub struct FleetStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for FleetStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetStore")
            .field("path", &self.path)
            .finish()
    }
}

impl FleetStore {
    /// Open (or create) the state file; its directory is created if missing.
    pub fn open(path: &Path) -> Result<FleetStore, StoreError> {
        let db = |source| StoreError::Db {
            path: path.into(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                db(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                    Some(format!("cannot create {}: {e}", dir.display())),
                ))
            })?;
        }
        let conn = Connection::open(path).map_err(db)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA busy_timeout = 5000;",
        )
        .map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        Ok(FleetStore {
            path: path.into(),
            conn: Mutex::new(conn),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn db_error(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Db {
            path: self.path.clone(),
            source,
        }
    }

    pub(crate) fn corrupt(&self, message: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            message: message.into(),
        }
    }

    /// Run `f` in one transaction.
    pub(crate) fn transaction<R>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<R>,
    ) -> Result<R, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(|e| self.db_error(e))?;
        let out = f(&tx).map_err(|e| self.db_error(e))?;
        tx.commit().map_err(|e| self.db_error(e))?;
        Ok(out)
    }

    /// Run `f` in one transaction whose commit is not flushed to disk: for what may be lost to
    /// a power cut without harm (see the module doc). A process crash loses nothing: the WAL
    /// is written before the commit returns.
    pub(crate) fn transaction_unsynced<R>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<R>,
    ) -> Result<R, StoreError> {
        let mut conn = self.lock();
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| self.db_error(e))?;
        let out = (|| {
            let tx = conn.transaction()?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })();
        // Back to flushed commits whatever happened: every other commit relies on it.
        let restored = conn.pragma_update(None, "synchronous", "FULL");
        let out = out.map_err(|e| self.db_error(e))?;
        restored.map_err(|e| self.db_error(e))?;
        Ok(out)
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (the transaction rolls back).
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
