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
use warden_metrics::{BoxFuture, Source, registered};

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
        let mut r = Registry::with_prefix("warden_agent");
        let run_duration = Histogram::new(duration_buckets());
        r.register_with_unit(
            "run_duration",
            "Time from a run's start to its end, of runs that started",
            prometheus_client::registry::Unit::Seconds,
            run_duration.clone(),
        );
        AgentMetrics {
            runs_started: registered(
                &mut r,
                "runs_started",
                "Runbook runs that got a slot and started",
                Counter::default(),
            ),
            runs_finished: registered(
                &mut r,
                "runs_finished",
                "Runbook runs finished, by final status (cancelled while queued included)",
                Family::<StatusLabel, Counter>::default(),
            ),
            run_duration,
            runs_queued: registered(
                &mut r,
                "runs_queued",
                "Runs waiting for a free slot (the run queue's depth)",
                Gauge::default(),
            ),
            runs_running: registered(
                &mut r,
                "runs_running",
                "Runs holding a slot",
                Gauge::default(),
            ),
            capability_uses: registered(
                &mut r,
                "capability_uses",
                "Capability uses decided by the host's chokepoint, by capability and decision",
                Family::<CapabilityLabel, Counter>::default(),
            ),
            monitor_checks: registered(
                &mut r,
                "monitor_checks",
                "Monitor checks, by result (ok, warning, critical, unknown; error: the check could not run)",
                Family::<StatusLabel, Counter>::default(),
            ),
            incidents_open: registered(
                &mut r,
                "incidents_open",
                "Monitor incidents not resolved yet",
                Gauge::default(),
            ),
            plugin_installs_refused: registered(
                &mut r,
                "plugin_installs_refused",
                "Plugin installs refused (signature, trust, policy, rollback)",
                Counter::default(),
            ),
            fleet_connected: registered(
                &mut r,
                "fleet_connected",
                "1 while the fleet link is connected to NATS, 0 otherwise or without [fleet]",
                Gauge::default(),
            ),
            fleet_outbox: registered(
                &mut r,
                "fleet_outbox",
                "Messages waiting in the fleet link's outbox, by kind (result, event)",
                Family::<KindLabel, Gauge>::default(),
            ),
            registry: r,
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
