//! `warden.v1.Inventory` and `warden.v1.Agent`: the latest discovery facts, the agent's version,
//! its automation events as a stream, the SLA report, and the audit log's head (to keep off the
//! machine).

use super::pb::{self, agent_server::Agent, inventory_server::Inventory};
use super::{State, WIT_PACKAGE, blocking, fit};
use warden_history::now_ms;

/// The report's period when the request gives none.
const DEFAULT_REPORT_DAYS: i64 = 30;
use std::pin::Pin;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

#[derive(Clone)]
pub struct AgentApi(pub State);

type AgentEventStream = Pin<Box<dyn Stream<Item = Result<pb::AgentEvent, Status>> + Send>>;

#[tonic::async_trait]
impl Inventory for AgentApi {
    async fn latest(
        &self,
        _req: Request<pb::LatestInventoryRequest>,
    ) -> Result<Response<pb::InventorySnapshot>, Status> {
        let history = self.0.runs.history().clone();
        let rows = blocking(move || {
            history
                .inventory()
                .map_err(|e| Status::internal(e.to_string()))
        })
        .await?;
        let mut snapshot = pb::InventorySnapshot {
            entries: rows
                .into_iter()
                .map(|r| pb::InventoryEntry {
                    plugin: r.plugin,
                    plugin_version: r.version,
                    collected_ms: r.collected_ms,
                    facts_json: r.facts.to_string(),
                    facts_truncated: false,
                })
                .collect(),
        };
        fit::fit_inventory(
            &mut snapshot,
            fit::budget(self.0.config.api.max_message_bytes),
        );
        Ok(Response::new(snapshot))
    }
}

#[tonic::async_trait]
impl Agent for AgentApi {
    async fn version(
        &self,
        _req: Request<pb::VersionRequest>,
    ) -> Result<Response<pb::VersionResponse>, Status> {
        Ok(Response::new(pb::VersionResponse {
            version: env!("CARGO_PKG_VERSION").into(),
            wit_package: WIT_PACKAGE.into(),
            uptime_secs: self.0.started.elapsed().as_secs(),
        }))
    }

    async fn audit_head(
        &self,
        _req: Request<pb::AuditHeadRequest>,
    ) -> Result<Response<pb::AuditHeadResponse>, Status> {
        let runner = self.0.runner.clone();
        let head = blocking(move || {
            runner
                .audit()
                .head()
                .map_err(|e| Status::unavailable(format!("no durable audit head: {e}")))
        })
        .await?;
        Ok(Response::new(pb::AuditHeadResponse {
            seq: head.seq,
            hash: head.hash,
            at_ms: i64::try_from(head.at_ms).unwrap_or(i64::MAX),
        }))
    }

    type WatchEventsStream = AgentEventStream;

    async fn watch_events(
        &self,
        _req: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let mut rx = self.0.events.subscribe();
        let mut stopping = self.0.stopping.clone();
        let (tx, out) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    e = rx.recv() => e,
                    _ = stopping.wait_for(|s| *s) => return,
                };
                match event {
                    Ok(e) => {
                        if tx.send(Ok(super::events::agent_event(&e))).await.is_err() {
                            return;
                        }
                    }
                    // A watcher too slow to keep up misses events rather than holding the agent back.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(out),
        )))
    }

    async fn report(
        &self,
        req: Request<pb::ReportRequest>,
    ) -> Result<Response<pb::ReportResponse>, Status> {
        let r = req.into_inner();
        let to_ms = if r.to_ms == 0 { now_ms() } else { r.to_ms };
        let from_ms = if r.from_ms == 0 {
            to_ms - DEFAULT_REPORT_DAYS * 86_400_000
        } else {
            r.from_ms
        };
        let (Some(from), Some(to)) = (
            chrono::DateTime::from_timestamp_millis(from_ms),
            chrono::DateTime::from_timestamp_millis(to_ms),
        ) else {
            return Err(Status::invalid_argument("from_ms / to_ms out of range"));
        };
        if from > to {
            return Err(Status::invalid_argument("from_ms is after to_ms"));
        }
        let history = self.0.runs.history().clone();
        let monitor = Some(r.monitor).filter(|m| !m.is_empty());
        let rows = blocking(move || {
            history
                .sla_report(from, to, monitor.as_deref())
                .map_err(|e| Status::internal(e.to_string()))
        })
        .await?;
        let mean = |v: Option<f64>| v.map(|v| v.round() as i64).unwrap_or(-1);
        Ok(Response::new(pb::ReportResponse {
            from_ms,
            to_ms,
            monitors: rows
                .into_iter()
                .map(|m| pb::MonitorReport {
                    monitor: m.monitor,
                    incidents: m.incidents as u32,
                    resolved: m.resolved as u32,
                    escalated: m.escalated as u32,
                    mean_time_to_detect_ms: mean(m.mean_time_to_detect_ms),
                    mean_time_to_remediate_ms: mean(m.mean_time_to_remediate_ms),
                    mttr_ms: mean(m.mttr_ms),
                })
                .collect(),
        }))
    }
}
