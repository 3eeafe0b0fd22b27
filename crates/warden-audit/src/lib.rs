//! The append-only, hash-chained audit log: one JSON record per line, each carrying the sha256
//! of the previous record. Records that must be durable before an action (an apply, an install)
//! are fsync'd before the append returns, and a caller that cannot write them must not proceed
//! (fail closed); records of read-only runs are group-committed (see [`group`]). Beside the log,
//! `head.json` anchors the last record's sequence number, hash and the log's length, so a
//! truncated tail or a rewritten last record shows.
//!
//! Whoever can rewrite both the log and `head.json` (a re-seal) passes a plain [`AuditLog::verify`]:
//! two checks from outside the data directory catch that. [`AuditLog::head`] is the head to keep
//! off the machine (the API's `Agent.AuditHead`), and [`VerifyOptions::expect`] checks that the log
//! still holds a head saved earlier; [`checkpoint`] records are signed with a key kept outside the
//! data directory, and [`VerifyOptions::checkpoint_key`] checks them.
//!
//! The log does not grow without bound: the writer seals the live file once it is
//! [`AuditLog::set_rotate_bytes`] long, and the chain goes on in a new one ([`files`]: sequence
//! numbers and hashes continue across files, each file after the first opening with an
//! `audit.rotated` record); [`AuditLog::prune`] removes sealed files older than the retention
//! after an `audit.pruned` record naming them is durable. [`AuditLog::verify`] walks every file
//! in order and accepts a log whose oldest records are gone only if such a record accounts for
//! them. [`AuditLog::scan`] reads every file forward; [`AuditLog::scan_back`] reads the newest
//! records first, within a byte budget ([`backward`]).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub mod backward;
pub mod checkpoint;
pub mod files;
pub mod group;
pub mod records;
mod retention;
mod scan;
mod verify;

pub use backward::{Backward, Found, Stop};
pub use checkpoint::CheckpointSigner;
pub use group::{AuditHealth, Pending};
pub use retention::Pruned;
use verify::read_tail;

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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Records checked: those the log still holds.
    pub records: u64,
    /// Files they are in: the sealed ones and the live one.
    pub files: u64,
    /// What retention removed, when the oldest record left is not record 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pruned: Option<PrunedReport>,
    /// Set when the last record is not yet anchored (a crash between the two writes).
    pub warning: Option<String>,
    /// Saved heads the log was checked against ([`VerifyOptions::expect`]), all found.
    #[serde(skip_serializing_if = "is_zero")]
    pub expected: usize,
    /// Saved heads of records retention removed, which could not be checked (only one where a
    /// removed file ended can be: `audit.pruned` names its hash).
    #[serde(skip_serializing_if = "is_zero")]
    pub expected_pruned: usize,
    /// What the checkpoints showed, when a checkpoint key was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoints: Option<CheckpointReport>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Records removed by retention, as `verify` found them accounted for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrunedReport {
    /// Records 1 to this one are gone; the log starts right after it.
    pub through_seq: u64,
    /// The `audit.pruned` record that names the file ending at `through_seq`, and its time
    /// (milliseconds since the Unix epoch).
    pub by_seq: u64,
    pub at_ms: u64,
    /// The retention that record says it applied: a prune nobody configured shows here.
    pub retention_secs: u64,
}

/// Signed checkpoints found by [`AuditLog::verify_with`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointReport {
    /// Checkpoints whose signature verified (every one did, or `verify` failed).
    pub count: u64,
    /// The last one's seq.
    pub last_seq: u64,
    /// Records after it, vouched for only by the anchor and any saved head.
    pub after_last: u64,
}

/// What to check beyond the chain and its anchor.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Heads saved earlier, off the machine: `(seq, hash)` each; the log must still hold record
    /// `seq` with exactly that hash.
    pub expect: Vec<(u64, String)>,
    /// Check every `audit.checkpoint` record's signature with this key, and that checkpoints
    /// reach near the end of the log.
    pub checkpoint_key: Option<ed25519_dalek::VerifyingKey>,
}

/// The log's anchored end: its last durable record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHead {
    pub seq: u64,
    /// sha256 of that record's line, hex ([`GENESIS`] for an empty log).
    pub hash: String,
    /// When that record was written, milliseconds since the Unix epoch (0 for an empty log).
    pub at_ms: u64,
}

impl AuditHead {
    /// `SEQ:HASH`, as `warden audit verify --expect` takes it.
    pub fn to_expect(&self) -> String {
        format!("{}:{}", self.seq, self.hash)
    }
}

/// Parse a saved head: `SEQ:HASH`, or the JSON of [`AuditHead`] (`warden audit head --json`,
/// `warden ctl audit-head --json`).
pub fn parse_saved_head(text: &str) -> Result<(u64, String), String> {
    let text = text.trim();
    if text.starts_with('{') {
        let head: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not a saved head: {e}"))?;
        let seq = head["seq"].as_u64().ok_or("a saved head needs `seq`")?;
        let hash = head["hash"].as_str().ok_or("a saved head needs `hash`")?;
        return parse_saved_head(&format!("{seq}:{hash}"));
    }
    let (seq, hash) = text
        .split_once(':')
        .ok_or("a saved head is SEQ:HASH (e.g. 42:9f86d0…)")?;
    let seq = seq
        .trim()
        .parse::<u64>()
        .map_err(|_| format!("`{seq}` is not a record number"))?;
    let hash = hash.trim().to_ascii_lowercase();
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("a saved head's hash is 64 hex digits".into());
    }
    Ok((seq, hash))
}

/// Records that a dropped [`AuditLog`] could not write: set once, for the CLI's exit status.
static LOST_AT_SHUTDOWN: Mutex<Option<String>> = Mutex::new(None);

/// Why records were lost when an [`AuditLog`] of this process was dropped, if they were: the CLI
/// exits non-zero then, even if its command had already finished.
pub fn lost_at_shutdown() -> Option<String> {
    LOST_AT_SHUTDOWN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
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
    /// A line found reading backward ([`backward`]), where its line number is not known.
    #[error("audit log {path} at byte {offset}: {message}")]
    Unreadable {
        path: PathBuf,
        offset: u64,
        message: String,
    },
    #[error("audit record cannot be encoded: {0}")]
    Encode(#[from] serde_json::Error),
}

fn hash_line(line: &str) -> String {
    hex::encode(Sha256::digest(line.as_bytes()))
}

#[derive(Debug, Clone)]
struct Tail {
    seq: u64,
    hash: String,
}

/// The audit log of one data dir. Records are appended in order and hash-chained when they are
/// written; how soon they are flushed is the caller's choice (see [`group`]).
pub struct AuditLog {
    shared: Arc<group::Shared>,
    flusher: Mutex<Option<std::thread::JoinHandle<()>>>,
    signer: Mutex<Option<Arc<CheckpointSigner>>>,
}

impl AuditLog {
    pub fn new(data_dir: &Path) -> AuditLog {
        AuditLog {
            shared: Arc::new(group::Shared::new(data_dir.join("audit").join("audit.log"))),
            flusher: Mutex::new(None),
            signer: Mutex::new(None),
        }
    }

    /// Seal the live file before a batch once it is at least `bytes` long (default
    /// [`files::DEFAULT_ROTATE_BYTES`]; 0 seals before every batch that follows records,
    /// `u64::MAX` never).
    pub fn set_rotate_bytes(&self, bytes: u64) {
        self.shared.set_rotate_bytes(bytes);
    }

    /// Whether records can be written now (see [`group`]).
    pub fn health(&self) -> AuditHealth {
        self.shared.health()
    }

    /// Call `observer` when writes start failing and when they succeed again, from the thread
    /// that saw it (no lock of the log is held then).
    pub fn on_health_change(&self, observer: impl Fn(&AuditHealth) + Send + Sync + 'static) {
        self.shared.set_observer(Arc::new(observer));
    }

    /// Sign checkpoints with `signer` from now on (see [`AuditLog::checkpoint`]).
    pub fn set_checkpoint_signer(&self, signer: CheckpointSigner) {
        if let Ok(mut slot) = self.signer.lock() {
            *slot = Some(Arc::new(signer));
        }
    }

    /// Append a signed `audit.checkpoint` record, durably, vouching for the record before it:
    /// always with `force`, else only when records were appended since this process's last
    /// checkpoint. `None` without a signer, or when nothing is new.
    pub fn checkpoint(&self, force: bool) -> Result<Option<AuditRecord>, AuditError> {
        let Some(signer) = self.signer.lock().ok().and_then(|s| s.clone()) else {
            return Ok(None);
        };
        if !force && !self.shared.checkpoint_due() {
            return Ok(None);
        }
        Ok(self
            .shared
            .write_now(vec![Pending::checkpoint(signer)])?
            .pop())
    }

    /// The anchored end of the log, after writing what is queued: the head to keep off the
    /// machine and check later with [`VerifyOptions::expect`].
    pub fn head(&self) -> Result<AuditHead, AuditError> {
        self.flush()?;
        let Some(head) = self.read_head()? else {
            return Ok(AuditHead {
                seq: 0,
                hash: GENESIS.into(),
                at_ms: 0,
            });
        };
        let broken = |message: String| AuditError::Broken {
            path: self.path().to_path_buf(),
            line: head.seq,
            message,
        };
        let line = match self.anchored_at(&head)? {
            Some((path, end)) => last_line(&path, end)?,
            None => None,
        };
        let at_ms = match line {
            Some(line) if hash_line(&line) == head.hash => {
                serde_json::from_str::<AuditRecord>(&line)
                    .map_err(|e| broken(format!("not a record: {e}")))?
                    .at_ms
            }
            Some(_) => return Err(broken("the anchored record was modified".into())),
            None => 0,
        };
        Ok(AuditHead {
            seq: head.seq,
            hash: head.hash,
            at_ms,
        })
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Where the anchored record's line ends: at the anchored length of the live file, or, right
    /// after a rotation (the live file empty, or its move not yet anchored), at the end of the
    /// sealed file named for it.
    fn anchored_at(&self, head: &Head) -> Result<Option<(PathBuf, u64)>, AuditError> {
        let sealed = || -> Result<_, AuditError> {
            let path = files::sealed_path(self.path(), head.seq);
            let len = files::len_of(&path)?;
            Ok(Some((path, len)))
        };
        match head.len {
            None => Ok(None),
            Some(0) if head.seq > 0 => sealed(),
            Some(0) => Ok(None),
            Some(len) => {
                if files::len_of(self.path())? < len
                    && files::rotation_interrupted(self.path(), head)?
                {
                    return sealed();
                }
                Ok(Some((self.path().to_path_buf(), len)))
            }
        }
    }

    /// Whether anything was ever written here: the log or its anchor. A log gone beside its
    /// anchor is for [`AuditLog::verify`] to report (as truncated), not "nothing here".
    pub fn exists(&self) -> bool {
        self.path().exists() || self.head_path().exists()
    }

    fn head_path(&self) -> PathBuf {
        self.shared.path.with_file_name("head.json")
    }

    fn read_head(&self) -> Result<Option<Head>, AuditError> {
        read_head(&self.head_path())
    }

    /// The last `n` records written, from the sealed files too when the live one holds fewer
    /// (records queued by [`AuditLog::append_lazy`] and not yet flushed are not in the file yet;
    /// call [`AuditLog::flush`] first to see them).
    pub fn tail(&self, n: usize) -> Result<Vec<AuditRecord>, AuditError> {
        let mut last = last_records(self.path(), n)?;
        if last.len() < n {
            for sealed in files::list_sealed(self.path())?.iter().rev() {
                // A rotation meanwhile can seal records already read: keep each record once.
                let before = last.front().map_or(u64::MAX, |r| r.seq);
                let mut older = last_records(&sealed.path, n - last.len())?;
                older.retain(|r| r.seq < before);
                older.append(&mut last);
                last = older;
                if last.len() >= n {
                    break;
                }
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
}

/// The last `n` records of one file of the log.
fn last_records(
    path: &Path,
    n: usize,
) -> Result<std::collections::VecDeque<AuditRecord>, AuditError> {
    let mut last = std::collections::VecDeque::with_capacity(n.min(1024));
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(last),
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
        let record: AuditRecord = serde_json::from_str(&line).map_err(|e| AuditError::Broken {
            path: path.to_path_buf(),
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
    Ok(last)
}

/// The line that ends at byte `end` of the log, read backwards in blocks (a log can be large; its
/// last record is usually small).
fn last_line(path: &Path, end: u64) -> Result<Option<String>, AuditError> {
    use std::io::{Read, Seek, SeekFrom};
    /// Read size per step backwards.
    const BLOCK: u64 = 64 * 1024;
    let io = |source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    };
    if end == 0 {
        return Ok(None);
    }
    let mut file = File::open(path).map_err(io)?;
    // The line's bytes, without its final newline, gathered from the end.
    let mut line: Vec<u8> = Vec::new();
    let mut pos = end - 1;
    while pos > 0 {
        let start = pos.saturating_sub(BLOCK);
        let mut block = vec![0u8; (pos - start) as usize];
        file.seek(SeekFrom::Start(start)).map_err(io)?;
        file.read_exact(&mut block).map_err(io)?;
        if let Some(nl) = block.iter().rposition(|&b| b == b'\n') {
            block.drain(..=nl);
            block.append(&mut line);
            line = block;
            break;
        }
        block.append(&mut line);
        line = block;
        pos = start;
    }
    String::from_utf8(line)
        .map(Some)
        .map_err(|_| AuditError::Broken {
            path: path.to_path_buf(),
            line: 0,
            message: "the anchored record is not UTF-8".into(),
        })
}

impl Drop for AuditLog {
    /// A clean shutdown makes every queued record durable.
    fn drop(&mut self) {
        self.shared.stop();
        if let Some(handle) = self.flusher.get_mut().ok().and_then(Option::take) {
            let _ = handle.join();
        }
        // Only queued records can be lost here: the durable ones were written, or refused to
        // their callers, already.
        let queued = self.shared.health().queued;
        if let Err(e) = self.flush()
            && queued > 0
        {
            tracing::error!("audit records lost at shutdown: {e}");
            let mut lost = LOST_AT_SHUTDOWN
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            lost.get_or_insert_with(|| e.to_string());
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

#[cfg(test)]
mod rotation_tests;

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
                files: 1,
                ..VerifyReport::default()
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
        assert_eq!(
            events(&log),
            ["b", group::RECOVERED],
            "the first batch after a failure says so"
        );
    }

    #[cfg(unix)]
    use warden_tmpfs as tmpfs;

    /// A real full filesystem (see `tmpfs`): a failed group commit of more than a page leaves the
    /// log as it was, makes the log *failing* (observed once), refuses further records, and once
    /// space returns the flusher writes the queued records and an `audit.recovered` record.
    #[cfg(unix)]
    #[test]
    fn a_short_write_on_a_full_disk_is_cut_off_and_the_flusher_recovers_when_space_returns() {
        let dir = tempfile::tempdir().expect("tempdir");
        let disk = tmpfs::Tmpfs::mount(dir.path());
        let log = AuditLog::new(dir.path());
        let (tx, rx) = std::sync::mpsc::channel();
        log.on_health_change(move |h| {
            let _ = tx.send(h.clone());
        });
        log.append("before", json!({})).expect("append");
        let before = std::fs::read(log.path()).expect("log");
        disk.fill();
        // Many pages of records: the write is cut short by ENOSPC part-way.
        let big = "x".repeat(1000);
        log.append_lazy(
            (0..100)
                .map(|n| Pending::new("lazy", &json!({ "n": n, "pad": big })).expect("record"))
                .collect(),
        )
        .expect("queued");
        let failing = rx.recv().expect("observed");
        assert!(failing.failing_since_ms.is_some(), "{failing:?}");
        assert!(
            failing
                .error
                .as_deref()
                .is_some_and(|e| e.contains("No space left")),
            "{failing:?}"
        );
        assert_eq!(failing.queued, 100, "kept queued");
        assert_eq!(
            std::fs::read(log.path()).expect("log"),
            before,
            "no torn record"
        );
        assert!(log.append("refused", json!({})).is_err());
        assert!(
            log.append_lazy(vec![Pending::new("refused", &json!({})).expect("record")])
                .is_err(),
            "while failing, a lazy append is written at once, and fails"
        );
        assert_eq!(log.health().refused, 2);
        assert_eq!(log.verify().expect("intact").records, 1);

        disk.free();
        let recovered = rx.recv().expect("observed");
        assert_eq!(recovered, AuditHealth::default(), "healthy again");
        let written = events(&log);
        assert_eq!(written.len(), 102, "{written:?}");
        assert_eq!(written[101], group::RECOVERED);
        let record = log.tail(1).expect("tail").remove(0);
        assert_eq!(record.data["refused"], 2);
        assert_eq!(log.verify().expect("intact").records, 102);
        log.append("after", json!({}))
            .expect("appends continue the chain");
        assert_eq!(log.verify().expect("intact").records, 103);
    }

    fn signer(interval_secs: u64) -> (CheckpointSigner, ed25519_dalek::VerifyingKey) {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let public = key.verifying_key();
        (
            CheckpointSigner::new(key, std::time::Duration::from_secs(interval_secs)),
            public,
        )
    }

    fn with_key(key: ed25519_dalek::VerifyingKey) -> VerifyOptions {
        VerifyOptions {
            expect: vec![],
            checkpoint_key: Some(key),
        }
    }

    #[test]
    fn checkpoints_vouch_for_the_chain_and_a_forged_or_missing_one_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = AuditLog::new(dir.path());
        let (signer, public) = signer(60);
        assert!(log.checkpoint(true).expect("no signer").is_none());
        log.set_checkpoint_signer(signer);
        log.append("a", json!({})).expect("append");
        let cp = log.checkpoint(false).expect("checkpoint").expect("due");
        assert_eq!(cp.event, checkpoint::EVENT);
        assert_eq!(cp.data["covers_seq"], 1);
        assert!(
            log.checkpoint(false).expect("checkpoint").is_none(),
            "nothing new to vouch for"
        );
        lazy(&log, "b", 1);
        assert!(
            log.checkpoint(false).expect("checkpoint").is_some(),
            "queued"
        );
        log.append("c", json!({})).expect("append");
        let report = log.verify_with(&with_key(public)).expect("verifies");
        assert_eq!(
            report.checkpoints,
            Some(CheckpointReport {
                count: 2,
                last_seq: 4,
                after_last: 1
            })
        );
        let other = ed25519_dalek::SigningKey::from_bytes(&[8u8; 32]).verifying_key();
        let (line, m) = broken_at(log.verify_with(&with_key(other)));
        assert!(line == 2 && m.contains("does not verify"), "{line} {m}");

        // A late record: written long after the last checkpoint, with none after it.
        let late = now_ms() + 3 * 60_000;
        log.append_now(vec![
            Pending::new("d", &json!({})).expect("record").at(late),
        ])
        .expect("append");
        let (line, m) = broken_at(log.verify_with(&with_key(public)));
        assert!(
            line == 6 && m.contains("no checkpoint follows"),
            "{line} {m}"
        );
        assert!(log.verify().is_ok(), "no key, no checkpoint check");

        let empty = tempfile::tempdir().expect("tempdir");
        let unsigned = AuditLog::new(empty.path());
        assert!(
            unsigned.verify_with(&with_key(public)).is_ok(),
            "an empty log"
        );
        unsigned.append("a", json!({})).expect("append");
        let (_, m) = broken_at(unsigned.verify_with(&with_key(public)));
        assert!(m.contains("no signed checkpoint"), "{m}");
    }

    fn now_ms() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    #[test]
    fn the_head_is_the_last_durable_record_and_saved_heads_parse() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = AuditLog::new(dir.path());
        assert_eq!(log.head().expect("head").seq, 0);
        log.append("a", json!({})).expect("append");
        lazy(&log, "b", 1);
        let head = log.head().expect("head");
        assert_eq!(head.seq, 2, "queued records are written first");
        let last = log.tail(1).expect("tail").remove(0);
        assert_eq!(head.at_ms, last.at_ms);
        let text = std::fs::read_to_string(log.path()).expect("log");
        assert_eq!(
            head.hash,
            hash_line(text.lines().last().expect("a line")),
            "the hash of the last line"
        );
        assert_eq!(
            parse_saved_head(&head.to_expect()).expect("parses"),
            (2, head.hash.clone())
        );
        let json = serde_json::to_string(&head).expect("json");
        assert_eq!(parse_saved_head(&json).expect("parses").0, 2);
        for bad in ["", "2", "x:y", "2:abc", "{\"seq\": 2}"] {
            assert!(parse_saved_head(bad).is_err(), "{bad}");
        }
        let report = log
            .verify_with(&VerifyOptions {
                expect: vec![
                    (2, head.hash.clone()),
                    (1, hash_line(text.lines().next().expect("line"))),
                ],
                checkpoint_key: None,
            })
            .expect("both held");
        assert_eq!(report.expected, 2);
    }
}
