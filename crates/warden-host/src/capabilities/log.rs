//! `warden:plugin/log`, and the run's one output budget: log records and the bytes the plugin
//! writes to WASI stdout and stderr are all charged to `limits.log-bytes`. Exceeding it ends the
//! run with [`Limit::LogBytes`], whichever of the three went over; a flood cannot fill memory,
//! the history or the disk, and cannot be spread over the three to get three budgets.

use super::{HostState, LogRecord};
use crate::bindings::Field;
use crate::bindings::warden::plugin::log::{Host, Level};
use bytes::Bytes;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use warden_core::error::RunError;
use warden_core::limits::Limit;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// What a stream reports it can take in one write. Above what is left of the budget on purpose:
/// a guest told "nothing left" would see a closed stream and could carry on as if it had
/// written; allowed to write, it goes over and the run ends as the budget says.
const WRITE_PERMIT: usize = 64 << 10;

/// Bytes of output one run may still produce, shared by its log records, stdout and stderr.
#[derive(Debug)]
pub struct OutputBudget {
    limit: usize,
    used: AtomicUsize,
    exceeded: AtomicBool,
}

impl OutputBudget {
    pub fn new(limit: usize) -> Arc<OutputBudget> {
        Arc::new(OutputBudget {
            limit,
            used: AtomicUsize::new(0),
            exceeded: AtomicBool::new(false),
        })
    }

    /// Take `n` bytes, or none and record that the budget was exceeded.
    pub fn charge(&self, n: usize) -> Result<(), RunError> {
        let taken = self
            .used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                used.checked_add(n).filter(|total| *total <= self.limit)
            });
        if taken.is_err() {
            self.exceeded.store(true, Ordering::SeqCst);
            return Err(self.error());
        }
        Ok(())
    }

    /// Whether some output was refused: the run ends with [`Self::error`].
    pub fn exceeded(&self) -> bool {
        self.exceeded.load(Ordering::SeqCst)
    }

    pub fn error(&self) -> RunError {
        RunError::LimitExceeded(Limit::LogBytes {
            limit_bytes: self.limit,
        })
    }

    /// Bytes charged so far.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::SeqCst)
    }
}

/// A plugin's stdout or stderr: kept in memory for the run report, charged to the run's budget.
#[derive(Debug, Clone)]
pub struct CapturedOutput {
    budget: Arc<OutputBudget>,
    kept: Arc<Mutex<Vec<u8>>>,
}

impl CapturedOutput {
    pub fn new(budget: Arc<OutputBudget>) -> CapturedOutput {
        CapturedOutput {
            budget,
            kept: Arc::default(),
        }
    }

    /// What was written, as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        match self.kept.lock() {
            Ok(kept) => String::from_utf8_lossy(&kept).into_owned(),
            Err(_) => String::new(),
        }
    }

    /// Keep `bytes` if the budget has room for all of them; otherwise keep none.
    fn keep(&self, bytes: &[u8]) -> Result<(), RunError> {
        self.budget.charge(bytes.len())?;
        match self.kept.lock() {
            Ok(mut kept) => kept.extend_from_slice(bytes),
            // Only a panic while holding the lock poisons it; the bytes are lost, not the run.
            Err(poisoned) => poisoned.into_inner().extend_from_slice(bytes),
        }
        Ok(())
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

// What `#[async_trait]` would write: a stream that never blocks is always ready.
impl Pollable for CapturedOutput {
    fn ready<'a, 'b>(&'a mut self) -> Pin<Box<dyn std::future::Future<Output = ()> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(std::future::ready(()))
    }
}

impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        // A trap, not an error the guest may ignore: the budget ends the run.
        self.keep(&bytes)
            .map_err(|e| StreamError::Trap(wasmtime::Error::new(e)))
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(WRITE_PERMIT)
    }
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(
            self.keep(buf)
                .map(|()| buf.len())
                .map_err(std::io::Error::other),
        )
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

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
        if let Err(reason) = cx.output.charge(size) {
            cx.stop_reason.get_or_insert(reason.clone());
            return Err(wasmtime::Error::new(reason));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_and_both_streams_share_one_budget() {
        let budget = OutputBudget::new(10);
        let mut out = CapturedOutput::new(budget.clone());
        let mut err = CapturedOutput::new(budget.clone());
        budget.charge(4).expect("a log record within the budget");
        out.write(Bytes::from_static(b"abc")).expect("fits");
        err.write(Bytes::from_static(b"de")).expect("fits");
        assert_eq!(budget.used(), 9);
        assert!(!budget.exceeded());
        assert!(matches!(
            err.write(Bytes::from_static(b"fg")),
            Err(StreamError::Trap(_))
        ));
        assert!(budget.exceeded());
        assert_eq!((out.text(), err.text()), ("abc".into(), "de".into()));
        // Exactly the budget is not over it.
        let budget = OutputBudget::new(3);
        let mut out = CapturedOutput::new(budget.clone());
        out.write(Bytes::from_static(b"abc")).expect("exactly fits");
        assert!(out.check_write().is_ok_and(|n| n > 0));
        assert!(!budget.exceeded());
    }
}
