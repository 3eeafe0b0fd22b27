//! Command-line interface: argument definitions, the shared context (data dir and site policy)
//! and dispatch to one module per subcommand. Human output by default, `--json` for machines.

mod audit;
mod author;
mod baseline;
mod client_report;
mod controller;
mod ctl;
mod enroll;
mod fleet;
mod fleet_approvals;
mod key;
mod kit;
mod output;
mod paint;
pub mod pipe;
mod plugin;
mod policy;
mod report;
mod report_evidence;
mod run;
mod run_json;
mod runbook;
mod runs;
mod serve;
mod signing;
mod times;

pub use output::{error_line, inert_lines};

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use warden_agent::PluginManager;
use warden_core::SitePolicy;

/// Warden: run sandboxed WebAssembly automation plugins under a site policy.
#[derive(Debug, Parser)]
#[command(name = "warden", version, about, propagate_version = true)]
pub struct Cli {
    /// Data directory (plugin store, caches, state). Default: the policy's `data-dir`, else a
    /// per-user location (Linux: ~/.local/share/warden).
    #[arg(long, env = "WARDEN_DATA_DIR", value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Site policy file (TOML). Default: <data-dir>/warden.toml if present, else the embedded default.
    #[arg(long = "config", env = "WARDEN_CONFIG", value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub json: bool,
    /// More runner logs on stderr (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write, build and test plugins (new, build, test); install and manage them on this agent.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Run a plugin: discover, check, or plan/apply a remediation.
    Run(run::RunArgs),
    /// Validate or run a runbook.
    #[command(subcommand)]
    Runbook(runbook::RunbookCommand),
    /// The history of runbook runs.
    #[command(subcommand)]
    Runs(runs::RunsCommand),
    /// SLA figures of the monitors: incidents, time to detect, time to remediate, MTTR.
    Report(report::ReportArgs),
    /// The baseline configuration: take, show its versions, diff the inventory, accept drift.
    #[command(subcommand)]
    Baseline(baseline::BaselineCommand),
    /// Verify or show the audit log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Publisher keys for signing bundles.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Show the site policy in force.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Run the agent daemon: the gRPC API for the NOC, with runbooks run on demand.
    Serve(serve::ServeArgs),
    /// API tokens for the agent.
    #[command(subcommand)]
    Token(serve::TokenCommand),
    /// Drive an agent over its gRPC API (the NOC side).
    Ctl(ctl::CtlArgs),
    /// The fleet controller (MSP side): serve it beside a NATS server.
    #[command(subcommand)]
    Controller(controller::ControllerCommand),
    /// Drive the fleet through the controller: agents, targeted runs, enrollment, revocation.
    Fleet(fleet::FleetArgs),
    /// Join the fleet: enroll this agent's new key with the controller, write its credentials.
    Enroll(enroll::EnrollArgs),
    /// Air-gapped sites: apply a kit carried in, collect the signed results to carry out.
    #[command(subcommand)]
    Kit(kit::KitCommand),
}

pub fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("WARDEN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colors only for a person at a terminal: a log file or journald would keep the escapes.
    let colors = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colors)
        .try_init();
}

/// The data dir and policy every subcommand works with.
pub struct Context {
    pub data_dir: PathBuf,
    pub policy: SitePolicy,
    pub policy_origin: String,
    pub json: bool,
}

impl Context {
    fn load(cli: &Cli) -> Result<Context> {
        let (policy, origin) = match &cli.policy {
            Some(path) => (SitePolicy::load(path)?, path.display().to_string()),
            None => {
                let candidate = cli
                    .data_dir
                    .clone()
                    .or_else(default_data_dir)
                    .map(|d| d.join("warden.toml"));
                match candidate {
                    Some(path) if path.exists() => {
                        (SitePolicy::load(&path)?, path.display().to_string())
                    }
                    _ => (
                        SitePolicy::embedded_default(),
                        "embedded default".to_string(),
                    ),
                }
            }
        };
        let data_dir = cli
            .data_dir
            .clone()
            .or_else(|| policy.data_dir.clone())
            .or_else(default_data_dir)
            .context("no data directory: pass --data-dir or set WARDEN_DATA_DIR")?;
        Ok(Context {
            data_dir,
            policy,
            policy_origin: origin,
            json: cli.json,
        })
    }

    pub fn runner(&self) -> Result<PluginManager> {
        PluginManager::new(&self.data_dir, self.policy.clone())
            .with_context(|| format!("cannot open the data directory {}", self.data_dir.display()))
    }
}

fn default_data_dir() -> Option<PathBuf> {
    dirs::data_local_dir().map(|d| d.join("warden"))
}

/// An error that ends the command with `code` instead of 1 (a check's `unknown`, 3). Shown like
/// any other error: one line, its causes once.
#[derive(Debug)]
pub struct ExitWith {
    pub code: u8,
    pub error: anyhow::Error,
}

impl std::fmt::Display for ExitWith {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl std::error::Error for ExitWith {}

pub fn run(cli: Cli) -> Result<ExitCode> {
    let cx = Context::load(&cli)?;
    let code = dispatch(&cx, cli.command)?;
    // A command's audit log is dropped (and its queued records written) before it returns: if
    // that failed, the command's records are lost, and it must not look like it succeeded.
    if let Some(e) = warden_audit::lost_at_shutdown() {
        anyhow::bail!("audit records could not be written: {e}");
    }
    Ok(code)
}

fn dispatch(cx: &Context, command: Command) -> Result<ExitCode> {
    match command {
        Command::Plugin(cmd) => plugin::run(cx, cmd),
        Command::Run(args) => run::run(cx, args),
        Command::Policy(cmd) => policy::run(cx, cmd),
        Command::Key(cmd) => key::run(cx, cmd),
        Command::Audit(cmd) => audit::run(cx, cmd),
        Command::Baseline(cmd) => baseline::run(cx, cmd),
        Command::Runbook(cmd) => runbook::run(cx, cmd),
        Command::Runs(cmd) => runs::run(cx, cmd),
        Command::Serve(args) => serve::serve(cx, args),
        Command::Token(cmd) => serve::token(cx, cmd),
        Command::Ctl(args) => ctl::run(cx, args),
        Command::Enroll(args) => enroll::run(cx, args),
        Command::Report(args) => report::run(cx, args),
        Command::Controller(cmd) => controller::run(cx, cmd),
        Command::Fleet(args) => fleet::run(cx, args),
        Command::Kit(cmd) => kit::run(cx, cmd),
    }
}
