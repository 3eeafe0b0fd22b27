//! The agent's runbook runs: a bounded number run at once, a bounded queue waits for a slot and
//! anything beyond is refused, never dropped. Each run keeps its events in order so a watcher
//! that joins late first gets everything so far, then live events. Cancelling reaches the
//! running plugin (and its child processes) through the run's [`CancelToken`].

use crate::PluginManager;
use crate::grpc::pb;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore, broadcast, mpsc, watch};
use warden_core::CancelToken;
use warden_history::{History, now_ms};
use warden_runbook::Runbook;
use warden_runbook::engine::{Engine, RunEvent, RunOptions};

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
    events: Mutex<Vec<pb::RunEvent>>,
    changed: watch::Sender<()>,
    /// The final status; set exactly when the run has finished.
    status: Mutex<Option<String>>,
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

    fn push(&self, kind: pb::EventKind, fill: impl FnOnce(&mut pb::RunEvent)) {
        let mut event = pb::RunEvent {
            run_id: self.id.clone(),
            kind: kind as i32,
            at_ms: now_ms(),
            ..Default::default()
        };
        fill(&mut event);
        if let (Ok(mut events), Ok(mut status)) = (self.events.lock(), self.status.lock()) {
            // Exactly one RUN_FINISHED, always last.
            if status.is_some() {
                return;
            }
            event.seq = events.len() as u64;
            if kind == pb::EventKind::RunFinished {
                *status = Some(event.status.clone());
            }
            events.push(event);
        }
        self.changed.send_replace(());
    }

    fn push_engine_event(&self, event: &RunEvent) {
        use pb::EventKind as K;
        match event {
            RunEvent::RunStarted { .. } => self.push(K::RunStarted, |_| {}),
            RunEvent::StepStarted {
                index,
                step,
                plugin,
                attempt,
            } => self.push(K::StepStarted, |e| {
                e.index = *index as u32;
                e.step = step.clone();
                e.message = plugin.clone();
                e.attempt = *attempt;
            }),
            RunEvent::StepRetrying {
                index,
                step,
                attempt,
                error,
                backoff_ms,
            } => self.push(K::StepRetrying, |e| {
                e.index = *index as u32;
                e.step = step.clone();
                e.attempt = *attempt;
                e.message = format!("{error}; retrying in {backoff_ms} ms");
            }),
            RunEvent::StepLog {
                index,
                step,
                level,
                message,
            } => self.push(K::Log, |e| {
                e.index = *index as u32;
                e.step = step.clone();
                e.level = level.clone();
                e.message = message.clone();
            }),
            RunEvent::StepFinished {
                index,
                step,
                status,
                summary,
                ..
            } => self.push(K::StepFinished, |e| {
                e.index = *index as u32;
                e.step = step.clone();
                e.status = word(status);
                e.message = summary.clone();
            }),
            RunEvent::RunFinished { status, .. } => self.push(K::RunFinished, |e| {
                e.status = status.clone();
            }),
        }
    }

    pub fn is_finished(&self) -> bool {
        self.status.lock().is_ok_and(|s| s.is_some())
    }

    pub fn status(&self) -> Option<String> {
        self.status.lock().ok().and_then(|s| s.clone())
    }

    /// Every event so far, then live ones until the run finishes or the receiver goes away.
    pub fn subscribe(self: &Arc<Self>) -> mpsc::Receiver<pb::RunEvent> {
        let (tx, rx) = mpsc::channel(64);
        let run = self.clone();
        let mut changes = run.changed.subscribe();
        tokio::spawn(async move {
            let mut sent = 0;
            loop {
                changes.borrow_and_update();
                let pending: Vec<pb::RunEvent> = match run.events.lock() {
                    Ok(events) => events.iter().skip(sent).cloned().collect(),
                    Err(_) => return,
                };
                for event in pending {
                    let last = event.kind == pb::EventKind::RunFinished as i32;
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

fn word<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
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
    events: broadcast::Sender<pb::AgentEvent>,
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
    pub status: String,
}

impl RunManager {
    pub fn new(
        runner: Arc<PluginManager>,
        history: Arc<History>,
        max_running: usize,
        max_queued: usize,
        events: broadcast::Sender<pb::AgentEvent>,
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
                .finish_run(&id, "failed", Some("the audit log could not be written"));
            return Err(e.into());
        }
        let live = Arc::new(LiveRun::new(&id));
        live.push(pb::EventKind::RunQueued, |e| {
            e.message = format!("{} requested by {}", spec.runbook.name, spec.requested_by);
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
    events: broadcast::Sender<pb::AgentEvent>,
}

impl Job {
    fn announce(&self, status: &str) {
        let _ = self.events.send(pb::AgentEvent {
            at_ms: now_ms(),
            kind: "run.finished".into(),
            subject: self.live.id.clone(),
            message: format!("{} {status}", self.spec.runbook.name),
            detail_json: json!({ "runbook": self.spec.runbook.name, "status": status,
                                 "requested_by": self.spec.requested_by })
            .to_string(),
        });
    }

    async fn cancel_queued(self) -> Finished {
        let history = self.history.clone();
        let runner = self.runner.clone();
        let id = self.live.id.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let _ = history.finish_run(&id, "cancelled", Some("cancelled before it started"));
            let _ = runner.audit().append(
                "run.finished",
                json!({ "run": id, "status": "cancelled", "error": "cancelled before it started" }),
            );
        })
        .await;
        self.live.push(pb::EventKind::RunFinished, |e| {
            e.status = "cancelled".into();
            e.message = "cancelled before it started".into();
        });
        self.announce("cancelled");
        Finished {
            run_id: self.live.id.clone(),
            status: "cancelled".into(),
        }
    }

    async fn execute(self) -> Finished {
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
                let _ = history.finish_run(&live.id, "failed", Some(&message));
                live.push(pb::EventKind::RunFinished, |ev| {
                    ev.status = "failed".into();
                    ev.message = message;
                });
            }
        })
        .await;
        if let Err(e) = outcome {
            let message = format!("the run's task failed: {e}");
            let _ = self
                .history
                .finish_run(&self.live.id, "failed", Some(&message));
            self.live.push(pb::EventKind::RunFinished, |ev| {
                ev.status = "failed".into();
                ev.message = message;
            });
        }
        let status = self.live.status().unwrap_or_else(|| "failed".into());
        self.announce(&status);
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
        run.push(pb::EventKind::RunFinished, |e| {
            e.status = "succeeded".into()
        });
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
