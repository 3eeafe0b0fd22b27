//! Signed bundles: one file holding a signed statement (which carries the plugin manifest, the
//! component's sha256 and length, and an expiry), one or more ed25519 signatures over it, and the
//! component. The agent trusts publisher keys, not the server that hands it a bundle.
//!
//! Layout: `MAGIC`, a u32 (little-endian) header length, the header (JSON), the component bytes.
//! Signatures cover `SIGNING_CONTEXT` followed by the statement's exact bytes, so there is no
//! re-serialisation ambiguity: what is verified is what is parsed.

pub mod high_water;
pub mod policy;
pub mod trust;

pub use warden_core::keys;

use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::{Path, PathBuf};
use warden_core::manifest::Manifest;
use warden_core::sha256_hex;

/// First bytes of every bundle (format version 1).
pub const MAGIC: &[u8; 16] = b"WARDEN-BUNDLE-1\n";
/// Domain separation: a signature over a statement can never be replayed as another signature.
pub const SIGNING_CONTEXT: &[u8] = b"warden.bundle.statement.v1\0";
/// The statement's `format` value.
pub const STATEMENT_FORMAT: &str = "warden.statement.v1";
/// Largest header (statement + signatures).
pub const MAX_HEADER_BYTES: u32 = 1 << 20;

/// What the publisher vouches for. For a runbook (`kind = "runbook"`) the payload is the runbook's
/// text, `manifest` is empty and `version` is `0.0.0`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Statement {
    pub format: String,
    /// `plugin` (runbooks will be signed the same way, with kind `runbook`).
    pub kind: String,
    pub name: String,
    pub version: String,
    /// The exact `plugin.toml` text.
    pub manifest: String,
    pub component_sha256: String,
    pub component_length: u64,
    /// Seconds since the Unix epoch.
    pub signed_at: u64,
    pub expires_at: u64,
}

/// One signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BundleSignature {
    /// Hex ed25519 public key of the signer.
    pub public_key: String,
    /// Hex ed25519 signature over `SIGNING_CONTEXT || statement`.
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    /// The statement's JSON text, kept as the exact bytes that were signed.
    statement: String,
    signatures: Vec<BundleSignature>,
}

/// A bundle read from disk: parsed but not yet trusted.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub statement_text: String,
    pub statement: Statement,
    pub signatures: Vec<BundleSignature>,
    pub component: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bundle is {size} bytes, larger than the site's limit of {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
    #[error("not a Warden bundle: {0}")]
    Malformed(String),
    #[error(transparent)]
    Key(#[from] keys::KeyError),
    #[error("the plugin directory is invalid: {0}")]
    Plugin(String),
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Bundle {
    /// Read a bundle, refusing one larger than `limit` before reading it whole.
    pub fn read(path: &Path, limit: u64) -> Result<Bundle, BundleError> {
        let io = |source| BundleError::Io {
            path: path.into(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        if size > limit {
            return Err(BundleError::TooLarge { size, limit });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        file.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
        if bytes.len() as u64 > limit {
            return Err(BundleError::TooLarge {
                size: bytes.len() as u64,
                limit,
            });
        }
        Bundle::parse(&bytes)
    }

    pub fn parse(bytes: &[u8]) -> Result<Bundle, BundleError> {
        let malformed = |m: &str| BundleError::Malformed(m.to_string());
        let rest = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or_else(|| malformed("missing bundle header"))?;
        let (len, rest) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| malformed("truncated header length"))?;
        let len = u32::from_le_bytes(*len);
        if len > MAX_HEADER_BYTES {
            return Err(malformed("header larger than 1 MiB"));
        }
        let (header, component) = rest
            .split_at_checked(len as usize)
            .ok_or_else(|| malformed("truncated header"))?;
        let header: Header = serde_json::from_slice(header)
            .map_err(|e| BundleError::Malformed(format!("header: {e}")))?;
        let statement: Statement = serde_json::from_str(&header.statement)
            .map_err(|e| BundleError::Malformed(format!("statement: {e}")))?;
        Ok(Bundle {
            statement_text: header.statement,
            statement,
            signatures: header.signatures,
            component: component.to_vec(),
        })
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, BundleError> {
        let header = Header {
            statement: self.statement_text.clone(),
            signatures: self.signatures.clone(),
        };
        let header =
            serde_json::to_vec(&header).map_err(|e| BundleError::Malformed(e.to_string()))?;
        let len = u32::try_from(header.len())
            .map_err(|_| BundleError::Malformed("header too large".into()))?;
        let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len() + self.component.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&self.component);
        Ok(out)
    }

    /// The message a signature covers.
    pub fn signed_message(statement_text: &str) -> Vec<u8> {
        [SIGNING_CONTEXT, statement_text.as_bytes()].concat()
    }

    /// Build an unsigned bundle from a plugin directory (`plugin.toml` + component).
    pub fn from_plugin_dir(dir: &Path, valid_days: u64) -> Result<Bundle, BundleError> {
        let manifest_path = dir.join("plugin.toml");
        let manifest_text =
            std::fs::read_to_string(&manifest_path).map_err(|source| BundleError::Io {
                path: manifest_path.clone(),
                source,
            })?;
        let manifest = Manifest::parse(&manifest_text)
            .map_err(|e| BundleError::Plugin(format!("{}: {e}", manifest_path.display())))?;
        let component_path = dir.join(&manifest.component);
        let component = std::fs::read(&component_path).map_err(|source| BundleError::Io {
            path: component_path,
            source,
        })?;
        Bundle::unsigned(
            "plugin",
            &manifest.name,
            &manifest.version.to_string(),
            manifest_text,
            component,
            valid_days,
        )
    }

    /// Build an unsigned runbook bundle: the statement names the runbook, the payload is its text.
    pub fn from_runbook(name: &str, text: &str, valid_days: u64) -> Result<Bundle, BundleError> {
        Bundle::unsigned(
            "runbook",
            name,
            "0.0.0",
            String::new(),
            text.as_bytes().to_vec(),
            valid_days,
        )
    }

    /// A bundle with a fresh statement over `payload` and no signatures yet.
    fn unsigned(
        kind: &str,
        name: &str,
        version: &str,
        manifest: String,
        payload: Vec<u8>,
        valid_days: u64,
    ) -> Result<Bundle, BundleError> {
        let signed_at = now_secs();
        let statement = Statement {
            format: STATEMENT_FORMAT.into(),
            kind: kind.into(),
            name: name.to_string(),
            version: version.to_string(),
            manifest,
            component_sha256: sha256_hex(&payload),
            component_length: payload.len() as u64,
            signed_at,
            expires_at: signed_at.saturating_add(valid_days.saturating_mul(86_400)),
        };
        let statement_text =
            serde_json::to_string(&statement).map_err(|e| BundleError::Malformed(e.to_string()))?;
        Ok(Bundle {
            statement_text,
            statement,
            signatures: vec![],
            component: payload,
        })
    }

    /// Whether `bytes` start like a bundle.
    pub fn looks_like_bundle(bytes: &[u8]) -> bool {
        bytes.starts_with(MAGIC)
    }

    /// Add `key`'s signature over the statement.
    pub fn sign(&mut self, key: &SigningKey) {
        let signature = key.sign(&Bundle::signed_message(&self.statement_text));
        self.signatures.push(BundleSignature {
            public_key: hex::encode(key.verifying_key().as_bytes()),
            signature: hex::encode(signature.to_bytes()),
        });
    }
}
