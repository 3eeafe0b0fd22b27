//! Judging a case: its run against the fixture's `[expect]`, plus the rules every case obeys
//! (no capability call the grant denies unless expected, no `exec` without a scripted answer,
//! no `sysinfo` category the fixture does not give, no failed run unless expected). Each mismatch
//! is one sentence saying what differed.

use super::fixture::{ExpectedFile, Fixture, SysinfoFacts};
use super::harness::{CaseRun, call_string};
use serde::Serialize;
use warden_core::report::Output;

/// The outcome of one case.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub name: String,
    pub passed: bool,
    /// What differed from the expectations, one sentence each.
    pub failures: Vec<String>,
    /// One line on what the plugin returned.
    pub result: String,
    /// Every capability call, allowed or denied, in order.
    pub calls: Vec<String>,
    pub duration_ms: f64,
}

/// Judge `run` against `fixture`.
pub fn verdict(fixture: &Fixture, run: &CaseRun) -> Verdict {
    let failures = mismatches(fixture, run);
    Verdict {
        name: fixture.display_name().to_string(),
        passed: failures.is_empty(),
        failures,
        result: describe(run),
        calls: run
            .calls()
            .map(|u| {
                let s = call_string(u);
                if u.allowed {
                    s
                } else {
                    format!("{s} (denied)")
                }
            })
            .collect(),
        duration_ms: run.reports.iter().map(|r| r.duration_ms).sum(),
    }
}

fn describe(run: &CaseRun) -> String {
    let Some(last) = run.last() else {
        return "nothing ran".into();
    };
    match &last.result {
        Err(e) => format!("{} failed: {e}", last.invocation),
        Ok(Output::Check(c)) => format!("check: {}: {}", name(&c.status), c.summary),
        Ok(Output::Facts(groups)) => format!("discover: {} fact group(s)", groups.len()),
        Ok(Output::Plan(actions)) => format!("plan: {} action(s)", actions.len()),
        Ok(Output::Applied(outcomes)) => format!("apply: {} outcome(s)", outcomes.len()),
        Ok(Output::Ticket(t)) => format!("ticket: {}", t.id),
    }
}

/// The fixture's spelling of a value (`warning`, `service-restart`), for messages.
fn name<T: Serialize + std::fmt::Debug>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => format!("{value:?}"),
    }
}

/// Numbers compare by value (a fixture's `3` equals a plugin's `3.0`), everything else exactly.
fn same_value(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

pub fn mismatches(fixture: &Fixture, run: &CaseRun) -> Vec<String> {
    let e = &fixture.expect;
    let mut out = Vec::new();
    let failed = run.reports.iter().find_map(|r| r.result.as_ref().err());
    match (&e.error, failed) {
        (Some(kind), None) => out.push(format!(
            "expected the run to fail with `{kind}`, but it succeeded ({})",
            describe(run)
        )),
        (Some(kind), Some(err)) => {
            if err.kind() != kind {
                out.push(format!(
                    "expected the run to fail with `{kind}`, it failed with `{}`: {err}",
                    err.kind()
                ));
            }
            if let Some(text) = &e.error_contains
                && !err.to_string().contains(text.as_str())
            {
                out.push(format!(
                    "expected the error to contain {text:?}, it is: {err}"
                ));
            }
        }
        (None, Some(err)) => {
            let stderr = run.last().map(|r| r.stderr.trim()).unwrap_or_default();
            let mut line = format!("the run failed with `{}`: {err}", err.kind());
            if !stderr.is_empty() && !line.contains(stderr) {
                line.push_str(&format!(" (plugin stderr: {stderr})"));
            }
            out.push(line);
        }
        (None, None) => {}
    }
    check_result(fixture, run, &mut out);
    check_calls(fixture, run, &mut out);
    for call in &run.unscripted {
        out.push(format!(
            "the plugin ran `{call}`, which the fixture does not script: add an [[exec]] entry for it"
        ));
    }
    for category in &run.missing_sysinfo {
        out.push(format!(
            "the plugin read sysinfo `{0}`, which the fixture does not give: add {1}, or list `{0}` in sysinfo.unsupported",
            category.as_str(),
            SysinfoFacts::how_to_give(*category)
        ));
    }
    for (service, want) in &e.services {
        match run.services.get(service) {
            Some(got) if got == want => {}
            got => out.push(format!(
                "expected service `{service}` to be {} after the run, it is {}",
                name(want),
                got.map_or("unknown to the fixture".into(), name)
            )),
        }
    }
    for (key, want) in &e.kv {
        match run.kv.get(key) {
            Some(got) if got == want => {}
            Some(got) => out.push(format!("expected kv `{key}` = {want:?}, it is {got:?}")),
            None => out.push(format!("expected kv `{key}` = {want:?}, it is not set")),
        }
    }
    for (path, want) in &e.files {
        let host = run.host_path(path);
        let got = std::fs::read(&host).ok();
        match (want, got) {
            (ExpectedFile::Absent { .. }, None) => {}
            (ExpectedFile::Absent { .. }, Some(_)) => out.push(format!(
                "expected {path} to be absent after the run, it exists"
            )),
            (ExpectedFile::Text(t), Some(bytes)) if bytes == t.as_bytes() => {}
            (ExpectedFile::Text(t), Some(bytes)) => out.push(format!(
                "expected {path} to contain {t:?}, it contains {:?}",
                String::from_utf8_lossy(&bytes)
            )),
            (ExpectedFile::Text(t), None) => out.push(format!(
                "expected {path} to contain {t:?}, it does not exist"
            )),
        }
    }
    out
}

fn check_result(fixture: &Fixture, run: &CaseRun, out: &mut Vec<String>) {
    let e = &fixture.expect;
    let first = run.reports.first().and_then(|r| r.result.as_ref().ok());
    let last = run.output();
    if let Some(Output::Check(c)) = last {
        if let Some(want) = e.status
            && c.status != want
        {
            out.push(format!(
                "expected status {}, got {} ({:?})",
                name(&want),
                name(&c.status),
                c.summary
            ));
        }
        if let Some(text) = &e.summary
            && !c.summary.contains(text.as_str())
        {
            out.push(format!(
                "expected the summary to contain {text:?}, it is {:?}",
                c.summary
            ));
        }
    }
    if let Some(Output::Facts(groups)) = last {
        for want in &e.facts {
            let found = groups.iter().any(|g| {
                g.kind == want.kind
                    && want
                        .facts
                        .iter()
                        .all(|(k, v)| g.facts.get(k).is_some_and(|got| same_value(got, v)))
            });
            if !found {
                let same_kind: Vec<String> = groups
                    .iter()
                    .filter(|g| g.kind == want.kind)
                    .map(|g| serde_json::Value::Object(g.facts.clone()).to_string())
                    .collect();
                out.push(format!(
                    "expected a `{}` fact group with {}, got {}",
                    want.kind,
                    serde_json::Value::Object(want.facts.clone()),
                    if same_kind.is_empty() {
                        "no group of that kind".to_string()
                    } else {
                        same_kind.join(", ")
                    }
                ));
            }
        }
    }
    if let (Some(want), Some(Output::Plan(actions))) = (&e.plan, first) {
        if want.len() != actions.len() {
            out.push(format!(
                "expected a plan of {} action(s), got {}: {}",
                want.len(),
                actions.len(),
                actions
                    .iter()
                    .map(|a| format!("{} {}", name(&a.kind), a.target))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        } else {
            for (i, (w, a)) in want.iter().zip(actions).enumerate() {
                let differs = w.id.as_ref().is_some_and(|id| *id != a.id)
                    || w.kind.is_some_and(|k| k != a.kind)
                    || w.target.as_ref().is_some_and(|t| *t != a.target);
                if differs {
                    out.push(format!(
                        "plan action {}: expected {}, got id {:?}, kind {}, target {:?}",
                        i + 1,
                        serde_json::json!({ "id": w.id, "kind": w.kind, "target": w.target }),
                        a.id,
                        name(&a.kind),
                        a.target
                    ));
                }
            }
        }
    }
    if let (Some(want), Some(Output::Applied(outcomes))) = (&e.outcomes, last) {
        let got: Vec<_> = outcomes.iter().map(|o| o.status).collect();
        if *want != got {
            let names = |v: &[warden_core::report::OutcomeStatus]| {
                v.iter().map(name).collect::<Vec<_>>().join(", ")
            };
            out.push(format!(
                "expected outcomes [{}], got [{}] ({})",
                names(want),
                names(&got),
                outcomes
                    .iter()
                    .map(|o| format!("{}: {}", o.id, o.detail))
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
    }
}

fn check_calls(fixture: &Fixture, run: &CaseRun, out: &mut Vec<String>) {
    let e = &fixture.expect;
    let allowed: Vec<String> = run.calls().filter(|u| u.allowed).map(call_string).collect();
    let mut rest = allowed.iter();
    for want in &e.calls {
        if !rest.any(|c| c == want) {
            let seen = if allowed.contains(want) {
                "it was, but not in this order"
            } else {
                "it was not"
            };
            out.push(format!(
                "expected the call `{want}`; {seen} (calls made: {})",
                if allowed.is_empty() {
                    "none".to_string()
                } else {
                    allowed.join(", ")
                }
            ));
            break;
        }
    }
    let mut expected_denials = e.denied.clone();
    for u in run.calls().filter(|u| !u.allowed) {
        let call = call_string(u);
        if let Some(i) = expected_denials.iter().position(|d| *d == call) {
            expected_denials.remove(i);
            continue;
        }
        out.push(format!(
            "the plugin called `{call}`, which its grant does not allow ({}): request it in plugin.toml, or list it in expect.denied if this case tests the denial",
            u.reason.as_deref().unwrap_or("denied")
        ));
    }
    for d in expected_denials {
        out.push(format!(
            "expected the call `{d}` to be denied; no such call was denied"
        ));
    }
}
