//! Where the log's records live. The live file `audit/audit.log` takes the appends; once it is
//! [`DEFAULT_ROTATE_BYTES`] long (see [`super::AuditLog::set_rotate_bytes`]) the writer seals it:
//! it moves to `audit/sealed/audit-<seq>.log`, named for its last record, and a new live file
//! starts with an [`ROTATED`] record. The chain does not restart: sequence numbers and `prev`
//! hashes go on across files, so the sealed files in name order, then the live file, are one
//! chain. [`super::AuditLog::prune`] removes the oldest sealed files after appending an
//! [`PRUNED`] record that names them.

use super::{AuditError, AuditRecord, Head, Tail, hash_line, last_line};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The event that opens every file after the first: the chain continues from the sealed file it
/// names.
pub const ROTATED: &str = "audit.rotated";

/// The event written before sealed files are removed for retention.
pub const PRUNED: &str = "audit.pruned";

/// The live file is sealed before a batch once it is at least this long: a file a day of a busy
/// agent (two monitors write about 25 MB a day), small enough to copy or read back quickly, and
/// about 35 files a year for retention to remove one at a time.
pub const DEFAULT_ROTATE_BYTES: u64 = 64 << 20;

/// The directory of sealed files, beside the live file.
const SEALED_DIR: &str = "sealed";

/// Digits of the seq in a sealed file's name: `u64::MAX` has 20, so the names sort as their
/// numbers do.
const SEQ_DIGITS: usize = 20;

/// `audit.rotated`'s data: the file the chain continues from, and its last record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotatedData {
    pub sealed: String,
    pub last_seq: u64,
    pub last_hash: String,
}

/// One removed file, as `audit.pruned` names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrunedFile {
    pub name: String,
    pub last_seq: u64,
    pub last_hash: String,
    /// When its last record was written, milliseconds since the Unix epoch.
    pub last_at_ms: u64,
}

/// `audit.pruned`'s data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrunedData {
    /// Oldest first.
    pub files: Vec<PrunedFile>,
    /// The last removed record: the chain's remaining part continues from it.
    pub last_seq: u64,
    pub last_hash: String,
    /// Files whose last record is older than this (milliseconds since the Unix epoch) went.
    pub older_than_ms: u64,
    pub retention_secs: u64,
}

/// A sealed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub path: PathBuf,
    pub name: String,
    /// The seq its name gives: that of its last record.
    pub last_seq: u64,
}

/// The name of the sealed file whose last record is `last_seq`.
pub fn sealed_name(last_seq: u64) -> String {
    format!("audit-{last_seq:0SEQ_DIGITS$}.log")
}

fn parse_sealed_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("audit-")?.strip_suffix(".log")?;
    if digits.len() != SEQ_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(crate) fn sealed_dir(live: &Path) -> PathBuf {
    live.with_file_name(SEALED_DIR)
}

/// The sealed file `last_seq` of the log whose live file is `live`.
pub(crate) fn sealed_path(live: &Path, last_seq: u64) -> PathBuf {
    sealed_dir(live).join(sealed_name(last_seq))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The sealed files, oldest first. Other names in the directory are not the log's (an
/// operator's compressed copy, say) and are left alone; hiding a file by renaming it is the same
/// as deleting it, which `verify` reports.
pub fn list_sealed(live: &Path) -> Result<Vec<Sealed>, AuditError> {
    let dir = sealed_dir(live);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(io(&dir)(e)),
    };
    let mut sealed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io(&dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(last_seq) = parse_sealed_name(&name) {
            sealed.push(Sealed {
                path: entry.path(),
                name,
                last_seq,
            });
        }
    }
    sealed.sort_by_key(|s| s.last_seq);
    Ok(sealed)
}

/// A file's length, 0 when it does not exist.
pub(crate) fn len_of(path: &Path) -> Result<u64, AuditError> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(m.len()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(io(path)(e)),
    }
}

/// The last record of a sealed file and its line's hash, checked against the file's name.
pub(crate) fn sealed_tail(sealed: &Sealed) -> Result<(AuditRecord, Tail), AuditError> {
    let broken = |line: u64, message: String| AuditError::Broken {
        path: sealed.path.clone(),
        line,
        message,
    };
    let len = len_of(&sealed.path)?;
    let line = last_line(&sealed.path, len)?.ok_or_else(|| broken(0, "empty".into()))?;
    let record: AuditRecord = serde_json::from_str(&line)
        .map_err(|e| broken(0, format!("last line is not a record: {e}")))?;
    if record.seq != sealed.last_seq {
        return Err(broken(
            0,
            format!(
                "named for record {} but its last record is {}: renamed or cut",
                sealed.last_seq, record.seq
            ),
        ));
    }
    let tail = Tail {
        seq: record.seq,
        hash: hash_line(&line),
    };
    Ok((record, tail))
}

/// The first record of a file, if it has one.
pub(crate) fn first_record(path: &Path) -> Result<Option<AuditRecord>, AuditError> {
    use std::io::BufRead;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    let mut line = String::new();
    std::io::BufReader::new(file)
        .read_line(&mut line)
        .map_err(io(path))?;
    if line.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(line.trim_end_matches('\n'))
        .map(Some)
        .map_err(|e| AuditError::Broken {
            path: path.to_path_buf(),
            line: 1,
            message: format!("not a record: {e}"),
        })
}

/// Whether `head` is the anchor of a rotation that stopped after moving the live file and before
/// replacing the anchor (a crash): the sealed file named for `head.seq` has the anchored length.
/// The next write completes it; it is not a truncation.
pub(crate) fn rotation_interrupted(live: &Path, head: &Head) -> Result<bool, AuditError> {
    let Some(len) = head.len.filter(|len| *len > 0) else {
        return Ok(false);
    };
    let sealed = sealed_path(live, head.seq);
    Ok(sealed.exists() && len_of(&sealed)? == len)
}

/// The `audit.rotated` data that opens a live file after the sealed file ending at `tail`.
pub(crate) fn rotated_data(tail: &Tail) -> RotatedData {
    RotatedData {
        sealed: sealed_name(tail.seq),
        last_seq: tail.seq,
        last_hash: tail.hash.clone(),
    }
}

/// Identity of the live file as a writer last left it: after a rotation a new file can reach the
/// same length as the old one, so the length alone no longer says that nobody else wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileId {
    /// The inode (0 where the platform has none to offer, or for a missing file).
    ino: u64,
    pub(crate) len: u64,
}

impl FileId {
    pub(crate) fn of(path: &Path) -> Result<FileId, AuditError> {
        match std::fs::metadata(path) {
            Ok(m) => Ok(FileId::from_metadata(&m)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileId { ino: 0, len: 0 }),
            Err(e) => Err(io(path)(e)),
        }
    }

    pub(crate) fn from_metadata(m: &std::fs::Metadata) -> FileId {
        #[cfg(unix)]
        let ino = std::os::unix::fs::MetadataExt::ino(m);
        #[cfg(not(unix))]
        let ino = 0;
        FileId { ino, len: m.len() }
    }

    pub(crate) fn with_len(self, len: u64) -> FileId {
        FileId { len, ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_names_sort_as_their_numbers_and_others_are_not_sealed() {
        assert_eq!(sealed_name(42), "audit-00000000000000000042.log");
        assert_eq!(parse_sealed_name(&sealed_name(u64::MAX)), Some(u64::MAX));
        assert!(sealed_name(9) < sealed_name(10));
        for other in [
            "audit-42.log",
            "audit-00000000000000000042.log.gz",
            "x-00000000000000000042.log",
            "audit-0000000000000000004a.log",
        ] {
            assert_eq!(parse_sealed_name(other), None, "{other}");
        }
    }
}
