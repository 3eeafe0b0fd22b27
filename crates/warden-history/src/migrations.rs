//! The history database's schema, versioned: SQLite's `PRAGMA user_version` holds the number of
//! migrations applied, and [`migrate`] applies the missing ones in order, each in a transaction
//! with its version bump, so a crash leaves the database at one version or the next. A database
//! of a newer version (written by a newer warden) is refused rather than guessed at.
//!
//! A small runner of our own rather than `rusqlite_migration`: it uses the same `user_version`
//! counter, and the first step has to look at what an unversioned database already holds (a
//! column that may or may not be there), which is code, not a fixed script.

use rusqlite::{Connection, Transaction};

/// One step of the schema, from the version before it to its own.
struct Migration {
    /// What it changes, for errors.
    what: &'static str,
    apply: fn(&Transaction<'_>) -> rusqlite::Result<()>,
}

/// In order: migration `i` brings the database to version `i + 1`. Append only; never edit one
/// that has shipped.
const MIGRATIONS: &[Migration] = &[
    Migration {
        what: "the tables of an unversioned history (runs, steps, inventory, schedules, incidents)",
        apply: unversioned,
    },
    Migration {
        what: "an index of runs by start time (listing and retention)",
        apply: |tx| {
            tx.execute_batch("CREATE INDEX IF NOT EXISTS runs_by_start ON runs (started_ms);")
        },
    },
    Migration {
        what: "who or what asked for each run (runs.requested_by)",
        apply: |tx| tx.execute_batch("ALTER TABLE runs ADD COLUMN requested_by TEXT;"),
    },
    Migration {
        what: "the PSA ticket of each escalated incident (incident_tickets)",
        apply: |tx| tx.execute_batch(super::tickets::SCHEMA),
    },
    Migration {
        what: "the versions of the baseline configuration (baselines)",
        apply: |tx| tx.execute_batch(super::baselines::SCHEMA),
    },
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error(
        "its schema is version {found}, newer than this warden knows ({SCHEMA_VERSION}): it was \
         written by a newer warden; run that one, or move the file aside to start a new history"
    )]
    Newer { found: i64 },
    #[error("cannot migrate it to schema version {version} ({what}): {cause}")]
    Step {
        version: i64,
        what: &'static str,
        cause: rusqlite::Error,
    },
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
}

/// The database's schema version.
pub fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// Bring `conn` to [`SCHEMA_VERSION`]; refuses a newer database. Each step reads the version
/// inside its own immediate (write-locked) transaction, so a CLI and the agent opening the same
/// old database at once apply each migration once.
pub fn migrate(conn: &mut Connection) -> Result<(), MigrationError> {
    loop {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let found = version(&tx)?;
        if found > SCHEMA_VERSION {
            return Err(MigrationError::Newer { found });
        }
        let Some(migration) = MIGRATIONS.get(found.max(0) as usize) else {
            return Ok(());
        };
        let version = found.max(0) + 1;
        let step = |cause| MigrationError::Step {
            version,
            what: migration.what,
            cause,
        };
        (migration.apply)(&tx).map_err(step)?;
        tx.pragma_update(None, "user_version", version)
            .map_err(step)?;
        tx.commit().map_err(step)?;
    }
}

/// Version 1: what the history held before it had a version, whatever its age: the tables are
/// created where missing, and a `steps` table from before outputs were capped gains the flag
/// (its rows: not cut).
fn unversioned(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS runs (
             id TEXT PRIMARY KEY, runbook TEXT NOT NULL, file TEXT NOT NULL, params TEXT NOT NULL,
             dry_run INTEGER NOT NULL, status TEXT NOT NULL, pid INTEGER NOT NULL,
             started_ms INTEGER NOT NULL, ended_ms INTEGER, error TEXT);
         CREATE TABLE IF NOT EXISTS steps (
             run_id TEXT NOT NULL REFERENCES runs(id), idx INTEGER NOT NULL, step TEXT NOT NULL,
             plugin TEXT NOT NULL, version TEXT, sha256 TEXT, action TEXT NOT NULL,
             status TEXT NOT NULL, attempts INTEGER NOT NULL, started_ms INTEGER NOT NULL,
             ended_ms INTEGER, output TEXT NOT NULL, logs TEXT NOT NULL, error TEXT,
             PRIMARY KEY (run_id, idx));
         CREATE TABLE IF NOT EXISTS inventory (
             plugin TEXT PRIMARY KEY, version TEXT NOT NULL, collected_ms INTEGER NOT NULL,
             facts TEXT NOT NULL);",
    )?;
    let has_flag = tx
        .prepare("SELECT 1 FROM pragma_table_info('steps') WHERE name = 'output_truncated'")?
        .exists([])?;
    if !has_flag {
        tx.execute_batch(
            "ALTER TABLE steps ADD COLUMN output_truncated INTEGER NOT NULL DEFAULT 0;",
        )?;
    }
    tx.execute_batch(super::schedules::SCHEMA)?;
    tx.execute_batch(super::incidents::SCHEMA)?;
    Ok(())
}
