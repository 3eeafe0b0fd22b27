//! `warden audit verify|tail`: check the audit log's hash chain, and show its latest records.

use super::Context;
use super::output::{inert, inert_lines, print_json};
use anyhow::Result;
use clap::Subcommand;
use std::process::ExitCode;
use warden::audit::AuditLog;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check every record's link and the anchored end; names the first broken line.
    Verify,
    /// Show the last records.
    Tail {
        #[arg(short = 'n', default_value_t = 20)]
        n: usize,
    },
}

pub fn run(cx: &Context, cmd: AuditCommand) -> Result<ExitCode> {
    let log = AuditLog::new(&cx.data_dir);
    match cmd {
        AuditCommand::Verify => {
            let report = log.verify()?;
            if cx.json {
                print_json(&report)?;
            } else {
                println!(
                    "audit log {} intact: {} record(s)",
                    log.path().display(),
                    report.records
                );
                if let Some(w) = &report.warning {
                    eprintln!("warning: {}", inert_lines(w));
                }
            }
        }
        AuditCommand::Tail { n } => {
            let records = log.tail(n)?;
            if cx.json {
                print_json(&records)?;
            } else {
                // Records quote plugin names, arguments and errors.
                for r in records {
                    println!(
                        "{:>6} {} {:<24} {}",
                        r.seq,
                        r.at_ms,
                        inert(&r.event),
                        inert(&r.data.to_string())
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
