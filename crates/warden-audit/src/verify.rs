//! Checking the log: the records of every file in order (the sealed files by name, then the live
//! file), the chain carried across files, each file after the first opening with the
//! `audit.rotated` record that names the one before, the anchor, saved heads and checkpoints,
//! and what retention removed: a log whose oldest file does not start at record 1 passes only
//! if an `audit.pruned` record in it names the file that ended right before.

use super::files::{self, PrunedData, RotatedData, Sealed};
use super::{
    AuditError, AuditLog, AuditRecord, CheckpointReport, GENESIS, PrunedReport, Tail,
    VerifyOptions, VerifyReport, checkpoint, hash_line,
};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// The end of the file before the one being walked: the chain continues from it.
#[derive(Debug, Clone)]
pub(crate) struct After {
    pub(crate) tail: Tail,
    pub(crate) name: String,
}

/// What [`walk`] found in one file.
pub(crate) struct Walked {
    pub(crate) tail: Tail,
    pub(crate) records: u64,
    pub(crate) first: Option<AuditRecord>,
}

/// A file of the chain, oldest first: a sealed one (with the seq its name gives) or the live one.
struct ChainFile {
    path: PathBuf,
    name: String,
    sealed_seq: Option<u64>,
}

/// Times `verify` starts over when the sealed files changed while it read them (a running agent
/// rotated or pruned): each is rare, two during one verify rarer still.
const VERIFY_ATTEMPTS: usize = 3;

fn chain_files(live: &Path, sealed: &[Sealed]) -> Vec<ChainFile> {
    let mut chain: Vec<ChainFile> = sealed
        .iter()
        .map(|s| ChainFile {
            path: s.path.clone(),
            name: s.name.clone(),
            sealed_seq: Some(s.last_seq),
        })
        .collect();
    chain.push(ChainFile {
        path: live.to_path_buf(),
        name: live
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        sealed_seq: None,
    });
    chain
}

/// An `audit.pruned` record seen on the way: its seq, time and data.
type Prune = (u64, u64, PrunedData);

impl AuditLog {
    /// Check the whole chain, across its files, and its anchor: a modified, deleted, reordered
    /// or inserted record, a missing, renamed or reordered file, and a truncated tail, are errors
    /// naming the file and line. A consistent rewrite of the log and its anchor passes;
    /// [`AuditLog::verify_with`] can catch that.
    pub fn verify(&self) -> Result<VerifyReport, AuditError> {
        self.verify_with(&VerifyOptions::default())
    }

    /// [`AuditLog::verify`], and check the log against heads saved earlier and the checkpoints
    /// against their key.
    pub fn verify_with(&self, options: &VerifyOptions) -> Result<VerifyReport, AuditError> {
        let mut attempt = 1;
        loop {
            let sealed = files::list_sealed(self.path())?;
            let result = self.verify_files(options, &sealed);
            // A file sealed or removed meanwhile looks like a gap: read the files again.
            if result.is_err()
                && attempt < VERIFY_ATTEMPTS
                && files::list_sealed(self.path())? != sealed
            {
                attempt += 1;
                continue;
            }
            return result;
        }
    }

    fn verify_files(
        &self,
        options: &VerifyOptions,
        sealed: &[Sealed],
    ) -> Result<VerifyReport, AuditError> {
        let mut expect: BTreeMap<u64, &str> = options
            .expect
            .iter()
            .map(|(seq, hash)| (*seq, hash.as_str()))
            .collect();
        let mut checkpoints = Checkpoints::default();
        let mut prunes: Vec<Prune> = Vec::new();
        let mut after: Option<After> = None;
        let mut oldest: Option<(PathBuf, AuditRecord)> = None;
        let (mut records, mut file_count) = (0u64, 0u64);
        for file in chain_files(self.path(), sealed) {
            let walked = walk(&file.path, after.as_ref(), |record, hash| {
                if let Some(want) = expect.remove(&record.seq)
                    && want != hash
                {
                    return Err(format!(
                        "record {} is not the one saved earlier (hash {want}): the log was \
                         rewritten at or before it",
                        record.seq
                    ));
                }
                if let Some(key) = &options.checkpoint_key {
                    checkpoints.visit(record, key)?;
                }
                if record.event == files::PRUNED {
                    let data = serde_json::from_value::<PrunedData>(record.data.clone())
                        .map_err(|e| format!("{} record unreadable: {e}", files::PRUNED))?;
                    prunes.push((record.seq, record.at_ms, data));
                }
                Ok(())
            })?;
            let broken = |line: u64, message: String| AuditError::Broken {
                path: file.path.clone(),
                line,
                message,
            };
            if let Some(seq) = file.sealed_seq {
                if walked.records == 0 {
                    return Err(broken(0, "a sealed file without records".into()));
                }
                if walked.tail.seq != seq {
                    return Err(broken(
                        walked.records,
                        format!(
                            "named for record {seq} but ends at record {}: renamed, cut, or \
                             another file's",
                            walked.tail.seq
                        ),
                    ));
                }
            }
            if file.sealed_seq.is_some() || file.path.exists() {
                file_count += 1;
            }
            if let Some(first) = &walked.first {
                let from = match &after {
                    Some(a) => Some(a.clone()),
                    // The oldest file left after pruning: it names the one removed before it.
                    None if first.seq > 1 => Some(After {
                        tail: Tail {
                            seq: first.seq - 1,
                            hash: first.prev.clone(),
                        },
                        name: files::sealed_name(first.seq - 1),
                    }),
                    None => None,
                };
                if let Some(from) = from {
                    check_opens_after(first, &from).map_err(|m| broken(1, m))?;
                }
                if oldest.is_none() {
                    oldest = Some((file.path.clone(), first.clone()));
                }
            }
            records += walked.records;
            after = Some(After {
                tail: walked.tail,
                name: file.name,
            });
        }
        let tail = after.map_or_else(
            || Tail {
                seq: 0,
                hash: GENESIS.into(),
            },
            |a| a.tail,
        );
        let pruned = match &oldest {
            Some((path, first)) if first.seq > 1 => Some(pruned_before(path, first, &prunes)?),
            _ => None,
        };
        let first_seq = oldest.as_ref().map_or(1, |(_, r)| r.seq);
        // Saved heads of records retention removed: checkable only where a pruned file ended.
        let mut expected_pruned = 0;
        let below: Vec<(u64, &str)> = expect.range(..first_seq).map(|(s, h)| (*s, *h)).collect();
        for (seq, want) in below {
            expect.remove(&seq);
            let removed = prunes
                .iter()
                .flat_map(|(_, _, p)| &p.files)
                .find(|f| f.last_seq == seq);
            match removed {
                Some(f) if f.last_hash != want => {
                    return Err(AuditError::Broken {
                        path: self.path().to_path_buf(),
                        line: seq,
                        message: format!(
                            "record {seq} is not the one saved earlier (hash {want}): the \
                             {} record that removed it names hash {}",
                            files::PRUNED,
                            f.last_hash
                        ),
                    });
                }
                Some(_) => {}
                None => expected_pruned += 1,
            }
        }
        let mut report = self.check_anchor(&tail)?;
        let broken = |line: u64, message: String| AuditError::Broken {
            path: self.path().to_path_buf(),
            line,
            message,
        };
        if let Some((seq, _)) = expect.first_key_value() {
            return Err(broken(
                tail.seq,
                format!(
                    "the log ends at record {}, but record {seq} was saved earlier: it was \
                     truncated, or rewritten",
                    tail.seq
                ),
            ));
        }
        report.checkpoints = match options.checkpoint_key {
            None => None,
            Some(_) => Some(
                checkpoints
                    .finish(records, tail.seq)
                    .map_err(|(line, m)| broken(line, m))?,
            ),
        };
        report.records = records;
        report.files = file_count;
        report.pruned = pruned;
        report.expected = options.expect.len() - expected_pruned;
        report.expected_pruned = expected_pruned;
        Ok(report)
    }

    /// Compare the chain's end with the anchor: a report with its warning, or the error.
    fn check_anchor(&self, tail: &Tail) -> Result<VerifyReport, AuditError> {
        let broken = |line: u64, message: String| AuditError::Broken {
            path: self.path().to_path_buf(),
            line,
            message,
        };
        let mut report = VerifyReport::default();
        let Some(head) = self.read_head()? else {
            if tail.seq == 0 {
                return Ok(report);
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
        report.warning = if tail.seq > head.seq {
            Some(format!(
                "the last {} record(s) are not anchored (a crash between writing them and their anchor?)",
                tail.seq - head.seq
            ))
        } else if files::len_of(self.path())? == 0
            && files::rotation_interrupted(self.path(), &head)?
        {
            Some(format!(
                "a rotation was interrupted after sealing {} (a crash?); the next write completes it",
                files::sealed_name(head.seq)
            ))
        } else {
            None
        };
        Ok(report)
    }
}

/// A file after the first opens with `audit.rotated`, naming the file before it and its last
/// record (the chain's `prev` already says the hash; the name says which file must be there).
fn check_opens_after(first: &AuditRecord, after: &After) -> Result<(), String> {
    if first.event != files::ROTATED {
        return Err(format!(
            "opens with `{}`, not `{}`: every file after the first starts by naming the file \
             before it",
            first.event,
            files::ROTATED
        ));
    }
    let data: RotatedData = serde_json::from_value(first.data.clone())
        .map_err(|e| format!("{} record unreadable: {e}", files::ROTATED))?;
    let expected = files::rotated_data(&after.tail);
    if data != expected {
        return Err(format!(
            "says it continues {} (record {}), but the chain continues {} (record {})",
            data.sealed, data.last_seq, expected.sealed, expected.last_seq
        ));
    }
    if after.name != expected.sealed {
        return Err(format!(
            "continues {}, but the file before it is {}",
            expected.sealed, after.name
        ));
    }
    Ok(())
}

/// What retention removed before `first`, the oldest record left: an `audit.pruned` record must
/// name the file that ended right before it, else the files were deleted some other way.
fn pruned_before(
    path: &Path,
    first: &AuditRecord,
    prunes: &[Prune],
) -> Result<PrunedReport, AuditError> {
    let through_seq = first.seq - 1;
    prunes
        .iter()
        .find(|(_, _, p)| {
            p.files
                .iter()
                .any(|f| f.last_seq == through_seq && f.last_hash == first.prev)
        })
        .map(|(seq, at_ms, p)| PrunedReport {
            through_seq,
            by_seq: *seq,
            at_ms: *at_ms,
            retention_secs: p.retention_secs,
        })
        .ok_or_else(|| AuditError::Broken {
            path: path.to_path_buf(),
            line: 1,
            message: format!(
                "starts at record {}: records 1-{through_seq} are gone and no {} record accounts \
                 for them (a sealed file was deleted outside retention)",
                first.seq,
                files::PRUNED
            ),
        })
}

/// What [`AuditLog::verify_with`] tracks of the checkpoints while it walks the log.
#[derive(Default)]
struct Checkpoints {
    count: u64,
    /// The last checkpoint's seq, signed time and interval.
    last: Option<(u64, u64, u64)>,
    /// The first record after the last checkpoint written later than the next one was due.
    late: Option<(u64, u64)>,
}

impl Checkpoints {
    fn visit(
        &mut self,
        record: &AuditRecord,
        key: &ed25519_dalek::VerifyingKey,
    ) -> Result<(), String> {
        if record.event == checkpoint::EVENT {
            let data = checkpoint::check(record, key)?;
            self.count += 1;
            self.last = Some((record.seq, data.signed_at_ms, data.interval_secs));
            self.late = None;
        } else if let Some((_, signed_at_ms, interval_secs)) = self.last
            && self.late.is_none()
        {
            let due = signed_at_ms
                .saturating_add(interval_secs.saturating_mul(checkpoint::LATE_INTERVALS * 1000));
            if record.at_ms > due {
                self.late = Some((record.seq, record.at_ms - signed_at_ms));
            }
        }
        Ok(())
    }

    /// `records` were checked, the last is `end_seq`.
    fn finish(self, records: u64, end_seq: u64) -> Result<CheckpointReport, (u64, String)> {
        let Some((last_seq, _, interval_secs)) = self.last else {
            if records == 0 {
                return Ok(CheckpointReport {
                    count: 0,
                    last_seq: 0,
                    after_last: 0,
                });
            }
            return Err((
                end_seq,
                "no signed checkpoint in the log: checkpoints were removed, or no agent with the \
                 checkpoint key ever ran on it"
                    .into(),
            ));
        };
        if let Some((seq, after_ms)) = self.late {
            return Err((
                seq,
                format!(
                    "written {} s after the last checkpoint (record {last_seq}, interval {interval_secs} s) \
                     and no checkpoint follows: later checkpoints were removed, or the records \
                     were written while no agent with the key ran",
                    after_ms / 1000
                ),
            ));
        }
        Ok(CheckpointReport {
            count: self.count,
            last_seq,
            after_last: end_seq - last_seq,
        })
    }
}

/// Walk the live file from the end of the last sealed one, checking sequence and chain, and
/// return its last record's seq and hash.
pub(crate) fn read_tail(live: &Path) -> Result<Tail, AuditError> {
    let after = match files::list_sealed(live)?.pop() {
        Some(sealed) => {
            let (_, tail) = files::sealed_tail(&sealed)?;
            Some(After {
                tail,
                name: sealed.name,
            })
        }
        None => None,
    };
    Ok(walk(live, after.as_ref(), |_, _| Ok(()))?.tail)
}

/// Walk one file of the log from `after` (the end of the file before it; `None` for the oldest
/// file, which starts at record 1, or, after pruning, with an `audit.rotated` record whose `prev`
/// is taken as given: the caller checks that an `audit.pruned` record accounts for it), calling
/// `visit` with each record and its line's hash; an `Err` from it is the file's error at that
/// line.
pub(crate) fn walk(
    path: &Path,
    after: Option<&After>,
    mut visit: impl FnMut(&AuditRecord, &str) -> Result<(), String>,
) -> Result<Walked, AuditError> {
    let mut walked = Walked {
        tail: after.map_or_else(
            || Tail {
                seq: 0,
                hash: GENESIS.into(),
            },
            |a| a.tail.clone(),
        ),
        records: 0,
        first: None,
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(walked),
        Err(source) => {
            return Err(AuditError::Io {
                path: path.into(),
                source,
            });
        }
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
        let boundary = if n == 1 { after } else { None };
        if n == 1 && after.is_none() && record.seq > 1 {
            if record.event != files::ROTATED {
                return Err(broken(format!(
                    "starts at record {}, not 1, without an `{}` record: the records before it \
                     were removed",
                    record.seq,
                    files::ROTATED
                )));
            }
            walked.tail = Tail {
                seq: record.seq - 1,
                hash: record.prev.clone(),
            };
        }
        let tail = &walked.tail;
        if record.seq != tail.seq + 1 {
            return Err(broken(match boundary {
                Some(a) => format!(
                    "starts at record {}, but {} ends at record {}: a sealed file between them \
                     is missing, or the files were reordered",
                    record.seq, a.name, tail.seq
                ),
                None => format!(
                    "sequence {} follows {}: a record was removed or reordered",
                    record.seq, tail.seq
                ),
            }));
        }
        if record.prev != tail.hash {
            return Err(broken(match boundary {
                Some(a) => format!(
                    "hash chain broken: the last record of {} was modified, or this file \
                     replaced",
                    a.name
                ),
                None => "hash chain broken: the previous record was modified".into(),
            }));
        }
        let hash = hash_line(&line);
        visit(&record, &hash).map_err(broken)?;
        walked.tail = Tail {
            seq: record.seq,
            hash,
        };
        walked.records += 1;
        if walked.first.is_none() {
            walked.first = Some(record);
        }
    }
    Ok(walked)
}
