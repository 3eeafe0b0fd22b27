//! The HTML of the sections beside the services: compliance coverage (GV), inventory (ID.AM),
//! patch compliance and drift (PR.PS), PSA tickets (RS.MI). Every name from an agent, a
//! plugin or a config goes through [`escape`].

use super::{escape, pct};
use crate::compliance::{Framework, Outcome};
use crate::{Report, time};
use std::fmt::Write as _;

const DASH: &str = "\u{2014}";

fn when(ms: Option<i64>) -> String {
    ms.map(time::rfc3339).unwrap_or_else(|| DASH.into())
}

fn header(h: &mut String, columns: &[&str]) {
    h.push_str("<table><tr>");
    for c in columns {
        let _ = write!(h, "<th>{c}</th>");
    }
    h.push_str("</tr>");
}

pub(super) fn compliance(h: &mut String, report: &Report) {
    let Some(c) = &report.compliance else {
        return;
    };
    let (hipaa, hipaa_all) = c.covered(Framework::Hipaa);
    let (cmmc, cmmc_all) = c.covered(Framework::Cmmc);
    let _ = write!(
        h,
        "<h3>Compliance coverage</h3><p>HIPAA 164.312: {hipaa} of {hipaa_all} safeguards \
         covered by a check; CMMC: {cmmc} of {cmmc_all} practices. {}</p>",
        escape(c.evidence.describe())
    );
    header(
        h,
        &[
            "Framework",
            "Control",
            "Title",
            "Check",
            "Agents",
            "Passed",
            "Failed",
            "Unknown",
            "Latest",
            "Failing now",
        ],
    );
    for control in &c.controls {
        // A control id or check name broken over lines is hard to read back against the rule.
        let lead = format!(
            "<td>{}</td><td class=\"id\">{}</td><td>{}</td>",
            control.framework.name(),
            escape(&control.id),
            escape(&control.title)
        );
        if control.checks.is_empty() {
            let _ = write!(
                h,
                "<tr>{lead}<td class=\"gap\">not covered</td><td class=\"n\">0</td>\
                 <td class=\"n\">{DASH}</td><td class=\"n\">{DASH}</td><td class=\"n\">{DASH}</td>\
                 <td>{DASH}</td><td class=\"n\">{DASH}</td></tr>"
            );
            continue;
        }
        for e in &control.checks {
            let latest = e.latest.as_ref().map_or_else(
                || DASH.to_string(),
                |l| {
                    format!(
                        "{} on {} at {}",
                        l.outcome.name(),
                        escape(&l.agent),
                        time::rfc3339(l.at_ms)
                    )
                },
            );
            let failing = if e.failing_now > 0 {
                " class=\"n breach\""
            } else {
                " class=\"n\""
            };
            let latest_class = match e.latest.as_ref().map(|l| l.outcome) {
                Some(Outcome::Fail) => " class=\"breach\"",
                _ => "",
            };
            let _ = write!(
                h,
                "<tr>{lead}<td class=\"id\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                 <td class=\"n\">{}</td><td class=\"n\">{}</td><td{latest_class}>{latest}</td>\
                 <td{failing}>{}</td></tr>",
                escape(&e.check),
                e.agents,
                e.passed,
                e.failed,
                e.unknown,
                e.failing_now
            );
        }
    }
    h.push_str("</table>");
}

pub(super) fn inventory(h: &mut String, report: &Report) {
    let Some(p) = &report.patches else {
        return;
    };
    let _ = write!(
        h,
        "<h3>Inventory</h3><p>{} agent(s) in the inventory at {}; {} reported a patch scan \
         (oldest {}, newest {}), {} never did.</p>",
        p.agents,
        time::rfc3339(p.measured_ms),
        p.scanned,
        when(p.oldest_scan_ms),
        when(p.newest_scan_ms),
        p.agents - p.scanned
    );
}

pub(super) fn patches(h: &mut String, report: &Report) {
    let Some(p) = &report.patches else {
        return;
    };
    let _ = write!(
        h,
        "<h3>Patch compliance</h3><p>Measured: {}, as held at {}. Shares are of all {} \
         agent(s); an agent that never reported a scan counts as not patched. {} scan(s) are \
         older than the period's start.</p>",
        escape(&p.source),
        time::rfc3339(p.measured_ms),
        p.agents,
        p.stale
    );
    header(h, &["Measure", "Agents", "Share"]);
    for (what, count, share) in [
        (
            "No security update pending",
            p.no_security_pending,
            p.no_security_pct(),
        ),
        ("No reboot pending", p.no_reboot_pending, p.no_reboot_pct()),
        ("Compliant (both)", p.compliant, p.compliant_pct()),
    ] {
        let _ = write!(
            h,
            "<tr><td>{what}</td><td class=\"n\">{count} of {}</td><td class=\"n\">{}</td></tr>",
            p.agents,
            pct(share)
        );
    }
    h.push_str("</table>");
    if p.exceptions.is_empty() {
        return;
    }
    h.push_str("<p>Agents not compliant:</p>");
    header(
        h,
        &["Agent", "Scanned", "Pending", "Security", "Reboot required"],
    );
    for e in &p.exceptions {
        match &e.scan {
            Some(s) => {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                     <td>{}</td></tr>",
                    escape(&e.agent),
                    time::rfc3339(s.scanned_ms),
                    s.pending,
                    s.security,
                    if s.reboot_required { "yes" } else { "no" }
                );
            }
            None => {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td class=\"gap\">no scan</td><td class=\"n\">{DASH}</td>\
                     <td class=\"n\">{DASH}</td><td>{DASH}</td></tr>",
                    escape(&e.agent)
                );
            }
        }
    }
    h.push_str("</table>");
}

pub(super) fn drift(h: &mut String, report: &Report) {
    let Some(d) = &report.drift else {
        return;
    };
    let _ = write!(
        h,
        "<h3>Baseline drift</h3><p>{} drift incident(s) detected in the period on {} \
         monitor(s); {} still open at its end.</p>",
        d.detected(),
        d.rows.len(),
        d.open_at_end()
    );
    if !d.rows.is_empty() {
        header(
            h,
            &[
                "Agent",
                "Monitor",
                "Detected",
                "Resolved",
                "Open at end",
                "Last detected",
            ],
        );
        for r in &d.rows {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                 <td{}>{}</td><td>{}</td></tr>",
                escape(&r.agent),
                escape(&r.monitor),
                r.detected,
                r.resolved,
                if r.open_at_end {
                    " class=\"breach\""
                } else {
                    ""
                },
                if r.open_at_end { "yes" } else { "no" },
                when(r.last_detected_ms)
            );
        }
        h.push_str("</table>");
    }
    if let Some(baselines) = &d.baselines {
        let _ = write!(
            h,
            "<p>{} baseline version(s) recorded in the period (accepted changes).</p>",
            baselines.len()
        );
        if !baselines.is_empty() {
            header(h, &["Agent", "Version", "Recorded", "By", "Reason"]);
            for b in baselines {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(&b.agent),
                    b.version,
                    time::rfc3339(b.taken_ms),
                    escape(&b.taken_by),
                    escape(&b.reason)
                );
            }
            h.push_str("</table>");
        }
    }
}

pub(super) fn tickets(h: &mut String, report: &Report) {
    if report.tickets.is_empty() {
        return;
    }
    h.push_str("<h3>PSA tickets</h3>");
    header(
        h,
        &["Agent", "Service", "PSA", "Ticket", "Status", "Resolve by"],
    );
    for t in &report.tickets {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&t.agent),
            escape(&t.monitor),
            escape(&t.system),
            escape(&t.id),
            escape(&t.status),
            escape(t.resolve_by.as_deref().unwrap_or(DASH))
        );
    }
    h.push_str("</table>");
}
