//! What the NOC's console reads (issue 18), with the same role and tenant-scope checks as
//! every other caller's operation: a page of the fleet (filtered, sorted and paged by the
//! store), one agent's detail, its runs, its events and its audit records
//! ([`crate::agent_audit`]). A tenant-scoped caller's queries are confined to its tenant here,
//! whatever the adapter asked for.

use warden_access::{Caller, Role};
use warden_fleet_identity::{AgentId, TenantId};
use warden_fleet_wire::AgentEvent;

use crate::agent_audit::AgentAudit;
use crate::controller::{AgentView, Controller, FleetError, covers, need};
use crate::presence::presence;
use crate::store::AgentRecord;
use crate::store::query::{AgentQuery, AgentRunRow};

/// Runs, events and audit records shown for one agent at most: a page's worth.
pub const AGENT_HISTORY: usize = 50;

/// One page of the fleet, each agent with its presence now.
#[derive(Debug, Clone)]
pub struct FleetPage {
    pub agents: Vec<AgentView>,
    pub total: usize,
}

/// One agent and its recent history.
#[derive(Debug, Clone)]
pub struct AgentDetail {
    pub agent: AgentView,
    pub runs: Vec<AgentRunRow>,
    pub events: Vec<AgentEvent>,
    /// The controller's audit records about it, newest first.
    pub audit: AgentAudit,
}

impl Controller {
    /// The page of agents `query` selects among those `caller` may see.
    pub fn fleet_page(
        &self,
        caller: &Caller,
        mut query: AgentQuery,
    ) -> Result<FleetPage, FleetError> {
        need(caller, Role::Viewer)?;
        match (&query.tenant, caller.scope.tenant()) {
            (Some(t), _) => covers(caller, t)?,
            (None, Some(own)) => {
                query.tenant =
                    Some(TenantId::new(own).map_err(|e| FleetError::Internal(e.to_string()))?);
            }
            (None, None) => {}
        }
        let now = self.now();
        let page = self.store.agent_page(&query, now)?;
        Ok(FleetPage {
            total: page.total,
            agents: page
                .agents
                .into_iter()
                .map(|a| AgentView {
                    presence: presence(a.last_seen, a.interval_ms, now),
                    record: a,
                })
                .collect(),
        })
    }

    /// Agent `id` as `caller` may see it: another tenant's agent is "not found" to a scoped
    /// caller (it does not learn the agent exists).
    pub(crate) fn seen_agent(
        &self,
        caller: &Caller,
        id: &AgentId,
    ) -> Result<AgentRecord, FleetError> {
        need(caller, Role::Viewer)?;
        self.store
            .agent(id)?
            .filter(|a| caller.scope.covers(a.tenant.as_str()))
            .ok_or_else(|| FleetError::NotFound(format!("agent {id}")))
    }

    /// One agent with its runs, events and audit records, as [`Controller::seen_agent`] finds
    /// it.
    pub fn agent_detail(&self, caller: &Caller, id: &AgentId) -> Result<AgentDetail, FleetError> {
        let record = self.seen_agent(caller, id)?;
        let runs = self.store.agent_runs(id, AGENT_HISTORY)?;
        let events = self.store.agent_events(id, AGENT_HISTORY)?;
        let audit = self.audit_of(caller, &record, &runs, AGENT_HISTORY)?;
        Ok(AgentDetail {
            agent: AgentView {
                presence: presence(record.last_seen, record.interval_ms, self.now()),
                record,
            },
            runs,
            events,
            audit,
        })
    }
}
