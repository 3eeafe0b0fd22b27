//! The Prometheus endpoint shared by the agent and the controller. Each of them owns its metric
//! families (what they count is theirs); this crate owns what is the same for both: the
//! `[metrics]` section of their configs ([`MetricsConfig`]: off unless present, loopback unless
//! the operator says otherwise) and the HTTP server that answers `GET /metrics` with the
//! OpenMetrics text prometheus-client encodes ([`serve`]) and anything else with 404.
//!
//! The endpoint is unauthenticated, as Prometheus scrapes usually are; that is why it serves
//! counts only, binds loopback by default, and the owners' label sets are bounded (statuses,
//! capabilities, tenants: never a run id, an agent id or a host name).

mod config;
mod server;

pub use config::{MetricsConfig, MetricsConfigError};
pub use prometheus_client;
pub use server::{BoxFuture, CONTENT_TYPE, Source, bind, render, serve};

/// Register `metric` as `name` in `registry` and hand it back: the registry keeps a clone, and
/// clones share their value, so the owner moves what the registry encodes.
pub fn registered<M>(
    registry: &mut prometheus_client::registry::Registry,
    name: &str,
    help: &str,
    metric: M,
) -> M
where
    M: prometheus_client::registry::Metric + Clone,
{
    registry.register(name, help, metric.clone());
    metric
}
