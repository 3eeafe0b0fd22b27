//! `host-firewall`: a compliance check that one of the Linux host firewalls is on: its service
//! runs (nftables, ufw, firewalld, through the service capability) and, for ufw, its switch in
//! `/etc/ufw/ufw.conf` says `ENABLED=yes` (the ufw unit is active even when ufw is disabled).
//! Evidence for HIPAA 164.312(e)(1) (transmission security) and CMMC SC.L1-3.13.1 (boundary
//! protection). Whether the rules deny by default is not judged here.

use serde::Deserialize;
use warden_sdk::{
    CapError, Check, CheckResult, PluginError, Status, fs,
    service::{self, ServiceState},
};

/// No options: every backend is looked at, and one enabled is enough.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {}

/// A firewall backend: its service and its configuration file.
struct Backend {
    service: &'static str,
    config: &'static str,
}

const BACKENDS: [Backend; 3] = [
    Backend {
        service: "nftables",
        config: "/etc/nftables.conf",
    },
    Backend {
        service: "ufw",
        config: "/etc/ufw/ufw.conf",
    },
    Backend {
        service: "firewalld",
        config: "/etc/firewalld/firewalld.conf",
    },
];

/// What one backend's evidence says, and the words for it.
fn judge(backend: &Backend) -> (Status, String) {
    let state = match service::status(backend.service) {
        Ok(state) => state,
        Err(CapError::NotFound(_)) => {
            return (
                Status::Critical,
                format!("{} not installed", backend.service),
            );
        }
        Err(e) => {
            return (
                Status::Unknown,
                format!("{} state unknown: {e}", backend.service),
            );
        }
    };
    let config = fs::read_to_string(backend.config);
    let evidence = match &config {
        Ok(_) => format!(" ({} present)", backend.config),
        Err(_) => String::new(),
    };
    let status = match state {
        ServiceState::Running => Status::Ok,
        ServiceState::Stopped | ServiceState::Failed => Status::Critical,
        ServiceState::Starting | ServiceState::Stopping => Status::Warning,
        ServiceState::Unknown => Status::Unknown,
    };
    if backend.service == "ufw" && status == Status::Ok {
        return match config.as_deref().map(ufw_enabled) {
            Ok(Some((true, line))) => (
                Status::Ok,
                format!("ufw running, ENABLED=yes at {}:{line}", backend.config),
            ),
            Ok(Some((false, line))) => (
                Status::Critical,
                format!(
                    "ufw service running but ENABLED=no at {}:{line}",
                    backend.config
                ),
            ),
            Ok(None) => (
                Status::Critical,
                format!(
                    "ufw service running but {} has no ENABLED=yes",
                    backend.config
                ),
            ),
            Err(e) => (
                Status::Unknown,
                format!("ufw service running but {} unreadable: {e}", backend.config),
            ),
        };
    }
    (status, format!("{} {state}{evidence}", backend.service))
}

/// The last `ENABLED=` line of ufw.conf: whether it says yes, and its 1-based line number.
fn ufw_enabled(text: &str) -> Option<(bool, usize)> {
    text.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let value = line.trim().strip_prefix("ENABLED=")?;
            let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
            Some((value.eq_ignore_ascii_case("yes"), i + 1))
        })
        .last()
}

struct HostFirewall;

impl Check for HostFirewall {
    fn check(config: &str) -> Result<CheckResult, PluginError> {
        let Config {} = warden_sdk::config(config)?;
        let findings: Vec<(Status, String)> = BACKENDS.iter().map(judge).collect();
        let enabled: Vec<&str> = findings
            .iter()
            .filter(|(s, _)| *s == Status::Ok)
            .map(|(_, text)| text.as_str())
            .collect();
        let all: Vec<&str> = findings.iter().map(|(_, text)| text.as_str()).collect();
        // One firewall is enough; otherwise the best of the rest says how far from one we are.
        let status = if !enabled.is_empty() {
            Status::Ok
        } else if findings.iter().any(|(s, _)| *s == Status::Warning) {
            Status::Warning
        } else if findings.iter().all(|(s, _)| *s == Status::Unknown) {
            Status::Unknown
        } else {
            Status::Critical
        };
        let summary = match status {
            Status::Ok => format!("firewall enabled: {}", all.join("; ")),
            _ => format!("no host firewall enabled: {}", all.join("; ")),
        };
        Ok(CheckResult::new(status, summary).metric("enabled", enabled.len() as f64, ""))
    }
}

warden_sdk::check!(HostFirewall);
