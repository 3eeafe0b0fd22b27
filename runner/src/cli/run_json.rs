//! The one `--json` shape of a run, whether it is read from the local history (`warden runs`)
//! or from an agent's API (`warden ctl runs|show`): the same keys (snake case), JSON values
//! rather than JSON inside strings, `null` for "none" and for what a source does not carry
//! (the API carries no step logs and no run error), never `-1` or `0` as a sentinel.

use serde::Serialize;
use warden_agent::grpc::pb;
use warden_history::{RunRow, StepRow};

/// A list of runs: one page, and the token of the next when older runs match.
#[derive(Debug, Serialize)]
pub struct RunList {
    pub runs: Vec<RunJson>,
    pub next_page: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RunJson {
    pub id: String,
    pub runbook: String,
    /// The runbook file, or where a signed runbook came from.
    pub source: String,
    pub status: String,
    pub dry_run: bool,
    pub params: serde_json::Value,
    /// Who or what asked for it; `null` for the command line beside the agent.
    pub requested_by: Option<String>,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub error: Option<String>,
    /// Shown by `show`, left out of lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<StepJson>>,
}

#[derive(Debug, Serialize)]
pub struct StepJson {
    pub index: i64,
    pub step: String,
    pub plugin: String,
    pub version: Option<String>,
    pub sha256: Option<String>,
    pub action: String,
    pub status: String,
    pub attempts: i64,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub output: serde_json::Value,
    pub output_truncated: bool,
    pub logs: Option<serde_json::Value>,
    pub error: Option<String>,
}

fn some(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

/// The API sends 0 for "not ended".
fn ended(ms: i64) -> Option<i64> {
    (ms > 0).then_some(ms)
}

/// JSON text from the API as a value; text that is not JSON stays a string rather than failing.
fn value(json: &str) -> serde_json::Value {
    if json.is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::from_str(json).unwrap_or_else(|_| serde_json::Value::String(json.to_string()))
}

impl RunJson {
    pub fn from_history(run: RunRow, steps: Option<Vec<StepRow>>) -> RunJson {
        RunJson {
            id: run.id,
            runbook: run.runbook,
            source: run.file,
            status: run.status,
            dry_run: run.dry_run,
            params: run.params,
            requested_by: run.requested_by,
            started_ms: run.started_ms,
            ended_ms: run.ended_ms,
            error: run.error,
            steps: steps.map(|steps| steps.into_iter().map(StepJson::from_history).collect()),
        }
    }

    /// `with_steps`: whether the message's steps are shown (`show`) or left out (lists).
    pub fn from_api(run: pb::Run, with_steps: bool) -> RunJson {
        RunJson {
            id: run.run_id,
            runbook: run.runbook,
            source: run.source,
            status: run.status,
            dry_run: run.dry_run,
            params: value(&run.params_json),
            requested_by: some(run.requested_by),
            started_ms: run.started_ms,
            ended_ms: ended(run.finished_ms),
            error: None,
            steps: with_steps.then(|| run.steps.into_iter().map(StepJson::from_api).collect()),
        }
    }
}

impl StepJson {
    fn from_history(s: StepRow) -> StepJson {
        StepJson {
            index: s.index,
            step: s.step,
            plugin: s.plugin,
            version: s.version,
            sha256: s.sha256,
            action: s.action,
            status: s.status,
            attempts: s.attempts,
            started_ms: s.started_ms,
            ended_ms: s.ended_ms,
            output: s.output,
            output_truncated: s.output_truncated,
            logs: Some(s.logs),
            error: s.error,
        }
    }

    fn from_api(s: pb::Step) -> StepJson {
        StepJson {
            index: i64::from(s.index),
            step: s.step,
            plugin: s.plugin,
            version: some(s.plugin_version),
            sha256: some(s.plugin_sha256),
            action: s.action,
            status: s.status,
            attempts: i64::from(s.attempts),
            started_ms: s.started_ms,
            ended_ms: ended(s.finished_ms),
            output: value(&s.output_json),
            output_truncated: s.output_truncated,
            logs: None,
            error: some(s.error),
        }
    }
}
