//! What a plugin's capabilities act on: the real machine, or a test fixture standing in for it
//! (`testkit`). The grant is checked the same way in both; only the programs run, the services
//! controlled, the machine facts `sysinfo` reports and the directory absolute paths resolve
//! under differ.

use crate::process::{self, Finished, ProcessError, Spawn};
use crate::service_manager::ServiceManager;
use crate::sysinfo_source::{RealSysinfo, SysinfoSource};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Runs the programs `exec` is granted.
pub trait Programs: Send + Sync {
    fn run(&self, spawn: Spawn<'_>) -> Result<Finished, ProcessError>;
}

/// Real child processes (argv only, scrubbed environment, tied to the runner and in a cgroup of
/// their own where possible: see [`process::run_isolated`]).
#[derive(Debug, Default)]
pub struct RealPrograms;

impl Programs for RealPrograms {
    fn run(&self, spawn: Spawn<'_>) -> Result<Finished, ProcessError> {
        process::run_isolated(spawn)
    }
}

/// The machine behind the capabilities.
#[derive(Clone)]
pub struct HostEnv {
    pub services: Arc<dyn ServiceManager>,
    pub programs: Arc<dyn Programs>,
    /// The facts `sysinfo` reports.
    pub sysinfo: Arc<dyn SysinfoSource>,
    /// When set, a plugin's absolute path `/a/b` is served from `<fs_base>/a/b`: the grant is
    /// still checked against `/a/b`, so a fixture exercises the same decisions as a machine.
    pub fs_base: Option<PathBuf>,
}

impl HostEnv {
    /// The real machine, with the given service manager.
    pub fn real(services: Arc<dyn ServiceManager>) -> HostEnv {
        HostEnv {
            services,
            programs: Arc::new(RealPrograms),
            sysinfo: Arc::new(RealSysinfo),
            fs_base: None,
        }
    }

    /// Where the (normalized, absolute) plugin path `path` lives on this host.
    pub fn host_path(&self, path: &Path) -> PathBuf {
        match &self.fs_base {
            None => path.to_path_buf(),
            Some(base) => rebase(base, path),
        }
    }
}

/// The normalized, absolute plugin path `path` served from under `base`: `/a/b` is `<base>/a/b`.
pub fn rebase(base: &Path, path: &Path) -> PathBuf {
    // Normalized paths have no `..`; dropping the root (and a Windows prefix) keeps the result
    // under the base.
    let rel: PathBuf = path
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .collect();
    base.join(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixture_base_serves_absolute_paths_from_under_it() {
        let env = HostEnv {
            fs_base: Some(PathBuf::from("/tmp/fixture")),
            ..HostEnv::real(Arc::from(crate::service_manager::from_config(
                &Default::default(),
            )))
        };
        assert_eq!(
            env.host_path(Path::new("/var/log/app.log")),
            PathBuf::from("/tmp/fixture/var/log/app.log")
        );
        assert_eq!(env.host_path(Path::new("/")), PathBuf::from("/tmp/fixture"));
    }

    #[test]
    fn the_real_machine_serves_paths_as_they_are() {
        let env = HostEnv::real(Arc::from(crate::service_manager::from_config(
            &Default::default(),
        )));
        assert_eq!(
            env.host_path(Path::new("/var/log")),
            PathBuf::from("/var/log")
        );
    }
}
