//! Read files and directories under the paths granted in the manifest (WIT `fs`). Paths are
//! absolute in the host's own syntax; the host resolves them inside the granted root, so `..`
//! and symlinks cannot leave it.
//!
//! ```no_run
//! use warden_sdk::fs;
//!
//! # fn main() -> Result<(), warden_sdk::CapError> {
//! let status = fs::read_to_string("/var/lib/dpkg/status")?;
//! for entry in fs::list_dir("/tmp")? {
//!     if entry.metadata.is_file() {
//!         warden_sdk::log::debug(&entry.name, &[]);
//!     }
//! }
//! # let _ = status;
//! # Ok(())
//! # }
//! ```

use std::time::{Duration, SystemTime};

use crate::__private::bindings::warden::plugin::fs as wit;
use crate::CapError;

/// What a directory entry or path is. A symlink is reported as such, never followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// A symbolic link (not followed).
    Symlink,
    /// Anything else: socket, device, FIFO, ...
    Other,
}

/// Metadata of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// What the path is.
    pub kind: EntryKind,
    /// Size in bytes.
    pub size: u64,
    /// Last modification in seconds since the Unix epoch, when the platform reports it.
    pub modified_secs: Option<i64>,
    /// True when the file is read-only.
    pub readonly: bool,
}

impl Metadata {
    /// True for a regular file (not a symlink to one).
    pub fn is_file(&self) -> bool {
        self.kind == EntryKind::File
    }

    /// True for a directory (not a symlink to one).
    pub fn is_dir(&self) -> bool {
        self.kind == EntryKind::Directory
    }

    /// True for a symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.kind == EntryKind::Symlink
    }

    /// Last modification time, when the platform reports it.
    pub fn modified(&self) -> Option<SystemTime> {
        let secs = self.modified_secs?;
        if secs >= 0 {
            SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs.unsigned_abs()))
        } else {
            SystemTime::UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))
        }
    }
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// File name only, not the full path.
    pub name: String,
    /// Metadata of the entry itself (a symlink is not followed).
    pub metadata: Metadata,
}

impl From<wit::Metadata> for Metadata {
    fn from(m: wit::Metadata) -> Self {
        let kind = match m.kind {
            wit::EntryKind::File => EntryKind::File,
            wit::EntryKind::Directory => EntryKind::Directory,
            wit::EntryKind::Symlink => EntryKind::Symlink,
            wit::EntryKind::Other => EntryKind::Other,
        };
        Metadata {
            kind,
            size: m.size,
            modified_secs: m.modified_secs,
            readonly: m.readonly,
        }
    }
}

/// Read a whole file (the host caps how much it reads).
pub fn read(path: &str) -> Result<Vec<u8>, CapError> {
    Ok(wit::read(path)?)
}

/// Read a whole file as UTF-8 text; invalid UTF-8 is reported as [`CapError::Invalid`].
pub fn read_to_string(path: &str) -> Result<String, CapError> {
    String::from_utf8(read(path)?)
        .map_err(|e| CapError::Invalid(format!("{path} is not UTF-8: {e}")))
}

/// List a directory, in the order the host returns.
pub fn list_dir(path: &str) -> Result<Vec<DirEntry>, CapError> {
    Ok(wit::list_dir(path)?
        .into_iter()
        .map(|e| DirEntry {
            name: e.name,
            metadata: e.metadata.into(),
        })
        .collect())
}

/// Metadata of a path; a symlink is not followed.
pub fn stat(path: &str) -> Result<Metadata, CapError> {
    Ok(wit::stat(path)?.into())
}
