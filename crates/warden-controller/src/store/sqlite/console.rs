//! The fleet queries of the NOC's screens ([`crate::store::query`]) in SQL: the filter is a
//! `WHERE` clause with every value bound as a parameter (never spliced into the text), the sort
//! a column from a fixed list, the page `LIMIT`/`OFFSET`, and the total one `count(*)` of the
//! same clause.

use rusqlite::Connection;
use rusqlite::types::Value;
use warden_fleet_identity::AgentId;
use warden_fleet_wire::{AgentEvent, RunId, UnixMillis};

use super::{AGENT_COLUMNS, agent_from, collect, corrupt, ms, parse};
use crate::presence::{MIN_OFFLINE_AFTER_MS, OFFLINE_INTERVALS, ONLINE_INTERVALS, Presence};
use crate::store::StoreError;
use crate::store::query::{AgentPage, AgentQuery, AgentRunRow, MAX_PAGE, SortKey};

/// The `WHERE` clause of `q` and its parameters, in order.
fn clause(q: &AgentQuery, now: UnixMillis) -> (String, Vec<Value>) {
    let mut terms: Vec<String> = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    if let Some(t) = &q.tenant {
        terms.push("tenant = ?".into());
        args.push(Value::Text(t.as_str().to_string()));
    }
    if let Some(p) = q.presence {
        // `crate::presence::presence`, as SQL: age against the announced interval.
        let interval = "max(interval_ms, 1)";
        let online = format!("(? - last_seen_ms) <= {ONLINE_INTERVALS} * {interval}");
        let offline = format!(
            "(? - last_seen_ms) > max({OFFLINE_INTERVALS} * {interval}, {MIN_OFFLINE_AFTER_MS})"
        );
        let now = Value::Integer(now.as_millis());
        match p {
            Presence::NeverSeen => terms.push("last_seen_ms IS NULL".into()),
            Presence::Online => {
                terms.push(format!("last_seen_ms IS NOT NULL AND {online}"));
                args.push(now);
            }
            Presence::Overdue => {
                terms.push(format!(
                    "last_seen_ms IS NOT NULL AND NOT ({online}) AND NOT ({offline})"
                ));
                args.extend([now.clone(), now]);
            }
            Presence::Offline => {
                terms.push(format!("last_seen_ms IS NOT NULL AND {offline}"));
                args.push(now);
            }
        }
    }
    if q.failing {
        terms.push("open_incidents > 0".into());
    }
    for name in &q.failing_checks {
        terms.push("EXISTS (SELECT 1 FROM json_each(agents.failing) WHERE value = ?)".into());
        args.push(Value::Text(name.clone()));
    }
    // NULL (never scanned) is neither.
    if q.reboot_required {
        terms.push("reboot_required = 1".into());
    }
    if q.patches_pending {
        terms.push("patches_pending > 0".into());
    }
    for (key, value) in &q.tags {
        let tag = "EXISTS (SELECT 1 FROM json_each(agents.tags) j WHERE j.key = ? AND j.value = ?)";
        if key == "os" {
            terms.push(format!("(os = ? OR {tag})"));
            args.push(Value::Text(value.clone()));
        } else {
            terms.push(tag.into());
        }
        args.extend([Value::Text(key.clone()), Value::Text(value.clone())]);
    }
    for word in &q.words {
        terms.push(
            "(hostname || ' ' || name || ' ' || id || ' ' || tenant || ' ' || os || ' ' || tags) \
             LIKE ? ESCAPE '\\'"
                .into(),
        );
        args.push(Value::Text(format!("%{}%", escape_like(word))));
    }
    if terms.is_empty() {
        (String::new(), args)
    } else {
        (format!("WHERE {}", terms.join(" AND ")), args)
    }
}

/// `word` matched literally by `LIKE … ESCAPE '\'`.
fn escape_like(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    for c in word.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn order(q: &AgentQuery) -> String {
    let dir = if q.descending { "DESC" } else { "ASC" };
    let columns: &[&str] = match q.sort {
        SortKey::Tenant => &["tenant", "hostname"],
        SortKey::Host => &["hostname"],
        SortKey::Os => &["os", "hostname"],
        SortKey::LastSeen => &["last_seen_ms"],
        SortKey::Incidents => &["open_incidents"],
        SortKey::Patches => &["patches_pending", "patches_security"],
    };
    let mut parts: Vec<String> = columns.iter().map(|c| format!("{c} {dir}")).collect();
    parts.push(format!("id {dir}"));
    format!("ORDER BY {}", parts.join(", "))
}

pub(super) fn agent_page(
    db: &Connection,
    q: &AgentQuery,
    now: UnixMillis,
) -> Result<AgentPage, StoreError> {
    let (filter, args) = clause(q, now);
    let total: i64 = db.query_row(
        &format!("SELECT count(*) FROM agents {filter}"),
        rusqlite::params_from_iter(args.iter()),
        |row| row.get(0),
    )?;
    let limit = q.limit.clamp(1, MAX_PAGE);
    let mut stmt = db.prepare(&format!(
        "SELECT {AGENT_COLUMNS} FROM agents {filter} {} LIMIT {limit} OFFSET {}",
        order(q),
        q.offset
    ))?;
    let agents = collect(
        &mut stmt,
        rusqlite::params_from_iter(args.iter()),
        agent_from,
    )?;
    Ok(AgentPage {
        agents,
        total: usize::try_from(total).unwrap_or(0),
    })
}

pub(super) fn agent_runs(
    db: &Connection,
    agent: &AgentId,
    limit: usize,
) -> Result<Vec<AgentRunRow>, StoreError> {
    let mut stmt = db.prepare(
        "SELECT r.id, r.runbook, r.requested_by, r.created_ms, s.status, s.error, s.finished_ms
         FROM run_targets t JOIN runs r ON r.id = t.run_id
         LEFT JOIN results s ON s.run_id = t.run_id AND s.agent = t.agent
         WHERE t.agent = ?1 ORDER BY r.created_ms DESC, r.id DESC LIMIT ?2",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    collect(&mut stmt, rusqlite::params![agent.as_str(), limit], |row| {
        let id: String = row.get(0)?;
        Ok(AgentRunRow {
            run: RunId::parse(id).map_err(|e| corrupt("run id")(e.to_string()))?,
            runbook: row.get(1)?,
            requested_by: row.get(2)?,
            created_at: UnixMillis(row.get(3)?),
            status: row.get(4)?,
            error: row.get(5)?,
            finished_at: ms(row.get(6)?),
            agent: agent.clone(),
        })
    })
}

pub(super) fn agent_events(
    db: &Connection,
    agent: &AgentId,
    limit: usize,
) -> Result<Vec<AgentEvent>, StoreError> {
    let mut stmt =
        db.prepare("SELECT body FROM events WHERE agent = ?1 ORDER BY seq DESC LIMIT ?2")?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    collect(&mut stmt, rusqlite::params![agent.as_str(), limit], |row| {
        let body: String = row.get(0)?;
        parse::<AgentEvent>("event", &body)
    })
}
