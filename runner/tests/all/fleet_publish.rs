//! `warden fleet publish` and `warden fleet status <plugin>` as the NOC reads them, against a
//! real nats-server, a `warden controller serve` process and two real `warden serve` agents
//! (the harness of [`crate::fleet_e2e`]): the one line a publish prints, the status table and
//! its `--json` shape, and the exit code a script waits on (0 only when every targeted agent
//! installed the desired version).

use serde_json::Value;

use warden_fleet_wire::POLICY_ITEM;

use crate::fleet_e2e::wait_for;
use crate::fleet_rollout::{generate_key, online, pack};

const PLUGIN: &str = "disk-usage";

#[test]
fn publish_and_status_print_a_line_an_aligned_table_and_one_json_shape_and_exit_0_only_when_all_installed()
 {
    let fleet = crate::fleet_e2e::Fleet::start();
    let agents = online(&fleet, "pub", 2);
    let good = pack(&fleet, "0.2.0", "publisher");
    let line = fleet.fleet_human(&[
        "publish",
        good.to_str().expect("path"),
        "--target",
        "tenant=acme",
    ]);
    assert!(
        line.starts_with(&format!("{PLUGIN} 0.2.0 (sha256 "))
            && line.trim_end().ends_with("desired on 2 agents"),
        "{line}"
    );

    let status = wait_for("both agents on 0.2.0", || {
        let (code, v) = fleet.fleet_exit(&["status", PLUGIN]);
        (code == Some(0)).then_some(v)
    });
    let status = &status["status"];
    assert_eq!(status["plugin"], PLUGIN);
    assert_eq!(
        (&status["installed"], &status["targeted"]),
        (&2.into(), &2.into())
    );
    for a in &agents {
        let row = row(status, &a.id);
        assert_eq!(
            (row["tenant"].as_str(), row["version"].as_str()),
            (Some("acme"), Some("0.2.0"))
        );
        assert_eq!(row["state"], "installed", "{row}");
    }
    let (code, table) = fleet.fleet_human_exit(&["status", PLUGIN]);
    assert_eq!(code, Some(0), "{table}");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0],
        format!("{PLUGIN}: 2 of 2 agents on the desired version")
    );
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        [
            "AGENT", "TENANT", "VERSION", "STATE", "REPORTED", "CHECK", "ERROR"
        ]
    );
    let column = lines[1].find("VERSION").expect("a VERSION column");
    for a in &agents {
        let row = lines
            .iter()
            .find(|l| l.starts_with(&a.id[..12]))
            .unwrap_or_else(|| panic!("a row for {}: {table}", a.id));
        assert_eq!(
            row.get(column..column + 5),
            Some("0.2.0"),
            "aligned: {table}"
        );
        assert!(row.contains("installed"), "{row}");
    }

    // A version signed by a key the agents do not trust: both refuse it, and status says who
    // and why, and exits 1.
    generate_key(&fleet, "rogue");
    let bad = pack(&fleet, "0.3.0", "rogue");
    fleet.fleet_human(&[
        "publish",
        bad.to_str().expect("path"),
        "--target",
        "tenant=acme",
    ]);
    let status = wait_for("both agents refused 0.3.0", || {
        let (code, v) = fleet.fleet_exit(&["status", PLUGIN]);
        let refused = v["status"]["agents"]
            .as_array()?
            .iter()
            .filter(|a| a["version"] == "0.3.0" && a["state"] == "refused")
            .count();
        (refused == 2).then_some((code, v))
    });
    assert_eq!(
        status.0,
        Some(1),
        "not every agent installed it: {}",
        status.1
    );
    assert_eq!(status.1["status"]["installed"], 0);
    assert_eq!(
        row(&status.1["status"], &agents[0].id)["reason"],
        "untrusted"
    );
    let (code, table) = fleet.fleet_human_exit(&["status", PLUGIN]);
    assert_eq!(code, Some(1), "{table}");
    assert!(
        table.starts_with(&format!("{PLUGIN}: 0 of 2 agents on the desired version")),
        "{table}"
    );
    assert_eq!(table.matches("refused (untrusted)").count(), 2, "{table}");

    // A runbook the agents do not hold reaches both as desired state, then runs by name.
    let greet = pack_runbook(&fleet, "fleet-greet");
    let line = fleet.fleet_human(&["publish", &greet, "--target", "tenant=acme"]);
    assert!(
        line.starts_with("runbook fleet-greet ")
            && line.trim_end().ends_with("desired on 2 agents"),
        "{line}"
    );
    wait_for("both agents hold fleet-greet", || {
        let (code, _) = fleet.fleet_exit(&["status", "runbook:fleet-greet"]);
        (code == Some(0)).then_some(())
    });
    let run = fleet.fleet(&["run", "fleet-greet", "--target", "tenant=acme"]);
    let states: Vec<&str> = run["run"]["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .filter_map(|a| a["state"].as_str())
        .collect();
    assert_eq!(states, ["succeeded", "succeeded"], "{run}");
    // Its removal is desired state too: both agents drop it, and it no longer runs.
    let line = fleet.fleet_human(&["remove", "runbook:fleet-greet", "--target", "tenant=acme"]);
    assert_eq!(
        line.trim_end(),
        "runbook fleet-greet removal desired on 2 agents"
    );
    let status = wait_for("both agents removed fleet-greet", || {
        let (code, v) = fleet.fleet_exit(&["status", "runbook:fleet-greet"]);
        (code == Some(0)).then_some(v)
    });
    let states: Vec<&str> = status["status"]["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .filter_map(|a| a["state"].as_str())
        .collect();
    assert_eq!(states, ["removed", "removed"], "{status}");
    let (code, run) = fleet.fleet_exit(&["run", "fleet-greet", "--target", "tenant=acme"]);
    assert_ne!(code, Some(0), "{run}");
    let states: Vec<&str> = run["run"]["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .filter_map(|a| a["state"].as_str())
        .collect();
    assert_eq!(states, ["refused", "refused"], "{run}");

    // A site policy signed by the agents' policy key (their own file's text: it changes
    // nothing they run) is applied by both; the same text signed by another key is refused.
    let text = std::fs::read_to_string(agents[0].agent.root().join("warden.toml")).expect("policy");
    let signed = sign_policy(&fleet, &text, "1.0.0", "policy");
    let line = fleet.fleet_human(&["publish", &signed, "--target", "tenant=acme"]);
    assert!(
        line.starts_with("site policy 1.0.0 (sha256 ")
            && line.trim_end().ends_with("desired on 2 agents"),
        "{line}"
    );
    wait_for("both agents applied site policy 1.0.0", || {
        let (code, _) = fleet.fleet_exit(&["status", POLICY_ITEM]);
        (code == Some(0)).then_some(())
    });
    let (code, table) = fleet.fleet_human_exit(&["status", POLICY_ITEM]);
    assert_eq!(code, Some(0), "{table}");
    assert!(
        table.starts_with("site policy: 2 of 2 agents on the desired version"),
        "{table}"
    );
    let forged = sign_policy(&fleet, &text, "2.0.0", "rogue");
    fleet.fleet_human(&["publish", &forged, "--target", "tenant=acme"]);
    let (code, status) = wait_for("both agents refused the forged policy", || {
        let (code, v) = fleet.fleet_exit(&["status", POLICY_ITEM]);
        let refused = v["status"]["agents"]
            .as_array()?
            .iter()
            .filter(|a| a["version"] == "2.0.0" && a["reason"] == "untrusted")
            .count();
        (refused == 2).then_some((code, v))
    });
    assert_eq!(code, Some(1), "{status}");
    for a in &agents {
        assert_eq!(
            a.agent
                .audit_log()
                .lines()
                .filter(|l| l.contains("\"policy.refused\""))
                .count(),
            1
        );
    }
}

/// `text` signed as site policy `version` by `<scratch>/<key>.key` (`policy` is the key the
/// agents trust for policies); the bundle's path.
fn sign_policy(fleet: &crate::fleet_e2e::Fleet, text: &str, version: &str, key: &str) -> String {
    let scratch = fleet.scratch();
    let file = scratch.join(format!("policy-{version}.toml"));
    std::fs::write(&file, text).expect("policy");
    let key_file = scratch.join(format!("{key}.key"));
    let out = scratch.join(format!("site-policy-{version}.wbundle"));
    crate::fleet_e2e::ok(
        crate::fleet_e2e::warden()
            .arg("--data-dir")
            .arg(scratch.join("keys-data"))
            .args(["policy", "sign"])
            .arg(&file)
            .args(["--policy-version", version, "--key"])
            .arg(key_file)
            .arg("--out")
            .arg(&out)
            .output()
            .expect("warden runs"),
        "policy sign",
    );
    out.display().to_string()
}

/// The status row of `agent`.
fn row<'a>(status: &'a Value, agent: &str) -> &'a Value {
    status["agents"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["agent"] == agent))
        .unwrap_or_else(|| panic!("no row for {agent}: {status}"))
}

/// A runbook `name` (one step of `calls`) packed signed by the trusted publisher; its path.
fn pack_runbook(fleet: &crate::fleet_e2e::Fleet, name: &str) -> String {
    let scratch = fleet.scratch();
    let file = scratch.join(format!("{name}.toml"));
    std::fs::write(
        &file,
        format!(
            "name = \"{name}\"\n[[steps]]\nid = \"talk\"\nplugin = \"calls\"\naction = \"check\"\nconfig = {{ kind = \"log\", calls = 1 }}\n"
        ),
    )
    .expect("runbook");
    let out = scratch.join(format!("{name}.wbundle"));
    crate::fleet_e2e::ok(
        crate::fleet_e2e::warden()
            .arg("--data-dir")
            .arg(scratch.join("keys-data"))
            .args(["runbook", "pack"])
            .arg(&file)
            .arg("--key")
            .arg(scratch.join("publisher.key"))
            .arg("--out")
            .arg(&out)
            .output()
            .expect("warden runs"),
        "runbook pack",
    );
    out.display().to_string()
}
