//! The monitor state machine: check results and remediation outcomes in, actions out, time
//! injected by the caller. Ok → Suspect(k) → (trigger: incident opened) → Remediating →
//! Verifying → Ok, or → Escalated, which ends with the next healthy check.

use super::config::Thresholds;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Where a monitor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum MonitorState {
    Ok,
    /// `failures` consecutive failing checks, fewer than the trigger.
    Suspect {
        failures: u32,
    },
    /// Remediation run `attempt` (1-based) is going.
    Remediating {
        attempt: u32,
    },
    /// Remediation `attempt` succeeded; waiting for the check that confirms it.
    Verifying {
        attempt: u32,
    },
    /// A person has to look; the incident resolves with the next healthy check.
    Escalated,
}

impl MonitorState {
    pub fn name(self) -> &'static str {
        match self {
            MonitorState::Ok => "ok",
            MonitorState::Suspect { .. } => "suspect",
            MonitorState::Remediating { .. } => "remediating",
            MonitorState::Verifying { .. } => "verifying",
            MonitorState::Escalated => "escalated",
        }
    }

    /// The name with what the state carries, for people: `suspect (2 failing check(s))`.
    pub fn describe(self) -> String {
        match self {
            MonitorState::Suspect { failures } => format!("suspect ({failures} failing check(s))"),
            MonitorState::Remediating { attempt } => format!("remediating (attempt {attempt})"),
            MonitorState::Verifying { attempt } => format!("verifying (attempt {attempt})"),
            MonitorState::Ok | MonitorState::Escalated => self.name().to_string(),
        }
    }
}

/// What a check said, as the machine sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Healthy,
    Failing,
    /// `unknown`, or the check could not run: no evidence either way.
    Unknown,
}

/// Why an incident escalated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum EscalationReason {
    /// The monitor has no remediation runbook.
    NoRemediation,
    /// The remediation runbook failed (or could not start) on every attempt.
    RemediationFailed { attempts: u32 },
    /// Remediation reported success but the check still fails, on every attempt.
    VerifyFailed { attempts: u32 },
    /// This is incident number `incidents` within `window_secs`: over the limit.
    Recurring { incidents: u32, window_secs: u64 },
}

impl std::fmt::Display for EscalationReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EscalationReason::NoRemediation => write!(f, "no remediation runbook configured"),
            EscalationReason::RemediationFailed { attempts } => {
                write!(f, "remediation failed after {attempts} attempt(s)")
            }
            EscalationReason::VerifyFailed { attempts } => write!(
                f,
                "the check still fails after {attempts} successful remediation(s)"
            ),
            EscalationReason::Recurring {
                incidents,
                window_secs,
            } => write!(
                f,
                "incident {incidents} within {window_secs} s: the problem keeps coming back"
            ),
        }
    }
}

/// One incident: a failing streak that reached the trigger, until it is resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// `<monitor>-<triggered ms>`.
    pub id: String,
    pub monitor: String,
    /// The first failing check of the streak.
    pub detected_at: DateTime<Utc>,
    /// The check that reached `failures-to-trigger`.
    pub triggered_at: DateTime<Utc>,
    /// The end of the successful remediation run that the verifying check confirmed.
    pub remediated_at: Option<DateTime<Utc>>,
    /// The healthy check that closed it.
    pub resolved_at: Option<DateTime<Utc>>,
    pub escalated: Option<EscalationReason>,
    pub escalated_at: Option<DateTime<Utc>>,
    /// Remediation runs started.
    pub attempts: u32,
    pub last_run_id: Option<String>,
}

impl Incident {
    /// From the first failing check to the trigger.
    pub fn time_to_detect(&self) -> TimeDelta {
        self.triggered_at - self.detected_at
    }
    /// From the trigger to the end of the successful remediation.
    pub fn time_to_remediate(&self) -> Option<TimeDelta> {
        self.remediated_at.map(|r| r - self.triggered_at)
    }
    /// From the first failing check to the healthy check: the "R" of MTTR.
    pub fn time_to_resolve(&self) -> Option<TimeDelta> {
        self.resolved_at.map(|r| r - self.detected_at)
    }
}

/// What the caller must do or report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    StateChanged {
        from: MonitorState,
        to: MonitorState,
    },
    IncidentOpened(Incident),
    /// Start remediation run `attempt` for the open incident.
    RunRemediation {
        attempt: u32,
    },
    /// Run the check again to verify (after the remediation's verify delay).
    Recheck,
    Escalate {
        reason: EscalationReason,
    },
    /// The escalated incident's check is still failing: every `failures-to-trigger` failing
    /// checks after the escalation (what would have opened a new incident), `failures` in all.
    StillFailing {
        failures: u32,
    },
    Resolved(Incident),
}

/// One monitor's machine.
#[derive(Debug, Clone)]
pub struct Machine {
    monitor: String,
    t: Thresholds,
    state: MonitorState,
    streak_started: Option<DateTime<Utc>>,
    incident: Option<Incident>,
    /// Trigger times of recent incidents, for the recurrence limit.
    recent: VecDeque<DateTime<Utc>>,
    /// Failing checks since the incident escalated.
    failing_while_escalated: u32,
}

impl Machine {
    /// `recent_triggers`: when earlier incidents of this monitor triggered (from the store);
    /// `open`: an incident a previous process left open, which is re-verified by the next check
    /// (or stays escalated until a healthy one).
    pub fn new(
        monitor: &str,
        t: Thresholds,
        recent_triggers: Vec<DateTime<Utc>>,
        open: Option<Incident>,
    ) -> Machine {
        let state = match &open {
            Some(i) if i.escalated.is_some() => MonitorState::Escalated,
            Some(i) => MonitorState::Verifying {
                attempt: i.attempts.max(1),
            },
            None => MonitorState::Ok,
        };
        let mut recent: Vec<_> = recent_triggers;
        recent.sort();
        Machine {
            monitor: monitor.to_string(),
            t,
            state,
            streak_started: open.as_ref().map(|i| i.detected_at),
            incident: open,
            recent: recent.into(),
            failing_while_escalated: 0,
        }
    }

    pub fn state(&self) -> MonitorState {
        self.state
    }

    pub fn incident(&self) -> Option<&Incident> {
        self.incident.as_ref()
    }

    fn set(&mut self, to: MonitorState, out: &mut Vec<Action>) {
        if self.state != to {
            out.push(Action::StateChanged {
                from: self.state,
                to,
            });
            self.state = to;
        }
    }

    fn escalate(&mut self, now: DateTime<Utc>, reason: EscalationReason, out: &mut Vec<Action>) {
        if let Some(i) = &mut self.incident {
            i.escalated = Some(reason.clone());
            i.escalated_at = Some(now);
        }
        self.failing_while_escalated = 0;
        self.set(MonitorState::Escalated, out);
        out.push(Action::Escalate { reason });
    }

    fn resolve(&mut self, now: DateTime<Utc>, out: &mut Vec<Action>) {
        self.set(MonitorState::Ok, out);
        self.streak_started = None;
        if let Some(mut i) = self.incident.take() {
            i.resolved_at = Some(now);
            out.push(Action::Resolved(i));
        }
    }

    fn start_remediation(&mut self, attempt: u32, out: &mut Vec<Action>) {
        if let Some(i) = &mut self.incident {
            i.attempts = attempt;
        }
        self.set(MonitorState::Remediating { attempt }, out);
        out.push(Action::RunRemediation { attempt });
    }

    /// Remediation failed (or did not verify): try again or give up.
    fn retry_or_escalate(
        &mut self,
        now: DateTime<Utc>,
        attempt: u32,
        reason: EscalationReason,
        out: &mut Vec<Action>,
    ) {
        if attempt < self.t.max_attempts {
            self.start_remediation(attempt + 1, out);
        } else {
            self.escalate(now, reason, out);
        }
    }

    fn trigger(&mut self, now: DateTime<Utc>, out: &mut Vec<Action>) {
        let detected_at = self.streak_started.unwrap_or(now);
        let incident = Incident {
            id: format!("{}-{}", self.monitor, now.timestamp_millis()),
            monitor: self.monitor.clone(),
            detected_at,
            triggered_at: now,
            remediated_at: None,
            resolved_at: None,
            escalated: None,
            escalated_at: None,
            attempts: 0,
            last_run_id: None,
        };
        self.incident = Some(incident.clone());
        out.push(Action::IncidentOpened(incident));
        let window = TimeDelta::from_std(self.t.window).unwrap_or(TimeDelta::MAX);
        while self.recent.front().is_some_and(|t| *t <= now - window) {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        let count = u32::try_from(self.recent.len()).unwrap_or(u32::MAX);
        if count > self.t.max_incidents {
            let reason = EscalationReason::Recurring {
                incidents: count,
                window_secs: self.t.window.as_secs(),
            };
            self.escalate(now, reason, out);
        } else if !self.t.has_remediation {
            self.escalate(now, EscalationReason::NoRemediation, out);
        } else {
            self.start_remediation(1, out);
        }
    }

    /// A check finished at `now`.
    pub fn on_check(&mut self, now: DateTime<Utc>, verdict: Verdict) -> Vec<Action> {
        let mut out = Vec::new();
        match (self.state, verdict) {
            (MonitorState::Ok | MonitorState::Suspect { .. }, Verdict::Unknown) => {}
            (MonitorState::Ok, Verdict::Healthy) => {}
            (MonitorState::Suspect { .. }, Verdict::Healthy) => {
                // One good check ends a streak: no flapping into an incident.
                self.streak_started = None;
                self.set(MonitorState::Ok, &mut out);
            }
            (MonitorState::Ok, Verdict::Failing) => {
                self.streak_started = Some(now);
                if self.t.failures_to_trigger <= 1 {
                    self.trigger(now, &mut out);
                } else {
                    self.set(MonitorState::Suspect { failures: 1 }, &mut out);
                }
            }
            (MonitorState::Suspect { failures }, Verdict::Failing) => {
                let failures = failures + 1;
                if failures >= self.t.failures_to_trigger {
                    self.trigger(now, &mut out);
                } else {
                    self.set(MonitorState::Suspect { failures }, &mut out);
                }
            }
            // Checks are not run while remediating; a stray result changes nothing.
            (MonitorState::Remediating { .. }, _) => {}
            (MonitorState::Verifying { .. }, Verdict::Healthy) => self.resolve(now, &mut out),
            (MonitorState::Verifying { attempt }, Verdict::Failing | Verdict::Unknown) => {
                // Not remediated after all: time to remediate counts to a fix that held.
                if let Some(i) = &mut self.incident {
                    i.remediated_at = None;
                }
                let reason = EscalationReason::VerifyFailed { attempts: attempt };
                self.retry_or_escalate(now, attempt, reason, &mut out);
            }
            (MonitorState::Escalated, Verdict::Healthy) => self.resolve(now, &mut out),
            (MonitorState::Escalated, Verdict::Failing) => {
                self.failing_while_escalated = self.failing_while_escalated.saturating_add(1);
                if self
                    .failing_while_escalated
                    .is_multiple_of(self.t.failures_to_trigger.max(1))
                {
                    out.push(Action::StillFailing {
                        failures: self.failing_while_escalated,
                    });
                }
            }
            (MonitorState::Escalated, Verdict::Unknown) => {}
        }
        out
    }

    /// The remediation run ended at `now`; `succeeded` is false for a failed run or one that
    /// could not start.
    pub fn on_remediation(
        &mut self,
        now: DateTime<Utc>,
        succeeded: bool,
        run_id: Option<String>,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        let MonitorState::Remediating { attempt } = self.state else {
            return out;
        };
        if let Some(i) = &mut self.incident {
            if run_id.is_some() {
                i.last_run_id = run_id;
            }
            if succeeded {
                i.remediated_at = Some(now);
            }
        }
        if !succeeded {
            let reason = EscalationReason::RemediationFailed { attempts: attempt };
            self.retry_or_escalate(now, attempt, reason, &mut out);
        } else if self.t.verify {
            self.set(MonitorState::Verifying { attempt }, &mut out);
            out.push(Action::Recheck);
        } else {
            self.resolve(now, &mut out);
        }
        out
    }
}
