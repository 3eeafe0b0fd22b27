//! Durable run history in SQLite (`<data-dir>/history.db`): every runbook run and step, with
//! plugin name, version and sha256, parameters, times, status, outputs, capped logs and errors.
//! A run left `running` by a process that died is marked `interrupted` at the next open.
//! Schedule state and monitor incidents live in the same database (their own tables).

mod baselines;
mod incidents;
pub mod migrations;
mod schedules;
mod tickets;

pub use baselines::{BaselineRow, NewBaseline};
pub use incidents::{IncidentRow, MonitorSla};
pub use schedules::ScheduleRow;
pub use tickets::IncidentTicketRow;

mod inventory;

pub use inventory::InventoryRow;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Bytes of plugin logs kept per step.
pub const MAX_STEP_LOG_BYTES: usize = 64 << 10;
/// Bytes of a step's output (as JSON text) kept in the history; a larger output is stored cut
/// down ([`cap_json`]) and flagged `output_truncated`. A check's verdict, summary and a few
/// thousand metrics fit; sixteen such steps still make a `GetRun` answer under the 4 MiB that
/// gRPC clients accept by default. A check returning 400,000 metrics (18 MB) used to be stored
/// whole, and `GetRun` of its run failed for good.
pub const MAX_STEP_OUTPUT_BYTES: usize = 256 << 10;

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("run history {path}: {message}")]
    Db { path: PathBuf, message: String },
}

/// Where a page of [`History::list_filtered`] ended: the sort key of its last run. Its text
/// form (`<started_ms>.<run id>`) is what an API hands out as a page token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunCursor {
    pub started_ms: i64,
    pub id: String,
}

impl RunCursor {
    pub fn after(row: &RunRow) -> RunCursor {
        RunCursor {
            started_ms: row.started_ms,
            id: row.id.clone(),
        }
    }
}

impl std::fmt::Display for RunCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.started_ms, self.id)
    }
}

impl std::str::FromStr for RunCursor {
    type Err = String;

    fn from_str(text: &str) -> Result<RunCursor, String> {
        let bad = || format!("`{text}` is not a page token this agent handed out");
        let (ms, id) = text.split_once('.').ok_or_else(bad)?;
        let started_ms = ms.parse().map_err(|_| bad())?;
        if id.is_empty() || id.len() > 64 {
            return Err(bad());
        }
        Ok(RunCursor {
            started_ms,
            id: id.to_string(),
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    pub id: String,
    pub runbook: String,
    pub file: String,
    pub params: serde_json::Value,
    pub dry_run: bool,
    pub status: String,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub error: Option<String>,
    /// Who or what asked for the run: an API token's name, `schedule:<name>`, `monitor:<name>`,
    /// the fleet. `None` for a run started from the command line (and runs recorded before
    /// schema version 3).
    pub requested_by: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepRow {
    pub index: i64,
    pub step: String,
    pub plugin: String,
    pub version: Option<String>,
    pub sha256: Option<String>,
    pub action: String,
    pub status: String,
    pub attempts: i64,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub output: serde_json::Value,
    /// The output was over [`MAX_STEP_OUTPUT_BYTES`]: what is stored is cut down.
    pub output_truncated: bool,
    pub logs: serde_json::Value,
    pub error: Option<String>,
}

/// Counts the bytes written to it: the length of a JSON text without building it.
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Length of `value` as compact JSON text.
pub fn json_len(value: &serde_json::Value) -> usize {
    let mut counter = Counter(0);
    // Writing to a counter cannot fail, and a `Value` always serializes.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

/// `value` cut down to the first `items` entries of every list and map and the first `chars`
/// bytes of every string.
fn shrink(value: &serde_json::Value, items: usize, chars: usize) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) if s.len() > chars => {
            let mut end = chars;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            Value::String(s[..end].to_string())
        }
        Value::Array(list) => Value::Array(
            list.iter()
                .take(items)
                .map(|v| shrink(v, items, chars))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .take(items)
                .map(|(k, v)| (k.clone(), shrink(v, items, chars)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `value` when its JSON text fits `max_bytes`, else a cut-down copy of the same shape (lists
/// and maps keep their first entries, strings their first bytes, halved until it fits), or when
/// nothing fits `{"truncated": true, "bytes": <original length>}`. The flag says whether it was cut.
pub fn cap_json(value: &serde_json::Value, max_bytes: usize) -> (serde_json::Value, bool) {
    let bytes = json_len(value);
    if bytes <= max_bytes {
        return (value.clone(), false);
    }
    let (mut items, mut chars) = (1024usize, 4096usize);
    loop {
        let cut = shrink(value, items, chars);
        if json_len(&cut) <= max_bytes {
            return (cut, true);
        }
        if items == 0 && chars == 0 {
            return (
                serde_json::json!({ "truncated": true, "bytes": bytes }),
                true,
            );
        }
        (items, chars) = (items / 2, chars / 2);
    }
}

/// What a finished step stores.
#[derive(Debug, Clone, Default)]
pub struct StepResult {
    pub status: String,
    pub attempts: u32,
    pub version: Option<String>,
    pub sha256: Option<String>,
    pub output: serde_json::Value,
    pub logs: serde_json::Value,
    pub error: Option<String>,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A new run id: a UUID version 7 (48 bits of Unix milliseconds, then random bits), so ids are
/// unique across processes and sort by creation time as text. No id is made without its
/// randomness: two runs of one millisecond would otherwise share an id.
fn new_run_id() -> Result<String, String> {
    let mut random = [0u8; 10];
    getrandom::fill(&mut random).map_err(|e| format!("no randomness for a run id: {e}"))?;
    let ms = u64::try_from(now_ms()).unwrap_or(0);
    Ok(uuid::Builder::from_unix_timestamp_millis(ms, &random)
        .into_uuid()
        .to_string())
}

/// The history's file in a data dir.
const FILE_NAME: &str = "history.db";

pub struct History {
    path: PathBuf,
    conn: Mutex<Connection>,
}

fn process_alive(pid: i64) -> bool {
    if pid == i64::from(std::process::id()) {
        return true;
    }
    #[cfg(unix)]
    {
        i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .is_some_and(|p| rustix::process::test_kill_process(p).is_ok())
    }
    #[cfg(not(unix))]
    false
}

impl History {
    /// [`History::open`] if `data_dir` has a history; `None`, creating nothing, if it has not
    /// (read-only commands on a data dir where nothing ran yet).
    pub fn open_existing(data_dir: &Path) -> Result<Option<History>, HistoryError> {
        if !data_dir.join(FILE_NAME).exists() {
            return Ok(None);
        }
        History::open(data_dir).map(Some)
    }

    pub fn open(data_dir: &Path) -> Result<History, HistoryError> {
        let path = data_dir.join(FILE_NAME);
        let db = |e: rusqlite::Error| HistoryError::Db {
            path: path.clone(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(data_dir).map_err(|e| HistoryError::Db {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let mut conn = Connection::open(&path).map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(db)?;
        // WAL with synchronous = NORMAL: a commit is not fsync'd (the WAL is, at checkpoints),
        // so a process crash loses nothing and a power cut at most the last commits, never the
        // database's consistency. The audit log, not the history, is the durable record of an
        // apply (see docs/SECURITY.md).
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
            .map_err(db)?;
        migrations::migrate(&mut conn).map_err(|e| HistoryError::Db {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let history = History {
            path,
            conn: Mutex::new(conn),
        };
        history.mark_interrupted()?;
        Ok(history)
    }

    fn with<R>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<R>,
    ) -> Result<R, HistoryError> {
        let conn = self.conn.lock().map_err(|_| HistoryError::Db {
            path: self.path.clone(),
            message: "lock poisoned".into(),
        })?;
        f(&conn).map_err(|e| HistoryError::Db {
            path: self.path.clone(),
            message: e.to_string(),
        })
    }

    /// Runs whose process is gone are `interrupted`, not lost and not re-run.
    fn mark_interrupted(&self) -> Result<Vec<String>, HistoryError> {
        self.with(|c| {
            let mut stmt = c.prepare("SELECT id, pid FROM runs WHERE status IN ('running', 'queued')")?;
            let stale: Vec<String> = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
                .filter_map(Result::ok)
                .filter(|(_, pid)| !process_alive(*pid))
                .map(|(id, _)| id)
                .collect();
            for id in &stale {
                c.execute(
                    "UPDATE runs SET status = 'interrupted', ended_ms = ?2, error = 'the runner stopped while this run was in flight' WHERE id = ?1",
                    params![id, now_ms()],
                )?;
                c.execute("UPDATE steps SET status = 'interrupted', ended_ms = ?2 WHERE run_id = ?1 AND status = 'running'", params![id, now_ms()])?;
            }
            Ok(stale)
        })
    }

    pub fn start_run(
        &self,
        runbook: &str,
        file: &str,
        params: &serde_json::Value,
        dry_run: bool,
    ) -> Result<String, HistoryError> {
        self.start_run_as(None, runbook, file, params, dry_run)
    }

    /// Record a run waiting for a free slot, asked for by `requested_by`;
    /// [`History::start_run_as`] with its id starts it.
    pub fn queue_run(
        &self,
        runbook: &str,
        file: &str,
        params: &serde_json::Value,
        dry_run: bool,
        requested_by: &str,
    ) -> Result<String, HistoryError> {
        self.insert_run(runbook, file, params, dry_run, "queued", Some(requested_by))
    }

    /// Start a run: the queued run `id`, or a new one.
    pub fn start_run_as(
        &self,
        id: Option<&str>,
        runbook: &str,
        file: &str,
        params: &serde_json::Value,
        dry_run: bool,
    ) -> Result<String, HistoryError> {
        let Some(id) = id else {
            return self.insert_run(runbook, file, params, dry_run, "running", None);
        };
        let updated = self.with(|c| {
            c.execute(
                "UPDATE runs SET status = 'running', pid = ?2, started_ms = ?3 WHERE id = ?1 AND status = 'queued'",
                params![id, i64::from(std::process::id()), now_ms()],
            )
        })?;
        if updated == 0 {
            return Err(HistoryError::Db {
                path: self.path.clone(),
                message: format!("run {id} is not queued"),
            });
        }
        Ok(id.to_string())
    }

    fn insert_run(
        &self,
        runbook: &str,
        file: &str,
        params: &serde_json::Value,
        dry_run: bool,
        status: &str,
        requested_by: Option<&str>,
    ) -> Result<String, HistoryError> {
        let id = new_run_id().map_err(|message| HistoryError::Db {
            path: self.path.clone(),
            message,
        })?;
        self.with(|c| {
            c.execute(
                "INSERT INTO runs (id, runbook, file, params, dry_run, status, pid, started_ms, requested_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![id, runbook, file, params.to_string(), dry_run, status, i64::from(std::process::id()), now_ms(), requested_by],
            )
        })?;
        Ok(id)
    }

    pub fn start_step(
        &self,
        run_id: &str,
        index: usize,
        step: &str,
        plugin: &str,
        action: &str,
    ) -> Result<(), HistoryError> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO steps (run_id, idx, step, plugin, action, status, attempts, started_ms, output, logs) VALUES (?1, ?2, ?3, ?4, ?5, 'running', 0, ?6, 'null', '[]')",
                params![run_id, index as i64, step, plugin, action, now_ms()],
            )
        })
        .map(drop)
    }

    pub fn finish_step(
        &self,
        run_id: &str,
        index: usize,
        r: &StepResult,
    ) -> Result<(), HistoryError> {
        let mut logs = r.logs.to_string();
        if logs.len() > MAX_STEP_LOG_BYTES {
            logs = serde_json::json!({ "truncated": true, "bytes": logs.len() }).to_string();
        }
        let (output, truncated) = cap_json(&r.output, MAX_STEP_OUTPUT_BYTES);
        self.with(|c| {
            c.execute(
                "UPDATE steps SET status = ?3, attempts = ?4, version = ?5, sha256 = ?6, output = ?7, logs = ?8, error = ?9, ended_ms = ?10, output_truncated = ?11 WHERE run_id = ?1 AND idx = ?2",
                params![run_id, index as i64, r.status, r.attempts, r.version, r.sha256, output.to_string(), logs, r.error, now_ms(), truncated],
            )
        })
        .map(drop)
    }

    pub fn finish_run(
        &self,
        run_id: &str,
        status: &str,
        error: Option<&str>,
    ) -> Result<(), HistoryError> {
        self.with(|c| {
            c.execute(
                "UPDATE runs SET status = ?2, error = ?3, ended_ms = ?4 WHERE id = ?1",
                params![run_id, status, error, now_ms()],
            )
        })
        .map(drop)
    }

    /// Delete the finished runs that started before `before_ms`, with their steps; queued and
    /// running runs stay whatever their age. Returns how many runs went. Schedule state, incidents
    /// and inventory are not run history and stay.
    pub fn prune_runs(&self, before_ms: i64) -> Result<usize, HistoryError> {
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            tx.execute(
                "DELETE FROM steps WHERE run_id IN (SELECT id FROM runs
                     WHERE started_ms < ?1 AND status NOT IN ('queued', 'running'))",
                [before_ms],
            )?;
            let runs = tx.execute(
                "DELETE FROM runs WHERE started_ms < ?1 AND status NOT IN ('queued', 'running')",
                [before_ms],
            )?;
            tx.commit()?;
            Ok(runs)
        })
    }

    fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
        Ok(RunRow {
            id: r.get(0)?,
            runbook: r.get(1)?,
            file: r.get(2)?,
            params: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default(),
            dry_run: r.get(4)?,
            status: r.get(5)?,
            started_ms: r.get(6)?,
            ended_ms: r.get(7)?,
            error: r.get(8)?,
            requested_by: r.get(9)?,
        })
    }

    pub fn list(&self, limit: usize) -> Result<Vec<RunRow>, HistoryError> {
        self.list_filtered(limit, None, None, None)
    }

    /// Newest first, only with `status` / of `runbook` when given, and only runs older than
    /// `before` (the last run of the previous page) when given.
    pub fn list_filtered(
        &self,
        limit: usize,
        status: Option<&str>,
        runbook: Option<&str>,
        before: Option<&RunCursor>,
    ) -> Result<Vec<RunRow>, HistoryError> {
        let (before_ms, before_id) =
            before.map_or((None, None), |c| (Some(c.started_ms), Some(c.id.as_str())));
        self.with(|c| {
            // Keyset paging on the sort key itself: a page is stable while new runs arrive
            // (they sort before it), and costs the same at any depth.
            let mut stmt = c.prepare(
                "SELECT id, runbook, file, params, dry_run, status, started_ms, ended_ms, error, requested_by FROM runs
                 WHERE (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR runbook = ?3)
                   AND (?4 IS NULL OR started_ms < ?4 OR (started_ms = ?4 AND id < ?5))
                 ORDER BY started_ms DESC, id DESC LIMIT ?1",
            )?;
            stmt.query_map(
                params![limit as i64, status, runbook, before_ms, before_id],
                History::run_row,
            )?
            .collect()
        })
    }

    pub fn show(&self, id: &str) -> Result<Option<(RunRow, Vec<StepRow>)>, HistoryError> {
        self.with(|c| {
            let run = c
                .query_row(
                    "SELECT id, runbook, file, params, dry_run, status, started_ms, ended_ms, error, requested_by FROM runs WHERE id = ?1",
                    [id],
                    History::run_row,
                )
                .optional()?;
            let Some(run) = run else { return Ok(None) };
            let mut stmt = c.prepare(
                "SELECT idx, step, plugin, version, sha256, action, status, attempts, started_ms, ended_ms, output, logs, error, output_truncated FROM steps WHERE run_id = ?1 ORDER BY idx",
            )?;
            let steps = stmt
                .query_map([id], |r| {
                    Ok(StepRow {
                        index: r.get(0)?,
                        step: r.get(1)?,
                        plugin: r.get(2)?,
                        version: r.get(3)?,
                        sha256: r.get(4)?,
                        action: r.get(5)?,
                        status: r.get(6)?,
                        attempts: r.get(7)?,
                        started_ms: r.get(8)?,
                        ended_ms: r.get(9)?,
                        output: serde_json::from_str(&r.get::<_, String>(10)?).unwrap_or_default(),
                        logs: serde_json::from_str(&r.get::<_, String>(11)?).unwrap_or_default(),
                        error: r.get(12)?,
                        output_truncated: r.get(13)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Some((run, steps)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn outputs_over_the_cap_are_cut_to_the_same_shape_and_flagged() {
        let small = json!({"ok": true, "output": {"metrics": [1, 2, 3]}});
        assert_eq!(cap_json(&small, 1000), (small.clone(), false));
        let metrics: Vec<serde_json::Value> = (0..100_000)
            .map(|i| json!({"name": format!("m{i}"), "value": i}))
            .collect();
        let big =
            json!({"ok": true, "summary": "s".repeat(100_000), "output": {"metrics": metrics}});
        let (cut, truncated) = cap_json(&big, 64 << 10);
        assert!(truncated && json_len(&cut) <= 64 << 10);
        assert_eq!(cut["ok"], true);
        assert!(
            cut["output"]["metrics"]
                .as_array()
                .is_some_and(|m| !m.is_empty())
        );
        assert_eq!(cap_json(&big, 10), (json!({}), true), "the shape, emptied");
        let (note, truncated) = cap_json(&json!("a long string"), 1);
        assert!(truncated);
        assert_eq!(note["bytes"], 15, "nothing fits: a note of the size");
    }

    #[test]
    fn run_ids_are_unique_uuid_v7_of_their_creation_time() {
        let dir = tempfile::tempdir().expect("tmp");
        let history = History::open(dir.path()).expect("history");
        let ids: Vec<String> = (0..3)
            .map(|_| {
                history
                    .start_run("rb", "rb.toml", &json!({}), false)
                    .expect("start")
            })
            .collect();
        for id in &ids {
            let parsed = uuid::Uuid::parse_str(id).expect("a UUID");
            assert_eq!(parsed.get_version_num(), 7, "{id}");
            let (secs, _) = parsed
                .get_timestamp()
                .expect("a time-ordered UUID")
                .to_unix();
            assert!(
                secs.abs_diff(now_ms() as u64 / 1000) <= 1,
                "{id}: its time is now"
            );
        }
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 3, "unique: {ids:?}");
    }

    #[test]
    fn a_run_keeps_who_asked_for_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let history = History::open(dir.path()).expect("history");
        let queued = history
            .queue_run("rb", "rb.toml", &json!({}), false, "monitor:root-disk")
            .expect("queue");
        let local = history
            .start_run("rb", "rb.toml", &json!({}), false)
            .expect("start");
        let (run, _) = history.show(&queued).expect("show").expect("run");
        assert_eq!(run.requested_by.as_deref(), Some("monitor:root-disk"));
        let (run, _) = history.show(&local).expect("show").expect("run");
        assert_eq!(run.requested_by, None, "a run from the command line");
        let listed = history.list(10).expect("list");
        assert!(
            listed
                .iter()
                .any(|r| r.requested_by.as_deref() == Some("monitor:root-disk"))
        );
    }

    #[test]
    fn a_history_from_before_the_cap_gains_the_flag() {
        let dir = tempfile::tempdir().expect("tmp");
        let old = Connection::open(dir.path().join("history.db")).expect("db");
        old.execute_batch(
            "CREATE TABLE runs (id TEXT PRIMARY KEY, runbook TEXT NOT NULL, file TEXT NOT NULL, params TEXT NOT NULL,
                 dry_run INTEGER NOT NULL, status TEXT NOT NULL, pid INTEGER NOT NULL,
                 started_ms INTEGER NOT NULL, ended_ms INTEGER, error TEXT);
             CREATE TABLE steps (run_id TEXT NOT NULL, idx INTEGER NOT NULL, step TEXT NOT NULL,
                 plugin TEXT NOT NULL, version TEXT, sha256 TEXT, action TEXT NOT NULL,
                 status TEXT NOT NULL, attempts INTEGER NOT NULL, started_ms INTEGER NOT NULL,
                 ended_ms INTEGER, output TEXT NOT NULL, logs TEXT NOT NULL, error TEXT,
                 PRIMARY KEY (run_id, idx));
             INSERT INTO runs VALUES ('r', 'rb', 'f', '{}', 0, 'succeeded', 1, 1, 2, NULL);
             INSERT INTO steps VALUES ('r', 0, 's', 'p', NULL, NULL, 'check', 'succeeded', 1, 1, 2, '{}', '[]', NULL);",
        )
        .expect("old schema");
        drop(old);
        let history = History::open(dir.path()).expect("opens");
        let (_, steps) = history.show("r").expect("show").expect("run");
        assert!(!steps[0].output_truncated);
        let history = History::open(dir.path()).expect("opens again");
        assert!(history.show("r").expect("show").is_some());
        let conn = history.conn.lock().expect("conn");
        assert_eq!(
            migrations::version(&conn).expect("version"),
            migrations::SCHEMA_VERSION
        );
    }

    /// The schema of version 1, as that version created it.
    const VERSION_1_DDL: &str = "
        CREATE TABLE runs (
            id TEXT PRIMARY KEY, runbook TEXT NOT NULL, file TEXT NOT NULL, params TEXT NOT NULL,
            dry_run INTEGER NOT NULL, status TEXT NOT NULL, pid INTEGER NOT NULL,
            started_ms INTEGER NOT NULL, ended_ms INTEGER, error TEXT);
        CREATE TABLE steps (
            run_id TEXT NOT NULL REFERENCES runs(id), idx INTEGER NOT NULL, step TEXT NOT NULL,
            plugin TEXT NOT NULL, version TEXT, sha256 TEXT, action TEXT NOT NULL,
            status TEXT NOT NULL, attempts INTEGER NOT NULL, started_ms INTEGER NOT NULL,
            ended_ms INTEGER, output TEXT NOT NULL, logs TEXT NOT NULL, error TEXT,
            output_truncated INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (run_id, idx));
        CREATE TABLE inventory (
            plugin TEXT PRIMARY KEY, version TEXT NOT NULL, collected_ms INTEGER NOT NULL,
            facts TEXT NOT NULL);
        CREATE TABLE schedule_state (
            name TEXT PRIMARY KEY, last_slot_ms INTEGER, last_run_id TEXT, updated_ms INTEGER NOT NULL);
        CREATE TABLE incidents (
            id TEXT PRIMARY KEY, monitor TEXT NOT NULL, detected_ms INTEGER NOT NULL,
            triggered_ms INTEGER NOT NULL, remediated_ms INTEGER, resolved_ms INTEGER,
            escalated TEXT, escalated_ms INTEGER, attempts INTEGER NOT NULL, last_run_id TEXT);
        CREATE INDEX incidents_by_monitor ON incidents (monitor, triggered_ms);
        PRAGMA user_version = 1;";

    #[test]
    fn a_version_1_history_is_migrated_with_its_data_intact() {
        let dir = tempfile::tempdir().expect("tmp");
        let old = Connection::open(dir.path().join("history.db")).expect("db");
        old.execute_batch(VERSION_1_DDL).expect("version 1");
        old.execute_batch(
            "INSERT INTO runs VALUES ('r', 'rb', 'f', '{\"a\":1}', 0, 'succeeded', 1, 1000, 2000, NULL);
             INSERT INTO steps VALUES ('r', 0, 's', 'p', '1.0.0', 'abc', 'check', 'succeeded', 1, 1000, 2000, '{\"ok\":true}', '[]', NULL, 1);
             INSERT INTO schedule_state VALUES ('nightly', 5000, 'r', 5000);",
        )
        .expect("rows");
        drop(old);

        let history = History::open(dir.path()).expect("migrates");
        let (run, steps) = history.show("r").expect("show").expect("the run is kept");
        assert_eq!(
            (run.status.as_str(), run.params["a"].as_i64()),
            ("succeeded", Some(1))
        );
        assert_eq!(steps[0].output["ok"], true);
        assert!(steps[0].output_truncated);
        assert_eq!(
            run.requested_by, None,
            "version 3 adds who asked, unknown for old runs"
        );
        let schedule = history.schedule_rows().expect("schedules");
        assert_eq!(schedule["nightly"].last_run_id.as_deref(), Some("r"));
        let conn = history.conn.lock().expect("conn");
        assert_eq!(
            migrations::version(&conn).expect("version"),
            migrations::SCHEMA_VERSION
        );
        let indexed: bool = conn
            .prepare("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'runs_by_start'")
            .and_then(|mut q| q.exists([]))
            .expect("query");
        assert!(indexed, "version 2 adds the index of runs by start");
    }

    #[test]
    fn an_older_history_gains_the_baseline_versions_and_keeps_its_inventory() {
        let dir = tempfile::tempdir().expect("tmp");
        let old = Connection::open(dir.path().join("history.db")).expect("db");
        old.execute_batch(VERSION_1_DDL).expect("version 1");
        old.execute_batch(
            "INSERT INTO inventory VALUES ('inventory', '0.1.0', 1000, '[{\"kind\":\"os\",\"facts\":{}}]');",
        )
        .expect("rows");
        drop(old);

        let history = History::open(dir.path()).expect("migrates");
        assert_eq!(
            history.inventory().expect("inventory")[0].plugin,
            "inventory"
        );
        assert_eq!(
            history.baseline(None).expect("read"),
            None,
            "no baseline yet"
        );
        let new = |sha: &str| NewBaseline {
            sha256: sha.into(),
            taken_ms: 2000,
            taken_by: "ada".into(),
            reason: "first".into(),
            source: "inventory 0.1.0".into(),
            items: "{}".into(),
        };
        assert_eq!(history.save_baseline(&new("aa")).expect("save").version, 1);
        assert_eq!(history.save_baseline(&new("bb")).expect("save").version, 2);
        drop(history);
        let history = History::open(dir.path()).expect("opens again");
        let versions: Vec<(i64, String)> = history
            .baselines()
            .expect("list")
            .into_iter()
            .map(|b| (b.version, b.sha256))
            .collect();
        assert_eq!(versions, [(1, "aa".to_string()), (2, "bb".to_string())]);
        assert_eq!(
            history.baseline(None).expect("read").map(|b| b.version),
            Some(2)
        );
        assert_eq!(
            history.baseline(Some(1)).expect("read").map(|b| b.sha256),
            Some("aa".into())
        );
        assert_eq!(history.baseline(Some(3)).expect("read"), None);
    }

    #[test]
    fn a_history_from_a_newer_warden_is_refused_untouched() {
        let dir = tempfile::tempdir().expect("tmp");
        let newer = Connection::open(dir.path().join("history.db")).expect("db");
        newer
            .execute_batch(&format!(
                "CREATE TABLE future (x); PRAGMA user_version = {};",
                migrations::SCHEMA_VERSION + 1
            ))
            .expect("newer");
        drop(newer);
        let err = History::open(dir.path())
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("newer than this warden knows"), "{err}");
        assert!(err.contains("history.db"), "{err}");
        let newer = Connection::open(dir.path().join("history.db")).expect("db");
        assert_eq!(
            migrations::version(&newer).expect("version"),
            migrations::SCHEMA_VERSION + 1,
            "left as it was"
        );
    }

    #[test]
    fn pruning_deletes_old_finished_runs_with_their_steps_and_keeps_the_rest() {
        let dir = tempfile::tempdir().expect("tmp");
        let history = History::open(dir.path()).expect("opens");
        history
            .with(|c| {
                c.execute_batch(
                    "INSERT INTO runs VALUES ('old', 'rb', 'f', '{}', 0, 'succeeded', 1, 1000, 2000, NULL, NULL);
                     INSERT INTO steps (run_id, idx, step, plugin, action, status, attempts, started_ms, output, logs)
                         VALUES ('old', 0, 's', 'p', 'check', 'succeeded', 1, 1000, 'null', '[]');
                     INSERT INTO runs VALUES ('old-running', 'rb', 'f', '{}', 0, 'running', 1, 1000, NULL, NULL, NULL);
                     INSERT INTO runs VALUES ('new', 'rb', 'f', '{}', 0, 'failed', 1, 9000, 9500, 'x', NULL);",
                )
            })
            .expect("rows");
        assert_eq!(history.prune_runs(5000).expect("prune"), 1);
        assert!(history.show("old").expect("show").is_none());
        assert!(
            history.show("old-running").expect("show").is_some(),
            "still running"
        );
        assert!(
            history.show("new").expect("show").is_some(),
            "within the retention"
        );
        let orphans: i64 = history
            .with(|c| {
                c.query_row("SELECT COUNT(*) FROM steps WHERE run_id = 'old'", [], |r| {
                    r.get(0)
                })
            })
            .expect("count");
        assert_eq!(orphans, 0, "its steps went with it");
    }
}
