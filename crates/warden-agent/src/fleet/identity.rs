//! Who the agent is on the fleet: its tenant, its id (its NATS user public key) and its
//! credentials file (the user JWT the controller issued and the agent's own seed). The file is
//! the agent's only secret on the fleet, so it is written with mode 0600 and refused when group
//! or others may read it.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use warden_fleet_identity::{AgentId, AgentKey, Credentials, TenantId};

/// Largest credentials file read: a user JWT and a seed are under 2 KiB.
pub const MAX_CREDS_BYTES: u64 = 16 * 1024;

const SEED_BEGIN: &str = "-----BEGIN USER NKEY SEED-----";
const JWT_BEGIN: &str = "-----BEGIN NATS USER JWT-----";

/// The agent's identity on the fleet. Secret: `Debug` shows the ids only.
#[derive(Clone)]
pub struct FleetIdentity {
    pub tenant: TenantId,
    pub agent: AgentId,
    /// The `.creds` text (JWT and seed).
    pub(crate) creds: String,
}

impl std::fmt::Debug for FleetIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetIdentity")
            .field("tenant", &self.tenant)
            .field("agent", &self.agent)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read the fleet credentials {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error(
        "the fleet credentials {path} may be read by group or others (mode {mode:o}): \
         `chmod 600` it, it holds the agent's key"
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error("the fleet credentials {path} are not a NATS user .creds file: {problem}")]
    Malformed {
        path: PathBuf,
        problem: &'static str,
    },
    #[error("cannot write the fleet credentials {path}: {message}")]
    Write { path: PathBuf, message: String },
}

impl FleetIdentity {
    /// An identity from its parts (the simulated agents of a benchmark build them so).
    pub fn new(tenant: TenantId, key: &AgentKey, creds: &Credentials) -> FleetIdentity {
        FleetIdentity {
            tenant,
            agent: key.id(),
            creds: creds.creds(),
        }
    }

    /// Read `path` (mode checked, at most [`MAX_CREDS_BYTES`]); the agent id is the seed's key.
    pub fn load(path: &Path, tenant: TenantId) -> Result<FleetIdentity, IdentityError> {
        check_private(path)?;
        let bytes = warden_core::fsutil::read_capped(path, MAX_CREDS_BYTES).map_err(|e| {
            IdentityError::Read {
                path: path.into(),
                message: e.to_string(),
            }
        })?;
        let malformed = |problem| IdentityError::Malformed {
            path: path.into(),
            problem,
        };
        let creds = String::from_utf8(bytes).map_err(|_| malformed("not UTF-8 text"))?;
        if !creds.contains(JWT_BEGIN) {
            return Err(malformed("no user JWT"));
        }
        let seed = block_after(&creds, SEED_BEGIN).ok_or_else(|| malformed("no user seed"))?;
        let key =
            AgentKey::from_seed(seed).ok_or_else(|| malformed("the seed is not a user seed"))?;
        Ok(FleetIdentity {
            tenant,
            agent: key.id(),
            creds,
        })
    }
}

/// The user JWT of a `.creds` text.
pub(crate) fn jwt_of(creds: &str) -> Option<&str> {
    block_after(creds, JWT_BEGIN)
}

/// The user seed of a `.creds` text.
pub(crate) fn seed_of(creds: &str) -> Option<&str> {
    block_after(creds, SEED_BEGIN)
}

/// The first non-empty line after `marker`.
fn block_after<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
    let (_, rest) = text.split_once(marker)?;
    rest.lines().map(str::trim).find(|l| !l.is_empty())
}

#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), IdentityError> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(path).map_err(|e| IdentityError::Read {
        path: path.into(),
        message: e.to_string(),
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(IdentityError::Exposed {
            path: path.into(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> Result<(), IdentityError> {
    Ok(())
}

/// Write `creds` to `path` with mode 0600, replacing it atomically (a temporary file in the
/// same directory, synced, renamed), so a crash never leaves half a credential.
pub fn store_credentials(path: &Path, creds: &Credentials) -> Result<(), IdentityError> {
    let write = |message: String| IdentityError::Write {
        path: path.into(),
        message,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile_in(dir).map_err(|e| write(e.to_string()))?;
    tmp.1
        .write_all(creds.creds().as_bytes())
        .and_then(|()| tmp.1.sync_all())
        .map_err(|e| write(e.to_string()))?;
    std::fs::rename(&tmp.0, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp.0);
        write(e.to_string())
    })
}

/// A new file only its owner may read, beside the target.
fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).map_err(|e| std::io::Error::other(e.to_string()))?;
    let path = dir.join(format!(".fleet-creds-{}.tmp", hex::encode(random)));
    let file = options.open(&path)?;
    Ok((path, file))
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_fleet_identity::FleetAuthority;

    fn creds() -> (AgentKey, Credentials) {
        let mut authority = FleetAuthority::generate();
        let acme = TenantId::new("acme").expect("tenant");
        authority.add_tenant(&acme).expect("tenant");
        let key = AgentKey::generate();
        let now = warden_fleet_identity::unix_now();
        let jwt = authority
            .agent_jwt(
                &acme,
                &key.id(),
                "host",
                &warden_fleet_identity::DenyList::new(),
                now,
            )
            .expect("jwt");
        let creds = key.credentials(&jwt).expect("creds");
        (key, creds)
    }

    #[test]
    fn stored_credentials_are_private_and_load_as_the_same_agent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("fleet.creds");
        let (key, creds) = creds();
        store_credentials(&path, &creds).expect("stored");
        let tenant = TenantId::new("acme").expect("tenant");
        let identity = FleetIdentity::load(&path, tenant).expect("loads");
        assert_eq!(identity.agent, key.id());
        assert_eq!(identity.creds, creds.creds());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            let err = FleetIdentity::load(&path, TenantId::new("acme").expect("t"))
                .expect_err("readable by others");
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
    }

    #[test]
    fn a_file_without_a_user_seed_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("fleet.creds");
        let (_, creds) = creds();
        let text = creds
            .creds()
            .replace(SEED_BEGIN, "-----BEGIN SOMETHING-----");
        std::fs::write(&path, text).expect("write");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        let err =
            FleetIdentity::load(&path, TenantId::new("acme").expect("t")).expect_err("no seed");
        assert!(err.to_string().contains("no user seed"), "{err}");
    }
}
