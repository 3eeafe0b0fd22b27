//! The content-addressed plugin store under the data dir. Components live once per sha256 in
//! `store/sha256/`; `plugins/<name>.json` says which one a name points to. Every write is a
//! temp-file + fsync + rename, so a crash mid-install leaves the previous state intact.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use warden_core::fsutil::{CappedReadError, read_capped, write_atomic};
use warden_core::manifest::Manifest;
use warden_core::names::validate_plugin_name;

pub use warden_core::limits::MAX_COMPONENT_BYTES;

/// An installed plugin: its manifest and the component it points to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct InstalledPlugin {
    pub manifest: Manifest,
    /// Hex sha256 of the component bytes.
    pub sha256: String,
    pub size_bytes: u64,
    /// Seconds since the Unix epoch.
    pub installed_at: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("component {path} is larger than {MAX_COMPONENT_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("store record {path} is corrupt: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("component {sha256} in the store does not match its hash: the store was tampered with")]
    HashMismatch { sha256: String },
    #[error("{0}")]
    InvalidName(String),
}

impl InstalledPlugin {
    /// Which plugin a run report is about.
    pub fn plugin_ref(&self) -> warden_core::report::PluginRef {
        warden_core::report::PluginRef {
            name: self.manifest.name.clone(),
            version: self.manifest.version.to_string(),
            sha256: self.sha256.clone(),
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub use warden_core::sha256_hex;

/// Read a component file, refusing one over [`MAX_COMPONENT_BYTES`] before reading it whole.
fn read_component_file(path: &Path) -> Result<Vec<u8>, StoreError> {
    read_capped(path, MAX_COMPONENT_BYTES).map_err(|e| match e {
        CappedReadError::TooLarge => StoreError::TooLarge {
            path: path.to_path_buf(),
        },
        CappedReadError::Io(source) => StoreError::Io {
            path: path.to_path_buf(),
            source,
        },
    })
}

/// The store rooted at a data dir.
#[derive(Debug, Clone)]
pub struct PluginStore {
    data_dir: PathBuf,
}

impl PluginStore {
    pub fn open(data_dir: &Path) -> Result<PluginStore, StoreError> {
        let store = PluginStore {
            data_dir: data_dir.to_path_buf(),
        };
        for dir in [store.blobs_dir(), store.index_dir()] {
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        Ok(store)
    }

    /// The store of `data_dir` as it is, creating nothing: for read-only commands, to which a
    /// data dir that does not exist yet holds no plugins.
    pub fn existing(data_dir: &Path) -> PluginStore {
        PluginStore {
            data_dir: data_dir.to_path_buf(),
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    fn blobs_dir(&self) -> PathBuf {
        self.data_dir.join("store").join("sha256")
    }

    fn index_dir(&self) -> PathBuf {
        self.data_dir.join("plugins")
    }

    fn record_path(&self, name: &str) -> Result<PathBuf, StoreError> {
        validate_plugin_name(name).map_err(StoreError::InvalidName)?;
        Ok(self.index_dir().join(format!("{name}.json")))
    }

    /// The file holding `name`'s record (`plugins/<name>.json`).
    pub fn record_file(&self, name: &str) -> Result<PathBuf, StoreError> {
        self.record_path(name)
    }

    /// Where the component with this hash lives.
    pub fn component_path(&self, sha256: &str) -> PathBuf {
        self.blobs_dir().join(format!("{sha256}.wasm"))
    }

    /// Read a plugin directory: its manifest and component bytes (size-capped before reading).
    pub fn read_plugin_dir(
        dir: &Path,
    ) -> Result<(Manifest, Vec<u8>), crate::install::InstallError> {
        let manifest = Manifest::load(&dir.join("plugin.toml"))?;
        let bytes = read_component_file(&dir.join(&manifest.component))?;
        Ok((manifest, bytes))
    }

    /// Store `bytes` under their hash and point `manifest.name` at them, atomically.
    pub fn put(&self, manifest: &Manifest, bytes: &[u8]) -> Result<InstalledPlugin, StoreError> {
        let sha256 = sha256_hex(bytes);
        let blob = self.component_path(&sha256);
        if !blob.exists() {
            write_atomic(&blob, bytes).map_err(io(&blob))?;
        }
        let record = InstalledPlugin {
            manifest: manifest.clone(),
            sha256,
            size_bytes: bytes.len() as u64,
            installed_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        };
        let path = self.record_path(&manifest.name)?;
        let json = serde_json::to_vec_pretty(&record).map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        write_atomic(&path, &json).map_err(io(&path))?;
        Ok(record)
    }

    pub fn get(&self, name: &str) -> Result<Option<InstalledPlugin>, StoreError> {
        let path = self.record_path(name)?;
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt {
                        path,
                        message: e.to_string(),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    pub fn list(&self) -> Result<Vec<InstalledPlugin>, StoreError> {
        let dir = self.index_dir();
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io(&dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io(&dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // Temp files of an interrupted install are not records.
            if let Some(stem) = name.strip_suffix(".json")
                && let Some(p) = self.get(stem)?
            {
                out.push(p);
            }
        }
        out.sort_by(|a, b| a.manifest.name.cmp(&b.manifest.name));
        Ok(out)
    }

    /// Remove a name. Its component stays until no record points to it.
    pub fn remove(&self, name: &str) -> Result<Option<InstalledPlugin>, StoreError> {
        let Some(record) = self.get(name)? else {
            return Ok(None);
        };
        let path = self.record_path(name)?;
        std::fs::remove_file(&path).map_err(io(&path))?;
        warden_core::fsutil::sync_dir(&self.index_dir()).map_err(io(&path))?;
        self.drop_if_unreferenced(&record.sha256)?;
        Ok(Some(record))
    }

    /// Delete a component no record points to any more. Runs already using it keep their
    /// compiled copy in memory, so they finish on the version they started with.
    pub fn drop_if_unreferenced(&self, sha256: &str) -> Result<(), StoreError> {
        if !self.list()?.iter().any(|p| p.sha256 == sha256) {
            let blob = self.component_path(sha256);
            match std::fs::remove_file(&blob) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(StoreError::Io { path: blob, source }),
            }
        }
        Ok(())
    }

    /// The component bytes, verified against their hash.
    pub fn read_component(&self, sha256: &str) -> Result<Vec<u8>, StoreError> {
        let bytes = read_component_file(&self.component_path(sha256))?;
        if sha256_hex(&bytes) != sha256 {
            return Err(StoreError::HashMismatch {
                sha256: sha256.to_string(),
            });
        }
        Ok(bytes)
    }
}
