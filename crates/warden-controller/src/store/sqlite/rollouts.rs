//! Rollouts in the embedded store (issue 16): the plan and its state as JSON (the machine's
//! types, read back strictly), one row per targeted agent.

use rusqlite::{Connection, params};
use warden_fleet_identity::{AgentId, TenantId};
use warden_fleet_wire::UnixMillis;

use super::{collect, corrupt, json, parse};
use crate::rollout::{Previous, RolloutAgent, RolloutRecord, State};
use crate::store::StoreError;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS rollouts (
    id TEXT PRIMARY KEY,
    plugin TEXT NOT NULL,
    version TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    bundle BLOB NOT NULL,
    target TEXT NOT NULL,
    tenants TEXT NOT NULL,
    plan TEXT NOT NULL,
    state TEXT NOT NULL,
    phase TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS rollouts_phase ON rollouts(phase);
CREATE TABLE IF NOT EXISTS rollout_agents (
    rollout_id TEXT NOT NULL REFERENCES rollouts(id),
    agent TEXT NOT NULL,
    tenant TEXT NOT NULL,
    wave INTEGER NOT NULL,
    released_ms INTEGER,
    prev_version TEXT,
    prev_sha256 TEXT,
    prev_size INTEGER,
    PRIMARY KEY (rollout_id, agent)
);
";

const COLUMNS: &str = "id, plugin, version, sha256, size, bundle, target, tenants, plan, state, \
    created_ms, created_by, updated_ms";

fn size(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn create(
    db: &mut Connection,
    r: &RolloutRecord,
    agents: &[RolloutAgent],
) -> Result<(), StoreError> {
    let tx = db.transaction()?;
    tx.execute(
        &format!("INSERT INTO rollouts ({COLUMNS}, phase) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"),
        params![
            r.id,
            r.plugin,
            r.version,
            r.sha256,
            size(r.size),
            r.bundle,
            r.target,
            json(&r.tenants),
            json(&r.plan),
            json(&r.state),
            r.created_at.as_millis(),
            r.created_by,
            r.updated_at.as_millis(),
            r.state.phase.name(),
        ],
    )?;
    {
        let mut stmt = tx.prepare(
            "INSERT INTO rollout_agents (rollout_id, agent, tenant, wave) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for a in agents {
            stmt.execute(params![
                r.id,
                a.agent.as_str(),
                a.tenant.as_str(),
                i64::try_from(a.wave).unwrap_or(i64::MAX)
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

fn record(row: &rusqlite::Row<'_>) -> Result<RolloutRecord, StoreError> {
    let size: i64 = row.get(4)?;
    let tenants: String = row.get(7)?;
    let plan: String = row.get(8)?;
    let state: String = row.get(9)?;
    Ok(RolloutRecord {
        id: row.get(0)?,
        plugin: row.get(1)?,
        version: row.get(2)?,
        sha256: row.get(3)?,
        size: u64::try_from(size).unwrap_or(0),
        bundle: row.get(5)?,
        target: row.get(6)?,
        tenants: parse("rollout tenants", &tenants)?,
        plan: parse("rollout plan", &plan)?,
        state: parse("rollout state", &state)?,
        created_at: UnixMillis(row.get(10)?),
        created_by: row.get(11)?,
        updated_at: UnixMillis(row.get(12)?),
    })
}

pub(super) fn get(db: &Connection, id: &str) -> Result<Option<RolloutRecord>, StoreError> {
    let mut stmt = db.prepare(&format!("SELECT {COLUMNS} FROM rollouts WHERE id = ?1"))?;
    Ok(collect(&mut stmt, [id], record)?.pop())
}

pub(super) fn active(db: &Connection) -> Result<Vec<RolloutRecord>, StoreError> {
    let mut stmt = db.prepare(&format!(
        "SELECT {COLUMNS} FROM rollouts WHERE phase IN ('pending', 'running') ORDER BY created_ms, id"
    ))?;
    collect(&mut stmt, [], record)
}

pub(super) fn recent(db: &Connection, limit: usize) -> Result<Vec<RolloutRecord>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = db.prepare(&format!(
        "SELECT {COLUMNS} FROM rollouts ORDER BY created_ms DESC, rowid DESC LIMIT ?1"
    ))?;
    collect(&mut stmt, [limit], record)
}

pub(super) fn phases(db: &Connection) -> Result<Vec<(String, u64)>, StoreError> {
    let mut stmt =
        db.prepare("SELECT phase, COUNT(*) FROM rollouts GROUP BY phase ORDER BY phase")?;
    collect(&mut stmt, [], |r| {
        Ok((r.get(0)?, u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0)))
    })
}

pub(super) fn save_state(
    db: &Connection,
    id: &str,
    state: &State,
    at: UnixMillis,
) -> Result<(), StoreError> {
    let n = db.execute(
        "UPDATE rollouts SET state = ?2, phase = ?3, updated_ms = ?4 WHERE id = ?1",
        params![id, json(state), state.phase.name(), at.as_millis()],
    )?;
    if n == 0 {
        return Err(corrupt("rollout")(format!("{id} is not stored")));
    }
    Ok(())
}

pub(super) fn agents(db: &Connection, id: &str) -> Result<Vec<RolloutAgent>, StoreError> {
    let mut stmt = db.prepare(
        "SELECT agent, tenant, wave, released_ms, prev_version, prev_sha256, prev_size
         FROM rollout_agents WHERE rollout_id = ?1 ORDER BY wave, agent",
    )?;
    collect(&mut stmt, [id], |row| {
        let agent: String = row.get(0)?;
        let tenant: String = row.get(1)?;
        let wave: i64 = row.get(2)?;
        let version: Option<String> = row.get(4)?;
        let sha256: Option<String> = row.get(5)?;
        let size: Option<i64> = row.get(6)?;
        Ok(RolloutAgent {
            agent: AgentId::new(agent).map_err(|e| corrupt("rollout agent")(e.to_string()))?,
            tenant: TenantId::new(tenant).map_err(|e| corrupt("rollout tenant")(e.to_string()))?,
            wave: usize::try_from(wave).unwrap_or(usize::MAX),
            released_at: row.get::<_, Option<i64>>(3)?.map(UnixMillis),
            previous: match (version, sha256) {
                (Some(version), Some(sha256)) => Some(Previous {
                    version,
                    sha256,
                    size: size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                }),
                _ => None,
            },
        })
    })
}

/// Mark agents released at `at`, with what was desired on each before.
pub(super) fn release(
    db: &mut Connection,
    id: &str,
    released: &[(AgentId, Option<Previous>)],
    at: UnixMillis,
) -> Result<(), StoreError> {
    let tx = db.transaction()?;
    {
        let mut stmt = tx.prepare(
            "UPDATE rollout_agents SET released_ms = ?3, prev_version = ?4, prev_sha256 = ?5,
                 prev_size = ?6
             WHERE rollout_id = ?1 AND agent = ?2 AND released_ms IS NULL",
        )?;
        for (agent, prev) in released {
            stmt.execute(params![
                id,
                agent.as_str(),
                at.as_millis(),
                prev.as_ref().map(|p| p.version.as_str()),
                prev.as_ref().map(|p| p.sha256.as_str()),
                prev.as_ref().map(|p| size(p.size)),
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::{Phase, Plan, PlanRequest};
    use crate::store::{FleetStore, SqliteStore};

    const NOW: UnixMillis = UnixMillis(1_764_590_000_000);

    fn agent() -> AgentId {
        AgentId::new(nkeys::KeyPair::new_user().public_key()).expect("agent")
    }

    fn record(id: &str) -> RolloutRecord {
        RolloutRecord {
            id: id.into(),
            plugin: "disk-usage".into(),
            version: "0.3.0".into(),
            sha256: "b".repeat(64),
            size: 3,
            bundle: vec![1, 2, 3],
            target: "tenant=acme".into(),
            tenants: vec![TenantId::new("acme").expect("tenant")],
            plan: Plan::parse(&PlanRequest {
                canary: 1,
                waves: "100%".into(),
                max_failures: "0%".into(),
                ..PlanRequest::default()
            })
            .expect("plan"),
            state: State::new(),
            created_at: NOW,
            created_by: "noc".into(),
            updated_at: NOW,
        }
    }

    #[test]
    fn a_rollout_round_trips_and_only_pending_or_running_ones_are_active() {
        let dir = tempfile::tempdir().expect("dir");
        let store = SqliteStore::open(&dir.path().join("fleet.db")).expect("store");
        let (a, b) = (agent(), agent());
        let acme = TenantId::new("acme").expect("tenant");
        let row = |agent: &AgentId, wave| RolloutAgent {
            agent: agent.clone(),
            tenant: acme.clone(),
            wave,
            released_at: None,
            previous: None,
        };
        store
            .create_rollout(&record("ro-1"), &[row(&a, 0), row(&b, 1)])
            .expect("create");
        assert_eq!(store.rollout("ro-1").expect("get"), Some(record("ro-1")));
        // The same id again is refused, not merged.
        assert!(store.create_rollout(&record("ro-1"), &[]).is_err());
        assert_eq!(store.active_rollouts().expect("active").len(), 1);

        let previous = Previous {
            version: "0.2.0".into(),
            sha256: "a".repeat(64),
            size: 2,
        };
        store
            .release_rollout_agents("ro-1", &[(a.clone(), Some(previous.clone()))], NOW)
            .expect("release");
        // A second release of the same agent keeps its first record (the way back).
        store
            .release_rollout_agents("ro-1", &[(a.clone(), None)], NOW.plus_millis(5))
            .expect("release again");
        let agents = store.rollout_agents("ro-1").expect("agents");
        assert_eq!(agents[0].agent, a);
        assert_eq!(agents[0].released_at, Some(NOW));
        assert_eq!(agents[0].previous, Some(previous));
        assert_eq!((agents[1].wave, agents[1].released_at), (1, None));

        let mut halted = State::new();
        halted.phase = Phase::Halted;
        store
            .save_rollout_state("ro-1", &halted, NOW.plus_millis(9))
            .expect("save");
        assert!(store.active_rollouts().expect("active").is_empty());
        // The listing keeps the ended ones too, newest first, up to its limit.
        let mut later = record("ro-2");
        later.created_at = NOW.plus_millis(1);
        store.create_rollout(&later, &[]).expect("create");
        let ids = |n| -> Vec<String> {
            store
                .recent_rollouts(n)
                .expect("recent")
                .into_iter()
                .map(|r| r.id)
                .collect()
        };
        assert_eq!(ids(10), ["ro-2", "ro-1"]);
        assert_eq!(ids(1), ["ro-2"]);
        let stored = store.rollout("ro-1").expect("get").expect("there");
        assert_eq!(stored.state.phase, Phase::Halted);
        assert_eq!(stored.updated_at, NOW.plus_millis(9));
        assert!(store.save_rollout_state("ro-3", &halted, NOW).is_err());
    }
}
