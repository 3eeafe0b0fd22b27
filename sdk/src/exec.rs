//! Run an allow-listed program (WIT `exec`). Arguments go to argv literally, never through a
//! shell; the host scrubs the environment, caps the output and kills the child at its timeout.
//!
//! ```no_run
//! use std::time::Duration;
//! use warden_sdk::exec::Command;
//!
//! # fn main() -> Result<(), warden_sdk::CapError> {
//! let out = Command::new("/usr/bin/df")
//!     .args(["-P", "/"])
//!     .timeout(Duration::from_secs(5))
//!     .run()?;
//! if out.success() {
//!     warden_sdk::log::info(&out.stdout_lossy(), &[]);
//! }
//! # Ok(())
//! # }
//! ```

use std::time::Duration;

use crate::__private::bindings::warden::plugin::exec as wit;
use crate::CapError;

/// A program invocation to run on the host, built step by step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    program: String,
    args: Vec<String>,
    stdin: Option<Vec<u8>>,
    timeout: Option<Duration>,
}

impl Command {
    /// Run `program`, an absolute path exactly as granted in the manifest.
    pub fn new(program: impl Into<String>) -> Self {
        Command {
            program: program.into(),
            args: Vec::new(),
            stdin: None,
            timeout: None,
        }
    }

    /// Append one argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Append several arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Bytes written to the child's standard input.
    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(input.into());
        self
    }

    /// Time limit; the host caps it at the grant's and the run's own limit.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Run the program and wait for it.
    pub fn run(self) -> Result<Output, CapError> {
        // Saturate rather than wrap: an absurd timeout still means "as long as the host allows".
        let timeout_ms = self
            .timeout
            .map(|t| u32::try_from(t.as_millis()).unwrap_or(u32::MAX));
        let cmd = wit::Command {
            program: self.program,
            args: self.args,
            stdin: self.stdin,
            timeout_ms,
        };
        let out = wit::run(&cmd)?;
        Ok(Output {
            exit_code: out.exit_code,
            stdout: out.stdout,
            stderr: out.stderr,
            truncated: out.truncated,
        })
    }
}

/// What a finished program produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Exit code, or `None` when the process was ended by a signal.
    pub exit_code: Option<i32>,
    /// Captured standard output.
    pub stdout: Vec<u8>,
    /// Captured standard error.
    pub stderr: Vec<u8>,
    /// True when stdout or stderr were cut at the host's output cap.
    pub truncated: bool,
}

impl Output {
    /// True when the program exited with code 0.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }

    /// Standard output as text, invalid UTF-8 replaced.
    pub fn stdout_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Standard error as text, invalid UTF-8 replaced.
    pub fn stderr_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}
