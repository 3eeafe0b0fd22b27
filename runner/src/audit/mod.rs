//! The append-only, hash-chained audit log: one JSON record per line, each carrying the sha256
//! of the previous record, fsync'd before the action it records counts as done. A caller that
//! cannot write the audit log must not proceed (fail closed).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// What happened, e.g. `plugin.installed`, `plugin.install-refused`.
    pub event: String,
    pub data: serde_json::Value,
    /// sha256 of the previous line, hex.
    pub prev: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("audit log {path} line {line}: {message}")]
    Broken {
        path: PathBuf,
        line: u64,
        message: String,
    },
}

fn hash_line(line: &str) -> String {
    hex::encode(Sha256::digest(line.as_bytes()))
}

struct Tail {
    seq: u64,
    hash: String,
}

/// The audit log of one data dir.
pub struct AuditLog {
    path: PathBuf,
    tail: Mutex<Option<Tail>>,
}

impl AuditLog {
    pub fn new(data_dir: &Path) -> AuditLog {
        AuditLog {
            path: data_dir.join("audit").join("audit.log"),
            tail: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append `event` and fsync it.
    pub fn append(&self, event: &str, data: serde_json::Value) -> Result<AuditRecord, AuditError> {
        let io = |source| AuditError::Io {
            path: self.path.clone(),
            source,
        };
        let mut guard = self
            .tail
            .lock()
            .map_err(|_| io(std::io::Error::other("audit lock poisoned")))?;
        if guard.is_none() {
            *guard = Some(read_tail(&self.path)?);
        }
        let tail = guard
            .as_mut()
            .ok_or_else(|| io(std::io::Error::other("audit tail unknown")))?;
        let record = AuditRecord {
            seq: tail.seq + 1,
            at_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            event: event.to_string(),
            data,
            prev: tail.hash.clone(),
        };
        let line = serde_json::to_string(&record).map_err(|e| io(std::io::Error::other(e)))?;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        file.write_all(format!("{line}\n").as_bytes()).map_err(io)?;
        file.sync_data().map_err(io)?;
        *tail = Tail {
            seq: record.seq,
            hash: hash_line(&line),
        };
        Ok(record)
    }

    /// Check the whole chain; returns the number of records.
    pub fn verify(&self) -> Result<u64, AuditError> {
        read_tail(&self.path).map(|t| t.seq)
    }
}

/// Walk the log, checking sequence and chain, and return its last record's seq and hash.
fn read_tail(path: &Path) -> Result<Tail, AuditError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Tail {
                seq: 0,
                hash: GENESIS.into(),
            });
        }
        Err(source) => {
            return Err(AuditError::Io {
                path: path.into(),
                source,
            });
        }
    };
    let mut tail = Tail {
        seq: 0,
        hash: GENESIS.into(),
    };
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let n = i as u64 + 1;
        let broken = |message: String| AuditError::Broken {
            path: path.into(),
            line: n,
            message,
        };
        let line = line.map_err(|source| AuditError::Io {
            path: path.into(),
            source,
        })?;
        let record: AuditRecord =
            serde_json::from_str(&line).map_err(|e| broken(format!("not a record: {e}")))?;
        if record.seq != tail.seq + 1 {
            return Err(broken(format!(
                "sequence {} follows {}: a record was removed or reordered",
                record.seq, tail.seq
            )));
        }
        if record.prev != tail.hash {
            return Err(broken(
                "hash chain broken: the previous record was modified".into(),
            ));
        }
        tail = Tail {
            seq: record.seq,
            hash: hash_line(&line),
        };
    }
    Ok(tail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chain_survives_reopen_and_detects_tampering() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = AuditLog::new(dir.path());
        log.append("a", json!({"n": 1})).expect("append");
        log.append("b", json!({"n": 2})).expect("append");
        let again = AuditLog::new(dir.path());
        assert_eq!(again.append("c", json!({})).expect("append").seq, 3);
        assert_eq!(again.verify().expect("intact"), 3);
        let text = std::fs::read_to_string(log.path()).expect("read");
        std::fs::write(log.path(), text.replacen("\"n\":1", "\"n\":9", 1)).expect("tamper");
        assert!(matches!(
            again.verify(),
            Err(AuditError::Broken { line: 2, .. })
        ));
    }
}
