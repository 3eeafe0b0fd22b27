//! What the controller counts for Prometheus (names and meanings in docs/METRICS.md). Counters
//! move where the thing happens (dispatch, each command published, each result stored, each
//! enrollment); the fleet's state (agents by presence, pending approvals, rollouts by phase,
//! the NATS connection) is read from the store and the client at each scrape, so a gauge
//! cannot drift from what `warden fleet agents` shows.
//!
//! Labels are bounded: tenant (the configured tenants), presence, run status, rollout phase,
//! send kind, enrollment outcome. Never an agent id, a run id or a host name.

use crate::controller::Controller;
use crate::presence::presence;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::Arc;
use warden_metrics::{BoxFuture, Source, registered};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AgentsLabel {
    pub tenant: String,
    pub presence: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// `first` or `resend`.
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `enrolled` or `refused`.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    pub phase: String,
}

/// The controller's metric families; one per [`Controller`], served or not.
pub struct ControllerMetrics {
    registry: Registry,
    pub runs_dispatched: Counter,
    pub commands_sent: Family<KindLabel, Counter>,
    pub results: Family<StatusLabel, Counter>,
    pub results_ingested: Counter,
    pub enrollments: Family<OutcomeLabel, Counter>,
    pub agents: Family<AgentsLabel, Gauge>,
    pub nats_connected: Gauge,
    pub approvals_pending: Gauge,
    pub rollouts: Family<PhaseLabel, Gauge>,
    /// One scrape samples and encodes at a time: the per-tenant gauges are rebuilt.
    scraping: tokio::sync::Mutex<()>,
}

impl Default for ControllerMetrics {
    fn default() -> ControllerMetrics {
        let mut r = Registry::with_prefix("warden_controller");
        ControllerMetrics {
            runs_dispatched: registered(
                &mut r,
                "runs_dispatched",
                "Fleet runs dispatched (recorded and sent; not those waiting for an approval)",
                Counter::default(),
            ),
            commands_sent: registered(
                &mut r,
                "commands_sent",
                "Commands published to agents: first sends and re-sends (unanswered, or an agent back online)",
                Family::<KindLabel, Counter>::default(),
            ),
            results: registered(
                &mut r,
                "results",
                "Run results stored, by status (a duplicate delivery is not counted)",
                Family::<StatusLabel, Counter>::default(),
            ),
            results_ingested: registered(
                &mut r,
                "results_ingested",
                "Messages taken from the results stream (stored, duplicate or dropped)",
                Counter::default(),
            ),
            enrollments: registered(
                &mut r,
                "enrollments",
                "Enrollments completed, by outcome (enrolled, refused)",
                Family::<OutcomeLabel, Counter>::default(),
            ),
            agents: registered(
                &mut r,
                "agents",
                "Enrolled agents by tenant and presence (online, overdue, offline, never-seen, revoked)",
                Family::<AgentsLabel, Gauge>::default(),
            ),
            nats_connected: registered(
                &mut r,
                "nats_connected",
                "1 while the controller's NATS connection is up, 0 otherwise",
                Gauge::default(),
            ),
            approvals_pending: registered(
                &mut r,
                "approvals_pending",
                "Four-eyes requests waiting for a second operator (not expired)",
                Gauge::default(),
            ),
            rollouts: registered(
                &mut r,
                "rollouts",
                "Staged rollouts by phase",
                Family::<PhaseLabel, Gauge>::default(),
            ),
            scraping: tokio::sync::Mutex::new(()),
            registry: r,
        }
    }
}

impl ControllerMetrics {
    pub fn sent(&self, resend: bool, n: u64) {
        let kind = if resend { "resend" } else { "first" };
        self.commands_sent
            .get_or_create(&KindLabel { kind: kind.into() })
            .inc_by(n);
    }

    pub fn result_stored(&self, status: &str) {
        self.results
            .get_or_create(&StatusLabel {
                status: status.into(),
            })
            .inc();
    }

    pub fn enrollment(&self, enrolled: bool) {
        let outcome = if enrolled { "enrolled" } else { "refused" };
        self.enrollments
            .get_or_create(&OutcomeLabel {
                outcome: outcome.into(),
            })
            .inc();
    }
}

/// What the fleet's state gauges read, counted off the async workers.
struct Sample {
    agents: BTreeMap<(String, String), i64>,
    approvals_pending: i64,
    rollouts: Vec<(String, u64)>,
}

fn sample(controller: &Controller) -> Result<Sample, crate::store::StoreError> {
    let now = controller.now();
    let mut agents = BTreeMap::new();
    for a in controller.store.agents(None)? {
        let state = if a.revoked_at.is_some() {
            "revoked"
        } else {
            presence(a.last_seen, a.interval_ms, now).name()
        };
        *agents
            .entry((a.tenant.as_str().to_string(), state.to_string()))
            .or_insert(0) += 1;
    }
    let approvals_pending = controller.store.approvals().pending_approvals(now)?;
    Ok(Sample {
        agents,
        approvals_pending: i64::try_from(approvals_pending).unwrap_or(i64::MAX),
        rollouts: controller.store.rollout_phases()?,
    })
}

/// `/metrics` of a running controller.
pub struct ControllerSource {
    pub controller: Arc<Controller>,
}

impl Source for ControllerSource {
    fn scrape(&self) -> BoxFuture<'_, Result<String, std::fmt::Error>> {
        Box::pin(async move {
            let m = &self.controller.metrics;
            let _one = m.scraping.lock().await;
            m.nats_connected.set(i64::from(
                self.controller.nats.connection_state() == async_nats::connection::State::Connected,
            ));
            let c = self.controller.clone();
            match tokio::task::spawn_blocking(move || sample(&c)).await {
                Ok(Ok(s)) => {
                    // Rebuilt, so a tenant or presence with no agent left reads as absent.
                    m.agents.clear();
                    for ((tenant, presence), n) in s.agents {
                        m.agents
                            .get_or_create(&AgentsLabel { tenant, presence })
                            .set(n);
                    }
                    m.approvals_pending.set(s.approvals_pending);
                    m.rollouts.clear();
                    for (phase, n) in s.rollouts {
                        m.rollouts
                            .get_or_create(&PhaseLabel { phase })
                            .set(i64::try_from(n).unwrap_or(i64::MAX));
                    }
                }
                Ok(Err(e)) => tracing::warn!("metrics: cannot read the fleet's state: {e}"),
                Err(e) => tracing::warn!("metrics: cannot read the fleet's state: {e}"),
            }
            warden_metrics::render(&m.registry)
        })
    }
}
