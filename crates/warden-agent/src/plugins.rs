//! The plugin manager: the agent's one way to install, remove and run plugins. It owns the
//! content-addressed store (with its in-memory record cache), the rollback high-water marks, the
//! audit log and the sandbox, and it is the only place that decides what a run is allowed before
//! the sandbox runs it: the installed record, the grant (resolved once per run), the role, and an
//! apply's durable audit record. Installs live in `install.rs`.

use crate::metrics::AgentMetrics;
use crate::record_cache::RecordCache;
use crate::site_policy::{self, InForce, PolicyCell};
use crate::store::{InstalledPlugin, PluginStore, StoreError};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use warden_audit::AuditLog;
use warden_audit::records::{run_record, use_record};
use warden_bundle::high_water::HighWaterMarks;
use warden_core::grant::{Grant, GrantReport};
use warden_core::policy::SitePolicy;
use warden_core::report::{CapabilityUse, Invocation, RunReport};
use warden_core::{RunError, RunRequest};
use warden_host::capabilities::UseObserver;
use warden_host::engine::CodeQuality;
use warden_host::host_env::HostEnv;
use warden_host::service_manager::ServiceManager;
use warden_host::{Job, Sandbox, SandboxConfig};

/// What [`PluginManager::warm_up`] loaded.
#[derive(Debug, Default)]
pub struct WarmUp {
    /// Plugins whose next run starts from linked code in memory.
    pub ready: Vec<String>,
    /// Plugins that could not be loaded, and why.
    pub failed: Vec<(String, RunError)>,
}

/// Installed plugins of one data dir, run in one sandbox under one site policy. `&PluginManager`
/// is `Sync`: the daemon shares one across its run slots.
pub struct PluginManager {
    pub(crate) sandbox: Sandbox,
    pub(crate) store: PluginStore,
    /// The policy in force: the agent's file, or a signed policy distributed to it.
    pub(crate) site_policy: PolicyCell,
    /// The agent's own file: its root of trust for distributed policies.
    pub(crate) local_policy: SitePolicy,
    pub(crate) policy_apply: std::sync::Mutex<()>,
    pub(crate) audit: Arc<AuditLog>,
    pub(crate) high_water: HighWaterMarks,
    records: RecordCache,
    /// Counted here: capability uses and install refusals; the daemon adds the rest.
    pub(crate) metrics: Arc<AgentMetrics>,
}

fn store_error(e: StoreError) -> RunError {
    RunError::Store {
        message: e.to_string(),
    }
}

impl PluginManager {
    /// The plugins in `data_dir`, under `policy`, acting on this machine.
    pub fn new(data_dir: &Path, policy: SitePolicy) -> Result<PluginManager, RunError> {
        let services: Arc<dyn ServiceManager> =
            Arc::from(warden_host::service_manager::from_config(&policy.services));
        PluginManager::with_services(data_dir, policy, services)
    }

    /// Same, with a given service manager (tests use a scripted one).
    pub fn with_services(
        data_dir: &Path,
        policy: SitePolicy,
        services: Arc<dyn ServiceManager>,
    ) -> Result<PluginManager, RunError> {
        PluginManager::with_env(
            data_dir,
            policy,
            HostEnv::real(services),
            CodeQuality::Optimized,
        )
    }

    /// Same, on a given host environment and code quality.
    pub fn with_env(
        data_dir: &Path,
        policy: SitePolicy,
        env: HostEnv,
        quality: CodeQuality,
    ) -> Result<PluginManager, RunError> {
        let store = PluginStore::open(data_dir).map_err(store_error)?;
        let audit = AuditLog::new(data_dir);
        let high_water = HighWaterMarks::new(data_dir);
        let local_policy = policy;
        let (policy, distributed) =
            site_policy::at_start(data_dir, &local_policy, &audit, &high_water);
        let cache_dir = policy
            .cache_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("cache"));
        let sandbox = Sandbox::new(SandboxConfig {
            max_instances: policy.limits.max_instances,
            max_memory_bytes: policy.limits.max_memory_mb.saturating_mul(1 << 20),
            cache_dir,
            quality,
            env,
        })?;
        record_policy(&audit, &policy)?;
        Ok(PluginManager {
            sandbox,
            store,
            site_policy: PolicyCell::new(InForce {
                policy: Arc::new(policy),
                distributed,
            }),
            local_policy,
            policy_apply: Default::default(),
            audit: Arc::new(audit),
            high_water,
            records: Default::default(),
            metrics: Default::default(),
        })
    }

    /// The agent's metrics (docs/METRICS.md).
    pub fn metrics(&self) -> &Arc<AgentMetrics> {
        &self.metrics
    }

    /// The site policy in force now (a distributed policy may replace it at any time: a run
    /// resolves its grant once, against the policy of its start).
    pub fn policy(&self) -> Arc<SitePolicy> {
        self.site_policy.read().policy
    }

    pub fn store(&self) -> &PluginStore {
        &self.store
    }

    pub fn data_dir(&self) -> PathBuf {
        self.store.data_dir().to_path_buf()
    }

    /// The sandbox plugins run in.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// Whether plugin instances come from the pooling allocator.
    pub fn instance_pool(&self) -> bool {
        self.sandbox.instance_pool()
    }

    /// Plugin instances alive right now.
    pub fn live_instances(&self) -> u32 {
        self.sandbox.live_instances()
    }

    /// The audit log of this data dir.
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

    /// Requested versus granted for an installed plugin.
    pub fn inspect(&self, name: &str) -> Result<(InstalledPlugin, GrantReport), RunError> {
        let installed = self.installed(name)?;
        let report = Grant::resolve(&installed.manifest, &self.policy());
        Ok((InstalledPlugin::clone(&installed), report))
    }

    /// The store record, from memory while its file is unchanged (see `record_cache`).
    fn installed(&self, name: &str) -> Result<Arc<InstalledPlugin>, RunError> {
        self.records
            .get(&self.store, name)
            .map_err(store_error)?
            .ok_or_else(|| RunError::PluginNotFound {
                name: name.to_string(),
            })
    }

    /// Load and link every installed plugin now, so that the first run of each costs what later
    /// runs cost (for an 18 MB Python plugin, loading its precompiled code is about half of a
    /// first run). For long-lived processes: the agent calls it at start; a one-shot
    /// `warden run` loads only what it runs. A plugin that cannot be loaded is reported, not
    /// fatal: its runs will report the same error.
    pub fn warm_up(&self) -> Result<WarmUp, RunError> {
        let installed = self.store.list().map_err(store_error)?;
        let mut warm = WarmUp::default();
        for plugin in installed {
            match self.load(&plugin) {
                Ok(_) => warm.ready.push(plugin.manifest.name),
                Err(e) => warm.failed.push((plugin.manifest.name, e)),
            }
        }
        Ok(warm)
    }

    fn load(
        &self,
        installed: &InstalledPlugin,
    ) -> Result<
        (
            Arc<warden_host::Prepared>,
            Option<warden_core::report::CacheOutcome>,
        ),
        RunError,
    > {
        let sha = &installed.sha256;
        self.sandbox.load(&installed.manifest, sha, || {
            self.store.read_component(sha).map_err(store_error)
        })
    }

    /// Remove an installed plugin; its component stays in the store while another name uses it.
    pub fn remove(&self, name: &str) -> Result<Option<InstalledPlugin>, RunError> {
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

    /// Forget what was cached for `name`, after it was reinstalled or removed.
    pub(crate) fn forget(&self, name: &str) {
        self.records.forget(name);
        self.sandbox.forget(name);
    }

    /// Run a plugin. Never panics on plugin behaviour: every outcome is in the report. An apply
    /// is audited, durably, before it starts (and does not start if it cannot be); each
    /// capability use is audited as the chokepoint decides it (durably before an apply acts);
    /// the run's own record is written when it ends.
    pub fn run(&self, req: &RunRequest) -> RunReport {
        let context = &req.audit_context;
        let apply = matches!(req.invocation, Invocation::Apply(_));
        if let Invocation::Apply(actions) = &req.invocation
            && let Err(e) = self.audit.append(
                "remediation.apply",
                serde_json::json!({ "plugin": req.plugin, "actions": actions, "context": context }),
            )
        {
            return RunReport::failed(
                &req.invocation,
                RunError::Audit {
                    message: e.to_string(),
                },
            );
        }
        let mut report = self.run_checked(req, apply);
        // An apply's record is durable before it returns; a read-only run's is group-committed
        // (see `audit::group`): durable within a few milliseconds, or at `flush`/drop.
        let written = run_record(context, &report)
            .map_err(warden_audit::AuditError::from)
            .and_then(|record| {
                if apply {
                    self.audit.append_now(vec![record]).map(drop)
                } else {
                    self.audit.append_lazy(vec![record])
                }
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

    fn run_checked(&self, req: &RunRequest, apply: bool) -> RunReport {
        let started = std::time::Instant::now();
        let installed = match self.installed(&req.plugin) {
            Ok(i) => i,
            Err(e) => return RunReport::failed(&req.invocation, e),
        };
        let manifest = &installed.manifest;
        let fail = |e: RunError| {
            let mut report = RunReport::failed(&req.invocation, e);
            report.plugin = Some(installed.plugin_ref());
            report.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
            report
        };
        let GrantReport {
            grant, refusals, ..
        } = Grant::resolve(manifest, &self.policy());
        if !refusals.is_empty() {
            return fail(RunError::GrantRefused {
                plugin: manifest.name.clone(),
                refusals: refusals.iter().map(ToString::to_string).collect(),
            });
        }
        if let Err(e) = manifest
            .role
            .check_invocation(&manifest.name, &req.invocation)
        {
            return fail(e);
        }
        let (prepared, cache) = match self.load(&installed) {
            Ok(p) => p,
            Err(e) => return fail(e),
        };
        let kv_dir = self.data_dir().join("kv");
        let observer = Arc::new(AuditTrail {
            audit: self.audit.clone(),
            plugin: req.plugin.clone(),
            context: req.audit_context.clone(),
            durable: apply,
            metrics: self.metrics.clone(),
        });
        self.sandbox.run(Job {
            manifest,
            sha256: &installed.sha256,
            prepared: &prepared,
            grant,
            request: req,
            kv_dir: Some(&kv_dir),
            observer: Some(observer),
            cache,
        })
    }
}

/// Writes each capability use to the audit log as the chokepoint decides it: durably during an
/// apply (the record is on disk before the call acts), group-committed otherwise.
struct AuditTrail {
    audit: Arc<AuditLog>,
    plugin: String,
    context: Value,
    durable: bool,
    metrics: Arc<AgentMetrics>,
}

impl UseObserver for AuditTrail {
    fn used(&self, used: &CapabilityUse) -> Result<(), String> {
        self.metrics.capability_used(&used.capability, used.allowed);
        let record = use_record(&self.plugin, &self.context, used).map_err(|e| e.to_string())?;
        let written = if self.durable {
            self.audit.append_now(vec![record]).map(drop)
        } else {
            self.audit.append_lazy(vec![record])
        };
        written.map_err(|e| e.to_string())
    }
}

/// Audit the site policy when it differs from the one last recorded in this data dir.
fn record_policy(audit: &AuditLog, policy: &SitePolicy) -> Result<(), RunError> {
    let json = serde_json::to_value(policy).map_err(RunError::internal)?;
    let sha = warden_core::sha256_hex(json.to_string().as_bytes());
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
    warden_core::fsutil::write_atomic(&marker, sha.as_bytes()).map_err(RunError::internal)
}

impl warden_runbook::StepRunner for PluginManager {
    fn run(&self, req: &RunRequest) -> RunReport {
        PluginManager::run(self, req)
    }

    fn inspect(&self, plugin: &str) -> Result<(warden_core::Manifest, GrantReport), RunError> {
        PluginManager::inspect(self, plugin).map(|(installed, grant)| (installed.manifest, grant))
    }
}
