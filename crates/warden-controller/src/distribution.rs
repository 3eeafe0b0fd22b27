//! Desired state and distribution (issue 16): `warden fleet publish <bundle> --target ...` and
//! `warden fleet status <plugin>`.
//!
//! Publishing reads only what it needs from the bundle's statement (kind, name, version) and
//! its SHA-256. A plugin bundle is desired under its plugin's name, a signed site policy under
//! [`POLICY_ITEM`] (the document's `policy`). It does not decide trust: each agent verifies the publisher signature against
//! its own trust policy and anti-rollback marks, and reports. The order makes a crash safe:
//! audit, blobs (chunks on `fleet.blob.<t>.<sha256>.<n>`, each acknowledged), the store's
//! desired rows, then each targeted agent's whole desired document into the KV bucket
//! `desired` (key `<t>.<a>`), whose RePublish is the agents' notice. A publish that stops
//! half-way is repeated with the same command (every step is an idempotent put).
//!
//! A later rollout writes desired state wave by wave: [`Controller::publish_to`] takes the
//! agents already chosen.

use async_nats::jetstream;
use warden_access::{Caller, Role};
use warden_bundle::policy::POLICY_KIND;
use warden_fleet_identity::{AgentId, TenantId, subjects};
use warden_fleet_wire::desired::{BLOB_CHUNK_BYTES, MAX_BLOB_BYTES};
use warden_fleet_wire::{
    DeployReport, DesiredPlugin, DesiredPolicy, DesiredRemoval, DesiredRunbook, DesiredState,
    ItemKind, POLICY_ITEM, RUNBOOK_ITEM_PREFIX, desired_key,
};

use crate::controller::{Controller, FleetError, need};
use crate::store::{AgentRecord, DeployRecord, DesiredRecord};

/// What a bundle says it is, read from its statement (not verified here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub kind: String,
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub size: u64,
    /// A runbook marked `maintenance = true` ([`crate::approvals::windows::is_maintenance`]).
    pub maintenance: bool,
}

/// Read the artifact's identity; refused if it is no plugin, runbook or site policy bundle, or
/// too large to distribute. A runbook is kept as `runbook:<name>`, a site policy under
/// [`POLICY_ITEM`], beside the plugins.
pub fn artifact(bundle: &[u8]) -> Result<Artifact, FleetError> {
    let size = u64::try_from(bundle.len()).unwrap_or(u64::MAX);
    if size > MAX_BLOB_BYTES {
        return Err(FleetError::Invalid(format!(
            "the bundle is {size} bytes, over the {MAX_BLOB_BYTES} bytes distributed"
        )));
    }
    let parsed = warden_bundle::Bundle::parse(bundle)
        .map_err(|e| FleetError::Invalid(format!("not a bundle: {e}")))?;
    let s = parsed.statement;
    let sha256 = warden_core::sha256_hex(bundle);
    // The wire's own bounds (name, version, size), before anything is written.
    let mut probe = DesiredState::new(
        TenantId::new("probe").map_err(|e| FleetError::Internal(e.to_string()))?,
        AgentId::new(nkeys::KeyPair::new_user().public_key())
            .map_err(|e| FleetError::Internal(e.to_string()))?,
        warden_fleet_wire::UnixMillis(0),
    );
    let (name, version) = match s.kind.as_str() {
        "plugin" => {
            probe.plugins.push(DesiredPlugin {
                name: s.name.clone(),
                version: s.version.clone(),
                sha256: sha256.clone(),
                size,
            });
            (s.name.clone(), s.version.clone())
        }
        // Runbooks carry no semver: their signing time orders them.
        "runbook" => {
            let signed = crate::approvals::flow::rfc3339(warden_fleet_wire::UnixMillis::from_secs(
                i64::try_from(s.signed_at).unwrap_or(i64::MAX),
            ));
            probe.runbooks.push(DesiredRunbook {
                name: s.name.clone(),
                signed: signed.clone(),
                sha256: sha256.clone(),
                size,
            });
            (format!("{RUNBOOK_ITEM_PREFIX}{}", s.name), signed)
        }
        POLICY_KIND => {
            probe.policy = Some(DesiredPolicy {
                version: s.version.clone(),
                sha256: sha256.clone(),
                size,
            });
            (POLICY_ITEM.to_string(), s.version.clone())
        }
        other => {
            return Err(FleetError::Invalid(format!(
                "a {other} bundle: only plugins, runbooks and site policies are distributed as desired state"
            )));
        }
    };
    warden_fleet_wire::encode(&probe)?;
    let maintenance = crate::approvals::windows::is_maintenance(bundle);
    Ok(Artifact {
        kind: s.kind,
        name,
        version,
        sha256,
        size,
        maintenance,
    })
}

impl Artifact {
    /// For people: `disk-usage 0.2.0`, `site policy 3.0.0`.
    pub fn label(&self) -> String {
        if self.name == POLICY_ITEM {
            format!("site policy {}", self.version)
        } else if let Some(runbook) = self.name.strip_prefix(RUNBOOK_ITEM_PREFIX) {
            format!("runbook {runbook} signed {}", self.version)
        } else {
            format!("{} {}", self.name, self.version)
        }
    }
}

/// The result of a publish.
#[derive(Debug, Clone)]
pub struct Published {
    pub artifact: Artifact,
    pub agents: Vec<AgentId>,
}

/// Where one targeted agent is with a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployState {
    /// Reported installed at the desired digest.
    Installed,
    /// Reported removed (the desired state is the item's removal).
    Removed,
    /// Reported refused (reason, one-line error); it keeps what it had.
    Refused {
        reason: String,
        error: Option<String>,
    },
    /// No report about the desired digest yet.
    Pending,
}

impl DeployState {
    pub fn name(&self) -> &'static str {
        match self {
            DeployState::Installed => "installed",
            DeployState::Removed => "removed",
            DeployState::Refused { .. } => "refused",
            DeployState::Pending => "pending",
        }
    }
}

/// One agent's row of `warden fleet status <plugin>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentDeploy {
    pub agent: AgentId,
    pub tenant: TenantId,
    pub version: String,
    pub sha256: String,
    pub state: DeployState,
    /// The agent's time of its report.
    pub reported_at: Option<warden_fleet_wire::UnixMillis>,
    /// An installed check plugin's first run on the agent.
    pub check: Option<warden_fleet_wire::OwnCheck>,
}

/// `warden fleet status <plugin>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployStatus {
    pub plugin: String,
    pub agents: Vec<AgentDeploy>,
}

impl DeployStatus {
    /// How many agents are on their desired state: the desired version installed, or the
    /// item removed.
    pub fn installed(&self) -> usize {
        self.agents
            .iter()
            .filter(|a| matches!(a.state, DeployState::Installed | DeployState::Removed))
            .count()
    }
}

/// Join the desired rows with the reports about each row's own digest (pure).
pub fn deploy_status(
    plugin: &str,
    desired: Vec<DesiredRecord>,
    reports: &[DeployRecord],
) -> DeployStatus {
    let agents = desired
        .into_iter()
        .map(|d| {
            let report = reports
                .iter()
                .find(|r| r.agent == d.agent && r.sha256 == d.sha256);
            let state = match report {
                None => DeployState::Pending,
                Some(r) if r.state == "installed" => DeployState::Installed,
                Some(r) if r.state == "removed" => DeployState::Removed,
                Some(r) => DeployState::Refused {
                    reason: r.reason.clone().unwrap_or_else(|| "unknown".into()),
                    error: r.error.clone(),
                },
            };
            AgentDeploy {
                agent: d.agent,
                tenant: d.tenant,
                version: d.version,
                sha256: d.sha256,
                state,
                reported_at: report.map(|r| r.at),
                check: report.and_then(|r| r.check.clone()),
            }
        })
        .collect();
    DeployStatus {
        plugin: plugin.to_string(),
        agents,
    }
}

fn nats(e: impl std::fmt::Display) -> FleetError {
    FleetError::Nats(e.to_string())
}

impl Controller {
    /// Make `bundle` the desired version of its plugin on every agent `target` selects.
    pub async fn publish(
        &self,
        caller: &Caller,
        bundle: &[u8],
        target: &str,
    ) -> Result<Published, FleetError> {
        need(caller, Role::Operator)?;
        let artifact = artifact(bundle)?;
        let (selector, targets) = self.resolve_targets(caller, target)?;
        self.audit(
            "fleet.publish",
            serde_json::json!({
                "kind": artifact.kind, "plugin": artifact.name, "version": artifact.version,
                "sha256": artifact.sha256, "bytes": artifact.size,
                "target": selector.to_string(), "agents": targets.len(), "caller": caller.name,
            }),
        )?;
        self.publish_to(caller, bundle, &artifact, &targets).await?;
        Ok(Published {
            artifact,
            agents: targets.into_iter().map(|a| a.id).collect(),
        })
    }

    /// The steps after the target is chosen (and audited): blobs, store, desired documents.
    pub async fn publish_to(
        &self,
        caller: &Caller,
        bundle: &[u8],
        artifact: &Artifact,
        targets: &[AgentRecord],
    ) -> Result<(), FleetError> {
        let js = jetstream::new(self.nats.clone());
        let mut tenants: Vec<&TenantId> = targets.iter().map(|a| &a.tenant).collect();
        tenants.sort();
        tenants.dedup();
        // Until the rows naming the blob are in, collection must not take it.
        let _held = self.blobs.lock().await;
        // Blobs are stored per tenant: an agent may read its own tenant's only.
        for tenant in tenants {
            // Recorded before its chunks: a crash in between leaves a known blob to collect,
            // never an unknown one.
            self.store
                .record_blob(tenant, &artifact.sha256, artifact.size, self.now())?;
            let mut acks = Vec::new();
            for (n, chunk) in (0u32..).zip(bundle.chunks(BLOB_CHUNK_BYTES.max(1))) {
                let subject = subjects::blob_chunk(tenant, &artifact.sha256, n);
                acks.push(
                    js.publish(subject, chunk.to_vec().into())
                        .await
                        .map_err(nats)?,
                );
            }
            if bundle.is_empty() {
                let subject = subjects::blob_chunk(tenant, &artifact.sha256, 0);
                acks.push(js.publish(subject, Vec::new().into()).await.map_err(nats)?);
            }
            for ack in acks {
                ack.await.map_err(nats)?;
            }
        }
        let now = self.now();
        let rows: Vec<DesiredRecord> = targets
            .iter()
            .map(|a| DesiredRecord {
                agent: a.id.clone(),
                tenant: a.tenant.clone(),
                name: artifact.name.clone(),
                version: artifact.version.clone(),
                sha256: artifact.sha256.clone(),
                size: artifact.size,
                published_at: now,
                published_by: caller.name.clone(),
                removed: false,
                maintenance: artifact.maintenance,
            })
            .collect();
        self.store.set_desired(&rows)?;
        self.write_desired_documents(targets).await
    }

    /// Write each agent's whole desired document (from the store's rows) into the KV bucket;
    /// its RePublish is the agent's notice. Rollback uses this after restoring rows.
    pub(crate) async fn write_desired_documents(
        &self,
        targets: &[AgentRecord],
    ) -> Result<(), FleetError> {
        let js = jetstream::new(self.nats.clone());
        let now = self.now();
        let mut acks = Vec::with_capacity(targets.len());
        for agent in targets {
            let doc = self.desired_document(agent, now)?;
            let bytes = warden_fleet_wire::encode(&doc)?;
            let key = desired_key(&agent.tenant, &agent.id);
            acks.push(
                js.publish(
                    format!("$KV.{}.{key}", subjects::DESIRED_BUCKET),
                    bytes.into(),
                )
                .await
                .map_err(nats)?,
            );
        }
        for ack in acks {
            ack.await.map_err(nats)?;
        }
        self.bump(|p| p.changes += 1);
        Ok(())
    }

    /// One agent's whole desired document, from the store's rows (what the KV bucket holds,
    /// and what an air-gapped kit carries).
    pub(crate) fn desired_document(
        &self,
        agent: &AgentRecord,
        now: warden_fleet_wire::UnixMillis,
    ) -> Result<DesiredState, FleetError> {
        let mut doc = DesiredState::new(agent.tenant.clone(), agent.id.clone(), now);
        for d in self.store.desired_for(&agent.id)? {
            if d.removed {
                let (kind, name) = match d.name.strip_prefix(RUNBOOK_ITEM_PREFIX) {
                    Some(runbook) => (ItemKind::Runbook, runbook.to_string()),
                    None => (ItemKind::Plugin, d.name),
                };
                doc.remove.push(DesiredRemoval {
                    kind,
                    name,
                    sha256: d.sha256,
                });
            } else if d.name == POLICY_ITEM {
                doc.policy = Some(DesiredPolicy {
                    version: d.version,
                    sha256: d.sha256,
                    size: d.size,
                });
            } else if let Some(name) = d.name.strip_prefix(RUNBOOK_ITEM_PREFIX) {
                doc.runbooks.push(DesiredRunbook {
                    name: name.to_string(),
                    signed: d.version,
                    sha256: d.sha256,
                    size: d.size,
                });
            } else {
                doc.plugins.push(DesiredPlugin {
                    name: d.name,
                    version: d.version,
                    sha256: d.sha256,
                    size: d.size,
                });
            }
        }
        Ok(doc)
    }

    /// N of M: where every agent the caller may see stands with `plugin`'s desired version.
    pub fn deploy_status(&self, caller: &Caller, plugin: &str) -> Result<DeployStatus, FleetError> {
        need(caller, Role::Viewer)?;
        let desired: Vec<DesiredRecord> = self
            .store
            .desired_of(plugin)?
            .into_iter()
            .filter(|d| Controller::may_see(caller, &d.tenant))
            .collect();
        if desired.is_empty() {
            return Err(FleetError::NotFound(format!(
                "plugin {plugin} in the desired state"
            )));
        }
        let reports = self.store.deploy_reports(plugin)?;
        Ok(deploy_status(plugin, desired, &reports))
    }

    /// Deploy reports from the results stream (`fleet.res.<t>.<a>.deploy`), each on its own
    /// agent's subject (else dropped and audited as forged); `true` for each that changed
    /// what is stored.
    pub(crate) fn take_deploy_reports(
        &self,
        batch: &[(&str, &[u8])],
    ) -> Result<Vec<bool>, FleetError> {
        let mut audits = Vec::new();
        let mut valid = Vec::new();
        let mut slots = Vec::with_capacity(batch.len());
        for (subject, payload) in batch {
            let report: DeployReport = match warden_fleet_wire::decode(payload) {
                Ok(r) => r,
                Err(e) => {
                    audits.push((
                        "fleet.deploy-report.unreadable".to_string(),
                        serde_json::json!({ "subject": subject, "error": e.to_string() }),
                    ));
                    slots.push(None);
                    continue;
                }
            };
            if *subject != report.nats_subject() {
                audits.push((
                    "fleet.forged".to_string(),
                    serde_json::json!({ "kind": "deploy-report", "subject": subject, "claimed": report.agent.as_str() }),
                ));
                slots.push(None);
                continue;
            }
            slots.push(Some(valid.len()));
            valid.push(report);
        }
        let changed = if valid.is_empty() {
            Vec::new()
        } else {
            self.store.record_deploy_reports(&valid, self.now())?
        };
        for (report, changed) in valid.iter().zip(&changed) {
            if *changed {
                audits.push((
                    "fleet.deploy-report".to_string(),
                    serde_json::json!({
                        "agent": report.agent.as_str(), "tenant": report.tenant.as_str(),
                        "plugin": report.item(), "version": report.version, "sha256": report.sha256,
                        "outcome": report.outcome, "error": report.error,
                    }),
                ));
            }
        }
        if !audits.is_empty() {
            self.audit.append_batch(audits)?;
        }
        let n = u64::try_from(batch.len()).unwrap_or(u64::MAX);
        let any = changed.iter().any(|c| *c);
        // Counted with the results: they come from the same stream.
        self.bump(|p| {
            p.results += n;
            if any {
                p.changes += 1;
            }
        });
        Ok(slots
            .into_iter()
            .map(|slot| slot.and_then(|i| changed.get(i).copied()).unwrap_or(false))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_fleet_wire::UnixMillis;

    fn agent() -> AgentId {
        AgentId::new(nkeys::KeyPair::new_user().public_key()).expect("agent")
    }

    fn row(agent: &AgentId, version: &str, sha: &str) -> DesiredRecord {
        DesiredRecord {
            agent: agent.clone(),
            tenant: TenantId::new("acme").expect("tenant"),
            name: "disk-usage".into(),
            version: version.into(),
            sha256: sha.into(),
            size: 10,
            published_at: UnixMillis(1),
            published_by: "noc".into(),
            removed: false,
            maintenance: false,
        }
    }

    fn report(agent: &AgentId, sha: &str, state: &str, reason: Option<&str>) -> DeployRecord {
        DeployRecord {
            agent: agent.clone(),
            sha256: sha.into(),
            state: state.into(),
            reason: reason.map(str::to_string),
            error: reason.map(|r| format!("because {r}")),
            at: UnixMillis(2),
            check: None,
        }
    }

    #[test]
    fn status_counts_only_reports_about_the_desired_digest() {
        let (a, b, c) = (agent(), agent(), agent());
        let (old, new) = ("a".repeat(64), "b".repeat(64));
        let status = deploy_status(
            "disk-usage",
            vec![
                row(&a, "2.0.0", &new),
                row(&b, "2.0.0", &new),
                row(&c, "2.0.0", &new),
            ],
            &[
                report(&a, &new, "installed", None),
                // B installed the old digest: that says nothing about the new one.
                report(&b, &old, "installed", None),
                report(&c, &new, "refused", Some("untrusted")),
            ],
        );
        assert_eq!(status.installed(), 1);
        let states: Vec<&str> = status.agents.iter().map(|a| a.state.name()).collect();
        assert_eq!(states, ["installed", "pending", "refused"]);
        assert_eq!(
            status.agents[2].state,
            DeployState::Refused {
                reason: "untrusted".into(),
                error: Some("because untrusted".into())
            }
        );
    }

    #[test]
    fn plugins_runbooks_and_policies_within_the_size_cap_are_published() {
        assert!(matches!(
            artifact(b"not a bundle"),
            Err(FleetError::Invalid(_))
        ));
        let runbook =
            warden_bundle::Bundle::from_runbook("hello", "name = \"hello\"\n", 1).expect("bundle");
        let signed_at = runbook.statement.signed_at;
        let a = artifact(&runbook.to_bytes().expect("bytes")).expect("a runbook");
        assert_eq!(a.name, "runbook:hello");
        assert_eq!(
            a.version,
            crate::approvals::flow::rfc3339(UnixMillis::from_secs(signed_at as i64))
        );
        assert!(
            a.label().starts_with("runbook hello signed "),
            "{}",
            a.label()
        );
        let mut big =
            warden_bundle::Bundle::from_runbook("big", &"#".repeat(300 * 1024), 1).expect("bundle");
        big.statement.kind = "runbook".into();
        assert!(matches!(
            artifact(&big.to_bytes().expect("bytes")),
            Err(FleetError::Wire(_)) | Err(FleetError::Invalid(_))
        ));
    }

    #[test]
    fn a_site_policy_is_kept_under_its_own_item_name() {
        let version = semver::Version::new(3, 0, 0);
        let policy = warden_bundle::Bundle::from_policy("[allow]\nkv = true\n", &version, 1)
            .expect("policy");
        let bytes = policy.to_bytes().expect("bytes");
        let a = artifact(&bytes).expect("a policy is distributed");
        assert_eq!((a.kind.as_str(), a.name.as_str()), ("policy", POLICY_ITEM));
        assert_eq!(a.version, "3.0.0");
        assert_eq!(a.label(), "site policy 3.0.0");
    }
}
