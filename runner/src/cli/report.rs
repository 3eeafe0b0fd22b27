//! `warden report`: the SLA figures of the monitors over a period, from the incidents in the
//! history database (incidents counted by when they triggered), and the PSA tickets of those
//! incidents (as the ticket outbox recorded them on the incident); with
//! `--format html|csv`, the client report of the same history (`client_report`).

use super::Context;
use super::client_report::{self, Format};
use super::output::inert;
use super::times;
use anyhow::{Context as _, Result, bail};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use clap::Args;
use std::fmt::Write as _;
use std::process::ExitCode;
use warden_history::{History, IncidentTicketRow, MonitorSla};

#[derive(Debug, Default, Args)]
pub struct ReportArgs {
    /// The last DAYS days up to now (default 30).
    #[arg(long, value_name = "DAYS", conflicts_with_all = ["from", "to", "month"])]
    pub since: Option<u32>,
    /// A calendar month, UTC: `2026-11`.
    #[arg(long, value_name = "YYYY-MM", conflicts_with_all = ["from", "to"])]
    pub month: Option<String>,
    /// `html`, `csv` or `pdf`: the client report (uptime per service, SLA per priority, PSA
    /// tickets, patch compliance, drift, HIPAA / CMMC coverage, by NIST CSF function) instead
    /// of the table.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// The client report's services and SLA targets (a TOML file; see docs/AUTOMATION.md).
    #[arg(long, value_name = "FILE")]
    pub sla: Option<std::path::PathBuf>,
    /// The client's name on the client report (default `local`).
    #[arg(long, value_name = "NAME", default_value = "local")]
    pub tenant: String,
    /// Start of the period: a date (`2026-05-01`, UTC midnight) or an RFC 3339 time.
    #[arg(long, value_name = "WHEN")]
    pub from: Option<String>,
    /// End of the period, exclusive (default now).
    #[arg(long, value_name = "WHEN", requires = "from")]
    pub to: Option<String>,
    /// Only this monitor.
    #[arg(long, value_name = "NAME")]
    pub monitor: Option<String>,
}

pub(crate) fn parse_when(text: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let day = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .with_context(|| format!("`{text}` is neither a date (YYYY-MM-DD) nor an RFC 3339 time"))?;
    Ok(day.and_time(chrono::NaiveTime::MIN).and_utc())
}

/// `2026-11`: its first day and the next month's, UTC.
pub(crate) fn month(text: &str) -> Result<(DateTime<Utc>, DateTime<Utc>)> {
    let first = NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d")
        .with_context(|| format!("`{text}` is not a month (YYYY-MM)"))?;
    months_from(first, 1, text)
}

/// `2026-Q4`: its first day and the next quarter's, UTC.
pub(crate) fn quarter(text: &str) -> Result<(DateTime<Utc>, DateTime<Utc>)> {
    let bad = || format!("`{text}` is not a quarter (YYYY-Q1 .. YYYY-Q4)");
    let (year, q) = text.split_once(['-']).with_context(bad)?;
    let q: u32 = match q.strip_prefix(['Q', 'q']).map(str::parse) {
        Some(Ok(q @ 1..=4)) => q,
        _ => bail!(bad()),
    };
    let year: i32 = year
        .parse()
        .ok()
        .filter(|y| (1970..=9999).contains(y))
        .with_context(bad)?;
    let first = NaiveDate::from_ymd_opt(year, 3 * q - 2, 1).with_context(bad)?;
    months_from(first, 3, text)
}

fn months_from(
    first: NaiveDate,
    months: u32,
    text: &str,
) -> Result<(DateTime<Utc>, DateTime<Utc>)> {
    let next = first
        .checked_add_months(chrono::Months::new(months))
        .with_context(|| format!("`{text}`: no period after it"))?;
    let midnight = |d: NaiveDate| d.and_time(chrono::NaiveTime::MIN).and_utc();
    Ok((midnight(first), midnight(next)))
}

fn period(args: &ReportArgs, now: DateTime<Utc>) -> Result<(DateTime<Utc>, DateTime<Utc>)> {
    if let Some(m) = &args.month {
        return month(m);
    }
    let (from, to) = match &args.from {
        Some(f) => (
            parse_when(f)?,
            args.to
                .as_deref()
                .map(parse_when)
                .transpose()?
                .unwrap_or(now),
        ),
        None => (
            now - TimeDelta::days(i64::from(args.since.unwrap_or(30))),
            now,
        ),
    };
    if from >= to {
        bail!("the period is empty: {from} is not before {to}");
    }
    Ok((from, to))
}

/// A mean duration ([`times::span_ms`]), `-` when there is no figure.
fn human(ms: Option<f64>) -> String {
    ms.map_or_else(|| "-".into(), |ms| times::span_ms(ms.round() as i64))
}

fn render(from: DateTime<Utc>, to: DateTime<Utc>, rows: &[MonitorSla]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "SLA report {} .. {}",
        from.format("%Y-%m-%d %H:%M UTC"),
        to.format("%Y-%m-%d %H:%M UTC")
    );
    if rows.is_empty() {
        out.push_str("no incidents in this period\n");
        return out;
    }
    let _ = writeln!(
        out,
        "{:<20} {:>9} {:>8} {:>9} {:>5} {:>9} {:>9} {:>9}",
        "MONITOR", "INCIDENTS", "RESOLVED", "ESCALATED", "OPEN", "MTTD", "MTT-REM", "MTTR"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<20} {:>9} {:>8} {:>9} {:>5} {:>9} {:>9} {:>9}",
            inert(&r.monitor),
            r.incidents,
            r.resolved,
            r.escalated,
            r.open,
            human(r.mean_time_to_detect_ms),
            human(r.mean_time_to_remediate_ms),
            human(r.mttr_ms)
        );
    }
    out.push_str(
        "MTTD: first failing check to trigger; MTT-REM: trigger to successful remediation; \
         MTTR: first failing check to recovery (means)\n",
    );
    out
}

/// What `warden report` prints: the table (text, JSON) or the client report's file.
fn output(cx: &Context, args: &ReportArgs, now: DateTime<Utc>) -> Result<Vec<u8>> {
    if args.format == Format::Text {
        return Ok(report(cx, args, now)?.into_bytes());
    }
    let period = period(args, now)?;
    let history = History::open(&cx.data_dir)?;
    let settings = client_report::settings(args.sla.as_deref())?;
    client_report::render(
        &cx.data_dir,
        &history,
        &client_report::Request {
            period,
            monitor: args.monitor.as_deref(),
            tenant: &args.tenant,
            settings: &settings,
            format: args.format,
            now,
        },
    )
}

fn report(cx: &Context, args: &ReportArgs, now: DateTime<Utc>) -> Result<String> {
    if args.format != Format::Text {
        return Ok(String::from_utf8_lossy(&output(cx, args, now)?).into_owned());
    }
    let (from, to) = period(args, now)?;
    let history = History::open(&cx.data_dir)?;
    let rows = history.sla_report(from, to, args.monitor.as_deref())?;
    let tickets = history.incident_tickets(from, to, args.monitor.as_deref())?;
    if cx.json {
        let tickets: Vec<_> = tickets.iter().map(ticket_json).collect();
        let doc =
            serde_json::json!({ "from": from, "to": to, "monitors": rows, "tickets": tickets });
        Ok(format!("{}\n", serde_json::to_string_pretty(&doc)?))
    } else {
        let mut out = render(from, to, &rows);
        out.push_str(&render_tickets(&tickets));
        Ok(out)
    }
}

fn ticket_json(t: &IncidentTicketRow) -> serde_json::Value {
    serde_json::json!({
        "monitor": t.monitor, "incident": t.incident_id, "plugin": t.plugin,
        "ticket_id": t.ticket_id,
        "status": t.status, "respond_by": t.respond_by, "resolve_by": t.resolve_by,
        "updated_ms": t.updated_ms,
    })
}

fn render_tickets(tickets: &[IncidentTicketRow]) -> String {
    if tickets.is_empty() {
        return String::new();
    }
    let mut table = super::output::table([
        "INCIDENT",
        "MONITOR",
        "TICKET",
        "STATUS",
        "RESPOND BY",
        "RESOLVE BY",
    ]);
    let or_dash = |v: &Option<String>| {
        v.as_deref()
            .map_or("-".to_string(), |v| inert(v).into_owned())
    };
    for t in tickets {
        table.add_row([
            inert(&t.incident_id).into_owned(),
            inert(&t.monitor).into_owned(),
            inert(&t.ticket_id).into_owned(),
            inert(&t.status).into_owned(),
            or_dash(&t.respond_by),
            or_dash(&t.resolve_by),
        ]);
    }
    let mut out = String::from("\nPSA tickets of these incidents:\n");
    for line in table.lines() {
        let line = line.trim_end();
        if !line.is_empty() {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

pub fn run(cx: &Context, args: ReportArgs) -> Result<ExitCode> {
    use std::io::Write as _;
    let bytes = output(cx, &args, Utc::now())?;
    let mut out = std::io::stdout().lock();
    out.write_all(&bytes)
        .and_then(|()| out.flush())
        .context("cannot write the report to standard output")?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use warden_automation::AutomationStore as _;
    use warden_automation::monitor::Incident;
    use warden_core::SitePolicy;

    fn t(day: u32, secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, day, 0, 0, 0)
            .single()
            .expect("valid")
            + TimeDelta::seconds(secs)
    }

    fn seeded(json: bool) -> (tempfile::TempDir, Context) {
        let dir = tempfile::tempdir().expect("tempdir");
        let history = History::open(dir.path()).expect("history");
        let save = |id: &str, monitor: &str, day: u32, rem: Option<i64>, res: Option<i64>| {
            history
                .save_incident(&Incident {
                    id: id.into(),
                    monitor: monitor.into(),
                    detected_at: t(day, 0),
                    triggered_at: t(day, 120),
                    remediated_at: rem.map(|s| t(day, s)),
                    resolved_at: res.map(|s| t(day, s)),
                    escalated: None,
                    escalated_at: None,
                    attempts: 1,
                    last_run_id: None,
                })
                .expect("save");
        };
        save("d1", "disk", 2, Some(150), Some(180));
        save("d2", "disk", 3, Some(300), Some(3780));
        save("w1", "web", 4, None, None);
        save("old", "disk", 1, None, Some(99_999));
        let cx = Context {
            data_dir: dir.path().to_path_buf(),
            policy: SitePolicy::embedded_default(),
            policy_origin: "test".into(),
            json,
        };
        (dir, cx)
    }

    fn args(from: &str, to: &str, monitor: Option<&str>) -> ReportArgs {
        ReportArgs {
            from: Some(from.into()),
            to: Some(to.into()),
            monitor: monitor.map(Into::into),
            tenant: "local".into(),
            ..ReportArgs::default()
        }
    }

    #[test]
    fn prints_the_sla_figures_of_the_period() {
        let (_dir, cx) = seeded(false);
        let out = report(&cx, &args("2026-05-02", "2026-05-05", None), t(9, 0)).expect("report");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "SLA report 2026-05-02 00:00 UTC .. 2026-05-05 00:00 UTC"
        );
        // disk: MTTD 2m, time to remediate (30 s + 180 s) / 2, MTTR (180 s + 3780 s) / 2.
        let disk: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            disk,
            [
                "disk", "2", "2", "0", "0", "2m", "00s", "1m", "45s", "33m", "00s"
            ]
        );
        let web: Vec<&str> = lines[3].split_whitespace().collect();
        assert_eq!(web, ["web", "1", "0", "0", "1", "2m", "00s", "-", "-"]);
    }

    #[test]
    fn the_tickets_of_the_periods_incidents_are_listed_and_others_left_out() {
        let (dir, cx) = seeded(false);
        let out = report(&cx, &args("2026-05-02", "2026-05-05", None), t(9, 0)).expect("report");
        assert!(!out.contains("PSA tickets"), "no ticket, no section: {out}");

        let history = History::open(dir.path()).expect("history");
        let ticket = |incident: &str, monitor: &str, id: &str, due: Option<&str>| {
            history
                .save_incident_ticket(&IncidentTicketRow {
                    incident_id: incident.into(),
                    monitor: monitor.into(),
                    plugin: "ticket-connectwise".into(),
                    ticket_id: id.into(),
                    respond_by: due.map(Into::into),
                    resolve_by: None,
                    status: "open".into(),
                    updated_ms: 1,
                })
                .expect("ticket");
        };
        ticket("w1", "web", "CW-4712", None);
        ticket("d1", "disk", "CW-4711", Some("2026-05-02T01:00:00Z"));
        ticket("old", "disk", "CW-4000", None);

        let out = report(&cx, &args("2026-05-02", "2026-05-05", None), t(9, 0)).expect("report");
        let section: Vec<&str> = out
            .split("PSA tickets of these incidents:\n")
            .nth(1)
            .expect("a tickets section")
            .lines()
            .collect();
        assert_eq!(
            section.len(),
            3,
            "header, d1, w1 (old is out of the period): {out}"
        );
        let d1: Vec<&str> = section[1].split_whitespace().collect();
        assert_eq!(
            d1,
            ["d1", "disk", "CW-4711", "open", "2026-05-02T01:00:00Z", "-"]
        );
        let w1: Vec<&str> = section[2].split_whitespace().collect();
        assert_eq!(w1, ["w1", "web", "CW-4712", "open", "-", "-"]);

        let cx_json = Context { json: true, ..cx };
        let out = report(
            &cx_json,
            &args("2026-05-02", "2026-05-05", Some("web")),
            t(9, 0),
        )
        .expect("json");
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        let tickets = v["tickets"].as_array().expect("tickets");
        assert_eq!(tickets.len(), 1, "{v}");
        assert_eq!(tickets[0]["ticket_id"], "CW-4712", "{v}");
    }

    #[test]
    fn json_and_monitor_filter() {
        let (_dir, cx) = seeded(true);
        let out = report(
            &cx,
            &args("2026-05-01", "2026-05-10", Some("disk")),
            t(9, 0),
        )
        .expect("report");
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        let monitors = v["monitors"].as_array().expect("array");
        assert_eq!(monitors.len(), 1);
        assert_eq!(monitors[0]["monitor"], "disk");
        assert_eq!(monitors[0]["incidents"], 3);
        assert_eq!(monitors[0]["mean_time_to_remediate_ms"], 105_000.0);
    }

    #[test]
    fn since_days_and_bad_periods() {
        let (_dir, cx) = seeded(false);
        let since = ReportArgs {
            since: Some(2),
            ..ReportArgs::default()
        };
        // From May 3 00:00 to May 5 00:00: d2 and w1.
        let out = report(&cx, &since, t(5, 0)).expect("report");
        assert!(out.contains("disk") && out.contains("web"));
        assert!(
            out.lines()
                .any(|l| l.starts_with("disk") && l.split_whitespace().nth(1) == Some("1"))
        );
        assert!(report(&cx, &args("2026-05-05", "2026-05-01", None), t(9, 0)).is_err());
        assert!(report(&cx, &args("yesterday", "2026-05-01", None), t(9, 0)).is_err());
        let empty = report(&cx, &args("2025-01-01", "2025-02-01", None), t(9, 0)).expect("report");
        assert!(empty.contains("no incidents in this period"));
    }

    #[test]
    fn the_client_report_of_a_month_in_csv_and_html() {
        let (dir, cx) = seeded(false);
        let sla = dir.path().join("sla.toml");
        std::fs::write(
            &sla,
            "[targets]\nP1 = 30\n[[service]]\nmonitor = \"disk\"\npriority = \"P1\"\ncsf = \"PR.PS\"\n",
        )
        .expect("sla file");
        History::open(dir.path())
            .expect("history")
            .save_incident_ticket(&IncidentTicketRow {
                incident_id: "d1".into(),
                monitor: "disk".into(),
                plugin: "ticket-halo".into(),
                ticket_id: "HALO-88".into(),
                respond_by: None,
                resolve_by: Some("2026-05-02T04:00:00Z".into()),
                status: "closed".into(),
                updated_ms: 1,
            })
            .expect("ticket");
        let mut args = ReportArgs {
            month: Some("2026-05".into()),
            format: Format::Csv,
            sla: Some(sla),
            tenant: "acme".into(),
            ..ReportArgs::default()
        };
        let csv = report(&cx, &args, t(20, 0)).expect("csv");
        let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert_eq!(lines[0], warden_report::csv::HEADER.join(","));
        // The services' records, then the other sections' (this history has no patch scan:
        // its one agent is an exception).
        let services = lines.iter().filter(|l| l.contains(",service,")).count();
        assert_eq!(services, 2, "{csv}");
        assert!(lines[3].contains(",patch,"), "{csv}");
        // disk: `old` opened May 1 00:00 and d1's opening (May 2 00:00) repeats it: one incident,
        // closed by d1's resolve (+180 s; `old`'s later resolve is stray); d2 is 3780 s. Both
        // are over the 30 min P1 target.
        let disk: Vec<&str> = lines[1].split(',').collect();
        assert_eq!(
            &disk[..3],
            ["acme", "2026-05-01T00:00:00Z", "2026-06-01T00:00:00Z"]
        );
        assert_eq!(&disk[3..5], ["Protect", "PR.PS"]);
        assert_eq!(&disk[6..8], ["disk", "P1"]);
        assert_eq!(
            &disk[9..17],
            [
                "90360",
                "2",
                "2",
                "0",
                "2",
                "45180",
                "1800",
                "ticket-halo:HALO-88"
            ],
            "{}",
            lines[1]
        );
        // web: open since May 4, P3 without a target.
        let web: Vec<&str> = lines[2].split(',').collect();
        assert_eq!(
            (web[3], web[4], web[6], web[7]),
            ("Detect", "DE.CM", "web", "P3")
        );
        assert_eq!(&web[10..14], ["1", "0", "1", "0"], "{}", lines[2]);
        assert_eq!(web[16], "", "web has no ticket: {}", lines[2]);
        args.format = Format::Html;
        let html = report(&cx, &args, t(20, 0)).expect("html");
        assert!(
            html.starts_with("<!DOCTYPE html>") && html.contains("<svg"),
            "{html}"
        );
        assert!(html.contains("Protect (PR.PS)") && html.contains("Detect (DE.CM)"));
        assert!(
            html.contains("<td>disk</td><td>ticket-halo</td><td>HALO-88</td><td>closed</td><td>2026-05-02T04:00:00Z</td>"),
            "the incident's ticket: {html}"
        );
        args.month = Some("2026-13".into());
        assert!(report(&cx, &args, t(20, 0)).is_err(), "no 13th month");
    }

    /// A machine's own evidence: a drift monitor and a compliance check, as the daemon leaves
    /// them in the history, the audit log and the plugin store.
    #[test]
    fn the_agent_s_client_report_has_its_patches_drift_and_compliance_evidence() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = Utc::now();
        let history = History::open(dir.path()).expect("history");
        // The drift monitor's incident, open since an hour ago, and a baseline accepted.
        history
            .save_incident(&Incident {
                id: "config-drift-1".into(),
                monitor: "config-drift".into(),
                detected_at: now - TimeDelta::hours(1),
                triggered_at: now - TimeDelta::hours(1),
                remediated_at: None,
                resolved_at: None,
                escalated: None,
                escalated_at: None,
                attempts: 0,
                last_run_id: None,
            })
            .expect("incident");
        history
            .save_baseline(&warden_history::NewBaseline {
                sha256: "b".repeat(64),
                taken_ms: now.timestamp_millis() - 600_000,
                taken_by: "ada".into(),
                reason: "CHG-1042 status page".into(),
                source: "inventory 0.1.0".into(),
                items: "{}".into(),
            })
            .expect("baseline");
        // The latest patch scan: 3 security updates of 7, no reboot.
        history
            .record_inventory(
                "apt-updates",
                "0.1.0",
                &serde_json::json!({"type": "facts", "value": [{"kind": "patch-status",
                    "facts": {"upgradable": 7, "security": 3, "reboot-required": false}}]}),
            )
            .expect("inventory");
        // disk-encryption installed with its [compliance] claims.
        let manifest = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../plugins/disk-encryption/plugin.toml"),
        )
        .expect("the plugin's manifest");
        let manifest = warden_core::Manifest::parse(&manifest).expect("manifest");
        warden_agent::store::PluginStore::existing(dir.path())
            .put(&manifest, b"\0asm")
            .expect("installed");
        // Its runs as the host audits them: ok, then critical; a drift check's discovery run.
        let audit = warden_audit::AuditLog::new(dir.path());
        let run = |status: &str| {
            serde_json::json!({"plugin": {"name": "disk-encryption", "version": "0.1.0",
                "sha256": "d".repeat(64)}, "invocation": "check",
                "context": {"monitor": "disk-crypt"}, "result": "ok", "status": status,
                "capability_uses": 3, "capability_uses_dropped": 0})
        };
        audit.append("plugin.run", run("ok")).expect("audit");
        audit.append("plugin.run", run("critical")).expect("audit");
        audit
            .append(
                "plugin.run",
                serde_json::json!({"plugin": {"name": "inventory", "version": "0.1.0",
                    "sha256": "e".repeat(64)}, "invocation": "discover",
                    "context": {"monitor": "config-drift", "check": "builtin:drift"},
                    "result": "ok", "capability_uses": 9, "capability_uses_dropped": 0}),
            )
            .expect("audit");
        let cx = Context {
            data_dir: dir.path().to_path_buf(),
            policy: SitePolicy::embedded_default(),
            policy_origin: "test".into(),
            json: false,
        };
        let day = TimeDelta::days(1);
        let when = |t: DateTime<Utc>| t.to_rfc3339();
        let mut args = ReportArgs {
            from: Some(when(now - day)),
            to: Some(when(now + day)),
            tenant: "acme".into(),
            format: Format::Html,
            ..ReportArgs::default()
        };
        let html = report(&cx, &args, now).expect("html");
        let host = warden_agent::daemon::host_name();
        for expected in [
            "<h3>Patch compliance</h3>".to_string(),
            "<td>No security update pending</td><td class=\"n\">0 of 1</td>".into(),
            "<td>No reboot pending</td><td class=\"n\">1 of 1</td>".into(),
            "<h3>Baseline drift</h3><p>1 drift incident(s) detected in the period on 1 \
             monitor(s); 1 still open at its end.</p>"
                .into(),
            "<td>CHG-1042 status page</td>".into(),
            "HIPAA 164.312: 1 of 12 safeguards covered by a check; CMMC: 1 of 21 practices."
                .into(),
            format!(
                "<td>HIPAA</td><td class=\"id\">164.312(a)(2)(iv)</td><td>Encryption and decryption</td>\
                 <td class=\"id\">disk-encryption</td><td class=\"n\">1</td><td class=\"n\">1</td>\
                 <td class=\"n\">1</td><td class=\"n\">0</td><td class=\"breach\">fail on \
                 {}",
                crate::cli::output::inert(&host)
                    .replace('&', "&amp;")
                    .replace('<', "&lt;")
            ),
            "<td>HIPAA</td><td class=\"id\">164.312(b)</td><td>Audit controls</td><td class=\"gap\">not covered</td>".into(),
        ] {
            assert!(html.contains(&expected), "{expected}\n in {html}");
        }
        args.format = Format::Pdf;
        let pdf = output(&cx, &args, now).expect("pdf");
        assert!(pdf.starts_with(b"%PDF-"), "a PDF");
        assert!(
            String::from_utf8_lossy(&pdf).contains("(Compliance coverage) Tj"),
            "its sections"
        );
        // Before the runs and the incident: no outcome, nothing detected, the check still
        // listed as covering its safeguards.
        args.from = Some(when(now - day * 3));
        args.to = Some(when(now - day * 2));
        args.format = Format::Csv;
        let csv = report(&cx, &args, now).expect("csv");
        let disk = csv
            .lines()
            .find(|l| l.contains(",control,,HIPAA,164.312(a)(2)(iv),"))
            .expect("the safeguard's row");
        assert!(disk.contains(",disk-encryption,1,,,0,0,0,,,0,"), "{disk}");
        assert!(!csv.contains(",drift,"), "{csv}");
    }
}
