//! Group commit for the audit log: records are queued in order, and one writer at a time (the
//! background flusher, or a caller that needs durability now) chains them onto the log's tail and
//! writes them with one `write`, one `fdatasync` and one anchor update, under the cross-process
//! lock, once per batch instead of once per record.

use super::{AuditError, AuditRecord, Head, Tail, hash_line, read_head, read_tail};
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long the flusher lets a batch fill after its first record: the most a crash can lose of
/// records queued with [`super::AuditLog::append_lazy`] (plus the flush itself).
pub const GROUP_WINDOW: Duration = Duration::from_millis(5);

/// Queued records beyond which the caller writes the batch itself (bounds memory and loss).
const MAX_QUEUED: usize = 16_384;

/// After a failed background flush, how long before the flusher tries again.
const RETRY: Duration = Duration::from_secs(1);

/// A record waiting to be chained and written: its data is serialized once, by the caller.
#[derive(Debug)]
pub struct Pending {
    at_ms: u64,
    event: String,
    data: String,
}

impl Pending {
    /// A record of `event` now, with `data` (any JSON object or value).
    pub fn new(
        event: impl Into<String>,
        data: &impl serde::Serialize,
    ) -> Result<Pending, serde_json::Error> {
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Ok(Pending {
            at_ms,
            event: event.into(),
            data: serde_json::to_string(data)?,
        })
    }
}

struct Queue {
    pending: Vec<Pending>,
    stop: bool,
    /// The last write failed: lazy appends write (and report) synchronously until one succeeds.
    failed: bool,
}

struct Writer {
    /// `audit.lock`, opened once and flock'd per batch.
    lock_file: Option<File>,
    /// The chain's tail and the log's length after this process's last batch: valid while the
    /// log still has that length (no other process appended), so the anchor need not be re-read.
    known: Option<(Tail, u64)>,
}

/// State shared by an [`super::AuditLog`] and its flusher thread.
pub(super) struct Shared {
    pub(super) path: PathBuf,
    queue: Mutex<Queue>,
    wake: Condvar,
    writer: Mutex<Writer>,
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
                failed: false,
            }),
            wake: Condvar::new(),
            writer: Mutex::new(Writer {
                lock_file: None,
                known: None,
            }),
        }
    }

    fn io(&self, source: std::io::Error) -> AuditError {
        AuditError::Io {
            path: self.path.clone(),
            source,
        }
    }

    pub(super) fn needs_sync_write(&self) -> bool {
        relock(&self.queue).failed
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
    /// `own` is not written and the queued records go back to the front of the queue.
    pub(super) fn write_now(&self, own: Vec<Pending>) -> Result<Vec<AuditRecord>, AuditError> {
        let mut writer = relock(&self.writer);
        let mut batch = std::mem::take(&mut relock(&self.queue).pending);
        let queued = batch.len();
        batch.extend(own);
        if batch.is_empty() {
            return Ok(vec![]);
        }
        match self.write_batch(&mut writer, &batch) {
            Ok(links) => {
                relock(&self.queue).failed = false;
                batch
                    .into_iter()
                    .zip(links)
                    .skip(queued)
                    .map(|(p, (seq, prev))| {
                        Ok(AuditRecord {
                            seq,
                            at_ms: p.at_ms,
                            event: p.event,
                            data: serde_json::from_str(&p.data)
                                .map_err(|e| self.io(std::io::Error::other(e)))?,
                            prev,
                        })
                    })
                    .collect()
            }
            Err(e) => {
                batch.truncate(queued);
                let mut q = relock(&self.queue);
                batch.append(&mut q.pending);
                q.pending = batch;
                q.failed = true;
                Err(e)
            }
        }
    }

    /// Chain `batch` onto the log under the cross-process lock; each record's `(seq, prev)`.
    fn write_batch(
        &self,
        writer: &mut Writer,
        batch: &[Pending],
    ) -> Result<Vec<(u64, String)>, AuditError> {
        let known = writer.known.take();
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
        // One lock per batch keeps a CLI beside a daemon from interleaving with this chain.
        #[cfg(unix)]
        rustix::fs::flock(&lock_file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| self.io(e.into()))?;
        let result = self.write_locked(known, batch);
        #[cfg(unix)]
        let _ = rustix::fs::flock(&lock_file, rustix::fs::FlockOperation::Unlock);
        writer.lock_file = Some(lock_file);
        let (links, tail, len) = result?;
        writer.known = Some((tail, len));
        Ok(links)
    }

    #[allow(clippy::type_complexity)]
    fn write_locked(
        &self,
        known: Option<(Tail, u64)>,
        batch: &[Pending],
    ) -> Result<(Vec<(u64, String)>, Tail, u64), AuditError> {
        let log_len = match std::fs::metadata(&self.path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(self.io(e)),
        };
        let mut tail = match known {
            Some((tail, len)) if len == log_len => tail,
            _ => match read_head(&self.path.with_file_name("head.json"))? {
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
            },
        };
        let mut text = String::with_capacity(batch.len() * 256);
        let mut links = Vec::with_capacity(batch.len());
        for p in batch {
            let seq = tail.seq + 1;
            let start = text.len();
            // The same fields, in the same order, as `AuditRecord`'s serialization, with the
            // data already serialized by the caller.
            let event = serde_json::to_string(&p.event).map_err(|e| self.io(e.into()))?;
            let _ = write!(
                text,
                "{{\"seq\":{seq},\"at_ms\":{},\"event\":{event},\"data\":{},\"prev\":\"{}\"}}",
                p.at_ms, p.data, tail.hash
            );
            let hash = hash_line(&text[start..]);
            text.push('\n');
            let prev = std::mem::replace(&mut tail, Tail { seq, hash }).hash;
            links.push((seq, prev));
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| self.io(e))?;
        file.write_all(text.as_bytes()).map_err(|e| self.io(e))?;
        file.sync_data().map_err(|e| self.io(e))?;
        let len = file.metadata().map_err(|e| self.io(e))?.len();
        let head = serde_json::to_vec(&Head {
            seq: tail.seq,
            hash: tail.hash.clone(),
            len: Some(len),
        })
        .map_err(|e| self.io(std::io::Error::other(e)))?;
        crate::fsutil::write_atomic(&self.path.with_file_name("head.json"), &head)
            .map_err(|e| self.io(e))?;
        Ok((links, tail, len))
    }

    /// The background flusher: wait for a record, let the batch fill for [`GROUP_WINDOW`], write
    /// it; until stopped (the owner flushes what is left after joining this thread).
    pub(super) fn flusher_loop(&self) {
        loop {
            {
                let mut q = relock(&self.queue);
                while q.pending.is_empty() && !q.stop {
                    q = self.wake.wait(q).unwrap_or_else(PoisonError::into_inner);
                }
                let deadline = Instant::now() + GROUP_WINDOW;
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
            if let Err(e) = self.write_now(vec![]) {
                tracing::error!("audit records queued but not yet written: {e}");
                let q = relock(&self.queue);
                if q.stop {
                    return;
                }
                drop(self.wake.wait_timeout(q, RETRY));
            }
        }
    }
}
