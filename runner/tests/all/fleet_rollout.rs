//! Staged rollouts end to end (issue 16), every part real: nats-server in operator mode, a
//! `warden controller serve` process, five enrolled `warden serve` agents trusting one
//! publisher key (the harness of [`crate::fleet_e2e`]). Rollouts are started and read through
//! `warden fleet rollout ...` (the controller's gRPC API); the outcome is checked from the
//! controller's deploy status, the agents' own heartbeat inventory and the controller's audit.
//!
//! The "bad version" here is one the gate honestly measures: a bundle signed by a key the
//! agents do not trust, which each agent refuses and reports refused (a failed deploy
//! report). Waits poll the API with a bounded deadline; nothing sleeps to synchronise.

use std::path::PathBuf;

use serde_json::Value;

use crate::fleet_dist::plugin_dir;
use crate::fleet_e2e::{Fleet, FleetAgent, ok, wait_for, warden};

const PLUGIN: &str = "disk-usage";
const AGENTS: usize = 5;

/// `disk-usage` at `version`, packed and signed with the key `<scratch>/<key>.key`.
pub(crate) fn pack(fleet: &Fleet, version: &str, key: &str) -> PathBuf {
    pack_dir(fleet, &plugin_dir(fleet.scratch(), version), version, key)
}

/// The plugin directory `dir` (of `disk-usage` at `version`) packed and signed as [`pack`].
fn pack_dir(fleet: &Fleet, dir: &std::path::Path, version: &str, key: &str) -> PathBuf {
    let scratch = fleet.scratch();
    let out = scratch.join(format!("{PLUGIN}-{version}.wbundle"));
    ok(
        warden()
            .arg("--data-dir")
            .arg(scratch.join("keys-data"))
            .args(["plugin", "pack"])
            .arg(dir)
            .arg("--key")
            .arg(scratch.join(format!("{key}.key")))
            .arg("--out")
            .arg(&out)
            .output()
            .expect("warden runs"),
        "plugin pack",
    );
    out
}

/// A signing key the agents do not trust, `<scratch>/<name>.key`.
pub(crate) fn generate_key(fleet: &Fleet, name: &str) {
    ok(
        warden()
            .arg("--data-dir")
            .arg(fleet.scratch().join("keys-data"))
            .args(["key", "generate", "--out"])
            .arg(fleet.scratch().join(name))
            .output()
            .expect("warden runs"),
        "key generate",
    );
}

/// `n` acme agents named `<prefix>-<i>`, online.
pub(crate) fn online(fleet: &Fleet, prefix: &str, n: usize) -> Vec<FleetAgent> {
    let agents: Vec<FleetAgent> = (0..n)
        .map(|i| fleet.agent("acme", &format!("{prefix}-{i}"), "", "1"))
        .collect();
    for a in &agents {
        fleet.wait_presence(a, true);
    }
    agents
}

fn rollout(fleet: &Fleet, args: &[&str]) -> (Option<i32>, Value) {
    let mut all = vec!["rollout"];
    all.extend_from_slice(args);
    let (code, json) = fleet.fleet_exit(&all);
    (code, json["rollout"].clone())
}

fn wait_rollout(fleet: &Fleet, id: &str, state: &str) -> Value {
    wait_for(&format!("rollout {id} {state}"), || {
        let (_, v) = rollout(fleet, &["status", id]);
        (v["state"] == state).then_some(v)
    })
}

fn waves(v: &Value) -> Vec<(String, u64, u64, u64, String)> {
    v["waves"]
        .as_array()
        .expect("waves")
        .iter()
        .map(|w| {
            (
                w["name"].as_str().unwrap_or_default().to_string(),
                w["released"].as_u64().unwrap_or(0),
                w["healthy"].as_u64().unwrap_or(0),
                w["failed"].as_u64().unwrap_or(0),
                w["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Each agent's desired version and deploy state, from `warden fleet status`.
fn desired(fleet: &Fleet) -> Vec<(String, String, String)> {
    let (_, v) = fleet.fleet_exit(&["status", PLUGIN]);
    let mut rows: Vec<(String, String, String)> = v["status"]["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .map(|a| {
            (
                a["agent"].as_str().unwrap_or_default().to_string(),
                a["version"].as_str().unwrap_or_default().to_string(),
                a["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    rows.sort();
    rows
}

/// The version of `disk-usage` the agent's last heartbeat listed.
fn inventory_version(fleet: &Fleet, agent: &FleetAgent) -> Option<String> {
    let view = fleet.agent_view(&agent.id)?;
    view["plugins"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == PLUGIN)
        .and_then(|p| p["version"].as_str().map(str::to_string))
}

#[test]
fn a_bundle_the_canary_refuses_fails_its_gate_halts_at_the_canary_and_rollback_returns_it() {
    let fleet = Fleet::start();
    generate_key(&fleet, "rogue");
    let agents = online(&fleet, "ro", AGENTS);
    let good = pack(&fleet, "0.2.0", "publisher");
    let bad = pack(&fleet, "0.3.0", "rogue");
    let plan = [
        "--target",
        "tenant=acme",
        "--canary",
        "1",
        "--waves",
        "50%,100%",
    ];

    // The good version, in full: canary, then up to 50 %, then all. Paused at once, it
    // releases nothing past the canary until resumed (a one-second soak keeps the pause from
    // racing a canary that installs before the pause command even starts).
    let mut args = vec!["start", good.to_str().expect("path")];
    args.extend_from_slice(&plan);
    args.extend_from_slice(&["--soak", "1"]);
    let (code, first) = rollout(&fleet, &args);
    assert_eq!(code, Some(0), "{first}");
    let id = first["id"].as_str().expect("an id").to_string();
    let (_, paused) = rollout(&fleet, &["pause", &id]);
    assert_eq!(paused["state"], "paused");
    let canary_done = wait_for("the paused rollout's canary healthy", || {
        let (_, v) = rollout(&fleet, &["status", &id]);
        (v["waves"][0]["healthy"] == 1).then_some(v)
    });
    assert_eq!(canary_done["state"], "paused");
    assert_eq!(
        canary_done["waves"][1]["released"], 0,
        "paused: wave 1 waits"
    );
    let (_, resumed) = rollout(&fleet, &["resume", &id]);
    assert_ne!(resumed["state"], "paused");
    let done = wait_rollout(&fleet, &id, "completed");
    assert_eq!(
        waves(&done),
        [
            ("canary".into(), 1, 1, 0, "passed".into()),
            ("wave 1".into(), 2, 2, 0, "passed".into()),
            ("wave 2".into(), 2, 2, 0, "passed".into()),
        ]
    );
    // In the audit: the canary's release, the pause and resume, then the two waves'.
    assert_eq!(
        rollout_audit(&fleet, &id),
        [
            "fleet.rollout.start",
            "fleet.rollout.release",
            "fleet.rollout.running",
            "fleet.rollout.pause",
            "fleet.rollout.resume",
            // Each wave that starts is a transition (`running`, its wave), then its release.
            "fleet.rollout.running",
            "fleet.rollout.release",
            "fleet.rollout.running",
            "fleet.rollout.release",
            "fleet.rollout.completed",
        ]
    );
    let table = fleet.fleet_human(&["rollout", "status", &id]);
    eprintln!("{table}");
    let header = table
        .lines()
        .find(|l| l.starts_with("WAVE"))
        .expect("the wave table");
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        [
            "WAVE", "AGENTS", "RELEASED", "HEALTHY", "FAILED", "IN", "FLIGHT", "STATE"
        ]
    );
    assert!(table.contains("state: completed"), "{table}");
    for a in &agents {
        wait_for(&format!("{} lists {PLUGIN} 0.2.0", a.id), || {
            (inventory_version(&fleet, a)? == "0.2.0").then_some(())
        });
    }

    // The bad version: the canary refuses it (untrusted signer), the gate (0 % failures)
    // fails, the rollout halts by itself at the canary.
    let mut args = vec!["start", bad.to_str().expect("path")];
    args.extend_from_slice(&plan);
    args.extend_from_slice(&["--max-failures", "0%"]);
    let (_, second) = rollout(&fleet, &args);
    let bad_id = second["id"].as_str().expect("an id").to_string();
    let halted = wait_rollout(&fleet, &bad_id, "halted");
    assert_eq!(halted["wave"], "canary");
    assert!(
        halted["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("canary: 1 of 1 agents failed")),
        "the reason names the wave as the table does: {halted}"
    );
    assert_eq!(
        waves(&halted),
        [
            ("canary".into(), 1, 0, 1, "halted".into()),
            ("wave 1".into(), 0, 0, 0, "not released".into()),
            ("wave 2".into(), 0, 0, 0, "not released".into()),
        ]
    );
    let canary = halted["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .find(|a| a["wave"] == "canary")
        .expect("the canary")
        .clone();
    assert!(
        canary["detail"]
            .as_str()
            .is_some_and(|d| d.contains("untrusted")),
        "{canary}"
    );
    assert_eq!(canary["previous_version"], "0.2.0");
    let canary_id = canary["agent"].as_str().expect("id").to_string();
    // `status` of a halted rollout exits 1.
    assert_eq!(rollout(&fleet, &["status", &bad_id]).0, Some(1));
    // Halted stays halted: resume is refused.
    assert_ne!(rollout_code(&fleet, &["resume", &bad_id]), Some(0));

    // Only the canary was ever given 0.3.0; every other agent is still desired and installed
    // at 0.2.0, and every agent's own inventory still says 0.2.0.
    let rows = desired(&fleet);
    assert_eq!(rows.len(), AGENTS);
    for (agent, version, state) in &rows {
        if *agent == canary_id {
            assert_eq!((version.as_str(), state.as_str()), ("0.3.0", "refused"));
        } else {
            assert_eq!((version.as_str(), state.as_str()), ("0.2.0", "installed"));
        }
    }
    for a in &agents {
        assert_eq!(inventory_version(&fleet, a).as_deref(), Some("0.2.0"));
    }
    assert_eq!(
        fleet
            .controller_audits("fleet.rollout.halted", &bad_id)
            .len(),
        1
    );
    assert_eq!(
        fleet
            .controller_audits("fleet.rollout.release", &bad_id)
            .len(),
        1
    );

    // Rollback: the canary's desired entry goes back to 0.2.0, which it still runs.
    let (code, back) = rollout(&fleet, &["rollback", &bad_id]);
    assert_eq!(code, Some(0), "{back}");
    assert_eq!(back["state"], "rolled-back");
    wait_for("every agent desired and installed at 0.2.0", || {
        desired(&fleet)
            .iter()
            .all(|(_, v, s)| v == "0.2.0" && s == "installed")
            .then_some(())
    });
    assert_eq!(
        fleet
            .controller_audits("fleet.rollout.rollback", &bad_id)
            .len(),
        1
    );
    // A rolled-back rollout is not rolled back twice.
    assert_ne!(rollout_code(&fleet, &["rollback", &bad_id]), Some(0));
}

/// The exit code of a rollout command that may fail (printing no JSON).
fn rollout_code(fleet: &Fleet, args: &[&str]) -> Option<i32> {
    let mut all = vec!["rollout"];
    all.extend_from_slice(args);
    fleet.fleet_try_exit(&all)
}

#[test]
fn a_rollback_after_the_canary_installed_the_newer_version_is_refused_unless_a_newer_signed_bundle_is_named()
 {
    let fleet = Fleet::start();
    let agents = online(&fleet, "rb", 3);
    // A long soak holds the canary wave: the rollback comes before wave 1 could start.
    let plan = [
        "--target",
        "tenant=acme",
        "--canary",
        "1",
        "--waves",
        "100%",
        "--soak",
        "600",
    ];
    let start = |bundle: &PathBuf| {
        let mut args = vec!["start", bundle.to_str().expect("path")];
        args.extend_from_slice(&plan);
        let (code, v) = rollout(&fleet, &args);
        assert_eq!(code, Some(0), "{v}");
        v["id"].as_str().expect("an id").to_string()
    };
    let old = pack(&fleet, "0.2.0", "publisher");
    let (code, published) = fleet.fleet_exit(&[
        "publish",
        old.to_str().expect("path"),
        "--target",
        "tenant=acme",
    ]);
    assert_eq!(code, Some(0), "{published}");
    wait_for("every agent on 0.2.0", || {
        let rows = desired(&fleet);
        (rows.len() == 3
            && rows
                .iter()
                .all(|(_, v, s)| v == "0.2.0" && s == "installed"))
        .then_some(())
    });

    // 0.3.0 is trusted: the canary installs it; soaking there, it goes no further.
    let second = start(&pack(&fleet, "0.3.0", "publisher"));
    let v = wait_for("the canary on 0.3.0", || {
        let (_, v) = rollout(&fleet, &["status", &second]);
        (v["waves"][0]["healthy"] == 1).then_some(v)
    });
    let canary = v["agents"][0]["agent"].as_str().expect("id").to_string();
    assert_eq!(v["agents"][0]["wave"], "canary");

    // A plain rollback to 0.2.0 would be refused by the canary's anti-rollback: the
    // controller says so instead of pretending, and changes nothing.
    let refused = fleet
        .try_fleet(&["rollout", "rollback", &second])
        .expect_err("a downgrade below what the canary installed");
    assert!(
        refused.contains("anti-rollback") && refused.contains("--to"),
        "{refused}"
    );
    assert_eq!(rollout(&fleet, &["status", &second]).1["state"], "running");

    // The old code signed as 0.3.1: the canary takes it; the others never left 0.2.0.
    let fixed = pack(&fleet, "0.3.1", "publisher");
    let (code, back) = rollout(
        &fleet,
        &["rollback", &second, "--to", fixed.to_str().expect("path")],
    );
    assert_eq!(code, Some(0), "{back}");
    assert_eq!(back["state"], "rolled-back");
    wait_for("the canary desired and installed at 0.3.1", || {
        desired(&fleet)
            .iter()
            .all(|(a, v, s)| {
                let want = if *a == canary { "0.3.1" } else { "0.2.0" };
                v == want && s == "installed"
            })
            .then_some(())
    });
    let canary_agent = agents
        .iter()
        .find(|a| a.id == canary)
        .expect("the canary is ours");
    wait_for("the canary's inventory lists 0.3.1", || {
        (inventory_version(&fleet, canary_agent)? == "0.3.1").then_some(())
    });
}

/// The controller's audit events about rollout `id`, in order.
fn rollout_audit(fleet: &Fleet, id: &str) -> Vec<String> {
    std::fs::read_to_string(fleet.data_dir().join("audit/audit.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(id))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["event"].as_str().map(str::to_string))
        .collect()
}

/// `disk-usage` at `version`, trusted-signed, with a memory limit its component cannot be
/// instantiated in: a version that installs fine and whose every run fails.
fn pack_broken(fleet: &Fleet, version: &str) -> PathBuf {
    let dir = plugin_dir(fleet.scratch(), version);
    let manifest = std::fs::read_to_string(dir.join("plugin.toml")).expect("manifest");
    assert!(manifest.contains("memory-mb = 32"), "{manifest}");
    std::fs::write(
        dir.join("plugin.toml"),
        manifest.replace("memory-mb = 32", "memory-mb = 1"),
    )
    .expect("manifest");
    pack_dir(fleet, &dir, version, "publisher")
}

#[test]
fn a_trusted_version_whose_own_check_cannot_run_fails_its_gate_at_the_canary() {
    let fleet = Fleet::start();
    let agents = online(&fleet, "oc", 3);
    let old = pack(&fleet, "0.2.0", "publisher");
    let (code, published) = fleet.fleet_exit(&[
        "publish",
        old.to_str().expect("path"),
        "--target",
        "tenant=acme",
    ]);
    assert_eq!(code, Some(0), "{published}");
    wait_for("every agent on 0.2.0", || {
        let rows = desired(&fleet);
        (rows.len() == 3
            && rows
                .iter()
                .all(|(_, v, s)| v == "0.2.0" && s == "installed"))
        .then_some(())
    });
    // 0.2.0 ran its check after installing, and it ran fine.
    let (_, status) = fleet.fleet_exit(&["status", PLUGIN]);
    for a in status["status"]["agents"].as_array().expect("agents") {
        let check = a["check_status"].as_str().unwrap_or_default();
        assert!(
            ["ok", "warning", "critical"].contains(&check),
            "a working check's verdict: {a}"
        );
    }

    // 0.3.0 is signed by the trusted publisher, so every agent would install it; its check
    // fails. The canary installs it, its first run fails, the gate halts the rollout.
    let bad = pack_broken(&fleet, "0.3.0");
    let (code, started) = rollout(
        &fleet,
        &[
            "start",
            bad.to_str().expect("path"),
            "--target",
            "tenant=acme",
            "--canary",
            "1",
            "--waves",
            "100%",
            "--max-failures",
            "0%",
        ],
    );
    assert_eq!(code, Some(0), "{started}");
    let id = started["id"].as_str().expect("an id").to_string();
    // The canary reports 0.3.0 installed, with its check's failure.
    let canary_row = wait_for("the canary's report on 0.3.0", || {
        let (_, v) = fleet.fleet_exit(&["status", PLUGIN]);
        v["status"]["agents"]
            .as_array()?
            .iter()
            .find(|a| a["version"] == "0.3.0" && a["state"] != "pending")
            .cloned()
    });
    assert_eq!(
        (&canary_row["state"], &canary_row["check_status"]),
        (&Value::from("installed"), &Value::from("error")),
        "{canary_row}"
    );
    let halted = wait_rollout(&fleet, &id, "halted");
    assert_eq!(halted["wave"], "canary");
    let canary = halted["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .find(|a| a["wave"] == "canary")
        .expect("the canary")
        .clone();
    assert!(
        canary["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("own check failed: ")),
        "{canary}"
    );
    let canary_id = canary["agent"].as_str().expect("id").to_string();
    let rows = desired(&fleet);
    for (agent, version, state) in &rows {
        let want = if *agent == canary_id {
            "0.3.0"
        } else {
            "0.2.0"
        };
        assert_eq!((version.as_str(), state.as_str()), (want, "installed"));
    }
    // The canary's audit holds the run, as any run, marked as the check after install.
    let canary_agent = agents
        .iter()
        .find(|a| a.id == canary_id)
        .expect("the canary is ours");
    let audit = canary_agent.agent.audit_log();
    assert!(
        audit
            .lines()
            .any(|l| l.contains("check after install") && l.contains("0.3.0")),
        "{audit}"
    );
}
