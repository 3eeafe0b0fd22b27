//! Fixtures shared by the end-to-end tests: where the guest plugins built by
//! `cargo xtask build-plugins` are, a temporary data dir with a site policy, and installing a
//! plugin under a manifest the test writes. All tests share one precompiled-component cache, so
//! each guest is compiled once per machine, not once per test.

pub mod fake_psa;
pub mod http_server;
pub mod psa_server;

use std::path::{Path, PathBuf};
use warden_agent::PluginManager;
use warden_agent::install::InstallReport;
use warden_bundle::Bundle;
use warden_core::SitePolicy;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// `target/plugins/<name>`, built by `cargo xtask build-plugins`.
pub fn built_plugin(name: &str) -> PathBuf {
    let dir = repo_root().join("target").join("plugins").join(name);
    assert!(
        dir.join("plugin.wasm").exists(),
        "guest plugin `{name}` is not built: run `cargo xtask test` (or `cargo xtask build-plugins` first)"
    );
    dir
}

/// A temporary data dir and scratch directory, removed at drop.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("scratch")).expect("scratch dir");
        Sandbox { dir }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A directory tests may grant to plugins.
    pub fn scratch(&self) -> PathBuf {
        self.dir.path().join("scratch")
    }

    /// Parse `policy` (TOML) with the shared compile cache added, and development mode on
    /// (directory installs) unless the policy has its own `[trust]` table.
    pub fn policy(&self, policy: &str) -> SitePolicy {
        let cache = repo_root().join("target").join("test-cache");
        let dev = if policy.contains("[trust]") {
            ""
        } else {
            "\n[trust]\nallow-unsigned = true\n"
        };
        let text = format!(
            "cache-dir = {:?}\n{policy}{dev}",
            cache.display().to_string()
        );
        SitePolicy::parse(&text, "test policy").expect("test policy is valid")
    }

    pub fn runner(&self, policy: &str) -> PluginManager {
        PluginManager::new(&self.data_dir(), self.policy(policy)).expect("runner starts")
    }

    /// Install the built plugin `plugin` under `manifest` (or its own manifest when `None`).
    pub fn install(
        &self,
        runner: &PluginManager,
        plugin: &str,
        manifest: Option<&str>,
    ) -> InstallReport {
        self.try_install(runner, plugin, manifest)
            .expect("plugin installs")
    }

    pub fn try_install(
        &self,
        runner: &PluginManager,
        plugin: &str,
        manifest: Option<&str>,
    ) -> Result<InstallReport, warden_agent::install::InstallError> {
        let src = built_plugin(plugin);
        let dir = self.dir.path().join("pkg").join(plugin);
        std::fs::create_dir_all(&dir).expect("package dir");
        std::fs::copy(src.join("plugin.wasm"), dir.join("plugin.wasm")).expect("copy component");
        let text = match manifest {
            Some(m) => m.to_string(),
            None => std::fs::read_to_string(src.join("plugin.toml")).expect("built manifest"),
        };
        std::fs::write(dir.join("plugin.toml"), text).expect("write manifest");
        runner.install_dir(&dir)
    }
}

impl Sandbox {
    /// A fake service manager (a script keeping `<name>.running` files), for the `command` backend.
    pub fn fake_service_manager(&self) -> PathBuf {
        let script = self.dir.path().join("fake-services");
        let state = self.dir.path().join("services");
        std::fs::create_dir_all(&state).expect("state dir");
        let body = format!(
            "#!/bin/sh\nstate={state:?}\ncase \"$1\" in\n\
             status) [ -f \"$state/$2.running\" ] && exit 0; [ -f \"$state/$2.known\" ] && exit 3; exit 4;;\n\
             start|restart) [ -f \"$state/$2.broken\" ] && exit 1; touch \"$state/$2.running\";;\n\
             stop) rm -f \"$state/$2.running\";;\nesac\n",
            state = state.display().to_string()
        );
        std::fs::write(&script, body).expect("script");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        script
    }

    /// Declare a fake service, running or not.
    pub fn fake_service(&self, name: &str, running: bool) {
        let state = self.dir.path().join("services");
        std::fs::create_dir_all(&state).expect("state dir");
        std::fs::write(state.join(format!("{name}.known")), "").expect("known");
        let flag = state.join(format!("{name}.running"));
        if running {
            std::fs::write(flag, "").expect("running");
        } else {
            let _ = std::fs::remove_file(flag);
        }
    }

    pub fn fake_service_running(&self, name: &str) -> bool {
        self.dir
            .path()
            .join("services")
            .join(format!("{name}.running"))
            .exists()
    }

    /// A policy granting the scratch dir, /bin/echo and /bin/sleep, kv, two sysinfo categories
    /// and the fake service `demo-svc` through the fake service manager; `limits` goes in [limits].
    pub fn standard_policy(&self, limits: &str) -> String {
        let s = self.scratch().display().to_string();
        let fake = self.fake_service_manager().display().to_string();
        format!(
            "[limits]\n{limits}\n\
             [allow]\nfs-read = [{s:?}]\nfs-write = [{s:?}]\nkv = true\nsysinfo = [\"hostname\", \"os\", \"disks\"]\n\
             services = [\"demo-svc\"]\nservice-control = true\n\
             exec = [{{ program = \"/bin/echo\", args = [\"*\"] }}, {{ program = \"/bin/sleep\", args = [\"*\"] }}]\n\
             [services]\nbackend = \"command\"\n[services.command]\n\
             status = [{fake:?}, \"status\", \"{{name}}\"]\nstart = [{fake:?}, \"start\", \"{{name}}\"]\n\
             stop = [{fake:?}, \"stop\", \"{{name}}\"]\nrestart = [{fake:?}, \"restart\", \"{{name}}\"]\n"
        )
    }

    /// `[capabilities]` for the `hostile` guest: everything it imports, within the standard policy.
    pub fn hostile_caps(&self) -> String {
        let s = self.scratch().display().to_string();
        format!(
            "sysinfo = [\"hostname\", \"os\"]\nservices = [\"demo-svc\"]\n\
             exec = [{{ program = \"/bin/echo\", args = [\"*\"] }}, {{ program = \"/bin/sleep\", args = [\"*\"] }}]\n\
             [capabilities.fs]\nread = [{s:?}]\nwrite = [{s:?}]\n[capabilities.kv]\nquota-bytes = 4096\n"
        )
    }

    /// A runner under the standard policy with `hostile` installed with `limits` in its manifest.
    pub fn hostile_runner(&self, policy_limits: &str, manifest_limits: &str) -> PluginManager {
        let runner = self.runner(&self.standard_policy(policy_limits));
        self.install(
            &runner,
            "hostile",
            Some(&hostile_manifest(&self.hostile_caps(), manifest_limits)),
        );
        runner
    }
}

impl Sandbox {
    /// A fresh publisher key; returns the signing key and the public key as hex.
    pub fn key(&self, name: &str) -> (warden_core::keys::SigningKey, String) {
        let (secret, _, public) =
            warden_core::keys::generate(&self.dir.path().join(name)).expect("key");
        let key = warden_core::keys::load_secret(&secret).expect("load key");
        (key, hex_key(&public))
    }

    /// An unsigned bundle of the built plugin `plugin` under `manifest` (its own when `None`).
    pub fn unsigned_bundle(&self, plugin: &str, manifest: Option<&str>) -> Bundle {
        let dir = self.dir.path().join("bundle-src").join(plugin);
        std::fs::create_dir_all(&dir).expect("dir");
        let src = built_plugin(plugin);
        std::fs::copy(src.join("plugin.wasm"), dir.join("plugin.wasm")).expect("copy");
        let text = match manifest {
            Some(m) => m.to_string(),
            None => std::fs::read_to_string(src.join("plugin.toml")).expect("manifest"),
        };
        std::fs::write(dir.join("plugin.toml"), text).expect("manifest");
        Bundle::from_plugin_dir(&dir, 30).expect("bundle")
    }

    /// Write `bundle` to a file and return its path.
    pub fn write_bundle(&self, bundle: &Bundle, file: &str) -> PathBuf {
        let path = self.dir.path().join(file);
        std::fs::write(&path, bundle.to_bytes().expect("encode")).expect("write bundle");
        path
    }

    /// The audit log's events, in order.
    pub fn audit_events(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.data_dir().join("audit").join("audit.log"))
            .unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| v["event"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

fn hex_key(key: &warden_core::keys::VerifyingKey) -> String {
    key.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// A manifest for the `hostile` guest with the given `[capabilities]` body and `[limits]` body.
pub fn hostile_manifest(capabilities: &str, limits: &str) -> String {
    format!(
        "name = \"hostile\"\nversion = \"0.1.0\"\nrole = \"check-remediation\"\n\
         [capabilities]\n{capabilities}\n[limits]\n{limits}\n"
    )
}
