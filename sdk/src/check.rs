//! The check role (WIT `check`): measure something, judge it, and report a status, a one-line
//! summary and metrics.

use crate::PluginError;

/// A check plugin. Implement it and register the type with [`crate::check!`]
/// (or, for a remediation that also checks, [`crate::check_remediation!`]).
///
/// ```
/// use warden_sdk::{Check, CheckResult, PluginError, Status, sysinfo};
///
/// struct Memory;
///
/// impl Check for Memory {
///     fn check(_config: &str) -> Result<CheckResult, PluginError> {
///         let mem = sysinfo::memory()?;
///         let status = if mem.available_bytes < 100 << 20 {
///             Status::Critical
///         } else {
///             Status::Ok
///         };
///         Ok(CheckResult::new(status, format!("{} bytes available", mem.available_bytes))
///             .metric("available_bytes", mem.available_bytes as f64, "bytes"))
///     }
/// }
///
/// warden_sdk::check!(Memory);
/// ```
pub trait Check {
    /// Run the check. `config` is the plugin's JSON configuration (see [`crate::config()`]).
    fn check(config: &str) -> Result<CheckResult, PluginError>;
}

/// The verdict of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// All is well.
    Ok,
    /// Needs attention soon.
    Warning,
    /// Needs attention now.
    Critical,
    /// The check could not tell.
    Unknown,
}

impl Status {
    /// How bad the status is: ok < unknown < warning < critical. A known problem outranks not
    /// knowing, so aggregating several results never hides a warning behind an unknown.
    pub fn severity(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Unknown => 1,
            Status::Warning => 2,
            Status::Critical => 3,
        }
    }

    /// The worse of two statuses (see [`Status::severity`]).
    pub fn worst(self, other: Status) -> Status {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }

    /// The WIT name: `ok`, `warning`, `critical` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Critical => "critical",
            Status::Unknown => "unknown",
        }
    }
}

/// One measurement reported with a check result.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// Name, e.g. `used_percent:/var`.
    pub name: String,
    /// The measured value.
    pub value: f64,
    /// Unit, e.g. `bytes`, `percent`, `seconds`; empty when unitless.
    pub unit: String,
}

impl Metric {
    /// A metric with a unit (`""` for none).
    pub fn new(name: impl Into<String>, value: f64, unit: impl Into<String>) -> Self {
        Metric {
            name: name.into(),
            value,
            unit: unit.into(),
        }
    }
}

/// What a check reports.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    /// The verdict.
    pub status: Status,
    /// One line for a human.
    pub summary: String,
    /// Measurements behind the verdict.
    pub metrics: Vec<Metric>,
}

impl CheckResult {
    /// A result without metrics.
    pub fn new(status: Status, summary: impl Into<String>) -> Self {
        CheckResult {
            status,
            summary: summary.into(),
            metrics: Vec::new(),
        }
    }

    /// Shorthand for [`Status::Ok`].
    pub fn ok(summary: impl Into<String>) -> Self {
        CheckResult::new(Status::Ok, summary)
    }

    /// Shorthand for [`Status::Warning`].
    pub fn warning(summary: impl Into<String>) -> Self {
        CheckResult::new(Status::Warning, summary)
    }

    /// Shorthand for [`Status::Critical`].
    pub fn critical(summary: impl Into<String>) -> Self {
        CheckResult::new(Status::Critical, summary)
    }

    /// Shorthand for [`Status::Unknown`].
    pub fn unknown(summary: impl Into<String>) -> Self {
        CheckResult::new(Status::Unknown, summary)
    }

    /// Add a metric, builder style.
    pub fn metric(mut self, name: impl Into<String>, value: f64, unit: impl Into<String>) -> Self {
        self.metrics.push(Metric::new(name, value, unit));
        self
    }
}
