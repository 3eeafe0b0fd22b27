//! A cgroup v2 per `exec` call, where the runner may make one: every process the call starts is
//! in it however it forks, `setsid`s or daemonizes, `pids.max` and `memory.max` bound them when
//! the runner's cgroup hands those controllers to its children, and `cgroup.kill` ends them all
//! when the call ends. Where cgroup v2 is not mounted or the runner's own cgroup is not writable,
//! [`Base::get`] is `None` and the caller relies on the parent-death signal and the process group.
//!
//! A runner killed with SIGKILL cannot clean up: its call cgroups are named after its pid, and
//! the next runner to start under the same cgroup (detection runs when a `Runner` is made) kills
//! and removes those whose runner is gone.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use warden_core::limits::{EXEC_MEMORY_MAX_BYTES, EXEC_PIDS_MAX};

/// How long the end of a call waits for killed processes to leave their cgroup before it leaves
/// the empty directory for the next runner's sweep. SIGKILLed processes exit in microseconds
/// unless stuck in the kernel (uninterruptible I/O).
const EMPTY_WAIT: Duration = Duration::from_secs(2);

/// Prefix of every call cgroup; the rest is `<runner pid>-<sequence>`.
const PREFIX: &str = "warden-exec-";

/// The runner's own cgroup v2 directory, where call cgroups are made.
#[derive(Debug)]
pub struct Base {
    dir: PathBuf,
    /// Whether call cgroups get `pids.max` and `memory.max` (the controllers are enabled for the
    /// runner's cgroup's children).
    pub limits: bool,
}

static BASE: OnceLock<Option<Base>> = OnceLock::new();
static NEXT: AtomicU64 = AtomicU64::new(0);

impl Base {
    /// Found once per process; logs at debug level which containment is in force.
    pub fn get() -> Option<&'static Base> {
        BASE.get_or_init(|| {
            let found = Base::detect();
            match &found {
                Some(base) => tracing::debug!(
                    "exec children: a cgroup per call under {} ({}), parent-death signal, process group",
                    base.dir.display(),
                    if base.limits {
                        "pids.max and memory.max set"
                    } else {
                        "no pids or memory controller delegated: no bounds"
                    }
                ),
                None => tracing::debug!(
                    "exec children: parent-death signal and process group only (no writable cgroup v2)"
                ),
            }
            found
        })
        .as_ref()
    }

    fn detect() -> Option<Base> {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
        let mount = cgroup2_mount(&mountinfo)?;
        let own = fs::read_to_string("/proc/self/cgroup").ok()?;
        let own = own.lines().find_map(|l| l.strip_prefix("0::"))?;
        let own = own.trim_start_matches('/');
        let dir = if own.is_empty() {
            mount
        } else {
            mount.join(own)
        };
        // Writable means a child cgroup can be made: try it rather than guess from modes.
        let probe = dir.join(format!("{PREFIX}{}-probe", std::process::id()));
        fs::create_dir(&probe).ok()?;
        let _ = fs::remove_dir(&probe);
        sweep(&dir);
        let limits = enable_controllers(&dir);
        Some(Base { dir, limits })
    }

    /// A fresh cgroup for one call.
    pub fn create(&self) -> io::Result<CallGroup> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = self.dir.join(format!("{PREFIX}{}-{n}", std::process::id()));
        fs::create_dir(&dir)?;
        let group = CallGroup { dir };
        if self.limits {
            fs::write(group.dir.join("pids.max"), EXEC_PIDS_MAX.to_string())?;
            fs::write(
                group.dir.join("memory.max"),
                EXEC_MEMORY_MAX_BYTES.to_string(),
            )?;
        }
        Ok(group)
    }
}

/// One call's cgroup; killed and removed when dropped.
#[derive(Debug)]
pub struct CallGroup {
    dir: PathBuf,
}

impl CallGroup {
    /// `cgroup.procs`, opened before the fork: the child writes "0" to it to move itself in,
    /// so it is in the group before it runs anything.
    pub fn procs(&self) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .open(self.dir.join("cgroup.procs"))
    }

    /// Kill every process in the group.
    pub fn kill(&self) {
        kill_all(&self.dir);
    }
}

impl Drop for CallGroup {
    fn drop(&mut self) {
        kill_all(&self.dir);
        remove_when_empty(&self.dir, EMPTY_WAIT);
    }
}

/// The mount point of the cgroup2 filesystem: `/sys/fs/cgroup` on a unified host,
/// `/sys/fs/cgroup/unified` on a hybrid one.
fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        left.split_whitespace()
            .nth(4)
            .map(|p| PathBuf::from(unescape(p)))
    })
}

/// Mount points escape space, tab, newline and backslash as octal (`\040`).
fn unescape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Hand `pids` and `memory` to the children of `dir` when it has them. Refused (EBUSY) when the
/// cgroup is not the root and has processes of its own, the runner's included: the runner does
/// not move itself to make room, as that would move it out from under its service manager.
fn enable_controllers(dir: &Path) -> bool {
    let available = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    let has = |c: &str| available.split_whitespace().any(|a| a == c);
    if !(has("pids") && has("memory")) {
        return false;
    }
    let enabled = |dir: &Path| {
        let on = fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
        let on: Vec<&str> = on.split_whitespace().collect();
        on.contains(&"pids") && on.contains(&"memory")
    };
    if enabled(dir) {
        return true;
    }
    let asked = OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.subtree_control"))
        .and_then(|mut f| f.write_all(b"+pids +memory"));
    asked.is_ok() && enabled(dir)
}

/// Kill and remove the call cgroups left by runners that are no longer alive.
fn sweep(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        if pid_alive(pid) {
            continue;
        }
        let path = entry.path();
        kill_all(&path);
        remove_when_empty(&path, EMPTY_WAIT);
    }
}

fn pid_alive(pid: i32) -> bool {
    // ESRCH is the only answer that says gone; EPERM means alive and someone else's.
    rustix::process::Pid::from_raw(pid).is_some_and(|p| {
        !matches!(
            rustix::process::test_kill_process(p),
            Err(rustix::io::Errno::SRCH)
        )
    })
}

/// `cgroup.kill` (Linux 5.14+), else SIGKILL to each listed process.
fn kill_all(dir: &Path) {
    if fs::write(dir.join("cgroup.kill"), "1").is_ok() {
        return;
    }
    // Without cgroup.kill a forking process can add members while they are killed: repeat.
    for _ in 0..16 {
        let pids = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        let pids: Vec<_> = pids
            .lines()
            .filter_map(|l| l.trim().parse::<i32>().ok())
            .filter_map(rustix::process::Pid::from_raw)
            .collect();
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

/// Remove `dir` once no process is in it, waiting at most `wait`; a directory still busy then is
/// left for the next runner's sweep.
fn remove_when_empty(dir: &Path, wait: Duration) {
    let started = Instant::now();
    let mut pause = Duration::from_micros(100);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) if started.elapsed() >= wait => {
                tracing::warn!("cgroup {} not removed: {e}", dir.display());
                return;
            }
            // Busy: killed processes have not all exited yet.
            Err(_) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cgroup2_mount_is_found_on_unified_and_hybrid_hosts() {
        let unified = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            cgroup2_mount(unified),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        let hybrid = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
                      41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_mount(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let v1 = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        assert_eq!(cgroup2_mount(v1), None);
        assert_eq!(unescape(r"/mnt/with\040space"), "/mnt/with space");
    }
}
