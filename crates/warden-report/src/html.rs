//! The report as one self-contained HTML file: inline CSS, SVG charts, no script, no external
//! resource (a client opens it offline, or prints it to PDF). Every text that came from an agent
//! or a config (tenant, agent and monitor names) goes through [`escape`].

use crate::{CsfCategory, Report, ServiceReport, time};
use std::fmt::Write as _;

mod sections;

/// Text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters (ANSI escapes among them) are shown inert, as U+FFFD.
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:0.5em 0 1.5em}\
th,td{border:1px solid #ccc;padding:0.25em 0.6em;text-align:left}\
td.n{text-align:right;font-variant-numeric:tabular-nums}\
.breach{color:#b00020;font-weight:600}h2{margin-top:1.5em}.gap{color:#8a5a00}.id{white-space:nowrap}";

pub(crate) fn pct(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2} %")).unwrap_or_else(|| "—".into())
}

fn dur(v: Option<f64>) -> String {
    v.map(time::duration).unwrap_or_else(|| "—".into())
}

/// Horizontal bars of each service's uptime (the axis from 90 % to 100 %, where SLAs live; a
/// lower uptime is drawn at the left edge).
fn uptime_chart(services: &[&ServiceReport]) -> String {
    const ROW: usize = 22;
    const LABEL: usize = 260;
    const BAR: f64 = 400.0;
    let height = services.len() * ROW + 24;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" role=\"img\" aria-label=\"uptime per service\">",
        LABEL + BAR as usize + 80
    );
    for (i, s) in services.iter().enumerate() {
        let y = i * ROW;
        let share = ((s.uptime_pct - 90.0) / 10.0).clamp(0.0, 1.0);
        let colour = if s.breaches() > 0 {
            "#b00020"
        } else {
            "#2e7d32"
        };
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{}\" font-size=\"12\">{}</text>\
             <rect x=\"{LABEL}\" y=\"{}\" width=\"{:.1}\" height=\"16\" fill=\"{colour}\"/>\
             <text x=\"{:.1}\" y=\"{}\" font-size=\"12\">{:.2} %</text>",
            y + 14,
            escape(&format!("{} / {}", s.agent, s.monitor)),
            y + 2,
            share * BAR,
            LABEL as f64 + share * BAR + 6.0,
            y + 14,
            s.uptime_pct
        );
    }
    let axis = services.len() * ROW + 16;
    let _ = write!(
        svg,
        "<text x=\"{LABEL}\" y=\"{axis}\" font-size=\"11\">90 %</text>\
         <text x=\"{}\" y=\"{axis}\" font-size=\"11\">100 %</text></svg>",
        LABEL + BAR as usize - 30
    );
    svg
}

fn services_table(h: &mut String, services: &[&ServiceReport]) {
    h.push_str(
        "<table><tr><th>Agent</th><th>Service</th><th>Priority</th><th>Uptime</th>\
         <th>Downtime</th><th>Incidents</th><th>Open</th><th>Breached</th><th>MTTR</th></tr>",
    );
    for s in services {
        let class = if s.breaches() > 0 {
            " class=\"breach\""
        } else {
            ""
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{:.3} %</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\"{class}>{}</td><td class=\"n\">{}</td></tr>",
            escape(&s.agent),
            escape(&s.monitor),
            s.priority.name(),
            s.uptime_pct,
            time::duration(s.downtime_ms as f64),
            s.incidents.len(),
            s.incidents.len() - s.resolved(),
            s.breaches(),
            dur(s.mttr_ms)
        );
    }
    h.push_str("</table>");
}

/// The HTML text.
pub fn render(report: &Report) -> String {
    let tenant = escape(&report.tenant);
    let period = format!(
        "{} – {}",
        time::date(report.from_ms),
        time::date(report.to_ms - 1)
    );
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Service report: {tenant}, {period}</title><style>{STYLE}</style></head><body>\
         <h1>Service report: {tenant}</h1><p>Period {period} (UTC). {}</p>",
        escape(&report.summary())
    );
    h.push_str(
        "<h2>SLA by priority</h2><table><tr><th>Priority</th><th>Target</th><th>Incidents</th>\
         <th>Breached</th><th>Met</th><th>MTTR</th></tr>",
    );
    for p in &report.priorities {
        let class = if p.breached > 0 {
            " class=\"breach\""
        } else {
            ""
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\"{class}>{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            p.priority.name(),
            dur(p.target_ms.map(|t| t as f64)),
            p.incidents,
            p.breached,
            pct(p.met_pct),
            dur(p.mttr_ms)
        );
    }
    h.push_str("</table>");
    for category in CsfCategory::ALL {
        if !report.has_content(category) {
            continue;
        }
        let services = report.services_in(category);
        let _ = write!(h, "<h2>{} ({})</h2>", category.function(), category.id());
        if !services.is_empty() {
            h.push_str(&uptime_chart(&services));
            services_table(&mut h, &services);
        }
        match category {
            CsfCategory::Gv => sections::compliance(&mut h, report),
            CsfCategory::IdAm => sections::inventory(&mut h, report),
            CsfCategory::PrPs => {
                sections::patches(&mut h, report);
                sections::drift(&mut h, report);
            }
            CsfCategory::RsMi => sections::tickets(&mut h, report),
            CsfCategory::DeCm | CsfCategory::RcRp => {}
        }
    }
    if report.services.is_empty() {
        h.push_str("<p>No incident in this period.</p>");
    }
    h.push_str("</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Event, EventKind, TenantSettings, compute};

    #[test]
    fn text_from_agents_is_escaped_and_the_file_is_self_contained() {
        let hostile = "<script>alert(1)</script>\u{1b}[31m";
        let events = [Event {
            at_ms: 1_000,
            agent: hostile.into(),
            monitor: "disk\"><img src=x onerror=alert(2)>".into(),
            kind: EventKind::Opened,
        }];
        let report =
            compute("a&b", 0, 86_400_000, &events, &TenantSettings::default()).expect("report");
        let html = render(&report);
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains('\u{1b}'), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(html.contains("Service report: a&amp;b"), "{html}");
        assert!(html.contains("<svg"), "a chart: {html}");
        assert!(html.contains("<h2>Detect (DE.CM)</h2>"), "{html}");
        for external in ["http://", "https://", "src=\"", "<link", "@import"] {
            let outside_svg_ns = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
            assert!(!outside_svg_ns.contains(external), "{external} in {html}");
        }
    }

    #[test]
    fn tickets_get_their_own_table_escaped() {
        let report = compute("acme", 0, 86_400_000, &[], &TenantSettings::default())
            .expect("report")
            .with_tickets(vec![crate::Ticket {
                agent: "db-1".into(),
                monitor: "disk".into(),
                system: "halo".into(),
                id: "<b>4711</b>".into(),
                status: "open".into(),
                resolve_by: None,
            }]);
        let html = render(&report);
        assert!(
            html.contains("<h2>Respond (RS.MI)</h2><h3>PSA tickets</h3>"),
            "under RS.MI: {html}"
        );
        assert!(
            html.contains("<td>halo</td><td>&lt;b&gt;4711&lt;/b&gt;</td><td>open</td>"),
            "{html}"
        );
        let none = compute("acme", 0, 86_400_000, &[], &TenantSettings::default()).expect("r");
        assert!(!render(&none).contains("PSA tickets"), "no empty section");
    }

    #[test]
    fn the_new_sections_show_their_figures_and_every_safeguard_escaped() {
        let html = render(&crate::tests::with_sections("<b>db</b>"));
        for expected in [
            "<h2>Govern (GV)</h2><h3>Compliance coverage</h3>",
            "HIPAA 164.312: 1 of 12 safeguards covered by a check; CMMC: 1 of 21 practices.",
            // An uncovered safeguard is a row saying so.
            "<td>HIPAA</td><td class=\"id\">164.312(b)</td><td>Audit controls</td><td class=\"gap\">not covered</td>",
            // The covered one: 1 pass, 1 fail, latest a fail, failing now.
            "<td>HIPAA</td><td class=\"id\">164.312(a)(2)(iv)</td><td>Encryption and decryption</td>\
             <td class=\"id\">disk-encryption</td><td class=\"n\">1</td><td class=\"n\">1</td>\
             <td class=\"n\">1</td><td class=\"n\">0</td><td class=\"breach\">fail on \
             &lt;b&gt;db&lt;/b&gt; at 1970-01-01T05:00:00Z</td><td class=\"n breach\">1</td>",
            "<h2>Identify (ID.AM)</h2><h3>Inventory</h3><p>4 agent(s)",
            "<h3>Patch compliance</h3><p>Measured: the latest scan each agent reported, as held \
             at 1970-01-01T23:00:00Z.",
            "<td>Compliant (both)</td><td class=\"n\">1 of 4</td><td class=\"n\">25.00 %</td>",
            "<td>never-1</td><td class=\"gap\">no scan</td>",
            "<h3>Baseline drift</h3><p>1 drift incident(s) detected in the period on 1 \
             monitor(s); 1 still open at its end.</p>",
            "<td>CHG-1042</td>",
            "<h2>Respond (RS.MI)</h2><h3>PSA tickets</h3>",
        ] {
            assert!(html.contains(expected), "{expected}\n in {html}");
        }
        assert!(!html.contains("<b>db"), "escaped: {html}");
        assert_eq!(
            html.matches("not covered").count(),
            12 - 1 + 21 - 1,
            "every uncovered control listed"
        );
    }

    #[test]
    fn an_empty_period_says_so() {
        let report =
            compute("acme", 0, 86_400_000, &[], &TenantSettings::default()).expect("report");
        assert!(render(&report).contains("No incident in this period."));
    }
}
