//! The agent's domain events as `warden.v1` messages: the only place that knows both.

use super::pb;
use crate::daemon::events::{AgentEvent, RunEvent, RunEventKind};

pub fn run_event(e: &RunEvent) -> pb::RunEvent {
    use pb::EventKind as K;
    let mut out = pb::RunEvent {
        run_id: e.run_id.clone(),
        seq: e.seq,
        at_ms: e.at_ms,
        ..Default::default()
    };
    let kind = match &e.kind {
        RunEventKind::Queued {
            runbook,
            requested_by,
        } => {
            out.message = format!("{runbook} requested by {requested_by}");
            K::RunQueued
        }
        RunEventKind::Started => K::RunStarted,
        RunEventKind::StepStarted {
            index,
            step,
            plugin,
            attempt,
        } => {
            out.index = *index as u32;
            out.step = step.clone();
            out.message = plugin.clone();
            out.attempt = *attempt;
            K::StepStarted
        }
        RunEventKind::StepRetrying {
            index,
            step,
            attempt,
            error,
            backoff_ms,
        } => {
            out.index = *index as u32;
            out.step = step.clone();
            out.attempt = *attempt;
            out.message = format!("{error}; retrying in {backoff_ms} ms");
            K::StepRetrying
        }
        RunEventKind::Log {
            index,
            step,
            level,
            message,
        } => {
            out.index = *index as u32;
            out.step = step.clone();
            out.level = level.clone();
            out.message = message.clone();
            K::Log
        }
        RunEventKind::StepFinished {
            index,
            step,
            status,
            summary,
        } => {
            out.index = *index as u32;
            out.step = step.clone();
            out.status = status.as_str().into();
            out.message = summary.clone();
            K::StepFinished
        }
        RunEventKind::Finished { status, message } => {
            out.status = status.as_str().into();
            out.message = message.clone();
            K::RunFinished
        }
    };
    out.kind = kind as i32;
    out
}

pub fn agent_event(e: &AgentEvent) -> pb::AgentEvent {
    pb::AgentEvent {
        at_ms: e.at_ms,
        kind: e.kind.clone(),
        subject: e.subject.clone(),
        message: e.message.clone(),
        detail_json: e.detail.to_string(),
    }
}
