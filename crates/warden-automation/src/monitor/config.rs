//! `[[monitor]]` entries of the automation config: which check plugin to run how often, when
//! a streak of failures becomes an incident, which runbook remediates it, and when to escalate.

use crate::ConfigError;
use crate::baseline::BuiltinCheck;
use crate::duration::HumanDuration;
use crate::schedule::config::{check_name, param_string, resolve_path};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use warden_core::names;
use warden_core::report::CheckStatus;

/// Shortest check interval accepted.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// One `[[monitor]]` entry as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MonitorConfig {
    /// Unique among monitors; the key of its incidents.
    pub name: String,
    /// The installed check plugin to run, or a built-in check (`builtin:drift`).
    pub plugin: String,
    /// The plugin's config (validated by the plugin's schema when it runs).
    #[serde(default)]
    pub config: toml::Table,
    /// Time between checks. Default `60s`.
    #[serde(default = "default_interval")]
    pub interval: HumanDuration,
    /// Consecutive failing checks that open an incident. Default 3.
    #[serde(default = "default_failures")]
    pub failures_to_trigger: u32,
    /// The least severe check status that counts as a failure. Default `warning`.
    #[serde(default)]
    pub fail_on: FailOn,
    /// The runbook that fixes the problem. Without one, an incident escalates at once.
    #[serde(default)]
    pub remediation: Option<RemediationConfig>,
    #[serde(default)]
    pub escalation: EscalationConfig,
}

/// Which check statuses count as failing. `unknown` (and a check that cannot run) never
/// counts either way: it neither advances nor resets a streak.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailOn {
    /// `warning` and `critical` fail.
    #[default]
    Warning,
    /// Only `critical` fails.
    Critical,
}

/// `[monitor.remediation]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RemediationConfig {
    /// Runbook file; relative paths are resolved against the config file's directory.
    pub runbook: PathBuf,
    #[serde(default)]
    pub params: BTreeMap<String, toml::Value>,
    /// Re-check after a successful remediation before calling the incident resolved. Default true.
    #[serde(default = "yes")]
    pub verify: bool,
    /// Wait this long after the remediation before the verifying check. Default `10s`.
    #[serde(default = "default_verify_delay")]
    pub verify_delay: HumanDuration,
}

/// `[monitor.escalation]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct EscalationConfig {
    /// Remediation runs per incident before escalating. Default 2.
    pub max_attempts: u32,
    /// More incidents than this opened within `window` escalate at once (no remediation):
    /// the fix is not sticking. Default 3.
    pub max_incidents: u32,
    /// Default `24h`.
    pub window: HumanDuration,
}

impl Default for EscalationConfig {
    fn default() -> Self {
        EscalationConfig {
            max_attempts: 2,
            max_incidents: 3,
            window: HumanDuration::secs(86_400),
        }
    }
}

fn default_interval() -> HumanDuration {
    HumanDuration::secs(60)
}
fn default_failures() -> u32 {
    3
}
fn default_verify_delay() -> HumanDuration {
    HumanDuration::secs(10)
}
fn yes() -> bool {
    true
}

/// The thresholds the state machine works with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thresholds {
    pub failures_to_trigger: u32,
    pub has_remediation: bool,
    pub verify: bool,
    pub max_attempts: u32,
    pub max_incidents: u32,
    pub window: Duration,
}

/// A validated remediation.
#[derive(Debug, Clone)]
pub struct Remediation {
    pub runbook: PathBuf,
    pub params: Vec<(String, String)>,
    pub verify_delay: Duration,
}

/// A monitor that passed validation.
#[derive(Debug, Clone)]
pub struct Monitor {
    pub name: String,
    pub plugin: String,
    pub config: serde_json::Value,
    pub interval: Duration,
    pub fail_on: FailOn,
    pub remediation: Option<Remediation>,
    pub thresholds: Thresholds,
}

impl FailOn {
    /// `Some(true)` failing, `Some(false)` healthy, `None` unknown.
    pub fn failing(self, status: CheckStatus) -> Option<bool> {
        match (self, status) {
            (_, CheckStatus::Ok) => Some(false),
            (_, CheckStatus::Unknown) => None,
            (_, CheckStatus::Critical) => Some(true),
            (FailOn::Warning, CheckStatus::Warning) => Some(true),
            (FailOn::Critical, CheckStatus::Warning) => Some(false),
        }
    }
}

impl MonitorConfig {
    pub fn compile(&self, base: &Path) -> Result<Monitor, ConfigError> {
        let err = |message: String| ConfigError::Entry {
            section: "monitor",
            name: self.name.clone(),
            message,
        };
        check_name("monitor", &self.name).map_err(err)?;
        let config = serde_json::to_value(&self.config).map_err(|e| err(format!("config: {e}")))?;
        // A built-in check's config is the host's to validate, now; a plugin's is checked
        // against its schema when it runs.
        if BuiltinCheck::parse(&self.plugin, &config)
            .map_err(err)?
            .is_none()
        {
            names::validate_plugin_name(&self.plugin).map_err(err)?;
        }
        if self.interval.0 < MIN_INTERVAL {
            return Err(err(format!("interval {} is below 1s", self.interval)));
        }
        if self.failures_to_trigger == 0 {
            return Err(err("failures-to-trigger must be at least 1".into()));
        }
        let e = &self.escalation;
        if e.max_attempts == 0 {
            return Err(err("escalation.max-attempts must be at least 1".into()));
        }
        if e.max_incidents == 0 || e.window.0.is_zero() {
            return Err(err(
                "escalation.max-incidents and escalation.window must be more than 0".into(),
            ));
        }
        let remediation = self
            .remediation
            .as_ref()
            .map(|r| {
                let params = r
                    .params
                    .iter()
                    .map(|(k, v)| param_string(k, v).map(|s| (k.clone(), s)))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok::<_, String>(Remediation {
                    runbook: resolve_path(base, &r.runbook),
                    params,
                    verify_delay: r.verify_delay.0,
                })
            })
            .transpose()
            .map_err(err)?;
        Ok(Monitor {
            name: self.name.clone(),
            plugin: self.plugin.clone(),
            config,
            interval: self.interval.0,
            fail_on: self.fail_on,
            thresholds: Thresholds {
                failures_to_trigger: self.failures_to_trigger,
                has_remediation: remediation.is_some(),
                verify: self.remediation.as_ref().is_none_or(|r| r.verify),
                max_attempts: e.max_attempts,
                max_incidents: e.max_incidents,
                window: e.window.0,
            },
            remediation,
        })
    }
}
