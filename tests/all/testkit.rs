//! The plugin test harness (`warden_testkit`) driven from Rust, on real built plugins: a fake
//! filesystem a remediation deletes from, scripted programs, a fake service manager a
//! remediation restarts, recorded kv state, and the failures an author must see: a call outside
//! the grant, an unscripted program, an import the manifest does not request, and every
//! expectation that does not hold.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use warden_testkit::{Fixture, Harness, verdict};

fn cache() -> PathBuf {
    warden_tests::repo_root().join("target").join("test-cache")
}

fn harness(plugin: &str) -> Harness {
    Harness::new(&warden_tests::built_plugin(plugin), &cache()).expect("harness")
}

fn fixture(text: &str) -> Fixture {
    Fixture::parse(text, "inline").expect("valid fixture")
}

#[test]
fn a_remediation_deletes_exactly_its_plan_from_the_fake_filesystem_and_not_the_real_one() {
    // A real old file in the real /tmp, the directory the fixture's plugin cleans: it must stay.
    let real = std::env::temp_dir().join(format!("warden-testkit-{}.log", std::process::id()));
    std::fs::write(&real, "real").expect("real file");
    let month_ago = SystemTime::now() - Duration::from_secs(30 * 86400);
    std::fs::File::options()
        .write(true)
        .open(&real)
        .and_then(|f| f.set_modified(month_ago))
        .expect("age the real file");

    let h = harness("clean-temp");
    let f = fixture(
        r#"
run = "apply"
[config]
dir = "/tmp"
older_than_days = 7
[files]
"/tmp/old.log" = { text = "old", age-secs = 2592000 }
"/tmp/new.log" = "new"
[expect]
plan = [{ kind = "delete", target = "/tmp/old.log" }]
outcomes = ["applied"]
calls = ["fs.list-dir /tmp", "fs-write.remove-file /tmp/old.log"]
[expect.files]
"/tmp/old.log" = { absent = true }
"/tmp/new.log" = "new"
"#,
    );
    let run = h.run(&f).expect("case runs");
    let v = verdict(&f, &run);
    assert!(v.passed, "{:#?}", v);
    assert_eq!(run.reports.len(), 2, "plan, then apply");
    assert!(real.exists(), "the real /tmp was not touched");
    let _ = std::fs::remove_file(&real);
}

#[test]
fn scripted_programs_answer_exec_and_an_unscripted_one_fails_the_case() {
    let h = harness("hostile");
    let scripted = fixture(
        r#"
run = "check"
[config]
attack = "exec"
program = "/bin/echo"
args = ["hello"]
[[exec]]
program = "/bin/echo"
args = ["hello"]
stdout = "scripted, not echoed\n"
exit-code = 3
[expect]
status = "ok"
summary = "scripted, not echoed"
calls = ["exec.run /bin/echo hello"]
"#,
    );
    let run = h.run(&scripted).expect("case runs");
    let v = verdict(&scripted, &run);
    assert!(v.passed, "{v:#?}");

    let unscripted = fixture(
        r#"
run = "check"
[config]
attack = "exec"
program = "/bin/echo"
args = ["other"]
[[exec]]
program = "/bin/echo"
args = ["hello"]
"#,
    );
    let v = verdict(&unscripted, &h.run(&unscripted).expect("case runs"));
    assert!(!v.passed);
    assert!(
        v.failures
            .iter()
            .any(|f| f.contains("`/bin/echo other`") && f.contains("add an [[exec]] entry")),
        "{:#?}",
        v.failures
    );
}

#[test]
fn kv_state_is_seeded_before_and_recorded_after() {
    let h = harness("hostile");
    let f = fixture(
        r#"
run = "check"
[config]
attack = "kv-roundtrip"
key = "last-run"
value = "2026-11-29"
[kv]
seen = "yes"
[expect]
summary = "2026-11-29"
kv = { last-run = "2026-11-29", seen = "yes" }
calls = ["kv.set last-run", "kv.get last-run"]
"#,
    );
    let run = h.run(&f).expect("case runs");
    let v = verdict(&f, &run);
    assert!(v.passed, "{v:#?}");
    assert_eq!(run.kv.len(), 2);
    // A later case starts from its own state, not the previous one's.
    let empty = fixture(
        "run = \"check\"\n[config]\nattack = \"kv-roundtrip\"\nkey = \"k\"\nvalue = \"v\"\n",
    );
    assert_eq!(
        h.run(&empty)
            .expect("case runs")
            .kv
            .keys()
            .collect::<Vec<_>>(),
        vec!["k"]
    );
}

#[test]
fn the_fake_service_manager_is_checked_and_restarted() {
    let h = harness("service-health");
    let check = fixture(
        r#"
run = "check"
[config]
service = "nginx"
[services]
nginx = "failed"
[expect]
status = "critical"
calls = ["service.status nginx"]
"#,
    );
    let v = verdict(&check, &h.run(&check).expect("case runs"));
    assert!(v.passed, "{v:#?}");

    let apply = fixture(
        r#"
run = "apply"
[config]
service = "nginx"
[services]
nginx = "failed"
[expect]
plan = [{ kind = "service-restart", target = "nginx" }]
outcomes = ["applied"]
calls = ["service.status nginx", "service-control.restart nginx"]
services = { nginx = "running" }
"#,
    );
    let run = h.run(&apply).expect("case runs");
    let v = verdict(&apply, &run);
    assert!(v.passed, "{v:#?}");
}

#[test]
fn a_call_outside_the_grant_fails_the_case_by_name_unless_the_case_expects_the_denial() {
    let h = harness("hostile");
    let case = |expect: &str| {
        fixture(&format!(
            "run = \"check\"\n[config]\nattack = \"read\"\npath = \"/etc/passwd\"\n[expect]\n{expect}"
        ))
    };
    let careless = case("");
    let v = verdict(&careless, &h.run(&careless).expect("case runs"));
    assert!(!v.passed);
    assert!(
        v.failures
            .iter()
            .any(|f| f.contains("`fs.read /etc/passwd`")
                && f.contains("its grant does not allow")
                && f.contains("request it in plugin.toml")),
        "{:#?}",
        v.failures
    );
    assert!(
        v.calls
            .contains(&"fs.read /etc/passwd (denied)".to_string())
    );

    let intended = case("error = \"plugin\"\ndenied = [\"fs.read /etc/passwd\"]\n");
    let v = verdict(&intended, &h.run(&intended).expect("case runs"));
    assert!(v.passed, "{v:#?}");
}

#[test]
fn an_import_the_manifest_does_not_request_is_refused_naming_it() {
    let err = Harness::new(&warden_tests::built_plugin("sneaky"), &cache())
        .err()
        .expect("sneaky imports http without requesting it");
    // The message as the CLI prints it: the error, then its causes.
    let mut chain: Vec<String> = vec![err.to_string()];
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        chain.push(cause.to_string());
        source = cause.source();
    }
    let err = chain.join(": ");
    assert!(
        err.contains("warden:plugin/http") && err.contains("plugin.toml"),
        "{err}"
    );
}

#[test]
fn every_expectation_that_does_not_hold_is_reported() {
    let h = harness("service-health");
    let f = fixture(
        r#"
run = "check"
[config]
service = "nginx"
[services]
nginx = "running"
[expect]
status = "critical"
summary = "down"
calls = ["service.status sshd"]
denied = ["service.status dbus"]
services = { nginx = "stopped", cron = "running" }
kv = { k = "v" }
[expect.files]
"/tmp/x" = "text"
"#,
    );
    let v = verdict(&f, &h.run(&f).expect("case runs"));
    assert!(!v.passed);
    for needle in [
        "expected status critical, got ok",
        "expected the summary to contain \"down\"",
        "expected the call `service.status sshd`; it was not",
        "expected the call `service.status dbus` to be denied",
        "expected service `nginx` to be stopped after the run, it is running",
        "expected service `cron` to be running after the run, it is unknown to the fixture",
        "expected kv `k` = \"v\", it is not set",
        "expected /tmp/x to contain \"text\", it does not exist",
    ] {
        assert!(
            v.failures.iter().any(|f| f.contains(needle)),
            "missing {needle:?} in {:#?}",
            v.failures
        );
    }
    assert_eq!(v.failures.len(), 8, "{:#?}", v.failures);
}
