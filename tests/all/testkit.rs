//! The plugin test harness (`warden_testkit`) driven from Rust, on real built plugins: a fake
//! filesystem a remediation deletes from, scripted programs, a fake service manager a
//! remediation restarts, recorded kv state, faked `sysinfo` facts, and the failures an author
//! must see: a call outside the grant, an unscripted program, a sysinfo category the fixture does
//! not give, an import the manifest does not request, and every expectation that does not hold.

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

#[test]
fn a_faked_disk_at_95_percent_used_is_critical_and_the_real_disks_are_not_seen() {
    let h = harness("disk-usage");
    let f = fixture(
        r#"
run = "check"
[[sysinfo.disks]]
mount-point = "/srv/fixture-data"
device = "/dev/fake1"
filesystem = "ext4"
total-bytes = 1000000
available-bytes = 50000
[[sysinfo.disks]]
mount-point = "/"
total-bytes = 1000000
available-bytes = 900000
[expect]
status = "critical"
summary = "fullest is /srv/fixture-data at 95.0% used (48.8 KiB available); 2 filesystem(s) checked"
calls = ["sysinfo.disks disks"]
"#,
    );
    let run = h.run(&f).expect("case runs");
    let v = verdict(&f, &run);
    assert!(v.passed, "{v:#?}");
    let Some(warden_core::report::Output::Check(c)) = run.output() else {
        panic!("a check result: {v:#?}");
    };
    let used = c
        .metrics
        .iter()
        .find(|m| m.name == "used_percent:/srv/fixture-data")
        .expect("the faked disk's metric");
    assert_eq!(used.value, 95.0);
    assert_eq!(
        c.metrics.len(),
        4,
        "two metrics for each faked disk and none for the machine's own: {:?}",
        c.metrics
    );
}

#[test]
fn inventory_reports_exactly_the_faked_facts_of_every_category_it_reads() {
    let h = harness("inventory");
    let f = fixture(
        r#"
run = "discover"
[config]
packages = false
[sysinfo]
hostname = "fixture-host"
uptime-secs = 86400
[sysinfo.os]
family = "linux"
name = "Debian GNU/Linux"
version = "13"
kernel = "6.12.0"
arch = "x86_64"
[sysinfo.cpu]
model = "Fake CPU 9000"
logical-cores = 8
physical-cores = 4
[sysinfo.memory]
total-bytes = 17179869184
available-bytes = 4294967296
[[sysinfo.disks]]
mount-point = "/"
device = "/dev/vda1"
filesystem = "ext4"
total-bytes = 100
available-bytes = 5
[[sysinfo.network]]
name = "eth0"
mac-address = "52:54:00:12:34:56"
addresses = ["192.0.2.10/24"]
[expect]
facts = [
    { kind = "host", facts = { hostname = "fixture-host", uptime_secs = 86400 } },
    { kind = "os", facts = { family = "linux", name = "Debian GNU/Linux", version = "13", kernel = "6.12.0", arch = "x86_64" } },
    { kind = "cpu", facts = { model = "Fake CPU 9000", logical_cores = 8, physical_cores = 4 } },
    { kind = "memory", facts = { total_bytes = 17179869184, available_bytes = 4294967296, swap_total_bytes = 0 } },
    { kind = "disk", facts = { mount_point = "/", device = "/dev/vda1", total_bytes = 100, available_bytes = 5, removable = false } },
    { kind = "network-interface", facts = { name = "eth0", mac_address = "52:54:00:12:34:56", addresses = ["192.0.2.10/24"] } },
]
calls = ["sysinfo.hostname hostname", "sysinfo.uptime-secs uptime", "sysinfo.os os", "sysinfo.cpu cpu", "sysinfo.memory memory", "sysinfo.disks disks", "sysinfo.network-interfaces network"]
"#,
    );
    let run = h.run(&f).expect("case runs");
    let v = verdict(&f, &run);
    assert!(v.passed, "{v:#?}");
    let Some(warden_core::report::Output::Facts(groups)) = run.output() else {
        panic!("facts: {v:#?}");
    };
    let kinds: Vec<&str> = groups.iter().map(|g| g.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["host", "os", "cpu", "memory", "disk", "network-interface"],
        "one group per faked fact, no disk or interface of the real machine"
    );
}

#[test]
fn a_sysinfo_category_the_fixture_does_not_give_fails_the_case_naming_it() {
    let h = harness("inventory");
    let sparse =
        fixture("run = \"discover\"\n[config]\npackages = false\n[sysinfo]\nhostname = \"h\"\n");
    let run = h.run(&sparse).expect("case runs");
    let v = verdict(&sparse, &run);
    assert!(!v.passed);
    // The plugin copes (it skips an unsupported category), but the case says what it lacks.
    assert!(run.output().is_some(), "the run itself succeeded: {v:#?}");
    for (category, how) in [
        ("uptime", "`uptime-secs = ...` under [sysinfo]"),
        ("os", "a [sysinfo.os] table"),
        ("cpu", "a [sysinfo.cpu] table"),
        ("memory", "a [sysinfo.memory] table"),
        ("disks", "[[sysinfo.disks]] entries"),
        ("network", "[[sysinfo.network]] entries"),
    ] {
        let needle = format!(
            "the plugin read sysinfo `{category}`, which the fixture does not give: add {how}"
        );
        assert!(
            v.failures.iter().any(|f| f.contains(&needle)),
            "missing {needle:?} in {:#?}",
            v.failures
        );
    }
    assert_eq!(v.failures.len(), 6, "{:#?}", v.failures);

    // A fixture that says the host lacks them tests that path instead, and passes.
    let lacking = fixture(
        "run = \"discover\"\n[config]\npackages = false\n[sysinfo]\nhostname = \"h\"\n\
         unsupported = [\"uptime\", \"os\", \"cpu\", \"memory\", \"disks\", \"network\"]\n\
         [expect]\nfacts = [{ kind = \"host\", facts = { hostname = \"h\" } }]\n",
    );
    let run = h.run(&lacking).expect("case runs");
    let v = verdict(&lacking, &run);
    assert!(v.passed, "{v:#?}");
    assert!(run.missing_sysinfo.is_empty());
    let Some(warden_core::report::Output::Facts(groups)) = run.output() else {
        panic!("facts: {v:#?}");
    };
    assert_eq!(groups.len(), 1, "only the host group: {groups:?}");

    // A plugin that does not cope fails its run, and the case names the category too.
    let disk = harness("disk-usage");
    let empty = fixture("run = \"check\"\n");
    let v = verdict(&empty, &disk.run(&empty).expect("case runs"));
    assert!(
        v.failures
            .iter()
            .any(|f| f.contains("the fixture gives no `sysinfo.disks` (sysinfo `disks`)")),
        "the plugin saw why: {:#?}",
        v.failures
    );
    assert!(
        v.failures
            .iter()
            .any(|f| f.contains("the plugin read sysinfo `disks`")
                && f.contains("[[sysinfo.disks]]")),
        "{:#?}",
        v.failures
    );
}

#[test]
fn the_grant_is_checked_before_the_fixture_is_asked_for_sysinfo() {
    // hostile reads hostname, then os; this copy of it requests hostname only.
    let built = warden_tests::built_plugin("hostile");
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = std::fs::read_to_string(built.join("plugin.toml")).expect("manifest");
    let narrowed = manifest.replace(
        "sysinfo = [\"hostname\", \"os\"]",
        "sysinfo = [\"hostname\"]",
    );
    assert_ne!(manifest, narrowed, "the manifest requests hostname and os");
    std::fs::write(dir.path().join("plugin.toml"), narrowed).expect("write manifest");
    std::fs::copy(built.join("plugin.wasm"), dir.path().join("plugin.wasm")).expect("copy");
    let h = Harness::new(dir.path(), &cache()).expect("harness");

    // The fixture gives no os: had the fake been asked, the case would name it as missing.
    let f = fixture(
        "run = \"check\"\n[config]\nattack = \"sysinfo\"\n[sysinfo]\nhostname = \"h\"\n\
         [expect]\nerror = \"plugin\"\nerror-contains = \"[denied]\"\ncalls = [\"sysinfo.hostname hostname\"]\n\
         denied = [\"sysinfo.os os\"]\n",
    );
    let run = h.run(&f).expect("case runs");
    let v = verdict(&f, &run);
    assert!(v.passed, "{v:#?}");
    assert!(run.missing_sysinfo.is_empty(), "{:?}", run.missing_sysinfo);

    let granted = harness("hostile");
    let both = fixture(
        "run = \"check\"\n[config]\nattack = \"sysinfo\"\n[sysinfo]\nhostname = \"web-01\"\n\
         [sysinfo.os]\nname = \"Debian GNU/Linux\"\n[expect]\nsummary = \"web-01 / Debian GNU/Linux\"\n",
    );
    let v = verdict(&both, &granted.run(&both).expect("case runs"));
    assert!(v.passed, "{v:#?}");
}
