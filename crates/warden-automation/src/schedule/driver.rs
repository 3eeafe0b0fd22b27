//! The async schedule driver: sleeps on tokio's monotonic timer, reads the wall clock, asks the
//! [`Scheduler`] what is due, persists the consumed slots and launches runs through the
//! [`Executor`]; run completions come back on a channel so overlap is tracked.

use super::config::{MaintenanceWindow, Schedule};
use super::scheduler::{Decision, Scheduler};
use crate::executor::guarded;
use crate::store::AutomationStore as _;
use crate::{
    AutomationEvent, Deps, Executor, LaunchError, LaunchOrigin, RunOutcome, RunbookLaunch, stopped,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use warden_history::HistoryError;

/// The longest sleep between two looks at the wall clock.
pub const MAX_SLEEP: Duration = Duration::from_secs(30);
/// The shortest, so a clock misbehaving cannot make the loop spin.
const MIN_SLEEP: Duration = Duration::from_millis(10);

type Done = (String, Result<RunOutcome, LaunchError>);

pub struct ScheduleDriver {
    scheduler: Scheduler,
    executor: Arc<dyn Executor>,
    deps: Deps,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: mpsc::UnboundedReceiver<Done>,
}

impl ScheduleDriver {
    /// Loads the persisted state of every schedule.
    pub fn new(
        schedules: Vec<Schedule>,
        windows: Vec<MaintenanceWindow>,
        executor: Arc<dyn Executor>,
        deps: Deps,
    ) -> Result<ScheduleDriver, HistoryError> {
        let persisted = deps.history.schedule_states()?;
        let scheduler = Scheduler::new(
            schedules,
            windows,
            &deps.host_id,
            &persisted,
            deps.clock.now(),
        );
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Ok(ScheduleDriver {
            scheduler,
            executor,
            deps,
            done_tx,
            done_rx,
        })
    }

    fn persist(&self, name: &str) {
        if let Some(state) = self.scheduler.state(name)
            && let Err(e) = self.deps.history.save_schedule_state(name, &state)
        {
            tracing::error!(schedule = name, error = %e, "cannot save the schedule state");
        }
    }

    fn emit(&self, ev: AutomationEvent) -> bool {
        self.deps.emit(self.executor.as_ref(), ev)
    }

    fn handle(&mut self, d: Decision) {
        let name = d.schedule().to_string();
        // The slot is consumed before anything runs: a crash now cannot make it fire twice.
        self.persist(&name);
        match d {
            Decision::ClockWentBack {
                schedule,
                last_slot,
                now,
            } => {
                self.emit(AutomationEvent::ScheduleClockWentBack {
                    schedule,
                    last_slot,
                    now,
                });
            }
            Decision::Skip {
                schedule,
                slot,
                missed,
                reason,
            } => {
                self.emit(AutomationEvent::ScheduleSkipped {
                    schedule,
                    slot,
                    missed,
                    reason,
                });
            }
            Decision::Fire {
                schedule,
                slot,
                missed,
                window,
                window_slot,
            } => {
                let Some(s) = self.scheduler.schedule(&schedule) else {
                    return;
                };
                let mut params = s.params.clone();
                if let (Some(name), Some(slot)) = (&s.window_slot_param, &window_slot) {
                    params.push((name.clone(), slot.clone()));
                }
                let launch = RunbookLaunch {
                    origin: LaunchOrigin::Schedule {
                        name: schedule.clone(),
                        slot,
                    },
                    runbook: s.runbook.clone(),
                    params,
                    dry_run: s.dry_run,
                };
                let audited = self.emit(AutomationEvent::ScheduleFired {
                    schedule: schedule.clone(),
                    slot,
                    missed,
                    window,
                    window_slot,
                });
                if !audited {
                    // Fail closed: nothing runs that the audit log does not show.
                    self.scheduler.finished(&schedule, None);
                    self.emit(AutomationEvent::ScheduleRunFailed {
                        schedule,
                        error: "the audit log cannot be written; run not started".into(),
                    });
                    return;
                }
                let fut = self.executor.run_runbook(launch);
                let tx = self.done_tx.clone();
                tokio::spawn(async move {
                    let _ = tx.send((schedule, guarded(fut).await));
                });
            }
        }
    }

    fn finished(&mut self, name: String, result: Result<RunOutcome, LaunchError>) {
        let run_id = result.as_ref().ok().map(|o| o.run_id.clone());
        self.scheduler.finished(&name, run_id.as_deref());
        self.persist(&name);
        let ev = match result {
            Ok(o) => AutomationEvent::ScheduleRunFinished {
                schedule: name,
                run_id: o.run_id,
                status: o.status,
            },
            Err(e) => AutomationEvent::ScheduleRunFailed {
                schedule: name,
                error: e.0,
            },
        };
        self.emit(ev);
    }

    /// Until `shutdown` turns true.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                break;
            }
            let now = self.deps.clock.now();
            for d in self.scheduler.poll(now) {
                self.handle(d);
            }
            let wait = self
                .scheduler
                .next_due()
                .map(|due| (due - now).to_std().unwrap_or_default())
                .unwrap_or(MAX_SLEEP)
                .clamp(MIN_SLEEP, MAX_SLEEP);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                Some((name, result)) = self.done_rx.recv() => self.finished(name, result),
                _ = stopped(&mut shutdown) => break,
            }
        }
    }
}
