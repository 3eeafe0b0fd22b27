//! The runner's in-memory copy of installed-plugin store records, so a run does not read and
//! parse `plugins/<name>.json` each time. An entry is used while the file's stamp (device,
//! inode, size, mtime, ctime; one `statx`) is unchanged: this runner's install or removal forgets
//! it at once, another process's (which replaces the file by rename) shows in the stamp.

use crate::store::{InstalledPlugin, PluginStore, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Stamp {
                dev: meta.dev(),
                ino: meta.ino(),
                len: meta.len(),
                mtime: (meta.mtime(), meta.mtime_nsec()),
                ctime: (meta.ctime(), meta.ctime_nsec()),
            }
        }
        #[cfg(not(unix))]
        {
            let nanos = |t: std::io::Result<std::time::SystemTime>| {
                t.ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or((0, 0), |d| {
                        (d.as_secs() as i64, i64::from(d.subsec_nanos()))
                    })
            };
            Stamp {
                dev: 0,
                ino: 0,
                len: meta.len(),
                mtime: nanos(meta.modified()),
                ctime: nanos(meta.created()),
            }
        }
    }
}

/// Records by plugin name.
#[derive(Default)]
pub struct RecordCache {
    map: Mutex<HashMap<String, (Stamp, Arc<InstalledPlugin>)>>,
}

impl RecordCache {
    /// The record of `name`, from memory when its file is unchanged.
    pub fn get(
        &self,
        store: &PluginStore,
        name: &str,
    ) -> Result<Option<Arc<InstalledPlugin>>, StoreError> {
        let path = store.record_file(name)?;
        let stamp = match std::fs::metadata(&path) {
            Ok(meta) => Stamp::of(&meta),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.forget(name);
                return Ok(None);
            }
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((cached, record)) = map.get(name)
            && *cached == stamp
        {
            return Ok(Some(record.clone()));
        }
        // Stamp first, then read: what is cached is never older than its stamp.
        let Some(record) = store.get(name)? else {
            map.remove(name);
            return Ok(None);
        };
        let record = Arc::new(record);
        map.insert(name.to_string(), (stamp, record.clone()));
        Ok(Some(record))
    }

    pub fn forget(&self, name: &str) {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_core::manifest::Manifest;

    fn manifest(version: &str) -> Manifest {
        Manifest::parse(&format!(
            "name = \"p\"\nversion = \"{version}\"\nrole = \"check\"\n"
        ))
        .expect("manifest")
    }

    #[test]
    fn a_record_is_served_from_memory_until_its_file_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = PluginStore::open(dir.path()).expect("store");
        let cache = RecordCache::default();
        assert!(cache.get(&store, "p").expect("get").is_none());
        store.put(&manifest("1.0.0"), b"one").expect("put");
        let first = cache.get(&store, "p").expect("get").expect("installed");
        let again = cache.get(&store, "p").expect("get").expect("installed");
        assert!(Arc::ptr_eq(&first, &again), "served from memory");
        // Another process installs (a new file by rename): the stamp shows it.
        PluginStore::open(dir.path())
            .expect("store")
            .put(&manifest("2.0.0"), b"two")
            .expect("put");
        let updated = cache.get(&store, "p").expect("get").expect("installed");
        assert_eq!(updated.manifest.version.to_string(), "2.0.0");
        store.remove("p").expect("remove");
        assert!(cache.get(&store, "p").expect("get").is_none());
    }
}
