//! `warden:plugin/fs` and `warden:plugin/fs-write`: file access under granted paths only.
//! The path is normalised and checked against the grant (lexically), then opened through a
//! cap-std directory handle rooted at the granted path, so symlinks cannot lead out of it either.

use super::{CapFailure, HostState, RunContext};
use crate::bindings::CapError;
use crate::bindings::warden::plugin::fs::{DirEntry, EntryKind, Host as FsHost, Metadata};
use crate::bindings::warden::plugin::fs_write::Host as FsWriteHost;
use crate::grant::{self, Operation, is_within};
use cap_std::ambient_authority;
use cap_std::fs::Dir;
use std::borrow::Cow;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Longest path a plugin may pass.
pub const MAX_PATH_BYTES: usize = 4096;

/// A granted root opened as a capability, and the path inside it (borrowed from the plugin's
/// path when that was normal already).
struct Resolved<'p> {
    dir: Arc<Dir>,
    rel: Cow<'p, Path>,
}

/// A granted root as opened once per run: a directory, or a granted file's parent directory.
pub enum OpenRoot {
    Dir(Arc<Dir>),
    File { parent: Arc<Dir>, name: PathBuf },
}

/// The granted roots this run has opened, by normalized path: each is opened (and its kind
/// checked) on first use and kept for the rest of the run, so a call costs only its own syscalls.
/// A grant names a handful of roots: a list compared as bytes beats hashing a `PathBuf` (which
/// hashes it component by component) on every call.
#[derive(Default)]
pub struct OpenRoots(Vec<(PathBuf, OpenRoot)>);

impl OpenRoots {
    fn get(&self, root: &Path) -> Option<&OpenRoot> {
        self.0
            .iter()
            .find(|(r, _)| r.as_os_str() == root.as_os_str())
            .map(|(_, open)| open)
    }
}

impl RunContext {
    fn resolve<'p>(
        &mut self,
        path: &'p str,
        write: bool,
        function: &'static str,
    ) -> Result<Resolved<'p>, CapFailure> {
        let capability = if write { "fs-write" } else { "fs" };
        let invalid = |why: &str| format!("`{}`: {why}", path.escape_debug());
        let normalized = if path.len() > MAX_PATH_BYTES || path.contains('\0') {
            None
        } else {
            grant::normalized(Path::new(path))
        };
        let Some(normalized) = normalized else {
            let why = invalid("not a normal absolute path");
            self.record(capability, function, path, &[], Some(why.clone()));
            return Err(CapError::Invalid(why).into());
        };
        let op = if write {
            Operation::FsWrite { path: &normalized }
        } else {
            Operation::FsRead { path: &normalized }
        };
        self.authorize(op, function, path, &[])?;
        // A handle of its own (an `Arc`), so the roots can be borrowed while `self` changes.
        let grant = self.grant.clone();
        let roots: Box<dyn Iterator<Item = &PathBuf>> = if write {
            Box::new(grant.fs_write.iter())
        } else {
            Box::new(grant.fs_read.iter().chain(&grant.fs_write))
        };
        // The longest granted root containing the path; the grant check above guarantees one.
        // All the candidates contain the path, so the longest is also the deepest.
        let root = roots
            .filter_map(|r| grant::normalized(r))
            .filter(|r| is_within(&normalized, r))
            .max_by_key(|r| r.as_os_str().len())
            .ok_or_else(|| CapError::Denied(invalid("not under a granted path")))?;
        if self.fs_roots.get(&root).is_none() {
            let host_root = self.env.host_path(&root);
            let opened = match std::fs::metadata(&host_root) {
                Ok(m) if m.is_dir() => Dir::open_ambient_dir(&host_root, ambient_authority())
                    .map(|dir| OpenRoot::Dir(Arc::new(dir))),
                // A granted file: open its directory and allow exactly that entry.
                Ok(_) => match (host_root.parent(), host_root.file_name()) {
                    (Some(parent), Some(name)) => {
                        Dir::open_ambient_dir(parent, ambient_authority()).map(|dir| {
                            OpenRoot::File {
                                parent: Arc::new(dir),
                                name: PathBuf::from(name),
                            }
                        })
                    }
                    _ => {
                        return Err(self.deny_after_check(invalid("not under a granted directory")));
                    }
                },
                Err(e) => Err(e),
            };
            let opened = opened.map_err(|e| self.io_error(path, e))?;
            self.fs_roots.0.push((root.to_path_buf(), opened));
        }
        match self.fs_roots.get(&root) {
            Some(OpenRoot::Dir(dir)) => Ok(Resolved {
                dir: dir.clone(),
                rel: relative(normalized, &root),
            }),
            Some(OpenRoot::File { parent, name }) if normalized.as_os_str() == root.as_os_str() => {
                Ok(Resolved {
                    dir: parent.clone(),
                    rel: Cow::Owned(name.clone()),
                })
            }
            _ => Err(self.deny_after_check(invalid("not under a granted directory"))),
        }
    }

    /// The grant allowed the path but the filesystem showed it escapes: record it as denied.
    fn deny_after_check(&mut self, why: String) -> CapFailure {
        if let Some(last) = self.uses.last_mut() {
            last.allowed = false;
            last.reason = Some(why.clone());
        }
        CapError::Denied(why).into()
    }

    fn io_error(&mut self, path: &str, e: std::io::Error) -> CapFailure {
        match e.kind() {
            std::io::ErrorKind::NotFound => CapError::NotFound(path.to_string()).into(),
            std::io::ErrorKind::PermissionDenied => self.deny_after_check(format!(
                "`{}`: leads outside the granted path or is not permitted",
                path.escape_debug()
            )),
            _ => CapError::Failed(format!("`{}`: {e}", path.escape_debug())).into(),
        }
    }
}

/// `path` below `root` (which contains it, both normal), `.` for the root itself: a slice of
/// `path` when it is borrowed.
fn relative<'p>(path: Cow<'p, Path>, root: &Path) -> Cow<'p, Path> {
    #[cfg(unix)]
    if let Cow::Borrowed(p) = path {
        use std::os::unix::ffi::OsStrExt;
        let rest = p
            .as_os_str()
            .as_bytes()
            .strip_prefix(root.as_os_str().as_bytes())
            .map(|r| r.strip_prefix(b"/").unwrap_or(r));
        return match rest {
            Some(r) if !r.is_empty() => Cow::Borrowed(Path::new(std::ffi::OsStr::from_bytes(r))),
            _ => Cow::Borrowed(Path::new(".")),
        };
    }
    match path.strip_prefix(root) {
        Ok(r) if !r.as_os_str().is_empty() => Cow::Owned(r.to_path_buf()),
        _ => Cow::Borrowed(Path::new(".")),
    }
}

fn metadata_of(m: &cap_std::fs::Metadata) -> Metadata {
    let ft = m.file_type();
    let kind = if ft.is_symlink() {
        EntryKind::Symlink
    } else if ft.is_dir() {
        EntryKind::Directory
    } else if ft.is_file() {
        EntryKind::File
    } else {
        EntryKind::Other
    };
    let modified_secs = m.modified().ok().and_then(|t| {
        let t = t.into_std();
        match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).ok(),
            Err(before) => i64::try_from(before.duration().as_secs()).ok().map(|s| -s),
        }
    });
    Metadata {
        kind,
        size: m.len(),
        modified_secs,
        readonly: m.permissions().readonly(),
    }
}

impl FsHost for HostState {
    fn read(&mut self, path: String) -> Result<Vec<u8>, CapFailure> {
        let cx = &mut self.cx;
        let r = cx.resolve(&path, false, "read")?;
        let cap = cx.grant.limits.fs_file_bytes;
        let file = r.dir.open(&r.rel).map_err(|e| cx.io_error(&path, e))?;
        let len = file.metadata().map_err(|e| cx.io_error(&path, e))?.len();
        if len > cap {
            return Err(CapError::LimitExceeded(format!(
                "file is {len} bytes, the read limit is {cap}"
            ))
            .into());
        }
        let mut buf = Vec::with_capacity(len as usize);
        file.take(cap + 1)
            .read_to_end(&mut buf)
            .map_err(|e| cx.io_error(&path, e))?;
        if buf.len() as u64 > cap {
            return Err(CapError::LimitExceeded(format!(
                "file grew past the read limit of {cap} bytes"
            ))
            .into());
        }
        Ok(buf)
    }

    fn list_dir(&mut self, path: String) -> Result<Vec<DirEntry>, CapFailure> {
        let cx = &mut self.cx;
        let r = cx.resolve(&path, false, "list-dir")?;
        let max = cx.grant.limits.fs_list_entries;
        let mut out = Vec::new();
        for entry in r.dir.read_dir(&r.rel).map_err(|e| cx.io_error(&path, e))? {
            let entry = entry.map_err(|e| cx.io_error(&path, e))?;
            if out.len() >= max {
                return Err(CapError::LimitExceeded(format!(
                    "directory has more than {max} entries"
                ))
                .into());
            }
            // An entry removed while listing is skipped rather than failing the whole listing.
            let Ok(m) = entry.metadata() else { continue };
            out.push(DirEntry {
                name: entry.file_name().to_string_lossy().into_owned(),
                metadata: metadata_of(&m),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn stat(&mut self, path: String) -> Result<Metadata, CapFailure> {
        let cx = &mut self.cx;
        let r = cx.resolve(&path, false, "stat")?;
        let m = r
            .dir
            .symlink_metadata(&r.rel)
            .map_err(|e| cx.io_error(&path, e))?;
        Ok(metadata_of(&m))
    }
}

impl FsWriteHost for HostState {
    fn write(&mut self, path: String, contents: Vec<u8>) -> Result<(), CapFailure> {
        let cx = &mut self.cx;
        let cap = cx.grant.limits.fs_file_bytes;
        if contents.len() as u64 > cap {
            return Err(CapError::LimitExceeded(format!(
                "write of {} bytes exceeds {cap}",
                contents.len()
            ))
            .into());
        }
        let r = cx.resolve(&path, true, "write")?;
        r.dir
            .write(&r.rel, contents)
            .map_err(|e| cx.io_error(&path, e))
    }

    fn remove_file(&mut self, path: String) -> Result<(), CapFailure> {
        let cx = &mut self.cx;
        let r = cx.resolve(&path, true, "remove-file")?;
        r.dir.remove_file(&r.rel).map_err(|e| cx.io_error(&path, e))
    }

    fn remove_dir(&mut self, path: String) -> Result<(), CapFailure> {
        let cx = &mut self.cx;
        let r = cx.resolve(&path, true, "remove-dir")?;
        if r.rel == Path::new(".") {
            return Err(cx.deny_after_check(format!(
                "`{}`: the granted directory itself cannot be removed",
                path.escape_debug()
            )));
        }
        r.dir.remove_dir(&r.rel).map_err(|e| cx.io_error(&path, e))
    }
}
