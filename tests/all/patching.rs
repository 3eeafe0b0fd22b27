//! The apt patching plugins (`apt-updates`, `apt-patch`) on fake machines through the fixture
//! harness: scripted `apt-get -s` output (security and normal updates, packages kept back, new
//! dependencies, cut or malformed output, apt failing), the reboot-required files, and the kv
//! state that carries first-seen times and the window slot. Each case is judged by its facts,
//! its plan (exact `name=version` pins), its outcomes, and the order of its capability calls:
//! the slot is written before apt runs. The same plugins against this machine's real apt are in
//! `runner/tests/all/cli_patching.rs`.

use std::collections::BTreeMap;
use warden_testkit::{CaseRun, Fixture, Harness, Verdict, verdict};

/// Two upgrades (one security), one new dependency, one package kept back.
const APT: &str = "Reading package lists...
Building dependency tree...
Reading state information...
Calculating upgrade...
The following packages have been kept back:
  nginx
The following NEW packages will be installed:
  linux-image-6.1.0-18-amd64
The following packages will be upgraded:
  bash libssl3
2 upgraded, 1 newly installed, 0 to remove and 1 not upgraded.
Inst bash [5.2.15-2+b2] (5.2.15-2+b7 Debian:12.5/stable [amd64])
Inst libssl3 [3.0.11-1~deb12u1] (3.0.11-1~deb12u2 Debian:12.5/stable, Debian-Security:12/stable-security [amd64]) []
Inst linux-image-6.1.0-18-amd64 (6.1.76-1 Debian:12.5/stable [amd64])
Conf bash (5.2.15-2+b7 Debian:12.5/stable [amd64])
Conf libssl3 (3.0.11-1~deb12u2 Debian:12.5/stable, Debian-Security:12/stable-security [amd64])
";

const NOTHING: &str = "Reading package lists...\nCalculating upgrade...\n0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n";

const SIMULATE: &str = r#"args = ["-s", "-q", "-o", "Debug::NoLocking=1", "dist-upgrade"]"#;
const INSTALL: &str = r#""install", "--only-upgrade", "-y", "-q", "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold""#;
const SLOT: &str = "nightly@2026-12-02T02:00:00Z";

fn harness(plugin: &str) -> Harness {
    let cache = warden_tests::repo_root().join("target").join("test-cache");
    Harness::new(&warden_tests::built_plugin(plugin), &cache).expect("harness")
}

/// The scripted simulation answering with `stdout`.
fn simulation(stdout: &str) -> String {
    format!("[[exec]]\nprogram = \"/usr/bin/apt-get\"\n{SIMULATE}\nstdout = '''\n{stdout}'''\n")
}

fn run_case(plugin: &str, text: &str) -> (Verdict, CaseRun) {
    let f = Fixture::parse(text, "inline").unwrap_or_else(|e| panic!("fixture: {e}\n{text}"));
    let run = harness(plugin).run(&f).expect("case runs");
    (verdict(&f, &run), run)
}

fn case(plugin: &str, text: &str) -> CaseRun {
    let (v, run) = run_case(plugin, text);
    assert!(v.passed, "{plugin}: {v:#?}");
    run
}

#[test]
pub(crate) fn apt_updates_reports_security_and_normal_updates_and_what_is_kept_back() {
    case(
        "apt-updates",
        &format!(
            r#"
run = "discover"
{}
[expect]
facts = [
  {{ kind = "patch-status", facts = {{ state = "updates-available", upgradable = 2, security = 1, kept-back = 1, new-packages = 1, reboot-required = false }} }},
  {{ kind = "apt-update", facts = {{ name = "bash", pin = "bash=5.2.15-2+b7", severity = "normal", installed = "5.2.15-2+b2" }} }},
  {{ kind = "apt-update", facts = {{ name = "libssl3", pin = "libssl3=3.0.11-1~deb12u2", severity = "security", origins = ["Debian:12.5/stable", "Debian-Security:12/stable-security"] }} }},
  {{ kind = "apt-kept-back", facts = {{ name = "nginx" }} }},
]
calls = ["exec.run /usr/bin/apt-get -s -q -o Debug::NoLocking=1 dist-upgrade", "fs.stat /run/reboot-required"]
"#,
            simulation(APT)
        ),
    );
}

#[test]
fn reboot_pending_is_reported_as_its_own_state_with_the_packages_that_need_it() {
    case(
        "apt-updates",
        &format!(
            r#"
run = "discover"
{}
[files]
"/run/reboot-required" = "*** System restart required ***\n"
"/run/reboot-required.pkgs" = "linux-image-6.1.0-18-amd64\nlibc6\nlibc6\n"
[expect]
facts = [{{ kind = "patch-status", facts = {{ state = "reboot-pending", upgradable = 0, reboot-required = true, reboot-packages = ["linux-image-6.1.0-18-amd64", "libc6"] }} }}]
"#,
            simulation(NOTHING)
        ),
    );
    case(
        "apt-updates",
        &format!(
            "run = \"discover\"\n{}\n[expect]\nfacts = [{{ kind = \"patch-status\", facts = {{ state = \"up-to-date\", upgradable = 0, reboot-required = false }} }}]\n",
            simulation(NOTHING)
        ),
    );
}

#[test]
fn cut_malformed_or_failed_apt_output_is_a_typed_error_not_a_short_list() {
    let cut = "Inst bash [5.2.15-2+b2] (5.2.15-2+b7 Debian:12.5/stable [amd64])\n";
    let malformed = "1 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\nInst bash [5.2.15-2+b2] 5.2.15-2+b7\n";
    let short = "3 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\nInst bash [5.2.15-2+b2] (5.2.15-2+b7 Debian:12.5/stable [amd64])\n";
    for (stdout, says) in [
        (cut, "[apt-output]: apt output has no `N upgraded"),
        (
            malformed,
            "[apt-output]: apt output line 2 is not understood (no (candidate ...) part)",
        ),
        (
            short,
            "[apt-output]: apt's summary says 3 upgraded but 1 are listed",
        ),
    ] {
        for plugin in ["apt-updates", "apt-patch"] {
            let run = if plugin == "apt-updates" {
                "discover"
            } else {
                "plan"
            };
            case(
                plugin,
                &format!(
                    "run = \"{run}\"\n{}\n[expect]\nerror = \"plugin\"\nerror-contains = {says:?}\n",
                    simulation(stdout)
                ),
            );
        }
    }
    case(
        "apt-updates",
        &format!(
            r#"
run = "discover"
[[exec]]
program = "/usr/bin/apt-get"
{SIMULATE}
exit-code = 100
stderr = "W: Unable to read /etc/apt/sources.list.d/ - DirectoryExists\nE: The package lists or status file could not be parsed or opened.\n"
[expect]
error = "plugin"
error-contains = "[apt-failed]: apt-get -s dist-upgrade exited 100: E: The package lists or status file could not be parsed or opened."
"#
        ),
    );
}

#[test]
pub(crate) fn apt_patch_plans_security_automatically_and_normal_only_when_approved() {
    // Defaults: security auto, normal manual. Only libssl3 is planned; the kernel apt would newly
    // install and nginx (kept back) never are.
    case(
        "apt-patch",
        &format!(
            "run = \"plan\"\n[config]\nreboot = \"never\"\n{}\n[expect]\nplan = [{{ id = \"upgrade-1\", kind = \"modify\", target = \"libssl3=3.0.11-1~deb12u2\" }}]\n",
            simulation(APT)
        ),
    );
    // Approving bash by name pattern plans it too, in apt's order.
    case(
        "apt-patch",
        &format!(
            "run = \"plan\"\n[config]\nreboot = \"never\"\napprove = [\"ba*\"]\n{}\n[expect]\nplan = [{{ target = \"bash=5.2.15-2+b7\" }}, {{ target = \"libssl3=3.0.11-1~deb12u2\" }}]\n",
            simulation(APT)
        ),
    );
    // Ignoring security and auto-approving normal updates.
    case(
        "apt-patch",
        &format!(
            "run = \"plan\"\n[config]\nreboot = \"never\"\nsecurity = \"ignore\"\nnormal = \"auto\"\n{}\n[expect]\nplan = [{{ target = \"bash=5.2.15-2+b7\" }}]\n",
            simulation(APT)
        ),
    );
}

#[test]
fn the_deny_list_stops_an_update_whatever_approves_it() {
    case(
        "apt-patch",
        &format!(
            "run = \"plan\"\n[config]\nreboot = \"never\"\nnormal = \"auto\"\napprove = [\"libssl*\"]\ndeny = [\"libssl*\"]\n{}\n[expect]\nplan = [{{ target = \"bash=5.2.15-2+b7\" }}]\n",
            simulation(APT)
        ),
    );
    // A pattern that can never name a package is a configuration error, not a silent no-op.
    case(
        "apt-patch",
        &format!(
            "run = \"plan\"\n[config]\ndeny = [\"LibSSL\"]\n{}\n[expect]\nerror = \"plugin\"\nerror-contains = \"cannot match a Debian package name\"\n",
            simulation(APT)
        ),
    );
}

#[test]
fn deferral_holds_an_update_until_it_was_first_seen_long_enough_ago() {
    // bash=5.2.15-2+b7 was first seen in 2001 (long ago); libssl3's pin is new, so it is
    // recorded now and held for the 7 days. The record of a pin no longer offered is dropped.
    let run = case(
        "apt-patch",
        &format!(
            r#"
run = "plan"
[config]
reboot = "never"
normal = "auto"
defer_days = 7
security_defer_days = 7
{}
[kv]
first-seen = '{{"bash=5.2.15-2+b7": 1000000000, "bash=5.2.15-2+b2": 999}}'
[expect]
plan = [{{ target = "bash=5.2.15-2+b7" }}]
calls = ["kv.get first-seen", "kv.set first-seen"]
"#,
            simulation(APT)
        ),
    );
    let seen: BTreeMap<String, u64> =
        serde_json::from_str(&run.kv["first-seen"]).expect("first-seen is JSON");
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        ["bash=5.2.15-2+b7", "libssl3=3.0.11-1~deb12u2"]
    );
    assert_eq!(
        seen["bash=5.2.15-2+b7"], 1_000_000_000,
        "first-seen is kept"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    assert!(seen["libssl3=3.0.11-1~deb12u2"].abs_diff(now) < 600);
}

/// The apply case: `plan` then `apply` with the window slot, apt's install of exactly the
/// planned pins, and the reboot files as given.
fn apply_case(config: &str, kv: &str, files: &str, install_exit: i32, expect: &str) -> String {
    format!(
        r#"
run = "apply"
[config]
window_slot = "{SLOT}"
{config}
{}
[[exec]]
program = "/usr/bin/apt-get"
args = [{INSTALL}, "libssl3=3.0.11-1~deb12u2"]
exit-code = {install_exit}
stderr = "E: Sub-process /usr/bin/dpkg returned an error code (1)\n"
[[exec]]
program = "/usr/sbin/shutdown"
args = ["-r", "+1"]
[kv]
{kv}
[files]
{files}
[expect]
{expect}
"#,
        simulation(APT)
    )
}

#[test]
pub(crate) fn apply_records_the_slot_before_apt_runs_then_installs_exactly_the_plan_and_reboots_when_required()
 {
    let run = case(
        "apt-patch",
        &apply_case(
            "",
            "",
            "\"/run/reboot-required\" = \"*** System restart required ***\\n\"\n\"/run/reboot-required.pkgs\" = \"libssl3\\n\"",
            0,
            r#"plan = [{ id = "upgrade-1", target = "libssl3=3.0.11-1~deb12u2" }, { id = "reboot", kind = "exec", target = "/usr/sbin/shutdown" }]
outcomes = ["applied", "applied"]
calls = [
  "kv.get window-slot",
  "kv.set window-slot",
  "exec.run /usr/bin/apt-get -s -q -o Debug::NoLocking=1 dist-upgrade",
  "exec.run /usr/bin/apt-get install --only-upgrade -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold libssl3=3.0.11-1~deb12u2",
  "fs.stat /run/reboot-required",
  "exec.run /usr/sbin/shutdown -r +1",
]"#,
        ),
    );
    let slot: serde_json::Value =
        serde_json::from_str(&run.kv["window-slot"]).expect("slot record");
    assert_eq!(slot["slot"], SLOT);
}

#[test]
pub(crate) fn a_crash_mid_window_is_a_missed_window_not_a_second_patch() {
    // The first run records the slot and then apt fails half-way (dpkg error): the outcome is
    // failed and no reboot follows.
    let first = case(
        "apt-patch",
        &apply_case(
            "",
            "",
            "\"/run/reboot-required\" = \"*** System restart required ***\\n\"",
            100,
            r#"outcomes = ["failed", "skipped"]"#,
        ),
    );
    let recorded = first.kv["window-slot"].clone();
    // Run again in the same slot, with the state the first run left: refused with its own code,
    // before apt runs (an unscripted install would fail the case; here none is scripted).
    let again = format!(
        r#"
run = "apply"
[config]
window_slot = "{SLOT}"
{}
[kv]
window-slot = {recorded:?}
[expect]
error = "plugin"
error-contains = "[window-slot-used]: window slot {SLOT} was already used"
"#,
        simulation(APT)
    );
    let (v, run) = run_case("apt-patch", &again);
    assert!(v.passed, "{v:#?}");
    assert!(
        !v.calls.iter().any(|c| c.contains(" install ")),
        "{:?}",
        v.calls
    );
    assert_eq!(
        run.kv["window-slot"], recorded,
        "the slot record is unchanged"
    );
    // The next window's slot runs, with the same state.
    let next = format!(
        r#"
run = "apply"
[config]
window_slot = "nightly@2026-12-03T02:00:00Z"
reboot = "never"
{}
[[exec]]
program = "/usr/bin/apt-get"
args = [{INSTALL}, "libssl3=3.0.11-1~deb12u2"]
[kv]
window-slot = {recorded:?}
[expect]
outcomes = ["applied"]
"#,
        simulation(APT)
    );
    case("apt-patch", &next);
}

#[test]
fn apply_without_a_window_slot_changes_nothing() {
    case(
        "apt-patch",
        &format!(
            "run = \"apply\"\n[config]\nreboot = \"never\"\n{}\n[expect]\nerror = \"plugin\"\nerror-contains = \"[no-window-slot]\"\n",
            simulation(APT)
        ),
    );
}

#[test]
fn the_reboot_policy_never_leaves_the_machine_reboot_pending_and_always_reboots() {
    let required = "\"/run/reboot-required\" = \"*** System restart required ***\\n\"\n\"/run/reboot-required.pkgs\" = \"libssl3\\n\"";
    // never: no reboot action at all; the verify re-scan reports reboot-pending (the
    // apt-updates case above).
    case(
        "apt-patch",
        &apply_case(
            "reboot = \"never\"",
            "",
            required,
            0,
            "plan = [{ target = \"libssl3=3.0.11-1~deb12u2\" }]\noutcomes = [\"applied\"]",
        ),
    );
    // when-required without the file: the reboot action is skipped ("no reboot required").
    let run = case(
        "apt-patch",
        &apply_case(
            "reboot = \"when-required\"",
            "",
            "",
            0,
            "outcomes = [\"applied\", \"skipped\"]",
        ),
    );
    assert!(!run_calls(&run).iter().any(|c| c.contains("shutdown")));
    // always: reboots although nothing requires it.
    case(
        "apt-patch",
        &apply_case(
            "reboot = \"always\"",
            "",
            "",
            0,
            "outcomes = [\"applied\", \"applied\"]\ncalls = [\"exec.run /usr/sbin/shutdown -r +1\"]",
        ),
    );
}

fn run_calls(run: &CaseRun) -> Vec<String> {
    run.calls().map(warden_testkit::call_string).collect()
}

#[test]
fn the_example_patch_window_loads_as_an_agent_config_and_passes_the_slot_to_the_runbook() {
    let path = warden_tests::repo_root().join("examples/patch-window.toml");
    // The example is the sections to add to an agent config; this is the rest of one.
    let api = "[api]\nlisten = \"127.0.0.1:0\"\n[[api.token]]\nname = \"noc\"\nrole = \"viewer\"\n\
               sha256 = \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\n";
    let text = format!("{api}{}", std::fs::read_to_string(&path).expect("example"));
    let config = warden_agent::daemon::config::AgentConfig::parse(
        &text,
        "examples/patch-window.toml",
        path.parent().expect("examples dir"),
    )
    .expect("the example is a valid agent config");
    let schedule = &config.schedules[0];
    assert!(schedule.maintenance);
    assert_eq!(schedule.window_slot_param.as_deref(), Some("window_slot"));
    // The runbook declares the parameter the schedule fills in.
    let runbook = std::fs::read_to_string(path.with_file_name(&schedule.runbook)).expect("runbook");
    assert!(runbook.contains("[params.window_slot]"));
}
