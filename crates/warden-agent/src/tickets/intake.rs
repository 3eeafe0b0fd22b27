//! Which automation events become which ticket calls: a pure mapping from one
//! [`AutomationEvent`] and the `[tickets]` policy to the call to queue, if any. The store then
//! decides whether it is admitted (one `open` per incident; no note without a ticket).
//!
//! | event | `open-on = escalation` | `open-on = incident` |
//! |---|---|---|
//! | `incident-opened` | — | open |
//! | `remediation-finished`, failed | note (queued only once a ticket was asked for) | note |
//! | `escalated` | open | note |
//! | `incident-still-failing` (recurrence) | note | note |
//! | `incident-resolved` | close, or note with `on-resolve = note` | same |

use super::config::{OnResolve, OpenOn};
use super::store::{Call, Op};
use warden_automation::AutomationEvent;
use warden_automation::monitor::Incident;

/// What the mapping needs to know of the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub open_on: OpenOn,
    pub on_resolve: OnResolve,
}

fn call(monitor: &str, incident: &str, op: Op, summary: String, text: String) -> Call {
    Call {
        monitor: monitor.to_string(),
        incident: incident.to_string(),
        op,
        summary,
        text,
    }
}

fn title(host: &str, monitor: &str, what: &str) -> String {
    format!("[{host}] {monitor}: {what}")
}

/// `text` followed by the failing check's summary on a line of its own, when there is one.
fn with_check(mut text: String, check: &str) -> String {
    let check = check.trim();
    if !check.is_empty() {
        text.push_str("\nLast check: ");
        text.push_str(check);
    }
    text
}

fn opened_text(i: &Incident, check: &str) -> String {
    with_check(
        format!(
            "Monitor `{}` opened incident {} at {} (first failing check at {}).",
            i.monitor,
            i.id,
            i.triggered_at.to_rfc3339(),
            i.detected_at.to_rfc3339()
        ),
        check,
    )
}

/// The call `ev` asks for under `policy`, on the agent `host`.
pub fn call_for(ev: &AutomationEvent, policy: Policy, host: &str) -> Option<Call> {
    match ev {
        AutomationEvent::IncidentOpened { incident, check } => (policy.open_on == OpenOn::Incident)
            .then(|| {
                call(
                    &incident.monitor,
                    &incident.id,
                    Op::Open,
                    title(host, &incident.monitor, "incident opened"),
                    opened_text(incident, check),
                )
            }),
        AutomationEvent::RemediationFinished {
            monitor,
            incident,
            attempt,
            run_id,
            succeeded: false,
            error,
        } => {
            let mut text = format!("Remediation attempt {attempt} failed");
            if let Some(run) = run_id {
                text.push_str(&format!(" (run {run})"));
            }
            if let Some(e) = error {
                text.push_str(&format!(": {e}"));
            }
            text.push('.');
            Some(call(monitor, incident, Op::Note, String::new(), text))
        }
        AutomationEvent::Escalated {
            monitor,
            incident,
            reason,
            check,
        } => {
            let text = with_check(format!("Escalated: {reason}."), check);
            Some(match policy.open_on {
                OpenOn::Escalation => call(
                    monitor,
                    incident,
                    Op::Open,
                    title(host, monitor, &reason.to_string()),
                    with_check(
                        format!(
                            "Monitor `{monitor}` on {host} escalated incident {incident}: \
                             {reason}. Warden will note what happens next on this ticket and \
                             close it when the check is healthy again."
                        ),
                        check,
                    ),
                ),
                OpenOn::Incident => call(monitor, incident, Op::Note, String::new(), text),
            })
        }
        AutomationEvent::IncidentStillFailing {
            monitor,
            incident,
            failures,
        } => Some(call(
            monitor,
            incident,
            Op::Note,
            String::new(),
            format!("Still failing: {failures} failing check(s) since the escalation."),
        )),
        AutomationEvent::IncidentResolved {
            incident,
            time_to_resolve_ms,
            ..
        } => {
            let after = time_to_resolve_ms
                .map(|ms| format!(" after {}", humanise(ms)))
                .unwrap_or_default();
            let text = format!("Resolved: the check is healthy again{after}.");
            let op = match policy.on_resolve {
                OnResolve::Close => Op::Close,
                OnResolve::Note => Op::Note,
            };
            Some(call(
                &incident.monitor,
                &incident.id,
                op,
                String::new(),
                text,
            ))
        }
        _ => None,
    }
}

/// `3h 05m`, `4m 10s`, `12s`.
fn humanise(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        s if s >= 3600 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{}m {:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_automation::monitor::EscalationReason;

    const ESCALATION: Policy = Policy {
        open_on: OpenOn::Escalation,
        on_resolve: OnResolve::Close,
    };

    fn incident() -> Incident {
        let t = chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("time");
        Incident {
            id: "disk-1".into(),
            monitor: "disk".into(),
            detected_at: t,
            triggered_at: t,
            remediated_at: None,
            resolved_at: Some(t + chrono::TimeDelta::seconds(250)),
            escalated: None,
            escalated_at: None,
            attempts: 1,
            last_run_id: None,
        }
    }

    #[test]
    fn escalation_opens_resolve_closes_and_opening_waits_for_the_policy() {
        let escalated = AutomationEvent::Escalated {
            monitor: "disk".into(),
            incident: "disk-1".into(),
            reason: EscalationReason::RemediationFailed { attempts: 2 },
            check: "/ 92% used (critical at 90%)".into(),
        };
        let open = call_for(&escalated, ESCALATION, "web-1").expect("a call");
        assert_eq!(open.op, Op::Open);
        assert_eq!(
            open.summary,
            "[web-1] disk: remediation failed after 2 attempt(s)"
        );
        assert!(
            open.text
                .ends_with("healthy again.\nLast check: / 92% used (critical at 90%)"),
            "{}",
            open.text
        );
        let opened = AutomationEvent::IncidentOpened {
            incident: incident(),
            check: "92% used".into(),
        };
        assert_eq!(call_for(&opened, ESCALATION, "web-1"), None);
        let early = Policy {
            open_on: OpenOn::Incident,
            on_resolve: OnResolve::Note,
        };
        assert_eq!(call_for(&opened, early, "h").map(|c| c.op), Some(Op::Open));
        assert_eq!(
            call_for(&escalated, early, "h").map(|c| c.op),
            Some(Op::Note)
        );
        let resolved = AutomationEvent::resolved(incident());
        let close = call_for(&resolved, ESCALATION, "h").expect("close");
        assert_eq!(close.op, Op::Close);
        assert_eq!(
            close.text,
            "Resolved: the check is healthy again after 4m 10s."
        );
        assert_eq!(
            call_for(&resolved, early, "h").map(|c| c.op),
            Some(Op::Note)
        );
    }

    #[test]
    fn only_failed_remediations_and_recurrences_become_notes() {
        let finished = |succeeded| AutomationEvent::RemediationFinished {
            monitor: "disk".into(),
            incident: "disk-1".into(),
            attempt: 2,
            run_id: Some("r-9".into()),
            succeeded,
            error: None,
        };
        assert_eq!(call_for(&finished(true), ESCALATION, "h"), None);
        let note = call_for(&finished(false), ESCALATION, "h").expect("note");
        assert_eq!(note.text, "Remediation attempt 2 failed (run r-9).");
        let again = AutomationEvent::IncidentStillFailing {
            monitor: "disk".into(),
            incident: "disk-1".into(),
            failures: 6,
        };
        assert_eq!(
            call_for(&again, ESCALATION, "h").map(|c| c.op),
            Some(Op::Note)
        );
    }

    #[test]
    fn a_drift_incident_opens_a_ticket_that_names_what_drifted_and_an_empty_check_adds_nothing() {
        let t = chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("time");
        let incident = Incident {
            id: "config-drift-1".into(),
            monitor: "config-drift".into(),
            detected_at: t,
            triggered_at: t,
            remediated_at: None,
            resolved_at: None,
            escalated: None,
            escalated_at: None,
            attempts: 0,
            last_run_id: None,
        };
        let policy = Policy {
            open_on: OpenOn::Incident,
            on_resolve: OnResolve::Close,
        };
        let drift = "drift since baseline 3: added listening-port tcp/0.0.0.0:8099; removed package approved-tool 1.0";
        let opened = AutomationEvent::IncidentOpened {
            incident: incident.clone(),
            check: drift.into(),
        };
        let open = call_for(&opened, policy, "web-1").expect("open");
        assert_eq!(open.op, Op::Open);
        assert_eq!(
            open.text.lines().nth(1),
            Some(format!("Last check: {drift}").as_str())
        );
        let quiet = AutomationEvent::IncidentOpened {
            incident,
            check: "  ".into(),
        };
        let open = call_for(&quiet, policy, "web-1").expect("open");
        assert_eq!(open.text.lines().count(), 1, "{}", open.text);
    }
}
