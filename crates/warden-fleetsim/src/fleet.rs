//! A whole fleet on this machine: real nats-server processes (one, or a cluster), a real
//! controller in this process (its loops and its gRPC API on a loopback port), and N simulated
//! agents that share one [`Sandbox`] but each have their own identity: their own key, enrolled
//! through the controller's gRPC `Enrollment` with their own single-use token, their own
//! `.creds` file, NATS connection ([`FleetLink`], the agent's real link), ledger and outbox (their
//! own `FleetStore` file) and audit log. The agents run in this process, or in child processes
//! ([`crate::host`]) when one process's file descriptors do not suffice.
//!
//! Enrollment runs [`ENROLL_PARALLEL`] agents at a time and the links start
//! [`START_PARALLEL`] at a time: the controller serialises each enrollment's commits (spent
//! tokens, the agent row, the audit record), so more in parallel would only queue there.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinSet;
use warden_agent::fleet::{FleetIdentity, FleetLink, HeartbeatSettings, LinkSettings, RunningLink};
use warden_agent::grpc::enroll_client::{self, EnrollOptions};
use warden_audit::AuditLog;
use warden_controller::controller::internal_caller;
use warden_controller::serve::{self, Options, Running};
use warden_controller::{ControllerConfig, Progress, SystemClock};
use warden_fleet_identity::{AgentId, TenantId};
use warden_fleet_wire::RunId;
use warden_natstest::{Nats, Options as NatsOptions};

use crate::host::{Host, HostSpec, HostedAgent};
use crate::sandbox::{Sandbox, SimAgent};

/// Enrollments in flight at once (each is two gRPC round trips on its own connection).
pub const ENROLL_PARALLEL: usize = 32;
/// Links started at once (each opens its SQLite file and settles its ledger first).
pub const START_PARALLEL: usize = 64;
/// The tenants the simulated agents are spread over, round robin: more than one, so a dispatch
/// to `*` crosses tenant accounts as a real MSP fleet's does.
pub const TENANTS: [&str; 2] = ["acme", "globex"];
/// Agent `i` is tagged `shard=<i mod SHARDS>`.
pub const SHARDS: usize = 100;
/// The outbox cap of every simulated agent: the agent's default.
pub const OUTBOX_CAP: usize = 10_000;

/// What to start.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// nats-server nodes: 1, or 3 for a cluster with the results stream R3.
    pub nodes: usize,
    pub agents: usize,
    /// Whether agent `i`'s runs wait at the sandbox's gate (see [`SimFleet::close_gate`]).
    pub gated: fn(usize) -> bool,
    pub heartbeat: Duration,
    /// Where the temporary directory goes (the agents' state files and the controller's store
    /// are fsync'd there, so the filesystem matters); `None`: the system's.
    pub tmp: Option<PathBuf>,
    /// The built `trivial` guest's directory.
    pub guest: PathBuf,
    /// Host the agents in this many child processes instead of this one (a process may hold
    /// 20,000 file descriptors on this machine and an agent takes about 5: its connection, its
    /// SQLite file, WAL and shared memory, its audit log); each runs `host_command` followed by
    /// its spec file's path, which must call [`crate::host::host_main`]. 0: all in this process.
    pub hosts: usize,
    pub host_command: Vec<std::ffi::OsString>,
    /// Publisher keys (hex ed25519) the agents trust for desired state; none: they refuse
    /// every bundle as untrusted.
    pub trusted: Vec<String>,
}

/// How long setting up took, by phase.
#[derive(Debug, Clone, Default)]
pub struct SetupTimes {
    pub nats: Duration,
    pub controller: Duration,
    pub tokens: Duration,
    pub enroll: Duration,
    pub links: Duration,
    /// From the first link started until the controller had a heartbeat from every agent.
    pub connected: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{0}")]
    Setup(String),
    #[error("nats: {0}")]
    Nats(#[from] warden_natstest::Error),
    #[error("controller: {0}")]
    Controller(#[from] warden_controller::FleetError),
    #[error(transparent)]
    Sandbox(#[from] crate::sandbox::SandboxError),
}

pub(crate) fn setup(what: impl std::fmt::Display) -> SimError {
    SimError::Setup(what.to_string())
}

/// One simulated agent.
#[derive(Debug)]
pub struct SimAgentHandle {
    pub id: AgentId,
    pub tenant: TenantId,
    /// Its ledger and outbox.
    pub state: PathBuf,
    /// `None` once stopped, or when a child process hosts it.
    pub link: Option<RunningLink>,
    /// Where it lives (credentials, state, audit log).
    pub hosted: HostedAgent,
    /// Its side of the seam, kept across a restart of its link; `None` when a child process
    /// hosts it.
    pub agent: Option<Arc<SimAgent>>,
}

/// What the links left when they stopped.
#[derive(Debug, Default)]
pub struct Stopped {
    /// Entries still in the outboxes, (results, events), summed.
    pub left: (u64, u64),
    /// Executions per (agent, run), of every sandbox (this process's and the hosts').
    pub executions: HashMap<(AgentId, RunId), u32>,
}

/// A running simulated fleet; dropping it kills the servers and the hosts.
pub struct SimFleet {
    pub nats: Nats,
    pub controller: Running,
    /// This process's sandbox (its agents', when no child hosts them).
    pub sandbox: Arc<Sandbox>,
    pub agents: Vec<SimAgentHandle>,
    pub times: SetupTimes,
    pub grpc: std::net::SocketAddr,
    pub config: ControllerConfig,
    urls: Vec<String>,
    heartbeat: Duration,
    hosts: Vec<Host>,
    stop_grpc: Option<oneshot::Sender<()>>,
    // Last: removed after everything above stopped using it.
    pub dir: tempfile::TempDir,
}

impl std::fmt::Debug for SimFleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimFleet")
            .field("agents", &self.agents.len())
            .finish_non_exhaustive()
    }
}

/// Await the controller's progress until `f` holds, or `deadline`; `Err` with the last
/// progress seen.
pub async fn progress_until(
    running: &Running,
    deadline: tokio::time::Instant,
    f: impl Fn(&Progress) -> bool,
) -> Result<Progress, Progress> {
    let mut rx = running.controller.progress();
    let found = tokio::time::timeout_at(deadline, async {
        loop {
            let now = *rx.borrow_and_update();
            if f(&now) {
                return now;
            }
            if rx.changed().await.is_err() {
                return now;
            }
        }
    })
    .await;
    found.map_err(|_| *running.controller.progress().borrow())
}

/// Start a link per entry (agent, its identity), [`START_PARALLEL`] at a time, sharing
/// `sandbox`.
pub(crate) async fn start_links(
    entries: Vec<(HostedAgent, FleetIdentity)>,
    urls: &[String],
    heartbeat: Duration,
    sandbox: &Arc<Sandbox>,
    deadline: tokio::time::Instant,
) -> Result<Vec<SimAgentHandle>, SimError> {
    let permits = Arc::new(Semaphore::new(START_PARALLEL));
    let mut starting = JoinSet::new();
    for (agent, identity) in entries {
        let permits = permits.clone();
        let sim = Arc::new(SimAgent::new(
            identity.agent.clone(),
            sandbox.clone(),
            agent.gated,
        ));
        let urls = urls.to_vec();
        starting.spawn(async move {
            let _permit = permits.acquire_owned().await.map_err(setup)?;
            let link = start_link(&agent, identity.clone(), sim.clone(), urls, heartbeat).await?;
            Ok::<_, SimError>((
                agent.index,
                SimAgentHandle {
                    id: identity.agent.clone(),
                    tenant: identity.tenant.clone(),
                    state: agent.state(),
                    link: Some(link),
                    hosted: agent,
                    agent: Some(sim),
                },
            ))
        });
    }
    let mut agents = Vec::new();
    while let Some(done) = tokio::time::timeout_at(deadline, starting.join_next())
        .await
        .map_err(|_| setup("the links did not start before the deadline"))?
    {
        agents.push(done.map_err(setup)??);
    }
    agents.sort_by_key(|(i, _)| *i);
    Ok(agents.into_iter().map(|(_, a)| a).collect())
}

/// Start one agent's link on its own identity and state.
async fn start_link(
    agent: &HostedAgent,
    identity: FleetIdentity,
    sim: Arc<SimAgent>,
    urls: Vec<String>,
    heartbeat: Duration,
) -> Result<RunningLink, SimError> {
    let settings = LinkSettings {
        urls,
        tls: false,
        ca_file: None,
        heartbeat: HeartbeatSettings {
            interval: heartbeat,
            // `shard=<i mod 100>`: a target of 1 % of the fleet (`shard=0`), for what would
            // be too heavy for all of it at once in one process (an 18 MB plugin each).
            tags: [
                ("sim".to_string(), "yes".to_string()),
                ("shard".to_string(), (agent.index % SHARDS).to_string()),
            ]
            .into(),
            hostname: format!("sim-{:05}", agent.index),
            windows: Vec::new(),
        },
        outbox_cap: OUTBOX_CAP,
        // Fresh credentials, never due for renewal within a benchmark.
        credentials_file: None,
    };
    FleetLink {
        agent: sim,
        identity,
        settings,
        state: agent.state(),
        audit: Arc::new(AuditLog::new(&agent.dir)),
        events: None,
    }
    .start()
    .await
    .map_err(|e| setup(format!("agent {}'s link: {e}", agent.index)))
}

/// Stop every running link of `agents` (in parallel; each drains its outbox for up to its stop
/// allowance); what the outboxes still held, summed.
pub(crate) async fn stop_links(agents: &mut [SimAgentHandle]) -> (u64, u64) {
    let mut stopping = JoinSet::new();
    for agent in agents {
        if let Some(link) = agent.link.take() {
            stopping.spawn(async move {
                let left = link.outbox_len().await.unwrap_or((u64::MAX, u64::MAX));
                link.stop().await;
                left
            });
        }
    }
    let mut left = (0u64, 0u64);
    while let Some(done) = stopping.join_next().await {
        if let Ok((r, e)) = done {
            left.0 = left.0.saturating_add(r);
            left.1 = left.1.saturating_add(e);
        }
    }
    left
}

impl SimFleet {
    /// Start the servers, the controller and `options.agents` enrolled, connected agents; ready
    /// when the controller has a heartbeat from each (so each is connected and subscribed).
    pub async fn start(
        options: FleetOptions,
        deadline: tokio::time::Instant,
    ) -> Result<SimFleet, SimError> {
        let mut times = SetupTimes::default();
        let parent = options.tmp.clone().unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::Builder::new()
            .prefix("warden-fleetsim-")
            .tempdir_in(&parent)
            .map_err(|e| {
                setup(format!(
                    "a temporary directory in {}: {e}",
                    parent.display()
                ))
            })?;
        let sandbox = Arc::new(Sandbox::new(
            &dir.path().join("sandbox"),
            &options.guest,
            &options.trusted,
        )?);

        let tenants: Vec<TenantId> = TENANTS
            .iter()
            .map(|t| TenantId::new(*t).map_err(setup))
            .collect::<Result<_, _>>()?;
        let mut config = ControllerConfig::new(dir.path().join("controller"));
        config.tenants = tenants.clone();
        config.results_replicas = if options.nodes >= 3 { 3 } else { 1 };
        let fragment = serve::write_nats_config(&config.data_dir, &config)?;
        let extra_config = std::fs::read_to_string(&fragment).map_err(setup)?;
        let t = Instant::now();
        let nodes = options.nodes;
        let nats = tokio::task::block_in_place(|| {
            Nats::start(
                nodes,
                NatsOptions {
                    extra_config,
                    // A 10,000-agent run keeps up to two results per agent in the stream.
                    max_file_store: 1 << 30,
                    ..NatsOptions::default()
                },
            )
        })?;
        times.nats = t.elapsed();
        config.nats_url = nats.url(0);
        config.agent_nats_urls = nats.urls();

        let t = Instant::now();
        let controller = serve::start(&config, Arc::new(SystemClock), Options::default()).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(setup)?;
        let grpc = listener.local_addr().map_err(setup)?;
        let api_tokens = warden_access::Tokens::new(&[]).map_err(setup)?;
        let (stop_grpc, stopped) = oneshot::channel::<()>();
        tokio::spawn(warden_controller::grpc::serve(
            controller.controller.clone(),
            api_tokens,
            listener,
            async {
                let _ = stopped.await;
            },
        ));
        times.controller = t.elapsed();

        // Tokens in bulk, one per agent, each single-use and of the agent's tenant (agent i is
        // of tenant i % tenants).
        let t = Instant::now();
        let mut tokens: Vec<Vec<String>> = Vec::with_capacity(tenants.len());
        for (k, tenant) in tenants.iter().enumerate() {
            let count = (0..options.agents)
                .filter(|i| i % tenants.len() == k)
                .count();
            if count == 0 {
                tokens.push(Vec::new());
                continue;
            }
            let c = controller.controller.clone();
            let tenant = tenant.clone();
            let issued = tokio::task::spawn_blocking(move || {
                c.issue_enrollment_tokens(&internal_caller(), &tenant, &[], None, count)
            })
            .await
            .map_err(setup)??;
            // Popped from the end below: reversed, agent order.
            tokens.push(issued.into_iter().rev().map(|t| t.token).collect());
        }
        times.tokens = t.elapsed();

        // Enrollment over gRPC, each agent with its own key and token; the credentials are
        // written where the agent keeps them (mode 0600) and loaded back as `warden serve` does.
        let t = Instant::now();
        let url = format!("http://{grpc}");
        let agents_dir = dir.path().join("agents");
        let permits = Arc::new(Semaphore::new(ENROLL_PARALLEL));
        let mut enrolling = JoinSet::new();
        for i in 0..options.agents {
            let tenant = tenants[i % tenants.len()].clone();
            let token = tokens[i % tenants.len()]
                .pop()
                .ok_or_else(|| setup("fewer tokens than agents"))?;
            let permits = permits.clone();
            let url = url.clone();
            let agent_dir = agents_dir.join(format!("{i:05}"));
            enrolling.spawn(async move {
                let _permit = permits.acquire_owned().await.map_err(setup)?;
                let enrolled = enroll_client::enroll(&EnrollOptions {
                    controller: url,
                    token,
                    tenant: tenant.clone(),
                    name: format!("sim-{i:05}"),
                    ca_file: None,
                })
                .await
                .map_err(|e| setup(format!("agent {i} enrolls: {e}")))?;
                let path = agent_dir.join(crate::host::CREDS_FILE);
                let identity = tokio::task::spawn_blocking(move || {
                    std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))
                        .map_err(setup)?;
                    warden_agent::fleet::store_credentials(&path, &enrolled.credentials)
                        .map_err(setup)?;
                    FleetIdentity::load(&path, tenant).map_err(setup)
                })
                .await
                .map_err(setup)??;
                Ok::<_, SimError>((i, identity, agent_dir))
            });
        }
        let mut identities = Vec::with_capacity(options.agents);
        while let Some(done) = tokio::time::timeout_at(deadline, enrolling.join_next())
            .await
            .map_err(|_| setup("enrollment did not finish before the deadline"))?
        {
            identities.push(done.map_err(setup)??);
        }
        identities.sort_by_key(|(i, _, _)| *i);
        times.enroll = t.elapsed();

        // The links: here, or in child processes.
        let t = Instant::now();
        let entries: Vec<(HostedAgent, FleetIdentity)> = identities
            .into_iter()
            .map(|(index, identity, dir)| {
                let agent = HostedAgent {
                    index,
                    tenant: identity.tenant.to_string(),
                    dir,
                    gated: (options.gated)(index),
                };
                (agent, identity)
            })
            .collect();
        let mut hosts = Vec::new();
        let agents = if options.hosts == 0 {
            start_links(entries, &nats.urls(), options.heartbeat, &sandbox, deadline).await?
        } else {
            let handles: Vec<SimAgentHandle> = entries
                .iter()
                .map(|(agent, identity)| SimAgentHandle {
                    id: identity.agent.clone(),
                    tenant: identity.tenant.clone(),
                    state: agent.state(),
                    link: None,
                    hosted: agent.clone(),
                    agent: None,
                })
                .collect();
            let per_host = entries.len().div_ceil(options.hosts).max(1);
            let hosted: Vec<HostedAgent> = entries.into_iter().map(|(a, _)| a).collect();
            for (k, chunk) in hosted.chunks(per_host).enumerate() {
                let spec = HostSpec {
                    urls: nats.urls(),
                    heartbeat_ms: u64::try_from(options.heartbeat.as_millis()).unwrap_or(u64::MAX),
                    guest: options.guest.clone(),
                    sandbox: dir.path().join(format!("sandbox-host-{k}")),
                    trusted: options.trusted.clone(),
                    agents: chunk.to_vec(),
                };
                let path = dir.path().join(format!("host-{k}.json"));
                let command = options.host_command.clone();
                let host = tokio::task::spawn_blocking(move || Host::spawn(&command, &path, &spec))
                    .await
                    .map_err(setup)??;
                hosts.push(host);
            }
            handles
        };
        times.links = t.elapsed();
        let n = u64::try_from(options.agents).unwrap_or(u64::MAX);
        progress_until(&controller, deadline, |p| p.heartbeats >= n)
            .await
            .map_err(|p| {
                setup(format!(
                    "{} of {n} agents were seen (heartbeats) before the deadline",
                    p.heartbeats
                ))
            })?;
        times.connected = t.elapsed();
        let urls = nats.urls();
        Ok(SimFleet {
            nats,
            controller,
            sandbox,
            agents,
            times,
            grpc,
            config,
            urls,
            heartbeat: options.heartbeat,
            hosts,
            stop_grpc: Some(stop_grpc),
            dir,
        })
    }

    /// Stop agent `i`'s link (its outbox drained for up to its stop allowance), as an agent
    /// going offline; what it installed stays. Only for agents of this process.
    pub async fn stop_agent(&mut self, i: usize) -> Result<(), SimError> {
        let agent = self
            .agents
            .get_mut(i)
            .ok_or_else(|| setup(format!("no agent {i}")))?;
        if let Some(link) = agent.link.take() {
            link.stop().await;
        }
        Ok(())
    }

    /// Start agent `i`'s link again on its own identity, state and installs.
    pub async fn start_agent(&mut self, i: usize) -> Result<(), SimError> {
        let (urls, heartbeat) = (self.urls.clone(), self.heartbeat);
        let agent = self
            .agents
            .get_mut(i)
            .ok_or_else(|| setup(format!("no agent {i}")))?;
        let sim = agent
            .agent
            .clone()
            .ok_or_else(|| setup(format!("agent {i} is hosted by a child process")))?;
        if agent.link.is_some() {
            return Ok(());
        }
        let identity = FleetIdentity::load(
            &agent.hosted.dir.join(crate::host::CREDS_FILE),
            agent.tenant.clone(),
        )
        .map_err(setup)?;
        agent.link = Some(start_link(&agent.hosted, identity, sim, urls, heartbeat).await?);
        Ok(())
    }

    /// Hold the runs of gated agents (in every process) until [`SimFleet::open_gate`]; closed
    /// everywhere when this returns.
    pub async fn close_gate(&mut self) -> Result<(), SimError> {
        self.sandbox.close_gate();
        self.tell_hosts("close").await
    }

    pub async fn open_gate(&mut self) -> Result<(), SimError> {
        self.sandbox.open_gate();
        self.tell_hosts("open").await
    }

    async fn tell_hosts(&mut self, command: &'static str) -> Result<(), SimError> {
        let hosts = std::mem::take(&mut self.hosts);
        let (hosts, told) = tokio::task::spawn_blocking(move || {
            let mut hosts = hosts;
            let told = hosts
                .iter_mut()
                .try_for_each(|h| h.command(command).map(drop));
            (hosts, told)
        })
        .await
        .map_err(setup)?;
        self.hosts = hosts;
        told
    }

    /// Executions per (agent, run) so far, of this process's sandbox only (the hosts report
    /// theirs when they stop: [`SimFleet::stop_links`]).
    pub fn executions(&self) -> HashMap<(AgentId, RunId), u32> {
        self.sandbox.executions()
    }

    /// The node that leads the results stream now (a cluster's R3 stream), asked over a
    /// connection of the controller's own account.
    pub async fn results_leader(&self) -> Result<usize, SimError> {
        let (authority, _) =
            warden_controller::keys::load_or_create(&self.config.data_dir, &self.config.tenants)
                .map_err(setup)?;
        let creds = authority
            .controller_credentials(warden_fleet_identity::unix_now())
            .map_err(setup)?;
        let client = async_nats::ConnectOptions::with_credentials(&creds.creds())
            .map_err(setup)?
            .connect(self.nats.urls())
            .await
            .map_err(setup)?;
        let js = async_nats::jetstream::new(client.clone());
        let mut stream = js
            .get_stream(warden_controller::nats::RESULTS_STREAM)
            .await
            .map_err(setup)?;
        let info = stream.info().await.map_err(setup)?;
        let leader = info
            .cluster
            .as_ref()
            .and_then(|c| c.leader.clone())
            .ok_or_else(|| setup("the results stream has no leader"))?;
        let _ = client.drain().await;
        self.nats.node_named(&leader).ok_or_else(|| {
            setup(format!(
                "the leader {leader} is not one of the fleet's nodes"
            ))
        })
    }

    /// Stop every link, here and in the hosts (in parallel; each drains its outbox for up to its
    /// stop allowance): what the outboxes still held and every sandbox's executions.
    pub async fn stop_links(&mut self) -> Result<Stopped, SimError> {
        let left = stop_links(&mut self.agents).await;
        let mut stopped = Stopped {
            left,
            executions: self.sandbox.executions(),
        };
        let hosts = std::mem::take(&mut self.hosts);
        let reports = tokio::task::spawn_blocking(move || {
            hosts
                .into_iter()
                .map(Host::stop)
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(setup)??;
        for report in reports {
            stopped.left.0 = stopped.left.0.saturating_add(report.left.0);
            stopped.left.1 = stopped.left.1.saturating_add(report.left.1);
            for (agent, run, n) in report.executions {
                *stopped.executions.entry((agent, run)).or_default() += n;
            }
        }
        Ok(stopped)
    }

    /// Stop the links, the API and the controller's loops.
    pub async fn stop(&mut self) -> Result<Stopped, SimError> {
        let stopped = self.stop_links().await;
        if let Some(stop) = self.stop_grpc.take() {
            let _ = stop.send(());
        }
        self.controller.stop().await;
        stopped
    }
}

/// The run ids in an agent's ledger and whether each has its final result, read from its state
/// file (with the link stopped, or not: a WAL reader does not block it).
pub fn ledger(state: &Path) -> Result<Vec<(String, bool)>, rusqlite::Error> {
    let db =
        rusqlite::Connection::open_with_flags(state, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut stmt = db.prepare("SELECT run, result IS NOT NULL FROM ledger ORDER BY run")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}
