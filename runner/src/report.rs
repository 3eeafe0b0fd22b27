//! What a run returns, as serde types for the CLI's `--json`, the run history and the API:
//! the plugin's typed output, captured logs, and every capability use.

use crate::bindings::{check, discovery, remediation};
use crate::capabilities::{CapabilityUse, LogRecord};
use crate::engine::CacheOutcome;
use crate::error::RunError;
use serde::{Deserialize, Serialize};

/// Which export to call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "invocation", content = "actions", rename_all = "kebab-case")]
pub enum Invocation {
    Discover,
    Check,
    Plan,
    /// Apply exactly these actions (the approved plan).
    Apply(Vec<Action>),
}

impl Invocation {
    pub fn name(&self) -> &'static str {
        match self {
            Invocation::Discover => "discover",
            Invocation::Check => "check",
            Invocation::Plan => "plan",
            Invocation::Apply(_) => "apply",
        }
    }
}

/// The plugin that ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginRef {
    pub name: String,
    pub version: String,
    pub sha256: String,
}

/// One inventory object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FactGroup {
    pub kind: String,
    pub facts: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckStatus {
    Ok,
    Warning,
    Critical,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub name: String,
    pub value: f64,
    pub unit: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    pub status: CheckStatus,
    pub summary: String,
    pub metrics: Vec<Metric>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionKind {
    Create,
    Modify,
    Delete,
    Exec,
    ServiceStart,
    ServiceStop,
    ServiceRestart,
    Other,
}

/// One change a remediation plans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    pub id: String,
    pub kind: ActionKind,
    pub target: String,
    pub description: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutcomeStatus {
    Applied,
    Skipped,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionOutcome {
    pub id: String,
    pub status: OutcomeStatus,
    pub detail: String,
}

/// The typed result of a successful call.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", content = "value", rename_all = "kebab-case")]
pub enum Output {
    Facts(Vec<FactGroup>),
    Check(CheckResult),
    Plan(Vec<Action>),
    Applied(Vec<ActionOutcome>),
}

/// Everything about one run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub plugin: Option<PluginRef>,
    pub invocation: String,
    #[serde(with = "result_serde")]
    pub result: Result<Output, RunError>,
    pub logs: Vec<LogRecord>,
    pub capability_uses: Vec<CapabilityUse>,
    /// Capability uses beyond the recording cap, counted only.
    pub capability_uses_dropped: u64,
    /// WASI stdout/stderr of the plugin (e.g. Python `print`), capped.
    pub stdout: String,
    pub stderr: String,
    pub duration_ms: f64,
    pub cache: Option<CacheOutcome>,
}

mod result_serde {
    use super::*;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(r: &Result<Output, RunError>, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "kebab-case")]
        enum Tagged<'a> {
            Ok(&'a Output),
            Error {
                kind: &'static str,
                message: String,
                detail: &'a RunError,
            },
        }
        match r {
            Ok(o) => Tagged::Ok(o).serialize(s),
            Err(e) => Tagged::Error {
                kind: e.kind(),
                message: e.to_string(),
                detail: e,
            }
            .serialize(s),
        }
    }
}

impl From<discovery::FactGroup> for FactGroup {
    fn from(g: discovery::FactGroup) -> Self {
        use discovery::FactValue as V;
        let facts = g
            .facts
            .into_iter()
            .map(|f| {
                let value = match f.value {
                    V::Text(s) => serde_json::Value::String(s),
                    V::Integer(i) => serde_json::Value::from(i),
                    V::Float(x) => serde_json::Number::from_f64(x)
                        .map(serde_json::Value::Number)
                        .unwrap_or(serde_json::Value::Null),
                    V::Boolean(b) => serde_json::Value::Bool(b),
                    V::TextList(l) => serde_json::Value::from(l),
                };
                (f.key, value)
            })
            .collect();
        FactGroup {
            kind: g.kind,
            facts,
        }
    }
}

impl From<check::CheckResult> for CheckResult {
    fn from(r: check::CheckResult) -> Self {
        let status = match r.status {
            check::Status::Ok => CheckStatus::Ok,
            check::Status::Warning => CheckStatus::Warning,
            check::Status::Critical => CheckStatus::Critical,
            check::Status::Unknown => CheckStatus::Unknown,
        };
        CheckResult {
            status,
            summary: r.summary,
            metrics: r
                .metrics
                .into_iter()
                .map(|m| Metric {
                    name: m.name,
                    value: m.value,
                    unit: m.unit,
                })
                .collect(),
        }
    }
}

impl From<remediation::Action> for Action {
    fn from(a: remediation::Action) -> Self {
        use remediation::ActionKind as K;
        let kind = match a.kind {
            K::Create => ActionKind::Create,
            K::Modify => ActionKind::Modify,
            K::Delete => ActionKind::Delete,
            K::Exec => ActionKind::Exec,
            K::ServiceStart => ActionKind::ServiceStart,
            K::ServiceStop => ActionKind::ServiceStop,
            K::ServiceRestart => ActionKind::ServiceRestart,
            K::Other => ActionKind::Other,
        };
        Action {
            id: a.id,
            kind,
            target: a.target,
            description: a.description,
        }
    }
}

impl From<&Action> for remediation::Action {
    fn from(a: &Action) -> Self {
        use remediation::ActionKind as K;
        let kind = match a.kind {
            ActionKind::Create => K::Create,
            ActionKind::Modify => K::Modify,
            ActionKind::Delete => K::Delete,
            ActionKind::Exec => K::Exec,
            ActionKind::ServiceStart => K::ServiceStart,
            ActionKind::ServiceStop => K::ServiceStop,
            ActionKind::ServiceRestart => K::ServiceRestart,
            ActionKind::Other => K::Other,
        };
        remediation::Action {
            id: a.id.clone(),
            kind,
            target: a.target.clone(),
            description: a.description.clone(),
        }
    }
}

impl From<remediation::ActionOutcome> for ActionOutcome {
    fn from(o: remediation::ActionOutcome) -> Self {
        let status = match o.status {
            remediation::OutcomeStatus::Applied => OutcomeStatus::Applied,
            remediation::OutcomeStatus::Skipped => OutcomeStatus::Skipped,
            remediation::OutcomeStatus::Failed => OutcomeStatus::Failed,
        };
        ActionOutcome {
            id: o.id,
            status,
            detail: o.detail,
        }
    }
}
