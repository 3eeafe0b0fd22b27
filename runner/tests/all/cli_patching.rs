//! The apt patching plugins through `warden run` against this machine's real apt, in simulate
//! mode only: the site policy of these tests grants `apt-get -s ... dist-upgrade` and nothing
//! else (no install, no shutdown), so whatever the plugins try, the machine is not changed. It
//! proves the parser on real output (the counts agree with apt's own summary line), the plan of
//! exact pins, and the window slot end to end: an apply that records the slot and then fails
//! half-way (its install is denied), re-run in the same slot, is refused with
//! `window-slot-used`, and the refusal is in the audit log.

use crate::cli::{Cli, plugin_dir, text};
use std::path::Path;
use std::process::Command;

const POLICY: &str = r#"[limits]
exec-timeout-ms = 120000
[allow]
fs-read = ["/run/reboot-required", "/run/reboot-required.pkgs"]
exec = [{ program = "/usr/bin/apt-get", args = ["-s", "-q", "-o", "Debug::NoLocking=1", "dist-upgrade"] }]
kv = true
"#;

const APT_GET: &str = "/usr/bin/apt-get";

/// apt's own count of upgrades, from the summary line of the same simulation.
fn apt_upgrade_count() -> u64 {
    let out = Command::new(APT_GET)
        .args(["-s", "-q", "-o", "Debug::NoLocking=1", "dist-upgrade"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C")
        .output()
        .expect("apt-get runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.ends_with(" not upgraded."))
        .unwrap_or_else(|| panic!("no summary line in {stdout}"));
    line.split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("summary {line:?}"))
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {} stderr {}",
            text(&out.stdout),
            text(&out.stderr)
        )
    })
}

#[test]
fn apt_plugins_on_this_machines_real_apt_in_simulate_mode_and_the_slot_is_used_once() {
    if !Path::new(APT_GET).exists() {
        eprintln!(
            "SKIPPED: {APT_GET} is absent on this machine; the fixture cases in tests/all/patching.rs still ran"
        );
        return;
    }
    let cli = Cli::new(POLICY);
    for plugin in ["apt-updates", "apt-patch"] {
        let dir = plugin_dir(plugin).display().to_string();
        let out = cli.warden(&["plugin", "install", &dir]);
        assert!(out.status.success(), "{plugin}: {}", text(&out.stderr));
    }
    let expected = apt_upgrade_count();

    // The example runbook validates against these plugins and this policy, and its dry run
    // scans and plans on the real apt (a dry run never applies).
    let runbook = crate::cli::repo()
        .join("examples/patch-apt.toml")
        .display()
        .to_string();
    let out = cli.warden(&["runbook", "validate", &runbook]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let out = cli.warden(&["runbook", "run", &runbook, "--dry-run", "--json"]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    // Discovery: the same count apt prints, every update a pin, a state that follows.
    let out = cli.warden(&["run", "apt-updates", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = json(&out);
    let groups = report["result"]["ok"]["value"]
        .as_array()
        .unwrap_or_else(|| panic!("facts: {report}"))
        .clone();
    let fact = |g: &serde_json::Value, key: &str| {
        g["facts"]
            .get(key)
            .cloned()
            .unwrap_or_else(|| panic!("no {key} in {g}"))
    };
    let status = groups
        .iter()
        .find(|g| g["kind"] == "patch-status")
        .unwrap_or_else(|| panic!("no patch-status in {report}"));
    assert_eq!(fact(status, "upgradable"), serde_json::json!(expected));
    let updates: Vec<_> = groups
        .iter()
        .filter(|g| g["kind"] == "apt-update")
        .collect();
    assert_eq!(updates.len() as u64, expected);
    let reboot = Path::new("/run/reboot-required").exists();
    let state = match (reboot, expected) {
        (true, _) => "reboot-pending",
        (false, 0) => "up-to-date",
        (false, _) => "updates-available",
    };
    assert_eq!(fact(status, "state"), serde_json::json!(state));
    for u in &updates {
        let pin = fact(u, "pin");
        let name = fact(u, "name");
        let candidate = fact(u, "candidate");
        assert_eq!(
            pin.as_str().unwrap_or_default(),
            format!(
                "{}={}",
                name.as_str().unwrap_or_default(),
                candidate.as_str().unwrap_or_default()
            )
        );
    }

    // The plan: every upgrade as an exact pin when everything is approved.
    let config = r#"{"security":"auto","normal":"auto","reboot":"never"}"#;
    let out = cli.warden(&["run", "apt-patch", "--plan", "--config", config, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan = json(&out);
    let actions = plan["result"]["ok"]["value"]
        .as_array()
        .unwrap_or_else(|| panic!("plan: {plan}"))
        .clone();
    assert_eq!(actions.len() as u64, expected.min(500), "{plan}");
    assert!(actions.iter().all(|a| a["kind"] == "modify"
        && a["target"].as_str().is_some_and(|t| t.contains('='))));
    if expected == 0 {
        eprintln!(
            "SKIPPED the window-slot part: this machine has no upgradable package, so apply has nothing to do"
        );
        return;
    }

    // Apply in a slot: the slot is recorded, then the install is denied by this policy (a run
    // that fails half-way). The same slot again is refused before anything runs.
    let slot = r#"{"security":"auto","normal":"auto","reboot":"never","window_slot":"test@2026-12-02T02:00:00Z"}"#;
    let first = cli.warden(&["run", "apt-patch", "--apply", "--config", slot, "--json"]);
    let applied = json(&first);
    let outcomes = applied["result"]["ok"]["value"]
        .as_array()
        .unwrap_or_else(|| panic!("outcomes: {applied}"))
        .clone();
    assert!(
        outcomes.iter().all(|o| o["status"] == "failed"
            && o["detail"].as_str().is_some_and(|d| d.contains("denied"))),
        "{applied}"
    );
    assert_eq!(expected, apt_upgrade_count(), "nothing was installed");

    let again = cli.warden(&["run", "apt-patch", "--apply", "--config", slot]);
    assert!(!again.status.success());
    let err = text(&again.stderr);
    assert!(
        err.contains("[window-slot-used]: window slot test@2026-12-02T02:00:00Z was already used"),
        "{err}"
    );
    let out = cli.warden(&["audit", "tail", "-n", "200", "--json"]);
    let records = json(&out);
    let refused = records
        .as_array()
        .expect("records")
        .iter()
        .rev()
        .find(|r| r["event"] == "plugin.run")
        .unwrap_or_else(|| panic!("no plugin.run in {records}"));
    let detail = refused.to_string();
    assert!(
        detail.contains("\"result\":\"plugin\"") && detail.contains("window-slot-used"),
        "{detail}"
    );
}
