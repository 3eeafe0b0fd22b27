//! The report as CSV: one table under one fixed header ([`HEADER`]), RFC 4180 quoting, and no
//! cell a spreadsheet would run as a formula (a text cell starting with `=`, `+`, `-`, `@`, a
//! tab or a carriage return gets a leading `'`).
//!
//! Every row has every column; its `record` says what it is, and which columns it fills
//! (the others are empty):
//!
//! - `service`: one per service, the columns up to `tickets` (the first seventeen, as before
//!   the other records existed).
//! - `patch`: one per agent not compliant or never scanned, its latest scan (`scanned_at`, `patches_pending`,
//!   `security_pending`, `reboot_required`; all empty when it never reported one),
//!   `patch_compliant` and `measured_at`.
//! - `patch-share`: `item` = `no-security-pending`, `no-reboot-pending` or `compliant`;
//!   `count` of `agents`, `share_pct`, `measured_at`.
//! - `drift`: one per drift monitor with drift in the period or open at its end: `agent`,
//!   `monitor`, `incidents` (detected), `resolved`, `open_at_end`, `latest_at` (last detected).
//! - `baseline`: a baseline version recorded in the period: `agent`, `item` (the version),
//!   `latest_at` (when), `check` (who), `control_title` (why).
//! - `control`: one per control and check giving evidence for it (`check` empty: not
//!   covered): `framework`, `control`, `control_title`, `check`, `agents`, `passed`, `failed`,
//!   `unknown`, `latest_outcome`, `latest_at`, `failing_now`.

use crate::{CsfCategory, Report, time};

/// The columns, in order; every row has all of them (empty when a figure does not exist).
pub const HEADER: &[&str] = &[
    "tenant",
    "period_start",
    "period_end",
    "csf_function",
    "csf_category",
    "agent",
    "monitor",
    "priority",
    "uptime_pct",
    "downtime_s",
    "incidents",
    "resolved",
    "open",
    "sla_breaches",
    "mttr_s",
    "sla_target_s",
    "tickets",
    "record",
    "item",
    "framework",
    "control",
    "control_title",
    "check",
    "agents",
    "count",
    "share_pct",
    "passed",
    "failed",
    "unknown",
    "latest_outcome",
    "latest_at",
    "failing_now",
    "scanned_at",
    "patches_pending",
    "security_pending",
    "reboot_required",
    "patch_compliant",
    "open_at_end",
    "measured_at",
];

/// A row by column name: what is not set stays empty.
struct Row(Vec<String>);

impl Row {
    fn new(report: &Report, record: &str) -> Row {
        let mut row = Row(vec![String::new(); HEADER.len()]);
        row.set("tenant", cell(&report.tenant));
        row.set("period_start", time::rfc3339(report.from_ms));
        row.set("period_end", time::rfc3339(report.to_ms));
        row.set("record", record.to_string());
        row
    }

    fn set(&mut self, column: &str, value: String) -> &mut Row {
        // The names are this file's constants; a misspelt one is caught by the tests.
        if let Some(i) = HEADER.iter().position(|c| *c == column) {
            self.0[i] = value;
        }
        self
    }

    fn category(&mut self, category: CsfCategory) -> &mut Row {
        self.set("csf_function", category.function().to_string())
            .set("csf_category", category.id().to_string())
    }

    fn push_to(&self, out: &mut String) {
        out.push_str(&self.0.join(","));
        out.push_str("\r\n");
    }
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

/// One text cell, quoted when it must be and defused when a spreadsheet would evaluate it.
pub fn cell(text: &str) -> String {
    let defused = match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_string(),
    };
    if defused.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", defused.replace('"', "\"\""))
    } else {
        defused
    }
}

fn seconds(ms: f64) -> String {
    format!("{:.0}", ms / 1000.0)
}

/// The CSV text, header first, lines ending in CRLF (RFC 4180).
pub fn render(report: &Report) -> String {
    let mut out = HEADER.join(",");
    out.push_str("\r\n");
    for s in &report.services {
        let open = s.incidents.len() - s.resolved();
        Row::new(report, "service")
            .category(s.category)
            .set("agent", cell(&s.agent))
            .set("monitor", cell(&s.monitor))
            .set("priority", s.priority.name().to_string())
            .set("uptime_pct", format!("{:.3}", s.uptime_pct))
            .set("downtime_s", seconds(s.downtime_ms as f64))
            .set("incidents", s.incidents.len().to_string())
            .set("resolved", s.resolved().to_string())
            .set("open", open.to_string())
            .set("sla_breaches", s.breaches().to_string())
            .set("mttr_s", s.mttr_ms.map(seconds).unwrap_or_default())
            .set(
                "sla_target_s",
                s.target_ms.map(|t| seconds(t as f64)).unwrap_or_default(),
            )
            // The service's PSA tickets, `system:id` separated by spaces.
            .set(
                "tickets",
                cell(
                    &report
                        .tickets_of(&s.agent, &s.monitor)
                        .map(|t| format!("{}:{}", t.system, t.id))
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
            )
            .push_to(&mut out);
    }
    patches(report, &mut out);
    drift(report, &mut out);
    compliance(report, &mut out);
    out
}

fn patches(report: &Report, out: &mut String) {
    let Some(p) = &report.patches else {
        return;
    };
    let measured = time::rfc3339(p.measured_ms);
    // The compliant agents are counted in the share rows; each other one has a row.
    for e in &p.exceptions {
        let mut row = Row::new(report, "patch");
        row.category(CsfCategory::PrPs)
            .set("agent", cell(&e.agent))
            .set("measured_at", measured.clone())
            .set("patch_compliant", yes_no(false));
        if let Some(s) = &e.scan {
            row.set("scanned_at", time::rfc3339(s.scanned_ms))
                .set("patches_pending", s.pending.to_string())
                .set("security_pending", s.security.to_string())
                .set("reboot_required", yes_no(s.reboot_required));
        }
        row.push_to(out);
    }
    for (item, count, share) in [
        (
            "no-security-pending",
            p.no_security_pending,
            p.no_security_pct(),
        ),
        ("no-reboot-pending", p.no_reboot_pending, p.no_reboot_pct()),
        ("compliant", p.compliant, p.compliant_pct()),
    ] {
        Row::new(report, "patch-share")
            .category(CsfCategory::PrPs)
            .set("item", item.to_string())
            .set("agents", p.agents.to_string())
            .set("count", count.to_string())
            .set(
                "share_pct",
                share.map(|v| format!("{v:.3}")).unwrap_or_default(),
            )
            .set("measured_at", measured.clone())
            .push_to(out);
    }
}

fn drift(report: &Report, out: &mut String) {
    let Some(d) = &report.drift else {
        return;
    };
    for r in &d.rows {
        Row::new(report, "drift")
            .category(CsfCategory::PrPs)
            .set("agent", cell(&r.agent))
            .set("monitor", cell(&r.monitor))
            .set("incidents", r.detected.to_string())
            .set("resolved", r.resolved.to_string())
            .set("open_at_end", yes_no(r.open_at_end))
            .set(
                "latest_at",
                r.last_detected_ms.map(time::rfc3339).unwrap_or_default(),
            )
            .push_to(out);
    }
    for b in d.baselines.iter().flatten() {
        Row::new(report, "baseline")
            .category(CsfCategory::PrPs)
            .set("agent", cell(&b.agent))
            .set("item", b.version.to_string())
            .set("latest_at", time::rfc3339(b.taken_ms))
            .set("check", cell(&b.taken_by))
            .set("control_title", cell(&b.reason))
            .push_to(out);
    }
}

fn compliance(report: &Report, out: &mut String) {
    let Some(c) = &report.compliance else {
        return;
    };
    for control in &c.controls {
        let mut row = Row::new(report, "control");
        row.category(CsfCategory::Gv)
            .set("framework", control.framework.name().to_string())
            .set("control", cell(&control.id))
            .set("control_title", cell(&control.title));
        if control.checks.is_empty() {
            row.set("agents", "0".into()).push_to(out);
        }
        for e in &control.checks {
            let mut row = Row(row.0.clone());
            row.set("check", cell(&e.check))
                .set("agents", e.agents.to_string())
                .set("passed", e.passed.to_string())
                .set("failed", e.failed.to_string())
                .set("unknown", e.unknown.to_string())
                .set("failing_now", e.failing_now.to_string());
            if let Some(l) = &e.latest {
                row.set("latest_outcome", l.outcome.name().to_string())
                    .set("latest_at", time::rfc3339(l.at_ms));
            }
            row.push_to(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Event, EventKind, TenantSettings, compute};

    #[test]
    fn cells_are_quoted_and_formulas_defused() {
        assert_eq!(cell("db-1"), "db-1");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(cell("-1+2"), "'-1+2");
        assert_eq!(cell("line\nbreak"), "\"line\nbreak\"");
    }

    #[test]
    fn every_row_has_the_header_s_columns() {
        let events = [
            Event {
                at_ms: 1_000,
                agent: "db,1".into(),
                monitor: "disk".into(),
                kind: EventKind::Opened,
            },
            Event {
                at_ms: 61_000,
                agent: "db,1".into(),
                monitor: "disk".into(),
                kind: EventKind::Resolved,
            },
            Event {
                at_ms: 5_000,
                agent: "web".into(),
                monitor: "=cmd".into(),
                kind: EventKind::Opened,
            },
        ];
        let report =
            compute("acme", 0, 86_400_000, &events, &TenantSettings::default()).expect("report");
        let text = render(&report);
        let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert_eq!(lines[0], HEADER.join(","));
        assert_eq!(lines.len(), 3, "{text}");
        // The service columns, then `record` and the other records' columns, empty.
        let rest = ",".repeat(HEADER.len() - 18);
        assert_eq!(
            lines[1],
            format!(
                "acme,1970-01-01T00:00:00Z,1970-01-02T00:00:00Z,Detect,DE.CM,\"db,1\",disk,P3,99.931,60,1,1,0,0,60,,,service{rest}"
            )
        );
        assert!(lines[2].contains(",web,'=cmd,P3,"), "{}", lines[2]);
        assert!(
            lines[2].ends_with(&format!(",1,0,1,0,,,,service{rest}")),
            "{}",
            lines[2]
        );
    }

    #[test]
    fn each_section_s_records_fill_their_columns() {
        let text = render(&crate::tests::with_sections("=db"));
        let rows: Vec<Vec<&str>> = text
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .map(|l| l.split(',').collect())
            .collect();
        assert!(rows.iter().all(|r| r.len() == HEADER.len()), "rectangular");
        let at = |name: &str| HEADER.iter().position(|c| *c == name).expect(name);
        let of = |record: &str| -> Vec<&Vec<&str>> {
            rows.iter().filter(|r| r[at("record")] == record).collect()
        };
        let controls = of("control");
        assert_eq!(
            controls.len(),
            12 + 21,
            "one row per listed control (one check each)"
        );
        let uncovered: Vec<_> = controls
            .iter()
            .filter(|r| r[at("check")].is_empty())
            .collect();
        assert_eq!(uncovered.len(), 11 + 20);
        let disk = controls
            .iter()
            .find(|r| r[at("control")] == "164.312(a)(2)(iv)")
            .expect("the covered safeguard");
        assert_eq!(disk[at("check")], "disk-encryption");
        assert_eq!(
            [
                disk[at("passed")],
                disk[at("failed")],
                disk[at("latest_outcome")]
            ],
            ["1", "1", "fail"]
        );
        assert_eq!(disk[at("csf_category")], "GV");
        let shares = of("patch-share");
        let compliant = shares
            .iter()
            .find(|r| r[at("item")] == "compliant")
            .expect("compliant share");
        assert_eq!(
            [
                compliant[at("count")],
                compliant[at("agents")],
                compliant[at("share_pct")]
            ],
            ["1", "4", "25.000"]
        );
        assert_eq!(compliant[at("measured_at")], "1970-01-01T23:00:00Z");
        let patch: Vec<&str> = of("patch").iter().map(|r| r[at("agent")]).collect();
        assert_eq!(
            patch,
            ["'=db", "never-1", "reboot-1"],
            "the exceptions, defused"
        );
        let drift = of("drift");
        assert_eq!(drift.len(), 1);
        assert_eq!(
            [drift[0][at("incidents")], drift[0][at("open_at_end")]],
            ["1", "yes"]
        );
        assert_eq!(of("baseline")[0][at("item")], "7");
    }
}
