//! What the agent counts for Prometheus (names and meanings in docs/METRICS.md). Counters move
//! where the thing happens (the run queue, the capability chokepoint's audit trail, the install
//! refusals, the monitor checks); gauges of state kept elsewhere (queue depth, open incidents,
//! the fleet link, its outbox) are sampled at each scrape, so they cannot drift from it.
//!
//! Labels are bounded sets only: run status, check status, capability (a WIT interface of the
//! host) and its decision, outbox kind. Never a run id, a plugin name or a host name.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use warden_metrics::{BoxFuture, Source};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CapabilityLabel {
    pub capability: String,
    /// `allowed` or `denied`.
    pub decision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

/// Run durations from 50 ms to about 7 minutes, doubling (14 buckets and +Inf).
fn duration_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.05, 2.0, 14)
}

/// The agent's metric families, registered once; cheap to move, so one exists per
/// [`crate::PluginManager`] whether or not `[metrics]` serves them.
pub struct AgentMetrics {
    registry: Registry,
    pub runs_started: Counter,
    pub runs_finished: Family<StatusLabel, Counter>,
    pub run_duration: Histogram,
    pub runs_queued: Gauge,
    pub runs_running: Gauge,
    pub capability_uses: Family<CapabilityLabel, Counter>,
    pub monitor_checks: Family<StatusLabel, Counter>,
    pub incidents_open: Gauge,
    pub plugin_installs_refused: Counter,
    pub fleet_connected: Gauge,
    pub fleet_outbox: Family<KindLabel, Gauge>,
}

impl Default for AgentMetrics {
    fn default() -> AgentMetrics {
        let mut registry = Registry::with_prefix("warden_agent");
        let runs_started = Counter::default();
        registry.register(
            "runs_started",
            "Runbook runs that got a slot and started",
            runs_started.clone(),
        );
        let runs_finished = Family::<StatusLabel, Counter>::default();
        registry.register(
            "runs_finished",
            "Runbook runs finished, by final status (cancelled while queued included)",
            runs_finished.clone(),
        );
        let run_duration = Histogram::new(duration_buckets());
        registry.register_with_unit(
            "run_duration",
            "Time from a run's start to its end, of runs that started",
            prometheus_client::registry::Unit::Seconds,
            run_duration.clone(),
        );
        let runs_queued = Gauge::default();
        registry.register(
            "runs_queued",
            "Runs waiting for a free slot (the run queue's depth)",
            runs_queued.clone(),
        );
        let runs_running = Gauge::default();
        registry.register("runs_running", "Runs holding a slot", runs_running.clone());
        let capability_uses = Family::<CapabilityLabel, Counter>::default();
        registry.register(
            "capability_uses",
            "Capability uses decided by the host's chokepoint, by capability and decision",
            capability_uses.clone(),
        );
        let monitor_checks = Family::<StatusLabel, Counter>::default();
        registry.register(
            "monitor_checks",
            "Monitor checks, by result (ok, warning, critical, unknown; error: the check could not run)",
            monitor_checks.clone(),
        );
        let incidents_open = Gauge::default();
        registry.register(
            "incidents_open",
            "Monitor incidents not resolved yet",
            incidents_open.clone(),
        );
        let plugin_installs_refused = Counter::default();
        registry.register(
            "plugin_installs_refused",
            "Plugin installs refused (signature, trust, policy, rollback)",
            plugin_installs_refused.clone(),
        );
        let fleet_connected = Gauge::default();
        registry.register(
            "fleet_connected",
            "1 while the fleet link is connected to NATS, 0 otherwise or without [fleet]",
            fleet_connected.clone(),
        );
        let fleet_outbox = Family::<KindLabel, Gauge>::default();
        registry.register(
            "fleet_outbox",
            "Messages waiting in the fleet link's outbox, by kind (result, event)",
            fleet_outbox.clone(),
        );
        AgentMetrics {
            registry,
            runs_started,
            runs_finished,
            run_duration,
            runs_queued,
            runs_running,
            capability_uses,
            monitor_checks,
            incidents_open,
            plugin_installs_refused,
            fleet_connected,
            fleet_outbox,
        }
    }
}

impl AgentMetrics {
    pub fn run_finished(&self, status: warden_core::RunStatus) {
        self.runs_finished
            .get_or_create(&StatusLabel {
                status: status.as_str().to_string(),
            })
            .inc();
    }

    pub fn capability_used(&self, capability: &str, allowed: bool) {
        self.capability_uses
            .get_or_create(&CapabilityLabel {
                capability: capability.to_string(),
                decision: if allowed { "allowed" } else { "denied" }.to_string(),
            })
            .inc();
    }

    /// `status`: a check status, or `error` when the check did not run.
    pub fn monitor_checked(&self, status: &str) {
        self.monitor_checks
            .get_or_create(&StatusLabel {
                status: status.to_string(),
            })
            .inc();
    }

    /// The OpenMetrics text of every family.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        warden_metrics::render(&self.registry)
    }
}

/// What the daemon's `/metrics` samples before it encodes.
pub struct AgentSource {
    pub metrics: Arc<AgentMetrics>,
    pub runs: Arc<crate::daemon::runs::RunManager>,
    pub link: Option<crate::fleet::LinkProbe>,
}

impl AgentSource {
    /// Read the sampled gauges (SQLite reads, on the blocking pool).
    async fn sample(&self) {
        let m = &self.metrics;
        m.runs_queued.set(gauge(self.runs.queued()));
        m.runs_running.set(gauge(self.runs.running()));
        let history = self.runs.history().clone();
        let link = self.link.clone();
        let counts = tokio::task::spawn_blocking(move || {
            let open = history.open_incident_count();
            let outbox = link.as_ref().map(|l| l.outbox_len());
            (open, outbox)
        })
        .await;
        let Ok((open, outbox)) = counts else {
            return;
        };
        match open {
            Ok(n) => {
                m.incidents_open.set(gauge(n));
            }
            Err(e) => tracing::warn!("metrics: cannot count the open incidents: {e}"),
        }
        m.fleet_connected
            .set(i64::from(self.link.as_ref().is_some_and(|l| l.connected())));
        match outbox {
            Some(Ok((results, events))) => {
                for (kind, n) in [("result", results), ("event", events)] {
                    m.fleet_outbox
                        .get_or_create(&KindLabel { kind: kind.into() })
                        .set(gauge(n));
                }
            }
            Some(Err(e)) => tracing::warn!("metrics: cannot count the fleet outbox: {e}"),
            None => {}
        }
    }
}

fn gauge(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

impl Source for AgentSource {
    fn scrape(&self) -> BoxFuture<'_, Result<String, std::fmt::Error>> {
        Box::pin(async move {
            self.sample().await;
            self.metrics.render()
        })
    }
}
