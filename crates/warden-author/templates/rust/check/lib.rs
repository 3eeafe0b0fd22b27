//! `{{name}}`: a Warden check plugin. It measures the size of one file and judges it against
//! `max_bytes`: `critical` at the maximum, `warning` from `warning_percent` of it, `unknown`
//! when the file is missing.

use serde::Deserialize;
use warden_sdk::{CapError, Check, CheckResult, PluginError, Status, fs, log};

/// The configuration; the runner has already checked it against `plugin.toml`'s schema.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    path: String,
    max_bytes: u64,
    #[serde(default = "default_warning_percent")]
    warning_percent: f64,
}

fn default_warning_percent() -> f64 {
    80.0
}

fn judge(size: u64, config: &Config) -> Status {
    // The warning threshold is a fraction of `max_bytes`, so it is compared as a float.
    let warning_at = config.max_bytes as f64 * config.warning_percent / 100.0;
    if size >= config.max_bytes {
        Status::Critical
    } else if size as f64 >= warning_at {
        Status::Warning
    } else {
        Status::Ok
    }
}

struct Plugin;

impl Check for Plugin {
    fn check(config: &str) -> Result<CheckResult, PluginError> {
        let config: Config = warden_sdk::config(config)?;
        let meta = match fs::stat(&config.path) {
            Ok(meta) => meta,
            // A missing file is an answer about the machine, not a failure of the plugin.
            Err(CapError::NotFound(_)) => {
                return Ok(CheckResult::unknown(format!(
                    "{} does not exist",
                    config.path
                )));
            }
            Err(e) => return Err(e.into()),
        };
        if !meta.is_file() {
            return Ok(CheckResult::unknown(format!(
                "{} is not a regular file",
                config.path
            )));
        }
        let size = meta.size;
        log::info(
            "measured file",
            &[("path", &config.path), ("bytes", &size.to_string())],
        );
        let summary = format!("{}: {size} of {} bytes", config.path, config.max_bytes);
        Ok(CheckResult::new(judge(size, &config), summary).metric("size", size as f64, "bytes"))
    }
}

warden_sdk::check!(Plugin);
