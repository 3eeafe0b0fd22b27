//! The controller's approval calls. Every check is here, in the core, so no adapter can skip
//! one: the approver's role may approve under `[approvals] approvers` (the approver role, and
//! operators and admins unless `approvers-only`), its scope covers every tenant the request
//! touches, it is not the requester, the request has not expired and is decided once; and the
//! approved thing is started only if its digest still matches. Each decision and each refusal
//! is audited.

use std::collections::HashMap;

use warden_access::{Approvers, Caller, Role};
use warden_fleet_identity::{AgentId, TenantId};
use warden_fleet_wire::UnixMillis;

use super::binding::{ApprovalSubject, SubjectKind, digest};
use super::policy::Reason;
use super::{ApprovalError, ApprovalRecord, ApprovalState, Gate, RequestId, windows};
use crate::controller::{
    Controller, DispatchRequest, Dispatched, FleetError, covers, internal_caller, need,
    random_bytes,
};
use crate::store::DesiredRecord;
use crate::store::approvals::Decision;

/// Requests scanned for a listing.
const LIST_SCAN: usize = 1_000;

/// [`Controller::desired_runbook`]'s answer.
struct DesiredRunbook {
    sha256: Option<String>,
    maintenance: Vec<AgentId>,
}

/// What an approval did.
#[derive(Debug, Clone)]
pub struct Approved {
    pub record: ApprovalRecord,
    /// The run it dispatched (a run's request; a rollout's waits for its start).
    pub dispatched: Option<Dispatched>,
}

/// The subject of a dispatch: what its request would be bound to.
pub(crate) fn run_subject(
    req: &DispatchRequest,
    target: String,
    agents: &[(AgentId, TenantId)],
    ttl_ms: i64,
) -> ApprovalSubject {
    ApprovalSubject {
        kind: SubjectKind::Run,
        artifact: req.runbook.clone(),
        sha256: req.bundle.as_deref().map(warden_core::sha256_hex),
        params: req.params.clone(),
        dry_run: req.dry_run,
        ttl_ms,
        target,
        agents: agents.to_vec(),
        approval: None,
    }
    .normalised()
}

fn audit_record(r: &ApprovalRecord) -> serde_json::Value {
    serde_json::json!({
        "id": r.id.as_str(),
        "kind": r.subject.kind.name(),
        "artifact": r.subject.artifact,
        "sha256": r.subject.sha256,
        "params": r.subject.params,
        "dry_run": r.subject.dry_run,
        "target": r.subject.target,
        "agents": r.subject.agents.len(),
        "tenants": r.tenants,
        "digest": r.digest,
        "requested_by": r.requested_by,
        "expires_at": r.expires_at.as_millis(),
    })
}

impl Controller {
    /// The gate before anything with a blast radius starts (a run, a rollout). `Proceed` if
    /// the `[approvals]` policy does not apply, or if `subject.approval` names an approved
    /// request bound to exactly this subject (which is then consumed); otherwise the request is
    /// recorded and audited and `Pending(id)` returned: nothing may start.
    pub fn gate(&self, caller: &Caller, subject: ApprovalSubject) -> Result<Gate, FleetError> {
        self.gate_with_bundle(caller, subject, None)
    }

    /// [`Controller::gate`] for a run whose inline bundle the request keeps (to dispatch
    /// exactly it once approved).
    pub(crate) fn gate_with_bundle(
        &self,
        caller: &Caller,
        subject: ApprovalSubject,
        bundle: Option<&[u8]>,
    ) -> Result<Gate, FleetError> {
        need(caller, Role::Operator)?;
        let mut subject = subject.normalised();
        let tenants = subject.tenants();
        for t in &tenants {
            covers(caller, t)?;
        }
        if let Some(id) = subject.approval.clone() {
            return self.present(caller, &id, &subject).map(|()| Gate::Proceed);
        }
        let Some(policy) = &self.approvals else {
            return Ok(Gate::Proceed);
        };
        // A run of a runbook installed by name: what the controller published as that
        // runbook (if it did) binds the request and says whether it is a maintenance one.
        // Read only here: without a policy nothing is gated or bound, and a dispatch should
        // not read the desired state it does not use.
        let desired = match (subject.kind, bundle) {
            (SubjectKind::Run, None) => Some(self.desired_runbook(&subject)?),
            _ => None,
        };
        if let Some(d) = &desired {
            subject.sha256.clone_from(&d.sha256);
        }
        // The fleet in the caller's view, read only when a percent limit needs it: a dispatch
        // should not load every agent record to compare counts it does not use.
        let fleet = match policy.max_percent {
            Some(_) => self
                .store
                .agents(None)?
                .iter()
                .filter(|a| a.revoked_at.is_none() && caller.scope.covers(a.tenant.as_str()))
                .count(),
            None => 0,
        };
        let mut reasons = policy.reasons(subject.agents.len(), tenants.len(), fleet);
        // The runbook's marker, where the controller can read it: a run's inline bundle
        // (every agent runs it), or the runbook it published to some of the agents (those
        // run that copy). A runbook installed on the agents by hand is theirs to know (see
        // docs/FLEET.md).
        let maintenance: Vec<&AgentId> = match (&desired, bundle) {
            (Some(d), _) => d.maintenance.iter().collect(),
            (None, Some(b)) if subject.kind == SubjectKind::Run && windows::is_maintenance(b) => {
                subject.agents.iter().map(|(id, _)| id).collect()
            }
            _ => Vec::new(),
        };
        if policy.outside_window
            && !maintenance.is_empty()
            && let Some(reason) = self.outside_window(&maintenance)?
        {
            reasons.push(reason);
        }
        if reasons.is_empty() {
            return Ok(Gate::Proceed);
        }
        let now = self.now();
        let expires_at = now.plus_millis(policy.request_ttl_secs.saturating_mul(1000));
        let record = ApprovalRecord {
            id: RequestId::generate(now, random_bytes::<10>()?),
            digest: digest(&subject, expires_at),
            subject,
            bundle: bundle.map(<[u8]>::to_vec),
            reasons: reasons.iter().map(ToString::to_string).collect(),
            tenants,
            requested_by: caller.name.clone(),
            created_at: now,
            expires_at,
            state: ApprovalState::Pending,
            decided_by: None,
            decided_at: None,
            run: None,
            note: None,
        };
        self.store.approvals().create_approval(&record)?;
        let mut data = audit_record(&record);
        data["reasons"] = serde_json::json!(record.reasons);
        self.audit("fleet.approval.requested", data)?;
        Ok(Gate::Pending(record.id))
    }

    /// What the desired state holds for a run's runbook on the subject's agents: the digest,
    /// when every agent is to hold the same one (the request is bound to it: a runbook
    /// published again before the approval voids it), and the agents whose copy is marked
    /// `maintenance = true`.
    fn desired_runbook(&self, subject: &ApprovalSubject) -> Result<DesiredRunbook, FleetError> {
        let item = format!(
            "{}{}",
            warden_fleet_wire::RUNBOOK_ITEM_PREFIX,
            subject.artifact
        );
        let rows: HashMap<AgentId, DesiredRecord> = self
            .store
            .desired_of(&item)?
            .into_iter()
            .filter(|r| !r.removed)
            .map(|r| (r.agent.clone(), r))
            .collect();
        let mut digests = subject
            .agents
            .iter()
            .map(|(id, _)| rows.get(id).map(|r| r.sha256.as_str()));
        let first = digests.next().flatten();
        let sha256 = first
            .filter(|d| digests.all(|o| o == Some(*d)))
            .map(str::to_string);
        let maintenance = subject
            .agents
            .iter()
            .filter(|(id, _)| rows.get(id).is_some_and(|r| r.maintenance))
            .map(|(id, _)| id.clone())
            .collect();
        Ok(DesiredRunbook {
            sha256,
            maintenance,
        })
    }

    /// The `outside-window` reason for `agents`, by the windows each last reported and the
    /// controller's clock.
    fn outside_window(&self, agents: &[&AgentId]) -> Result<Option<Reason>, FleetError> {
        let now = chrono::DateTime::from_timestamp_millis(self.now().as_millis())
            .ok_or_else(|| FleetError::Internal("the clock is out of chrono's range".into()))?;
        let reported: HashMap<_, _> = self
            .store
            .agents(None)?
            .into_iter()
            .map(|a| (a.id, a.windows))
            .collect();
        Ok(windows::outside_window(
            agents
                .iter()
                .map(|id| reported.get(*id).and_then(|w| w.as_deref())),
            now,
        ))
    }

    /// Who approves: the policy's setting, or today's default without a policy.
    fn approvers(&self) -> Approvers {
        self.approvals
            .as_ref()
            .map_or(Approvers::default(), |p| p.approvers)
    }

    /// Requests the caller may see (every tenant of each within its scope), newest first;
    /// only those still waiting (pending, or a rollout's approved and unused) unless `all`.
    pub fn list_approvals(
        &self,
        caller: &Caller,
        all: bool,
    ) -> Result<Vec<ApprovalRecord>, FleetError> {
        need(caller, Role::Viewer)?;
        let now = self.now();
        Ok(self
            .store
            .approvals()
            .approvals(LIST_SCAN)?
            .into_iter()
            .filter(|r| r.tenants.iter().all(|t| caller.scope.covers(t.as_str())))
            .map(|mut r| {
                r.state = r.state_at(now);
                r
            })
            .filter(|r| all || matches!(r.state, ApprovalState::Pending | ApprovalState::Approved))
            .collect())
    }

    /// One request, if the caller may see it.
    pub fn approval(&self, caller: &Caller, id: &RequestId) -> Result<ApprovalRecord, FleetError> {
        need(caller, Role::Viewer)?;
        let mut r = self.load_approval(id)?;
        for t in &r.tenants {
            covers(caller, t)?;
        }
        r.state = r.state_at(self.now());
        Ok(r)
    }

    /// Approve a request as a second operator. A run's request dispatches exactly the bound
    /// run (same runbook and bundle, parameters and agents) if its target still resolves to
    /// the same agents; otherwise the request is void and nothing is sent.
    pub async fn approve(&self, caller: &Caller, id: &RequestId) -> Result<Approved, FleetError> {
        let rec = self.decidable(caller, id, true)?;
        let now = self.now();
        let decide = |to| Decision {
            from: ApprovalState::Pending,
            to,
            by: Some(&caller.name),
            at: now,
            note: None,
        };
        if rec.subject.kind == SubjectKind::Rollout {
            self.take(caller, &rec, &decide(ApprovalState::Approved))?;
            self.audit_decision("fleet.approval.approved", &rec, caller, None)?;
            return self.decided(id, None);
        }
        let current = self.current_subject(&rec)?;
        if digest(&current, rec.expires_at) != rec.digest {
            let what = rec.subject.difference(&current).unwrap_or_else(|| {
                "the stored request (its digest does not match what it says)".to_string()
            });
            let void = Decision {
                note: Some(&what),
                ..decide(ApprovalState::Void)
            };
            self.take(caller, &rec, &void)?;
            return Err(self.refused(
                caller,
                ApprovalError::Changed {
                    id: id.clone(),
                    what,
                },
            ));
        }
        self.take(caller, &rec, &decide(ApprovalState::Consumed))?;
        self.audit_decision("fleet.approval.approved", &rec, caller, None)?;
        let s = &rec.subject;
        let request = DispatchRequest {
            runbook: s.artifact.clone(),
            target: s.target.clone(),
            params: s.params.clone(),
            dry_run: s.dry_run,
            ttl_secs: Some(s.ttl_ms / 1000),
            bundle: rec.bundle.clone(),
        };
        let approval = serde_json::json!({
            "id": id.as_str(),
            "digest": rec.digest,
            "approved_by": caller.name,
        });
        let dispatched = self
            .start_run(
                &rec.requested_by,
                request,
                s.ttl_ms,
                s.target.clone(),
                s.agents.clone(),
                approval,
            )
            .await?;
        self.store
            .approvals()
            .set_approval_run(id, &dispatched.run)?;
        self.decided(id, Some(dispatched))
    }

    /// Deny a request (the requester may withdraw its own).
    pub fn deny(
        &self,
        caller: &Caller,
        id: &RequestId,
        note: &str,
    ) -> Result<ApprovalRecord, FleetError> {
        let rec = self.decidable(caller, id, false)?;
        let decision = |from| Decision {
            from,
            to: ApprovalState::Denied,
            by: Some(&caller.name),
            at: self.now(),
            note: Some(note),
        };
        let store = self.store.approvals();
        if !store.decide_approval(id, &decision(ApprovalState::Pending))?
            && !store.decide_approval(id, &decision(ApprovalState::Approved))?
        {
            return Err(self.not_pending(caller, id, "pending"));
        }
        self.audit_decision("fleet.approval.denied", &rec, caller, Some(note))?;
        Ok(self.decided(id, None)?.record)
    }

    fn load_approval(&self, id: &RequestId) -> Result<ApprovalRecord, FleetError> {
        self.store
            .approvals()
            .approval(id)?
            .ok_or_else(|| FleetError::Approval(ApprovalError::NotFound(id.clone())))
    }

    /// The request, if `caller` may decide it now (`approving`: and is not its requester).
    fn decidable(
        &self,
        caller: &Caller,
        id: &RequestId,
        approving: bool,
    ) -> Result<ApprovalRecord, FleetError> {
        let refuse = |e: FleetError| -> FleetError {
            match self.audit_refusal(caller, id, &e.to_string()) {
                Ok(()) => e,
                Err(audit) => audit,
            }
        };
        let approvers = self.approvers();
        let may_approve = caller.role.may_approve(approvers);
        let not_an_approver = || {
            FleetError::Forbidden(format!(
                "approving and denying need the approver role{}; `{}` has {}",
                match approvers {
                    Approvers::Operators => " (or operator, admin)",
                    Approvers::ApproversOnly => " ([approvals] approvers = \"approvers-only\")",
                },
                caller.name,
                caller.role.name()
            ))
        };
        // The requester may withdraw its own request under any setting: an operator who
        // could have not asked may take the question back.
        if !may_approve && (approving || caller.role < Role::Operator) {
            return Err(refuse(not_an_approver()));
        }
        let rec = self.load_approval(id).map_err(refuse)?;
        for t in &rec.tenants {
            covers(caller, t).map_err(refuse)?;
        }
        if !may_approve && rec.requested_by != caller.name {
            return Err(refuse(not_an_approver()));
        }
        if approving && rec.requested_by == caller.name {
            return Err(self.refused(
                caller,
                ApprovalError::SelfApproval {
                    id: id.clone(),
                    caller: caller.name.clone(),
                },
            ));
        }
        match rec.state_at(self.now()) {
            ApprovalState::Pending => Ok(rec),
            ApprovalState::Approved if !approving => Ok(rec),
            ApprovalState::Expired => {
                // Recorded, so the listing and the store agree with what was refused.
                self.store.approvals().decide_approval(
                    id,
                    &Decision {
                        from: rec.state,
                        to: ApprovalState::Expired,
                        by: None,
                        at: self.now(),
                        note: None,
                    },
                )?;
                Err(self.refused(
                    caller,
                    ApprovalError::Expired {
                        id: id.clone(),
                        expires_at: rfc3339(rec.expires_at),
                    },
                ))
            }
            _ => Err(self.not_pending(caller, id, "pending")),
        }
    }

    /// A rollout presents its approved request: consumed if bound to exactly `subject`.
    fn present(
        &self,
        caller: &Caller,
        id: &RequestId,
        subject: &ApprovalSubject,
    ) -> Result<(), FleetError> {
        let rec = self.load_approval(id)?;
        if rec.subject.kind != subject.kind {
            return Err(self.refused(
                caller,
                ApprovalError::WrongKind {
                    id: id.clone(),
                    kind: rec.subject.kind.name(),
                },
            ));
        }
        match rec.state_at(self.now()) {
            ApprovalState::Approved => {}
            ApprovalState::Expired => {
                return Err(self.refused(
                    caller,
                    ApprovalError::Expired {
                        id: id.clone(),
                        expires_at: rfc3339(rec.expires_at),
                    },
                ));
            }
            _ => return Err(self.not_pending(caller, id, "approved")),
        }
        // Not consumed on a mismatch: a replay for something else must not spend the
        // approval of what was approved.
        if digest(subject, rec.expires_at) != rec.digest {
            return Err(self.refused(caller, ApprovalError::Mismatch { id: id.clone() }));
        }
        let taken = self.store.approvals().decide_approval(
            id,
            &Decision {
                from: ApprovalState::Approved,
                to: ApprovalState::Consumed,
                by: None,
                at: self.now(),
                note: None,
            },
        )?;
        if !taken {
            return Err(self.not_pending(caller, id, "approved"));
        }
        self.audit_decision("fleet.approval.consumed", &rec, caller, None)
    }

    /// What the run's request would be bound to now: its target resolved again (as the
    /// requester's canonical selector names it), its bundle digested again.
    fn current_subject(&self, rec: &ApprovalRecord) -> Result<ApprovalSubject, FleetError> {
        let agents = match self.resolve_targets(&internal_caller(), &rec.subject.target) {
            Ok((_, targets)) => targets
                .into_iter()
                .map(|a| (a.id, a.tenant))
                .collect::<Vec<_>>(),
            Err(FleetError::NoTargets(_)) => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut current = rec.subject.clone();
        current.agents = agents;
        current = current.normalised();
        current.sha256 = match rec.bundle.as_deref() {
            Some(b) => Some(warden_core::sha256_hex(b)),
            None if current.kind == SubjectKind::Run => self.desired_runbook(&current)?.sha256,
            None => current.sha256,
        };
        Ok(current)
    }

    /// Apply a decision from `pending`; refused if someone decided first.
    fn take(
        &self,
        caller: &Caller,
        rec: &ApprovalRecord,
        decision: &Decision<'_>,
    ) -> Result<(), FleetError> {
        if self.store.approvals().decide_approval(&rec.id, decision)? {
            Ok(())
        } else {
            Err(self.not_pending(caller, &rec.id, "pending"))
        }
    }

    fn decided(
        &self,
        id: &RequestId,
        dispatched: Option<Dispatched>,
    ) -> Result<Approved, FleetError> {
        let mut record = self.load_approval(id)?;
        if let Some(d) = &dispatched {
            record.run = Some(d.run.clone());
        }
        Ok(Approved { record, dispatched })
    }

    fn not_pending(&self, caller: &Caller, id: &RequestId, wanted: &'static str) -> FleetError {
        let state = match self.store.approvals().approval(id) {
            Ok(Some(r)) => r.state_at(self.now()).name(),
            _ => "gone",
        };
        self.refused(
            caller,
            ApprovalError::NotPending {
                id: id.clone(),
                state,
                wanted,
            },
        )
    }

    /// Audit a refusal; the refusal itself (or the audit's failure) is what the caller gets.
    fn refused(&self, caller: &Caller, e: ApprovalError) -> FleetError {
        let id = match &e {
            ApprovalError::NotFound(id)
            | ApprovalError::SelfApproval { id, .. }
            | ApprovalError::Expired { id, .. }
            | ApprovalError::NotPending { id, .. }
            | ApprovalError::WrongKind { id, .. }
            | ApprovalError::Mismatch { id }
            | ApprovalError::Changed { id, .. } => id.clone(),
            ApprovalError::BadId(_) => return FleetError::Approval(e),
        };
        match self.audit_refusal(caller, &id, &e.to_string()) {
            Ok(()) => FleetError::Approval(e),
            Err(audit) => audit,
        }
    }

    fn audit_refusal(
        &self,
        caller: &Caller,
        id: &RequestId,
        error: &str,
    ) -> Result<(), FleetError> {
        self.audit(
            "fleet.approval.refused",
            serde_json::json!({ "id": id.as_str(), "caller": caller.name, "error": error }),
        )
    }

    fn audit_decision(
        &self,
        event: &str,
        rec: &ApprovalRecord,
        caller: &Caller,
        note: Option<&str>,
    ) -> Result<(), FleetError> {
        let mut data = audit_record(rec);
        data["caller"] = serde_json::json!(caller.name);
        if let Some(note) = note {
            data["note"] = serde_json::json!(note);
        }
        self.audit(event, data)
    }
}

/// A time for a message: RFC 3339 UTC, to the second.
pub(crate) fn rfc3339(at: UnixMillis) -> String {
    chrono::DateTime::from_timestamp_millis(at.as_millis()).map_or_else(
        || format!("{} ms", at.as_millis()),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}
