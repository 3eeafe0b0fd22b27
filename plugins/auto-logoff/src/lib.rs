//! `auto-logoff`: a compliance check that idle shell sessions end: `TMOUT` is set system-wide in
//! the shell startup files, to at most `max_seconds`, and (by default) `readonly`, so a user
//! cannot unset it. Evidence for HIPAA 164.312(a)(2)(iii) (automatic logoff) and CMMC
//! AC.L2-3.1.11 (terminate a session after a defined condition). The summary names the file and
//! line that sets the value that wins.
//!
//! The files are read in the order a login shell reads them (`/etc/profile`, which on Debian
//! sources `/etc/bash.bashrc`, then `/etc/profile.d/*.sh` in name order), and the last
//! assignment wins. Only literal values are judged: `TMOUT=$X` is reported as unknown, not
//! guessed. Graphical screen lock is another control, not checked here.

mod tmout;

use serde::Deserialize;
use tmout::Setting;
use warden_sdk::{CapError, Check, CheckResult, PluginError, Status, fs};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_max")]
    max_seconds: u64,
    #[serde(default = "default_readonly")]
    require_readonly: bool,
}

fn default_max() -> u64 {
    900
}

fn default_readonly() -> bool {
    true
}

const PROFILE_D: &str = "/etc/profile.d";

/// The startup files that exist, in the order a login shell reads them, with their text.
fn startup_files() -> Result<Vec<(String, String)>, CapError> {
    let mut paths = vec!["/etc/profile".to_string(), "/etc/bash.bashrc".to_string()];
    match fs::list_dir(PROFILE_D) {
        Ok(entries) => {
            let mut names: Vec<String> = entries
                .into_iter()
                .filter(|e| e.name.ends_with(".sh") && !e.metadata.is_dir())
                .map(|e| e.name)
                .collect();
            names.sort();
            paths.extend(names.into_iter().map(|n| format!("{PROFILE_D}/{n}")));
        }
        Err(CapError::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    let mut files = Vec::new();
    for path in paths {
        match fs::read_to_string(&path) {
            Ok(text) => files.push((path, text)),
            Err(CapError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(files)
}

fn judge(config: &Config, last: &Setting, readonly: Option<&Setting>) -> (Status, String) {
    let at = last.location();
    let Some(seconds) = last.seconds else {
        return (
            Status::Unknown,
            format!(
                "TMOUT={} at {at} is not a literal number of seconds",
                last.raw
            ),
        );
    };
    if seconds == 0 {
        return (
            Status::Critical,
            format!("TMOUT=0 at {at} disables automatic logoff"),
        );
    }
    if seconds > config.max_seconds {
        return (
            Status::Critical,
            format!(
                "TMOUT={seconds} at {at} is above the maximum of {} s",
                config.max_seconds
            ),
        );
    }
    match readonly {
        Some(r) => (
            Status::Ok,
            format!("TMOUT={seconds} at {at}, readonly at {}", r.location()),
        ),
        None if config.require_readonly => (
            Status::Warning,
            format!("TMOUT={seconds} at {at} is not readonly: a user can unset it"),
        ),
        None => (Status::Ok, format!("TMOUT={seconds} at {at}")),
    }
}

struct AutoLogoff;

impl Check for AutoLogoff {
    fn check(config: &str) -> Result<CheckResult, PluginError> {
        let config: Config = warden_sdk::config(config)?;
        let files = match startup_files() {
            Ok(files) => files,
            Err(e) => {
                return Ok(CheckResult::unknown(format!(
                    "cannot read the shell startup files to find TMOUT: {e}"
                )));
            }
        };
        if files.is_empty() {
            return Ok(CheckResult::unknown(
                "none of /etc/profile, /etc/bash.bashrc, /etc/profile.d/*.sh exists: no system-wide TMOUT to judge",
            ));
        }
        let settings: Vec<Setting> = files
            .iter()
            .flat_map(|(path, text)| tmout::settings(path, text))
            .collect();
        let last_value = settings.iter().rev().find(|s| !s.raw.is_empty());
        let readonly = settings.iter().rev().find(|s| s.readonly);
        let Some(last) = last_value else {
            let read: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
            return Ok(CheckResult::critical(format!(
                "no TMOUT in {}: idle shells are never logged off",
                read.join(", ")
            )));
        };
        let (status, summary) = judge(&config, last, readonly);
        let mut result = CheckResult::new(status, summary);
        if let Some(seconds) = last.seconds {
            result = result.metric("tmout", seconds as f64, "s");
        }
        Ok(result)
    }
}

warden_sdk::check!(AutoLogoff);
