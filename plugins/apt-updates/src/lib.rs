//! `apt-updates`: a discovery plugin that reports what a patch window would find. It simulates
//! `apt-get -s dist-upgrade` (nothing changes, no lock is taken) and reads `/run/reboot-required`.
//!
//! Fact groups:
//! - `patch-status` (one): `state` (`up-to-date`, `updates-available`, `reboot-pending`),
//!   `upgradable`, `security`, `kept-back`, `new-packages`, `removals`, `reboot-required`,
//!   `reboot-packages`;
//! - `apt-update` (one per upgradable package, unless `packages = false`): `name`, `installed`,
//!   `candidate`, `pin` (`name=version`), `severity` (`security` or `normal`), `origins`, `arch`;
//! - `apt-kept-back` (one per package apt keeps back): `name`.
//!
//! The same plugin is the verify re-scan of the `patch-apt` runbook: after the upgrades, what
//! is still upgradable and whether the machine is now reboot-pending.

use apt_common::host;
use apt_common::reboot::PatchState;
use apt_common::simulate::Severity;
use serde::Deserialize;
use std::time::Duration;
use warden_sdk::{Discovery, FactGroup, PluginError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    /// One group per upgradable package (the list can be long).
    #[serde(default = "default_true")]
    packages: bool,
}

fn default_timeout_ms() -> u64 {
    120_000
}

fn default_true() -> bool {
    true
}

struct AptUpdates;

impl Discovery for AptUpdates {
    fn discover(config: &str) -> Result<Vec<FactGroup>, PluginError> {
        let config: Config = warden_sdk::config(config)?;
        let sim = host::simulate(Duration::from_millis(config.timeout_ms))?;
        let (reboot_required, reboot_packages) = host::reboot_state()?;
        let security = sim
            .upgrades
            .iter()
            .filter(|u| u.severity == Severity::Security)
            .count();
        let state = PatchState::of(sim.upgrades.len(), reboot_required);
        let mut groups = vec![
            FactGroup::new("patch-status")
                .fact("state", state.as_str())
                .fact("upgradable", count(sim.upgrades.len()))
                .fact("security", count(security))
                .fact("kept-back", count(sim.kept_back.len()))
                .fact("new-packages", count(sim.new.len()))
                .fact("removals", count(sim.removals.len()))
                .fact("reboot-required", reboot_required)
                .fact("reboot-packages", reboot_packages),
        ];
        if config.packages {
            groups.extend(sim.upgrades.iter().map(|u| {
                FactGroup::new("apt-update")
                    .fact("name", u.name.as_str())
                    .fact("installed", u.installed.clone().unwrap_or_default())
                    .fact("candidate", u.candidate.as_str())
                    .fact("pin", u.pin())
                    .fact("severity", u.severity.as_str())
                    .fact("origins", u.origins.clone())
                    .fact("arch", u.arch.as_str())
            }));
        }
        groups.extend(
            sim.kept_back
                .iter()
                .map(|name| FactGroup::new("apt-kept-back").fact("name", name.as_str())),
        );
        Ok(groups)
    }
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

warden_sdk::discovery!(AptUpdates);
