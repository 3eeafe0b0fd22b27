//! The seam where a rollout asks permission before it starts: the four-eyes gate
//! ([`Controller::gate`]). A rollout above the `[approvals]` policy is not started: it is
//! recorded as a request bound to the bundle's digest, the plan, the canonical target and the
//! agents it resolves to. Once a second operator approved it, the same start presents the
//! request (`--approval <id>`); any other bundle, plan or target is refused and the approval is
//! not spent.

use std::collections::BTreeMap;

use warden_access::Caller;

use crate::approvals::{ApprovalSubject, Gate, RequestId, SubjectKind};
use crate::controller::{Controller, FleetError};
use crate::distribution::Artifact;
use crate::store::AgentRecord;
use crate::target::Selector;

use super::plan::{Plan, PlanRequest};

/// What is about to start, as an approval would see it.
#[derive(Debug)]
pub struct RolloutRequest<'a> {
    pub artifact: &'a Artifact,
    pub selector: &'a Selector,
    pub plan: &'a Plan,
    /// The plan as asked for: what an approval is bound to.
    pub asked: &'a PlanRequest,
    pub targets: &'a [AgentRecord],
    /// An approved request presented for this start.
    pub approval: Option<RequestId>,
}

/// The plan's settings as an approval's parameters.
fn plan_params(p: &PlanRequest) -> BTreeMap<String, String> {
    [
        ("canary", p.canary.to_string()),
        ("waves", p.waves.trim().to_string()),
        ("max-in-flight", p.max_in_flight.to_string()),
        ("max-failures", p.max_failures.trim().to_string()),
        ("soak-secs", p.soak_secs.to_string()),
        ("wave-timeout-secs", p.wave_timeout_secs.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

impl Controller {
    /// Called once per rollout, after its plan and targets are validated and before anything
    /// is recorded or released. An `Err` refuses the rollout (nothing is written).
    pub(crate) fn before_rollout_start(
        &self,
        caller: &Caller,
        request: &RolloutRequest<'_>,
    ) -> Result<(), FleetError> {
        let subject = ApprovalSubject {
            kind: SubjectKind::Rollout,
            artifact: request.artifact.name.clone(),
            sha256: Some(request.artifact.sha256.clone()),
            params: plan_params(request.asked),
            dry_run: false,
            ttl_ms: 0,
            target: request.selector.to_string(),
            agents: request
                .targets
                .iter()
                .map(|a| (a.id.clone(), a.tenant.clone()))
                .collect(),
            approval: request.approval.clone(),
        };
        match self.gate(caller, subject)? {
            Gate::Proceed => Ok(()),
            Gate::Pending(id) => Err(FleetError::NeedsApproval(id)),
        }
    }
}
