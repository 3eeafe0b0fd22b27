//! Patches pending and reboot required, from an agent's patch scan to the NOC (issue 18). The
//! scan is a fixture: the facts `apt-updates` reports, recorded in the agent's run history as
//! the patch runbook's `discover` step records them (its scan, or the verify re-scan after the
//! upgrades), so no test depends on what this machine's apt has pending. What is real is
//! everything after: the agent's heartbeat (in this process, on a real nats-server), and, end
//! to end, a `warden serve` agent, the `warden controller serve` process and `warden fleet
//! agents` (table and `--json`, and its `--reboot` / `--patches` filters).

use serde_json::{Value, json};
use warden_fleet_wire::{Heartbeat, PatchSummary, UnixMillis, decode};
use warden_history::History;

use crate::fleet::{first_heartbeat, next};

/// `apt-updates`' typed output as a runbook's discover step records it (docs/PATCHING.md).
fn apt_scan(upgradable: u32, security: u32, reboot: bool) -> Value {
    let state = match (reboot, upgradable) {
        (true, _) => "reboot-pending",
        (false, 0) => "up-to-date",
        _ => "updates-available",
    };
    let mut groups = vec![json!({"kind": "patch-status", "facts": {
        "state": state, "upgradable": upgradable, "security": security, "kept-back": 0,
        "new-packages": 0, "removals": 0, "reboot-required": reboot,
        "reboot-packages": if reboot { json!(["linux-image-6.1.0-18-amd64"]) } else { json!([]) },
    }})];
    groups.extend((0..upgradable).map(|i| {
        json!({"kind": "apt-update", "facts": {"name": format!("pkg{i}"), "installed": "1.0",
            "candidate": "1.1", "pin": format!("pkg{i}=1.1"),
            "severity": if i < security { "security" } else { "normal" },
            "origins": ["Debian-Security:12/stable-security"], "arch": "amd64"}})
    }));
    json!({"type": "facts", "value": groups})
}

/// Record a scan in the agent's history; when it was collected.
fn record_scan(data: &std::path::Path, scan: &Value) -> UnixMillis {
    let history = History::open(data).expect("the agent's history");
    history
        .record_inventory("apt-updates", "0.1.0", scan)
        .expect("recorded");
    let row = history
        .inventory_of("apt-updates")
        .expect("read")
        .expect("the row");
    UnixMillis(row.collected_ms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heartbeat_carries_the_latest_patch_scan_and_the_verify_re_scan_replaces_it() {
    let fleet = crate::fleet::Fleet::start().await;
    let mut heartbeats = fleet.heartbeats().await;
    let agent = fleet.agent();
    let hb = first_heartbeat(&mut heartbeats).await;
    assert_eq!(hb.patches, None, "no scan yet: none, not zeros");

    let data = agent.root().join("data");
    let scanned_at = record_scan(&data, &apt_scan(12, 3, true));
    let (message, hb) = next(&mut heartbeats, "a heartbeat with the scan", |b| {
        decode::<Heartbeat>(b).ok().filter(|h| h.patches.is_some())
    })
    .await;
    assert_eq!(
        hb.patches,
        Some(PatchSummary {
            pending: 12,
            security: 3,
            reboot_required: true,
            scanned_at,
        })
    );
    let wire: Value = serde_json::from_slice(&message.payload).expect("JSON");
    assert_eq!(wire["patches"]["pending"], 12, "{wire}");

    // The next heartbeats say the same without a new scan (nothing re-ran it).
    let again = first_heartbeat(&mut heartbeats).await;
    assert_eq!(again.patches, hb.patches);

    // After the upgrades and the reboot, the verify re-scan: nothing pending, no reboot.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let verified_at = record_scan(&data, &apt_scan(0, 0, false));
    let (_, hb) = next(&mut heartbeats, "a heartbeat with the re-scan", |b| {
        decode::<Heartbeat>(b)
            .ok()
            .filter(|h| h.patches.is_some_and(|p| p.pending == 0))
    })
    .await;
    assert_eq!(
        hb.patches,
        Some(PatchSummary {
            pending: 0,
            security: 0,
            reboot_required: false,
            scanned_at: verified_at,
        })
    );
}

/// The cell of column `name` in the row of `agent` (by its short id, the first column) of
/// `warden fleet agents`: the text under the header up to the next column's.
fn cell(table: &str, agent: &str, name: &str) -> String {
    let short: String = agent.chars().take(12).collect();
    let header: Vec<char> = table.lines().next().expect("a header").chars().collect();
    let row: Vec<char> = table
        .lines()
        .find(|l| l.starts_with(&short))
        .unwrap_or_else(|| panic!("no row for {short} in\n{table}"))
        .chars()
        .collect();
    let text: String = header.iter().collect();
    let start = text
        .find(name)
        .unwrap_or_else(|| panic!("no {name} in {text}"));
    // The next column starts where the header's next word does.
    let end = (start + name.len()..header.len())
        .find(|&i| header[i] != ' ' && header[i - 1] == ' ')
        .unwrap_or(header.len());
    row.get(start..end.min(row.len()))
        .unwrap_or_default()
        .iter()
        .collect::<String>()
        .trim()
        .to_string()
}

#[test]
fn fleet_agents_shows_and_filters_by_each_agents_latest_patch_scan() {
    let fleet = crate::fleet_e2e::Fleet::start();
    let scanned = fleet.agent("acme", "acme-db-1", "role = \"db\"", "1");
    let never = fleet.agent("acme", "acme-web-1", "role = \"web\"", "1");
    fleet.wait_presence(&scanned, true);
    fleet.wait_presence(&never, true);

    let scanned_at = record_scan(&scanned.agent.root().join("data"), &apt_scan(12, 3, true));
    let view = crate::fleet_e2e::wait_for("the scan at the controller", || {
        fleet
            .agent_view(&scanned.id)
            .filter(|a| !a["patches"].is_null())
    });
    assert_eq!(
        view["patches"],
        json!({"pending": 12, "security": 3, "reboot_required": true,
               "scanned_at": scanned_at.as_millis()}),
        "{view}"
    );
    let other = fleet.agent_view(&never.id).expect("listed");
    assert!(other["patches"].is_null(), "never scanned: {other}");

    let table = fleet.fleet_human(&["agents"]);
    assert_eq!(
        cell(&table, &scanned.id, "PATCHES"),
        "12 (3 security)",
        "{table}"
    );
    assert_eq!(cell(&table, &scanned.id, "REBOOT"), "required", "{table}");
    assert_eq!(cell(&table, &never.id, "PATCHES"), "-", "{table}");
    assert_eq!(cell(&table, &never.id, "REBOOT"), "", "{table}");

    let ids = |args: &[&str]| -> Vec<String> {
        fleet.fleet(args)["agents"]
            .as_array()
            .expect("agents")
            .iter()
            .map(|a| a["agent"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(ids(&["agents", "--reboot"]), [scanned.id.as_str()]);
    assert_eq!(ids(&["agents", "--patches"]), [scanned.id.as_str()]);
    assert_eq!(ids(&["agents"]).len(), 2);

    // The verify re-scan after the upgrades: nothing pending, no reboot; neither filter
    // selects it any more, and the table says 0, not `-`.
    std::thread::sleep(std::time::Duration::from_millis(5));
    record_scan(&scanned.agent.root().join("data"), &apt_scan(0, 0, false));
    crate::fleet_e2e::wait_for("the re-scan at the controller", || {
        fleet
            .agent_view(&scanned.id)
            .filter(|a| a["patches"]["pending"] == 0)
    });
    assert!(ids(&["agents", "--reboot"]).is_empty());
    assert!(ids(&["agents", "--patches"]).is_empty());
    let table = fleet.fleet_human(&["agents"]);
    assert_eq!(cell(&table, &scanned.id, "PATCHES"), "0", "{table}");
    assert_eq!(cell(&table, &scanned.id, "REBOOT"), "", "{table}");
}
