//! Errors: [`CapError`] is what a host capability call can fail with (WIT `cap-error`), and
//! [`PluginError`] is what a plugin returns from its role functions (WIT `plugin-error`).

use std::fmt;

use crate::__private::bindings::warden::plugin::types as wit;

/// Why a host capability refused or failed a call (WIT `cap-error`).
///
/// These are expected failures the plugin can handle; the host never traps for them. The text
/// carried by most cases comes from the host and names what was refused or missing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CapError {
    /// The site grant does not allow this call.
    Denied(String),
    /// The named file, key, service or program does not exist.
    NotFound(String),
    /// The call did not finish within its time limit.
    TimedOut,
    /// A size or count limit was reached.
    LimitExceeded(String),
    /// The arguments are malformed (bad path, bad key, bad URL, ...).
    Invalid(String),
    /// The operation was attempted and failed on the host.
    Failed(String),
    /// This host does not provide the operation on this platform.
    Unsupported(String),
}

impl CapError {
    /// The machine-readable code, exactly the WIT case name: `denied`, `not-found`, `timed-out`,
    /// `limit-exceeded`, `invalid`, `failed` or `unsupported`.
    pub fn code(&self) -> &'static str {
        match self {
            CapError::Denied(_) => "denied",
            CapError::NotFound(_) => "not-found",
            CapError::TimedOut => "timed-out",
            CapError::LimitExceeded(_) => "limit-exceeded",
            CapError::Invalid(_) => "invalid",
            CapError::Failed(_) => "failed",
            CapError::Unsupported(_) => "unsupported",
        }
    }

    /// The host's explanation; empty for [`CapError::TimedOut`].
    pub fn message(&self) -> &str {
        match self {
            CapError::Denied(m)
            | CapError::NotFound(m)
            | CapError::LimitExceeded(m)
            | CapError::Invalid(m)
            | CapError::Failed(m)
            | CapError::Unsupported(m) => m,
            CapError::TimedOut => "",
        }
    }
}

impl fmt::Display for CapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.message() {
            "" => f.write_str(self.code()),
            message => write!(f, "{}: {message}", self.code()),
        }
    }
}

impl std::error::Error for CapError {}

impl From<wit::CapError> for CapError {
    fn from(e: wit::CapError) -> Self {
        match e {
            wit::CapError::Denied(m) => CapError::Denied(m),
            wit::CapError::NotFound(m) => CapError::NotFound(m),
            wit::CapError::TimedOut => CapError::TimedOut,
            wit::CapError::LimitExceeded(m) => CapError::LimitExceeded(m),
            wit::CapError::Invalid(m) => CapError::Invalid(m),
            wit::CapError::Failed(m) => CapError::Failed(m),
            wit::CapError::Unsupported(m) => CapError::Unsupported(m),
        }
    }
}

/// The error a plugin returns from `discover`, `check`, `plan` or `apply` (WIT `plugin-error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    /// Machine-readable code, e.g. `bad-config`, `not-applicable`, or a [`CapError::code`].
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl PluginError {
    /// An error with the given code and message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        PluginError {
            code: code.into(),
            message: message.into(),
        }
    }

    /// The configuration is unusable (code `bad-config`); say which key is wrong and why.
    pub fn bad_config(message: impl Into<String>) -> Self {
        PluginError::new("bad-config", message)
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for PluginError {}

/// The capability error's code becomes the plugin error's code, so the runner can tell a denied
/// read from a plugin bug without parsing text.
impl From<CapError> for PluginError {
    fn from(e: CapError) -> Self {
        let message = match e.message() {
            "" => "the call did not finish within its time limit".to_string(),
            m => m.to_string(),
        };
        PluginError::new(e.code(), message)
    }
}

impl From<PluginError> for wit::PluginError {
    fn from(e: PluginError) -> Self {
        wit::PluginError {
            code: e.code,
            message: e.message,
        }
    }
}
