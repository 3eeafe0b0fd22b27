//! `warden fleet cancel <run>` (operator; NOC API `CancelRun`): a cancel command to every agent
//! of the run that has not settled (still missing, or running). An agent cuts a run going on
//! short (its result says `cancelled`); an agent that has not taken the run yet takes it as
//! cancelled, so the controller's re-sends get that answer and it never runs. The request is
//! recorded first (state key `cancel.<run>`): from then on the run's re-sends to agents that
//! have not answered are its cancel, not its command, so an agent offline during the cancel
//! takes the run as cancelled when it comes back instead of running it. The cancel's expiry is
//! the run's, so an agent keeps its answer as long.

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
        // Recorded before anything is sent: a crash in between leaves re-sends that cancel. A
        // run all of whose agents answered has nothing to re-send, and keeps no request.
        if !unsettled.is_empty() {
            self.store.save_state(
                &cancel_key(run),
                &serde_json::json!({ "at": now.as_millis(), "by": caller.name }).to_string(),
            )?;
        }
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

/// The store's state key of a run's cancel request (deleted when the run closes).
pub(crate) fn cancel_key(run: &RunId) -> String {
    format!("cancel.{run}")
}

impl Controller {
    /// Whether a cancel of `run` was requested.
    pub(crate) fn cancel_requested(&self, run: &RunId) -> Result<bool, FleetError> {
        Ok(self.store.load_state(&cancel_key(run))?.is_some())
    }
}
