//! The runner: resolves a plugin's grant, validates its configuration, loads its component (from
//! the precompiled cache), instantiates it in a fresh store with its limits, calls the export for
//! the requested invocation, and turns whatever happens into a [`RunReport`].

use crate::audit::AuditLog;
use crate::bindings::{RunnerHost, check, discovery, remediation};
use crate::capabilities::log::{CapturedOutput, OutputBudget};
use crate::capabilities::{CancelToken, Export, HostState, MemoryLimiter, RunContext};
use crate::engine::{CacheOutcome, CodeQuality, CompileCache, EpochTicker, new_engine_with};
use crate::error::RunError;
use crate::grant::{Grant, GrantReport};
use crate::high_water::HighWaterMarks;
use crate::host_env::HostEnv;
use crate::install::{InstallError, InstallReport};
use crate::kv_store::KvStore;
use crate::limits::Limit;
use crate::policy::SitePolicy;
use crate::report::{Invocation, Output, PluginRef, RunReport};
use crate::service_manager::ServiceManager;
use crate::store::{InstalledPlugin, PluginStore};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use wasmtime::component::{HasSelf, InstancePre, Linker};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;

/// A component ready to instantiate, with the checks already done.
pub(crate) struct Prepared {
    pre: InstancePre<HostState>,
    /// The manifest's config schema, compiled once rather than on every run.
    schema: Option<jsonschema::Validator>,
}

/// What [`Runner::warm_up`] loaded.
#[derive(Debug, Default)]
pub struct WarmUp {
    /// Plugins whose next run starts from linked code in memory.
    pub ready: Vec<String>,
    /// Plugins that could not be loaded, and why.
    pub failed: Vec<(String, RunError)>,
}

/// What a caller asks the runner to do.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub plugin: String,
    pub config: serde_json::Value,
    pub invocation: Invocation,
    pub cancel: CancelToken,
    /// A deadline shorter than the grant's (e.g. a runbook step's `timeout-ms`).
    pub timeout: Option<std::time::Duration>,
    /// Added to this run's audit records (e.g. the runbook run and step).
    pub audit_context: serde_json::Value,
}

impl RunRequest {
    pub fn new(plugin: &str, invocation: Invocation) -> RunRequest {
        RunRequest {
            plugin: plugin.to_string(),
            config: serde_json::Value::Object(Default::default()),
            invocation,
            cancel: CancelToken::default(),
            timeout: None,
            audit_context: serde_json::Value::Null,
        }
    }

    pub fn with_config(mut self, config: serde_json::Value) -> RunRequest {
        self.config = config;
        self
    }
}

/// Counts live instances against the policy's limit.
struct InstanceSlot<'a>(&'a AtomicU32);

impl Drop for InstanceSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The sandboxed plugin runner. Cheap to share across threads (`&Runner` is `Sync`).
pub struct Runner {
    engine: Engine,
    linker: Linker<HostState>,
    store: PluginStore,
    cache: CompileCache,
    policy: SitePolicy,
    env: HostEnv,
    prepared: Mutex<HashMap<String, Arc<Prepared>>>,
    live: AtomicU32,
    /// Whether instances come from the pooling allocator (else on demand: the pool could not
    /// be reserved).
    pooled: bool,
    audit: Arc<AuditLog>,
    records: crate::record_cache::RecordCache,
    high_water: HighWaterMarks,
    _ticker: EpochTicker,
}

impl Runner {
    /// A runner over the store in `data_dir`, under `policy`.
    pub fn new(data_dir: &Path, policy: SitePolicy) -> Result<Runner, RunError> {
        let services: Arc<dyn ServiceManager> =
            Arc::from(crate::service_manager::from_config(&policy.services));
        Runner::with_services(data_dir, policy, services)
    }

    /// Same, with a given service manager (tests use a scripted one).
    pub fn with_services(
        data_dir: &Path,
        policy: SitePolicy,
        services: Arc<dyn ServiceManager>,
    ) -> Result<Runner, RunError> {
        Runner::with_env(
            data_dir,
            policy,
            HostEnv::real(services),
            CodeQuality::Optimized,
        )
    }

    /// Same, on a given host environment and code quality (the plugin test harness passes a
    /// fixture, and compiles quickly).
    pub fn with_env(
        data_dir: &Path,
        policy: SitePolicy,
        env: HostEnv,
        quality: CodeQuality,
    ) -> Result<Runner, RunError> {
        let (engine, pooled) = match crate::engine::new_pooled_engine(
            policy.limits.max_instances,
            policy.limits.max_memory_mb.saturating_mul(1 << 20),
            quality,
        ) {
            Ok(engine) => (engine, true),
            Err(e) => {
                tracing::warn!("instance pool unavailable, allocating on demand: {e:#}");
                (new_engine_with(quality).map_err(RunError::internal)?, false)
            }
        };
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(RunError::internal)?;
        RunnerHost::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(RunError::internal)?;
        let store = PluginStore::open(data_dir).map_err(|e| RunError::Store {
            message: e.to_string(),
        })?;
        let cache_dir = policy
            .cache_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("cache"));
        let cache = CompileCache::new(&cache_dir, &engine);
        let audit = AuditLog::new(data_dir);
        record_policy(&audit, &policy)?;
        let ticker = EpochTicker::start(&engine);
        if env.fs_base.is_none() {
            // Found now rather than at the first exec: finding it kills what the exec children
            // of a runner that died by SIGKILL left in their cgroups (see `process::cgroup`).
            crate::process::containment();
        }
        Ok(Runner {
            engine,
            linker,
            store,
            cache,
            policy,
            env,
            prepared: Mutex::new(HashMap::new()),
            live: AtomicU32::new(0),
            pooled,
            audit: Arc::new(audit),
            records: Default::default(),
            high_water: HighWaterMarks::new(data_dir),
            _ticker: ticker,
        })
    }

    pub fn policy(&self) -> &SitePolicy {
        &self.policy
    }

    pub fn store(&self) -> &PluginStore {
        &self.store
    }

    pub fn data_dir(&self) -> PathBuf {
        self.store.data_dir().to_path_buf()
    }

    /// Whether this runner acts on a test fixture rather than the machine (see `testkit`).
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

    /// Requested versus granted for an installed plugin.
    pub fn inspect(&self, name: &str) -> Result<(InstalledPlugin, GrantReport), RunError> {
        let installed = self.installed(name)?;
        let report = Grant::resolve(&installed.manifest, &self.policy);
        Ok((InstalledPlugin::clone(&installed), report))
    }

    /// The store record, from memory while its file is unchanged (see `record_cache`).
    fn installed(&self, name: &str) -> Result<Arc<InstalledPlugin>, RunError> {
        self.records
            .get(&self.store, name)
            .map_err(|e| RunError::Store {
                message: e.to_string(),
            })?
            .ok_or_else(|| RunError::PluginNotFound {
                name: name.to_string(),
            })
    }

    /// Install a signed bundle.
    pub fn install_bundle(&self, path: &Path) -> Result<InstallReport, InstallError> {
        crate::install::install_bundle(self, path)
    }

    /// Install a plugin directory (manifest + component): development mode only.
    pub fn install_dir(&self, dir: &Path) -> Result<InstallReport, InstallError> {
        crate::install::install_dir(self, dir)
    }

    /// The audit log of this runner's data dir.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// The same audit log, shared (for the agent's drivers: one writer per process).
    pub fn audit_shared(&self) -> Arc<AuditLog> {
        self.audit.clone()
    }

    /// Rollback high-water marks.
    pub fn high_water(&self) -> &HighWaterMarks {
        &self.high_water
    }

    /// Compile (or load precompiled) and check a component against its manifest.
    pub(crate) fn compile_checked(
        &self,
        manifest: &crate::manifest::Manifest,
        sha256: &str,
        bytes: impl FnOnce() -> Result<Vec<u8>, RunError>,
    ) -> Result<(InstancePre<HostState>, Vec<String>, CacheOutcome), RunError> {
        let (component, cache) = self.cache.load_or_compile(&self.engine, sha256, bytes)?;
        let warnings = crate::interfaces::check(&self.engine, &component, manifest)?;
        let pre =
            self.linker
                .instantiate_pre(&component)
                .map_err(|e| RunError::InvalidComponent {
                    reason: format!("{e:#}"),
                })?;
        Ok((pre, warnings, cache))
    }

    fn prepare(
        &self,
        installed: &InstalledPlugin,
    ) -> Result<(Arc<Prepared>, Option<CacheOutcome>), RunError> {
        // The import check depends on the manifest too, so the key names both.
        let key = prepared_key(&installed.manifest.name, &installed.sha256);
        if let Some(p) = self.prepared.lock().map_err(RunError::internal)?.get(&key) {
            return Ok((p.clone(), None));
        }
        let sha = &installed.sha256;
        let (pre, _warnings, cache) = self.compile_checked(&installed.manifest, sha, || {
            self.store.read_component(sha).map_err(|e| RunError::Store {
                message: e.to_string(),
            })
        })?;
        let prepared = self.keep_prepared(&installed.manifest, sha, pre)?;
        Ok((prepared, Some(cache)))
    }

    /// Keep a linked component for the runs of `manifest`'s plugin at `sha256`.
    pub(crate) fn keep_prepared(
        &self,
        manifest: &crate::manifest::Manifest,
        sha256: &str,
        pre: InstancePre<HostState>,
    ) -> Result<Arc<Prepared>, RunError> {
        // The manifest's schema was validated at install; compiling it again cannot fail unless
        // the store record was edited, which is reported as a bad config.
        let schema = manifest
            .config_schema
            .as_ref()
            .map(crate::config_schema::compile)
            .transpose()
            .map_err(|e| RunError::InvalidConfig {
                plugin: manifest.name.clone(),
                errors: vec![format!("config-schema: {e}")],
            })?;
        let prepared = Arc::new(Prepared { pre, schema });
        let mut kept = self.prepared.lock().map_err(RunError::internal)?;
        // One version per name: another process may have replaced the plugin since the last
        // version was linked here, and a long-lived agent must not keep every version it saw.
        drop_versions(&mut kept, &manifest.name);
        kept.insert(prepared_key(&manifest.name, sha256), prepared.clone());
        Ok(prepared)
    }

    /// Load and link every installed plugin now, so that the first run of each costs what later
    /// runs cost (for an 18 MB Python plugin, loading its precompiled code is about half of a
    /// first run). For long-lived processes: the agent calls it at start; a one-shot
    /// `warden run` loads only what it runs. A plugin that cannot be loaded is reported, not
    /// fatal: its runs will report the same error.
    pub fn warm_up(&self) -> Result<WarmUp, RunError> {
        let installed = self.store.list().map_err(|e| RunError::Store {
            message: e.to_string(),
        })?;
        let mut warm = WarmUp::default();
        for plugin in installed {
            match self.prepare(&plugin) {
                Ok(_) => warm.ready.push(plugin.manifest.name),
                Err(e) => warm.failed.push((plugin.manifest.name, e)),
            }
        }
        Ok(warm)
    }

    /// Remove an installed plugin; its component stays in the store while another name uses it.
    pub fn remove(&self, name: &str) -> Result<Option<InstalledPlugin>, RunError> {
        let store_error = |e: crate::store::StoreError| RunError::Store {
            message: e.to_string(),
        };
        if self.store.get(name).map_err(store_error)?.is_some() {
            // Audited first: a removal that cannot be recorded does not happen.
            self.audit
                .append("plugin.removed", serde_json::json!({ "name": name }))
                .map_err(|e| RunError::Store {
                    message: format!("not removed: {e}"),
                })?;
        }
        let removed = self.store.remove(name).map_err(store_error)?;
        self.forget(name);
        Ok(removed)
    }

    /// Forget what was prepared for `name`, after it was reinstalled or removed.
    pub(crate) fn forget(&self, name: &str) {
        self.records.forget(name);
        if let Ok(mut kept) = self.prepared.lock() {
            drop_versions(&mut kept, name);
        }
    }

    /// Run a plugin. Never panics on plugin behaviour: every outcome is in the report. An apply
    /// is audited before it starts (and does not start if it cannot be); the run and each
    /// capability use are audited when it ends.
    pub fn run(&self, req: &RunRequest) -> RunReport {
        let started = Instant::now();
        let mut report = RunReport {
            plugin: None,
            invocation: req.invocation.name().to_string(),
            result: Err(RunError::Internal {
                message: "not run".into(),
            }),
            logs: vec![],
            capability_uses: vec![],
            capability_uses_dropped: 0,
            stdout: String::new(),
            stderr: String::new(),
            duration_ms: 0.0,
            cache: None,
        };
        let context = &req.audit_context;
        if let Invocation::Apply(actions) = &req.invocation
            && let Err(e) = self.audit.append(
                "remediation.apply",
                serde_json::json!({ "plugin": req.plugin, "actions": actions, "context": context }),
            )
        {
            report.result = Err(RunError::Audit {
                message: e.to_string(),
            });
            return report;
        }
        report.result = self.run_inner(req, &mut report);
        report.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        // An apply's records are durable before it returns; a read-only run's are group-committed
        // (see `audit::group`): durable within a few milliseconds, or at `flush`/drop.
        let written = crate::audit::records::run_records(&req.plugin, context, &report)
            .map_err(crate::audit::AuditError::from)
            .and_then(|events| match req.invocation {
                Invocation::Apply(_) => self.audit.append_now(events).map(drop),
                _ => self.audit.append_lazy(events),
            });
        if let Err(e) = written {
            tracing::error!("audit log cannot be written: {e}");
            if report.result.is_ok() {
                report.result = Err(RunError::Audit {
                    message: e.to_string(),
                });
            }
        }
        report
    }

    fn run_inner(&self, req: &RunRequest, report: &mut RunReport) -> Result<Output, RunError> {
        let installed = self.installed(&req.plugin)?;
        let manifest = &installed.manifest;
        report.plugin = Some(PluginRef {
            name: manifest.name.clone(),
            version: manifest.version.to_string(),
            sha256: installed.sha256.clone(),
        });
        let GrantReport {
            grant, refusals, ..
        } = Grant::resolve(manifest, &self.policy);
        if !refusals.is_empty() {
            return Err(RunError::GrantRefused {
                plugin: manifest.name.clone(),
                refusals: refusals.iter().map(ToString::to_string).collect(),
            });
        }
        let role_ok = match &req.invocation {
            Invocation::Discover => manifest.role == crate::manifest::Role::Discovery,
            Invocation::Check => manifest.role.exports_check(),
            Invocation::Plan | Invocation::Apply(_) => manifest.role.may_change_machine(),
        };
        if !role_ok {
            return Err(RunError::RoleMismatch {
                plugin: manifest.name.clone(),
                role: manifest.role.to_string(),
                operation: req.invocation.name().to_string(),
            });
        }
        let (prepared, cache) = self.prepare(&installed)?;
        report.cache = cache;
        let config = serde_json::to_string(&req.config).map_err(RunError::internal)?;
        crate::config_schema::check_size(config.len())
            .and_then(|()| {
                crate::config_schema::validate_with(prepared.schema.as_ref(), &req.config)
            })
            .map_err(|errors| RunError::InvalidConfig {
                plugin: manifest.name.clone(),
                errors,
            })?;

        let max = self.policy.limits.max_instances;
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
        let kv = grant.kv_quota_bytes.map(|quota| {
            Arc::new(KvStore::new(
                self.data_dir()
                    .join("kv")
                    .join(format!("{}.json", manifest.name)),
                quota,
            ))
        });
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
                Err(crate::capabilities::CapFailure::Stop(reason)) => {
                    Err(wasmtime::Error::new(reason))
                }
                Err(crate::capabilities::CapFailure::Cap(_)) => Ok(UpdateDeadline::Continue(1)),
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

/// Audit the site policy when it differs from the one last recorded in this data dir.
fn record_policy(audit: &AuditLog, policy: &SitePolicy) -> Result<(), RunError> {
    let json = serde_json::to_value(policy).map_err(RunError::internal)?;
    let sha = crate::store::sha256_hex(json.to_string().as_bytes());
    let marker = audit.path().with_file_name("policy.sha256");
    if std::fs::read_to_string(&marker).is_ok_and(|s| s.trim() == sha) {
        return Ok(());
    }
    audit
        .append(
            "policy.loaded",
            serde_json::json!({ "sha256": sha, "policy": json }),
        )
        .map_err(|e| RunError::Audit {
            message: e.to_string(),
        })?;
    crate::fsutil::write_atomic(&marker, sha.as_bytes()).map_err(RunError::internal)
}

fn prepared_key(name: &str, sha256: &str) -> String {
    format!("{name}@{sha256}")
}

/// Forget every linked version of `name`.
fn drop_versions(kept: &mut HashMap<String, Arc<Prepared>>, name: &str) {
    let prefix = prepared_key(name, "");
    kept.retain(|k, _| !k.starts_with(&prefix));
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
            limit_bytes: crate::limits::DEFAULT_WASM_STACK_BYTES,
        });
    }
    // The first line names the trap; the wasm backtrace follows in the alternate form.
    let text = format!("{err:#}");
    RunError::Trap {
        message: text.lines().next().unwrap_or("trap").to_string(),
    }
}
