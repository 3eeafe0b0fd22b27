//! Attacks on the sandbox's capability checks (issue 13), through the `hostile` guest: dry runs
//! that act (`check`, `plan`, a runbook's dry run), host calls that block past every deadline
//! (FIFOs), hard links out of a grant, and exec patterns that admit `..`.

use serde_json::json;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;
use warden_agent::PluginManager;
use warden_core::report::{Action, ActionKind, Invocation, OutcomeStatus, Output};
use warden_core::{Limit, RunError, RunReport, RunRequest};
use warden_history::History;
use warden_host::capabilities::CapabilityUse;
use warden_runbook::Runbook;
use warden_runbook::engine::{Engine, StepStatus};
use warden_tests::{Sandbox, hostile_manifest};

/// A hostile runner whose runs may take 20 s: long enough that a run ending on its own time
/// limit is told apart from one a refusal ended.
fn setup() -> (Sandbox, PluginManager) {
    let sb = Sandbox::new();
    let runner = sb.hostile_runner("default-timeout-ms = 5000", "timeout-ms = 20000");
    (sb, runner)
}

fn run(runner: &PluginManager, invocation: Invocation, config: serde_json::Value) -> RunReport {
    runner.run(&RunRequest::new("hostile", invocation).with_config(config))
}

fn plugin_code(report: &RunReport) -> String {
    match &report.result {
        Err(RunError::Plugin { code, .. }) => code.clone(),
        other => panic!("expected a plugin error, got {other:?}"),
    }
}

fn applied(report: &RunReport) -> Vec<(OutcomeStatus, String)> {
    match &report.result {
        Ok(Output::Applied(outcomes)) => outcomes
            .iter()
            .map(|o| (o.status, o.detail.clone()))
            .collect(),
        other => panic!("expected apply outcomes, got {other:?}"),
    }
}

fn action(target: &Path) -> Action {
    Action {
        id: "1".into(),
        kind: ActionKind::Create,
        target: target.display().to_string(),
        description: String::new(),
    }
}

/// The denial of the one call of `capability`. A call the grant allowed but the filesystem then
/// showed must not happen leaves two records, in order: the grant's decision (already in the
/// audit log when the file was looked at), then the denial.
fn denial<'r>(report: &'r RunReport, capability: &str) -> &'r CapabilityUse {
    let uses: Vec<&CapabilityUse> = report
        .capability_uses
        .iter()
        .filter(|u| u.capability == capability)
        .collect();
    let used = match uses.as_slice() {
        [denied] => denied,
        [allowed, denied] => {
            assert!(
                allowed.allowed,
                "the first record is the grant's: {allowed:?}"
            );
            assert_eq!(
                (&allowed.function, &allowed.target),
                (&denied.function, &denied.target),
                "both records are of the same call"
            );
            denied
        }
        _ => panic!(
            "expected one call of {capability}: {:?}",
            report.capability_uses
        ),
    };
    assert!(!used.allowed, "recorded as allowed: {used:?}");
    used
}

/// Run `f` on its own thread and return what it returns. `unblock` runs if `f` has not returned
/// long after every time limit in these tests (60 s against runs of at most 20 s), so that a
/// regression fails the test instead of hanging it; the assertions are on what `f` returns.
fn bounded<T: Send>(f: impl FnOnce() -> T + Send, unblock: impl FnOnce()) -> T {
    const HANG: Duration = Duration::from_secs(60);
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel();
        let worker = s.spawn(move || {
            let _ = tx.send(f());
        });
        let result = rx.recv_timeout(HANG);
        if result.is_err() {
            unblock();
        }
        let joined = worker.join();
        match (result, joined) {
            (Ok(value), Ok(())) => value,
            (Err(_), _) => panic!("the run was still blocked {HANG:?} later"),
            (_, Err(panic)) => std::panic::resume_unwind(panic),
        }
    })
}

/// A FIFO at `path`, made by the `mkfifo` program (no libc in the tests).
fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success(), "mkfifo {path:?}");
}

/// Open the FIFO for reading and writing (which never blocks on Linux), so that whoever is
/// blocked opening it from the other side is released.
fn release(fifo: &Path) {
    let _ = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(fifo);
}

// ---- 1. `check`, `plan` and dry runs do not change the machine ----

/// Each acting attack (a write, a removal, a service start), under `invocation`: refused with
/// `denied`, recorded as a denial naming the invocation, and the machine unchanged.
fn assert_cannot_act(sb: &Sandbox, runner: &PluginManager, invocation: Invocation) {
    let name = invocation.name();
    let created = sb.scratch().join(format!("{name}-created"));
    let victim = sb.scratch().join(format!("{name}-victim"));
    std::fs::write(&victim, "original").expect("victim");
    sb.fake_service("demo-svc", false);
    let attacks = [
        (
            json!({"attack": "write", "path": created, "contents": "acted"}),
            "fs-write",
        ),
        (json!({"attack": "remove", "path": victim}), "fs-write"),
        (
            json!({"attack": "service-start", "name": "demo-svc", "path": created}),
            "service-control",
        ),
    ];
    for (config, capability) in attacks {
        let report = run(runner, invocation.clone(), config.clone());
        assert_eq!(plugin_code(&report), "denied", "{name} {config}");
        let used = denial(&report, capability);
        let reason = used.reason.as_deref().unwrap_or_default();
        assert!(
            reason.contains(&format!("during `{name}`")) && reason.contains("only `apply`"),
            "{name} {config}: {reason}"
        );
    }
    assert!(!created.exists(), "{name} created a file");
    assert_eq!(
        std::fs::read_to_string(&victim).expect("victim is still there"),
        "original"
    );
    assert!(
        !sb.fake_service_running("demo-svc"),
        "{name} started a service"
    );
}

#[test]
fn check_cannot_write_remove_or_control_services() {
    let (sb, runner) = setup();
    assert_cannot_act(&sb, &runner, Invocation::Check);
}

#[test]
fn plan_cannot_write_remove_or_control_services() {
    let (sb, runner) = setup();
    assert_cannot_act(&sb, &runner, Invocation::Plan);
}

#[test]
fn apply_still_writes_and_removes_what_is_granted() {
    let (sb, runner) = setup();
    let target = sb.scratch().join("applied");
    let report = run(
        &runner,
        Invocation::Apply(vec![action(&target)]),
        json!({"contents": "fixed"}),
    );
    assert_eq!(
        applied(&report),
        vec![(OutcomeStatus::Applied, "written".into())]
    );
    assert_eq!(std::fs::read_to_string(&target).expect("written"), "fixed");
    let report = run(
        &runner,
        Invocation::Apply(vec![action(&target)]),
        json!({"remove": true}),
    );
    assert_eq!(
        applied(&report),
        vec![(OutcomeStatus::Applied, "removed".into())]
    );
    assert!(!target.exists());
}

#[test]
fn a_runbook_dry_run_cannot_act() {
    let sb = Sandbox::new();
    let runner = sb.runner(&sb.standard_policy("default-timeout-ms = 5000"));
    sb.install(
        &runner,
        "hostile",
        Some(&hostile_manifest(&sb.hostile_caps(), "")),
    );
    let acted = sb.scratch().join("acted");
    // An `apply` step: a dry run calls its plan, which here tries to write.
    let text = format!(
        "name = \"t\"\n[[steps]]\nid = \"fix\"\nplugin = \"hostile\"\naction = \"apply\"\n\
         config = {{ attack = \"write\", path = {:?}, contents = \"acted\" }}\n",
        acted.display().to_string()
    );
    let runbook = Runbook::parse(&text, "dry.toml").expect("valid runbook");
    let params = runbook.resolve_params(&[]).expect("params");
    let history = History::open(&sb.data_dir()).expect("history");
    let summary = Engine {
        runner: &runner,
        history: &history,
        audit: runner.audit(),
    }
    .run(&runbook, &params, true, &mut |_| {})
    .expect("engine");
    assert!(summary.dry_run);
    let step = &summary.steps[0];
    assert_eq!(step.status, StepStatus::Failed, "{step:?}");
    assert!(
        step.error.as_deref().unwrap_or_default().contains("denied"),
        "{step:?}"
    );
    assert!(!acted.exists(), "the dry run wrote a file");
    runner.audit().flush().expect("flush");
    let log =
        std::fs::read_to_string(sb.data_dir().join("audit").join("audit.log")).expect("audit log");
    let denied = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "capability.use" && v["data"]["use"]["capability"] == "fs-write");
    let denied = denied.unwrap_or_else(|| panic!("no fs-write use audited:\n{log}"));
    let used = &denied["data"]["use"];
    assert_eq!(used["allowed"], false, "{denied}");
    assert!(
        used["reason"]
            .as_str()
            .is_some_and(|r| r.contains("during `plan`")),
        "{denied}"
    );
}

// ---- 2. Deadlines and Cancel end host calls: FIFOs and other non-regular files ----

#[test]
fn reading_a_fifo_is_refused_without_blocking() {
    let (sb, runner) = setup();
    let fifo = sb.scratch().join("pipe");
    mkfifo(&fifo);
    let report = bounded(
        || {
            run(
                &runner,
                Invocation::Check,
                json!({"attack": "read", "path": fifo}),
            )
        },
        || release(&fifo),
    );
    assert_eq!(plugin_code(&report), "invalid", "{:?}", report.result);
    let used = denial(&report, "fs");
    assert!(
        used.reason
            .as_deref()
            .unwrap_or_default()
            .contains("a FIFO, not a regular file"),
        "{used:?}"
    );
    // Listing it is no directory listing, and does not block either.
    let report = bounded(
        || {
            run(
                &runner,
                Invocation::Check,
                json!({"attack": "list", "path": fifo}),
            )
        },
        || release(&fifo),
    );
    assert!(report.result.is_err(), "{:?}", report.result);
}

#[test]
fn reading_a_character_device_or_a_directory_is_refused() {
    let sb = Sandbox::new();
    let mut caps = sb.hostile_caps();
    caps = caps.replace(
        "[capabilities.fs]\nread = [",
        "[capabilities.fs]\nread = [\"/dev/zero\", ",
    );
    let policy = sb
        .standard_policy("default-timeout-ms = 5000")
        .replace("fs-read = [", "fs-read = [\"/dev/zero\", ");
    let runner = sb.runner(&policy);
    sb.install(&runner, "hostile", Some(&hostile_manifest(&caps, "")));
    for (path, kind) in [
        (Path::new("/dev/zero").to_path_buf(), "a character device"),
        (sb.scratch(), "a directory"),
    ] {
        let report = run(
            &runner,
            Invocation::Check,
            json!({"attack": "read", "path": path}),
        );
        assert_eq!(plugin_code(&report), "invalid", "{path:?}");
        let used = denial(&report, "fs");
        assert!(
            used.reason.as_deref().unwrap_or_default().contains(kind),
            "{path:?}: {used:?}"
        );
    }
}

#[test]
fn writing_to_a_fifo_is_refused_without_blocking() {
    let (sb, runner) = setup();
    let fifo = sb.scratch().join("pipe");
    mkfifo(&fifo);
    let report = bounded(
        || {
            run(
                &runner,
                Invocation::Apply(vec![action(&fifo)]),
                json!({"contents": "x"}),
            )
        },
        || release(&fifo),
    );
    assert_eq!(
        applied(&report),
        vec![(OutcomeStatus::Failed, "invalid".into())]
    );
    let kind = std::fs::symlink_metadata(&fifo)
        .expect("still there")
        .file_type();
    use std::os::unix::fs::FileTypeExt;
    assert!(kind.is_fifo(), "the FIFO was replaced");
}

#[test]
fn the_time_limit_ends_a_run_that_keeps_reading_a_fifo() {
    let sb = Sandbox::new();
    let runner = sb.hostile_runner("default-timeout-ms = 5000", "timeout-ms = 500");
    let fifo = sb.scratch().join("pipe");
    mkfifo(&fifo);
    let report = bounded(
        || {
            run(
                &runner,
                Invocation::Check,
                json!({"attack": "read-loop", "path": fifo}),
            )
        },
        || release(&fifo),
    );
    assert!(
        matches!(
            report.result,
            Err(RunError::LimitExceeded(Limit::Timeout { limit_ms: 500 }))
        ),
        "{:?}",
        report.result
    );
    assert_eq!(runner.live_instances(), 0);
}

#[test]
fn cancel_ends_a_run_that_keeps_reading_a_fifo() {
    let (sb, runner) = setup();
    let fifo = sb.scratch().join("pipe");
    mkfifo(&fifo);
    let req = RunRequest::new("hostile", Invocation::Check)
        .with_config(json!({"attack": "read-loop", "path": fifo}));
    let cancel = req.cancel.clone();
    let report = bounded(
        || {
            std::thread::scope(|s| {
                let running = s.spawn(|| runner.run(&req));
                while runner.live_instances() == 0 {
                    std::thread::yield_now();
                }
                cancel.cancel();
                running.join().expect("run thread")
            })
        },
        || release(&fifo),
    );
    assert!(
        matches!(report.result, Err(RunError::Cancelled)),
        "{:?}",
        report.result
    );
    assert_eq!(runner.live_instances(), 0);
}

// ---- 5. Hard links do not widen a grant ----

#[test]
fn a_hard_link_out_of_the_grant_is_neither_read_nor_written() {
    let (sb, runner) = setup();
    let outside = sb.dir.path().join("outside-secret");
    std::fs::write(&outside, "secret").expect("outside file");
    let link = sb.scratch().join("link");
    std::fs::hard_link(&outside, &link).expect("hard link");

    let report = run(
        &runner,
        Invocation::Check,
        json!({"attack": "read", "path": link}),
    );
    assert_eq!(plugin_code(&report), "denied", "{:?}", report.result);
    let used = denial(&report, "fs");
    assert!(
        used.reason
            .as_deref()
            .unwrap_or_default()
            .contains("2 hard links"),
        "{used:?}"
    );

    let report = run(
        &runner,
        Invocation::Apply(vec![action(&link)]),
        json!({"contents": "pwned"}),
    );
    assert_eq!(
        applied(&report),
        vec![(OutcomeStatus::Failed, "denied".into())]
    );
    denial(&report, "fs-write");
    assert_eq!(
        std::fs::read_to_string(&outside).expect("outside"),
        "secret"
    );

    // Removing the link removes a name in the grant; the file outside keeps its data.
    let report = run(
        &runner,
        Invocation::Apply(vec![action(&link)]),
        json!({"remove": true}),
    );
    assert_eq!(
        applied(&report),
        vec![(OutcomeStatus::Applied, "removed".into())]
    );
    assert!(!link.exists());
    assert_eq!(
        std::fs::read_to_string(&outside).expect("outside"),
        "secret"
    );
}

#[test]
fn a_write_replaces_the_file_and_keeps_its_mode() {
    let (sb, runner) = setup();
    let target = sb.scratch().join("private.conf");
    std::fs::write(&target, "old").expect("target");
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    // Another owner, where the test may give one (as root): the replacement must keep it.
    const OTHER_ID: u32 = 4242;
    let other_owner = std::os::unix::fs::chown(&target, Some(OTHER_ID), Some(OTHER_ID)).is_ok();
    let before = std::fs::metadata(&target).expect("stat");
    // Someone holding the old file open keeps reading the old contents: a new file was put in
    // its place, the old one was not rewritten.
    let held = std::fs::File::open(&target).expect("open");
    let report = run(
        &runner,
        Invocation::Apply(vec![action(&target)]),
        json!({"contents": "new"}),
    );
    assert_eq!(
        applied(&report),
        vec![(OutcomeStatus::Applied, "written".into())]
    );
    let after = std::fs::metadata(&target).expect("stat");
    assert_eq!(std::fs::read_to_string(&target).expect("read"), "new");
    assert_ne!(before.ino(), after.ino(), "the file was rewritten in place");
    assert_eq!(after.mode() & 0o777, 0o600, "mode {:o}", after.mode());
    assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
    if other_owner {
        assert_eq!(after.uid(), OTHER_ID);
    }
    let mut old = String::new();
    std::io::Read::read_to_string(&mut &held, &mut old).expect("read held");
    assert_eq!(old, "old");
    let names: Vec<String> = std::fs::read_dir(sb.scratch())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec!["private.conf".to_string()],
        "a temporary file was left"
    );
}

// ---- 6. Exec argument patterns do not admit traversal ----

#[test]
fn an_exec_pattern_does_not_admit_a_parent_segment() {
    let sb = Sandbox::new();
    let s = sb.scratch().display().to_string();
    let cat = format!("{{ program = \"/bin/cat\", args = [\"{s}/*\"] }}, ");
    let policy = sb
        .standard_policy("default-timeout-ms = 5000")
        .replace("exec = [", &format!("exec = [{cat}"));
    let caps = sb
        .hostile_caps()
        .replace("exec = [", &format!("exec = [{cat}"));
    let runner = sb.runner(&policy);
    sb.install(&runner, "hostile", Some(&hostile_manifest(&caps, "")));
    std::fs::write(sb.scratch().join("inside"), "inside").expect("inside");
    std::fs::write(sb.dir.path().join("outside"), "outside").expect("outside");

    let report = run(
        &runner,
        Invocation::Check,
        json!({"attack": "exec", "program": "/bin/cat", "args": [format!("{s}/inside")]}),
    );
    match &report.result {
        Ok(Output::Check(c)) => assert_eq!(c.summary, "inside"),
        other => panic!("{other:?}"),
    }
    let escape = format!("{s}/../outside");
    let report = run(
        &runner,
        Invocation::Check,
        json!({"attack": "exec", "program": "/bin/cat", "args": [escape]}),
    );
    assert_eq!(plugin_code(&report), "denied", "{:?}", report.result);
    let used = denial(&report, "exec");
    assert_eq!(used.args, vec![escape]);
}
