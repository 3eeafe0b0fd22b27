//! Staged rollouts (issue 16): a plugin bundle released to its targets wave by wave, each wave
//! gated on its agents' health, halting itself when a wave fails.
//!
//! A rollout is a recorded plan object ([`RolloutRecord`], in the store with one row per
//! targeted agent): the artifact, the target, the [`Plan`] (canary, cumulative waves, max in
//! flight, the failure threshold, soak and wave timeout) and the [`State`] of the pure machine
//! in [`state`]. The controller's tick ([`Controller::tick_rollouts`]) reads the current
//! wave's agents (their deploy reports about the rollout's digest, with a check plugin's own
//! first run on the agent, and their incidents since release), asks the machine, releases what it says through [`Controller::publish_to`] (the
//! same path as `warden fleet publish`), and stores and audits every transition. An agent of a
//! later wave gets nothing before its wave starts, so a halt leaves it on what it had.
//!
//! Rollback returns each released agent's desired entry to what it was before its release,
//! unless an agent installed the new version and the old one is lower: the agents'
//! anti-rollback refuses any version below the highest they ever installed, so such a rollback
//! is refused with a message naming `--to`, a newer signed bundle (the old code, a new
//! version) that rollback publishes to the released agents instead.
//!
//! Every mutation of a rollout (tick, pause, resume, rollback) holds one lock, so the tick
//! never releases a wave that a concurrent rollback just stopped.

mod approval;
pub mod plan;
mod record;
pub mod state;
mod verdict;
mod view;

pub use approval::RolloutRequest;
pub use plan::{Plan, PlanError, PlanRequest};
pub use record::{Previous, RolloutAgent, RolloutRecord};
pub use state::{Command, Member, Phase, State};
pub use view::{AgentInRollout, RolloutView, WaveView};

use warden_access::{Caller, Role};
use warden_fleet_identity::TenantId;
use warden_fleet_wire::EventKind;

use crate::controller::{Controller, FleetError, need, random_bytes};
use crate::distribution::{Artifact, artifact};
use crate::store::{AgentRecord, DeployRecord, DesiredRecord};

/// Events scanned for a wave's incidents.
const EVENT_SCAN: usize = 5_000;
/// Rollouts scanned for a listing.
const LIST_SCAN: usize = 1_000;

/// `warden fleet rollout start`, as the API hands it over.
#[derive(Debug, Clone)]
pub struct StartRollout {
    pub bundle: Vec<u8>,
    pub target: String,
    pub plan: PlanRequest,
    /// An approved four-eyes request presented for this start.
    pub approval: Option<crate::approvals::RequestId>,
}

fn invalid(e: impl std::fmt::Display) -> FleetError {
    FleetError::Invalid(e.to_string())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Controller {
    /// Record a rollout and start it (its canary wave is released before this returns).
    pub async fn start_rollout(
        &self,
        caller: &Caller,
        req: StartRollout,
    ) -> Result<RolloutView, FleetError> {
        need(caller, Role::Operator)?;
        let plan = Plan::parse(&req.plan).map_err(invalid)?;
        let artifact = artifact(&req.bundle)?;
        let (selector, targets) = self.resolve_targets(caller, &req.target)?;
        let sizes = plan.split(targets.len()).map_err(invalid)?;
        self.before_rollout_start(
            caller,
            &RolloutRequest {
                artifact: &artifact,
                selector: &selector,
                plan: &plan,
                asked: &req.plan,
                targets: &targets,
                approval: req.approval.clone(),
            },
        )?;
        let waves = sizes
            .iter()
            .enumerate()
            .flat_map(|(wave, n)| std::iter::repeat_n(wave, *n));
        let agents: Vec<RolloutAgent> = targets
            .iter()
            .zip(waves)
            .map(|(a, wave)| RolloutAgent {
                agent: a.id.clone(),
                tenant: a.tenant.clone(),
                wave,
                released_at: None,
                previous: None,
            })
            .collect();
        let mut tenants: Vec<TenantId> = targets.iter().map(|a| a.tenant.clone()).collect();
        tenants.sort();
        tenants.dedup();
        let now = self.now();
        let record = RolloutRecord {
            id: format!("ro-{}", hex(&random_bytes::<8>()?)),
            plugin: artifact.name.clone(),
            version: artifact.version.clone(),
            sha256: artifact.sha256.clone(),
            size: artifact.size,
            bundle: req.bundle,
            target: selector.to_string(),
            tenants,
            plan,
            state: State::new(),
            created_at: now,
            created_by: caller.name.clone(),
            updated_at: now,
        };
        self.audit(
            "fleet.rollout.start",
            serde_json::json!({
                "rollout": record.id, "plugin": record.plugin, "version": record.version,
                "sha256": record.sha256, "target": record.target, "agents": agents.len(),
                "waves": sizes, "max_in_flight": record.plan.max_in_flight,
                "max_failure_percent": record.plan.max_failure_percent,
                "soak_ms": record.plan.soak_ms, "caller": caller.name,
            }),
        )?;
        self.store.create_rollout(&record, &agents)?;
        {
            let _guard = self.rollouts.lock().await;
            self.drive(&record.id).await?;
        }
        self.rollout_view(&record.id)
    }

    /// `warden fleet rollout status <id>`.
    pub fn rollout_status(&self, caller: &Caller, id: &str) -> Result<RolloutView, FleetError> {
        need(caller, Role::Viewer)?;
        self.visible_rollout(caller, id)?;
        self.rollout_view(id)
    }

    /// The newest `limit` rollouts the caller may see (every tenant of each in its scope),
    /// ended ones too: the console's list. Records only; [`Controller::rollout_status`] gives
    /// one rollout's waves.
    pub fn list_rollouts(
        &self,
        caller: &Caller,
        limit: usize,
    ) -> Result<Vec<RolloutRecord>, FleetError> {
        need(caller, Role::Viewer)?;
        // A scoped caller's rollouts may be behind others' newer ones: scan wider than asked.
        let scan = limit.saturating_mul(10).min(LIST_SCAN);
        Ok(self
            .store
            .recent_rollouts(scan)?
            .into_iter()
            .filter(|r| r.tenants.iter().all(|t| Controller::may_see(caller, t)))
            .take(limit)
            .collect())
    }

    /// Pause (nothing more is released) or resume a rollout.
    pub async fn pause_or_resume_rollout(
        &self,
        caller: &Caller,
        id: &str,
        cmd: Command,
    ) -> Result<RolloutView, FleetError> {
        need(caller, Role::Operator)?;
        if cmd == Command::Rollback {
            return Err(FleetError::Internal(
                "rollback goes through rollback_rollout".into(),
            ));
        }
        let _guard = self.rollouts.lock().await;
        let record = self.visible_rollout(caller, id)?;
        let now = self.now();
        let next = state::command(&record.state, cmd, &caller.name, now).map_err(invalid)?;
        self.audit(
            &format!("fleet.rollout.{}", cmd.name()),
            serde_json::json!({ "rollout": id, "wave": next.wave, "caller": caller.name }),
        )?;
        self.store.save_rollout_state(id, &next, now)?;
        if cmd == Command::Resume {
            self.drive(id).await?;
        }
        self.rollout_view(id)
    }

    /// Return the released agents to what was desired before (or to `to`, a newer signed
    /// bundle of the same plugin); the rollout ends rolled back.
    pub async fn rollback_rollout(
        &self,
        caller: &Caller,
        id: &str,
        to: Option<&[u8]>,
    ) -> Result<RolloutView, FleetError> {
        need(caller, Role::Operator)?;
        let _guard = self.rollouts.lock().await;
        let record = self.visible_rollout(caller, id)?;
        let now = self.now();
        let next =
            state::command(&record.state, Command::Rollback, &caller.name, now).map_err(invalid)?;
        let released: Vec<RolloutAgent> = self
            .store
            .rollout_agents(id)?
            .into_iter()
            .filter(|a| a.released_at.is_some())
            .collect();
        let publisher = rollout_caller(&record, &format!("rollback by {}", caller.name));
        match to {
            Some(bundle) => {
                let target = artifact(bundle)?;
                if target.name != record.plugin {
                    return Err(FleetError::Invalid(format!(
                        "--to is plugin {}, the rollout is of {}",
                        target.name, record.plugin
                    )));
                }
                let agents = self.records_of(&released)?;
                self.audit_rollback(&record, caller, &target.version, &target.sha256, &agents)?;
                self.store.save_rollout_state(id, &next, now)?;
                self.publish_to(&publisher, bundle, &target, &agents)
                    .await?;
            }
            None => {
                let rows = self.previous_rows(&record, &released, &publisher)?;
                let agents = self.records_of(&released)?;
                let (version, sha256) = rows
                    .first()
                    .map(|r| (r.version.clone(), r.sha256.clone()))
                    .unwrap_or_default();
                self.audit_rollback(&record, caller, &version, &sha256, &agents)?;
                self.store.save_rollout_state(id, &next, now)?;
                self.store.set_desired(&rows)?;
                self.write_desired_documents(&agents).await?;
            }
        }
        self.rollout_view(id)
    }

    /// One pass over every active rollout (the serve loop's tick).
    pub async fn tick_rollouts(&self) -> Result<(), FleetError> {
        let _guard = self.rollouts.lock().await;
        for record in self.store.active_rollouts()? {
            if let Err(e) = self.drive(&record.id).await {
                tracing::warn!("rollout {}: {e}", record.id);
            }
        }
        Ok(())
    }

    /// Tick one rollout until it stops moving (a wave that passes starts the next at once).
    /// The caller holds `Controller::rollouts`.
    async fn drive(&self, id: &str) -> Result<(), FleetError> {
        // Each pass moves at most one wave: bounded by the waves (20) and a start.
        for _ in 0..=plan::MAX_WAVES + 1 {
            let Some(record) = self.store.rollout(id)? else {
                return Err(FleetError::NotFound(format!("rollout {id}")));
            };
            if !record.state.phase.is_active() {
                return Ok(());
            }
            let agents = self.store.rollout_agents(id)?;
            let waves = agents.iter().map(|a| a.wave + 1).max().unwrap_or(0);
            let current: Vec<RolloutAgent> = agents
                .into_iter()
                .filter(|a| a.wave == record.state.wave)
                .collect();
            let members: Vec<Member> = self
                .health(&record, &current)?
                .into_iter()
                .map(|(m, _)| m)
                .collect();
            let now = self.now();
            let decision = state::tick(&record.plan, &record.state, waves, &members, now);
            if !decision.release.is_empty() {
                let chosen: Vec<&RolloutAgent> = decision
                    .release
                    .iter()
                    .filter_map(|i| current.get(*i))
                    .collect();
                self.release(&record, &chosen).await?;
            }
            let moved = decision.moved(&record.state);
            if decision.state != record.state {
                if moved {
                    self.audit(
                        &format!("fleet.rollout.{}", decision.state.phase.name()),
                        serde_json::json!({
                            "rollout": id, "wave": decision.state.wave,
                            "reason": decision.state.reason,
                        }),
                    )?;
                }
                self.store.save_rollout_state(id, &decision.state, now)?;
            }
            if !moved {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Give `agents` the rollout's desired state: recorded (with what each had desired
    /// before) first, so a crash in between never loses the way back; then published.
    async fn release(
        &self,
        record: &RolloutRecord,
        agents: &[&RolloutAgent],
    ) -> Result<(), FleetError> {
        let mut released = Vec::with_capacity(agents.len());
        for a in agents {
            let previous = self
                .store
                .desired_for(&a.agent)?
                .into_iter()
                // A removal is no version to return to (a rollback then needs --to).
                .find(|d| d.name == record.plugin && d.sha256 != record.sha256 && !d.removed)
                .map(|d| Previous {
                    version: d.version,
                    sha256: d.sha256,
                    size: d.size,
                });
            released.push((a.agent.clone(), previous));
        }
        let targets = self.records_of(agents.iter().copied())?;
        self.audit(
            "fleet.rollout.release",
            serde_json::json!({
                "rollout": record.id, "wave": record.state.wave,
                "agents": targets.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
            }),
        )?;
        self.store
            .release_rollout_agents(&record.id, &released, self.now())?;
        let artifact = Artifact {
            kind: "plugin".into(),
            name: record.plugin.clone(),
            version: record.version.clone(),
            sha256: record.sha256.clone(),
            size: record.size,
            maintenance: false,
        };
        let publisher = rollout_caller(record, &record.created_by);
        self.publish_to(&publisher, &record.bundle, &artifact, &targets)
            .await
    }

    /// Each agent's member state in the machine, with a word on why for people.
    ///
    /// A member fails on a refused install, on its own check's verdict ([`verdict`]: the run
    /// failed, or it says worse than the previous version said on that agent) and on an
    /// incident opened since its release.
    fn health(
        &self,
        record: &RolloutRecord,
        agents: &[RolloutAgent],
    ) -> Result<Vec<(Member, Option<String>)>, FleetError> {
        let reports = self.store.deploy_reports(&record.plugin)?;
        let incidents: Vec<_> = self
            .store
            .events(EVENT_SCAN)?
            .into_iter()
            .filter(|e| e.kind == EventKind::IncidentOpened)
            .collect();
        Ok(agents
            .iter()
            .map(|a| {
                let Some(released) = a.released_at else {
                    return (Member::Unreleased, None);
                };
                let report = reports
                    .iter()
                    .find(|r| r.agent == a.agent && r.sha256 == record.sha256);
                match report {
                    None => (Member::InFlight, None),
                    Some(r) if r.state != "installed" => (
                        Member::Failed,
                        Some(format!("refused: {}", r.reason.as_deref().unwrap_or("?"))),
                    ),
                    Some(r) => {
                        if let Some(why) = own_check_failure(r, a, &reports) {
                            return (Member::Failed, Some(why));
                        }
                        match incidents.iter().find(|e| {
                            e.agent == a.agent && e.at.as_millis() >= released.as_millis()
                        }) {
                            Some(e) => (Member::Failed, Some(format!("incident: {}", e.subject))),
                            None => (Member::Healthy, None),
                        }
                    }
                }
            })
            .collect())
    }

    /// The desired rows that return `released` to their previous entries; refused when an
    /// agent has none, or installed the new version over a lower one (its anti-rollback would
    /// refuse the old one: the caller must name a newer bundle with `--to`).
    fn previous_rows(
        &self,
        record: &RolloutRecord,
        released: &[RolloutAgent],
        publisher: &Caller,
    ) -> Result<Vec<DesiredRecord>, FleetError> {
        let reports = self.store.deploy_reports(&record.plugin)?;
        let new = semver::Version::parse(&record.version).ok();
        let now = self.now();
        let mut rows = Vec::with_capacity(released.len());
        for a in released {
            let Some(prev) = &a.previous else {
                return Err(FleetError::Invalid(format!(
                    "agent {} had no earlier desired version of {}: name the bundle to return to with --to",
                    a.agent, record.plugin
                )));
            };
            let installed_new = reports
                .iter()
                .any(|r| r.agent == a.agent && r.sha256 == record.sha256 && r.state == "installed");
            let older = semver::Version::parse(&prev.version)
                .ok()
                .zip(new.clone())
                .is_none_or(|(p, n)| p < n);
            if installed_new && older {
                return Err(FleetError::Invalid(format!(
                    "agent {} installed {} {}; its anti-rollback refuses the older {}: \
                     sign the old code as a newer version and roll back with --to <bundle>",
                    a.agent, record.plugin, record.version, prev.version
                )));
            }
            rows.push(DesiredRecord {
                agent: a.agent.clone(),
                tenant: a.tenant.clone(),
                name: record.plugin.clone(),
                version: prev.version.clone(),
                sha256: prev.sha256.clone(),
                size: prev.size,
                published_at: now,
                published_by: publisher.name.clone(),
                removed: false,
                // Rollouts carry plugins; runbooks are published whole.
                maintenance: false,
            });
        }
        Ok(rows)
    }

    fn audit_rollback(
        &self,
        record: &RolloutRecord,
        caller: &Caller,
        version: &str,
        sha256: &str,
        agents: &[AgentRecord],
    ) -> Result<(), FleetError> {
        self.audit(
            "fleet.rollout.rollback",
            serde_json::json!({
                "rollout": record.id, "from": record.version, "to": version, "sha256": sha256,
                "agents": agents.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
                "caller": caller.name,
            }),
        )
    }

    /// The agents' records (revoked ones left out: nothing is published to them).
    fn records_of<'a>(
        &self,
        agents: impl IntoIterator<Item = &'a RolloutAgent>,
    ) -> Result<Vec<AgentRecord>, FleetError> {
        let mut out = Vec::new();
        for a in agents {
            if let Some(r) = self.store.agent(&a.agent)?
                && r.revoked_at.is_none()
            {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// The rollout, if the caller may see all its tenants ("not found" otherwise, as runs).
    fn visible_rollout(&self, caller: &Caller, id: &str) -> Result<RolloutRecord, FleetError> {
        self.store
            .rollout(id)?
            .filter(|r| r.tenants.iter().all(|t| Controller::may_see(caller, t)))
            .ok_or_else(|| FleetError::NotFound(format!("rollout {id}")))
    }

    fn rollout_view(&self, id: &str) -> Result<RolloutView, FleetError> {
        let record = self
            .store
            .rollout(id)?
            .ok_or_else(|| FleetError::NotFound(format!("rollout {id}")))?;
        let agents = self.store.rollout_agents(id)?;
        let health = self.health(&record, &agents)?;
        Ok(view::build(record, agents, health))
    }
}

/// Who the desired rows of a rollout name as their publisher.
/// Why the new version's own check fails `a` ([`verdict::failure`]), against the verdict the
/// version `a` held before the rollout reported on it (its report for that digest).
fn own_check_failure(
    report: &DeployRecord,
    a: &RolloutAgent,
    reports: &[DeployRecord],
) -> Option<String> {
    let new = report.check.as_ref()?;
    let previous = a.previous.as_ref().and_then(|p| {
        reports
            .iter()
            .find(|r| r.agent == a.agent && r.sha256 == p.sha256)
            .and_then(|r| r.check.as_ref())
            .map(|c| (p.version.as_str(), c))
    });
    verdict::failure(new, previous)
}

fn rollout_caller(record: &RolloutRecord, by: &str) -> Caller {
    Caller {
        name: format!("rollout {} ({by})", record.id),
        ..crate::controller::internal_caller()
    }
}
