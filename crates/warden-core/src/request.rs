//! What a caller asks of a plugin run: which plugin, which export, its configuration, and the
//! run's cancellation, deadline and audit context.

use crate::cancel::CancelToken;
use crate::report::Invocation;

/// What a caller asks the runner to do.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub plugin: String,
    pub config: serde_json::Value,
    pub invocation: Invocation,
    pub cancel: CancelToken,
    /// A deadline shorter than the grant's (e.g. a runbook step's `timeout-ms`).
    pub timeout: Option<std::time::Duration>,
    /// Added to this run's audit records (e.g. the runbook run and step).
    pub audit_context: serde_json::Value,
}

impl RunRequest {
    pub fn new(plugin: &str, invocation: Invocation) -> RunRequest {
        RunRequest {
            plugin: plugin.to_string(),
            config: serde_json::Value::Object(Default::default()),
            invocation,
            cancel: CancelToken::default(),
            timeout: None,
            audit_context: serde_json::Value::Null,
        }
    }

    pub fn with_config(mut self, config: serde_json::Value) -> RunRequest {
        self.config = config;
        self
    }
}
