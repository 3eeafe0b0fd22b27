//! Escalation to a PSA: the ticketing plugins against fake PSAs on 127.0.0.1 (fixture tests per
//! connector: the documented calls, authentication headers, status codes and JSON shapes, and
//! idempotent `open` after a lost answer), and the agent end to end: a monitor that escalates
//! opens exactly one ticket through the outbox, recurrence adds notes, resolve closes it, and a
//! PSA that is down, or loses an answer, or is down across a restart still gets the ticket
//! created exactly once; a drift alert opens a ticket naming what drifted and accepting the
//! change closes it.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use warden_agent::PluginManager;
use warden_agent::daemon::config::AgentConfig;
use warden_core::RunError;
use warden_core::RunRequest;
use warden_core::report::{Invocation, Output};
use warden_core::ticket::{IncidentRef, NewTicket, Ticket, TicketCall, TicketNote};
use warden_tests::Sandbox;
use warden_tests::fake_psa::{self, FakeConnectWise, FakeWebhook};

/// A manifest for the connector `plugin` that requests `origin` only.
fn connector_manifest(plugin: &str, origin: &str) -> String {
    format!(
        "name = {plugin:?}\nversion = \"0.1.0\"\nrole = \"ticketing\"\ncomponent = \"plugin.wasm\"\n\
         [capabilities]\nhttp = [{origin:?}]\n[limits]\ntimeout-ms = 30000\n"
    )
}

/// The policy allowing `origin` on loopback, and reads of the scratch dir.
fn policy(sb: &Sandbox, origin: &str) -> String {
    let s = sb.scratch().display().to_string();
    format!("[allow]\nhttp = [{origin:?}]\nhttp-networks = [\"127.0.0.0/8\"]\nfs-read = [{s:?}]\n")
}

fn connector(sb: &Sandbox, plugin: &str, origin: &str) -> PluginManager {
    let runner = sb.runner(&policy(sb, origin));
    sb.install(&runner, plugin, Some(&connector_manifest(plugin, origin)));
    runner
}

fn incident(tenant: &str) -> IncidentRef {
    IncidentRef {
        monitor: "root-disk".into(),
        incident: "root-disk-1764619200000".into(),
        external_ref: IncidentRef::external_ref_of("root-disk", "root-disk-1764619200000"),
        tenant: tenant.into(),
        host: "web-1".into(),
    }
}

fn open(tenant: &str) -> TicketCall {
    TicketCall::Open(NewTicket {
        incident: incident(tenant),
        summary: "[web-1] root-disk: remediation failed after 2 attempt(s)".into(),
        description: "Monitor `root-disk` escalated.".into(),
    })
}

fn note(id: &str, text: &str, close: bool) -> TicketCall {
    let n = TicketNote {
        incident: incident("acme"),
        ticket_id: id.into(),
        text: text.into(),
    };
    if close {
        TicketCall::Close(n)
    } else {
        TicketCall::Note(n)
    }
}

fn call(
    runner: &PluginManager,
    plugin: &str,
    config: &Value,
    c: TicketCall,
) -> Result<Ticket, RunError> {
    match runner
        .run(&RunRequest::new(plugin, Invocation::Ticket(c)).with_config(config.clone()))
        .result
    {
        Ok(Output::Ticket(t)) => Ok(t),
        Ok(other) => panic!("not a ticket: {other:?}"),
        Err(e) => Err(e),
    }
}

fn plugin_error(r: Result<Ticket, RunError>) -> (String, String) {
    match r {
        Err(RunError::Plugin { code, message }) => (code, message),
        other => panic!("expected a plugin error, got {other:?}"),
    }
}

fn webhook_config(url: &str) -> Value {
    json!({
        "url": format!("{url}/hooks/warden"),
        "respond-by-pointer": "/sla/respond_by",
        "resolve-by-pointer": "/sla/resolve_by",
        "secrets": { "hmac-key": fake_psa::WEBHOOK_HMAC_KEY },
    })
}

#[test]
pub(crate) fn webhook_opens_signed_once_per_key_then_notes_and_closes() {
    let hook = FakeWebhook::start();
    let sb = Sandbox::new();
    let runner = connector(&sb, "ticket-webhook", &hook.server.origin());
    let config = webhook_config(&hook.server.origin());

    let t = call(&runner, "ticket-webhook", &config, open("acme")).expect("opened");
    assert_eq!(t.id, "WH-1001");
    assert_eq!(t.respond_by.as_deref(), Some("2026-12-01T21:00:00Z"));
    assert_eq!(t.resolve_by.as_deref(), Some("2026-12-02T04:00:00Z"));
    // A retry of the same open carries the same idempotency key: the receiver answers it again
    // and creates nothing.
    let again = call(&runner, "ticket-webhook", &config, open("acme")).expect("again");
    assert_eq!(again.id, "WH-1001");
    assert_eq!(hook.desk.tickets().len(), 1);

    call(
        &runner,
        "ticket-webhook",
        &config,
        note("WH-1001", "still failing", false),
    )
    .expect("noted");
    call(
        &runner,
        "ticket-webhook",
        &config,
        note("WH-1001", "resolved", true),
    )
    .expect("closed");
    let [ticket] = hook.desk.tickets().try_into().expect("one ticket");
    assert_eq!(ticket.notes, ["still failing", "resolved"]);
    assert_eq!(ticket.status, "closed");
    assert_eq!(
        ticket.external_ref,
        "warden:root-disk:root-disk-1764619200000"
    );

    let first = &hook.server.requests()[0];
    assert_eq!(first.target, "/hooks/warden");
    assert_eq!(
        first.header("idempotency-key"),
        Some("warden:root-disk:root-disk-1764619200000:open")
    );
    assert!(
        first
            .header("x-warden-signature")
            .is_some_and(|s| s.starts_with("sha256="))
    );
    let audit = std::fs::read_to_string(sb.data_dir().join("audit/audit.log")).expect("audit");
    assert!(
        !audit.contains(fake_psa::WEBHOOK_HMAC_KEY),
        "the key reached the audit log"
    );
}

#[test]
fn a_webhook_signed_with_the_wrong_key_is_refused_with_its_status() {
    let hook = FakeWebhook::start();
    let sb = Sandbox::new();
    let runner = connector(&sb, "ticket-webhook", &hook.server.origin());
    let mut config = webhook_config(&hook.server.origin());
    config["secrets"]["hmac-key"] = json!("not-the-key");
    let (code, message) = plugin_error(call(&runner, "ticket-webhook", &config, open("acme")));
    assert_eq!(code, "http-401", "{message}");
    assert!(!message.contains("not-the-key"), "{message}");
    assert!(hook.desk.tickets().is_empty());
}

fn connectwise_config(url: &str) -> Value {
    json!({
        "url": url,
        "company-id": fake_psa::CW_COMPANY,
        "client-id": fake_psa::CW_CLIENT_ID,
        "tenants": {
            "acme": { "company": "ACME", "board": "Managed Services", "priority": "Priority 2 - High",
                      "close-status": "Closed (resolved)" },
            "default": { "company": "MSP", "board": "Service Desk", "priority": "Priority 3 - Normal Response" },
        },
        "secrets": { "public-key": fake_psa::CW_PUBLIC, "private-key": fake_psa::CW_PRIVATE },
    })
}

#[test]
pub(crate) fn connectwise_creates_with_basic_auth_and_client_id_maps_the_tenant_and_reads_the_sla()
{
    let cw = FakeConnectWise::start();
    let sb = Sandbox::new();
    let runner = connector(&sb, "ticket-connectwise", &cw.server.origin());
    let config = connectwise_config(&cw.server.origin());

    let t = call(&runner, "ticket-connectwise", &config, open("acme")).expect("opened");
    assert_eq!(t.id, "1001");
    // dateEntered 20:00 + respondMinutes 60 / resolveMinutes 480.
    assert_eq!(t.respond_by.as_deref(), Some("2026-12-01T21:00:00Z"));
    assert_eq!(t.resolve_by.as_deref(), Some("2026-12-02T04:00:00Z"));
    let [ticket] = cw.desk.tickets().try_into().expect("one ticket");
    assert_eq!(
        ticket.placed,
        json!({ "board": {"name": "Managed Services"}, "company": {"identifier": "ACME"},
                "priority": {"name": "Priority 2 - High"} })
    );
    let methods: Vec<String> = cw
        .server
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.target))
        .collect();
    assert_eq!(
        methods,
        [
            "GET /v4_6_release/apis/3.0/service/tickets?conditions=externalXRef%3D%22warden%3Aroot-disk%3Aroot-disk-1764619200000%22",
            "POST /v4_6_release/apis/3.0/service/tickets",
        ]
    );

    call(
        &runner,
        "ticket-connectwise",
        &config,
        note("1001", "still failing", false),
    )
    .expect("noted");
    let closed = call(
        &runner,
        "ticket-connectwise",
        &config,
        note("1001", "resolved", true),
    )
    .expect("closed");
    assert_eq!(closed.id, "1001");
    let [ticket] = cw.desk.tickets().try_into().expect("one ticket");
    assert_eq!(ticket.notes, ["still failing", "resolved"]);
    assert_eq!(ticket.status, "Closed (resolved)");

    // A tenant without its own entry goes to the default board.
    let other = call(&runner, "ticket-connectwise", &config, open("globex")).expect("default");
    assert_eq!(
        other.id, "1001",
        "the same incident: found by its external reference"
    );
}

#[test]
fn connectwise_finds_the_ticket_whose_create_answer_was_lost_instead_of_creating_another() {
    let cw = FakeConnectWise::start();
    cw.desk
        .faults
        .lose_first_create
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let sb = Sandbox::new();
    let runner = connector(&sb, "ticket-connectwise", &cw.server.origin());
    let config = connectwise_config(&cw.server.origin());
    let (code, _) = plugin_error(call(&runner, "ticket-connectwise", &config, open("acme")));
    assert_eq!(code, "unreachable");
    assert_eq!(cw.desk.tickets().len(), 1, "the PSA did create it");
    let t = call(&runner, "ticket-connectwise", &config, open("acme")).expect("the retry");
    assert_eq!(t.id, "1001");
    assert_eq!(cw.desk.tickets().len(), 1, "no duplicate");
}

#[test]
fn connectwise_with_the_wrong_keys_is_http_401_and_a_down_psa_503() {
    let cw = FakeConnectWise::start();
    let sb = Sandbox::new();
    let runner = connector(&sb, "ticket-connectwise", &cw.server.origin());
    let mut config = connectwise_config(&cw.server.origin());
    config["secrets"]["private-key"] = json!("wrong");
    let (code, message) = plugin_error(call(&runner, "ticket-connectwise", &config, open("acme")));
    assert_eq!(code, "http-401", "{message}");
    assert!(
        !message.contains("wrong") && !message.contains(fake_psa::CW_PUBLIC),
        "{message}"
    );
    cw.desk
        .faults
        .down_for
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let config = connectwise_config(&cw.server.origin());
    let (code, _) = plugin_error(call(&runner, "ticket-connectwise", &config, open("acme")));
    assert_eq!(code, "http-503");
    assert!(cw.desk.tickets().is_empty());
}

// ---- End to end, through the agent ----

/// The agent (`warden_agent::daemon::serve`) on a thread with its own runtime, as `warden
/// serve` runs it; stopped (as by SIGTERM) on [`Agent::stop`] or drop.
struct Agent {
    stop: Option<tokio::sync::oneshot::Sender<String>>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl Agent {
    fn start(runner: PluginManager, config: AgentConfig) -> Agent {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<String>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || -> Result<(), String> {
            let runtime =
                warden_agent::daemon::runtime::build(&config).map_err(|e| e.to_string())?;
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .map_err(|e| e.to_string())?;
                let shutdown = async move { stop_rx.await.unwrap_or_else(|_| "dropped".into()) };
                warden_agent::daemon::serve(runner, config, listener, shutdown, |_| {
                    let _ = ready_tx.send(());
                })
                .await
                .map_err(|e| e.to_string())
            })
        });
        if ready_rx.recv().is_err() {
            panic!("the agent ended before it served: {:?}", thread.join());
        }
        Agent {
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send("test".into());
        }
        if let Some(t) = self.thread.take() {
            t.join()
                .expect("the agent thread")
                .expect("the agent stopped cleanly");
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send("dropped".into());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A monitor `flagged` that fails while `flag` exists, escalates at once (no remediation),
/// and whose escalations go to the webhook at `origin`.
fn agent_config(sb: &Sandbox, origin: &str, flag: &Path, secrets: &Path) -> AgentConfig {
    agent_config_with(sb, origin, secrets, &flag_monitor(flag))
}

/// The monitor `flagged` (TOML): failing while `flag` exists, no remediation.
fn flag_monitor(flag: &Path) -> String {
    format!(
        r#"
[[monitor]]
name = "flagged"
plugin = "flag"
config = {{ path = {flag:?} }}
interval = "1s"
failures-to-trigger = 2
"#,
        flag = flag.display().to_string(),
    )
}

/// An agent config with `monitor` (TOML) and its escalations going to the webhook at
/// `origin`, signed with the key in `secrets`.
fn agent_config_with(sb: &Sandbox, origin: &str, secrets: &Path, monitor: &str) -> AgentConfig {
    let tickets = format!(
        r#"
[tickets]
plugin = "ticket-webhook"
tenant = "acme"
secrets-file = {secrets:?}
retry-initial = "1s"
retry-max = "2s"

[tickets.config]
url = "{origin}/hooks/warden"
respond-by-pointer = "/sla/respond_by"
resolve-by-pointer = "/sla/resolve_by"
"#,
        secrets = secrets.display().to_string(),
    );
    agent_config_from(sb, monitor, &tickets)
}

/// The test agent's API section, then `monitor` and `tickets` (TOML).
fn agent_config_from(sb: &Sandbox, monitor: &str, tickets: &str) -> AgentConfig {
    let text = format!(
        r#"
[api]
listen = "127.0.0.1:0"
[[api.token]]
name = "noc"
role = "viewer"
sha256 = "{hash}"
{monitor}
{tickets}"#,
        hash = warden_agent::grpc::auth::token_hash("tok-ticket-tests-0123456789"),
    );
    AgentConfig::parse(&text, "test agent.toml", sb.dir.path())
        .unwrap_or_else(|e| panic!("agent config: {e}\n{text}"))
}

/// The sandbox's agent: the flag check and the webhook connector installed.
fn agent_runner(sb: &Sandbox, origin: &str) -> PluginManager {
    let runner = sb.runner(&policy(sb, origin));
    let s = sb.scratch().display().to_string();
    let flag = format!(
        "name = \"flag\"\nversion = \"0.1.0\"\nrole = \"check\"\ncomponent = \"plugin.wasm\"\n\
         [capabilities.fs]\nread = [{s:?}]\n"
    );
    sb.install(&runner, "flag", Some(&flag));
    sb.install(
        &runner,
        "ticket-webhook",
        Some(&connector_manifest("ticket-webhook", origin)),
    );
    runner
}

fn secrets_file(sb: &Sandbox) -> PathBuf {
    secrets_file_of(sb, &json!({ "hmac-key": fake_psa::WEBHOOK_HMAC_KEY }))
}

/// `secrets` as the agent's secrets file, readable by its owner only (as the agent demands).
fn secrets_file_of(sb: &Sandbox, secrets: &Value) -> PathBuf {
    let path = sb.dir.path().join("psa-secrets.json");
    std::fs::write(&path, secrets.to_string()).expect("secrets");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path
}

fn posts_with(requests: &[warden_tests::http_server::Recorded], event: &str) -> usize {
    requests
        .iter()
        .filter(|r| serde_json::from_slice::<Value>(&r.body).is_ok_and(|b| b["event"] == event))
        .count()
}

#[test]
fn an_escalation_opens_one_ticket_once_the_psa_is_back_notes_recurrence_and_closes_on_resolve() {
    let hook = FakeWebhook::start();
    // Down for the first two attempts, then it creates the ticket but the answer is lost: the
    // third attempt's retry must get the same ticket, not a second one.
    hook.desk
        .faults
        .down_for
        .store(2, std::sync::atomic::Ordering::SeqCst);
    hook.desk
        .faults
        .lose_first_create
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let sb = Sandbox::new();
    let origin = hook.server.origin();
    let flag = sb.scratch().join("flag");
    std::fs::write(&flag, "up").expect("raise the flag");
    let runner = agent_runner(&sb, &origin);
    let config = agent_config(&sb, &origin, &flag, &secrets_file(&sb));
    let mut agent = Agent::start(runner, config);

    // Recurrence: every 2 failing checks after the escalation, a note.
    hook.server
        .wait_until("a recurrence note", |r| posts_with(r, "note") >= 1);
    std::fs::remove_file(&flag).expect("lower the flag");
    hook.server
        .wait_until("the close", |r| posts_with(r, "close") >= 1);
    agent.stop();

    let [ticket] = hook.desk.tickets().try_into().expect("exactly one ticket");
    assert_eq!(ticket.status, "closed");
    assert!(
        ticket
            .summary
            .contains("flagged: no remediation runbook configured"),
        "{ticket:?}"
    );
    assert!(
        ticket.notes.iter().any(|n| n.starts_with("Still failing")),
        "{ticket:?}"
    );
    assert!(
        ticket
            .notes
            .last()
            .is_some_and(|n| n.starts_with("Resolved")),
        "{ticket:?}"
    );
    let requests = hook.server.requests();
    assert!(
        posts_with(&requests, "open") >= 4,
        "two 503s, one lost answer, one retry"
    );

    let history = warden_history::History::open(&sb.data_dir()).expect("history");
    let incident = ticket
        .external_ref
        .trim_start_matches("warden:flagged:")
        .to_string();
    let recorded = history
        .incident_ticket(&incident)
        .expect("read")
        .expect("recorded");
    assert_eq!(recorded.ticket_id, "WH-1001");
    assert_eq!(recorded.respond_by.as_deref(), Some("2026-12-01T21:00:00Z"));
    assert_eq!(recorded.resolve_by.as_deref(), Some("2026-12-02T04:00:00Z"));
    assert_eq!(recorded.status, "closed");
    let audit = std::fs::read_to_string(sb.data_dir().join("audit/audit.log")).expect("audit");
    for kind in [
        "ticket.queued",
        "ticket.retry",
        "ticket.opened",
        "ticket.noted",
        "ticket.closed",
    ] {
        assert!(
            audit.contains(&format!("\"{kind}\"")),
            "no {kind} in the audit log"
        );
    }
    assert!(
        !audit.contains(fake_psa::WEBHOOK_HMAC_KEY),
        "the secret reached the audit log"
    );
}

#[test]
fn a_ticket_queued_while_the_psa_is_down_survives_a_restart_and_is_created_once() {
    let hook = FakeWebhook::start();
    hook.desk
        .faults
        .down_for
        .store(usize::MAX, std::sync::atomic::Ordering::SeqCst);
    let sb = Sandbox::new();
    let origin = hook.server.origin();
    let flag = sb.scratch().join("flag");
    std::fs::write(&flag, "up").expect("raise the flag");
    let secrets = secrets_file(&sb);
    let mut agent = Agent::start(
        agent_runner(&sb, &origin),
        agent_config(&sb, &origin, &flag, &secrets),
    );
    hook.server
        .wait_until("a first attempt", |r| posts_with(r, "open") >= 1);
    agent.stop();
    drop(agent);
    assert!(hook.desk.tickets().is_empty());
    let store =
        warden_agent::tickets::store::TicketStore::open(&sb.data_dir().join("tickets.sqlite"))
            .expect("outbox");
    assert_eq!(store.queued().expect("queued"), 1, "the open waits on disk");
    drop(store);

    hook.desk
        .faults
        .down_for
        .store(0, std::sync::atomic::Ordering::SeqCst);
    let runner = sb.runner(&policy(&sb, &origin));
    let _agent = Agent::start(runner, agent_config(&sb, &origin, &flag, &secrets));
    hook.server
        .wait_until("the ticket", |_| !hook.desk.tickets().is_empty());
    assert_eq!(hook.desk.tickets().len(), 1);
}

/// A JSON value as a TOML inline value (the connector configs: strings, integers, objects).
fn inline_toml(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let fields: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{} = {}", json!(k), inline_toml(v)))
                .collect();
            format!("{{ {} }}", fields.join(", "))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(inline_toml).collect();
            format!("[{}]", items.join(", "))
        }
        // JSON's strings, integers and booleans are TOML's too.
        other => other.to_string(),
    }
}

/// The agent end to end with each PSA connector (the webhook's own tests are above): the
/// `flagged` monitor escalates, the PSA loses the answer to the first create, and the outbox's
/// retry finds that ticket instead of making a second; the ticket's id and the SLA due times the
/// PSA gave are recorded on the incident, and resolving the incident closes the ticket with
/// the tenant's close status.
#[test]
fn each_psa_connector_opens_one_ticket_through_the_agent_and_closes_it_on_resolve() {
    use warden_tests::fake_psa::{FakeAutotask, FakeHalo};
    struct Case {
        plugin: &'static str,
        desk: std::sync::Arc<fake_psa::Desk>,
        origin: String,
        config: Value,
        closed: &'static str,
        due: (&'static str, &'static str),
        server: warden_tests::psa_server::PsaServer,
    }
    let cw = FakeConnectWise::start();
    let at = FakeAutotask::start();
    let halo = FakeHalo::start();
    let cases = [
        Case {
            plugin: "ticket-connectwise",
            desk: cw.desk.clone(),
            origin: cw.server.origin(),
            config: connectwise_config(&cw.server.origin()),
            closed: "Closed (resolved)",
            due: ("2026-12-01T21:00:00Z", "2026-12-02T04:00:00Z"),
            server: cw.server,
        },
        Case {
            plugin: "ticket-autotask",
            desk: at.desk.clone(),
            origin: at.server.origin(),
            config: autotask_config(&at.server.origin()),
            closed: "5",
            due: (fake_psa::AT_RESPOND_BY, fake_psa::AT_RESOLVE_BY),
            server: at.server,
        },
        Case {
            plugin: "ticket-halo",
            desk: halo.desk.clone(),
            origin: halo.server.origin(),
            config: halo_config(&halo.server.origin()),
            closed: "9",
            due: (fake_psa::HALO_RESPOND_BY, fake_psa::HALO_FIX_BY),
            server: halo.server,
        },
    ];
    for case in cases {
        case.desk
            .faults
            .lose_first_create
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let sb = Sandbox::new();
        let flag = sb.scratch().join("flag");
        std::fs::write(&flag, "up").expect("raise the flag");
        let runner = agent_runner(&sb, &case.origin);
        sb.install(
            &runner,
            case.plugin,
            Some(&connector_manifest(case.plugin, &case.origin)),
        );
        // The credentials go to the secrets file, the rest to `[tickets.config]`.
        let mut config = case.config.clone();
        let secrets = config
            .as_object_mut()
            .and_then(|c| c.remove("secrets"))
            .expect("secrets");
        let tickets = format!(
            "[tickets]\nplugin = {:?}\ntenant = \"acme\"\nsecrets-file = {}\n\
             retry-initial = \"1s\"\nretry-max = \"2s\"\nconfig = {}\n",
            case.plugin,
            json!(secrets_file_of(&sb, &secrets).display().to_string()),
            inline_toml(&config),
        );
        let config = agent_config_from(&sb, &flag_monitor(&flag), &tickets);
        let mut agent = Agent::start(runner, config);
        let desk = &case.desk;
        // The fake wakes this on every request it records; the desk says what it holds.
        case.server
            .wait_until("a ticket", |_| !desk.tickets().is_empty());
        std::fs::remove_file(&flag).expect("lower the flag");
        case.server.wait_until("the close", |_| {
            desk.tickets().iter().any(|t| t.status == case.closed)
        });
        agent.stop();

        let [ticket] = case
            .desk
            .tickets()
            .try_into()
            .unwrap_or_else(|all: Vec<_>| {
                panic!("{}: not exactly one ticket: {all:?}", case.plugin)
            });
        assert!(
            ticket
                .summary
                .contains("flagged: no remediation runbook configured"),
            "{}: {ticket:?}",
            case.plugin
        );
        let incident = ticket
            .external_ref
            .strip_prefix("warden:flagged:")
            .unwrap_or_else(|| panic!("{}: {ticket:?}", case.plugin))
            .to_string();
        let history = warden_history::History::open(&sb.data_dir()).expect("history");
        let recorded = history
            .incident_ticket(&incident)
            .expect("read")
            .unwrap_or_else(|| panic!("{}: no ticket on {incident}", case.plugin));
        assert_eq!(recorded.plugin, case.plugin);
        assert_eq!(recorded.ticket_id, ticket.id.to_string(), "{}", case.plugin);
        assert_eq!(
            recorded.respond_by.as_deref(),
            Some(case.due.0),
            "{}",
            case.plugin
        );
        assert_eq!(
            recorded.resolve_by.as_deref(),
            Some(case.due.1),
            "{}",
            case.plugin
        );
        assert_eq!(recorded.status, "closed", "{}", case.plugin);
    }
}

fn autotask_config(origin: &str) -> Value {
    json!({
        "url": format!("{origin}/ATServicesRest"),
        "tenants": { "acme": { "company-id": 174, "queue-id": 29683481, "priority": 2,
                               "complete-status": 5 } },
        "secrets": { "integration-code": fake_psa::AT_INTEGRATION_CODE,
                     "username": fake_psa::AT_USERNAME, "secret": fake_psa::AT_SECRET },
    })
}

#[test]
pub(crate) fn autotask_sends_its_three_headers_maps_the_queue_and_reads_the_due_dates() {
    use warden_tests::fake_psa::FakeAutotask;
    let at = FakeAutotask::start();
    at.desk
        .faults
        .lose_first_create
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let sb = Sandbox::new();
    let runner = connector(&sb, "ticket-autotask", &at.server.origin());
    let config = autotask_config(&at.server.origin());
    let (code, _) = plugin_error(call(&runner, "ticket-autotask", &config, open("acme")));
    assert_eq!(code, "unreachable", "the create's answer was lost");
    let t = call(&runner, "ticket-autotask", &config, open("acme")).expect("the retry finds it");
    assert_eq!(t.id, "1001");
    assert_eq!(t.respond_by.as_deref(), Some(fake_psa::AT_RESPOND_BY));
    assert_eq!(t.resolve_by.as_deref(), Some(fake_psa::AT_RESOLVE_BY));
    call(
        &runner,
        "ticket-autotask",
        &config,
        note("1001", "still failing", false),
    )
    .expect("noted");
    call(
        &runner,
        "ticket-autotask",
        &config,
        note("1001", "resolved", true),
    )
    .expect("closed");
    let [ticket] = at.desk.tickets().try_into().expect("exactly one ticket");
    assert_eq!(
        ticket.placed,
        json!({ "companyID": 174, "queueID": 29683481, "priority": 2 })
    );
    assert_eq!(ticket.notes, ["still failing", "resolved"]);
    assert_eq!(ticket.status, "5");
    let (code, _) = plugin_error(call(&runner, "ticket-autotask", &config, open("globex")));
    assert_eq!(code, "bad-config", "no mapping for globex and no default");
}

#[test]
fn autotask_keeps_a_long_reference_within_external_id_and_stable() {
    use warden_tests::fake_psa::FakeAutotask;
    let at = FakeAutotask::start();
    let sb = Sandbox::new();
    let runner = connector(&sb, "ticket-autotask", &at.server.origin());
    let config = autotask_config(&at.server.origin());
    let long = TicketCall::Open(NewTicket {
        incident: IncidentRef {
            external_ref: format!("warden:{}:{}-1764619200000", "m".repeat(60), "m".repeat(60)),
            ..incident("acme")
        },
        summary: "s".into(),
        description: "d".into(),
    });
    let first = call(&runner, "ticket-autotask", &config, long.clone()).expect("opened");
    let second = call(&runner, "ticket-autotask", &config, long).expect("found");
    assert_eq!(first.id, second.id);
    let [ticket] = at.desk.tickets().try_into().expect("one ticket");
    assert!(
        ticket.external_ref.len() <= 50 && ticket.external_ref.starts_with("warden:"),
        "{ticket:?}"
    );
}

fn halo_config(origin: &str) -> Value {
    json!({
        "url": origin,
        "tenants": { "default": { "client-id": 12, "tickettype-id": 3, "priority-id": 2,
                                  "closed-status-id": 9 } },
        "secrets": { "client-id": fake_psa::HALO_CLIENT_ID, "client-secret": fake_psa::HALO_CLIENT_SECRET },
    })
}

#[test]
pub(crate) fn halo_gets_a_client_credentials_token_then_creates_notes_and_closes_with_bearer() {
    use warden_tests::fake_psa::FakeHalo;
    let halo = FakeHalo::start();
    halo.desk
        .faults
        .lose_first_create
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let sb = Sandbox::new();
    let runner = connector(&sb, "ticket-halo", &halo.server.origin());
    let config = halo_config(&halo.server.origin());
    let (code, _) = plugin_error(call(&runner, "ticket-halo", &config, open("acme")));
    assert_eq!(code, "unreachable");
    let t = call(&runner, "ticket-halo", &config, open("acme")).expect("the retry finds it");
    assert_eq!(t.id, "1001");
    assert_eq!(t.respond_by.as_deref(), Some(fake_psa::HALO_RESPOND_BY));
    assert_eq!(t.resolve_by.as_deref(), Some(fake_psa::HALO_FIX_BY));
    call(
        &runner,
        "ticket-halo",
        &config,
        note("1001", "resolved", true),
    )
    .expect("closed");
    let [ticket] = halo.desk.tickets().try_into().expect("exactly one ticket");
    assert_eq!(
        ticket.placed,
        json!({ "client_id": 12, "tickettype_id": 3, "priority_id": 2 })
    );
    assert_eq!(ticket.notes, ["resolved"]);
    assert_eq!(ticket.status, "9");
    let token_posts = halo
        .server
        .requests()
        .iter()
        .filter(|r| r.target == "/auth/token")
        .count();
    assert_eq!(token_posts, 3, "one token per call");
    let mut wrong = halo_config(&halo.server.origin());
    wrong["secrets"]["client-secret"] = json!("nope");
    let (code, message) = plugin_error(call(&runner, "ticket-halo", &wrong, open("acme")));
    assert_eq!(code, "http-401", "{message}");
    assert!(!message.contains("nope"), "{message}");
}

/// The embedded default policy (the inventory's reads), directory installs allowed, and the
/// webhook at `origin` on loopback.
fn drift_policy(origin: &str) -> String {
    let dev = warden_core::policy::DEFAULT_POLICY
        .replace("allow-unsigned = false", "allow-unsigned = true")
        .replacen(
            "[allow]\n",
            &format!("[allow]\nhttp = [{origin:?}]\nhttp-networks = [\"127.0.0.0/8\"]\n"),
            1,
        );
    assert!(dev.contains("http-networks"), "the [allow] table was found");
    dev
}

#[test]
fn a_drift_alert_opens_a_ticket_naming_the_change_and_accepting_the_change_closes_it() {
    use warden_automation::baseline::{Snapshot, record};
    let hook = FakeWebhook::start();
    let sb = Sandbox::new();
    let origin = hook.server.origin();
    let runner = sb.runner(&drift_policy(&origin));
    sb.install(&runner, "inventory", None);
    sb.install(
        &runner,
        "ticket-webhook",
        Some(&connector_manifest("ticket-webhook", &origin)),
    );
    // This machine's inventory now; the baseline holds one package more (a tool that was
    // approved), so the drift check finds it removed. Listening ports are left out of this
    // inventory: the other tests' servers come and go on this machine while this one runs.
    let inventory_config = json!({ "listening_ports": false });
    let report = runner
        .run(&RunRequest::new("inventory", Invocation::Discover).with_config(inventory_config));
    let Ok(Output::Facts(mut groups)) = report.result else {
        panic!("no inventory: {:?}", report.result);
    };
    let history = warden_history::History::open(&sb.data_dir()).expect("history");
    let machine = Snapshot::from_facts(&groups);
    groups.push(
        serde_json::from_value(json!({
            "kind": "package",
            "facts": { "name": "approved-tool", "version": "1.0" }
        }))
        .expect("a fact group"),
    );
    record::save(
        &history,
        &Snapshot::from_facts(&groups),
        "ada",
        "golden image",
        "test",
    )
    .expect("baseline 1");

    // The inventory's config as TOML's inline table.
    let monitor = r#"
[[monitor]]
name = "config-drift"
plugin = "builtin:drift"
config = { plugin = "inventory", config = { listening_ports = false } }
interval = "1s"
failures-to-trigger = 1
fail-on = "critical"
"#;
    let config = agent_config_with(&sb, &origin, &secrets_file(&sb), monitor);
    let mut agent = Agent::start(runner, config);
    hook.server
        .wait_until("the drift ticket", |r| posts_with(r, "open") >= 1);
    let [ticket] = hook.desk.tickets().try_into().expect("one ticket");
    assert!(ticket.summary.contains("config-drift"), "{ticket:?}");
    assert!(
        ticket.description.contains("since baseline 1")
            && ticket
                .description
                .contains("removed package approved-tool 1.0"),
        "the ticket names what drifted: {ticket:?}"
    );

    // The change is accepted (as `warden baseline accept` does: the latest inventory becomes
    // the next version); the next check is healthy, the incident resolves, the ticket closes.
    let (_, seen) = record::inventory(&history, "inventory").expect("the check's inventory");
    assert_eq!(seen, machine, "the check sees the machine as the test did");
    record::save(&history, &seen, "ada", "tool retired CHG-7", "test").expect("baseline 2");
    hook.server
        .wait_until("the close", |r| posts_with(r, "close") >= 1);
    agent.stop();
    let [ticket] = hook.desk.tickets().try_into().expect("still one ticket");
    assert_eq!(ticket.status, "closed", "{ticket:?}");
    let audit = std::fs::read_to_string(sb.data_dir().join("audit/audit.log")).expect("audit");
    for kind in [
        "automation.incident-opened",
        "ticket.opened",
        "ticket.closed",
    ] {
        assert!(
            audit.contains(&format!("\"{kind}\"")),
            "no {kind} in the audit log"
        );
    }
}
