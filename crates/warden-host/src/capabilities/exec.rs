//! `warden:plugin/exec`: run a granted program with literal argv. The call is bounded by the
//! smallest of the plugin's own timeout, the site's exec timeout and the run's deadline; when the
//! run's deadline or a cancellation is what ends it, the child is killed and so is the run.

use super::{CapFailure, HostState};
use crate::bindings::CapError;
use crate::bindings::warden::plugin::exec::{Command, Host, Output};
use crate::process::{self, ProcessError};
use std::time::Duration;
use warden_core::grant::Operation;

/// Most arguments one call may pass.
pub const MAX_ARGS: usize = 1024;

impl Host for HostState {
    fn run(&mut self, cmd: Command) -> Result<Output, CapFailure> {
        let cx = &mut self.cx;
        if cmd.args.len() > MAX_ARGS
            || cmd.program.contains('\0')
            || cmd.args.iter().any(|a| a.contains('\0'))
        {
            let why =
                "more than 1024 arguments, or a NUL byte in the program or an argument".to_string();
            cx.record("exec", "run", &cmd.program, &cmd.args, Some(why.clone()))?;
            return Err(CapError::Invalid(why).into());
        }
        cx.authorize(
            Operation::Exec {
                program: &cmd.program,
                args: &cmd.args,
            },
            "run",
            &cmd.program,
            &cmd.args,
        )?;
        let remaining = cx.remaining()?;
        let asked = cmd
            .timeout_ms
            .map(|ms| Duration::from_millis(ms.into()))
            .unwrap_or(Duration::MAX);
        let own_limit = asked.min(cx.grant.limits.exec_timeout);
        let timeout = own_limit.min(remaining);
        let cancel = cx.cancel.clone();
        let result = cx.env.programs.run(process::Spawn {
            program: &cmd.program,
            args: &cmd.args,
            stdin: cmd.stdin.as_deref(),
            timeout,
            output_cap: cx.grant.limits.exec_output_bytes,
            cancelled: &|| cancel.is_cancelled(),
        });
        match result {
            Ok(done) => Ok(Output {
                exit_code: done.exit_code,
                stdout: done.stdout,
                stderr: done.stderr,
                truncated: done.truncated,
            }),
            Err(ProcessError::TimedOut(_)) if own_limit > remaining => {
                // The run's deadline, not the call's own limit, ran out: end the run.
                cx.remaining()?;
                Err(CapError::TimedOut.into())
            }
            Err(ProcessError::TimedOut(_)) => Err(CapError::TimedOut.into()),
            Err(ProcessError::Cancelled) => Err(cx.stop(warden_core::error::RunError::Cancelled)),
            Err(ProcessError::NotFound(p)) => Err(CapError::NotFound(p).into()),
            Err(e) => Err(CapError::Failed(e.to_string()).into()),
        }
    }
}
