//! A run's result from one agent, published with JetStream on `fleet.res.<tenant>.<agent>` into
//! the shared results stream, with `Nats-Msg-Id` = [`RunResult::msg_id`].
//!
//! An agent publishes at most two results per run: `running` when it accepts the command
//! (optional; lets the NOC tell "running" from "missing"), then one final result. It keeps each
//! in its durable outbox until the stream acknowledges it, and re-publishes with the same msg id
//! (after a restart too), so the stream drops a copy inside its duplicate window and the
//! controller's store (unique on run and agent) drops it after.
//!
//! On a re-send of a run id its ledger holds, the agent runs nothing: it re-publishes the result
//! it keeps for that run (same msg id), or `refused: replayed` if it no longer has one. The
//! controller keeps the first final result of an agent, so a late `replayed` never hides a
//! `succeeded`.

use serde::{Deserialize, Serialize};
use warden_fleet_identity::{AgentId, TenantId, subjects};

use crate::WIRE_VERSION;
use crate::codec::{Malformed, Message, check_text};
use crate::run_id::RunId;
use crate::time::UnixMillis;

/// Largest encoded result: 64 KiB. [`MAX_STEPS`] steps of at most
/// [`MAX_STEP_NAME_LEN`] + [`MAX_STEP_DETAIL_LEN`] bytes plus JSON overhead is about 40 KiB;
/// the cap is what 10,000 agents answering one run can put in the stream at most (640 MiB), so
/// a result is a summary, never a log: full output stays in the agent's history.
pub const MAX_RESULT_BYTES: usize = 64 * 1024;
/// Steps summarised in one result; a longer runbook reports its first steps and says how many
/// were left out ([`RunResult::steps_omitted`]).
pub const MAX_STEPS: usize = 64;
pub const MAX_STEP_NAME_LEN: usize = 128;
/// One line about the step (its output's summary or its error).
pub const MAX_STEP_DETAIL_LEN: usize = 256;
/// The run's error: one line for a table cell and a log line.
pub const MAX_ERROR_LEN: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunResult {
    pub v: u32,
    pub run: RunId,
    pub agent: AgentId,
    pub tenant: TenantId,
    pub status: RunStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<UnixMillis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<UnixMillis>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepSummary>,
    /// Steps run but not summarised (over [`MAX_STEPS`]).
    #[serde(default)]
    pub steps_omitted: u32,
    /// Why it failed or was refused, one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Where the run is on that agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum RunStatus {
    /// Accepted and started; a final status follows.
    Running,
    Succeeded,
    Failed,
    /// Stopped before the end (agent shutdown, operator cancel).
    Cancelled,
    /// Not run at all.
    Refused {
        reason: RefusalReason,
    },
}

impl RunStatus {
    /// Whether no other status follows this one.
    pub fn is_final(&self) -> bool {
        !matches!(self, RunStatus::Running)
    }

    pub fn name(&self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Refused { .. } => "refused",
        }
    }
}

/// Why an agent ran nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefusalReason {
    /// The run id is in the ledger and its result is gone.
    Replayed,
    Expired,
    /// Issued further in the future than the clock-skew bound.
    ClockSkew,
    /// For another agent or tenant.
    Misaddressed,
    /// The bundle's signature is not by a publisher the agent trusts, or the named runbook is
    /// not installed (signed) on the agent.
    Untrusted,
    /// Malformed command or params the runbook refuses.
    Invalid,
    /// The agent is at its limit of concurrent runs; the controller's re-send retries.
    Busy,
}

impl RefusalReason {
    pub fn name(self) -> &'static str {
        match self {
            RefusalReason::Replayed => "replayed",
            RefusalReason::Expired => "expired",
            RefusalReason::ClockSkew => "clock-skew",
            RefusalReason::Misaddressed => "misaddressed",
            RefusalReason::Untrusted => "untrusted",
            RefusalReason::Invalid => "invalid",
            RefusalReason::Busy => "busy",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepSummary {
    pub name: String,
    pub status: StepStatus,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    Ok,
    Failed,
    Skipped,
}

impl RunResult {
    /// A result with no steps or times yet.
    pub fn new(run: RunId, tenant: TenantId, agent: AgentId, status: RunStatus) -> RunResult {
        RunResult {
            v: WIRE_VERSION,
            run,
            agent,
            tenant,
            status,
            started_at: None,
            finished_at: None,
            steps: Vec::new(),
            steps_omitted: 0,
            error: None,
        }
    }

    /// Where it is published: `fleet.res.<tenant>.<agent>` (JetStream, results stream).
    pub fn nats_subject(&self) -> String {
        subjects::result(&self.tenant, &self.agent)
    }

    /// `Nats-Msg-Id`: `<run>.<agent>` for the final result, `<run>.<agent>.running` for the
    /// acceptance, so the two never deduplicate each other.
    pub fn msg_id(&self) -> String {
        result_msg_id(&self.run, &self.agent, self.status.is_final())
    }
}

/// The `Nats-Msg-Id` of an agent's result for a run.
pub fn result_msg_id(run: &RunId, agent: &AgentId, is_final: bool) -> String {
    if is_final {
        format!("{run}.{agent}")
    } else {
        format!("{run}.{agent}.running")
    }
}

impl Message for RunResult {
    const KIND: &'static str = "result";
    const MAX_BYTES: usize = MAX_RESULT_BYTES;

    fn version(&self) -> u32 {
        self.v
    }

    fn check(&self) -> Result<(), Malformed> {
        if self.steps.len() > MAX_STEPS {
            return Err(Malformed::new(
                "steps",
                format!("{} steps, at most {MAX_STEPS}", self.steps.len()),
            ));
        }
        for step in &self.steps {
            if step.name.is_empty() {
                return Err(Malformed::new("steps.name", "empty"));
            }
            check_text("steps.name", &step.name, MAX_STEP_NAME_LEN)?;
            check_text("steps.detail", &step.detail, MAX_STEP_DETAIL_LEN)?;
        }
        if let Some(error) = &self.error {
            check_text("error", error, MAX_ERROR_LEN)?;
        }
        if let (Some(start), Some(end)) = (self.started_at, self.finished_at)
            && end < start
        {
            return Err(Malformed::new("finished_at", "before started_at"));
        }
        Ok(())
    }
}
