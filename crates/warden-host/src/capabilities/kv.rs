//! `warden:plugin/kv`: the plugin's own persistent state, within its granted quota.

use super::{CapFailure, HostState};
use crate::bindings::CapError;
use crate::bindings::warden::plugin::kv::Host;
use crate::kv_store::{KvError, KvStore};
use std::sync::Arc;
use warden_core::grant::Operation;

impl HostState {
    fn kv(&mut self, function: &'static str, key: &str) -> Result<Arc<KvStore>, CapFailure> {
        self.cx
            .authorize(Operation::Kv { key }, function, key, &[])?;
        self.cx
            .kv
            .clone()
            .ok_or_else(|| CapError::Denied("kv is not granted".into()).into())
    }
}

impl From<KvError> for CapFailure {
    fn from(e: KvError) -> Self {
        CapFailure::Cap(match e {
            KvError::InvalidKey(m) => CapError::Invalid(m),
            KvError::Quota { .. } => CapError::LimitExceeded(e.to_string()),
            KvError::Io(m) => CapError::Failed(m),
        })
    }
}

impl Host for HostState {
    fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, CapFailure> {
        Ok(self.kv("get", &key)?.get(&key)?)
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), CapFailure> {
        Ok(self.kv("set", &key)?.set(&key, value)?)
    }

    fn delete(&mut self, key: String) -> Result<(), CapFailure> {
        Ok(self.kv("delete", &key)?.delete(&key)?)
    }

    fn list_keys(&mut self) -> Result<Vec<String>, CapFailure> {
        Ok(self.kv("list-keys", "*")?.keys()?)
    }
}
