//! Running a child process safely for `exec` and the service backends: argv only (never a
//! shell), scrubbed environment, capped output, a deadline after which the child and its
//! process group are killed, and cancellation.

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

/// Run to completion, the deadline or cancellation, whichever comes first.
pub fn run(spec: Spawn<'_>) -> Result<Finished, ProcessError> {
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
    let mut child = cmd.spawn().map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ProcessError::NotFound(spec.program.to_string())
        } else {
            ProcessError::Spawn {
                program: spec.program.to_string(),
                source,
            }
        }
    })?;

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
        if let Some(status) = child.try_wait()? {
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
}
