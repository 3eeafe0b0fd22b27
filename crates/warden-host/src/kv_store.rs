//! Each plugin's persistent key-value state: one JSON file per plugin under the data dir, with a
//! byte quota over keys plus values. A run's changes are kept in memory and committed together
//! (the file replaced atomically once) when the run ends: a failed commit fails the run.
//!
//! A run's first use of its state takes an exclusive lock of `<plugin>.json.lock` (an OS file
//! lock, so it holds across processes: the CLI beside the agent, like the audit log's lock) and
//! keeps it until the commit or the end of the run. A read-modify-write in one run therefore
//! never interleaves with another run of the same plugin, in this process or another; a second
//! run waits at its first kv call, at most until the first run ends (its timeout bounds that).

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
    /// The loaded state and the lock held while it is: both `Some` from the first use to the
    /// commit.
    entries: Mutex<Option<Loaded>>,
    /// Changed since loaded: [`KvStore::commit`] has something to write.
    dirty: std::sync::atomic::AtomicBool,
}

/// The state as loaded under its lock.
struct Loaded {
    map: BTreeMap<String, Vec<u8>>,
    /// Held (locked) while the state is loaded; closing it releases the lock.
    _lock: std::fs::File,
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
            let lock = self.lock()?;
            *guard = Some(Loaded {
                map: self.load()?,
                _lock: lock,
            });
        }
        match guard.as_mut() {
            Some(loaded) => f(&mut loaded.map),
            None => Err(KvError::Io("state not loaded".into())),
        }
    }

    /// Wait for and take the exclusive lock of this plugin's state.
    fn lock(&self) -> Result<std::fs::File, KvError> {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".lock");
        let path = self.path.with_file_name(name);
        let io = |e: std::io::Error| KvError::Io(format!("{}: {e}", path.display()));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        file.lock().map_err(io)?;
        Ok(file)
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

    /// Write the run's changes, if any, replacing the state file once; then release the lock
    /// (a later use loads the state again, with what others committed meanwhile).
    pub fn commit(&self) -> Result<(), KvError> {
        let saved = if self.dirty.load(std::sync::atomic::Ordering::Relaxed) {
            self.with(|m| self.save(m))
        } else {
            Ok(())
        };
        // Released even when the write failed: the run fails, the next one starts from the file.
        self.dirty
            .store(false, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut guard) = self.entries.lock() {
            *guard = None;
        }
        saved
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

    /// One run's read-modify-write: what a plugin counting its runs does.
    fn increment(path: &std::path::Path) {
        let kv = KvStore::new(path.to_path_buf(), 1024);
        let n: u64 = kv
            .get("n")
            .expect("get")
            .map(|v| String::from_utf8(v).expect("utf8").parse().expect("number"))
            .unwrap_or(0);
        kv.set("n", (n + 1).to_string().into_bytes()).expect("set");
        kv.commit().expect("commit");
    }

    #[test]
    fn concurrent_runs_with_their_own_stores_lose_no_increment() {
        const WRITERS: usize = 4;
        const EACH: usize = 50;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("counter.json");
        // Each store opens its own lock file, as the agent and a CLI beside it do.
        std::thread::scope(|s| {
            for _ in 0..WRITERS {
                s.spawn(|| (0..EACH).for_each(|_| increment(&path)));
            }
        });
        let kv = KvStore::new(path, 1024);
        let total = WRITERS * EACH;
        assert_eq!(
            kv.get("n").expect("get"),
            Some(total.to_string().into_bytes())
        );
    }

    #[test]
    fn the_lock_is_released_by_the_commit_and_by_a_run_that_ends_without_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.json");
        let abandoned = KvStore::new(path.clone(), 1024);
        abandoned.set("x", b"1".to_vec()).expect("set");
        drop(abandoned);
        let kv = KvStore::new(path.clone(), 1024);
        assert_eq!(
            kv.get("x").expect("get"),
            None,
            "an uncommitted run wrote nothing"
        );
        kv.commit().expect("commit without changes");
        increment(&path);
        assert_eq!(
            kv.get("n").expect("get"),
            Some(b"1".to_vec()),
            "reloaded after the commit"
        );
    }
}
