//! What every task of one link shares: the identity, the durable state, the agent behind the
//! seam, the audit log, and the publisher's wake-up. Blocking work (SQLite commits, audit
//! appends) goes through [`LinkCore::blocking`], off the async workers.

use super::identity::FleetIdentity;
use super::in_flight::InFlight;
use super::outbox::{OutboxKind, Outgoing};
use super::seam::FleetAgent;
use super::store::{FleetStore, StoreError};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::Notify;
use warden_audit::AuditLog;
use warden_fleet_wire::{RunResult, encode};

pub(crate) struct LinkCore {
    pub identity: FleetIdentity,
    pub store: Arc<FleetStore>,
    pub agent: Arc<dyn FleetAgent>,
    pub audit: Arc<AuditLog>,
    pub outbox_cap: usize,
    /// Something entered the outbox.
    pub wake: Notify,
    /// Run ids accepted by this process and not finished yet.
    pub in_flight: InFlight,
    /// The last TLS refusal said, so a client retrying every few seconds says it once.
    pub tls_refused: std::sync::Mutex<Option<String>>,
}

impl LinkCore {
    /// Run `f` on the blocking pool.
    pub async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&LinkCore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let core = self.clone();
        match tokio::task::spawn_blocking(move || f(&core)).await {
            Ok(result) => result,
            Err(e) => Err(self.store.corrupt(format!("the task failed: {e}"))),
        }
    }

    /// Append an audit record, with this link's identity. A failing audit log is logged: the
    /// writer itself reports its health, and a refusal must still be answered.
    pub fn audit(&self, event: &str, mut data: Value) {
        if let Some(map) = data.as_object_mut() {
            map.insert("tenant".into(), json!(self.identity.tenant));
            map.insert("agent".into(), json!(self.identity.agent));
        }
        if let Err(e) = self.audit.append(event, data) {
            tracing::error!("cannot audit {event}: {e}");
        }
    }

    /// Audit events the outbox dropped to keep its cap.
    pub fn audit_dropped(&self, dropped: u64) {
        if dropped > 0 {
            tracing::warn!("fleet outbox full: dropped {dropped} oldest event(s)");
            self.audit(
                "fleet.outbox-events-dropped",
                json!({ "dropped": dropped, "cap": self.outbox_cap }),
            );
        }
    }
}

/// A result as an outbox entry.
pub(crate) fn outgoing(result: &RunResult) -> Result<Outgoing, String> {
    Ok(Outgoing {
        kind: OutboxKind::Result,
        subject: result.nats_subject(),
        msg_id: result.msg_id(),
        payload: encode(result).map_err(|e| e.to_string())?,
    })
}
