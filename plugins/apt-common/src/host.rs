//! The host calls both plugins make the same way: the simulation through `exec` (argv only; the
//! host scrubs the environment and sets `LC_ALL=C`, so apt's messages are the English ones the
//! parser reads) and the reboot state through `fs`.

use crate::reboot::{REBOOT_REQUIRED, REBOOT_REQUIRED_PKGS, parse_pkgs};
use crate::simulate::{self, Simulation};
use crate::{APT_GET, SIMULATE_ARGS};
use std::time::{Duration, SystemTime};
use warden_sdk::{CapError, PluginError, exec, fs};

/// `apt-get -s dist-upgrade`, parsed. A non-zero exit (apt's lists broken, dpkg interrupted), an
/// output cut at the host's cap or one the parser does not understand is an error with its own
/// code, never a shorter update list.
pub fn simulate(timeout: Duration) -> Result<Simulation, PluginError> {
    let out = exec::Command::new(APT_GET)
        .args(SIMULATE_ARGS)
        .timeout(timeout)
        .run()?;
    if !out.success() {
        return Err(PluginError::new(
            "apt-failed",
            format!(
                "apt-get -s dist-upgrade exited {}: {}",
                exit_text(out.exit_code),
                last_error_line(&out.stderr_lossy())
            ),
        ));
    }
    if out.truncated {
        return Err(PluginError::new(
            "apt-output",
            "apt-get's output was cut at the host's exec output cap (raise limits.exec-output-bytes)",
        ));
    }
    simulate::parse(&out.stdout_lossy()).map_err(|e| PluginError::new("apt-output", e.to_string()))
}

/// `"1"`, or `"by a signal"`.
pub fn exit_text(code: Option<i32>) -> String {
    code.map_or("by a signal".into(), |c| c.to_string())
}

/// apt's own explanation: the last `E:` line of stderr, else its last non-empty line.
pub fn last_error_line(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines
        .iter()
        .rev()
        .find(|l| l.starts_with("E:"))
        .or(lines.last())
        .map_or("no message".into(), |l| l.to_string())
}

/// Whether a reboot is required, and by which packages.
pub fn reboot_state() -> Result<(bool, Vec<String>), PluginError> {
    match fs::stat(REBOOT_REQUIRED) {
        Ok(_) => {}
        Err(CapError::NotFound(_)) => return Ok((false, Vec::new())),
        Err(e) => return Err(e.into()),
    }
    let pkgs = match fs::read_to_string(REBOOT_REQUIRED_PKGS) {
        Ok(text) => parse_pkgs(&text),
        Err(CapError::NotFound(_)) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    Ok((true, pkgs))
}

/// Unix seconds now (the guest's wall clock is the host's).
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::last_error_line;

    #[test]
    fn apt_errors_are_reduced_to_their_e_line() {
        let stderr =
            "W: some warning\nE: Could not get lock /var/lib/dpkg/lock-frontend\nW: later\n";
        assert_eq!(
            last_error_line(stderr),
            "E: Could not get lock /var/lib/dpkg/lock-frontend"
        );
        assert_eq!(last_error_line("only a line\n"), "only a line");
        assert_eq!(last_error_line(""), "no message");
    }
}
