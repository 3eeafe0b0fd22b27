//! The seam where a rollout asks permission before it starts: four-eyes approvals (issue 16)
//! hook in here. Today every rollout an operator may start is allowed; the request carries
//! what an approval must be bound to (the artifact's digest, the plan, the resolved targets).

use warden_access::Caller;

use crate::controller::{Controller, FleetError};
use crate::distribution::Artifact;
use crate::store::AgentRecord;
use crate::target::Selector;

use super::plan::Plan;

/// What is about to start, as an approval would see it.
#[derive(Debug)]
pub struct RolloutRequest<'a> {
    pub artifact: &'a Artifact,
    pub selector: &'a Selector,
    pub plan: &'a Plan,
    pub targets: &'a [AgentRecord],
}

impl Controller {
    /// Called once per rollout, after its plan and targets are validated and before anything
    /// is recorded or released. An `Err` refuses the rollout (nothing is written).
    pub(crate) fn before_rollout_start(
        &self,
        _caller: &Caller,
        _request: &RolloutRequest<'_>,
    ) -> Result<(), FleetError> {
        Ok(())
    }
}
