//! The fleet's keys on disk: `<data-dir>/fleet-secrets.json`, mode 0600, written atomically.
//! Anyone holding it can mint any credential of the fleet, so it is never logged and never
//! leaves the controller; the servers need only the public side (`nats-operator.conf`).

use std::io::Write;
use std::path::{Path, PathBuf};

use warden_fleet_identity::{FleetAuthority, FleetSecrets, TenantId};

pub const SECRETS_FILE: &str = "fleet-secrets.json";
/// The nats-server config fragment the controller writes for the servers to include.
pub const NATS_CONFIG_FILE: &str = "nats-operator.conf";

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not the fleet's secrets: {message}")]
    Unreadable { path: PathBuf, message: String },
    #[error(transparent)]
    Authority(#[from] warden_fleet_identity::AuthorityError),
}

/// Load the authority from `data_dir`, or make one; add the `tenants` it lacks. Returns the
/// authority and whether anything changed (then the servers need the new accounts).
pub fn load_or_create(
    data_dir: &Path,
    tenants: &[TenantId],
) -> Result<(FleetAuthority, bool), KeysError> {
    let path = data_dir.join(SECRETS_FILE);
    let (mut authority, mut changed) = match std::fs::read_to_string(&path) {
        Ok(text) => {
            let secrets: FleetSecrets =
                serde_json::from_str(&text).map_err(|e| KeysError::Unreadable {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            (FleetAuthority::from_secrets(&secrets)?, false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (FleetAuthority::generate(), true),
        Err(source) => return Err(KeysError::Io { path, source }),
    };
    for t in tenants {
        if !authority.has_tenant(t) {
            authority.add_tenant(t)?;
            changed = true;
        }
    }
    if changed {
        save(data_dir, &authority)?;
    }
    Ok((authority, changed))
}

pub fn save(data_dir: &Path, authority: &FleetAuthority) -> Result<(), KeysError> {
    let path = data_dir.join(SECRETS_FILE);
    let json =
        serde_json::to_vec_pretty(&authority.secrets()?).map_err(|e| KeysError::Unreadable {
            path: path.clone(),
            message: e.to_string(),
        })?;
    write_private(&path, &json)
}

/// Write `bytes` to `path` atomically (temp file + rename), readable by the owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeysError> {
    let io = |source| KeysError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut tmp = tempfile_in(dir).map_err(io)?;
    tmp.1.write_all(bytes).map_err(io)?;
    tmp.1.sync_all().map_err(io)?;
    std::fs::rename(&tmp.0, path).map_err(io)?;
    Ok(())
}

fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    let name: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.join(format!(".tmp-{name}"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(&path)?;
    Ok((path, file))
}
