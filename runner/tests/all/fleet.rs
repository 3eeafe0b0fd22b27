//! The agent's fleet link end to end: a real nats-server 2.12.8 in operator mode (the
//! accounts of a `FleetAuthority`), the agent in this process (`daemon::serve` with a
//! `[fleet]` section), enrolled by `warden enroll` against a test Enrollment service that the
//! authority answers, and the controller played by a plain NATS client with the controller's
//! credentials: it publishes commands and reads the results stream (and, with a core
//! subscription, every publish of a result, duplicates included).
//!
//! Waits are on messages (bounded); "not run twice" is counted in the agent's audit log
//! (`run.queued` records name `requested_by: fleet:<run>`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use tokio_stream::StreamExt as _;
use warden_fleet_identity::{
    AgentId, DenyList, EnrollmentRequest, FleetAuthority, PendingEnrollment, SpentTokens, TenantId,
    enroll::ENROLLMENT_TOKEN_LIFETIME, subjects, unix_now,
};
use warden_fleet_wire::{
    AgentEvent, Bundle, Command, EventKind, Heartbeat, MSG_ID_HEADER, RefusalReason, RunId,
    RunResult, RunRunbook, RunStatus, UnixMillis, decode, encode,
};
use warden_natstest::{Nats, Options, ServerTls};
use warden_proto::fleet as pb;

use crate::daemon::{Agent, sleepy_runbook};

/// Bound on every wait for something that should happen.
pub(crate) const WAIT: Duration = Duration::from_secs(30);
const STREAM: &str = "RESULTS";

pub(crate) const RUNBOOK: &str = r#"
name = "fleet-hello"

[[steps]]
id = "talk"
plugin = "calls"
action = "check"
config = { kind = "log", calls = 1 }
"#;

/// The controller's side of enrollment, answered by the authority (what the controller's
/// gRPC service does, minus its store).
struct Enroller {
    authority: Arc<Mutex<FleetAuthority>>,
    spent: Mutex<SpentTokens>,
    pending: Mutex<HashMap<String, PendingEnrollment>>,
    nats_url: String,
}

#[tonic::async_trait]
impl pb::enrollment_server::Enrollment for Enroller {
    async fn begin(
        &self,
        request: tonic::Request<pb::BeginEnrollmentRequest>,
    ) -> Result<tonic::Response<pb::EnrollmentChallenge>, tonic::Status> {
        let r = request.into_inner();
        let request = EnrollmentRequest {
            token: r.token,
            tenant: r.tenant,
            agent: r.agent,
            name: r.name,
        };
        let pending = {
            let authority = self.authority.lock().expect("authority");
            let spent = self.spent.lock().expect("spent");
            authority
                .begin_enrollment(&request, &spent, &DenyList::new(), unix_now())
                .map_err(|e| tonic::Status::permission_denied(e.to_string()))?
        };
        let c = pending.challenge.clone();
        self.pending
            .lock()
            .expect("pending")
            .insert(c.token_id.clone(), pending);
        Ok(tonic::Response::new(pb::EnrollmentChallenge {
            token_id: c.token_id,
            tenant: c.tenant.to_string(),
            agent: c.agent.to_string(),
            nonce: c.nonce,
            expires_at: c.expires_at,
        }))
    }

    async fn complete(
        &self,
        request: tonic::Request<pb::CompleteEnrollmentRequest>,
    ) -> Result<tonic::Response<pb::EnrollmentResult>, tonic::Status> {
        let r = request.into_inner();
        let pending = self
            .pending
            .lock()
            .expect("pending")
            .remove(&r.token_id)
            .ok_or_else(|| tonic::Status::failed_precondition("no such challenge"))?;
        let answer = warden_fleet_identity::ChallengeResponse {
            token_id: r.token_id,
            agent: r.agent,
            nonce: r.nonce,
            signature: r.signature,
        };
        let enrolled = {
            let authority = self.authority.lock().expect("authority");
            let mut spent = self.spent.lock().expect("spent");
            authority
                .complete_enrollment(&pending, &answer, &mut spent, &DenyList::new(), unix_now())
                .map_err(|e| tonic::Status::permission_denied(e.to_string()))?
        };
        Ok(tonic::Response::new(pb::EnrollmentResult {
            tenant: enrolled.jwt.tenant.to_string(),
            agent: enrolled.jwt.agent.to_string(),
            jwt: enrolled.jwt.jwt,
            expires_at: enrolled.jwt.expires_at,
            nats_urls: vec![self.nats_url.clone()],
            tags: enrolled.tags,
        }))
    }
}

/// A NATS server in operator mode, the controller's client, the results stream, one enrolled
/// agent's credentials and a publisher key the agent trusts.
pub(crate) struct Fleet {
    pub(crate) nats: Nats,
    pub(crate) authority: Arc<Mutex<FleetAuthority>>,
    pub(crate) acme: TenantId,
    pub(crate) controller: async_nats::Client,
    pub(crate) keys: tempfile::TempDir,
    pub(crate) creds: PathBuf,
    pub(crate) agent_id: AgentId,
    /// With TLS on the server: the CA the controller's client (and a trusting agent) uses.
    ca_file: Option<PathBuf>,
}

pub(crate) fn warden(args: &[&str], data: &Path) -> std::process::Output {
    Process::new(env!("CARGO_BIN_EXE_warden"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .expect("warden runs")
}

pub(crate) fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Fleet {
    pub(crate) async fn start() -> Fleet {
        Fleet::start_with(None).await
    }

    /// With `tls`, the server takes TLS clients only: (its certificate, the CA that signed it).
    pub(crate) async fn start_with(tls: Option<(ServerTls, PathBuf)>) -> Fleet {
        let mut authority = FleetAuthority::generate();
        let acme = TenantId::new("acme").expect("tenant");
        authority.add_tenant(&acme).expect("acme");
        let config = authority
            .server_config(&DenyList::new(), "jwt", unix_now() - 1)
            .expect("config");
        let nats = tokio::task::block_in_place(|| {
            Nats::start(
                1,
                Options {
                    extra_config: config,
                    tls: tls.as_ref().map(|(server, _)| server.clone()),
                    ..Options::default()
                },
            )
        })
        .expect("nats-server in operator mode (run `cargo xtask nats` first)");
        let ca_file = tls.map(|(_, ca)| ca);
        let creds = authority
            .controller_credentials(unix_now())
            .expect("controller creds");
        let mut options = async_nats::ConnectOptions::with_credentials(&creds.creds())
            .expect("creds")
            .retry_on_initial_connect();
        if let Some(ca) = &ca_file {
            options = options.require_tls(true).add_root_certificates(ca.clone());
        }
        // By name with TLS: the server's certificate may be for `localhost` only (the test of a
        // certificate for another name than the agent's `127.0.0.1`).
        let url = match &ca_file {
            Some(_) => nats.url(0).replacen("127.0.0.1", "localhost", 1),
            None => nats.url(0),
        };
        let controller = options.connect(url).await.expect("controller connects");
        create_stream(&controller).await;
        let authority = Arc::new(Mutex::new(authority));
        let keys = tempfile::tempdir().expect("tempdir");
        let creds = keys.path().join("agent/fleet.creds");
        let agent_id = enroll(&authority, &acme, &nats.url(0), &creds, keys.path()).await;
        for name in ["publisher", "stranger"] {
            ok(warden(
                &[
                    "key",
                    "generate",
                    "--out",
                    &keys.path().join(name).display().to_string(),
                ],
                &keys.path().join("data"),
            ));
        }
        Fleet {
            nats,
            authority,
            acme,
            controller,
            keys,
            creds,
            agent_id,
            ca_file,
        }
    }

    fn trust(&self) -> String {
        let public = std::fs::read_to_string(self.keys.path().join("publisher.pub")).expect("pub");
        format!(
            "[[trust.keys]]\nname = \"publisher\"\npublic-key = {:?}\n",
            public.trim()
        )
    }

    fn fleet_section(&self) -> String {
        match &self.ca_file {
            None => self.fleet_section_for(&self.nats.url(0), None),
            Some(ca) => self.fleet_section_for(&self.tls_url(), Some(ca)),
        }
    }

    /// `tls://127.0.0.1:<port>` of the server.
    pub(crate) fn tls_url(&self) -> String {
        self.nats.url(0).replacen("nats://", "tls://", 1)
    }

    /// A `[fleet]` section with this agent's credentials, reaching `url`, trusting `ca`.
    pub(crate) fn fleet_section_for(&self, url: &str, ca: Option<&Path>) -> String {
        let ca = ca
            .map(|ca| format!("ca-file = {:?}\n", ca.display().to_string()))
            .unwrap_or_default();
        format!(
            "[fleet]\nurls = [{url:?}]\ntenant = \"acme\"\ncredentials = {:?}\nheartbeat-interval-secs = 1\n{ca}[fleet.tags]\nrole = \"db\"\nsite = \"paris\"\n",
            self.creds.display().to_string()
        )
    }

    /// An agent of this fleet, with `fleet-hello` installed signed by the trusted publisher.
    pub(crate) fn agent(&self) -> Agent {
        self.agent_with(&[], "")
    }

    /// An agent with its own `[fleet]` section (and nothing installed).
    pub(crate) fn agent_with_section(&self, section: &str) -> Agent {
        Agent::start_full("", &[], section, &self.trust())
    }

    /// An agent of this fleet (with `fleet-hello`) whose `[trust]` also holds `trust_extra`.
    pub(crate) fn agent_trusting(&self, trust_extra: &str) -> Agent {
        self.agent_full(&[], "", trust_extra)
    }

    /// With `runbooks` (plain, for schedules) and `automation` before the `[fleet]` section.
    fn agent_with(&self, runbooks: &[(&str, &str)], automation: &str) -> Agent {
        self.agent_full(runbooks, automation, "")
    }

    fn agent_full(&self, runbooks: &[(&str, &str)], automation: &str, trust_extra: &str) -> Agent {
        let agent = Agent::start_full(
            "",
            runbooks,
            &format!("{automation}\n{}", self.fleet_section()),
            &format!("{}{trust_extra}", self.trust()),
        );
        let toml = agent.root().join("fleet-hello.toml");
        std::fs::write(&toml, RUNBOOK).expect("runbook");
        let out = agent.root().join("runbooks/fleet-hello.wbundle");
        ok(agent.warden(&[
            "runbook",
            "pack",
            &toml.display().to_string(),
            "--key",
            &self.keys.path().join("publisher.key").display().to_string(),
            "--out",
            &out.display().to_string(),
        ]));
        agent
    }

    /// Install `text` as `<name>.wbundle`, signed by the trusted publisher.
    pub(crate) fn install_signed(&self, agent: &Agent, name: &str, text: &str) {
        let toml = agent.root().join(format!("{name}.toml"));
        std::fs::write(&toml, text).expect("runbook");
        let out = agent.root().join(format!("runbooks/{name}.wbundle"));
        ok(agent.warden(&[
            "runbook",
            "pack",
            &toml.display().to_string(),
            "--key",
            &self.keys.path().join("publisher.key").display().to_string(),
            "--out",
            &out.display().to_string(),
        ]));
    }

    /// A runbook bundle signed by `key` (`publisher` or `stranger`), packed by `agent`.
    fn bundle(&self, agent: &Agent, key: &str) -> Vec<u8> {
        let toml = agent.root().join("fleet-hello.toml");
        let out = self.keys.path().join(format!("{key}.wbundle"));
        ok(agent.warden(&[
            "runbook",
            "pack",
            &toml.display().to_string(),
            "--key",
            &self
                .keys
                .path()
                .join(format!("{key}.key"))
                .display()
                .to_string(),
            "--out",
            &out.display().to_string(),
        ]));
        std::fs::read(out).expect("bundle")
    }

    pub(crate) fn command(&self, spec: RunRunbook) -> Command {
        let now = UnixMillis::now();
        let mut random = [0u8; 10];
        getrandom_fill(&mut random);
        Command::run_runbook(
            RunId::from_parts(now, random),
            self.acme.clone(),
            self.agent_id.clone(),
            now,
            now.plus_millis(10 * 60 * 1000),
            spec,
        )
    }

    /// Send a command that runs `runbook` (installed, by name) and wait for its final result:
    /// the command, the result's message id and the result.
    pub(crate) async fn run_by_name(
        &self,
        copies: &mut async_nats::Subscriber,
        runbook: &str,
    ) -> (Command, String, RunResult) {
        let command = self.command(RunRunbook {
            runbook: Some(runbook.into()),
            bundle: None,
            params: Default::default(),
            dry_run: false,
        });
        self.send(&command).await;
        let (id, result) = final_result(copies, &command.run).await;
        (command, id, result)
    }

    pub(crate) async fn send(&self, command: &Command) {
        self.controller
            .publish(
                subjects::command(&self.acme, &self.agent_id),
                encode(command).expect("encode").into(),
            )
            .await
            .expect("publish");
        self.controller.flush().await.expect("flush");
    }

    /// Every result the agent publishes (core subscription: duplicates included).
    pub(crate) async fn result_copies(&self) -> async_nats::Subscriber {
        let sub = self
            .controller
            .subscribe(subjects::result(&self.acme, &self.agent_id))
            .await
            .expect("subscribe");
        round_trip(&self.controller).await;
        sub
    }

    pub(crate) async fn heartbeats(&self) -> async_nats::Subscriber {
        let sub = self
            .controller
            .subscribe(subjects::heartbeat(&self.acme, &self.agent_id))
            .await
            .expect("subscribe");
        round_trip(&self.controller).await;
        sub
    }

    /// The final results stored in the stream, in order, with their msg ids.
    async fn stored_results(&self) -> Vec<(String, RunResult)> {
        let js = jetstream::new(self.controller.clone());
        let mut stream = js.get_stream(STREAM).await.expect("stream");
        let last = stream.info().await.expect("info").state.last_sequence;
        let mut out = Vec::new();
        for seq in 1..=last {
            let Ok(message) = stream.get_raw_message(seq).await else {
                continue;
            };
            let id = message
                .headers
                .get(MSG_ID_HEADER)
                .map(|v| v.to_string())
                .unwrap_or_default();
            out.push((id, decode::<RunResult>(&message.payload).expect("a result")));
        }
        out
    }
}

fn getrandom_fill(bytes: &mut [u8]) {
    // Distinct run ids per test: the time part plus a counter and the process id.
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed).to_be_bytes();
    let pid = std::process::id().to_be_bytes();
    bytes[..4].copy_from_slice(&n);
    bytes[4..8].copy_from_slice(&pid);
}

async fn create_stream(controller: &async_nats::Client) {
    jetstream::new(controller.clone())
        .get_or_create_stream(jetstream::stream::Config {
            name: STREAM.into(),
            subjects: vec![subjects::RESULTS_STREAM_SUBJECTS.into()],
            ..Default::default()
        })
        .await
        .expect("results stream");
}

/// A JetStream API round trip: the server has processed everything sent before.
pub(crate) async fn round_trip(client: &async_nats::Client) {
    jetstream::new(client.clone())
        .query_account()
        .await
        .expect("account info");
}

/// The test Enrollment service on a loopback port.
async fn start_enroller(
    authority: &Arc<Mutex<FleetAuthority>>,
    nats_url: &str,
) -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let service = pb::enrollment_server::EnrollmentServer::new(Enroller {
        authority: authority.clone(),
        spent: Mutex::new(SpentTokens::new()),
        pending: Mutex::new(HashMap::new()),
        nats_url: nats_url.to_string(),
    });
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (addr, server)
}

/// `warden enroll` against a test Enrollment service; returns the new agent's id.
async fn enroll(
    authority: &Arc<Mutex<FleetAuthority>>,
    tenant: &TenantId,
    nats_url: &str,
    creds: &Path,
    scratch: &Path,
) -> AgentId {
    let token = authority
        .lock()
        .expect("authority")
        .issue_enrollment_token(
            tenant,
            &["role=db".to_string()],
            ENROLLMENT_TOKEN_LIFETIME,
            unix_now(),
        )
        .expect("token");
    let (addr, server) = start_enroller(authority, nats_url).await;
    let args: Vec<String> = [
        "--json",
        "enroll",
        "--controller",
        &format!("http://{addr}"),
        "--token",
        &token.token,
        "--tenant",
        tenant.as_str(),
        "--credentials",
        &creds.display().to_string(),
        "--name",
        "fleet-test-host",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let data = scratch.join("enroll-data");
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        warden(&args, &data)
    })
    .await
    .expect("enroll ran");
    let stdout = ok(out);
    let printed: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(printed["tenant"], "acme");
    assert_eq!(printed["nats_urls"][0], nats_url);
    assert_eq!(printed["tags"][0], "role=db");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(creds)
            .expect("creds")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "the credentials are private");
    }
    // A token is single use: a second enrollment with it is refused.
    let again = warden(
        &[
            "enroll",
            "--controller",
            &format!("http://{addr}"),
            "--token",
            &token.token,
            "--tenant",
            "acme",
            "--credentials",
            &scratch.join("second.creds").display().to_string(),
        ],
        &scratch.join("enroll-data"),
    );
    assert!(!again.status.success(), "a spent token enrolled again");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("used already"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    server.abort();
    AgentId::new(printed["agent"].as_str().expect("agent").to_string()).expect("agent id")
}

pub(crate) async fn next<T>(
    sub: &mut async_nats::Subscriber,
    what: &str,
    decode_as: fn(&[u8]) -> Option<T>,
) -> (async_nats::Message, T) {
    tokio::time::timeout(WAIT, async {
        while let Some(message) = sub.next().await {
            if let Some(value) = decode_as(&message.payload) {
                return (message, value);
            }
        }
        panic!("subscription ended waiting for {what}");
    })
    .await
    .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
}

/// The next result of `run` whose status is final, with its `Nats-Msg-Id`.
pub(crate) async fn final_result(
    sub: &mut async_nats::Subscriber,
    run: &RunId,
) -> (String, RunResult) {
    loop {
        let (message, result) = next(sub, "a result", |b| decode::<RunResult>(b).ok()).await;
        if &result.run == run && result.status.is_final() {
            let id = message
                .headers
                .as_ref()
                .and_then(|h| h.get(MSG_ID_HEADER))
                .map(|v| v.to_string())
                .unwrap_or_default();
            return (id, result);
        }
    }
}

pub(crate) fn runs_of(agent: &Agent, run: &RunId) -> usize {
    agent
        .audit_log()
        .matches(&format!("\"requested_by\":\"fleet:{run}\""))
        .count()
}

fn refusals(agent: &Agent, reason: &str) -> usize {
    agent
        .audit_log()
        .lines()
        .filter(|l| {
            l.contains("\"fleet.command-refused\"")
                && l.contains(&format!("\"reason\":\"{reason}\""))
        })
        .count()
}

/// The agent is connected and subscribed: a heartbeat arrived after its subscription.
pub(crate) async fn first_heartbeat(hb: &mut async_nats::Subscriber) -> Heartbeat {
    next(hb, "a heartbeat", |b| decode::<Heartbeat>(b).ok())
        .await
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_runs_a_signed_runbook_once_and_its_result_is_stored_and_republished() {
    let fleet = Fleet::start().await;
    let mut heartbeats = fleet.heartbeats().await;
    let mut copies = fleet.result_copies().await;
    let agent = fleet.agent();
    let hb = first_heartbeat(&mut heartbeats).await;
    assert_eq!(hb.agent, fleet.agent_id);
    assert_eq!(hb.tenant, fleet.acme);
    assert_eq!(hb.os, std::env::consts::OS);
    assert_eq!(hb.agent_version, env!("CARGO_PKG_VERSION"));
    assert!(!hb.hostname.is_empty());
    assert_eq!(hb.tags.get("role").map(String::as_str), Some("db"));
    assert_eq!(hb.tags.get("site").map(String::as_str), Some("paris"));
    assert!(
        hb.plugins.iter().any(|p| p.name == "calls"),
        "{:?}",
        hb.plugins
    );
    assert_eq!(hb.interval_ms, 1000);
    let later = first_heartbeat(&mut heartbeats).await;
    assert!(later.seq > hb.seq, "heartbeats keep coming");

    // By name: the runbook installed signed.
    let (by_name, id, result) = fleet.run_by_name(&mut copies, "fleet-hello").await;
    assert_eq!(result.status, RunStatus::Succeeded, "{result:?}");
    assert_eq!(id, format!("{}.{}", by_name.run, fleet.agent_id));
    assert_eq!(result.steps.len(), 1);
    assert!(result.started_at.is_some() && result.finished_at.is_some());

    // As a bundle signed by the trusted publisher.
    let bundle = fleet.bundle(&agent, "publisher");
    let by_bundle = fleet.command(RunRunbook {
        runbook: Some("fleet-hello".into()),
        bundle: Some(Bundle::new(bundle)),
        params: Default::default(),
        dry_run: false,
    });
    fleet.send(&by_bundle).await;
    let (_, result) = final_result(&mut copies, &by_bundle.run).await;
    assert_eq!(result.status, RunStatus::Succeeded, "{result:?}");

    // The same command again: not run again; the kept result is published again, same id.
    assert_eq!(runs_of(&agent, &by_name.run), 1);
    fleet.send(&by_name).await;
    let (again_id, again) = final_result(&mut copies, &by_name.run).await;
    assert_eq!(again_id, id);
    assert_eq!(again.status, RunStatus::Succeeded);
    assert_eq!(again.finished_at, {
        let (_, first) = fleet
            .stored_results()
            .await
            .into_iter()
            .find(|(i, _)| *i == id)
            .expect("stored");
        first.finished_at
    });
    assert_eq!(
        runs_of(&agent, &by_name.run),
        1,
        "a replayed command ran again"
    );
    assert!(agent.audit_log().contains("\"fleet.command-replayed\""));
    // The stream keeps one final result per run (the re-publish was deduplicated), and a
    // `running` only under its own msg id: these runs are fast, and a run that ends within
    // `RUNNING_GRACE` sends its final result alone (a long one's `running`:
    // `an_agent_killed_in_the_middle_of_a_run_...`).
    let stored = fleet.stored_results().await;
    let finals: Vec<&String> = stored
        .iter()
        .filter(|(_, r)| r.status.is_final())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        finals,
        [
            &format!("{}.{}", by_name.run, fleet.agent_id),
            &format!("{}.{}", by_bundle.run, fleet.agent_id)
        ]
    );
    for (i, r) in &stored {
        if r.status == RunStatus::Running {
            assert_eq!(*i, format!("{}.{}.running", r.run, fleet.agent_id));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_misaddressed_and_untrusted_commands_are_refused_and_audited() {
    let fleet = Fleet::start().await;
    let mut heartbeats = fleet.heartbeats().await;
    let mut copies = fleet.result_copies().await;
    let agent = fleet.agent();
    first_heartbeat(&mut heartbeats).await;
    let spec = || RunRunbook {
        runbook: Some("fleet-hello".into()),
        bundle: None,
        params: Default::default(),
        dry_run: false,
    };

    let mut expired = fleet.command(spec());
    expired.issued_at = UnixMillis::now().plus_millis(-2 * 3600 * 1000);
    expired.expires_at = UnixMillis::now().plus_millis(-3600 * 1000);
    let mut misaddressed = fleet.command(spec());
    misaddressed.agent = warden_fleet_identity::AgentKey::generate().id();
    let untrusted_bundle = fleet.command(RunRunbook {
        runbook: None,
        bundle: Some(Bundle::new(fleet.bundle(&agent, "stranger"))),
        params: Default::default(),
        dry_run: false,
    });
    // Installed, but only as plain TOML: never run for the fleet.
    std::fs::write(
        agent.root().join("runbooks/plain.toml"),
        RUNBOOK.replace("fleet-hello", "plain"),
    )
    .expect("plain runbook");
    let plain = fleet.command(RunRunbook {
        runbook: Some("plain".into()),
        ..spec()
    });
    let cases = [
        (&expired, RefusalReason::Expired, "expired"),
        (&misaddressed, RefusalReason::Misaddressed, "misaddressed"),
        (&untrusted_bundle, RefusalReason::Untrusted, "untrusted"),
        (&plain, RefusalReason::Untrusted, "untrusted"),
    ];
    for (command, reason, _) in &cases {
        fleet.send(command).await;
        let (id, result) = final_result(&mut copies, &command.run).await;
        assert_eq!(
            result.status,
            RunStatus::Refused { reason: *reason },
            "{result:?}"
        );
        assert_eq!(id, format!("{}.{}", command.run, fleet.agent_id));
        assert!(result.error.as_deref().is_some_and(|e| !e.is_empty()));
        assert_eq!(runs_of(&agent, &command.run), 0, "a refused command ran");
    }
    assert_eq!(refusals(&agent, "expired"), 1);
    assert_eq!(refusals(&agent, "misaddressed"), 1);
    assert_eq!(refusals(&agent, "untrusted"), 2);

    // Bytes that are no command but carry a run id are answered `invalid`.
    let mut garbage = serde_json::to_value(&expired).expect("json");
    garbage["kind"] = serde_json::json!({ "type": "format-disk" });
    let run = expired.run.clone();
    fleet
        .controller
        .publish(
            subjects::command(&fleet.acme, &fleet.agent_id),
            serde_json::to_vec(&garbage).expect("bytes").into(),
        )
        .await
        .expect("publish");
    let (_, result) = final_result(&mut copies, &run).await;
    assert_eq!(
        result.status,
        RunStatus::Refused {
            reason: RefusalReason::Invalid
        }
    );
    assert_eq!(refusals(&agent, "invalid"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_not_acknowledged_before_a_restart_is_published_after_it() {
    let mut fleet = Fleet::start().await;
    let mut heartbeats = fleet.heartbeats().await;
    let mut agent = fleet.agent();
    first_heartbeat(&mut heartbeats).await;
    // No results stream: the result cannot be acknowledged and stays in the outbox.
    jetstream::new(fleet.controller.clone())
        .delete_stream(STREAM)
        .await
        .expect("stream deleted");
    let command = fleet.command(RunRunbook {
        runbook: Some("fleet-hello".into()),
        bundle: None,
        params: Default::default(),
        dry_run: false,
    });
    fleet.send(&command).await;
    let state = agent.root().join("data/fleet/state.sqlite");
    let final_id = format!("{}.{}", command.run, fleet.agent_id);
    wait_until(|| outbox_ids(&state).contains(&final_id)).await;
    assert_eq!(runs_of(&agent, &command.run), 1);

    // The agent stops with the result unpublished; the server goes down and comes back.
    assert!(agent.terminate().0.is_ok());
    assert!(outbox_ids(&state).contains(&final_id), "the outbox kept it");
    tokio::task::block_in_place(|| {
        fleet.nats.kill(0).expect("kill");
        fleet.nats.restart(0).expect("restart");
    });
    let controller_back = fleet.controller.clone();
    tokio::time::timeout(WAIT, async {
        loop {
            if controller_back.connection_state() == async_nats::connection::State::Connected {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the controller reconnects");
    create_stream(&fleet.controller).await;

    // Started again on the same data: the outbox is published, and nothing ran again.
    let (serving, _) = crate::daemon::serve_in_process(agent.root());
    agent.serving = serving;
    wait_until(|| !outbox_ids(&state).contains(&final_id)).await;
    let stored = fleet.stored_results().await;
    let (_, result) = stored
        .iter()
        .find(|(id, _)| *id == final_id)
        .expect("the result reached the stream after the restart");
    assert_eq!(result.status, RunStatus::Succeeded);
    assert_eq!(runs_of(&agent, &command.run), 1, "the run ran again");
}

/// The msg ids waiting in an agent's outbox.
fn outbox_ids(state: &Path) -> Vec<String> {
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(state, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return Vec::new();
    };
    let Ok(mut stmt) = conn.prepare("SELECT msg_id FROM outbox ORDER BY id") else {
        return Vec::new();
    };
    stmt.query_map([], |r| r.get::<_, String>(0))
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

/// Poll a condition on files another thread writes, bounded by [`WAIT`].
pub(crate) async fn wait_until(mut condition: impl FnMut() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    })
    .await
    .expect("condition met in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_firings_reach_the_fleet_as_numbered_events() {
    let fleet = Fleet::start().await;
    let mut events = fleet
        .controller
        .subscribe(subjects::event(&fleet.acme, &fleet.agent_id))
        .await
        .expect("subscribe");
    round_trip(&fleet.controller).await;
    let _agent = fleet.agent_with(
        &[("tick", RUNBOOK)],
        "[[schedule]]\nname = \"tick\"\nrunbook = \"runbooks/tick.toml\"\ncron = \"* * * * * *\"\n",
    );
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let (message, event) = next(&mut events, "an agent event", |b| {
            decode::<AgentEvent>(b).ok()
        })
        .await;
        if event.kind != EventKind::ScheduleFired {
            continue;
        }
        assert_eq!(event.subject, "tick");
        assert_eq!(event.agent, fleet.agent_id);
        let id = message
            .headers
            .as_ref()
            .and_then(|h| h.get(MSG_ID_HEADER))
            .map(|v| v.to_string());
        assert_eq!(id, Some(format!("{}.evt.{}", fleet.agent_id, event.seq)));
        seen.push(event.seq);
    }
    assert!(seen[1] > seen[0], "numbered in order: {seen:?}");
}

/// The client report tells drift and compliance evidence by the check a monitor runs: the
/// agent names it on the monitor's incident events; its heartbeats then name the monitor as
/// failing (the NOC's fleet table column).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitors_incident_reaches_the_fleet_naming_its_check() {
    let fleet = Fleet::start().await;
    let mut events = fleet
        .controller
        .subscribe(subjects::event(&fleet.acme, &fleet.agent_id))
        .await
        .expect("subscribe");
    let mut heartbeats = fleet.heartbeats().await;
    round_trip(&fleet.controller).await;
    // Any mounted disk is more than 0 % used: the first check fails.
    let _agent = fleet.agent_with(
        &[],
        "[[monitor]]\nname = \"disk-zero\"\nplugin = \"disk-usage\"\n\
         config = { warning_percent = 0, critical_percent = 100 }\ninterval = \"1s\"\n\
         failures-to-trigger = 1\n",
    );
    loop {
        let (_, event) = next(&mut events, "an agent event", |b| {
            decode::<AgentEvent>(b).ok()
        })
        .await;
        if event.kind != EventKind::IncidentOpened {
            continue;
        }
        assert_eq!(event.subject, "disk-zero");
        assert_eq!(event.check, "disk-usage", "{event:?}");
        assert!(event.tickets.is_empty(), "no PSA configured: {event:?}");
        break;
    }
    // Heartbeats come every second; one after the incident names the monitor.
    loop {
        let (_, hb) = next(&mut heartbeats, "a heartbeat", |b| {
            decode::<Heartbeat>(b).ok()
        })
        .await;
        if hb.open_incidents > 0 {
            assert_eq!(hb.failing, ["disk-zero"], "{hb:?}");
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_in_the_middle_of_a_run_reports_it_interrupted_and_never_reruns_it() {
    let fleet = Fleet::start().await;
    let mut heartbeats = fleet.heartbeats().await;
    let mut copies = fleet.result_copies().await;
    // A `warden serve` process, to be SIGKILLed.
    let mut agent =
        Agent::start_inner("", &[], &fleet.fleet_section(), &fleet.trust(), false, true);
    fleet.install_signed(&agent, "sleepy", &sleepy_runbook("37.75"));
    first_heartbeat(&mut heartbeats).await;
    let command = fleet.command(RunRunbook {
        runbook: Some("sleepy".into()),
        bundle: None,
        params: Default::default(),
        dry_run: false,
    });
    fleet.send(&command).await;
    // Accepted and running.
    loop {
        let (_, result) = next(&mut copies, "a result", |b| decode::<RunResult>(b).ok()).await;
        if result.run == command.run {
            assert_eq!(result.status, RunStatus::Running, "{result:?}");
            break;
        }
    }
    agent.crash_and_restart();
    let (id, result) = final_result(&mut copies, &command.run).await;
    assert_eq!(id, format!("{}.{}", command.run, fleet.agent_id));
    assert_eq!(result.status, RunStatus::Failed);
    assert_eq!(
        result.error.as_deref(),
        Some(warden_agent::fleet::INTERRUPTED)
    );
    // Sent again after the restart: the kept answer, not a second run.
    fleet.send(&command).await;
    let (again, result) = final_result(&mut copies, &command.run).await;
    assert_eq!((again, result.status), (id, RunStatus::Failed));
    assert_eq!(
        runs_of(&agent, &command.run),
        1,
        "the run ran again after the restart"
    );
    assert!(agent.audit_log().contains("\"fleet.run-interrupted\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_enrolls_at_its_first_start_with_a_configured_token() {
    let fleet = Fleet::start().await;
    let mut heartbeats = fleet
        .controller
        .subscribe(format!("{}.acme.>", subjects::HEARTBEATS))
        .await
        .expect("subscribe");
    round_trip(&fleet.controller).await;
    let (addr, server) = start_enroller(&fleet.authority, &fleet.nats.url(0)).await;
    let token = fleet
        .authority
        .lock()
        .expect("authority")
        .issue_enrollment_token(&fleet.acme, &[], ENROLLMENT_TOKEN_LIFETIME, unix_now())
        .expect("token");
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &token.token).expect("token file");
    let creds = dir.path().join("new/fleet.creds");
    let section = format!(
        "[fleet]\nurls = [{:?}]\ntenant = \"acme\"\ncredentials = {:?}\nheartbeat-interval-secs = 1\n\
         [fleet.enroll]\ncontroller = \"http://{addr}\"\ntoken-file = {:?}\n",
        fleet.nats.url(0),
        creds.display().to_string(),
        token_file.display().to_string()
    );
    let agent =
        tokio::task::block_in_place(|| Agent::start_full("", &[], &section, &fleet.trust()));
    let hb = first_heartbeat(&mut heartbeats).await;
    assert_ne!(hb.agent, fleet.agent_id, "a new identity");
    let identity = warden_agent::fleet::FleetIdentity::load(&creds, fleet.acme.clone())
        .expect("the credentials were written, private");
    assert_eq!(identity.agent, hb.agent);
    assert!(agent.audit_log().contains("\"fleet.enrolled\""));
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_cancel_stops_the_run_and_its_result_says_cancelled() {
    let fleet = Fleet::start().await;
    let mut heartbeats = fleet.heartbeats().await;
    let mut copies = fleet.result_copies().await;
    let agent = fleet.agent();
    fleet.install_signed(&agent, "sleepy", &sleepy_runbook("41.25"));
    first_heartbeat(&mut heartbeats).await;
    let command = fleet.command(RunRunbook {
        runbook: Some("sleepy".into()),
        bundle: None,
        params: Default::default(),
        dry_run: false,
    });
    // A cancel that comes before its run's command: the run is taken as cancelled, and the
    // command, when it comes, gets that answer and never runs.
    let first = fleet.command(RunRunbook {
        runbook: Some("sleepy".into()),
        bundle: None,
        params: Default::default(),
        dry_run: false,
    });
    let early = Command::cancel(
        first.run.clone(),
        fleet.acme.clone(),
        fleet.agent_id.clone(),
        UnixMillis::now(),
        first.expires_at,
    );
    fleet.send(&early).await;
    let (_, result) = final_result(&mut copies, &first.run).await;
    assert_eq!(result.status, RunStatus::Cancelled, "{result:?}");
    fleet.send(&first).await;
    let (_, result) = final_result(&mut copies, &first.run).await;
    assert_eq!(result.status, RunStatus::Cancelled, "{result:?}");
    assert_eq!(runs_of(&agent, &first.run), 0, "a cancelled run never runs");

    // A run going on: cut short.
    fleet.send(&command).await;
    loop {
        let (_, result) = next(&mut copies, "a result", |b| decode::<RunResult>(b).ok()).await;
        if result.run == command.run {
            assert_eq!(result.status, RunStatus::Running, "{result:?}");
            break;
        }
    }
    let started = std::time::Instant::now();
    let cancel = Command::cancel(
        command.run.clone(),
        fleet.acme.clone(),
        fleet.agent_id.clone(),
        UnixMillis::now(),
        UnixMillis::now().plus_millis(60_000),
    );
    fleet.send(&cancel).await;
    let (_, result) = final_result(&mut copies, &command.run).await;
    assert_eq!(result.status, RunStatus::Cancelled, "{result:?}");
    assert!(
        started.elapsed() < Duration::from_secs(41),
        "the sleep was not cut short"
    );
    wait_until(|| agent.audit_log().contains("\"outcome\":\"cancelled\"")).await;
    assert!(agent.audit_log().contains("\"run.cancel\""));
    // The cancel is not a run: the run was queued once, and cancelled by the fleet.
    let log = agent.audit_log();
    let of_run = |event: &str| {
        log.lines()
            .filter(|l| l.contains(event) && l.contains(&format!("fleet:{}", command.run)))
            .count()
    };
    assert_eq!((of_run("\"run.queued\""), of_run("\"run.cancel\"")), (1, 1));
    // Replayed after the run ended: the ledger holds it, nothing changes.
    fleet.send(&cancel).await;
    wait_until(|| agent.audit_log().contains("\"outcome\":\"finished\"")).await;
}
