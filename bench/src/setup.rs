//! What the benchmarks run against: the guest plugins built by `cargo xtask build-plugins`, a
//! temporary data dir under a bench site policy, and runners with the benchmark guests installed.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use warden_agent::PluginManager;
use warden_core::SitePolicy;

/// The guests the benchmarks need, all from `tests/guests/`.
pub const GUESTS: [&str; 2] = ["trivial", "calls"];

/// `target/plugins` of this repository, or `--plugins DIR`, checked to hold every guest.
pub fn plugins_dir(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let dir = match given {
        Some(d) => d.to_path_buf(),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(|root| root.join("target").join("plugins"))
            .context("the bench crate has no parent directory")?,
    };
    let missing: Vec<&str> = GUESTS
        .iter()
        .copied()
        .filter(|g| !dir.join(g).join("plugin.wasm").is_file())
        .collect();
    if !missing.is_empty() {
        bail!(
            "guest plugin(s) {} not built in {}: run `cargo xtask build-plugins` first \
             (or pass --plugins DIR)",
            missing.join(", "),
            dir.display()
        );
    }
    Ok(dir)
}

/// A temporary data dir, a granted directory with a small file in it, and the bench policy.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    plugins: PathBuf,
}

impl Sandbox {
    /// A sandbox in a new temporary directory under `parent` (default: the system's).
    pub fn new(plugins: PathBuf, parent: Option<&Path>) -> anyhow::Result<Sandbox> {
        let parent = parent.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let dir = tempfile::Builder::new()
            .prefix("warden-bench-")
            .tempdir_in(&parent)
            .with_context(|| format!("creating a temporary directory in {}", parent.display()))?;
        let files = dir.path().join("files");
        std::fs::create_dir_all(&files).context("creating the granted directory")?;
        // 100 bytes: `fs` calls then measure the capability path, not copying.
        std::fs::write(files.join("data.txt"), [b'x'; 100]).context("writing the data file")?;
        Ok(Sandbox { dir, plugins })
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The directory granted to the `calls` guest for `fs` reads.
    pub fn files(&self) -> PathBuf {
        self.dir.path().join("files")
    }

    pub fn data_file(&self) -> PathBuf {
        self.files().join("data.txt")
    }

    pub fn component(&self, guest: &str) -> PathBuf {
        self.plugins.join(guest).join("plugin.wasm")
    }

    /// The built manifest of `guest`.
    pub fn manifest(&self, guest: &str) -> PathBuf {
        self.plugins.join(guest).join("plugin.toml")
    }

    /// The bench site policy: kv, reads of the granted directory, room for 64 concurrent runs
    /// (the default allows 16 live instances), and development mode, because the guests are
    /// installed from directories rather than signed bundles (signature checks happen at install,
    /// not per run). `cache_dir` overrides `<data>/cache`.
    pub fn policy(&self, cache_dir: Option<&Path>) -> anyhow::Result<SitePolicy> {
        SitePolicy::parse(&self.policy_text(cache_dir), "bench policy")
            .map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// The bench site policy as `warden.toml` text (see [`Sandbox::policy`]).
    pub fn policy_text(&self, cache_dir: Option<&Path>) -> String {
        let mut text = String::new();
        if let Some(c) = cache_dir {
            text.push_str(&format!("cache-dir = {:?}\n", c.display().to_string()));
        }
        text.push_str(&format!(
            "[limits]\nmax-instances = 256\n[allow]\nkv = true\nfs-read = [{:?}]\n\
             [trust]\nallow-unsigned = true\n",
            self.files().display().to_string()
        ));
        text
    }

    pub fn runner(
        &self,
        data_dir: &Path,
        cache_dir: Option<&Path>,
    ) -> anyhow::Result<PluginManager> {
        PluginManager::new(data_dir, self.policy(cache_dir)?).map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// Install `trivial` under its own manifest and `calls` under one granting the bench's
    /// directory and kv.
    pub fn install_guests(&self, runner: &PluginManager) -> anyhow::Result<()> {
        self.install(runner, "trivial", None)?;
        let calls = format!(
            "name = \"calls\"\nversion = \"0.1.0\"\nrole = \"check\"\ncomponent = \"plugin.wasm\"\n\
             [capabilities.fs]\nread = [{:?}]\n[capabilities.kv]\nquota-bytes = 65536\n",
            self.files().display().to_string()
        );
        self.install(runner, "calls", Some(&calls))
    }

    /// Install the built guest `guest`, under `manifest` when given.
    pub fn install(
        &self,
        runner: &PluginManager,
        guest: &str,
        manifest: Option<&str>,
    ) -> anyhow::Result<()> {
        let pkg = self.package(guest, manifest)?;
        runner
            .install_dir(&pkg)
            .map_err(|e| anyhow::anyhow!("installing {guest}: {e}"))?;
        Ok(())
    }

    /// A plugin directory for `install_dir`: the built guest `guest`, under `manifest` when
    /// given. Copied once, so that timing an install does not time the copy.
    pub fn package(&self, guest: &str, manifest: Option<&str>) -> anyhow::Result<PathBuf> {
        let src = self.plugins.join(guest);
        let pkg = self.dir.path().join("pkg").join(guest);
        std::fs::create_dir_all(&pkg).with_context(|| format!("creating {}", pkg.display()))?;
        std::fs::copy(src.join("plugin.wasm"), pkg.join("plugin.wasm"))
            .with_context(|| format!("copying the {guest} component"))?;
        match manifest {
            Some(text) => std::fs::write(pkg.join("plugin.toml"), text),
            None => std::fs::copy(src.join("plugin.toml"), pkg.join("plugin.toml")).map(drop),
        }
        .with_context(|| format!("writing the {guest} manifest"))?;
        Ok(pkg)
    }
}
