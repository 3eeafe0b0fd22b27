//! Rendering shared by the subcommands: JSON, and readable text for people.

use anyhow::Result;
use serde::Serialize;
use warden::report::{CheckStatus, Output, RunReport};

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
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => {
            items.iter().map(fact_text).collect::<Vec<_>>().join(", ")
        }
        other => other.to_string(),
    }
}

/// Print a run report for a person.
pub fn print_report(report: &RunReport) {
    let who = report
        .plugin
        .as_ref()
        .map(|p| format!("{} {}", p.name, p.version))
        .unwrap_or_else(|| "plugin".into());
    match &report.result {
        Ok(Output::Facts(groups)) => {
            let mut last_kind = "";
            let packages = groups.iter().filter(|g| g.kind == "package").count();
            for g in groups.iter().filter(|g| g.kind != "package") {
                if g.kind != last_kind {
                    println!("{}:", g.kind);
                    last_kind = &g.kind;
                }
                let line: Vec<String> = g
                    .facts
                    .iter()
                    .map(|(k, v)| format!("{k}={}", fact_text(v)))
                    .collect();
                println!("  {}", line.join("  "));
            }
            if packages > 0 {
                println!("package: {packages} installed (use --json for the list)");
            }
        }
        Ok(Output::Check(r)) => {
            println!("{} {}: {}", status_word(r.status), who, r.summary);
            for m in &r.metrics {
                println!("  {:<40} {:>16.2} {}", m.name, m.value, m.unit);
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
                        a.id,
                        word(&a.kind),
                        a.target,
                        a.description
                    );
                }
            }
        }
        Ok(Output::Applied(outcomes)) => {
            println!("apply: {} action(s)", outcomes.len());
            for o in outcomes {
                println!("  [{}] {} {}", o.id, word(&o.status), o.detail);
            }
        }
        Err(e) => eprintln!("warden: {who}: {e}"),
    }
    for l in &report.logs {
        let fields: Vec<String> = l.fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        eprintln!("  log [{}] {} {}", l.level, l.message, fields.join(" "));
    }
    let denied = report.capability_uses.iter().filter(|u| !u.allowed).count();
    eprintln!(
        "  ({} in {:.1} ms, {} capability use(s), {} denied{})",
        report.invocation,
        report.duration_ms,
        report.capability_uses.len(),
        denied,
        match report.cache {
            Some(warden::engine::CacheOutcome::Compiled) => ", compiled",
            Some(warden::engine::CacheOutcome::Hit) => ", from precompiled cache",
            None => "",
        }
    );
}
