//! What a run returns, as serde types for the CLI's `--json`, the run history and the API:
//! the plugin's typed output, captured logs, and every capability use.

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
    /// One call of a ticketing plugin's `ticketing` export.
    Ticket(crate::ticket::TicketCall),
}

impl Invocation {
    pub fn name(&self) -> &'static str {
        match self {
            Invocation::Discover => "discover",
            Invocation::Check => "check",
            Invocation::Plan => "plan",
            Invocation::Apply(_) => "apply",
            Invocation::Ticket(_) => "ticket",
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
    Ticket(crate::ticket::Ticket),
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

impl RunReport {
    /// A report of `invocation` before anything ran: failed with "not run" until the run sets it.
    pub fn new(invocation: &Invocation) -> RunReport {
        RunReport {
            plugin: None,
            invocation: invocation.name().to_string(),
            result: Err(RunError::Internal {
                message: "not run".into(),
            }),
            logs: vec![],
            capability_uses: vec![],
            capability_uses_dropped: 0,
            stdout: String::new(),
            stderr: String::new(),
            duration_ms: 0.0,
            cache: None,
        }
    }

    /// A report of `invocation` that ended before anything ran, with `error`.
    pub fn failed(invocation: &Invocation, error: RunError) -> RunReport {
        RunReport {
            result: Err(error),
            ..RunReport::new(invocation)
        }
    }
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

/// One capability call, as recorded for the run report (and the audit log).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CapabilityUse {
    /// WIT interface, e.g. `exec`, `fs`.
    pub capability: String,
    /// WIT function, e.g. `run`, `read`.
    pub function: String,
    /// What was acted on: program, path, key, host or service.
    pub target: String,
    /// Program arguments, for `exec`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Milliseconds since the run started.
    pub at_ms: u64,
}

/// A captured plugin log record.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LogRecord {
    pub level: String,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<(String, String)>,
    pub at_ms: u64,
}

/// The export a run calls, as the chokepoint needs to know it: only `apply` may change the
/// machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Export {
    Discover,
    Check,
    Plan,
    Apply,
    Ticket,
}

impl Export {
    pub fn of(invocation: &Invocation) -> Export {
        match invocation {
            Invocation::Discover => Export::Discover,
            Invocation::Check => Export::Check,
            Invocation::Plan => Export::Plan,
            Invocation::Apply(_) => Export::Apply,
            Invocation::Ticket(_) => Export::Ticket,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Export::Discover => "discover",
            Export::Check => "check",
            Export::Plan => "plan",
            Export::Apply => "apply",
            Export::Ticket => "ticket",
        }
    }

    /// Whether a call of this export may change the machine (write files, control services).
    pub fn may_change_machine(self) -> bool {
        match self {
            Export::Apply => true,
            Export::Discover | Export::Check | Export::Plan | Export::Ticket => false,
        }
    }
}

/// Whether a component came from the precompiled cache or was compiled now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheOutcome {
    Hit,
    Compiled,
}
