//! Service managers behind the `service` capabilities: systemd (`systemctl`), SysV (`service`),
//! the Windows Service Control Manager (`sc.exe`), or site-defined commands. All of them run a
//! fixed program with the already-validated service name as one argv element, never a shell.

use crate::process::{self, ProcessError};
use std::path::Path;
use std::time::Duration;
use warden_core::policy::{ServiceBackendConfig, ServiceBackendKind, ServiceCommands};

/// State of a service, as the WIT `service-state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceState {
    Running,
    Stopped,
    Failed,
    Starting,
    Stopping,
    Unknown,
}

/// A start, stop or restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceAction {
    Start,
    Stop,
    Restart,
}

impl ServiceAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceAction::Start => "start",
            ServiceAction::Stop => "stop",
            ServiceAction::Restart => "restart",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("service `{0}` does not exist")]
    NotFound(String),
    #[error("service manager timed out")]
    TimedOut,
    #[error("service manager cancelled")]
    Cancelled,
    #[error("{0}")]
    Failed(String),
    #[error("{0}")]
    Unsupported(String),
}

/// A service manager. `cancelled` is polled while waiting for the manager's programs.
pub trait ServiceManager: Send + Sync {
    fn name(&self) -> &'static str;
    fn status(
        &self,
        service: &str,
        timeout: Duration,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<ServiceState, ServiceError>;
    fn control(
        &self,
        service: &str,
        action: ServiceAction,
        timeout: Duration,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<(), ServiceError>;
}

/// Build the backend the policy asks for.
pub fn from_config(config: &ServiceBackendConfig) -> Box<dyn ServiceManager> {
    let kind = match config.backend {
        ServiceBackendKind::Auto => detect(),
        other => other,
    };
    let commands = match kind {
        ServiceBackendKind::Systemd => systemd(),
        ServiceBackendKind::Sysv => sysv(),
        ServiceBackendKind::Windows => windows(),
        ServiceBackendKind::Command => match &config.command {
            Some(c) => c.clone(),
            None => return Box::new(Unavailable("backend `command` has no commands configured")),
        },
        ServiceBackendKind::Auto => {
            return Box::new(Unavailable("no service manager found on this machine"));
        }
    };
    Box::new(CommandBackend {
        name: backend_name(kind),
        commands,
        windows: kind == ServiceBackendKind::Windows,
    })
}

fn backend_name(kind: ServiceBackendKind) -> &'static str {
    match kind {
        ServiceBackendKind::Auto => "auto",
        ServiceBackendKind::Systemd => "systemd",
        ServiceBackendKind::Sysv => "sysv",
        ServiceBackendKind::Windows => "windows",
        ServiceBackendKind::Command => "command",
    }
}

fn detect() -> ServiceBackendKind {
    if cfg!(windows) {
        ServiceBackendKind::Windows
    } else if Path::new("/run/systemd/system").is_dir() {
        ServiceBackendKind::Systemd
    } else if Path::new("/usr/sbin/service").exists() {
        ServiceBackendKind::Sysv
    } else {
        ServiceBackendKind::Auto
    }
}

fn argv(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn systemd() -> ServiceCommands {
    let ctl = "/usr/bin/systemctl";
    ServiceCommands {
        status: argv(&[ctl, "is-active", "--", "{name}"]),
        start: argv(&[ctl, "start", "--", "{name}"]),
        stop: argv(&[ctl, "stop", "--", "{name}"]),
        restart: argv(&[ctl, "restart", "--", "{name}"]),
    }
}

fn sysv() -> ServiceCommands {
    let svc = "/usr/sbin/service";
    ServiceCommands {
        status: argv(&[svc, "{name}", "status"]),
        start: argv(&[svc, "{name}", "start"]),
        stop: argv(&[svc, "{name}", "stop"]),
        restart: argv(&[svc, "{name}", "restart"]),
    }
}

fn windows() -> ServiceCommands {
    let sc = r"C:\Windows\System32\sc.exe";
    ServiceCommands {
        status: argv(&[sc, "query", "{name}"]),
        start: argv(&[sc, "start", "{name}"]),
        stop: argv(&[sc, "stop", "{name}"]),
        // sc.exe has no restart; the backend runs stop then start.
        restart: vec![],
    }
}

struct Unavailable(&'static str);

impl ServiceManager for Unavailable {
    fn name(&self) -> &'static str {
        "unavailable"
    }
    fn status(
        &self,
        _: &str,
        _: Duration,
        _: &dyn Fn() -> bool,
    ) -> Result<ServiceState, ServiceError> {
        Err(ServiceError::Unsupported(self.0.into()))
    }
    fn control(
        &self,
        _: &str,
        _: ServiceAction,
        _: Duration,
        _: &dyn Fn() -> bool,
    ) -> Result<(), ServiceError> {
        Err(ServiceError::Unsupported(self.0.into()))
    }
}

/// Any manager driven by argv templates.
struct CommandBackend {
    name: &'static str,
    commands: ServiceCommands,
    windows: bool,
}

impl CommandBackend {
    fn run(
        &self,
        template: &[String],
        service: &str,
        timeout: Duration,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<process::Finished, ServiceError> {
        let (program, rest) = template
            .split_first()
            .ok_or_else(|| ServiceError::Unsupported("no command configured".into()))?;
        let args: Vec<String> = rest
            .iter()
            .map(|a| {
                if a == "{name}" {
                    service.to_string()
                } else {
                    a.clone()
                }
            })
            .collect();
        process::run(process::Spawn {
            program,
            args: &args,
            stdin: None,
            timeout,
            output_cap: 64 << 10,
            cancelled,
        })
        .map_err(|e| match e {
            ProcessError::TimedOut(_) => ServiceError::TimedOut,
            ProcessError::Cancelled => ServiceError::Cancelled,
            ProcessError::NotFound(p) => {
                ServiceError::Unsupported(format!("service manager program {p} not found"))
            }
            other => ServiceError::Failed(other.to_string()),
        })
    }
}

impl ServiceManager for CommandBackend {
    fn name(&self) -> &'static str {
        self.name
    }

    fn status(
        &self,
        service: &str,
        timeout: Duration,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<ServiceState, ServiceError> {
        let out = self.run(&self.commands.status, service, timeout, cancelled)?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if self.windows {
            return parse_sc_query(&stdout, out.exit_code)
                .ok_or_else(|| ServiceError::NotFound(service.into()));
        }
        if self.name == "systemd" {
            return Ok(match stdout.trim() {
                "active" | "reloading" => ServiceState::Running,
                "inactive" => ServiceState::Stopped,
                "failed" => ServiceState::Failed,
                "activating" => ServiceState::Starting,
                "deactivating" => ServiceState::Stopping,
                _ => ServiceState::Unknown,
            });
        }
        // LSB init-script status codes.
        Ok(match out.exit_code {
            Some(0) => ServiceState::Running,
            Some(3) => ServiceState::Stopped,
            Some(1) | Some(2) => ServiceState::Failed,
            Some(4) if self.name == "sysv" => return Err(ServiceError::NotFound(service.into())),
            _ => ServiceState::Unknown,
        })
    }

    fn control(
        &self,
        service: &str,
        action: ServiceAction,
        timeout: Duration,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<(), ServiceError> {
        let template = match action {
            ServiceAction::Start => &self.commands.start,
            ServiceAction::Stop => &self.commands.stop,
            ServiceAction::Restart if self.commands.restart.is_empty() => {
                self.control(service, ServiceAction::Stop, timeout, cancelled)?;
                return self.control(service, ServiceAction::Start, timeout, cancelled);
            }
            ServiceAction::Restart => &self.commands.restart,
        };
        let out = self.run(template, service, timeout, cancelled)?;
        match out.exit_code {
            Some(0) => Ok(()),
            code => Err(ServiceError::Failed(format!(
                "{} {service} exited with {code:?}: {}",
                action.as_str(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))),
        }
    }
}

/// `sc.exe query` prints `STATE : 4  RUNNING`; exit code 1060 means no such service.
fn parse_sc_query(stdout: &str, exit_code: Option<i32>) -> Option<ServiceState> {
    if exit_code == Some(1060) {
        return None;
    }
    let state_line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("STATE"))?;
    Some(if state_line.contains("RUNNING") {
        ServiceState::Running
    } else if state_line.contains("STOPPED") {
        ServiceState::Stopped
    } else if state_line.contains("START_PENDING") {
        ServiceState::Starting
    } else if state_line.contains("STOP_PENDING") {
        ServiceState::Stopping
    } else {
        ServiceState::Unknown
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sc_query_output() {
        let out = "SERVICE_NAME: Spooler\n        TYPE               : 110  WIN32_OWN_PROCESS\n        STATE              : 4  RUNNING\n";
        assert_eq!(parse_sc_query(out, Some(0)), Some(ServiceState::Running));
        assert_eq!(parse_sc_query("", Some(1060)), None);
    }
}
