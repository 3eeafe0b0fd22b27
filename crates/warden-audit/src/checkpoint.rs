//! Signed checkpoints: `audit.checkpoint` records that sign, with an ed25519 key kept outside the
//! data directory, the sequence number and hash of the record before them. The hash chain and
//! its anchor (`head.json`) show any edit of the log by someone who does not rewrite both; a
//! checkpoint also shows a rewrite of both (a re-seal) by someone who cannot read the key: every
//! checkpoint after the first rewritten record no longer matches the chain, and forging a new one
//! needs the key. See docs/SECURITY.md for what this does and does not defend.

use super::AuditRecord;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The event name of a checkpoint record.
pub const EVENT: &str = "audit.checkpoint";

/// Domain separation: a checkpoint signature can never be taken for a bundle signature made with
/// the same key, nor the reverse.
const DOMAIN: &str = "warden-audit-checkpoint-v1";

/// Shortest interval between periodic checkpoints: each is an fsync'd record, so a smaller one
/// would mostly fill the log with checkpoints.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Longest interval: the records after the last checkpoint are only as safe as the external head
/// (see docs/SECURITY.md), so that window must stay short.
pub const MAX_INTERVAL: Duration = Duration::from_secs(86_400);

/// How late, in checkpoint intervals after the last checkpoint, a record may be before `verify`
/// calls the checkpoints that should have followed it missing: one interval for the timer, one
/// more for a slow or busy agent.
pub const LATE_INTERVALS: u64 = 2;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint key {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error(
        "checkpoint key {key} is inside the data directory {data_dir}: whoever can rewrite the \
         audit log could then sign it too; keep the key outside (e.g. /etc/warden/)"
    )]
    InsideDataDir { key: PathBuf, data_dir: PathBuf },
    #[error("checkpoint interval {0:?} is outside 1 s..=1 day")]
    Interval(Duration),
}

/// What a checkpoint record's `data` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointData {
    /// The record this checkpoint vouches for: the one right before it.
    pub covers_seq: u64,
    pub covers_hash: String,
    /// When it was signed (the record's own `at_ms`).
    pub signed_at_ms: u64,
    /// The signer's period, so `verify` knows how soon the next checkpoint was due.
    pub interval_secs: u64,
    /// [`warden_core::keys::key_id`] of the signing key.
    pub key_id: String,
    /// ed25519 over [`message`], hex.
    pub signature: String,
}

fn message(covers_seq: u64, covers_hash: &str, signed_at_ms: u64, interval_secs: u64) -> Vec<u8> {
    format!(
        "{DOMAIN}\ncovers_seq={covers_seq}\ncovers_hash={covers_hash}\nsigned_at_ms={signed_at_ms}\ninterval_secs={interval_secs}\n"
    )
    .into_bytes()
}

/// The agent's checkpoint key and period.
pub struct CheckpointSigner {
    key: SigningKey,
    key_id: String,
    interval: Duration,
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointSigner")
            .field("key_id", &self.key_id)
            .field("interval", &self.interval)
            .finish()
    }
}

impl CheckpointSigner {
    /// Load the secret key at `key_path` (a `warden key generate` `.key` file), refusing one
    /// inside `data_dir` (after resolving symlinks) or readable by anyone but its owner.
    pub fn load(
        key_path: &Path,
        data_dir: &Path,
        interval: Duration,
    ) -> Result<CheckpointSigner, CheckpointError> {
        if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) {
            return Err(CheckpointError::Interval(interval));
        }
        let key_error = |message: String| CheckpointError::Key {
            path: key_path.to_path_buf(),
            message,
        };
        let key = key_path
            .canonicalize()
            .map_err(|e| key_error(e.to_string()))?;
        let data = data_dir
            .canonicalize()
            .unwrap_or_else(|_| data_dir.to_path_buf());
        if key.starts_with(&data) {
            return Err(CheckpointError::InsideDataDir {
                key,
                data_dir: data,
            });
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key)
                .map_err(|e| key_error(e.to_string()))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(key_error(format!(
                    "mode {:o} lets others read it; chmod 600 it (a readable key signs forgeries)",
                    mode & 0o777
                )));
            }
        }
        let key = warden_core::keys::load_secret(&key).map_err(|e| key_error(e.to_string()))?;
        Ok(CheckpointSigner::new(key, interval))
    }

    /// A signer for `key` (tests, and [`CheckpointSigner::load`]).
    pub fn new(key: SigningKey, interval: Duration) -> CheckpointSigner {
        let key_id = warden_core::keys::key_id(&key.verifying_key());
        CheckpointSigner {
            key,
            key_id,
            interval,
        }
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The data of a checkpoint record written at `at_ms` right after record `covers_seq`
    /// (whose line hashes to `covers_hash`).
    pub fn sign(&self, covers_seq: u64, covers_hash: &str, at_ms: u64) -> CheckpointData {
        let interval_secs = self.interval.as_secs();
        let signature = self
            .key
            .sign(&message(covers_seq, covers_hash, at_ms, interval_secs));
        CheckpointData {
            covers_seq,
            covers_hash: covers_hash.to_string(),
            signed_at_ms: at_ms,
            interval_secs,
            key_id: self.key_id.clone(),
            signature: hex::encode(signature.to_bytes()),
        }
    }
}

/// Check one `audit.checkpoint` record against `key` and the chain it sits in.
pub fn check(record: &AuditRecord, key: &VerifyingKey) -> Result<CheckpointData, String> {
    let data: CheckpointData = serde_json::from_value(record.data.clone())
        .map_err(|e| format!("checkpoint unreadable: {e}"))?;
    if data.covers_seq + 1 != record.seq || data.covers_hash != record.prev {
        return Err(format!(
            "checkpoint vouches for record {} with another hash than the chain's: the log was \
             rewritten before it",
            data.covers_seq
        ));
    }
    if data.signed_at_ms != record.at_ms {
        return Err("checkpoint's signed time differs from its record's".into());
    }
    let signature = hex::decode(&data.signature)
        .ok()
        .and_then(|b| Signature::from_slice(&b).ok())
        .ok_or("checkpoint signature is not 64 hex-encoded bytes")?;
    key.verify_strict(
        &message(
            data.covers_seq,
            &data.covers_hash,
            data.signed_at_ms,
            data.interval_secs,
        ),
        &signature,
    )
    .map_err(|_| {
        format!(
            "checkpoint signature does not verify with key {} (it names key {}): forged, or \
             signed by another key",
            warden_core::keys::key_id(key),
            data.key_id
        )
    })?;
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_file(dir: &Path) -> PathBuf {
        warden_core::keys::generate(&dir.join("checkpoint"))
            .expect("generate")
            .0
    }

    #[test]
    fn a_key_inside_the_data_dir_or_readable_by_others_is_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        let data = tmp.path().join("data");
        std::fs::create_dir_all(data.join("keys")).expect("dirs");
        let inside = key_file(&data.join("keys"));
        let err = CheckpointSigner::load(&inside, &data, Duration::from_secs(60))
            .expect_err("inside the data dir");
        assert!(
            matches!(err, CheckpointError::InsideDataDir { .. }),
            "{err}"
        );
        // Through a symlink from outside: still inside.
        let link = tmp.path().join("link.key");
        std::os::unix::fs::symlink(&inside, &link).expect("symlink");
        assert!(matches!(
            CheckpointSigner::load(&link, &data, Duration::from_secs(60)),
            Err(CheckpointError::InsideDataDir { .. })
        ));
        let outside = key_file(tmp.path());
        CheckpointSigner::load(&outside, &data, Duration::from_secs(60)).expect("outside");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = CheckpointSigner::load(&outside, &data, Duration::from_secs(60))
            .expect_err("world-readable");
        assert!(err.to_string().contains("lets others read it"), "{err}");
        assert!(matches!(
            CheckpointSigner::load(&outside, &data, Duration::ZERO),
            Err(CheckpointError::Interval(_))
        ));
    }
}
