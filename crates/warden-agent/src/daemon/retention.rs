//! Retention: the agent deletes finished runs older than `[history] retention-days` from
//! `history.db`, once before it serves and then every [`PRUNE_INTERVAL`]; each deletion is
//! audited (`history.pruned`): what the history no longer holds, the audit log says went. The
//! audit log's own sealed files older than `[audit] retention-days` go at start and every
//! [`AUDIT_PRUNE_INTERVAL`], after the `audit.pruned` record that names them
//! ([`warden_audit::AuditLog::prune`]).

use crate::PluginManager;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use warden_audit::{AuditError, AuditLog, Pruned};
use warden_history::{History, HistoryError, now_ms};

/// How often the history is pruned while the agent runs. An indexed delete is cheap, and runs
/// outlive the retention by an hour at most.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// How often the audit log is pruned: it is kept for years, so a day more is nothing, and each
/// prune reads the last record of every sealed file.
pub const AUDIT_PRUNE_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// Remove the audit log's sealed files older than `retention` (see [`AuditLog::prune`]), as of
/// `now_ms`.
pub fn prune_audit_once(
    audit: &AuditLog,
    retention: Duration,
    now_ms: u64,
) -> Result<Pruned, AuditError> {
    let pruned = audit.prune(retention, now_ms)?;
    if let (Some(first), Some(last)) = (pruned.files.first(), pruned.files.last()) {
        tracing::info!(
            "audit: {} sealed file(s) older than the retention removed ({first} to {last})",
            pruned.files.len()
        );
    }
    Ok(pruned)
}

fn system_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// [`prune_audit_once`] now, logging a failure: the log is kept, which is the safe side.
pub fn prune_audit_now(runner: &PluginManager, retention: Duration) {
    if let Err(e) = prune_audit_once(runner.audit(), retention, system_now_ms()) {
        tracing::error!("cannot prune the audit log: {e}");
    }
}

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

/// Prune the history every [`PRUNE_INTERVAL`] until `stop`.
pub(crate) async fn prune_periodically(
    history: Arc<History>,
    runner: Arc<PluginManager>,
    retention: Duration,
    stop: watch::Receiver<bool>,
) {
    every(PRUNE_INTERVAL, stop, move || {
        if let Err(e) = prune_once(&history, &runner, retention) {
            tracing::error!("cannot prune the run history: {e}");
        }
    })
    .await;
}

/// Prune the audit log every [`AUDIT_PRUNE_INTERVAL`] until `stop`.
pub(crate) async fn prune_audit_periodically(
    runner: Arc<PluginManager>,
    retention: Duration,
    stop: watch::Receiver<bool>,
) {
    every(AUDIT_PRUNE_INTERVAL, stop, move || {
        prune_audit_now(&runner, retention);
    })
    .await;
}

/// Run `job` off the async threads every `interval` (the first time one interval from now) until
/// `stop`.
async fn every(
    interval: Duration,
    mut stop: watch::Receiver<bool>,
    job: impl Fn() + Send + Sync + 'static,
) {
    let job = Arc::new(job);
    let start = tokio::time::Instant::now() + interval;
    let mut ticks = tokio::time::interval_at(start, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let job = job.clone();
        let _ = tokio::task::spawn_blocking(move || job()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_agent_prunes_sealed_audit_files_older_than_its_retention() {
        let dir = tempfile::tempdir().expect("tempdir");
        let audit = AuditLog::new(dir.path());
        audit.set_rotate_bytes(0);
        for n in 0..3 {
            audit.append("e", json!({ "n": n })).expect("append");
        }
        let now = system_now_ms();
        let retention = Duration::from_secs(2190 * 86_400);
        let kept = prune_audit_once(&audit, retention, now).expect("prune");
        assert_eq!(kept, Pruned::default(), "all within six years");
        let seven_years_on = now + 7 * 365 * 86_400_000;
        let pruned = prune_audit_once(&audit, retention, seven_years_on).expect("prune");
        assert_eq!(pruned.files.len(), 2, "{pruned:?}");
        let report = audit.verify().expect("accounted for");
        assert_eq!(report.pruned.map(|p| p.through_seq), Some(3));
    }
}
