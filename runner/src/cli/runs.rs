//! `warden runs list|show`: the durable history of runbook runs.

use super::Context;
use super::output::{align_right, inert, inert_lines, print_json, print_table, table};
use super::run_json::{RunJson, RunList};
use super::{paint, times};
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
    // Reading the history creates none: a data dir where nothing ran yet has no runs.
    let Some(history) = History::open_existing(&cx.data_dir)? else {
        return match cmd {
            RunsCommand::List { .. } if cx.json => {
                print_json(&RunList {
                    runs: Vec::new(),
                    next_page: None,
                })?;
                Ok(ExitCode::SUCCESS)
            }
            RunsCommand::List { .. } => {
                println!("no runs yet: no history in {}", cx.data_dir.display());
                Ok(ExitCode::SUCCESS)
            }
            RunsCommand::Show { id } => bail!(
                "no run `{}`: no history in {}",
                inert(&id),
                cx.data_dir.display()
            ),
        };
    };
    match cmd {
        RunsCommand::List { n } => {
            let runs = history.list(n)?;
            if cx.json {
                print_json(&RunList {
                    runs: runs
                        .into_iter()
                        .map(|r| RunJson::from_history(r, None))
                        .collect(),
                    next_page: None,
                })?;
            } else if runs.is_empty() {
                println!("no runs yet");
            } else {
                let mut rows = table([
                    "ID", "RUNBOOK", "STATUS", "ORIGIN", "DRY-RUN", "STARTED", "TOOK",
                ]);
                for r in runs {
                    rows.add_row([
                        inert(&r.id).into_owned(),
                        inert(&r.runbook).into_owned(),
                        paint::status(&inert(&r.status)),
                        // A run without a recorded origin was started from the command line.
                        inert(r.requested_by.as_deref().unwrap_or("cli")).into_owned(),
                        if r.dry_run { "yes" } else { "no" }.into(),
                        times::at_ms(r.started_ms),
                        times::took(r.started_ms, r.ended_ms),
                    ]);
                }
                align_right(&mut rows, &[6]);
                print_table(&rows);
            }
        }
        RunsCommand::Show { id } => {
            let Some((run, steps)) = history.show(&id)? else {
                bail!("no run `{}` in the history", inert(&id));
            };
            if cx.json {
                print_json(&RunJson::from_history(run, Some(steps)))?;
            } else {
                // Everything stored came from a runbook, its plugins or an API caller.
                println!(
                    "run {} of `{}` ({}): {}",
                    inert(&run.id),
                    inert(&run.runbook),
                    inert(&run.file),
                    paint::status(&inert(&run.status))
                );
                println!(
                    "  started {}, took {}",
                    times::at_ms(run.started_ms),
                    times::took(run.started_ms, run.ended_ms)
                );
                println!("  params {}", inert(&run.params.to_string()));
                if let Some(e) = &run.error {
                    println!("  error: {}", inert_lines(e));
                }
                for s in steps {
                    let took = times::took(s.started_ms, s.ended_ms);
                    println!(
                        "  [{}] {:<16} {} {} {} attempts {} {took}",
                        s.index,
                        inert(&s.step),
                        inert(&s.plugin),
                        inert(s.version.as_deref().unwrap_or("-")),
                        paint::status_padded(&inert(&s.status), 8),
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
