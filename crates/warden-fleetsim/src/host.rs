//! Simulated agents in a child process: when one process cannot hold every agent's file
//! descriptors (10,000 agents take about 50,000; the limit here is 20,000), the fleet enrolls
//! them in the parent and hands slices of them to child processes, each with its own sandbox.
//! The agents stay what they are: their own credentials file, link, ledger and outbox.
//!
//! The child is the parent's own program (a benchmark binary) run with a spec file
//! ([`HostSpec`], JSON); it calls [`host_main`]. It talks to the parent over its stdin and
//! stdout, one line each way: `close` / `open` (the gate, answered `ok` once done), and `stop`
//! (or the end of stdin): it stops its links and answers one JSON line, a [`HostReport`].

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use warden_agent::fleet::FleetIdentity;
use warden_fleet_identity::{AgentId, TenantId};
use warden_fleet_wire::RunId;

use crate::fleet::{SimError, setup, start_links, stop_links};
use crate::sandbox::Sandbox;

/// An agent's credentials file in its directory.
pub const CREDS_FILE: &str = "fleet.creds";
/// How long a host may take to start its links or stop them.
pub const HOST_DEADLINE: Duration = Duration::from_secs(600);

/// One agent a host runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostedAgent {
    pub index: usize,
    pub tenant: String,
    /// Its directory: credentials, state file, audit log.
    pub dir: PathBuf,
    pub gated: bool,
}

impl HostedAgent {
    /// Its ledger and outbox.
    pub fn state(&self) -> PathBuf {
        self.dir.join("fleet").join("state.sqlite")
    }
}

/// What a host is given.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostSpec {
    pub urls: Vec<String>,
    pub heartbeat_ms: u64,
    pub guest: PathBuf,
    /// The host's own sandbox data dir.
    pub sandbox: PathBuf,
    /// The publisher keys its agents trust for desired state (hex ed25519).
    #[serde(default)]
    pub trusted: Vec<String>,
    pub agents: Vec<HostedAgent>,
}

/// What a host answers at `stop`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HostReport {
    pub left: (u64, u64),
    pub executions: Vec<(AgentId, RunId, u32)>,
}

/// The parent's handle on a host; dropping it kills the child.
#[derive(Debug)]
pub struct Host {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Host {
    /// Write `spec` to `path` and run `command` followed by `path`.
    pub fn spawn(command: &[OsString], path: &Path, spec: &HostSpec) -> Result<Host, SimError> {
        let (program, args) = command
            .split_first()
            .ok_or_else(|| setup("no host command was given"))?;
        let json = serde_json::to_vec(spec).map_err(setup)?;
        std::fs::write(path, json).map_err(setup)?;
        let mut child = Command::new(program)
            .args(args)
            .arg(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| {
                setup(format!(
                    "starting a host ({}): {e}",
                    program.to_string_lossy()
                ))
            })?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .map(BufReader::new)
            .ok_or_else(|| setup("a host without stdout"))?;
        Ok(Host {
            child,
            stdin,
            stdout,
        })
    }

    /// Send one command line; its one-line answer.
    pub fn command(&mut self, command: &str) -> Result<String, SimError> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| setup("the host's stdin is closed"))?;
        writeln!(stdin, "{command}")
            .and_then(|()| stdin.flush())
            .map_err(|e| setup(format!("telling a host `{command}`: {e}")))?;
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .map_err(|e| setup(format!("the host's answer to `{command}`: {e}")))?;
        if line.is_empty() {
            return Err(setup(format!(
                "the host ended instead of answering `{command}`"
            )));
        }
        Ok(line.trim_end().to_string())
    }

    /// Stop its links and wait for it; its report.
    pub fn stop(mut self) -> Result<HostReport, SimError> {
        let line = self.command("stop")?;
        drop(self.stdin.take());
        let _ = self.child.wait();
        serde_json::from_str(&line).map_err(|e| setup(format!("a host's report: {e}: {line}")))
    }
}

/// A host's whole life: read the spec at `spec`, start its sandbox and links, answer the
/// parent's commands on stdin until `stop`. For the program the parent names as its host
/// command.
pub fn host_main(spec: &Path) -> Result<(), SimError> {
    let text = std::fs::read(spec).map_err(|e| setup(format!("{}: {e}", spec.display())))?;
    let spec: HostSpec = serde_json::from_slice(&text).map_err(setup)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(setup)?;
    // Commands from the parent, read on a thread of their own.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line.trim().to_string()).is_err() {
                return;
            }
        }
        let _ = tx.send("stop".into());
    });
    runtime.block_on(async move {
        let deadline = tokio::time::Instant::now() + HOST_DEADLINE;
        let sandbox = Arc::new(Sandbox::new(&spec.sandbox, &spec.guest, &spec.trusted)?);
        let mut entries = Vec::with_capacity(spec.agents.len());
        for agent in spec.agents {
            let tenant = TenantId::new(agent.tenant.clone()).map_err(setup)?;
            let identity =
                FleetIdentity::load(&agent.dir.join(CREDS_FILE), tenant).map_err(setup)?;
            entries.push((agent, identity));
        }
        let heartbeat = Duration::from_millis(spec.heartbeat_ms);
        let mut agents = start_links(entries, &spec.urls, heartbeat, &sandbox, deadline).await?;
        let mut out = std::io::stdout();
        while let Some(command) = rx.recv().await {
            match command.as_str() {
                "close" => sandbox.close_gate(),
                "open" => sandbox.open_gate(),
                "stop" => break,
                other => {
                    let _ = writeln!(out, "unknown command {other:?}");
                    continue;
                }
            }
            let _ = writeln!(out, "ok").and_then(|()| out.flush());
        }
        let left = stop_links(&mut agents).await;
        let report = HostReport {
            left,
            executions: sandbox
                .executions()
                .into_iter()
                .map(|((agent, run), n)| (agent, run, n))
                .collect(),
        };
        let line = serde_json::to_string(&report).map_err(setup)?;
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(setup)
    })
}
