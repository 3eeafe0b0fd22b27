//! Installing a plugin: from a signed bundle (the normal way), or from a directory in
//! development mode. Either way the trust decision, the rollback check, compiling the component
//! (which also fills the precompiled cache) and checking it against its manifest all happen
//! before anything is written; the store write is atomic, and every outcome is audited.

use crate::audit::AuditError;
use crate::bundle::trust::{self, TrustError};
use crate::bundle::{Bundle, BundleError};
use crate::error::RunError;
use crate::grant::{Grant, Refusal};
use crate::high_water::HighWaterError;
use crate::manifest::{Manifest, ManifestError};
use crate::runtime::Runner;
use crate::store::{InstalledPlugin, PluginStore, StoreError, sha256_hex};
use serde::Serialize;
use serde_json::json;
use std::path::Path;

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

/// Record a refusal, then return it. An audit failure wins: it is the more urgent problem.
fn refuse(runner: &Runner, source: &str, err: InstallError) -> InstallError {
    match runner.audit().append(
        "plugin.install-refused",
        json!({ "source": source, "reason": err.to_string() }),
    ) {
        Ok(_) => err,
        Err(audit) => InstallError::Audit(audit),
    }
}

pub(crate) fn install_bundle(runner: &Runner, path: &Path) -> Result<InstallReport, InstallError> {
    let source = path.display().to_string();
    let attempt = || -> Result<InstallReport, InstallError> {
        let bundle = Bundle::read(path, runner.policy().limits.max_bundle_bytes)?;
        let highest = runner.high_water().get(&bundle.statement.name)?;
        let accepted = trust::evaluate(&bundle, runner.policy(), highest.as_ref(), now_secs())?;
        finish(
            runner,
            &source,
            &accepted.manifest,
            &bundle.component,
            accepted.signers,
            accepted.unsigned,
        )
    };
    attempt().map_err(|e| refuse(runner, &source, e))
}

pub(crate) fn install_dir(runner: &Runner, dir: &Path) -> Result<InstallReport, InstallError> {
    let source = dir.display().to_string();
    let attempt = || -> Result<InstallReport, InstallError> {
        if !runner.policy().trust.allow_unsigned {
            return Err(InstallError::DirectoryNeedsDevelopmentMode);
        }
        let (manifest, bytes) = PluginStore::read_plugin_dir(dir)?;
        if let Some(highest) = runner.high_water().get(&manifest.name)?
            && manifest.version < highest
        {
            return Err(TrustError::Rollback {
                offered: manifest.version.to_string(),
                highest: highest.to_string(),
            }
            .into());
        }
        finish(runner, &source, &manifest, &bytes, vec![], true)
    };
    attempt().map_err(|e| refuse(runner, &source, e))
}

fn finish(
    runner: &Runner,
    source: &str,
    manifest: &Manifest,
    bytes: &[u8],
    signers: Vec<String>,
    unsigned: bool,
) -> Result<InstallReport, InstallError> {
    let sha256 = sha256_hex(bytes);
    let (pre, warnings, _cache) =
        runner.compile_checked(manifest, &sha256, || Ok(bytes.to_vec()))?;
    // A test harness's fake machine installs unsigned plugins by design: no warning there.
    if unsigned && !runner.on_fixture() {
        tracing::warn!(plugin = %manifest.name, "DEVELOPMENT MODE: installing an unsigned plugin");
    }
    // Audited before the store changes: a plugin must never be installed without its record.
    runner.audit().append(
        "plugin.installed",
        json!({
            "name": manifest.name, "version": manifest.version.to_string(), "sha256": sha256,
            "source": source, "signers": signers, "unsigned": unsigned,
        }),
    )?;
    let previous = runner.store().get(&manifest.name)?;
    let plugin = runner.store().put(manifest, bytes)?;
    runner
        .high_water()
        .raise(&manifest.name, &manifest.version)?;
    runner.forget(&manifest.name);
    // The code is loaded and linked already: the first run after an install need not load it
    // again. Failing that only costs the first run a load.
    if let Err(e) = runner.keep_prepared(manifest, &sha256, pre) {
        tracing::warn!(plugin = %manifest.name, "not kept in memory after install: {e}");
    }
    let replaced = previous
        .filter(|p| p.sha256 != plugin.sha256)
        .map(|p| p.sha256);
    if let Some(old) = &replaced {
        runner.store().drop_if_unreferenced(old)?;
    }
    let grant = Grant::resolve(manifest, runner.policy());
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
