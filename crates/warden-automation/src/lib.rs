//! Unattended automation: the `[[schedule]]`, `[[maintenance-window]]` and `[[monitor]]`
//! config, the [`Executor`] trait the daemon implements to run things, the events it reports,
//! and [`spawn`], which starts the schedule and monitor drivers. See docs/AUTOMATION.md.

pub mod baseline;
pub mod clock;
pub mod duration;
pub mod events;
pub mod executor;
pub mod monitor;
pub mod schedule;
pub mod store;

pub use clock::{SystemClock, WallClock};
pub use events::AutomationEvent;
pub use executor::{
    BoxFuture, CheckLaunch, CheckOutcome, Executor, LaunchError, LaunchOrigin, RunOutcome,
    RunbookLaunch,
};
pub use store::AutomationStore;

use crate::monitor::config::{Monitor, MonitorConfig};
use crate::schedule::config::{MaintenanceWindow, Schedule, ScheduleConfig, WindowConfig};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use warden_audit::AuditLog;
use warden_history::{History, HistoryError};

/// Largest automation config file accepted.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("[[{section}]] `{name}`: {message}")]
    Entry {
        section: &'static str,
        name: String,
        message: String,
    },
    #[error("[[{section}]]: the name `{name}` is used more than once")]
    Duplicate { section: &'static str, name: String },
}

/// The automation sections of the agent config, as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AutomationConfig {
    #[serde(default, rename = "schedule")]
    pub schedules: Vec<ScheduleConfig>,
    #[serde(default, rename = "maintenance-window")]
    pub windows: Vec<WindowConfig>,
    #[serde(default, rename = "monitor")]
    pub monitors: Vec<MonitorConfig>,
}

/// The validated automation config.
#[derive(Debug, Clone, Default)]
pub struct Automation {
    pub schedules: Vec<Schedule>,
    pub windows: Vec<MaintenanceWindow>,
    pub monitors: Vec<Monitor>,
}

fn unique<'a>(
    section: &'static str,
    names: impl Iterator<Item = &'a str>,
) -> Result<(), ConfigError> {
    let mut seen = HashSet::new();
    for n in names {
        if !seen.insert(n) {
            return Err(ConfigError::Duplicate {
                section,
                name: n.to_string(),
            });
        }
    }
    Ok(())
}

impl AutomationConfig {
    /// Parse TOML text (only these three sections).
    pub fn parse(text: &str, origin: &Path) -> Result<AutomationConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::File {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Read, parse and validate `path`; relative runbook paths resolve against its directory.
    pub fn load(path: &Path) -> Result<Automation, ConfigError> {
        let file = |message: String| ConfigError::File {
            path: path.to_path_buf(),
            message,
        };
        let len = std::fs::metadata(path)
            .map_err(|e| file(e.to_string()))?
            .len();
        if len > MAX_CONFIG_BYTES {
            return Err(file(format!("{len} bytes is more than {MAX_CONFIG_BYTES}")));
        }
        let text = std::fs::read_to_string(path).map_err(|e| file(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        AutomationConfig::parse(&text, path)?.compile(base)
    }

    /// Validate every entry; the first error is returned.
    pub fn compile(&self, base: &Path) -> Result<Automation, ConfigError> {
        unique("schedule", self.schedules.iter().map(|s| s.name.as_str()))?;
        unique(
            "maintenance-window",
            self.windows.iter().map(|w| w.name.as_str()),
        )?;
        unique("monitor", self.monitors.iter().map(|m| m.name.as_str()))?;
        let windows = self
            .windows
            .iter()
            .map(WindowConfig::compile)
            .collect::<Result<Vec<_>, _>>()?;
        let schedules = self
            .schedules
            .iter()
            .map(|s| s.compile(base, &windows))
            .collect::<Result<Vec<_>, _>>()?;
        let monitors = self
            .monitors
            .iter()
            .map(|m| m.compile(base))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Automation {
            schedules,
            windows,
            monitors,
        })
    }
}

impl Automation {
    /// Every runbook the config refers to, with the entry that does: for the daemon to load
    /// and trust-check at start (a runbook may be a signed bundle).
    pub fn runbooks(&self) -> Vec<(&'static str, &str, &Path)> {
        let schedules = self
            .schedules
            .iter()
            .map(|s| ("schedule", s.name.as_str(), s.runbook.as_path()));
        let monitors = self.monitors.iter().filter_map(|m| {
            m.remediation
                .as_ref()
                .map(|r| ("monitor", m.name.as_str(), r.runbook.as_path()))
        });
        schedules.chain(monitors).collect()
    }

    /// Refuse a config whose runbook files do not exist (a typo found at start, not at 3 AM).
    pub fn check_runbook_files(&self) -> Result<(), ConfigError> {
        for (section, name, path) in self.runbooks() {
            if !path.is_file() {
                return Err(ConfigError::Entry {
                    section,
                    name: name.to_string(),
                    message: format!("runbook {} is not a file", path.display()),
                });
            }
        }
        Ok(())
    }
}

/// What the drivers need besides the executor.
#[derive(Clone)]
pub struct Deps {
    pub history: Arc<History>,
    /// Every [`AutomationEvent`] is appended here (kind `automation.*`) before it is reported
    /// to the executor; a launch whose record cannot be written does not happen.
    pub audit: Arc<AuditLog>,
    pub clock: Arc<dyn WallClock>,
    /// Seeds the per-host jitter of schedules (e.g. the agent id or host name).
    pub host_id: String,
}

impl Deps {
    /// Audit then report. Returns whether the audit record was written.
    pub(crate) fn emit(&self, executor: &dyn Executor, ev: AutomationEvent) -> bool {
        let written = match self.audit.append(ev.kind(), ev.to_json()) {
            Ok(_) => true,
            Err(e) => {
                tracing::error!(error = %e, event = ev.kind(), "cannot write the audit log");
                false
            }
        };
        executor.event(ev);
        written
    }
}

/// The running drivers.
pub struct AutomationHandle {
    tasks: Vec<JoinHandle<()>>,
}

impl AutomationHandle {
    /// Wait until every driver has stopped (after shutdown was signalled).
    pub async fn join(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Start the schedule driver and one driver per monitor on the current tokio runtime. They
/// stop when `shutdown` turns `true` (or its sender is dropped); runs already launched are the
/// executor's to finish or cancel.
pub fn spawn(
    automation: Automation,
    executor: Arc<dyn Executor>,
    deps: Deps,
    shutdown: watch::Receiver<bool>,
) -> Result<AutomationHandle, HistoryError> {
    let mut tasks = Vec::new();
    if !automation.schedules.is_empty() {
        let driver = crate::schedule::driver::ScheduleDriver::new(
            automation.schedules,
            automation.windows,
            executor.clone(),
            deps.clone(),
        )?;
        tasks.push(tokio::spawn(driver.run(shutdown.clone())));
    }
    for m in automation.monitors {
        let driver = crate::monitor::driver::MonitorDriver::new(m, executor.clone(), deps.clone())?;
        tasks.push(tokio::spawn(driver.run(shutdown.clone())));
    }
    Ok(AutomationHandle { tasks })
}

/// Resolves when `shutdown` is `true` or its sender is gone.
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|v| *v).await;
}

#[cfg(test)]
mod tests;
