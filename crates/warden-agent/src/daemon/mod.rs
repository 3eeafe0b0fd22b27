//! `warden serve`: the long-running agent. It serves the gRPC API to the NOC, runs runbooks with
//! a bounded concurrency, and on SIGTERM/SIGINT stops taking work, lets running steps finish
//! within a grace period, cancels the rest and leaves a complete audit log. It reports the audit
//! log's health (`audit.failing`, `audit.recovered` events) and, given a checkpoint key, signs
//! checkpoints of it at start, periodically and at stop.

pub mod accept;
pub mod config;
pub mod events;
pub mod executor;
pub mod fleet;
mod fleet_runbooks;
pub mod offline;
pub mod patches;
pub mod reload;
pub mod retention;
pub mod runs;
pub mod runtime;
#[cfg(test)]
mod tests;
pub mod trigger;

use crate::PluginManager;
use config::AgentConfig;
use runs::RunManager;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, watch};
use warden_automation::baseline::BuiltinCheck;
use warden_history::History;
use warden_runbook::source::{self, LoadedRunbook, RunbookSourceError};

/// What the API handlers share.
pub struct AgentState {
    pub runner: Arc<PluginManager>,
    pub runs: Arc<RunManager>,
    pub config: AgentConfig,
    /// Automation events for `Agent.WatchEvents`.
    pub events: broadcast::Sender<events::AgentEvent>,
    /// Flips to true when the agent is stopping; open streams end.
    pub stopping: watch::Receiver<bool>,
    pub started: Instant,
    /// The ticket outbox of `[tickets]`, fed with every automation event.
    pub tickets: Option<Arc<crate::tickets::Tickets>>,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error(transparent)]
    History(#[from] warden_history::HistoryError),
    #[error(transparent)]
    Audit(#[from] warden_audit::AuditError),
    #[error(transparent)]
    Checkpoint(#[from] warden_audit::checkpoint::CheckpointError),
    #[error("the gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("cannot install the signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("the fleet link cannot start: {0}")]
    Fleet(String),
    #[error("monitor `{monitor}`: {message}")]
    Monitor { monitor: String, message: String },
    #[error(transparent)]
    Tickets(#[from] crate::tickets::TicketsError),
    #[error("cannot serve the metrics on {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl AgentState {
    /// A runbook of the configured directory, by name: `<name>.wbundle` (signed) first, then
    /// `<name>.toml`.
    pub fn load_named_runbook(&self, name: &str) -> Result<LoadedRunbook, RunbookSourceError> {
        let missing = |message: String| RunbookSourceError::Read {
            origin: name.to_string(),
            message,
        };
        warden_core::names::validate_plugin_name(name)
            .map_err(|m| missing(format!("bad name: {m}")))?;
        let dir = self
            .config
            .runbooks
            .dir
            .as_ref()
            .ok_or_else(|| missing("no [runbooks] dir is configured".into()))?;
        let signed_only = self.config.runbooks.signed_only;
        let bundle = dir.join(format!("{name}.wbundle"));
        if bundle.is_file() {
            return source::load_file(&bundle, &self.runner.policy(), true);
        }
        let toml = dir.join(format!("{name}.toml"));
        if toml.is_file() {
            return source::load_file(&toml, &self.runner.policy(), signed_only);
        }
        Err(missing(format!("no runbook `{name}` in {}", dir.display())))
    }
}

/// Waits for SIGTERM or SIGINT.
/// The signals that stop the agent, registered before it serves so that none is missed.
#[cfg(unix)]
struct Termination {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Termination {
    fn register() -> Result<Termination, DaemonError> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Termination {
            term: signal(SignalKind::terminate()).map_err(DaemonError::Signals)?,
            int: signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?,
        })
    }

    async fn wait(mut self) -> String {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM".into(),
            _ = self.int.recv() => "SIGINT".into(),
        }
    }
}

#[cfg(not(unix))]
struct Termination;

#[cfg(not(unix))]
impl Termination {
    fn register() -> Result<Termination, DaemonError> {
        Ok(Termination)
    }

    async fn wait(self) -> String {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "Ctrl-C".into(),
            // No way to hear Ctrl-C: run until killed, as a service manager would.
            Err(_) => std::future::pending().await,
        }
    }
}

/// Preload every installed plugin ([`PluginManager::warm_up`]) and say how it went.
fn warm_up(runner: &PluginManager) {
    let started = Instant::now();
    match runner.warm_up() {
        Ok(warm) => {
            for (plugin, e) in &warm.failed {
                tracing::warn!(%plugin, "cannot be preloaded (its runs will fail alike): {e}");
            }
            tracing::info!(
                "preloaded {} installed plugin(s) in {:.1} ms",
                warm.ready.len(),
                started.elapsed().as_secs_f64() * 1e3
            );
        }
        Err(e) => tracing::warn!("installed plugins not preloaded: {e}"),
    }
}

/// The host name (the fleet's display name of this agent).
pub fn host_name() -> String {
    host_id()
}

/// Seeds the per-host jitter of schedules: the host name, stable across restarts.
fn host_id() -> String {
    sysinfo::System::host_name().unwrap_or_else(|_| "warden-agent".into())
}

/// Tell the NOC (over `WatchEvents`) when the audit log stops and starts being writable again;
/// the writer logs both.
fn report_audit_health(runner: &PluginManager, events: broadcast::Sender<events::AgentEvent>) {
    let path = runner.audit().path().display().to_string();
    runner.audit().on_health_change(move |health| {
        let (kind, message) = match &health.error {
            Some(e) => (
                "audit.failing",
                format!("audit records cannot be written; calls are refused until they can: {e}"),
            ),
            None => (
                "audit.recovered",
                "the audit log is writable again; the queued records were written".to_string(),
            ),
        };
        let _ = events.send(events::AgentEvent {
            at_ms: warden_history::now_ms(),
            kind: kind.into(),
            subject: path.clone(),
            message,
            detail: serde_json::to_value(health).unwrap_or_default(),
        });
    });
}

/// Append a checkpoint every `interval` while records are appended, until `stop`.
async fn checkpoints(
    runner: Arc<PluginManager>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let runner = runner.clone();
        let written = tokio::task::spawn_blocking(move || runner.audit().checkpoint(false)).await;
        if let Ok(Err(e)) = written {
            tracing::error!("cannot append an audit checkpoint: {e}");
        }
    }
}

/// The fleet link of `[fleet]`, on this daemon's trigger path; its state file is
/// `<data-dir>/fleet/state.sqlite`.
async fn start_fleet_link(
    state: &Arc<AgentState>,
    fleet: &crate::fleet::FleetConfig,
    windows: &[warden_automation::schedule::MaintenanceWindow],
) -> Result<crate::fleet::RunningLink, DaemonError> {
    use crate::fleet::{FleetIdentity, FleetLink, HeartbeatSettings, LinkSettings};
    if let Some(enroll) = &fleet.enroll
        && !fleet.credentials.exists()
    {
        enroll_at_first_start(state, fleet, enroll).await?;
    }
    let identity = FleetIdentity::load(&fleet.credentials, fleet.tenant.clone())
        .map_err(|e| DaemonError::Fleet(e.to_string()))?;
    tracing::info!(
        "fleet: agent {} of tenant {}, servers {}",
        identity.agent,
        identity.tenant,
        fleet.urls.join(", ")
    );
    let link = FleetLink {
        identity,
        settings: LinkSettings {
            urls: fleet.urls.clone(),
            tls: fleet.tls(),
            ca_file: fleet.ca_file.clone(),
            heartbeat: HeartbeatSettings {
                interval: fleet.heartbeat_interval(),
                tags: fleet.tags.clone(),
                hostname: host_id(),
                windows: windows
                    .iter()
                    .map(crate::fleet::heartbeat::window_info)
                    .collect(),
            },
            outbox_cap: fleet.outbox_cap,
            credentials_file: Some(fleet.credentials.clone()),
        },
        state: state.runner.data_dir().join("fleet").join("state.sqlite"),
        agent: Arc::new(fleet::DaemonFleetAgent {
            state: state.clone(),
            handle: tokio::runtime::Handle::current(),
            patches: Default::default(),
            fleet_runs: Default::default(),
        }),
        audit: state.runner.audit_shared(),
        events: Some(state.events.subscribe()),
    };
    link.start()
        .await
        .map_err(|e| DaemonError::Fleet(e.to_string()))
}

/// `[metrics]`: bind its address (before anything is spawned, so a port in use fails the
/// start cleanly) and audit where it serves.
async fn bind_metrics(
    metrics: &warden_metrics::MetricsConfig,
    runner: &PluginManager,
) -> Result<tokio::net::TcpListener, DaemonError> {
    let addr = metrics.listen;
    let listener = warden_metrics::bind(metrics)
        .await
        .map_err(|source| DaemonError::Metrics { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| DaemonError::Metrics { addr, source })?;
    tracing::info!("metrics on http://{bound}/metrics");
    runner
        .audit()
        .append("metrics.started", json!({ "listen": bound.to_string() }))?;
    Ok(listener)
}

/// Serve `/metrics` on `listener` until `stop`.
fn serve_metrics(
    listener: tokio::net::TcpListener,
    runner: &Arc<PluginManager>,
    runs: &Arc<RunManager>,
    link: Option<&crate::fleet::RunningLink>,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let source = Arc::new(crate::metrics::AgentSource {
        metrics: runner.metrics().clone(),
        runs: runs.clone(),
        link: link.map(crate::fleet::RunningLink::probe),
    });
    tokio::spawn(warden_metrics::serve(listener, source, stop))
}

/// Largest enrollment token file read (a token is a JWT of well under 2 KiB).
const MAX_TOKEN_FILE_BYTES: u64 = 16 * 1024;

/// `[fleet.enroll]` with no credentials yet: enroll with the token file's token and write the
/// credentials (mode 0600), as `warden enroll` would.
async fn enroll_at_first_start(
    state: &Arc<AgentState>,
    fleet: &crate::fleet::FleetConfig,
    enroll: &crate::fleet::config::EnrollConfig,
) -> Result<(), DaemonError> {
    use crate::grpc::enroll_client::{EnrollOptions, enroll as enroll_with};
    let fail = |e: String| DaemonError::Fleet(format!("enrolling with {}: {e}", enroll.controller));
    let token = warden_core::fsutil::read_capped(&enroll.token_file, MAX_TOKEN_FILE_BYTES)
        .map_err(|e| fail(format!("cannot read {}: {e}", enroll.token_file.display())))?;
    let token = String::from_utf8(token)
        .map_err(|_| fail(format!("{} is not text", enroll.token_file.display())))?;
    let options = EnrollOptions {
        controller: enroll.controller.clone(),
        token: token.trim().to_string(),
        tenant: fleet.tenant.clone(),
        name: host_id(),
        ca_file: enroll.ca_file.clone(),
    };
    let enrolled = enroll_with(&options)
        .await
        .map_err(|e| fail(e.to_string()))?;
    if let Some(dir) = fleet.credentials.parent() {
        std::fs::create_dir_all(dir).map_err(|e| fail(format!("{}: {e}", dir.display())))?;
    }
    crate::fleet::store_credentials(&fleet.credentials, &enrolled.credentials)
        .map_err(|e| fail(e.to_string()))?;
    tracing::info!("fleet: enrolled as agent {}", enrolled.agent);
    state.runner.audit().append(
        "fleet.enrolled",
        json!({ "agent": enrolled.agent, "tenant": fleet.tenant, "controller": enroll.controller,
                "credentials": fleet.credentials }),
    )?;
    Ok(())
}

/// `warden serve`: bind the configured address and run the agent until SIGTERM or SIGINT; on
/// SIGHUP it rereads `config_path` ([`reload`]). `ready` gets the bound address once the agent
/// serves.
pub async fn serve_until_signal(
    runner: PluginManager,
    config: AgentConfig,
    config_path: std::path::PathBuf,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), DaemonError> {
    let termination = Termination::register()?;
    let reloads = reload::on_sighup(config_path).map_err(DaemonError::Signals)?;
    let addr = config.api.listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| DaemonError::Bind { addr, source })?;
    serve_reloading(runner, config, listener, termination.wait(), reloads, ready).await
}

/// Run the agent on `listener` until `shutdown` resolves with the reason (recorded in the audit
/// log); then it stops taking work, gives running steps their grace and cancels the rest. `ready`
/// gets the bound address once the agent serves. Tests run it in-process on port 0.
pub async fn serve(
    runner: PluginManager,
    config: AgentConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = String>,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), DaemonError> {
    // No sender: the reload task ends at once.
    let (_, reloads) = tokio::sync::mpsc::channel(1);
    serve_reloading(runner, config, listener, shutdown, reloads, ready).await
}

/// Every monitor's plugin is installed and exports `check`. The agent config is checked at
/// load, but only the store knows its plugins: without this a monitor naming a missing plugin
/// started silently and only the audit log showed `monitor-check-failed` at each interval.
fn check_monitor_plugins(runner: &PluginManager, config: &AgentConfig) -> Result<(), DaemonError> {
    use warden_core::manifest::Role;
    for monitor in &config.automation.monitors {
        let refuse = |message: String| DaemonError::Monitor {
            monitor: monitor.name.clone(),
            message,
        };
        // A built-in check runs a plugin of its own: the drift check a discovery plugin.
        let builtin = BuiltinCheck::parse(&monitor.plugin, &monitor.config).map_err(&refuse)?;
        let (plugin, runs) = match &builtin {
            Some(BuiltinCheck::Drift(drift)) => (&drift.plugin, "the drift check runs a discovery"),
            None => (&monitor.plugin, "a monitor runs a check"),
        };
        let fits = |role: Role| match builtin {
            Some(BuiltinCheck::Drift(_)) => matches!(role, Role::Discovery),
            None => matches!(role, Role::Check | Role::CheckRemediation),
        };
        match runner.store().get(plugin) {
            Ok(Some(p)) if fits(p.manifest.role) => {}
            Ok(Some(p)) => {
                return Err(refuse(format!(
                    "plugin `{plugin}` is a {} plugin; {runs} plugin",
                    p.manifest.role
                )));
            }
            Ok(None) => {
                return Err(refuse(format!(
                    "plugin `{plugin}` is not installed on this agent (`warden plugin install` it, \
                     or remove the monitor)"
                )));
            }
            Err(e) => return Err(refuse(format!("plugin `{plugin}`: {e}"))),
        }
    }
    Ok(())
}

/// The `[tickets]` plugin is installed and is a ticketing plugin; then its outbox opens.
fn open_tickets(
    runner: &PluginManager,
    config: &AgentConfig,
) -> Result<Option<Arc<crate::tickets::Tickets>>, DaemonError> {
    use crate::tickets::{Tickets, TicketsError};
    use warden_core::manifest::Role;
    let Some(tickets) = &config.tickets else {
        return Ok(None);
    };
    let refuse = |m: String| DaemonError::Tickets(TicketsError::Config(m));
    match runner.store().get(&tickets.plugin) {
        Ok(Some(p)) if p.manifest.role == Role::Ticketing => {}
        Ok(Some(p)) => {
            return Err(refuse(format!(
                "plugin `{}` is a {} plugin; tickets go through a ticketing plugin",
                tickets.plugin, p.manifest.role
            )));
        }
        Ok(None) => {
            return Err(refuse(format!(
                "plugin `{}` is not installed on this agent (`warden plugin install` it)",
                tickets.plugin
            )));
        }
        Err(e) => return Err(refuse(format!("plugin `{}`: {e}", tickets.plugin))),
    }
    let tenant = config.fleet.as_ref().map(|f| f.tenant.to_string());
    Ok(Some(Arc::new(Tickets::open(
        tickets,
        &runner.data_dir(),
        tenant,
        host_id(),
        runner.audit_shared(),
    )?)))
}

/// [`serve`], applying the configs `reloads` brings (see [`reload`]).
pub async fn serve_reloading(
    runner: PluginManager,
    config: AgentConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = String>,
    reloads: tokio::sync::mpsc::Receiver<reload::Reload>,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), DaemonError> {
    check_monitor_plugins(&runner, &config)?;
    let tickets = open_tickets(&runner, &config)?;
    if let Some(key) = &config.audit.checkpoint_key {
        let signer = warden_audit::CheckpointSigner::load(
            key,
            &runner.data_dir(),
            config.audit.checkpoint_interval(),
        )?;
        runner.audit().set_checkpoint_signer(signer);
    }
    runner.audit().set_rotate_bytes(config.audit.rotate_bytes);
    let runner = Arc::new(runner);
    let history = Arc::new(History::open(&runner.data_dir())?);
    // Before serving, so what a client reads is already within the retention.
    if let Err(e) = retention::prune_once(&history, &runner, config.history.retention()) {
        tracing::error!("cannot prune the run history: {e}");
    }
    retention::prune_audit_now(&runner, config.audit.retention());
    let (events, _) = broadcast::channel(1024);
    report_audit_health(&runner, events.clone());
    let runs = Arc::new(RunManager::new(
        runner.clone(),
        history,
        config.api.max_concurrent_runs,
        config.api.max_queued_runs,
        events.clone(),
    ));
    let (stop_tx, stopping) = watch::channel(false);
    let state = Arc::new(AgentState {
        runner: runner.clone(),
        runs: runs.clone(),
        config: config.clone(),
        events,
        stopping,
        started: Instant::now(),
        tickets: tickets.clone(),
    });

    let addr = config.api.listen;
    let bound = listener
        .local_addr()
        .map_err(|source| DaemonError::Bind { addr, source })?;
    let incoming = accept::incoming(listener);

    let api = crate::grpc::server::GrpcApi::build(state.clone(), &config, runner.clone()).await?;
    let reloading = tokio::spawn(reload::apply_reloads(
        reloads,
        api.auth.clone(),
        runner.clone(),
        state.events.clone(),
    ));

    runner.audit().append(
        "agent.started",
        json!({ "listen": bound.to_string(), "pid": std::process::id(), "tls": config.api.tls.is_some() }),
    )?;
    // Vouches for everything before this start, including what the CLI appended meanwhile.
    runner.audit().checkpoint(true)?;
    let metrics_listener = match &config.metrics {
        Some(metrics) => Some(bind_metrics(metrics, &runner).await?),
        None => None,
    };
    // Before any task is spawned, so a link that cannot start leaves nothing running; and
    // subscribed to the agent's events before the automation can send any.
    let fleet_link = match &config.fleet {
        Some(fleet) => Some(start_fleet_link(&state, fleet, &config.automation.windows).await?),
        None => None,
    };
    let metrics_server = metrics_listener.map(|listener| {
        serve_metrics(
            listener,
            &runner,
            &runs,
            fleet_link.as_ref(),
            stop_tx.subscribe(),
        )
    });
    let (checkpoint_stop_tx, checkpoint_stop) = watch::channel(false);
    let checkpointer = config.audit.checkpoint_key.is_some().then(|| {
        tokio::spawn(checkpoints(
            runner.clone(),
            config.audit.checkpoint_interval(),
            checkpoint_stop,
        ))
    });
    let pruner = tokio::spawn(retention::prune_periodically(
        runs.history().clone(),
        runner.clone(),
        config.history.retention(),
        checkpoint_stop_tx.subscribe(),
    ));
    let audit_pruner = tokio::spawn(retention::prune_audit_periodically(
        runner.clone(),
        config.audit.retention(),
        checkpoint_stop_tx.subscribe(),
    ));
    let (auto_stop_tx, auto_stop) = watch::channel(false);
    let executor = Arc::new(executor::DaemonExecutor {
        state: state.clone(),
        handle: tokio::runtime::Handle::current(),
    });
    let deps = warden_automation::Deps {
        history: runs.history().clone(),
        audit: runner.audit_shared(),
        clock: Arc::new(warden_automation::SystemClock),
        host_id: host_id(),
    };
    let automation =
        warden_automation::spawn(config.automation.clone(), executor, deps, auto_stop)?;
    let (tickets_stop_tx, tickets_stop) = watch::channel(false);
    let ticket_worker = tickets.map(|tickets| {
        let worker = crate::tickets::worker::Worker {
            tickets,
            runner: runner.clone(),
            history: runs.history().clone(),
            events: state.events.clone(),
        };
        tokio::spawn(worker.run(tickets_stop))
    });
    tracing::info!("listening on {bound}");
    ready(bound);
    // Loading an interpreter plugin's code is about half of its first run: do it for every
    // installed plugin now, off the async threads, rather than in the first trigger's time.
    let warming = runner.clone();
    tokio::task::spawn_blocking(move || warm_up(&warming));

    let (server_stop_tx, server_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api.router.serve_with_incoming_shutdown(incoming, async {
        let _ = server_stop_rx.await;
    }));

    let signal = shutdown.await;
    tracing::warn!(
        "{signal}: stopping; running steps get {:?}",
        config.shutdown_grace()
    );
    // Schedules and monitors start nothing new; then the runs get their grace period.
    let _ = auto_stop_tx.send(true);
    automation.join().await;
    // After the drivers, so their last events are queued; what is queued waits on disk.
    let _ = tickets_stop_tx.send(true);
    if let Some(worker) = ticket_worker {
        let _ = worker.await;
    }
    runs.shutdown(config.shutdown_grace()).await;
    // After the runs: the results of fleet runs cancelled at shutdown are in its outbox.
    if let Some(link) = fleet_link {
        link.stop().await;
    }
    api.health.stopping().await;
    let _ = stop_tx.send(true);
    if let Some(task) = metrics_server {
        let _ = task.await;
    }
    let _ = server_stop_tx.send(());
    // Open streams end with `stopping`; a connection that lingers does not hold the agent up.
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    let _ = checkpoint_stop_tx.send(true);
    if let Some(task) = checkpointer {
        let _ = task.await;
    }
    let _ = pruner.await;
    let _ = audit_pruner.await;
    reloading.abort();
    runner
        .audit()
        .append("agent.stopped", json!({ "signal": signal }))?;
    // The last record of a clean stop: it vouches for all the agent wrote.
    runner.audit().checkpoint(true)?;
    Ok(())
}
