//! Run history retention: the agent deletes finished runs older than `[history] retention-days`
//! from `history.db`, once before it serves and then every [`PRUNE_INTERVAL`]. Each deletion is
//! audited (`history.pruned`): what the history no longer holds, the audit log says went.

use crate::PluginManager;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use warden_history::{History, HistoryError, now_ms};

/// How often the history is pruned while the agent runs. An indexed delete is cheap, and runs
/// outlive the retention by an hour at most.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// Delete the finished runs older than `retention`; audit it when any went.
pub fn prune_once(
    history: &History,
    runner: &PluginManager,
    retention: Duration,
) -> Result<usize, HistoryError> {
    let keep_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    let before_ms = now_ms().saturating_sub(keep_ms);
    let pruned = history.prune_runs(before_ms)?;
    if pruned > 0 {
        tracing::info!("history: {pruned} run(s) older than the retention deleted");
        let record = json!({ "runs": pruned, "started_before_ms": before_ms,
                             "retention_days": retention.as_secs() / 86_400 });
        if let Err(e) = runner.audit().append("history.pruned", record) {
            tracing::error!("cannot audit the history pruning: {e}");
        }
    }
    Ok(pruned)
}

/// Prune every [`PRUNE_INTERVAL`] until `stop`.
pub(crate) async fn prune_periodically(
    history: Arc<History>,
    runner: Arc<PluginManager>,
    retention: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let start = tokio::time::Instant::now() + PRUNE_INTERVAL;
    let mut ticks = tokio::time::interval_at(start, PRUNE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let (history, runner) = (history.clone(), runner.clone());
        let pruned =
            tokio::task::spawn_blocking(move || prune_once(&history, &runner, retention)).await;
        if let Ok(Err(e)) = pruned {
            tracing::error!("cannot prune the run history: {e}");
        }
    }
}
