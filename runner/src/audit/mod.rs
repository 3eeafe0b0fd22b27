//! The append-only, hash-chained audit log: one JSON record per line, each carrying the sha256
//! of the previous record, fsync'd before the action it records counts as done. A caller that
//! cannot write the audit log must not proceed (fail closed). Beside it, `head.json` anchors the
//! last record's sequence number and hash, so a truncated tail or a rewritten last record shows.

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

/// The anchor written after each append.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Head {
    seq: u64,
    hash: String,
    /// Length of the log at the anchor: a longer log has an unanchored batch (crash), a
    /// shorter one was truncated.
    #[serde(default)]
    len: Option<u64>,
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub records: u64,
    /// Set when the last record is not yet anchored (a crash between the two writes).
    pub warning: Option<String>,
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
    lock: Mutex<()>,
}

impl AuditLog {
    pub fn new(data_dir: &Path) -> AuditLog {
        AuditLog {
            path: data_dir.join("audit").join("audit.log"),
            lock: Mutex::new(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn head_path(&self) -> PathBuf {
        self.path.with_file_name("head.json")
    }

    fn read_head(&self) -> Result<Option<Head>, AuditError> {
        let path = self.head_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| AuditError::Broken {
                    path,
                    line: 0,
                    message: format!("anchor unreadable: {e}"),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(AuditError::Io { path, source }),
        }
    }

    /// The last `n` records.
    pub fn tail(&self, n: usize) -> Result<Vec<AuditRecord>, AuditError> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(source) => {
                return Err(AuditError::Io {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let mut last = std::collections::VecDeque::with_capacity(n);
        for (i, line) in BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|source| AuditError::Io {
                path: self.path.clone(),
                source,
            })?;
            let record: AuditRecord =
                serde_json::from_str(&line).map_err(|e| AuditError::Broken {
                    path: self.path.clone(),
                    line: i as u64 + 1,
                    message: format!("not a record: {e}"),
                })?;
            if last.len() == n {
                last.pop_front();
            }
            if n > 0 {
                last.push_back(record);
            }
        }
        Ok(last.into())
    }

    /// Append `event` and fsync it.
    pub fn append(&self, event: &str, data: serde_json::Value) -> Result<AuditRecord, AuditError> {
        let mut records = self.append_batch(vec![(event.to_string(), data)])?;
        records.pop().ok_or_else(|| AuditError::Io {
            path: self.path.clone(),
            source: std::io::Error::other("nothing appended"),
        })
    }

    /// Append several records with one fsync. Other processes (the CLI beside a daemon) are kept
    /// out by an exclusive lock, and the chain continues from the anchored head, not from memory.
    pub fn append_batch(
        &self,
        events: Vec<(String, serde_json::Value)>,
    ) -> Result<Vec<AuditRecord>, AuditError> {
        let io = |source| AuditError::Io {
            path: self.path.clone(),
            source,
        };
        let _in_process = self
            .lock
            .lock()
            .map_err(|_| io(std::io::Error::other("audit lock poisoned")))?;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.path.with_file_name("audit.lock"))
            .map_err(io)?;
        #[cfg(unix)]
        rustix::fs::flock(&lock_file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io(e.into()))?;
        let log_len = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        let mut tail = match self.read_head()? {
            Some(head) if head.len == Some(log_len) => Tail {
                seq: head.seq,
                hash: head.hash,
            },
            Some(head) if head.len.is_some_and(|len| log_len < len) => {
                // Never write past evidence of tampering: someone must look first.
                return Err(AuditError::Broken {
                    path: self.path.clone(),
                    line: head.seq,
                    message: "truncated below its anchor; refusing to append".into(),
                });
            }
            // No anchor yet, or a batch written without its anchor (a crash): walk the log.
            _ => read_tail(&self.path)?,
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let mut text = String::new();
        let mut records = Vec::with_capacity(events.len());
        for (event, data) in events {
            let record = AuditRecord {
                seq: tail.seq + 1,
                at_ms: now,
                event,
                data,
                prev: tail.hash.clone(),
            };
            let line = serde_json::to_string(&record).map_err(|e| io(std::io::Error::other(e)))?;
            tail = Tail {
                seq: record.seq,
                hash: hash_line(&line),
            };
            text.push_str(&line);
            text.push('\n');
            records.push(record);
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_data().map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let head = serde_json::to_vec(&Head {
            seq: tail.seq,
            hash: tail.hash,
            len: Some(len),
        })
        .map_err(|e| io(std::io::Error::other(e)))?;
        crate::fsutil::write_atomic(&self.head_path(), &head).map_err(io)?;
        drop(lock_file);
        Ok(records)
    }

    /// Check the whole chain and its anchor: a modified, deleted, reordered or inserted record,
    /// and a truncated tail, are errors naming where.
    pub fn verify(&self) -> Result<VerifyReport, AuditError> {
        let tail = read_tail(&self.path)?;
        let broken = |line: u64, message: String| AuditError::Broken {
            path: self.path.clone(),
            line,
            message,
        };
        let Some(head) = self.read_head()? else {
            if tail.seq == 0 {
                return Ok(VerifyReport {
                    records: 0,
                    warning: None,
                });
            }
            return Err(broken(0, "the anchor (head.json) is missing".into()));
        };
        if tail.seq < head.seq {
            return Err(broken(
                tail.seq,
                format!(
                    "truncated: the log ends at record {} but record {} was written",
                    tail.seq, head.seq
                ),
            ));
        }
        if tail.seq == head.seq && tail.hash != head.hash {
            return Err(broken(tail.seq, "the last record was modified".into()));
        }
        // A batch written without its anchor (a crash in between) chains correctly but is not
        // anchored: say so, without calling it tampering.
        let warning = (tail.seq > head.seq).then(|| {
            format!(
                "the last {} record(s) are not anchored (a crash between writing them and their anchor?)",
                tail.seq - head.seq
            )
        });
        Ok(VerifyReport {
            records: tail.seq,
            warning,
        })
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
        assert_eq!(again.verify().expect("intact").records, 3);
    }

    /// A log of five records, tampered with by `edit`, then verified.
    fn tampered(edit: impl FnOnce(&mut Vec<String>)) -> Result<VerifyReport, AuditError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = AuditLog::new(dir.path());
        for n in 1..=5 {
            log.append("e", json!({ "n": n })).expect("append");
        }
        let text = std::fs::read_to_string(log.path()).expect("read");
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        edit(&mut lines);
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(log.path(), text).expect("write");
        AuditLog::new(dir.path()).verify()
    }

    fn broken_at(r: Result<VerifyReport, AuditError>) -> (u64, String) {
        match r {
            Err(AuditError::Broken { line, message, .. }) => (line, message),
            other => panic!("tampering not detected: {other:?}"),
        }
    }

    #[test]
    fn an_unanchored_batch_after_a_crash_is_a_warning_and_appends_continue_the_chain() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = AuditLog::new(dir.path());
        log.append("a", json!({})).expect("append");
        let head = std::fs::read(log.head_path()).expect("head");
        log.append_batch(vec![("b".into(), json!({})), ("c".into(), json!({}))])
            .expect("batch");
        std::fs::write(log.head_path(), head).expect("crash before the anchor");
        let report = log.verify().expect("not tampering");
        assert!(
            report
                .warning
                .is_some_and(|w| w.contains("last 2 record(s)"))
        );
        assert_eq!(log.append("d", json!({})).expect("append").seq, 4);
        assert_eq!(
            log.verify().expect("intact"),
            VerifyReport {
                records: 4,
                warning: None
            }
        );
        let text = std::fs::read_to_string(log.path()).expect("log");
        std::fs::write(log.path(), &text[..text.len() / 2]).expect("truncate");
        assert!(
            log.append("e", json!({})).is_err(),
            "no appending over a truncated log"
        );
    }

    #[test]
    fn verify_detects_each_kind_of_tampering() {
        assert_eq!(tampered(|_| {}).expect("untouched").records, 5);
        let (line, _) = broken_at(tampered(|l| l[1] = l[1].replace("\"n\":2", "\"n\":7")));
        assert_eq!(line, 3, "a modified record breaks the next one's link");
        let (_, m) = broken_at(tampered(|l| l[4] = l[4].replace("\"n\":5", "\"n\":7")));
        assert!(m.contains("last record was modified"), "{m}");
        let (line, m) = broken_at(tampered(|l| {
            l.remove(2);
        }));
        assert!(line == 3 && m.contains("sequence"), "{line} {m}");
        let (line, _) = broken_at(tampered(|l| l.swap(1, 2)));
        assert_eq!(line, 2, "reordered");
        let (line, _) = broken_at(tampered(|l| {
            let forged = l[1].clone();
            l.insert(2, forged);
        }));
        assert_eq!(line, 3, "appended in the middle");
        let (_, m) = broken_at(tampered(|l| l.truncate(3)));
        assert!(m.contains("truncated"), "{m}");
    }
}
