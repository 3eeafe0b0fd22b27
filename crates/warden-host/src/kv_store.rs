//! Each plugin's persistent key-value state: one JSON file per plugin under the data dir, with a
//! byte quota over keys plus values. A run's changes are kept in memory and committed together
//! (the file replaced atomically once) when the run ends: a failed commit fails the run.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// Longest key.
pub const MAX_KEY_BYTES: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("invalid key: {0}")]
    InvalidKey(String),
    #[error("quota of {quota} bytes exceeded (would use {would_use})")]
    Quota { quota: u64, would_use: u64 },
    #[error("kv state: {0}")]
    Io(String),
}

/// A plugin's state file, loaded lazily and kept in memory for the run.
pub struct KvStore {
    path: PathBuf,
    quota: u64,
    entries: Mutex<Option<BTreeMap<String, Vec<u8>>>>,
    /// Changed since loaded: [`KvStore::commit`] has something to write.
    dirty: std::sync::atomic::AtomicBool,
}

fn used(map: &BTreeMap<String, Vec<u8>>) -> u64 {
    map.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum()
}

fn validate_key(key: &str) -> Result<(), KvError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES || key.chars().any(char::is_control) {
        return Err(KvError::InvalidKey(format!(
            "keys have 1 to {MAX_KEY_BYTES} bytes and no control characters: `{}`",
            key.escape_debug()
        )));
    }
    Ok(())
}

impl KvStore {
    pub fn new(path: PathBuf, quota: u64) -> KvStore {
        KvStore {
            path,
            quota,
            entries: Mutex::new(None),
            dirty: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn with<R>(
        &self,
        f: impl FnOnce(&mut BTreeMap<String, Vec<u8>>) -> Result<R, KvError>,
    ) -> Result<R, KvError> {
        let mut guard = self
            .entries
            .lock()
            .map_err(|_| KvError::Io("state lock poisoned".into()))?;
        if guard.is_none() {
            *guard = Some(self.load()?);
        }
        match guard.as_mut() {
            Some(map) => f(map),
            None => Err(KvError::Io("state not loaded".into())),
        }
    }

    fn load(&self) -> Result<BTreeMap<String, Vec<u8>>, KvError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                let hexed: BTreeMap<String, String> = serde_json::from_slice(&bytes)
                    .map_err(|e| KvError::Io(format!("{} is corrupt: {e}", self.path.display())))?;
                hexed
                    .into_iter()
                    .map(|(k, v)| hex::decode(v).map(|v| (k, v)))
                    .collect::<Result<_, _>>()
                    .map_err(|e| KvError::Io(format!("{} is corrupt: {e}", self.path.display())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(KvError::Io(e.to_string())),
        }
    }

    fn save(&self, map: &BTreeMap<String, Vec<u8>>) -> Result<(), KvError> {
        let hexed: BTreeMap<&String, String> =
            map.iter().map(|(k, v)| (k, hex::encode(v))).collect();
        let bytes = serde_json::to_vec(&hexed).map_err(|e| KvError::Io(e.to_string()))?;
        warden_core::fsutil::write_atomic(&self.path, &bytes)
            .map_err(|e| KvError::Io(e.to_string()))
    }

    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        validate_key(key)?;
        self.with(|m| Ok(m.get(key).cloned()))
    }

    pub fn set(&self, key: &str, value: Vec<u8>) -> Result<(), KvError> {
        validate_key(key)?;
        self.with(|m| {
            let old = m
                .get(key)
                .map(|v| (key.len() + v.len()) as u64)
                .unwrap_or(0);
            let would_use = used(m) - old + (key.len() + value.len()) as u64;
            if would_use > self.quota {
                return Err(KvError::Quota {
                    quota: self.quota,
                    would_use,
                });
            }
            m.insert(key.to_string(), value);
            self.dirty.store(true, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        })
    }

    pub fn delete(&self, key: &str) -> Result<(), KvError> {
        validate_key(key)?;
        self.with(|m| {
            if m.remove(key).is_some() {
                self.dirty.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(())
        })
    }

    /// Write the run's changes, if any, replacing the state file once.
    pub fn commit(&self) -> Result<(), KvError> {
        if !self.dirty.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        self.with(|m| self.save(m))?;
        self.dirty
            .store(false, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    pub fn keys(&self) -> Result<Vec<String>, KvError> {
        self.with(|m| Ok(m.keys().cloned().collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persists_and_enforces_quota() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.json");
        let kv = KvStore::new(path.clone(), 20);
        kv.set("a", b"1234567890".to_vec()).expect("fits");
        assert!(matches!(
            kv.set("b", b"1234567890".to_vec()),
            Err(KvError::Quota { .. })
        ));
        kv.set("a", b"123".to_vec())
            .expect("replacing shrinks usage");
        assert!(!path.exists(), "nothing is written before the commit");
        kv.commit().expect("commit");
        let again = KvStore::new(path, 20);
        assert_eq!(again.get("a").expect("get"), Some(b"123".to_vec()));
        assert!(matches!(again.get(""), Err(KvError::InvalidKey(_))));
    }
}
