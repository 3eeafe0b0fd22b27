//! `audit-daemon`: a compliance check that the Linux audit daemon records events: `auditd` is
//! running (the service capability) and enabled at boot (systemd's `multi-user.target.wants`
//! link), with the rules it loads named as evidence. Evidence for HIPAA 164.312(b) (audit
//! controls) and CMMC AU.L2-3.3.1 (create and retain audit records).
//!
//! Running but not enabled at boot is a `warning`: the next reboot ends the audit trail.
//! Without systemd (no `wants` directory) boot enablement is not judged, and the summary says so.

use serde::Deserialize;
use warden_sdk::{
    CapError, Check, CheckResult, PluginError, Status, fs,
    service::{self, ServiceState},
};

/// No options: the daemon and its files have fixed names.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {}

const WANTS: &str = "/etc/systemd/system/multi-user.target.wants";
const RULES_D: &str = "/etc/audit/rules.d";
const RULES: &str = "/etc/audit/audit.rules";

/// Whether systemd starts auditd at boot; `None` when there is no systemd wants directory.
fn enabled_at_boot() -> Option<bool> {
    let entries = fs::list_dir(WANTS).ok()?;
    Some(entries.iter().any(|e| e.name == "auditd.service"))
}

/// The rule files auditd loads: `rules.d/*.rules`, else the compiled `audit.rules`.
fn rule_files() -> Vec<String> {
    let mut files: Vec<String> = fs::list_dir(RULES_D)
        .map(|entries| {
            entries
                .into_iter()
                .filter(|e| e.name.ends_with(".rules"))
                .map(|e| format!("{RULES_D}/{}", e.name))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    if files.is_empty() && fs::stat(RULES).is_ok() {
        files.push(RULES.to_string());
    }
    files
}

struct AuditDaemon;

impl Check for AuditDaemon {
    fn check(config: &str) -> Result<CheckResult, PluginError> {
        let Config {} = warden_sdk::config(config)?;
        let state = match service::status("auditd") {
            Ok(state) => state,
            Err(CapError::NotFound(_)) => {
                return Ok(CheckResult::critical(
                    "auditd is not installed: no audit records are kept",
                ));
            }
            Err(e) => return Ok(CheckResult::unknown(format!("auditd state unknown: {e}"))),
        };
        let status = match state {
            ServiceState::Running => Status::Ok,
            ServiceState::Stopped | ServiceState::Failed => Status::Critical,
            ServiceState::Starting | ServiceState::Stopping => Status::Warning,
            ServiceState::Unknown => Status::Unknown,
        };
        let mut words = vec![format!("auditd {state}")];
        let boot = enabled_at_boot();
        words.push(match boot {
            Some(true) => format!("enabled at boot ({WANTS}/auditd.service)"),
            Some(false) => format!("not enabled at boot (no {WANTS}/auditd.service)"),
            None => format!("boot enablement not judged (no {WANTS})"),
        });
        let rules = rule_files();
        words.push(if rules.is_empty() {
            "no audit rules found".to_string()
        } else {
            format!("rules {}", rules.join(", "))
        });
        let status = if status == Status::Ok && boot == Some(false) {
            Status::Warning
        } else {
            status
        };
        let running = f64::from(u8::from(state == ServiceState::Running));
        Ok(CheckResult::new(status, words.join("; ")).metric("running", running, ""))
    }
}

warden_sdk::check!(AuditDaemon);
