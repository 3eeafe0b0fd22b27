//! Air-gapped sites (issue 16): `warden fleet export` writes a kit for agents that may not talk
//! out, `warden fleet import` merges the results file such an agent signed.
//!
//! **Export** reads what a publish wrote: each agent's desired document (built from the store's
//! rows exactly as the KV bucket's) and the blobs it names, fetched from `FLEET_BLOBS` by digest
//! and checked against it. The controller signs nothing: every bundle carries its publisher's
//! signatures and the agent verifies them with its own trust policy, as online. Each agent's part
//! also carries the highest outbox id the controller imported from it (`imported_through`), which
//! lets the agent forget those entries.
//!
//! **Import** verifies the file before anything is merged: its signature against the key of the
//! agent it names (the agent id is its public key), an agent enrolled here and not revoked, its
//! tenant, the caller's scope, and every entry on one of that agent's own subjects. A refusal is
//! a typed [`ImportRefused`], audited `fleet.import.refused`, and merges nothing. Then each entry
//! goes through the ingest of NATS messages ([`Controller::take_results`], events one by one),
//! which deduplicates: a file imported twice changes nothing. The agent's audit head is kept per
//! agent (`airgap.audit-head.<agent>`; the highest sequence wins), and `fleet.import` is audited.

use serde::{Deserialize, Serialize};
use warden_access::{Caller, Role};
use warden_fleet_identity::{AgentId, TenantId, subjects};
use warden_fleet_wire::WIRE_VERSION;
use warden_fleet_wire::airgap::{
    FileError, Kit, KitAgent, KitBlob, KitManifest, ResultsFile, sha256_hex,
};
use warden_fleet_wire::desired::{DEPLOY_SUBJECT_SUFFIX, chunk_count};

use crate::controller::{Controller, FleetError, covers, lock, need};
use crate::store::{AgentRecord, Stored};

/// Why a results file is not imported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportRefused {
    /// Not a results file, cut, oversized, changed after signing, or not signed by the agent
    /// it names.
    #[error(transparent)]
    File(#[from] FileError),
    #[error("agent {0} is not enrolled with this controller")]
    UnknownAgent(String),
    #[error("agent {0} is revoked")]
    Revoked(String),
    #[error("the file says tenant {file}, agent {agent} is enrolled in {enrolled}")]
    WrongTenant {
        agent: String,
        file: String,
        enrolled: String,
    },
    #[error("entry {id} is on {subject}, not one of agent {agent}'s own subjects")]
    ForeignSubject {
        id: u64,
        subject: String,
        agent: String,
    },
}

/// A kit written.
#[derive(Debug, Clone)]
pub struct Exported {
    pub bytes: Vec<u8>,
    pub sha256: String,
    pub tenant: TenantId,
    pub agents: Vec<AgentId>,
    pub bundles: usize,
    pub bundle_bytes: u64,
}

/// A results file merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub agent: AgentId,
    pub tenant: TenantId,
    pub sha256: String,
    pub results_new: usize,
    pub results_duplicate: usize,
    pub events_new: usize,
    pub events_duplicate: usize,
    pub through: u64,
    pub audit_head: warden_fleet_wire::airgap::AuditHead,
}

/// What the controller keeps of an air-gapped agent (state key `airgap.<agent>`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AirgapState {
    /// The highest outbox id imported: acknowledged by the next kit.
    through: u64,
    audit_seq: u64,
    audit_hash: String,
    audit_at: i64,
    /// The results file that carried that head.
    file: String,
}

fn state_key(agent: &AgentId) -> String {
    format!("airgap.{agent}")
}

impl Controller {
    fn airgap_state(&self, agent: &AgentId) -> Result<AirgapState, FleetError> {
        match self.store.load_state(&state_key(agent))? {
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| FleetError::Internal(format!("air-gap state of {agent}: {e}"))),
            None => Ok(AirgapState::default()),
        }
    }

    /// A kit for `agents` of `tenant` (all its agents that are not revoked when empty).
    pub async fn export_kit(
        &self,
        caller: &Caller,
        tenant: &TenantId,
        agents: &[AgentId],
    ) -> Result<Exported, FleetError> {
        need(caller, Role::Operator)?;
        covers(caller, tenant)?;
        let all: Vec<AgentRecord> = self
            .store
            .agents(Some(tenant))?
            .into_iter()
            .filter(|a| a.revoked_at.is_none())
            .collect();
        let chosen: Vec<AgentRecord> = if agents.is_empty() {
            all
        } else {
            let mut chosen = Vec::with_capacity(agents.len());
            for id in agents {
                let record = all.iter().find(|a| &a.id == id).ok_or_else(|| {
                    FleetError::NotFound(format!("agent {id} (not revoked) in tenant {tenant}"))
                })?;
                chosen.push(record.clone());
            }
            chosen
        };
        if chosen.is_empty() {
            return Err(FleetError::NoTargets(format!("tenant={tenant}")));
        }
        let now = self.now();
        let mut parts = Vec::with_capacity(chosen.len());
        let mut blobs: Vec<KitBlob> = Vec::new();
        for agent in &chosen {
            let desired = self.desired_document(agent, now)?;
            let named = desired
                .plugins
                .iter()
                .map(|p| (&p.sha256, p.size))
                .chain(desired.runbooks.iter().map(|r| (&r.sha256, r.size)))
                .chain(desired.policy.iter().map(|p| (&p.sha256, p.size)));
            for (sha256, size) in named {
                if !blobs.iter().any(|b| &b.sha256 == sha256) {
                    blobs.push(KitBlob {
                        sha256: sha256.clone(),
                        size,
                    });
                }
            }
            let through = self.airgap_state(&agent.id)?.through;
            parts.push(KitAgent {
                desired,
                imported_through: (through > 0).then_some(through),
            });
        }
        let mut bytes = Vec::with_capacity(blobs.len());
        for b in &blobs {
            bytes.push((b.sha256.clone(), self.fetch_blob(tenant, b).await?));
        }
        let bundle_bytes = blobs.iter().map(|b| b.size).sum();
        let kit = Kit {
            manifest: KitManifest {
                v: WIRE_VERSION,
                tenant: tenant.clone(),
                created_at: now,
                created_by: caller.name.clone(),
                agents: parts,
                blobs,
            },
            blobs: bytes,
        };
        let file = kit
            .to_bytes()
            .map_err(|e| FleetError::Invalid(format!("the kit: {e}")))?;
        let sha256 = sha256_hex(&file);
        let agents: Vec<AgentId> = chosen.into_iter().map(|a| a.id).collect();
        self.audit(
            "fleet.export",
            serde_json::json!({
                "tenant": tenant.as_str(), "agents": agents.len(),
                "bundles": kit.blobs.len(), "bundle_bytes": bundle_bytes,
                "kit": sha256, "bytes": file.len(), "caller": caller.name,
            }),
        )?;
        Ok(Exported {
            bytes: file,
            sha256,
            tenant: tenant.clone(),
            agents,
            bundles: kit.blobs.len(),
            bundle_bytes,
        })
    }

    /// A blob of the tenant's, by Direct-Get of its chunks, checked against its digest.
    async fn fetch_blob(&self, tenant: &TenantId, blob: &KitBlob) -> Result<Vec<u8>, FleetError> {
        let size = usize::try_from(blob.size)
            .map_err(|_| FleetError::Invalid(format!("blob {} is too large", blob.sha256)))?;
        let mut bytes = Vec::with_capacity(size);
        for n in 0..chunk_count(blob.size) {
            let reply = self
                .nats
                .request(
                    subjects::blob_direct_get(tenant, &blob.sha256, n),
                    "".into(),
                )
                .await
                .map_err(|e| FleetError::Nats(format!("blob {} chunk {n}: {e}", blob.sha256)))?;
            if let Some(status) = reply.status
                && status != async_nats::StatusCode::OK
            {
                return Err(FleetError::Nats(format!(
                    "blob {} chunk {n}: status {status} (not stored for tenant {tenant}?)",
                    blob.sha256
                )));
            }
            if bytes.len() + reply.payload.len() > size {
                return Err(FleetError::Internal(format!(
                    "blob {} is longer than its {size} bytes",
                    blob.sha256
                )));
            }
            bytes.extend_from_slice(&reply.payload);
        }
        let found = sha256_hex(&bytes);
        if found != blob.sha256 {
            return Err(FleetError::Internal(format!(
                "blob {} reads back as {found}",
                blob.sha256
            )));
        }
        Ok(bytes)
    }

    /// Verify and merge an air-gapped agent's results file (see the module doc).
    pub fn import_results(&self, caller: &Caller, bytes: &[u8]) -> Result<Imported, FleetError> {
        need(caller, Role::Operator)?;
        let sha256 = sha256_hex(bytes);
        let file = match self.check_results(caller, bytes) {
            Ok(file) => file,
            Err(e) => {
                let message = e.to_string();
                self.audit(
                    "fleet.import.refused",
                    serde_json::json!({ "file": sha256, "error": message, "caller": caller.name }),
                )?;
                return Err(e);
            }
        };
        let body = file.body;
        let (mut results, mut events) = (Vec::new(), Vec::new());
        for e in &body.entries {
            // Decoded once already by the checks: this cannot fail, and must not panic.
            let payload = e.payload_bytes().unwrap_or_default();
            if e.kind == "event" {
                events.push((e.subject.as_str(), payload));
            } else {
                results.push((e.subject.as_str(), payload));
            }
        }
        let batch: Vec<(&str, &[u8])> = results.iter().map(|(s, p)| (*s, p.as_slice())).collect();
        let stored = if batch.is_empty() {
            Vec::new()
        } else {
            self.take_results(&batch)?
        };
        let results_new = stored
            .iter()
            .filter(|s| matches!(s, Stored::New | Stored::Final))
            .count();
        let mut events_new = 0;
        for (subject, payload) in &events {
            if self.take_event_new(subject, payload)? {
                events_new += 1;
            }
        }
        let mut state = self.airgap_state(&body.agent)?;
        state.through = state.through.max(body.through);
        if body.audit_head.seq >= state.audit_seq {
            state.audit_seq = body.audit_head.seq;
            state.audit_hash = body.audit_head.hash.clone();
            state.audit_at = body.audit_head.at.as_millis();
            state.file = sha256.clone();
        }
        let json =
            serde_json::to_string(&state).map_err(|e| FleetError::Internal(e.to_string()))?;
        self.store.save_state(&state_key(&body.agent), &json)?;
        let imported = Imported {
            agent: body.agent,
            tenant: body.tenant,
            sha256,
            results_new,
            results_duplicate: results.len() - results_new,
            events_new,
            events_duplicate: events.len() - events_new,
            through: body.through,
            audit_head: body.audit_head,
        };
        self.audit(
            "fleet.import",
            serde_json::json!({
                "agent": imported.agent.as_str(), "tenant": imported.tenant.as_str(),
                "file": imported.sha256, "results_new": imported.results_new,
                "results_duplicate": imported.results_duplicate,
                "events_new": imported.events_new, "events_duplicate": imported.events_duplicate,
                "through": imported.through, "audit_seq": imported.audit_head.seq,
                "audit_hash": imported.audit_head.hash, "caller": caller.name,
            }),
        )?;
        Ok(imported)
    }

    /// Everything about a results file but its merge.
    fn check_results(&self, caller: &Caller, bytes: &[u8]) -> Result<ResultsFile, FleetError> {
        let file = ResultsFile::parse(bytes).map_err(ImportRefused::File)?;
        let body = &file.body;
        let agent = body.agent.as_str().to_string();
        let record = self
            .store
            .agent(&body.agent)?
            .ok_or_else(|| ImportRefused::UnknownAgent(agent.clone()))?;
        // Another tenant's agent is not named to a scoped caller: it is not found.
        if !Controller::may_see(caller, &record.tenant) {
            return Err(ImportRefused::UnknownAgent(agent).into());
        }
        let denied = lock(&self.enrollment).deny.is_denied(&body.agent);
        if record.revoked_at.is_some() || denied {
            return Err(ImportRefused::Revoked(agent).into());
        }
        if record.tenant != body.tenant {
            return Err(ImportRefused::WrongTenant {
                agent,
                file: body.tenant.to_string(),
                enrolled: record.tenant.to_string(),
            }
            .into());
        }
        let result_subject = subjects::result(&body.tenant, &body.agent);
        let deploy_subject = format!("{result_subject}.{DEPLOY_SUBJECT_SUFFIX}");
        let event_subject = subjects::event(&body.tenant, &body.agent);
        for e in &body.entries {
            e.payload_bytes().map_err(|m| {
                ImportRefused::File(FileError::Wire(warden_fleet_wire::WireError::Malformed(
                    m,
                    "results file",
                )))
            })?;
            let own = if e.kind == "event" {
                e.subject == event_subject
            } else {
                e.subject == result_subject || e.subject == deploy_subject
            };
            if !own {
                return Err(ImportRefused::ForeignSubject {
                    id: e.id,
                    subject: e.subject.clone(),
                    agent,
                }
                .into());
            }
        }
        Ok(file)
    }
}
