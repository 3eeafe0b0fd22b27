//! Maintenance windows in the approvals gate (issue 16): a fleet run of a runbook marked
//! `maintenance = true` to an agent outside its maintenance windows waits for a second
//! operator (reason `outside-window`).
//!
//! The controller has no windows of its own: each agent reports its `[[maintenance-window]]`s
//! in its heartbeat ([`warden_fleet_wire::WindowInfo`]) and the store keeps the last report.
//! They are read here with the agent's own evaluator (`warden_automation::schedule::window`),
//! so "inside a window" means the same on both sides; nothing here reads a clock (the gate
//! passes its own, which tests fix).
//!
//! Pure: the gate gives the runbook's bundle and the agents' last reports.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use warden_automation::duration::HumanDuration;
use warden_automation::schedule::MaintenanceWindow;
use warden_automation::schedule::config::WindowConfig;
use warden_automation::schedule::window::{WindowVerdict, check};
use warden_fleet_wire::WindowInfo;

use super::policy::Reason;

/// Where one agent stands at an instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// `window` is open.
    Inside { window: String },
    /// It reported windows (maybe none) and none is open.
    Outside,
    /// It never reported windows (an agent older than the report): unknown, which the gate
    /// counts as outside, so an older agent asks for an approval rather than skipping one.
    Unreported,
}

/// Where an agent that last reported `windows` stands at `now`. A reported window the
/// controller cannot read (a cron or zone this build does not know) is never open.
pub fn standing(windows: Option<&[WindowInfo]>, now: DateTime<Utc>) -> Standing {
    let Some(windows) = windows else {
        return Standing::Unreported;
    };
    let compiled: Vec<MaintenanceWindow> = windows.iter().filter_map(compile).collect();
    // A zero expected duration: the question is "is a window open at dispatch", not "would
    // the run end inside it"; the agent's runbook decides how long it takes.
    match check(&compiled, now, Duration::ZERO) {
        WindowVerdict::Fits { window, .. } => Standing::Inside { window },
        WindowVerdict::NotOpen | WindowVerdict::WouldOverrun { .. } => Standing::Outside,
    }
}

fn compile(w: &WindowInfo) -> Option<MaintenanceWindow> {
    WindowConfig {
        name: w.name.clone(),
        cron: w.cron.clone(),
        duration: HumanDuration::secs(w.duration_secs),
        timezone: w.timezone.clone(),
    }
    .compile()
    .ok()
}

/// The `outside-window` reason for a maintenance runbook to agents that last reported
/// `reports` (one per agent), at `now`; `None` when every agent is inside a window.
pub fn outside_window<'a>(
    reports: impl IntoIterator<Item = Option<&'a [WindowInfo]>>,
    now: DateTime<Utc>,
) -> Option<Reason> {
    let (mut agents, mut outside, mut unreported) = (0, 0, 0);
    for report in reports {
        agents += 1;
        match standing(report, now) {
            Standing::Inside { .. } => {}
            Standing::Outside => outside += 1,
            Standing::Unreported => {
                outside += 1;
                unreported += 1;
            }
        }
    }
    (outside > 0).then_some(Reason::OutsideWindow {
        outside,
        unreported,
        agents,
    })
}

/// Only the marker: the runbook's other keys are the agents' to check.
#[derive(Deserialize)]
struct Marker {
    #[serde(default)]
    maintenance: bool,
}

/// Whether a runbook bundle holds a runbook marked `maintenance = true` (warden-runbook's
/// top-level key). A bundle that is no readable runbook is not marked: every agent refuses
/// it before running anything, so there is no run to gate.
pub fn is_maintenance(bundle: &[u8]) -> bool {
    let Ok(parsed) = warden_bundle::Bundle::parse(bundle) else {
        return false;
    };
    if parsed.statement.kind != "runbook" {
        return false;
    }
    std::str::from_utf8(&parsed.component)
        .ok()
        .and_then(|text| toml::from_str::<Marker>(text).ok())
        .is_some_and(|m| m.maintenance)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("a time")
            .with_timezone(&Utc)
    }

    /// Saturdays 02:00 to 06:00 in Berlin (CET in December: 01:00 to 05:00 UTC).
    fn nightly() -> WindowInfo {
        WindowInfo {
            name: "patch-night".into(),
            cron: "0 2 * * SAT".into(),
            timezone: "Europe/Berlin".into(),
            duration_secs: 4 * 3600,
        }
    }

    #[test]
    fn an_agent_stands_inside_only_while_a_reported_window_is_open() {
        let windows = [nightly()];
        let inside = at("2026-12-05T03:00:00Z");
        assert_eq!(
            standing(Some(&windows), inside),
            Standing::Inside {
                window: "patch-night".into()
            }
        );
        assert_eq!(
            standing(Some(&windows), at("2026-12-05T01:00:00Z")),
            Standing::Inside {
                window: "patch-night".into()
            },
            "opens at 02:00 Berlin, 01:00 UTC"
        );
        for outside in [
            "2026-12-05T00:59:59Z",
            "2026-12-05T05:00:00Z",
            "2026-12-03T03:00:00Z",
        ] {
            assert_eq!(
                standing(Some(&windows), at(outside)),
                Standing::Outside,
                "{outside}"
            );
        }
        assert_eq!(standing(Some(&[]), inside), Standing::Outside, "no windows");
        assert_eq!(standing(None, inside), Standing::Unreported);
        let unreadable = WindowInfo {
            cron: "not cron".into(),
            ..nightly()
        };
        assert_eq!(
            standing(Some(&[unreadable]), inside),
            Standing::Outside,
            "a window the controller cannot read is never open"
        );
    }

    #[test]
    fn the_reason_counts_agents_outside_and_unknown() {
        let windows = [nightly()];
        let night = at("2026-12-05T03:00:00Z");
        let day = at("2026-12-05T12:00:00Z");
        assert_eq!(outside_window([Some(&windows[..])], night), None);
        assert_eq!(
            outside_window([Some(&windows[..]), Some(&windows[..]), None], day),
            Some(Reason::OutsideWindow {
                outside: 3,
                unreported: 1,
                agents: 3
            })
        );
        assert_eq!(
            outside_window([Some(&windows[..]), None], night),
            Some(Reason::OutsideWindow {
                outside: 1,
                unreported: 1,
                agents: 2
            }),
            "an agent that never reported is not inside"
        );
    }

    #[test]
    fn only_a_runbook_bundle_marked_maintenance_is_maintenance() {
        let bundle = |text: &str| {
            warden_bundle::Bundle::from_runbook("patch", text, 1)
                .expect("bundle")
                .to_bytes()
                .expect("bytes")
        };
        assert!(is_maintenance(&bundle(
            "name = \"patch\"\nmaintenance = true\n"
        )));
        assert!(!is_maintenance(&bundle("name = \"patch\"\n")));
        assert!(!is_maintenance(&bundle(
            "name = \"patch\"\nmaintenance = false\n"
        )));
        assert!(!is_maintenance(&bundle("maintenance = \"yes\"\n")));
        assert!(!is_maintenance(b"not a bundle"));
    }
}
