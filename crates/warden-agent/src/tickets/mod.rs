//! Escalation to a PSA: the agent's side of the `ticketing` plugins. Automation events become
//! ticket calls ([`intake`]) queued in a durable outbox ([`store`]); a worker ([`worker`])
//! hands each to the configured ticketing plugin, retries failures with capped exponential
//! backoff and jitter ([`warden_core::retry`]), and records the ticket id and SLA due times the PSA gave
//! on the incident (history table `incident_tickets`), every step audited (`ticket.*`). The
//! connectors themselves are plugins (`plugins/ticket-*`): a new PSA ships like any plugin.
//! See docs/AUTOMATION.md, "Escalation to a PSA".

pub mod config;
pub mod intake;
pub mod store;
pub mod worker;

use config::{Secrets, TicketsConfig};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use store::TicketStore;
use tokio::sync::Notify;
use warden_audit::AuditLog;
use warden_automation::AutomationEvent;

/// The file of the outbox, in the data dir.
pub const STORE_FILE: &str = "tickets.sqlite";

#[derive(Debug, thiserror::Error)]
pub enum TicketsError {
    #[error("[tickets]: {0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// The ticket outbox of one agent, fed by automation events.
pub struct Tickets {
    pub(crate) store: TicketStore,
    pub(crate) config: TicketsConfig,
    pub(crate) secrets: Secrets,
    pub(crate) tenant: String,
    pub(crate) host: String,
    pub(crate) audit: Arc<AuditLog>,
    pub(crate) wake: Notify,
}

impl Tickets {
    /// Open the outbox in `data_dir` and read the secrets file. `tenant` is the fallback of
    /// `[tickets] tenant` (the fleet's tenant, when the agent has one).
    pub fn open(
        config: &TicketsConfig,
        data_dir: &Path,
        tenant: Option<String>,
        host: String,
        audit: Arc<AuditLog>,
    ) -> Result<Tickets, TicketsError> {
        let secrets = match &config.secrets_file {
            Some(path) => Secrets::load(path).map_err(TicketsError::Config)?,
            None => Secrets::default(),
        };
        Ok(Tickets {
            store: TicketStore::open(&data_dir.join(STORE_FILE))?,
            config: config.clone(),
            secrets,
            tenant: config
                .tenant
                .clone()
                .or(tenant)
                .unwrap_or_else(|| "default".into()),
            host,
            audit,
            wake: Notify::new(),
        })
    }

    /// Queue the ticket call `ev` asks for, if any, and wake the worker. Called by the daemon's
    /// executor for every automation event (after its audit record): a small SQLite write.
    pub fn on_event(&self, ev: &AutomationEvent) {
        let policy = intake::Policy {
            open_on: self.config.open_on,
            on_resolve: self.config.on_resolve,
        };
        let Some(call) = intake::call_for(ev, policy, &self.host) else {
            return;
        };
        if !self.config.covers(&call.monitor) {
            return;
        }
        match self.store.enqueue(&call, warden_history::now_ms()) {
            Ok(true) => {
                let record = json!({ "monitor": call.monitor, "incident": call.incident,
                                     "op": call.op.as_str(), "plugin": self.config.plugin });
                if let Err(e) = self.audit.append("ticket.queued", record) {
                    tracing::error!("cannot audit a queued ticket call: {e}");
                }
                self.wake.notify_one();
            }
            Ok(false) => {}
            Err(e) => tracing::error!(
                monitor = %call.monitor,
                incident = %call.incident,
                "cannot queue the ticket {} call: {e}",
                call.op.as_str()
            ),
        }
    }
}
