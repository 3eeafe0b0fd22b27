//! # flag
//!
//! A test guest whose check the test controls from outside: `check(config)` is `critical`
//! ("flag raised") while the file `path` exists and `ok` ("no flag") when it does not, so an
//! end-to-end test can make a monitor fail, keep failing and heal by creating and removing one
//! file. Any other error of `fs::stat` is the plugin error with its cap-error code.

use serde::Deserialize;
use warden_sdk::{CapError, Check, CheckResult, PluginError, Status, fs};

#[derive(Debug, Deserialize)]
struct Config {
    path: String,
}

struct Flag;

impl Check for Flag {
    fn check(config: &str) -> Result<CheckResult, PluginError> {
        let config: Config = warden_sdk::config(config)?;
        match fs::stat(&config.path) {
            Ok(_) => Ok(CheckResult::new(Status::Critical, "flag raised")),
            Err(CapError::NotFound(_)) => Ok(CheckResult::ok("no flag")),
            Err(e) => Err(e.into()),
        }
    }
}

warden_sdk::check!(Flag);
