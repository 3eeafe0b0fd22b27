//! `warden.v1.Plugins`: the plugin store over the API. Install takes a signed bundle's bytes and
//! applies exactly the checks of `warden plugin install` (trust, expiry, rollback, size).

use super::pb::{self, plugins_server::Plugins};
use super::{State, blocking};
use crate::install::InstallError;
use crate::store::InstalledPlugin;
use tonic::{Request, Response, Status};

#[derive(Clone)]
pub struct PluginsApi(pub State);

fn summary(p: &InstalledPlugin) -> pb::PluginSummary {
    pb::PluginSummary {
        name: p.manifest.name.clone(),
        version: p.manifest.version.to_string(),
        role: serde_json::to_value(p.manifest.role)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        sha256: p.sha256.clone(),
        installed_at: p.installed_at,
    }
}

fn install_status(e: InstallError) -> Status {
    match e {
        InstallError::Refused(_)
        | InstallError::HighWater(_)
        | InstallError::DirectoryNeedsDevelopmentMode => Status::permission_denied(e.to_string()),
        InstallError::Bundle(_) | InstallError::Manifest(_) | InstallError::Rejected(_) => {
            Status::invalid_argument(e.to_string())
        }
        InstallError::Store(_) | InstallError::Audit(_) => Status::internal(e.to_string()),
    }
}

#[tonic::async_trait]
impl Plugins for PluginsApi {
    async fn list(
        &self,
        _req: Request<pb::ListPluginsRequest>,
    ) -> Result<Response<pb::ListPluginsResponse>, Status> {
        let state = self.0.clone();
        let plugins = blocking(move || {
            state
                .runner
                .store()
                .list()
                .map_err(|e| Status::internal(e.to_string()))
        })
        .await?;
        Ok(Response::new(pb::ListPluginsResponse {
            plugins: plugins.iter().map(summary).collect(),
        }))
    }

    async fn inspect(
        &self,
        req: Request<pb::InspectPluginRequest>,
    ) -> Result<Response<pb::PluginDetail>, Status> {
        let name = req.into_inner().name;
        let state = self.0.clone();
        let (plugin, grant) = blocking(move || {
            state.runner.inspect(&name).map_err(|e| match e {
                warden_core::RunError::PluginNotFound { .. } => Status::not_found(e.to_string()),
                _ => Status::internal(e.to_string()),
            })
        })
        .await?;
        Ok(Response::new(pb::PluginDetail {
            plugin: Some(summary(&plugin)),
            manifest_json: serde_json::to_string(&plugin.manifest).unwrap_or_default(),
            grant_json: serde_json::to_string(&grant).unwrap_or_default(),
        }))
    }

    async fn install(
        &self,
        req: Request<pb::InstallPluginRequest>,
    ) -> Result<Response<pb::InstallPluginResponse>, Status> {
        let bytes = req.into_inner().bundle;
        let state = self.0.clone();
        let report = blocking(move || {
            // Checked against the site's bundle limit by the install, as for a file.
            state
                .runner
                .install_bundle_bytes(&bytes, "api upload")
                .map_err(install_status)
        })
        .await?;
        let warnings = report
            .warnings
            .iter()
            .cloned()
            .chain(report.refusals.iter().map(|r| format!("refused: {r}")))
            .chain(report.narrowed.iter().map(|r| format!("narrowed: {r}")))
            .collect();
        Ok(Response::new(pb::InstallPluginResponse {
            plugin: Some(summary(&report.plugin)),
            replaced: report.replaced.unwrap_or_default(),
            signers: report.signers,
            warnings,
        }))
    }

    async fn remove(
        &self,
        req: Request<pb::RemovePluginRequest>,
    ) -> Result<Response<pb::RemovePluginResponse>, Status> {
        let name = req.into_inner().name;
        let state = self.0.clone();
        let removed = blocking(move || {
            state
                .runner
                .remove(&name)
                .map_err(|e| Status::internal(e.to_string()))
        })
        .await?;
        Ok(Response::new(pb::RemovePluginResponse {
            removed: removed.is_some(),
        }))
    }
}
