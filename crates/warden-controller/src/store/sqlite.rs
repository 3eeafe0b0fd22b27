//! The embedded store: SQLite (bundled), one file, WAL. One connection behind a mutex: the
//! controller's writes are small and its reads are lists, and one writer is what SQLite allows.
//!
//! Results are unique on `(run_id, agent)`: a redelivered result is stored once, and only a
//! final result may replace `running`. Runs store their targets, so a restarted controller
//! knows whom to re-send to and whom to report expired.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};
use warden_fleet_identity::{AgentId, TenantId};
use warden_fleet_wire::{
    AgentEvent, Heartbeat, PatchSummary, RefusalReason, RunId, RunResult, RunStatus, UnixMillis,
};

use super::{
    AgentRecord, BlobRecord, DeployRecord, DesiredRecord, FleetStore, IncidentEvent, NewEnrollment,
    ResultRecord, RunRecord, Seen, StoreError, Stored, TargetRecord, TicketEvent,
};

mod approvals;
mod blobs;
mod console;
mod desired;
mod rollouts;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    hostname TEXT NOT NULL DEFAULT '',
    os TEXT NOT NULL DEFAULT '',
    version TEXT NOT NULL DEFAULT '',
    tags TEXT NOT NULL DEFAULT '{}',
    plugins TEXT NOT NULL DEFAULT '[]',
    open_incidents INTEGER NOT NULL DEFAULT 0,
    last_seen_ms INTEGER,
    interval_ms INTEGER NOT NULL DEFAULT 0,
    enrolled_at_ms INTEGER,
    revoked_at_ms INTEGER
);
-- Later columns of agents: AGENT_ADDED_COLUMNS.
CREATE INDEX IF NOT EXISTS agents_tenant ON agents(tenant);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    runbook TEXT NOT NULL,
    target TEXT NOT NULL,
    params TEXT NOT NULL,
    dry_run INTEGER NOT NULL,
    requested_by TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    tenants TEXT NOT NULL,
    bundle BLOB,
    closed_ms INTEGER
);
CREATE INDEX IF NOT EXISTS runs_open ON runs(closed_ms);
CREATE TABLE IF NOT EXISTS run_targets (
    run_id TEXT NOT NULL REFERENCES runs(id),
    agent TEXT NOT NULL,
    tenant TEXT NOT NULL,
    sends INTEGER NOT NULL DEFAULT 0,
    last_sent_ms INTEGER,
    PRIMARY KEY (run_id, agent)
);
CREATE INDEX IF NOT EXISTS run_targets_agent ON run_targets(agent);
CREATE TABLE IF NOT EXISTS results (
    run_id TEXT NOT NULL,
    agent TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    error TEXT,
    started_ms INTEGER,
    finished_ms INTEGER,
    steps TEXT NOT NULL DEFAULT '[]',
    received_ms INTEGER NOT NULL,
    UNIQUE (run_id, agent)
);
CREATE TABLE IF NOT EXISTS events (
    agent TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    UNIQUE (agent, seq)
);
CREATE INDEX IF NOT EXISTS events_agent ON events(agent);
CREATE TABLE IF NOT EXISTS spent_tokens (
    id TEXT PRIMARY KEY,
    expires_s INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS spent_tokens_expiry ON spent_tokens(expires_s);
CREATE TABLE IF NOT EXISTS state (
    key TEXT PRIMARY KEY,
    json TEXT NOT NULL
);
";

/// Columns of `agents` added after its first release, with their types. `CREATE TABLE IF NOT
/// EXISTS` leaves an existing table as it is, so [`add_missing_columns`] adds these at every
/// open to a table without them: a new store gets them the same way, an older store file
/// gains them at its next start, and nothing else in it changes. Append only.
const AGENT_ADDED_COLUMNS: &[(&str, &str)] = &[
    // Issue 18, the latest patch scan (`Heartbeat::patches`); NULL: never scanned.
    ("patches_pending", "INTEGER"),
    ("patches_security", "INTEGER"),
    ("reboot_required", "INTEGER"),
    ("patches_scanned_ms", "INTEGER"),
    // Issue 16, the maintenance windows (`Heartbeat::windows`, JSON); NULL: never reported.
    ("windows", "TEXT"),
    // Issue 18, the failing checks by name (`Heartbeat::failing`), a JSON array; NULL: no
    // heartbeat since the column came, read as none named.
    ("failing", "TEXT"),
];

/// Add to `table` those of `columns` it lacks (by `PRAGMA table_info`), in one transaction.
fn add_missing_columns(
    db: &mut Connection,
    table: &str,
    columns: &[(&str, &str)],
) -> Result<(), StoreError> {
    let tx = db.transaction()?;
    let present: Vec<String> = {
        let mut stmt = tx.prepare("SELECT name FROM pragma_table_info(?1)")?;
        stmt.query_map([table], |r| r.get(0))?
            .collect::<Result<_, _>>()?
    };
    for (name, kind) in columns {
        if !present.iter().any(|p| p == name) {
            // Names and types are this file's constants, never input.
            tx.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {name} {kind};"))?;
        }
    }
    tx.commit()?;
    Ok(())
}

#[derive(Debug)]
pub struct SqliteStore {
    db: Mutex<Connection>,
}

fn corrupt(what: &'static str) -> impl Fn(String) -> StoreError {
    move |cause| StoreError::Corrupt { what, cause }
}

fn json<T: serde::Serialize>(value: &T) -> String {
    // Maps and vectors of strings always serialise.
    serde_json::to_string(value).unwrap_or_default()
}

fn parse<T: serde::de::DeserializeOwned>(what: &'static str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(what)(e.to_string()))
}

fn ms(v: Option<i64>) -> Option<UnixMillis> {
    v.map(UnixMillis)
}

impl SqliteStore {
    /// Open (or create) the store at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let mut db = Connection::open(path)?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        // Every commit is on disk: a result acknowledged to JetStream must not be lost.
        db.pragma_update(None, "synchronous", "FULL")?;
        db.pragma_update(None, "foreign_keys", "ON")?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        db.execute_batch(SCHEMA)?;
        add_missing_columns(&mut db, "agents", AGENT_ADDED_COLUMNS)?;
        db.execute_batch(desired::SCHEMA)?;
        desired::migrate(&db)?;
        db.execute_batch(approvals::SCHEMA)?;
        db.execute_batch(rollouts::SCHEMA)?;
        db.execute_batch(blobs::SCHEMA)?;
        Ok(SqliteStore { db: Mutex::new(db) })
    }

    fn db(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (transactions roll back).
        self.db
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn status_columns(status: &RunStatus) -> (&'static str, Option<&'static str>) {
    match status {
        RunStatus::Refused { reason } => ("refused", Some(reason.name())),
        other => (other.name(), None),
    }
}

fn status_from(status: &str, reason: Option<&str>) -> Result<RunStatus, StoreError> {
    Ok(match status {
        "running" => RunStatus::Running,
        "succeeded" => RunStatus::Succeeded,
        "failed" => RunStatus::Failed,
        "cancelled" => RunStatus::Cancelled,
        "refused" => {
            let reason = reason.unwrap_or("invalid");
            let reason: RefusalReason = serde_json::from_value(serde_json::Value::from(reason))
                .map_err(|e| corrupt("refusal reason")(e.to_string()))?;
            RunStatus::Refused { reason }
        }
        other => return Err(corrupt("result status")(other.to_string())),
    })
}

const AGENT_COLUMNS: &str = "id, tenant, name, hostname, os, version, tags, plugins, \
    open_incidents, last_seen_ms, interval_ms, enrolled_at_ms, revoked_at_ms, \
    patches_pending, patches_security, reboot_required, patches_scanned_ms, windows, failing";

fn agent_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<[Option<String>; 8]> {
    Ok([
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
    ])
}

fn agent_from(row: &rusqlite::Row<'_>) -> Result<AgentRecord, StoreError> {
    let [id, tenant, name, hostname, os, version, tags, plugins] = agent_row(row)?;
    let s = |v: Option<String>| v.unwrap_or_default();
    Ok(AgentRecord {
        id: AgentId::new(s(id)).map_err(|e| corrupt("agent id")(e.to_string()))?,
        tenant: TenantId::new(s(tenant)).map_err(|e| corrupt("tenant")(e.to_string()))?,
        name: s(name),
        hostname: s(hostname),
        os: s(os),
        version: s(version),
        tags: parse("agent tags", &s(tags))?,
        plugins: parse("agent plugins", &s(plugins))?,
        open_incidents: row.get(8)?,
        last_seen: ms(row.get(9)?),
        interval_ms: row.get(10)?,
        enrolled_at: ms(row.get(11)?),
        revoked_at: ms(row.get(12)?),
        patches: patches_from(row)?,
        windows: match row.get::<_, Option<String>>(17)? {
            Some(text) => Some(parse("agent windows", &text)?),
            None => None,
        },
        failing: match row.get::<_, Option<String>>(18)? {
            Some(names) => parse("agent failing checks", &names)?,
            None => Vec::new(),
        },
    })
}

/// The patch columns (13 ..= 16 of [`AGENT_COLUMNS`]): all set by a heartbeat with a summary,
/// all NULL otherwise.
fn patches_from(row: &rusqlite::Row<'_>) -> Result<Option<PatchSummary>, StoreError> {
    let pending: Option<u32> = row.get(13)?;
    let security: Option<u32> = row.get(14)?;
    let reboot: Option<bool> = row.get(15)?;
    let scanned: Option<i64> = row.get(16)?;
    Ok(match (pending, security, reboot, scanned) {
        (Some(pending), Some(security), Some(reboot_required), Some(scanned)) => {
            Some(PatchSummary {
                pending,
                security,
                reboot_required,
                scanned_at: UnixMillis(scanned),
            })
        }
        (None, None, None, None) => None,
        _ => return Err(corrupt("agent patches")("some columns unset".into())),
    })
}

const RUN_COLUMNS: &str = "id, runbook, target, params, dry_run, requested_by, created_ms, \
    expires_ms, tenants, bundle, closed_ms";

fn run_from(row: &rusqlite::Row<'_>) -> Result<RunRecord, StoreError> {
    let id: String = row.get(0)?;
    let params: String = row.get(3)?;
    let tenants: String = row.get(8)?;
    Ok(RunRecord {
        id: RunId::parse(id).map_err(|e| corrupt("run id")(e.to_string()))?,
        runbook: row.get(1)?,
        target: row.get(2)?,
        params: parse("run params", &params)?,
        dry_run: row.get(4)?,
        requested_by: row.get(5)?,
        created_at: UnixMillis(row.get(6)?),
        expires_at: UnixMillis(row.get(7)?),
        tenants: parse("run tenants", &tenants)?,
        bundle: row.get(9)?,
        closed_at: ms(row.get(10)?),
    })
}

fn collect<T>(
    stmt: &mut rusqlite::Statement<'_>,
    args: impl rusqlite::Params,
    mut f: impl FnMut(&rusqlite::Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut rows = stmt.query(args)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(f(row)?);
    }
    Ok(out)
}

impl FleetStore for SqliteStore {
    fn enroll_agent(
        &self,
        agent: &AgentId,
        tenant: &TenantId,
        name: &str,
        tags: &BTreeMap<String, String>,
        at: UnixMillis,
    ) -> Result<(), StoreError> {
        self.db().execute(
            "INSERT INTO agents (id, tenant, name, tags, enrolled_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(id) DO UPDATE SET name = ?3, tags = ?4, enrolled_at_ms = ?5",
            params![agent.as_str(), tenant.as_str(), name, json(tags), at.as_millis()],
        )?;
        Ok(())
    }

    fn record_heartbeat(&self, hb: &Heartbeat, received: UnixMillis) -> Result<Seen, StoreError> {
        let mut seen = self.record_heartbeats(std::slice::from_ref(hb), received)?;
        seen.pop()
            .ok_or_else(|| corrupt("heartbeat batch")("nothing stored".into()))
    }

    fn record_heartbeats(
        &self,
        hbs: &[Heartbeat],
        received: UnixMillis,
    ) -> Result<Vec<Seen>, StoreError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let seen = hbs
            .iter()
            .map(|hb| record_heartbeat_in(&tx, hb, received))
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit()?;
        Ok(seen)
    }

    fn agents(&self, tenant: Option<&TenantId>) -> Result<Vec<AgentRecord>, StoreError> {
        let db = self.db();
        match tenant {
            Some(t) => {
                let mut stmt = db.prepare(&format!(
                    "SELECT {AGENT_COLUMNS} FROM agents WHERE tenant = ?1 ORDER BY tenant, hostname, id"
                ))?;
                collect(&mut stmt, [t.as_str()], agent_from)
            }
            None => {
                let mut stmt = db.prepare(&format!(
                    "SELECT {AGENT_COLUMNS} FROM agents ORDER BY tenant, hostname, id"
                ))?;
                collect(&mut stmt, [], agent_from)
            }
        }
    }

    fn agent(&self, agent: &AgentId) -> Result<Option<AgentRecord>, StoreError> {
        let db = self.db();
        let mut stmt = db.prepare(&format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = ?1"))?;
        Ok(collect(&mut stmt, [agent.as_str()], agent_from)?.pop())
    }

    fn mark_revoked(&self, agent: &AgentId, at: UnixMillis) -> Result<(), StoreError> {
        self.db().execute(
            "UPDATE agents SET revoked_at_ms = ?2 WHERE id = ?1",
            params![agent.as_str(), at.as_millis()],
        )?;
        Ok(())
    }

    fn create_run(
        &self,
        run: &RunRecord,
        targets: &[(AgentId, TenantId)],
    ) -> Result<(), StoreError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO runs (id, runbook, target, params, dry_run, requested_by,
                 created_ms, expires_ms, tenants, bundle, closed_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, NULL)",
            params![
                run.id.as_str(),
                run.runbook,
                run.target,
                json(&run.params),
                run.dry_run,
                run.requested_by,
                run.created_at.as_millis(),
                run.expires_at.as_millis(),
                json(&run.tenants),
                run.bundle,
            ],
        )?;
        if inserted == 0 {
            return Err(StoreError::RunExists(run.id.clone()));
        }
        {
            let mut stmt =
                tx.prepare("INSERT INTO run_targets (run_id, agent, tenant) VALUES (?1, ?2, ?3)")?;
            for (agent, tenant) in targets {
                stmt.execute(params![run.id.as_str(), agent.as_str(), tenant.as_str()])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn run(&self, run: &RunId) -> Result<Option<RunRecord>, StoreError> {
        let db = self.db();
        let mut stmt = db.prepare(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"))?;
        Ok(collect(&mut stmt, [run.as_str()], run_from)?.pop())
    }

    fn runs(&self, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        let db = self.db();
        let mut stmt = db.prepare(&format!(
            "SELECT {RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT ?1"
        ))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        collect(&mut stmt, [limit], run_from)
    }

    fn open_runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        let db = self.db();
        let mut stmt = db.prepare(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE closed_ms IS NULL ORDER BY id"
        ))?;
        collect(&mut stmt, [], run_from)
    }

    fn close_run(&self, run: &RunId, at: UnixMillis) -> Result<(), StoreError> {
        self.db().execute(
            "UPDATE runs SET closed_ms = ?2 WHERE id = ?1 AND closed_ms IS NULL",
            params![run.as_str(), at.as_millis()],
        )?;
        Ok(())
    }

    fn targets(&self, run: &RunId) -> Result<Vec<TargetRecord>, StoreError> {
        let db = self.db();
        let mut stmt = db.prepare(
            "SELECT agent, tenant, sends, last_sent_ms FROM run_targets WHERE run_id = ?1 ORDER BY agent",
        )?;
        collect(&mut stmt, [run.as_str()], |row| {
            let agent: String = row.get(0)?;
            let tenant: String = row.get(1)?;
            Ok(TargetRecord {
                agent: AgentId::new(agent).map_err(|e| corrupt("agent id")(e.to_string()))?,
                tenant: TenantId::new(tenant).map_err(|e| corrupt("tenant")(e.to_string()))?,
                sends: row.get(2)?,
                last_sent: ms(row.get(3)?),
            })
        })
    }

    fn record_sends(
        &self,
        run: &RunId,
        agents: &[AgentId],
        at: UnixMillis,
    ) -> Result<(), StoreError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        {
            let mut stmt = tx.prepare(
                "UPDATE run_targets SET sends = sends + 1, last_sent_ms = ?3
                 WHERE run_id = ?1 AND agent = ?2",
            )?;
            for agent in agents {
                stmt.execute(params![run.as_str(), agent.as_str(), at.as_millis()])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn record_result(&self, r: &RunResult, received: UnixMillis) -> Result<Stored, StoreError> {
        let mut stored = self.record_results(std::slice::from_ref(r), received)?;
        stored
            .pop()
            .ok_or_else(|| corrupt("result batch")("nothing stored".into()))
    }

    fn record_results(
        &self,
        results: &[RunResult],
        received: UnixMillis,
    ) -> Result<Vec<Stored>, StoreError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let outcomes = results
            .iter()
            .map(|r| record_result_in(&tx, r, received))
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit()?;
        Ok(outcomes)
    }

    fn results(&self, run: &RunId) -> Result<Vec<ResultRecord>, StoreError> {
        let db = self.db();
        let mut stmt = db.prepare(
            "SELECT agent, status, reason, error, started_ms, finished_ms, steps, received_ms
             FROM results WHERE run_id = ?1 ORDER BY agent",
        )?;
        collect(&mut stmt, [run.as_str()], |row| {
            let agent: String = row.get(0)?;
            let status: String = row.get(1)?;
            let reason: Option<String> = row.get(2)?;
            let steps: String = row.get(6)?;
            Ok(ResultRecord {
                agent: AgentId::new(agent).map_err(|e| corrupt("agent id")(e.to_string()))?,
                status: status_from(&status, reason.as_deref())?,
                error: row.get(3)?,
                started_at: ms(row.get(4)?),
                finished_at: ms(row.get(5)?),
                steps: parse("result steps", &steps)?,
                received_at: UnixMillis(row.get(7)?),
            })
        })
    }

    fn unanswered_for(&self, agent: &AgentId) -> Result<Vec<RunRecord>, StoreError> {
        let db = self.db();
        let columns = RUN_COLUMNS
            .split(", ")
            .map(|c| format!("r.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let mut stmt = db.prepare(&format!(
            "SELECT {columns} FROM runs r JOIN run_targets t ON t.run_id = r.id
             WHERE t.agent = ?1 AND r.closed_ms IS NULL
               AND NOT EXISTS (SELECT 1 FROM results s WHERE s.run_id = r.id AND s.agent = t.agent)
             ORDER BY r.id"
        ))?;
        collect(&mut stmt, [agent.as_str()], run_from)
    }

    fn set_desired(&self, rows: &[DesiredRecord]) -> Result<(), StoreError> {
        desired::set_desired(&mut self.db(), rows)
    }

    fn desired_for(&self, agent: &AgentId) -> Result<Vec<DesiredRecord>, StoreError> {
        desired::desired_for(&self.db(), agent)
    }

    fn desired_of(&self, name: &str) -> Result<Vec<DesiredRecord>, StoreError> {
        desired::desired_of(&self.db(), name)
    }

    fn record_blob(
        &self,
        tenant: &TenantId,
        sha256: &str,
        size: u64,
        at: UnixMillis,
    ) -> Result<(), StoreError> {
        blobs::record(&self.db(), tenant, sha256, size, at)
    }

    fn record_blob_if_unknown(
        &self,
        tenant: &TenantId,
        sha256: &str,
        at: UnixMillis,
    ) -> Result<(), StoreError> {
        blobs::record_if_unknown(&self.db(), tenant, sha256, at)
    }

    fn unused_blobs(&self, stored_before: UnixMillis) -> Result<Vec<BlobRecord>, StoreError> {
        blobs::unused(&self.db(), stored_before)
    }

    fn forget_blob(&self, blob: &BlobRecord) -> Result<bool, StoreError> {
        blobs::forget(&self.db(), blob)
    }

    fn record_deploy_reports(
        &self,
        reports: &[warden_fleet_wire::DeployReport],
        received: UnixMillis,
    ) -> Result<Vec<bool>, StoreError> {
        desired::record_reports(&mut self.db(), reports, received)
    }

    fn deploy_reports(&self, name: &str) -> Result<Vec<DeployRecord>, StoreError> {
        desired::reports_of(&self.db(), name)
    }

    fn create_rollout(
        &self,
        rollout: &crate::rollout::RolloutRecord,
        agents: &[crate::rollout::RolloutAgent],
    ) -> Result<(), StoreError> {
        rollouts::create(&mut self.db(), rollout, agents)
    }

    fn rollout(&self, id: &str) -> Result<Option<crate::rollout::RolloutRecord>, StoreError> {
        rollouts::get(&self.db(), id)
    }

    fn active_rollouts(&self) -> Result<Vec<crate::rollout::RolloutRecord>, StoreError> {
        rollouts::active(&self.db())
    }

    fn recent_rollouts(
        &self,
        limit: usize,
    ) -> Result<Vec<crate::rollout::RolloutRecord>, StoreError> {
        rollouts::recent(&self.db(), limit)
    }

    fn rollout_phases(&self) -> Result<Vec<(String, u64)>, StoreError> {
        rollouts::phases(&self.db())
    }

    fn save_rollout_state(
        &self,
        id: &str,
        state: &crate::rollout::State,
        at: UnixMillis,
    ) -> Result<(), StoreError> {
        rollouts::save_state(&self.db(), id, state, at)
    }

    fn rollout_agents(&self, id: &str) -> Result<Vec<crate::rollout::RolloutAgent>, StoreError> {
        rollouts::agents(&self.db(), id)
    }

    fn release_rollout_agents(
        &self,
        id: &str,
        released: &[(AgentId, Option<crate::rollout::Previous>)],
        at: UnixMillis,
    ) -> Result<(), StoreError> {
        rollouts::release(&mut self.db(), id, released, at)
    }

    fn record_event(&self, event: &AgentEvent, received: UnixMillis) -> Result<bool, StoreError> {
        let seq = i64::try_from(event.seq).unwrap_or(i64::MAX);
        let n = self.db().execute(
            "INSERT OR IGNORE INTO events (agent, seq, body, received_ms) VALUES (?1, ?2, ?3, ?4)",
            params![event.agent.as_str(), seq, json(event), received.as_millis()],
        )?;
        Ok(n == 1)
    }

    fn events(&self, limit: usize) -> Result<Vec<AgentEvent>, StoreError> {
        let db = self.db();
        let mut stmt =
            db.prepare("SELECT body FROM events ORDER BY received_ms DESC, seq DESC LIMIT ?1")?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        collect(&mut stmt, [limit], |row| {
            let body: String = row.get(0)?;
            parse::<AgentEvent>("event", &body)
        })
    }

    fn incident_events(
        &self,
        tenant: &TenantId,
        before: UnixMillis,
    ) -> Result<Vec<IncidentEvent>, StoreError> {
        // The tenant is the agent's enrolled one (the join), not what the body claims.
        let db = self.db();
        let mut stmt = db.prepare_cached(
            "SELECT e.body, CASE a.hostname WHEN '' THEN a.name ELSE a.hostname END
             FROM events e JOIN agents a ON a.id = e.agent
             WHERE a.tenant = ?1
               AND json_extract(e.body, '$.kind') IN ('incident-opened', 'incident-resolved')
               AND json_extract(e.body, '$.at') < ?2",
        )?;
        collect(
            &mut stmt,
            params![tenant.as_str(), before.as_millis()],
            |row| {
                let body: String = row.get(0)?;
                let event = parse::<AgentEvent>("event", &body)?;
                Ok(IncidentEvent {
                    at: event.at,
                    host: row.get(1)?,
                    opened: event.kind == warden_fleet_wire::EventKind::IncidentOpened,
                    monitor: event.subject,
                    check: event.check,
                })
            },
        )
    }

    fn ticket_events(
        &self,
        tenant: &TenantId,
        before: UnixMillis,
    ) -> Result<Vec<TicketEvent>, StoreError> {
        // As `incident_events`: the tenant is the agent's enrolled one. The tickets are in the
        // event's JSON body (no column: events are stored whole), so no schema change.
        let db = self.db();
        let mut stmt = db.prepare_cached(
            "SELECT e.body, CASE a.hostname WHEN '' THEN a.name ELSE a.hostname END
             FROM events e JOIN agents a ON a.id = e.agent
             WHERE a.tenant = ?1
               AND json_extract(e.body, '$.tickets') IS NOT NULL
               AND json_extract(e.body, '$.at') < ?2",
        )?;
        let per_event = collect(
            &mut stmt,
            params![tenant.as_str(), before.as_millis()],
            |row| {
                let body: String = row.get(0)?;
                let host: String = row.get(1)?;
                let event = parse::<AgentEvent>("event", &body)?;
                Ok(event
                    .tickets
                    .into_iter()
                    .map(|ticket| TicketEvent {
                        at: event.at,
                        host: host.clone(),
                        monitor: event.subject.clone(),
                        ticket,
                    })
                    .collect::<Vec<_>>())
            },
        )?;
        Ok(per_event.into_iter().flatten().collect())
    }

    fn record_enrollments(&self, batch: &[NewEnrollment], now_secs: i64) -> Result<(), StoreError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        for e in batch {
            tx.execute(
                "INSERT OR REPLACE INTO spent_tokens (id, expires_s) VALUES (?1, ?2)",
                params![e.token_id, e.token_expires_at],
            )?;
            tx.execute(
                "INSERT INTO agents (id, tenant, name, tags, enrolled_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(id) DO UPDATE SET name = ?3, tags = ?4, enrolled_at_ms = ?5",
                params![e.agent.as_str(), e.tenant.as_str(), e.name, json(&e.tags), e.at.as_millis()],
            )?;
        }
        tx.execute("DELETE FROM spent_tokens WHERE expires_s < ?1", [now_secs])?;
        tx.commit()?;
        Ok(())
    }

    fn spend_token(&self, id: &str, expires_at: i64, now_secs: i64) -> Result<(), StoreError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO spent_tokens (id, expires_s) VALUES (?1, ?2)",
            params![id, expires_at],
        )?;
        tx.execute("DELETE FROM spent_tokens WHERE expires_s < ?1", [now_secs])?;
        tx.commit()?;
        Ok(())
    }

    fn spent_tokens(&self, now_secs: i64) -> Result<Vec<(String, i64)>, StoreError> {
        let db = self.db();
        let mut stmt =
            db.prepare("SELECT id, expires_s FROM spent_tokens WHERE expires_s >= ?1")?;
        collect(&mut stmt, [now_secs], |row| Ok((row.get(0)?, row.get(1)?)))
    }

    fn load_state(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .db()
            .query_row("SELECT json FROM state WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    fn save_state(&self, key: &str, json: &str) -> Result<(), StoreError> {
        self.db().execute(
            "INSERT INTO state (key, json) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET json = ?2",
            params![key, json],
        )?;
        Ok(())
    }

    fn delete_state(&self, key: &str) -> Result<(), StoreError> {
        self.db()
            .execute("DELETE FROM state WHERE key = ?1", [key])?;
        Ok(())
    }

    fn agent_page(
        &self,
        query: &super::query::AgentQuery,
        now: UnixMillis,
    ) -> Result<super::query::AgentPage, StoreError> {
        console::agent_page(&self.db(), query, now)
    }

    fn agent_runs(
        &self,
        agent: &AgentId,
        limit: usize,
    ) -> Result<Vec<super::query::AgentRunRow>, StoreError> {
        console::agent_runs(&self.db(), agent, limit)
    }

    fn agent_events(&self, agent: &AgentId, limit: usize) -> Result<Vec<AgentEvent>, StoreError> {
        console::agent_events(&self.db(), agent, limit)
    }

    fn approvals(&self) -> &dyn super::approvals::ApprovalStore {
        self
    }
}

/// One heartbeat, inside the caller's transaction (see [`FleetStore::record_heartbeats`]).
fn record_heartbeat_in(
    tx: &rusqlite::Transaction<'_>,
    hb: &Heartbeat,
    received: UnixMillis,
) -> Result<Seen, StoreError> {
    let before: Option<(Option<i64>, i64, Option<i64>)> = tx
        .query_row(
            "SELECT last_seen_ms, interval_ms, revoked_at_ms FROM agents WHERE id = ?1",
            [hb.agent.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    tx.execute(
        "INSERT INTO agents (id, tenant, hostname, os, version, tags, plugins, open_incidents,
                             last_seen_ms, interval_ms, patches_pending, patches_security,
                             reboot_required, patches_scanned_ms, windows, failing)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
         ON CONFLICT(id) DO UPDATE SET hostname = ?3, os = ?4, version = ?5, tags = ?6,
             plugins = ?7, open_incidents = ?8, last_seen_ms = ?9, interval_ms = ?10,
             patches_pending = ?11, patches_security = ?12, reboot_required = ?13,
             patches_scanned_ms = ?14, windows = ?15, failing = ?16",
        params![
            hb.agent.as_str(),
            hb.tenant.as_str(),
            hb.hostname,
            hb.os,
            hb.agent_version,
            json(&hb.tags),
            json(&hb.plugins),
            hb.open_incidents,
            received.as_millis(),
            hb.interval_ms,
            // The heartbeat is the agent's whole inventory: no summary clears the last one.
            hb.patches.map(|p| p.pending),
            hb.patches.map(|p| p.security),
            hb.patches.map(|p| p.reboot_required),
            hb.patches.map(|p| p.scanned_at.as_millis()),
            // As the summary: what the agent reports now replaces what it reported before.
            hb.windows.as_ref().map(json),
            json(&hb.failing),
        ],
    )?;
    Ok(match before {
        Some((last, interval, revoked)) => Seen {
            previous: ms(last),
            previous_interval_ms: interval,
            revoked: revoked.is_some(),
        },
        None => Seen {
            previous: None,
            previous_interval_ms: 0,
            revoked: false,
        },
    })
}

/// One result, inside the caller's transaction (see [`FleetStore::record_results`]).
fn record_result_in(
    tx: &rusqlite::Transaction<'_>,
    r: &RunResult,
    received: UnixMillis,
) -> Result<Stored, StoreError> {
    let targeted: bool = tx
        .query_row(
            "SELECT 1 FROM run_targets WHERE run_id = ?1 AND agent = ?2 AND tenant = ?3",
            params![r.run.as_str(), r.agent.as_str(), r.tenant.as_str()],
            |_| Ok(true),
        )
        .optional()?
        .unwrap_or(false);
    if !targeted {
        return Ok(Stored::NotTargeted);
    }
    let existing: Option<String> = tx
        .query_row(
            "SELECT status FROM results WHERE run_id = ?1 AND agent = ?2",
            params![r.run.as_str(), r.agent.as_str()],
            |row| row.get(0),
        )
        .optional()?;
    let (status, reason) = status_columns(&r.status);
    let values = params![
        r.run.as_str(),
        r.agent.as_str(),
        status,
        reason,
        r.error,
        r.started_at.map(UnixMillis::as_millis),
        r.finished_at.map(UnixMillis::as_millis),
        json(&r.steps),
        received.as_millis(),
    ];
    let outcome = match existing.as_deref() {
        None => {
            tx.execute(
                "INSERT INTO results (run_id, agent, status, reason, error, started_ms,
                     finished_ms, steps, received_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                values,
            )?;
            Stored::New
        }
        Some("running") if r.status.is_final() => {
            tx.execute(
                "UPDATE results SET status = ?3, reason = ?4, error = ?5,
                     started_ms = COALESCE(?6, started_ms), finished_ms = ?7, steps = ?8,
                     received_ms = ?9
                 WHERE run_id = ?1 AND agent = ?2",
                values,
            )?;
            Stored::Final
        }
        Some(_) => Stored::Duplicate,
    };
    Ok(outcome)
}

#[cfg(test)]
mod tests;
