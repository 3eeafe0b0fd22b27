//! Capability enforcement end to end, through the `hostile` guest: filesystem escapes, exec
//! allow-lists and literal arguments, deadlines that kill child processes, KV quotas, services.

use serde_json::json;
use warden_agent::PluginManager;
use warden_core::report::{Action, ActionKind, Invocation, OutcomeStatus, Output};
use warden_core::{Limit, RunError, RunRequest};
use warden_tests::Sandbox;

fn check(
    runner: &PluginManager,
    config: serde_json::Value,
) -> (Result<Output, RunError>, warden_core::RunReport) {
    let report = runner.run(&RunRequest::new("hostile", Invocation::Check).with_config(config));
    (report.result.clone(), report)
}

fn summary(r: Result<Output, RunError>) -> String {
    match r {
        Ok(Output::Check(c)) => c.summary,
        other => panic!("expected a check result, got {other:?}"),
    }
}

fn plugin_code(r: Result<Output, RunError>) -> String {
    match r {
        Err(RunError::Plugin { code, .. }) => code,
        other => panic!("expected a plugin error, got {other:?}"),
    }
}

fn fs_setup() -> (Sandbox, PluginManager) {
    let sb = Sandbox::new();
    let runner = sb.hostile_runner("default-timeout-ms = 5000", "timeout-ms = 1500");
    (sb, runner)
}

#[test]
pub(crate) fn reads_inside_the_grant_work() {
    let (sb, runner) = fs_setup();
    std::fs::write(sb.scratch().join("hello.txt"), "hello").expect("write");
    let path = sb.scratch().join("hello.txt");
    let (r, report) = check(&runner, json!({"attack": "read", "path": path}));
    assert_eq!(summary(r), "read 5 bytes");
    assert!(
        report
            .capability_uses
            .iter()
            .any(|u| u.capability == "fs" && u.allowed)
    );
    let (r, _) = check(
        &runner,
        json!({"attack": "list", "path": format!("{}/", sb.scratch().display())}),
    );
    assert_eq!(
        summary(r),
        "hello.txt",
        "a trailing slash names the same directory"
    );
}

#[test]
fn filesystem_escapes_are_denied_and_recorded() {
    let (sb, runner) = fs_setup();
    let scratch = sb.scratch();
    std::os::unix::fs::symlink("/etc", scratch.join("etc-link")).expect("symlink dir");
    std::os::unix::fs::symlink("/etc/passwd", scratch.join("passwd-link")).expect("symlink file");
    let s = scratch.display().to_string();
    for path in [
        format!("{s}/../../../etc/passwd"),
        "/etc/passwd".to_string(),
        format!("{s}/etc-link/passwd"),
        format!("{s}/passwd-link"),
        format!("{s}/../"),
        format!("{s}x/file"),
        "relative/path".to_string(),
        format!("{s}/\0/x"),
    ] {
        let (r, report) = check(&runner, json!({"attack": "read", "path": path}));
        let code = plugin_code(r);
        assert!(
            code == "denied" || code == "invalid",
            "{path:?} gave {code}"
        );
        let last = report
            .capability_uses
            .last()
            .expect("the attempt is recorded");
        assert!(!last.allowed, "{path:?} recorded as allowed: {last:?}");
    }
}

#[test]
fn writes_outside_the_grant_are_denied_and_nothing_is_written() {
    let (sb, runner) = fs_setup();
    let outside = sb.dir.path().join("outside.txt");
    let escape = format!("{}/../outside.txt", sb.scratch().display());
    let inside = sb.scratch().join("inside.txt");
    let actions = vec![
        Action {
            id: "1".into(),
            kind: ActionKind::Create,
            target: escape,
            description: String::new(),
        },
        Action {
            id: "2".into(),
            kind: ActionKind::Create,
            target: inside.display().to_string(),
            description: String::new(),
        },
    ];
    let report = runner.run(
        &RunRequest::new("hostile", Invocation::Apply(actions))
            .with_config(json!({"contents": "x"})),
    );
    let Ok(Output::Applied(outcomes)) = report.result else {
        panic!("{:?}", report.result)
    };
    assert_eq!(outcomes[0].status, OutcomeStatus::Failed);
    assert_eq!(outcomes[0].detail, "denied");
    assert_eq!(outcomes[1].status, OutcomeStatus::Applied);
    assert!(!outside.exists());
    assert_eq!(std::fs::read_to_string(inside).expect("written"), "x");
}

#[test]
fn exec_of_a_program_not_granted_is_denied() {
    let (_sb, runner) = fs_setup();
    let (r, report) = check(
        &runner,
        json!({"attack": "exec", "program": "/bin/sh", "args": ["-c", "id"]}),
    );
    assert_eq!(plugin_code(r), "denied");
    let last = report.capability_uses.last().expect("recorded");
    assert_eq!(
        (last.capability.as_str(), last.target.as_str(), last.allowed),
        ("exec", "/bin/sh", false)
    );
}

#[test]
fn shell_metacharacters_are_passed_literally() {
    let (sb, runner) = fs_setup();
    let marker = sb.scratch().join("pwned");
    let evil = format!(
        "; touch {} && echo $(id) `id` | cat > /dev/null",
        marker.display()
    );
    let (r, _) = check(
        &runner,
        json!({"attack": "exec", "program": "/bin/echo", "args": [evil]}),
    );
    assert_eq!(summary(r), evil);
    assert!(!marker.exists(), "a shell interpreted the argument");
}

#[test]
fn the_run_deadline_kills_a_child_in_progress() {
    let (_sb, runner) = fs_setup();
    let started = std::time::Instant::now();
    let (r, _) = check(
        &runner,
        json!({"attack": "exec", "program": "/bin/sleep", "args": ["31.4159"]}),
    );
    assert!(
        matches!(
            r,
            Err(RunError::LimitExceeded(Limit::Timeout { limit_ms: 1500 }))
        ),
        "{r:?}"
    );
    assert!(
        started.elapsed().as_secs() < 30,
        "the run waited for the child"
    );
    let survivors: Vec<_> = std::fs::read_dir("/proc")
        .expect("proc")
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .filter(|c| String::from_utf8_lossy(c).contains("31.4159"))
        .collect();
    assert!(survivors.is_empty(), "the child process survived its run");
}

#[test]
fn exec_own_timeout_is_a_plugin_visible_error() {
    let (_sb, runner) = fs_setup();
    let (r, _) = check(
        &runner,
        json!({"attack": "exec", "program": "/bin/sleep", "args": ["5"], "timeout_ms": 100}),
    );
    assert_eq!(plugin_code(r), "timed-out");
}

#[test]
fn kv_state_persists_and_quota_is_enforced() {
    let (_sb, runner) = fs_setup();
    let (r, _) = check(
        &runner,
        json!({"attack": "kv-roundtrip", "key": "last", "value": "42"}),
    );
    assert_eq!(summary(r), "42");
    let (r, _) = check(&runner, json!({"attack": "kv-fill", "value_bytes": 1000}));
    assert_eq!(plugin_code(r), "limit-exceeded");
}

#[test]
fn services_outside_the_grant_are_denied_and_odd_names_invalid() {
    let (sb, runner) = fs_setup();
    sb.fake_service("demo-svc", true);
    let (r, _) = check(&runner, json!({"attack": "service", "name": "demo-svc"}));
    assert_eq!(summary(r), "running");
    let (r, _) = check(&runner, json!({"attack": "service", "name": "sshd"}));
    assert_eq!(plugin_code(r), "denied");
    let (r, _) = check(&runner, json!({"attack": "service", "name": "--help"}));
    assert_eq!(plugin_code(r), "invalid");
}
