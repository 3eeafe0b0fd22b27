//! What the link needs from the agent it serves, as a trait: run a runbook for a command (after
//! the agent's own trust check) and report the inventory for heartbeats. The daemon implements
//! it over its one trigger path (`daemon/fleet.rs`); simulated agents of a benchmark can share
//! one implementation (one sandbox) between many links, each with its own identity and state.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use tokio::sync::oneshot;
use warden_fleet_wire::{
    DeployRefusal, ItemKind, OwnCheck, PatchSummary, PluginInfo, RefusalReason, RunId, StepSummary,
    UnixMillis,
};

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A run a command asks for, after the link's checks (addressing, time, ledger).
#[derive(Debug, Clone)]
pub struct FleetRun {
    pub run: RunId,
    /// A runbook installed on the agent (signed), by name.
    pub runbook: Option<String>,
    /// A signed runbook bundle carried by the command.
    pub bundle: Option<Vec<u8>>,
    pub params: BTreeMap<String, String>,
    pub dry_run: bool,
}

impl FleetRun {
    /// Who the agent's history and audit say asked: `fleet:<run>`.
    pub fn requested_by(&self) -> String {
        format!("fleet:{}", self.run)
    }
}

/// Why the agent ran nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason:?}: {message}")]
pub struct RunRefused {
    pub reason: RefusalReason,
    pub message: String,
}

impl RunRefused {
    pub fn new(reason: RefusalReason, message: impl Into<String>) -> RunRefused {
        RunRefused {
            reason,
            message: message.into(),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    Succeeded,
    Failed,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    /// The agent's own run id (its history's).
    pub local_run: String,
    pub end: RunEnd,
    pub started_at: UnixMillis,
    pub finished_at: UnixMillis,
    /// In order; the link keeps the first `MAX_STEPS`.
    pub steps: Vec<StepSummary>,
    /// Why it did not succeed.
    pub error: Option<String>,
}

/// What a heartbeat reports besides the config's tags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    pub plugins: Vec<PluginInfo>,
    pub open_incidents: u32,
    /// The monitors with an open incident, by name.
    pub failing: Vec<String>,
    /// The latest patch scan's summary; `None`: none ran. Never a scan run for the heartbeat.
    pub patches: Option<PatchSummary>,
}

/// A plugin the agent installed for its desired state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub name: String,
    pub version: String,
    /// A check plugin's first run after the install; `None` for other roles.
    pub check: Option<OwnCheck>,
}

/// Why the agent did not install a bundle of its desired state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", reason.name())]
pub struct InstallRefused {
    pub reason: DeployRefusal,
    pub message: String,
}

impl InstallRefused {
    pub fn new(reason: DeployRefusal, message: impl Into<String>) -> InstallRefused {
        InstallRefused {
            reason,
            message: message.into(),
        }
    }
}

pub trait FleetAgent: Send + Sync + 'static {
    /// Check the runbook against the agent's own trust policy and run it. `accepted` is sent
    /// once the run is queued (the link then publishes `running`); the future ends with the run.
    fn run(
        &self,
        run: FleetRun,
        accepted: oneshot::Sender<UnixMillis>,
    ) -> BoxFuture<Result<RunOutcome, RunRefused>>;

    /// Installed plugins, open incidents and the latest patch scan. Blocking (store and
    /// history reads); called every heartbeat interval, so it must stay cheap.
    fn inventory(&self) -> Inventory;

    /// Install a signed plugin bundle of the desired state through the agent's one install
    /// path: the publisher signature against the agent's own trust policy, the anti-rollback
    /// high-water marks, the audit record. `source` names it for the audit log. Blocking.
    fn install(&self, bundle: &[u8], source: &str) -> Result<Installed, InstallRefused>;

    /// Apply a signed site policy of the desired state: its signatures against the policy
    /// keys of the agent's own file, anti-rollback, the audit record (`site_policy`).
    /// `Ok(false)`: that policy is in force already. Blocking.
    fn apply_policy(&self, bundle: &[u8], source: &str) -> Result<bool, InstallRefused>;

    /// Hold the signed runbook `bundle` as `name` for the fleet's commands, after the same
    /// checks a fleet run makes and anti-rollback by signing time. `Ok(false)`: held already.
    /// Blocking.
    fn install_runbook(
        &self,
        name: &str,
        bundle: &[u8],
        source: &str,
    ) -> Result<bool, InstallRefused>;

    /// Remove a plugin or a runbook of the desired state through the agent's own paths
    /// (audited; a plugin's anti-rollback mark stays). `Ok(false)`: it was not there. Blocking.
    fn remove(&self, kind: ItemKind, name: &str) -> Result<bool, InstallRefused>;

    /// Cancel the run a fleet command started (queued or running). Blocking.
    fn cancel(&self, run: &RunId) -> CancelOutcome;
}

/// What a fleet cancel found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// It was queued or running, and is cancelled (its result says so).
    Cancelled,
    /// It had finished.
    Finished,
    /// This agent has no run of that id (never received, or refused).
    Unknown,
}

impl CancelOutcome {
    pub fn name(self) -> &'static str {
        match self {
            CancelOutcome::Cancelled => "cancelled",
            CancelOutcome::Finished => "finished",
            CancelOutcome::Unknown => "unknown",
        }
    }
}
