//! The spec of the crate's doc, over fixed event sequences.

use super::*;

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
/// A 30-day period from t = 0.
const TO: i64 = 30 * 24 * HOUR;

fn ev(at_ms: i64, agent: &str, monitor: &str, kind: EventKind) -> Event {
    Event {
        at_ms,
        agent: agent.into(),
        monitor: monitor.into(),
        kind,
    }
}

fn opened(at: i64, monitor: &str) -> Event {
    ev(at, "db-1", monitor, EventKind::Opened)
}

fn resolved(at: i64, monitor: &str) -> Event {
    ev(at, "db-1", monitor, EventKind::Resolved)
}

fn settings() -> TenantSettings {
    TenantSettings {
        rules: vec![
            ServiceRule {
                monitor: "backup*".into(),
                priority: Priority::P1,
                category: CsfCategory::RcRp,
            },
            ServiceRule {
                monitor: "disk".into(),
                priority: Priority::P2,
                category: CsfCategory::DeCm,
            },
        ],
        targets: [
            (Priority::P1, 30 * MIN as u64),
            (Priority::P2, 4 * HOUR as u64),
        ]
        .into_iter()
        .collect(),
    }
}

fn only(report: &Report) -> &ServiceReport {
    assert_eq!(report.services.len(), 1, "{report:?}");
    &report.services[0]
}

#[test]
fn downtime_uptime_and_mttr_of_resolved_incidents() {
    let events = [
        opened(HOUR, "disk"),
        resolved(2 * HOUR, "disk"),
        opened(10 * HOUR, "disk"),
        resolved(13 * HOUR, "disk"),
    ];
    let report = compute("acme", 0, TO, &events, &settings()).expect("report");
    let disk = only(&report);
    assert_eq!(disk.downtime_ms, 4 * HOUR);
    let expected = 100.0 * (TO - 4 * HOUR) as f64 / TO as f64;
    assert!(
        (disk.uptime_pct - expected).abs() < 1e-9,
        "{}",
        disk.uptime_pct
    );
    assert_eq!(disk.incidents.len(), 2);
    assert_eq!(disk.resolved(), 2);
    assert_eq!(disk.mttr_ms, Some(2.0 * HOUR as f64));
    assert_eq!(
        (disk.priority, disk.category),
        (Priority::P2, CsfCategory::DeCm)
    );
    assert_eq!(disk.breaches(), 0, "both within the 4 h target");
}

#[test]
fn repeated_events_are_one_incident_and_a_stray_resolve_is_ignored() {
    // At-least-once delivery: the same opened twice, the same resolved twice.
    let events = [
        resolved(MIN, "disk"),
        opened(HOUR, "disk"),
        opened(HOUR, "disk"),
        opened(HOUR + MIN, "disk"),
        resolved(2 * HOUR, "disk"),
        resolved(2 * HOUR, "disk"),
    ];
    let report = compute("acme", 0, TO, &events, &settings()).expect("report");
    let disk = only(&report);
    assert_eq!(disk.incidents.len(), 1);
    assert_eq!(disk.downtime_ms, HOUR);
    assert_eq!(disk.mttr_ms, Some(HOUR as f64));
}

#[test]
fn an_incident_carried_over_counts_downtime_from_the_start_but_is_not_counted() {
    let from = 10 * HOUR;
    let events = [opened(HOUR, "disk"), resolved(from + HOUR, "disk")];
    let report = compute("acme", from, TO, &events, &settings()).expect("report");
    let disk = only(&report);
    assert_eq!(disk.downtime_ms, HOUR, "from the period's start only");
    assert!(
        disk.incidents.is_empty(),
        "it was opened in an earlier period"
    );
    assert_eq!(disk.mttr_ms, None);
}

#[test]
fn an_incident_open_at_the_end_is_down_to_the_end_and_breaches_once_past_its_target() {
    let events = [opened(TO - 2 * HOUR, "backup-nightly")];
    let report = compute("acme", 0, TO, &events, &settings()).expect("report");
    let backup = only(&report);
    assert_eq!(
        (backup.priority, backup.category),
        (Priority::P1, CsfCategory::RcRp)
    );
    assert_eq!(backup.downtime_ms, 2 * HOUR);
    assert_eq!(backup.incidents[0].resolved_ms, None);
    assert!(
        backup.incidents[0].breached,
        "2 h open against a 30 min target"
    );
    assert_eq!(backup.mttr_ms, None, "nothing restored");
    let p1 = &report.priorities[0];
    assert_eq!(
        (p1.priority, p1.incidents, p1.breached),
        (Priority::P1, 1, 1)
    );
    assert_eq!(p1.met_pct, Some(0.0));
}

#[test]
fn breaches_are_against_the_priority_target_and_met_percent_counts_them() {
    let events = [
        // 20 min, 45 min: P1 target 30 min.
        opened(HOUR, "backup-a"),
        resolved(HOUR + 20 * MIN, "backup-a"),
        opened(5 * HOUR, "backup-a"),
        resolved(5 * HOUR + 45 * MIN, "backup-a"),
        // No rule: P3 without a target never breaches.
        opened(HOUR, "cpu"),
        resolved(30 * HOUR, "cpu"),
    ];
    let report = compute("acme", 0, TO, &events, &settings()).expect("report");
    let p1 = &report.priorities[0];
    assert_eq!((p1.incidents, p1.breached), (2, 1));
    assert_eq!(p1.met_pct, Some(50.0));
    assert_eq!(p1.mttr_ms, Some(32.5 * MIN as f64));
    let p3 = &report.priorities[2];
    assert_eq!(
        (p3.priority, p3.incidents, p3.breached),
        (Priority::P3, 1, 0)
    );
    assert_eq!(p3.target_ms, None);
    assert_eq!(p3.met_pct, Some(100.0));
    let p4 = &report.priorities[3];
    assert_eq!((p4.incidents, p4.met_pct, p4.mttr_ms), (0, None, None));
}

#[test]
fn services_are_grouped_by_csf_function_then_agent_and_monitor() {
    let events = [
        ev(HOUR, "web-2", "disk", EventKind::Opened),
        ev(HOUR, "db-1", "disk", EventKind::Opened),
        ev(HOUR, "db-1", "backup-nightly", EventKind::Opened),
        ev(HOUR, "db-1", "cpu", EventKind::Opened),
    ];
    let report = compute("acme", 0, TO, &events, &settings()).expect("report");
    let order: Vec<(&str, &str, &str)> = report
        .services
        .iter()
        .map(|s| (s.category.id(), s.agent.as_str(), s.monitor.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            ("DE.CM", "db-1", "cpu"),
            ("DE.CM", "db-1", "disk"),
            ("DE.CM", "web-2", "disk"),
            ("RC.RP", "db-1", "backup-nightly"),
        ]
    );
}

#[test]
fn events_at_or_after_the_end_are_ignored_and_an_empty_period_is_refused() {
    let events = [opened(TO, "disk"), resolved(TO + HOUR, "disk")];
    let report = compute("acme", 0, TO, &events, &settings()).expect("report");
    assert!(report.services.is_empty(), "{report:?}");
    assert_eq!(
        compute("acme", TO, TO, &[], &settings()),
        Err(ReportError::EmptyPeriod {
            from_ms: TO,
            to_ms: TO
        })
    );
}

#[test]
fn names_parse_back() {
    for c in CsfCategory::ALL {
        assert_eq!(CsfCategory::parse(c.id()), Some(c));
    }
    for p in Priority::ALL {
        assert_eq!(Priority::parse(&p.name().to_lowercase()), Some(p));
    }
    assert_eq!(CsfCategory::parse("XX.YY"), None);
}

/// A day's report with every section: one patch exception of each kind, a drift still open,
/// a baseline version, a covered and an uncovered safeguard, a ticket; names an agent could
/// have sent are hostile.
pub(crate) fn with_sections(agent: &str) -> Report {
    use crate::compliance::{CheckClaim, CheckOutcome, EvidenceKind, Outcome, coverage};
    use crate::posture::{BaselineVersion, PatchScan, PatchState, drift, patch_compliance};
    const DAY: i64 = 24 * HOUR;
    let events = [ev(HOUR, agent, "config-drift", EventKind::Opened)];
    let scan = |security, reboot| {
        Some(PatchScan {
            scanned_ms: 2 * HOUR,
            pending: 4,
            security,
            reboot_required: reboot,
        })
    };
    let patches = patch_compliance(
        &[
            PatchState {
                agent: "ok-1".into(),
                scan: scan(0, false),
            },
            PatchState {
                agent: agent.into(),
                scan: scan(2, false),
            },
            PatchState {
                agent: "reboot-1".into(),
                scan: scan(0, true),
            },
            PatchState {
                agent: "never-1".into(),
                scan: None,
            },
        ],
        0,
        DAY - HOUR,
        "the latest scan each agent reported",
    );
    let baselines = vec![BaselineVersion {
        agent: agent.into(),
        version: 7,
        taken_ms: 3 * HOUR,
        taken_by: "ada".into(),
        reason: "CHG-1042".into(),
    }];
    let claims = [CheckClaim {
        check: "disk-encryption".into(),
        hipaa: ["164.312(a)(2)(iv)".to_string()].into(),
        cmmc: ["SC.L2-3.13.16".to_string()].into(),
        agents: [agent.to_string()].into(),
    }];
    let outcomes = [
        CheckOutcome {
            at_ms: HOUR,
            agent: agent.into(),
            check: "disk-encryption".into(),
            outcome: Outcome::Pass,
        },
        CheckOutcome {
            at_ms: 5 * HOUR,
            agent: agent.into(),
            check: "disk-encryption".into(),
            outcome: Outcome::Fail,
        },
    ];
    compute("acme", 0, DAY, &events, &TenantSettings::default())
        .expect("report")
        .with_tickets(vec![Ticket {
            agent: agent.into(),
            monitor: "config-drift".into(),
            system: "ticket-halo".into(),
            id: "HALO-9".into(),
            status: "open".into(),
            resolve_by: None,
        }])
        .with_patches(patches)
        .with_drift(drift(&events, 0, DAY, Some(baselines)))
        .with_compliance(coverage(&claims, &outcomes, 0, DAY, EvidenceKind::Runs))
}

#[test]
fn the_sections_are_placed_under_their_csf_functions() {
    let report = with_sections("db-1");
    assert!(report.has_content(CsfCategory::Gv), "compliance");
    assert!(report.has_content(CsfCategory::IdAm), "inventory");
    assert!(report.has_content(CsfCategory::PrPs), "patches, drift");
    assert!(report.has_content(CsfCategory::RsMi), "tickets");
    assert!(!report.has_content(CsfCategory::RcRp), "nothing there");
    let bare = compute("acme", 0, TO, &[], &settings()).expect("report");
    assert!(CsfCategory::ALL.into_iter().all(|c| !bare.has_content(c)));
    assert!(
        report
            .summary()
            .contains("patch compliance; baseline drift; and the HIPAA"),
        "{}",
        report.summary()
    );
    assert!(
        bare.summary().starts_with("Uptime, incidents") && !bare.summary().contains("patch"),
        "{}",
        bare.summary()
    );
}
