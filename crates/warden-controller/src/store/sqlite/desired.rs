//! Desired state and deploy reports in the embedded store: one row per (agent, plugin) of what
//! is desired, one per (agent, plugin, bundle digest) of what the agent reported, so a late
//! report about an older digest never stands for the current one.

use rusqlite::{Connection, params};
use warden_fleet_identity::{AgentId, TenantId};
use warden_fleet_wire::{DeployOutcome, DeployReport, OwnCheck, OwnCheckStatus, UnixMillis};

use super::collect;
use crate::store::{DeployRecord, DesiredRecord, StoreError};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS desired (
    agent TEXT NOT NULL,
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    published_ms INTEGER NOT NULL,
    published_by TEXT NOT NULL,
    removed INTEGER NOT NULL DEFAULT 0,
    maintenance INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (agent, name)
);
CREATE INDEX IF NOT EXISTS desired_by_name ON desired(name);
CREATE TABLE IF NOT EXISTS deploy_reports (
    agent TEXT NOT NULL,
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    error TEXT,
    at_ms INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    check_status TEXT,
    check_summary TEXT,
    PRIMARY KEY (agent, name, sha256)
);
";

/// Migrations, each idempotent:
/// - "desired removals": a store created before removals gains the column (every row it holds
///   is a desired bundle, `removed = 0`);
/// - "own check": deploy reports gain the installed check plugin's first run (`NULL` for
///   reports received before: they carried none);
/// - "maintenance runbooks": desired rows gain the runbook's marker (`0` for rows published
///   before; publishing the runbook again records it).
pub(super) fn migrate(db: &Connection) -> Result<(), StoreError> {
    let desired = columns(db, "desired")?;
    if !desired.iter().any(|c| c == "removed") {
        db.execute_batch("ALTER TABLE desired ADD COLUMN removed INTEGER NOT NULL DEFAULT 0")?;
    }
    if !desired.iter().any(|c| c == "maintenance") {
        db.execute_batch("ALTER TABLE desired ADD COLUMN maintenance INTEGER NOT NULL DEFAULT 0")?;
    }
    if !columns(db, "deploy_reports")?
        .iter()
        .any(|c| c == "check_status")
    {
        db.execute_batch(
            "ALTER TABLE deploy_reports ADD COLUMN check_status TEXT;
             ALTER TABLE deploy_reports ADD COLUMN check_summary TEXT;",
        )?;
    }
    Ok(())
}

fn columns(db: &Connection, table: &str) -> Result<Vec<String>, StoreError> {
    let mut stmt = db.prepare("SELECT name FROM pragma_table_info(?1)")?;
    let names = stmt
        .query_map([table], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(names)
}

fn id<T>(what: &'static str, r: Result<T, impl std::fmt::Display>) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::Corrupt {
        what,
        cause: e.to_string(),
    })
}

pub(super) fn set_desired(db: &mut Connection, rows: &[DesiredRecord]) -> Result<(), StoreError> {
    let tx = db.transaction()?;
    for r in rows {
        tx.execute(
            "INSERT OR REPLACE INTO desired
             (agent, tenant, name, version, sha256, size, published_ms, published_by, removed,
              maintenance)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                r.agent.as_str(),
                r.tenant.as_str(),
                r.name,
                r.version,
                r.sha256,
                i64::try_from(r.size).unwrap_or(i64::MAX),
                r.published_at.as_millis(),
                r.published_by,
                r.removed,
                r.maintenance,
            ],
        )?;
    }
    tx.commit()?;
    Ok(())
}

fn desired_row(row: &rusqlite::Row<'_>) -> Result<DesiredRecord, StoreError> {
    let agent: String = row.get(0)?;
    let tenant: String = row.get(1)?;
    let size: i64 = row.get(5)?;
    Ok(DesiredRecord {
        agent: id("desired agent", AgentId::new(agent))?,
        tenant: id("desired tenant", TenantId::new(tenant))?,
        name: row.get(2)?,
        version: row.get(3)?,
        sha256: row.get(4)?,
        size: u64::try_from(size).unwrap_or(0),
        published_at: UnixMillis(row.get(6)?),
        published_by: row.get(7)?,
        removed: row.get(8)?,
        maintenance: row.get(9)?,
    })
}

const DESIRED_COLUMNS: &str = "agent, tenant, name, version, sha256, size, published_ms, \
     published_by, removed, maintenance";

pub(super) fn desired_for(
    db: &Connection,
    agent: &AgentId,
) -> Result<Vec<DesiredRecord>, StoreError> {
    let mut stmt = db.prepare(&format!(
        "SELECT {DESIRED_COLUMNS} FROM desired WHERE agent = ?1 ORDER BY name"
    ))?;
    collect(&mut stmt, [agent.as_str()], desired_row)
}

pub(super) fn desired_of(db: &Connection, name: &str) -> Result<Vec<DesiredRecord>, StoreError> {
    let mut stmt = db.prepare(&format!(
        "SELECT {DESIRED_COLUMNS} FROM desired WHERE name = ?1 ORDER BY tenant, agent"
    ))?;
    collect(&mut stmt, [name], desired_row)
}

/// Store reports; `true` for each that changed a row (a newer report for its digest).
pub(super) fn record_reports(
    db: &mut Connection,
    reports: &[DeployReport],
    received: UnixMillis,
) -> Result<Vec<bool>, StoreError> {
    let tx = db.transaction()?;
    let mut changed = Vec::with_capacity(reports.len());
    for r in reports {
        let (state, reason) = match r.outcome {
            DeployOutcome::Installed => ("installed", None),
            DeployOutcome::Removed => ("removed", None),
            DeployOutcome::Refused { reason } => ("refused", Some(reason.name())),
        };
        // A redelivery (same time) or an older report changes nothing.
        let n = tx.execute(
            "INSERT INTO deploy_reports (agent, name, sha256, state, reason, error, at_ms,
                                         received_ms, check_status, check_summary)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (agent, name, sha256) DO UPDATE SET
               state = excluded.state, reason = excluded.reason, error = excluded.error,
               at_ms = excluded.at_ms, received_ms = excluded.received_ms,
               check_status = excluded.check_status, check_summary = excluded.check_summary
             WHERE excluded.at_ms > deploy_reports.at_ms",
            params![
                r.agent.as_str(),
                r.item(),
                r.sha256,
                state,
                reason,
                r.error,
                r.at.as_millis(),
                received.as_millis(),
                r.check.as_ref().map(|c| c.status.name()),
                r.check.as_ref().map(|c| c.summary.as_str()),
            ],
        )?;
        changed.push(n == 1);
    }
    tx.commit()?;
    Ok(changed)
}

pub(super) fn reports_of(db: &Connection, name: &str) -> Result<Vec<DeployRecord>, StoreError> {
    let mut stmt = db.prepare(
        "SELECT agent, sha256, state, reason, error, at_ms, check_status, check_summary
         FROM deploy_reports WHERE name = ?1",
    )?;
    collect(&mut stmt, [name], |row| {
        let agent: String = row.get(0)?;
        let status: Option<String> = row.get(6)?;
        let check = match status {
            None => None,
            Some(status) => Some(OwnCheck {
                status: id(
                    "report check status",
                    OwnCheckStatus::parse(&status).ok_or(status),
                )?,
                summary: row.get::<_, Option<String>>(7)?.unwrap_or_default(),
            }),
        };
        Ok(DeployRecord {
            agent: id("report agent", AgentId::new(agent))?,
            sha256: row.get(1)?,
            state: row.get(2)?,
            reason: row.get(3)?,
            error: row.get(4)?,
            at: UnixMillis(row.get(5)?),
            check,
        })
    })
}
