//! `warden run <PLUGIN>`: discover, check, plan, or plan then apply.
//!
//! A check run exits with the Nagios plugin convention, so a check plugs into the monitoring an
//! MSP already has (Nagios, Icinga, Checkmk, and whatever runs "Nagios-compatible" commands):
//! 0 ok, 1 warning, 2 critical, 3 unknown, and 3 too when the check could not run or report
//! (a plugin error, a limit, a refused grant, bad `--config`, an audit log that cannot be
//! written). Other runs exit 0 on success and 1 on failure, like every other command.

use super::Context;
use super::output::{print_json, print_report};
use anyhow::{Context as _, Result, bail};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use warden_agent::PluginManager;
use warden_core::RunRequest;
use warden_core::manifest::Role;
use warden_core::report::{CheckStatus, Invocation, Output, RunReport};

/// Exit codes of a check run (the Nagios plugin API).
pub mod nagios {
    pub const OK: u8 = 0;
    pub const WARNING: u8 = 1;
    pub const CRITICAL: u8 = 2;
    pub const UNKNOWN: u8 = 3;
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Installed plugin name.
    pub plugin: String,
    /// Plugin configuration as JSON.
    #[arg(long, value_name = "JSON", conflicts_with = "config_file")]
    pub config: Option<String>,
    /// Plugin configuration from a JSON file.
    #[arg(long, value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    /// Remediation: only plan, change nothing (the default for remediations).
    #[arg(long, conflicts_with = "apply")]
    pub plan: bool,
    /// Remediation: plan, then apply exactly that plan.
    #[arg(long)]
    pub apply: bool,
}

fn read_config(args: &RunArgs) -> Result<serde_json::Value> {
    let text = match (&args.config, &args.config_file) {
        (Some(t), _) => t.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?,
        (None, None) => return Ok(serde_json::json!({})),
    };
    serde_json::from_str(&text).context("--config is not valid JSON")
}

pub fn run(cx: &Context, args: RunArgs) -> Result<ExitCode> {
    let runner = cx.runner()?;
    let (installed, _) = runner.inspect(&args.plugin)?;
    let role = installed.manifest.role;
    let first = first_invocation(role, &args);
    if (args.plan || args.apply) && !role.may_change_machine() {
        bail!(
            "`{}` is a {role} plugin; --plan and --apply are for remediation plugins",
            args.plugin
        );
    }
    if matches!(first, Invocation::Check) {
        // From here every failure of a check is its `unknown`.
        return check(cx, &runner, &args).map_err(|e| {
            anyhow::Error::new(super::ExitWith {
                code: nagios::UNKNOWN,
                error: e,
            })
        });
    }
    let config = read_config(&args)?;
    let mut reports = vec![execute(&runner, &args.plugin, &config, first, cx.json)];
    // Apply exactly the plan just shown, nothing re-planned in between.
    if args.apply
        && let Ok(Output::Plan(actions)) = &reports[0].result
    {
        let apply = Invocation::Apply(actions.clone());
        reports.push(execute(&runner, &args.plugin, &config, apply, cx.json));
    }
    // A read-only run's records are group-committed: make them durable before saying the run
    // happened, and fail (naming the audit log) if they cannot be.
    if let Err(e) = runner.audit().flush() {
        bail!("the run's audit records could not be written: {e}");
    }
    if cx.json {
        print_json(&ReportJson::of(&reports))?;
    }
    let failed = reports.iter().any(|r| r.result.is_err());
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `warden run --json`: one object, the report of the last invocation; after `--apply` it holds
/// the report of the plan it applied as `plan`.
#[derive(serde::Serialize)]
struct ReportJson<'a> {
    #[serde(flatten)]
    report: Option<&'a RunReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<&'a RunReport>,
}

impl<'a> ReportJson<'a> {
    fn of(reports: &'a [RunReport]) -> ReportJson<'a> {
        match reports {
            [plan, apply] => ReportJson {
                report: Some(apply),
                plan: Some(plan),
            },
            _ => ReportJson {
                report: reports.last(),
                plan: None,
            },
        }
    }
}

fn first_invocation(role: Role, args: &RunArgs) -> Invocation {
    match role {
        Role::Discovery => Invocation::Discover,
        Role::Check => Invocation::Check,
        Role::Remediation | Role::CheckRemediation if args.plan || args.apply => Invocation::Plan,
        Role::CheckRemediation => Invocation::Check,
        Role::Remediation => Invocation::Plan,
        // A ticketing plugin acts only for the agent's ticket outbox (a call would open a real
        // ticket); asked for a check, the run says which role it has and what it exports.
        Role::Ticketing => Invocation::Check,
    }
}

/// A check run: its status is the exit code.
fn check(cx: &Context, runner: &PluginManager, args: &RunArgs) -> Result<ExitCode> {
    let config = read_config(args)?;
    let report = execute(runner, &args.plugin, &config, Invocation::Check, cx.json);
    if let Err(e) = runner.audit().flush() {
        bail!("the run's audit records could not be written: {e}");
    }
    if cx.json {
        print_json(&ReportJson::of(std::slice::from_ref(&report)))?;
    }
    Ok(ExitCode::from(check_exit_code(&report)))
}

/// The Nagios exit code of a check's report: its status, or unknown when it did not report one.
pub fn check_exit_code(report: &RunReport) -> u8 {
    match &report.result {
        Ok(Output::Check(r)) => match r.status {
            CheckStatus::Ok => nagios::OK,
            CheckStatus::Warning => nagios::WARNING,
            CheckStatus::Critical => nagios::CRITICAL,
            CheckStatus::Unknown => nagios::UNKNOWN,
        },
        Ok(_) | Err(_) => nagios::UNKNOWN,
    }
}

fn execute(
    runner: &PluginManager,
    plugin: &str,
    config: &serde_json::Value,
    invocation: Invocation,
    json: bool,
) -> warden_core::RunReport {
    let req = RunRequest::new(plugin, invocation).with_config(config.clone());
    let report = runner.run(&req);
    if !json {
        print_report(&report);
    }
    report
}
