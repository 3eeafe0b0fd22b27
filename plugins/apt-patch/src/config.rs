//! The plugin's configuration, parsed into the approval [`Policy`] and the reboot policy.

use apt_common::policy::{Approval, Policy};
use apt_common::reboot::RebootPolicy;
use serde::Deserialize;
use std::time::Duration;
use warden_sdk::PluginError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    window_slot: String,
    #[serde(default = "auto")]
    security: Approval,
    #[serde(default = "manual")]
    normal: Approval,
    #[serde(default)]
    approve: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
    #[serde(default)]
    defer_days: u32,
    #[serde(default)]
    security_defer_days: u32,
    #[serde(default = "when_required")]
    reboot: RebootPolicy,
    #[serde(default = "one")]
    reboot_delay_minutes: u32,
    #[serde(default = "max_packages")]
    max_packages: usize,
    #[serde(default = "timeout_ms")]
    timeout_ms: u64,
}

fn auto() -> Approval {
    Approval::Auto
}
fn manual() -> Approval {
    Approval::Manual
}
fn when_required() -> RebootPolicy {
    RebootPolicy::WhenRequired
}
fn one() -> u32 {
    1
}
fn max_packages() -> usize {
    500
}
fn timeout_ms() -> u64 {
    540_000
}

/// Validated configuration.
pub struct Config {
    /// The maintenance window occurrence this run belongs to; empty outside a window.
    pub window_slot: String,
    pub policy: Policy,
    pub reboot: RebootPolicy,
    pub reboot_delay_minutes: u32,
    pub max_packages: usize,
    /// For the simulation (a fixed two minutes) and the install.
    pub simulate_timeout: Duration,
    pub install_timeout: Duration,
}

impl Config {
    pub fn parse(json: &str) -> Result<Config, PluginError> {
        let raw: Raw = warden_sdk::config(json)?;
        for p in raw.deny.iter().chain(&raw.approve) {
            // A pattern that can never match a package name is a typo that would deny or
            // approve nothing without a word; refuse it instead.
            let ok = p
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.*?".contains(c));
            if !ok {
                return Err(PluginError::bad_config(format!(
                    "pattern {p:?} cannot match a Debian package name (lower-case letters, digits, + - . and the wildcards * ?)"
                )));
            }
        }
        if raw.max_packages == 0 {
            return Err(PluginError::bad_config("max_packages must be at least 1"));
        }
        Ok(Config {
            window_slot: raw.window_slot,
            policy: Policy {
                security: raw.security,
                normal: raw.normal,
                deny: raw.deny,
                approve: raw.approve,
                defer_days: raw.defer_days,
                security_defer_days: raw.security_defer_days,
            },
            reboot: raw.reboot,
            reboot_delay_minutes: raw.reboot_delay_minutes,
            max_packages: raw.max_packages,
            simulate_timeout: Duration::from_secs(120),
            install_timeout: Duration::from_millis(raw.timeout_ms),
        })
    }
}
