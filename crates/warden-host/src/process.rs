//! Running a child process safely for `exec` and the service backends: argv only (never a
//! shell), scrubbed environment, capped output, a deadline after which the child and its
//! process group are killed, and cancellation.
//!
//! Children do not outlive the runner. On Linux every child gets `PR_SET_PDEATHSIG(SIGKILL)`,
//! so it dies with the runner even when the runner is killed with SIGKILL; an `exec` child is
//! also put in a cgroup v2 of its own where the runner may make one ([`cgroup`]), which catches
//! what the child starts however it detaches, bounds its pids and memory, and is killed whole
//! when the call ends. Without a writable cgroup v2, what the child starts is killed with its
//! process group at the end of the call, but survives a SIGKILL of the runner if it left the
//! group. [`containment`] says which is in force.

#[cfg(target_os = "linux")]
pub mod cgroup;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The only environment a child sees.
pub const CHILD_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A finished child process.
#[derive(Debug)]
pub struct Finished {
    pub exit_code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub truncated: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("program not found: {0}")]
    NotFound(String),
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("timed out after {0:?}; the process was killed")]
    TimedOut(Duration),
    #[error("cancelled; the process was killed")]
    Cancelled,
    #[error("i/o error talking to the process: {0}")]
    Io(#[from] std::io::Error),
}

/// How `exec` children are tied to the runner on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Containment {
    /// A cgroup v2 per call (with pids and memory bounds when `limits`), the parent-death signal
    /// and the process group.
    Cgroup { limits: bool },
    /// The parent-death signal (Linux) and the process group.
    ProcessGroup,
}

/// Which containment `exec` children get here (found once; logged at debug level).
pub fn containment() -> Containment {
    #[cfg(target_os = "linux")]
    if let Some(base) = cgroup::Base::get() {
        return Containment::Cgroup {
            limits: base.limits,
        };
    }
    Containment::ProcessGroup
}

/// What to run.
pub struct Spawn<'a> {
    pub program: &'a str,
    pub args: &'a [String],
    pub stdin: Option<&'a [u8]>,
    pub timeout: Duration,
    pub output_cap: usize,
    /// Polled while waiting; returning true kills the child.
    pub cancelled: &'a dyn Fn() -> bool,
}

/// Run to completion, the deadline or cancellation, whichever comes first (the service
/// backends: a service manager's own programs, not put in a cgroup, so that a service they start
/// outside a service manager is not killed with them).
pub fn run(spec: Spawn<'_>) -> Result<Finished, ProcessError> {
    run_with(spec, None)
}

/// Like [`run`], for a program a plugin runs (`exec`): in a cgroup of its own where one can be
/// made, killed whole when the call ends.
pub fn run_isolated(spec: Spawn<'_>) -> Result<Finished, ProcessError> {
    #[cfg(target_os = "linux")]
    if let Some(base) = cgroup::Base::get() {
        let group = base.create().map_err(|source| ProcessError::Spawn {
            program: spec.program.to_string(),
            source,
        })?;
        return run_with(spec, Some(&group));
    }
    run_with(spec, None)
}

#[cfg(target_os = "linux")]
type Group<'a> = Option<&'a cgroup::CallGroup>;
#[cfg(not(target_os = "linux"))]
type Group<'a> = Option<&'a std::convert::Infallible>;

fn run_with(spec: Spawn<'_>, group: Group<'_>) -> Result<Finished, ProcessError> {
    let mut cmd = Command::new(spec.program);
    cmd.args(spec.args)
        .env_clear()
        .env("PATH", CHILD_PATH)
        .env("LC_ALL", "C")
        .stdin(if spec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Own process group, so that grandchildren die with the child on timeout.
        cmd.process_group(0).current_dir("/");
    }
    let spawn_error = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ProcessError::NotFound(spec.program.to_string())
        } else {
            ProcessError::Spawn {
                program: spec.program.to_string(),
                source,
            }
        }
    };
    #[cfg(target_os = "linux")]
    {
        let procs = group.map(cgroup::CallGroup::procs).transpose();
        tie_to_runner(&mut cmd, procs.map_err(spawn_error)?);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = group;
    // The thread that forks is the thread that waits below: the parent-death signal fires when
    // that thread ends, and it does not end before the child is reaped (every path out of this
    // function after the spawn waits for the child or kills it first).
    let mut child = cmd.spawn().map_err(spawn_error)?;

    let stdin_writer = match (child.stdin.take(), spec.stdin) {
        (Some(mut pipe), Some(bytes)) => {
            let bytes = bytes.to_vec();
            Some(thread::spawn(move || {
                // A child that exits without reading its input is not an error here.
                let _ = pipe.write_all(&bytes);
            }))
        }
        _ => None,
    };
    let cap = spec.output_cap;
    let stdout = child
        .stdout
        .take()
        .map(|p| thread::spawn(move || read_capped(p, cap)));
    let stderr = child
        .stderr
        .take()
        .map(|p| thread::spawn(move || read_capped(p, cap)));

    let started = Instant::now();
    let mut pause = Duration::from_micros(200);
    let status = loop {
        let exited = match child.try_wait() {
            Ok(exited) => exited,
            Err(e) => {
                kill_tree(&mut child);
                let _ = child.wait();
                return Err(e.into());
            }
        };
        if let Some(status) = exited {
            break status;
        }
        let timed_out = started.elapsed() >= spec.timeout;
        if timed_out || (spec.cancelled)() {
            kill_tree(&mut child);
            let _ = child.wait();
            return Err(if timed_out {
                ProcessError::TimedOut(spec.timeout)
            } else {
                ProcessError::Cancelled
            });
        }
        thread::sleep(pause.min(spec.timeout.saturating_sub(started.elapsed())));
        pause = (pause * 2).min(Duration::from_millis(10));
    };
    // The direct child is done; make sure nothing it left behind keeps the pipes open forever.
    kill_group(&child);
    #[cfg(target_os = "linux")]
    if let Some(group) = group {
        group.kill();
    }
    if let Some(w) = stdin_writer {
        let _ = w.join();
    }
    let (out, out_cut) = stdout.map(join_reader).unwrap_or_default();
    let (err, err_cut) = stderr.map(join_reader).unwrap_or_default();
    Ok(Finished {
        exit_code: status.code(),
        stdout: out,
        stderr: err,
        truncated: out_cut || err_cut,
    })
}

/// In the child, between fork and exec: die with the runner, and join the call's cgroup.
///
/// The parent's pid is taken before the fork, so that a runner that died between the fork and
/// the `prctl` is noticed (the child was already reparented, `getppid` differs) and the child
/// exits instead of running unsupervised.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn tie_to_runner(cmd: &mut Command, cgroup_procs: Option<std::fs::File>) {
    use rustix::process::{Signal, getpid, getppid, set_parent_process_death_signal};
    use std::os::unix::process::CommandExt;
    let runner = getpid();
    // SAFETY: the closure runs in the forked child of a multi-threaded process, where only
    // async-signal-safe operations are allowed. It makes three system calls through rustix
    // (prctl, getppid, write), allocates nothing, takes no lock, and touches no state but the
    // already-open file descriptor it owns; errors are `std::io::Error::from_raw_os_error`, which
    // does not allocate either.
    unsafe {
        cmd.pre_exec(move || {
            set_parent_process_death_signal(Some(Signal::KILL))?;
            if getppid() != Some(runner) {
                // ESRCH: the runner this child was for is gone.
                return Err(rustix::io::Errno::SRCH.into());
            }
            if let Some(procs) = &cgroup_procs {
                // "0" moves the writing process: the child is in the cgroup before it execs.
                rustix::io::write(procs, b"0")?;
            }
            Ok(())
        });
    }
}

fn join_reader(h: thread::JoinHandle<(Vec<u8>, bool)>) -> (Vec<u8>, bool) {
    h.join().unwrap_or_default()
}

/// Keep at most `cap` bytes but drain the rest so the child never blocks on a full pipe.
fn read_capped(mut pipe: impl Read, cap: usize) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut truncated = false;
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                if n > room {
                    truncated = true;
                }
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    (kept, truncated)
}

fn kill_tree(child: &mut std::process::Child) {
    kill_group(child);
    let _ = child.kill();
}

#[cfg(unix)]
fn kill_group(child: &std::process::Child) {
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

#[cfg(not(unix))]
fn kill_group(_child: &std::process::Child) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn never() -> bool {
        false
    }

    #[test]
    fn arguments_are_passed_literally() {
        let args = vec![
            "a; rm -rf /".to_string(),
            "$(id)".to_string(),
            "`x`".to_string(),
        ];
        let out = run(Spawn {
            program: "/bin/echo",
            args: &args,
            stdin: None,
            timeout: Duration::from_secs(5),
            output_cap: 1024,
            cancelled: &never,
        })
        .expect("echo runs");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "a; rm -rf / $(id) `x`\n"
        );
    }

    #[test]
    fn output_is_capped_and_timeouts_kill() {
        let args = vec!["-c".to_string(), "yes | head -c 100000".to_string()];
        let out = run(Spawn {
            program: "/bin/sh",
            args: &args,
            stdin: None,
            timeout: Duration::from_secs(5),
            output_cap: 1000,
            cancelled: &never,
        })
        .expect("runs");
        assert_eq!(out.stdout.len(), 1000);
        assert!(out.truncated);
        let args = vec!["30".to_string()];
        let err = run(Spawn {
            program: "/bin/sleep",
            args: &args,
            stdin: None,
            timeout: Duration::from_millis(100),
            output_cap: 10,
            cancelled: &never,
        })
        .expect_err("times out");
        assert!(matches!(err, ProcessError::TimedOut(_)));
    }

    /// Whether `pid` has exited (a zombie waiting for its new parent to reap it counts).
    #[cfg(target_os = "linux")]
    fn exited(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // The state follows the parenthesised command name.
            Ok(stat) => stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
            Err(_) => true,
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn what_an_exec_child_detaches_ends_with_the_call_where_a_cgroup_is_in_force() {
        // The grandchild leaves the process group and the session and lets go of the pipes:
        // only a cgroup still knows it came from this call.
        let args = vec![
            "-c".to_string(),
            "setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo $!".to_string(),
        ];
        let out = run_isolated(Spawn {
            program: "/bin/sh",
            args: &args,
            stdin: None,
            timeout: Duration::from_secs(10),
            output_cap: 64,
            cancelled: &never,
        })
        .expect("sh runs");
        let pid: i32 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("the grandchild's pid");
        match containment() {
            // The call returned after its cgroup was emptied and removed.
            Containment::Cgroup { .. } => {
                assert!(exited(pid), "grandchild {pid} outlived the call")
            }
            // The documented limit without a cgroup: it survives; end it here.
            Containment::ProcessGroup => {
                assert!(!exited(pid), "grandchild {pid} died without a cgroup?");
                if let Some(p) = rustix::process::Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
                }
            }
        }
    }
}
