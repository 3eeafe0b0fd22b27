//! Running a plugin against fixtures: a private data dir and a site policy that allows exactly
//! what the manifest requests, the plugin installed from its directory (compiled once, through
//! the precompiled cache), then each case on a fresh fake machine with what it did recorded.

use super::fakes::{FakeMachine, FakeSysinfo};
use super::fixture::{FileSpec, Fixture, RunKind};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use warden_core::fsutil::{CappedReadError, read_capped};
use warden_core::grant::Grant;
use warden_core::limits::MAX_COMPONENT_BYTES;
use warden_core::manifest::{Manifest, ManifestError, SysinfoCategory};
use warden_core::policy::{Allow, SitePolicy};
use warden_core::report::{CapabilityUse, Invocation, Output, RunReport};
use warden_core::{RunError, RunRequest};
use warden_host::engine::CodeQuality;
use warden_host::host_env::HostEnv;
use warden_host::kv_store::KvStore;
use warden_host::service_manager::ServiceState;
use warden_host::{Job, Prepared, Sandbox, SandboxConfig};

/// Why the plugin cannot be tested at all (a case's own failures are in its verdict).
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(
        "the component {path} does not exist: build the plugin first (`warden plugin build {dir}`)"
    )]
    NotBuilt { path: String, dir: String },
    #[error("the component {path} cannot be read: {reason}")]
    Component { path: String, reason: String },
    #[error("the plugin cannot be loaded")]
    Load(#[from] RunError),
    #[error("the plugin cannot run: {}", .0.join("; "))]
    Refused(Vec<String>),
    #[error("test environment: {0}")]
    Environment(String),
}

fn env_error(what: &str, path: &Path, e: impl std::fmt::Display) -> HarnessError {
    HarnessError::Environment(format!("{what} {}: {e}", path.display()))
}

/// One plugin under test.
pub struct Harness {
    sandbox: Sandbox,
    prepared: Arc<Prepared>,
    sha256: String,
    /// Resolved once: the policy is exactly the manifest's requests.
    grant: Grant,
    machine: FakeMachine,
    sysinfo: FakeSysinfo,
    manifest: Manifest,
    root: PathBuf,
    data_dir: PathBuf,
    warnings: Vec<String>,
    _dir: tempfile::TempDir,
}

/// What one case did: the run reports (two for `apply`: the plan, then the apply) and the
/// machine afterwards.
#[derive(Debug)]
pub struct CaseRun {
    pub reports: Vec<RunReport>,
    /// Service states after the run.
    pub services: BTreeMap<String, ServiceState>,
    /// The plugin's kv state after the run; values not valid UTF-8 are shown lossily.
    pub kv: BTreeMap<String, String>,
    /// `exec` calls the fixture had no scripted answer for.
    pub unscripted: Vec<String>,
    /// `sysinfo` categories read that the fixture's `[sysinfo]` does not give.
    pub missing_sysinfo: Vec<SysinfoCategory>,
    /// Where the fake filesystem lives, to inspect files after the run.
    pub root: PathBuf,
}

impl CaseRun {
    /// The last report: the apply of an `apply` case, else the only one.
    pub fn last(&self) -> Option<&RunReport> {
        self.reports.last()
    }

    /// The successful output of the last call, if it succeeded.
    pub fn output(&self) -> Option<&Output> {
        self.last().and_then(|r| r.result.as_ref().ok())
    }

    /// Every capability call of the case, in order.
    pub fn calls(&self) -> impl Iterator<Item = &CapabilityUse> {
        self.reports.iter().flat_map(|r| &r.capability_uses)
    }

    /// The calls the grant denied, as `capability.function target [args]`.
    pub fn denied_calls(&self) -> Vec<String> {
        self.calls()
            .filter(|u| !u.allowed)
            .map(call_string)
            .collect()
    }

    /// Where the plugin path `path` is in the fake filesystem.
    pub fn host_path(&self, path: &str) -> PathBuf {
        warden_host::host_env::rebase(&self.root, Path::new(path))
    }
}

/// `fs.read /var/log/app.log`, `exec.run /usr/bin/df -P /`.
pub fn call_string(u: &CapabilityUse) -> String {
    let mut s = format!("{}.{} {}", u.capability, u.function, u.target);
    for a in &u.args {
        s.push(' ');
        s.push_str(a);
    }
    s
}

/// The site policy of the harness: exactly the manifest's requests, unsigned plugins accepted.
fn policy_for(manifest: &Manifest, data_dir: &Path, cache_dir: &Path) -> SitePolicy {
    let c = &manifest.capabilities;
    let mut policy = SitePolicy::embedded_default();
    policy.data_dir = Some(data_dir.to_path_buf());
    policy.cache_dir = Some(cache_dir.to_path_buf());
    policy.allow = Allow {
        exec: c.exec.clone(),
        fs_read: c.fs.read.clone(),
        fs_write: c.fs.write.clone(),
        sysinfo: c.sysinfo.clone(),
        kv: c.kv.is_some(),
        http: c.http.clone(),
        // A fixture names no network: a plugin's requests to a non-public address are denied
        // here as on a machine whose policy names none.
        http_networks: Vec::new(),
        services: c.services.clone(),
        service_control: manifest.role.may_change_machine(),
    };
    policy.trust.allow_unsigned = true;
    // Room for the fixture's plugin even when it asks for more than the embedded default.
    if let Some(mb) = manifest.limits.memory_mb {
        policy.limits.max_memory_mb = policy.limits.max_memory_mb.max(mb);
    }
    if let Some(ms) = manifest.limits.timeout_ms {
        policy.limits.max_timeout_ms = policy.limits.max_timeout_ms.max(ms);
    }
    if let Some(kv) = &c.kv {
        policy.limits.max_kv_quota_bytes = policy.limits.max_kv_quota_bytes.max(kv.quota_bytes);
    }
    policy.limits.max_instances = 4;
    policy
}

impl Harness {
    /// Install the plugin in `dir` (its `plugin.toml` and built component) in a private sandbox.
    /// `cache_dir` keeps compiled components between harnesses (they are large for Python/JS).
    pub fn new(dir: &Path, cache_dir: &Path) -> Result<Harness, HarnessError> {
        let manifest = Manifest::load(&dir.join("plugin.toml"))?;
        let component = dir.join(&manifest.component);
        if !component.is_file() {
            return Err(HarnessError::NotBuilt {
                path: component.display().to_string(),
                dir: dir.display().to_string(),
            });
        }
        let temp = tempfile::Builder::new()
            .prefix("warden-plugin-test-")
            .tempdir()
            .map_err(|e| HarnessError::Environment(format!("temporary directory: {e}")))?;
        let root = temp.path().join("root");
        let data_dir = temp.path().join("data");
        for d in [&root, &data_dir] {
            std::fs::create_dir_all(d).map_err(|e| env_error("creating", d, e))?;
        }
        let machine = FakeMachine::default();
        let sysinfo = FakeSysinfo::default();
        let env = HostEnv {
            services: Arc::new(machine.clone()),
            programs: Arc::new(machine.clone()),
            sysinfo: Arc::new(sysinfo.clone()),
            fs_base: Some(root.clone()),
        };
        let policy = policy_for(&manifest, &data_dir, cache_dir);
        let report = Grant::resolve(&manifest, &policy);
        if !report.refusals.is_empty() {
            return Err(HarnessError::Refused(
                report.refusals.iter().map(ToString::to_string).collect(),
            ));
        }
        let bytes =
            read_capped(&component, MAX_COMPONENT_BYTES).map_err(|e| HarnessError::Component {
                path: component.display().to_string(),
                reason: match e {
                    CappedReadError::TooLarge => {
                        format!("larger than {MAX_COMPONENT_BYTES} bytes")
                    }
                    CappedReadError::Io(e) => e.to_string(),
                },
            })?;
        let sha256 = warden_core::sha256_hex(&bytes);
        let sandbox = Sandbox::new(SandboxConfig {
            max_instances: policy.limits.max_instances,
            max_memory_bytes: policy.limits.max_memory_mb.saturating_mul(1 << 20),
            cache_dir: cache_dir.to_path_buf(),
            quality: CodeQuality::QuickCompile,
            env,
        })?;
        let (prepared, _cache) = sandbox.check(&manifest, &sha256, || Ok(bytes))?;
        let warnings = prepared.warnings.clone();
        let prepared = sandbox.keep(&manifest, &sha256, prepared);
        Ok(Harness {
            sandbox,
            prepared,
            sha256,
            grant: report.grant,
            machine,
            sysinfo,
            manifest,
            root,
            data_dir,
            warnings,
            _dir: temp,
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// What installing the plugin warned about (e.g. a requested capability it never uses).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// One call of the plugin under test, as the agent would make it.
    fn call(&self, request: &RunRequest) -> RunReport {
        let kv_dir = self.data_dir.join("kv");
        self.sandbox.run(Job {
            manifest: &self.manifest,
            sha256: &self.sha256,
            prepared: &self.prepared,
            grant: self.grant.clone(),
            request,
            kv_dir: Some(&kv_dir),
            observer: None,
            cache: None,
        })
    }

    /// Run one case on a fresh fake machine.
    pub fn run(&self, fixture: &Fixture) -> Result<CaseRun, HarnessError> {
        self.prepare(fixture)?;
        let name = &self.manifest.name;
        let request =
            |invocation| RunRequest::new(name, invocation).with_config(fixture.config.clone());
        let mut reports = Vec::new();
        match fixture.run {
            RunKind::Discover => reports.push(self.call(&request(Invocation::Discover))),
            RunKind::Check => reports.push(self.call(&request(Invocation::Check))),
            RunKind::Plan => reports.push(self.call(&request(Invocation::Plan))),
            RunKind::Apply => {
                let plan = self.call(&request(Invocation::Plan));
                let actions = match &plan.result {
                    Ok(Output::Plan(actions)) => Some(actions.clone()),
                    _ => None,
                };
                reports.push(plan);
                if let Some(actions) = actions {
                    reports.push(self.call(&request(Invocation::Apply(actions))));
                }
            }
        }
        Ok(CaseRun {
            reports,
            services: self.machine.services(),
            kv: self.kv_state()?,
            unscripted: self.machine.unscripted(),
            missing_sysinfo: self.sysinfo.missing(),
            root: self.root.clone(),
        })
    }

    fn kv_path(&self) -> PathBuf {
        self.data_dir
            .join("kv")
            .join(format!("{}.json", self.manifest.name))
    }

    /// The fake filesystem, programs, services, sysinfo facts and kv state of `fixture`, nothing
    /// left over.
    fn prepare(&self, fixture: &Fixture) -> Result<(), HarnessError> {
        let root = &self.root;
        std::fs::remove_dir_all(root).map_err(|e| env_error("clearing", root, e))?;
        std::fs::create_dir_all(root).map_err(|e| env_error("creating", root, e))?;
        for (path, spec) in &fixture.files {
            write_file(&warden_host::host_env::rebase(root, Path::new(path)), spec)?;
        }
        self.machine
            .reset(fixture.exec.clone(), fixture.services.clone());
        self.sysinfo.reset(fixture.sysinfo.clone());
        let kv_path = self.kv_path();
        match std::fs::remove_file(&kv_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(env_error("clearing", &kv_path, e)),
        }
        if !fixture.kv.is_empty() {
            let kv = KvStore::new(kv_path.clone(), u64::MAX);
            for (k, v) in &fixture.kv {
                kv.set(k, v.clone().into_bytes())
                    .map_err(|e| env_error("seeding kv", &kv_path, e))?;
            }
            kv.commit()
                .map_err(|e| env_error("seeding kv", &kv_path, e))?;
        }
        Ok(())
    }

    fn kv_state(&self) -> Result<BTreeMap<String, String>, HarnessError> {
        let path = self.kv_path();
        let kv = KvStore::new(path.clone(), u64::MAX);
        let keys = kv.keys().map_err(|e| env_error("reading kv", &path, e))?;
        let mut out = BTreeMap::new();
        for k in keys {
            if let Some(v) = kv.get(&k).map_err(|e| env_error("reading kv", &path, e))? {
                out.insert(k, String::from_utf8_lossy(&v).into_owned());
            }
        }
        Ok(out)
    }
}

fn write_file(host: &Path, spec: &FileSpec) -> Result<(), HarnessError> {
    let (text, size, dir, age) = match spec {
        FileSpec::Text(t) => (Some(t.as_str()), None, false, None),
        FileSpec::Detailed(d) => (d.text.as_deref(), d.size, d.dir, d.age_secs),
    };
    let parent = host.parent().unwrap_or(host);
    std::fs::create_dir_all(parent).map_err(|e| env_error("creating", parent, e))?;
    if dir {
        std::fs::create_dir_all(host).map_err(|e| env_error("creating", host, e))?;
    } else {
        let bytes = match (text, size) {
            (Some(t), _) => t.as_bytes().to_vec(),
            (None, Some(n)) => vec![b'x'; usize::try_from(n).unwrap_or(0)],
            (None, None) => Vec::new(),
        };
        std::fs::write(host, bytes).map_err(|e| env_error("writing", host, e))?;
    }
    if let Some(age) = age {
        let when = SystemTime::now()
            .checked_sub(Duration::from_secs(age))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let file = std::fs::File::open(host).map_err(|e| env_error("opening", host, e))?;
        file.set_modified(when)
            .map_err(|e| env_error("setting the age of", host, e))?;
    }
    Ok(())
}
