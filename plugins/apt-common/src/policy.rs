//! The approval rules: which upgradable packages go into a plan, as exact `name=version` pins.
//!
//! Spec (pure: the clock and the first-seen record are inputs). For each upgrade of an installed
//! package, the first rule that applies decides:
//!
//! 1. its name matches a `deny` pattern: **denied** (whatever else says; one bad update is
//!    stopped by name, e.g. `deny = ["linux-image-*"]`);
//! 2. the rule of its severity (`security`, `normal`) is `ignore`: **ignored**;
//! 3. the rule is `manual` and no `approve` pattern matches its name: **needs approval**;
//! 4. it was first seen (this pin, `name=version`) less than the deferral ago (`defer_days`,
//!    or `security_defer_days` for a security update): **deferred** until first-seen + days;
//! 5. otherwise **approved**.
//!
//! A package apt would newly install is never a pin of the plan (`--only-upgrade` would skip
//! it): apt brings it in as the dependency of an approved upgrade. A package apt keeps back is
//! never planned either. First-seen is per pin: a newer candidate restarts its deferral, since
//! that version has not been tested anywhere yet. When the clock is before the first-seen time
//! (it went back), the update stays deferred: nothing goes out early because of a clock error.

use crate::pattern;
use crate::simulate::{Severity, Simulation, Update};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const SECS_PER_DAY: u64 = 24 * 60 * 60;

/// What a severity's updates need before they go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Approval {
    /// Go out by themselves (after any deferral).
    Auto,
    /// Go out only when an `approve` pattern names them.
    Manual,
    /// Never go out; reported only.
    Ignore,
}

/// The knobs of the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub security: Approval,
    pub normal: Approval,
    /// Package-name patterns never planned.
    pub deny: Vec<String>,
    /// Package-name patterns that approve `manual` updates.
    pub approve: Vec<String>,
    pub defer_days: u32,
    pub security_defer_days: u32,
}

impl Policy {
    fn approval(&self, severity: Severity) -> Approval {
        match severity {
            Severity::Security => self.security,
            Severity::Normal => self.normal,
        }
    }

    fn defer_secs(&self, severity: Severity) -> u64 {
        let days = match severity {
            Severity::Security => self.security_defer_days,
            Severity::Normal => self.defer_days,
        };
        u64::from(days) * SECS_PER_DAY
    }
}

/// Why an update is or is not in the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    Approved,
    Denied {
        pattern: String,
    },
    Ignored,
    NeedsApproval,
    /// Held until `until` (unix seconds).
    Deferred {
        until: u64,
    },
}

impl Verdict {
    /// One short phrase for logs and facts: `denied by linux-image-*`.
    pub fn describe(&self) -> String {
        match self {
            Verdict::Approved => "approved".into(),
            Verdict::Denied { pattern } => format!("denied by {pattern}"),
            Verdict::Ignored => "ignored by the severity rule".into(),
            Verdict::NeedsApproval => "needs approval (manual)".into(),
            Verdict::Deferred { until } => format!("deferred until {}", crate::time::utc(*until)),
        }
    }

    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Approved => "approved",
            Verdict::Denied { .. } => "denied",
            Verdict::Ignored => "ignored",
            Verdict::NeedsApproval => "needs-approval",
            Verdict::Deferred { .. } => "deferred",
        }
    }
}

/// When each pin (`name=version`) was first seen, in unix seconds; kept durably by the plugin
/// (its kv state) between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirstSeen(pub BTreeMap<String, u64>);

impl FirstSeen {
    /// Record `now` for every pin not seen before and forget pins no longer offered (installed,
    /// or replaced by a newer candidate), so the record stays as small as the update list.
    /// Returns whether anything changed.
    pub fn observe<'a>(&mut self, updates: impl IntoIterator<Item = &'a Update>, now: u64) -> bool {
        let current: BTreeMap<String, ()> = updates.into_iter().map(|u| (u.pin(), ())).collect();
        let before = self.0.len();
        self.0.retain(|pin, _| current.contains_key(pin));
        let mut changed = self.0.len() != before;
        for pin in current.into_keys() {
            if let std::collections::btree_map::Entry::Vacant(e) = self.0.entry(pin) {
                e.insert(now);
                changed = true;
            }
        }
        changed
    }
}

/// The verdict on one upgrade at `now` (unix seconds).
pub fn decide(policy: &Policy, update: &Update, first_seen: &FirstSeen, now: u64) -> Verdict {
    if let Some(p) = pattern::first_match(&policy.deny, &update.name) {
        return Verdict::Denied {
            pattern: p.to_string(),
        };
    }
    match policy.approval(update.severity) {
        Approval::Ignore => return Verdict::Ignored,
        Approval::Manual if pattern::first_match(&policy.approve, &update.name).is_none() => {
            return Verdict::NeedsApproval;
        }
        Approval::Manual | Approval::Auto => {}
    }
    let defer = policy.defer_secs(update.severity);
    if defer > 0 {
        // Not yet observed counts as seen now: the deferral starts with this run.
        let seen = first_seen.0.get(&update.pin()).copied().unwrap_or(now);
        let until = seen.saturating_add(defer);
        if now < until || now < seen {
            return Verdict::Deferred { until };
        }
    }
    Verdict::Approved
}

/// Every upgrade of `sim` with its verdict, in apt's order.
pub fn judge<'a>(
    policy: &Policy,
    sim: &'a Simulation,
    first_seen: &FirstSeen,
    now: u64,
) -> Vec<(&'a Update, Verdict)> {
    sim.upgrades
        .iter()
        .map(|u| (u, decide(policy, u, first_seen, now)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(name: &str, version: &str, severity: Severity) -> Update {
        Update {
            name: name.into(),
            installed: Some("1.0".into()),
            candidate: version.into(),
            origins: vec![],
            arch: "amd64".into(),
            severity,
        }
    }

    fn policy() -> Policy {
        Policy {
            security: Approval::Auto,
            normal: Approval::Manual,
            deny: vec!["linux-image-*".into()],
            approve: vec!["nginx*".into()],
            defer_days: 7,
            security_defer_days: 0,
        }
    }

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn security_is_automatic_and_normal_needs_approval() {
        let seen = FirstSeen::default();
        let p = policy();
        assert_eq!(
            decide(
                &p,
                &update("libssl3", "3.1", Severity::Security),
                &seen,
                NOW
            ),
            Verdict::Approved
        );
        assert_eq!(
            decide(&p, &update("bash", "5.3", Severity::Normal), &seen, NOW),
            Verdict::NeedsApproval
        );
    }

    #[test]
    fn deny_wins_over_severity_and_approve() {
        let mut p = policy();
        p.approve.push("linux-image-*".into());
        assert_eq!(
            decide(
                &p,
                &update("linux-image-amd64", "6.1", Severity::Security),
                &FirstSeen::default(),
                NOW
            ),
            Verdict::Denied {
                pattern: "linux-image-*".into()
            }
        );
    }

    #[test]
    fn ignore_is_never_planned() {
        let mut p = policy();
        p.normal = Approval::Ignore;
        assert_eq!(
            decide(
                &p,
                &update("nginx", "1.2", Severity::Normal),
                &FirstSeen::default(),
                NOW
            ),
            Verdict::Ignored
        );
    }

    #[test]
    fn deferral_counts_from_first_seen_per_pin() {
        let p = policy();
        let nginx = update("nginx", "1.2", Severity::Normal);
        let mut seen = FirstSeen::default();
        // Seen for the first time now: deferred for the full 7 days.
        assert_eq!(
            decide(&p, &nginx, &seen, NOW),
            Verdict::Deferred {
                until: NOW + 7 * SECS_PER_DAY
            }
        );
        seen.observe([&nginx], NOW);
        assert_eq!(
            decide(&p, &nginx, &seen, NOW + 7 * SECS_PER_DAY - 1),
            Verdict::Deferred {
                until: NOW + 7 * SECS_PER_DAY
            }
        );
        assert_eq!(
            decide(&p, &nginx, &seen, NOW + 7 * SECS_PER_DAY),
            Verdict::Approved
        );
        // A newer candidate starts its own deferral and the old pin is forgotten.
        let newer = update("nginx", "1.3", Severity::Normal);
        assert!(seen.observe([&newer], NOW + 8 * SECS_PER_DAY));
        assert_eq!(seen.0.len(), 1);
        assert!(matches!(
            decide(&p, &newer, &seen, NOW + 8 * SECS_PER_DAY),
            Verdict::Deferred { .. }
        ));
        // Nothing new: no change to write.
        assert!(!seen.observe([&newer], NOW + 9 * SECS_PER_DAY));
    }

    #[test]
    fn a_clock_before_first_seen_keeps_the_update_deferred() {
        let p = policy();
        let nginx = update("nginx", "1.2", Severity::Normal);
        let mut seen = FirstSeen::default();
        seen.observe([&nginx], NOW);
        assert!(matches!(
            decide(&p, &nginx, &seen, NOW - 30 * SECS_PER_DAY),
            Verdict::Deferred { .. }
        ));
    }

    #[test]
    fn security_has_its_own_deferral() {
        let mut p = policy();
        p.security_defer_days = 2;
        let ssl = update("libssl3", "3.1", Severity::Security);
        let mut seen = FirstSeen::default();
        seen.observe([&ssl], NOW);
        assert!(matches!(
            decide(&p, &ssl, &seen, NOW + SECS_PER_DAY),
            Verdict::Deferred { .. }
        ));
        assert_eq!(
            decide(&p, &ssl, &seen, NOW + 2 * SECS_PER_DAY),
            Verdict::Approved
        );
    }
}
