//! Which nats-server binary the tests run, and whether it is new enough.
//!
//! `WARDEN_NATS_SERVER` names one explicitly; otherwise it is the pinned release `cargo xtask
//! nats` installs under the workspace's `target/tools/`. A server on `PATH` is never picked up:
//! Debian's is 2.9.10, too old, and a test run should not depend on what happens to be installed.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

/// The release `cargo xtask nats` installs (`xtask/src/nats.rs` says why this one; a test keeps
/// the two equal).
pub const PINNED_VERSION: &str = "2.12.8";

/// The oldest server the fleet layer supports. On 2.9, async-nats 0.51 cannot create a KV bucket
/// nor read account info (the replies lack fields it requires), and options 2.10 added (several
/// filter subjects on one consumer, S2 compression) are silently dropped.
pub const MIN_VERSION: Version = Version {
    major: 2,
    minor: 10,
    patch: 0,
};

/// The environment variable naming a nats-server binary to use instead of the pinned one.
pub const ENV_VAR: &str = "WARDEN_NATS_SERVER";

/// A nats-server release number, as `nats-server --version` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    /// Parse `nats-server: v2.12.8` (the whole `--version` line) or `2.12.8`. A pre-release
    /// suffix (`2.12.0-RC.1`) is ignored.
    pub fn parse(text: &str) -> Option<Version> {
        let text = text.trim();
        let text = text.strip_prefix("nats-server: ").unwrap_or(text);
        let text = text.strip_prefix('v').unwrap_or(text);
        let core = text.split(['-', '+']).next()?;
        let mut parts = core.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = parts.next()?.parse().ok()?;
        if parts.next().is_some() {
            return None;
        }
        Some(Version {
            major,
            minor,
            patch,
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A nats-server binary whose version was asked and found supported.
#[derive(Debug, Clone)]
pub struct NatsBinary {
    pub path: PathBuf,
    pub version: Version,
}

impl NatsBinary {
    /// The binary named by `WARDEN_NATS_SERVER`, or else the pinned install; its version
    /// checked (the pinned install must be exactly [`PINNED_VERSION`]).
    pub fn find() -> Result<NatsBinary, Error> {
        if let Some(path) = std::env::var_os(ENV_VAR).filter(|p| !p.is_empty()) {
            let path = PathBuf::from(path);
            if !path.is_file() {
                return Err(Error::EnvPathMissing { path });
            }
            return NatsBinary::at(&path);
        }
        let path = pinned_path();
        if !path.is_file() {
            return Err(Error::NotInstalled { path });
        }
        let binary = NatsBinary::at(&path)?;
        if binary.version.to_string() != PINNED_VERSION {
            return Err(Error::NotPinned {
                path,
                version: binary.version,
            });
        }
        Ok(binary)
    }

    /// The binary at `path`, refused when older than [`MIN_VERSION`].
    pub fn at(path: &Path) -> Result<NatsBinary, Error> {
        let out = Command::new(path)
            .arg("--version")
            .output()
            .map_err(|source| Error::Probe {
                path: path.to_path_buf(),
                source,
            })?;
        let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let version = Version::parse(&said)
            .filter(|_| out.status.success())
            .ok_or_else(|| Error::UnknownVersion {
                path: path.to_path_buf(),
                said,
            })?;
        if version < MIN_VERSION {
            return Err(Error::TooOld {
                path: path.to_path_buf(),
                version,
            });
        }
        Ok(NatsBinary {
            path: path.to_path_buf(),
            version,
        })
    }
}

/// Where `cargo xtask nats` installs the pinned release: always the workspace's own `target/`
/// (xtask does not follow `CARGO_TARGET_DIR` either).
pub fn pinned_path() -> PathBuf {
    workspace_root()
        .join("target")
        .join("tools")
        .join(format!("nats-server-{PINNED_VERSION}"))
        .join("bin")
        .join("nats-server")
}

/// This crate is `crates/warden-natstest/` of the workspace.
pub(crate) fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(Path::parent)
        .unwrap_or(manifest)
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_from_the_version_line() {
        let v = |major, minor, patch| Version {
            major,
            minor,
            patch,
        };
        assert_eq!(Version::parse("nats-server: v2.12.8\n"), Some(v(2, 12, 8)));
        assert_eq!(Version::parse("nats-server: v2.9.10"), Some(v(2, 9, 10)));
        assert_eq!(Version::parse("2.12.0-RC.1"), Some(v(2, 12, 0)));
        assert_eq!(Version::parse("nats-server: v2.12"), None);
        assert_eq!(Version::parse("hello"), None);
        assert!(v(2, 9, 10) < MIN_VERSION && MIN_VERSION <= v(2, 10, 0));
        assert!(v(2, 10, 25) > v(2, 9, 99));
        assert_eq!(
            Version::parse(PINNED_VERSION).map(|v| v.to_string()),
            Some(PINNED_VERSION.to_string())
        );
    }

    /// `cargo xtask nats` installs what this crate looks for.
    #[test]
    fn the_pin_is_the_one_xtask_installs() {
        let xtask = workspace_root().join("xtask/src/nats.rs");
        let text = std::fs::read_to_string(&xtask).expect("xtask/src/nats.rs");
        assert!(
            text.contains(&format!("pub const VERSION: &str = \"{PINNED_VERSION}\";")),
            "{} does not pin {PINNED_VERSION}",
            xtask.display()
        );
    }
}
