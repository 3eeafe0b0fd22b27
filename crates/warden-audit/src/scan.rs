//! Reading the whole log forward, oldest record first, across its sealed files and the live
//! one: for reports that need every record of a kind over a period (the client report's check
//! runs), where [`crate::AuditLog::tail`] gives only the last few. A line is handed on only if
//! the caller's cheap text test accepts it, so a month of `capability.use` records is skipped
//! without being parsed.
//!
//! It does not verify the chain (that is [`crate::AuditLog::verify`]'s job); a line that is
//! not a record fails the scan, naming the file and line.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use crate::{AuditError, AuditLog, AuditRecord, files};

fn scan_file(
    path: &Path,
    keep: &mut dyn FnMut(&str) -> bool,
    each: &mut dyn FnMut(AuditRecord),
) -> Result<(), AuditError> {
    let file = match File::open(path) {
        Ok(f) => f,
        // A file sealed or pruned between the listing and the open: its records are in the
        // next file, or gone by the retention.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(AuditError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| AuditError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if line.is_empty() || !keep(&line) {
            continue;
        }
        let record: AuditRecord = serde_json::from_str(&line).map_err(|e| AuditError::Broken {
            path: path.to_path_buf(),
            line: i as u64 + 1,
            message: e.to_string(),
        })?;
        each(record);
    }
    Ok(())
}

impl AuditLog {
    /// Every record whose line `keep` accepts, oldest first, to `each` (records queued by
    /// [`AuditLog::append_lazy`] and not yet flushed are not in the files yet).
    pub fn scan(
        &self,
        mut keep: impl FnMut(&str) -> bool,
        mut each: impl FnMut(AuditRecord),
    ) -> Result<(), AuditError> {
        let mut last_seq: Option<u64> = None;
        let mut once = |r: AuditRecord| {
            // A rotation during the scan can seal records already read from the live file.
            if last_seq.is_none_or(|s| r.seq > s) {
                last_seq = Some(r.seq);
                each(r);
            }
        };
        for sealed in files::list_sealed(self.path())? {
            scan_file(&sealed.path, &mut keep, &mut once)?;
        }
        scan_file(self.path(), &mut keep, &mut once)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_kept_record_across_rotations_in_order() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = AuditLog::new(dir.path());
        // Small files: the records are spread over several sealed ones.
        log.set_rotate_bytes(400);
        for i in 0..20 {
            let event = if i % 2 == 0 {
                "plugin.run"
            } else {
                "capability.use"
            };
            log.append(event, json!({ "i": i })).expect("append");
        }
        assert!(
            !files::list_sealed(log.path()).expect("sealed").is_empty(),
            "rotated"
        );
        let mut seen = Vec::new();
        log.scan(
            |line| line.contains("\"plugin.run\""),
            |r| seen.push(r.data["i"].as_i64().unwrap_or(-1)),
        )
        .expect("scan");
        assert_eq!(seen, (0..20).step_by(2).collect::<Vec<i64>>());
        let empty = tempfile::tempdir().expect("tmp");
        let mut none = 0;
        AuditLog::new(empty.path())
            .scan(|_| true, |_| none += 1)
            .expect("no log is no records");
        assert_eq!(none, 0);
    }
}
