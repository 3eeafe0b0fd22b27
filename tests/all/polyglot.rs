//! The Python and JavaScript example plugins (examples/python-check, python-remediation,
//! js-check), built by `cargo xtask build-plugins`, run by the real runner: passing and failing
//! checks, a remediation's plan then apply of exactly that plan, denials outside the grant, and
//! a second runner loading the 12-18 MB components from the precompiled cache.
//!
//! Compiling one of these components takes tens of seconds in a debug test host, so every test
//! here shares one sandbox and runner (one install, one compile per component).

use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};
use warden_agent::PluginManager;
use warden_core::report::{ActionKind, CheckStatus, Invocation, OutcomeStatus, Output, RunReport};
use warden_core::{RunError, RunRequest};
use warden_host::engine::CacheOutcome;
use warden_tests::Sandbox;

/// The example plugins: name in `target/plugins/`.
const PLUGINS: [&str; 3] = ["dir-quota", "stale-tmp", "file-freshness"];

struct Shared {
    sb: Sandbox,
    runner: PluginManager,
}

/// A policy granting the scratch dir for reading and writing, and nothing else.
fn policy(sb: &Sandbox) -> String {
    let s = sb.scratch().display().to_string();
    format!("[allow]\nfs-read = [{s:?}]\nfs-write = [{s:?}]\n")
}

/// The example's own manifest, with its requested paths narrowed to the scratch dir.
fn manifest(sb: &Sandbox, plugin: &str) -> String {
    let text = std::fs::read_to_string(warden_tests::built_plugin(plugin).join("plugin.toml"))
        .expect("built manifest");
    let scratch = format!("[{:?}]", sb.scratch().display().to_string());
    let mut out = String::new();
    for line in text.lines() {
        match line.split_once(" = [") {
            Some((key @ ("read" | "write"), _)) => out.push_str(&format!("{key} = {scratch}")),
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        // A static is never dropped, so its sandbox lives under target/ and the previous run's
        // is cleared here, rather than leaking ~100 MB of components into the temp dir each run.
        let root = warden_tests::repo_root()
            .join("target")
            .join("polyglot-tests");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("sandbox root");
        let sb = Sandbox {
            dir: tempfile::tempdir_in(&root).expect("sandbox"),
        };
        std::fs::create_dir_all(sb.scratch()).expect("scratch dir");
        let runner = sb.runner(&policy(&sb));
        for plugin in PLUGINS {
            let report = sb.install(&runner, plugin, Some(&manifest(&sb, plugin)));
            assert!(
                report.refusals.is_empty(),
                "{plugin}: {:?}",
                report.refusals
            );
        }
        Shared { sb, runner }
    })
}

/// A fresh directory under the granted scratch dir, for one test.
fn test_dir(name: &str) -> PathBuf {
    let dir = shared().sb.scratch().join(name);
    std::fs::create_dir_all(&dir).expect("test dir");
    dir
}

fn run(plugin: &str, invocation: Invocation, config: serde_json::Value) -> RunReport {
    shared()
        .runner
        .run(&RunRequest::new(plugin, invocation).with_config(config))
}

fn check(plugin: &str, config: serde_json::Value) -> warden_core::report::CheckResult {
    match run(plugin, Invocation::Check, config).result {
        Ok(Output::Check(result)) => result,
        other => panic!("{plugin} check: {other:?}"),
    }
}

fn set_age(path: &Path, days: u64) {
    let when = SystemTime::now() - Duration::from_secs(days * 86_400);
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(when))
        .expect("set mtime");
}

fn metric(result: &warden_core::report::CheckResult, name: &str) -> f64 {
    result
        .metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no metric {name} in {:?}", result.metrics))
        .value
}

/// The run failed with the plugin's `denied` error, and the capability use was recorded as refused.
fn assert_denied(report: &RunReport, path: &str) {
    assert!(
        matches!(&report.result, Err(RunError::Plugin { code, message }) if code == "denied" && message.contains(path)),
        "{:?}",
        report.result
    );
    assert!(
        report
            .capability_uses
            .iter()
            .any(|u| u.capability == "fs" && u.target.contains(path) && !u.allowed),
        "{:?}",
        report.capability_uses
    );
}

#[test]
fn python_check_measures_a_directory_against_its_thresholds() {
    let dir = test_dir("quota");
    for name in ["a", "b", "c"] {
        std::fs::write(dir.join(name), [0u8; 100]).expect("file");
    }
    std::fs::create_dir_all(dir.join("sub")).expect("sub dir");

    let ok = check("dir-quota", json!({"dir": dir, "max_files": 10}));
    assert_eq!(ok.status, CheckStatus::Ok, "{}", ok.summary);
    assert_eq!(metric(&ok, "files"), 3.0, "directories are not counted");
    assert_eq!(metric(&ok, "bytes"), 300.0);

    let full = check("dir-quota", json!({"dir": dir, "max_files": 3}));
    assert_eq!(full.status, CheckStatus::Critical, "{}", full.summary);

    let near = check(
        "dir-quota",
        json!({"dir": dir, "max_bytes": 350, "warning_percent": 80}),
    );
    assert_eq!(near.status, CheckStatus::Warning, "{}", near.summary);
}

#[test]
fn python_check_reports_bad_config_and_denials() {
    let no_limit = run(
        "dir-quota",
        Invocation::Check,
        json!({"dir": test_dir("x")}),
    );
    assert!(
        matches!(&no_limit.result, Err(RunError::Plugin { code, .. }) if code == "bad-config"),
        "{:?}",
        no_limit.result
    );
    let schema = run("dir-quota", Invocation::Check, json!({"max_files": 1}));
    assert!(
        matches!(&schema.result, Err(RunError::InvalidConfig { .. })),
        "{:?}",
        schema.result
    );
    let outside = run(
        "dir-quota",
        Invocation::Check,
        json!({"dir": "/etc", "max_files": 1}),
    );
    assert_denied(&outside, "/etc");
}

#[test]
fn js_check_judges_age_size_and_absence_of_a_file() {
    let dir = test_dir("freshness");
    let fresh = dir.join("fresh.bak");
    std::fs::write(&fresh, [1u8; 64]).expect("file");
    let stale = dir.join("stale.bak");
    std::fs::write(&stale, [1u8; 64]).expect("file");
    set_age(&stale, 3);

    let ok = check("file-freshness", json!({"path": fresh, "min_bytes": 10}));
    assert_eq!(ok.status, CheckStatus::Ok, "{}", ok.summary);
    assert_eq!(metric(&ok, "size"), 64.0);

    let old = check("file-freshness", json!({"path": stale}));
    assert_eq!(old.status, CheckStatus::Critical, "{}", old.summary);
    assert!(metric(&old, "age") >= 3.0 * 86_400.0 - 60.0);

    let warn = check(
        "file-freshness",
        json!({"path": stale, "warning_age_hours": 48, "critical_age_hours": 100}),
    );
    assert_eq!(warn.status, CheckStatus::Warning, "{}", warn.summary);

    let small = check("file-freshness", json!({"path": fresh, "min_bytes": 1000}));
    assert_eq!(small.status, CheckStatus::Critical, "{}", small.summary);

    let missing = check("file-freshness", json!({"path": dir.join("none.bak")}));
    assert_eq!(missing.status, CheckStatus::Critical, "{}", missing.summary);
    assert!(
        missing.summary.contains("does not exist"),
        "{}",
        missing.summary
    );
}

#[test]
fn js_check_gets_the_typed_denial_outside_its_grant() {
    let outside = run(
        "file-freshness",
        Invocation::Check,
        json!({"path": "/etc/hostname"}),
    );
    assert_denied(&outside, "/etc/hostname");
}

#[test]
fn python_remediation_plans_without_side_effects_and_applies_exactly_the_plan() {
    let dir = test_dir("stale");
    let other = test_dir("stale-other");
    for name in ["old1.tmp", "old2.tmp", "new.tmp", "old.log"] {
        std::fs::write(dir.join(name), name).expect("file");
    }
    for name in ["old1.tmp", "old2.tmp", "old.log"] {
        set_age(&dir.join(name), 10);
    }
    std::fs::create_dir(dir.join("old-dir.tmp")).expect("dir");
    std::fs::write(other.join("elsewhere.tmp"), "x").expect("file");
    set_age(&other.join("elsewhere.tmp"), 10);
    std::os::unix::fs::symlink(other.join("elsewhere.tmp"), dir.join("link.tmp")).expect("link");
    let config = json!({"dir": dir, "older_than_days": 7});

    let Ok(Output::Plan(plan)) = run("stale-tmp", Invocation::Plan, config.clone()).result else {
        panic!("plan failed");
    };
    let targets: Vec<&str> = plan.iter().map(|a| a.target.as_str()).collect();
    let expected: Vec<String> = ["old1.tmp", "old2.tmp"]
        .iter()
        .map(|n| dir.join(n).display().to_string())
        .collect();
    assert_eq!(targets, expected);
    assert!(plan.iter().all(|a| a.kind == ActionKind::Delete));
    assert!(
        dir.join("old1.tmp").exists() && dir.join("old2.tmp").exists(),
        "plan deleted something"
    );

    // The approved plan, plus two actions it never proposed: apply must skip those.
    let mut approved = plan.clone();
    for (id, target) in [
        ("forged-new", dir.join("new.tmp")),
        ("forged-other", other.join("elsewhere.tmp")),
    ] {
        let mut forged = plan[0].clone();
        forged.id = id.to_string();
        forged.target = target.display().to_string();
        approved.push(forged);
    }
    let report = run("stale-tmp", Invocation::Apply(approved), config);
    let Ok(Output::Applied(outcomes)) = report.result else {
        panic!("apply failed: {:?}", report.result);
    };
    let status = |id: &str| {
        outcomes
            .iter()
            .find(|o| o.id == id)
            .map(|o| o.status)
            .unwrap_or_else(|| panic!("no outcome for {id}: {outcomes:?}"))
    };
    assert_eq!(status("delete-1"), OutcomeStatus::Applied);
    assert_eq!(status("delete-2"), OutcomeStatus::Applied);
    assert_eq!(status("forged-new"), OutcomeStatus::Skipped);
    assert_eq!(status("forged-other"), OutcomeStatus::Skipped);
    assert!(!dir.join("old1.tmp").exists() && !dir.join("old2.tmp").exists());
    for kept in ["new.tmp", "old.log", "old-dir.tmp", "link.tmp"] {
        assert!(
            dir.join(kept).symlink_metadata().is_ok(),
            "{kept} was deleted"
        );
    }
    assert!(other.join("elsewhere.tmp").exists());
    let removals: Vec<&str> = report
        .capability_uses
        .iter()
        .filter(|u| u.capability == "fs-write")
        .map(|u| u.target.as_str())
        .collect();
    assert_eq!(removals, expected, "fs-write used only on the plan's files");
}

#[test]
fn python_remediation_gets_the_typed_denial_outside_its_grant() {
    let outside = run("stale-tmp", Invocation::Plan, json!({"dir": "/var/tmp"}));
    assert_denied(&outside, "/var/tmp");
}

#[test]
fn a_second_runner_loads_each_component_from_the_precompiled_cache() {
    let sb = &shared().sb;
    // A new runner over the same data dir: nothing prepared in memory, as in a new process.
    let runner = sb.runner(&policy(sb));
    let dir = test_dir("second-runner");
    std::fs::write(dir.join("f.bak"), "x").expect("file");
    for (plugin, invocation, config) in [
        (
            "dir-quota",
            Invocation::Check,
            json!({"dir": dir, "max_files": 5}),
        ),
        ("stale-tmp", Invocation::Plan, json!({"dir": dir})),
        (
            "file-freshness",
            Invocation::Check,
            json!({"path": dir.join("f.bak")}),
        ),
    ] {
        let report = runner.run(&RunRequest::new(plugin, invocation).with_config(config));
        assert!(report.result.is_ok(), "{plugin}: {:?}", report.result);
        assert_eq!(report.cache, Some(CacheOutcome::Hit), "{plugin}");
        let size = std::fs::metadata(warden_tests::built_plugin(plugin).join("plugin.wasm"))
            .expect("component")
            .len();
        assert!(size > 10 << 20, "{plugin} is only {size} bytes");
    }
}
