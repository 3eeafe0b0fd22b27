//! The site policy in force on this agent: its own file, or a signed policy distributed to it
//! (issue 16, `warden_bundle::policy`). The file is the root of trust: its `trust.policy-keys`
//! decide which signed policy may replace the rest of it.
//!
//! Applying a signed policy: the bundle is evaluated against the file (signatures of its
//! policy keys, expiry, a strictly higher version or the same one with the same text), the
//! decision is audited durably (`policy.applied` or `policy.refused`), the bundle is kept as
//! `<data-dir>/policy/site-policy.wbundle` and the high-water mark raised, and only then is the
//! policy swapped in: every run resolved after that sees it, a run already going keeps the
//! grant it started with. The sandbox's own size (`max-instances`, `max-memory-mb`) is fixed
//! when the agent starts and follows a new policy at the next start.
//!
//! At a start the kept bundle is evaluated again against the file (its expiry aside: it was
//! accepted while valid; anti-rollback covers replays). A kept policy the file no longer
//! trusts (its policy keys changed) is refused and audited, and the file is in force.

use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use warden_audit::AuditLog;
use warden_bundle::Bundle;
use warden_bundle::high_water::HighWaterMarks;
use warden_bundle::policy::{AcceptedPolicy, Applied, POLICY_MARK, evaluate_policy};
use warden_bundle::trust::TrustError;
use warden_core::policy::SitePolicy;

/// Largest signed policy bundle: the policy's own cap and room for its header.
const MAX_POLICY_BUNDLE_BYTES: usize = warden_core::policy::MAX_POLICY_BYTES as usize + (64 << 10);

/// Where the distributed policy in force came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistributedPolicy {
    pub version: semver::Version,
    /// SHA-256 of the policy text.
    pub sha256: String,
    pub signers: Vec<String>,
}

/// Why a signed policy was not applied.
#[derive(Debug, thiserror::Error)]
pub enum PolicyRefused {
    #[error("refused: {0}")]
    Trust(#[from] TrustError),
    #[error("not a policy bundle: {0}")]
    Bundle(String),
    #[error("not applied: {0}")]
    Agent(String),
}

/// The policy kept in the data dir.
pub fn kept_path(data_dir: &Path) -> PathBuf {
    data_dir.join("policy").join("site-policy.wbundle")
}

/// The policy in force at a start: the kept signed policy when the file still accepts it,
/// else the file. Never fails: a kept policy that is refused (or unreadable) is audited and
/// left out.
pub(crate) fn at_start(
    data_dir: &Path,
    local: &SitePolicy,
    audit: &AuditLog,
    high_water: &HighWaterMarks,
) -> (SitePolicy, Option<DistributedPolicy>) {
    let path = kept_path(data_dir);
    let bytes = match warden_core::fsutil::read_capped(&path, MAX_POLICY_BUNDLE_BYTES as u64) {
        Ok(bytes) => bytes,
        Err(warden_core::fsutil::CappedReadError::Io(e))
            if e.kind() == std::io::ErrorKind::NotFound =>
        {
            return (local.clone(), None);
        }
        Err(e) => {
            refused_at_start(audit, &path, &format!("unreadable: {e}"));
            return (local.clone(), None);
        }
    };
    let evaluated = Bundle::parse(&bytes)
        .map_err(|e| PolicyRefused::Bundle(e.to_string()))
        .and_then(|bundle| {
            let highest = high_water
                .get(POLICY_MARK)
                .map_err(|e| PolicyRefused::Agent(e.to_string()))?;
            let sha = bundle.statement.component_sha256.clone();
            let applied = highest.as_ref().map(|version| Applied {
                version,
                sha256: &sha,
            });
            // The kept policy is the highest applied: a mark above it means the file was
            // replaced by an older one, which is a rollback like any other.
            Ok(evaluate_policy(&bundle, local, applied, None)?)
        });
    match evaluated {
        Ok(accepted) => {
            let distributed = distributed_of(&accepted);
            (accepted.policy, Some(distributed))
        }
        Err(e) => {
            refused_at_start(audit, &path, &e.to_string());
            (local.clone(), None)
        }
    }
}

fn refused_at_start(audit: &AuditLog, path: &Path, reason: &str) {
    tracing::warn!(
        "the kept site policy {} is not used: {reason}",
        path.display()
    );
    if let Err(e) = audit.append(
        "policy.refused",
        json!({ "source": path.display().to_string(), "at-start": true, "reason": reason }),
    ) {
        tracing::error!("the audit log cannot be written: {e}");
    }
}

fn distributed_of(accepted: &AcceptedPolicy) -> DistributedPolicy {
    DistributedPolicy {
        version: accepted.version.clone(),
        sha256: accepted.sha256.clone(),
        signers: accepted.signers.clone(),
    }
}

impl crate::PluginManager {
    /// The distributed policy in force, if any (`None`: the agent's own file).
    pub fn distributed_policy(&self) -> Option<DistributedPolicy> {
        self.site_policy.read().distributed.clone()
    }

    /// Apply a signed site policy (see the module doc); `source` names it for the audit log.
    /// `Ok(false)`: that exact policy is in force already (nothing written).
    pub fn apply_policy_bundle(&self, bytes: &[u8], source: &str) -> Result<bool, PolicyRefused> {
        // One apply at a time: the check against the applied version and the swap are one step.
        let _one = self
            .policy_apply
            .lock()
            .map_err(|_| PolicyRefused::Agent("lock poisoned".into()))?;
        let result = self.evaluate_and_apply(bytes, source);
        if let Err(e) = &result
            && !matches!(e, PolicyRefused::Agent(_))
        {
            self.audit
                .append(
                    "policy.refused",
                    json!({ "source": source, "reason": e.to_string() }),
                )
                .map_err(|a| PolicyRefused::Agent(format!("the audit log: {a}")))?;
        }
        result
    }

    fn evaluate_and_apply(&self, bytes: &[u8], source: &str) -> Result<bool, PolicyRefused> {
        if bytes.len() > MAX_POLICY_BUNDLE_BYTES {
            return Err(PolicyRefused::Bundle(format!(
                "{} bytes, over {MAX_POLICY_BUNDLE_BYTES}",
                bytes.len()
            )));
        }
        let bundle = Bundle::parse(bytes).map_err(|e| PolicyRefused::Bundle(e.to_string()))?;
        let agent = |e: &dyn std::fmt::Display| PolicyRefused::Agent(e.to_string());
        let highest = self.high_water.get(POLICY_MARK).map_err(|e| agent(&e))?;
        let current = self.distributed_policy();
        let applied_sha = current.as_ref().map(|c| c.sha256.clone());
        // Without a kept policy (removed by hand) a mark still refuses older versions; the
        // same version then counts as other contents unless it is the kept one.
        let applied = highest.as_ref().map(|version| Applied {
            version,
            sha256: applied_sha.as_deref().unwrap_or(""),
        });
        let accepted = evaluate_policy(&bundle, &self.local_policy, applied, Some(now_secs()))?;
        if current
            .as_ref()
            .is_some_and(|c| c.version == accepted.version && c.sha256 == accepted.sha256)
        {
            return Ok(false);
        }
        let policy_json = serde_json::to_value(&accepted.policy).map_err(|e| agent(&e))?;
        // Audited first: a policy is never in force without its record.
        self.audit
            .append(
                "policy.applied",
                json!({
                    "source": source, "version": accepted.version.to_string(),
                    "sha256": accepted.sha256, "signers": accepted.signers,
                    "previous": current.as_ref().map(|c| c.version.to_string()),
                    "policy": policy_json,
                }),
            )
            .map_err(|e| agent(&e))?;
        let path = kept_path(&self.data_dir());
        warden_core::fsutil::write_atomic(&path, bytes).map_err(|e| agent(&e))?;
        self.high_water
            .raise(POLICY_MARK, &accepted.version)
            .map_err(|e| agent(&e))?;
        let distributed = distributed_of(&accepted);
        tracing::info!(version = %accepted.version, signers = ?accepted.signers, "site policy applied");
        self.site_policy.write(InForce {
            policy: Arc::new(accepted.policy),
            distributed: Some(distributed),
        });
        Ok(true)
    }
}

/// The policy a run resolves its grant against, with where it came from.
#[derive(Debug, Clone)]
pub(crate) struct InForce {
    pub(crate) policy: Arc<SitePolicy>,
    pub(crate) distributed: Option<DistributedPolicy>,
}

/// The swappable policy: read at every run, written by an apply.
#[derive(Debug)]
pub(crate) struct PolicyCell(std::sync::RwLock<InForce>);

impl PolicyCell {
    pub(crate) fn new(in_force: InForce) -> PolicyCell {
        PolicyCell(std::sync::RwLock::new(in_force))
    }

    pub(crate) fn read(&self) -> InForce {
        // A writer never panics while holding the lock (it swaps a value); a poisoned lock still
        // holds the last complete value.
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn write(&self, in_force: InForce) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = in_force;
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
