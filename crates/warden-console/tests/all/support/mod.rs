//! A controller in-process beside a real nats-server (operator mode), its console on a new
//! port, and a fleet seeded through the controller's own heartbeat and result intake (the
//! functions its NATS loops call), so the store is the real SQLite one. Clients: a small HTTP
//! one (hyper) with a session cookie, and [`webdriver`] driving headless Chromium.

#![allow(dead_code)]

pub mod http;
pub mod webdriver;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use warden_access::{Caller, Scope};
use warden_access::{Role, TokenEntry, token_hash};
use warden_controller::approvals::{ApprovalPolicy, RequestId};
use warden_controller::rollout::{PlanRequest, RolloutView, StartRollout};
use warden_controller::serve::{self, Options, Running};
use warden_controller::{Controller, ControllerConfig, FleetError, ManualClock};
use warden_fleet_identity::{AgentId, AgentKey, TenantId};
use warden_fleet_wire::{Heartbeat, PatchSummary, PluginInfo, RunResult, UnixMillis, WIRE_VERSION};
use warden_natstest::{Nats, Options as NatsOptions};

pub const NOC_OPERATOR: &str = "tok-console-noc-operator";
pub const NOC_VIEWER: &str = "tok-console-noc-viewer";
pub const ACME_OPERATOR: &str = "tok-console-acme-operator";
/// A second MSP-wide operator: the requester whose requests `noc-operator` approves.
pub const NOC_OPERATOR_B: &str = "tok-console-noc-operator-b";
/// The simulated agents' heartbeat interval.
pub const INTERVAL_MS: i64 = 15_000;
/// Console sessions in these tests: idle 5 min, absolute 1 h.
pub const IDLE: Duration = Duration::from_secs(300);
pub const ABSOLUTE: Duration = Duration::from_secs(3600);

fn token(name: &str, role: Role, token: &str, tenant: Option<&str>) -> TokenEntry {
    TokenEntry {
        name: name.into(),
        role,
        sha256: token_hash(token),
        tenant: tenant.map(str::to_string),
    }
}

pub fn tenant(name: &str) -> TenantId {
    TenantId::new(name).expect("tenant")
}

pub struct Harness {
    pub nats: Nats,
    pub dir: tempfile::TempDir,
    pub running: Running,
    pub clock: ManualClock,
    pub config: ControllerConfig,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::start_with(|_| {}).await
    }

    /// A controller whose policy asks for a second operator above one agent.
    pub async fn with_approvals() -> Harness {
        Harness::start_with(|config| {
            config.approvals = Some(ApprovalPolicy {
                max_agents: Some(1),
                max_percent: None,
                multi_tenant: true,
                request_ttl_secs: 600,
                outside_window: true,
                approvers: warden_access::Approvers::Operators,
            });
        })
        .await
    }

    /// [`Harness::start`] with `configure` applied to the controller's config first.
    pub async fn start_with(configure: impl FnOnce(&mut ControllerConfig)) -> Harness {
        let dir = tempfile::tempdir().expect("tmp");
        let mut config = ControllerConfig::new(dir.path().join("controller"));
        config.tenants = vec![tenant("acme"), tenant("globex")];
        config.tokens = vec![
            token("noc-operator", Role::Operator, NOC_OPERATOR, None),
            token("noc-viewer", Role::Viewer, NOC_VIEWER, None),
            token("acme-operator", Role::Operator, ACME_OPERATOR, Some("acme")),
            token("noc-operator-b", Role::Operator, NOC_OPERATOR_B, None),
        ];
        configure(&mut config);
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
        let running = serve::start(&config, Arc::new(clock.clone()), Options { tick: None })
            .await
            .expect("controller starts");
        let listener = warden_console::bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("console binds");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let tokens = warden_access::Tokens::new(&config.tokens).expect("tokens");
        let options = warden_console::Options {
            idle_timeout: IDLE,
            absolute_timeout: ABSOLUTE,
            secure_cookies: false,
        };
        tokio::spawn(warden_console::serve(
            running.controller.clone(),
            tokens,
            options,
            listener,
            None,
            std::future::pending(),
        ));
        Harness {
            nats,
            dir,
            running,
            clock,
            config,
            url,
        }
    }

    pub fn controller(&self) -> &Arc<Controller> {
        &self.running.controller
    }

    /// Take `agents`' heartbeats now, as the heartbeat loop does.
    pub fn heartbeats(&self, agents: &[SeedAgent]) {
        let encoded: Vec<(String, Vec<u8>)> = agents
            .iter()
            .map(|a| {
                let hb = a.heartbeat();
                (
                    hb.nats_subject(),
                    warden_fleet_wire::encode(&hb).expect("encodes"),
                )
            })
            .collect();
        for chunk in encoded.chunks(256) {
            let refs: Vec<(&str, &[u8])> = chunk
                .iter()
                .map(|(s, p)| (s.as_str(), p.as_slice()))
                .collect();
            self.controller()
                .take_heartbeats(&refs)
                .expect("heartbeats taken");
        }
    }

    /// Agents of `tenant` with these host names, heartbeating now.
    pub fn agents(&self, tenant: &str, hosts: &[&str]) -> Vec<SeedAgent> {
        let agents: Vec<SeedAgent> = hosts.iter().map(|h| SeedAgent::new(tenant, h)).collect();
        self.heartbeats(&agents);
        agents
    }

    /// Take an event as the events loop does.
    pub fn event(&self, event: &warden_fleet_wire::AgentEvent) {
        let bytes = warden_fleet_wire::encode(event).expect("encodes");
        self.controller()
            .take_event(&event.nats_subject(), &bytes)
            .expect("event taken");
    }

    /// Take a result as the results loop does.
    pub fn result(&self, result: &RunResult) {
        let bytes = warden_fleet_wire::encode(result).expect("encodes");
        self.controller()
            .take_result(&result.nats_subject(), &bytes)
            .expect("result taken");
    }

    /// Start a rollout of `bundle` to `target` as `caller` (canary 1, then 100%), presenting
    /// `approval` if given.
    pub async fn start_rollout(
        &self,
        caller: &Caller,
        bundle: &[u8],
        target: &str,
        approval: Option<RequestId>,
    ) -> Result<RolloutView, FleetError> {
        let request = StartRollout {
            bundle: bundle.to_vec(),
            target: target.into(),
            plan: PlanRequest {
                canary: 1,
                waves: "100%".into(),
                max_failures: "0%".into(),
                ..PlanRequest::default()
            },
            approval,
        };
        self.controller().start_rollout(caller, request).await
    }

    /// The controller's audit records, oldest first.
    pub fn audit(&self) -> Vec<warden_audit::AuditRecord> {
        warden_audit::AuditLog::new(&self.config.data_dir)
            .tail(10_000)
            .expect("audit log reads")
    }

    /// The audit records of `event`.
    pub fn audited(&self, event: &str) -> Vec<serde_json::Value> {
        self.audit()
            .into_iter()
            .filter(|r| r.event == event)
            .map(|r| r.data)
            .collect()
    }
}

/// One simulated agent: what its heartbeats say.
#[derive(Debug, Clone)]
pub struct SeedAgent {
    pub id: AgentId,
    pub tenant: TenantId,
    pub hostname: String,
    pub os: String,
    pub tags: BTreeMap<String, String>,
    pub plugins: Vec<PluginInfo>,
    pub open_incidents: u32,
    /// The monitors with those incidents, by name.
    pub failing: Vec<String>,
    pub patches: Option<PatchSummary>,
}

impl SeedAgent {
    pub fn new(tenant_name: &str, hostname: &str) -> SeedAgent {
        SeedAgent {
            id: AgentKey::generate().id(),
            tenant: tenant(tenant_name),
            hostname: hostname.into(),
            os: "linux".into(),
            tags: BTreeMap::new(),
            plugins: Vec::new(),
            open_incidents: 0,
            failing: Vec::new(),
            patches: None,
        }
    }

    /// Its latest patch scan found `pending` upgrades (`security` of them security updates).
    pub fn patched(mut self, pending: u32, security: u32, reboot_required: bool) -> SeedAgent {
        self.patches = Some(PatchSummary {
            pending,
            security,
            reboot_required,
            scanned_at: UnixMillis::now().plus_millis(-60_000),
        });
        self
    }

    /// Its monitors `names` each have an open incident.
    pub fn failing(mut self, names: &[&str]) -> SeedAgent {
        self.failing = names.iter().map(|n| n.to_string()).collect();
        self.open_incidents = u32::try_from(names.len()).unwrap_or(u32::MAX);
        self
    }

    pub fn tag(mut self, k: &str, v: &str) -> SeedAgent {
        self.tags.insert(k.into(), v.into());
        self
    }

    pub fn heartbeat(&self) -> Heartbeat {
        Heartbeat {
            v: WIRE_VERSION,
            agent: self.id.clone(),
            tenant: self.tenant.clone(),
            agent_version: "0.1.0".into(),
            hostname: self.hostname.clone(),
            os: self.os.clone(),
            tags: self.tags.clone(),
            plugins: self.plugins.clone(),
            open_incidents: self.open_incidents,
            failing: self.failing.clone(),
            patches: self.patches,
            windows: None,
            sent_at: UnixMillis::now(),
            seq: 1,
            interval_ms: INTERVAL_MS,
        }
    }
}

/// `n` agents across acme and globex: every 10th tagged `role=db` (the others `role=web`),
/// every 7th with an open incident, named `host-0000`...
pub fn fleet_of(n: usize) -> Vec<SeedAgent> {
    (0..n)
        .map(|i| {
            let t = if i.is_multiple_of(2) {
                "acme"
            } else {
                "globex"
            };
            let mut a = SeedAgent::new(t, &format!("host-{i:04}"))
                .tag("role", if i.is_multiple_of(10) { "db" } else { "web" });
            if i.is_multiple_of(7) {
                a.open_incidents = 1;
            }
            if i.is_multiple_of(3) {
                a.os = "windows".into();
            }
            a
        })
        .collect()
}

/// Seed `fleet`: the first `offline` heartbeat, then 10 minutes pass (offline, well past the
/// 90 s of a 15 s interval), then the rest heartbeat (online).
pub fn seed(h: &Harness, fleet: &[SeedAgent], offline: usize) {
    h.heartbeats(&fleet[..offline]);
    h.clock.advance_ms(10 * 60_000);
    h.heartbeats(&fleet[offline..]);
}

/// An MSP-wide caller named as one of the harness's tokens.
pub fn caller(name: &str, role: Role) -> Caller {
    Caller {
        name: name.into(),
        role,
        scope: Scope::AllTenants,
    }
}

/// A plugin bundle (unsigned: the controller does not judge trust, the agents do).
pub fn plugin_bundle(dir: &std::path::Path, version: &str) -> Vec<u8> {
    std::fs::create_dir_all(dir).expect("dir");
    std::fs::write(
        dir.join("plugin.toml"),
        format!(
            "name = \"disk-usage\"\nversion = \"{version}\"\nrole = \"check\"\ncomponent = \"plugin.wasm\"\n"
        ),
    )
    .expect("manifest");
    std::fs::write(dir.join("plugin.wasm"), b"\0asm-not-really").expect("component");
    warden_bundle::Bundle::from_plugin_dir(dir, 30)
        .expect("bundle")
        .to_bytes()
        .expect("bytes")
}
