//! The monitor state machine and the incident figures, with hand-set times.

use super::config::Thresholds;
use super::state::*;
use crate::store::AutomationStore as _;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use std::time::Duration;
use warden_history::History;

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0)
        .single()
        .expect("valid")
        + TimeDelta::seconds(secs)
}

fn thresholds() -> Thresholds {
    Thresholds {
        failures_to_trigger: 3,
        has_remediation: true,
        verify: true,
        max_attempts: 2,
        max_incidents: 3,
        window: Duration::from_secs(3600),
    }
}

fn machine(th: Thresholds) -> Machine {
    Machine::new("disk", th, vec![], None)
}

fn opened(actions: &[Action]) -> bool {
    actions
        .iter()
        .any(|a| matches!(a, Action::IncidentOpened(_)))
}

fn has(actions: &[Action], want: &Action) -> bool {
    actions.contains(want)
}

/// Three failing checks a minute apart open an incident at the third.
fn trigger(m: &mut Machine, start: i64) -> Vec<Action> {
    assert!(!opened(&m.on_check(t(start), Verdict::Failing)));
    assert!(!opened(&m.on_check(t(start + 60), Verdict::Failing)));
    m.on_check(t(start + 120), Verdict::Failing)
}

#[test]
fn n_consecutive_failures_trigger_remediation() {
    let mut m = machine(thresholds());
    assert_eq!(m.on_check(t(0), Verdict::Healthy), vec![]);
    m.on_check(t(60), Verdict::Failing);
    assert_eq!(m.state(), MonitorState::Suspect { failures: 1 });
    m.on_check(t(120), Verdict::Failing);
    assert_eq!(m.state(), MonitorState::Suspect { failures: 2 });
    assert!(m.incident().is_none());
    let a = m.on_check(t(180), Verdict::Failing);
    assert!(opened(&a));
    assert!(has(&a, &Action::RunRemediation { attempt: 1 }));
    assert_eq!(m.state(), MonitorState::Remediating { attempt: 1 });
    let i = m.incident().expect("incident");
    assert_eq!(
        i.detected_at,
        t(60),
        "the first failing check of the streak"
    );
    assert_eq!(i.triggered_at, t(180));
    assert_eq!(i.time_to_detect(), TimeDelta::seconds(120));
}

#[test]
fn flapping_never_opens_an_incident() {
    let mut m = machine(thresholds());
    for round in 0..20 {
        let base = round * 180;
        assert!(!opened(&m.on_check(t(base), Verdict::Failing)));
        assert!(!opened(&m.on_check(t(base + 60), Verdict::Failing)));
        m.on_check(t(base + 120), Verdict::Healthy);
        assert_eq!(m.state(), MonitorState::Ok, "one success resets the streak");
    }
    assert!(m.incident().is_none());
}

#[test]
fn unknown_results_neither_advance_nor_reset_a_streak() {
    let mut m = machine(thresholds());
    m.on_check(t(0), Verdict::Failing);
    m.on_check(t(60), Verdict::Failing);
    assert_eq!(m.on_check(t(120), Verdict::Unknown), vec![]);
    assert_eq!(m.state(), MonitorState::Suspect { failures: 2 });
    assert!(opened(&m.on_check(t(180), Verdict::Failing)));
    assert_eq!(m.incident().map(|i| i.detected_at), Some(t(0)));
}

#[test]
fn remediation_then_verified_resolves_with_its_figures() {
    let mut m = machine(thresholds());
    trigger(&mut m, 0); // detected 0, triggered 120
    let a = m.on_remediation(t(150), true, Some("run-1".into()));
    assert!(has(&a, &Action::Recheck));
    assert_eq!(m.state(), MonitorState::Verifying { attempt: 1 });
    let a = m.on_check(t(165), Verdict::Healthy);
    let Some(Action::Resolved(i)) = a.iter().find(|a| matches!(a, Action::Resolved(_))) else {
        panic!("not resolved: {a:?}");
    };
    assert_eq!(m.state(), MonitorState::Ok);
    assert_eq!(i.time_to_detect(), TimeDelta::seconds(120));
    assert_eq!(i.time_to_remediate(), Some(TimeDelta::seconds(30)));
    assert_eq!(i.time_to_resolve(), Some(TimeDelta::seconds(165)));
    assert_eq!(i.last_run_id.as_deref(), Some("run-1"));
    assert_eq!(i.attempts, 1);
    assert!(i.escalated.is_none());
    assert!(m.incident().is_none());
}

#[test]
fn failing_remediation_is_retried_then_escalated() {
    let mut m = machine(thresholds());
    trigger(&mut m, 0);
    let a = m.on_remediation(t(150), false, Some("run-1".into()));
    assert!(has(&a, &Action::RunRemediation { attempt: 2 }));
    let a = m.on_remediation(t(200), false, Some("run-2".into()));
    assert!(has(
        &a,
        &Action::Escalate {
            reason: EscalationReason::RemediationFailed { attempts: 2 }
        }
    ));
    assert_eq!(m.state(), MonitorState::Escalated);
    // Still failing: nothing more is attempted.
    assert_eq!(m.on_check(t(260), Verdict::Failing), vec![]);
    // Someone fixed it by hand: the escalated incident resolves.
    let a = m.on_check(t(600), Verdict::Healthy);
    let Some(Action::Resolved(i)) = a.iter().find(|a| matches!(a, Action::Resolved(_))) else {
        panic!("not resolved: {a:?}");
    };
    assert!(i.escalated.is_some());
    assert_eq!(i.remediated_at, None);
    assert_eq!(i.time_to_resolve(), Some(TimeDelta::seconds(600)));
}

#[test]
fn a_fix_that_does_not_verify_is_retried_then_escalated() {
    let mut m = machine(thresholds());
    trigger(&mut m, 0);
    m.on_remediation(t(150), true, None);
    let a = m.on_check(t(160), Verdict::Failing);
    assert!(has(&a, &Action::RunRemediation { attempt: 2 }));
    assert_eq!(m.incident().and_then(|i| i.remediated_at), None);
    m.on_remediation(t(190), true, None);
    let a = m.on_check(t(200), Verdict::Failing);
    assert!(has(
        &a,
        &Action::Escalate {
            reason: EscalationReason::VerifyFailed { attempts: 2 }
        }
    ));
}

#[test]
fn recurring_incidents_escalate_without_remediation() {
    let mut m = machine(Thresholds {
        max_incidents: 2,
        ..thresholds()
    });
    for k in 0..2 {
        let start = k * 600;
        let a = trigger(&mut m, start);
        assert!(
            has(&a, &Action::RunRemediation { attempt: 1 }),
            "incident {k}"
        );
        m.on_remediation(t(start + 150), true, None);
        m.on_check(t(start + 160), Verdict::Healthy);
    }
    let a = trigger(&mut m, 1200);
    assert!(!a.iter().any(|a| matches!(a, Action::RunRemediation { .. })));
    assert!(has(
        &a,
        &Action::Escalate {
            reason: EscalationReason::Recurring {
                incidents: 3,
                window_secs: 3600
            }
        }
    ));
    m.on_check(t(1500), Verdict::Healthy);
    // Past the window, the count starts over.
    let a = trigger(&mut m, 1200 + 3600);
    assert!(has(&a, &Action::RunRemediation { attempt: 1 }));
}

#[test]
fn without_a_remediation_an_incident_escalates_at_once() {
    let mut m = machine(Thresholds {
        has_remediation: false,
        failures_to_trigger: 1,
        ..thresholds()
    });
    let a = m.on_check(t(0), Verdict::Failing);
    assert!(opened(&a));
    assert!(has(
        &a,
        &Action::Escalate {
            reason: EscalationReason::NoRemediation
        }
    ));
}

#[test]
fn an_incident_left_open_by_a_restart_is_reverified() {
    let mut m = machine(thresholds());
    trigger(&mut m, 0);
    let open = m.incident().cloned().expect("open");
    let mut after = Machine::new("disk", thresholds(), vec![open.triggered_at], Some(open));
    assert_eq!(after.state(), MonitorState::Verifying { attempt: 1 });
    let a = after.on_check(t(400), Verdict::Healthy);
    assert!(
        a.iter()
            .any(|a| matches!(a, Action::Resolved(i) if i.resolved_at == Some(t(400))))
    );
}

#[test]
fn sla_figures_come_from_the_stored_incidents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let history = History::open(dir.path()).expect("history");
    let incident = |id: &str,
                    monitor: &str,
                    d: i64,
                    tr: i64,
                    rem: Option<i64>,
                    res: Option<i64>,
                    esc: bool| Incident {
        id: id.into(),
        monitor: monitor.into(),
        detected_at: t(d),
        triggered_at: t(tr),
        remediated_at: rem.map(t),
        resolved_at: res.map(t),
        escalated: esc.then_some(EscalationReason::RemediationFailed { attempts: 2 }),
        escalated_at: esc.then(|| t(tr + 100)),
        attempts: 1,
        last_run_id: None,
    };
    // disk: TTD 120 and 60 (mean 90); TTR 30 only for the first; MTTR 180 and 600 (mean 390).
    history
        .save_incident(&incident("a", "disk", 0, 120, Some(150), Some(180), false))
        .expect("save");
    history
        .save_incident(&incident("b", "disk", 1000, 1060, None, Some(1600), true))
        .expect("save");
    // disk: open, counts as incident and open, no MTTR.
    history
        .save_incident(&incident("c", "disk", 5000, 5180, None, None, false))
        .expect("save");
    // web: outside the period.
    history
        .save_incident(&incident("d", "web", 90_000, 90_060, None, None, false))
        .expect("save");
    // Updating keeps one row.
    history
        .save_incident(&incident("a", "disk", 0, 120, Some(150), Some(180), false))
        .expect("save");

    let rows = history.sla_report(t(0), t(10_000), None).expect("report");
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(
        (
            r.monitor.as_str(),
            r.incidents,
            r.resolved,
            r.escalated,
            r.open
        ),
        ("disk", 3, 2, 1, 1)
    );
    assert_eq!(
        r.mean_time_to_detect_ms,
        Some(((120_000 + 60_000 + 180_000) / 3) as f64)
    );
    assert_eq!(r.mean_time_to_remediate_ms, Some(30_000.0));
    assert_eq!(r.mttr_ms, Some(390_000.0));

    let web = history
        .sla_report(t(0), t(100_000), Some("web"))
        .expect("report");
    assert_eq!(web.len(), 1);
    assert_eq!(web[0].incidents, 1);
    assert_eq!(web[0].mttr_ms, None);

    let open = history
        .open_incident("disk")
        .expect("query")
        .expect("open incident");
    assert_eq!(open.id, "c");
    let back = history
        .incidents(t(0), t(10_000), Some("disk"))
        .expect("list");
    assert_eq!(
        back.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        vec!["c", "b", "a"]
    );
    assert_eq!(
        back[1].escalated,
        Some(EscalationReason::RemediationFailed { attempts: 2 })
    );
}

#[test]
fn an_escalated_incident_still_failing_reports_it_every_failures_to_trigger_checks() {
    let mut m = machine(Thresholds {
        has_remediation: false,
        ..thresholds()
    });
    let escalated = trigger(&mut m, 0);
    assert!(
        escalated
            .iter()
            .any(|a| matches!(a, Action::Escalate { .. }))
    );
    let still: Vec<Vec<Action>> = (1..=6)
        .map(|i| m.on_check(t(120 + 60 * i), Verdict::Failing))
        .collect();
    let reported: Vec<u32> = still
        .iter()
        .flatten()
        .filter_map(|a| match a {
            Action::StillFailing { failures } => Some(*failures),
            _ => None,
        })
        .collect();
    assert_eq!(reported, [3, 6]);
    assert!(
        m.on_check(t(600), Verdict::Unknown).is_empty(),
        "unknown is not a failure"
    );
    assert!(
        m.on_check(t(660), Verdict::Healthy)
            .iter()
            .any(|a| matches!(a, Action::Resolved(_)))
    );
}

#[test]
fn a_monitor_names_a_builtin_check_whose_config_is_checked_up_front() {
    let compile = |text: &str| {
        toml::from_str::<super::MonitorConfig>(text)
            .expect("toml")
            .compile(std::path::Path::new("/etc/warden"))
    };
    let drift = compile(
        "name = \"drift\"\nplugin = \"builtin:drift\"\nconfig = { plugin = \"inventory\" }",
    )
    .expect("compiles");
    assert_eq!(drift.plugin, "builtin:drift");
    let err = compile(
        "name = \"drift\"\nplugin = \"builtin:drift\"\nconfig = { plugins = \"inventory\" }",
    )
    .expect_err("a typo in its config");
    assert!(err.to_string().contains("plugins"), "{err}");
    let err = compile("name = \"drift\"\nplugin = \"builtin:nope\"").expect_err("no such check");
    assert!(err.to_string().contains("not a built-in check"), "{err}");
}
