//! The report as PDF: A4 pages, the same sections as [`crate::html`] (the SLA by priority,
//! then each CSF function with an uptime chart and its services' table and its own sections:
//! compliance coverage under GV, inventory under ID.AM, patch compliance and drift under PR.PS,
//! the PSA tickets under RS.MI), a footer with the tenant, the period and "page i of n" on
//! every page.
//!
//! Text is set in Helvetica, one of the PDF base-14 fonts every reader has, so no font is
//! embedded and the file stays small; its WinAnsi encoding covers Latin-1 and the dashes. A
//! character outside it, or a control character (an ANSI escape from an agent), is printed as
//! `?`: nothing an agent wrote can change the page's operators, because every string goes
//! through [`Str`] (parentheses and backslashes escaped).
//!
//! Cells are measured with Helvetica's advance widths and cut with `...` to their column,
//! so a long host name never runs into the next column. The uptime chart draws the services
//! below 100 % only (a month of a healthy fleet is thousands of full bars saying nothing); it
//! says how many were left out.

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

use crate::{CsfCategory, Report, ServiceReport, time};

mod sections;

const PAGE_W: f32 = 595.0;
const PAGE_H: f32 = 842.0;
const MARGIN: f32 = 50.0;
/// Room kept at the bottom for the footer.
const BOTTOM: f32 = 60.0;
const ROW: f32 = 14.0;
const BODY: f32 = 9.0;
const REGULAR: Name<'static> = Name(b"F1");
const BOLD: Name<'static> = Name(b"F2");

/// Helvetica's advance widths (1/1000 em) of the printable ASCII characters, from its AFM
/// metrics; other characters are measured as a digit (556).
const HELVETICA: [u16; 95] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, // ' '../
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, // 0..?
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778, // @..O
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, // P.._
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, // `..o
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584, // p..~
];

/// Bold glyphs are wider; measuring them 10 % wider keeps bold headers inside their columns.
const BOLD_FACTOR: f32 = 1.1;

fn char_width(c: char) -> u16 {
    match c as u32 {
        code @ 32..=126 => HELVETICA[(code - 32) as usize],
        0x2014 | 0x2026 => 1000,
        _ => 556,
    }
}

/// Width of `text` in points at `size`.
fn width(text: &str, size: f32) -> f32 {
    text.chars().map(|c| f32::from(char_width(c))).sum::<f32>() * size / 1000.0
}

/// `text` cut to `max` points, ending in `...` when cut.
fn fit(text: &str, size: f32, max: f32) -> String {
    if width(text, size) <= max {
        return text.to_string();
    }
    let room = max - width("...", size);
    let mut out = String::new();
    let mut used = 0.0;
    for c in text.chars() {
        let w = f32::from(char_width(c)) * size / 1000.0;
        if used + w > room {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push_str("...");
    out
}

/// WinAnsi bytes of `text`: Latin-1 as is, the dashes, `...` and the bullet at their code
/// points, anything else (control characters included) as `?`.
fn win_ansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c as u32 {
            code @ 0x20..=0x7e => code as u8,
            code @ 0xa0..=0xff => code as u8,
            0x2013 => 0x96,
            0x2014 => 0x97,
            0x2026 => 0x85,
            0x2022 => 0x95,
            _ => b'?',
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Align {
    Left,
    Right,
}

struct Column {
    title: &'static str,
    width: f32,
    align: Align,
}

const fn col(title: &'static str, width: f32, align: Align) -> Column {
    Column {
        title,
        width,
        align,
    }
}

/// Pages being laid out, top to bottom.
struct Layout {
    pages: Vec<Content>,
    page: Content,
    y: f32,
}

impl Layout {
    fn new() -> Layout {
        Layout {
            pages: Vec::new(),
            page: Content::new(),
            y: PAGE_H - MARGIN,
        }
    }

    /// Start a new page unless `height` still fits on this one.
    fn room(&mut self, height: f32) {
        if self.y - height < BOTTOM {
            let page = std::mem::replace(&mut self.page, Content::new());
            self.pages.push(page);
            self.y = PAGE_H - MARGIN;
        }
    }

    fn text_at(&mut self, x: f32, y: f32, font: Name<'_>, size: f32, text: &str) {
        let bytes = win_ansi(text);
        self.page
            .begin_text()
            .set_font(font, size)
            .next_line(x, y)
            .show(Str(&bytes))
            .end_text();
    }

    /// A line of text at the left margin, then down by `size` plus `gap`.
    fn line(&mut self, font: Name<'_>, size: f32, gap: f32, text: &str) {
        self.room(size + gap);
        let y = self.y - size;
        let factor = if font == BOLD { BOLD_FACTOR } else { 1.0 };
        let text = fit(text, size * factor, PAGE_W - 2.0 * MARGIN);
        self.text_at(MARGIN, y, font, size, &text);
        self.y -= size + gap;
    }

    fn paragraph(&mut self, text: &str) {
        let max = PAGE_W - 2.0 * MARGIN;
        let mut line = String::new();
        for word in text.split_whitespace() {
            let candidate = if line.is_empty() {
                word.to_string()
            } else {
                format!("{line} {word}")
            };
            if width(&candidate, BODY + 1.0) > max && !line.is_empty() {
                self.line(REGULAR, BODY + 1.0, 3.0, &line);
                line = word.to_string();
            } else {
                line = candidate;
            }
        }
        if !line.is_empty() {
            self.line(REGULAR, BODY + 1.0, 3.0, &line);
        }
        self.y -= 6.0;
    }

    fn row(&mut self, columns: &[Column], cells: &[String], font: Name<'_>, red: &[bool]) {
        self.room(ROW);
        let baseline = self.y - ROW + 4.0;
        let mut x = MARGIN;
        for (i, (c, cell)) in columns.iter().zip(cells).enumerate() {
            let factor = if font == BOLD { BOLD_FACTOR } else { 1.0 };
            let text = fit(cell, BODY * factor, c.width - 6.0);
            let at = match c.align {
                Align::Left => x + 2.0,
                Align::Right => x + c.width - 4.0 - width(&text, BODY * factor),
            };
            let highlight = red.get(i).copied().unwrap_or(false);
            if highlight {
                self.page.set_fill_rgb(0.69, 0.0, 0.125);
            }
            self.text_at(at, baseline, font, BODY, &text);
            if highlight {
                self.page.set_fill_rgb(0.0, 0.0, 0.0);
            }
            x += c.width;
        }
        // A hairline under each row, as the HTML table's borders.
        self.page
            .set_stroke_rgb(0.8, 0.8, 0.8)
            .set_line_width(0.5)
            .move_to(MARGIN, self.y - ROW)
            .line_to(x, self.y - ROW)
            .stroke();
        self.y -= ROW;
    }

    fn table(&mut self, columns: &[Column], rows: &[(Vec<String>, Vec<bool>)]) {
        let header: Vec<String> = columns.iter().map(|c| c.title.to_string()).collect();
        self.row(columns, &header, BOLD, &[]);
        for (cells, red) in rows {
            // A table continued on a new page repeats its header.
            if self.y - ROW < BOTTOM {
                self.room(2.0 * ROW);
                self.row(columns, &header, BOLD, &[]);
            }
            self.row(columns, cells, REGULAR, red);
        }
        self.y -= 10.0;
    }

    /// Uptime bars on the 90-100 % axis, as the HTML chart.
    fn uptime_chart(&mut self, services: &[&ServiceReport]) {
        const LABEL: f32 = 220.0;
        const BAR: f32 = 200.0;
        let below: Vec<&&ServiceReport> = services.iter().filter(|s| s.downtime_ms > 0).collect();
        for s in &below {
            self.room(ROW);
            let baseline = self.y - ROW + 4.0;
            let label = fit(&format!("{} / {}", s.agent, s.monitor), BODY, LABEL - 8.0);
            self.text_at(MARGIN, baseline, REGULAR, BODY, &label);
            let share = ((s.uptime_pct - 90.0) / 10.0).clamp(0.0, 1.0) as f32;
            if s.breaches() > 0 {
                self.page.set_fill_rgb(0.69, 0.0, 0.125);
            } else {
                self.page.set_fill_rgb(0.18, 0.49, 0.2);
            }
            self.page
                .rect(MARGIN + LABEL, self.y - ROW + 2.0, share * BAR, ROW - 4.0)
                .fill_nonzero()
                .set_fill_rgb(0.0, 0.0, 0.0);
            let pct = format!("{:.2} %", s.uptime_pct);
            self.text_at(
                MARGIN + LABEL + share * BAR + 4.0,
                baseline,
                REGULAR,
                BODY,
                &pct,
            );
            self.y -= ROW;
        }
        let full = services.len() - below.len();
        if !below.is_empty() {
            self.line(
                REGULAR,
                BODY - 1.0,
                4.0,
                "Uptime axis from 90 % (left edge) to 100 %.",
            );
        }
        if full > 0 {
            self.line(
                REGULAR,
                BODY,
                6.0,
                &format!("{full} of {} services at 100 % uptime.", services.len()),
            );
        }
    }

    fn finish(mut self) -> Vec<Content> {
        self.pages.push(self.page);
        self.pages
    }
}

fn pct(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2} %"))
        .unwrap_or_else(|| "\u{2014}".into())
}

fn dur(v: Option<f64>) -> String {
    v.map(time::duration).unwrap_or_else(|| "\u{2014}".into())
}

const PRIORITY_COLUMNS: [Column; 6] = [
    col("Priority", 60.0, Align::Left),
    col("Target", 80.0, Align::Left),
    col("Incidents", 70.0, Align::Right),
    col("Breached", 70.0, Align::Right),
    col("Met", 70.0, Align::Right),
    col("MTTR", 80.0, Align::Right),
];

const SERVICE_COLUMNS: [Column; 9] = [
    col("Agent", 90.0, Align::Left),
    col("Service", 85.0, Align::Left),
    col("Prio", 28.0, Align::Left),
    col("Uptime", 52.0, Align::Right),
    col("Downtime", 64.0, Align::Right),
    col("Incid.", 38.0, Align::Right),
    col("Open", 34.0, Align::Right),
    col("Breach", 40.0, Align::Right),
    col("MTTR", 64.0, Align::Right),
];

fn service_rows(services: &[&ServiceReport]) -> Vec<(Vec<String>, Vec<bool>)> {
    services
        .iter()
        .map(|s| {
            let mut red = vec![false; 7];
            red.push(s.breaches() > 0);
            (
                vec![
                    s.agent.clone(),
                    s.monitor.clone(),
                    s.priority.name().to_string(),
                    format!("{:.3} %", s.uptime_pct),
                    time::duration(s.downtime_ms as f64),
                    s.incidents.len().to_string(),
                    (s.incidents.len() - s.resolved()).to_string(),
                    s.breaches().to_string(),
                    dur(s.mttr_ms),
                ],
                red,
            )
        })
        .collect()
}

/// The PDF file.
pub fn render(report: &Report) -> Vec<u8> {
    let period = format!(
        "{} \u{2013} {}",
        time::date(report.from_ms),
        time::date(report.to_ms - 1)
    );
    let mut l = Layout::new();
    l.line(
        BOLD,
        18.0,
        8.0,
        &format!("Service report: {}", report.tenant),
    );
    l.paragraph(&format!("Period {period} (UTC). {}", report.summary()));
    l.line(BOLD, 13.0, 6.0, "SLA by priority");
    let rows: Vec<(Vec<String>, Vec<bool>)> = report
        .priorities
        .iter()
        .map(|p| {
            (
                vec![
                    p.priority.name().to_string(),
                    dur(p.target_ms.map(|t| t as f64)),
                    p.incidents.to_string(),
                    p.breached.to_string(),
                    pct(p.met_pct),
                    dur(p.mttr_ms),
                ],
                vec![false, false, false, p.breached > 0],
            )
        })
        .collect();
    l.table(&PRIORITY_COLUMNS, &rows);
    for category in CsfCategory::ALL {
        if !report.has_content(category) {
            continue;
        }
        let services = report.services_in(category);
        l.room(3.0 * ROW + 20.0);
        l.line(
            BOLD,
            13.0,
            6.0,
            &format!("{} ({})", category.function(), category.id()),
        );
        if !services.is_empty() {
            l.uptime_chart(&services);
            l.table(&SERVICE_COLUMNS, &service_rows(&services));
        }
        match category {
            CsfCategory::Gv => sections::compliance(&mut l, report),
            CsfCategory::IdAm => sections::inventory(&mut l, report),
            CsfCategory::PrPs => {
                sections::patches(&mut l, report);
                sections::drift(&mut l, report);
            }
            CsfCategory::RsMi => sections::tickets(&mut l, report),
            CsfCategory::DeCm | CsfCategory::RcRp => {}
        }
    }
    if report.services.is_empty() {
        l.line(REGULAR, BODY + 1.0, 4.0, "No incident in this period.");
    }
    write(report, &period, l.finish())
}

/// The document around the laid-out pages: catalog, page tree, fonts, info, footers.
fn write(report: &Report, period: &str, pages: Vec<Content>) -> Vec<u8> {
    let mut pdf = Pdf::new();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let regular = Ref::new(3);
    let bold = Ref::new(4);
    let info = Ref::new(5);
    let first = 6;
    let count = pages.len();
    let page_ids: Vec<Ref> = (0..count)
        .map(|i| Ref::new(first + 2 * i32::try_from(i).unwrap_or(0)))
        .collect();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids(page_ids.iter().copied())
        .count(i32::try_from(count).unwrap_or(i32::MAX));
    for (font, base) in [(regular, "Helvetica"), (bold, "Helvetica-Bold")] {
        pdf.type1_font(font)
            .base_font(Name(base.as_bytes()))
            .encoding_predefined(Name(b"WinAnsiEncoding"));
    }
    let title = format!("Service report: {}, {period}", report.tenant);
    pdf.document_info(info)
        .title(TextStr(&title))
        .producer(TextStr("Warden"));
    for (i, mut content) in pages.into_iter().enumerate() {
        let id = page_ids[i];
        let content_id = Ref::new(id.get() + 1);
        let footer = format!(
            "{} \u{2022} {period} \u{2022} page {} of {count}",
            report.tenant,
            i + 1
        );
        let footer = fit(&footer, 8.0, PAGE_W - 2.0 * MARGIN);
        let bytes = win_ansi(&footer);
        content
            .set_fill_rgb(0.4, 0.4, 0.4)
            .begin_text()
            .set_font(REGULAR, 8.0)
            .next_line(MARGIN, 30.0)
            .show(Str(&bytes))
            .end_text();
        let mut page = pdf.page(id);
        page.media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H))
            .parent(tree)
            .contents(content_id);
        page.resources()
            .fonts()
            .pair(REGULAR, regular)
            .pair(BOLD, bold);
        page.finish();
        pdf.stream(content_id, &content.finish());
    }
    pdf.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Event, EventKind, TenantSettings, compute};

    const DAY: i64 = 86_400_000;

    fn outage(agent: &str, monitor: &str, from: i64, minutes: i64) -> [Event; 2] {
        [
            Event {
                at_ms: from,
                agent: agent.into(),
                monitor: monitor.into(),
                kind: EventKind::Opened,
            },
            Event {
                at_ms: from + minutes * 60_000,
                agent: agent.into(),
                monitor: monitor.into(),
                kind: EventKind::Resolved,
            },
        ]
    }

    #[test]
    fn a_report_is_one_pdf_with_its_fonts_and_a_page_per_screenful() {
        let small: Vec<Event> = outage("web-1", "http", DAY, 30).to_vec();
        let report = compute("acme", 0, 30 * DAY, &small, &TenantSettings::default()).expect("r");
        let pdf = render(&report);
        assert!(pdf.starts_with(b"%PDF-"), "a PDF header");
        let text = String::from_utf8_lossy(&pdf);
        assert!(text.contains("/BaseFont /Helvetica"), "base-14 font");
        assert!(text.contains("/WinAnsiEncoding"));
        assert_eq!(
            text.matches("/Type /Page\n").count() + text.matches("/Type /Page ").count(),
            1
        );

        // 200 services outgrow a page: more pages, each counted in the tree.
        let many: Vec<Event> = (0..200)
            .flat_map(|i| outage(&format!("host-{i:03}"), "disk", DAY + i, 10))
            .collect();
        let report = compute("acme", 0, 30 * DAY, &many, &TenantSettings::default()).expect("r");
        let pdf = String::from_utf8_lossy(&render(&report)).into_owned();
        let pages = pdf.matches("/Parent 2 0 R").count();
        assert!(
            pages > 3,
            "{pages} pages for 200 charted and tabled services"
        );
        assert!(
            pdf.contains(&format!("/Count {pages}")),
            "the tree counts them"
        );
    }

    #[test]
    fn what_agents_wrote_cannot_reach_the_page_operators() {
        // A close paren and an operator would end the string and draw, were it not escaped.
        let hostile = "x) Tj /F2 99 Tf (\u{1b}[31m\u{7}";
        let events = outage(hostile, "disk", DAY, 5);
        let report = compute("acme", 0, 30 * DAY, &events, &TenantSettings::default()).expect("r");
        let pdf = render(&report);
        let text = String::from_utf8_lossy(&pdf);
        // The parentheses are escaped: the host name stays one string operand.
        assert!(text.contains("(x\\) Tj /F2 99 Tf \\(?[31m?"), "{text}");
        assert!(!text.contains("x) Tj"), "no string ended early");
        assert!(!pdf.contains(&0x1b), "no escape byte");
        assert_eq!(win_ansi("a\u{1b}b\u{7}ü—"), b"a?b?\xfc\x97");
    }

    #[test]
    fn the_new_sections_are_set_as_text() {
        let pdf = render(&crate::tests::with_sections("db-1"));
        let text = String::from_utf8_lossy(&pdf);
        for expected in [
            // Balanced parentheses need no escape in a PDF string.
            "(Govern (GV)) Tj",
            "(Compliance coverage) Tj",
            "(HIPAA 164.312 safeguards: 1 of 12 covered by a check) Tj",
            "(CMMC practices: 1 of 21 covered by a check) Tj",
            "(164.312(b)) Tj",
            "(not covered) Tj",
            "(fail 1970-01-01) Tj",
            "(Inventory) Tj",
            "(Patch compliance) Tj",
            "(25.00 %) Tj",
            "(no scan) Tj",
            "(Baseline drift) Tj",
            "(CHG-1042) Tj",
            "(PSA tickets) Tj",
            "(HALO-9) Tj",
        ] {
            assert!(text.contains(expected), "{expected} in the PDF");
        }
        assert_eq!(
            text.matches("(not covered) Tj").count(),
            11 + 20,
            "every uncovered control has its row"
        );
    }

    #[test]
    fn cells_are_cut_to_their_column() {
        let long = "a-very-long-host-name-of-a-client-site.example.internal";
        let cut = fit(long, BODY, 80.0);
        assert!(cut.ends_with("..."), "{cut}");
        assert!(width(&cut, BODY) <= 80.0, "{cut}");
        assert_eq!(fit("db-1", BODY, 80.0), "db-1");
        assert!((width("W", 10.0) - 9.44).abs() < 1e-3);
    }
}
