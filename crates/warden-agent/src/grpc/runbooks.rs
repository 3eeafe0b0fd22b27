//! `warden.v1.Runbooks`: trigger a runbook by name or as an inline signed bundle, watch its
//! events (late joiners get the past first), read runs from the history, cancel.

use super::events::run_event;
use super::pb::{self, runbooks_server::Runbooks};
use super::{State, blocking, caller, fit};
use crate::daemon::runs::TriggerError;
use crate::daemon::trigger::{RunbookSource, TriggerRefusal, TriggerRequest};
use std::pin::Pin;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use warden_history::{RunCursor, RunRow, StepRow};
use warden_runbook::source::RunbookSourceError;

#[derive(Clone)]
pub struct RunbooksApi(pub State);

/// The runs list's default and maximum size.
const DEFAULT_LIST: usize = 50;
const MAX_LIST: usize = 1000;

fn source_status(e: RunbookSourceError) -> Status {
    match e {
        RunbookSourceError::Refused { .. } | RunbookSourceError::UnsignedRefused => {
            Status::permission_denied(e.to_string())
        }
        RunbookSourceError::Read { .. } => Status::not_found(e.to_string()),
        _ => Status::invalid_argument(e.to_string()),
    }
}

fn refusal_status(e: TriggerRefusal) -> Status {
    match e {
        TriggerRefusal::Source(e) => source_status(e),
        TriggerRefusal::CannotRunHere(_) => Status::failed_precondition(e.to_string()),
        TriggerRefusal::Params(_) => Status::invalid_argument(e.to_string()),
        TriggerRefusal::Queue(TriggerError::ShuttingDown) => Status::unavailable(e.to_string()),
        TriggerRefusal::Queue(TriggerError::Busy { .. }) => {
            Status::resource_exhausted(e.to_string())
        }
        TriggerRefusal::Queue(_) => Status::internal(e.to_string()),
    }
}

fn history_status(e: warden_history::HistoryError) -> Status {
    Status::internal(e.to_string())
}

fn run_message(run: RunRow, steps: Vec<StepRow>) -> pb::Run {
    pb::Run {
        run_id: run.id,
        runbook: run.runbook,
        source: run.file,
        status: run.status,
        dry_run: run.dry_run,
        params_json: run.params.to_string(),
        started_ms: run.started_ms,
        finished_ms: run.ended_ms.unwrap_or(0),
        requested_by: run.requested_by.unwrap_or_default(),
        steps: steps
            .into_iter()
            .map(|s| pb::Step {
                index: s.index as u32,
                step: s.step,
                plugin: s.plugin,
                plugin_version: s.version.unwrap_or_default(),
                plugin_sha256: s.sha256.unwrap_or_default(),
                action: s.action,
                status: s.status,
                attempts: s.attempts as u32,
                started_ms: s.started_ms,
                finished_ms: s.ended_ms.unwrap_or(0),
                summary: String::new(),
                error: s.error.unwrap_or_default(),
                output_json: s.output.to_string(),
                output_truncated: s.output_truncated,
            })
            .collect(),
        truncated: false,
    }
}

/// A run no longer in memory (finished long ago, or before a restart), told from the history.
fn events_from_history(run: &RunRow, steps: &[StepRow]) -> Vec<pb::RunEvent> {
    let mut events: Vec<pb::RunEvent> = steps
        .iter()
        .map(|s| pb::RunEvent {
            run_id: run.id.clone(),
            kind: pb::EventKind::StepFinished as i32,
            at_ms: s.ended_ms.unwrap_or(s.started_ms),
            step: s.step.clone(),
            index: s.index as u32,
            status: s.status.clone(),
            message: s.error.clone().unwrap_or_default(),
            attempt: s.attempts as u32,
            ..Default::default()
        })
        .collect();
    events.push(pb::RunEvent {
        run_id: run.id.clone(),
        kind: pb::EventKind::RunFinished as i32,
        at_ms: run.ended_ms.unwrap_or(run.started_ms),
        status: run.status.clone(),
        message: run.error.clone().unwrap_or_default(),
        ..Default::default()
    });
    for (seq, e) in events.iter_mut().enumerate() {
        e.seq = seq as u64;
    }
    events
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::RunEvent, Status>> + Send>>;

#[tonic::async_trait]
impl Runbooks for RunbooksApi {
    async fn trigger(
        &self,
        req: Request<pb::TriggerRequest>,
    ) -> Result<Response<pb::TriggerResponse>, Status> {
        let who = caller(&req)?;
        let r = req.into_inner();
        let state = self.0.clone();
        let handle = tokio::runtime::Handle::current();
        let source = match r.source {
            Some(pb::trigger_request::Source::Name(name)) => RunbookSource::Named(name),
            Some(pb::trigger_request::Source::SignedRunbook(bytes)) => RunbookSource::Signed(bytes),
            None => {
                return Err(Status::invalid_argument(
                    "give a runbook name or a signed runbook",
                ));
            }
        };
        let request = TriggerRequest {
            source,
            params: r.params.into_iter().collect(),
            dry_run: r.dry_run,
            requested_by: who.name.clone(),
        };
        let (live, queued) = blocking(move || {
            state
                .trigger_runbook(request, &handle)
                .map(|t| (t.live, t.queued))
                .map_err(refusal_status)
        })
        .await?;
        Ok(Response::new(pb::TriggerResponse {
            run_id: live.id.clone(),
            queued,
        }))
    }

    type WatchStream = EventStream;

    async fn watch(
        &self,
        req: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let id = req.into_inner().run_id;
        if let Some(live) = self.0.runs.live(&id) {
            let rx = live.subscribe();
            let stream = tokio_stream::StreamExt::map(
                tokio_stream::wrappers::ReceiverStream::new(rx),
                |e| Ok(run_event(&e)),
            );
            return Ok(Response::new(Box::pin(stream)));
        }
        let history = self.0.runs.history().clone();
        let found = blocking(move || history.show(&id).map_err(history_status)).await?;
        let Some((run, steps)) = found else {
            return Err(Status::not_found("no such run"));
        };
        let events = events_from_history(&run, &steps);
        Ok(Response::new(Box::pin(tokio_stream::iter(
            events.into_iter().map(Ok),
        ))))
    }

    async fn get_run(&self, req: Request<pb::GetRunRequest>) -> Result<Response<pb::Run>, Status> {
        let id = req.into_inner().run_id;
        let history = self.0.runs.history().clone();
        let found = blocking(move || history.show(&id).map_err(history_status)).await?;
        let (run, steps) = found.ok_or_else(|| Status::not_found("no such run"))?;
        let mut run = run_message(run, steps);
        fit::fit_run(&mut run, fit::budget(self.0.config.api.max_message_bytes));
        Ok(Response::new(run))
    }

    async fn list_runs(
        &self,
        req: Request<pb::ListRunsRequest>,
    ) -> Result<Response<pb::ListRunsResponse>, Status> {
        let r = req.into_inner();
        // An unknown status would match nothing and look like "no such runs".
        if !r.status.is_empty() {
            r.status
                .parse::<warden_core::RunStatus>()
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
        }
        let before = match r.page_token.as_str() {
            "" => None,
            token => Some(
                token
                    .parse::<RunCursor>()
                    .map_err(Status::invalid_argument)?,
            ),
        };
        let limit = match r.limit as usize {
            0 => DEFAULT_LIST,
            n => n.min(MAX_LIST),
        };
        let history = self.0.runs.history().clone();
        // One more than asked: whether an older page exists.
        let mut rows = blocking(move || {
            let status = Some(r.status).filter(|s| !s.is_empty());
            let runbook = Some(r.runbook).filter(|s| !s.is_empty());
            history
                .list_filtered(
                    limit + 1,
                    status.as_deref(),
                    runbook.as_deref(),
                    before.as_ref(),
                )
                .map_err(history_status)
        })
        .await?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let cursors: Vec<RunCursor> = rows.iter().map(RunCursor::after).collect();
        let mut list = pb::ListRunsResponse {
            runs: rows.into_iter().map(|r| run_message(r, vec![])).collect(),
            truncated: false,
            next_page_token: String::new(),
        };
        fit::fit_runs(&mut list, fit::budget(self.0.config.api.max_message_bytes));
        if (more || list.truncated)
            && let Some(last) = list.runs.len().checked_sub(1)
        {
            list.next_page_token = cursors[last].to_string();
        }
        Ok(Response::new(list))
    }

    async fn cancel(
        &self,
        req: Request<pb::CancelRequest>,
    ) -> Result<Response<pb::CancelResponse>, Status> {
        let who = caller(&req)?;
        let id = req.into_inner().run_id;
        let state = self.0.clone();
        let cancelled = blocking(move || {
            state
                .runs
                .cancel(&id, &who.name)
                .map_err(|e| Status::internal(e.to_string()))
        })
        .await?
        .ok_or_else(|| Status::not_found("no such run"))?;
        Ok(Response::new(pb::CancelResponse { cancelled }))
    }
}
