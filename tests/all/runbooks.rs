//! Runbooks end to end: validation errors for each kind of mistake (with file, line and the fix),
//! conditions, retries and timeouts, on-failure, dry runs that never apply, the history and the
//! audit log they leave, and hostile files.

use serde_json::json;
use warden_agent::PluginManager;
use warden_core::{RunStatus, SitePolicy};
use warden_history::History;
use warden_runbook::engine::{Engine, RunEvent, RunOptions, RunSummary, StepStatus};
use warden_runbook::{Runbook, RunbookError};
use warden_tests::{Sandbox, hostile_manifest};

/// A runner with disk-usage, clean-temp, tracer and hostile installed under the standard policy.
fn setup() -> (Sandbox, PluginManager) {
    let sb = Sandbox::new();
    let runner = sb.runner(&sb.standard_policy("default-timeout-ms = 5000"));
    for p in ["disk-usage", "clean-temp", "tracer"] {
        sb.install(&runner, p, None);
    }
    sb.install(
        &runner,
        "hostile",
        Some(&hostile_manifest(&sb.hostile_caps(), "")),
    );
    (sb, runner)
}

fn parse(text: &str) -> Result<Runbook, Vec<RunbookError>> {
    Runbook::parse(text, "test.toml")
}

fn run(sb: &Sandbox, runner: &PluginManager, text: &str, dry_run: bool) -> RunSummary {
    let runbook = parse(text).expect("valid runbook");
    assert!(
        runbook.check_plugins(runner).is_empty(),
        "{:?}",
        runbook.check_plugins(runner)
    );
    let params = runbook.resolve_params(&[]).expect("params");
    let history = History::open(&sb.data_dir()).expect("history");
    Engine {
        runner,
        history: &history,
        audit: runner.audit(),
    }
    .run(&runbook, &params, dry_run, &mut |_| {})
    .expect("engine")
}

const HEAD: &str = "name = \"t\"\n";

#[test]
fn validation_errors_name_the_place_and_how_to_fix_it() {
    let (_sb, runner) = setup();
    let step = |body: &str| {
        format!(
            "{HEAD}[[steps]]\nid = \"a\"\nplugin = \"disk-usage\"\naction = \"check\"\n{body}\n"
        )
    };
    let cases: Vec<(String, &str, usize)> = vec![
        (format!("{HEAD}[[steps]\n"), "", 2),
        (step("colour = \"blue\""), "unknown field `colour`", 6),
        (
            format!(
                "{HEAD}[params.n]\ntype = \"integer\"\ndefault = \"seven\"\n[[steps]]\nid = \"a\"\nplugin = \"disk-usage\"\naction = \"check\"\n"
            ),
            "parameter `n`",
            2,
        ),
        (
            step("when = \"steps.a.status ==\""),
            "not a valid CEL expression",
            6,
        ),
        (
            step(
                "when = \"steps.later.ok\"\n[[steps]]\nid = \"later\"\nplugin = \"disk-usage\"\naction = \"check\"",
            ),
            "which is a later step",
            6,
        ),
        (
            step("config = { warning_percent = \"${params.nope}\" }"),
            "params.nope, which is not declared",
            6,
        ),
        (
            step("on-failure = \"fallback\"\nfallback = [\"ghost\"]"),
            "fallback `ghost`",
            7,
        ),
        (
            format!(
                "{HEAD}[[steps]]\nid = \"a\"\nplugin = \"disk-usage\"\naction = \"check\"\n[[steps]]\nid = \"a\"\nplugin = \"disk-usage\"\naction = \"check\"\n"
            ),
            "used twice",
            7,
        ),
        (
            step("retries = { attempts = 50 }"),
            "attempts must be 1 to 10",
            3,
        ),
    ];
    for (text, expected, line) in cases {
        let errors = parse(&text).expect_err(&text);
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            shown.iter().any(|e| e.contains(expected)),
            "{text}\nexpected `{expected}` in {shown:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.line == line && e.file == "test.toml"),
            "{text}\nexpected line {line} in {shown:?}"
        );
        assert!(
            errors
                .iter()
                .all(|e| e.help.is_some() || e.message.contains("attempts")),
            "{shown:?}"
        );
    }
    // Checks against the store and the policy.
    let store_cases = [
        ("plugin = \"ghost\"\naction = \"check\"", "not installed"),
        (
            "plugin = \"disk-usage\"\nversion = \"^2\"\naction = \"check\"",
            "does not match `^2`",
        ),
        (
            "plugin = \"disk-usage\"\naction = \"apply\"",
            "not possible for a check plugin",
        ),
        (
            "plugin = \"disk-usage\"\naction = \"check\"\nconfig = { warning_percent = \"high\" }",
            "does not match the plugin's config-schema: at `/warning_percent`",
        ),
    ];
    for (body, expected) in store_cases {
        let runbook = parse(&format!("{HEAD}[[steps]]\nid = \"a\"\n{body}\n")).expect("parses");
        let errors = runbook.check_plugins(&runner);
        assert!(
            errors
                .iter()
                .any(|e| e.to_string().contains(expected) && e.line == 4),
            "{body}: {errors:?}"
        );
    }
    let strict =
        PluginManager::new(&runner.data_dir(), SitePolicy::embedded_default()).expect("runner");
    let runbook = parse(&format!(
        "{HEAD}[[steps]]\nid = \"a\"\nplugin = \"clean-temp\"\naction = \"plan\"\n"
    ))
    .expect("parses");
    let errors = strict
        .inspect("clean-temp")
        .map(|_| runbook.check_plugins(&strict))
        .expect("installed");
    assert!(
        errors
            .iter()
            .any(|e| e.to_string().contains("the site policy refuses")),
        "{errors:?}"
    );
}

#[test]
fn huge_and_deeply_nested_files_are_rejected_cleanly() {
    let nested = format!(
        "{HEAD}x = {}1{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let errors = parse(&nested).expect_err("nested");
    assert!(errors[0].message.contains("nested deeper"), "{errors:?}");
    let huge = format!("{HEAD}# {}\n", "x".repeat(2 << 20));
    let errors = parse(&huge).expect_err("huge");
    assert!(errors[0].message.contains("larger than"), "{errors:?}");
}

#[test]
fn conditions_see_earlier_results_and_skip_steps() {
    let (sb, runner) = setup();
    let text = format!(
        "{HEAD}[params.force]\ntype = \"boolean\"\ndefault = false\n\
         [[steps]]\nid = \"check\"\nplugin = \"disk-usage\"\naction = \"check\"\nconfig = {{ warning_percent = 100, critical_percent = 100 }}\n\
         [[steps]]\nid = \"only_if_bad\"\nplugin = \"disk-usage\"\naction = \"check\"\nwhen = \"steps.check.status != 'ok' || params.force\"\n\
         [[steps]]\nid = \"only_if_good\"\nplugin = \"disk-usage\"\naction = \"check\"\nwhen = \"steps.check.status == 'ok' && steps.only_if_bad.skipped\"\n"
    );
    let s = run(&sb, &runner, &text, false);
    let status: Vec<StepStatus> = s.steps.iter().map(|s| s.status).collect();
    assert_eq!(
        status,
        vec![
            StepStatus::Succeeded,
            StepStatus::Skipped,
            StepStatus::Succeeded
        ]
    );
    assert_eq!(s.status, RunStatus::Succeeded);
}

fn hostile_step(extra: &str, config: &str) -> String {
    format!(
        "{HEAD}[[steps]]\nid = \"h\"\nplugin = \"hostile\"\naction = \"check\"\nconfig = {config}\n{extra}\n"
    )
}

#[test]
fn retries_are_bounded_and_timeouts_are_not_retried_unless_safe() {
    let (sb, runner) = setup();
    let denied = "{ attack = \"read\", path = \"/etc/passwd\" }";
    let s = run(
        &sb,
        &runner,
        &hostile_step("retries = { attempts = 3, backoff-ms = 10 }", denied),
        false,
    );
    assert_eq!(
        (s.steps[0].status, s.steps[0].attempts),
        (StepStatus::Failed, 3)
    );
    assert_eq!(s.status, RunStatus::Failed);

    let slow = "{ attack = \"loop\" }";
    let s = run(
        &sb,
        &runner,
        &hostile_step("timeout-ms = 100\nretries = { attempts = 3 }", slow),
        false,
    );
    assert_eq!(
        s.steps[0].attempts, 1,
        "a timed-out step is not retried by default"
    );
    assert!(
        s.steps[0]
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("time limit of 100 ms"),
        "{:?}",
        s.steps[0].error
    );
    let s = run(
        &sb,
        &runner,
        &hostile_step(
            "timeout-ms = 100\nretries = { attempts = 2, retry-on-timeout = true }",
            slow,
        ),
        false,
    );
    assert_eq!(s.steps[0].attempts, 2);

    // A configuration known only at the run (a parameter) that the schema refuses: the same
    // answer every time, so it is tried once.
    let text = format!(
        "{HEAD}[params.level]\ntype = \"string\"\ndefault = \"high\"\n[[steps]]\nid = \"a\"\nplugin = \"disk-usage\"\naction = \"check\"\nconfig = {{ warning_percent = \"${{params.level}}\" }}\nretries = {{ attempts = 3, backoff-ms = 10 }}\n"
    );
    let s = run(&sb, &runner, &text, false);
    assert_eq!(
        (s.steps[0].status, s.steps[0].attempts),
        (StepStatus::Failed, 1),
        "{:?}",
        s.steps[0].error
    );
    assert!(
        s.steps[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("invalid configuration")),
        "{:?}",
        s.steps[0].error
    );
}

#[test]
fn on_failure_continue_and_fallback() {
    let (sb, runner) = setup();
    let fail = "[[steps]]\nid = \"bad\"\nplugin = \"hostile\"\naction = \"check\"\nconfig = { attack = \"panic\" }\n";
    let good = |id: &str| {
        format!("[[steps]]\nid = \"{id}\"\nplugin = \"disk-usage\"\naction = \"check\"\n")
    };
    let s = run(
        &sb,
        &runner,
        &format!("{HEAD}{fail}on-failure = \"continue\"\n{}", good("next")),
        false,
    );
    assert_eq!(
        s.steps.iter().map(|s| s.status).collect::<Vec<_>>(),
        vec![StepStatus::Failed, StepStatus::Succeeded]
    );
    assert_eq!(s.status, RunStatus::Succeeded);
    let s = run(
        &sb,
        &runner,
        &format!("{HEAD}{fail}{}", good("never")),
        false,
    );
    assert_eq!(s.steps.len(), 1, "stop is the default");
    let text = format!(
        "{HEAD}{fail}on-failure = \"fallback\"\nfallback = [\"escalate\"]\n{}{}fallback-only = true\n",
        good("never"),
        good("escalate")
    );
    let s = run(&sb, &runner, &text, false);
    let ran: Vec<&str> = s.steps.iter().map(|s| s.step.as_str()).collect();
    assert_eq!(ran, vec!["bad", "escalate"]);
    assert_eq!(s.status, RunStatus::Failed);
}

#[test]
fn a_run_cancelled_during_a_step_starts_no_fallback() {
    let (sb, runner) = setup();
    let text = format!(
        "{HEAD}[[steps]]\nid = \"bad\"\nplugin = \"hostile\"\naction = \"check\"\n\
         config = {{ attack = \"panic\" }}\non-failure = \"fallback\"\nfallback = [\"escalate\"]\n\
         [[steps]]\nid = \"escalate\"\nplugin = \"disk-usage\"\naction = \"check\"\nfallback-only = true\n"
    );
    let runbook = parse(&text).expect("valid runbook");
    let params = runbook.resolve_params(&[]).expect("params");
    let history = History::open(&sb.data_dir()).expect("history");
    let cancel = warden_core::CancelToken::default();
    let options = RunOptions {
        cancel: cancel.clone(),
        ..RunOptions::default()
    };
    let mut started = Vec::new();
    // The operator cancels while the first step runs: it fails, and its fallback must not start.
    let s = Engine {
        runner: &runner,
        history: &history,
        audit: runner.audit(),
    }
    .run_with(&runbook, &params, options, &mut |e| {
        if let RunEvent::StepStarted { step, .. } = e {
            started.push(step.clone());
            cancel.cancel();
        }
    })
    .expect("engine");
    assert_eq!(started, ["bad"], "a step started after the cancel");
    assert_eq!(
        s.steps.iter().map(|s| s.step.as_str()).collect::<Vec<_>>(),
        ["bad"]
    );
    assert_eq!(s.status, RunStatus::Cancelled);
}

#[test]
pub(crate) fn a_dry_run_plans_but_never_applies() {
    let (sb, runner) = setup();
    let trace = sb.scratch().join("trace");
    let text = format!(
        "{HEAD}[[steps]]\nid = \"fix\"\nplugin = \"tracer\"\naction = \"apply\"\nconfig = {{ path = {:?} }}\n",
        trace.display().to_string()
    );
    let s = run(&sb, &runner, &text, true);
    assert_eq!(s.status, RunStatus::Succeeded);
    assert!(
        s.steps[0]
            .plan
            .as_ref()
            .is_some_and(|p| p.as_array().is_some_and(|a| a.len() == 1)),
        "{:?}",
        s.steps[0].plan
    );
    assert!(!trace.exists(), "a dry run called apply");
    assert!(!sb.audit_events().contains(&"remediation.apply".to_string()));
    let s = run(&sb, &runner, &text, false);
    assert_eq!(s.status, RunStatus::Succeeded);
    assert_eq!(std::fs::read_to_string(&trace).expect("applied"), "applied");
}

#[test]
fn history_and_audit_record_the_run() {
    let (sb, runner) = setup();
    let dir = sb.scratch().display().to_string();
    let text = format!(
        "{HEAD}[params.dir]\ntype = \"string\"\ndefault = {dir:?}\n\
         [[steps]]\nid = \"clean\"\nplugin = \"clean-temp\"\naction = \"apply\"\nconfig = {{ dir = \"${{params.dir}}\", older_than_days = 0 }}\n"
    );
    std::fs::write(sb.scratch().join("old"), "x").expect("file");
    let s = run(&sb, &runner, &text, false);
    assert_eq!(s.status, RunStatus::Succeeded, "{s:?}");
    assert!(!sb.scratch().join("old").exists());
    let history = History::open(&sb.data_dir()).expect("history");
    let (row, steps) = history.show(&s.run_id).expect("query").expect("run stored");
    assert_eq!(row.status, "succeeded");
    assert_eq!(row.params, json!({"dir": dir}));
    assert_eq!(steps[0].plugin, "clean-temp");
    assert_eq!(steps[0].version.as_deref(), Some("0.1.0"));
    assert_eq!(steps[0].sha256.as_ref().map(String::len), Some(64));
    // `run.finished` is group-committed: written within milliseconds, or now on flush.
    runner.audit().flush().expect("flush");
    let events = sb.audit_events();
    for e in [
        "run.started",
        "capability.use",
        "remediation.apply",
        "run.finished",
    ] {
        assert!(events.contains(&e.to_string()), "no {e} in {events:?}");
    }
    let apply_at = events
        .iter()
        .position(|e| e == "remediation.apply")
        .expect("apply");
    assert!(
        events[apply_at + 1..].iter().any(|e| e == "capability.use"),
        "the deletions are recorded after the apply record"
    );
    assert!(runner.audit().verify().is_ok());
}

#[test]
fn remediation_does_not_proceed_when_the_audit_log_cannot_be_written() {
    let (sb, runner) = setup();
    let victim = sb.scratch().join("old");
    std::fs::write(&victim, "x").expect("file");
    let text = format!(
        "{HEAD}[[steps]]\nid = \"clean\"\nplugin = \"clean-temp\"\naction = \"plan\"\nconfig = {{ dir = {:?}, older_than_days = 0 }}\n",
        sb.scratch().display().to_string()
    );
    let plan = run(&sb, &runner, &text, false);
    let actions: Vec<warden_core::report::Action> =
        serde_json::from_value(plan.steps[0].plan.clone().expect("plan")).expect("actions");
    // Break the audit log: its path becomes a directory, so appends fail (even as root).
    let log = sb.data_dir().join("audit").join("audit.log");
    std::fs::remove_file(&log).expect("remove log");
    std::fs::create_dir(&log).expect("dir in its place");
    let report = runner.run(
        &warden_agent::RunRequest::new("clean-temp", warden_core::Invocation::Apply(actions))
            .with_config(json!({ "dir": sb.scratch(), "older_than_days": 0 })),
    );
    assert!(
        matches!(&report.result, Err(warden_core::RunError::Audit { .. })),
        "{:?}",
        report.result
    );
    assert!(
        report.to_owned().capability_uses.is_empty(),
        "the plugin never ran"
    );
    assert!(
        victim.exists(),
        "remediation proceeded without an audit record"
    );
}

/// An expression over a big step output is estimated against the real size of that output before
/// it runs: a comprehension nested in another over 2000 metrics (4 million iterations, seconds of
/// work, and far more with a bigger output) fails the step at once with the bound it would pass,
/// while the same shape over a handful of metrics runs.
#[test]
fn expressions_over_big_outputs_are_refused_by_their_estimated_cost() {
    let (sb, runner) = setup();
    let runbook = |count: usize| {
        let metrics = "steps.many.output.value.metrics";
        format!(
            "{HEAD}[[steps]]\nid = \"many\"\nplugin = \"hostile\"\naction = \"check\"\n\
             config = {{ attack = \"metrics\", count = {count} }}\n\
             [[steps]]\nid = \"pairs\"\nplugin = \"disk-usage\"\naction = \"check\"\n\
             when = \"{metrics}.all(a, {metrics}.exists(b, b.value == a.value + 1.0) || a.value == {last}.0)\"\n",
            last = count - 1
        )
    };
    let s = run(&sb, &runner, &runbook(2000), false);
    assert_eq!(s.steps[0].status, StepStatus::Succeeded, "{:?}", s.steps[0]);
    assert_eq!(s.steps[1].status, StepStatus::Failed, "{:?}", s.steps[1]);
    let error = s.steps[1].error.as_deref().unwrap_or_default();
    assert!(
        error.contains("could cost")
            && error.contains("over the 2000000 left of the step's budget"),
        "{error}"
    );
    assert_eq!(s.status, RunStatus::Failed);

    let s = run(&sb, &runner, &runbook(5), false);
    assert_eq!(s.steps[1].status, StepStatus::Succeeded, "{:?}", s.steps[1]);
    assert_eq!(s.status, RunStatus::Succeeded);
}
