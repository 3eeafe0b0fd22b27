//! Desired state on a real agent (issue 16), against a real nats-server 2.12.8 in operator
//! mode, with the controller played by a NATS client holding the controller's credentials: the
//! test writes the desired documents and the blobs itself, as the controller does
//! (`warden_controller::nats::distribution_streams` creates the same bucket and stream), and
//! therefore also as a **compromised controller** would. The agent trusts one publisher key and
//! refuses unsigned plugins; each outcome is checked in its deploy report (a copy of what it
//! publishes into the results stream), its audit log and its heartbeat inventory.

use std::path::Path;

use warden_fleet_identity::subjects;
use warden_fleet_wire::desired::BLOB_CHUNK_BYTES;
use warden_fleet_wire::{
    DeployOutcome, DeployRefusal, DeployReport, DesiredPlugin, DesiredState, Heartbeat, RunStatus,
    UnixMillis, decode, encode,
};

use crate::daemon::{Agent, built, serve_in_process};
use crate::fleet::{Fleet, first_heartbeat, next, ok, round_trip};

const PLUGIN: &str = "disk-usage";

/// `disk-usage` at `version` as a plugin directory.
pub(crate) fn plugin_dir(scratch: &Path, version: &str) -> std::path::PathBuf {
    let dir = scratch.join(format!("{PLUGIN}-{version}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let src = built(PLUGIN);
    std::fs::copy(src.join("plugin.wasm"), dir.join("plugin.wasm")).expect("copy");
    let manifest = std::fs::read_to_string(src.join("plugin.toml"))
        .expect("manifest")
        .replace("version = \"0.1.0\"", &format!("version = \"{version}\""));
    std::fs::write(dir.join("plugin.toml"), manifest).expect("manifest");
    dir
}

/// `disk-usage` at `version`, signed by the trusted publisher.
fn signed(fleet: &Fleet, agent: &Agent, version: &str) -> Vec<u8> {
    let dir = plugin_dir(fleet.keys.path(), version);
    let out = fleet
        .keys
        .path()
        .join(format!("{PLUGIN}-{version}.wbundle"));
    ok(agent.warden(&[
        "plugin",
        "pack",
        &dir.display().to_string(),
        "--key",
        &fleet
            .keys
            .path()
            .join("publisher.key")
            .display()
            .to_string(),
        "--out",
        &out.display().to_string(),
    ]));
    std::fs::read(out).expect("bundle")
}

/// A fleet with the desired bucket and blob stream, its heartbeats, and a copy of the agent's
/// deploy reports (subscribed before anything is published).
pub(crate) async fn distribution_fleet() -> (Fleet, async_nats::Subscriber, async_nats::Subscriber)
{
    let fleet = Fleet::start().await;
    warden_controller::nats::distribution_streams(&fleet.controller, 1)
        .await
        .expect("desired bucket and blob stream");
    let heartbeats = fleet.heartbeats().await;
    let reports = fleet
        .controller
        .subscribe(format!(
            "{}.deploy",
            subjects::result(&fleet.acme, &fleet.agent_id)
        ))
        .await
        .expect("subscribe");
    round_trip(&fleet.controller).await;
    (fleet, heartbeats, reports)
}

/// The controller's side of a blob: the bundle's chunks, stored; its digest.
pub(crate) async fn put_blob(fleet: &Fleet, bundle: &[u8]) -> String {
    put_blob_as(fleet, bundle, &warden_core::sha256_hex(bundle)).await;
    warden_core::sha256_hex(bundle)
}

/// The chunks of `bundle` stored under the digest `sha256` (a lying controller's may differ).
async fn put_blob_as(fleet: &Fleet, bundle: &[u8], sha256: &str) {
    let js = async_nats::jetstream::new(fleet.controller.clone());
    for (n, chunk) in (0u32..).zip(bundle.chunks(BLOB_CHUNK_BYTES)) {
        js.publish(
            subjects::blob_chunk(&fleet.acme, sha256, n),
            chunk.to_vec().into(),
        )
        .await
        .expect("chunk")
        .await
        .expect("chunk stored");
    }
}

/// The controller's side: the bundle's chunks, then the agent's whole desired document.
async fn desire(fleet: &Fleet, bundle: &[u8], version: &str) -> String {
    let sha256 = put_blob(fleet, bundle).await;
    let mut doc = DesiredState::new(
        fleet.acme.clone(),
        fleet.agent_id.clone(),
        UnixMillis::now(),
    );
    doc.plugins.push(DesiredPlugin {
        name: PLUGIN.into(),
        version: version.into(),
        sha256: sha256.clone(),
        size: bundle.len() as u64,
    });
    put_desired(fleet, &doc).await;
    sha256
}

pub(crate) async fn put_desired(fleet: &Fleet, doc: &DesiredState) {
    async_nats::jetstream::new(fleet.controller.clone())
        .publish(
            format!("$KV.{}.{}", subjects::DESIRED_BUCKET, doc.key()),
            encode(doc).expect("encode").into(),
        )
        .await
        .expect("put")
        .await
        .expect("stored");
}

/// The next deploy report about `sha256`.
pub(crate) async fn report_for(sub: &mut async_nats::Subscriber, sha256: &str) -> DeployReport {
    loop {
        let (_, report) = next(sub, "a deploy report", |b| decode::<DeployReport>(b).ok()).await;
        if report.sha256 == sha256 {
            return report;
        }
    }
}

/// The version of `disk-usage` the agent reports after `after` (its clock): the heartbeat
/// following the first one sent after it, whose inventory was read after `after` for sure.
async fn installed_version(hb: &mut async_nats::Subscriber, after: UnixMillis) -> String {
    loop {
        let beat: Heartbeat = first_heartbeat(hb).await;
        if beat.sent_at > after {
            break;
        }
    }
    let beat: Heartbeat = first_heartbeat(hb).await;
    beat.plugins
        .iter()
        .find(|p| p.name == PLUGIN)
        .map(|p| p.version.clone())
        .unwrap_or_default()
}

fn audited(agent: &Agent, event: &str, needle: &str) -> usize {
    agent
        .audit_log()
        .lines()
        .filter(|l| l.contains(&format!("\"{event}\"")) && l.contains(needle))
        .count()
}

pub(crate) fn refused(report: &DeployReport) -> Option<DeployRefusal> {
    match report.outcome {
        DeployOutcome::Refused { reason } => Some(reason),
        DeployOutcome::Installed | DeployOutcome::Removed => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_converges_on_signed_desired_state_and_refuses_a_compromised_controller() {
    let (fleet, mut heartbeats, mut reports) = distribution_fleet().await;

    // The harness installs its plugins in development mode; this agent then runs signed-only.
    let mut agent = fleet.agent();
    first_heartbeat(&mut heartbeats).await;
    assert!(agent.terminate().0.is_ok());
    let policy = agent.root().join("warden.toml");
    let text = std::fs::read_to_string(&policy).expect("policy");
    std::fs::write(
        &policy,
        text.replace("allow-unsigned = true", "allow-unsigned = false"),
    )
    .expect("policy");
    agent.serving = serve_in_process(agent.root()).0;
    assert_eq!(
        installed_version(&mut heartbeats, UnixMillis::now()).await,
        "0.1.0"
    );

    // A signed new version converges; the agent reports it and its inventory shows it.
    let v2 = signed(&fleet, &agent, "0.2.0");
    let v2_sha = desire(&fleet, &v2, "0.2.0").await;
    let report = report_for(&mut reports, &v2_sha).await;
    assert_eq!(report.outcome, DeployOutcome::Installed, "{report:?}");
    assert_eq!(installed_version(&mut heartbeats, report.at).await, "0.2.0");

    // A compromised controller: each artifact is refused for its reason, audited and
    // reported, and the agent keeps 0.2.0.
    let dir = plugin_dir(fleet.keys.path(), "0.3.0");
    let unsigned = warden_bundle::Bundle::from_plugin_dir(&dir, 30)
        .expect("bundle")
        .to_bytes()
        .expect("bytes");
    let v3 = signed(&fleet, &agent, "0.3.0");
    let mut widened = warden_bundle::Bundle::parse(&v3).expect("parse");
    let before = widened.statement_text.clone();
    widened.statement_text = widened.statement_text.replace(
        r#"sysinfo = [\"disks\"]"#,
        r#"sysinfo = [\"disks\", \"processes\"]"#,
    );
    assert_ne!(
        widened.statement_text, before,
        "the manifest must really widen"
    );
    let widened = widened.to_bytes().expect("bytes");
    let downgrade = signed(&fleet, &agent, "0.1.0");
    // The same state announced again first: nothing is done about it.
    let mut again = DesiredState::new(
        fleet.acme.clone(),
        fleet.agent_id.clone(),
        UnixMillis::now(),
    );
    again.plugins.push(DesiredPlugin {
        name: PLUGIN.into(),
        version: "0.2.0".into(),
        sha256: v2_sha.clone(),
        size: v2.len() as u64,
    });
    put_desired(&fleet, &again).await;
    for (bundle, version, reason) in [
        (&unsigned, "0.3.0", DeployRefusal::Untrusted),
        (&widened, "0.3.0", DeployRefusal::Untrusted),
        (&downgrade, "0.1.0", DeployRefusal::Rollback),
    ] {
        let sha = desire(&fleet, bundle, version).await;
        let report = report_for(&mut reports, &sha).await;
        assert_eq!(refused(&report), Some(reason), "{version}: {report:?}");
        assert!(report.error.is_some(), "{report:?}");
        assert_eq!(
            audited(&agent, "fleet.deploy", &sha),
            1,
            "{version} audited once"
        );
        assert_eq!(installed_version(&mut heartbeats, report.at).await, "0.2.0");
    }
    assert_eq!(
        audited(&agent, "plugin.install-refused", "fleet:desired:"),
        3
    );
    assert_eq!(
        audited(&agent, "fleet.deploy", &v2_sha),
        1,
        "the re-announced state was acted on again"
    );

    // Bytes that are not what the document names never reach the install path.
    let mut lying = DesiredState::new(
        fleet.acme.clone(),
        fleet.agent_id.clone(),
        UnixMillis::now(),
    );
    lying.plugins.push(DesiredPlugin {
        name: PLUGIN.into(),
        version: "0.9.0".into(),
        sha256: "0".repeat(64),
        size: v2.len() as u64,
    });
    put_blob_as(&fleet, &v2, &"0".repeat(64)).await;
    put_desired(&fleet, &lying).await;
    let report = report_for(&mut reports, &"0".repeat(64)).await;
    assert_eq!(
        refused(&report),
        Some(DeployRefusal::Mismatch),
        "{report:?}"
    );
    assert_eq!(
        audited(&agent, "plugin.install-refused", "fleet:desired:"),
        3
    );

    // It keeps running: a command still runs.
    let mut copies = fleet.result_copies().await;
    let (_, _, result) = fleet.run_by_name(&mut copies, "fleet-hello").await;
    assert_eq!(result.status, RunStatus::Succeeded);

    // Offline during a publish: it converges when it starts again.
    assert!(agent.terminate().0.is_ok());
    let v4 = signed(&fleet, &agent, "0.4.0");
    let v4_sha = desire(&fleet, &v4, "0.4.0").await;
    agent.serving = serve_in_process(agent.root()).0;
    let report = report_for(&mut reports, &v4_sha).await;
    assert_eq!(report.outcome, DeployOutcome::Installed, "{report:?}");
    assert_eq!(installed_version(&mut heartbeats, report.at).await, "0.4.0");

    // A blob not there yet (a replica behind, a publish half done): reported unavailable, and
    // tried again by the agent itself, with no new document or notice, once it is there.
    let v5 = signed(&fleet, &agent, "0.5.0");
    let v5_sha = warden_core::sha256_hex(&v5);
    let mut ahead = DesiredState::new(
        fleet.acme.clone(),
        fleet.agent_id.clone(),
        UnixMillis::now(),
    );
    ahead.plugins.push(DesiredPlugin {
        name: PLUGIN.into(),
        version: "0.5.0".into(),
        sha256: v5_sha.clone(),
        size: v5.len() as u64,
    });
    put_desired(&fleet, &ahead).await;
    let report = report_for(&mut reports, &v5_sha).await;
    assert_eq!(
        refused(&report),
        Some(DeployRefusal::Unavailable),
        "{report:?}"
    );
    put_blob(&fleet, &v5).await;
    let report = report_for(&mut reports, &v5_sha).await;
    assert_eq!(report.outcome, DeployOutcome::Installed, "{report:?}");

    // Removal is a desired-state change: the agent removes it (audited) and reports it; its
    // anti-rollback mark stays, so an older version is still refused afterwards.
    let removal = "e".repeat(64);
    let mut removed = DesiredState::new(
        fleet.acme.clone(),
        fleet.agent_id.clone(),
        UnixMillis::now(),
    );
    removed.remove.push(warden_fleet_wire::DesiredRemoval {
        kind: warden_fleet_wire::ItemKind::Plugin,
        name: PLUGIN.into(),
        sha256: removal.clone(),
    });
    put_desired(&fleet, &removed).await;
    let report = report_for(&mut reports, &removal).await;
    assert_eq!(report.outcome, DeployOutcome::Removed, "{report:?}");
    assert_eq!(installed_version(&mut heartbeats, report.at).await, "");
    assert_eq!(audited(&agent, "plugin.removed", PLUGIN), 1);
    let sha = desire(&fleet, &downgrade, "0.1.0").await;
    let report = report_for(&mut reports, &sha).await;
    assert_eq!(
        refused(&report),
        Some(DeployRefusal::Rollback),
        "removal keeps the high-water mark: {report:?}"
    );
}

const GREET: &str = r#"
name = "fleet-greet"

[[steps]]
id = "talk"
plugin = "calls"
action = "check"
config = { kind = "log", calls = 1 }
"#;

/// `text` as runbook `name`, signed by `keys/<key>.key` (`None`: unsigned), as if signed
/// `age_secs` ago.
fn runbook_bundle(
    fleet: &Fleet,
    name: &str,
    text: &str,
    key: Option<&str>,
    age_secs: u64,
) -> Vec<u8> {
    let mut bundle = warden_bundle::Bundle::from_runbook(name, text, 30).expect("bundle");
    bundle.statement.signed_at -= age_secs;
    bundle.statement_text = serde_json::to_string(&bundle.statement).expect("statement");
    if let Some(key) = key {
        let secret =
            warden_bundle::keys::load_secret(&fleet.keys.path().join(format!("{key}.key")))
                .expect("key");
        bundle.sign(&secret);
    }
    bundle.to_bytes().expect("bytes")
}

/// The controller's side for a runbook: its chunks, then the agent's document naming it.
async fn desire_runbook(fleet: &Fleet, name: &str, bundle: &[u8]) -> String {
    let sha256 = put_blob(fleet, bundle).await;
    let mut doc = DesiredState::new(
        fleet.acme.clone(),
        fleet.agent_id.clone(),
        UnixMillis::now(),
    );
    doc.runbooks.push(warden_fleet_wire::DesiredRunbook {
        name: name.into(),
        signed: "2026-12-03T00:00:00Z".into(),
        sha256: sha256.clone(),
        size: bundle.len() as u64,
    });
    put_desired(fleet, &doc).await;
    sha256
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desired_runbook_is_held_signed_and_runs_by_name_and_a_compromised_controller_cannot_swap_it()
 {
    let (fleet, mut heartbeats, mut reports) = distribution_fleet().await;
    let agent = fleet.agent();
    first_heartbeat(&mut heartbeats).await;
    let mut copies = fleet.result_copies().await;

    // Not held: a command naming it is refused.
    let (_, _, result) = fleet.run_by_name(&mut copies, "fleet-greet").await;
    assert!(
        matches!(result.status, RunStatus::Refused { .. }),
        "{result:?}"
    );

    // Desired, signed by the trusted publisher: held, reported, and it runs by name.
    let good = runbook_bundle(&fleet, "fleet-greet", GREET, Some("publisher"), 60);
    let good_sha = desire_runbook(&fleet, "fleet-greet", &good).await;
    let report = report_for(&mut reports, &good_sha).await;
    assert_eq!(report.outcome, DeployOutcome::Installed, "{report:?}");
    assert_eq!(report.kind, warden_fleet_wire::ItemKind::Runbook);
    let held = agent.root().join("runbooks/fleet-greet.wbundle");
    assert_eq!(std::fs::read(&held).expect("held"), good);
    assert_eq!(audited(&agent, "runbook.installed", "fleet-greet"), 1);
    let (_, _, result) = fleet.run_by_name(&mut copies, "fleet-greet").await;
    assert_eq!(result.status, RunStatus::Succeeded, "{result:?}");

    // A compromised controller: each swap is refused for its reason, audited, reported, and
    // the held copy stays, byte for byte.
    let sneaky = GREET.replace("calls = 1", "calls = 2");
    let mut widened = warden_bundle::Bundle::parse(&good).expect("parse");
    widened.component = sneaky.as_bytes().to_vec();
    let widened = widened.to_bytes().expect("bytes");
    let hello_as_greet = runbook_bundle(&fleet, "fleet-hello", GREET, Some("publisher"), 0);
    for (what, bundle, reason) in [
        (
            "signed by an untrusted key",
            runbook_bundle(&fleet, "fleet-greet", &sneaky, Some("stranger"), 0),
            DeployRefusal::Untrusted,
        ),
        (
            "unsigned",
            runbook_bundle(&fleet, "fleet-greet", &sneaky, None, 0),
            DeployRefusal::Untrusted,
        ),
        ("changed after signing", widened, DeployRefusal::Untrusted),
        (
            "an older signed copy",
            runbook_bundle(&fleet, "fleet-greet", &sneaky, Some("publisher"), 3600),
            DeployRefusal::Rollback,
        ),
        (
            "signed for another runbook",
            hello_as_greet,
            DeployRefusal::Mismatch,
        ),
    ] {
        let before = audited(&agent, "runbook.install-refused", "fleet-greet");
        let sha = desire_runbook(&fleet, "fleet-greet", &bundle).await;
        let report = report_for(&mut reports, &sha).await;
        assert_eq!(refused(&report), Some(reason), "{what}: {report:?}");
        assert_eq!(
            audited(&agent, "runbook.install-refused", "fleet-greet"),
            before + 1,
            "{what}: audited once"
        );
        assert_eq!(std::fs::read(&held).expect("held"), good, "{what}");
    }
    let (_, _, result) = fleet.run_by_name(&mut copies, "fleet-greet").await;
    assert_eq!(result.status, RunStatus::Succeeded, "{result:?}");

    // Its removal: the file goes (audited), and a command naming it is refused again.
    let removal = "f".repeat(64);
    let mut doc = DesiredState::new(
        fleet.acme.clone(),
        fleet.agent_id.clone(),
        UnixMillis::now(),
    );
    doc.remove.push(warden_fleet_wire::DesiredRemoval {
        kind: warden_fleet_wire::ItemKind::Runbook,
        name: "fleet-greet".into(),
        sha256: removal.clone(),
    });
    put_desired(&fleet, &doc).await;
    let report = report_for(&mut reports, &removal).await;
    assert_eq!(report.outcome, DeployOutcome::Removed, "{report:?}");
    assert!(!held.exists());
    assert_eq!(audited(&agent, "runbook.removed", "fleet-greet"), 1);
    let (_, _, result) = fleet.run_by_name(&mut copies, "fleet-greet").await;
    assert!(
        matches!(result.status, RunStatus::Refused { .. }),
        "{result:?}"
    );
}
