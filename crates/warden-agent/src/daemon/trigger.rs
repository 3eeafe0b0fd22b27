//! The one way a runbook run starts, whoever asks: the gRPC API (by name or as an inline signed
//! runbook), a schedule or a monitor (by file), and next the fleet link. Each goes through the
//! same steps in the same order: load and verify the runbook (its signature against the agent's
//! own trust policy), check that every plugin it names is installed and may do what the runbook
//! asks, resolve the parameters, queue it. A transport only maps [`TriggerRefusal`] to its own
//! answer.

use super::AgentState;
use super::runs::{RunSpec, TriggerError, Triggered};
use std::path::PathBuf;
use warden_runbook::source::{self, LoadedRunbook, RunbookSourceError};

/// Where the runbook comes from.
#[derive(Debug, Clone)]
pub enum RunbookSource {
    /// `<name>.wbundle` or `<name>.toml` in the configured runbooks directory.
    Named(String),
    /// A signed runbook bundle sent with the request; unsigned bytes are refused.
    Signed(Vec<u8>),
    /// A file named by the agent's own configuration (a schedule's or a monitor's runbook).
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct TriggerRequest {
    pub source: RunbookSource,
    /// `name=value` pairs as given; the runbook's declared parameters type them.
    pub params: Vec<(String, String)>,
    pub dry_run: bool,
    /// A token's name, `schedule:<name>`, `monitor:<name>`, `fleet:<run>`.
    pub requested_by: String,
}

/// Why a run was not started.
#[derive(Debug, thiserror::Error)]
pub enum TriggerRefusal {
    #[error(transparent)]
    Source(#[from] RunbookSourceError),
    #[error("the runbook cannot run here: {}", .0.join("; "))]
    CannotRunHere(Vec<String>),
    #[error("{0}")]
    Params(String),
    #[error(transparent)]
    Queue(#[from] TriggerError),
}

impl AgentState {
    /// Blocking (it reads files, the history and the audit log): call it off the async workers.
    pub fn trigger_runbook(
        &self,
        req: TriggerRequest,
        handle: &tokio::runtime::Handle,
    ) -> Result<Triggered, TriggerRefusal> {
        let loaded = self.load_runbook(&req.source)?;
        let problems = loaded.runbook.check_plugins(self.runner.as_ref());
        if !problems.is_empty() {
            return Err(TriggerRefusal::CannotRunHere(
                problems.iter().map(|p| p.to_string()).collect(),
            ));
        }
        let params = loaded
            .runbook
            .resolve_params(&req.params)
            .map_err(TriggerRefusal::Params)?;
        let spec = RunSpec {
            runbook: loaded.runbook,
            params,
            dry_run: req.dry_run,
            requested_by: req.requested_by,
        };
        Ok(self.runs.trigger(spec, handle)?)
    }

    fn load_runbook(&self, from: &RunbookSource) -> Result<LoadedRunbook, RunbookSourceError> {
        let policy = self.runner.policy();
        match from {
            RunbookSource::Named(name) => self.load_named_runbook(name),
            RunbookSource::Signed(bytes) => {
                source::load_bytes(bytes, "inline runbook", &policy, true)
            }
            RunbookSource::File(path) => {
                source::load_file(path, &policy, self.config.runbooks.signed_only)
            }
        }
    }
}
