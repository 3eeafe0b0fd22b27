//! A tenant's report settings as people write them: the agent's `--sla` file and each
//! `[reports.<tenant>]` table of the controller's config have this one shape, checked here
//! into [`TenantSettings`].
//!
//! ```toml
//! [targets]            # longest time to restore, in minutes, per priority
//! P1 = 60
//! P2 = 240
//! [[service]]          # first match wins; a monitor no entry names is P3 in DE.CM
//! monitor = "backup*"  # a name, or a prefix ending in `*`
//! priority = "P1"
//! csf = "RC.RP"        # GV, ID.AM, PR.PS, DE.CM, RS.MI, RC.RP
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::{CsfCategory, Priority, ServiceRule, TenantSettings};

/// The settings as written (deserialise it with any serde format, then [`SlaConfig::check`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaConfig {
    /// Minutes per priority name.
    #[serde(default)]
    pub targets: BTreeMap<String, u64>,
    #[serde(default, rename = "service")]
    pub services: Vec<ServiceEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceEntry {
    pub monitor: String,
    pub priority: String,
    pub csf: String,
}

/// What is wrong with a written setting; the message names the value and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingsError {
    Priority(String),
    Category(String),
    ZeroTarget(String),
    EmptyMonitor,
}

impl std::fmt::Display for SettingsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SettingsError::Priority(p) => write!(f, "priority `{p}`: one of P1, P2, P3, P4"),
            SettingsError::Category(c) => {
                write!(f, "csf `{c}`: one of GV, ID.AM, PR.PS, DE.CM, RS.MI, RC.RP")
            }
            SettingsError::ZeroTarget(p) => write!(f, "target {p} = 0 minutes"),
            SettingsError::EmptyMonitor => write!(f, "a [[service]] has an empty monitor"),
        }
    }
}

impl std::error::Error for SettingsError {}

fn priority(text: &str) -> Result<Priority, SettingsError> {
    Priority::parse(text).ok_or_else(|| SettingsError::Priority(text.to_string()))
}

impl SlaConfig {
    /// The checked settings: targets in milliseconds, rules in the written order.
    pub fn check(&self) -> Result<TenantSettings, SettingsError> {
        let mut targets = BTreeMap::new();
        for (name, &minutes) in &self.targets {
            if minutes == 0 {
                return Err(SettingsError::ZeroTarget(name.clone()));
            }
            targets.insert(priority(name)?, minutes.saturating_mul(60_000));
        }
        let mut rules = Vec::with_capacity(self.services.len());
        for s in &self.services {
            if s.monitor.is_empty() {
                return Err(SettingsError::EmptyMonitor);
            }
            rules.push(ServiceRule {
                monitor: s.monitor.clone(),
                priority: priority(&s.priority)?,
                category: CsfCategory::parse(&s.csf)
                    .ok_or_else(|| SettingsError::Category(s.csf.clone()))?,
            });
        }
        Ok(TenantSettings { rules, targets })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TenantSettings, String> {
        let raw: SlaConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        raw.check().map_err(|e| e.to_string())
    }

    #[test]
    fn targets_are_minutes_and_rules_keep_their_order() {
        let s = parse(
            "[targets]\nP1 = 60\np2 = 240\n\
             [[service]]\nmonitor = \"backup*\"\npriority = \"P1\"\ncsf = \"RC.RP\"\n\
             [[service]]\nmonitor = \"disk\"\npriority = \"p4\"\ncsf = \"de.cm\"\n",
        )
        .expect("settings");
        assert_eq!(s.targets.get(&Priority::P1), Some(&3_600_000));
        assert_eq!(s.targets.get(&Priority::P2), Some(&14_400_000));
        assert_eq!(s.rules.len(), 2);
        assert_eq!(s.class("backup-nightly"), (Priority::P1, CsfCategory::RcRp));
        assert_eq!(s.class("disk"), (Priority::P4, CsfCategory::DeCm));
        assert_eq!(s.class("other"), (Priority::P3, CsfCategory::DeCm));
    }

    #[test]
    fn each_wrong_value_is_named() {
        let cases = [
            ("[targets]\nP9 = 1\n", "priority `P9`"),
            ("[targets]\nP1 = 0\n", "target P1 = 0 minutes"),
            (
                "[[service]]\nmonitor = \"\"\npriority = \"P1\"\ncsf = \"GV\"\n",
                "empty monitor",
            ),
            (
                "[[service]]\nmonitor = \"x\"\npriority = \"P1\"\ncsf = \"XX\"\n",
                "csf `XX`",
            ),
            ("[target]\nP1 = 1\n", "unknown field `target`"),
        ];
        for (text, expected) in cases {
            let err = parse(text).expect_err(text);
            assert!(err.contains(expected), "{text}: {err}");
        }
    }
}
