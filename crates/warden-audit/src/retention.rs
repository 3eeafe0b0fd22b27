//! Retention: [`AuditLog::prune`] removes the oldest sealed files once their last record is older
//! than the retention period. What goes is said first: an `audit.pruned` record naming each file
//! with its last record's seq and hash is made durable before any file is removed, so the log
//! still accounts for every record it ever held, and `verify` accepts a log whose oldest records
//! are gone only when such a record names the file that ended right before them.
//!
//! Files are removed oldest first and only as a run from the oldest: a file younger than the
//! retention stops the run, and a removal that fails stops it too, so the files left are always
//! one unbroken chain. Before a file goes, the file after it must continue from its last record
//! (a boundary that does not hold is evidence, and is kept); the records inside it are not
//! re-checked: run `warden audit verify` (or copy the sealed files off the machine) for that.

use super::files::{self, PrunedData, PrunedFile, Sealed};
use super::{AuditError, AuditLog, AuditRecord};
use std::path::Path;
use std::time::Duration;

/// What [`AuditLog::prune`] removed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pruned {
    /// The sealed files removed, oldest first.
    pub files: Vec<String>,
    /// The `audit.pruned` record written before they went; `None` when nothing was old enough.
    pub record: Option<AuditRecord>,
}

impl AuditLog {
    /// Remove the sealed files whose last record was written more than `retention` before
    /// `now_ms` (milliseconds since the Unix epoch: the caller's clock), oldest first, after
    /// appending, durably, an `audit.pruned` record that names them. Only one process should
    /// prune a data directory (the agent does); the files a prune names stay named if their
    /// removal fails, and the next prune names them again.
    pub fn prune(&self, retention: Duration, now_ms: u64) -> Result<Pruned, AuditError> {
        let retention_ms = u64::try_from(retention.as_millis()).unwrap_or(u64::MAX);
        let older_than_ms = now_ms.saturating_sub(retention_ms);
        // Under the writers' lock: a rotation meanwhile would move the live file whose first
        // record the newest candidate's boundary is checked against.
        let plan = self
            .shared
            .exclusive(|| plan(self.path(), older_than_ms))??;
        let Some((_, last)) = plan.last() else {
            return Ok(Pruned::default());
        };
        let data = PrunedData {
            last_seq: last.last_seq,
            last_hash: last.last_hash.clone(),
            files: plan.iter().map(|(_, f)| f.clone()).collect(),
            older_than_ms,
            retention_secs: retention.as_secs(),
        };
        let record = self.append(files::PRUNED, serde_json::to_value(&data)?)?;
        let mut removed = Vec::with_capacity(plan.len());
        let mut failed = None;
        for (sealed, _) in &plan {
            match std::fs::remove_file(&sealed.path) {
                Ok(()) => removed.push(sealed.name.clone()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    removed.push(sealed.name.clone());
                }
                Err(source) => {
                    // Stop: removing a later file would leave a gap before this one.
                    failed = Some(AuditError::Io {
                        path: sealed.path.clone(),
                        source,
                    });
                    break;
                }
            }
        }
        let dir = files::sealed_dir(self.path());
        if let Err(e) = warden_core::fsutil::sync_dir(&dir) {
            tracing::warn!("audit directory {}: cannot sync: {e}", dir.display());
        }
        if let Some(e) = failed {
            return Err(e);
        }
        Ok(Pruned {
            files: removed,
            record: Some(record),
        })
    }
}

/// The sealed files to remove, oldest first: the run of files from the oldest whose last record
/// is older than `older_than_ms`, each checked to be continued by the file after it.
fn plan(live: &Path, older_than_ms: u64) -> Result<Vec<(Sealed, PrunedFile)>, AuditError> {
    let sealed = files::list_sealed(live)?;
    let mut plan = Vec::new();
    for (i, file) in sealed.iter().enumerate() {
        let (last, tail) = files::sealed_tail(file)?;
        if last.at_ms >= older_than_ms {
            break;
        }
        let next = sealed.get(i + 1).map_or(live, |n| n.path.as_path());
        match files::first_record(next)? {
            Some(r)
                if r.event == files::ROTATED && r.seq == tail.seq + 1 && r.prev == tail.hash => {}
            // The live file right after a rotation whose first batch is yet to come: the
            // `audit.pruned` record opens it, continuing from the anchor (this file's end).
            None if i + 1 == sealed.len() => {}
            _ => {
                return Err(AuditError::Broken {
                    path: next.to_path_buf(),
                    line: 1,
                    message: format!(
                        "does not continue {} (its first record is not the `{}` after record \
                         {}): nothing is pruned until someone looks",
                        file.name,
                        files::ROTATED,
                        tail.seq
                    ),
                });
            }
        }
        plan.push((
            file.clone(),
            PrunedFile {
                name: file.name.clone(),
                last_seq: tail.seq,
                last_hash: tail.hash,
                last_at_ms: last.at_ms,
            },
        ));
    }
    Ok(plan)
}
