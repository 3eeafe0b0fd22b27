//! Rendering shared by the subcommands: JSON, and readable text for people.
//!
//! Text that a plugin, a runbook, a bundle or the network controls is made inert before it
//! reaches a terminal: [`inert`] and [`inert_lines`] turn every control character (C0, DEL, C1)
//! and every Unicode bidi control into a visible `\u{..}` escape, so a fact, summary, log line or
//! error cannot clear the screen, ring the bell, retitle the window, rewrite earlier lines with
//! `\r`, or reorder what a person reads. `--json` output keeps the bytes as they are (JSON
//! escapes the C0 controls itself), and so does the gRPC API: the escaping is for eyes only.

use anyhow::Result;
use comfy_table::{CellAlignment, ContentArrangement, Table, presets};
use serde::Serialize;
use std::borrow::Cow;
use std::fmt::Write as _;
use warden_core::report::{CheckStatus, FactGroup, Output, RunReport};

/// `--param NAME=VALUE` arguments as pairs.
pub fn parse_params(params: &[String]) -> Result<Vec<(String, String)>> {
    params
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow::anyhow!("--param `{p}` is not NAME=VALUE"))
        })
        .collect()
}

/// Characters escaped in addition to the Unicode control characters (`char::is_control`: C0,
/// DEL and C1): the bidi embeddings, overrides and isolates (U+202A..U+202E, U+2066..U+2069),
/// the bidi marks (U+061C, U+200E, U+200F), and the line and paragraph separators (U+2028,
/// U+2029) some terminals and viewers break lines at.
fn is_format_control(c: char) -> bool {
    matches!(
        c,
        '\u{061c}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
    )
}

fn escaped(text: &str, keep_lines: bool) -> Cow<'_, str> {
    let escape = |c: char| {
        !(keep_lines && matches!(c, '\n' | '\t')) && (c.is_control() || is_format_control(c))
    };
    if !text.chars().any(escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if escape(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `text` safe to print on one line of a terminal: every control character, newlines and tabs
/// included, and every bidi control becomes `\u{..}` (ESC is `\u{1b}`). Backslashes are left
/// as they are, so a Windows path stays readable; an escape is therefore not distinguishable from
/// the same six characters written literally, which is harmless: both are inert.
pub fn inert(text: &str) -> Cow<'_, str> {
    escaped(text, false)
}

/// Like [`inert`], but newlines and tabs are kept, for fields that are multi-line by nature:
/// log messages, error messages, a panic's stderr.
pub fn inert_lines(text: &str) -> Cow<'_, str> {
    escaped(text, true)
}

/// An error with its causes on one line, `context: cause: cause`, each cause once. Many errors
/// quote their source in their own message (`#[error("... {0}")]` over a `#[source]`, an io error
/// wrapped by a library that displays it), so anyhow's `{:#}` printed the same words twice: a
/// cause whose text the previous part already contains is left out.
pub fn error_line(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        let said = parts.last().is_some_and(|last| last.contains(text.trim()));
        if !said {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// Gap between the columns of a [`table`].
const COLUMN_GAP: u16 = 2;

/// An aligned table for people: a header row, columns [`COLUMN_GAP`] spaces apart, no borders
/// (output is read and grepped, and often lands in tickets). Print it with [`print_table`].
pub fn table<const N: usize>(header: [&str; N]) -> Table {
    headed(&header)
}

/// A [`table`] whose header is only known at run time.
pub fn headed(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header);
    for column in table.column_iter_mut() {
        column.set_padding((0, COLUMN_GAP));
    }
    table
}

/// Right-align columns of figures.
pub fn align_right(table: &mut Table, columns: &[usize]) {
    for i in columns {
        if let Some(column) = table.column_mut(*i) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
}

/// Print a [`table`] without the padding that trails its last column.
pub fn print_table(table: &Table) {
    for line in table.lines() {
        let line = line.trim_end();
        // Borderless: a rule between header and rows would be a line of blanks.
        if !line.is_empty() {
            println!("{line}");
        }
    }
}

pub fn print_json(value: &impl Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// The kebab-case wire name of a unit enum value, as in `--json` output.
fn word(value: &impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "?".into(),
    }
}

fn status_word(s: CheckStatus) -> &'static str {
    match s {
        CheckStatus::Ok => "OK",
        CheckStatus::Warning => "WARNING",
        CheckStatus::Critical => "CRITICAL",
        CheckStatus::Unknown => "UNKNOWN",
    }
}

fn fact_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => inert(s).into_owned(),
        serde_json::Value::Array(items) => {
            items.iter().map(fact_text).collect::<Vec<_>>().join(", ")
        }
        // JSON escapes C0 controls but not DEL, C1 or bidi controls inside strings.
        other => inert(&other.to_string()).into_owned(),
    }
}

/// Print discovered fact groups for a person, each line after `indent`: a heading per kind,
/// a line of `key=value` per group, and only the count of the (many) packages.
pub fn print_facts(groups: &[FactGroup], indent: &str) {
    let mut last_kind = "";
    let packages = groups.iter().filter(|g| g.kind == "package").count();
    for g in groups.iter().filter(|g| g.kind != "package") {
        if g.kind != last_kind {
            println!("{indent}{}:", inert(&g.kind));
            last_kind = &g.kind;
        }
        let line: Vec<String> = g
            .facts
            .iter()
            .map(|(k, v)| format!("{}={}", inert(k), fact_text(v)))
            .collect();
        println!("{indent}  {}", line.join("  "));
    }
    if packages > 0 {
        println!("{indent}package: {packages} installed (use --json for the list)");
    }
}

/// Print a run report for a person. Everything in it but the runner's own words comes from the
/// plugin (its manifest, output, logs and errors), so all of it goes through [`inert`].
pub fn print_report(report: &RunReport) {
    let who = report
        .plugin
        .as_ref()
        .map(|p| format!("{} {}", inert(&p.name), inert(&p.version)))
        .unwrap_or_else(|| "plugin".into());
    match &report.result {
        Ok(Output::Facts(groups)) => print_facts(groups, ""),
        Ok(Output::Check(r)) => {
            println!("{} {}: {}", status_word(r.status), who, inert(&r.summary));
            for m in &r.metrics {
                println!(
                    "  {:<40} {:>16.2} {}",
                    inert(&m.name),
                    m.value,
                    inert(&m.unit)
                );
            }
        }
        Ok(Output::Plan(actions)) => {
            if actions.is_empty() {
                println!("plan: nothing to do");
            } else {
                println!("plan: {} action(s)", actions.len());
                for a in actions {
                    println!(
                        "  [{}] {} {} — {}",
                        inert(&a.id),
                        word(&a.kind),
                        inert(&a.target),
                        inert(&a.description)
                    );
                }
            }
        }
        Ok(Output::Applied(outcomes)) => {
            println!("apply: {} action(s)", outcomes.len());
            for o in outcomes {
                println!(
                    "  [{}] {} {}",
                    inert(&o.id),
                    word(&o.status),
                    inert(&o.detail)
                );
            }
        }
        Ok(Output::Ticket(t)) => {
            println!("ticket {}: {}", who, inert(&t.id));
            for (what, due) in [("respond by", &t.respond_by), ("resolve by", &t.resolve_by)] {
                if let Some(due) = due {
                    println!("  {what:<12} {}", inert(due));
                }
            }
        }
        Err(e) => eprintln!("warden: {who}: {}", inert_lines(&e.to_string())),
    }
    for l in &report.logs {
        let fields: Vec<String> = l
            .fields
            .iter()
            .map(|(k, v)| format!("{}={}", inert(k), inert(v)))
            .collect();
        eprintln!(
            "  log [{}] {} {}",
            inert(&l.level),
            inert_lines(&l.message),
            fields.join(" ")
        );
    }
    let denied = report.capability_uses.iter().filter(|u| !u.allowed).count();
    eprintln!(
        "  ({} in {:.1} ms, {} capability use(s), {} denied{})",
        report.invocation,
        report.duration_ms,
        report.capability_uses.len(),
        denied,
        match report.cache {
            Some(warden_host::engine::CacheOutcome::Compiled) => ", compiled",
            Some(warden_host::engine::CacheOutcome::Hit) => ", from precompiled cache",
            None => "",
        }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that quotes its source in its message and also returns it as its source.
    #[derive(Debug)]
    struct Quoting(std::io::Error);

    impl std::fmt::Display for Quoting {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{}", self.0)
        }
    }

    impl std::error::Error for Quoting {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn an_error_line_says_each_cause_once() {
        let io = || std::io::Error::from(std::io::ErrorKind::NotFound);
        let quoted = anyhow::Error::new(Quoting(io())).context("cannot read /x");
        let line = error_line(&quoted);
        assert_eq!(line, format!("cannot read /x: {}", io()));
        // A cause that adds words of its own is kept.
        let chained = anyhow::Error::new(io())
            .context("tcp connect error")
            .context("cannot reach the agent");
        assert_eq!(
            error_line(&chained),
            format!("cannot reach the agent: tcp connect error: {}", io())
        );
    }

    #[test]
    fn control_and_bidi_characters_become_visible_escapes() {
        assert_eq!(
            inert("a\u{1b}[2J\u{7}\0\r\u{9b}\u{7f}\u{202e}\u{2067}\u{2028}b"),
            r"a\u{1b}[2J\u{7}\u{0}\u{d}\u{9b}\u{7f}\u{202e}\u{2067}\u{2028}b"
        );
        assert_eq!(
            inert("two\nlines\tand a tab"),
            r"two\u{a}lines\u{9}and a tab"
        );
        assert_eq!(inert_lines("two\nlines\tkept\r"), "two\nlines\tkept\\u{d}");
        // Ordinary text, other scripts and backslashes pass untouched (and unallocated).
        let plain = r"C:\temp — Grüße, 日本語, עברית";
        assert!(matches!(inert(plain), Cow::Borrowed(s) if s == plain));
    }
}
