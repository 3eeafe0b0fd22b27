//! [`FleetLink`]: one agent identity's connection to the fleet. It connects with the agent's
//! credentials (inbox prefix `_INBOX.<agent>`, so it reads only its own replies), subscribes to
//! its command subject and its desired-state notices, and runs five tasks: commands, desired
//! state ([`converge`]), the outbox publisher, heartbeats and (for the daemon) the automation
//! events. It starts even when no server is reachable: the
//! client keeps trying, commands wait for a connection, results wait in the outbox.
//!
//! Everything it needs comes in: the identity, the state file, the agent behind the
//! [`FleetAgent`] seam and the audit log; so one process can run many links (simulated agents),
//! each with its own identity, ledger and outbox.

use super::core::LinkCore;
use super::heartbeat::{self, HeartbeatSettings};
use super::identity::FleetIdentity;
use super::renewal::{self, CredsSlot};
use super::seam::FleetAgent;
use super::store::{FleetStore, StoreError};
use super::{commands, converge, events, publisher};
use crate::daemon::events::AgentEvent as DaemonEvent;
use async_nats::{ConnectOptions, Event};
use serde_json::json;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, broadcast, watch};
use tokio::task::JoinHandle;
use tokio_stream::StreamExt as _;
use warden_audit::AuditLog;
use warden_fleet_identity::subjects;
use warden_fleet_wire::{RunStatus, UnixMillis};

/// Commands handled at once; the agent's own run queue bounds the runs, this bounds the
/// tasks waiting on them. More wait in the subscription's buffer.
pub const MAX_COMMANDS_IN_FLIGHT: usize = 256;
/// How long stopping waits for commands in flight to store their results (their runs were
/// cancelled by the daemon's shutdown before; this is for their last commit).
pub const COMMANDS_AT_STOP: Duration = Duration::from_secs(10);

/// Where the servers are and how to reach them.
#[derive(Debug, Clone)]
pub struct LinkSettings {
    pub urls: Vec<String>,
    /// Require TLS (a `tls://` URL or a CA file).
    pub tls: bool,
    pub ca_file: Option<PathBuf>,
    pub heartbeat: HeartbeatSettings,
    pub outbox_cap: usize,
    /// The `.creds` file: renewed credentials replace it (atomically, mode 0600). `None`: the
    /// credentials live in memory only and are never renewed (simulated agents).
    pub credentials_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("fleet credentials: {0}")]
    Credentials(String),
    #[error("fleet NATS: {0}")]
    Nats(String),
    #[error(transparent)]
    Tls(#[from] super::tls::TlsSetupError),
}

/// One identity's link, not started yet.
pub struct FleetLink {
    pub identity: FleetIdentity,
    pub settings: LinkSettings,
    /// The ledger and outbox file of this identity.
    pub state: PathBuf,
    pub agent: Arc<dyn FleetAgent>,
    pub audit: Arc<AuditLog>,
    /// The daemon's automation events, forwarded to the fleet.
    pub events: Option<broadcast::Receiver<DaemonEvent>>,
}

/// A started link.
pub struct RunningLink {
    stop: watch::Sender<bool>,
    commands: JoinHandle<()>,
    tasks: Vec<JoinHandle<()>>,
    client: async_nats::Client,
    core: Arc<LinkCore>,
    connected: watch::Receiver<bool>,
}

/// What the agent's metrics read of a running link at each scrape.
#[derive(Clone)]
pub struct LinkProbe {
    connected: watch::Receiver<bool>,
    store: Arc<FleetStore>,
}

impl LinkProbe {
    /// Connected to a NATS server now.
    pub fn connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// Entries waiting in the outbox: (results, events). Blocking (SQLite).
    pub fn outbox_len(&self) -> Result<(u64, u64), StoreError> {
        self.store.outbox_len()
    }
}

impl std::fmt::Debug for RunningLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningLink")
            .field("agent", &self.core.identity.agent)
            .finish_non_exhaustive()
    }
}

impl FleetLink {
    /// Open the state, settle runs the last process left in flight, connect (in the
    /// background) and start the tasks.
    pub async fn start(self) -> Result<RunningLink, LinkError> {
        let path = self.state.clone();
        let store = tokio::task::spawn_blocking(move || FleetStore::open(&path))
            .await
            .map_err(|e| LinkError::Nats(format!("the task failed: {e}")))??;
        let core = Arc::new(LinkCore {
            identity: self.identity,
            store: Arc::new(store),
            agent: self.agent,
            audit: self.audit,
            outbox_cap: self.settings.outbox_cap,
            wake: Notify::new(),
            in_flight: Default::default(),
            tls_refused: Default::default(),
        });
        settle_interrupted(&core).await?;
        let pruned = core
            .blocking(|core| core.store.prune_ledger(UnixMillis::now()))
            .await?;
        if pruned > 0 {
            tracing::info!("fleet ledger: forgot {pruned} expired run id(s)");
        }

        let (connected_tx, connected) = watch::channel(false);
        let agent = core.identity.agent.clone();
        // Built before connecting: a CA file that cannot be read fails the start, not every
        // reconnect.
        let tls = if self.settings.tls {
            Some(super::tls::client_config(self.settings.ca_file.as_deref())?)
        } else {
            None
        };
        let refusals = tls.as_ref().map(|(_, refusals)| refusals.clone());
        let event_core = core.clone();
        // Read at every (re)connect: a renewal replaces what is in it.
        let creds = CredsSlot::new(core.identity.creds.clone());
        creds
            .sign(b"")
            .map_err(|e| LinkError::Credentials(e.to_string()))?;
        let signer = creds.clone();
        let mut options = ConnectOptions::with_auth_callback(move |nonce: Vec<u8>| {
            let signer = signer.clone();
            async move { signer.sign(&nonce) }
        })
        .custom_inbox_prefix(subjects::inbox_prefix(&agent))
        .name(format!("warden-agent {agent}"))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .event_callback(move |event| {
            let connected_tx = connected_tx.clone();
            let refused = refusals.as_ref().and_then(super::tls::Refusals::take);
            let core = event_core.clone();
            async move {
                match event {
                    Event::Connected => {
                        tracing::info!("fleet: connected");
                        *core
                            .tls_refused
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner) = None;
                        let _ = connected_tx.send(true);
                    }
                    Event::Disconnected | Event::Closed => {
                        tracing::warn!("fleet: {event}");
                        let _ = connected_tx.send(false);
                    }
                    Event::ClientError(error) => match refused {
                        Some(reason) => tls_refused(&core, reason).await,
                        None => tracing::warn!("fleet: client error: {error}"),
                    },
                    other => tracing::warn!("fleet: {other}"),
                }
            }
        });
        if let Some((config, _)) = tls {
            options = options.require_tls(true).tls_client_config(config);
        }
        let client = options
            .connect(self.settings.urls.as_slice())
            .await
            .map_err(|e| LinkError::Nats(e.to_string()))?;
        let subject = subjects::command(&core.identity.tenant, &agent);
        let subscription = client
            .subscribe(subject.clone())
            .await
            .map_err(|e| LinkError::Nats(format!("subscribing {subject}: {e}")))?;
        let desired = subjects::desired(&core.identity.tenant, &agent);
        let notices = client
            .subscribe(desired.clone())
            .await
            .map_err(|e| LinkError::Nats(format!("subscribing {desired}: {e}")))?;
        core.audit(
            "fleet.link-started",
            json!({ "urls": self.settings.urls, "tls": self.settings.tls }),
        );

        let (stop, stop_rx) = watch::channel(false);
        let commands = tokio::spawn(take_commands(core.clone(), subscription, stop_rx.clone()));
        let mut tasks = vec![
            tokio::spawn(publisher::run(
                core.clone(),
                client.clone(),
                connected.clone(),
                stop_rx.clone(),
            )),
            tokio::spawn(converge::run(
                core.clone(),
                client.clone(),
                notices,
                connected.clone(),
                stop_rx.clone(),
            )),
            tokio::spawn(heartbeat::run(
                core.clone(),
                client.clone(),
                self.settings.heartbeat,
                connected.clone(),
                stop_rx.clone(),
            )),
        ];
        if let Some(path) = self.settings.credentials_file.clone() {
            tasks.push(tokio::spawn(renewal::run(
                core.clone(),
                client.clone(),
                creds,
                path,
                connected.clone(),
                stop_rx.clone(),
            )));
        }
        if let Some(events) = self.events {
            tasks.push(tokio::spawn(events::run(core.clone(), events, stop_rx)));
        }
        Ok(RunningLink {
            stop,
            commands,
            tasks,
            client,
            core,
            connected,
        })
    }
}

impl RunningLink {
    /// Stop taking commands, let those in flight store their results, give the publisher
    /// [`publisher::DRAIN_AT_STOP`], then close the connection. What was not published stays
    /// in the outbox for the next start.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(COMMANDS_AT_STOP, self.commands)
            .await
            .is_err()
        {
            tracing::warn!(
                "fleet: commands still in flight at stop; their runs are settled at the next start"
            );
        }
        for task in self.tasks {
            let _ = task.await;
        }
        let _ = self.client.drain().await;
        self.core.audit("fleet.link-stopped", json!({}));
    }

    /// What the metrics read of this link.
    pub fn probe(&self) -> LinkProbe {
        LinkProbe {
            connected: self.connected.clone(),
            store: self.core.store.clone(),
        }
    }

    /// Entries waiting in the outbox: (results, events).
    pub async fn outbox_len(&self) -> Result<(u64, u64), StoreError> {
        self.core.blocking(|core| core.store.outbox_len()).await
    }
}

/// A server whose certificate the agent does not trust: said once per distinct reason (the
/// client retries every few seconds), audited as `fleet.tls-refused`. Nothing was sent to it:
/// the credentials go after the handshake.
async fn tls_refused(core: &Arc<LinkCore>, reason: String) {
    let new = {
        let mut last = core
            .tls_refused
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let new = last.as_deref() != Some(reason.as_str());
        *last = Some(reason.clone());
        new
    };
    if !new {
        return;
    }
    tracing::error!("fleet: not connecting: {reason}");
    let _ = core
        .blocking(move |core| {
            core.audit("fleet.tls-refused", json!({ "reason": reason }));
            Ok(())
        })
        .await;
}

/// Take commands until `stop`, each on its own task (at most [`MAX_COMMANDS_IN_FLIGHT`]);
/// at stop, wait for those in flight.
async fn take_commands(
    core: Arc<LinkCore>,
    mut subscription: async_nats::Subscriber,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(MAX_COMMANDS_IN_FLIGHT));
    loop {
        let message = tokio::select! {
            message = subscription.next() => message,
            _ = stop.wait_for(|s| *s) => break,
        };
        let Some(message) = message else { break };
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let core = core.clone();
        tokio::spawn(async move {
            core.handle_command(message.payload.to_vec()).await;
            drop(permit);
        });
    }
    let _ = subscription.unsubscribe().await;
    // All permits back: every command task has ended.
    let _ = permits
        .acquire_many(u32::try_from(MAX_COMMANDS_IN_FLIGHT).unwrap_or(u32::MAX))
        .await;
}

/// Runs the ledger took but never finished (the agent stopped or crashed meanwhile) get a
/// final `failed` result now: they are never run again, and the controller learns why.
async fn settle_interrupted(core: &Arc<LinkCore>) -> Result<(), LinkError> {
    let unfinished = core.blocking(|core| core.store.unfinished()).await?;
    for run in unfinished {
        tracing::warn!("fleet: run {run} was in flight when the agent stopped; reported failed");
        let mut result = core.result(&run, RunStatus::Failed);
        result.error = Some(commands::INTERRUPTED.to_string());
        result.finished_at = Some(UnixMillis::now());
        core.audit(
            "fleet.run-interrupted",
            json!({ "run": run, "error": commands::INTERRUPTED }),
        );
        core.finish(&run, &result).await;
    }
    Ok(())
}
