//! Where runbooks come from: a TOML file, or a signed runbook bundle checked against the site's
//! trust policy before a byte of it is parsed. The CLI and the agent's API share this path, so a
//! runbook is accepted by the same rules wherever it arrives.

use super::{MAX_RUNBOOK_BYTES, Runbook, RunbookError};
use std::path::Path;
use warden_bundle::{Bundle, BundleError, trust};
use warden_core::policy::SitePolicy;

/// A parsed runbook and who signed it (`None` for a plain TOML file).
#[derive(Debug, Clone)]
pub struct LoadedRunbook {
    pub runbook: Runbook,
    pub signers: Option<Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunbookSourceError {
    #[error("cannot read runbook {origin}: {message}")]
    Read { origin: String, message: String },
    #[error("runbook bundle {origin}: {source}")]
    Bundle { origin: String, source: BundleError },
    #[error("signed runbook {origin} refused: {source}")]
    Refused {
        origin: String,
        source: trust::TrustError,
    },
    #[error("runbook {origin} is invalid ({} problem(s)): {}", errors.len(), first_error(errors))]
    Invalid {
        origin: String,
        errors: Vec<RunbookError>,
    },
    #[error("plain runbooks are refused by this agent's policy; send a signed runbook bundle")]
    UnsignedRefused,
}

fn first_error(errors: &[RunbookError]) -> String {
    errors.first().map(|e| e.to_string()).unwrap_or_default()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Parse `bytes` named `origin`: a signed bundle after the trust check, else TOML text (unless
/// `signed_only`).
pub fn load_bytes(
    bytes: &[u8],
    origin: &str,
    policy: &SitePolicy,
    signed_only: bool,
) -> Result<LoadedRunbook, RunbookSourceError> {
    if Bundle::looks_like_bundle(bytes) {
        let bundle = Bundle::parse(bytes).map_err(|source| RunbookSourceError::Bundle {
            origin: origin.to_string(),
            source,
        })?;
        let (text, signers) =
            trust::evaluate_runbook(&bundle, policy, now_secs()).map_err(|source| {
                RunbookSourceError::Refused {
                    origin: origin.to_string(),
                    source,
                }
            })?;
        let runbook = Runbook::parse(&text, &format!("{origin} (signed)")).map_err(|errors| {
            RunbookSourceError::Invalid {
                origin: origin.to_string(),
                errors,
            }
        })?;
        return Ok(LoadedRunbook {
            runbook,
            signers: Some(signers),
        });
    }
    if signed_only {
        return Err(RunbookSourceError::UnsignedRefused);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| RunbookSourceError::Read {
        origin: origin.to_string(),
        message: "not UTF-8 text".into(),
    })?;
    let runbook = Runbook::parse(text, origin).map_err(|errors| RunbookSourceError::Invalid {
        origin: origin.to_string(),
        errors,
    })?;
    Ok(LoadedRunbook {
        runbook,
        signers: None,
    })
}

/// Read (capped) and load a runbook file or signed runbook bundle.
pub fn load_file(
    path: &Path,
    policy: &SitePolicy,
    signed_only: bool,
) -> Result<LoadedRunbook, RunbookSourceError> {
    let origin = path.display().to_string();
    // A bundle carries the runbook plus signatures and a header: allow it the bundle cap.
    let cap = policy
        .limits
        .max_bundle_bytes
        .max(MAX_RUNBOOK_BYTES as u64 + 1);
    let bytes =
        warden_core::fsutil::read_capped(path, cap).map_err(|e| RunbookSourceError::Read {
            origin: origin.clone(),
            message: e.to_string(),
        })?;
    load_bytes(&bytes, &origin, policy, signed_only)
}
