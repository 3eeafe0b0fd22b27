//! The sandbox proper: one wasmtime engine and linker, the precompiled cache, the components
//! linked so far, and [`Sandbox::run`], which runs one export of a prepared component under a
//! resolved grant and returns everything that happened as a [`RunReport`].
//!
//! What the sandbox does not do: find plugins (it is handed a manifest and bytes), decide trust,
//! or write audit records. Its caller (the agent's plugin manager, or the test harness) does
//! those; a [`UseObserver`] hears of every capability use the moment the chokepoint decides it,
//! so the caller can record the trail as the run goes.

use crate::bindings::{RunnerHost, check, discovery, remediation, ticketing};
use crate::capabilities::log::{CapturedOutput, OutputBudget};
use crate::capabilities::{CapFailure, Export, HostState, MemoryLimiter, RunContext, UseObserver};
use crate::engine::{CodeQuality, CompileCache, EpochTicker, new_engine_with, new_pooled_engine};
use crate::host_env::HostEnv;
use crate::kv_store::KvStore;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use warden_core::grant::Grant;
use warden_core::limits::Limit;
use warden_core::manifest::Manifest;
use warden_core::report::{CacheOutcome, Invocation, Output, PluginRef, RunReport};
use warden_core::{RunError, RunRequest};
use wasmtime::component::{HasSelf, InstancePre, Linker};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;

/// How a sandbox is built: its instance pool, where precompiled code is kept, what the
/// capabilities act on.
#[derive(Clone)]
pub struct SandboxConfig {
    /// Live instances at once (`limits.max-instances`); the pool is sized from it.
    pub max_instances: u32,
    /// The largest linear memory any plugin may get (`limits.max-memory-mb`).
    pub max_memory_bytes: u64,
    /// The precompiled cache.
    pub cache_dir: PathBuf,
    pub quality: CodeQuality,
    pub env: HostEnv,
}

/// A component compiled, checked against its manifest and linked: ready to instantiate.
pub struct Prepared {
    pre: InstancePre<HostState>,
    /// The manifest's config schema, compiled once rather than on every run.
    schema: Option<jsonschema::Validator>,
    /// What the import check warned about (e.g. a requested capability the code never uses).
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("warnings", &self.warnings)
            .finish_non_exhaustive()
    }
}

/// Which linked component serves a plugin's runs. The import check depends on the manifest as
/// well as the bytes, so both the name and the hash name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PreparedKey {
    plugin: String,
    sha256: String,
}

/// One run for [`Sandbox::run`]: the grant is resolved by the caller, once, and refusals are
/// the caller's to report.
pub struct Job<'a> {
    pub manifest: &'a Manifest,
    pub sha256: &'a str,
    pub prepared: &'a Prepared,
    pub grant: Grant,
    pub request: &'a RunRequest,
    /// Where the plugin's kv state lives (`<dir>/<plugin>.json`), when kv is granted.
    pub kv_dir: Option<&'a Path>,
    /// Told of every capability use as it is decided.
    pub observer: Option<Arc<dyn UseObserver>>,
    /// Whether the component came from the precompiled cache, for the report.
    pub cache: Option<CacheOutcome>,
}

/// Counts live instances against the limit.
struct InstanceSlot<'a>(&'a AtomicU32);

impl Drop for InstanceSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The engine, linker, caches and live-instance count of one process. `&Sandbox` is `Sync`.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<HostState>,
    cache: CompileCache,
    env: HostEnv,
    prepared: Mutex<HashMap<PreparedKey, Arc<Prepared>>>,
    live: AtomicU32,
    max_instances: u32,
    /// Whether instances come from the pooling allocator (else on demand: the pool could not
    /// be reserved).
    pooled: bool,
    _ticker: EpochTicker,
}

impl Sandbox {
    pub fn new(config: SandboxConfig) -> Result<Sandbox, RunError> {
        let (engine, pooled) = match new_pooled_engine(
            config.max_instances,
            config.max_memory_bytes,
            config.quality,
        ) {
            Ok(engine) => (engine, true),
            Err(e) => {
                tracing::warn!("instance pool unavailable, allocating on demand: {e:#}");
                (
                    new_engine_with(config.quality).map_err(RunError::internal)?,
                    false,
                )
            }
        };
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(RunError::internal)?;
        RunnerHost::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(RunError::internal)?;
        let cache = CompileCache::new(&config.cache_dir, &engine);
        let ticker = EpochTicker::start(&engine);
        if config.env.fs_base.is_none() {
            // Found now rather than at the first exec: finding it kills what the exec children
            // of a runner that died by SIGKILL left in their cgroups (see `process::cgroup`).
            crate::process::containment();
        }
        Ok(Sandbox {
            engine,
            linker,
            cache,
            env: config.env,
            prepared: Mutex::new(HashMap::new()),
            live: AtomicU32::new(0),
            max_instances: config.max_instances,
            pooled,
            _ticker: ticker,
        })
    }

    /// Whether this sandbox acts on a test fixture rather than the machine.
    pub fn on_fixture(&self) -> bool {
        self.env.fs_base.is_some()
    }

    /// Whether plugin instances come from the pooling allocator.
    pub fn instance_pool(&self) -> bool {
        self.pooled
    }

    /// Plugin instances alive right now.
    pub fn live_instances(&self) -> u32 {
        self.live.load(Ordering::SeqCst)
    }

    /// Compile (or load precompiled), check against the manifest and link a component, without
    /// keeping it: an install checks first and keeps only what it then stores.
    pub fn check(
        &self,
        manifest: &Manifest,
        sha256: &str,
        bytes: impl FnOnce() -> Result<Vec<u8>, RunError>,
    ) -> Result<(Prepared, CacheOutcome), RunError> {
        let (component, cache) = self.cache.load_or_compile(&self.engine, sha256, bytes)?;
        let warnings = crate::interfaces::check(&self.engine, &component, manifest)?;
        let pre =
            self.linker
                .instantiate_pre(&component)
                .map_err(|e| RunError::InvalidComponent {
                    reason: format!("{e:#}"),
                })?;
        // The manifest's schema was validated when it was loaded; compiling it again cannot fail
        // unless a stored record was edited, which is reported as a bad config.
        let schema = manifest
            .config_schema
            .as_ref()
            .map(warden_core::config_schema::compile)
            .transpose()
            .map_err(|e| RunError::InvalidConfig {
                plugin: manifest.name.clone(),
                errors: vec![format!("config-schema: {e}")],
            })?;
        Ok((
            Prepared {
                pre,
                schema,
                warnings,
            },
            cache,
        ))
    }

    /// Keep a checked component for the runs of `manifest`'s plugin at `sha256`. One version is
    /// kept per name: another process may have replaced the plugin since the last version was
    /// linked here, and a long-lived agent must not keep every version it saw.
    pub fn keep(&self, manifest: &Manifest, sha256: &str, prepared: Prepared) -> Arc<Prepared> {
        let prepared = Arc::new(prepared);
        if let Ok(mut kept) = self.prepared.lock() {
            kept.retain(|k, _| k.plugin != manifest.name);
            kept.insert(
                PreparedKey {
                    plugin: manifest.name.clone(),
                    sha256: sha256.to_string(),
                },
                prepared.clone(),
            );
        }
        prepared
    }

    /// The linked component for `manifest`'s plugin at `sha256`: from memory, else loaded,
    /// checked and kept. The cache outcome is `None` when it came from memory.
    pub fn load(
        &self,
        manifest: &Manifest,
        sha256: &str,
        bytes: impl FnOnce() -> Result<Vec<u8>, RunError>,
    ) -> Result<(Arc<Prepared>, Option<CacheOutcome>), RunError> {
        let key = PreparedKey {
            plugin: manifest.name.clone(),
            sha256: sha256.to_string(),
        };
        if let Some(p) = self.prepared.lock().map_err(RunError::internal)?.get(&key) {
            return Ok((p.clone(), None));
        }
        let (prepared, cache) = self.check(manifest, sha256, bytes)?;
        Ok((self.keep(manifest, sha256, prepared), Some(cache)))
    }

    /// Forget what was linked for `name`, after it was reinstalled or removed.
    pub fn forget(&self, name: &str) {
        if let Ok(mut kept) = self.prepared.lock() {
            kept.retain(|k, _| k.plugin != name);
        }
    }

    /// Run one export of a prepared component. Never panics on plugin behaviour: every outcome
    /// is in the report.
    pub fn run(&self, job: Job<'_>) -> RunReport {
        let started = Instant::now();
        let mut report = RunReport::new(&job.request.invocation);
        report.plugin = Some(PluginRef {
            name: job.manifest.name.clone(),
            version: job.manifest.version.to_string(),
            sha256: job.sha256.to_string(),
        });
        report.cache = job.cache;
        report.result = self.run_inner(job, &mut report);
        report.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        report
    }

    fn run_inner(&self, job: Job<'_>, report: &mut RunReport) -> Result<Output, RunError> {
        let Job {
            manifest,
            prepared,
            grant,
            request: req,
            kv_dir,
            observer,
            ..
        } = job;
        manifest
            .role
            .check_invocation(&manifest.name, &req.invocation)?;
        let config = serde_json::to_string(&req.config).map_err(RunError::internal)?;
        warden_core::config_schema::check_size(config.len())
            .and_then(|()| {
                warden_core::config_schema::validate_with(prepared.schema.as_ref(), &req.config)
            })
            .map_err(|errors| RunError::InvalidConfig {
                plugin: manifest.name.clone(),
                errors,
            })?;

        let max = self.max_instances;
        if self.live.fetch_add(1, Ordering::SeqCst) >= max {
            self.live.fetch_sub(1, Ordering::SeqCst);
            return Err(RunError::LimitExceeded(Limit::Instances { limit: max }));
        }
        let _slot = InstanceSlot(&self.live);

        let mut grant = grant;
        if let Some(t) = req.timeout {
            grant.limits.timeout = grant.limits.timeout.min(t);
        }
        let grant = Arc::new(grant);
        // One budget for log records, stdout and stderr together, as `limits.log-bytes` says.
        let output = OutputBudget::new(grant.limits.log_bytes);
        let stdout = CapturedOutput::new(output.clone());
        let stderr = CapturedOutput::new(output.clone());
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let kv = match (grant.kv_quota_bytes, kv_dir) {
            (Some(quota), Some(dir)) => Some(Arc::new(KvStore::new(
                dir.join(format!("{}.json", manifest.name)),
                quota,
            ))),
            _ => None,
        };
        let now = Instant::now();
        let cx = RunContext {
            grant: grant.clone(),
            export: Export::of(&req.invocation),
            started: now,
            deadline: now + grant.limits.timeout,
            cancel: req.cancel.clone(),
            logs: vec![],
            output,
            uses: vec![],
            uses_dropped: 0,
            last_use: None,
            observer,
            kv,
            fs_roots: Default::default(),
            env: self.env.clone(),
            stop_reason: None,
        };
        let state = HostState {
            wasi,
            table: wasmtime::component::ResourceTable::new(),
            limiter: MemoryLimiter {
                limit_bytes: grant.limits.memory_bytes,
                hit: false,
            },
            cx,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut ctx| {
            let cx = &mut ctx.data_mut().cx;
            match cx.remaining() {
                Ok(_) => Ok(UpdateDeadline::Continue(1)),
                Err(CapFailure::Stop(reason)) => Err(wasmtime::Error::new(reason)),
                Err(CapFailure::Cap(_)) => Ok(UpdateDeadline::Continue(1)),
            }
        });

        let mut outcome = call(&prepared.pre, &mut store, &req.invocation, &config);
        let data = store.data_mut();
        // The run's kv changes are written once, whatever the outcome; a failed write fails it.
        if let Some(Err(e)) = data.cx.kv.as_ref().map(|kv| kv.commit())
            && matches!(outcome, Ok(Ok(_)))
        {
            outcome = Err(wasmtime::Error::new(RunError::Store {
                message: format!("kv state not saved: {e}"),
            }));
        }
        report.logs = std::mem::take(&mut data.cx.logs);
        report.capability_uses = std::mem::take(&mut data.cx.uses);
        report.capability_uses_dropped = data.cx.uses_dropped;
        report.stdout = stdout.text();
        report.stderr = stderr.text();
        match outcome {
            // Whatever the plugin made of a refused write, the budget was exceeded.
            Ok(_) if data.cx.output.exceeded() => Err(data.cx.output.error()),
            Ok(Ok(output)) => Ok(output),
            Ok(Err(plugin_error)) => Err(RunError::Plugin {
                code: plugin_error.code,
                message: plugin_error.message,
            }),
            Err(trap) => Err(match classify_trap(trap, store.data()) {
                // A panic's message goes to stderr; it says more than the trap itself.
                RunError::Trap { message } => RunError::Trap {
                    message: with_stderr_tail(message, &report.stderr),
                },
                other => other,
            }),
        }
    }
}

type CallResult = wasmtime::Result<Result<Output, crate::bindings::PluginError>>;

fn call(
    pre: &InstancePre<HostState>,
    store: &mut Store<HostState>,
    invocation: &Invocation,
    config: &str,
) -> CallResult {
    let instance = pre.instantiate(&mut *store)?;
    Ok(match invocation {
        Invocation::Discover => {
            let guest = discovery::GuestIndices::new(pre)?.load(&mut *store, &instance)?;
            guest
                .call_discover(&mut *store, config)?
                .map(|groups| Output::Facts(groups.into_iter().map(Into::into).collect()))
        }
        Invocation::Check => {
            let guest = check::GuestIndices::new(pre)?.load(&mut *store, &instance)?;
            guest
                .call_check(&mut *store, config)?
                .map(|r| Output::Check(r.into()))
        }
        Invocation::Plan => {
            let guest = remediation::GuestIndices::new(pre)?.load(&mut *store, &instance)?;
            guest
                .call_plan(&mut *store, config)?
                .map(|actions| Output::Plan(actions.into_iter().map(Into::into).collect()))
        }
        Invocation::Apply(actions) => {
            let guest = remediation::GuestIndices::new(pre)?.load(&mut *store, &instance)?;
            let actions: Vec<remediation::Action> = actions.iter().map(Into::into).collect();
            guest
                .call_apply(&mut *store, config, &actions)?
                .map(|outcomes| Output::Applied(outcomes.into_iter().map(Into::into).collect()))
        }
        Invocation::Ticket(call) => {
            use warden_core::ticket::TicketCall;
            let guest = ticketing::GuestIndices::new(pre)?.load(&mut *store, &instance)?;
            let replied = match call {
                TicketCall::Open(t) => guest.call_open(&mut *store, config, &t.into())?,
                TicketCall::Note(n) => guest.call_note(&mut *store, config, &n.into())?,
                TicketCall::Close(n) => guest.call_close(&mut *store, config, &n.into())?,
            };
            replied.map(|t| Output::Ticket(t.into()))
        }
    })
}

fn with_stderr_tail(message: String, stderr: &str) -> String {
    let said: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
        .collect();
    if said.is_empty() {
        return message;
    }
    let mut tail = said.join(" ");
    if tail.len() > 1000 {
        let mut cut = tail.len() - 1000;
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        tail = format!("…{}", &tail[cut..]);
    }
    format!("{message}; plugin stderr: {tail}")
}

/// Name the reason a call ended in a trap: a limit or stop the host decided, or the plugin's fault.
fn classify_trap(err: wasmtime::Error, state: &HostState) -> RunError {
    if let Some(reason) = &state.cx.stop_reason {
        return reason.clone();
    }
    // Refused stdout or stderr bytes trap inside WASI, where the run context is out of reach.
    if state.cx.output.exceeded() {
        return state.cx.output.error();
    }
    if let Some(reason) = err.downcast_ref::<RunError>() {
        return reason.clone();
    }
    if state.limiter.hit {
        return RunError::LimitExceeded(Limit::Memory {
            limit_bytes: state.limiter.limit_bytes,
        });
    }
    if let Some(Trap::StackOverflow) = err.downcast_ref::<Trap>() {
        return RunError::LimitExceeded(Limit::Stack {
            limit_bytes: warden_core::limits::DEFAULT_WASM_STACK_BYTES,
        });
    }
    // The first line names the trap; the wasm backtrace follows in the alternate form.
    let text = format!("{err:#}");
    RunError::Trap {
        message: text.lines().next().unwrap_or("trap").to_string(),
    }
}
