//! `warden runs list|show`: the durable history of runbook runs.

use super::Context;
use super::output::{inert, inert_lines, print_json};
use anyhow::{Result, bail};
use clap::Subcommand;
use std::process::ExitCode;
use warden_history::History;

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// The latest runs.
    List {
        #[arg(short = 'n', default_value_t = 20)]
        n: usize,
    },
    /// One run with its steps.
    Show { id: String },
}

pub fn run(cx: &Context, cmd: RunsCommand) -> Result<ExitCode> {
    let history = History::open(&cx.data_dir)?;
    match cmd {
        RunsCommand::List { n } => {
            let runs = history.list(n)?;
            if cx.json {
                print_json(&runs)?;
            } else if runs.is_empty() {
                println!("no runs yet");
            } else {
                println!(
                    "{:<24} {:<20} {:<12} {:<8} STARTED (ms since epoch)",
                    "ID", "RUNBOOK", "STATUS", "DRY-RUN"
                );
                for r in runs {
                    println!(
                        "{:<24} {:<20} {:<12} {:<8} {}",
                        inert(&r.id),
                        inert(&r.runbook),
                        inert(&r.status),
                        r.dry_run,
                        r.started_ms
                    );
                }
            }
        }
        RunsCommand::Show { id } => {
            let Some((run, steps)) = history.show(&id)? else {
                bail!("no run `{}` in the history", inert(&id));
            };
            if cx.json {
                print_json(&serde_json::json!({ "run": run, "steps": steps }))?;
            } else {
                // Everything stored came from a runbook, its plugins or an API caller.
                println!(
                    "run {} of `{}` ({}): {}",
                    inert(&run.id),
                    inert(&run.runbook),
                    inert(&run.file),
                    inert(&run.status)
                );
                println!("  params {}", inert(&run.params.to_string()));
                if let Some(e) = &run.error {
                    println!("  error: {}", inert_lines(e));
                }
                for s in steps {
                    let took = s
                        .ended_ms
                        .map(|e| format!("{} ms", e - s.started_ms))
                        .unwrap_or_else(|| "-".into());
                    println!(
                        "  [{}] {:<16} {} {} {:<8} attempts {} {took}",
                        s.index,
                        inert(&s.step),
                        inert(&s.plugin),
                        inert(s.version.as_deref().unwrap_or("-")),
                        inert(&s.status),
                        s.attempts
                    );
                    if let Some(e) = &s.error {
                        println!("      error: {}", inert_lines(e));
                    }
                    if s.output_truncated {
                        println!(
                            "      output truncated: the history keeps {} KiB of a step's output",
                            warden_history::MAX_STEP_OUTPUT_BYTES >> 10
                        );
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
