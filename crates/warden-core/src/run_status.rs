//! Where a runbook run is in its life, in one enum: the engine ends a run with it, the agent's
//! run queue reports it, the history stores its word and the API, schedules and monitors read it
//! back. The words are part of the stored history and the API (`succeeded`, `cancelled`, ...), so
//! they never change; a word nobody knows is a typed error, never a silent default.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// Accepted, waiting for a run slot.
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// The process running it stopped while it was in flight (found at the next start); it is
    /// never re-run by itself.
    Interrupted,
}

impl RunStatus {
    pub const ALL: [RunStatus; 6] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Cancelled,
        RunStatus::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Interrupted => "interrupted",
        }
    }

    /// The run will not change any more.
    pub fn is_final(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }

    pub fn succeeded(self) -> bool {
        self == RunStatus::Succeeded
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a run status (one of: queued, running, succeeded, failed, cancelled, interrupted)"
)]
pub struct UnknownRunStatus(pub String);

impl FromStr for RunStatus {
    type Err = UnknownRunStatus;

    fn from_str(s: &str) -> Result<RunStatus, UnknownRunStatus> {
        RunStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownRunStatus(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_from_its_word_and_serde_agrees() {
        for status in RunStatus::ALL {
            assert_eq!(status.as_str().parse::<RunStatus>(), Ok(status));
            let json = serde_json::to_value(status).expect("serializes");
            assert_eq!(json, serde_json::Value::String(status.as_str().into()));
        }
        assert_eq!(
            "bogus".parse::<RunStatus>(),
            Err(UnknownRunStatus("bogus".into()))
        );
    }

    #[test]
    fn only_queued_and_running_are_unfinished() {
        let open: Vec<RunStatus> = RunStatus::ALL
            .into_iter()
            .filter(|s| !s.is_final())
            .collect();
        assert_eq!(open, vec![RunStatus::Queued, RunStatus::Running]);
    }
}
