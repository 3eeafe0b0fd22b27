//! The tenant's platform posture for the report's Identify (ID.AM) and Protect (PR.PS)
//! sections: patch compliance from each agent's latest patch scan, and baseline drift from the
//! incidents of its drift monitors. Pure, like the rest of the crate: the caller says what it
//! measured and when.
//!
//! # What is computed (the spec the tests pin)
//!
//! - **Patch compliance** is a state, not a period figure: each agent's **latest** patch scan
//!   as the caller held it at `measured_ms` (the controller: the last heartbeat's summary; the
//!   agent: its latest `patch-status` facts). Over **all** the tenant's agents (an agent that
//!   never reported a scan is not known to be patched, so it counts against every share):
//!   **no security pending** = its scan has 0 security updates pending; **no reboot pending**
//!   = its scan does not require a reboot; **compliant** = both. Shares are 100 × count /
//!   agents, `None` without agents. A scan older than the period's start is **stale** (counted
//!   as it is, and counted apart, so a reader sees how old the evidence is).
//! - **Drift** is a period figure: the incidents of the drift monitors (a monitor running
//!   `builtin:drift`) folded as [`crate::compute`] folds a service's (repeats are one incident,
//!   a stray resolve is ignored). Per agent and monitor: **detected** = incidents opened in
//!   `[from, to)`, **resolved** = of them, those resolved before `to`, **open at end** = an
//!   incident open at `to` (one carried over from before `from` included: the drift is still
//!   there). Plus the baseline versions recorded in the period (accepted changes), when the
//!   caller has them.

use crate::{Event, EventKind};

/// An agent's latest patch scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchScan {
    /// When the scan ran (the agent's clock).
    pub scanned_ms: i64,
    /// Upgradable packages.
    pub pending: u32,
    /// Of them, security updates.
    pub security: u32,
    pub reboot_required: bool,
}

impl PatchScan {
    pub fn compliant(&self) -> bool {
        self.security == 0 && !self.reboot_required
    }
}

/// One agent of the tenant and its latest scan (`None`: it never reported one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchState {
    pub agent: String,
    pub scan: Option<PatchScan>,
}

/// The tenant's patch compliance (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct PatchCompliance {
    /// When the caller read the states.
    pub measured_ms: i64,
    /// What was measured, for the reader (`the latest scan each agent reported in its
    /// heartbeat`).
    pub source: String,
    pub agents: usize,
    pub scanned: usize,
    pub no_security_pending: usize,
    pub no_reboot_pending: usize,
    pub compliant: usize,
    /// Scans older than the period's start.
    pub stale: usize,
    pub oldest_scan_ms: Option<i64>,
    pub newest_scan_ms: Option<i64>,
    /// The agents not compliant or never scanned, by agent name.
    pub exceptions: Vec<PatchState>,
}

fn share(count: usize, of: usize) -> Option<f64> {
    (of > 0).then(|| 100.0 * count as f64 / of as f64)
}

impl PatchCompliance {
    pub fn no_security_pct(&self) -> Option<f64> {
        share(self.no_security_pending, self.agents)
    }

    pub fn no_reboot_pct(&self) -> Option<f64> {
        share(self.no_reboot_pending, self.agents)
    }

    pub fn compliant_pct(&self) -> Option<f64> {
        share(self.compliant, self.agents)
    }
}

/// Patch compliance of `states` (one per agent of the tenant), read at `measured_ms`, for a
/// period starting at `from_ms`.
pub fn patch_compliance(
    states: &[PatchState],
    from_ms: i64,
    measured_ms: i64,
    source: &str,
) -> PatchCompliance {
    let scans: Vec<&PatchScan> = states.iter().filter_map(|s| s.scan.as_ref()).collect();
    let mut exceptions: Vec<PatchState> = states
        .iter()
        .filter(|s| !s.scan.is_some_and(|scan| scan.compliant()))
        .cloned()
        .collect();
    exceptions.sort_by(|a, b| a.agent.cmp(&b.agent));
    PatchCompliance {
        measured_ms,
        source: source.to_string(),
        agents: states.len(),
        scanned: scans.len(),
        no_security_pending: scans.iter().filter(|s| s.security == 0).count(),
        no_reboot_pending: scans.iter().filter(|s| !s.reboot_required).count(),
        compliant: scans.iter().filter(|s| s.compliant()).count(),
        stale: scans.iter().filter(|s| s.scanned_ms < from_ms).count(),
        oldest_scan_ms: scans.iter().map(|s| s.scanned_ms).min(),
        newest_scan_ms: scans.iter().map(|s| s.scanned_ms).max(),
        exceptions,
    }
}

/// A baseline version recorded in the period (an accepted change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaselineVersion {
    pub agent: String,
    pub version: i64,
    pub taken_ms: i64,
    pub taken_by: String,
    pub reason: String,
}

/// One drift monitor on one agent over the period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftRow {
    pub agent: String,
    pub monitor: String,
    pub detected: usize,
    pub resolved: usize,
    pub open_at_end: bool,
    /// The latest drift opened in the period.
    pub last_detected_ms: Option<i64>,
}

/// The period's baseline drift (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    /// By agent, then monitor; only monitors with drift in the period or open at its end.
    pub rows: Vec<DriftRow>,
    /// By time; `None`: the caller cannot tell (the controller does not hear of baselines).
    pub baselines: Option<Vec<BaselineVersion>>,
}

impl Drift {
    pub fn detected(&self) -> usize {
        self.rows.iter().map(|r| r.detected).sum()
    }

    pub fn open_at_end(&self) -> usize {
        self.rows.iter().filter(|r| r.open_at_end).count()
    }
}

/// One service's events folded into incidents over `[from, to)`.
pub(crate) struct Folded {
    /// (opened, resolved) of each incident opened in the period; `None`: open at `to`.
    pub incidents: Vec<(i64, Option<i64>)>,
    /// The end within the period of an incident opened before `from` (its resolve, or `to`).
    pub carried_until: Option<i64>,
    /// An incident (from any time) is open at `to`.
    pub open_at_end: bool,
}

/// Fold one service's `events` (any order; at or after `to` ignored) as the crate doc says:
/// time order, opened before resolved at the same instant, repeated opens one incident, a
/// resolve with none open ignored.
pub(crate) fn fold(events: &mut [&Event], from_ms: i64, to_ms: i64) -> Folded {
    events.sort_by_key(|e| (e.at_ms, e.kind == EventKind::Resolved));
    let mut open: Option<i64> = None;
    let mut folded = Folded {
        incidents: Vec::new(),
        carried_until: None,
        open_at_end: false,
    };
    for e in events.iter().filter(|e| e.at_ms < to_ms) {
        match (e.kind, open) {
            (EventKind::Opened, None) => open = Some(e.at_ms),
            (EventKind::Opened, Some(_)) | (EventKind::Resolved, None) => {}
            (EventKind::Resolved, Some(opened)) => {
                if opened >= from_ms {
                    folded.incidents.push((opened, Some(e.at_ms)));
                } else if e.at_ms > from_ms {
                    folded.carried_until = Some(e.at_ms);
                }
                open = None;
            }
        }
    }
    if let Some(opened) = open {
        folded.open_at_end = true;
        if opened >= from_ms {
            folded.incidents.push((opened, None));
        } else {
            folded.carried_until = Some(to_ms);
        }
    }
    folded
}

/// The drift of `[from_ms, to_ms)` from the drift monitors' incident `events` (any order).
pub fn drift(
    events: &[Event],
    from_ms: i64,
    to_ms: i64,
    baselines: Option<Vec<BaselineVersion>>,
) -> Drift {
    let mut by_monitor: std::collections::BTreeMap<(&str, &str), Vec<&Event>> =
        std::collections::BTreeMap::new();
    for e in events {
        by_monitor
            .entry((e.agent.as_str(), e.monitor.as_str()))
            .or_default()
            .push(e);
    }
    let rows = by_monitor
        .into_iter()
        .filter_map(|((agent, monitor), mut evs)| {
            let folded = fold(&mut evs, from_ms, to_ms);
            let row = DriftRow {
                agent: agent.to_string(),
                monitor: monitor.to_string(),
                detected: folded.incidents.len(),
                resolved: folded.incidents.iter().filter(|(_, r)| r.is_some()).count(),
                open_at_end: folded.open_at_end,
                last_detected_ms: folded.incidents.iter().map(|(o, _)| *o).max(),
            };
            (row.detected > 0 || row.open_at_end).then_some(row)
        })
        .collect();
    let baselines = baselines.map(|mut b| {
        b.retain(|v| (from_ms..to_ms).contains(&v.taken_ms));
        b.sort_by(|x, y| (x.taken_ms, &x.agent).cmp(&(y.taken_ms, &y.agent)));
        b
    });
    Drift { rows, baselines }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    fn scan(at: i64, security: u32, reboot: bool) -> Option<PatchScan> {
        Some(PatchScan {
            scanned_ms: at,
            pending: security + 2,
            security,
            reboot_required: reboot,
        })
    }

    fn state(agent: &str, scan: Option<PatchScan>) -> PatchState {
        PatchState {
            agent: agent.into(),
            scan,
        }
    }

    #[test]
    fn patch_shares_are_over_every_agent_and_an_unscanned_one_counts_against_them() {
        let states = [
            state("web-2", scan(10 * HOUR, 0, false)),
            state("db-1", scan(10 * HOUR, 3, false)),
            state("db-2", scan(HOUR, 0, true)),
            state("fs-1", None),
        ];
        let p = patch_compliance(&states, 5 * HOUR, 20 * HOUR, "latest scan");
        assert_eq!((p.agents, p.scanned), (4, 3));
        assert_eq!(p.no_security_pending, 2, "web-2, db-2");
        assert_eq!(p.no_reboot_pending, 2, "web-2, db-1");
        assert_eq!(p.compliant, 1, "web-2 only");
        assert_eq!(p.compliant_pct(), Some(25.0));
        assert_eq!(p.no_security_pct(), Some(50.0));
        assert_eq!(p.stale, 1, "db-2 scanned before the period");
        assert_eq!(
            (p.oldest_scan_ms, p.newest_scan_ms),
            (Some(HOUR), Some(10 * HOUR))
        );
        let exceptions: Vec<&str> = p.exceptions.iter().map(|s| s.agent.as_str()).collect();
        assert_eq!(
            exceptions,
            ["db-1", "db-2", "fs-1"],
            "sorted, compliant left out"
        );
        assert_eq!(p.measured_ms, 20 * HOUR);
        let none = patch_compliance(&[], 0, 1, "x");
        assert_eq!((none.agents, none.compliant_pct()), (0, None));
    }

    fn ev(at: i64, agent: &str, kind: EventKind) -> Event {
        Event {
            at_ms: at,
            agent: agent.into(),
            monitor: "config-drift".into(),
            kind,
        }
    }

    #[test]
    fn drift_counts_the_period_s_incidents_and_what_is_still_open() {
        let (from, to) = (10 * HOUR, 100 * HOUR);
        let events = [
            // db-1: carried over from before the period, resolved in it: not detected in it.
            ev(HOUR, "db-1", EventKind::Opened),
            ev(11 * HOUR, "db-1", EventKind::Resolved),
            // web-1: twice in the period (a repeated open is one), the second still open.
            ev(20 * HOUR, "web-1", EventKind::Opened),
            ev(20 * HOUR, "web-1", EventKind::Opened),
            ev(21 * HOUR, "web-1", EventKind::Resolved),
            ev(50 * HOUR, "web-1", EventKind::Opened),
            // fs-1: open before and through the whole period: drift that is still there.
            ev(2 * HOUR, "fs-1", EventKind::Opened),
            // ws-1: after the period.
            ev(100 * HOUR, "ws-1", EventKind::Opened),
        ];
        let baselines = vec![
            BaselineVersion {
                agent: "web-1".into(),
                version: 3,
                taken_ms: 60 * HOUR,
                taken_by: "ada".into(),
                reason: "CHG-1".into(),
            },
            BaselineVersion {
                agent: "web-1".into(),
                version: 2,
                taken_ms: HOUR,
                taken_by: "ada".into(),
                reason: "before".into(),
            },
        ];
        let d = drift(&events, from, to, Some(baselines));
        let rows: Vec<(&str, usize, usize, bool)> = d
            .rows
            .iter()
            .map(|r| (r.agent.as_str(), r.detected, r.resolved, r.open_at_end))
            .collect();
        assert_eq!(
            rows,
            [("fs-1", 0, 0, true), ("web-1", 2, 1, true)],
            "db-1 resolved carry-over and ws-1 after the end left out"
        );
        assert_eq!(d.rows[1].last_detected_ms, Some(50 * HOUR));
        assert_eq!((d.detected(), d.open_at_end()), (2, 2));
        let versions: Vec<i64> = d
            .baselines
            .expect("baselines")
            .iter()
            .map(|b| b.version)
            .collect();
        assert_eq!(versions, [3], "only the period's");
    }
}
