//! The report as CSV: one row per service under one fixed header ([`HEADER`]), RFC 4180
//! quoting, and no cell a spreadsheet would run as a formula (a text cell starting with `=`,
//! `+`, `-`, `@`, a tab or a carriage return gets a leading `'`).

use crate::{Report, time};

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
];

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
    let (start, end) = (time::rfc3339(report.from_ms), time::rfc3339(report.to_ms));
    for s in &report.services {
        let open = s.incidents.len() - s.resolved();
        let row = [
            cell(&report.tenant),
            start.clone(),
            end.clone(),
            s.category.function().to_string(),
            s.category.id().to_string(),
            cell(&s.agent),
            cell(&s.monitor),
            s.priority.name().to_string(),
            format!("{:.3}", s.uptime_pct),
            seconds(s.downtime_ms as f64),
            s.incidents.len().to_string(),
            s.resolved().to_string(),
            open.to_string(),
            s.breaches().to_string(),
            s.mttr_ms.map(seconds).unwrap_or_default(),
            s.target_ms.map(|t| seconds(t as f64)).unwrap_or_default(),
            // The service's PSA tickets, `system:id` separated by spaces.
            cell(
                &report
                    .tickets_of(&s.agent, &s.monitor)
                    .map(|t| format!("{}:{}", t.system, t.id))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
        ];
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    out
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
        assert_eq!(
            lines[1],
            "acme,1970-01-01T00:00:00Z,1970-01-02T00:00:00Z,Detect,DE.CM,\"db,1\",disk,P3,99.931,60,1,1,0,0,60,,"
        );
        assert!(lines[2].contains(",web,'=cmd,P3,"), "{}", lines[2]);
        assert!(lines[2].ends_with(",1,0,1,0,,,"), "{}", lines[2]);
    }
}
