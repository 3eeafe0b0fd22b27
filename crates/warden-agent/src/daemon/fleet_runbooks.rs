//! Runbooks of the desired state (issue 16): a signed runbook bundle the fleet distributes is
//! kept as `<runbooks-dir>/<name>.wbundle`, the one place a fleet command names a runbook from
//! (`daemon/fleet.rs`), so what the controller can make an agent run grows only by runbooks a
//! trusted publisher signed.
//!
//! An install checks what a fleet run would check, and more: the publisher signature against
//! the agent's own trust policy (never unsigned, whatever `allow-unsigned` says), expiry, a
//! valid runbook whose name is the desired one, and anti-rollback: runbooks carry no semver, so
//! a runbook signed *before* the copy the agent holds is refused (a replay of an older, perhaps
//! vulnerable, runbook). `runbook.installed` is audited durably before the file is replaced
//! (atomically); a refusal is audited `runbook.install-refused`.

use serde_json::json;
use warden_bundle::Bundle;
use warden_fleet_wire::DeployRefusal;
use warden_runbook::source::{self, RunbookSourceError};

use super::AgentState;
use crate::PluginManager;
use crate::fleet::seam::InstallRefused;
use std::path::Path;

/// Largest runbook bundle held (the wire's cap for a runbook blob).
const MAX_RUNBOOK_BYTES: u64 = warden_fleet_wire::desired::MAX_RUNBOOK_BLOB_BYTES;

/// The runbooks the fleet holds: the agent's runner (its trust policy, its audit log) and its
/// `[runbooks] dir`. The daemon's link and an offline kit (`daemon/offline.rs`) share it.
pub(crate) struct FleetRunbooks<'a> {
    pub runner: &'a PluginManager,
    pub dir: Option<&'a Path>,
}

impl AgentState {
    /// The fleet's runbooks of this daemon.
    pub(crate) fn fleet_runbooks(&self) -> FleetRunbooks<'_> {
        FleetRunbooks {
            runner: &self.runner,
            dir: self.config.runbooks.dir.as_deref(),
        }
    }
}

impl FleetRunbooks<'_> {
    /// Install the signed runbook `bytes` named `name`; `Ok(false)`: held already, byte for byte.
    pub(crate) fn install(
        &self,
        name: &str,
        bytes: &[u8],
        source: &str,
    ) -> Result<bool, InstallRefused> {
        let result = self.check_and_install_runbook(name, bytes, source);
        if let Err(refused) = &result
            && refused.reason != DeployRefusal::AgentError
            && let Err(e) = self.runner.audit().append(
                "runbook.install-refused",
                json!({ "name": name, "source": source, "reason": refused.to_string() }),
            )
        {
            return Err(InstallRefused::new(
                DeployRefusal::AgentError,
                format!("the audit log: {e}"),
            ));
        }
        result
    }

    fn check_and_install_runbook(
        &self,
        name: &str,
        bytes: &[u8],
        source: &str,
    ) -> Result<bool, InstallRefused> {
        let dir = self.dir.ok_or_else(|| {
            InstallRefused::new(
                DeployRefusal::Invalid,
                "no [runbooks] dir is configured on this agent",
            )
        })?;
        let bundle = Bundle::parse(bytes)
            .map_err(|e| InstallRefused::new(DeployRefusal::Invalid, e.to_string()))?;
        if bundle.signatures.is_empty() {
            return Err(InstallRefused::new(
                DeployRefusal::Untrusted,
                "the runbook is unsigned: the fleet installs signed runbooks only",
            ));
        }
        let loaded = source::load_bytes(bytes, source, &self.runner.policy(), true).map_err(
            |e| match e {
                RunbookSourceError::Invalid { .. } | RunbookSourceError::Bundle { .. } => {
                    InstallRefused::new(DeployRefusal::Invalid, e.to_string())
                }
                _ => InstallRefused::new(DeployRefusal::Untrusted, e.to_string()),
            },
        )?;
        if bundle.statement.name != name || loaded.runbook.name != name {
            return Err(InstallRefused::new(
                DeployRefusal::Mismatch,
                format!(
                    "the bundle is runbook `{}`, the desired state names `{name}`",
                    loaded.runbook.name
                ),
            ));
        }
        let path = dir.join(format!("{name}.wbundle"));
        let held = match warden_core::fsutil::read_capped(&path, MAX_RUNBOOK_BYTES) {
            Ok(held) => Some(held),
            Err(warden_core::fsutil::CappedReadError::Io(e))
                if e.kind() == std::io::ErrorKind::NotFound =>
            {
                None
            }
            Err(e) => {
                return Err(InstallRefused::new(
                    DeployRefusal::AgentError,
                    format!("{}: {e}", path.display()),
                ));
            }
        };
        if let Some(held) = &held {
            if held.as_slice() == bytes {
                return Ok(false);
            }
            // A held copy that no longer parses is replaced: it could not run anyway.
            if let Ok(held) = Bundle::parse(held)
                && bundle.statement.signed_at < held.statement.signed_at
            {
                return Err(InstallRefused::new(
                    DeployRefusal::Rollback,
                    format!(
                        "rollback refused: runbook `{name}` was signed at {}, before the copy held here ({})",
                        bundle.statement.signed_at, held.statement.signed_at
                    ),
                ));
            }
        }
        let sha256 = warden_core::sha256_hex(bytes);
        // Audited before the file changes: a runbook is never held without its record.
        self.runner
            .audit()
            .append(
                "runbook.installed",
                json!({
                    "name": name, "sha256": sha256, "source": source,
                    "signed-at": bundle.statement.signed_at,
                    "signers": loaded.signers, "replaced": held.is_some(),
                }),
            )
            .map_err(|e| {
                InstallRefused::new(DeployRefusal::AgentError, format!("the audit log: {e}"))
            })?;
        warden_core::fsutil::write_atomic(&path, bytes).map_err(|e| {
            InstallRefused::new(
                DeployRefusal::AgentError,
                format!("{}: {e}", path.display()),
            )
        })?;
        tracing::info!(runbook = %name, sha256 = %sha256, "runbook installed for the fleet");
        Ok(true)
    }

    /// Remove the runbook `name` the fleet's commands run (audited `runbook.removed` first);
    /// `Ok(false)`: not held.
    pub(crate) fn remove(&self, name: &str) -> Result<bool, InstallRefused> {
        warden_core::names::validate_plugin_name(name)
            .map_err(|e| InstallRefused::new(DeployRefusal::Invalid, e))?;
        let Some(dir) = self.dir else {
            return Ok(false);
        };
        let path = dir.join(format!("{name}.wbundle"));
        if !path.exists() {
            return Ok(false);
        }
        self.runner
            .audit()
            .append(
                "runbook.removed",
                json!({ "name": name, "source": "fleet:desired" }),
            )
            .map_err(|e| {
                InstallRefused::new(DeployRefusal::AgentError, format!("the audit log: {e}"))
            })?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(InstallRefused::new(
                DeployRefusal::AgentError,
                format!("{}: {e}", path.display()),
            )),
        }
    }
}
