//! A controller in-process beside a real nats-server (warden-natstest) in operator mode, and
//! agents simulated at the protocol level: each enrolls over the controller's gRPC API with its
//! own key, connects to NATS with its own credentials, and speaks the wire crate's messages.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use async_nats::jetstream;
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use warden_access::{Role, TokenEntry, token_hash};
use warden_controller::serve::{self, Options, Running};
use warden_controller::{ControllerConfig, ManualClock, Progress};
use warden_fleet_identity::{AgentId, AgentJwt, AgentKey, Challenge, TenantId, subjects};
use warden_fleet_wire::{Command, Heartbeat, RunResult, UnixMillis};
use warden_natstest::{Nats, Options as NatsOptions};
use warden_proto::fleet as pb;
use warden_proto::fleet::enrollment_client::EnrollmentClient;
use warden_proto::fleet::fleet_client::FleetClient;

/// Bound on every wait for something that should happen.
pub const WAIT: Duration = Duration::from_secs(20);
/// The simulated agents' heartbeat interval.
pub const INTERVAL_MS: i64 = 15_000;

pub const NOC_ADMIN: &str = "tok-noc-admin";
pub const NOC_VIEWER: &str = "tok-noc-viewer";
pub const ACME_ADMIN: &str = "tok-acme-admin";
pub const ACME_OPERATOR: &str = "tok-acme-operator";

pub fn tenant(name: &str) -> TenantId {
    TenantId::new(name).expect("tenant")
}

pub struct Fleet {
    pub nats: Nats,
    pub dir: tempfile::TempDir,
    pub running: Running,
    pub clock: ManualClock,
    pub grpc: SocketAddr,
    pub config: ControllerConfig,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// Start the controller's loops and its API on a new port.
async fn start_controller(
    config: &ControllerConfig,
    clock: &ManualClock,
) -> (Running, SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let running = serve::start(
        config,
        std::sync::Arc::new(clock.clone()),
        Options { tick: None },
    )
    .await
    .expect("controller starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let grpc = listener.local_addr().expect("addr");
    let tokens = warden_access::Tokens::new(&config.tokens).expect("tokens");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(warden_controller::grpc::serve(
        running.controller.clone(),
        tokens,
        listener,
        async {
            let _ = stopped.await;
        },
    ));
    (running, grpc, stop)
}

pub fn token(name: &str, role: Role, token: &str, tenant: Option<&str>) -> TokenEntry {
    TokenEntry {
        name: name.into(),
        role,
        sha256: token_hash(token),
        tenant: tenant.map(str::to_string),
    }
}

impl Fleet {
    pub async fn start() -> Fleet {
        Fleet::start_with(|_| {}).await
    }

    /// [`Fleet::start`] with `tweak` applied to the controller's config first.
    pub async fn start_with(tweak: impl FnOnce(&mut ControllerConfig)) -> Fleet {
        let dir = tempfile::tempdir().expect("tmp");
        let mut config = ControllerConfig::new(dir.path().join("controller"));
        config.tenants = vec![tenant("acme"), tenant("globex")];
        config.tokens = vec![
            token("noc-admin", Role::Admin, NOC_ADMIN, None),
            token("noc-viewer", Role::Viewer, NOC_VIEWER, None),
            token("acme-admin", Role::Admin, ACME_ADMIN, Some("acme")),
            token("acme-operator", Role::Operator, ACME_OPERATOR, Some("acme")),
        ];
        tweak(&mut config);
        let fragment = serve::write_nats_config(&config.data_dir, &config).expect("nats config");
        let extra_config = std::fs::read_to_string(fragment).expect("fragment");
        let nats = tokio::task::block_in_place(|| {
            Nats::start(
                1,
                NatsOptions {
                    extra_config,
                    ..NatsOptions::default()
                },
            )
        })
        .expect("nats-server in operator mode (run `cargo xtask nats` first)");
        config.nats_url = nats.url(0);
        let clock = ManualClock::new(UnixMillis::now());
        let (running, grpc, stop) = start_controller(&config, &clock).await;
        Fleet {
            nats,
            dir,
            running,
            clock,
            grpc,
            config,
            stop: Some(stop),
        }
    }

    /// Stop the controller (its loops, API and NATS connections; the servers and the data dir
    /// stay), run `meanwhile`, then start a new one on the same data dir.
    pub async fn restart_controller<F: std::future::Future<Output = ()>>(&mut self, meanwhile: F) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.running.stop().await;
        meanwhile.await;
        let (running, grpc, stop) = start_controller(&self.config, &self.clock).await;
        self.running = running;
        self.grpc = grpc;
        self.stop = Some(stop);
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.grpc))
            .expect("uri")
            .connect()
            .await
            .expect("grpc connects")
    }

    pub async fn api(
        &self,
        token: &str,
    ) -> FleetClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>> {
        FleetClient::with_interceptor(self.channel().await, Bearer(Some(token.to_string())))
    }

    /// Wait until the controller's progress satisfies `f`.
    pub async fn wait_for(&self, what: &str, f: impl Fn(&Progress) -> bool) -> Progress {
        let mut rx = self.running.controller.progress();
        let found = tokio::time::timeout(WAIT, async {
            loop {
                let now = *rx.borrow_and_update();
                if f(&now) {
                    return now;
                }
                rx.changed().await.expect("controller alive");
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
    }

    pub fn progress(&self) -> Progress {
        *self.running.controller.progress().borrow()
    }

    /// Enroll a new simulated agent over the gRPC API and connect it to NATS.
    pub async fn agent(&self, tenant_name: &str, name: &str) -> SimAgent {
        let t = tenant(tenant_name);
        let mut api = self.api(NOC_ADMIN).await;
        let token = api
            .issue_enrollment_token(pb::IssueEnrollmentTokenRequest {
                tenant: tenant_name.into(),
                tags: vec![],
                ttl_seconds: 0,
            })
            .await
            .expect("token")
            .into_inner();
        let key = AgentKey::generate();
        let jwt = enroll(self.channel().await, &key, &token.token, &t, name)
            .await
            .expect("enrolls");
        SimAgent::connect(&self.nats.url(0), key, jwt).await
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The two enrollment calls, as an agent makes them.
pub async fn enroll(
    channel: Channel,
    key: &AgentKey,
    token: &str,
    tenant: &TenantId,
    name: &str,
) -> Result<AgentJwt, tonic::Status> {
    let mut client = EnrollmentClient::new(channel);
    let ch = client
        .begin(pb::BeginEnrollmentRequest {
            token: token.into(),
            tenant: tenant.to_string(),
            agent: key.id().to_string(),
            name: name.into(),
        })
        .await?
        .into_inner();
    let challenge = Challenge {
        token_id: ch.token_id,
        tenant: TenantId::new(ch.tenant).expect("tenant"),
        agent: AgentId::new(ch.agent).expect("agent"),
        nonce: ch.nonce,
        expires_at: ch.expires_at,
    };
    let answer = key.answer(&challenge).expect("answer");
    let done = client
        .complete(pb::CompleteEnrollmentRequest {
            token: token.into(),
            token_id: answer.token_id,
            agent: answer.agent,
            nonce: answer.nonce,
            signature: answer.signature,
        })
        .await?
        .into_inner();
    Ok(AgentJwt {
        tenant: tenant.clone(),
        agent: key.id(),
        jwt: done.jwt,
        issued_at: warden_fleet_identity::unix_now(),
        expires_at: done.expires_at,
    })
}

#[derive(Clone)]
pub struct Bearer(pub Option<String>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(t) = &self.0 {
            req.metadata_mut().insert(
                "authorization",
                format!("Bearer {t}").parse().expect("header"),
            );
        }
        Ok(req)
    }
}

/// An agent at the protocol level: its own key, credentials and connection.
pub struct SimAgent {
    pub key: AgentKey,
    pub id: AgentId,
    pub tenant: TenantId,
    pub jwt: AgentJwt,
    pub client: async_nats::Client,
    pub commands: Option<async_nats::Subscriber>,
    pub seq: u64,
    pub events: tokio::sync::mpsc::UnboundedReceiver<async_nats::Event>,
}

impl SimAgent {
    pub async fn connect(url: &str, key: AgentKey, jwt: AgentJwt) -> SimAgent {
        let creds = key.credentials(&jwt).expect("creds");
        let (tx, events) = tokio::sync::mpsc::unbounded_channel();
        let client = async_nats::ConnectOptions::with_credentials(&creds.creds())
            .expect("creds")
            .custom_inbox_prefix(subjects::inbox_prefix(&key.id()))
            .request_timeout(Some(Duration::from_secs(5)))
            .event_callback(move |e| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(e);
                }
            })
            .connect(url)
            .await
            .expect("agent connects");
        let id = key.id();
        SimAgent {
            tenant: jwt.tenant.clone(),
            id,
            key,
            jwt,
            client,
            commands: None,
            seq: 0,
            events,
        }
    }

    /// Subscribe to its commands (an agent coming online).
    pub async fn listen(&mut self) {
        let sub = self
            .client
            .subscribe(subjects::command(&self.tenant, &self.id))
            .await
            .expect("subscribe");
        self.client.flush().await.expect("flush");
        self.commands = Some(sub);
    }

    pub fn heartbeat_with(&mut self, os: &str, tags: &[(&str, &str)]) -> Heartbeat {
        self.seq += 1;
        let mut hb = Heartbeat::new(
            self.tenant.clone(),
            self.id.clone(),
            UnixMillis::now(),
            self.seq,
            INTERVAL_MS,
        );
        hb.hostname = format!("host-{}", &self.id.as_str()[..8]);
        hb.os = os.into();
        hb.agent_version = "0.1.0".into();
        hb.tags = tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        hb
    }

    pub async fn send_heartbeat(&self, hb: &Heartbeat) {
        let bytes = warden_fleet_wire::encode(hb).expect("encode");
        self.client
            .publish(hb.nats_subject(), bytes.into())
            .await
            .expect("publish");
        self.client.flush().await.expect("flush");
    }

    pub async fn next_command(&mut self) -> Command {
        let sub = self.commands.as_mut().expect("listening");
        let m = tokio::time::timeout(WAIT, sub.next())
            .await
            .expect("a command in time")
            .expect("subscription open");
        warden_fleet_wire::decode(&m.payload).expect("a valid command")
    }

    /// Publish a result with JetStream, `msg_id` as its Nats-Msg-Id; returns whether the
    /// stream called it a duplicate.
    pub async fn publish_result(&self, result: &RunResult, msg_id: &str) -> bool {
        let js = jetstream::new(self.client.clone());
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(warden_fleet_wire::MSG_ID_HEADER, msg_id);
        let bytes = warden_fleet_wire::encode(result).expect("encode");
        let ack = js
            .publish_with_headers(result.nats_subject(), headers, bytes.into())
            .await
            .expect("publish")
            .await
            .expect("PubAck");
        ack.duplicate
    }
}

/// A plugin bundle of `size` component bytes (unsigned: the controller does not judge trust).
pub fn plugin_bundle(dir: &std::path::Path, version: &str, size: usize) -> Vec<u8> {
    std::fs::create_dir_all(dir).expect("dir");
    std::fs::write(
        dir.join("plugin.toml"),
        format!(
            "name = \"disk-usage\"\nversion = \"{version}\"\nrole = \"check\"\ncomponent = \"plugin.wasm\"\n"
        ),
    )
    .expect("manifest");
    let component: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.join("plugin.wasm"), component).expect("component");
    warden_bundle::Bundle::from_plugin_dir(dir, 30)
        .expect("bundle")
        .to_bytes()
        .expect("bytes")
}
