//! The reboot policy and the reboot state.
//!
//! Debian and Ubuntu packages that need a reboot (a kernel, libc, systemd) touch
//! `/run/reboot-required` and add their names to `/run/reboot-required.pkgs`; the file goes away
//! at boot. (`/var/run` is a symlink to `/run`; the plugins read the real path, since a granted
//! path is checked as written.) Rules:
//!
//! | policy | after the upgrades, reboot required | not required |
//! |---|---|---|
//! | `never` | no reboot: state **reboot-pending** | nothing |
//! | `when-required` (default) | reboot | nothing |
//! | `always` | reboot | reboot |
//!
//! "Reboot pending" is a state of its own, reported by discovery and by the verify re-scan
//! ([`PatchState`]) until the machine has rebooted, whatever the policy: a reboot the policy
//! scheduled has not happened yet either.

use serde::{Deserialize, Serialize};

pub const REBOOT_REQUIRED: &str = "/run/reboot-required";
pub const REBOOT_REQUIRED_PKGS: &str = "/run/reboot-required.pkgs";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RebootPolicy {
    Never,
    WhenRequired,
    Always,
}

impl RebootPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            RebootPolicy::Never => "never",
            RebootPolicy::WhenRequired => "when-required",
            RebootPolicy::Always => "always",
        }
    }
}

/// What to do after the upgrades.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebootDecision {
    Reboot,
    /// Required but the policy says never: the machine stays reboot-pending.
    LeavePending,
    NotNeeded,
}

pub fn decide(policy: RebootPolicy, required: bool) -> RebootDecision {
    match (policy, required) {
        (RebootPolicy::Always, _) | (RebootPolicy::WhenRequired, true) => RebootDecision::Reboot,
        (RebootPolicy::Never, true) => RebootDecision::LeavePending,
        (RebootPolicy::Never | RebootPolicy::WhenRequired, false) => RebootDecision::NotNeeded,
    }
}

/// The patch state of a machine, as discovery and verify report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PatchState {
    UpToDate,
    UpdatesAvailable,
    /// A reboot is required to finish earlier upgrades (whether or not more are available).
    RebootPending,
}

impl PatchState {
    pub fn of(upgradable: usize, reboot_required: bool) -> PatchState {
        if reboot_required {
            PatchState::RebootPending
        } else if upgradable > 0 {
            PatchState::UpdatesAvailable
        } else {
            PatchState::UpToDate
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PatchState::UpToDate => "up-to-date",
            PatchState::UpdatesAvailable => "updates-available",
            PatchState::RebootPending => "reboot-pending",
        }
    }
}

/// The package names of `/run/reboot-required.pkgs`, one a line, without repeats.
pub fn parse_pkgs(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !out.iter().any(|n| n == name) {
            out.push(name.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_table() {
        use RebootDecision::*;
        use RebootPolicy::*;
        assert_eq!(decide(Never, true), LeavePending);
        assert_eq!(decide(Never, false), NotNeeded);
        assert_eq!(decide(WhenRequired, true), Reboot);
        assert_eq!(decide(WhenRequired, false), NotNeeded);
        assert_eq!(decide(Always, true), Reboot);
        assert_eq!(decide(Always, false), Reboot);
    }

    #[test]
    fn reboot_pending_is_its_own_state() {
        assert_eq!(PatchState::of(0, false), PatchState::UpToDate);
        assert_eq!(PatchState::of(3, false), PatchState::UpdatesAvailable);
        assert_eq!(PatchState::of(0, true), PatchState::RebootPending);
        assert_eq!(PatchState::of(3, true), PatchState::RebootPending);
    }

    #[test]
    fn reboot_packages_are_listed_once() {
        assert_eq!(
            parse_pkgs("linux-image-6.1.0-18-amd64\nlibc6\n\nlibc6\n"),
            ["linux-image-6.1.0-18-amd64", "libc6"]
        );
    }
}
