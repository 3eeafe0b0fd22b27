//! `warden:plugin/log`: structured log records captured per run, within the run's byte budget.
//! Exceeding the budget ends the run with [`Limit::LogBytes`]; a flood cannot fill the disk.

use super::{HostState, LogRecord};
use crate::bindings::Field;
use crate::bindings::warden::plugin::log::{Host, Level};
use crate::error::RunError;
use crate::limits::Limit;

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}

impl Host for HostState {
    fn emit(&mut self, level: Level, message: String, fields: Vec<Field>) -> wasmtime::Result<()> {
        let cx = &mut self.cx;
        let size = message.len()
            + fields
                .iter()
                .map(|f| f.key.len() + f.value.len())
                .sum::<usize>();
        let limit = cx.grant.limits.log_bytes;
        if cx.log_bytes + size > limit {
            let reason = RunError::LimitExceeded(Limit::LogBytes { limit_bytes: limit });
            cx.stop_reason.get_or_insert(reason.clone());
            return Err(wasmtime::Error::new(reason));
        }
        cx.log_bytes += size;
        let at_ms = cx.elapsed_ms();
        cx.logs.push(LogRecord {
            level: level_name(level).into(),
            message,
            fields: fields.into_iter().map(|f| (f.key, f.value)).collect(),
            at_ms,
        });
        Ok(())
    }
}
