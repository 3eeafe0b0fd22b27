//! Installing a plugin directory: read the manifest and the component, compile it (which also
//! fills the precompiled cache), check its imports and exports against the manifest, show what
//! the site policy would grant, then store it atomically.

use crate::error::RunError;
use crate::grant::{Grant, Refusal};
use crate::manifest::ManifestError;
use crate::runtime::Runner;
use crate::store::{InstalledPlugin, PluginStore, StoreError, sha256_hex};
use serde::Serialize;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Rejected(#[from] RunError),
}

/// The result of an install.
#[derive(Debug, Serialize)]
pub struct InstallReport {
    pub plugin: InstalledPlugin,
    /// The name pointed at another component before.
    pub replaced: Option<String>,
    pub warnings: Vec<String>,
    /// What the site policy refuses of the request; such a plugin is installed but will not run.
    pub refusals: Vec<Refusal>,
    /// Requested items the policy leaves out; calls to them will be denied.
    pub narrowed: Vec<Refusal>,
}

pub(crate) fn install_dir(runner: &Runner, dir: &Path) -> Result<InstallReport, InstallError> {
    let (manifest, bytes) = PluginStore::read_plugin_dir(dir)?;
    let sha256 = sha256_hex(&bytes);
    let (_pre, warnings, _cache) =
        runner.compile_checked(&manifest, &sha256, || Ok(bytes.clone()))?;
    let previous = runner.store().get(&manifest.name)?;
    let plugin = runner.store().put(&manifest, &bytes)?;
    runner.forget(&manifest.name);
    let replaced = previous
        .filter(|p| p.sha256 != plugin.sha256)
        .map(|p| p.sha256);
    let grant = Grant::resolve(&manifest, runner.policy());
    tracing::info!(plugin = %manifest.name, version = %manifest.version, sha256 = %plugin.sha256, "plugin installed");
    Ok(InstallReport {
        plugin,
        replaced,
        warnings,
        refusals: grant.refusals,
        narrowed: grant.narrowed,
    })
}
