//! The controller's audit log is kept like the agent's: the live file is sealed once it reaches
//! `[audit] rotate-bytes`, and sealed files whose last record is older than `[audit]
//! retention-days` are removed at start and daily, after the `audit.pruned` record that names
//! them ([`warden_audit::AuditLog::prune`]), so the chain stays verifiable across what is left.

use std::time::Duration;
use warden_audit::{AuditError, AuditLog, Pruned};
use warden_fleet_wire::UnixMillis;

/// How often the audit log is pruned: it is kept for years, so a day more is nothing, and each
/// prune reads the last record of every sealed file.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// Six years by default: HIPAA (45 CFR 164.316(b)(2)) keeps security documentation that long,
/// the same default as the agent's.
pub const DEFAULT_RETENTION_DAYS: u32 = 2190;

/// Remove the sealed files older than `retention_days` as of `now`; log what went.
pub fn prune(audit: &AuditLog, retention_days: u32, now: UnixMillis) -> Result<Pruned, AuditError> {
    let retention = Duration::from_secs(u64::from(retention_days) * 24 * 60 * 60);
    let now_ms = u64::try_from(now.as_millis()).unwrap_or(0);
    let pruned = audit.prune(retention, now_ms)?;
    if let (Some(first), Some(last)) = (pruned.files.first(), pruned.files.last()) {
        tracing::info!(
            "audit: {} sealed file(s) older than {retention_days} days removed ({first} to {last})",
            pruned.files.len()
        );
    }
    Ok(pruned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sealed_files_past_the_retention_go_and_the_log_still_verifies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let audit = AuditLog::new(dir.path());
        audit.set_rotate_bytes(0);
        for n in 0..3 {
            audit.append("e", json!({ "n": n })).expect("append");
        }
        let now = UnixMillis::now();
        assert_eq!(
            prune(&audit, DEFAULT_RETENTION_DAYS, now).expect("prune"),
            Pruned::default(),
            "all within six years"
        );
        let seven_years_on = now.plus_millis(7 * 365 * 86_400_000);
        let pruned = prune(&audit, DEFAULT_RETENTION_DAYS, seven_years_on).expect("prune");
        assert_eq!(pruned.files.len(), 2, "{pruned:?}");
        let report = audit.verify().expect("accounted for");
        assert_eq!(report.pruned.map(|p| p.through_seq), Some(3));
    }
}
