//! Host capabilities: the per-run state a plugin's store carries, and the one chokepoint every
//! capability call goes through ([`RunContext::authorize`]): deadline and cancellation first,
//! then the grant, then a record of the use, allowed or denied. One file per WIT interface.

pub mod exec;
pub mod fs;
pub mod http;
pub mod kv;
pub mod log;
pub mod service;
pub mod sysinfo;

use crate::bindings::CapError;
use crate::error::RunError;
use crate::grant::{Grant, Operation};
use crate::host_env::HostEnv;
use crate::limits::{Limit, MAX_RECORDED_CAPABILITY_USES};
use crate::report::Invocation;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// The error side of every capability call: either a value the plugin gets back, or the end of
/// the run (deadline, cancellation, a limit) which traps the plugin.
#[derive(Debug)]
pub enum CapFailure {
    Cap(CapError),
    Stop(RunError),
}

impl From<CapError> for CapFailure {
    fn from(e: CapError) -> Self {
        CapFailure::Cap(e)
    }
}

/// Cooperative cancellation of a run, shared with whoever may cancel it.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Sleep for `duration` or until cancelled, whichever comes first; true when cancelled.
    pub fn wait(&self, duration: Duration) -> bool {
        // Polled in short slices: a backoff is rare and short, and a flag needs no lock.
        const SLICE: Duration = Duration::from_millis(10);
        let end = Instant::now() + duration;
        loop {
            if self.is_cancelled() {
                return true;
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            std::thread::sleep(left.min(SLICE));
        }
    }
}

/// One capability call, as recorded for the run report (and the audit log).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CapabilityUse {
    /// WIT interface, e.g. `exec`, `fs`.
    pub capability: String,
    /// WIT function, e.g. `run`, `read`.
    pub function: String,
    /// What was acted on: program, path, key, host or service.
    pub target: String,
    /// Program arguments, for `exec`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Milliseconds since the run started.
    pub at_ms: u64,
}

/// A captured plugin log record.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LogRecord {
    pub level: String,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<(String, String)>,
    pub at_ms: u64,
}

/// The export a run calls, as the chokepoint needs to know it: only `apply` may change the
/// machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Export {
    Discover,
    Check,
    Plan,
    Apply,
}

impl Export {
    pub fn of(invocation: &Invocation) -> Export {
        match invocation {
            Invocation::Discover => Export::Discover,
            Invocation::Check => Export::Check,
            Invocation::Plan => Export::Plan,
            Invocation::Apply(_) => Export::Apply,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Export::Discover => "discover",
            Export::Check => "check",
            Export::Plan => "plan",
            Export::Apply => "apply",
        }
    }

    /// Whether a call of this export may change the machine (write files, control services).
    pub fn may_change_machine(self) -> bool {
        match self {
            Export::Apply => true,
            Export::Discover | Export::Check | Export::Plan => false,
        }
    }
}

/// Everything a capability needs during one run.
pub struct RunContext {
    pub grant: Arc<Grant>,
    /// What this run calls; decides whether operations that change the machine are allowed.
    pub export: Export,
    pub started: Instant,
    pub deadline: Instant,
    pub cancel: CancelToken,
    pub logs: Vec<LogRecord>,
    /// The run's one output budget: log records, stdout and stderr (see `log`).
    pub output: Arc<log::OutputBudget>,
    pub uses: Vec<CapabilityUse>,
    pub uses_dropped: u64,
    pub kv: Option<Arc<crate::kv_store::KvStore>>,
    /// Granted fs roots opened so far in this run.
    pub fs_roots: fs::OpenRoots,
    /// The machine (or fixture) the capabilities act on.
    pub env: HostEnv,
    /// Why the host ended the run, when it did; the trap is mapped back to this.
    pub stop_reason: Option<RunError>,
}

impl RunContext {
    pub fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Time left before the run's deadline; ends the run when none is left or it was cancelled.
    pub fn remaining(&mut self) -> Result<Duration, CapFailure> {
        if self.cancel.is_cancelled() {
            return Err(self.stop(RunError::Cancelled));
        }
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let limit_ms = self.grant.limits.timeout.as_millis() as u64;
            return Err(self.stop(RunError::LimitExceeded(Limit::Timeout { limit_ms })));
        }
        Ok(left)
    }

    pub fn stop(&mut self, reason: RunError) -> CapFailure {
        self.stop_reason.get_or_insert(reason.clone());
        CapFailure::Stop(reason)
    }

    /// The chokepoint: check time, check what this export may do, check the grant, record the
    /// use.
    pub fn authorize(
        &mut self,
        op: Operation<'_>,
        function: &'static str,
        target: &str,
        args: &[String],
    ) -> Result<(), CapFailure> {
        self.remaining()?;
        let decision = if op.changes_machine() && !self.export.may_change_machine() {
            // Whatever the grant says: a check, a plan or a dry run that acts is not a dry run.
            Err(format!(
                "{} is not allowed during `{}`: only `apply` may change the machine",
                op.capability(),
                self.export.name()
            ))
        } else {
            self.grant.authorize(&op)
        };
        self.record(
            op.capability(),
            function,
            target,
            args,
            decision.as_ref().err().cloned(),
        );
        decision.map_err(|reason| CapFailure::Cap(CapError::Denied(reason)))
    }

    /// Record a use decided elsewhere (e.g. a malformed argument refused before the grant check).
    pub fn record(
        &mut self,
        capability: &str,
        function: &str,
        target: &str,
        args: &[String],
        denied: Option<String>,
    ) {
        if self.uses.len() >= MAX_RECORDED_CAPABILITY_USES {
            self.uses_dropped += 1;
            return;
        }
        let use_ = CapabilityUse {
            capability: capability.into(),
            function: function.into(),
            target: truncate(target, 4096),
            args: args.iter().take(64).map(|a| truncate(a, 1024)).collect(),
            allowed: denied.is_none(),
            reason: denied,
            at_ms: self.elapsed_ms(),
        };
        tracing::debug!(plugin = %self.grant.plugin, capability, function, target, allowed = use_.allowed, "capability use");
        self.uses.push(use_);
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Memory limiter that remembers whether the plugin hit its limit, to name it in the error.
pub struct MemoryLimiter {
    pub limit_bytes: u64,
    pub hit: bool,
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.limit_bytes {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// The data of one plugin's store.
pub struct HostState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limiter: MemoryLimiter,
    pub cx: RunContext,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl crate::bindings::warden::plugin::types::Host for HostState {
    fn convert_cap_error(&mut self, err: CapFailure) -> wasmtime::Result<CapError> {
        match err {
            CapFailure::Cap(e) => Ok(e),
            CapFailure::Stop(reason) => Err(wasmtime::Error::new(reason)),
        }
    }
}
