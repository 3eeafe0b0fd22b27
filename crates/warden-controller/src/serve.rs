//! Starting a controller: keys, store, NATS connections, the results stream, and the loops that
//! gather results, heartbeats and events, re-send commands and re-push accounts; then the gRPC
//! API until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use warden_audit::AuditLog;
use warden_fleet_identity::{DenyList, SpentTokens};

use crate::clock::Clock;
use crate::config::ControllerConfig;
use crate::controller::{Controller, FleetError, Progress};
use crate::enrollment::{DENY_LIST_KEY, EnrollmentState, SPENT_TOKENS_KEY};
use crate::keys;
use crate::nats::{self, CONTROLLERS_QUEUE, Role};
use crate::store::{FleetStore, SqliteStore};

/// How often the re-send loop looks at the open runs: 1 s (re-sends are due at 5 s and later;
/// a pass over the open runs is a few queries).
pub const TICK_INTERVAL: Duration = Duration::from_secs(1);
/// Events buffered per API watcher: 1,024 (an incident storm across a tenant; a watcher further
/// behind is told how many it missed and can list them).
pub const EVENT_WATCH_BUFFER: usize = 1024;
/// Results stored in one commit at most: what the consumer has delivered when the loop looks,
/// up to 256 (the pull consumer fetches in batches of a few hundred; a bigger commit only
/// delays the acks of its first results).
pub const INGEST_BATCH: usize = 256;
/// The store's file in the data dir.
pub const STORE_FILE: &str = "fleet.db";
/// The full resolver's directory written into `nats-operator.conf` (relative to the server).
pub const RESOLVER_DIR: &str = "jwt";

/// How the loops run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Run [`Controller::tick`] every this often; `None`: only when called (tests that move a
    /// manual clock).
    pub tick: Option<Duration>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            tick: Some(TICK_INTERVAL),
        }
    }
}

/// A running controller's loops.
#[derive(Debug)]
pub struct Running {
    pub controller: Arc<Controller>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stop the loops and drain both NATS connections (a controller restart, or shutdown).
    /// Results delivered but not yet acknowledged are redelivered to the next controller.
    pub async fn stop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        for client in [&self.controller.nats, &self.controller.system] {
            if let Err(e) = client.drain().await {
                tracing::warn!("draining a NATS connection: {e}");
            }
        }
    }
}

fn load<T: serde::de::DeserializeOwned + Default>(
    store: &dyn FleetStore,
    key: &str,
) -> Result<T, FleetError> {
    match store.load_state(key)? {
        Some(json) => serde_json::from_str(&json)
            .map_err(|e| FleetError::Internal(format!("stored {key} unreadable: {e}"))),
        None => Ok(T::default()),
    }
}

/// Write the servers' operator-mode config fragment (`nats-operator.conf`) for `data_dir`'s
/// keys; what `warden controller serve` tells an operator to include in nats-server's config.
pub fn write_nats_config(
    data_dir: &Path,
    config: &ControllerConfig,
) -> Result<std::path::PathBuf, FleetError> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| FleetError::Internal(format!("{}: {e}", data_dir.display())))?;
    let (authority, _) = keys::load_or_create(data_dir, &config.tenants)?;
    let store = SqliteStore::open(&data_dir.join(STORE_FILE))?;
    let deny: DenyList = load(&store, DENY_LIST_KEY)?;
    // A second back: a JWT pushed later in the same second must still replace the preload.
    let text = authority
        .server_config(&deny, RESOLVER_DIR, warden_fleet_identity::unix_now() - 1)
        .map_err(|e| FleetError::Internal(e.to_string()))?;
    let path = data_dir.join(keys::NATS_CONFIG_FILE);
    keys::write_private(&path, text.as_bytes())?;
    Ok(path)
}

/// Open the controller on `config` and start its loops.
pub async fn start(
    config: &ControllerConfig,
    clock: Arc<dyn Clock>,
    options: Options,
) -> Result<Running, FleetError> {
    let data_dir = config.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .map_err(|e| FleetError::Internal(format!("{}: {e}", data_dir.display())))?;
    let (authority, _) = keys::load_or_create(&data_dir, &config.tenants)?;
    let store: Arc<dyn FleetStore> = Arc::new(SqliteStore::open(&data_dir.join(STORE_FILE))?);
    // Spent tokens: the rows, and the whole set an older controller kept as one document.
    let mut spent: SpentTokens = load(store.as_ref(), SPENT_TOKENS_KEY)?;
    let now_secs = clock.now().as_secs();
    for (id, expires_at) in store.spent_tokens(now_secs)? {
        spent.spend(&id, expires_at);
    }
    spent.prune(now_secs);
    let deny: DenyList = load(store.as_ref(), DENY_LIST_KEY)?;
    let authority = Arc::new(Mutex::new(authority));
    let (reconnected_tx, mut reconnected) = mpsc::unbounded_channel();
    let system = nats::connect(&config.nats_url, authority.clone(), Role::System, Some(reconnected_tx))
        .await
        .map_err(|e| FleetError::Nats(format!("connecting to {} as the system user: {e} (does the server include this controller's {}?)", config.nats_url, keys::NATS_CONFIG_FILE)))?;
    let client = nats::connect(&config.nats_url, authority.clone(), Role::Fleet, None)
        .await
        .map_err(|e| FleetError::Nats(format!("connecting to {}: {e}", config.nats_url)))?;
    let (returning_tx, mut returning) = mpsc::unbounded_channel();
    let (progress, _) = watch::channel(Progress::default());
    let controller = Arc::new(Controller {
        store,
        authority,
        data_dir: data_dir.clone(),
        clock,
        audit: Arc::new(AuditLog::new(&data_dir)),
        nats: client.clone(),
        system,
        enrollment: Mutex::new(EnrollmentState {
            spent,
            deny,
            pending: Default::default(),
        }),
        enrollments: Default::default(),
        agent_urls: config.agent_urls(),
        command_ttl_secs: config.command_ttl_secs,
        progress,
        returning: returning_tx,
        events: tokio::sync::broadcast::channel(EVENT_WATCH_BUFFER).0,
        approvals: config.approvals.clone(),
        reports: config.reports.clone(),
        report_delivery: config.report_delivery.clone(),
        rollouts: tokio::sync::Mutex::new(()),
        blobs: tokio::sync::Mutex::new(()),
        metrics: Default::default(),
    });
    controller.audit.set_rotate_bytes(config.audit_rotate_bytes);
    prune_audit(&controller, config.audit_retention_days).await;
    let pushed = controller.push_all_accounts().await?;
    controller.audit(
        "controller.started",
        serde_json::json!({ "nats": config.nats_url, "accounts_pushed": pushed, "pid": std::process::id() }),
    )?;
    let consumer = nats::results_consumer(&client, config.results_replicas)
        .await
        .map_err(|e| FleetError::Nats(e.to_string()))?;
    nats::distribution_streams(&client, config.results_replicas)
        .await
        .map_err(|e| FleetError::Nats(e.to_string()))?;

    let metrics_listener = match &config.metrics {
        Some(metrics) => Some(bind_metrics(&controller, metrics).await?),
        None => None,
    };
    let mut tasks = Vec::new();
    // Blobs nothing needs: at start and daily (`crate::blobs`).
    let c = controller.clone();
    tasks.push(tokio::spawn(async move {
        let mut daily = tokio::time::interval(crate::blobs::INTERVAL);
        loop {
            daily.tick().await;
            match c
                .collect_blobs(&crate::controller::internal_caller(), false)
                .await
            {
                Ok(done) if !done.blobs.is_empty() => tracing::info!(
                    "blobs: {} collected ({} bytes)",
                    done.blobs.len(),
                    done.bytes
                ),
                Ok(_) => {}
                Err(e) => tracing::error!("cannot collect blobs: {e}"),
            }
        }
    }));
    // The audit log's sealed files past the retention: at start (above) and daily.
    let c = controller.clone();
    let retention_days = config.audit_retention_days;
    tasks.push(tokio::spawn(async move {
        let mut daily = tokio::time::interval(crate::audit_retention::PRUNE_INTERVAL);
        daily.tick().await;
        loop {
            daily.tick().await;
            prune_audit(&c, retention_days).await;
        }
    }));
    // Results: one durable pull consumer; ack only what the store has.
    let c = controller.clone();
    tasks.push(tokio::spawn(async move {
        loop {
            let mut messages = match consumer.messages().await {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!("results consumer: {e}; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            while let Some(first) = messages.next().await {
                // What the consumer delivered already, up to a batch: stored in one commit.
                let mut batch = Vec::new();
                let mut next = Some(first);
                while let Some(message) = next.take() {
                    match message {
                        Ok(m) => batch.push(m),
                        Err(e) => tracing::warn!("results: {e}"),
                    }
                    if batch.len() < INGEST_BATCH {
                        next = ready(&mut messages).flatten();
                    }
                }
                if batch.is_empty() {
                    continue;
                }
                let c2 = c.clone();
                let items: Vec<(String, Vec<u8>)> = batch
                    .iter()
                    .map(|m| (m.subject.to_string(), m.payload.to_vec()))
                    .collect();
                let taken = tokio::task::spawn_blocking(move || {
                    let refs: Vec<(&str, &[u8])> = items
                        .iter()
                        .map(|(s, p)| (s.as_str(), p.as_slice()))
                        .collect();
                    c2.take_results(&refs)
                })
                .await;
                match taken {
                    Ok(Ok(_)) => {
                        for message in &batch {
                            if let Err(e) = message.ack().await {
                                tracing::warn!("acking a result: {e}");
                            }
                        }
                    }
                    // Not acknowledged: redelivered after the ack wait.
                    Ok(Err(e)) => tracing::error!("storing {} result(s): {e}", batch.len()),
                    Err(e) => tracing::error!("storing {} result(s): {e}", batch.len()),
                }
            }
        }
    }));
    // Heartbeats and events: plain subjects, one queue group across controllers.
    for (subject, is_heartbeat) in [
        (
            format!("{}.>", warden_fleet_identity::subjects::HEARTBEATS),
            true,
        ),
        (
            format!("{}.>", warden_fleet_identity::subjects::EVENTS),
            false,
        ),
    ] {
        let mut sub = client
            .queue_subscribe(subject.clone(), CONTROLLERS_QUEUE.to_string())
            .await
            .map_err(|e| FleetError::Nats(format!("subscribing {subject}: {e}")))?;
        let c = controller.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(first) = sub.next().await {
                // Heartbeats already received are stored together (one commit); events one
                // by one (each is audited on its own and rare).
                let mut batch = vec![first];
                while is_heartbeat && batch.len() < INGEST_BATCH {
                    match ready(&mut sub).flatten() {
                        Some(m) => batch.push(m),
                        None => break,
                    }
                }
                let c2 = c.clone();
                let items: Vec<(String, Vec<u8>)> = batch
                    .into_iter()
                    .map(|m| (m.subject.to_string(), m.payload.to_vec()))
                    .collect();
                let taken = tokio::task::spawn_blocking(move || {
                    let refs: Vec<(&str, &[u8])> = items
                        .iter()
                        .map(|(s, p)| (s.as_str(), p.as_slice()))
                        .collect();
                    if is_heartbeat {
                        c2.take_heartbeats(&refs)
                    } else {
                        refs.iter().try_for_each(|(s, p)| c2.take_event(s, p))
                    }
                })
                .await;
                match taken {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!("{e}"),
                    Err(e) => tracing::error!("{e}"),
                }
            }
        }));
    }
    // Renewal requests: each answered on its reply subject, after its audit record.
    let subject = format!("{}.>", warden_fleet_identity::subjects::RENEWALS);
    let mut renewals = client
        .queue_subscribe(subject.clone(), CONTROLLERS_QUEUE.to_string())
        .await
        .map_err(|e| FleetError::Nats(format!("subscribing {subject}: {e}")))?;
    let c = controller.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(message) = renewals.next().await {
            let Some(reply) = message.reply.clone() else {
                tracing::warn!(
                    "a renewal request on {} without a reply subject",
                    message.subject
                );
                continue;
            };
            let c2 = c.clone();
            let subject = message.subject.to_string();
            let payload = message.payload.to_vec();
            let answer =
                tokio::task::spawn_blocking(move || c2.take_renewal(&subject, &payload)).await;
            let answer = match answer {
                Ok(Ok(answer)) => answer,
                Ok(Err(e)) => {
                    tracing::error!("a renewal was not answered: {e}");
                    continue;
                }
                Err(e) => {
                    tracing::error!("a renewal was not answered: {e}");
                    continue;
                }
            };
            match serde_json::to_vec(&answer) {
                Ok(bytes) => {
                    if let Err(e) = c.nats.publish(reply, bytes.into()).await {
                        tracing::warn!("answering a renewal: {e}");
                    }
                }
                Err(e) => tracing::error!("encoding a renewal answer: {e}"),
            }
        }
    }));
    client
        .flush()
        .await
        .map_err(|e| FleetError::Nats(e.to_string()))?;
    // Agents back online get their unanswered commands.
    let c = controller.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(agent) = returning.recv().await {
            if let Err(e) = c.serve_returning(&agent).await {
                tracing::warn!("sending {agent} its commands: {e}");
            }
        }
    }));
    // Every (re)connect of the system user: push every account again.
    let c = controller.clone();
    tasks.push(tokio::spawn(async move {
        while reconnected.recv().await.is_some() {
            match c.push_all_accounts().await {
                Ok(n) => tracing::info!("pushed {n} account JWTs after a (re)connect"),
                Err(e) => tracing::warn!("re-pushing accounts: {e}"),
            }
        }
    }));
    if let Some(every) = options.tick {
        let c = controller.clone();
        tasks.push(tokio::spawn(async move {
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                if let Err(e) = c.tick().await {
                    tracing::warn!("re-send pass: {e}");
                }
                // Staged rollouts: their releases and gates, on the same beat.
                if let Err(e) = c.tick_rollouts().await {
                    tracing::warn!("rollout pass: {e}");
                }
                // Scheduled client reports: a few file writes a month, on the blocking pool.
                let reporter = c.clone();
                match tokio::task::spawn_blocking(move || reporter.deliver_reports()).await {
                    Ok(Ok(files)) if !files.is_empty() => {
                        tracing::info!("wrote {} scheduled client reports", files.len());
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!("report delivery: {e}"),
                    Err(e) => tracing::warn!("report delivery task: {e}"),
                }
            }
        }));
    }
    if let Some(listener) = metrics_listener {
        tasks.push(serve_metrics(&controller, listener));
    }
    Ok(Running { controller, tasks })
}

/// `[metrics]`: bind its address (before any loop is spawned, so a port in use fails the start
/// with nothing left running) and audit where it serves.
async fn bind_metrics(
    controller: &Controller,
    metrics: &warden_metrics::MetricsConfig,
) -> Result<TcpListener, FleetError> {
    let addr = metrics.listen;
    let failed = |source| FleetError::Metrics { addr, source };
    let listener = warden_metrics::bind(metrics).await.map_err(failed)?;
    let bound = listener.local_addr().map_err(failed)?;
    controller.audit(
        "metrics.started",
        serde_json::json!({ "listen": bound.to_string() }),
    )?;
    tracing::info!("metrics on http://{bound}/metrics");
    Ok(listener)
}

/// Serve `/metrics` on `listener`; aborted with the other loops by [`Running::stop`].
fn serve_metrics(controller: &Arc<Controller>, listener: TcpListener) -> JoinHandle<()> {
    let source = Arc::new(crate::metrics::ControllerSource {
        controller: controller.clone(),
    });
    tokio::spawn(async move {
        let (_never, stop) = watch::channel(false);
        warden_metrics::serve(listener, source, stop).await;
    })
}

/// The stream's next item if it is ready now, without waiting: `None` when it would wait.
fn ready<S: tokio_stream::Stream + Unpin>(stream: &mut S) -> Option<Option<S::Item>> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match tokio_stream::Stream::poll_next(std::pin::Pin::new(stream), &mut cx) {
        std::task::Poll::Ready(item) => Some(item),
        std::task::Poll::Pending => None,
    }
}

/// Start everything and serve the gRPC API on `listener` until `shutdown`. `adapters` gets the
/// started controller first, to serve it otherwise too (the web console, which this crate
/// does not link).
pub async fn serve(
    config: &ControllerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    ready: impl FnOnce(SocketAddr),
    adapters: impl FnOnce(&Arc<Controller>),
) -> Result<(), FleetError> {
    let running = start(
        config,
        Arc::new(crate::clock::SystemClock),
        Options::default(),
    )
    .await?;
    let tokens = warden_access::Tokens::new(&config.tokens)
        .map_err(|e| FleetError::Invalid(e.to_string()))?;
    let addr = listener
        .local_addr()
        .map_err(|e| FleetError::Internal(e.to_string()))?;
    adapters(&running.controller);
    ready(addr);
    let mut running = running;
    let result = crate::grpc::serve(running.controller.clone(), tokens, listener, shutdown).await;
    running.stop().await;
    result
}

/// Prune the audit log off the async workers; a failure is logged and the log kept (the safe
/// side).
async fn prune_audit(controller: &Arc<Controller>, retention_days: u32) {
    let c = controller.clone();
    let pruned = tokio::task::spawn_blocking(move || {
        crate::audit_retention::prune(&c.audit, retention_days, c.now())
    })
    .await;
    match pruned {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::error!("cannot prune the audit log: {e}"),
        Err(e) => tracing::error!("cannot prune the audit log: {e}"),
    }
}
