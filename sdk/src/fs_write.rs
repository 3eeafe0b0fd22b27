//! Change files under the paths granted for writing (WIT `fs-write`). Only remediation plugins
//! may use it, and only from `apply`, never from `plan`: any other plugin that calls it still
//! compiles, but its component imports `fs-write`, which the runner refuses to load.

use crate::__private::bindings::warden::plugin::fs_write as wit;
use crate::CapError;

/// Create or replace a file with `contents`.
pub fn write(path: &str, contents: impl AsRef<[u8]>) -> Result<(), CapError> {
    Ok(wit::write(path, contents.as_ref())?)
}

/// Delete a file or a symlink (never what it points to).
pub fn remove_file(path: &str) -> Result<(), CapError> {
    Ok(wit::remove_file(path)?)
}

/// Delete an empty directory.
pub fn remove_dir(path: &str) -> Result<(), CapError> {
    Ok(wit::remove_dir(path)?)
}
