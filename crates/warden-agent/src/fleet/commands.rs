//! One command, in the order the wire prescribes (docs/FLEET.md, "Agent side"):
//! 1. decode (bytes that are no command but name a run id get `refused: invalid`);
//! 2. validate against this agent's id, tenant and clock (misaddressed, expired, from the
//!    future, malformed);
//! 3. the ledger: a run id seen before never runs again; its kept result is re-published (same
//!    `Nats-Msg-Id`), a run still going gets its `running` again, anything else `replayed`;
//! 4. trust and run through the agent ([`FleetAgent::run`]: its own trust policy, its one
//!    trigger path), publishing `running` once the run has gone on for [`RUNNING_GRACE`], and
//!    the final result when done.
//!
//! A cancel is no run of its own: after step 2 it goes to the agent ([`FleetAgent::cancel`]);
//! a run the agent never took is taken into the ledger as `cancelled` (its command, when it
//! comes, gets that answer and never runs). Audited `fleet.cancel` with what it found.
//!
//! Every refusal is audited (`fleet.command-refused`, with the reason) and answered with a
//! `refused` result, except a busy agent: it releases the run id and stays silent, so the
//! controller's re-send retries (a final `refused: busy` would be kept as the run's answer).

use super::core::{LinkCore, outgoing};
use super::in_flight::{Seen, Taken};
use super::seam::{CancelOutcome, FleetRun, RunEnd, RunOutcome, RunRefused};
use serde_json::json;
use std::sync::Arc;
use warden_fleet_wire::result::{MAX_ERROR_LEN, MAX_STEP_DETAIL_LEN, MAX_STEP_NAME_LEN, MAX_STEPS};
use warden_fleet_wire::{
    Command, CommandKind, RefusalReason, RunId, RunResult, RunStatus, StepSummary, UnixMillis,
    decode, one_line, peek_run,
};

/// The error every run the agent was running when it stopped gets, at its next start.
pub const INTERRUPTED: &str =
    "interrupted: the agent stopped while the run was in flight; it is not run again";

/// How long a run goes on before the agent says `running`: 500 ms. A run that ends sooner
/// (most checks and many remediations) sends its final result alone, which halves what the
/// stream, the controller and the agent's own store carry for it (a `running` costs two
/// flushed commits here and one stored message there). The notice is not what stops the
/// controller's re-sends from being needed sooner: the first re-send is seconds away
/// (`RESEND_FIRST_MS`, 5 s), and a human watching a run does not see half a second.
pub const RUNNING_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

impl LinkCore {
    pub(crate) async fn handle_command(self: Arc<Self>, bytes: Vec<u8>) {
        let now = UnixMillis::now();
        let command = match decode::<Command>(&bytes) {
            Ok(command) => command,
            Err(e) => {
                let run = peek_run(&bytes);
                self.refuse(run.as_ref(), RefusalReason::Invalid, &e.to_string())
                    .await;
                return;
            }
        };
        if let Err(refusal) = command.validate(now, &self.identity.agent, &self.identity.tenant) {
            self.refuse(Some(&command.run), refusal.reason(), &refusal.to_string())
                .await;
            return;
        }
        if command.kind == CommandKind::Cancel {
            let keep_until = command.keep_in_ledger_until();
            self.cancel(command.run, keep_until, now).await;
            return;
        }
        let (run, keep_until) = (command.run.clone(), command.keep_in_ledger_until());
        let taken = {
            let run = run.clone();
            self.blocking(move |core| core.in_flight.claim(&core.store, &run, keep_until, now))
                .await
        };
        match taken {
            Ok(Taken::New) => self.run(command).await,
            Ok(Taken::Seen(seen)) => self.replayed(&run, seen).await,
            Err(e) => tracing::error!("fleet: run {run} not taken (ledger): {e}"),
        }
    }

    /// A run id the ledger knows.
    async fn replayed(self: &Arc<Self>, run: &RunId, seen: Seen) {
        let (item, what) = match seen {
            Seen::Kept(payload) => {
                let result = match decode::<RunResult>(&payload) {
                    Ok(result) => result,
                    Err(e) => {
                        tracing::error!("fleet: the kept result of {run} is unreadable: {e}");
                        return;
                    }
                };
                (outgoing(&result), "result re-published")
            }
            Seen::Running => {
                let result = self.result(run, RunStatus::Running);
                (outgoing(&result), "running re-published")
            }
            Seen::Gone => {
                self.refuse(
                    Some(run),
                    RefusalReason::Replayed,
                    "this run id was taken before and its result is gone",
                )
                .await;
                return;
            }
        };
        self.audit(
            "fleet.command-replayed",
            json!({ "run": run, "answer": what }),
        );
        match item {
            Ok(item) => self.enqueue(item).await,
            Err(e) => tracing::error!("fleet: cannot re-publish {run}: {e}"),
        }
    }

    /// Cancel a run of this agent: a run going on is cancelled (its result then says
    /// `cancelled`, through the usual path); a run this agent never took is taken now, into the
    /// ledger, with a `cancelled` result, so its command, when it comes (a re-send), gets that
    /// answer and never runs; a run the ledger holds already is left as it is.
    async fn cancel(self: &Arc<Self>, run: RunId, keep_until: UnixMillis, now: UnixMillis) {
        let outcome = {
            let run = run.clone();
            self.blocking(move |core| Ok(core.agent.cancel(&run))).await
        };
        let outcome = match outcome {
            Ok(CancelOutcome::Unknown) => {
                let taken = {
                    let run = run.clone();
                    self.blocking(move |core| {
                        core.in_flight.claim(&core.store, &run, keep_until, now)
                    })
                    .await
                };
                match taken {
                    Ok(Taken::New) => {
                        let mut result = self.result(&run, RunStatus::Cancelled);
                        result.error = Some("cancelled by the fleet before it started".into());
                        result.finished_at = Some(UnixMillis::now());
                        self.finish(&run, &result).await;
                        self.in_flight.done(&run);
                        "cancelled-before-start"
                    }
                    Ok(Taken::Seen(_)) => "finished",
                    Err(e) => {
                        tracing::error!("fleet: cancelling {run} (ledger): {e}");
                        "error"
                    }
                }
            }
            Ok(outcome) => outcome.name(),
            Err(e) => {
                tracing::error!("fleet: cancelling {run}: {e}");
                "error"
            }
        };
        self.audit("fleet.cancel", json!({ "run": run, "outcome": outcome }));
    }

    async fn run(self: &Arc<Self>, command: Command) {
        let CommandKind::RunRunbook(spec) = command.kind else {
            return;
        };
        let run = command.run;
        let request = FleetRun {
            run: run.clone(),
            runbook: spec.runbook,
            bundle: spec.bundle.map(|b| b.bytes().to_vec()),
            params: spec.params,
            dry_run: spec.dry_run,
        };
        let (accepted_tx, accepted_rx) = tokio::sync::oneshot::channel();
        // Dropped when the run ends: a run that ends within the grace never says `running`.
        let (ended_tx, ended_rx) = tokio::sync::oneshot::channel::<()>();
        let running = {
            let core = self.clone();
            let run = run.clone();
            tokio::spawn(async move {
                if let Ok(started_at) = accepted_rx.await {
                    tokio::select! {
                        _ = tokio::time::sleep(RUNNING_GRACE) => {}
                        _ = ended_rx => return,
                    }
                    let mut result = core.result(&run, RunStatus::Running);
                    result.started_at = Some(started_at);
                    match outgoing(&result) {
                        Ok(item) => core.enqueue(item).await,
                        Err(e) => tracing::error!("fleet: {run} running: {e}"),
                    }
                }
            })
        };
        let outcome = self.agent.run(request, accepted_tx).await;
        drop(ended_tx);
        // `running`, if it is sent, is queued before the final result.
        let _ = running.await;
        let result = match outcome {
            Ok(outcome) => self.final_result(&run, outcome),
            Err(refused) if refused.reason == RefusalReason::Busy => {
                self.busy(&run, &refused).await;
                return;
            }
            Err(refused) => {
                self.audit_refusal(Some(&run), refused.reason, &refused.message);
                self.refused_result(&run, refused.reason, &refused.message)
            }
        };
        self.finish(&run, &result).await;
        self.in_flight.done(&run);
    }

    async fn busy(self: &Arc<Self>, run: &RunId, refused: &RunRefused) {
        self.audit_refusal(Some(run), RefusalReason::Busy, &refused.message);
        let released = {
            let run = run.clone();
            self.blocking(move |core| core.store.release(&run)).await
        };
        if let Err(e) = released {
            tracing::error!("fleet: {run} stays in the ledger without a run: {e}");
        }
        self.in_flight.done(run);
    }

    /// Keep the final result in the ledger and queue it, in one transaction.
    pub(crate) async fn finish(self: &Arc<Self>, run: &RunId, result: &RunResult) {
        let item = match outgoing(result) {
            Ok(item) => item,
            Err(e) => {
                tracing::error!("fleet: the result of {run} cannot be encoded: {e}");
                return;
            }
        };
        let cap = self.outbox_cap;
        let finished = {
            let run = run.clone();
            self.blocking(move |core| core.store.finish(&run, &item, cap, UnixMillis::now()))
                .await
        };
        match finished {
            Ok(dropped) => {
                self.audit_dropped(dropped);
                self.wake.notify_one();
            }
            Err(e) => tracing::error!("fleet: the result of {run} is not stored: {e}"),
        }
    }

    /// Answer a command refused before the ledger: audited, and a `refused` result when the
    /// run id is known (on the agent's own subject; nothing is ledgered).
    async fn refuse(self: &Arc<Self>, run: Option<&RunId>, reason: RefusalReason, message: &str) {
        self.audit_refusal(run, reason, message);
        let Some(run) = run else { return };
        match outgoing(&self.refused_result(run, reason, message)) {
            Ok(item) => self.enqueue(item).await,
            Err(e) => tracing::error!("fleet: refusal of {run}: {e}"),
        }
    }

    fn audit_refusal(&self, run: Option<&RunId>, reason: RefusalReason, message: &str) {
        tracing::warn!(
            "fleet: command {} refused ({}): {message}",
            run.map(RunId::as_str).unwrap_or("without a run id"),
            reason.name()
        );
        let core = self;
        core.audit(
            "fleet.command-refused",
            json!({ "run": run, "reason": reason.name(), "error": one_line(message, MAX_ERROR_LEN) }),
        );
    }

    pub(crate) async fn enqueue(self: &Arc<Self>, item: super::outbox::Outgoing) {
        let cap = self.outbox_cap;
        let msg_id = item.msg_id.clone();
        match self
            .blocking(move |core| {
                core.store
                    .enqueue(&item, cap, UnixMillis::now().as_millis())
            })
            .await
        {
            Ok(dropped) => {
                self.audit_dropped(dropped);
                self.wake.notify_one();
            }
            Err(e) => tracing::error!("fleet: {msg_id} not queued: {e}"),
        }
    }

    pub(crate) fn result(&self, run: &RunId, status: RunStatus) -> RunResult {
        RunResult::new(
            run.clone(),
            self.identity.tenant.clone(),
            self.identity.agent.clone(),
            status,
        )
    }

    pub(crate) fn refused_result(
        &self,
        run: &RunId,
        reason: RefusalReason,
        message: &str,
    ) -> RunResult {
        let mut result = self.result(run, RunStatus::Refused { reason });
        result.error = Some(one_line(message, MAX_ERROR_LEN));
        result.finished_at = Some(UnixMillis::now());
        result
    }

    fn final_result(&self, run: &RunId, outcome: RunOutcome) -> RunResult {
        let status = match outcome.end {
            RunEnd::Succeeded => RunStatus::Succeeded,
            RunEnd::Failed => RunStatus::Failed,
            RunEnd::Cancelled => RunStatus::Cancelled,
        };
        let mut result = self.result(run, status);
        result.started_at = Some(outcome.started_at);
        result.finished_at = Some(outcome.finished_at.max(outcome.started_at));
        result.error = outcome.error.map(|e| one_line(&e, MAX_ERROR_LEN));
        let total = outcome.steps.len();
        result.steps = outcome
            .steps
            .into_iter()
            .take(MAX_STEPS)
            .map(|s| StepSummary {
                name: match one_line(&s.name, MAX_STEP_NAME_LEN) {
                    n if n.is_empty() => "step".into(),
                    n => n,
                },
                status: s.status,
                detail: one_line(&s.detail, MAX_STEP_DETAIL_LEN),
            })
            .collect();
        result.steps_omitted = u32::try_from(total.saturating_sub(MAX_STEPS)).unwrap_or(u32::MAX);
        result
    }
}
