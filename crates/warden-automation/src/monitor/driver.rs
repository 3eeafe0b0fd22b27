//! The async driver of one monitor: runs its check on tokio's monotonic interval, feeds the
//! [`Machine`], carries out its actions (remediation runs, verifying re-checks, escalations)
//! through the [`Executor`], and persists the incident after every step.

use super::config::Monitor;
use super::state::{Action, Machine, Verdict};
use crate::executor::guarded;
use crate::store::AutomationStore as _;
use crate::{AutomationEvent, CheckLaunch, Deps, Executor, LaunchOrigin, RunbookLaunch, stopped};
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::time::Instant;
use warden_history::HistoryError;

pub struct MonitorDriver {
    monitor: Monitor,
    machine: Machine,
    /// The summary of the latest check that produced one, for the incident it opens.
    last_summary: String,
    executor: Arc<dyn Executor>,
    deps: Deps,
}

/// Shutdown was signalled while waiting.
struct Stop;

impl MonitorDriver {
    /// Loads the monitor's recent incidents (recurrence limit) and any incident left open.
    pub fn new(
        monitor: Monitor,
        executor: Arc<dyn Executor>,
        deps: Deps,
    ) -> Result<MonitorDriver, HistoryError> {
        let window = chrono::TimeDelta::from_std(monitor.thresholds.window)
            .unwrap_or(chrono::TimeDelta::MAX);
        let since = deps
            .clock
            .now()
            .checked_sub_signed(window)
            .unwrap_or_default();
        let recent = deps.history.incident_triggers_since(&monitor.name, since)?;
        let open = deps.history.open_incident(&monitor.name)?;
        let machine = Machine::new(&monitor.name, monitor.thresholds.clone(), recent, open);
        Ok(MonitorDriver {
            monitor,
            machine,
            last_summary: String::new(),
            executor,
            deps,
        })
    }

    fn emit(&self, ev: AutomationEvent) -> bool {
        self.deps.emit(self.executor.as_ref(), ev)
    }

    fn save_incident(&self, i: &super::Incident) {
        if let Err(e) = self.deps.history.save_incident(i) {
            tracing::error!(monitor = %self.monitor.name, error = %e, "cannot save the incident");
        }
    }

    async fn check(&mut self, shutdown: &mut watch::Receiver<bool>) -> Result<Verdict, Stop> {
        let fut = self.executor.run_check(CheckLaunch {
            monitor: self.monitor.name.clone(),
            plugin: self.monitor.plugin.clone(),
            config: self.monitor.config.clone(),
        });
        let result = tokio::select! {
            r = guarded(fut) => r,
            _ = stopped(shutdown) => return Err(Stop),
        };
        Ok(match result {
            Ok(outcome) => {
                self.last_summary = outcome.summary;
                match self.monitor.fail_on.failing(outcome.status) {
                    Some(true) => Verdict::Failing,
                    Some(false) => Verdict::Healthy,
                    None => Verdict::Unknown,
                }
            }
            Err(e) => {
                self.emit(AutomationEvent::MonitorCheckFailed {
                    monitor: self.monitor.name.clone(),
                    error: e.0,
                });
                Verdict::Unknown
            }
        })
    }

    /// Run one remediation attempt; returns the machine's next actions.
    async fn remediate(
        &mut self,
        attempt: u32,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Vec<Action>, Stop> {
        let incident = self
            .machine
            .incident()
            .map(|i| i.id.clone())
            .unwrap_or_default();
        let name = self.monitor.name.clone();
        let Some(rem) = self.monitor.remediation.clone() else {
            return Ok(self
                .machine
                .on_remediation(self.deps.clock.now(), false, None));
        };
        let audited = self.emit(AutomationEvent::RemediationStarted {
            monitor: name.clone(),
            incident: incident.clone(),
            attempt,
        });
        let result = if audited {
            let fut = self.executor.run_runbook(RunbookLaunch {
                origin: LaunchOrigin::Monitor {
                    name: name.clone(),
                    incident: incident.clone(),
                    attempt,
                },
                runbook: rem.runbook,
                params: rem.params,
                dry_run: false,
            });
            tokio::select! {
                r = guarded(fut) => r,
                _ = stopped(shutdown) => return Err(Stop),
            }
        } else {
            Err(crate::LaunchError(
                "the audit log cannot be written; remediation not started".into(),
            ))
        };
        let (succeeded, run_id, error) = match result {
            Ok(o) => (o.status.succeeded(), Some(o.run_id), None),
            Err(e) => (false, None, Some(e.0)),
        };
        self.emit(AutomationEvent::RemediationFinished {
            monitor: name,
            incident,
            attempt,
            run_id: run_id.clone(),
            succeeded,
            error,
        });
        Ok(self
            .machine
            .on_remediation(self.deps.clock.now(), succeeded, run_id))
    }

    /// Carry out `actions` and everything they lead to.
    async fn process(
        &mut self,
        actions: Vec<Action>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), Stop> {
        let mut queue: VecDeque<Action> = actions.into();
        while let Some(action) = queue.pop_front() {
            let name = self.monitor.name.clone();
            let mut next = Vec::new();
            match action {
                Action::StateChanged { from, to } => {
                    self.emit(AutomationEvent::MonitorStateChanged {
                        monitor: name,
                        from,
                        to,
                    });
                }
                Action::IncidentOpened(incident) => {
                    self.save_incident(&incident);
                    self.emit(AutomationEvent::IncidentOpened {
                        incident,
                        check: self.last_summary.clone(),
                    });
                }
                Action::RunRemediation { attempt } => {
                    if let Some(i) = self.machine.incident() {
                        self.save_incident(i);
                    }
                    next = self.remediate(attempt, shutdown).await?;
                }
                Action::Recheck => {
                    let delay = self
                        .monitor
                        .remediation
                        .as_ref()
                        .map(|r| r.verify_delay)
                        .unwrap_or_default();
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stopped(shutdown) => return Err(Stop),
                    }
                    let verdict = self.check(shutdown).await?;
                    next = self.machine.on_check(self.deps.clock.now(), verdict);
                }
                Action::Escalate { reason } => {
                    let incident = self.machine.incident().cloned();
                    if let Some(i) = &incident {
                        self.save_incident(i);
                    }
                    self.emit(AutomationEvent::Escalated {
                        monitor: name,
                        incident: incident.map(|i| i.id).unwrap_or_default(),
                        reason,
                        check: self.last_summary.clone(),
                    });
                }
                Action::StillFailing { failures } => {
                    self.emit(AutomationEvent::IncidentStillFailing {
                        monitor: name,
                        incident: self
                            .machine
                            .incident()
                            .map(|i| i.id.clone())
                            .unwrap_or_default(),
                        failures,
                    });
                }
                Action::Resolved(incident) => {
                    self.save_incident(&incident);
                    self.emit(AutomationEvent::resolved(incident));
                }
            }
            if let Some(i) = self.machine.incident() {
                self.save_incident(i);
            }
            queue.extend(next);
        }
        Ok(())
    }

    /// Check now, then every `interval` (measured from the end of the previous round, on the
    /// monotonic clock), until `shutdown` turns true.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut next = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = stopped(&mut shutdown) => break,
            }
            let Ok(verdict) = self.check(&mut shutdown).await else {
                break;
            };
            let actions = self.machine.on_check(self.deps.clock.now(), verdict);
            if self.process(actions, &mut shutdown).await.is_err() {
                break;
            }
            next = Instant::now() + self.monitor.interval;
        }
    }
}
