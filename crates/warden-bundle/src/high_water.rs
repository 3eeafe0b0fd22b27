//! Rollback protection: the highest version ever installed under each plugin name. It is kept
//! apart from the plugin records, so it survives removal of the plugin and restarts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum HighWaterError {
    #[error("high-water marks {path}: {message}")]
    State { path: PathBuf, message: String },
}

/// `<data-dir>/state/high-water.json`.
pub struct HighWaterMarks {
    path: PathBuf,
    lock: Mutex<()>,
}

impl HighWaterMarks {
    pub fn new(data_dir: &Path) -> HighWaterMarks {
        HighWaterMarks {
            path: data_dir.join("state").join("high-water.json"),
            lock: Mutex::new(()),
        }
    }

    fn err(&self, message: impl ToString) -> HighWaterError {
        HighWaterError::State {
            path: self.path.clone(),
            message: message.to_string(),
        }
    }

    fn load(&self) -> Result<BTreeMap<String, semver::Version>, HighWaterError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| self.err(format!("corrupt: {e}")))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(self.err(e)),
        }
    }

    /// The highest version ever installed under `name`.
    pub fn get(&self, name: &str) -> Result<Option<semver::Version>, HighWaterError> {
        Ok(self.load()?.remove(name))
    }

    /// Raise the mark for `name` to `version` (never lowers it).
    pub fn raise(&self, name: &str, version: &semver::Version) -> Result<(), HighWaterError> {
        let _guard = self.lock.lock().map_err(|_| self.err("lock poisoned"))?;
        let mut marks = self.load()?;
        if marks.get(name).is_some_and(|v| v >= version) {
            return Ok(());
        }
        marks.insert(name.to_string(), version.clone());
        let bytes = serde_json::to_vec_pretty(&marks).map_err(|e| self.err(e))?;
        warden_core::fsutil::write_atomic(&self.path, &bytes).map_err(|e| self.err(e))
    }
}
