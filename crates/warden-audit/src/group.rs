//! Group commit for the audit log: records are queued in order, and one writer at a time (the
//! background flusher, or a caller that needs durability now) chains them onto the log's tail and
//! writes them with one `write`, one `fdatasync` and one anchor update, under the cross-process
//! lock, once per batch instead of once per record.
//!
//! A batch is all or nothing: a failed or short write (a full disk), a failed `fdatasync` or an
//! anchor that cannot be replaced truncates the log back to its last good length, so the log never
//! keeps a torn or unanchored record of a batch its callers were told failed. While writes fail the
//! log is *failing* ([`AuditHealth`]): queued records stay queued, every further append is tried at
//! once and reported to its caller, the flusher probes every [`RETRY`], and the first batch that
//! gets through starts with an `audit.recovered` record saying since when and how many records
//! were refused.

use super::checkpoint::CheckpointSigner;
use super::files::{self, FileId};
use super::{AuditError, AuditRecord, Head, Tail, hash_line, read_head, read_tail};
use serde::Serialize;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long the flusher lets a batch fill after its first record: the most a crash can lose of
/// records queued with [`super::AuditLog::append_lazy`] (plus the flush itself).
pub const GROUP_WINDOW: Duration = Duration::from_millis(5);

/// Queued records beyond which the caller writes the batch itself (bounds memory and loss).
const MAX_QUEUED: usize = 16_384;

/// While the log is failing, how long the flusher waits between two attempts: how soon after
/// space returns the queued records are written (and the agent reports its recovery).
pub const RETRY: Duration = Duration::from_secs(1);

/// The event that opens the first batch written after a failure.
pub const RECOVERED: &str = "audit.recovered";

/// A record waiting to be chained and written: its data is serialized once, by the caller.
#[derive(Debug)]
pub struct Pending {
    at_ms: u64,
    event: String,
    body: Body,
}

#[derive(Debug)]
enum Body {
    Data(String),
    /// Signed when it is chained: it vouches for the record right before it.
    Checkpoint(Arc<CheckpointSigner>),
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Pending {
    /// A record of `event` now, with `data` (any JSON object or value).
    pub fn new(
        event: impl Into<String>,
        data: &impl serde::Serialize,
    ) -> Result<Pending, serde_json::Error> {
        Ok(Pending {
            at_ms: now_ms(),
            event: event.into(),
            body: Body::Data(serde_json::to_string(data)?),
        })
    }

    /// The same record, as if made at `at_ms` (tests of what `verify` makes of time).
    #[cfg(test)]
    pub(super) fn at(mut self, at_ms: u64) -> Pending {
        self.at_ms = at_ms;
        self
    }

    /// An `audit.checkpoint` record, signed by `signer` when it is written.
    pub(super) fn checkpoint(signer: Arc<CheckpointSigner>) -> Pending {
        Pending {
            at_ms: now_ms(),
            event: super::checkpoint::EVENT.into(),
            body: Body::Checkpoint(signer),
        }
    }
}

/// Whether the audit log can be written now, as the agent reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuditHealth {
    /// Since when (milliseconds since the Unix epoch) writes fail; `None` while they succeed.
    pub failing_since_ms: Option<u64>,
    /// The last write's error, while failing.
    pub error: Option<String>,
    /// Records refused since the failure began: their callers were told, and their actions
    /// refused or failed with `audit`.
    pub refused: u64,
    /// Records accepted earlier and still waiting to be written.
    pub queued: usize,
}

#[derive(Clone)]
struct Failing {
    since_ms: u64,
    error: String,
    refused: u64,
}

struct Queue {
    pending: Vec<Pending>,
    stop: bool,
    /// Set while writes fail: lazy appends write (and report) synchronously until one succeeds.
    failing: Option<Failing>,
}

struct Writer {
    /// `audit.lock`, opened once and flock'd per batch.
    lock_file: Option<File>,
    /// The chain's tail and the live file's identity and length after this process's last
    /// batch: valid while the live file is still that file with that length (no other process
    /// appended or rotated), so the anchor need not be re-read.
    known: Option<(Tail, FileId)>,
    /// A failed batch whose bytes could not be cut off yet: the log's good length, restored
    /// before anything else is written.
    torn_from: Option<u64>,
    /// The seq of the last checkpoint this process wrote.
    last_checkpoint: Option<u64>,
}

type Observer = Arc<dyn Fn(&AuditHealth) + Send + Sync>;

/// State shared by an [`super::AuditLog`] and its flusher thread.
pub(super) struct Shared {
    pub(super) path: PathBuf,
    queue: Mutex<Queue>,
    wake: Condvar,
    writer: Mutex<Writer>,
    observer: Mutex<Option<Observer>>,
    /// The live file is sealed before a batch once it is this long (see [`files`]).
    rotate_bytes: AtomicU64,
}

/// The anchor could not be replaced: `renamed` says whether the new one is in place anyway
/// (only the directory's fsync failed).
struct HeadError {
    source: std::io::Error,
    renamed: bool,
}

/// Replace `head.json` atomically: a temporary file, fsync'd, renamed over it, then the directory
/// fsync'd. Unlike [`warden_core::fsutil::write_atomic`], says whether the rename happened.
fn write_head(path: &Path, contents: &[u8]) -> Result<(), HeadError> {
    let before = |source| HeadError {
        source,
        renamed: false,
    };
    let dir = path
        .parent()
        .ok_or_else(|| before(std::io::Error::other("the anchor's path has no parent")))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(before)?;
    tmp.write_all(contents).map_err(before)?;
    tmp.as_file().sync_all().map_err(before)?;
    tmp.persist(path).map_err(|e| before(e.error))?;
    warden_core::fsutil::sync_dir(dir).map_err(|source| HeadError {
        source,
        renamed: true,
    })
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Both guarded states stay consistent across a panic (the writer forgets its cached tail
    // before writing), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(super) fn new(path: PathBuf) -> Shared {
        Shared {
            path,
            queue: Mutex::new(Queue {
                pending: Vec::new(),
                stop: false,
                failing: None,
            }),
            wake: Condvar::new(),
            writer: Mutex::new(Writer {
                lock_file: None,
                known: None,
                torn_from: None,
                last_checkpoint: None,
            }),
            observer: Mutex::new(None),
            rotate_bytes: AtomicU64::new(files::DEFAULT_ROTATE_BYTES),
        }
    }

    pub(super) fn set_rotate_bytes(&self, bytes: u64) {
        self.rotate_bytes.store(bytes, Ordering::Relaxed);
    }

    pub(super) fn set_observer(&self, observer: Observer) {
        *relock(&self.observer) = Some(observer);
    }

    pub(super) fn health(&self) -> AuditHealth {
        health_of(&relock(&self.queue))
    }

    /// Whether a checkpoint would vouch for anything new: records were appended (by anyone)
    /// since this process's last checkpoint, or are queued.
    pub(super) fn checkpoint_due(&self) -> bool {
        let writer = relock(&self.writer);
        let queued = !relock(&self.queue).pending.is_empty();
        let live = FileId::of(&self.path).ok();
        let unchanged = match (&writer.known, writer.last_checkpoint) {
            (Some((tail, id)), Some(seq)) => tail.seq == seq && Some(*id) == live,
            _ => false,
        };
        queued || !unchanged
    }

    fn io(&self, source: std::io::Error) -> AuditError {
        AuditError::Io {
            path: self.path.clone(),
            source,
        }
    }

    pub(super) fn needs_sync_write(&self) -> bool {
        relock(&self.queue).failing.is_some()
    }

    /// Queue `events` for the flusher; a full queue is written by the caller.
    pub(super) fn enqueue(&self, events: Vec<Pending>) -> Result<(), AuditError> {
        let mut q = relock(&self.queue);
        let was_empty = q.pending.is_empty();
        q.pending.extend(events);
        let full = q.pending.len() >= MAX_QUEUED;
        drop(q);
        if was_empty {
            self.wake.notify_one();
        }
        if full {
            self.write_now(vec![])?;
        }
        Ok(())
    }

    pub(super) fn stop(&self) {
        relock(&self.queue).stop = true;
        self.wake.notify_all();
    }

    /// Write every queued record, then `own`, with one fsync; return `own` as written. On error
    /// `own` is not written and the queued records go back to the front of the queue. After a
    /// failure, the first batch that gets through carries an `audit.recovered` record between
    /// the queued records and `own`.
    pub(super) fn write_now(&self, own: Vec<Pending>) -> Result<Vec<AuditRecord>, AuditError> {
        let mut writer = relock(&self.writer);
        let failing = relock(&self.queue).failing.clone();
        let recovered = failing
            .map(|f| {
                Pending::new(
                    RECOVERED,
                    &serde_json::json!({
                        "failing_since_ms": f.since_ms,
                        "error": f.error,
                        "refused": f.refused,
                    }),
                )
            })
            .transpose()?;
        // Only writers change `failing`, and this one holds the writer lock: it is still current.
        let mut batch = std::mem::take(&mut relock(&self.queue).pending);
        let queued = batch.len();
        let skip = queued + usize::from(recovered.is_some());
        batch.extend(recovered);
        let own_count = own.len() as u64;
        batch.extend(own);
        if batch.is_empty() {
            return Ok(vec![]);
        }
        let result = self.write_batch(&mut writer, &batch);
        let (result, changed) = match result {
            Ok(links) => {
                let changed = relock(&self.queue).failing.take().is_some();
                if changed {
                    tracing::warn!(
                        "audit log {} is writable again; the queued records are written",
                        self.path.display()
                    );
                }
                let records = batch
                    .into_iter()
                    .zip(links)
                    .skip(skip)
                    .map(|(p, (seq, prev, signed))| {
                        let data = match (p.body, signed) {
                            (_, Some(d)) | (Body::Data(d), None) => d,
                            (Body::Checkpoint(_), None) => String::from("null"),
                        };
                        Ok(AuditRecord {
                            seq,
                            at_ms: p.at_ms,
                            event: p.event,
                            data: serde_json::from_str(&data)
                                .map_err(|e| self.io(std::io::Error::other(e)))?,
                            prev,
                        })
                    })
                    .collect();
                (records, changed)
            }
            Err(e) => {
                batch.truncate(queued);
                let mut q = relock(&self.queue);
                batch.append(&mut q.pending);
                q.pending = batch;
                let changed = q.failing.is_none();
                let f = q.failing.get_or_insert_with(|| Failing {
                    since_ms: now_ms(),
                    error: String::new(),
                    refused: 0,
                });
                f.error = e.to_string();
                f.refused += own_count;
                if changed {
                    tracing::error!(
                        "audit records cannot be written ({e}); they are kept queued, new ones \
                         are refused, and writing is retried until it succeeds"
                    );
                }
                (Err(e), changed)
            }
        };
        drop(writer);
        if changed {
            let observer = relock(&self.observer).clone();
            if let Some(observer) = observer {
                observer(&self.health());
            }
        }
        result
    }

    /// Chain `batch` onto the log under the cross-process lock; each record's `(seq, prev)`, and
    /// the data of those signed as they were chained.
    fn write_batch(&self, writer: &mut Writer, batch: &[Pending]) -> Result<Vec<Link>, AuditError> {
        let known = writer.known.take();
        let result = self.locked(writer, |writer| {
            self.write_locked(known, &mut writer.torn_from, batch)
        })?;
        let (links, tail, id) = result?;
        if let Some(i) = batch
            .iter()
            .rposition(|p| matches!(p.body, Body::Checkpoint(_)))
        {
            writer.last_checkpoint = links.get(i).map(|l| l.0);
        }
        writer.known = Some((tail, id));
        Ok(links)
    }

    /// Run `f` under the exclusive `flock` on `audit.lock`: one lock per batch keeps a CLI beside
    /// a daemon from interleaving with this chain.
    fn locked<T>(
        &self,
        writer: &mut Writer,
        f: impl FnOnce(&mut Writer) -> T,
    ) -> Result<T, AuditError> {
        let lock_file = match writer.lock_file.take() {
            Some(f) => f,
            None => {
                if let Some(dir) = self.path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| self.io(e))?;
                }
                OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(self.path.with_file_name("audit.lock"))
                    .map_err(|e| self.io(e))?
            }
        };
        #[cfg(unix)]
        if let Err(e) = rustix::fs::flock(&lock_file, rustix::fs::FlockOperation::LockExclusive) {
            writer.lock_file = Some(lock_file);
            return Err(self.io(e.into()));
        }
        let out = f(writer);
        #[cfg(unix)]
        let _ = rustix::fs::flock(&lock_file, rustix::fs::FlockOperation::Unlock);
        writer.lock_file = Some(lock_file);
        Ok(out)
    }

    /// Run `f` while no writer, in this process or another, appends or rotates.
    pub(super) fn exclusive<T>(&self, f: impl FnOnce() -> T) -> Result<T, AuditError> {
        let mut writer = relock(&self.writer);
        self.locked(&mut writer, |_| f())
    }

    /// Cut the log back to `good_len` after a failed batch; remembered in `torn_from` (and
    /// retried before the next batch) if even that fails.
    fn roll_back(&self, file: &File, good_len: u64, torn_from: &mut Option<u64>) {
        match file.set_len(good_len).and_then(|()| file.sync_data()) {
            Ok(()) => *torn_from = None,
            Err(e) => {
                tracing::error!(
                    "audit log {}: cannot cut a failed batch off ({e}); retried before the next write",
                    self.path.display()
                );
                *torn_from = Some(good_len);
            }
        }
    }

    fn write_locked(
        &self,
        known: Option<(Tail, FileId)>,
        torn_from: &mut Option<u64>,
        batch: &[Pending],
    ) -> Result<(Vec<Link>, Tail, FileId), AuditError> {
        if let Some(good_len) = *torn_from {
            // Only this process's failed batch lies beyond `good_len`: any other writer refuses a
            // log whose tail does not parse, so nothing valid was appended after it.
            let file = OpenOptions::new()
                .write(true)
                .open(&self.path)
                .map_err(|e| self.io(e))?;
            file.set_len(good_len)
                .and_then(|()| file.sync_data())
                .map_err(|e| self.io(e))?;
            *torn_from = None;
        }
        let live = FileId::of(&self.path)?;
        let (mut tail, anchored) = match known {
            Some((tail, id)) if id == live => (tail, true),
            _ => self.tail_from_anchor(live.len)?,
        };
        let mut log_len = live.len;
        // Only an anchored tail is sealed: an unanchored batch (a crash) is anchored by this one
        // first, and sealed by the next.
        if anchored && log_len > 0 && log_len >= self.rotate_bytes.load(Ordering::Relaxed) {
            self.seal(&tail, log_len)?;
            log_len = files::len_of(&self.path)?;
        }
        let mut text = String::with_capacity(batch.len() * 256);
        if log_len == 0 && tail.seq > 0 {
            // Every file after the first opens with where the chain comes from; also when a
            // rotation was interrupted, or its first batch failed, before this write.
            let rotated = serde_json::to_string(&files::rotated_data(&tail))?;
            push_line(&mut text, &mut tail, now_ms(), files::ROTATED, &rotated)?;
        }
        let mut links = Vec::with_capacity(batch.len());
        for p in batch {
            let signed = match &p.body {
                Body::Data(_) => None,
                Body::Checkpoint(signer) => Some(serde_json::to_string(
                    &signer.sign(tail.seq, &tail.hash, p.at_ms),
                )?),
            };
            let data = match (&p.body, &signed) {
                (_, Some(d)) | (Body::Data(d), None) => d.as_str(),
                (Body::Checkpoint(_), None) => "null",
            };
            let prev = push_line(&mut text, &mut tail, p.at_ms, &p.event, data)?;
            links.push((tail.seq, prev, signed));
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| self.io(e))?;
        // All or nothing: a short write (ENOSPC part-way), a failed fsync or an anchor that was
        // not replaced leaves no byte of this batch behind.
        let len = log_len + text.len() as u64;
        let id = FileId::from_metadata(&file.metadata().map_err(|e| self.io(e))?).with_len(len);
        let head = serde_json::to_vec(&Head {
            seq: tail.seq,
            hash: tail.hash.clone(),
            len: Some(len),
        })
        .map_err(|e| self.io(std::io::Error::other(e)))?;
        if let Err(e) = file
            .write_all(text.as_bytes())
            .and_then(|()| file.sync_data())
        {
            self.roll_back(&file, log_len, torn_from);
            return Err(self.io(e));
        }
        match write_head(&self.path.with_file_name("head.json"), &head) {
            Ok(()) => {}
            // The new anchor is in place and the batch is durable; only the rename might not
            // survive a power loss, which leaves an unanchored batch (a warning), not a gap.
            Err(HeadError {
                source,
                renamed: true,
            }) => tracing::warn!(
                "audit anchor {}: the directory could not be synced: {source}",
                self.path.with_file_name("head.json").display()
            ),
            Err(HeadError { source, .. }) => {
                self.roll_back(&file, log_len, torn_from);
                return Err(self.io(source));
            }
        }
        Ok((links, tail, id))
    }

    /// The chain's tail when this process's cached one may be stale, and whether it is anchored
    /// (`head.json` gives the live file's length).
    fn tail_from_anchor(&self, log_len: u64) -> Result<(Tail, bool), AuditError> {
        match read_head(&self.path.with_file_name("head.json"))? {
            Some(head) if head.len == Some(log_len) => Ok((
                Tail {
                    seq: head.seq,
                    hash: head.hash,
                },
                true,
            )),
            Some(head) if head.len.is_some_and(|len| log_len < len) => {
                if log_len == 0 && files::rotation_interrupted(&self.path, &head)? {
                    // Moved, not cut: this write completes the rotation (its first record
                    // names the sealed file) and anchors the new live file.
                    tracing::warn!(
                        "audit log {}: completing a rotation that was interrupted",
                        self.path.display()
                    );
                    return Ok((
                        Tail {
                            seq: head.seq,
                            hash: head.hash,
                        },
                        true,
                    ));
                }
                // Never write past evidence of tampering: someone must look first.
                Err(AuditError::Broken {
                    path: self.path.clone(),
                    line: head.seq,
                    message: "truncated below its anchor; refusing to append".into(),
                })
            }
            // No anchor yet, or a batch written without its anchor (a crash): walk the log.
            _ => Ok((read_tail(&self.path)?, false)),
        }
    }

    /// Seal the live file, `log_len` long and ending at the anchored `tail`: move it to
    /// `sealed/`, make the move durable, and anchor the (now empty) live file. A failure before
    /// the move leaves the log as it was and the batch goes to the live file (a log that cannot
    /// rotate still records); one after it fails the batch, and the next write completes the
    /// rotation (see [`files::rotation_interrupted`]).
    fn seal(&self, tail: &Tail, log_len: u64) -> Result<(), AuditError> {
        let dir = files::sealed_dir(&self.path);
        let sealed = files::sealed_path(&self.path, tail.seq);
        let moved = std::fs::create_dir_all(&dir).and_then(|()| {
            if sealed.exists() {
                // Never replace a sealed file: that would drop its records from the chain.
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!("{} exists", sealed.display()),
                ));
            }
            std::fs::rename(&self.path, &sealed)
        });
        if let Err(e) = moved {
            tracing::warn!(
                "audit log {} ({log_len} bytes) cannot be sealed, it keeps growing: {e}",
                self.path.display()
            );
            return Ok(());
        }
        for synced in [dir.as_path(), self.path.parent().unwrap_or(Path::new("."))] {
            // As for the anchor's rename: a power loss may undo the move, which leaves the
            // live file as it was, anchored.
            if let Err(e) = warden_core::fsutil::sync_dir(synced) {
                tracing::warn!("audit directory {}: cannot sync: {e}", synced.display());
            }
        }
        let head = serde_json::to_vec(&Head {
            seq: tail.seq,
            hash: tail.hash.clone(),
            len: Some(0),
        })?;
        match write_head(&self.path.with_file_name("head.json"), &head) {
            Ok(()) | Err(HeadError { renamed: true, .. }) => Ok(()),
            Err(HeadError { source, .. }) => Err(self.io(source)),
        }
    }

    /// The background flusher: wait for a record, let the batch fill for [`GROUP_WINDOW`], write
    /// it; while the log is failing, try again every [`RETRY`] (with nothing queued, the attempt
    /// is the `audit.recovered` record alone); until stopped (the owner flushes what is left
    /// after joining this thread).
    pub(super) fn flusher_loop(&self) {
        loop {
            {
                let mut q = relock(&self.queue);
                while q.pending.is_empty() && q.failing.is_none() && !q.stop {
                    q = self.wake.wait(q).unwrap_or_else(PoisonError::into_inner);
                }
                let window = if q.failing.is_some() {
                    RETRY
                } else {
                    GROUP_WINDOW
                };
                let deadline = Instant::now() + window;
                while !q.stop {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    q = self
                        .wake
                        .wait_timeout(q, deadline - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                if q.stop {
                    return;
                }
            }
            // A failure is logged once, when it begins (see `write_now`), and the flusher retries.
            if let Err(e) = self.write_now(vec![]) {
                tracing::debug!("audit records still not written: {e}");
            }
        }
    }
}

/// A written record's `(seq, prev)`, and its data when it was made as it was chained.
type Link = (u64, String, Option<String>);

/// Append the line of the record after `tail` to `text` and make it the tail; its `prev`.
fn push_line(
    text: &mut String,
    tail: &mut Tail,
    at_ms: u64,
    event: &str,
    data: &str,
) -> Result<String, serde_json::Error> {
    let seq = tail.seq + 1;
    let start = text.len();
    // The same fields, in the same order, as `AuditRecord`'s serialization, with the data
    // already serialized by the caller.
    let event = serde_json::to_string(event)?;
    let _ = write!(
        text,
        "{{\"seq\":{seq},\"at_ms\":{at_ms},\"event\":{event},\"data\":{data},\"prev\":\"{}\"}}",
        tail.hash
    );
    let hash = hash_line(&text[start..]);
    text.push('\n');
    Ok(std::mem::replace(tail, Tail { seq, hash }).hash)
}

fn health_of(q: &Queue) -> AuditHealth {
    AuditHealth {
        failing_since_ms: q.failing.as_ref().map(|f| f.since_ms),
        error: q.failing.as_ref().map(|f| f.error.clone()),
        refused: q.failing.as_ref().map_or(0, |f| f.refused),
        queued: q.pending.len(),
    }
}
