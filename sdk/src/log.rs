//! Structured logging into the run's captured log (WIT `log`). Always granted, but capped in
//! bytes per run: a plugin that floods the log is ended by the runner with a limit error.
//!
//! ```no_run
//! use warden_sdk::log;
//!
//! log::info("scanning", &[("dir", "/tmp"), ("older_than_days", "7")]);
//! log::warn("no dpkg database", &[]);
//! ```

use crate::__private::bindings::warden::plugin::{log as wit, types::Field};

/// Severity of a log record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Diagnostics useful when debugging a plugin.
    Debug,
    /// Normal progress.
    Info,
    /// Something unexpected that the plugin worked around.
    Warn,
    /// Something failed.
    Error,
}

impl From<Level> for wit::Level {
    fn from(level: Level) -> Self {
        match level {
            Level::Trace => wit::Level::Trace,
            Level::Debug => wit::Level::Debug,
            Level::Info => wit::Level::Info,
            Level::Warn => wit::Level::Warn,
            Level::Error => wit::Level::Error,
        }
    }
}

/// Append one record with structured `(key, value)` fields.
pub fn emit(level: Level, message: &str, fields: &[(&str, &str)]) {
    let fields: Vec<Field> = fields
        .iter()
        .map(|(key, value)| Field {
            key: (*key).to_string(),
            value: (*value).to_string(),
        })
        .collect();
    wit::emit(level.into(), message, &fields);
}

/// Log at [`Level::Trace`].
pub fn trace(message: &str, fields: &[(&str, &str)]) {
    emit(Level::Trace, message, fields);
}

/// Log at [`Level::Debug`].
pub fn debug(message: &str, fields: &[(&str, &str)]) {
    emit(Level::Debug, message, fields);
}

/// Log at [`Level::Info`].
pub fn info(message: &str, fields: &[(&str, &str)]) {
    emit(Level::Info, message, fields);
}

/// Log at [`Level::Warn`].
pub fn warn(message: &str, fields: &[(&str, &str)]) {
    emit(Level::Warn, message, fields);
}

/// Log at [`Level::Error`].
pub fn error(message: &str, fields: &[(&str, &str)]) {
    emit(Level::Error, message, fields);
}
