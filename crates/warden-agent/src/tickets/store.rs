//! The ticket outbox, one SQLite file (`<data-dir>/tickets.sqlite`): the calls waiting for the
//! PSA (`outbox`), and what is known of each incident's ticket (`tickets`). A call leaves the
//! outbox only when the plugin answered it, in the same transaction that records the answer,
//! so a crash at any point leaves either the call queued or its result stored, and the worker
//! retries after a restart what had not been answered.
//!
//! **One ticket per incident.** Queueing an `open` inserts the incident's `tickets` row first
//! (`INSERT OR IGNORE`, keyed by monitor and incident): only the first `open` of an incident
//! enters the outbox. Notes and the close of an incident without a row are not queued (no
//! ticket was asked for). The calls of one incident go out in the order they were queued: only
//! the oldest call of each incident is ever due, so a note never overtakes its `open`.
//!
//! `synchronous = FULL` in WAL mode, as the fleet's store: a queued call is on disk before the
//! event that caused it is forgotten.

use rusqlite::{Connection, OptionalExtension as _, params};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    monitor TEXT NOT NULL,
    incident TEXT NOT NULL,
    op TEXT NOT NULL,
    summary TEXT NOT NULL,
    text TEXT NOT NULL,
    queued_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_ms INTEGER NOT NULL,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_by_incident ON outbox (monitor, incident, id);
CREATE TABLE IF NOT EXISTS tickets (
    monitor TEXT NOT NULL,
    incident TEXT NOT NULL,
    ticket_id TEXT,
    respond_by TEXT,
    resolve_by TEXT,
    status TEXT NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (monitor, incident)
);";

/// A call of the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Open,
    Note,
    Close,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Open => "open",
            Op::Note => "note",
            Op::Close => "close",
        }
    }

    fn parse(s: &str) -> Option<Op> {
        match s {
            "open" => Some(Op::Open),
            "note" => Some(Op::Note),
            "close" => Some(Op::Close),
            _ => None,
        }
    }
}

/// A call to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub monitor: String,
    pub incident: String,
    pub op: Op,
    /// The ticket's title (`open` only).
    pub summary: String,
    /// The description (`open`) or the note's text.
    pub text: String,
}

/// A queued call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub id: i64,
    pub call: Call,
    pub queued_ms: i64,
    /// Failed attempts so far.
    pub attempts: u32,
}

/// What is known of an incident's ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketRow {
    pub monitor: String,
    pub incident: String,
    /// None until the PSA answered `open`.
    pub ticket_id: Option<String>,
    pub respond_by: Option<String>,
    pub resolve_by: Option<String>,
    /// `requested`, `open`, `closed`, `abandoned`.
    pub status: String,
    pub updated_ms: i64,
}

#[derive(Debug, thiserror::Error)]
#[error("ticket outbox {path}: {source}")]
pub struct StoreError {
    path: PathBuf,
    source: rusqlite::Error,
}

/// The outbox and the tickets of this agent.
pub struct TicketStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl TicketStore {
    pub fn open(path: &Path) -> Result<TicketStore, StoreError> {
        let err = |source| StoreError {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(TicketStore {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (its own transactions).
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError {
            path: self.path.clone(),
            source,
        }
    }

    /// Queue `call` (due now). Returns false when it was not queued: a second `open` of an
    /// incident, or a note or close of an incident no ticket was asked for.
    pub fn enqueue(&self, call: &Call, now_ms: i64) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let admitted = match call.op {
            Op::Open => {
                tx.execute(
                    "INSERT OR IGNORE INTO tickets (monitor, incident, status, updated_ms)
                     VALUES (?1, ?2, 'requested', ?3)",
                    params![call.monitor, call.incident, now_ms],
                )
                .map_err(|e| self.err(e))?
                    == 1
            }
            Op::Note | Op::Close => tx
                .query_row(
                    "SELECT 1 FROM tickets WHERE monitor = ?1 AND incident = ?2
                     AND status IN ('requested', 'open')",
                    params![call.monitor, call.incident],
                    |_| Ok(()),
                )
                .optional()
                .map_err(|e| self.err(e))?
                .is_some(),
        };
        if admitted {
            tx.execute(
                "INSERT INTO outbox (monitor, incident, op, summary, text, queued_ms, next_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                params![
                    call.monitor,
                    call.incident,
                    call.op.as_str(),
                    call.summary,
                    call.text,
                    now_ms
                ],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(admitted)
    }

    /// The oldest call of some incident that is due at `now_ms`, if any.
    pub fn next_due(&self, now_ms: i64) -> Result<Option<Queued>, StoreError> {
        self.conn()
            .query_row(
                &format!("{HEADS} AND o.next_ms <= ?1 ORDER BY o.next_ms, o.id LIMIT 1"),
                params![now_ms],
                queued,
            )
            .optional()
            .map_err(|e| self.err(e))
            .map(Option::flatten)
    }

    /// When the next call comes due (the earliest head of an incident), if any is queued.
    pub fn next_wake_ms(&self) -> Result<Option<i64>, StoreError> {
        self.conn()
            .query_row(
                "SELECT MIN(o.next_ms) FROM outbox o WHERE o.id =
                 (SELECT MIN(id) FROM outbox WHERE monitor = o.monitor AND incident = o.incident)",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Calls queued, in all.
    pub fn queued(&self) -> Result<u64, StoreError> {
        self.conn()
            .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get::<_, i64>(0))
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(|e| self.err(e))
    }

    /// The PSA answered call `id`: remove it and record the ticket, in one transaction.
    pub fn answered(&self, id: i64, ticket: &TicketRow) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        tx.execute("DELETE FROM outbox WHERE id = ?1", params![id])
            .map_err(|e| self.err(e))?;
        save_ticket(&tx, ticket).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    /// Call `id` failed again: count it, keep the error, and make it due at `next_ms`.
    pub fn failed(&self, id: i64, error: &str, next_ms: i64) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_ms = ?3 WHERE id = ?1",
                params![id, error, next_ms],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Drop call `id` for good; an `open` given up leaves its incident's ticket `abandoned`, and
    /// its later calls are dropped with it (they have no ticket to go to).
    pub fn give_up(&self, q: &Queued, now_ms: i64) -> Result<u64, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let mut dropped = tx
            .execute("DELETE FROM outbox WHERE id = ?1", params![q.id])
            .map_err(|e| self.err(e))?;
        if q.call.op == Op::Open {
            dropped += tx
                .execute(
                    "DELETE FROM outbox WHERE monitor = ?1 AND incident = ?2",
                    params![q.call.monitor, q.call.incident],
                )
                .map_err(|e| self.err(e))?;
            tx.execute(
                "UPDATE tickets SET status = 'abandoned', updated_ms = ?3
                 WHERE monitor = ?1 AND incident = ?2",
                params![q.call.monitor, q.call.incident, now_ms],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(u64::try_from(dropped).unwrap_or(0))
    }

    /// The ticket of an incident, if one was asked for.
    pub fn ticket(&self, monitor: &str, incident: &str) -> Result<Option<TicketRow>, StoreError> {
        self.conn()
            .query_row(
                "SELECT monitor, incident, ticket_id, respond_by, resolve_by, status, updated_ms
                 FROM tickets WHERE monitor = ?1 AND incident = ?2",
                params![monitor, incident],
                |r| {
                    Ok(TicketRow {
                        monitor: r.get(0)?,
                        incident: r.get(1)?,
                        ticket_id: r.get(2)?,
                        respond_by: r.get(3)?,
                        resolve_by: r.get(4)?,
                        status: r.get(5)?,
                        updated_ms: r.get(6)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }
}

/// The oldest call of each incident.
const HEADS: &str =
    "SELECT o.id, o.monitor, o.incident, o.op, o.summary, o.text, o.queued_ms, o.attempts
     FROM outbox o WHERE o.id =
     (SELECT MIN(id) FROM outbox WHERE monitor = o.monitor AND incident = o.incident)";

/// A row of [`HEADS`]; a row with an op this build does not know reads as none (and stays).
fn queued(r: &rusqlite::Row<'_>) -> rusqlite::Result<Option<Queued>> {
    let op: String = r.get(3)?;
    let Some(op) = Op::parse(&op) else {
        return Ok(None);
    };
    Ok(Some(Queued {
        id: r.get(0)?,
        call: Call {
            monitor: r.get(1)?,
            incident: r.get(2)?,
            op,
            summary: r.get(4)?,
            text: r.get(5)?,
        },
        queued_ms: r.get(6)?,
        attempts: r.get(7)?,
    }))
}

fn save_ticket(tx: &rusqlite::Transaction<'_>, t: &TicketRow) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO tickets (monitor, incident, ticket_id, respond_by, resolve_by, status, updated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT(monitor, incident) DO UPDATE SET ticket_id = ?3, respond_by = ?4,
         resolve_by = ?5, status = ?6, updated_ms = ?7",
        params![
            t.monitor,
            t.incident,
            t.ticket_id,
            t.respond_by,
            t.resolve_by,
            t.status,
            t.updated_ms
        ],
    )
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(incident: &str, op: Op) -> Call {
        Call {
            monitor: "disk".into(),
            incident: incident.into(),
            op,
            summary: "s".into(),
            text: format!("{} {incident}", op.as_str()),
        }
    }

    fn store(dir: &tempfile::TempDir) -> TicketStore {
        TicketStore::open(&dir.path().join("tickets.sqlite")).expect("open")
    }

    #[test]
    fn one_open_per_incident_and_no_note_without_a_ticket() {
        let dir = tempfile::tempdir().expect("dir");
        let s = store(&dir);
        assert!(!s.enqueue(&call("i1", Op::Note), 0).expect("note"));
        assert!(s.enqueue(&call("i1", Op::Open), 0).expect("open"));
        assert!(!s.enqueue(&call("i1", Op::Open), 1).expect("again"));
        assert!(s.enqueue(&call("i1", Op::Note), 2).expect("note"));
        assert_eq!(s.queued().expect("count"), 2);
    }

    #[test]
    fn calls_of_one_incident_go_in_order_and_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("dir");
        {
            let s = store(&dir);
            s.enqueue(&call("i1", Op::Open), 0).expect("open");
            s.enqueue(&call("i1", Op::Close), 0).expect("close");
            let head = s.next_due(0).expect("due").expect("a call");
            assert_eq!(head.call.op, Op::Open);
            // The open failed and waits; its close must not go first.
            s.failed(head.id, "503", 1_000).expect("failed");
            assert_eq!(s.next_due(500).expect("due"), None);
            assert_eq!(s.next_wake_ms().expect("wake"), Some(1_000));
        }
        let s = store(&dir);
        let head = s.next_due(1_000).expect("due").expect("after a restart");
        assert_eq!((head.call.op, head.attempts), (Op::Open, 1));
        let row = TicketRow {
            monitor: "disk".into(),
            incident: "i1".into(),
            ticket_id: Some("T-1".into()),
            respond_by: None,
            resolve_by: None,
            status: "open".into(),
            updated_ms: 1_000,
        };
        s.answered(head.id, &row).expect("answered");
        let next = s.next_due(1_000).expect("due").expect("the close");
        assert_eq!(next.call.op, Op::Close);
        assert_eq!(
            s.ticket("disk", "i1")
                .expect("row")
                .and_then(|t| t.ticket_id),
            Some("T-1".into())
        );
    }

    #[test]
    fn giving_up_an_open_drops_its_later_calls_and_abandons_the_ticket() {
        let dir = tempfile::tempdir().expect("dir");
        let s = store(&dir);
        s.enqueue(&call("i1", Op::Open), 0).expect("open");
        s.enqueue(&call("i1", Op::Note), 0).expect("note");
        s.enqueue(&call("i2", Op::Open), 0).expect("other incident");
        let head = s.next_due(0).expect("due").expect("a call");
        assert_eq!(s.give_up(&head, 5).expect("give up"), 2);
        assert_eq!(s.queued().expect("count"), 1);
        assert_eq!(
            s.ticket("disk", "i1").expect("row").map(|t| t.status),
            Some("abandoned".into())
        );
        assert!(
            !s.enqueue(&call("i1", Op::Note), 6)
                .expect("no ticket to note")
        );
    }
}
