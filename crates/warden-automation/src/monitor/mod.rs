//! Monitors: a check plugin on an interval, a state machine that turns a streak of failures
//! into an incident, runs the remediation runbook, verifies it, and escalates when the fix
//! fails or the problem keeps recurring. Incidents (and their SLA figures) are persisted in
//! the history database.

pub mod config;
pub mod driver;
pub mod state;

pub use config::{FailOn, Monitor, MonitorConfig};
pub use state::{Action, EscalationReason, Incident, Machine, MonitorState, Verdict};

#[cfg(test)]
mod tests;
