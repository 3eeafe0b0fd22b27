//! Air-gapped sites (issue 16): the agent's side of a kit carried in and a results file carried
//! out, with no network at all (`warden kit apply`, `warden kit collect`).
//!
//! - **Apply**: the kit's document for this agent goes through the link's own convergence
//!   ([`converge::apply_desired`], the kit's bundles in place of the blob stream): the same
//!   size and digest checks, the publisher signature against this agent's own trust policy,
//!   anti-rollback, `fleet.deploy` audited and a deploy report queued in the outbox. What a
//!   kit settled for good is kept in the state file (`kit_settled`), so applying the same kit
//!   again evaluates, installs, audits and reports nothing twice. The kit's acknowledgement
//!   (`imported_through`) lets the outbox forget what the controller imported.
//! - **Collect**: every outbox entry (results, deploy reports, events), the audit log's head,
//!   signed with the agent's own fleet key. Nothing leaves the outbox at collect: an entry is
//!   forgotten only when a later kit says the controller imported it, and never beyond what
//!   this agent itself collected. A lost or never-imported results file loses nothing (the
//!   next collect carries its entries again); one imported twice adds nothing (the controller
//!   stores results per (run, agent), events per (agent, seq), reports per (agent, item,
//!   digest)).
//!
//! Runs are not carried in v1: a kit is desired state (plugins, runbooks, site policy).

use super::converge::{self, Applied, Blobs, Settled};
use super::core::LinkCore;
use super::identity::{self, FleetIdentity};
use super::seam::FleetAgent;
use super::store::{FleetStore, StoreError};
use rusqlite::{OptionalExtension as _, params};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::Notify;
use warden_audit::AuditLog;
use warden_fleet_wire::airgap::{
    AuditHead, FileError, Kit, MAX_RESULTS_BYTES, MAX_RESULTS_ENTRIES, ResultsBody, ResultsEntry,
    ResultsFile, sha256_hex,
};
use warden_fleet_wire::{DeployOutcome, UnixMillis, WIRE_VERSION};

/// The counter of the highest outbox id this agent put in a results file.
const COLLECTED_THROUGH: &str = "kit_collected_through";
/// Room left in a results file for everything but its entries' payloads.
const RESULTS_OVERHEAD: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KitError {
    #[error("the kit is refused: {0}")]
    Kit(FileError),
    #[error("the kit is for tenant {kit}, this agent is of {agent}")]
    WrongTenant { kit: String, agent: String },
    #[error("the kit carries nothing for agent {0}")]
    NotInKit(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the audit log: {0}")]
    Audit(#[from] warden_audit::AuditError),
    #[error("the results file: {0}")]
    Results(FileError),
    #[error("the fleet credentials lost their seed")]
    NoSeed,
    #[error("the task failed: {0}")]
    Task(String),
}

/// One agent identity's state, off the network.
pub struct Offline {
    pub identity: FleetIdentity,
    /// The link's state file (`<data-dir>/fleet/state.sqlite`): its ledger and outbox.
    pub state: PathBuf,
    pub agent: Arc<dyn FleetAgent>,
    pub audit: Arc<AuditLog>,
    pub outbox_cap: usize,
}

/// What applying a kit did.
#[derive(Debug, Clone)]
pub struct KitApplied {
    /// sha256 of the kit file.
    pub kit: String,
    /// Items evaluated now (their outcomes are reported through the outbox).
    pub items: Vec<Applied>,
    /// Items a kit settled before: not looked at again.
    pub unchanged: usize,
    /// Outbox entries forgotten: the controller imported them.
    pub acknowledged: u64,
}

impl KitApplied {
    /// Items refused now.
    pub fn refused(&self) -> usize {
        self.items
            .iter()
            .filter(|a| matches!(a.outcome, DeployOutcome::Refused { .. }))
            .count()
    }
}

/// What a collect wrote.
#[derive(Debug, Clone)]
pub struct Collected {
    pub bytes: Vec<u8>,
    pub sha256: String,
    pub results: usize,
    pub events: usize,
    pub through: u64,
    /// Entries left for the next collect (the file reached its cap).
    pub left: usize,
    pub audit_head: AuditHead,
}

impl Offline {
    fn core(&self) -> Result<Arc<LinkCore>, KitError> {
        Ok(Arc::new(LinkCore {
            identity: self.identity.clone(),
            store: Arc::new(FleetStore::open(&self.state)?),
            agent: self.agent.clone(),
            audit: self.audit.clone(),
            outbox_cap: self.outbox_cap,
            wake: Notify::new(),
            in_flight: Default::default(),
            tls_refused: Default::default(),
        }))
    }

    /// Verify and apply `bytes` (a kit). A kit that does not parse, is for another tenant or
    /// carries nothing for this agent is refused whole and audited `fleet.kit.refused`.
    pub async fn apply(&self, bytes: &[u8]) -> Result<KitApplied, KitError> {
        let core = self.core()?;
        let sha256 = sha256_hex(bytes);
        let refused = |e: KitError| {
            core.audit(
                "fleet.kit.refused",
                json!({ "kit": sha256, "error": e.to_string() }),
            );
            e
        };
        let kit = Kit::parse(bytes).map_err(|e| refused(KitError::Kit(e)))?;
        let (tenant, agent) = (&self.identity.tenant, &self.identity.agent);
        if &kit.manifest.tenant != tenant {
            return Err(refused(KitError::WrongTenant {
                kit: kit.manifest.tenant.to_string(),
                agent: tenant.to_string(),
            }));
        }
        let part = kit
            .agent(agent)
            .cloned()
            .ok_or_else(|| refused(KitError::NotInKit(agent.to_string())))?;
        core.audit(
            "fleet.kit.apply",
            json!({
                "kit": sha256, "created_at": kit.manifest.created_at,
                "created_by": kit.manifest.created_by,
                "plugins": part.desired.plugins.len(), "runbooks": part.desired.runbooks.len(),
                "policy": part.desired.policy.is_some(), "remove": part.desired.remove.len(),
            }),
        );
        let mut settled = core.blocking(|core| core.store.kit_settled()).await?;
        let items_in_kit = part.desired.plugins.len()
            + part.desired.runbooks.len()
            + usize::from(part.desired.policy.is_some())
            + part.desired.remove.len();
        let (_, items) =
            converge::apply_desired(&core, &Blobs::Kit(&kit), &mut settled, part.desired).await;
        let fresh: Vec<(String, DeployOutcome)> = items
            .iter()
            .filter(|a| settled.get(&a.sha256) == Some(&a.outcome))
            .map(|a| (a.sha256.clone(), a.outcome))
            .collect();
        core.blocking(move |core| core.store.settle_kit(&fresh, UnixMillis::now()))
            .await?;
        let acknowledged = match part.imported_through {
            Some(through) => {
                core.blocking(move |core| core.store.forget_imported(through))
                    .await?
            }
            None => 0,
        };
        let applied = KitApplied {
            kit: sha256,
            unchanged: items_in_kit.saturating_sub(items.len()),
            items,
            acknowledged,
        };
        core.audit(
            "fleet.kit.applied",
            json!({
                "kit": applied.kit, "evaluated": applied.items.len(),
                "refused": applied.refused(), "unchanged": applied.unchanged,
                "acknowledged": applied.acknowledged,
                "imported_through": part.imported_through,
            }),
        );
        Ok(applied)
    }

    /// The outbox and the audit head as a results file signed with the agent's own key.
    /// Nothing is removed from the outbox (see the module doc).
    pub async fn collect(&self) -> Result<Collected, KitError> {
        let core = self.core()?;
        let (entries, left, previous) = core
            .blocking(|core| {
                let (entries, left) = core.store.outbox_for_results()?;
                Ok((entries, left, core.store.collected_through()?))
            })
            .await?;
        let through = entries.last().map_or(previous, |e| e.id.max(previous));
        let results = entries.iter().filter(|e| e.kind == "result").count();
        let events = entries.len() - results;
        // Audited before the head is read: the head the file carries covers its own record.
        core.audit(
            "fleet.kit.collect",
            json!({ "results": results, "events": events, "through": through, "left": left }),
        );
        let audit = self.audit.clone();
        let head = tokio::task::spawn_blocking(move || audit.head())
            .await
            .map_err(|e| KitError::Task(e.to_string()))??;
        let audit_head = AuditHead {
            seq: head.seq,
            hash: head.hash,
            at: UnixMillis(i64::try_from(head.at_ms).unwrap_or(i64::MAX)),
        };
        let body = ResultsBody {
            v: WIRE_VERSION,
            tenant: self.identity.tenant.clone(),
            agent: self.identity.agent.clone(),
            created_at: UnixMillis::now(),
            through,
            audit_head: audit_head.clone(),
            entries,
        };
        let seed = identity::seed_of(&self.identity.creds).ok_or(KitError::NoSeed)?;
        let key = nkeys::KeyPair::from_seed(seed).map_err(|_| KitError::NoSeed)?;
        let bytes = ResultsFile::sign(&body, |b| key.sign(b).map_err(|e| e.to_string()))
            .map_err(KitError::Results)?;
        core.blocking(move |core| core.store.set_collected_through(through))
            .await?;
        Ok(Collected {
            sha256: sha256_hex(&bytes),
            bytes,
            results,
            events,
            through,
            left,
            audit_head,
        })
    }
}

impl FleetStore {
    /// The digests kits settled for good (installed, removed, refused not transiently).
    pub(crate) fn kit_settled(&self) -> Result<Settled, StoreError> {
        let rows: Vec<(String, String)> = self.transaction(|tx| {
            tx.prepare("SELECT sha256, outcome FROM kit_settled")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })?;
        rows.into_iter()
            .map(|(sha256, outcome)| {
                serde_json::from_str(&outcome)
                    .map(|o| (sha256.clone(), o))
                    .map_err(|e| self.corrupt(format!("kit outcome of {sha256}: {e}")))
            })
            .collect()
    }

    fn settle_kit(
        &self,
        settled: &[(String, DeployOutcome)],
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let rows: Vec<(String, String)> = settled
            .iter()
            .map(|(sha, o)| {
                serde_json::to_string(o)
                    .map(|json| (sha.clone(), json))
                    .map_err(|e| self.corrupt(e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        self.transaction(|tx| {
            for (sha256, outcome) in &rows {
                tx.execute(
                    "INSERT INTO kit_settled (sha256, outcome, at_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT(sha256) DO UPDATE SET outcome = ?2, at_ms = ?3",
                    params![sha256, outcome, now.as_millis()],
                )?;
            }
            Ok(())
        })
    }

    /// The outbox oldest first, as many entries as one results file holds; and how many are
    /// left for the next.
    fn outbox_for_results(&self) -> Result<(Vec<ResultsEntry>, usize), StoreError> {
        let rows: Vec<(i64, String, String, String, Vec<u8>)> = self.transaction(|tx| {
            tx.prepare("SELECT id, kind, subject, msg_id, payload FROM outbox ORDER BY id")?
                .query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect()
        })?;
        let total = rows.len();
        let mut entries = Vec::new();
        // base64 makes every payload 4/3 larger; the rest of an entry is bounded text.
        let mut bytes = RESULTS_OVERHEAD;
        for (id, kind, subject, msg_id, payload) in rows {
            let size = (payload.len() as u64) * 4 / 3 + 1024;
            if entries.len() == MAX_RESULTS_ENTRIES || bytes + size > MAX_RESULTS_BYTES {
                break;
            }
            bytes += size;
            if !matches!(kind.as_str(), "result" | "event") {
                return Err(self.corrupt(format!("outbox entry {id} has kind {kind:?}")));
            }
            let id = u64::try_from(id).map_err(|_| self.corrupt(format!("outbox id {id}")))?;
            entries.push(ResultsEntry::new(id, &kind, &subject, &msg_id, &payload));
        }
        let left = total - entries.len();
        Ok((entries, left))
    }

    fn collected_through(&self) -> Result<u64, StoreError> {
        let value: Option<i64> = self.transaction(|tx| {
            tx.query_row(
                "SELECT value FROM counters WHERE name = ?1",
                params![COLLECTED_THROUGH],
                |r| r.get(0),
            )
            .optional()
        })?;
        Ok(value.and_then(|v| u64::try_from(v).ok()).unwrap_or(0))
    }

    fn set_collected_through(&self, through: u64) -> Result<(), StoreError> {
        let through = i64::try_from(through).unwrap_or(i64::MAX);
        self.transaction(|tx| {
            tx.execute(
                "INSERT INTO counters (name, value) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET value = MAX(value, ?2)",
                params![COLLECTED_THROUGH, through],
            )
        })
        .map(drop)
    }

    /// Forget the outbox entries the controller imported: up to `through`, never beyond what
    /// this agent collected itself (a kit cannot make it drop what it never carried out).
    fn forget_imported(&self, through: u64) -> Result<u64, StoreError> {
        let collected = self.collected_through()?;
        let upto = i64::try_from(through.min(collected)).unwrap_or(i64::MAX);
        let removed =
            self.transaction(|tx| tx.execute("DELETE FROM outbox WHERE id <= ?1", params![upto]))?;
        Ok(u64::try_from(removed).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::outbox::{OutboxKind, Outgoing};

    fn entry(id: &str) -> Outgoing {
        Outgoing {
            kind: OutboxKind::Result,
            subject: "fleet.res.acme.U".into(),
            msg_id: id.into(),
            payload: id.as_bytes().to_vec(),
        }
    }

    #[test]
    fn an_acknowledgement_forgets_only_what_this_agent_collected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FleetStore::open(&dir.path().join("state.sqlite")).expect("open");
        for id in ["a", "b", "c"] {
            store.enqueue(&entry(id), 10, 1).expect("queued");
        }
        let (collected, left) = store.outbox_for_results().expect("read");
        assert_eq!((collected.len(), left), (3, 0));
        assert_eq!(collected[0].payload_bytes().expect("b64"), b"a".to_vec());
        // Nothing collected yet: an acknowledgement (a forged one, say) forgets nothing.
        assert_eq!(store.forget_imported(3).expect("forget"), 0);
        store.set_collected_through(2).expect("mark");
        // Never lowered by an older collect.
        store.set_collected_through(1).expect("mark");
        assert_eq!(store.collected_through().expect("read"), 2);
        // Acknowledged through 3, collected through 2: the third stays.
        assert_eq!(store.forget_imported(3).expect("forget"), 2);
        let (left, _) = store.outbox_for_results().expect("read");
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].msg_id, "c");
    }

    #[test]
    fn what_a_kit_settled_survives_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.sqlite");
        let sha = "a".repeat(64);
        FleetStore::open(&path)
            .expect("open")
            .settle_kit(&[(sha.clone(), DeployOutcome::Installed)], UnixMillis(1))
            .expect("settled");
        let settled = FleetStore::open(&path)
            .expect("reopen")
            .kit_settled()
            .expect("read");
        assert_eq!(settled.get(&sha), Some(&DeployOutcome::Installed));
    }
}
