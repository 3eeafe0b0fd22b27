//! `warden fleet cancel <run>` (operator; NOC API `CancelRun`): a cancel command to every agent
//! of the run that has not settled (still missing, or running). An agent cuts a run going on
//! short (its result says `cancelled`); an agent that has not taken the run yet takes it as
//! cancelled, so the controller's re-sends get that answer and it never runs. The cancel is sent
//! once per call, as core NATS (an agent offline then gets the run's re-send and runs it: call
//! again, or let it expire); its expiry is the run's, so an agent keeps its answer as long.

use warden_access::{Caller, Role};
use warden_fleet_wire::{Command, RunId};

use crate::controller::{Controller, FleetError, need};
use crate::runs::AgentState;

/// What a cancel sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelSent {
    /// Agents the cancel was sent to (the run's unsettled ones).
    pub agents: usize,
    /// Agents of the run that had settled already.
    pub settled: usize,
}

impl Controller {
    pub async fn cancel_run(&self, caller: &Caller, run: &RunId) -> Result<CancelSent, FleetError> {
        need(caller, Role::Operator)?;
        // The caller's own view: another tenant's run is "not found" to a scoped caller.
        let view = self.run_view(caller, run)?;
        let unsettled: Vec<_> = view
            .agents
            .iter()
            .filter(|a| matches!(a.state, AgentState::Missing | AgentState::Running))
            .collect();
        self.audit(
            "fleet.cancel",
            serde_json::json!({
                "run": run, "agents": unsettled.len(), "caller": caller.name,
            }),
        )?;
        let now = self.now();
        let commands: Vec<Command> = unsettled
            .iter()
            .map(|a| {
                Command::cancel(
                    run.clone(),
                    a.tenant.clone(),
                    a.agent.clone(),
                    now,
                    view.run.expires_at.max(now),
                )
            })
            .collect();
        self.publish_commands(&commands).await?;
        Ok(CancelSent {
            agents: unsettled.len(),
            settled: view.agents.len() - unsettled.len(),
        })
    }
}
