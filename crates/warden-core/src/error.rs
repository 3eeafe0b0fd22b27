//! Typed errors of the runner's library boundary. A plugin's own failure, a limit it hit and a
//! refusal before it ran are distinct variants, so callers (CLI, runbooks, API) can tell them apart.

use crate::limits::Limit;
use serde::Serialize;

/// Why a plugin run did not produce a result.
#[derive(Debug, Clone, Serialize, thiserror::Error)]
#[serde(tag = "error", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RunError {
    #[error("plugin `{name}` is not installed")]
    PluginNotFound { name: String },
    #[error("plugin `{plugin}` cannot run: the site policy refuses {}", refusals.join("; "))]
    GrantRefused {
        plugin: String,
        refusals: Vec<String>,
    },
    #[error("plugin `{plugin}` imports `{interface}`, {reason}")]
    ImportNotGranted {
        plugin: String,
        interface: String,
        reason: String,
    },
    #[error("plugin `{plugin}` has no `{operation}` export (its role is {role})")]
    RoleMismatch {
        plugin: String,
        role: String,
        operation: String,
    },
    #[error("invalid configuration for `{plugin}`: {}", errors.join("; "))]
    InvalidConfig { plugin: String, errors: Vec<String> },
    #[error("not a valid Warden plugin component: {reason}")]
    InvalidComponent { reason: String },
    #[error("{0}")]
    LimitExceeded(Limit),
    #[error("plugin trapped: {message}")]
    Trap { message: String },
    #[error("plugin failed [{code}]: {message}")]
    Plugin { code: String, message: String },
    #[error("run cancelled")]
    Cancelled,
    #[error("plugin store: {message}")]
    Store { message: String },
    #[error("not done, because the audit log cannot be written: {message}")]
    Audit { message: String },
    #[error("internal error: {message}")]
    Internal { message: String },
}

impl RunError {
    pub fn internal(err: impl std::fmt::Display) -> Self {
        RunError::Internal {
            message: format!("{err:#}"),
        }
    }

    /// Whether another attempt of the same call could end differently. A refusal that depends
    /// only on the request, the installed plugin and the policy (a bad configuration, a refused
    /// grant, a missing plugin, a cancellation) gives the same answer every time: retrying it
    /// only delays the failure.
    pub fn is_retryable(&self) -> bool {
        match self {
            RunError::PluginNotFound { .. }
            | RunError::GrantRefused { .. }
            | RunError::ImportNotGranted { .. }
            | RunError::RoleMismatch { .. }
            | RunError::InvalidConfig { .. }
            | RunError::InvalidComponent { .. }
            | RunError::Cancelled => false,
            RunError::LimitExceeded(_)
            | RunError::Trap { .. }
            | RunError::Plugin { .. }
            | RunError::Store { .. }
            | RunError::Audit { .. }
            | RunError::Internal { .. } => true,
        }
    }

    /// Stable kebab-case name of the variant, for exit codes, JSON and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            RunError::PluginNotFound { .. } => "plugin-not-found",
            RunError::GrantRefused { .. } => "grant-refused",
            RunError::ImportNotGranted { .. } => "import-not-granted",
            RunError::RoleMismatch { .. } => "role-mismatch",
            RunError::InvalidConfig { .. } => "invalid-config",
            RunError::InvalidComponent { .. } => "invalid-component",
            RunError::LimitExceeded(_) => "limit-exceeded",
            RunError::Trap { .. } => "trap",
            RunError::Plugin { .. } => "plugin",
            RunError::Cancelled => "cancelled",
            RunError::Store { .. } => "store",
            RunError::Audit { .. } => "audit",
            RunError::Internal { .. } => "internal",
        }
    }
}
