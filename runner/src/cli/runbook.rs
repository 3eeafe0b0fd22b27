//! `warden runbook validate|run`: check a runbook without running it; run it with live progress
//! (a spinner on a terminal, plain lines otherwise) and a summary, or `--json`.

use super::Context;
use super::output::{inert, inert_lines, parse_params, print_json};
use super::signing::SigningArgs;
use anyhow::{Result, anyhow, bail};
use clap::Subcommand;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use warden_bundle::Bundle;
use warden_history::History;
use warden_runbook::engine::{Engine, RunEvent, StepStatus};
use warden_runbook::source::{self, RunbookSourceError};
use warden_runbook::{Runbook, RunbookError};

#[derive(Debug, Subcommand)]
pub enum RunbookCommand {
    /// Sign a runbook into a bundle (runs and validates like the TOML file, after a trust check).
    Pack {
        file: PathBuf,
        #[command(flatten)]
        signing: SigningArgs,
    },
    /// Check a runbook without running anything: syntax, keys, types, plugins, grants, expressions.
    Validate { file: PathBuf },
    /// Run a runbook.
    Run {
        file: PathBuf,
        /// Discover and check, plan remediations, never apply; print what would change.
        #[arg(long)]
        dry_run: bool,
        /// A parameter, `name=value` (repeatable).
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
    },
}

fn report_errors(errors: &[RunbookError]) -> anyhow::Error {
    for e in errors {
        eprintln!("{}", inert_lines(&e.to_string()));
    }
    anyhow!(
        "the runbook is invalid ({} problem(s)); nothing was run",
        errors.len()
    )
}

/// Parse (after a trust check, for a signed runbook bundle) and check against the store and policy.
fn load(cx: &Context, file: &std::path::Path) -> Result<(Runbook, warden_agent::PluginManager)> {
    let loaded = match source::load_file(file, &cx.policy, false) {
        Ok(loaded) => loaded,
        Err(RunbookSourceError::Invalid { errors, .. }) => return Err(report_errors(&errors)),
        Err(e) => return Err(e.into()),
    };
    if let Some(signers) = &loaded.signers {
        eprintln!(
            "signed runbook `{}`, signed by {}",
            inert(&loaded.runbook.name),
            inert(&signers.join(", "))
        );
    }
    let runner = cx.runner()?;
    let errors = loaded.runbook.check_plugins(&runner);
    if !errors.is_empty() {
        return Err(report_errors(&errors));
    }
    Ok((loaded.runbook, runner))
}

pub fn run(cx: &Context, cmd: RunbookCommand) -> Result<ExitCode> {
    match cmd {
        RunbookCommand::Pack { file, signing } => {
            let runbook = Runbook::load(&file).map_err(|e| report_errors(&e))?;
            let text = std::fs::read_to_string(&file)?;
            let mut bundle = Bundle::from_runbook(&runbook.name, &text, signing.valid_days)?;
            let (out, key_id) =
                signing.sign_and_write(&mut bundle, format!("{}.wbundle", runbook.name))?;
            println!(
                "signed runbook `{}` into {} (key {key_id})",
                inert(&runbook.name),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        RunbookCommand::Validate { file } => {
            let (runbook, _) = load(cx, &file)?;
            if cx.json {
                print_json(&runbook)?;
            } else {
                println!(
                    "{}: valid runbook `{}` with {} step(s)",
                    file.display(),
                    inert(&runbook.name),
                    runbook.steps.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        RunbookCommand::Run {
            file,
            dry_run,
            params,
        } => {
            let given: Vec<(String, String)> = parse_params(&params)?;
            let (runbook, runner) = load(cx, &file)?;
            let params = runbook.resolve_params(&given).map_err(|e| anyhow!(e))?;
            let history = History::open(&cx.data_dir)?;
            let engine = Engine {
                runner: &runner,
                history: &history,
                audit: runner.audit(),
            };
            let mut progress = Progress::new(cx.json);
            let summary = engine.run(&runbook, &params, dry_run, &mut |e| progress.show(e))?;
            if cx.json {
                print_json(&summary)?;
            } else {
                println!(
                    "\nrun {} of `{}`: {}{}",
                    summary.run_id,
                    inert(&summary.runbook),
                    summary.status,
                    if dry_run {
                        " (dry run: nothing was applied)"
                    } else {
                        ""
                    }
                );
                for s in &summary.steps {
                    println!(
                        "  {:<10} {:<16} {}",
                        word(s.status),
                        inert(&s.step),
                        inert(&s.summary)
                    );
                    if dry_run && let Some(serde_json::Value::Array(plan)) = &s.plan {
                        for a in plan {
                            println!(
                                "      would {} {} — {}",
                                inert(a["kind"].as_str().unwrap_or("?")),
                                inert(a["target"].as_str().unwrap_or("?")),
                                inert(a["description"].as_str().unwrap_or(""))
                            );
                        }
                    }
                }
            }
            if !summary.status.succeeded() {
                bail!(
                    "runbook `{}` {} (run {})",
                    inert(&summary.runbook),
                    summary.status,
                    summary.run_id
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn word(s: StepStatus) -> &'static str {
    match s {
        StepStatus::Succeeded => "ok",
        StepStatus::Failed => "FAILED",
        StepStatus::Skipped => "skipped",
    }
}

/// Live progress: a spinner per step on a terminal, plain lines otherwise, nothing with --json.
/// Step names, plugin names, log lines, errors and summaries come from the runbook and its
/// plugins: all of it goes through [`inert`].
struct Progress {
    quiet: bool,
    bar: Option<indicatif::ProgressBar>,
    total: usize,
}

impl Progress {
    fn new(json: bool) -> Progress {
        Progress {
            quiet: json,
            bar: None,
            total: 0,
        }
    }

    fn show(&mut self, event: &RunEvent) {
        if self.quiet {
            return;
        }
        let tty = std::io::stderr().is_terminal();
        match event {
            RunEvent::RunStarted {
                run_id,
                runbook,
                steps,
                dry_run,
            } => {
                self.total = *steps;
                eprintln!(
                    "run {run_id}: `{}`, {steps} step(s){}",
                    inert(runbook),
                    if *dry_run { ", dry run" } else { "" }
                );
            }
            RunEvent::StepStarted {
                index,
                step,
                plugin,
                attempt,
            } => {
                let line = format!(
                    "[{}/{}] {} ({}){}",
                    index + 1,
                    self.total,
                    inert(step),
                    inert(plugin),
                    if *attempt > 1 {
                        format!(", attempt {attempt}")
                    } else {
                        String::new()
                    }
                );
                if tty {
                    let bar = indicatif::ProgressBar::new_spinner().with_message(line);
                    bar.enable_steady_tick(std::time::Duration::from_millis(100));
                    self.bar = Some(bar);
                } else {
                    eprintln!("{line} ...");
                }
            }
            RunEvent::StepLog {
                step,
                level,
                message,
                ..
            } => {
                let line = format!(
                    "      {} [{}] {}",
                    inert(step),
                    inert(level),
                    inert_lines(message)
                );
                match &self.bar {
                    Some(bar) => bar.println(line),
                    None => eprintln!("{line}"),
                }
            }
            RunEvent::StepRetrying {
                step,
                attempt,
                error,
                backoff_ms,
                ..
            } => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
                eprintln!(
                    "      {}: attempt {attempt} failed ({}); retrying in {backoff_ms} ms",
                    inert(step),
                    inert_lines(error)
                );
            }
            RunEvent::StepFinished {
                index,
                step,
                status,
                summary,
                duration_ms,
            } => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
                eprintln!(
                    "[{}/{}] {}: {} in {duration_ms} ms — {}",
                    index + 1,
                    self.total,
                    inert(step),
                    word(*status),
                    inert(summary)
                );
            }
            RunEvent::RunFinished { .. } => {}
        }
    }
}
