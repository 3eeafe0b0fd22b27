//! Installing a plugin: from a signed bundle (the normal way), or from a directory in
//! development mode. Either way the trust decision, the rollback check, compiling the component
//! (which also fills the precompiled cache) and checking it against its manifest all happen
//! before anything is written; the store write is atomic, and every outcome is audited. A bundle
//! is installed from its bytes: a file, an API upload or a fleet download take the same path.

use crate::plugins::PluginManager;
use crate::store::{InstalledPlugin, PluginStore, StoreError, sha256_hex};
use serde::Serialize;
use serde_json::json;
use std::path::Path;
use warden_audit::AuditError;
use warden_bundle::high_water::HighWaterError;
use warden_bundle::trust::{self, TrustError};
use warden_bundle::{Bundle, BundleError};
use warden_core::error::RunError;
use warden_core::grant::{Grant, Refusal};
use warden_core::manifest::{Manifest, ManifestError};

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("refused: {0}")]
    Refused(#[from] TrustError),
    #[error(
        "refused: plugin directories are accepted only in development mode (trust.allow-unsigned); install a signed bundle"
    )]
    DirectoryNeedsDevelopmentMode,
    #[error(transparent)]
    Rejected(#[from] RunError),
    #[error(transparent)]
    HighWater(#[from] HighWaterError),
    #[error("not installed, because the audit log cannot be written: {0}")]
    Audit(#[from] AuditError),
}

/// The result of an install.
#[derive(Debug, Serialize)]
pub struct InstallReport {
    pub plugin: InstalledPlugin,
    /// The name pointed at another component before.
    pub replaced: Option<String>,
    /// Trusted keys whose signatures counted.
    pub signers: Vec<String>,
    /// Installed without a signature, in development mode.
    pub unsigned: bool,
    pub warnings: Vec<String>,
    /// What the site policy refuses of the request; such a plugin is installed but will not run.
    pub refusals: Vec<Refusal>,
    /// Requested items the policy leaves out; calls to them will be denied.
    pub narrowed: Vec<Refusal>,
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl PluginManager {
    /// Install a signed bundle file.
    pub fn install_bundle(&self, path: &Path) -> Result<InstallReport, InstallError> {
        let source = path.display().to_string();
        let read = Bundle::read(path, self.policy().limits.max_bundle_bytes)
            .map_err(InstallError::from)
            .map_err(|e| self.refuse(&source, e))?;
        self.install_read_bundle(read, &source)
    }

    /// Install a signed bundle from its bytes (an upload, a download); `source` says where it
    /// came from, for the audit log.
    pub fn install_bundle_bytes(
        &self,
        bytes: &[u8],
        source: &str,
    ) -> Result<InstallReport, InstallError> {
        let cap = self.policy().limits.max_bundle_bytes;
        let parsed = if bytes.len() as u64 > cap {
            Err(BundleError::TooLarge {
                size: bytes.len() as u64,
                limit: cap,
            })
        } else {
            Bundle::parse(bytes)
        };
        let bundle = parsed
            .map_err(InstallError::from)
            .map_err(|e| self.refuse(source, e))?;
        self.install_read_bundle(bundle, source)
    }

    fn install_read_bundle(
        &self,
        bundle: Bundle,
        source: &str,
    ) -> Result<InstallReport, InstallError> {
        let attempt = || -> Result<InstallReport, InstallError> {
            let highest = self.high_water.get(&bundle.statement.name)?;
            let accepted = trust::evaluate(&bundle, &self.policy(), highest.as_ref(), now_secs())?;
            self.finish(
                source,
                &accepted.manifest,
                &bundle.component,
                accepted.signers,
                accepted.unsigned,
            )
        };
        attempt().map_err(|e| self.refuse(source, e))
    }

    /// Install a plugin directory (manifest + component): development mode only.
    pub fn install_dir(&self, dir: &Path) -> Result<InstallReport, InstallError> {
        let source = dir.display().to_string();
        let attempt = || -> Result<InstallReport, InstallError> {
            if !self.policy().trust.allow_unsigned {
                return Err(InstallError::DirectoryNeedsDevelopmentMode);
            }
            let (manifest, bytes) = PluginStore::read_plugin_dir(dir)?;
            if let Some(highest) = self.high_water.get(&manifest.name)?
                && manifest.version < highest
            {
                return Err(TrustError::Rollback {
                    offered: manifest.version.to_string(),
                    highest: highest.to_string(),
                }
                .into());
            }
            self.finish(&source, &manifest, &bytes, vec![], true)
        };
        attempt().map_err(|e| self.refuse(&source, e))
    }

    /// Record a refusal, then return it. An audit failure wins: it is the more urgent problem.
    fn refuse(&self, source: &str, err: InstallError) -> InstallError {
        self.metrics.plugin_installs_refused.inc();
        match self.audit.append(
            "plugin.install-refused",
            json!({ "source": source, "reason": err.to_string() }),
        ) {
            Ok(_) => err,
            Err(audit) => InstallError::Audit(audit),
        }
    }

    fn finish(
        &self,
        source: &str,
        manifest: &Manifest,
        bytes: &[u8],
        signers: Vec<String>,
        unsigned: bool,
    ) -> Result<InstallReport, InstallError> {
        let sha256 = sha256_hex(bytes);
        let (prepared, _cache) = self
            .sandbox
            .check(manifest, &sha256, || Ok(bytes.to_vec()))?;
        let warnings = prepared.warnings.clone();
        // A test harness's fake machine installs unsigned plugins by design: no warning there.
        if unsigned && !self.sandbox.on_fixture() {
            tracing::warn!(plugin = %manifest.name, "DEVELOPMENT MODE: installing an unsigned plugin");
        }
        // Audited before the store changes: a plugin must never be installed without its record.
        self.audit.append(
            "plugin.installed",
            json!({
                "name": manifest.name, "version": manifest.version.to_string(), "sha256": sha256,
                "source": source, "signers": signers, "unsigned": unsigned,
            }),
        )?;
        let previous = self.store.get(&manifest.name)?;
        let plugin = self.store.put(manifest, bytes)?;
        self.high_water.raise(&manifest.name, &manifest.version)?;
        self.forget(&manifest.name);
        // The code is loaded and linked already: the first run after an install need not load it
        // again. Failing that only costs the first run a load.
        self.sandbox.keep(manifest, &sha256, prepared);
        let replaced = previous
            .filter(|p| p.sha256 != plugin.sha256)
            .map(|p| p.sha256);
        if let Some(old) = &replaced {
            self.store.drop_if_unreferenced(old)?;
        }
        let grant = Grant::resolve(manifest, &self.policy());
        tracing::info!(plugin = %manifest.name, version = %manifest.version, sha256 = %plugin.sha256, "plugin installed");
        Ok(InstallReport {
            plugin,
            replaced,
            signers,
            unsigned,
            warnings,
            refusals: grant.refusals,
            narrowed: grant.narrowed,
        })
    }
}
