//! Reading the log backward, newest record first: for "the last few records about X" (the
//! console's agent page), where [`crate::AuditLog::scan`] would read a year of records forward
//! to keep the last fifty. The live file is read from its end in blocks, then the sealed files,
//! newest first; the scan stops once it has `limit` records or has read `max_bytes`, whichever
//! comes first, so a page view costs a bounded read however long the log is.
//!
//! Like `scan`, a line is parsed only if the caller's cheap text test accepts it; the seq, at
//! the start of every line, and the `prev` hash, at its end, are read without parsing (the
//! writer puts the fields in [`crate::AuditRecord`]'s order). That lets each record found carry
//! its own hash and whether the record after it names that hash as its `prev`: a local check
//! of the chain, not [`crate::AuditLog::verify`]'s whole one.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::{AuditError, AuditLog, AuditRecord, files, hash_line};

/// Read size per step backwards: a few hundred typical records, one system call.
const BLOCK: u64 = 64 * 1024;

/// One record the backward scan kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub record: AuditRecord,
    /// sha256 of its line, hex: what the next record's `prev` must be.
    pub hash: String,
    /// Whether the record after it names `hash` as its `prev` (and has the next seq); `None`
    /// when the scan read no record after it (it is the newest one).
    pub linked: Option<bool>,
}

/// Why the backward scan stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// It found `limit` records.
    Limit,
    /// It read the oldest record the log holds.
    Start,
    /// It read `max_bytes`; older records were not looked at. `oldest_at_ms` is the time of the
    /// oldest record it read (milliseconds since the Unix epoch), if it read any.
    Budget { oldest_at_ms: Option<u64> },
}

/// What [`AuditLog::scan_back`] found, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Backward {
    pub found: Vec<Found>,
    pub stop: Stop,
}

/// The lines of one file from its end, in blocks, counting what it reads against a budget.
struct Lines {
    path: PathBuf,
    file: File,
    /// Where the bytes in `pending` start.
    pos: u64,
    /// Read and not yet handed out: a partial line, then whole ones.
    pending: Vec<u8>,
    /// Whether the file's last newline was found: what follows it is not a whole line.
    seen_newline: bool,
}

enum Next {
    Line(Vec<u8>, u64),
    Done,
    OutOfBudget,
}

impl Lines {
    fn open(path: &Path) -> Result<Option<Lines>, AuditError> {
        let io = |source| AuditError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = match File::open(path) {
            Ok(f) => f,
            // Sealed or pruned since the listing: nothing of it to read here.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let pos = file.metadata().map_err(io)?.len();
        Ok(Some(Lines {
            path: path.to_path_buf(),
            file,
            pos,
            pending: Vec::new(),
            seen_newline: false,
        }))
    }

    /// The line before those handed out, with its byte offset, reading more while `budget`
    /// lasts. Bytes after the file's last newline (a write in progress) are not a record yet,
    /// and are left out.
    fn next(&mut self, budget: &mut u64) -> Result<Next, AuditError> {
        loop {
            if let Some(i) = self.pending.iter().rposition(|b| *b == b'\n') {
                let line = self.pending.split_off(i + 1);
                self.pending.truncate(i);
                let whole = std::mem::replace(&mut self.seen_newline, true);
                if line.is_empty() || !whole {
                    continue;
                }
                let at = self.pos + self.pending.len() as u64 + 1;
                return Ok(Next::Line(line, at));
            }
            if self.pos == 0 {
                let line = std::mem::take(&mut self.pending);
                return Ok(if line.is_empty() || !self.seen_newline {
                    Next::Done
                } else {
                    Next::Line(line, 0)
                });
            }
            if *budget == 0 {
                return Ok(Next::OutOfBudget);
            }
            let n = BLOCK.min(self.pos).min(*budget);
            let io = |source| AuditError::Io {
                path: self.path.clone(),
                source,
            };
            self.pos -= n;
            self.file.seek(SeekFrom::Start(self.pos)).map_err(io)?;
            // `n` is at most BLOCK, so it fits a usize.
            let mut block = vec![0u8; usize::try_from(n).unwrap_or(usize::MAX)];
            self.file.read_exact(&mut block).map_err(io)?;
            *budget -= n;
            block.append(&mut self.pending);
            self.pending = block;
        }
    }
}

/// `{"seq":N,"at_ms":M,...`: the seq and time every line starts with.
fn seq_and_time(line: &str) -> Option<(u64, u64)> {
    let rest = line.strip_prefix("{\"seq\":")?;
    let (seq, rest) = rest.split_once(',')?;
    let rest = rest.strip_prefix("\"at_ms\":")?;
    let (at, _) = rest.split_once(',')?;
    Some((seq.parse().ok()?, at.parse().ok()?))
}

/// `...,"prev":"<64 hex>"}`: the hash every line ends with.
fn prev_of(line: &str) -> Option<&str> {
    let rest = line.strip_suffix("\"}")?;
    let cut = rest.len().checked_sub(64)?;
    let hash = rest.get(cut..)?;
    rest[..cut].ends_with(",\"prev\":\"").then_some(hash)
}

impl AuditLog {
    /// Up to `limit` records whose line `keep` accepts and whose record `accept` accepts,
    /// newest first, reading at most `max_bytes` of the log (records queued by
    /// [`AuditLog::append_lazy`] and not yet flushed are not in the files yet).
    pub fn scan_back(
        &self,
        limit: usize,
        max_bytes: u64,
        mut keep: impl FnMut(&str) -> bool,
        mut accept: impl FnMut(&AuditRecord) -> bool,
    ) -> Result<Backward, AuditError> {
        let mut found = Vec::new();
        if limit == 0 {
            return Ok(Backward {
                found,
                stop: Stop::Limit,
            });
        }
        let mut budget = max_bytes;
        // The live file is opened before the sealed ones are listed: a rotation in between
        // lists the file already open again, and its records are skipped by seq below.
        let live = Lines::open(self.path())?;
        // Each sealed file is opened when the scan reaches it: most scans end in the live one.
        let sealed = files::list_sealed(self.path())?;
        let sources =
            std::iter::once(Ok(live)).chain(sealed.into_iter().rev().map(|s| Lines::open(&s.path)));
        // The last record read (the one after the current line in the chain): its seq and prev.
        let mut after: Option<(u64, Option<String>)> = None;
        let mut oldest_at_ms = None;
        for source in sources {
            let Some(mut lines) = source? else {
                continue;
            };
            loop {
                let (bytes, offset) = match lines.next(&mut budget)? {
                    Next::Line(bytes, offset) => (bytes, offset),
                    Next::Done => break,
                    Next::OutOfBudget => {
                        return Ok(Backward {
                            found,
                            stop: Stop::Budget { oldest_at_ms },
                        });
                    }
                };
                let broken = |message: &str| AuditError::Unreadable {
                    path: lines.path.clone(),
                    offset,
                    message: message.to_string(),
                };
                let line = std::str::from_utf8(&bytes).map_err(|_| broken("not UTF-8"))?;
                let (seq, at_ms) =
                    seq_and_time(line).ok_or_else(|| broken("not a record: no seq and time"))?;
                if after.as_ref().is_some_and(|(s, _)| seq >= *s) {
                    // Read already, from the file before it was sealed.
                    continue;
                }
                oldest_at_ms = Some(at_ms);
                if keep(line) {
                    let record: AuditRecord = serde_json::from_str(line)
                        .map_err(|e| broken(&format!("not a record: {e}")))?;
                    if accept(&record) {
                        let hash = hash_line(line);
                        let linked = after.as_ref().map(|(s, prev)| {
                            *s == seq + 1 && prev.as_deref() == Some(hash.as_str())
                        });
                        found.push(Found {
                            record,
                            hash,
                            linked,
                        });
                        if found.len() >= limit {
                            return Ok(Backward {
                                found,
                                stop: Stop::Limit,
                            });
                        }
                    }
                }
                after = Some((seq, prev_of(line).map(str::to_string)));
            }
        }
        Ok(Backward {
            found,
            stop: Stop::Start,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn log_of(n: u64, rotate: Option<u64>) -> (tempfile::TempDir, AuditLog) {
        let dir = tempfile::tempdir().expect("tmp");
        let log = AuditLog::new(dir.path());
        if let Some(bytes) = rotate {
            log.set_rotate_bytes(bytes);
        }
        for i in 0..n {
            let who = if i % 3 == 0 { "alpha" } else { "beta" };
            log.append("thing", json!({ "i": i, "who": who }))
                .expect("append");
        }
        (dir, log)
    }

    fn numbers(b: &Backward) -> Vec<u64> {
        b.found
            .iter()
            .map(|f| f.record.data["i"].as_u64().unwrap_or(u64::MAX))
            .collect()
    }

    #[test]
    fn the_newest_kept_records_first_across_sealed_files_each_linked_to_the_next() {
        let (_dir, log) = log_of(30, Some(400));
        assert!(files::list_sealed(log.path()).expect("sealed").len() > 2);
        let alpha = |line: &str| line.contains("alpha");
        let all = log.scan_back(100, u64::MAX, alpha, |_| true).expect("scan");
        assert_eq!(
            numbers(&all),
            (0..10).rev().map(|i| i * 3).collect::<Vec<u64>>()
        );
        assert_eq!(all.stop, Stop::Start);
        // Each the next record names, kept or not, across files; the log's newest has none.
        assert!(all.found.iter().all(|f| f.linked == Some(true)));
        let newest = log
            .scan_back(1, u64::MAX, |_| true, |_| true)
            .expect("scan");
        assert_eq!(newest.found[0].linked, None);
        assert_eq!(newest.found[0].record.data["i"], 29);

        let three = log.scan_back(3, u64::MAX, alpha, |_| true).expect("scan");
        assert_eq!(numbers(&three), vec![27, 24, 21]);
        assert_eq!(three.stop, Stop::Limit);

        // `accept` sees the parsed record.
        let even = log
            .scan_back(2, u64::MAX, alpha, |r| {
                r.data["i"].as_u64().is_some_and(|i| i % 2 == 0)
            })
            .expect("scan");
        assert_eq!(numbers(&even), vec![24, 18]);
    }

    #[test]
    fn the_budget_bounds_what_is_read_and_says_how_far_back_it_got() {
        let (_dir, log) = log_of(200, None);
        let cut = log.scan_back(100, 2_000, |_| true, |_| true).expect("scan");
        let Stop::Budget { oldest_at_ms } = cut.stop else {
            panic!("stopped on {:?}", cut.stop);
        };
        assert!(oldest_at_ms.is_some());
        assert!(
            !cut.found.is_empty() && cut.found.len() < 100,
            "{}",
            cut.found.len()
        );
        assert_eq!(cut.found[0].record.data["i"], 199);
        let empty = tempfile::tempdir().expect("tmp");
        let none = AuditLog::new(empty.path())
            .scan_back(10, u64::MAX, |_| true, |_| true)
            .expect("no log is no records");
        assert_eq!((none.found.len(), none.stop), (0, Stop::Start));
    }

    #[test]
    fn a_record_being_written_is_left_out_and_a_tampered_one_is_not_linked() {
        let (_dir, log) = log_of(5, None);
        let text = std::fs::read_to_string(log.path()).expect("read");
        // Record 3 (i = 2) rewritten: its hash changes, record 4 still names the old one.
        let tampered = text.replace("\"i\":2,", "\"i\":2,\"x\":1,");
        std::fs::write(log.path(), format!("{tampered}{{\"seq\":6,\"at_")).expect("write");
        let all = log
            .scan_back(10, u64::MAX, |_| true, |_| true)
            .expect("scan");
        assert_eq!(numbers(&all), vec![4, 3, 2, 1, 0]);
        let linked: Vec<_> = all.found.iter().map(|f| f.linked).collect();
        assert_eq!(
            linked,
            vec![None, Some(true), Some(false), Some(true), Some(true)]
        );
        std::fs::write(log.path(), "not a record\n").expect("write");
        assert!(matches!(
            log.scan_back(10, u64::MAX, |_| true, |_| true),
            Err(AuditError::Unreadable { offset: 0, .. })
        ));
    }
}
