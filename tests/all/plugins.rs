//! The first-party plugins, for real on this machine: inventory, disk-usage, clean-temp on a
//! scratch directory, service-health against a scripted service manager. Also the promises
//! around them: plan has no side effects, apply does exactly the plan, config is validated,
//! grants the policy refuses stop the run, and the precompiled cache is used.

use serde_json::json;
use std::time::{Duration, SystemTime};
use warden_agent::PluginManager;
use warden_core::report::{ActionKind, CheckStatus, Invocation, OutcomeStatus, Output};
use warden_core::{RunError, RunRequest};
use warden_host::engine::CacheOutcome;
use warden_tests::Sandbox;

fn run(
    runner: &PluginManager,
    plugin: &str,
    invocation: Invocation,
    config: serde_json::Value,
) -> Result<Output, RunError> {
    runner
        .run(&RunRequest::new(plugin, invocation).with_config(config))
        .result
}

/// The embedded default policy, in development mode so that tests can install directories.
fn embedded_default_runner(sb: &Sandbox) -> PluginManager {
    let dev = warden_core::policy::DEFAULT_POLICY
        .replace("allow-unsigned = false", "allow-unsigned = true");
    assert_ne!(dev, warden_core::policy::DEFAULT_POLICY);
    sb.runner(&dev)
}

#[test]
pub(crate) fn inventory_reports_host_os_disks_and_debian_packages() {
    let sb = Sandbox::new();
    let runner = embedded_default_runner(&sb);
    sb.install(&runner, "inventory", None);
    let Ok(Output::Facts(groups)) = run(&runner, "inventory", Invocation::Discover, json!({}))
    else {
        panic!("inventory failed");
    };
    let kinds: Vec<&str> = groups.iter().map(|g| g.kind.as_str()).collect();
    for kind in ["host", "os", "cpu", "memory", "disk"] {
        assert!(kinds.contains(&kind), "no `{kind}` facts in {kinds:?}");
    }
    let host = groups.iter().find(|g| g.kind == "host").expect("host");
    let expected = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    if !expected.trim().is_empty() {
        assert_eq!(host.facts["hostname"], json!(expected.trim()));
    }
    if std::path::Path::new("/var/lib/dpkg/status").exists() {
        let packages = groups.iter().filter(|g| g.kind == "package").count();
        assert!(packages > 10, "only {packages} packages found");
        assert!(
            groups
                .iter()
                .any(|g| g.kind == "package" && g.facts["name"] == json!("dpkg"))
        );
    }
}

#[test]
pub(crate) fn disk_usage_applies_thresholds() {
    let sb = Sandbox::new();
    let runner = embedded_default_runner(&sb);
    sb.install(&runner, "disk-usage", None);
    let Ok(Output::Check(lenient)) = run(
        &runner,
        "disk-usage",
        Invocation::Check,
        json!({"warning_percent": 100, "critical_percent": 100}),
    ) else {
        panic!("check failed");
    };
    assert_eq!(lenient.status, CheckStatus::Ok, "{}", lenient.summary);
    assert!(
        lenient
            .metrics
            .iter()
            .any(|m| m.name.starts_with("used_percent:") && m.unit == "percent")
    );
    let Ok(Output::Check(strict)) = run(
        &runner,
        "disk-usage",
        Invocation::Check,
        json!({"warning_percent": 0, "critical_percent": 0}),
    ) else {
        panic!("check failed");
    };
    assert_eq!(strict.status, CheckStatus::Critical, "{}", strict.summary);
    let bad = run(
        &runner,
        "disk-usage",
        Invocation::Check,
        json!({"warning_percent": "high"}),
    );
    assert!(
        matches!(bad, Err(RunError::InvalidConfig { .. })),
        "{bad:?}"
    );
}

fn age(path: &std::path::Path, days: u64) {
    let when = SystemTime::now() - Duration::from_secs(days * 86_400);
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(when))
        .expect("set mtime");
}

#[test]
pub(crate) fn clean_temp_plans_without_side_effects_and_applies_exactly_the_plan() {
    let sb = Sandbox::new();
    let runner = sb.runner(&sb.standard_policy(""));
    sb.install(&runner, "clean-temp", None);
    let dir = sb.scratch();
    for name in ["old.log", "new.log", "keep-me-too.txt"] {
        std::fs::write(dir.join(name), name).expect("file");
    }
    age(&dir.join("old.log"), 10);
    age(&dir.join("keep-me-too.txt"), 10);
    std::fs::create_dir(dir.join("old-dir")).expect("dir");
    std::os::unix::fs::symlink("/etc/passwd", dir.join("old-link")).expect("link");
    let config = json!({"dir": dir, "older_than_days": 7});

    let Ok(Output::Plan(plan)) = run(&runner, "clean-temp", Invocation::Plan, config.clone())
    else {
        panic!("plan failed");
    };
    let targets: Vec<&str> = plan.iter().map(|a| a.target.as_str()).collect();
    assert_eq!(plan.len(), 2, "{targets:?}");
    assert!(plan.iter().all(|a| a.kind == ActionKind::Delete));
    assert!(
        dir.join("old.log").exists() && dir.join("keep-me-too.txt").exists(),
        "plan deleted something"
    );

    // Approve only part of the plan: apply must do exactly that part.
    let approved: Vec<_> = plan
        .into_iter()
        .filter(|a| a.target.ends_with("old.log"))
        .collect();
    let Ok(Output::Applied(outcomes)) =
        run(&runner, "clean-temp", Invocation::Apply(approved), config)
    else {
        panic!("apply failed");
    };
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].status, OutcomeStatus::Applied);
    assert!(!dir.join("old.log").exists());
    for kept in ["new.log", "keep-me-too.txt", "old-dir", "old-link"] {
        assert!(
            dir.join(kept).symlink_metadata().is_ok(),
            "{kept} was deleted"
        );
    }
    assert!(std::path::Path::new("/etc/passwd").exists());
}

#[test]
fn clean_temp_refuses_config_errors_and_ungranted_directories() {
    let sb = Sandbox::new();
    let runner = sb.runner(&sb.standard_policy(""));
    sb.install(&runner, "clean-temp", None);
    let missing = run(&runner, "clean-temp", Invocation::Plan, json!({}));
    assert!(
        matches!(&missing, Err(RunError::InvalidConfig { errors, .. }) if errors.iter().any(|e| e.contains("dir"))),
        "{missing:?}"
    );
    let outside = run(
        &runner,
        "clean-temp",
        Invocation::Plan,
        json!({"dir": "/etc"}),
    );
    assert!(
        matches!(&outside, Err(RunError::Plugin { code, .. }) if code == "denied"),
        "{outside:?}"
    );
    let wrong_role = run(
        &runner,
        "clean-temp",
        Invocation::Check,
        json!({"dir": sb.scratch()}),
    );
    assert!(matches!(wrong_role, Err(RunError::RoleMismatch { .. })));
}

#[test]
fn a_policy_that_grants_nothing_of_a_capability_refuses_the_run() {
    let sb = Sandbox::new();
    let runner = embedded_default_runner(&sb);
    let report = sb.install(&runner, "clean-temp", None);
    assert!(!report.refusals.is_empty(), "install reports the refusal");
    let r = run(
        &runner,
        "clean-temp",
        Invocation::Plan,
        json!({"dir": "/tmp"}),
    );
    let Err(RunError::GrantRefused { refusals, .. }) = r else {
        panic!("{r:?}")
    };
    assert!(
        refusals.iter().any(|r| r.contains("fs.write")),
        "{refusals:?}"
    );
}

#[test]
pub(crate) fn service_health_restarts_a_stopped_service_and_verifies() {
    let sb = Sandbox::new();
    let runner = sb.runner(&sb.standard_policy(""));
    let manifest =
        std::fs::read_to_string(warden_tests::built_plugin("service-health").join("plugin.toml"))
            .expect("manifest")
            .replace(
                "services = [\"dbus\", \"cron\", \"ssh\", \"nginx\", \"postgresql\"]",
                "services = [\"demo-svc\"]",
            );
    sb.install(&runner, "service-health", Some(&manifest));
    sb.fake_service("demo-svc", false);
    let config = json!({"service": "demo-svc"});
    let Ok(Output::Check(down)) = run(&runner, "service-health", Invocation::Check, config.clone())
    else {
        panic!()
    };
    assert_eq!(down.status, CheckStatus::Critical);
    let Ok(Output::Plan(plan)) = run(&runner, "service-health", Invocation::Plan, config.clone())
    else {
        panic!()
    };
    assert_eq!(plan.len(), 1);
    assert_eq!(plan[0].kind, ActionKind::ServiceRestart);
    assert!(
        !sb.fake_service_running("demo-svc"),
        "plan must not restart"
    );
    let Ok(Output::Applied(out)) = run(
        &runner,
        "service-health",
        Invocation::Apply(plan),
        config.clone(),
    ) else {
        panic!()
    };
    assert_eq!(out[0].status, OutcomeStatus::Applied, "{}", out[0].detail);
    assert!(sb.fake_service_running("demo-svc"));
    let Ok(Output::Check(up)) = run(&runner, "service-health", Invocation::Check, config) else {
        panic!()
    };
    assert_eq!(up.status, CheckStatus::Ok);
}

#[test]
fn a_second_runner_loads_the_precompiled_component() {
    let sb = Sandbox::new();
    {
        let runner = embedded_default_runner(&sb);
        sb.install(&runner, "disk-usage", None);
    }
    let runner = embedded_default_runner(&sb);
    let report = runner.run(&RunRequest::new("disk-usage", Invocation::Check));
    assert!(report.result.is_ok(), "{:?}", report.result);
    assert_eq!(report.cache, Some(CacheOutcome::Hit));
}

#[test]
fn the_first_run_after_an_install_does_not_load_the_component_again() {
    let sb = Sandbox::new();
    let runner = embedded_default_runner(&sb);
    sb.install(&runner, "disk-usage", None);
    let report = runner.run(&RunRequest::new("disk-usage", Invocation::Check));
    assert!(report.result.is_ok(), "{:?}", report.result);
    assert_eq!(report.cache, None, "linked at install, kept in memory");
}

#[test]
fn warm_up_links_every_installed_plugin_and_reports_the_ones_it_cannot_load() {
    let sb = Sandbox::new();
    {
        let runner = embedded_default_runner(&sb);
        sb.install(&runner, "disk-usage", None);
        sb.install(&runner, "file-freshness", None);
        sb.install(&runner, "inventory", None);
    }
    // inventory's record names a component that is neither stored nor precompiled.
    let runner = embedded_default_runner(&sb);
    let record = runner
        .store()
        .record_file("inventory")
        .expect("record path");
    let text = std::fs::read_to_string(&record).expect("record");
    let sha = runner
        .store()
        .get("inventory")
        .expect("read")
        .expect("installed")
        .sha256;
    std::fs::write(&record, text.replace(&sha, &"0".repeat(64))).expect("edit record");

    let warm = runner.warm_up().expect("the store lists");
    let mut ready = warm.ready.clone();
    ready.sort();
    assert_eq!(ready, ["disk-usage", "file-freshness"]);
    assert_eq!(warm.failed.len(), 1, "{:?}", warm.failed);
    assert_eq!(warm.failed[0].0, "inventory");
    let report = runner.run(&RunRequest::new("disk-usage", Invocation::Check));
    assert!(report.result.is_ok(), "{:?}", report.result);
    assert_eq!(report.cache, None, "warmed: nothing left to load");
    // The damaged plugin's runs report the same error the warm-up did.
    let report = runner.run(&RunRequest::new("inventory", Invocation::Discover));
    assert_eq!(
        report.result.as_ref().err().map(ToString::to_string),
        Some(warm.failed[0].1.to_string())
    );
}

#[test]
fn a_failed_or_interrupted_install_leaves_the_previous_version_intact() {
    let sb = Sandbox::new();
    let runner = embedded_default_runner(&sb);
    let first = sb.install(&runner, "disk-usage", None).plugin;
    // A crash mid-install leaves at most temporary files beside the records and blobs.
    let data = sb.data_dir();
    std::fs::write(data.join("plugins").join(".tmpCRASH"), b"{ half a record").expect("leftover");
    std::fs::write(data.join("store/sha256").join(".tmpCRASH"), b"half a blob").expect("leftover");
    // A broken replacement is rejected before anything is written.
    let broken = sb.dir.path().join("broken");
    std::fs::create_dir_all(&broken).expect("dir");
    let good =
        std::fs::read(warden_tests::built_plugin("disk-usage").join("plugin.wasm")).expect("wasm");
    std::fs::write(broken.join("plugin.wasm"), &good[..good.len() - 100]).expect("truncated");
    let manifest =
        std::fs::read_to_string(warden_tests::built_plugin("disk-usage").join("plugin.toml"))
            .expect("manifest")
            .replace("version = \"0.1.0\"", "version = \"0.2.0\"");
    std::fs::write(broken.join("plugin.toml"), manifest).expect("manifest");
    assert!(runner.install_dir(&broken).is_err());

    let listed = runner.store().list().expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].sha256, first.sha256);
    assert_eq!(listed[0].manifest.version.to_string(), "0.1.0");
    let report = runner.run(&RunRequest::new("disk-usage", Invocation::Check));
    assert!(report.result.is_ok(), "{:?}", report.result);
}
