//! Signed site policy distribution (issue 16) on a real agent, against a real nats-server in
//! operator mode, with the controller played by a NATS client holding the controller's
//! credentials, and therefore also as a **compromised controller**: a policy reaches the agent
//! only when signed by a policy key of the agent's own file. Each outcome is checked in the
//! agent's deploy report, its audit log and, where it matters, in what its runs are granted:
//! a runbook of `disk-usage` (which needs `sysinfo = ["disks"]`) succeeds or fails as the
//! policy in force grants `disks` or not.

use warden_fleet_wire::{
    DeployOutcome, DeployRefusal, DesiredPolicy, DesiredState, ItemKind, RefusalReason, RunStatus,
    UnixMillis,
};

use crate::daemon::{Agent, serve_in_process};
use crate::fleet::{Fleet, first_heartbeat, ok, warden};
use crate::fleet_dist::{distribution_fleet, put_blob, put_desired, refused, report_for};

const DISKS: &str = r#"
name = "disks"

[[steps]]
id = "usage"
plugin = "disk-usage"
action = "check"
"#;

/// A key, as `warden key generate` writes it, as `fleet.keys/<name>.{key,pub}`.
fn generate_key(fleet: &Fleet, name: &str) {
    let dir = fleet.keys.path();
    ok(warden(
        &[
            "key",
            "generate",
            "--out",
            &dir.join(name).display().to_string(),
        ],
        &dir.join("data"),
    ));
}

fn public_key(fleet: &Fleet, name: &str) -> String {
    std::fs::read_to_string(fleet.keys.path().join(format!("{name}.pub")))
        .expect("pub")
        .trim()
        .to_string()
}

/// `text` signed as site policy `version` by key `key`, through `warden policy sign`.
fn sign(fleet: &Fleet, agent: &Agent, text: &str, version: &str, key: &str) -> Vec<u8> {
    let dir = fleet.keys.path();
    let file = dir.join(format!("policy-{version}-{key}.toml"));
    std::fs::write(&file, text).expect("policy text");
    let out = dir.join(format!("policy-{version}-{key}.wbundle"));
    let printed = ok(agent.warden(&[
        "policy",
        "sign",
        &file.display().to_string(),
        "--policy-version",
        version,
        "--key",
        &dir.join(format!("{key}.key")).display().to_string(),
        "--out",
        &out.display().to_string(),
    ]));
    assert!(
        printed.contains(&format!("signed site policy {version}")),
        "{printed}"
    );
    std::fs::read(out).expect("bundle")
}

/// The controller's side: the bundle's chunks, then the agent's desired document naming it.
async fn desire_policy(fleet: &Fleet, bundle: &[u8], version: &str) -> String {
    let sha256 = put_blob(fleet, bundle).await;
    let mut doc = DesiredState::new(
        fleet.acme.clone(),
        fleet.agent_id.clone(),
        UnixMillis::now(),
    );
    doc.policy = Some(DesiredPolicy {
        version: version.into(),
        sha256: sha256.clone(),
        size: bundle.len() as u64,
    });
    put_desired(fleet, &doc).await;
    sha256
}

fn audited(agent: &Agent, event: &str) -> usize {
    agent
        .audit_log()
        .lines()
        .filter(|l| l.contains(&format!("\"{event}\"")))
        .count()
}

/// Whether the policy in force lets `disk-usage` run: a run that succeeds, or one the agent
/// refuses before it starts because the grant is refused (no other outcome is expected).
async fn disks_granted(fleet: &Fleet) -> bool {
    let mut copies = fleet.result_copies().await;
    let (_, _, result) = fleet.run_by_name(&mut copies, "disks").await;
    match result.status {
        RunStatus::Succeeded => true,
        RunStatus::Refused {
            reason: RefusalReason::Invalid,
        } => {
            let error = result.error.unwrap_or_default();
            assert!(error.contains("disks"), "{error}");
            false
        }
        other => panic!("the disks run ended {other:?}: {:?}", result.error),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_policy_signed_by_a_policy_key_is_applied_and_a_compromised_controller_widens_nothing()
 {
    let (fleet, mut heartbeats, mut reports) = distribution_fleet().await;

    // The MSP's policy key, named in the agent's own file: its root of trust.
    generate_key(&fleet, "policy");
    let root_of_trust = format!(
        "[[trust.policy-keys]]\nname = \"msp-policy\"\npublic-key = {:?}\n",
        public_key(&fleet, "policy")
    );
    let agent = fleet.agent_trusting(&root_of_trust);
    fleet.install_signed(&agent, "disks", DISKS);
    first_heartbeat(&mut heartbeats).await;
    assert!(disks_granted(&fleet).await);

    // The agent's own file, with `disks` taken out: a narrower policy, signed, version 1.0.0.
    let local = std::fs::read_to_string(agent.root().join("warden.toml")).expect("policy");
    let narrowed = local.replace("\"disks\", ", "");
    assert_ne!(narrowed, local, "the policy must really narrow");
    let v1 = sign(&fleet, &agent, &narrowed, "1.0.0", "policy");
    let v1_sha = desire_policy(&fleet, &v1, "1.0.0").await;
    let report = report_for(&mut reports, &v1_sha).await;
    assert_eq!(report.outcome, DeployOutcome::Installed, "{report:?}");
    assert_eq!(report.kind, ItemKind::Policy);
    assert_eq!(audited(&agent, "policy.applied"), 1);
    assert!(
        !disks_granted(&fleet).await,
        "the applied policy no longer grants disks"
    );

    // A compromised controller: every policy below would grant `disks` again. Each is refused
    // for its reason, audited, reported, and the agent keeps running under 1.0.0.
    let older = sign(&fleet, &agent, &local, "0.9.0", "policy");
    generate_key(&fleet, "controller");
    let by_controller = sign(&fleet, &agent, &local, "2.0.0", "controller");
    let by_publisher = sign(&fleet, &agent, &local, "2.0.0", "publisher");
    let mut widened = warden_bundle::Bundle::parse(&v1).expect("parse");
    widened.component = local.as_bytes().to_vec();
    let widened = widened.to_bytes().expect("bytes");
    let unsigned = warden_bundle::Bundle::from_policy(&local, &semver::Version::new(2, 0, 0), 30)
        .expect("unsigned")
        .to_bytes()
        .expect("bytes");
    let reused = sign(&fleet, &agent, &local, "1.0.0", "policy");
    for (what, bundle, version, reason) in [
        (
            "signed by a key of its own",
            &by_controller,
            "2.0.0",
            DeployRefusal::Untrusted,
        ),
        (
            "signed by a publisher key",
            &by_publisher,
            "2.0.0",
            DeployRefusal::Untrusted,
        ),
        (
            "widened after signing",
            &widened,
            "1.0.0",
            DeployRefusal::Untrusted,
        ),
        ("unsigned", &unsigned, "2.0.0", DeployRefusal::Untrusted),
        (
            "an older signed policy replayed",
            &older,
            "0.9.0",
            DeployRefusal::Rollback,
        ),
        (
            "another text under the applied version",
            &reused,
            "1.0.0",
            DeployRefusal::Rollback,
        ),
    ] {
        let refused_before = audited(&agent, "policy.refused");
        let sha = desire_policy(&fleet, bundle, version).await;
        let report = report_for(&mut reports, &sha).await;
        assert_eq!(refused(&report), Some(reason), "{what}: {report:?}");
        assert!(report.error.is_some(), "{what}: {report:?}");
        assert_eq!(
            audited(&agent, "policy.refused"),
            refused_before + 1,
            "{what}: audited once"
        );
        assert!(!disks_granted(&fleet).await, "{what}: nothing was widened");
    }
    assert_eq!(audited(&agent, "policy.applied"), 1);

    // The applied policy survives a restart: the kept bundle is verified again and in force.
    let mut agent = agent;
    assert!(agent.terminate().0.is_ok());
    let shown = ok(agent.warden(&["--json", "policy", "show"]));
    let shown: serde_json::Value = serde_json::from_str(&shown).expect("json");
    assert_eq!(shown["distributed"]["version"], "1.0.0", "{shown}");
    assert_eq!(shown["distributed"]["signers"][0], "msp-policy", "{shown}");
    agent.serving = serve_in_process(agent.root()).0;
    first_heartbeat(&mut heartbeats).await;
    assert!(!disks_granted(&fleet).await);

    // The policy key's next version grants disks again.
    let v2 = sign(&fleet, &agent, &local, "2.0.0", "policy");
    let v2_sha = desire_policy(&fleet, &v2, "2.0.0").await;
    let report = report_for(&mut reports, &v2_sha).await;
    assert_eq!(report.outcome, DeployOutcome::Installed, "{report:?}");
    assert!(disks_granted(&fleet).await);
    assert_eq!(audited(&agent, "policy.applied"), 2);
}
