//! `warden fleet report`: a tenant's client report from the controller (`GetReport`), for a
//! month, a quarter or any period, as HTML, CSV or PDF. The file goes where `--output` says
//! (`-`: standard output), by default to the name the controller gives it in the current
//! directory; the summary line (or `{"report": {...}}` with `--json`) says where and what.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};
use warden_proto::fleet as pb;

use super::super::Context;
use super::super::output::{inert, print_json};
use super::super::report::{month, parse_when, quarter};
use super::{Client, status_error};

/// Largest report the client accepts: 256 MiB (a year of 10,000 agents as HTML is well below).
const MAX_REPORT_BYTES: usize = 256 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// One self-contained HTML file with SVG charts.
    Html,
    /// One row per service.
    Csv,
    /// A4 pages, for the client's files.
    Pdf,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[arg(long)]
    pub tenant: String,
    /// A calendar month, UTC: `2026-11`.
    #[arg(long, value_name = "YYYY-MM", conflicts_with_all = ["quarter", "from", "to"])]
    pub month: Option<String>,
    /// A calendar quarter, UTC: `2026-Q4`.
    #[arg(long, value_name = "YYYY-QN", conflicts_with_all = ["from", "to"])]
    pub quarter: Option<String>,
    /// Start of the period: a date (`2026-05-01`, UTC midnight) or an RFC 3339 time.
    #[arg(long, value_name = "WHEN", requires = "to")]
    pub from: Option<String>,
    /// End of the period, exclusive.
    #[arg(long, value_name = "WHEN", requires = "from")]
    pub to: Option<String>,
    #[arg(long, value_enum, default_value = "html")]
    pub format: ReportFormat,
    /// Where to write it (`-`: standard output); default: the controller's file name, here.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

fn period(args: &ReportArgs) -> Result<(DateTime<Utc>, DateTime<Utc>)> {
    match (&args.month, &args.quarter, &args.from, &args.to) {
        (Some(m), _, _, _) => month(m),
        (_, Some(q), _, _) => quarter(q),
        (_, _, Some(f), Some(t)) => Ok((parse_when(f)?, parse_when(t)?)),
        _ => bail!("which period? --month 2026-11, --quarter 2026-Q4, or --from and --to"),
    }
}

pub(super) async fn run(cx: &Context, client: &mut Client, args: ReportArgs) -> Result<ExitCode> {
    let (from, to) = period(&args)?;
    if from >= to {
        bail!("the period ends ({to}) before it starts ({from})");
    }
    let format = match args.format {
        ReportFormat::Html => pb::ReportFormat::Html,
        ReportFormat::Csv => pb::ReportFormat::Csv,
        ReportFormat::Pdf => pb::ReportFormat::Pdf,
    };
    let mut client = client.clone().max_decoding_message_size(MAX_REPORT_BYTES);
    let file = client
        .get_report(pb::ReportRequest {
            tenant: args.tenant.clone(),
            from_ms: from.timestamp_millis(),
            to_ms: to.timestamp_millis(),
            format: format.into(),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    let to_stdout = args.output.as_deref() == Some(std::path::Path::new("-"));
    let path = match &args.output {
        _ if to_stdout => None,
        Some(p) => Some(p.clone()),
        // The name comes from the controller: keep only a plain file name of it.
        None => Some(PathBuf::from(safe_name(&file.file_name, args.format))),
    };
    match &path {
        None => std::io::stdout()
            .write_all(&file.body)
            .context("cannot write the report to standard output")?,
        Some(p) => std::fs::write(p, &file.body)
            .with_context(|| format!("cannot write {}", p.display()))?,
    }
    let written = path.as_ref().map(|p| p.display().to_string());
    if cx.json {
        if to_stdout {
            return Ok(ExitCode::SUCCESS);
        }
        print_json(&serde_json::json!({ "report": {
            "tenant": args.tenant,
            "from": from.to_rfc3339(),
            "to": to.to_rfc3339(),
            "file": written,
            "content_type": file.content_type,
            "bytes": file.body.len(),
            "services": file.services,
            "incidents": file.incidents,
        }}))?;
    } else if let Some(w) = written {
        println!(
            "wrote {w}: {} of {}, {} to {} (UTC), {} services, {} incidents, {} bytes",
            args.format
                .to_possible_value()
                .map(|v| v.get_name().to_string())
                .unwrap_or_default(),
            inert(&args.tenant),
            from.format("%Y-%m-%d"),
            (to - chrono::TimeDelta::milliseconds(1)).format("%Y-%m-%d"),
            file.services,
            file.incidents,
            file.body.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The controller's file name when it is a plain name of safe characters; otherwise a
/// generic one (a compromised controller must not choose where the NOC's files go).
fn safe_name(name: &str, format: ReportFormat) -> String {
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if plain {
        name.to_string()
    } else {
        let ext = format
            .to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default();
        format!("report.{ext}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_controllers_file_name_cannot_point_elsewhere() {
        assert_eq!(
            safe_name("report-acme-2026-11-01.pdf", ReportFormat::Pdf),
            "report-acme-2026-11-01.pdf"
        );
        for bad in ["../../etc/cron.d/x", "/tmp/x.pdf", ".bashrc", "", "a b.pdf"] {
            assert_eq!(safe_name(bad, ReportFormat::Pdf), "report.pdf", "{bad}");
        }
    }

    #[test]
    fn quarters_and_months_are_calendar_periods() {
        let (from, to) = quarter("2026-Q4").expect("quarter");
        assert_eq!(from.to_rfc3339(), "2026-10-01T00:00:00+00:00");
        assert_eq!(to.to_rfc3339(), "2027-01-01T00:00:00+00:00");
        let (from, to) = quarter("2026-q1").expect("quarter");
        assert_eq!(
            (from.format("%m").to_string(), to.format("%m").to_string()),
            ("01".into(), "04".into())
        );
        for bad in ["2026-Q5", "2026-Q0", "2026", "Q4-2026", "2026-4"] {
            assert!(quarter(bad).is_err(), "{bad}");
        }
    }
}
