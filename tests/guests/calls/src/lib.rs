//! # calls
//!
//! A benchmark guest for `warden-bench`: `check(config)` makes `calls` capability calls of one
//! `kind`, so that the cost of one call is `(time with N calls - time with 0) / N`.
//!
//! | kind | each call | needs |
//! |---|---|---|
//! | `log` | `log::info("call", [])` | nothing (log is always granted) |
//! | `kv` | `kv::get("bench")` (state loaded from disk once, then in memory) | kv |
//! | `kv-set` | `kv::set("bench", "1")` (the state file is replaced on every change) | kv |
//! | `fs` | `fs::read(path)` | fs read of `path` |
//! | `fs-stat` | `fs::stat(path)` | fs read of `path` |
//! | `sleep` | one `sleep_ms` sleep (calls ignored), to hold an instance alive | nothing |
//!
//! A capability error ends the check with that error, so a missing grant cannot pass for a
//! fast call. The summary is `<calls> <kind> call(s)`.

use std::time::Duration;

use serde::Deserialize;
use warden_sdk::{Check, CheckResult, PluginError, fs, kv, log};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    calls: u32,
    kind: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    sleep_ms: u64,
}

struct Calls;

fn path(config: &Config) -> Result<&str, PluginError> {
    config
        .path
        .as_deref()
        .ok_or_else(|| PluginError::bad_config(format!("kind `{}` needs `path`", config.kind)))
}

impl Check for Calls {
    fn check(config: &str) -> Result<CheckResult, PluginError> {
        let config: Config = warden_sdk::config(config)?;
        let n = config.calls;
        match config.kind.as_str() {
            "log" => (0..n).for_each(|_| log::info("call", &[])),
            "kv" => {
                for _ in 0..n {
                    kv::get("bench")?;
                }
            }
            "kv-set" => {
                for _ in 0..n {
                    kv::set("bench", "1")?;
                }
            }
            "fs" => {
                let path = path(&config)?;
                for _ in 0..n {
                    fs::read(path)?;
                }
            }
            "fs-stat" => {
                let path = path(&config)?;
                for _ in 0..n {
                    fs::stat(path)?;
                }
            }
            "sleep" => std::thread::sleep(Duration::from_millis(config.sleep_ms)),
            other => return Err(PluginError::bad_config(format!("unknown kind `{other}`"))),
        }
        Ok(CheckResult::ok(format!("{n} {} call(s)", config.kind)))
    }
}

warden_sdk::check!(Calls);
