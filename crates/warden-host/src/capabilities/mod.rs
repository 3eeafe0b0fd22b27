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
use crate::host_env::HostEnv;
use std::sync::Arc;
use std::time::{Duration, Instant};
pub use warden_core::CancelToken;
use warden_core::error::RunError;
use warden_core::grant::{Grant, Operation};
use warden_core::limits::{Limit, MAX_RECORDED_CAPABILITY_USES};
pub use warden_core::report::{CapabilityUse, Export, LogRecord};
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
    /// The last use the chokepoint decided (kept even past the recording cap), so that a denial
    /// found after the grant check names the call it denies.
    pub last_use: Option<CapabilityUse>,
    /// Told of every recorded use as it is decided (the agent writes it to the audit log).
    pub observer: Option<Arc<dyn UseObserver>>,
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
                op.capability().interface(),
                self.export.name()
            ))
        } else {
            self.grant.authorize(&op)
        };
        self.record(
            op.capability().interface(),
            function,
            target,
            args,
            decision.as_ref().err().cloned(),
        )?;
        decision.map_err(|reason| CapFailure::Cap(CapError::Denied(reason)))
    }

    /// Record a use decided elsewhere (e.g. a malformed argument refused before the grant check).
    /// A use the observer cannot record ends the run: what cannot be audited is not done.
    pub fn record(
        &mut self,
        capability: &str,
        function: &str,
        target: &str,
        args: &[String],
        denied: Option<String>,
    ) -> Result<(), CapFailure> {
        let use_ = CapabilityUse {
            capability: capability.into(),
            function: function.into(),
            target: truncate(target, 4096),
            args: args.iter().take(64).map(|a| truncate(a, 1024)).collect(),
            allowed: denied.is_none(),
            reason: denied,
            at_ms: self.elapsed_ms(),
        };
        self.last_use = Some(use_.clone());
        self.keep(use_)
    }

    /// The grant allowed the last call but the filesystem showed it must not happen (it escapes
    /// the root, or names a file that is not plain): a second record, denied, with the reason.
    /// The first record stays as it was written: it may already be in the audit log.
    pub fn deny_last(&mut self, why: &str) -> Result<(), CapFailure> {
        let Some(mut use_) = self.last_use.clone() else {
            return Ok(());
        };
        use_.allowed = false;
        use_.reason = Some(why.to_string());
        use_.at_ms = self.elapsed_ms();
        self.keep(use_)
    }

    fn keep(&mut self, use_: CapabilityUse) -> Result<(), CapFailure> {
        if self.uses.len() >= MAX_RECORDED_CAPABILITY_USES {
            self.uses_dropped += 1;
            return Ok(());
        }
        tracing::debug!(plugin = %self.grant.plugin, capability = %use_.capability, function = %use_.function, target = %use_.target, allowed = use_.allowed, "capability use");
        if let Some(observer) = &self.observer
            && let Err(message) = observer.used(&use_)
        {
            return Err(self.stop(RunError::Audit { message }));
        }
        self.uses.push(use_);
        Ok(())
    }
}

/// Hears of every recorded capability use the moment the chokepoint decides it, in order. The
/// agent appends each to the audit log, so a crash in the middle of a run loses none of them; an
/// error ends the run with `audit` (fail closed).
pub trait UseObserver: Send + Sync {
    fn used(&self, use_: &CapabilityUse) -> Result<(), String>;
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
