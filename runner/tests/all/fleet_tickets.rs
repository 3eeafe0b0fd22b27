//! A PSA ticket from the endpoint to the client's report (issues 17 and 18), every part real: a
//! `warden serve` agent enrolled with a `warden controller serve` controller over nats-server in
//! operator mode, a monitor that fails and escalates, the `ticket-webhook` plugin posting to a
//! fake PSA on 127.0.0.1 through the agent's ticket outbox, the escalation event carrying the
//! ticket the PSA answered through the agent's fleet outbox and NATS into the controller's
//! store, and `warden fleet report` listing that ticket on the monitor's service row.

use std::os::unix::fs::PermissionsExt as _;

use serde_json::json;
use warden_tests::fake_psa::{self, FakeWebhook};

use crate::daemon::built;
use crate::fleet_e2e::{Fleet, wait_for};

/// A monitor that fails at once (every mounted disk is more than 0 % used) and has no
/// remediation, so its first failure escalates.
const FAILING_MONITOR: &str = "[[monitor]]\nname = \"disk-zero\"\nplugin = \"disk-usage\"\n\
     config = { warning_percent = 0, critical_percent = 100 }\ninterval = \"1s\"\n\
     failures-to-trigger = 1\n";

#[test]
fn an_escalation_ticket_travels_from_the_agents_outbox_through_nats_into_the_client_report() {
    let psa = FakeWebhook::start();
    let origin = psa.server.origin();
    let fleet = Fleet::start();
    let mut acme = fleet.agent("acme", "acme-db-1", "role = \"db\"", "1");
    fleet.wait_presence(&acme, true);

    // Stopped, the agent gains the webhook connector (its manifest requests the fake PSA's
    // origin, which the site policy allows on loopback), the monitor and the `[tickets]`
    // section; then it starts again on the same identity and data.
    acme.agent.terminate();
    let root = acme.agent.root().to_path_buf();
    let package = root.join("ticket-webhook-pkg");
    std::fs::create_dir_all(&package).expect("package dir");
    std::fs::copy(
        built("ticket-webhook").join("plugin.wasm"),
        package.join("plugin.wasm"),
    )
    .expect("copy the connector");
    std::fs::write(
        package.join("plugin.toml"),
        format!(
            "name = \"ticket-webhook\"\nversion = \"0.1.0\"\nrole = \"ticketing\"\n\
             component = \"plugin.wasm\"\n[capabilities]\nhttp = [{origin:?}]\n\
             [limits]\ntimeout-ms = 30000\n"
        ),
    )
    .expect("connector manifest");
    let installed = acme
        .agent
        .warden(&["plugin", "install", &package.display().to_string()]);
    assert!(
        installed.status.success(),
        "plugin install: {}",
        String::from_utf8_lossy(&installed.stderr)
    );
    let policy_path = root.join("warden.toml");
    let policy = std::fs::read_to_string(&policy_path).expect("policy");
    let policy = policy.replacen(
        "[allow]\n",
        &format!("[allow]\nhttp = [{origin:?}]\nhttp-networks = [\"127.0.0.0/8\"]\n"),
        1,
    );
    std::fs::write(&policy_path, policy).expect("policy");
    let secrets = root.join("psa-secrets.json");
    std::fs::write(
        &secrets,
        json!({ "hmac-key": fake_psa::WEBHOOK_HMAC_KEY }).to_string(),
    )
    .expect("secrets");
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let config_path = root.join("agent.toml");
    let mut config = std::fs::read_to_string(&config_path).expect("agent config");
    config.push_str(&format!(
        "\n{FAILING_MONITOR}\n[tickets]\nplugin = \"ticket-webhook\"\ntenant = \"acme\"\n\
         secrets-file = {:?}\nretry-initial = \"1s\"\nretry-max = \"2s\"\n\
         [tickets.config]\nurl = \"{origin}/hooks/warden\"\n\
         respond-by-pointer = \"/sla/respond_by\"\nresolve-by-pointer = \"/sla/resolve_by\"\n",
        secrets.display().to_string()
    ));
    std::fs::write(&config_path, config).expect("agent config");
    acme.agent.crash_and_restart();

    // The PSA gets exactly one ticket for the incident.
    psa.server
        .wait_until("a ticket", |_| !psa.desk.tickets().is_empty());
    let ticket = &psa.desk.tickets()[0];
    assert!(
        ticket.external_ref.starts_with("warden:disk-zero:"),
        "{ticket:?}"
    );
    let id = format!("WH-{}", ticket.id);

    // The controller's report for the period shows it on the service's row, once the
    // escalation event has come through NATS.
    let today = chrono::Utc::now().date_naive();
    let from = (today - chrono::Days::new(1)).to_string();
    let to = (today + chrono::Days::new(2)).to_string();
    let args = [
        "report", "--tenant", "acme", "--from", &from, "--to", &to, "--format", "csv", "--output",
        "-",
    ];
    let wanted = format!("ticket-webhook:{id}");
    let row = wait_for("the ticket in the report", || {
        fleet
            .fleet_human(&args)
            .lines()
            .find(|l| l.contains("disk-zero") && l.contains(&wanted))
            .map(str::to_string)
    });
    assert!(row.starts_with("acme,"), "the tenant's report: {row}");
    assert_eq!(psa.desk.tickets().len(), 1, "one ticket per incident");

    // The NOC's event stream has the escalation with the ticket and its SLA due time.
    let events = fleet.fleet(&["events", "--tenant", "acme"]);
    let escalation = events["events"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["kind"] == "escalation" && e["tickets"][0]["id"] == id.as_str())
        .unwrap_or_else(|| panic!("an escalation naming {id}: {events}"));
    assert_eq!(escalation["subject"], "disk-zero", "{escalation}");
    assert_eq!(
        escalation["tickets"][0]["resolve_by"], "2026-12-02T04:00:00Z",
        "the PSA's due time, read back: {escalation}"
    );
}
