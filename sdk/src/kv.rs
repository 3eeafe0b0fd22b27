//! The plugin's own persistent key-value store (WIT `kv`), kept across runs within the byte
//! quota granted in the manifest. Values are bytes; [`get_json`] and [`set_json`] store serde
//! types as JSON.
//!
//! ```no_run
//! use warden_sdk::kv;
//!
//! # fn main() -> Result<(), warden_sdk::CapError> {
//! let runs: u64 = kv::get_json("runs")?.unwrap_or(0);
//! kv::set_json("runs", &(runs + 1))?;
//! # Ok(())
//! # }
//! ```

use serde::{Serialize, de::DeserializeOwned};

use crate::__private::bindings::warden::plugin::kv as wit;
use crate::CapError;

/// The value stored under `key`, if any.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, CapError> {
    Ok(wit::get(key)?)
}

/// Store `value` under `key`; fails with [`CapError::LimitExceeded`] past the quota.
pub fn set(key: &str, value: impl AsRef<[u8]>) -> Result<(), CapError> {
    Ok(wit::set(key, value.as_ref())?)
}

/// Remove `key`.
pub fn delete(key: &str) -> Result<(), CapError> {
    Ok(wit::delete(key)?)
}

/// All keys of this plugin.
pub fn list_keys() -> Result<Vec<String>, CapError> {
    Ok(wit::list_keys()?)
}

/// The value under `key` parsed from JSON; a value that does not parse is [`CapError::Invalid`].
pub fn get_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>, CapError> {
    match get(key)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            CapError::Invalid(format!("kv value {key:?} is not the expected JSON: {e}"))
        }),
    }
}

/// Store `value` under `key` as JSON.
pub fn set_json<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), CapError> {
    let bytes = serde_json::to_vec(value)
        .map_err(|e| CapError::Invalid(format!("cannot encode kv value {key:?} as JSON: {e}")))?;
    set(key, bytes)
}
