//! `warden:plugin/fs` and `warden:plugin/fs-write`: file access under granted paths only.
//! The path is normalised and checked against the grant (lexically), then opened through a
//! cap-std directory handle rooted at the granted path, so symlinks cannot lead out of it either.
//!
//! What a directory handle cannot see is checked on the file itself: `read` and `write` use
//! regular files only (a FIFO blocks `open` forever, past any deadline; opening a device can act),
//! opened without blocking and checked again on the opened handle; and no file with a second hard
//! link, which may be a name for a file outside the grant. A write replaces the file: the new
//! contents go to a temporary file in the same directory, renamed over the target.

use super::{CapFailure, HostState, RunContext};
use crate::bindings::CapError;
use crate::bindings::warden::plugin::fs::{DirEntry, EntryKind, Host as FsHost, Metadata};
use crate::bindings::warden::plugin::fs_write::Host as FsWriteHost;
use cap_std::ambient_authority;
use cap_std::fs::Dir;
use std::borrow::Cow;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use warden_core::grant::{self, Operation, is_within};

/// Longest path a plugin may pass.
pub const MAX_PATH_BYTES: usize = 4096;

/// Names tried for a write's temporary file before giving up. A name is taken only if nothing
/// has it (`O_EXCL`), so a collision, or a name planted by someone else, costs one more try.
const TEMP_NAME_ATTEMPTS: u32 = 16;

/// The permission bits a replacement file takes from the file it replaces: read, write and
/// execute for owner, group and others. Set-user-id, set-group-id and sticky bits are left out:
/// new contents do not inherit the privileges granted to the old ones.
#[cfg(unix)]
const PERMISSION_BITS: u32 = 0o777;

/// Why a file call refuses what the path names, although the grant allows the path.
enum NotPlainFile {
    /// Not a regular file: a directory, symlink (for writes), FIFO, socket or device.
    Kind(&'static str),
    /// A regular file with this many hard links. Unix only: std does not expose a Windows file's
    /// link count on stable Rust, so there a hard link out of the grant is not caught (see
    /// docs/SECURITY.md).
    #[cfg_attr(not(unix), allow(dead_code))]
    Links(u64),
}

/// Whether `m` is a regular file with a single link, the only thing `read` and `write` use.
fn plain_file(m: &cap_std::fs::Metadata) -> Result<(), NotPlainFile> {
    let ft = m.file_type();
    if !ft.is_file() {
        return Err(NotPlainFile::Kind(kind_name(&ft)));
    }
    #[cfg(unix)]
    {
        use cap_std::fs::MetadataExt;
        if m.nlink() > 1 {
            return Err(NotPlainFile::Links(m.nlink()));
        }
    }
    Ok(())
}

fn kind_name(ft: &cap_std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use cap_std::fs::FileTypeExt;
        if ft.is_fifo() {
            return "a FIFO";
        }
        if ft.is_socket() {
            return "a socket";
        }
        if ft.is_char_device() {
            return "a character device";
        }
        if ft.is_block_device() {
            return "a block device";
        }
    }
    if ft.is_dir() {
        "a directory"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// Options for opening a file a plugin named: never blocking in `open` (a FIFO without a writer
/// blocks it forever, where no deadline can reach) and never making a terminal the runner's
/// controlling terminal. Neither flag changes reading a regular file.
fn nonblocking(options: &mut cap_std::fs::OpenOptions) -> &mut cap_std::fs::OpenOptions {
    #[cfg(unix)]
    {
        use cap_std::fs::OpenOptionsExt;
        use rustix::fs::OFlags;
        options.custom_flags((OFlags::NONBLOCK | OFlags::NOCTTY).bits() as i32);
    }
    options
}

/// Write `contents` to `rel` in `dir` by replacing it: a temporary file in the same directory,
/// with the mode and owner of the file it replaces (`existing`), synced, then renamed over
/// `rel`. The rename is atomic (a reader sees the old or the new file, never part of one) and
/// replaces the name, not the file: whatever other names the old file had keep the old data.
fn replace_file(
    dir: &Dir,
    rel: &Path,
    contents: &[u8],
    existing: Option<&cap_std::fs::Metadata>,
) -> std::io::Result<()> {
    use std::io::Write;
    let parent = rel
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let (tmp, mut file) = create_temp(dir, parent, existing)?;
    let written = (|| {
        #[cfg(unix)]
        if let Some(m) = existing {
            keep_owner_and_mode(&file, m)?;
        }
        file.write_all(contents)?;
        file.sync_data()?;
        drop(file);
        dir.rename(&tmp, dir, rel)
    })();
    if written.is_err() {
        // Best effort: the temporary name is ours, and nothing else refers to it.
        let _ = dir.remove_file(&tmp);
    }
    written
}

/// A new, empty file under a fresh name in `parent`, created only if nothing has that name.
fn create_temp(
    dir: &Dir,
    parent: &Path,
    existing: Option<&cap_std::fs::Metadata>,
) -> std::io::Result<(PathBuf, cap_std::fs::File)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut options = cap_std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if let Some(m) = existing {
        // Created no more open than the file it replaces (the umask may narrow it further;
        // `keep_owner_and_mode` sets it exactly).
        use cap_std::fs::{MetadataExt, OpenOptionsExt};
        options.mode(m.mode() & PERMISSION_BITS);
    }
    #[cfg(not(unix))]
    let _ = existing;
    let mut last = None;
    for _ in 0..TEMP_NAME_ATTEMPTS {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let name = parent.join(format!(
            ".warden-write-{}-{n}-{nanos:08x}",
            std::process::id()
        ));
        match dir.open_with(&name, &options) {
            Ok(file) => return Ok((name, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no temporary file name was free")))
}

/// Give the replacement the permission bits ([`PERMISSION_BITS`]) and owner of the file it
/// replaces, so a rewrite does not make a private file readable or hand it to the runner's user.
/// An owner that cannot be kept fails the write.
#[cfg(unix)]
fn keep_owner_and_mode(
    file: &cap_std::fs::File,
    old: &cap_std::fs::Metadata,
) -> std::io::Result<()> {
    use cap_std::fs::MetadataExt;
    use rustix::fs::{Gid, Mode, Uid, fchmod, fchown};
    let new = file.metadata()?;
    if (new.uid(), new.gid()) != (old.uid(), old.gid()) {
        fchown(
            file,
            Some(Uid::from_raw(old.uid())),
            Some(Gid::from_raw(old.gid())),
        )
        .map_err(|e| {
            std::io::Error::other(format!(
                "cannot keep the file's owner {}:{}: {e}",
                old.uid(),
                old.gid()
            ))
        })?;
    }
    fchmod(file, Mode::from_raw_mode(old.mode() & PERMISSION_BITS))?;
    Ok(())
}

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
            self.record(capability, function, path, &[], Some(why.clone()))?;
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
        if let Err(stop) = self.deny_last(&why) {
            return stop;
        }
        CapError::Denied(why).into()
    }

    /// The grant allowed the path but it names something `read` and `write` do not use: recorded
    /// as refused, with the reason.
    fn refuse_file(&mut self, path: &str, why: NotPlainFile) -> CapFailure {
        let path = path.escape_debug();
        let (message, denied) = match why {
            NotPlainFile::Kind(kind) => (format!("`{path}` is {kind}, not a regular file"), false),
            NotPlainFile::Links(n) => (
                format!(
                    "`{path}` has {n} hard links; another link may name a file outside the grant, so files with more than one are neither read nor written"
                ),
                true,
            ),
        };
        if let Err(stop) = self.deny_last(&message) {
            return stop;
        }
        if denied {
            CapError::Denied(message).into()
        } else {
            CapError::Invalid(message).into()
        }
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
        // Checked before opening, since opening a device or a FIFO can act or block...
        let named = r.dir.metadata(&r.rel).map_err(|e| cx.io_error(&path, e))?;
        if let Err(why) = plain_file(&named) {
            return Err(cx.refuse_file(&path, why));
        }
        let file = r
            .dir
            .open_with(
                &r.rel,
                nonblocking(cap_std::fs::OpenOptions::new().read(true)),
            )
            .map_err(|e| cx.io_error(&path, e))?;
        // ...and again on the handle, which is what is read: the name may have changed since.
        let opened = file.metadata().map_err(|e| cx.io_error(&path, e))?;
        if let Err(why) = plain_file(&opened) {
            return Err(cx.refuse_file(&path, why));
        }
        let len = opened.len();
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
        // The name itself, not what a symlink points to: the rename replaces the name.
        let existing = match r.dir.symlink_metadata(&r.rel) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(cx.io_error(&path, e)),
        };
        if let Some(Err(why)) = existing.as_ref().map(plain_file) {
            return Err(cx.refuse_file(&path, why));
        }
        replace_file(&r.dir, &r.rel, &contents, existing.as_ref())
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
