//! `warden report --format csv|html` as a user runs it: the `warden` binary on a data dir whose
//! history holds a month of incidents (seeded through `warden-history`, as the monitors write
//! them), with an `--sla` file; the CSV is read back by its header, the HTML for its sections,
//! its chart and its escaping.

use chrono::{TimeZone, Utc};
use std::process::Command;
use warden_history::{History, IncidentRow};

fn at(day: u32, hour: u32, min: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, hour, min, 0)
        .single()
        .expect("a time")
}

fn incident(
    id: &str,
    monitor: &str,
    detected: chrono::DateTime<Utc>,
    minutes: Option<i64>,
) -> IncidentRow {
    IncidentRow {
        id: id.into(),
        monitor: monitor.into(),
        detected_at: detected,
        triggered_at: detected + chrono::TimeDelta::minutes(2),
        remediated_at: None,
        resolved_at: minutes.map(|m| detected + chrono::TimeDelta::minutes(m)),
        escalated: None,
        escalated_at: None,
        attempts: 1,
        last_run_id: None,
    }
}

#[test]
fn the_client_report_of_a_month_as_csv_and_html() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let history = History::open(&data).expect("history");
    for row in [
        incident("b1", "backup-nightly", at(3, 2, 0), Some(20)),
        incident("b2", "backup-nightly", at(9, 2, 0), Some(90)),
        incident("d1", "root-disk", at(12, 8, 0), Some(30)),
        // A name a plugin author could choose: shown inert in HTML, defused in CSV.
        incident("x1", "=x<script>alert(1)</script>", at(20, 0, 0), Some(5)),
        // Still open at the month's end.
        incident("d2", "root-disk", at(30, 20, 0), None),
        // December: outside.
        incident(
            "d3",
            "root-disk",
            at(30, 23, 59) + chrono::TimeDelta::hours(2),
            Some(5),
        ),
    ] {
        history.save_incident_row(&row).expect("incident");
    }
    drop(history);
    let sla = tmp.path().join("sla.toml");
    std::fs::write(
        &sla,
        "[targets]\nP1 = 60\nP2 = 240\n\
         [[service]]\nmonitor = \"backup*\"\npriority = \"P1\"\ncsf = \"RC.RP\"\n\
         [[service]]\nmonitor = \"root-disk\"\npriority = \"P2\"\ncsf = \"PR.PS\"\n",
    )
    .expect("sla");
    let report = |format: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_warden"))
            .arg("--data-dir")
            .arg(&data)
            .args([
                "report", "--month", "2026-11", "--tenant", "acme", "--format", format,
            ])
            .arg("--sla")
            .arg(&sla)
            .output()
            .expect("warden runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8")
    };

    let csv = report("csv");
    let mut lines = csv.split("\r\n").filter(|l| !l.is_empty());
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let rows: Vec<std::collections::HashMap<&str, &str>> = lines
        .map(|l| header.iter().copied().zip(l.split(',')).collect())
        .collect();
    assert!(rows.iter().all(|r| r.len() == header.len()), "{csv}");
    // The services' records (the others: this machine's patches, drift, controls).
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|r| r["record"] == "service")
        .collect();
    assert_eq!(rows.len(), 3, "{csv}");
    let row = |monitor: &str| {
        rows.iter()
            .find(|r| r["monitor"] == monitor)
            .unwrap_or_else(|| panic!("no {monitor} in {csv}"))
    };
    // Grouped by CSF function: Protect (root-disk) before Detect (the unnamed one) before
    // Recover (backup).
    let order: Vec<&str> = rows.iter().map(|r| r["csf_category"]).collect();
    assert_eq!(order, ["PR.PS", "DE.CM", "RC.RP"]);
    let backup = row("backup-nightly");
    assert_eq!(backup["tenant"], "acme");
    assert_eq!(backup["period_start"], "2026-11-01T00:00:00Z");
    assert_eq!(backup["period_end"], "2026-12-01T00:00:00Z");
    assert_eq!(backup["priority"], "P1");
    assert_eq!(backup["incidents"], "2");
    assert_eq!(backup["sla_breaches"], "1", "90 min against 60");
    assert_eq!(backup["mttr_s"], "3300", "(20 + 90) / 2 min");
    assert_eq!(backup["downtime_s"], "6600");
    assert_eq!(backup["sla_target_s"], "3600");
    let disk = row("root-disk");
    assert_eq!(disk["incidents"], "2");
    assert_eq!(disk["open"], "1");
    assert_eq!(
        disk["downtime_s"], "16200",
        "30 min, and 4 h to the month's end"
    );
    assert_eq!(
        disk["sla_breaches"], "0",
        "open 4 h: not over the 4 h target yet"
    );
    assert_eq!(disk["mttr_s"], "1800");
    let defused = row("'=x<script>alert(1)</script>");
    assert_eq!(defused["priority"], "P3");

    let html = report("html");
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(!html.contains("<script"), "{html}");
    assert!(
        html.contains("=x&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    for section in ["Protect (PR.PS)", "Detect (DE.CM)", "Recover (RC.RP)"] {
        assert!(html.contains(section), "{section}: {html}");
    }
    assert_eq!(
        html.matches("<svg").count(),
        3,
        "one uptime chart per function"
    );
    assert!(html.contains("Service report: acme"), "{html}");
}
