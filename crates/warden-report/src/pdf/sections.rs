//! The PDF of the sections beside the services, as [`crate::html`]'s: compliance coverage
//! (GV), inventory (ID.AM), patch compliance and drift (PR.PS), PSA tickets (RS.MI). Text goes
//! through the layout's [`Layout::line`], [`Layout::paragraph`] and [`Layout::table`], which
//! escape and cut it.

use super::{Align, BODY, BOLD, Column, Layout, ROW, col, pct};
use crate::compliance::{Framework, Outcome};
use crate::{Report, time};

const DASH: &str = "\u{2014}";

type Rows = Vec<(Vec<String>, Vec<bool>)>;

fn heading(l: &mut Layout, text: &str) {
    l.room(3.0 * ROW + 20.0);
    l.line(BOLD, BODY + 2.0, 5.0, text);
}

fn when(ms: Option<i64>) -> String {
    ms.map(time::rfc3339).unwrap_or_else(|| DASH.into())
}

const CONTROL_COLUMNS: [Column; 9] = [
    col("Control", 76.0, Align::Left),
    col("Safeguard", 88.0, Align::Left),
    col("Check", 72.0, Align::Left),
    col("Agents", 40.0, Align::Right),
    col("Pass", 30.0, Align::Right),
    col("Fail", 28.0, Align::Right),
    col("Unkn.", 32.0, Align::Right),
    col("Latest", 84.0, Align::Left),
    col("Failing", 45.0, Align::Right),
];

pub(super) fn compliance(l: &mut Layout, report: &Report) {
    let Some(c) = &report.compliance else {
        return;
    };
    heading(l, "Compliance coverage");
    l.paragraph(c.evidence.describe());
    for (framework, what) in [
        (Framework::Hipaa, "HIPAA 164.312 safeguards"),
        (Framework::Cmmc, "CMMC practices"),
    ] {
        let (covered, all) = c.covered(framework);
        l.line(
            BOLD,
            BODY + 1.0,
            4.0,
            &format!("{what}: {covered} of {all} covered by a check"),
        );
        let mut rows: Rows = Vec::new();
        for control in c.of(framework) {
            if control.checks.is_empty() {
                rows.push((
                    vec![
                        control.id.clone(),
                        control.title.clone(),
                        "not covered".into(),
                        "0".into(),
                        DASH.into(),
                        DASH.into(),
                        DASH.into(),
                        DASH.into(),
                        DASH.into(),
                    ],
                    vec![false, false, true],
                ));
            }
            for e in &control.checks {
                let latest = e.latest.as_ref();
                rows.push((
                    vec![
                        control.id.clone(),
                        control.title.clone(),
                        e.check.clone(),
                        e.agents.to_string(),
                        e.passed.to_string(),
                        e.failed.to_string(),
                        e.unknown.to_string(),
                        latest.map_or_else(
                            || DASH.to_string(),
                            |o| format!("{} {}", o.outcome.name(), time::date(o.at_ms)),
                        ),
                        e.failing_now.to_string(),
                    ],
                    vec![
                        false,
                        false,
                        false,
                        false,
                        false,
                        false,
                        false,
                        latest.is_some_and(|o| o.outcome == Outcome::Fail),
                        e.failing_now > 0,
                    ],
                ));
            }
        }
        l.table(&CONTROL_COLUMNS, &rows);
    }
}

pub(super) fn inventory(l: &mut Layout, report: &Report) {
    let Some(p) = &report.patches else {
        return;
    };
    heading(l, "Inventory");
    l.paragraph(&format!(
        "{} agent(s) in the inventory at {}; {} reported a patch scan (oldest {}, newest {}), \
         {} never did.",
        p.agents,
        time::rfc3339(p.measured_ms),
        p.scanned,
        when(p.oldest_scan_ms),
        when(p.newest_scan_ms),
        p.agents - p.scanned
    ));
}

const SHARE_COLUMNS: [Column; 3] = [
    col("Measure", 200.0, Align::Left),
    col("Agents", 110.0, Align::Right),
    col("Share", 80.0, Align::Right),
];

const EXCEPTION_COLUMNS: [Column; 5] = [
    col("Agent", 150.0, Align::Left),
    col("Scanned", 120.0, Align::Left),
    col("Pending", 60.0, Align::Right),
    col("Security", 60.0, Align::Right),
    col("Reboot required", 90.0, Align::Left),
];

pub(super) fn patches(l: &mut Layout, report: &Report) {
    let Some(p) = &report.patches else {
        return;
    };
    heading(l, "Patch compliance");
    l.paragraph(&format!(
        "Measured: {}, as held at {}. Shares are of all {} agent(s); an agent that never \
         reported a scan counts as not patched. {} scan(s) are older than the period's start.",
        p.source,
        time::rfc3339(p.measured_ms),
        p.agents,
        p.stale
    ));
    let rows: Rows = [
        (
            "No security update pending",
            p.no_security_pending,
            p.no_security_pct(),
        ),
        ("No reboot pending", p.no_reboot_pending, p.no_reboot_pct()),
        ("Compliant (both)", p.compliant, p.compliant_pct()),
    ]
    .into_iter()
    .map(|(what, count, share)| {
        (
            vec![
                what.to_string(),
                format!("{count} of {}", p.agents),
                pct(share),
            ],
            Vec::new(),
        )
    })
    .collect();
    l.table(&SHARE_COLUMNS, &rows);
    if p.exceptions.is_empty() {
        return;
    }
    l.line(BOLD, BODY + 1.0, 4.0, "Agents not compliant");
    let rows: Rows = p
        .exceptions
        .iter()
        .map(|e| match &e.scan {
            Some(s) => (
                vec![
                    e.agent.clone(),
                    time::rfc3339(s.scanned_ms),
                    s.pending.to_string(),
                    s.security.to_string(),
                    if s.reboot_required { "yes" } else { "no" }.into(),
                ],
                vec![false, false, false, s.security > 0, s.reboot_required],
            ),
            None => (
                vec![
                    e.agent.clone(),
                    "no scan".into(),
                    DASH.into(),
                    DASH.into(),
                    DASH.into(),
                ],
                vec![false, true],
            ),
        })
        .collect();
    l.table(&EXCEPTION_COLUMNS, &rows);
}

const DRIFT_COLUMNS: [Column; 6] = [
    col("Agent", 120.0, Align::Left),
    col("Monitor", 105.0, Align::Left),
    col("Detected", 55.0, Align::Right),
    col("Resolved", 55.0, Align::Right),
    col("Open at end", 65.0, Align::Left),
    col("Last detected", 95.0, Align::Left),
];

const BASELINE_COLUMNS: [Column; 5] = [
    col("Agent", 110.0, Align::Left),
    col("Version", 50.0, Align::Right),
    col("Recorded", 110.0, Align::Left),
    col("By", 70.0, Align::Left),
    col("Reason", 155.0, Align::Left),
];

pub(super) fn drift(l: &mut Layout, report: &Report) {
    let Some(d) = &report.drift else {
        return;
    };
    heading(l, "Baseline drift");
    l.paragraph(&format!(
        "{} drift incident(s) detected in the period on {} monitor(s); {} still open at its end.",
        d.detected(),
        d.rows.len(),
        d.open_at_end()
    ));
    if !d.rows.is_empty() {
        let rows: Rows = d
            .rows
            .iter()
            .map(|r| {
                (
                    vec![
                        r.agent.clone(),
                        r.monitor.clone(),
                        r.detected.to_string(),
                        r.resolved.to_string(),
                        if r.open_at_end { "yes" } else { "no" }.into(),
                        r.last_detected_ms
                            .map(time::date)
                            .unwrap_or_else(|| DASH.into()),
                    ],
                    vec![false, false, false, false, r.open_at_end],
                )
            })
            .collect();
        l.table(&DRIFT_COLUMNS, &rows);
    }
    if let Some(baselines) = &d.baselines {
        l.paragraph(&format!(
            "{} baseline version(s) recorded in the period (accepted changes).",
            baselines.len()
        ));
        if !baselines.is_empty() {
            let rows: Rows = baselines
                .iter()
                .map(|b| {
                    (
                        vec![
                            b.agent.clone(),
                            b.version.to_string(),
                            time::rfc3339(b.taken_ms),
                            b.taken_by.clone(),
                            b.reason.clone(),
                        ],
                        Vec::new(),
                    )
                })
                .collect();
            l.table(&BASELINE_COLUMNS, &rows);
        }
    }
}

const TICKET_COLUMNS: [Column; 6] = [
    col("Agent", 90.0, Align::Left),
    col("Service", 85.0, Align::Left),
    col("PSA", 95.0, Align::Left),
    col("Ticket", 65.0, Align::Left),
    col("Status", 45.0, Align::Left),
    col("Resolve by", 115.0, Align::Left),
];

pub(super) fn tickets(l: &mut Layout, report: &Report) {
    if report.tickets.is_empty() {
        return;
    }
    heading(l, "PSA tickets");
    let rows: Rows = report
        .tickets
        .iter()
        .map(|t| {
            (
                vec![
                    t.agent.clone(),
                    t.monitor.clone(),
                    t.system.clone(),
                    t.id.clone(),
                    t.status.clone(),
                    t.resolve_by.clone().unwrap_or_else(|| DASH.into()),
                ],
                Vec::new(),
            )
        })
        .collect();
    l.table(&TICKET_COLUMNS, &rows);
}
