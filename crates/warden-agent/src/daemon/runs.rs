//! The agent's runbook runs: a bounded number run at once, a bounded queue waits for a slot and
//! anything beyond is refused, never dropped. Each run keeps its events in order so a watcher
//! that joins late first gets everything so far, then live events. Cancelling reaches the
//! running plugin (and its child processes) through the run's [`CancelToken`].

use super::events::{AgentEvent, RunEvent, RunEventKind};
use crate::PluginManager;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore, broadcast, mpsc, watch};
use warden_core::{CancelToken, RunStatus};
use warden_history::{History, now_ms};
use warden_runbook::Runbook;
use warden_runbook::engine::{self, Engine, RunOptions};

/// Finished runs kept in memory for late watchers (the newest ones); older ones are answered from
/// the history. A run's events are a few KB: 256 runs are about a megabyte, and a console
/// watching runs it just triggered finds them all here.
pub const KEPT_FINISHED_RUNS: usize = 256;

/// The runs in memory: every unfinished run, and the newest [`KEPT_FINISHED_RUNS`] finished
/// ones, in the order they were triggered.
#[derive(Debug, Default)]
struct LiveRuns {
    by_id: HashMap<String, Arc<LiveRun>>,
    /// Ids oldest first: which finished runs to forget first.
    order: VecDeque<String>,
}

impl LiveRuns {
    fn get(&self, id: &str) -> Option<Arc<LiveRun>> {
        self.by_id.get(id).cloned()
    }

    /// Add `live`, then forget the oldest finished runs beyond [`KEPT_FINISHED_RUNS`].
    fn insert(&mut self, live: &Arc<LiveRun>) {
        self.order.push_back(live.id.clone());
        self.by_id.insert(live.id.clone(), live.clone());
        let finished = self.by_id.values().filter(|r| r.is_finished()).count();
        let mut excess = finished.saturating_sub(KEPT_FINISHED_RUNS);
        if excess == 0 {
            return;
        }
        let LiveRuns { by_id, order } = self;
        order.retain(|id| {
            if excess == 0 {
                return true;
            }
            match by_id.get(id).map(|run| run.is_finished()) {
                Some(true) => {
                    by_id.remove(id);
                    excess -= 1;
                    false
                }
                Some(false) => true,
                None => false,
            }
        });
    }

    fn unfinished(&self) -> Vec<Arc<LiveRun>> {
        self.by_id
            .values()
            .filter(|r| !r.is_finished())
            .cloned()
            .collect()
    }
}

/// Why a run that was cancelled while it waited for a slot has no steps.
const NOT_STARTED: &str = "cancelled before it started";

/// A run request that passed validation.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub runbook: Runbook,
    pub params: Value,
    pub dry_run: bool,
    /// Who asked: a token's name, or `schedule:<name>` / `monitor:<name>`.
    pub requested_by: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    #[error("the agent is shutting down and accepts no new runs")]
    ShuttingDown,
    #[error("{running} run(s) running and {queued} queued: the queue is full, try again later")]
    Busy { running: usize, queued: usize },
    #[error(transparent)]
    History(#[from] warden_history::HistoryError),
    #[error(transparent)]
    Audit(#[from] warden_audit::AuditError),
}

/// One run's event log and controls.
#[derive(Debug)]
pub struct LiveRun {
    pub id: String,
    cancel: CancelToken,
    /// Wakes a queued run that was cancelled before it got a slot.
    cancelled: Notify,
    started: AtomicBool,
    events: Mutex<Vec<RunEvent>>,
    changed: watch::Sender<()>,
    /// The final status; set exactly when the run has finished.
    status: Mutex<Option<RunStatus>>,
}

impl LiveRun {
    fn new(id: &str) -> LiveRun {
        LiveRun {
            id: id.to_string(),
            cancel: CancelToken::default(),
            cancelled: Notify::new(),
            started: AtomicBool::new(false),
            events: Mutex::new(Vec::new()),
            changed: watch::channel(()).0,
            status: Mutex::new(None),
        }
    }

    fn push(&self, kind: RunEventKind) {
        if let (Ok(mut events), Ok(mut status)) = (self.events.lock(), self.status.lock()) {
            // Exactly one `Finished`, always last.
            if status.is_some() {
                return;
            }
            if let RunEventKind::Finished { status: end, .. } = &kind {
                *status = Some(*end);
            }
            let seq = events.len() as u64;
            events.push(RunEvent {
                run_id: self.id.clone(),
                seq,
                at_ms: now_ms(),
                kind,
            });
        }
        self.changed.send_replace(());
    }

    fn finish(&self, status: RunStatus, message: impl Into<String>) {
        self.push(RunEventKind::Finished {
            status,
            message: message.into(),
        });
    }

    fn push_engine_event(&self, event: &engine::RunEvent) {
        use engine::RunEvent as E;
        self.push(match event {
            E::RunStarted { .. } => RunEventKind::Started,
            E::StepStarted {
                index,
                step,
                plugin,
                attempt,
            } => RunEventKind::StepStarted {
                index: *index,
                step: step.clone(),
                plugin: plugin.clone(),
                attempt: *attempt,
            },
            E::StepRetrying {
                index,
                step,
                attempt,
                error,
                backoff_ms,
            } => RunEventKind::StepRetrying {
                index: *index,
                step: step.clone(),
                attempt: *attempt,
                error: error.clone(),
                backoff_ms: *backoff_ms,
            },
            E::StepLog {
                index,
                step,
                level,
                message,
            } => RunEventKind::Log {
                index: *index,
                step: step.clone(),
                level: level.clone(),
                message: message.clone(),
            },
            E::StepFinished {
                index,
                step,
                status,
                summary,
                ..
            } => RunEventKind::StepFinished {
                index: *index,
                step: step.clone(),
                status: *status,
                summary: summary.clone(),
            },
            E::RunFinished { status, .. } => RunEventKind::Finished {
                status: *status,
                message: String::new(),
            },
        })
    }

    pub fn is_finished(&self) -> bool {
        self.status.lock().is_ok_and(|s| s.is_some())
    }

    pub fn status(&self) -> Option<RunStatus> {
        self.status.lock().ok().and_then(|s| *s)
    }

    /// Every event so far, then live ones until the run finishes or the receiver goes away.
    pub fn subscribe(self: &Arc<Self>) -> mpsc::Receiver<RunEvent> {
        let (tx, rx) = mpsc::channel(64);
        let run = self.clone();
        let mut changes = run.changed.subscribe();
        tokio::spawn(async move {
            let mut sent = 0;
            loop {
                changes.borrow_and_update();
                let pending: Vec<RunEvent> = match run.events.lock() {
                    Ok(events) => events.iter().skip(sent).cloned().collect(),
                    Err(_) => return,
                };
                for event in pending {
                    let last = event.is_last();
                    if tx.send(event).await.is_err() || last {
                        return;
                    }
                    sent += 1;
                }
                if changes.changed().await.is_err() {
                    return;
                }
            }
        });
        rx
    }
}

/// Runs runbooks for the API, schedules and monitors.
pub struct RunManager {
    runner: Arc<PluginManager>,
    history: Arc<History>,
    slots: Arc<Semaphore>,
    max_running: usize,
    max_queued: usize,
    waiting: Arc<AtomicUsize>,
    live: Mutex<LiveRuns>,
    accepting: AtomicBool,
    events: broadcast::Sender<AgentEvent>,
}

/// A run just accepted.
#[derive(Debug)]
pub struct Triggered {
    pub live: Arc<LiveRun>,
    /// It waits for a free slot.
    pub queued: bool,
    /// Resolves when the run has finished.
    pub done: tokio::sync::oneshot::Receiver<Finished>,
}

/// What a finished run reports to whoever started it (schedules and monitors wait on it).
#[derive(Debug, Clone)]
pub struct Finished {
    pub run_id: String,
    pub status: RunStatus,
}

impl RunManager {
    pub fn new(
        runner: Arc<PluginManager>,
        history: Arc<History>,
        max_running: usize,
        max_queued: usize,
        events: broadcast::Sender<AgentEvent>,
    ) -> RunManager {
        RunManager {
            runner,
            history,
            slots: Arc::new(Semaphore::new(max_running)),
            max_running,
            max_queued,
            waiting: Arc::new(AtomicUsize::new(0)),
            live: Mutex::new(LiveRuns::default()),
            accepting: AtomicBool::new(true),
            events,
        }
    }

    pub fn history(&self) -> &Arc<History> {
        &self.history
    }

    /// Runs waiting for a slot.
    pub fn queued(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Runs holding a slot.
    pub fn running(&self) -> usize {
        self.max_running
            .saturating_sub(self.slots.available_permits())
    }

    pub fn live(&self, id: &str) -> Option<Arc<LiveRun>> {
        self.live.lock().ok()?.get(id)
    }

    /// Queue `spec`; it starts when a slot is free. Returns the run and whether it waits.
    /// Blocking (history and audit writes): call it off the async workers.
    pub fn trigger(
        &self,
        spec: RunSpec,
        handle: &tokio::runtime::Handle,
    ) -> Result<Triggered, TriggerError> {
        if !self.accepting.load(Ordering::SeqCst) {
            return Err(TriggerError::ShuttingDown);
        }
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                let queued = self.waiting.fetch_add(1, Ordering::SeqCst);
                if queued >= self.max_queued {
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                    return Err(TriggerError::Busy {
                        running: self.max_running,
                        queued,
                    });
                }
                None
            }
        };
        let unqueue = |manager: &RunManager| {
            if permit.is_none() {
                manager.waiting.fetch_sub(1, Ordering::SeqCst);
            }
        };
        let id = match self.history.queue_run(
            &spec.runbook.name,
            &spec.runbook.file,
            &spec.params,
            spec.dry_run,
            &spec.requested_by,
        ) {
            Ok(id) => id,
            Err(e) => {
                unqueue(self);
                return Err(e.into());
            }
        };
        if let Err(e) = self.runner.audit().append(
            "run.queued",
            json!({ "run": id, "runbook": spec.runbook.name, "file": spec.runbook.file,
                    "params": spec.params, "dry_run": spec.dry_run, "requested_by": spec.requested_by }),
        ) {
            unqueue(self);
            let _ = self
                .history
                .finish_run(&id, RunStatus::Failed.as_str(), Some("the audit log could not be written"));
            return Err(e.into());
        }
        let live = Arc::new(LiveRun::new(&id));
        live.push(RunEventKind::Queued {
            runbook: spec.runbook.name.clone(),
            requested_by: spec.requested_by.clone(),
        });
        self.remember(&live);
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let job = Job {
            runner: self.runner.clone(),
            history: self.history.clone(),
            live: live.clone(),
            spec,
            events: self.events.clone(),
        };
        let slots = self.slots.clone();
        let waiting = self.waiting.clone();
        let queued = permit.is_none();
        handle.spawn(async move {
            let permit = match permit {
                Some(p) => p,
                None => {
                    let got = tokio::select! {
                        p = slots.acquire_owned() => p.ok(),
                        _ = job.live.cancelled.notified() => None,
                    };
                    waiting.fetch_sub(1, Ordering::SeqCst);
                    match got {
                        Some(p) if !job.live.cancel.is_cancelled() => p,
                        _ => {
                            let finished = job.cancel_queued().await;
                            let _ = done_tx.send(finished);
                            return;
                        }
                    }
                }
            };
            job.live.started.store(true, Ordering::SeqCst);
            job.runner.metrics().runs_started.inc();
            let finished = job.execute().await;
            drop(permit);
            let _ = done_tx.send(finished);
        });
        Ok(Triggered {
            live,
            queued,
            done: done_rx,
        })
    }

    fn remember(&self, live: &Arc<LiveRun>) {
        if let Ok(mut runs) = self.live.lock() {
            runs.insert(live);
        }
    }

    /// Cancel a queued or running run; false when it has already finished.
    pub fn cancel(&self, id: &str, by: &str) -> Result<Option<bool>, TriggerError> {
        let Some(live) = self.live(id) else {
            return Ok(self.history.show(id)?.map(|_| false));
        };
        if live.is_finished() {
            return Ok(Some(false));
        }
        self.runner
            .audit()
            .append("run.cancel", json!({ "run": id, "requested_by": by }))?;
        live.cancel.cancel();
        live.cancelled.notify_one();
        Ok(Some(true))
    }

    fn unfinished(&self) -> Vec<Arc<LiveRun>> {
        self.live
            .lock()
            .map(|runs| runs.unfinished())
            .unwrap_or_default()
    }

    /// Stop accepting runs, cancel queued ones, give running ones `grace` to finish, then
    /// cancel them and wait for them to stop.
    pub async fn shutdown(&self, grace: Duration) {
        self.accepting.store(false, Ordering::SeqCst);
        for run in self.unfinished() {
            if !run.started.load(Ordering::SeqCst) {
                run.cancel.cancel();
                run.cancelled.notify_one();
            }
        }
        let deadline = Instant::now() + grace;
        while !self.unfinished().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for run in self.unfinished() {
            tracing::warn!("cancelling run {} at shutdown", run.id);
            run.cancel.cancel();
            run.cancelled.notify_one();
        }
        // Cancellation interrupts plugins within milliseconds; bound the wait anyway.
        let hard = Instant::now() + Duration::from_secs(10);
        while !self.unfinished().is_empty() && Instant::now() < hard {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Everything one run needs on its task.
struct Job {
    runner: Arc<PluginManager>,
    history: Arc<History>,
    live: Arc<LiveRun>,
    spec: RunSpec,
    events: broadcast::Sender<AgentEvent>,
}

impl Job {
    fn announce(&self, status: RunStatus) {
        self.runner.metrics().run_finished(status);
        let _ = self.events.send(AgentEvent {
            at_ms: now_ms(),
            kind: "run.finished".into(),
            subject: self.live.id.clone(),
            message: format!("{} {status}", self.spec.runbook.name),
            detail: json!({ "runbook": self.spec.runbook.name, "status": status,
                            "requested_by": self.spec.requested_by }),
        });
    }

    async fn cancel_queued(self) -> Finished {
        let history = self.history.clone();
        let runner = self.runner.clone();
        let id = self.live.id.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let _ = history.finish_run(&id, RunStatus::Cancelled.as_str(), Some(NOT_STARTED));
            let _ = runner.audit().append(
                "run.finished",
                json!({ "run": id, "status": RunStatus::Cancelled, "error": NOT_STARTED }),
            );
        })
        .await;
        self.live.finish(RunStatus::Cancelled, NOT_STARTED);
        self.announce(RunStatus::Cancelled);
        Finished {
            run_id: self.live.id.clone(),
            status: RunStatus::Cancelled,
        }
    }

    async fn execute(self) -> Finished {
        let started = Instant::now();
        let (runner, history, live, spec) = (
            self.runner.clone(),
            self.history.clone(),
            self.live.clone(),
            self.spec.clone(),
        );
        let outcome = tokio::task::spawn_blocking(move || {
            let engine = Engine {
                runner: runner.as_ref(),
                history: &history,
                audit: runner.audit(),
            };
            let options = RunOptions {
                dry_run: spec.dry_run,
                run_id: Some(live.id.clone()),
                cancel: live.cancel.clone(),
            };
            let result = engine.run_with(&spec.runbook, &spec.params, options, &mut |e| {
                live.push_engine_event(e)
            });
            if let Err(e) = &result {
                // The engine could not record the run: say so everywhere it still can be said.
                let message = e.to_string();
                let _ = history.finish_run(&live.id, RunStatus::Failed.as_str(), Some(&message));
                live.finish(RunStatus::Failed, message);
            }
        })
        .await;
        if let Err(e) = outcome {
            let message = format!("the run's task failed: {e}");
            let _ =
                self.history
                    .finish_run(&self.live.id, RunStatus::Failed.as_str(), Some(&message));
            self.live.finish(RunStatus::Failed, message);
        }
        let status = self.live.status().unwrap_or(RunStatus::Failed);
        // Before the announcement, so whoever hears of the end sees its duration counted.
        self.runner
            .metrics()
            .run_duration
            .observe(started.elapsed().as_secs_f64());
        self.announce(status);
        Finished {
            run_id: self.live.id.clone(),
            status,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(id: &str) -> Arc<LiveRun> {
        let run = Arc::new(LiveRun::new(id));
        run.finish(RunStatus::Succeeded, "");
        run
    }

    #[test]
    fn the_newest_finished_runs_stay_in_memory_and_unfinished_ones_always() {
        let mut runs = LiveRuns::default();
        let waiting = Arc::new(LiveRun::new("still-running"));
        runs.insert(&waiting);
        let total = KEPT_FINISHED_RUNS + 44;
        for i in 0..total {
            runs.insert(&finished(&format!("run-{i}")));
        }
        for i in total - KEPT_FINISHED_RUNS..total {
            assert!(
                runs.get(&format!("run-{i}")).is_some(),
                "run-{i}, one of the newest {KEPT_FINISHED_RUNS}, is still watchable from memory"
            );
        }
        for i in 0..total - KEPT_FINISHED_RUNS {
            assert!(runs.get(&format!("run-{i}")).is_none(), "run-{i} is older");
        }
        assert!(
            runs.get("still-running").is_some(),
            "an unfinished run is never dropped"
        );
        assert_eq!(runs.by_id.len(), KEPT_FINISHED_RUNS + 1);
        assert_eq!(runs.order.len(), KEPT_FINISHED_RUNS + 1);
    }
}
