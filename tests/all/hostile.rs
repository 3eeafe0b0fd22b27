//! Hostile plugins: each misbehaviour ends with its typed error, and the runner stays healthy
//! (the next run on the same runner succeeds).

use serde_json::json;
use warden_agent::PluginManager;
use warden_core::report::{CheckStatus, Invocation, Output};
use warden_core::{Limit, RunError, RunRequest};
use warden_tests::{Sandbox, hostile_manifest};

const LIMITS: &str = "default-timeout-ms = 2000\nlog-bytes = 65536";

fn check(runner: &PluginManager, config: serde_json::Value) -> Result<Output, RunError> {
    runner
        .run(&RunRequest::new("hostile", Invocation::Check).with_config(config))
        .result
}

/// After any failure the same runner still runs a well-behaved call.
fn assert_healthy(runner: &PluginManager) {
    match check(runner, json!({"attack": "sysinfo"})) {
        Ok(Output::Check(r)) => assert_eq!(r.status, CheckStatus::Ok),
        other => panic!("runner unhealthy after a hostile run: {other:?}"),
    }
    assert_eq!(runner.live_instances(), 0);
}

fn setup(limits: &str) -> (Sandbox, PluginManager) {
    let sb = Sandbox::new();
    let runner = sb.hostile_runner(LIMITS, limits);
    (sb, runner)
}

#[test]
fn infinite_loop_hits_the_time_limit() {
    let (_sb, runner) = setup("timeout-ms = 300");
    let err = check(&runner, json!({"attack": "loop"})).expect_err("loop must not finish");
    assert!(
        matches!(
            err,
            RunError::LimitExceeded(Limit::Timeout { limit_ms: 300 })
        ),
        "{err:?}"
    );
    assert_healthy(&runner);
}

#[test]
fn memory_bomb_hits_the_memory_limit() {
    let (_sb, runner) = setup("memory-mb = 32");
    let err = check(&runner, json!({"attack": "membomb"})).expect_err("membomb must not finish");
    assert!(
        matches!(err, RunError::LimitExceeded(Limit::Memory { limit_bytes }) if limit_bytes == 32 << 20),
        "{err:?}"
    );
    assert_healthy(&runner);
}

#[test]
fn deep_recursion_hits_the_stack_limit() {
    let (_sb, runner) = setup("");
    let err =
        check(&runner, json!({"attack": "recursion"})).expect_err("recursion must not finish");
    assert!(
        matches!(err, RunError::LimitExceeded(Limit::Stack { .. })),
        "{err:?}"
    );
    assert_healthy(&runner);
}

#[test]
fn log_flood_hits_the_log_limit() {
    let (_sb, runner) = setup("");
    let report = runner.run(
        &RunRequest::new("hostile", Invocation::Check).with_config(json!({"attack": "logflood"})),
    );
    let err = report.result.expect_err("logflood must not finish");
    assert!(
        matches!(
            err,
            RunError::LimitExceeded(Limit::LogBytes { limit_bytes: 65536 })
        ),
        "{err:?}"
    );
    let kept: usize = report.logs.iter().map(|l| l.message.len()).sum();
    assert!(kept <= 65536 && kept > 60_000, "kept {kept} log bytes");
    assert_healthy(&runner);
}

#[test]
fn stdout_flood_hits_the_one_output_budget() {
    let (_sb, runner) = setup("");
    // A plugin that ignores refused writes does not get to finish as if it had written.
    let report = runner.run(
        &RunRequest::new("hostile", Invocation::Check)
            .with_config(json!({"attack": "stdout-flood", "value_bytes": 200_000})),
    );
    let err = report.result.expect_err("stdout-flood must not finish");
    assert!(
        matches!(
            err,
            RunError::LimitExceeded(Limit::LogBytes { limit_bytes: 65536 })
        ),
        "{err:?}"
    );
    let kept = report.stdout.len();
    assert!(kept <= 65536 && kept > 60_000, "kept {kept} stdout bytes");
    assert_healthy(&runner);
}

#[test]
fn logs_and_stderr_share_the_output_budget() {
    let (_sb, runner) = setup("");
    // 40,000 bytes of logs and 40,000 of stderr: each fits the 65,536-byte budget, both do not.
    let report = runner.run(
        &RunRequest::new("hostile", Invocation::Check)
            .with_config(json!({"attack": "log-and-stderr", "value_bytes": 40_000})),
    );
    let err = report
        .result
        .expect_err("logs plus stderr exceed the budget");
    assert!(
        matches!(
            err,
            RunError::LimitExceeded(Limit::LogBytes { limit_bytes: 65536 })
        ),
        "{err:?}"
    );
    let logged: usize = report.logs.iter().map(|l| l.message.len()).sum();
    assert!(logged >= 39_000, "the logs came first: {logged} bytes");
    assert!(
        logged + report.stderr.len() <= 65536,
        "{logged} log bytes and {} stderr bytes kept",
        report.stderr.len()
    );
    assert_healthy(&runner);
}

#[test]
fn panic_is_a_trap_not_a_crash() {
    let (_sb, runner) = setup("");
    let err = check(&runner, json!({"attack": "panic"})).expect_err("panic");
    assert!(
        matches!(&err, RunError::Trap { message } if message.contains("hostile panic")),
        "{err:?}"
    );
    assert_healthy(&runner);
}

#[test]
fn malformed_and_truncated_wasm_is_refused_at_install() {
    let sb = Sandbox::new();
    let runner = sb.runner(&sb.standard_policy(LIMITS));
    let good = std::fs::read(warden_tests::built_plugin("hostile").join("plugin.wasm"))
        .expect("component");
    for (label, bytes) in [
        ("truncated", good[..good.len() / 2].to_vec()),
        ("garbage", b"\0asm not really a component".to_vec()),
        ("empty", vec![]),
    ] {
        let dir = sb.dir.path().join(label);
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("plugin.wasm"), bytes).expect("write");
        std::fs::write(dir.join("plugin.toml"), hostile_manifest("", "")).expect("write");
        let err = runner.install_dir(&dir).expect_err(label);
        assert!(
            matches!(
                err,
                warden_agent::install::InstallError::Rejected(RunError::InvalidComponent { .. })
            ),
            "{label}: {err:?}"
        );
    }
    assert!(
        runner.store().list().expect("list").is_empty(),
        "nothing was installed"
    );
    sb.install(
        &runner,
        "hostile",
        Some(&hostile_manifest(&sb.hostile_caps(), "")),
    );
    assert_healthy(&runner);
}

#[test]
pub(crate) fn importing_an_interface_not_requested_is_refused_naming_it() {
    let sb = Sandbox::new();
    let runner = sb.runner(&sb.standard_policy(LIMITS));
    let err = sb
        .try_install(&runner, "sneaky", None)
        .expect_err("sneaky imports http without requesting it");
    let text = err.to_string();
    assert!(text.contains("warden:plugin/http"), "{text}");
    assert!(text.contains("does not request"), "{text}");
    // And a manifest that asks for fewer capabilities than the component imports is refused too.
    let err = sb
        .try_install(&runner, "hostile", Some(&hostile_manifest("", "")))
        .expect_err("hostile imports fs, exec, ...");
    assert!(
        matches!(
            err,
            warden_agent::install::InstallError::Rejected(RunError::ImportNotGranted { .. })
        ),
        "{err:?}"
    );
}

#[test]
fn instance_limit_refuses_excess_runs_and_recovers() {
    let sb = Sandbox::new();
    let runner = sb.hostile_runner(&format!("{LIMITS}\nmax-instances = 1"), "timeout-ms = 1500");
    std::thread::scope(|s| {
        let busy = s.spawn(|| check(&runner, json!({"attack": "loop"})));
        while runner.live_instances() == 0 {
            std::thread::yield_now();
        }
        let err =
            check(&runner, json!({"attack": "sysinfo"})).expect_err("second instance refused");
        assert!(
            matches!(err, RunError::LimitExceeded(Limit::Instances { limit: 1 })),
            "{err:?}"
        );
        let first = busy.join().expect("thread");
        assert!(matches!(
            first,
            Err(RunError::LimitExceeded(Limit::Timeout { .. }))
        ));
    });
    assert_healthy(&runner);
}

#[test]
fn cancellation_ends_a_running_plugin() {
    let (_sb, runner) = setup("timeout-ms = 10000");
    let req = RunRequest::new("hostile", Invocation::Check).with_config(json!({"attack": "loop"}));
    let cancel = req.cancel.clone();
    std::thread::scope(|s| {
        let run = s.spawn(|| runner.run(&req));
        while runner.live_instances() == 0 {
            std::thread::yield_now();
        }
        cancel.cancel();
        let report = run.join().expect("thread");
        assert!(
            matches!(report.result, Err(RunError::Cancelled)),
            "{:?}",
            report.result
        );
    });
    assert_healthy(&runner);
}
