//! Approval requests in the embedded store: one row per request, its bound subject as the
//! JSON it was digested from, and its state changed only by compare-and-set.
//!
//! Schema, migration "approvals" (the controller's store creates its tables if missing; this
//! one is new, so an older store gains it at the next start and nothing else changes).

use rusqlite::params;
use warden_fleet_wire::{RunId, UnixMillis};

use super::{SqliteStore, collect, corrupt, json, ms, parse};
use crate::approvals::{ApprovalRecord, ApprovalState, RequestId};
use crate::store::StoreError;
use crate::store::approvals::{ApprovalStore, Decision};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS approval_requests (
    id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    bundle BLOB,
    digest TEXT NOT NULL,
    reasons TEXT NOT NULL,
    tenants TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    state TEXT NOT NULL,
    decided_by TEXT,
    decided_ms INTEGER,
    run_id TEXT,
    note TEXT
);
CREATE INDEX IF NOT EXISTS approval_requests_state ON approval_requests(state);
";

const COLUMNS: &str = "id, subject, bundle, digest, reasons, tenants, requested_by, created_ms,
    expires_ms, state, decided_by, decided_ms, run_id, note";

fn record_from(row: &rusqlite::Row<'_>) -> Result<ApprovalRecord, StoreError> {
    let id: String = row.get(0)?;
    let subject: String = row.get(1)?;
    let reasons: String = row.get(4)?;
    let tenants: String = row.get(5)?;
    let state: String = row.get(9)?;
    let run: Option<String> = row.get(12)?;
    Ok(ApprovalRecord {
        id: RequestId::parse(&id).map_err(|e| corrupt("approval id")(e.to_string()))?,
        subject: parse("approval subject", &subject)?,
        bundle: row.get(2)?,
        digest: row.get(3)?,
        reasons: parse("approval reasons", &reasons)?,
        tenants: parse("approval tenants", &tenants)?,
        requested_by: row.get(6)?,
        created_at: UnixMillis(row.get(7)?),
        expires_at: UnixMillis(row.get(8)?),
        state: ApprovalState::parse(&state)
            .ok_or_else(|| corrupt("approval state")(state.clone()))?,
        decided_by: row.get(10)?,
        decided_at: ms(row.get(11)?),
        run: run
            .map(RunId::parse)
            .transpose()
            .map_err(|e| corrupt("approval run")(e.to_string()))?,
        note: row.get(13)?,
    })
}

impl ApprovalStore for SqliteStore {
    fn create_approval(&self, r: &ApprovalRecord) -> Result<(), StoreError> {
        self.db().execute(
            &format!("INSERT INTO approval_requests ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"),
            params![
                r.id.as_str(),
                json(&r.subject),
                r.bundle,
                r.digest,
                json(&r.reasons),
                json(&r.tenants),
                r.requested_by,
                r.created_at.as_millis(),
                r.expires_at.as_millis(),
                r.state.name(),
                r.decided_by,
                r.decided_at.map(|t| t.as_millis()),
                r.run.as_ref().map(|r| r.as_str().to_string()),
                r.note,
            ],
        )?;
        Ok(())
    }

    fn approval(&self, id: &RequestId) -> Result<Option<ApprovalRecord>, StoreError> {
        let db = self.db();
        let mut stmt = db.prepare(&format!(
            "SELECT {COLUMNS} FROM approval_requests WHERE id = ?1"
        ))?;
        Ok(collect(&mut stmt, params![id.as_str()], record_from)?.pop())
    }

    fn approvals(&self, limit: usize) -> Result<Vec<ApprovalRecord>, StoreError> {
        let db = self.db();
        let mut stmt = db.prepare(&format!(
            "SELECT {COLUMNS} FROM approval_requests ORDER BY created_ms DESC, id DESC LIMIT ?1"
        ))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        collect(&mut stmt, params![limit], record_from)
    }

    fn pending_approvals(&self, now: UnixMillis) -> Result<u64, StoreError> {
        let n: i64 = self.db().query_row(
            "SELECT COUNT(*) FROM approval_requests WHERE state = ?1 AND expires_ms > ?2",
            params![ApprovalState::Pending.name(), now.as_millis()],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn decide_approval(&self, id: &RequestId, d: &Decision<'_>) -> Result<bool, StoreError> {
        let changed = self.db().execute(
            "UPDATE approval_requests
             SET state = ?3, decided_by = COALESCE(?4, decided_by),
                 decided_ms = ?5, note = COALESCE(?6, note)
             WHERE id = ?1 AND state = ?2",
            params![
                id.as_str(),
                d.from.name(),
                d.to.name(),
                d.by,
                d.at.as_millis(),
                d.note
            ],
        )?;
        Ok(changed == 1)
    }

    fn set_approval_run(&self, id: &RequestId, run: &RunId) -> Result<(), StoreError> {
        self.db().execute(
            "UPDATE approval_requests SET run_id = ?2 WHERE id = ?1",
            params![id.as_str(), run.as_str()],
        )?;
        Ok(())
    }
}
