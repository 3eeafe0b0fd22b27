//! Air-gapped sites end to end (docs/FLEET.md "Air-gapped sites"), every part real: a
//! nats-server, a `warden controller serve` process and an agent enrolled with it (the harness
//! of [`crate::fleet_e2e`]), whose daemon is then stopped: from there on its link never runs,
//! and everything travels as files. `warden fleet export` writes a kit with a published signed
//! plugin; `warden kit apply` installs it on the agent's data dir; `warden kit collect` signs
//! its results; `warden fleet import` merges them, and `warden fleet status` shows the agent
//! installed. Applying or importing twice changes nothing; a tampered results file and a kit
//! bundle signed by a key the agent does not trust are refused and audited.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::fleet_e2e::{Fleet, FleetAgent, wait_for};
use crate::fleet_rollout::{generate_key, pack};

const PLUGIN: &str = "disk-usage";

/// `warden --json kit <args> --agent-config <its agent.toml>` on the agent's data dir:
/// (exit code, JSON printed).
fn kit(agent: &FleetAgent, args: &[&str]) -> (Option<i32>, Value) {
    let config = agent.agent.root().join("agent.toml");
    let mut all = vec!["--json", "kit"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--agent-config", config.to_str().expect("path")]);
    let out = agent.agent.warden(&all);
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "warden kit {args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), json)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// Records of `event` in the agent's audit log.
fn agent_audits(agent: &FleetAgent, event: &str) -> usize {
    agent
        .agent
        .audit_log()
        .lines()
        .filter(|l| l.contains(&format!("\"{event}\"")))
        .count()
}

fn export(fleet: &Fleet, out: &Path) -> Value {
    fleet.fleet(&["export", "--tenant", "acme", "--out", path(out)])["export"].clone()
}

fn status_row(fleet: &Fleet, agent: &str) -> (Option<i32>, Value) {
    let (code, v) = fleet.fleet_exit(&["status", PLUGIN]);
    let row = v["status"]["agents"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["agent"] == agent).cloned())
        .unwrap_or(Value::Null);
    (code, row)
}

#[test]
fn an_air_gapped_agent_installs_from_a_kit_and_its_signed_results_merge_once() {
    let fleet = Fleet::start();
    let mut gap = fleet.agent("acme", "gap-0", "", "1");
    fleet.wait_presence(&gap, true);
    // From here the agent never talks to the fleet: its daemon (and link) is stopped.
    assert!(gap.agent.terminate().0.is_ok(), "the agent stops cleanly");
    let scratch: PathBuf = fleet.scratch().to_path_buf();

    let good = pack(&fleet, "0.2.0", "publisher");
    fleet.fleet_human(&["publish", path(&good), "--target", "tenant=acme"]);
    let (code, row) = status_row(&fleet, &gap.id);
    assert_eq!((code, row["state"].as_str()), (Some(1), Some("pending")));

    // Export: one agent, one bundle, the kit's digest.
    let kit1 = scratch.join("acme-1.wkit");
    // Each step's wall time (a process each), said once at the end for the record.
    let timed = std::time::Instant::now();
    let exported = export(&fleet, &kit1);
    let export_ms = timed.elapsed().as_millis();
    assert_eq!(
        exported["agents"],
        serde_json::json!([gap.id]),
        "{exported}"
    );
    assert_eq!(exported["bundles"], 1);
    assert_eq!(
        exported["bytes"].as_u64(),
        std::fs::metadata(&kit1).ok().map(|m| m.len())
    );
    assert_eq!(fleet.controller_audits("fleet.export", "").len(), 1);

    // Apply: verified against the agent's own trust, installed, reported into the outbox.
    let timed = std::time::Instant::now();
    let (code, applied) = kit(&gap, &["apply", path(&kit1)]);
    let apply_ms = timed.elapsed().as_millis();
    assert_eq!(code, Some(0), "{applied}");
    let items = applied["kit"]["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{applied}");
    assert_eq!(
        (&items[0]["name"], &items[0]["version"], &items[0]["state"]),
        (&PLUGIN.into(), &"0.2.0".into(), &"installed".into())
    );
    let listed = gap.agent.warden(&["--json", "plugin", "list"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("0.2.0"), "installed: {listed}");
    assert_eq!(agent_audits(&gap, "fleet.deploy"), 1);

    // The same kit again: nothing evaluated, installed, audited or reported twice.
    let (code, again) = kit(&gap, &["apply", path(&kit1)]);
    assert_eq!(code, Some(0), "{again}");
    assert_eq!(again["kit"]["items"], serde_json::json!([]), "{again}");
    assert_eq!(again["kit"]["unchanged"], 1);
    assert_eq!(agent_audits(&gap, "fleet.deploy"), 1);
    assert_eq!(
        agent_audits(&gap, "plugin.installed"),
        1 + 5,
        "five at setup"
    );

    // Collect: the deploy report (and whatever the link left), signed with the agent's key.
    let res1 = scratch.join("gap-0-1.wres");
    let timed = std::time::Instant::now();
    let (code, collected) = kit(&gap, &["collect", "--out", path(&res1)]);
    let collect_ms = timed.elapsed().as_millis();
    assert_eq!(code, Some(0), "{collected}");
    let carried = collected["collect"]["results"].as_u64().expect("results");
    let entries = carried + collected["collect"]["events"].as_u64().expect("events");
    assert!(carried >= 1, "{collected}");
    assert!(collected["collect"]["audit_head"]["seq"].as_u64() > Some(0));

    // Import: merged through the NATS ingest; status shows the agent installed.
    let timed = std::time::Instant::now();
    let imported = fleet.fleet(&["import", path(&res1)])["import"].clone();
    let import_ms = timed.elapsed().as_millis();
    eprintln!(
        "air gap: export {export_ms} ms ({} bytes), apply {apply_ms} ms, collect {collect_ms} ms \
         ({} bytes), import {import_ms} ms",
        exported["bytes"], collected["collect"]["bytes"]
    );
    assert_eq!(imported["agent"], gap.id.as_str(), "{imported}");
    assert!(imported["results_new"].as_u64() >= Some(1), "{imported}");
    assert_eq!(
        imported["audit_seq"],
        collected["collect"]["audit_head"]["seq"]
    );
    let (code, row) = status_row(&fleet, &gap.id);
    assert_eq!((code, row["state"].as_str()), (Some(0), Some("installed")));
    let human = fleet.fleet_human(&["status", PLUGIN]);
    assert!(
        human.starts_with(&format!("{PLUGIN}: 1 of 1 agents on the desired version")),
        "{human}"
    );

    // The same file again: nothing new.
    let twice = fleet.fleet(&["import", path(&res1)])["import"].clone();
    assert_eq!(twice["results_new"], 0, "{twice}");
    assert_eq!(
        twice["results_duplicate"].as_u64(),
        Some(carried),
        "{twice}"
    );
    assert_eq!(fleet.controller_audits("fleet.import", "").len(), 2);
    assert_eq!(status_row(&fleet, &gap.id).1, row, "status unchanged");

    // A results file changed after signing is refused, audited, and merges nothing.
    let mut bytes = std::fs::read(&res1).expect("results");
    // A letter of a deploy report's msg id (`<agent>.deploy.<sha256>.installed`): still JSON.
    let at = bytes
        .windows(b".installed".len())
        .position(|w| w == b".installed")
        .expect("the body names the report's msg id");
    bytes[at + 1] ^= 0x01;
    let tampered = scratch.join("tampered.wres");
    std::fs::write(&tampered, &bytes).expect("write");
    assert_ne!(fleet.fleet_try_exit(&["import", path(&tampered)]), Some(0));
    let refused = fleet.controller_audits("fleet.import.refused", "");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].to_string().contains("signature"),
        "{}",
        refused[0]
    );
    // Not a results file at all.
    assert_ne!(fleet.fleet_try_exit(&["import", path(&kit1)]), Some(0));
    assert_eq!(fleet.controller_audits("fleet.import.refused", "").len(), 2);

    // A version signed by a key the agent does not trust: the kit carries it, the agent
    // refuses it with its own trust policy, audits it, and keeps 0.2.0.
    generate_key(&fleet, "rogue");
    let bad = pack(&fleet, "0.3.0", "rogue");
    fleet.fleet_human(&["publish", path(&bad), "--target", "tenant=acme"]);
    let kit2 = scratch.join("acme-2.wkit");
    export(&fleet, &kit2);
    let (code, applied) = kit(&gap, &["apply", path(&kit2)]);
    assert_eq!(code, Some(1), "{applied}");
    let item = &applied["kit"]["items"][0];
    assert_eq!(
        (&item["version"], &item["state"], &item["reason"]),
        (&"0.3.0".into(), &"refused".into(), &"untrusted".into()),
        "{applied}"
    );
    // The kit acknowledged what the controller imported: the outbox forgot it.
    assert_eq!(
        applied["kit"]["acknowledged"].as_u64(),
        Some(entries),
        "{applied}"
    );
    assert_eq!(agent_audits(&gap, "plugin.install-refused"), 1);
    let listed = gap.agent.warden(&["--json", "plugin", "list"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("0.2.0") && !listed.contains("0.3.0"),
        "{listed}"
    );

    // The next collect carries only the refusal; imported, status says who and why.
    let res2 = scratch.join("gap-0-2.wres");
    let (_, collected) = kit(&gap, &["collect", "--out", path(&res2)]);
    assert_eq!(collected["collect"]["results"], 1, "{collected}");
    fleet.fleet(&["import", path(&res2)]);
    let (code, row) = wait_for("the refusal in status", || {
        let (code, row) = status_row(&fleet, &gap.id);
        (row["version"] == "0.3.0").then_some((code, row))
    });
    assert_eq!(code, Some(1));
    assert_eq!(
        (row["state"].as_str(), row["reason"].as_str()),
        (Some("refused"), Some("untrusted"))
    );

    // Files the controller must not merge, each refused for its own reason and audited: one
    // signed by a key that never enrolled, one by the agent's own key (read from its
    // credentials) claiming another tenant, one carrying an entry on another agent's subject.
    let creds = std::fs::read_to_string(scratch.join("gap-0/fleet.creds")).expect("creds");
    let seed = creds
        .split("-----BEGIN USER NKEY SEED-----")
        .nth(1)
        .and_then(|rest| rest.lines().map(str::trim).find(|l| !l.is_empty()))
        .expect("a seed");
    let own = nkeys::KeyPair::from_seed(seed).expect("the agent's key");
    let stranger = nkeys::KeyPair::new_user();
    let other = nkeys::KeyPair::new_user().public_key();
    let cases = [
        (
            &stranger,
            "acme",
            format!("fleet.res.acme.{}", stranger.public_key()),
            "not enrolled",
        ),
        (
            &own,
            "globex",
            format!("fleet.res.globex.{}", gap.id),
            "enrolled in acme",
        ),
        (
            &own,
            "acme",
            format!("fleet.res.acme.{other}"),
            "own subjects",
        ),
    ];
    let before = fleet.controller_audits("fleet.import.refused", "").len();
    for (i, (key, tenant, subject, why)) in cases.iter().enumerate() {
        let file = scratch.join(format!("forged-{i}.wres"));
        std::fs::write(&file, signed_results(key, tenant, subject)).expect("write");
        let out = fleet.fleet_human_exit(&["import", path(&file)]);
        assert_ne!(out.0, Some(0), "{why}: {out:?}");
        let refused = fleet.controller_audits("fleet.import.refused", "");
        assert_eq!(refused.len(), before + i + 1, "{why}");
        assert!(
            refused[before + i].to_string().contains(why),
            "{why}: {}",
            refused[before + i]
        );
    }
    // A revoked agent's results are refused too, even a file it signed before.
    fleet.fleet(&["revoke", &gap.id]);
    assert_ne!(fleet.fleet_try_exit(&["import", path(&res2)]), Some(0));
    let refused = fleet.controller_audits("fleet.import.refused", "");
    assert!(
        refused
            .last()
            .is_some_and(|r| r.to_string().contains("revoked")),
        "{refused:?}"
    );
}

/// A results file signed by `key`, claiming `tenant`, with one deploy report on `subject`.
fn signed_results(key: &nkeys::KeyPair, tenant: &str, subject: &str) -> Vec<u8> {
    use warden_fleet_wire::airgap::{AuditHead, ResultsBody, ResultsEntry, ResultsFile};
    let body = ResultsBody {
        v: warden_fleet_wire::WIRE_VERSION,
        tenant: warden_fleet_identity::TenantId::new(tenant).expect("tenant"),
        agent: warden_fleet_identity::AgentId::new(key.public_key()).expect("agent"),
        created_at: warden_fleet_wire::UnixMillis::now(),
        through: 1,
        audit_head: AuditHead {
            seq: 1,
            hash: "0".repeat(64),
            at: warden_fleet_wire::UnixMillis::now(),
        },
        entries: vec![ResultsEntry::new(1, "result", subject, "forged", b"{}")],
    };
    ResultsFile::sign(&body, |b| key.sign(b).map_err(|e| e.to_string())).expect("signed")
}
