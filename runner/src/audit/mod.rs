//! The append-only, hash-chained audit log: one JSON record per line, each carrying the sha256
//! of the previous record. Records that must be durable before an action (an apply, an install)
//! are fsync'd before the append returns, and a caller that cannot write them must not proceed
//! (fail closed); records of read-only runs are group-committed (see [`group`]). Beside the log,
//! `head.json` anchors the last record's sequence number, hash and the log's length, so a
//! truncated tail or a rewritten last record shows.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub mod group;
pub mod records;

pub use group::Pending;

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
    #[error("audit record cannot be encoded: {0}")]
    Encode(#[from] serde_json::Error),
}

fn hash_line(line: &str) -> String {
    hex::encode(Sha256::digest(line.as_bytes()))
}

#[derive(Clone)]
struct Tail {
    seq: u64,
    hash: String,
}

/// The audit log of one data dir. Records are appended in order and hash-chained when they are
/// written; how soon they are flushed is the caller's choice (see [`group`]).
pub struct AuditLog {
    shared: Arc<group::Shared>,
    flusher: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl AuditLog {
    pub fn new(data_dir: &Path) -> AuditLog {
        AuditLog {
            shared: Arc::new(group::Shared::new(data_dir.join("audit").join("audit.log"))),
            flusher: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    fn head_path(&self) -> PathBuf {
        self.shared.path.with_file_name("head.json")
    }

    fn read_head(&self) -> Result<Option<Head>, AuditError> {
        read_head(&self.head_path())
    }

    /// The last `n` records written (records queued by [`AuditLog::append_lazy`] and not yet
    /// flushed are not in the file yet; call [`AuditLog::flush`] first to see them).
    pub fn tail(&self, n: usize) -> Result<Vec<AuditRecord>, AuditError> {
        let file = match File::open(self.path()) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(source) => {
                return Err(AuditError::Io {
                    path: self.path().to_path_buf(),
                    source,
                });
            }
        };
        let mut last = std::collections::VecDeque::with_capacity(n.min(1024));
        for (i, line) in BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|source| AuditError::Io {
                path: self.path().to_path_buf(),
                source,
            })?;
            let record: AuditRecord =
                serde_json::from_str(&line).map_err(|e| AuditError::Broken {
                    path: self.path().to_path_buf(),
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

    /// Append `event` and fsync it (with every record queued before it) before returning.
    pub fn append(&self, event: &str, data: serde_json::Value) -> Result<AuditRecord, AuditError> {
        let mut records = self.append_batch(vec![(event.to_string(), data)])?;
        records.pop().ok_or_else(|| AuditError::Io {
            path: self.path().to_path_buf(),
            source: std::io::Error::other("nothing appended"),
        })
    }

    /// Append several records durably: they, and every record queued before them, are written
    /// and fsync'd before this returns. Fail closed: an error means none of `events` was written.
    pub fn append_batch(
        &self,
        events: Vec<(String, serde_json::Value)>,
    ) -> Result<Vec<AuditRecord>, AuditError> {
        let pending = events
            .into_iter()
            .map(|(event, data)| group::Pending::new(event, &data))
            .collect::<Result<Vec<_>, _>>()?;
        self.append_now(pending)
    }

    /// [`AuditLog::append_batch`] for records already serialized.
    pub fn append_now(&self, events: Vec<Pending>) -> Result<Vec<AuditRecord>, AuditError> {
        self.shared.write_now(events)
    }

    /// Queue records for the next group commit and return at once: a background flusher writes
    /// them (in order, hash-chained) with one fsync per batch within [`group::GROUP_WINDOW`].
    /// For records of runs that cannot change the machine. A crash loses at most the queued
    /// tail; an error here means an earlier batch could not be written either, and `events`
    /// were not queued (the caller should treat the action as unaudited).
    pub fn append_lazy(&self, events: Vec<group::Pending>) -> Result<(), AuditError> {
        if self.shared.needs_sync_write() {
            // The last background flush failed: try now, in the caller, and report the outcome.
            return self.shared.write_now(events).map(drop);
        }
        self.ensure_flusher();
        self.shared.enqueue(events)
    }

    /// Write and fsync every queued record now.
    pub fn flush(&self) -> Result<(), AuditError> {
        self.shared.write_now(vec![]).map(drop)
    }

    fn ensure_flusher(&self) {
        let Ok(mut slot) = self.flusher.lock() else {
            return;
        };
        if slot.is_some() {
            return;
        }
        let shared = self.shared.clone();
        match std::thread::Builder::new()
            .name("warden-audit".into())
            .spawn(move || shared.flusher_loop())
        {
            Ok(handle) => *slot = Some(handle),
            // Without a flusher, queued records are written by the next durable append, by
            // `flush`, or on drop; the queue's bound keeps that from growing without limit.
            Err(e) => tracing::error!("cannot start the audit flusher: {e}"),
        }
    }

    /// Check the whole chain and its anchor: a modified, deleted, reordered or inserted record,
    /// and a truncated tail, are errors naming where.
    pub fn verify(&self) -> Result<VerifyReport, AuditError> {
        let tail = read_tail(self.path())?;
        let broken = |line: u64, message: String| AuditError::Broken {
            path: self.path().to_path_buf(),
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

impl Drop for AuditLog {
    /// A clean shutdown makes every queued record durable.
    fn drop(&mut self) {
        self.shared.stop();
        if let Some(handle) = self.flusher.get_mut().ok().and_then(Option::take) {
            let _ = handle.join();
        }
        if let Err(e) = self.flush() {
            tracing::error!("audit records lost at shutdown: {e}");
        }
    }
}

fn read_head(path: &Path) -> Result<Option<Head>, AuditError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| AuditError::Broken {
                path: path.to_path_buf(),
                line: 0,
                message: format!("anchor unreadable: {e}"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(AuditError::Io {
            path: path.to_path_buf(),
            source,
        }),
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

    fn lazy(log: &AuditLog, event: &str, n: u64) {
        log.append_lazy(vec![
            Pending::new(event, &json!({ "n": n })).expect("record"),
        ])
        .expect("queued");
    }

    fn events(log: &AuditLog) -> Vec<String> {
        log.tail(usize::MAX)
            .expect("tail")
            .into_iter()
            .map(|r| r.event)
            .collect()
    }

    #[test]
    fn lazy_records_are_written_in_order_before_a_durable_one_and_on_drop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = AuditLog::new(dir.path());
        lazy(&log, "a", 1);
        lazy(&log, "b", 2);
        let durable = log.append("apply", json!({})).expect("append");
        assert_eq!(durable.seq, 3, "the queued records precede it");
        assert_eq!(events(&log), ["a", "b", "apply"]);
        lazy(&log, "c", 3);
        drop(log);
        let log = AuditLog::new(dir.path());
        assert_eq!(events(&log), ["a", "b", "apply", "c"], "dropping flushes");
        assert_eq!(log.verify().expect("intact").records, 4);
    }

    #[test]
    fn two_writers_on_one_data_dir_keep_one_chain() {
        // Like a CLI beside a daemon: each has its own queue and cached tail, and the flock and
        // the log's length tell each when the other appended.
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (AuditLog::new(dir.path()), AuditLog::new(dir.path()));
        std::thread::scope(|s| {
            for log in [&a, &b] {
                s.spawn(move || {
                    for n in 0..200 {
                        if n % 50 == 0 {
                            log.append("durable", json!({ "n": n })).expect("append");
                        } else {
                            lazy(log, "lazy", n);
                        }
                    }
                });
            }
        });
        a.flush().expect("flush");
        b.flush().expect("flush");
        assert_eq!(a.verify().expect("one intact chain").records, 400);
    }

    #[test]
    fn a_failed_group_commit_is_reported_to_the_next_lazy_append_and_retried() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = AuditLog::new(dir.path());
        log.append("a", json!({})).expect("append");
        // The log's path becomes a directory: nothing can be appended.
        std::fs::remove_file(log.path()).expect("remove");
        std::fs::create_dir(log.path()).expect("dir");
        lazy(&log, "b", 1);
        assert!(log.flush().is_err());
        assert!(
            log.append_lazy(vec![Pending::new("c", &json!({})).expect("record")])
                .is_err(),
            "a lazy append after a failed commit reports it"
        );
        std::fs::remove_dir(log.path()).expect("rmdir");
        std::fs::remove_file(log.path().with_file_name("head.json")).expect("anchor");
        log.flush().expect("the queued record is retried");
        assert_eq!(events(&log), ["b"]);
    }
}
