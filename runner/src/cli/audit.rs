//! `warden audit verify|head|tail`: check the audit log's hash chain (and, given them, heads saved
//! off the machine and the checkpoint key's signatures), print its head, and show its latest
//! records.

use super::Context;
use super::output::{align_right, inert, inert_lines, print_json, print_table, table};
use super::times;
use anyhow::{Context as _, Result, anyhow, bail};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;
use warden_audit::{AuditLog, VerifyOptions, parse_saved_head};

/// Largest saved-head file read by `--against` (a head is well under 1 KiB).
const MAX_SAVED_HEAD_BYTES: u64 = 64 * 1024;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check every record's link and the anchored end; names the first broken line. A rewrite
    /// of the whole log and its anchor passes this alone: check against a head saved off the
    /// machine (--expect, --against) or the signed checkpoints (--checkpoint-pub) too.
    Verify {
        /// Fail unless record SEQ still has hash HASH: a head saved earlier (`warden ctl
        /// audit-head`, `warden audit head`). Repeatable.
        #[arg(long, value_name = "SEQ:HASH")]
        expect: Vec<String>,
        /// The same, from a file holding a saved head (`SEQ:HASH`, or the `--json` of
        /// `warden ctl audit-head`). Repeatable.
        #[arg(long, value_name = "FILE")]
        against: Vec<PathBuf>,
        /// Check every `audit.checkpoint` signature with this public key (the `.pub` file of the
        /// agent's checkpoint key), and that checkpoints reach near the end of the log.
        #[arg(long, value_name = "KEY.pub")]
        checkpoint_pub: Option<PathBuf>,
    },
    /// Print the anchored head (`SEQ:HASH`) to keep off the machine.
    Head,
    /// Show the last records.
    Tail {
        #[arg(short = 'n', default_value_t = 20)]
        n: usize,
    },
}

fn options(
    expect: &[String],
    against: &[PathBuf],
    checkpoint_pub: Option<&PathBuf>,
) -> Result<VerifyOptions> {
    let mut heads = expect
        .iter()
        .map(|e| parse_saved_head(e).map_err(|m| anyhow!("--expect {e}: {m}")))
        .collect::<Result<Vec<_>>>()?;
    for file in against {
        let bytes = warden_core::fsutil::read_capped(file, MAX_SAVED_HEAD_BYTES)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let text = String::from_utf8_lossy(&bytes);
        heads.push(parse_saved_head(&text).map_err(|m| anyhow!("{}: {m}", file.display()))?);
    }
    let checkpoint_key = checkpoint_pub
        .map(|path| {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            warden_core::keys::parse_public(&text)
                .with_context(|| format!("{} is not a public key", path.display()))
        })
        .transpose()?;
    Ok(VerifyOptions {
        expect: heads,
        checkpoint_key,
    })
}

/// A record's time for people: RFC 3339, UTC, to the second.
fn rfc3339_ms(at_ms: u64) -> String {
    i64::try_from(at_ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(
            || format!("{at_ms} ms since the epoch"),
            |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )
}

pub fn run(cx: &Context, cmd: AuditCommand) -> Result<ExitCode> {
    let log = AuditLog::new(&cx.data_dir);
    match cmd {
        AuditCommand::Verify {
            expect,
            against,
            checkpoint_pub,
        } => {
            let options = options(&expect, &against, checkpoint_pub.as_ref())?;
            // No log is not an intact one: a deleted log must not verify.
            if !log.exists() {
                bail!(
                    "no audit log at {}: nothing to verify (none was written there yet)",
                    log.path().display()
                );
            }
            let report = log.verify_with(&options)?;
            if cx.json {
                print_json(&report)?;
            } else {
                println!(
                    "audit log {} intact: {} record(s) in {} file(s)",
                    log.path().display(),
                    report.records,
                    report.files
                );
                if let Some(p) = &report.pruned {
                    println!(
                        "  records 1-{} were removed by retention (audit.pruned, record {}, {}, \
                         retention {} days)",
                        p.through_seq,
                        p.by_seq,
                        rfc3339_ms(p.at_ms),
                        p.retention_secs / 86_400
                    );
                }
                if report.expected > 0 {
                    println!("  holds the {} saved head(s)", report.expected);
                }
                if report.expected_pruned > 0 {
                    println!(
                        "  {} saved head(s) are of removed records and could not be checked",
                        report.expected_pruned
                    );
                }
                if let Some(c) = &report.checkpoints {
                    println!(
                        "  {} signed checkpoint(s) verify; the last is record {}, {} record(s) after it",
                        c.count, c.last_seq, c.after_last
                    );
                }
                if let Some(w) = &report.warning {
                    eprintln!("warning: {}", inert_lines(w));
                }
            }
        }
        AuditCommand::Head => {
            let head = log.head()?;
            if cx.json {
                print_json(&head)?;
            } else {
                println!("{}", head.to_expect());
            }
        }
        AuditCommand::Tail { n } => {
            let records = log.tail(n)?;
            if cx.json {
                print_json(&records)?;
            } else if records.is_empty() {
                println!("no audit records in {}", log.path().display());
            } else {
                // Records quote plugin names, arguments and errors.
                let mut rows = table(["SEQ", "AT", "EVENT", "DATA"]);
                for r in records {
                    rows.add_row([
                        r.seq.to_string(),
                        times::at_ms(i64::try_from(r.at_ms).unwrap_or(i64::MAX)),
                        inert(&r.event).into_owned(),
                        inert(&r.data.to_string()).into_owned(),
                    ]);
                }
                align_right(&mut rows, &[0]);
                print_table(&rows);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
